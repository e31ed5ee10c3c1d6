//! `hearth-bench profile --hearth BINARY [--reads N] [--out FILE]`: instruction counts of the
//! cached-secret-read hot path. Starts moto with one secret, runs BINARY (a release build
//! with symbols: `CARGO_PROFILE_RELEASE_STRIP=false`) under `valgrind --tool=callgrind` with
//! instrumentation off, fills the cache, turns it on for exactly N keep-alive reads, turns
//! it off again, stops the process, and prints instructions per read plus the top functions
//! (`callgrind_annotate`). Instruction counts are repeatable, unlike times, so a change to
//! the hot path can be judged before/after on a busy machine.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_tests::free_port;
use hearth_tests::hearth::TOKEN;
use hearth_tests::moto::Moto;

use crate::client::Http;
use crate::peers::{secret_value, SECRET_ID};

fn ctl(args: &[&str]) -> Result<(), String> {
    let st = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {args:?} failed"))
    }
}

/// Runs the profile; returns instructions per read.
pub async fn run(args: &[String]) -> Result<f64, String> {
    let mut bin = None;
    let mut reads = 10_000usize;
    let mut out = PathBuf::from("callgrind.out.hearth");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hearth" => bin = it.next().map(PathBuf::from),
            "--reads" => reads = it.next().and_then(|s| s.parse().ok()).ok_or("--reads N")?,
            "--out" => out = it.next().map(PathBuf::from).ok_or("--out FILE")?,
            other => return Err(format!("unknown profile argument {other:?}")),
        }
    }
    let bin = bin.ok_or("profile needs --hearth BINARY")?;
    let moto = tokio::task::block_in_place(Moto::start);
    moto.secrets_client()
        .await
        .create_secret()
        .name(SECRET_ID)
        .secret_string(secret_value())
        .send()
        .await
        .map_err(|e| format!("CreateSecret: {e:?}"))?;
    let port = free_port();
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(moto.env())
        .env("HEARTH_PORT", port.to_string())
        .env("HEARTH_TOKEN", TOKEN)
        .env("HEARTH_METRICS_EMF", "false")
        .env("HEARTH_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("valgrind: {e}"))?;
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut http = loop {
        if let Ok(mut h) = Http::connect(port, Some(TOKEN)).await {
            if h.get_ok("/health").await.is_ok() {
                break h;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("hearth under valgrind did not answer within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let path = crate::secrets::path();
    for _ in 0..200 {
        http.get_ok(&path).await?;
    }
    ctl(&["-i", "on", &pid])?;
    for _ in 0..reads {
        http.get_ok(&path).await?;
    }
    ctl(&["-i", "off", &pid])?;
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let ann = Command::new("callgrind_annotate")
        .arg("--inclusive=no")
        .arg(&out)
        .output()
        .map_err(|e| format!("callgrind_annotate: {e}"))?;
    let text = String::from_utf8_lossy(&ann.stdout).to_string();
    let total: f64 = text
        .lines()
        .find(|l| l.contains("PROGRAM TOTALS"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.replace(',', "").parse().ok())
        .ok_or_else(|| format!("no totals in callgrind_annotate output:\n{text}"))?;
    println!("{}", text.lines().take(60).collect::<Vec<_>>().join("\n"));
    let per = total / reads as f64;
    println!(
        "\n{reads} cached reads: {total:.0} instructions in hearth = {per:.0} per read ({})",
        out.display()
    );
    Ok(per)
}
