//! The example payments function end to end: the real `hearth-payments` binary and the real
//! `hearth` extension under lambda-simulator, with PostgreSQL (RLS, SCRAM) and moto (KMS,
//! Secrets Manager) behind them.
//!
//! Needs `cargo build -p hearth-extension -p hearth-payments` first (the rig finds the
//! binaries in the target directory).
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use base64::Engine as _;
use hearth_tests::hearth::SimEnv;
use hearth_tests::payments::{payments_bin, PaymentsStack, DB};
use serde_json::{json, Value};

const PAN: &str = "4111111111111111";
const PAN2: &str = "5555555555554444";

fn create(tenant: &str, pan: &str, amount: i64) -> Value {
    json!({"action": "create", "tenant": tenant, "amountCents": amount, "currency": "EUR",
           "card": {"pan": pan, "expiry": "12/29"}})
}

fn get(tenant: &str, id: &Value, reveal: bool) -> Value {
    json!({"action": "get", "tenant": tenant, "paymentId": id, "reveal": reveal})
}

/// The success body's `timings`: exactly the Hearth calls made (client-side microseconds, each
/// positive) plus `handler_us`, which covers them all.
fn assert_timings(out: &Value, calls: &[&str]) {
    let t = out["timings"]
        .as_object()
        .unwrap_or_else(|| panic!("no timings object: {out}"));
    let mut keys: Vec<&str> = t.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = calls.iter().copied().chain(["handler_us"]).collect();
    want.sort_unstable();
    assert_eq!(keys, want, "{out}");
    let us = |k: &str| t[k].as_u64().unwrap_or(0);
    for k in &want {
        assert!(
            us(k) > 0,
            "{k} is not a positive number of microseconds: {out}"
        );
    }
    let calls_total: u64 = calls.iter().map(|k| us(k)).sum();
    assert!(
        us("handler_us") >= calls_total,
        "handler_us is less than its calls: {out}"
    );
}

