//! Footprint side by side: Hearth and AWS's agent (start → serving, idle RSS, stripped
//! binary), and Hearth's build variants (size, start → serving, cached-read p50), each from
//! binaries built by `scripts/bench.sh` in this run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_tests::free_port;
use hearth_tests::hearth::{Proc, TOKEN};

use crate::agent::{self, Agent};
use crate::extension::{rss_kib, stripped_size};
use crate::load::{self, Load};
use crate::peers::Peers;
use crate::stats::Summary;

/// One measured binary.
pub struct Measured {
    /// Name.
    pub name: String,
    /// Stripped size, bytes.
    pub bytes: u64,
    /// Spawn → first 200 from its health path.
    pub start: Summary,
    /// VmRSS 2 s after start, KiB.
    pub idle_rss_kib: u64,
    /// Cached-read p50 at 1 connection (wrk), when measured.
    pub read: Option<Summary>,
}

fn hearth_env(p: &Peers, port: u16) -> Vec<(String, String)> {
    let mut env = crate::peers::hearth_env(&p.moto, &p.key_arn);
    env.push(("HEARTH_PORT".into(), port.to_string()));
    env.push(("HEARTH_TOKEN".into(), TOKEN.into()));
    env
}

/// Spawns Hearth from `bin` `runs` times: spawn → `/health` 200; idle RSS of the last run;
/// and, when `read_secs` > 0, the cached read through wrk at 1 connection on the last run.
pub async fn hearth(
    p: &Peers,
    name: &str,
    bin: &Path,
    runs: usize,
    read_secs: u64,
) -> Result<Measured, String> {
    let mut starts = Vec::with_capacity(runs);
    let mut idle = 0;
    let mut read = None;
    let all = Instant::now();
    for i in 0..runs {
        let port = free_port();
        let env = hearth_env(p, port);
        let t0 = Instant::now();
        let proc = Proc::spawn(bin, &env);
        let took = tokio::task::spawn_blocking(move || {
            agent::serving_after(port, "/health", t0, Duration::from_secs(10))
        })
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{name} did not serve /health:\n{}", proc.output()))?;
        starts.push(took);
        if i + 1 == runs {
            tokio::time::sleep(Duration::from_secs(2)).await;
            idle = rss_kib(proc.pid()).map(|r| r.0).unwrap_or(0);
            if read_secs > 0 {
                let l = Load::get(port, &crate::secrets::path())
                    .token(TOKEN)
                    .with(1, read_secs);
                read = Some(load::run(&l, || {}).await?);
            }
        }
        drop(proc);
    }
    let (bytes, _) = stripped_size(&hearth_tests::workspace_root(), bin)?;
    Ok(Measured {
        name: name.into(),
        bytes,
        start: Summary::of(&mut starts, all.elapsed()),
        idle_rss_kib: idle,
        read,
    })
}

/// The same for AWS's agent: spawn → `/ping` 200, idle RSS after 2 s (before any read).
pub async fn aws_agent(p: &Peers, bin: &Path, runs: usize) -> Result<Measured, String> {
    let mut starts = Vec::with_capacity(runs);
    let mut idle = 0;
    let all = Instant::now();
    for i in 0..runs {
        let (a, t0) = Agent::spawn(bin, &p.moto.env())?;
        let port = a.port;
        let took = tokio::task::spawn_blocking(move || {
            agent::serving_after(port, "/ping", t0, Duration::from_secs(10))
        })
        .await
        .map_err(|e| e.to_string())?
        .ok_or("AWS's agent did not serve /ping within 10 s")?;
        starts.push(took);
        if i + 1 == runs {
            tokio::time::sleep(Duration::from_secs(2)).await;
            idle = rss_kib(a.pid()).map(|r| r.0).unwrap_or(0);
        }
        drop(a);
    }
    let (bytes, _) = stripped_size(&hearth_tests::workspace_root(), bin)?;
    Ok(Measured {
        name: "AWS Secrets Manager Agent".into(),
        bytes,
        start: Summary::of(&mut starts, all.elapsed()),
        idle_rss_kib: idle,
        read: None,
    })
}

