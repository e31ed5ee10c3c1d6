//! The load generator's calibration, and the hop itself.
//!
//! - Calibration: the same trivial server (the floor, same body as the cached read) measured
//!   by wrk, by a tight hyper client (one connection, its own thread and single-threaded
//!   runtime) and by this harness's general-purpose client ([`crate::client::Http`] on the
//!   multi-threaded runtime, the client the committed report of 2026-11-23 used for every
//!   figure). Whichever has the lowest floor measures the servers; the report shows all three.
//! - Unix-domain socket vs loopback TCP: the same floor on both, the tight client on both.
//!   Lambda's `/tmp` is shared by the function and its extensions, so a UDS listener is
//!   possible; the rule is to adopt it only if it beats TCP by ≥ 20% p50. The two
//!   are measured in alternating rounds (order swapped each round), so a drift in the
//!   machine's speed during the run falls on both alike.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::client::Http;
use crate::floor::Floor;
use crate::load::{self, Load};
use crate::report::{Comparison, Row};
use crate::stats::Summary;

/// Where the tight client connects.
#[derive(Clone)]
enum Target {
    Tcp(u16),
    Unix(std::path::PathBuf),
}

/// `n` sequential GETs of `path` after `warmup`, on one keep-alive connection, from a
/// dedicated thread with a single-threaded runtime (no cross-thread wake-ups in the client).
fn tight(target: Target, path: &str, warmup: usize, n: usize) -> Result<Summary, String> {
    let mut samples = tight_samples(target, path, warmup, n)?;
    let elapsed: Duration = samples.iter().sum();
    Ok(Summary::of(&mut samples, elapsed))
}

/// The latencies behind [`tight`].
fn tight_samples(
    target: Target,
    path: &str,
    warmup: usize,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        rt.block_on(async move {
            macro_rules! drive {
                ($stream:expr) => {{
                    let (mut tx, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new($stream))
                            .await
                            .map_err(|e| format!("handshake: {e}"))?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    let mut samples = Vec::with_capacity(n);
                    for i in 0..warmup + n {
                        let t = Instant::now();
                        let req = Request::get(path.as_str())
                            .header(hyper::header::HOST, "127.0.0.1")
                            .body(Empty::<Bytes>::new())
                            .map_err(|e| format!("request: {e}"))?;
                        tx.ready().await.map_err(|e| format!("closed: {e}"))?;
                        let resp = tx
                            .send_request(req)
                            .await
                            .map_err(|e| format!("send: {e}"))?;
                        if !resp.status().is_success() {
                            return Err(format!("status {}", resp.status()));
                        }
                        resp.into_body()
                            .collect()
                            .await
                            .map_err(|e| format!("body: {e}"))?;
                        if i >= warmup {
                            samples.push(t.elapsed());
                        }
                    }
                    samples
                }};
            }
            let samples = match target {
                Target::Tcp(port) => {
                    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let _ = s.set_nodelay(true);
                    drive!(s)
                }
                Target::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(&p)
                        .await
                        .map_err(|e| format!("connect {}: {e}", p.display()))?;
                    drive!(s)
                }
            };
            Ok(samples)
        })
    })
    .join()
    .map_err(|_| "tight client thread panicked".to_string())?
}

/// The harness's general-purpose client, sequential, on the calling (multi-threaded) runtime.
async fn harness_client(port: u16, path: &str, warmup: usize, n: usize) -> Result<Summary, String> {
    let mut http = Http::connect(port, None).await?;
    for _ in 0..warmup {
        http.get_ok(path).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        http.get_ok(path).await?;
        samples.push(t.elapsed());
    }
    let elapsed: Duration = samples.iter().sum();
    Ok(Summary::of(&mut samples, elapsed))
}

