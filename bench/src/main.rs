//! # hearth-bench
//!
//! Hearth's benchmark suite: every figure measured side by side with its baseline in the same
//! run, against real peers on loopback, written as one report (Markdown and JSON). Run it
//! through `scripts/bench.sh`, which builds everything in release mode and installs what the
//! suite needs; it is not a test and asserts nothing about speed. It exits non-zero when a
//! comparison could not run.
//!
//! # Layout
//!
//! - [`stats`]: samples, percentiles, the bounded measurement loop.
//! - [`client`]: a minimal keep-alive HTTP/1.1 client; [`floor`]: the loopback floor server.
//! - [`peers`]: moto, Postgres (RLS table), PgBouncer, and the `hearth` binary, started once.
//! - [`secrets`], [`kms`], [`esdk`], [`db`], [`hop`]: the comparisons; [`extension`]: start-up,
//!   per-invoke overhead, RSS, binary size.
//! - [`machine`]: the machine and versions; [`goals`]: the goals, met or missed;
//!   [`report`]: Markdown and JSON.
//!
//! Usage: `hearth-bench [--quick] [--only-db | --only-esdk] [--out DIR]` (default DIR: `bench/results`), or
//! `hearth-bench profile --hearth BINARY [--reads N]` ([`profile`], see bench/PROFILING.md).

mod client;
mod db;
mod esdk;
mod extension;
mod floor;
mod goals;
mod hop;
mod kms;
mod machine;
mod peers;
mod profile;
mod report;
mod secrets;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hearth_tests::hearth::TOKEN;
use hearth_tests::{target_bin, workspace_root};

use crate::client::Http;
use crate::report::{Comparison, Figure, Report, Row};
use crate::stats::round2;

struct Args {
    quick: bool,
    /// Only the database comparisons (`--only-db`).
    only_db: bool,
    /// Only the in-process ESDK comparison (`--only-esdk`).
    only_esdk: bool,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        only_db: false,
        only_esdk: false,
        out: workspace_root().join("bench/results"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--only-db" => a.only_db = true,
            "--only-esdk" => a.only_esdk = true,
            "--out" => a.out = PathBuf::from(it.next().ok_or("--out needs a directory")?),
            other => {
                return Err(format!(
                "unknown argument {other:?}; usage: hearth-bench [--quick] [--only-db | --only-esdk] [--out DIR]"
            ))
            }
        }
    }
    Ok(a)
}

fn fig(r: &mut Report, name: &str, value: f64, unit: &str, note: impl Into<String>) {
    r.figures.push(Figure {
        name: name.into(),
        value,
        unit: unit.into(),
        note: note.into(),
    });
}

/// Records a section's outcome: its comparisons, or a failure.
fn record(r: &mut Report, section: &str, res: Result<Vec<Comparison>, String>) {
    match res {
        Ok(cs) => r.comparisons.extend(cs),
        Err(e) => {
            eprintln!("hearth-bench: {section} FAILED: {e}");
            r.failures.push(format!("{section}: {e}"));
        }
    }
}

/// The database comparisons: the RLS query four ways, and what tenant isolation costs.
async fn database(r: &mut Report, p: &peers::Peers, quick: bool) {
    record(r, "RLS query", db::run(p, quick).await.map(|c| vec![c]));
    record(
        r,
        "RLS protocol",
        db::protocol(p, quick).await.map(|c| vec![c]),
    );
}