async fn metrics(port: u16) -> Value {
    hearth::Client::builder()
        .port(port)
        .token(hearth_tests::hearth::TOKEN)
        .build()
        .unwrap()
        .metrics()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_encrypted_isolated_per_tenant_and_read_back() {
    let stack = PaymentsStack::start("pw-initial-1").await;
    let mut env = SimEnv::start(&stack.env(), false).await;
    env.start_function(&payments_bin(), &stack.env());

    // Create, then read back decrypted.
    let (_, out) = env.invoke(create("t1", PAN, 1234)).await;
    let id = out["payment"]["paymentId"].clone();
    assert!(id.is_string(), "{out}");
    assert_eq!(out["payment"]["card"], json!({"last4": "1111"}), "{out}");
    assert!(!out.to_string().contains(PAN));
    assert_timings(&out, &["encrypt_us", "query_us"]);

    let (_, out) = env.invoke(get("t1", &id, true)).await;
    assert_timings(&out, &["query_us", "decrypt_us"]);
    let p = &out["payment"];
    assert_eq!(p["amountCents"], 1234, "{out}");
    assert_eq!(p["currency"], "EUR");
    assert_eq!(p["card"]["pan"], PAN);
    assert_eq!(p["card"]["expiry"], "12/29");
    let (_, out) = env.invoke(get("t1", &id, false)).await;
    assert_eq!(
        out["payment"]["card"]["masked"], "411111******1111",
        "{out}"
    );
    assert!(
        out["payment"]["card"].get("pan").is_none(),
        "masked unless asked"
    );

    // Another tenant cannot see it: not found, the same answer as an unknown id.
    let (_, out) = env.invoke(get("t2", &id, true)).await;
    assert_eq!(out["error"]["code"], "PaymentNotFound", "{out}");
    let unknown = json!("5b1c3f38-6d34-4f0b-9a43-3b2d4e7e9a10");
    let (_, out2) = env.invoke(get("t1", &unknown, true)).await;
    assert_eq!(out2["error"]["code"], "PaymentNotFound", "{out2}");
    assert!(
        out.get("timings").is_none(),
        "errors keep their shape: {out}"
    );

    // What is stored: ciphertext only, under the tenant's context, isolated by RLS.
    let admin = stack.pg.admin_on(DB).await;
    let row = admin
        .query_one(
            "SELECT tenant_id, card_last4, card_ciphertext FROM payments WHERE id = $1::text::uuid",
            &[&id.as_str().unwrap()],
        )
        .await
        .unwrap();
    let tenant: String = row.get(0);
    let ciphertext: Vec<u8> = row.get(2);
    assert_eq!(tenant, "t1");
    assert!(
        !ciphertext.windows(PAN.len()).any(|w| w == PAN.as_bytes()),
        "the PAN is stored in clear"
    );
    let header = hearth_esdk::parse_header(&ciphertext).unwrap();
    let context = format!("{header:?}");
    assert!(
        context.contains("t1") && context.contains("card"),
        "{context}"
    );

    // A ciphertext moved into another tenant's row does not decrypt there: the encryption
    // context binds it to t1 (the superuser bypasses RLS to plant it).
    let planted: String = admin
        .query_one(
            "INSERT INTO payments (tenant_id, amount_cents, currency, card_last4, card_ciphertext)
             VALUES ('t2', 1, 'EUR', '1111', $1) RETURNING id::text",
            &[&ciphertext],
        )
        .await
        .unwrap()
        .get(0);
    let (_, out) = env.invoke(get("t2", &json!(planted), true)).await;
    assert_eq!(out["error"]["code"], "DependencyError", "{out}");
    assert_eq!(out["error"]["cause"], "ContextMismatch", "{out}");

    // Bad requests: clear errors naming the field, never echoing card data.
    for (event, field) in [
        (json!({"action": "create", "tenant": "t1"}), "amountCents"),
        (create("t1", "4111111111111112", 5), "Luhn"),
        (create("", PAN, 5), "tenant"),
        (
            json!({"action": "get", "tenant": "t1", "paymentId": PAN}),
            "paymentId",
        ),
        (json!({"action": "pay"}), "action"),
        (json!([PAN]), "JSON object"),
    ] {
        let (_, out) = env.invoke(event.clone()).await;
        assert_eq!(out["error"]["code"], "InvalidRequest", "{event} → {out}");
        let msg = out["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{msg}");
        assert!(!msg.contains("4111"), "{msg}");
    }

    // Steady state: more payments for a tenant reuse its data key (no KMS call), and the
    // pool reuses its connections.
    let before = metrics(env.port).await;
    for i in 0..5 {
        let (_, out) = env.invoke(create("t1", PAN2, 100 + i)).await;
        assert!(out["payment"]["paymentId"].is_string(), "{out}");
    }
    let after = metrics(env.port).await;
    let delta = |name: &str| {
        after["counters"][name].as_u64().unwrap_or(0)
            - before["counters"][name].as_u64().unwrap_or(0)
    };
    assert_eq!(delta("kms.generate_data_key_calls"), 0, "{after}");
    assert!(delta("kms.calls_avoided") >= 5, "{after}");
    let created = after["counters"]["db.connections_created"]
        .as_u64()
        .unwrap();
    let reused = after["counters"]["db.connections_reused"].as_u64().unwrap();
    assert!(
        created <= 2 && reused >= 10,
        "created {created}, reused {reused}"
    );

    // A warm-up ping is answered by the warmer layer: the handler does not run (it would
    // answer InvalidRequest for an event without "action").
    let (_, out) = env
        .invoke(json!({"warmer": true, "concurrency": 1, "correlationId": "w-1"}))
        .await;
    assert_eq!(out["warmed"], true, "{out}");
    assert_eq!(out["coldStart"], false);
    assert_eq!(out["correlationId"], "w-1");
    assert_eq!(out["extensionWarmed"], true);

    // No card number and no database password in anything either process wrote.
    let logs = format!(
        "{}\n{}",
        env.extension.output(),
        env.function.as_ref().unwrap().output()
    );
    let b64_pan = base64::engine::general_purpose::STANDARD.encode(PAN);
    for secret in [PAN, PAN2, "pw-initial-1", &b64_pan] {
        assert!(
            !logs.contains(secret),
            "{secret} appears in the logs:\n{logs}"
        );
    }
    assert!(
        logs.contains("payment stored"),
        "the function logged: {logs}"
    );
}

/// The password rotates while the function runs (AWSPENDING, ALTER ROLE, AWSCURRENT moved)
/// and open connections are killed: the next request reconnects with the new password.
/// Connections idle for a moment are verified before use here (HEARTH_DB_VERIFY_IDLE_AFTER=0s):
/// with the default 5 s, a connection killed less than 5 s after its last use fails the next
/// request once with DbUnavailable (reported to the lead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_a_password_rotation() {
    let stack = PaymentsStack::start("pw-old-1").await;
    let mut all = stack.env();
    all.push(("HEARTH_DB_VERIFY_IDLE_AFTER".into(), "0s".into()));
    let mut env = SimEnv::start(&all, false).await;
    env.start_function(&payments_bin(), &all);
    let (_, out) = env.invoke(create("t1", PAN, 1)).await;
    assert!(out["payment"]["paymentId"].is_string(), "{out}");

    stack.rotate_password("pw-new-2").await;
    stack
        .pg
        .terminate_backends(hearth_tests::payments::ROLE)
        .await;

    let (_, out) = env.invoke(create("t1", PAN, 2)).await;
    let id = out["payment"]["paymentId"].clone();
    assert!(id.is_string(), "{out}");
    let (_, out) = env.invoke(get("t1", &id, false)).await;
    assert_eq!(out["payment"]["amountCents"], 2, "{out}");
    let m = metrics(env.port).await;
    assert!(
        m["counters"]["db.password_rotations"].as_u64().unwrap() >= 1,
        "{m}"
    );
    let logs = env.extension.output();
    assert!(
        !logs.contains("pw-new-2") && !logs.contains("pw-old-1"),
        "{logs}"
    );
}