/// Runs the calibration and the UDS comparison against floors answering `body`.
pub async fn run(body: Bytes, path: &str, quick: bool) -> Result<Vec<Comparison>, String> {
    let n = if quick { 5_000 } else { 50_000 };
    let secs = if quick { 2 } else { 5 };
    let floor = Floor::start(body.clone())?;
    let by_wrk = load::run(&Load::get(floor.port, path).with(1, secs), || {}).await?;
    let port = floor.port;
    let p = path.to_owned();
    let by_tight = tokio::task::spawn_blocking(move || tight(Target::Tcp(port), &p, 2_000, n))
        .await
        .map_err(|e| format!("tight client: {e}"))??;
    let by_harness = harness_client(floor.port, path, 2_000, n).await?;
    drop(floor);
    let calibration = Comparison {
        id: "calibration".into(),
        title: "Load generator calibration: three clients against the same trivial server, 1 connection".into(),
        baseline: 0,
        rows: vec![
            Row::new("wrk -t1 -c1 (used for every HTTP figure)", by_wrk, "the floor beside every HTTP row of this report"),
            Row::new("tight hyper client (own thread, single-threaded runtime)", by_tight, "used only for the UDS vs TCP comparison (wrk has no Unix-socket mode)"),
            Row::new("harness client (hyper on the multi-threaded runtime)", by_harness, "what the 2026-11-23 report measured every figure with"),
        ],
        notes: vec![format!(
            "Server: a hyper HTTP/1.1 server on one thread answering the cached read's {} bytes. ops/s here is 1 / mean latency for the two in-process clients (sequential requests). A client's floor is the least any server can score through it; every server figure in this report is read against wrk's.",
            body.len()
        )],
    };

    let dir = tempfile::Builder::new()
        .prefix("hearth-bench-uds-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let sock = dir.path().join("floor.sock");
    let tcp_floor = Floor::start(body.clone())?;
    let uds_floor = Floor::start_unix(body.clone(), &sock)?;
    const ROUNDS: usize = 10;
    let (mut tcp, mut uds) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for round in 0..ROUNDS {
        let sides = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_tcp in sides {
            let target = if is_tcp {
                Target::Tcp(tcp_floor.port)
            } else {
                Target::Unix(sock.clone())
            };
            let p = path.to_owned();
            let got =
                tokio::task::spawn_blocking(move || tight_samples(target, &p, 500, n / ROUNDS))
                    .await
                    .map_err(|e| format!("tight client: {e}"))??;
            if is_tcp { &mut tcp } else { &mut uds }.extend(got);
        }
    }
    drop((tcp_floor, uds_floor));
    let summary = |mut v: Vec<Duration>| {
        let elapsed: Duration = v.iter().sum();
        Summary::of(&mut v, elapsed)
    };
    let (tcp, uds) = (summary(tcp), summary(uds));
    let gain = 100.0 * (tcp.p50_us - uds.p50_us) / tcp.p50_us;
    let verdict = if gain >= 20.0 {
        format!("UDS beats loopback TCP by {gain:.0}% p50 on the floor, at or over the 20% bar. Hearth offers it as an option (HEARTH_UNIX_SOCKET); TCP stays the default.")
    } else {
        format!("UDS vs loopback TCP on the floor: {gain:.0}% p50, under the 20% bar in this run. Hearth's HEARTH_UNIX_SOCKET stays an option, off by default: the typed-client rows below measure it through Hearth itself.")
    };
    let uds_cmp = Comparison {
        id: "uds_vs_tcp".into(),
        title: "The hop itself: Unix-domain socket vs loopback TCP (same trivial server, tight client, 1 connection)".into(),
        baseline: 0,
        rows: vec![
            Row::new("loopback TCP 127.0.0.1 (TCP_NODELAY)", tcp, "Hearth's default listener"),
            Row::new("Unix-domain socket in a temp dir", uds, "what a /tmp socket shared by function and extension gives (HEARTH_UNIX_SOCKET)"),
        ],
        notes: vec![verdict, format!("{ROUNDS} alternating rounds per side, order swapped each round; ops/s here is 1 / mean latency (sequential requests).")],
    };
    Ok(vec![calibration, uds_cmp])
}
