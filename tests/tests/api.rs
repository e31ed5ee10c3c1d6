//! The HTTP API of the real `hearth` binary, standalone: the request guard and limits, and
//! the secrets cache against moto over HTTP through the real AWS SDK.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use hearth::wire::TOKEN_HEADER;
use hearth_tests::hearth::{Hearth, TOKEN};
use hearth_tests::moto::Moto;
use serde_json::{json, Value};

use hearth_tests::{env_vars as env, error_code as code, with_env as with};

#[tokio::test]
async fn guard_and_limits_answer_in_json() {
    let h = Hearth::start(&env(&[
        ("HEARTH_MAX_BODY_BYTES", "1024"),
        ("AWS_REGION", "us-east-1"),
    ]))
    .await;

    // /health needs no token.
    let r = h.http.get(h.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    // Everything else does: missing → 401, wrong → 403.
    let r = h.http.get(h.url("/v1/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(code(&r.json().await.unwrap()), "MissingToken");
    let r = h
        .http
        .get(h.url("/v1/metrics"))
        .header(TOKEN_HEADER, "rig-session-tokem")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(code(&r.json().await.unwrap()), "InvalidToken");

    // A relayed request is refused, even with the right token.
    let r = h
        .http
        .get(h.url("/v1/metrics"))
        .header(TOKEN_HEADER, TOKEN)
        .header("X-Forwarded-For", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "ForwardedRequestRejected");

    // Oversized body → 413 as JSON.
    let big = json!({"plaintext": "A".repeat(4096), "context": {}});
    let (status, body) = h.post("/v1/kms/encrypt", &big).await;
    assert_eq!((status, code(&body)), (413, "PayloadTooLarge"), "{body}");

    // Unknown path → 404, wrong method → 405, both JSON.
    let (status, body) = h.get("/v1/nothing-here").await;
    assert_eq!((status, code(&body)), (404, "NotFound"));
    let (status, body) = h.post("/health", &json!({})).await;
    assert_eq!((status, code(&body)), (405, "MethodNotAllowed"));

    // Malformed JSON and a wrong content type.
    let r = h
        .http
        .post(h.url("/v1/kms/encrypt"))
        .header(TOKEN_HEADER, TOKEN)
        .header("content-type", "application/json")
        .body("{\"plaintext\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "MalformedJson");
    let r = h
        .http
        .post(h.url("/v1/kms/encrypt"))
        .header(TOKEN_HEADER, TOKEN)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(code(&r.json().await.unwrap()), "UnsupportedMediaType");

    // The database is off unless configured: a clear 503 that says what to set.
    let (status, body) = h
        .post("/v1/db/query", &json!({"sql": "select 1", "tenant": "t"}))
        .await;
    assert_eq!((status, code(&body)), (503, "NotConfigured"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("HEARTH_DB_SECRET_ID"));

    // A request head over the limit is refused by the listener, and the server lives on.
    let r = h
        .http
        .get(h.url("/health"))
        .header("x-big", "a".repeat(64 * 1024))
        .send()
        .await;
    assert!(r.map(|r| r.status().as_u16()).unwrap_or(431) == 431);
    let (status, _) = h.get("/v1/metrics").await;
    assert_eq!(status, 200);
    assert!(h.counter("http.rejected").await >= 3);
}

#[tokio::test]
async fn listener_is_loopback_only_and_connections_are_capped() {
    let h = Hearth::start(&env(&[
        ("HEARTH_MAX_CONNECTIONS", "2"),
        ("AWS_REGION", "us-east-1"),
    ]))
    .await;
    // Bound to 127.0.0.1: the listening socket's address says so.
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", h.port)])
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for line in text.lines() {
            // State, Recv-Q, Send-Q, Local Address:Port, Peer Address:Port
            let local = line.split_whitespace().nth(3).unwrap_or_default();
            assert!(
                local.starts_with("127.0.0.1:"),
                "listening on {local}: {line}"
            );
        }
    }
    // The rig's keep-alive connection (used for the health check) and one idle connection
    // fill the cap of 2; a third client is served once the idle one closes.
    let a = tokio::net::TcpStream::connect(("127.0.0.1", h.port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    let third = fresh
        .get(h.url("/health"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        third.is_err(),
        "a third connection was served past HEARTH_MAX_CONNECTIONS=2"
    );
    drop(a);
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    let t0 = Instant::now();
    let r = fresh
        .get(h.url("/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

/// The same command AWS's documentation gives for its own extension works unchanged.
#[tokio::test]
async fn drop_in_compatible_with_the_official_extension() {
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("app/config")
        .secret_string(r#"{"feature":"on"}"#)
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("app/binary")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            0u8, 1, 2, 255,
        ]))
        .send()
        .await
        .unwrap();
    // The official extension's variables, not Hearth's.
    let port = hearth_tests::free_port().to_string();
    let h = Hearth::start(&with(
        moto.env(),
        &[
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("HEARTH_TOKEN", TOKEN),
        ],
    ))
    .await;
    assert_eq!(h.port.to_string(), port);

    let out = std::process::Command::new("curl")
        .args(["-s", "--noproxy", "*", "-H"])
        .arg(format!("X-Aws-Parameters-Secrets-Token: {TOKEN}"))
        .arg(format!(
            "http://localhost:{port}/secretsmanager/get?secretId=app%2Fconfig"
        ))
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["Name"], "app/config");
    assert_eq!(body["SecretString"], r#"{"feature":"on"}"#);
    assert!(body["ARN"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:secretsmanager:"));
    assert!(body["VersionId"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(body["VersionStages"], json!(["AWSCURRENT"]));
    assert!(body["CreatedDate"].is_string());

    let (status, body) = h.get("/secretsmanager/get?secretId=app/binary").await;
    assert_eq!(status, 200);
    assert_eq!(body["SecretBinary"], "AAEC/w==");
    assert!(body.get("SecretString").is_none());

    let (status, body) = h.get("/secretsmanager/get?secretId=missing").await;
    assert_eq!((status, code(&body)), (404, "SecretNotFound"));
    let (status, body) = h
        .get("/secretsmanager/get?secretId=app/config&versionId=nope")
        .await;
    assert!(status == 404 || status == 400, "{status} {body}");
    let (status, body) = h.get("/secretsmanager/get?secretid=app/config").await;
    assert_eq!((status, code(&body)), (400, "UnknownParameter"));
    let (status, body) = h.get("/secretsmanager/get").await;
    assert_eq!((status, code(&body)), (400, "MissingParameter"));
}

#[tokio::test]
async fn concurrent_cold_reads_make_one_upstream_call() {
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    let h = Hearth::start(&moto.env()).await;
    // 50 reads are sent at once; on a loaded machine the first may still finish before the
    // others arrive (then they are plain hits and single-flight is not exercised), so a fresh
    // secret is tried until the reads really overlapped, at most 5 times.
    let mut overlapped = false;
    let mut hot = String::new();
    for attempt in 0..5 {
        hot = format!("hot-{attempt}");
        sm.create_secret()
            .name(&hot)
            .secret_string("v")
            .send()
            .await
            .unwrap();
        let calls = h.counter("secrets.upstream_calls").await;
        let misses = h.counter("secrets.misses").await;
        let path = format!("/secretsmanager/get?secretId={hot}");
        let results = futures::future::join_all((0..50).map(|_| h.get(&path))).await;
        for (status, body) in &results {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(body["SecretString"], "v");
        }
        assert_eq!(
            h.counter("secrets.upstream_calls").await - calls,
            1,
            "50 concurrent cold reads → 1 GetSecretValue"
        );
        if h.counter("secrets.misses").await - misses > 1 {
            overlapped = true;
            break;
        }
    }
    assert!(overlapped, "the 50 reads never overlapped in 5 attempts");
    assert!(h.counter("secrets.coalesced").await >= 1);
    let calls = h.counter("secrets.upstream_calls").await;
    // Warm now: no more upstream calls.
    let path = format!("/secretsmanager/get?secretId={hot}");
    let hits = h.counter("secrets.hits").await;
    for _ in 0..20 {
        h.get(&path).await;
    }
    assert_eq!(h.counter("secrets.upstream_calls").await, calls);
    assert_eq!(h.counter("secrets.hits").await - hits, 20);
}

#[tokio::test]
async fn soft_ttl_refreshes_in_background_and_hard_ttl_refetches() {
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("ttl")
        .secret_string("one")
        .send()
        .await
        .unwrap();
    let h = Hearth::start(&with(
        moto.env(),
        &[
            ("HEARTH_SECRETS_SOFT_TTL", "600ms"),
            ("HEARTH_SECRETS_HARD_TTL", "2s"),
            ("HEARTH_SECRETS_JITTER_PERCENT", "0"),
        ],
    ))
    .await;
    let read = || h.get("/secretsmanager/get?secretId=ttl");
    assert_eq!(read().await.1["SecretString"], "one");
    assert_eq!(h.counter("secrets.upstream_calls").await, 1);
    // Before the soft TTL: served from the cache.
    assert_eq!(read().await.1["SecretString"], "one");
    assert_eq!(h.counter("secrets.upstream_calls").await, 1);

    // Past the soft TTL: the cached value is served at once, and a refresh runs behind it.
    sm.put_secret_value()
        .secret_id("ttl")
        .secret_string("two")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        read().await.1["SecretString"],
        "one",
        "served from the cache while refreshing"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut value = Value::Null;
    while Instant::now() < deadline {
        value = read().await.1["SecretString"].clone();
        if value == "two" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(value, "two", "the background refresh replaced the value");
    assert_eq!(h.counter("secrets.refreshes").await, 1);
    assert_eq!(
        h.counter("secrets.upstream_calls").await,
        2,
        "one refresh, no synchronous refetch"
    );

    // Past the hard TTL with no read in between: the read waits for a refetch.
    sm.put_secret_value()
        .secret_id("ttl")
        .secret_string("three")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        read().await.1["SecretString"],
        "three",
        "past the hard TTL the value is refetched first"
    );

    // refreshNow bypasses the cache.
    let before = h.counter("secrets.upstream_calls").await;
    assert_eq!(
        h.get("/secretsmanager/get?secretId=ttl&refreshNow=true")
            .await
            .0,
        200
    );
    assert_eq!(h.counter("secrets.upstream_calls").await, before + 1);
}

#[tokio::test]
async fn stale_if_error_serves_cached_values_through_an_outage() {
    let mut moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name("s")
        .secret_string("kept")
        .send()
        .await
        .unwrap();
    let h = Hearth::start(&with(
        moto.env(),
        &[
            ("HEARTH_SECRETS_SOFT_TTL", "300ms"),
            ("HEARTH_SECRETS_HARD_TTL", "500ms"),
            ("HEARTH_SECRETS_STALE_IF_ERROR", "3s"),
            ("HEARTH_AWS_MAX_ATTEMPTS", "1"),
            ("HEARTH_AWS_OPERATION_TIMEOUT", "1s"),
        ],
    ))
    .await;
    assert_eq!(
        h.get("/secretsmanager/get?secretId=s").await.1["SecretString"],
        "kept"
    );
    moto.stop();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Past the hard TTL, AWS unreachable: the cached value is served, and counted.
    let (status, body) = h.get("/secretsmanager/get?secretId=s").await;
    assert_eq!(
        (status, &body["SecretString"]),
        (200, &json!("kept")),
        "{body}"
    );
    assert!(h.counter("secrets.stale_serves").await >= 1);
    // A secret never cached has nothing to fall back on: a clear 503.
    let (status, body) = h.get("/secretsmanager/get?secretId=never-cached").await;
    assert_eq!(
        (status, code(&body)),
        (503, "UpstreamUnavailable"),
        "{body}"
    );
    // Past the stale window: 503 for the cached one too.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (status, body) = h.get("/secretsmanager/get?secretId=s").await;
    assert_eq!(
        (status, code(&body)),
        (503, "UpstreamUnavailable"),
        "{body}"
    );
    // AWS back (moto restarts empty, so the secret is created again): reads recover.
    moto.restart();
    moto.secrets_client()
        .await
        .create_secret()
        .name("s")
        .secret_string("back")
        .send()
        .await
        .unwrap();
    let (status, body) = h.get("/secretsmanager/get?secretId=s").await;
    assert_eq!(
        (status, &body["SecretString"]),
        (200, &json!("back")),
        "{body}"
    );
    // The stale serve was logged once, without the value.
    let out = h.proc.output();
    assert_eq!(out.matches("past its hard TTL").count(), 1, "{out}");
    assert!(
        !out.contains("kept") && !out.contains("back\""),
        "a secret value reached the log:\n{out}"
    );
}

#[tokio::test]
async fn rotation_is_visible_within_the_soft_ttl() {
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    let created = sm
        .create_secret()
        .name("rot")
        .secret_string("old-password")
        .send()
        .await
        .unwrap();
    let old_version = created.version_id().unwrap().to_string();
    let h = Hearth::start(&with(
        moto.env(),
        &[
            ("HEARTH_SECRETS_SOFT_TTL", "500ms"),
            ("HEARTH_SECRETS_HARD_TTL", "10s"),
            ("HEARTH_SECRETS_JITTER_PERCENT", "0"),
        ],
    ))
    .await;
    // moto may keep answering the old version to a read without a stage after a stage
    // move (TESTING.md), so the reads name AWSCURRENT as rotation-aware code would.
    let path = "/secretsmanager/get?secretId=rot&versionStage=AWSCURRENT";
    assert_eq!(h.get(path).await.1["SecretString"], "old-password");

    // Rotate as a rotation Lambda does: AWSPENDING, then move AWSCURRENT.
    let pending = sm
        .put_secret_value()
        .secret_id("rot")
        .secret_string("new-password")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let new_version = pending.version_id().unwrap().to_string();
    sm.update_secret_version_stage()
        .secret_id("rot")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&new_version)
        .remove_from_version_id(&old_version)
        .send()
        .await
        .unwrap();
    // The pending version is readable by stage at once (no stale cache entry for it).
    let t0 = Instant::now();
    let mut seen = String::new();
    while t0.elapsed() < Duration::from_secs(3) {
        seen = h.get(path).await.1["SecretString"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if seen == "new-password" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, "new-password");
    // Within the soft TTL (plus one refresh round trip), not the hard TTL.
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    let out = h.proc.output();
    assert!(
        !out.contains("old-password") && !out.contains("new-password"),
        "secret in log:\n{out}"
    );
}

/// Every operation in `openapi.json` is served by the real binary, and whatever it answers
/// (an empty body gets a validation error here) is JSON: the document and the server agree.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let text =
        std::fs::read_to_string(hearth_tests::workspace_root().join("openapi.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let h = Hearth::start(&env(&[("AWS_REGION", "us-east-1")])).await;
    let mut seen = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let (status, body) = match method.as_str() {
                "get" => h.get(path).await,
                "post" => h.post(path, &json!({})).await,
                other => panic!("unexpected method {other}"),
            };
            assert!(
                !(status == 404 && code(&body) == "NotFound") && status != 405,
                "{method} {path} is documented but not served: {status} {body}"
            );
            if status >= 400 {
                assert!(
                    body["error"]["code"].is_string(),
                    "{method} {path}: {status} {body}"
                );
                let documented = &ops[method]["responses"][status.to_string()];
                assert!(
                    !documented.is_null(),
                    "{method} {path} answered {status}, which openapi.json does not list"
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 10);
}
