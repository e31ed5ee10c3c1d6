//! The Hearth demo (`scripts/demo.sh`): the example payments function and the real `hearth`
//! extension under lambda-simulator, with PostgreSQL 15 and moto behind them, all on
//! loopback. It runs a scripted day in the life of one execution environment — a cold
//! invoke, warm invokes, a warm-up ping, a database password rotation, more invokes, a
//! shutdown — and prints what Hearth saved: latency cold vs warm, cache hits, KMS calls
//! made and avoided, pool connections created and reused. For the warm invokes it also
//! splits the round trip: the function's handler time and each Hearth call inside it (the
//! `timings` the payments function reports, measured client-side), and what is left for the
//! simulator and the Lambda runtime client.
//!
//! Bounded: the whole run is cut off after 110 s; every peer is stopped on exit.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hearth_tests::hearth::{SimEnv, TOKEN};
use hearth_tests::payments::{payments_bin, PaymentsStack, ROLE};
use lambda_simulator::ShutdownReason;
use serde_json::{json, Value};

const WARM_INVOKES: usize = 20;
const AFTER_ROTATION_INVOKES: usize = 10;
/// The Hearth calls the payments function times, in the order printed (its `timings` keys).
const CALLS: [(&str, &str); 3] = [
    ("encrypt_us", "encrypt (POST /v1/kms/encrypt)"),
    ("query_us", "query (POST /v1/db/query)"),
    ("decrypt_us", "decrypt (POST /v1/kms/decrypt)"),
];
const CARDS: [&str; 3] = ["4111111111111111", "5555555555554444", "4012888888881881"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match tokio::time::timeout(Duration::from_secs(110), run()).await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("demo failed: did not finish within 110 s");
            ExitCode::FAILURE
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank quantile of `samples` (sorted in place).
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return 0.0;
    }
    let rank = ((samples.len() as f64) * q).ceil().max(1.0) as usize;
    samples[rank.min(samples.len()) - 1]
}

/// `timings[name]` of a function response, in milliseconds.
fn timing_ms(out: &Value, name: &str) -> Option<f64> {
    out["timings"][name].as_u64().map(|us| us as f64 / 1000.0)
}

fn create(tenant: &str, i: usize) -> Value {
    json!({"action": "create", "tenant": tenant, "amountCents": 1000 + i, "currency": "EUR",
           "card": {"pan": CARDS[i % CARDS.len()], "expiry": "12/29"}})
}

fn get(tenant: &str, id: &Value) -> Value {
    json!({"action": "get", "tenant": tenant, "paymentId": id})
}

/// Invokes and times the round trip through the simulator (enqueue → response).
async fn timed(env: &SimEnv, event: Value) -> Result<(Value, Duration), String> {
    let t0 = Instant::now();
    let (_, out) = env.invoke(event).await;
    let took = t0.elapsed();
    if out.get("error").is_some() {
        return Err(format!("invoke failed: {out}"));
    }
    Ok((out, took))
}

fn n(v: &Value, section: &str, name: &str) -> u64 {
    v[section][name].as_u64().unwrap_or(0)
}

