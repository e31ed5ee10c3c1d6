//! # hearth-warmer
//!
//! An example function run by an EventBridge schedule: for every target in
//! `HEARTH_WARMER_TARGETS` (`name:concurrency,...`) it sends `concurrency` warm-up pings in
//! parallel (Lambda Invoke, RequestResponse), counts the distinct environments that answered,
//! and reports per target: a log line, one CloudWatch EMF line on stdout, and the function's
//! response. Targets run concurrently with each other too.
//!
//! The SDK client is built once at init and honours `AWS_ENDPOINT_URL` (local runs, tests).
//! This function must not carry the Hearth layer itself: it needs no secrets, keys or pool.
//!
//! - `targets`: parsing `HEARTH_WARMER_TARGETS`.
//! - `fanout`: one round for one target.
//! - `emf`: the metric line.

mod emf;
mod fanout;
mod targets;

use std::time::{SystemTime, UNIX_EPOCH};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn round(
    client: &aws_sdk_lambda::Client,
    targets: &[targets::Target],
    event: &Value,
) -> Value {
    // The schedule's event id ties the round to its trigger in the logs.
    let round_id = event
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let reports = futures::future::join_all(targets.iter().map(|t| {
        let correlation = format!("{round_id}:{}", t.name);
        async move { fanout::warm(client, t, &correlation).await }
    }))
    .await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0);
    for r in &reports {
        println!("{}", emf::line(r, now_ms));
        if r.errors > 0 {
            tracing::warn!(target_fn = %r.target, invoked = r.invoked, distinct = r.distinct_environments,
                errors = r.errors, samples = ?r.error_samples, "warm-up round had errors");
        } else {
            tracing::info!(target_fn = %r.target, invoked = r.invoked, distinct = r.distinct_environments,
                cold_starts = r.cold_starts, duration_ms = r.duration_ms, "warm-up round done");
        }
    }
    json!({"round": round_id, "targets": reports})
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .unwrap_or_else(|_| "info".into())
                .to_ascii_lowercase(),
        ))
        .with_target(false)
        .without_time()
        .init();
    let targets =
        targets::parse(&std::env::var(targets::VARIABLE).unwrap_or_default()).map_err(|e| {
            tracing::error!(error = %e, "bad configuration");
            e
        })?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_lambda::Client::new(&config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let client = client.clone();
        let targets = targets.clone();
        async move { Ok::<Value, Error>(round(&client, &targets, &event.payload).await) }
    }))
    .await
}
