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

    // A request head over the limit is refused in JSON, and the server lives on.
    let r = h
        .http
        .get(h.url("/health"))
        .header("x-big", "a".repeat(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(code(&r.json().await.unwrap()), "HeaderTooLarge");
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

/// One HTTP/1.1 answer read off a raw socket: status, headers (lower-case), body.
async fn read_answer(
    s: &mut tokio::net::TcpStream,
) -> Option<(u16, Vec<(String, String)>, String)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((status, headers, String::from_utf8_lossy(&body).to_string()))
}

fn json_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    code(&v).to_string()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn http_edges_answer_at_once_in_json_and_keep_connections_usable() {
    use tokio::io::AsyncWriteExt;
    let h = Hearth::start(&env(&[
        ("HEARTH_MAX_HEADER_BYTES", "4096"),
        ("HEARTH_REQUEST_TIMEOUT", "700ms"),
    ]))
    .await;
    let connect = || async {
        tokio::net::TcpStream::connect(("127.0.0.1", h.port))
            .await
            .unwrap()
    };

    // A head announcing 8 MiB, and no body: 413 at once, not a wait for the body.
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let mut s = connect().await;
        let started = Instant::now();
        s.write_all(
            format!(
                "POST /v1/kms/encrypt HTTP/1.1\r\nhost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n\
                 content-type: application/json\r\ncontent-length: 8388608\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (status, headers, body) = read_answer(&mut s).await.expect("an answer");
        fastest = fastest.min(started.elapsed());
        assert_eq!(
            (status, json_code(&body).as_str()),
            (413, "PayloadTooLarge"),
            "{body}"
        );
        assert_eq!(header(&headers, "connection"), Some("close"));
    }
    assert!(fastest < Duration::from_millis(100), "413 took {fastest:?}");

    // A body that arrives too slowly is the client's fault: 408, not 504.
    let mut s = connect().await;
    s.write_all(
        format!(
            "POST /v1/kms/encrypt HTTP/1.1\r\nhost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: 20\r\n\r\n{{\"plain"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (status, _, body) = read_answer(&mut s).await.expect("an answer");
    assert_eq!(
        (status, json_code(&body).as_str()),
        (408, "ClientTimeout"),
        "{body}"
    );

    // Heads over the limit get a JSON 431: over the configured 4 KiB (the guard), and far
    // over hyper's read buffer (hyper's own answer, rewritten).
    for size in [6 * 1024, 64 * 1024] {
        let mut s = connect().await;
        let big = "a".repeat(size);
        s.write_all(format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, headers, body) = read_answer(&mut s).await.expect("an answer");
        assert_eq!(
            (status, json_code(&body).as_str()),
            (431, "HeaderTooLarge"),
            "{size}: {body}"
        );
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
    }

    // A malformed request line: hyper's 400, as JSON.
    let mut s = connect().await;
    s.write_all(b"GET /health HTTP/1.1 extra\r\n\r\n")
        .await
        .unwrap();
    let (status, _, body) = read_answer(&mut s).await.expect("an answer");
    assert_eq!(
        (status, json_code(&body).as_str()),
        (400, "MalformedRequest"),
        "{body}"
    );

    // One keep-alive connection: 20 refused requests with bodies (wrong method, unknown
    // path, chunked), then a valid one: every one is answered, in order.
    let mut s = connect().await;
    for i in 0..20 {
        let req = match i % 3 {
            0 => format!(
                "PUT /secretsmanager/get HTTP/1.1\r\nhost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n\
                 content-length: 300\r\n\r\n{}",
                "b".repeat(300)
            ),
            1 => format!(
                "POST /nowhere HTTP/1.1\r\nhost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n\
                 content-length: 5\r\n\r\nhello"
            ),
            _ => format!(
                "DELETE /v1/kms/encrypt HTTP/1.1\r\nhost: x\r\n{TOKEN_HEADER}: {TOKEN}\r\n\
                 transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ),
        };
        s.write_all(req.as_bytes()).await.unwrap();
        let (status, headers, body) = read_answer(&mut s)
            .await
            .unwrap_or_else(|| panic!("request {i} got no answer"));
        let want = if i % 3 == 1 {
            (404, "NotFound")
        } else {
            (405, "MethodNotAllowed")
        };
        assert_eq!(
            (status, json_code(&body).as_str()),
            want,
            "request {i}: {body}"
        );
        assert_ne!(header(&headers, "connection"), Some("close"), "request {i}");
    }
    s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, body) = read_answer(&mut s)
        .await
        .expect("the valid request's answer");
    assert_eq!(status, 200, "{body}");

    // A refused request whose body is left unread says the connection ends with it.
    let mut s = connect().await;
    s.write_all(b"POST /v1/kms/encrypt HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let (status, headers, body) = read_answer(&mut s).await.expect("an answer");
    assert_eq!(
        (status, json_code(&body).as_str()),
        (401, "MissingToken"),
        "{body}"
    );
    assert_eq!(header(&headers, "connection"), Some("close"));
}

#[tokio::test]
async fn aws_extension_variables_change_behaviour_as_documented() {
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("plain")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    // PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED=false: every read is a call.
    let h = Hearth::start(&with(
        moto.env(),
        &[("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false")],
    ))
    .await;
    for _ in 0..5 {
        let (status, body) = h.get("/secretsmanager/get?secretId=plain").await;
        assert_eq!(
            (status, &body["SecretString"]),
            (200, &json!("v")),
            "{body}"
        );
    }
    assert_eq!(h.counter("secrets.upstream_calls").await, 5);
    assert_eq!(h.counter("secrets.hits").await, 0);
    drop(h);
    // SECRETS_MANAGER_TTL=0 is caching off too; a positive TTL caches.
    for (ttl, calls) in [("0", 3), ("300", 1)] {
        let h = Hearth::start(&with(moto.env(), &[("SECRETS_MANAGER_TTL", ttl)])).await;
        for _ in 0..3 {
            assert_eq!(h.get("/secretsmanager/get?secretId=plain").await.0, 200);
        }
        assert_eq!(
            h.counter("secrets.upstream_calls").await,
            calls,
            "TTL {ttl}"
        );
    }

    // PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS bounds the calls in flight: against an
    // endpoint that accepts and never answers, 6 concurrent cold reads open 2 connections.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    let h = Hearth::start(&with(
        moto.env(),
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "2"),
            ("SECRETS_MANAGER_TIMEOUT_MILLIS", "1500"),
        ],
    ))
    .await;
    let paths: Vec<String> = (0..6)
        .map(|i| format!("/secretsmanager/get?secretId=s{i}"))
        .collect();
    let reads = futures::future::join_all(paths.iter().map(|p| h.get(p)));
    let seen = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    };
    let (results, seen) = tokio::join!(reads, seen);
    assert_eq!(seen, 2, "connections open while 6 reads were waiting");
    // SECRETS_MANAGER_TIMEOUT_MILLIS bounds each call: all six end in timeouts.
    for (status, body) in results {
        assert_eq!((status, code(&body)), (504, "UpstreamTimeout"), "{body}");
    }
    holder.abort();
}
