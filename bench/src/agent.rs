//! AWS's own Secrets Manager Agent (crate `aws_secretsmanager_agent` 2.1.0, installed by
//! `scripts/bench.sh` with `cargo install --locked`), run beside Hearth against the same moto:
//! what a user would deploy instead. Configured by its TOML file; its SSRF token comes from
//! `AWS_TOKEN`, as in Lambda.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_tests::free_port;
use hearth_tests::hearth::TOKEN;

/// The agent binary: `HEARTH_BENCH_AGENT`, else `aws_secretsmanager_agent` on PATH.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEARTH_BENCH_AGENT") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("aws_secretsmanager_agent"))
            .find(|p| p.is_file())
    })
}

/// The agent's version, from `cargo install`'s record next to the binary, or "2.1.0 (as
/// installed by scripts/bench.sh)".
pub fn version(bin: &Path) -> String {
    let crates = bin
        .parent()
        .and_then(Path::parent)
        .map(|root| root.join(".crates.toml"));
    crates
        .and_then(|c| std::fs::read_to_string(c).ok())
        .and_then(|t| {
            t.lines()
                .find(|l| l.contains("aws_secretsmanager_agent "))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.to_string()))
        })
        .unwrap_or_else(|| "unknown (not installed by cargo install)".into())
}

/// A running agent; killed on drop.
pub struct Agent {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Spawns the agent (does not wait); `Instant` is the moment of spawn.
    pub fn spawn(bin: &Path, aws_env: &[(String, String)]) -> Result<(Agent, Instant), String> {
        let dir = tempfile::Builder::new()
            .prefix("hearth-bench-agent-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port();
        let cfg = dir.path().join("config.toml");
        // Defaults but for the port, logging (warn, to stderr: not a file per request) and the
        // STS credential check at start (moto answers it, but it costs start-up a round trip
        // Hearth does not make).
        std::fs::write(
            &cfg,
            format!(
                "log_level = \"warn\"\nlog_to_file = false\nhttp_port = \"{port}\"\n\
                 ttl_seconds = \"300\"\ncache_size = \"1000\"\nvalidate_credentials = false\n"
            ),
        )
        .map_err(|e| format!("agent config: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_TOKEN", TOKEN)
            .current_dir(dir.path())
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in aws_env {
            cmd.env(k, v);
        }
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok((
            Agent {
                port,
                child,
                _dir: dir,
            },
            t0,
        ))
    }

    /// Starts the agent and waits (bounded) until `/ping` answers.
    pub fn start(bin: &Path, aws_env: &[(String, String)]) -> Result<Agent, String> {
        let (mut a, t0) = Agent::spawn(bin, aws_env)?;
        match serving_after(a.port, "/ping", t0, Duration::from_secs(10)) {
            Some(_) => Ok(a),
            None => {
                let status = a.child.try_wait().ok().flatten();
                Err(format!(
                    "AWS's agent did not serve /ping within 10 s (exit: {status:?})"
                ))
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET path` answers 200 right now (blocking, short timeouts, new connection).
pub fn ok_now(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200"
}

/// Polls `path` every 100 µs from the calling thread; the time from `t0` to the first 200.
pub fn serving_after(port: u16, path: &str, t0: Instant, limit: Duration) -> Option<Duration> {
    while t0.elapsed() < limit {
        if ok_now(port, path) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    None
}
