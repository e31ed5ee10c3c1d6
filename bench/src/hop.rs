//! The HTTP hop itself: a cached secret read at 1, 16 and 64 concurrent keep-alive
//! connections, next to the loopback floor (a trivial hyper server answering the same bytes);
//! and the same under `wrk`, a load generator that is not ours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_tests::hearth::TOKEN;
use tokio::process::Command;
use tokio::sync::Barrier;

use crate::client::Http;
use crate::report::{Comparison, Row};
use crate::stats::Summary;

/// `conns` keep-alive connections, each sending requests back to back for `window` (after a
/// short warm-up), at most `max_per_conn` each. Latencies of all connections together.
pub async fn concurrent(
    port: u16,
    token: Option<&str>,
    path: &str,
    conns: usize,
    window: Duration,
    max_per_conn: usize,
) -> Result<Summary, String> {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let barrier = barrier.clone();
        let token = token.map(str::to_owned);
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            let http = Http::connect(port, token.as_deref()).await;
            let mut http = match http {
                Ok(h) => h,
                Err(e) => {
                    barrier.wait().await;
                    return Err(e);
                }
            };
            let mut warm = Ok(());
            for _ in 0..20 {
                if let Err(e) = http.get_ok(&path).await {
                    warm = Err(e);
                    break;
                }
            }
            barrier.wait().await;
            warm?;
            let start = Instant::now();
            let mut samples = Vec::with_capacity(max_per_conn.min(100_000));
            while samples.len() < max_per_conn && start.elapsed() < window {
                let t = Instant::now();
                http.get_ok(&path).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(samples)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| format!("client task: {e}"))??);
    }
    let elapsed = start.elapsed();
    Ok(Summary::of(&mut all, elapsed))
}

/// Runs the hop comparisons (our client), one per concurrency level.
pub async fn run(
    hearth_port: u16,
    floor_port: u16,
    path: &str,
    quick: bool,
) -> Result<Vec<Comparison>, String> {
    let window = Duration::from_secs(if quick { 1 } else { 3 });
    let mut out = Vec::new();
    for conns in [1usize, 16, 64] {
        let floor = concurrent(floor_port, None, path, conns, window, 200_000).await?;
        let hearth = concurrent(hearth_port, Some(TOKEN), path, conns, window, 200_000).await?;
        out.push(Comparison {
            id: format!("hop_c{conns}"),
            title: format!("HTTP hop, cached secret read, {conns} concurrent keep-alive connection{}", if conns == 1 { "" } else { "s" }),
            baseline: 1,
            rows: vec![
                Row::new("Hearth GET /secretsmanager/get", hearth, format!("hop + token check + cache lookup + JSON: p50 {:+.1} µs over the floor", hearth.p50_us - floor.p50_us)),
                Row::new("loopback floor (trivial hyper server, same body)", floor, "the cost of HTTP/1.1 over loopback alone"),
            ],
            notes: vec!["Client: this binary's hyper connections, each sending back to back for the window; it shares the 2 cores with the server.".into()],
        });
    }
    Ok(out)
}

/// What wrk reported.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    /// Summary (p50 and p99 from `--latency`, mean from the `Latency` line).
    pub summary: Summary,
    /// Non-2xx answers plus socket errors.
    pub errors: u64,
}

/// Runs `wrk` for `secs` with `conns` connections; `on_tick` is called every 50 ms meanwhile
/// (to sample the server's RSS).
pub async fn wrk(
    url: &str,
    token: Option<&str>,
    conns: usize,
    secs: u64,
    mut on_tick: impl FnMut(),
) -> Result<WrkResult, String> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", conns.min(2)))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg("--latency")
        .arg("--timeout")
        .arg("5s");
    if let Some(t) = token {
        cmd.arg("-H")
            .arg(format!("{}: {t}", hearth::wire::TOKEN_HEADER));
    }
    cmd.arg(url).kill_on_drop(true);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let out = child.wait_with_output();
    tokio::pin!(out);
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let output = loop {
        tokio::select! {
            o = &mut out => break o.map_err(|e| format!("wrk: {e}"))?,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                on_tick();
                if Instant::now() > deadline {
                    return Err("wrk did not finish in time".into());
                }
            }
        }
    };
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot parse wrk output:\n{text}"))
}

/// A wrk duration (`123.45us`, `1.20ms`, `2.00s`) in µs.
fn wrk_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * mult)
}

/// Parses wrk's `--latency` report.
pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut p50 = None;
    let mut p99 = None;
    let mut mean = None;
    let mut rps = None;
    let mut n = None;
    let mut errors = 0u64;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", avg, ..] if wrk_us(avg).is_some() => mean = wrk_us(avg),
            ["50%", v] => p50 = wrk_us(v),
            ["99%", v] => p99 = wrk_us(v),
            ["Requests/sec:", v] => rps = v.parse::<f64>().ok(),
            [count, "requests", "in", ..] => n = count.parse::<usize>().ok(),
            ["Non-2xx", "or", "3xx", "responses:", v] => errors += v.parse::<u64>().unwrap_or(1),
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    Some(WrkResult {
        summary: Summary {
            n: n?,
            p50_us: p50?,
            p99_us: p99?,
            mean_us: mean?,
            ops_per_s: rps?,
        },
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:1/x\n  2 threads and 16 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   120.50us   40.00us   3.00ms   90.00%\n    Req/Sec    60.00k     2.00k   70.00k    80.00%\n  Latency Distribution\n     50%  110.00us\n     75%  130.00us\n     90%  160.00us\n     99%    1.20ms\n  1200000 requests in 10.00s, 300.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 0\nRequests/sec: 120000.00\nTransfer/sec:     30.00MB\n";
        let r = parse_wrk(text);
        assert!(r.is_some());
        let r = r.unwrap_or(WrkResult {
            summary: Summary::of(&mut [], Duration::ZERO),
            errors: 99,
        });
        assert_eq!(r.summary.n, 1_200_000);
        assert!((r.summary.p50_us - 110.0).abs() < 1e-9);
        assert!((r.summary.p99_us - 1200.0).abs() < 1e-9);
        assert!((r.summary.mean_us - 120.5).abs() < 1e-9);
        assert!((r.summary.ops_per_s - 120_000.0).abs() < 1e-9);
        assert_eq!(r.errors, 2);
    }
}
