//! The machine the run measured (CPU, cores, memory, kernel) and the exact versions of
//! everything involved.

use std::process::Command;

use hearth_tests::hearth::TOKEN;
use hearth_tests::workspace_root;

use crate::client::Http;
use crate::peers::Peers;

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|e| format!("unavailable ({e})"))
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':').or_else(|| l.split_once('=')))
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// CPU model, cores, memory, kernel, OS.
pub fn machine() -> Vec<(String, String)> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem_kib: f64 = proc_field("/proc/meminfo", "MemTotal")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    vec![
        ("CPU".into(), proc_field("/proc/cpuinfo", "model name")),
        ("cores available".into(), cores),
        ("memory".into(), format!("{:.1} GiB", mem_kib / 1_048_576.0)),
        (
            "kernel".into(),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
        ("OS".into(), proc_field("/etc/os-release", "PRETTY_NAME")),
    ]
}

/// Versions: rustc, hearth (and the commit), Postgres, moto, PgBouncer, wrk, the simulator.
pub async fn versions(p: &Peers) -> Vec<(String, String)> {
    let root = workspace_root();
    let root_s = root.to_string_lossy().to_string();
    let hearth = match Http::connect(p.hearth.port, Some(TOKEN)).await {
        Ok(mut h) => h
            .get_ok("/health")
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into()),
        Err(_) => "unknown".into(),
    };
    let commit = first_line("git", &["-C", &root_s, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", &root_s, "status", "--porcelain"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let pg = match p.pg.admin().await.query_one("SELECT version()", &[]).await {
        Ok(row) => row.get::<_, String>(0),
        Err(e) => format!("unknown ({e})"),
    };
    let python = root.join(".venv/bin/python");
    let moto = first_line(
        &python.to_string_lossy(),
        &["-c", "import moto; print(moto.__version__)"],
    );
    vec![
        ("rustc".into(), first_line("rustc", &["--version"])),
        (
            "hearth".into(),
            format!(
                "{hearth} (commit {commit}{})",
                if dirty {
                    " with uncommitted changes"
                } else {
                    ""
                }
            ),
        ),
        ("PostgreSQL".into(), pg),
        ("moto".into(), moto),
        (
            "PgBouncer".into(),
            first_line("/usr/sbin/pgbouncer", &["--version"]),
        ),
        ("wrk".into(), first_line("wrk", &["-v"])),
        ("nginx".into(), nginx_version()),
        (
            "aws_secretsmanager_caching".into(),
            "2.1.0 (in Cargo.lock, in this binary)".into(),
        ),
        (
            "lambda-simulator".into(),
            "0.2.0 (pinned in the workspace)".into(),
        ),
    ]
}

/// `nginx -v` prints to stderr.
fn nginx_version() -> String {
    Command::new(crate::nginx::NGINX)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_else(|e| format!("not found ({e})"))
}
