//! Lifecycle of the real `hearth` binary under the Lambda simulator: registration order,
//! INVOKE overhead, freeze/thaw, SHUTDOWN, and bad configuration.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use hearth_tests::hearth::{Proc, SimEnv, TOKEN};
use hearth_tests::moto::Moto;
use hearth_tests::{free_port, target_bin};
use lambda_simulator::ShutdownReason;
use serde_json::{json, Value};

/// The tests in this file measure timings of real processes; running them one at a time
/// keeps one test's processes from slowing another's on a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn probe_function() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_probe-function"))
}

/// Lambda starts the runtime only after extensions register; the extension binds before it
/// registers, so the function's very first line already finds `/health` answering. (What an
/// INVOKE costs is a benchmark figure, `scripts/bench.sh`'s "per-invoke overhead", not a
/// timed assertion here: on a loaded 2-core machine a timing test fails for the machine's
/// reasons.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_up_before_the_function_starts() {
    let _serial = SERIAL.lock().await;
    let mut env = SimEnv::start(&[], false).await;
    env.start_function(&probe_function(), &[]);
    for i in 0..3 {
        let (_, out) = env.invoke(json!({"n": i})).await;
        assert_eq!(
            out["healthAtStart"], true,
            "function saw no /health at its first line: {out}"
        );
    }
    let exts = env.sim.get_registered_extensions().await;
    assert_eq!(exts.len(), 1);
    assert_eq!(
        exts[0].name, "hearth",
        "registered name must equal the executable's file name"
    );
}

/// The simulator SIGSTOPs the whole environment between invokes. The extension must come
/// back serving, and a secret cached before the freeze must be served after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_freeze_and_thaw() {
    let _serial = SERIAL.lock().await;
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("frozen")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    let mut env = SimEnv::start(&moto.env(), true).await;
    env.start_function(&probe_function(), &moto.env());
    for _ in 0..3 {
        let (_, out) = env.invoke(json!({"secretId": "frozen"})).await;
        assert_eq!(out["status"], 200, "{out}");
        assert_eq!(out["secret"]["SecretString"], "v1");
        env.wait_frozen(Duration::from_secs(5)).await;
        assert!(env.sim.is_frozen());
        // Frozen for real: the extension cannot answer until the next invoke thaws it.
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .get(format!("http://127.0.0.1:{}/health", env.port))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(r.is_err(), "a frozen extension answered: {r:?}");
    }
    let (_, out) = env.invoke(json!({"secretId": "frozen"})).await;
    assert_eq!(out["secret"]["SecretString"], "v1");
}

/// Timers do not run while Lambda freezes the environment. After a freeze past the soft
/// TTL, the next invocation's read is answered from the cache at once, and the INVOKE event
/// (not a timer) starts the refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_past_the_soft_ttl_serves_at_once_and_refreshes() {
    let _serial = SERIAL.lock().await;
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("cfg")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    let mut extra = moto.env();
    extra.extend([
        ("HEARTH_SECRETS_SOFT_TTL".to_string(), "500ms".to_string()),
        ("HEARTH_SECRETS_HARD_TTL".to_string(), "60s".to_string()),
        ("HEARTH_SECRETS_JITTER_PERCENT".to_string(), "0".to_string()),
    ]);
    let mut env = SimEnv::start(&extra, true).await;
    env.start_function(&probe_function(), &[]);
    let (_, out) = env
        .invoke(json!({"secretId": "cfg", "metrics": true}))
        .await;
    assert_eq!(out["secret"]["SecretString"], "v1");
    env.wait_frozen(Duration::from_secs(5)).await;
    sm.put_secret_value()
        .secret_id("cfg")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    // Frozen for longer than the soft TTL.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (_, out) = env
        .invoke(json!({"secretId": "cfg", "metrics": true}))
        .await;
    assert_eq!(out["status"], 200);
    let counters = &out["metrics"]["counters"];
    assert_eq!(
        out["secret"]["SecretString"], "v1",
        "served from the cache at once: {out}"
    );
    assert_eq!(
        counters["secrets.misses"], 1,
        "the read after the thaw did not wait: {out}"
    );
    // The INVOKE event started the refresh. (A refresh still in flight when the function
    // returns is frozen with it and may fail after the thaw; the next INVOKE retries it.)
    assert!(
        counters["secrets.refreshes"].as_u64().unwrap_or(0) >= 1,
        "{out}"
    );
    // The refreshed value is there for a later invocation.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut value = Value::Null;
    while Instant::now() < deadline {
        let (_, out) = env.invoke(json!({"secretId": "cfg"})).await;
        value = out["secret"]["SecretString"].clone();
        if value == "v2" {
            break;
        }
    }
    assert_eq!(value, "v2");
}

