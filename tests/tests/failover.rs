//! Regional failover end to end: the real `hearth` binary, two moto servers standing for
//! two regions (us-east-1 the primary, eu-west-1 the fallback; separate processes, so one
//! can fail while the other serves), and a switchable TCP relay in front of each that the
//! test turns into the fault: a silent primary (accepts, never answers), a refusing one
//! (accepts and drops), or a healthy one (relays to its moto). A closed port stands for an
//! unreachable region.
//!
//! Timings asserted here are Hearth's own budgets (`HEARTH_FAILOVER_BUDGET` 2 s by default,
//! so the first request of an outage must finish within ~3 s; asserted < 4 s), never moto's
//! speed beyond "well under 500 ms per call". Every wait is bounded.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hearth_tests::hearth::Hearth;
use hearth_tests::moto::Moto;
use hearth_tests::{free_port, workspace_root};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

const PRIMARY: &str = "us-east-1";
const FALLBACK: &str = "eu-west-1";
/// Bound on any single HTTP request to Hearth in these tests.
const REQUEST_BOUND: Duration = Duration::from_secs(15);

/// What a [`Relay`] does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Relay to the moto behind it.
    Forward = 0,
    /// Accept and hold the socket, never answering (a region that has gone silent).
    Hold = 1,
    /// Accept and drop at once (a region whose load balancer resets connections).
    Refuse = 2,
}

/// A loopback TCP relay in front of one moto, switchable between the modes above. Counts
/// the connections it accepts, so a test can prove a region was not touched.
struct Relay {
    port: u16,
    mode: Arc<AtomicU8>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16, mode: Mode) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let task = tokio::spawn({
            let (mode, accepted) = (mode.clone(), accepted.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    match mode.load(Ordering::SeqCst) {
                        0 => {
                            tokio::spawn(async move {
                                if let Ok(mut out) = TcpStream::connect(("127.0.0.1", target)).await
                                {
                                    let _ = tokio::time::timeout(
                                        Duration::from_secs(30),
                                        tokio::io::copy_bidirectional(&mut inbound, &mut out),
                                    )
                                    .await;
                                }
                            });
                        }
                        1 => held.lock().unwrap().push(inbound),
                        _ => drop(inbound),
                    }
                }
            }
        });
        Relay {
            port,
            mode,
            accepted,
            task,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two motos, started in parallel (each takes a second or two).
async fn two_regions() -> (Moto, Moto) {
    let a = tokio::task::spawn_blocking(Moto::start);
    let b = tokio::task::spawn_blocking(Moto::start);
    (a.await.unwrap(), b.await.unwrap())
}

fn port_of(m: &Moto) -> u16 {
    m.endpoint().rsplit(':').next().unwrap().parse().unwrap()
}

/// The test's own SDK configuration for one region of one moto.
async fn sdk(moto: &Moto, region: &'static str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "failover-test",
        ))
        .load()
        .await
}

/// Credentials and the primary region for Hearth; endpoints come from HEARTH_AWS_ENDPOINTS.
fn hearth_env(endpoints: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", PRIMARY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("HEARTH_METRICS_EMF", "false"),
        ("HEARTH_LOG_LEVEL", "debug"),
        ("HEARTH_AWS_ENDPOINTS", endpoints),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.sort();
    env
}

/// GET a secret, bypassing Hearth's cache so every request reaches AWS; returns status,
/// body and how long it took. Bounded.
async fn secret(h: &Hearth, id: &str) -> (u16, Value, Duration) {
    let t = Instant::now();
    let path = format!("/secretsmanager/get?secretId={id}&refreshNow=true");
    let (status, body) = tokio::time::timeout(REQUEST_BOUND, h.get(&path))
        .await
        .unwrap_or_else(|_| panic!("GET {path} hung"));
    (status, body, t.elapsed())
}

async fn post(h: &Hearth, path: &str, body: &Value) -> (u16, Value, Duration) {
    let t = Instant::now();
    let (status, body) = tokio::time::timeout(REQUEST_BOUND, h.post(path, body))
        .await
        .unwrap_or_else(|_| panic!("POST {path} hung"));
    (status, body, t.elapsed())
}

