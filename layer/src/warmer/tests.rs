#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_runtime::{service_fn, Context as LambdaContext, Error};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use super::*;

/// A handler that counts its calls and echoes the event.
fn counting_handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<LambdaEvent<Value>, Response = Value, Error = Error, Future: Send + 'static> {
    service_fn(move |e: LambdaEvent<Value>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(json!({"handled": e.payload}))
        }
    })
}

/// Parses `event` as `lambda_runtime` would (through `WarmerEvent`'s Deserialize) and calls.
async fn invoke<S>(svc: &mut WarmerService<S>, event: Value) -> Value
where
    S: Service<LambdaEvent<Value>, Response = Value, Error = Error>,
    S::Future: Send + 'static,
{
    let payload: WarmerEvent<Value> = serde_json::from_value(event).unwrap();
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(LambdaEvent::new(payload, LambdaContext::default()))
        .await
        .unwrap();
    serde_json::to_value(resp).unwrap()
}

fn layer() -> WarmerLayer {
    WarmerLayer::new(None).instance(Instance::new())
}

#[tokio::test]
async fn each_ping_form_short_circuits() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer().layer(counting_handler(calls.clone()));
    let forms = [
        (
            json!({"warmer": true, "concurrency": 1, "correlationId": "c-1"}),
            "lambda-warmer",
            Some("c-1"),
        ),
        (
            json!({"__WARMER_INVOCATION__": 1, "__WARMER_CONCURRENCY__": 1, "__WARMER_CORRELATIONID__": "c-2"}),
            "lambda-warmer",
            Some("c-2"),
        ),
        (
            json!({"source": "serverless-plugin-warmup"}),
            "serverless-plugin-warmup",
            None,
        ),
        (
            json!({"id": "evt-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {"hearth-warmer": true}}),
            "eventbridge-schedule",
            Some("evt-1"),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (event, source, correlation)) in forms.into_iter().enumerate() {
        let out = invoke(&mut svc, event.clone()).await;
        assert_eq!(out["warmed"], true, "{event} → {out}");
        assert_eq!(out["source"], source);
        assert_eq!(out["correlationId"].as_str(), correlation);
        assert_eq!(
            out["coldStart"],
            i == 0,
            "only the first event is cold: {out}"
        );
        assert_eq!(out["extensionWarmed"], false, "no client configured");
        ids.push(out["instanceId"].as_str().unwrap().to_string());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
    ids.dedup();
    assert_eq!(ids.len(), 1, "one instance id per process: {ids:?}");
}

#[tokio::test]
async fn ordinary_events_reach_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer().layer(counting_handler(calls.clone()));
    let out = invoke(&mut svc, json!({"action": "get", "warmer": false})).await;
    assert_eq!(out, json!({"handled": {"action": "get", "warmer": false}}));
    let plain_schedule =
        json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let out = invoke(&mut svc, plain_schedule.clone()).await;
    assert_eq!(out, json!({"handled": plain_schedule}));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The handler ran first, so a later ping is not a cold start.
    let out = invoke(&mut svc, json!({"warmer": true})).await;
    assert_eq!(out["coldStart"], false);
}

#[tokio::test(start_paused = true)]
async fn parallel_pings_hold_the_environment() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = layer().layer(counting_handler(calls));

    let t0 = Instant::now();
    invoke(&mut svc, json!({"warmer": true, "concurrency": 1})).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "a single ping does not hold");

    let t0 = Instant::now();
    invoke(&mut svc, json!({"warmer": true, "concurrency": 3})).await;
    assert_eq!(t0.elapsed(), DEFAULT_DELAY, "default hold");

    let t0 = Instant::now();
    invoke(
        &mut svc,
        json!({"warmer": true, "concurrency": 3, "delay": 250}),
    )
    .await;
    assert_eq!(t0.elapsed(), Duration::from_millis(250), "the ping's delay");

    let t0 = Instant::now();
    invoke(
        &mut svc,
        json!({"warmer": true, "concurrency": 2, "delay": 999_999}),
    )
    .await;
    assert_eq!(t0.elapsed(), ping::MAX_DELAY, "clamped");
}

#[test]
fn bad_events_are_reported_without_their_values() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Card {
        pan: String,
    }
    let e = serde_json::from_value::<WarmerEvent<Card>>(json!({"pan": 4111111111111111u64}))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("4111"), "{e}");
    assert!(e.contains("expected a string"), "{e}");
    let e = serde_json::from_value::<WarmerEvent<Card>>(json!({"pa": "x"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field `pan`"), "{e}");
}

/// A one-shot HTTP server on loopback that records the request line and answers `body`.
async fn fake_extension(body: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        req
    });
    (port, task)
}

#[tokio::test]
async fn a_ping_warms_the_extension() {
    let (port, server) =
        fake_extension(r#"{"warmed":{"secrets":1},"errors":[],"durationMs":3}"#).await;
    let client = Client::builder().port(port).token("tok").build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = WarmerLayer::new(Some(client))
        .instance(Instance::new())
        .layer(counting_handler(calls));
    let out = invoke(&mut svc, json!({"warmer": true})).await;
    assert_eq!(out["extensionWarmed"], true, "{out}");
    let req = server.await.unwrap();
    assert!(req.starts_with("POST /v1/warm HTTP/1.1"), "{req}");
    assert!(
        req.to_ascii_lowercase()
            .contains("x-aws-parameters-secrets-token: tok"),
        "{req}"
    );
}