/// SHUTDOWN leads to a clean exit, well inside Lambda's 2,000 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_exits_cleanly_within_budget() {
    let _serial = SERIAL.lock().await;
    let mut env = SimEnv::start(&[], false).await;
    env.start_function(&probe_function(), &[]);
    env.invoke(json!({})).await;
    let SimEnv {
        sim,
        mut extension,
        function,
        ..
    } = env;
    let t0 = Instant::now();
    sim.graceful_shutdown(ShutdownReason::Spindown).await;
    let status = extension.wait_exit(Duration::from_millis(2000)).await;
    let elapsed = t0.elapsed();
    drop(function);
    let status =
        status.unwrap_or_else(|| panic!("no exit within 2 s; output:\n{}", extension.output()));
    assert!(
        status.success(),
        "exit status {status:?}; output:\n{}",
        extension.output()
    );
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    let out = extension.output();
    assert!(out.contains("shutdown complete"), "{out}");
    assert!(
        out.contains("SPINDOWN") || out.contains("spindown"),
        "reason is logged: {out}"
    );
}

/// A misconfigured extension logs one clear line naming the variable and exits non-zero
/// instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_an_init_error_not_a_hang() {
    let _serial = SERIAL.lock().await;
    let sim = lambda_simulator::Simulator::builder()
        .build()
        .await
        .unwrap();
    let mut env: Vec<(String, String)> = sim.lambda_env_vars().into_iter().collect();
    env.push(("AWS_SESSION_TOKEN".into(), TOKEN.into()));
    env.push(("HEARTH_PORT".into(), "not-a-port".into()));
    env.push(("HEARTH_LOG_FORMAT".into(), "text".into()));
    let mut p = Proc::spawn(&target_bin("hearth"), &env);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("must exit, not hang");
    assert!(!status.success());
    let out = p.output();
    let line = out
        .lines()
        .find(|l| l.contains("HEARTH_PORT"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("1 to 65535"),
        "the accepted values are named: {line}"
    );
    // It registered so that it could report the init error.
    assert_eq!(sim.extension_count().await, 1);
}

/// The simulator has no `/extension/init/error` route, so this test stands up a minimal
/// Extensions API that records what the extension sends there: the one part of the
/// protocol the simulator cannot show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_reported_to_the_init_error_endpoint() {
    let _serial = SERIAL.lock().await;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use std::sync::{Arc, Mutex};

    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/2020-01-01/extension/register",
            post(|| async {
                (
                    [("Lambda-Extension-Identifier", "ext-1")],
                    axum::Json(
                        json!({"functionName": "f", "functionVersion": "$LATEST", "handler": "h"}),
                    ),
                )
            }),
        )
        .route(
            "/2020-01-01/extension/init/error",
            post({
                let seen = seen.clone();
                move |headers: HeaderMap, body: String| async move {
                    let kind = headers
                        .get("Lambda-Extension-Function-Error-Type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push((kind, body));
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = vec![
        ("AWS_LAMBDA_RUNTIME_API".to_string(), api.to_string()),
        ("AWS_SESSION_TOKEN".to_string(), TOKEN.to_string()),
        ("HEARTH_SECRETS_HARD_TTL".to_string(), "soon".to_string()),
        ("HEARTH_PORT".to_string(), free_port().to_string()),
    ];
    let mut p = Proc::spawn(&target_bin("hearth"), &env);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("must exit");
    assert!(!status.success());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "one init error report; output:\n{}",
        p.output()
    );
    assert_eq!(seen[0].0, "Extension.ConfigError");
    let body: serde_json::Value = serde_json::from_str(&seen[0].1).unwrap();
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("HEARTH_SECRETS_HARD_TTL"),
        "{body}"
    );
}
