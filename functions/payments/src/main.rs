//! # hearth-payments
//!
//! An example Lambda function that uses all three things Hearth keeps warm: it stores card
//! payments per tenant, with the card data envelope-encrypted through the extension's KMS
//! data-key cache and the row written through its Postgres pool under Row-Level Security.
//!
//! - `request`: the event, parsed and validated; card data in a redacting, zeroizing type.
//! - `payments`: create and get, through the typed [`hearth::Client`].
//! - `error`: the JSON errors it answers with.
//!
//! Warm-up pings are answered by [`hearth::run`]'s warmer layer and never reach the handler.
//! Migrations for the table are in `migrations/`.

mod error;
mod payments;
mod request;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

/// Handles one event; every outcome is a JSON body (`{"payment":..,"timings":..}` or
/// `{"error":..}`). `timings` holds the client-side microseconds of each Hearth call
/// ([`payments::Timings`]) and `handler_us`, the whole of this function.
async fn handle(client: &hearth::Client, event: &Value) -> Value {
    let started = std::time::Instant::now();
    let mut timings = payments::Timings::default();
    let result = match request::parse(event) {
        Ok(req) => payments::handle(client, req, &mut timings).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(mut v) => {
            v["timings"] = timings.to_json(started.elapsed());
            v
        }
        Err(e) => {
            // The message names fields, never values; the code is what callers branch on.
            tracing::warn!(code = e.code(), error = %e, "request failed");
            e.to_json()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(level.to_ascii_lowercase())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .without_time()
        .init();
    // Built once, at init: one keep-alive connection pool for the life of the environment.
    let client = hearth::Client::from_env()?;
    hearth::run(service_fn(move |event: LambdaEvent<Value>| {
        let client = client.clone();
        async move { Ok::<Value, Error>(handle(&client, &event.payload).await) }
    }))
    .await
}