/// Build variants to compare: `HEARTH_BENCH_VARIANTS="name=path;name=path"`.
pub fn variants() -> Vec<(String, PathBuf)> {
    std::env::var("HEARTH_BENCH_VARIANTS")
        .unwrap_or_default()
        .split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let p = PathBuf::from(v.trim());
            p.is_file().then(|| (k.trim().to_string(), p))
        })
        .collect()
}

/// A Markdown table of measured binaries.
pub fn table(rows: &[Measured], with_read: bool) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "| binary | stripped MB (10^6) | MiB | start → serving p50 ms | p99 ms | idle RSS MiB |"
    );
    if with_read {
        let _ = write!(s, " cached read p50 µs (wrk -c1) | p99 µs | req/s |");
    }
    s.push('\n');
    let _ = write!(s, "|---|--:|--:|--:|--:|--:|");
    if with_read {
        let _ = write!(s, "--:|--:|--:|");
    }
    s.push('\n');
    for m in rows {
        let _ = write!(
            s,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            m.name,
            m.bytes as f64 / 1e6,
            m.bytes as f64 / 1_048_576.0,
            m.start.p50_us / 1000.0,
            m.start.p99_us / 1000.0,
            m.idle_rss_kib as f64 / 1024.0
        );
        if with_read {
            match &m.read {
                Some(r) => {
                    let _ = write!(
                        s,
                        " {:.0} | {:.0} | {:.0} |",
                        r.p50_us, r.p99_us, r.ops_per_s
                    );
                }
                None => {
                    let _ = write!(s, " | | |");
                }
            }
        }
        s.push('\n');
    }
    s
}

/// What each crate contributes to `bin`'s code and data, `cargo bloat --crates`-style: the
/// sizes of its symbols (`nm -S -C`), grouped by the first path segment of the demangled
/// name (for `<A as B>::f`, the crate of `A`). The binary must have its symbol table.
pub fn crate_sizes(bin: &Path) -> Result<(Vec<(String, u64)>, u64), String> {
    let out = std::process::Command::new("nm")
        .args(["-S", "-C", "--size-sort"])
        .arg(bin)
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nm {}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut by: std::collections::HashMap<String, u64> = Default::default();
    let mut total = 0u64;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.splitn(4, ' ');
        let (Some(_addr), Some(size), Some(kind), Some(name)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        // Code and read-only data only.
        if !matches!(kind, "t" | "T" | "r" | "R") {
            continue;
        }
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        total += size;
        *by.entry(crate_of(name)).or_default() += size;
    }
    let mut v: Vec<(String, u64)> = by.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    Ok((v, total))
}

/// The crate a demangled symbol belongs to; C symbols (aws-lc, libc) by name.
fn crate_of(name: &str) -> String {
    let n = name
        .trim_start_matches(['<', '&', '*', ' '])
        .trim_start_matches("dyn ");
    let n = n.trim_start_matches("mut ").trim_start_matches("const ");
    if let Some((first, _)) = n.split_once("::") {
        let c = first.trim_start_matches(['<', '&']);
        if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
            return c.to_string();
        }
    }
    if n.starts_with("aws_lc_") || n.contains("aws_lc") {
        return "aws-lc (C)".into();
    }
    "[C and unattributed symbols]".into()
}

/// A Markdown table of the largest crates.
pub fn crate_table(sizes: &[(String, u64)], total: u64, top: usize) -> String {
    let mut s = String::from("| crate | KB (10^3) | share |\n|---|--:|--:|\n");
    let mut shown = 0u64;
    for (c, b) in sizes.iter().take(top) {
        shown += b;
        let _ = writeln!(
            s,
            "| {c} | {:.0} | {:.1}% |",
            *b as f64 / 1e3,
            100.0 * *b as f64 / total.max(1) as f64
        );
    }
    let _ = writeln!(
        s,
        "| {} other crates | {:.0} | {:.1}% |",
        sizes.len().saturating_sub(top),
        (total - shown) as f64 / 1e3,
        100.0 * (total - shown) as f64 / total.max(1) as f64
    );
    s
}
