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
//! - [`load`]: the calibrated load generator (wrk) every HTTP figure goes through;
//!   [`floor`]: the trivial server beside every HTTP row; [`nginx`]: the static ceiling;
//!   [`agent`]: AWS's Secrets Manager Agent; [`client`]: a keep-alive client for set-up and
//!   checks (not for figures).
//! - [`peers`]: moto, Postgres (RLS table), PgBouncer, and the `hearth` binary, started once.
//! - [`secrets`], [`kms`], [`esdk`], [`db`], [`hop`]: the comparisons; [`extension`]: start-up,
//!   per-invoke overhead, RSS, binary size; [`footprint`]: Hearth vs the agent, and Hearth's
//!   build variants.
//! - [`machine`]: the machine and versions; [`goals`]: the goals, met or missed;
//!   [`report`]: Markdown and JSON.
//!
//! Usage: `hearth-bench [--quick] [--only-db | --only-esdk] [--out DIR]` (default DIR: `bench/results`), or
//! `hearth-bench profile --hearth BINARY [--reads N]` ([`profile`], see bench/PROFILING.md).

mod agent;
mod client;
mod db;
mod esdk;
mod extension;
mod floor;
mod footprint;
mod goals;
mod hop;
mod kms;
mod load;
mod machine;
mod nginx;
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
use crate::report::{Comparison, Figure, Report};
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
            "DEBUG build of the harness: figures are not representative".into()
        } else {
            format!(
                "hearth: {}; harness: optimized profile",
                target_bin("hearth").display()
            )
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

    eprintln!("hearth-bench: calibration and the hop (UDS vs TCP)");
    let path = secrets::path();
    let body = match Http::connect(p.hearth.port, Some(TOKEN)).await {
        Ok(mut h) => h.get_ok(&path).await,
        Err(e) => Err(e),
    };
    match body {
        Ok(b) => record(&mut r, "calibration", hop::run(b, &path, a.quick).await),
        Err(e) => r.failures.push(format!("calibration: {e}")),
    }
    eprintln!("hearth-bench: secret read (Hearth, AWS's agent, nginx, floor)");
    let agent_bin = agent::binary();
    if let Some(b) = &agent_bin {
        r.versions
            .push(("aws_secretsmanager_agent".into(), agent::version(b)));
    }
    let out = secrets::run(&p, agent_bin.as_deref(), a.quick).await;
    r.comparisons.extend(out.comparisons);
    r.figures.extend(out.figures);
    for f in out.failures {
        eprintln!("hearth-bench: {f}");
        r.failures.push(f);
    }
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

    if let Some((rss, hwm)) = extension::rss_kib(pid) {
        fig(
            &mut r,
            "RSS after the load",
            rss as f64 / 1024.0,
            "MiB",
            "VmRSS after every load above",
        );
        fig(
            &mut r,
            "peak RSS (VmHWM) after the whole run",
            hwm as f64 / 1024.0,
            "MiB",
            "high-water mark since start, all benchmarks above",
        );
    }

    eprintln!("hearth-bench: footprint (Hearth vs AWS's agent, build variants)");
    let runs = if a.quick { 3 } else { 10 };
    let read_secs = if a.quick { 2 } else { 5 };
    let mut side = Vec::new();
    match footprint::hearth(
        &p,
        "Hearth (release, shipped)",
        &target_bin("hearth"),
        runs,
        0,
    )
    .await
    {
        Ok(m) => side.push(m),
        Err(e) => r.failures.push(format!("footprint: {e}")),
    }
    if let Some(b) = &agent_bin {
        match footprint::aws_agent(&p, b, runs).await {
            Ok(m) => side.push(m),
            Err(e) => r.failures.push(format!("footprint of AWS's agent: {e}")),
        }
    }
    if !side.is_empty() {
        r.sections.push((
            "Footprint: Hearth vs AWS's agent".into(),
            format!("{}\nStart → serving: process spawn → first 200 from `/health` (Hearth) or `/ping` (the agent), polled every 100 µs on a new connection, {runs} starts each, standalone (no simulator), against the same moto. Hearth is configured for all three caches (secrets, KMS, DB) and prefetches in the background; the agent fetches on first read. Idle RSS: 2 s after start, before any read. Sizes: stripped copies.", footprint::table(&side, false)),
        ));
        if let Some(agent_side) = side.iter().find(|m| m.name.starts_with("AWS")) {
            r.agent_start_ms = Some(agent_side.start.p50_us / 1000.0);
            r.agent_bytes = Some(agent_side.bytes);
        }
    }
    let mut variants = Vec::new();
    for (name, bin) in footprint::variants() {
        if let Ok((sizes, total)) = footprint::crate_sizes(&bin) {
            if total > 0 {
                r.sections.push((
                    format!("Binary: what each crate contributes ({name})"),
                    format!("{}\nSizes of code and read-only data symbols (`nm -S -C`) grouped by crate, `cargo bloat --crates`-style, from this variant's symbol table ({:.2} MB of symbols in all); the other variants are stripped, so their split is not read. Section padding, unwind tables and relocations are not in any symbol.", footprint::crate_table(&sizes, total, 25), total as f64 / 1e6),
                ));
            }
        }
        match footprint::hearth(&p, &name, &bin, runs, read_secs).await {
            Ok(m) => variants.push(m),
            Err(e) => r.failures.push(format!("variant {name}: {e}")),
        }
    }
    if !variants.is_empty() {
        r.sections.push((
            "Binary and footprint: build variants".into(),
            format!("{}\nThe first two built by scripts/bench.sh in this run from the same source (others, if any, are named by their commit); measured as above, plus the cached read through wrk at 1 connection ({read_secs} s) on the last start. Profiles are in Cargo.toml.", footprint::table(&variants, true)),
        ));
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