async fn run(a: &Args) -> Report {
    let started = Instant::now();
    let mut r = Report {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        profile: if cfg!(debug_assertions) {
            "DEBUG build: figures are not representative".into()
        } else {
            "release build".into()
        },
        machine: machine::machine(),
        ..Report::default()
    };
    eprintln!("hearth-bench: starting peers (moto, Postgres, PgBouncer, hearth)");
    let p = match peers::Peers::start().await {
        Ok(p) => p,
        Err(e) => {
            r.failures.push(format!("peers: {e}"));
            return r;
        }
    };
    r.versions = machine::versions(&p).await;
    if a.only_db {
        database(&mut r, &p, a.quick).await;
        return r;
    }
    if a.only_esdk {
        record(
            &mut r,
            "signed ESDK messages",
            esdk::run(a.quick).await.map(|c| vec![c]),
        );
        return r;
    }

    // Idle RSS: after start and prewarm, before any load.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = p.hearth.proc.pid();
    if let Some((rss, _)) = extension::rss_kib(pid) {
        fig(&mut r, "idle RSS", rss as f64 / 1024.0, "MiB", "VmRSS of the standalone hearth (secrets, KMS and DB configured, prewarmed: 1 pooled connection, 1 data key, 1 secret), 2 s after start, before any load");
    }

    eprintln!("hearth-bench: secret read");
    record(
        &mut r,
        "secret read",
        secrets::run(&p, a.quick).await.map(|c| vec![c]),
    );
    eprintln!("hearth-bench: signed ESDK messages");
    record(
        &mut r,
        "signed ESDK messages",
        esdk::run(a.quick).await.map(|c| vec![c]),
    );
    eprintln!("hearth-bench: envelope encryption");
    record(&mut r, "envelope encryption", kms::run(&p, a.quick).await);
    match Http::connect(p.hearth.port, Some(TOKEN)).await {
        Ok(mut h) => {
            if let Ok(c) = kms::counters(&mut h).await {
                let gdk = c["kms.generate_data_key_calls"].as_u64().unwrap_or(0);
                let enc = c["kms.encrypts"].as_u64().unwrap_or(0);
                fig(&mut r, "GenerateDataKey calls since process start", gdk as f64, "", format!("for {enc} encrypts since start (1 KiB and 64 KiB, same key and context), prewarm included"));
                r.kms_totals = Some((gdk, enc));
            }
        }
        Err(e) => r.failures.push(format!("metrics: {e}")),
    }
    eprintln!("hearth-bench: RLS query");
    database(&mut r, &p, a.quick).await;

    eprintln!("hearth-bench: HTTP hop");
    let path = secrets::path();
    let body = match Http::connect(p.hearth.port, Some(TOKEN)).await {
        Ok(mut h) => h.get_ok(&path).await,
        Err(e) => Err(e),
    };
    match body.and_then(floor::Floor::start) {
        Ok(fl) => {
            record(
                &mut r,
                "HTTP hop",
                hop::run(p.hearth.port, fl.port, &path, a.quick).await,
            );
            eprintln!("hearth-bench: wrk");
            let secs = if a.quick { 2 } else { 10 };
            let mut peak = 0u64;
            let mut rows = Vec::new();
            let mut failed = None;
            for conns in [16usize, 64] {
                let h_url = format!("http://127.0.0.1:{}{path}", p.hearth.port);
                let f_url = format!("http://127.0.0.1:{}{path}", fl.port);
                let hearth = hop::wrk(&h_url, Some(TOKEN), conns, secs, || {
                    if let Some((rss, _)) = extension::rss_kib(pid) {
                        peak = peak.max(rss);
                    }
                })
                .await;
                let floor_r = hop::wrk(&f_url, None, conns, secs, || {}).await;
                match (hearth, floor_r) {
                    (Ok(h), Ok(f)) if h.errors == 0 && f.errors == 0 => {
                        rows.push((conns, h.summary, f.summary));
                    }
                    (Ok(h), Ok(f)) => {
                        failed = Some(format!(
                            "wrk saw errors: hearth {}, floor {}",
                            h.errors, f.errors
                        ))
                    }
                    (Err(e), _) | (_, Err(e)) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                r.failures.push(format!("wrk: {e}"));
            }
            for (conns, h, f) in rows {
                r.comparisons.push(Comparison {
                    id: format!("wrk_c{conns}"),
                    title: format!("wrk, cached secret read, {conns} connections, {secs} s"),
                    baseline: 1,
                    rows: vec![
                        Row::new("Hearth GET /secretsmanager/get", h, "token via -H"),
                        Row::new("loopback floor (trivial hyper server, same body)", f, ""),
                    ],
                    notes: vec![format!("wrk -t2 -c{conns} -d{secs}s --latency; p50/p99 from its latency distribution, n = requests completed.")],
                });
            }
            if let Some((rss, hwm)) = extension::rss_kib(pid) {
                fig(
                    &mut r,
                    "loaded RSS",
                    peak.max(rss) as f64 / 1024.0,
                    "MiB",
                    "highest VmRSS sampled every 50 ms while wrk drove 16 and 64 connections",
                );
                fig(
                    &mut r,
                    "peak RSS (VmHWM) after the whole run",
                    hwm as f64 / 1024.0,
                    "MiB",
                    "high-water mark since start, all benchmarks above",
                );
            }
        }
        Err(e) => r.failures.push(format!("HTTP hop: {e}")),
    }

    eprintln!("hearth-bench: start-up under lambda-simulator");
    let env = peers::hearth_env(&p.moto, &p.key_arn);
    match extension::startup(&env, if a.quick { 3 } else { 10 }).await {
        Ok(s) => {
            let n = s.health.n;
            fig(&mut r, "process start → serving /health (p50)", s.health.p50_us / 1000.0, "ms", format!("spawn → first 200 (polled every 100 µs), {n} starts under lambda-simulator; p99 {:.2} ms", s.health.p99_us / 1000.0));
            fig(
                &mut r,
                "process start → registered (p50)",
                s.registered.p50_us / 1000.0,
                "ms",
                format!(
                    "spawn → the simulator's registered_at; p99 {:.2} ms",
                    s.registered.p99_us / 1000.0
                ),
            );
            fig(&mut r, "process start → first /event/next (p50)", s.first_next.p50_us / 1000.0, "ms", format!("the simulator's first_next_poll_at; waits for prewarm (1 secret, 1 DB connection, 1 data key from moto) by design; p99 {:.2} ms", s.first_next.p99_us / 1000.0));
            fig(
                &mut r,
                "self-reported startup_us at \"listening\" (p50)",
                s.self_reported.p50_us / 1000.0,
                "ms",
                "main() → listener serving, from the extension's log",
            );
            r.startup_health_ms = Some(s.health.p50_us / 1000.0);
        }
        Err(e) => r.failures.push(format!("start-up: {e}")),
    }
    eprintln!("hearth-bench: per-invoke overhead");
    let (want, max) = if a.quick { (5, 50) } else { (50, 500) };
    match extension::overhead(&env, &p.moto.env(), want, max).await {
        Ok((s, invokes, under_1ms)) => {
            fig(&mut r, "extension overhead per invoke (p50)", s.p50_us / 1000.0, "ms", format!("lambda-simulator's get_extension_overhead_ms, which truncates to whole ms (0 = under 1 ms), polled in flight: {} samples from {invokes} invokes (the function reads a secret through hearth each time), {under_1ms} of them under 1 ms; p99 {:.0} ms", s.n, s.p99_us / 1000.0));
            r.overhead_ms = Some(s.p50_us / 1000.0);
        }
        Err(e) => r.failures.push(format!("overhead: {e}")),
    }
    match extension::stripped_size(&workspace_root(), &target_bin("hearth")) {
        Ok((bytes, how)) => {
            fig(
                &mut r,
                "stripped binary size, x86_64",
                bytes as f64 / 1_048_576.0,
                "MiB",
                format!("{bytes} bytes; {how}"),
            );
            r.binary_bytes = Some(bytes);
        }
        Err(e) => r.failures.push(format!("binary size: {e}")),
    }
    r.duration_s = round2(started.elapsed().as_secs_f64());
    goals::evaluate(&mut r);
    drop(p);
    r
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("profile") {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("hearth-bench: runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match rt.block_on(profile::run(&argv[1..])) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hearth-bench profile: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hearth-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(run(&a));
    if let Err(e) = report.write(&a.out) {
        eprintln!("hearth-bench: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", report.markdown());
    eprintln!(
        "hearth-bench: report written to {}",
        a.out.join("report.md").display()
    );
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "hearth-bench: {} benchmark(s) could not run",
            report.failures.len()
        );
        ExitCode::FAILURE
    }
}