/// The warmer function (`hearth-warmer`, a real binary under its own lambda-simulator) warms
/// `payments` with 3 parallel pings through a Lambda Invoke endpoint on loopback. That
/// endpoint is a stand-in for Lambda's router: it hands each invocation to a free
/// environment among 3 real ones (each the `hearth` extension plus the payments function
/// under lambda-simulator) and waits when all are busy, as Lambda would route to a busy
/// function's free environments. The warmer must count 3 distinct environments, whose ids
/// come from the real function processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmer_counts_distinct_environments() {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use hearth_tests::hearth::Proc;

    struct Router {
        envs: Vec<SimEnv>,
        free: Mutex<Vec<usize>>,
        permits: tokio::sync::Semaphore,
        invocations: Mutex<Vec<usize>>,
    }

    async fn invoke(
        State(r): State<Arc<Router>>,
        Path(name): Path<String>,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        if name != "payments" {
            return (
                StatusCode::NOT_FOUND,
                [("x-amzn-errortype", "ResourceNotFoundException")],
                axum::Json(
                    json!({"Type": "User", "Message": format!("Function not found: {name}")}),
                ),
            )
                .into_response();
        }
        let _permit = r.permits.acquire().await.unwrap();
        let i = r.free.lock().unwrap().pop().unwrap();
        r.invocations.lock().unwrap().push(i);
        let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (_, out) = r.envs[i].invoke(payload).await;
        r.free.lock().unwrap().push(i);
        axum::Json(out).into_response()
    }

    const K: usize = 3;
    let mut envs = Vec::new();
    for _ in 0..K {
        let mut env = SimEnv::start(&[], false).await;
        env.start_function(&payments_bin(), &[]);
        envs.push(env);
    }
    let router = Arc::new(Router {
        envs,
        free: Mutex::new((0..K).collect()),
        permits: tokio::sync::Semaphore::new(K),
        invocations: Mutex::default(),
    });
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(invoke),
        )
        .with_state(router.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lambda_api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sim = lambda_simulator::Simulator::builder()
        .function_name("hearth-warmer")
        .build()
        .await
        .unwrap();
    let mut env: Vec<(String, String)> = sim.lambda_env_vars().into_iter().collect();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", lambda_api.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("HEARTH_WARMER_TARGETS", "payments:3,missing:1"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    let warmer = Proc::spawn(&hearth_tests::target_bin("hearth-warmer"), &env);

    let scheduled = |id: &str| {
        json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
               "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
               "resources": ["arn:aws:events:us-east-1:123456789012:rule/hearth-warmer"], "detail": {}})
    };
    let mut rounds = Vec::new();
    for round in ["round-1", "round-2"] {
        let id = sim.enqueue_payload(scheduled(round)).await;
        let state = sim
            .wait_for_invocation_complete(&id, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\nwarmer output:\n{}", warmer.output()));
        rounds.push(state.response.map(|r| r.payload).unwrap_or(Value::Null));
    }

    for (i, out) in rounds.iter().enumerate() {
        let payments = &out["targets"][0];
        assert_eq!(payments["target"], "payments", "{out}");
        assert_eq!(payments["invoked"], 3);
        assert_eq!(payments["errors"], 0, "{out}");
        assert_eq!(payments["distinctEnvironments"], K, "{out}");
        // The first round is every environment's first event; the second finds them warm.
        assert_eq!(payments["coldStarts"], if i == 0 { K } else { 0 }, "{out}");
        let missing = &out["targets"][1];
        assert_eq!(
            (missing["invoked"].as_u64(), missing["errors"].as_u64()),
            (Some(1), Some(1)),
            "{out}"
        );
        assert!(
            missing["errorSamples"][0]
                .as_str()
                .unwrap()
                .contains("ResourceNotFound"),
            "{out}"
        );
    }
    assert_eq!(
        rounds[0]["targets"][0]["instanceIds"],
        rounds[1]["targets"][0]["instanceIds"]
    );

    // The ids are the real processes' own: ask each environment directly.
    let mut direct = Vec::new();
    for env in &router.envs {
        let (_, out) = env.invoke(json!({"warmer": true})).await;
        direct.push(out["instanceId"].as_str().unwrap().to_string());
    }
    direct.sort();
    assert_eq!(json!(direct), rounds[0]["targets"][0]["instanceIds"]);

    let out = warmer.output();
    let emf: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(emf.len(), 4, "one EMF line per target and round:\n{out}");
    assert!(emf
        .iter()
        .any(|v| v["Target"] == "payments" && v["DistinctEnvironments"] == K));
    assert!(emf
        .iter()
        .any(|v| v["Target"] == "missing" && v["Errors"] == 1));
}
