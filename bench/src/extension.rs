//! Figures of the extension process itself: start-up under the Lambda simulator (process
//! start → serving `/health`, → registered, → first `/event/next`), the per-invocation
//! overhead as the simulator reports it, resident memory, and the stripped binary's size.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_tests::hearth::{Proc, SimEnv, TOKEN};
use hearth_tests::{free_port, target_bin};
use lambda_simulator::{FreezeMode, Simulator};
use serde_json::json;

use crate::peers::SECRET_ID;
use crate::stats::Summary;

/// Start-up timings, one series each (µs).
pub struct Startup {
    /// Process spawn → first 200 from `/health`.
    pub health: Summary,
    /// Process spawn → registered with the Extensions API (simulator's timestamp).
    pub registered: Summary,
    /// Process spawn → first `/event/next` (after prewarm, as designed).
    pub first_next: Summary,
    /// The extension's own `startup_us` at "listening" (process main → listener serving).
    pub self_reported: Summary,
}

/// Whether `/health` answers 200 right now (blocking, short timeouts).
fn health_now(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200"
}

/// Polls `/health` from a plain thread every 100 µs (not from the runtime, whose threads
/// also serve the simulator); the time from `t0` to the first 200, or `None` after 10 s.
async fn time_to_health(port: u16, t0: Instant) -> Option<Duration> {
    tokio::task::spawn_blocking(move || {
        let deadline = t0 + Duration::from_secs(10);
        while Instant::now() < deadline {
            if health_now(port) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        None
    })
    .await
    .ok()
    .flatten()
}

fn since(t0: chrono::DateTime<chrono::Utc>, t: chrono::DateTime<chrono::Utc>) -> Duration {
    (t - t0).to_std().unwrap_or_default()
}

/// Measures start-up `runs` times with `env` on top of Lambda's variables.
pub async fn startup(env: &[(String, String)], runs: usize) -> Result<Startup, String> {
    let bin = target_bin("hearth");
    let (mut health, mut registered, mut first_next, mut own) = (vec![], vec![], vec![], vec![]);
    let all_start = Instant::now();
    for _ in 0..runs {
        let sim = Simulator::builder()
            .function_name("hearth-bench")
            .freeze_mode(FreezeMode::None)
            .shutdown_timeout(Duration::from_millis(2000))
            .build()
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        let port = free_port();
        let mut all: Vec<(String, String)> = sim.lambda_env_vars().into_iter().collect();
        all.push(("AWS_SESSION_TOKEN".into(), TOKEN.into()));
        all.push(("HEARTH_PORT".into(), port.to_string()));
        all.push(("HEARTH_LOG_FORMAT".into(), "text".into()));
        all.extend(env.iter().cloned());
        let t0_wall = chrono::Utc::now();
        let t0 = Instant::now();
        let proc = Proc::spawn(&bin, &all);
        let h = time_to_health(port, t0).await.ok_or_else(|| {
            format!(
                "hearth did not serve /health within 10 s:\n{}",
                proc.output()
            )
        })?;
        health.push(h);
        let deadline = Instant::now() + Duration::from_secs(10);
        let ext = loop {
            if let Some(e) = sim.get_registered_extensions().await.into_iter().next() {
                break e;
            }
            if Instant::now() > deadline {
                return Err(format!("hearth did not register:\n{}", proc.output()));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        registered.push(since(t0_wall, ext.registered_at));
        let next = loop {
            if let Some(t) = sim.first_next_poll_at(&ext.id).await {
                break t;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "hearth never polled /event/next:\n{}",
                    proc.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        first_next.push(since(t0_wall, next));
        let out = proc.output();
        if let Some(us) = out
            .split("startup_us=")
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse::<u64>().ok())
        {
            own.push(Duration::from_micros(us));
        }
        drop(proc);
        sim.shutdown().await;
    }
    let el = all_start.elapsed();
    Ok(Startup {
        health: Summary::of(&mut health, el),
        registered: Summary::of(&mut registered, el),
        first_next: Summary::of(&mut first_next, el),
        self_reported: Summary::of(&mut own, el),
    })
}

/// Extension overhead per invocation as the simulator computes it (function response → the
/// extension back at `/event/next`), with a real function that reads a secret through Hearth
/// on every invoke. Samples in µs; at most `max_invokes` invokes, `want` samples, 60 s.
pub async fn overhead(
    env: &[(String, String)],
    fn_env: &[(String, String)],
    want: usize,
    max_invokes: usize,
) -> Result<(Summary, usize, usize), String> {
    let mut sim = SimEnv::start(env, false).await;
    sim.start_function(&target_bin("probe-function"), fn_env);
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut invokes = 0;
    while invokes < max_invokes && samples.len() < want && start.elapsed() < Duration::from_secs(60)
    {
        let (out, ms) = sim.invoke_measured(json!({"secretId": SECRET_ID})).await;
        invokes += 1;
        if out["status"] != json!(200) {
            return Err(format!("the function's secret read failed: {out}"));
        }
        if let Some(ms) = ms {
            samples.push(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    if samples.is_empty() {
        return Err(format!("no overhead sample in {invokes} invokes"));
    }
    let el = start.elapsed();
    let under_1ms = samples.iter().filter(|d| d.as_millis() < 1).count();
    Ok((Summary::of(&mut samples, el), invokes, under_1ms))
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Stripped size of the `hearth` binary in bytes, with how it was measured: through
/// `scripts/binary-size.sh BINARY x86_64` when present, else the file's size after `strip`.
pub fn stripped_size(root: &Path, bin: &Path) -> Result<(u64, String), String> {
    let script = root.join("scripts/binary-size.sh");
    if script.exists() {
        let out = Command::new(&script)
            .arg(bin)
            .arg("x86_64")
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if let Some(n) = text
            .split("stripped ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u64>().ok())
        {
            return Ok((n, format!("scripts/binary-size.sh: {}", text.trim())));
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let copy: PathBuf = dir.path().join("hearth");
    std::fs::copy(bin, &copy).map_err(|e| format!("copy {}: {e}", bin.display()))?;
    let _ = Command::new("strip").arg("--strip-all").arg(&copy).status();
    let n = std::fs::metadata(&copy).map_err(|e| e.to_string())?.len();
    Ok((n, "strip --strip-all of target/release/hearth".into()))
}
