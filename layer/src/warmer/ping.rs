//! Recognising warm-up pings: a pure function from the event JSON to [`WarmPing`].
//!
//! # Recognised forms
//!
//! | sender | event |
//! |---|---|
//! | lambda-warmer, and Hearth's warmer function | `{"warmer": true, "concurrency": N, "correlationId"?: "..", "delay"?: ms}` |
//! | lambda-warmer's own fan-out invocations | `{"__WARMER_INVOCATION__": i, "__WARMER_CONCURRENCY__": N, "__WARMER_CORRELATIONID__": ".."}` |
//! | serverless-plugin-warmup | `{"source": "serverless-plugin-warmup"}` (optional `concurrency`, `delay`) |
//! | EventBridge schedule (Hearth's template) | `{"source": "aws.events" or "aws.scheduler", "detail-type": "Scheduled Event", "detail": {"hearth-warmer": true, "concurrency"?: N, "delay"?: ms}}` |
//!
//! A scheduled event is a ping only when its `detail` carries `"hearth-warmer": true`: a
//! function may have real scheduled work, which must still reach its handler. The template's
//! rule sends that event as its constant input, so it reads like any scheduled event in logs.
//! Its `id` serves as correlation id when `detail.correlationId` is absent.

use std::time::Duration;

use serde_json::Value;

/// Largest concurrency honoured (a larger value is clamped): more parallel pings than this
/// from one sender are not a warm-up.
pub const MAX_CONCURRENCY: u32 = 1000;

/// Longest hold honoured (a larger `delay` is clamped), so a ping never uses up a function's
/// timeout.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Who sent the ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingSource {
    /// `{"warmer": true, ...}` (lambda-warmer's format, also sent by `hearth-warmer`).
    LambdaWarmer,
    /// `{"source": "serverless-plugin-warmup"}`.
    ServerlessPluginWarmup,
    /// An EventBridge scheduled event with `detail["hearth-warmer"] == true`.
    Scheduled,
}

impl PingSource {
    /// Stable name, used in the reply and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PingSource::LambdaWarmer => "lambda-warmer",
            PingSource::ServerlessPluginWarmup => "serverless-plugin-warmup",
            PingSource::Scheduled => "eventbridge-schedule",
        }
    }
}

/// A recognised warm-up ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPing {
    /// Who sent it.
    pub source: PingSource,
    /// How many pings the sender fires in parallel (1 when not given).
    pub concurrency: u32,
    /// The sender's id for this round, echoed in the reply.
    pub correlation_id: Option<String>,
    /// How long to hold when `concurrency > 1`; the layer's default when not given.
    pub delay: Option<Duration>,
}

/// The ping in `event`, if it is one.
pub fn parse(event: &Value) -> Option<WarmPing> {
    let obj = event.as_object()?;
    if obj.get("warmer").and_then(Value::as_bool) == Some(true) {
        return Some(WarmPing {
            source: PingSource::LambdaWarmer,
            concurrency: concurrency(obj.get("concurrency")),
            correlation_id: string(obj.get("correlationId")),
            delay: delay(obj.get("delay")),
        });
    }
    if obj.contains_key("__WARMER_INVOCATION__") {
        return Some(WarmPing {
            source: PingSource::LambdaWarmer,
            concurrency: concurrency(obj.get("__WARMER_CONCURRENCY__")),
            correlation_id: string(obj.get("__WARMER_CORRELATIONID__")),
            delay: None,
        });
    }
    let source = obj.get("source").and_then(Value::as_str);
    if source == Some("serverless-plugin-warmup") {
        return Some(WarmPing {
            source: PingSource::ServerlessPluginWarmup,
            concurrency: concurrency(obj.get("concurrency")),
            correlation_id: string(obj.get("correlationId")),
            delay: delay(obj.get("delay")),
        });
    }
    if matches!(source, Some("aws.events" | "aws.scheduler"))
        && obj.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
    {
        let detail = obj.get("detail")?.as_object()?;
        if detail.get("hearth-warmer").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        return Some(WarmPing {
            source: PingSource::Scheduled,
            concurrency: concurrency(detail.get("concurrency")),
            correlation_id: string(detail.get("correlationId")).or_else(|| string(obj.get("id"))),
            delay: delay(detail.get("delay")),
        });
    }
    None
}

fn concurrency(v: Option<&Value>) -> u32 {
    let n = v
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(1);
    u32::try_from(n.clamp(1, u64::from(MAX_CONCURRENCY))).unwrap_or(1)
}

fn delay(v: Option<&Value>) -> Option<Duration> {
    let ms = v?.as_u64()?;
    Some(Duration::from_millis(ms).min(MAX_DELAY))
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.chars().take(256).collect()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lambda_warmer_form() {
        let p =
            parse(&json!({"warmer": true, "concurrency": 3, "correlationId": "c1", "delay": 200}));
        assert_eq!(
            p,
            Some(WarmPing {
                source: PingSource::LambdaWarmer,
                concurrency: 3,
                correlation_id: Some("c1".into()),
                delay: Some(Duration::from_millis(200)),
            })
        );
        let p = parse(&json!({"warmer": true})).map(|p| (p.concurrency, p.delay));
        assert_eq!(p, Some((1, None)));
        let p = parse(
            &json!({"__WARMER_INVOCATION__": 2, "__WARMER_CONCURRENCY__": 4, "__WARMER_CORRELATIONID__": "x"}),
        );
        assert_eq!(
            p.map(|p| (p.concurrency, p.correlation_id)),
            Some((4, Some("x".into())))
        );
    }

    #[test]
    fn serverless_plugin_form() {
        let p = parse(&json!({"source": "serverless-plugin-warmup"}));
        assert_eq!(
            p.map(|p| (p.source, p.concurrency)),
            Some((PingSource::ServerlessPluginWarmup, 1))
        );
    }

    #[test]
    fn scheduled_form_needs_the_flag() {
        let event = json!({
            "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/warm"],
            "detail": {"hearth-warmer": true, "concurrency": 2}
        });
        let p = parse(&event);
        assert_eq!(
            p.map(|p| (p.source, p.concurrency, p.correlation_id)),
            Some((
                PingSource::Scheduled,
                2,
                Some("89d1a02d-5ec7-412e-82f5-13505f849b41".into())
            ))
        );
        let mut plain = event.clone();
        plain["detail"] = json!({});
        assert_eq!(
            parse(&plain),
            None,
            "a real scheduled job must reach the handler"
        );
    }

    #[test]
    fn ordinary_events_are_not_pings() {
        for e in [
            json!({"action": "create", "tenant": "t1"}),
            json!({"warmer": false}),
            json!({"warmer": "true"}),
            json!({"source": "aws.s3"}),
            json!([1, 2]),
            json!("warmer"),
            Value::Null,
        ] {
            assert_eq!(parse(&e), None, "{e}");
        }
    }

    #[test]
    fn values_are_clamped() {
        let p = parse(&json!({"warmer": true, "concurrency": 1_000_000, "delay": 3_600_000}));
        assert_eq!(
            p.map(|p| (p.concurrency, p.delay)),
            Some((MAX_CONCURRENCY, Some(MAX_DELAY)))
        );
        let p = parse(&json!({"warmer": true, "concurrency": 0}));
        assert_eq!(p.map(|p| p.concurrency), Some(1));
    }
}