async fn run() -> Result<(), String> {
    println!("Hearth demo: payments function + hearth extension under lambda-simulator,");
    println!("PostgreSQL 15 (RLS, SCRAM) and moto (KMS, Secrets Manager), all on 127.0.0.1\n");

    let t0 = Instant::now();
    let stack = PaymentsStack::start("demo-password-1").await;
    let setup_peers = t0.elapsed();
    let t1 = Instant::now();
    let mut env = SimEnv::start(&stack.env(), false).await;
    env.start_function(&payments_bin(), &stack.env());
    let setup_env = t1.elapsed();
    let client = hearth::Client::builder()
        .port(env.port)
        .token(TOKEN)
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "setup: postgres + migrations + moto {:.0} ms; extension registered + function started {:.0} ms",
        ms(setup_peers),
        ms(setup_env)
    );

    // 1. Cold invoke: the first event of the environment.
    let (out, cold) = timed(&env, create("t1", 0)).await?;
    let mut ids = vec![("t1", out["payment"]["paymentId"].clone())];
    let after_cold = client.metrics().await.map_err(|e| e.to_string())?;

    // 2. Warm invokes: creates and reads for two tenants.
    let mut warm = Vec::new();
    let mut handler = Vec::new();
    let mut runtime_share = Vec::new();
    let mut calls: Vec<Vec<f64>> = vec![Vec::new(); CALLS.len()];
    for i in 1..=WARM_INVOKES {
        let tenant = if i % 2 == 0 { "t1" } else { "t2" };
        let event = if i % 3 == 0 {
            let (t, id) = ids
                .iter()
                .rev()
                .find(|(t, _)| *t == tenant)
                .unwrap_or(&ids[0]);
            get(t, id)
        } else {
            create(tenant, i)
        };
        let (out, took) = timed(&env, event).await?;
        if let Some(id) = out["payment"]["paymentId"].as_str() {
            ids.push((tenant, json!(id)));
        }
        warm.push(ms(took));
        let h = timing_ms(&out, "handler_us")
            .ok_or_else(|| format!("the function's response has no timings: {out}"))?;
        handler.push(h);
        runtime_share.push(ms(took) - h);
        for ((name, _), samples) in CALLS.iter().zip(calls.iter_mut()) {
            samples.extend(timing_ms(&out, name));
        }
    }

    // 3. A warm-up ping, as hearth-warmer or an EventBridge rule sends it.
    let (ping, ping_took) = timed(
        &env,
        json!({"warmer": true, "concurrency": 1, "correlationId": "demo-1"}),
    )
    .await?;

    // 4. Rotate the database password (AWSPENDING → ALTER ROLE → AWSCURRENT), and let the
    //    pooled connections die (as a server restart or a long freeze would). The pool
    //    verifies connections idle longer than HEARTH_DB_VERIFY_IDLE_AFTER (5 s) before use.
    let before_rotation = client.metrics().await.map_err(|e| e.to_string())?;
    stack.rotate_password("demo-password-2").await;
    let killed = stack.pg.terminate_backends(ROLE).await;
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let mut after_rotation = Vec::new();
    for i in 0..AFTER_ROTATION_INVOKES {
        let tenant = if i % 2 == 0 { "t1" } else { "t2" };
        let (_, took) = timed(&env, create(tenant, 100 + i)).await?;
        after_rotation.push(ms(took));
    }
    // The other tenant cannot read t1's payment.
    let (_, cross) = env.invoke(get("t2", &ids[0].1)).await;

    let m = client.metrics().await.map_err(|e| e.to_string())?;

    // 5. Shutdown.
    let SimEnv {
        sim,
        mut extension,
        function,
        ..
    } = env;
    let t_shutdown = Instant::now();
    sim.graceful_shutdown(ShutdownReason::Spindown).await;
    let status = extension.wait_exit(Duration::from_secs(2)).await;
    let shutdown = t_shutdown.elapsed();
    let logs = format!(
        "{}\n{}",
        extension.output(),
        function.as_ref().map(|f| f.output()).unwrap_or_default()
    );
    drop(function);

    // The table.
    let c = |name: &str| n(&m, "counters", name);
    println!("\ninvoke latency (round trip through the simulator: enqueue → function response)");
    println!(
        "  {:<34} {:>8.2} ms",
        "cold (first invoke of the environment)",
        ms(cold)
    );
    println!(
        "  {:<34} {:>8.2} ms / {:.2} ms",
        format!("warm p50 / p99 (n={WARM_INVOKES})"),
        quantile(&mut warm, 0.5),
        quantile(&mut warm, 0.99)
    );
    println!(
        "  {:<34} {:>8.2} ms / {:.2} ms",
        format!("after rotation p50 / p99 (n={AFTER_ROTATION_INVOKES})"),
        quantile(&mut after_rotation, 0.5),
        quantile(&mut after_rotation, 0.99)
    );
    println!("  {:<34} {:>8.2} ms", "warm-up ping", ms(ping_took));

    println!(
        "\nwarm invokes, where the time goes (p50 / p99, n={WARM_INVOKES}; Hearth calls timed inside the function)"
    );
    let row = |label: String, samples: &mut Vec<f64>| {
        println!(
            "  {:<34} {:>8.2} ms / {:.2} ms",
            label,
            quantile(samples, 0.5),
            quantile(samples, 0.99)
        );
    };
    row("round trip".into(), &mut warm);
    row("function handler".into(), &mut handler);
    for ((_, label), samples) in CALLS.iter().zip(calls.iter_mut()) {
        if !samples.is_empty() {
            row(format!("  Hearth {label} n={}", samples.len()), samples);
        }
    }
    row(
        "simulator + runtime (trip - handler)".into(),
        &mut runtime_share,
    );

    println!("\nextension (GET /v1/metrics)");
    println!(
        "  {:<34} {} hits, {} misses, {} Secrets Manager calls, {} background refreshes",
        "secrets cache",
        c("secrets.hits"),
        c("secrets.misses"),
        c("secrets.upstream_calls"),
        c("secrets.refreshes")
    );
    let kms_made = c("kms.generate_data_key_calls") + c("kms.decrypt_calls");
    println!(
        "  {:<34} {} made (GenerateDataKey {}, Decrypt {}), {} avoided by the cache",
        "KMS calls",
        kms_made,
        c("kms.generate_data_key_calls"),
        c("kms.decrypt_calls"),
        c("kms.calls_avoided")
    );
    println!(
        "  {:<34} {} encrypts, {} decrypts; one data key per (key, tenant context)",
        "envelope encryption",
        c("kms.encrypts"),
        c("kms.decrypts")
    );
    println!(
        "  {:<34} {} created, {} reused, {} verified, {} dead replaced",
        "DB pool connections",
        c("db.connections_created"),
        c("db.connections_reused"),
        c("db.connections_verified"),
        c("db.connections_dead_replaced")
    );
    println!(
        "  {:<34} created {} before the rotation, {} at the cold invoke",
        "",
        n(&before_rotation, "counters", "db.connections_created"),
        n(&after_cold, "counters", "db.connections_created"),
    );
    println!(
        "  {:<34} {} backends killed, {} password refetch(es) after 28P01, 0 failed invokes",
        "password rotation",
        killed,
        c("db.password_rotations")
    );

    println!("\nwarm-up ping answer: {ping}");
    println!(
        "tenant t2 reading t1's payment: {}",
        cross["error"]["code"].as_str().unwrap_or("(no error!)")
    );
    let exit = match status {
        Some(s) if s.success() => format!("exit 0 in {:.0} ms", ms(shutdown)),
        Some(s) => format!("{s} in {:.0} ms", ms(shutdown)),
        None => "no exit within 2 s".to_string(),
    };
    println!("shutdown (SPINDOWN): extension {exit}");

    let leaked: Vec<&str> = CARDS
        .iter()
        .copied()
        .chain(["demo-password-1", "demo-password-2"])
        .filter(|s| logs.contains(s))
        .collect();
    println!(
        "log scan: {} lines of extension + function output, card numbers or passwords found: {}",
        logs.lines().count(),
        if leaked.is_empty() {
            "none".to_string()
        } else {
            format!("{leaked:?}")
        }
    );
    println!("total {:.1} s", t0.elapsed().as_secs_f64());

    if !leaked.is_empty() {
        return Err("secret material in the logs".into());
    }
    if cross["error"]["code"] != "PaymentNotFound" {
        return Err(format!("cross-tenant read was not refused: {cross}"));
    }
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("extension shutdown: {exit}"));
    }
    Ok(())
}
