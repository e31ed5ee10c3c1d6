//! One round for one target: `concurrency` Invoke calls at once, each with the warm-up ping
//! `{"warmer": true, "concurrency": N, "correlationId": ..}` that Hearth's warmer layer (and
//! lambda-warmer) recognise. Lambda sends concurrent invocations to distinct environments
//! while each is busy; the layer holds each ping briefly so they overlap, and answers with its
//! environment's `instanceId`, which is how this round counts distinct environments.

use std::collections::BTreeSet;
use std::time::Instant;

use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde::Serialize;
use serde_json::{json, Value};

use crate::targets::Target;

/// Error messages kept per target (the rest are counted only).
const ERROR_SAMPLES: usize = 3;

/// What one round found for one target.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    /// Function name as configured.
    pub target: String,
    /// The round's correlation id (also in each ping).
    pub correlation_id: String,
    /// Invocations sent.
    pub invoked: u32,
    /// Distinct `instanceId`s among the warm replies.
    pub distinct_environments: usize,
    /// Replies with `coldStart: true` (environments this round created).
    pub cold_starts: u32,
    /// Invocations that failed or did not answer with a warm reply.
    pub errors: u32,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// The distinct instance ids, sorted.
    pub instance_ids: Vec<String>,
    /// Wall time of the round.
    pub duration_ms: u64,
}

/// The ping payload.
pub fn ping(concurrency: u32, correlation_id: &str) -> Value {
    json!({"warmer": true, "concurrency": concurrency, "correlationId": correlation_id})
}

/// A warm reply's instance id and cold-start flag; `Err` says why the answer is not one.
fn read_reply(payload: &[u8]) -> Result<(String, bool), String> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|_| "the reply is not JSON".to_string())?;
    if v.get("warmed").and_then(Value::as_bool) != Some(true) {
        // Do not quote the reply: without the warmer layer it is the handler's own output.
        return Err("the reply is not a warm reply; is the Hearth warmer layer (hearth::run) in the target?".into());
    }
    let id = v
        .get("instanceId")
        .and_then(Value::as_str)
        .ok_or("the warm reply has no instanceId")?;
    Ok((
        id.to_string(),
        v.get("coldStart").and_then(Value::as_bool) == Some(true),
    ))
}

/// Runs one round for `target`.
pub async fn warm(
    client: &aws_sdk_lambda::Client,
    target: &Target,
    correlation_id: &str,
) -> TargetReport {
    let started = Instant::now();
    let n = target.concurrency.get();
    let payload = ping(n, correlation_id).to_string();
    let calls = (0..n).map(|_| {
        client
            .invoke()
            .function_name(&target.name)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.clone()))
            .send()
    });
    let mut ids = BTreeSet::new();
    let mut cold_starts = 0;
    let mut errors = 0;
    let mut error_samples = Vec::new();
    for result in futures::future::join_all(calls).await {
        let outcome = match result {
            Ok(out) if out.function_error().is_some() => Err(format!(
                "the function failed: {}",
                out.function_error().unwrap_or_default()
            )),
            Ok(out) => read_reply(out.payload().map(|b| b.as_ref()).unwrap_or_default()),
            Err(e) => Err(format!("Invoke failed: {}", DisplayErrorContext(&e))),
        };
        match outcome {
            Ok((id, cold)) => {
                cold_starts += u32::from(cold);
                ids.insert(id);
            }
            Err(msg) => {
                errors += 1;
                if error_samples.len() < ERROR_SAMPLES {
                    error_samples.push(msg);
                }
            }
        }
    }
    TargetReport {
        target: target.name.clone(),
        correlation_id: correlation_id.to_string(),
        invoked: n,
        distinct_environments: ids.len(),
        cold_starts,
        errors,
        error_samples,
        instance_ids: ids.into_iter().collect(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn replies() {
        assert_eq!(
            read_reply(br#"{"warmed":true,"instanceId":"i-1","coldStart":true}"#),
            Ok(("i-1".to_string(), true))
        );
        let e = read_reply(br#"{"payment":{"card":{"pan":"4111111111111111"}}}"#).unwrap_err();
        assert!(!e.contains("4111"), "{e}");
        assert!(read_reply(b"nope").is_err());
        assert_eq!(ping(3, "c")["concurrency"], 3);
    }
}