fn value_of(body: &Value) -> &str {
    body["SecretString"].as_str().unwrap_or_default()
}

async fn create_secret(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// A silent primary: the first request fails over within the budget, the next ones go
/// straight to the fallback without touching the primary, and after the cool-down one
/// probe finds the primary healthy again and traffic returns to it. A 4xx answer from a
/// healthy primary is an answer, not a failover.
#[tokio::test]
async fn silent_primary_fails_over_then_recovers_after_the_cooldown() {
    let (a, b) = two_regions().await;
    let primary = aws_sdk_secretsmanager::Client::new(&sdk(&a, PRIMARY).await);
    let replica = aws_sdk_secretsmanager::Client::new(&sdk(&b, FALLBACK).await);
    // Replicas carry the same value in AWS; different values here show which region served.
    create_secret(&primary, "app/config", "value-from-primary").await;
    create_secret(&replica, "app/config", "value-from-replica").await;
    create_secret(&replica, "only/in-fallback", "never-served").await;

    let relay = Relay::start(port_of(&a), Mode::Forward).await;
    let endpoints = format!("{PRIMARY}={},{FALLBACK}={}", relay.endpoint(), b.endpoint());
    let h = Hearth::start(&hearth_env(
        &endpoints,
        &[
            ("HEARTH_SECRETS_FALLBACK_REGION", FALLBACK),
            ("HEARTH_FAILOVER_COOLDOWN", "2s"),
        ],
    ))
    .await;

    // Healthy primary: served there. A secret missing in the primary is a 404 from the
    // primary (a real answer), even though the fallback region has one.
    let (status, body, _) = secret(&h, "app/config").await;
    assert_eq!(
        (status, value_of(&body)),
        (200, "value-from-primary"),
        "{body}"
    );
    let (status, body, _) = secret(&h, "only/in-fallback").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(h.counter("aws.failovers").await, 0);
    assert_eq!(h.counter("aws.secrets.fallback_calls").await, 0);

    // The primary goes silent. Several requests arrive at once: each waits on the primary
    // at most the budget, then the fallback answers; none is lost or hangs.
    relay.set(Mode::Hold);
    let burst: Vec<_> = futures::future::join_all((0..4).map(|_| secret(&h, "app/config"))).await;
    let opened_at = Instant::now();
    for (status, body, took) in &burst {
        assert_eq!(
            (*status, value_of(body)),
            (200, "value-from-replica"),
            "{body}"
        );
        assert!(
            *took < Duration::from_secs(4),
            "first requests took {took:?}"
        );
    }
    let first = burst.iter().map(|r| r.2).max().unwrap();
    eprintln!("silent primary: first requests served by the fallback in {first:?}");
    assert!(
        first >= Duration::from_millis(1500),
        "the budget was not waited: {first:?}"
    );

    // Breaker open: straight to the fallback, no new connection to the primary.
    let touched = relay.accepted();
    for _ in 0..5 {
        let (status, body, took) = secret(&h, "app/config").await;
        assert_eq!(
            (status, value_of(&body)),
            (200, "value-from-replica"),
            "{body}"
        );
        assert!(
            took < Duration::from_millis(500),
            "open breaker still waited: {took:?}"
        );
    }
    assert_eq!(
        relay.accepted(),
        touched,
        "the primary was contacted while open"
    );
    assert_eq!(h.counter("aws.breaker_opened").await, 1);
    assert!(h.counter("aws.failovers").await >= 1);

    // The primary recovers; after the cool-down one call probes it and closes the breaker.
    relay.set(Mode::Forward);
    let wait = Duration::from_millis(2300).saturating_sub(opened_at.elapsed());
    tokio::time::sleep(wait).await;
    let (status, body, took) = secret(&h, "app/config").await;
    assert_eq!(
        (status, value_of(&body)),
        (200, "value-from-primary"),
        "{body}"
    );
    assert!(took < Duration::from_millis(500), "probe took {took:?}");
    let (status, body, _) = secret(&h, "app/config").await;
    assert_eq!(
        (status, value_of(&body)),
        (200, "value-from-primary"),
        "{body}"
    );
    assert!(relay.accepted() >= touched + 2);
    assert_eq!(h.counter("aws.breaker_probes").await, 1);
    assert_eq!(h.counter("aws.breaker_closed").await, 1);

    // Each transition logged once; no secret value in any log line.
    let out = h.proc.output();
    assert_eq!(out.matches("circuit breaker opened").count(), 1, "{out}");
    assert_eq!(out.matches("circuit breaker closed").count(), 1, "{out}");
    for value in ["value-from-primary", "value-from-replica"] {
        assert!(!out.contains(value), "log leaks a secret value:\n{out}");
    }
}

/// An unreachable primary (nothing listens on its port; a full ARN naming the primary is
/// rewritten to the fallback region): failover is immediate, and later calls skip it.
#[tokio::test]
async fn unreachable_primary_fails_over_at_once() {
    let b = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let replica = aws_sdk_secretsmanager::Client::new(&sdk(&b, FALLBACK).await);
    create_secret(&replica, "app/config", "value-from-replica").await;
    let arn = replica
        .describe_secret()
        .secret_id("app/config")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    // The ARN a function configured for its own region would use.
    let primary_arn = arn.replace(FALLBACK, PRIMARY);

    let closed = free_port();
    let endpoints = format!(
        "{PRIMARY}=http://127.0.0.1:{closed},{FALLBACK}={}",
        b.endpoint()
    );
    let h = Hearth::start(&hearth_env(
        &endpoints,
        &[("HEARTH_FALLBACK_REGION", FALLBACK)],
    ))
    .await;

    let (status, body, took) = secret(&h, &primary_arn).await;
    assert_eq!(
        (status, value_of(&body)),
        (200, "value-from-replica"),
        "{body}"
    );
    assert_eq!(body["ARN"], arn.as_str());
    assert!(took < Duration::from_secs(4), "first request took {took:?}");
    eprintln!("unreachable primary: first request served by the fallback in {took:?}");
    let primary_calls = h.counter("aws.secrets.primary_calls").await;
    assert_eq!(primary_calls, 1);
    for _ in 0..5 {
        let (status, body, took) = secret(&h, "app/config").await;
        assert_eq!(
            (status, value_of(&body)),
            (200, "value-from-replica"),
            "{body}"
        );
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
    assert_eq!(h.counter("aws.secrets.primary_calls").await, primary_calls);
    assert_eq!(h.counter("aws.secrets.fallback_calls").await, 6);
}

/// A KMS key created in one moto for one region.
async fn create_key(moto: &Moto, region: &'static str) -> String {
    hearth_tests::moto::create_key_with(&aws_sdk_kms::Client::new(&sdk(moto, region).await)).await
}

/// The key ARNs a message's encrypted data keys name, in header order.
fn edk_arns(message: &[u8]) -> Vec<String> {
    hearth_esdk::parse_header(message)
        .unwrap()
        .encrypted_data_keys()
        .iter()
        .map(|e| String::from_utf8(e.provider_info.clone()).unwrap())
        .collect()
}

/// Decrypts with the official Python ESDK (tests/python/esdk_interop.py), talking to the
/// given moto as the given region, with only `key_arn` allowed.
fn python_decrypt(moto: &Moto, region: &str, key_arn: &str, message: &[u8]) -> Vec<u8> {
    let root = workspace_root();
    let script: PathBuf = root.join("tests/python/esdk_interop.py");
    let mut child = Command::new(root.join(".venv/bin/python"))
        .arg(script)
        .args(["decrypt", key_arn])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(moto.env())
        .env("AWS_REGION", region)
        .env("AWS_DEFAULT_REGION", region)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let request = json!({"ciphertext": B64.encode(message), "context": null});
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python ESDK: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    B64.decode(v["plaintext"].as_str().unwrap()).unwrap()
}

async fn prewarmed(h: &Hearth) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if h.get("/health").await.1["prewarmed"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("prewarm did not finish");
}

/// Messages carry the data key under both regions' keys; they decrypt with either region
/// down, through Hearth and through the official Python ESDK; the fallback copy costs one
/// KMS Encrypt per data key, not per message; and encryption keeps working with the primary
/// down (the message then carries the fallback's copy only).
#[tokio::test]
async fn two_region_messages_decrypt_with_either_region_down() {
    let (a, b) = two_regions().await;
    let key_a = create_key(&a, PRIMARY).await;
    let key_b = create_key(&b, FALLBACK).await;
    let relay_a = Relay::start(port_of(&a), Mode::Forward).await;
    let relay_b = Relay::start(port_of(&b), Mode::Forward).await;
    let endpoints = format!(
        "{PRIMARY}={},{FALLBACK}={}",
        relay_a.endpoint(),
        relay_b.endpoint()
    );
    let settings = [
        ("HEARTH_KMS_KEY_ID", key_a.as_str()),
        ("HEARTH_FALLBACK_REGION", FALLBACK),
        ("HEARTH_KMS_FALLBACK_KEY_ID", key_b.as_str()),
        ("HEARTH_FAILOVER_COOLDOWN", "1s"),
    ];
    let h = Hearth::start(&hearth_env(&endpoints, &settings)).await;
    prewarmed(&h).await;
    let generated = h.counter("kms.generate_data_key_calls").await;
    let encrypted = h.counter("kms.encrypt_calls").await;

    let ctx = json!({"purpose": "failover-test"});
    let mut messages = Vec::new();
    for i in 0..5 {
        let plaintext = format!("message {i}");
        let (status, body, _) = post(
            &h,
            "/v1/kms/encrypt",
            &json!({"plaintext": B64.encode(&plaintext), "context": ctx}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let message = B64.decode(body["ciphertext"].as_str().unwrap()).unwrap();
        assert_eq!(edk_arns(&message), [key_a.clone(), key_b.clone()]);
        messages.push((plaintext, message));
    }
    // One data key for the five messages: one GenerateDataKey, one Encrypt of it.
    assert_eq!(
        h.counter("kms.generate_data_key_calls").await,
        generated + 1
    );
    assert_eq!(h.counter("kms.encrypt_calls").await, encrypted + 1);

    // A second Hearth without the data-key caches, so every decrypt reaches KMS.
    let mut no_cache = settings.to_vec();
    no_cache.push(("HEARTH_KMS_CACHE", "false"));
    let d = Hearth::start(&hearth_env(&endpoints, &no_cache)).await;
    let decrypt = |i: usize| {
        let (plaintext, message) = &messages[i];
        let (d, ctx) = (&d, &ctx);
        async move {
            let (status, body, took) = post(
                d,
                "/v1/kms/decrypt",
                &json!({"ciphertext": B64.encode(message), "context": ctx}),
            )
            .await;
            assert_eq!(status, 200, "message {i}: {body}");
            let got = B64.decode(body["plaintext"].as_str().unwrap()).unwrap();
            assert_eq!(got, plaintext.as_bytes(), "message {i}");
            took
        }
    };

    decrypt(0).await;
    // Primary region down: the fallback copy opens the message; then the open breaker
    // puts the fallback copy first, and the primary is not contacted.
    relay_a.set(Mode::Refuse);
    let took = decrypt(1).await;
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(d.counter("aws.failovers").await, 1);
    let touched = relay_a.accepted();
    let took = decrypt(2).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(relay_a.accepted(), touched);
    // Fallback region down instead: the primary copy opens the message.
    relay_a.set(Mode::Forward);
    relay_b.set(Mode::Refuse);
    decrypt(3).await;
    relay_b.set(Mode::Forward);

    // The official ESDK reads the same message with either region's key alone.
    let (plaintext, message) = &messages[4];
    assert_eq!(
        python_decrypt(&b, FALLBACK, &key_b, message),
        plaintext.as_bytes()
    );
    assert_eq!(
        python_decrypt(&a, PRIMARY, &key_a, message),
        plaintext.as_bytes()
    );

    // Encrypting while the primary is down: the data key comes from the fallback region.
    relay_a.set(Mode::Refuse);
    let (status, body, took) = post(
        &d,
        "/v1/kms/encrypt",
        &json!({"plaintext": B64.encode("written during the outage"), "context": ctx}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let message = B64.decode(body["ciphertext"].as_str().unwrap()).unwrap();
    assert_eq!(edk_arns(&message), std::slice::from_ref(&key_b));
    assert_eq!(
        python_decrypt(&b, FALLBACK, &key_b, &message),
        b"written during the outage"
    );
}

/// Stale-if-error survives failover. The primary goes silent and the fallback region has
/// neither the secret nor the parameter (not replicated): the fallback's NotFound must not
/// decide staleness, the primary's outage does, so cached values keep being served past
/// their hard TTL within the stale window. A value never cached gets 503 (the primary is
/// down), not a 404 from a region that never had it.
#[tokio::test]
async fn stale_values_survive_a_fallback_that_lacks_them() {
    let (a, b) = two_regions().await;
    let primary = aws_sdk_secretsmanager::Client::new(&sdk(&a, PRIMARY).await);
    create_secret(&primary, "app/stale", "value-from-primary").await;
    create_secret(&primary, "app/never-read", "x").await;
    aws_sdk_ssm::Client::new(&sdk(&a, PRIMARY).await)
        .put_parameter()
        .name("/app/stale")
        .value("param-from-primary")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();

    let relay = Relay::start(port_of(&a), Mode::Forward).await;
    let endpoints = format!("{PRIMARY}={},{FALLBACK}={}", relay.endpoint(), b.endpoint());
    let h = Hearth::start(&hearth_env(
        &endpoints,
        &[
            ("HEARTH_FALLBACK_REGION", FALLBACK),
            ("HEARTH_FAILOVER_BUDGET", "500ms"),
            ("HEARTH_SECRETS_HARD_TTL", "1s"),
            ("HEARTH_SECRETS_STALE_IF_ERROR", "60s"),
            ("HEARTH_PARAMETERS_HARD_TTL", "1s"),
            ("HEARTH_PARAMETERS_STALE_IF_ERROR", "60s"),
        ],
    ))
    .await;
    let read_secret = || h.get("/secretsmanager/get?secretId=app/stale");
    let read_param = || h.get("/systemsmanager/parameters/get?name=%2Fapp%2Fstale");
    assert_eq!(value_of(&read_secret().await.1), "value-from-primary");
    assert_eq!(
        read_param().await.1["Parameter"]["Value"],
        "param-from-primary"
    );

    relay.set(Mode::Hold);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Past the hard TTL, primary silent, fallback answering NotFound: served stale, on the
    // failing-over call and on the calls the open breaker sends straight to the fallback.
    for _ in 0..3 {
        let (status, body) = tokio::time::timeout(REQUEST_BOUND, read_secret())
            .await
            .unwrap();
        assert_eq!(
            (status, value_of(&body)),
            (200, "value-from-primary"),
            "{body}"
        );
        let (status, body) = tokio::time::timeout(REQUEST_BOUND, read_param())
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["Parameter"]["Value"], "param-from-primary");
    }
    assert!(h.counter("secrets.stale_serves").await >= 3);
    assert!(h.counter("parameters.stale_serves").await >= 3);
    // The fallback was really asked (and had nothing).
    assert!(h.counter("aws.secrets.fallback_calls").await >= 3);
    assert!(h.counter("aws.ssm.fallback_calls").await >= 3);
    assert!(h.counter("aws.secrets.fallback_errors").await >= 3);

    let (status, body) = h.get("/secretsmanager/get?secretId=app/never-read").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UpstreamUnavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fallback region answered SecretNotFound"),
        "{body}"
    );
    let out = h.proc.output();
    assert!(!out.contains("value-from-primary") && !out.contains("param-from-primary"));
}

/// A loopback HTTP peer in front of one moto: it relays (moto answers GetSecretValue), or,
/// once switched, answers every call as Secrets Manager does when the secret's KMS key is
/// disabled or its policy revoked: HTTP 400 with the AWS JSON error
/// `{"__type":"DecryptionFailure",...}`. moto cannot produce DecryptionFailure (its disabled
/// keys keep working, see TESTING.md), so this one answer is written by the test; the SDK
/// parses it as it parses AWS's.
struct DecryptionFailurePeer {
    port: u16,
    revoked: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl DecryptionFailurePeer {
    async fn start(target: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let revoked = Arc::new(AtomicU8::new(0));
        let task = tokio::spawn({
            let revoked = revoked.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let revoked = revoked.load(Ordering::SeqCst) == 1;
                    tokio::spawn(async move {
                        if !revoked {
                            if let Ok(mut out) = TcpStream::connect(("127.0.0.1", target)).await {
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(30),
                                    tokio::io::copy_bidirectional(&mut inbound, &mut out),
                                )
                                .await;
                            }
                            return;
                        }
                        // Read the request head and its body, then answer.
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        let read = async {
                            loop {
                                let n = inbound.read(&mut chunk).await.unwrap_or(0);
                                if n == 0 {
                                    return;
                                }
                                buf.extend_from_slice(&chunk[..n]);
                                let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                                if let Some(end) = text.find("\r\n\r\n") {
                                    let len = text[..end]
                                        .lines()
                                        .find_map(|l| l.strip_prefix("content-length:"))
                                        .and_then(|v| v.trim().parse::<usize>().ok())
                                        .unwrap_or(0);
                                    if buf.len() >= end + 4 + len {
                                        return;
                                    }
                                }
                            }
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
                        let body = r#"{"__type":"DecryptionFailure","Message":"Secrets Manager can't decrypt the protected secret text using the provided KMS key."}"#;
                        let resp = format!(
                            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: 0f3e6b0a-0000-4000-8000-000000000000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = inbound.write_all(resp.as_bytes()).await;
                        let _ = inbound.shutdown().await;
                    });
                }
            }
        });
        Self {
            port,
            revoked,
            task,
        }
    }

    fn revoke(&self) {
        self.revoked.store(1, Ordering::SeqCst);
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DecryptionFailurePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Access revocation is not an outage: once Secrets Manager answers DecryptionFailure the
/// cached value stops being served (dropped by the background refresh, counted, logged
/// once), within its hard TTL and whatever the stale window, and no failover is tried
/// although the fallback region has a replica.
#[tokio::test]
async fn decryption_failure_stops_serving_and_does_not_fail_over() {
    let (a, b) = two_regions().await;
    create_secret(
        &aws_sdk_secretsmanager::Client::new(&sdk(&a, PRIMARY).await),
        "app/revoked",
        "value-from-primary",
    )
    .await;
    create_secret(
        &aws_sdk_secretsmanager::Client::new(&sdk(&b, FALLBACK).await),
        "app/revoked",
        "value-from-replica",
    )
    .await;
    let peer = DecryptionFailurePeer::start(port_of(&a)).await;
    let endpoints = format!("{PRIMARY}={},{FALLBACK}={}", peer.endpoint(), b.endpoint());
    let h = Hearth::start(&hearth_env(
        &endpoints,
        &[
            ("HEARTH_SECRETS_FALLBACK_REGION", FALLBACK),
            ("HEARTH_SECRETS_SOFT_TTL", "200ms"),
            ("HEARTH_SECRETS_HARD_TTL", "60s"),
            ("HEARTH_SECRETS_STALE_IF_ERROR", "1h"),
            ("HEARTH_SECRETS_JITTER_PERCENT", "0"),
        ],
    ))
    .await;
    let read = || h.get("/secretsmanager/get?secretId=app/revoked");
    assert_eq!(value_of(&read().await.1), "value-from-primary");

    peer.revoke();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past the soft TTL: still served once, while the refresh behind it meets the answer.
    assert_eq!(value_of(&read().await.1), "value-from-primary");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.counter("secrets.revoked").await == 0 {
        assert!(Instant::now() < deadline, "the value was never revoked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let (status, body) = read().await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "DecryptionFailure", "{body}");
    }
    assert_eq!(h.counter("secrets.revoked").await, 1);
    assert_eq!(h.counter("secrets.stale_serves").await, 0);
    assert_eq!(h.counter("aws.secrets.fallback_calls").await, 0);
    assert_eq!(h.counter("aws.failovers").await, 0);
    let out = h.proc.output();
    assert_eq!(out.matches("no longer served").count(), 1, "{out}");
    assert!(!out.contains("value-from-primary"));
}
