//! The cached secret read, side by side with what a user would pick instead:
//!
//! - over HTTP at 1, 16 and 64 keep-alive connections, all through wrk in the same run:
//!   Hearth, AWS's Secrets Manager Agent (same moto, same secret, same request), a static
//!   nginx serving the same body (the machine's HTTP ceiling) and the trivial hyper floor;
//! - in a Rust function: AWS's in-process caching library (`aws_secretsmanager_caching`),
//!   Hearth through its typed client (`hearth::Client`), and a direct `GetSecretValue` per
//!   request (the AWS SDK against moto).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use aws_secretsmanager_caching::SecretsManagerCachingClient;
use hearth_tests::hearth::TOKEN;

use crate::agent::Agent;
use crate::client::Http;
use crate::extension::rss_kib;
use crate::floor::Floor;
use crate::load::{self, Load};
use crate::nginx::Nginx;
use crate::peers::{secret_value, Peers, SECRET_ID};
use crate::report::{Comparison, Figure, Row};
use crate::stats::{measure, Budget, Summary};

/// The request path of the cached read (the same for Hearth and AWS's agent).
pub fn path() -> String {
    format!(
        "/secretsmanager/get?secretId={}",
        SECRET_ID.replace('/', "%2F")
    )
}

/// Row names, shared with the goals.
pub const HEARTH: &str = "Hearth GET /secretsmanager/get";
/// AWS's agent.
pub const AGENT: &str = "AWS Secrets Manager Agent";
/// The static ceiling.
pub const NGINX: &str = "static nginx, same body";
/// The floor.
pub const FLOOR: &str = "trivial hyper server, same body";

/// What the section produced.
#[derive(Default)]
pub struct Out {
    /// Comparisons.
    pub comparisons: Vec<Comparison>,
    /// Figures (RSS under load of Hearth and the agent).
    pub figures: Vec<Figure>,
    /// Sections that could not run.
    pub failures: Vec<String>,
}

/// Checks that a server answers the cached read with the benchmark's secret.
async fn check(port: u16, token: Option<&str>) -> Result<bytes::Bytes, String> {
    let mut http = Http::connect(port, token).await?;
    let body = http.get_ok(&path()).await?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if v["SecretString"].as_str() != Some(secret_value().as_str()) {
        return Err(format!("wrong secret answered on port {port}: {v}"));
    }
    Ok(body)
}

/// Runs the HTTP side by side (1, 16, 64 connections) and the in-process comparison.
pub async fn run(p: &Peers, agent_bin: Option<&std::path::Path>, quick: bool) -> Out {
    let mut out = Out::default();
    let secs = if quick { 2 } else { 5 };
    let body = match check(p.hearth.port, Some(TOKEN)).await {
        Ok(b) => b,
        Err(e) => {
            out.failures.push(format!("secret read: {e}"));
            return out;
        }
    };
    let agent = match agent_bin {
        Some(bin) => match Agent::start(bin, &p.moto.env()) {
            Ok(a) => match check(a.port, Some(TOKEN)).await {
                Ok(_) => Some(a),
                Err(e) => {
                    out.failures.push(format!("AWS's agent: {e}"));
                    None
                }
            },
            Err(e) => {
                out.failures.push(format!("AWS's agent: {e}"));
                None
            }
        },
        None => {
            out.failures.push(
                "AWS's agent: not installed (scripts/bench.sh installs it; or set HEARTH_BENCH_AGENT)"
                    .into(),
            );
            None
        }
    };
    let nginx = match Nginx::start(&body) {
        Ok(n) => Some(n),
        Err(e) => {
            out.failures.push(format!("static nginx: {e}"));
            None
        }
    };
    let floor = match Floor::start(body.clone()) {
        Ok(f) => f,
        Err(e) => {
            out.failures.push(format!("floor: {e}"));
            return out;
        }
    };
    let (hearth_pid, agent_pid) = (p.hearth.proc.pid(), agent.as_ref().map(Agent::pid));
    let (mut hearth_peak, mut agent_peak) = (0u64, 0u64);
    for conns in [1usize, 16, 64] {
        let base = Load::get(0, &path()).token(TOKEN).with(conns, secs);
        let mut rows = Vec::new();
        let res: Result<(), String> = async {
            let h = load::run(&base.on(p.hearth.port), || {
                if let Some((rss, _)) = rss_kib(hearth_pid) {
                    hearth_peak = hearth_peak.max(rss);
                }
            })
            .await?;
            rows.push(Row::new(HEARTH, h, "token header, cache hit"));
            if let (Some(a), Some(pid)) = (&agent, agent_pid) {
                let s = load::run(&base.on(a.port), || {
                    if let Some((rss, _)) = rss_kib(pid) {
                        agent_peak = agent_peak.max(rss);
                    }
                })
                .await?;
                rows.push(Row::new(
                    AGENT,
                    s,
                    "2.1.0, its defaults but log level warn, same token header, cache hit",
                ));
            }
            if let Some(n) = &nginx {
                let s = load::run(&base.on(n.port), || {}).await?;
                rows.push(Row::new(NGINX, s, "2 workers, static file, access log off"));
            }
            let f = load::run(&base.on(floor.port), || {}).await?;
            rows.push(Row::new(FLOOR, f, "one thread; wrk's floor"));
            Ok(())
        }
        .await;
        if let Err(e) = res {
            out.failures
                .push(format!("secret read at {conns} connections: {e}"));
            continue;
        }
        let baseline = rows.iter().position(|r| r.name == NGINX).unwrap_or(0);
        let mut notes = vec![format!(
            "wrk -t{} -c{conns} -d{secs}s, same request (path, token header) to every server; every server answered the same {} bytes.",
            conns.clamp(1, 2),
            body.len()
        )];
        if let (Some(h), Some(f)) = (
            rows.iter().find(|r| r.name == HEARTH),
            rows.iter().find(|r| r.name == FLOOR),
        ) {
            notes.push(format!(
                "Hearth over the floor: p50 {:+.0} µs, p99 {:+.0} µs.",
                h.summary.p50_us - f.summary.p50_us,
                h.summary.p99_us - f.summary.p99_us
            ));
        }
        out.comparisons.push(Comparison {
            id: format!("read_c{conns}"),
            title: format!(
                "Cached secret read, {conns} keep-alive connection{}: Hearth, AWS's agent, the static ceiling, the floor",
                if conns == 1 { "" } else { "s" }
            ),
            baseline,
            rows,
            notes,
        });
    }
    out.figures.push(Figure {
        name: "Hearth RSS under the read load (peak)".into(),
        value: hearth_peak as f64 / 1024.0,
        unit: "MiB".into(),
        note: "highest VmRSS sampled every 50 ms while wrk drove 1, 16 and 64 connections (Hearth also holds the KMS and DB caches)".into(),
    });
    if agent.is_some() {
        out.figures.push(Figure {
            name: "AWS agent RSS under the read load (peak)".into(),
            value: agent_peak as f64 / 1024.0,
            unit: "MiB".into(),
            note: "the same, for AWS's agent (secrets only)".into(),
        });
    }
    drop(agent);

    match in_process(p, quick).await {
        Ok(c) => out.comparisons.push(c),
        Err(e) => out.failures.push(format!("in-process secret read: {e}")),
    }
    out
}

/// A Rust function's view: AWS's caching library in process, Hearth through `hearth::Client`,
/// and a direct `GetSecretValue` per request.
async fn in_process(p: &Peers, quick: bool) -> Result<Comparison, String> {
    let scale = if quick { 20 } else { 1 };
    let cfg = p.moto.sdk_config().await;
    let caching = SecretsManagerCachingClient::from_builder(
        aws_sdk_secretsmanager::config::Builder::from(&cfg),
        NonZeroUsize::new(1000).ok_or("cache size")?,
        Duration::from_secs(300),
        false,
    )
    .await
    .map_err(|e| format!("aws_secretsmanager_caching: {e}"))?;
    let first = caching
        .get_secret_value(SECRET_ID, None, None, false)
        .await
        .map_err(|e| format!("aws_secretsmanager_caching: {e}"))?;
    if first.secret_string.as_deref() != Some(secret_value().as_str()) {
        return Err("aws_secretsmanager_caching returned the wrong secret".into());
    }
    let mut caching = caching;
    let library = measure(
        Budget::new(1000, 50_000, 10).scaled(scale),
        &mut caching,
        |c, _| {
            Box::pin(async move {
                c.get_secret_value(SECRET_ID, None, None, false)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("aws_secretsmanager_caching: {e}"))
            })
        },
    )
    .await?;

    let (typed, typed_unix) = typed_reads(
        [
            hearth::Client::builder().port(p.hearth.port),
            hearth::Client::builder().unix_socket(&p.hearth_socket),
        ],
        Budget::new(1000, 20_000, 10).scaled(scale),
    )
    .await?;

    let sm = p.moto.secrets_client().await;
    let direct = measure(Budget::new(10, 300, 10).scaled(scale), &mut (), |_, _| {
        let sm = sm.clone();
        Box::pin(async move {
            sm.get_secret_value()
                .secret_id(SECRET_ID)
                .send()
                .await
                .map_err(|e| format!("GetSecretValue: {e:?}"))
                .map(|_| ())
        })
    })
    .await?;
    Ok(Comparison {
        id: "secret_read".into(),
        title: "Secret read from a Rust function: in-process cache, Hearth's typed client, GetSecretValue per request".into(),
        baseline: 3,
        rows: vec![
            Row::new("aws_secretsmanager_caching (AWS's in-process cache)", library, "get_secret_value from a warm cache, in the function's own process: no hop, but a cache per process (no sharing with other runtimes, no prewarm, no stale-on-error across restarts)"),
            Row::new("hearth::Client.secret (typed client over loopback HTTP)", typed, "one keep-alive connection; timed around the call, decoding included"),
            Row::new("hearth::Client.secret over the Unix-domain socket (HEARTH_UNIX_SOCKET)", typed_unix, "the same client and server on a socket file instead of 127.0.0.1; alternating request by request with the TCP row"),
            Row::new("direct GetSecretValue per request (AWS SDK → moto)", direct, "one SDK client, built once; moto's latency, not AWS's"),
        ],
        notes: vec!["Timed in this process, per call (nearest-rank percentiles). The typed client's figure includes its own HTTP client (hyper) and JSON decoding; the HTTP tables above measure the server with wrk.".into()],
    })
}

/// Cached reads through two typed clients (TCP, then the Unix socket), one checked read
/// each, then alternating request by request, so that both see the same machine.
async fn typed_reads(
    builders: [hearth::ClientBuilder; 2],
    budget: Budget,
) -> Result<(Summary, Summary), String> {
    let mut clients = Vec::with_capacity(2);
    for b in builders {
        let c = b.token(TOKEN).build().map_err(|e| e.to_string())?;
        let got = c.secret(SECRET_ID).await.map_err(|e| e.to_string())?;
        if got.secret_string.as_deref() != Some(secret_value().as_str()) {
            return Err(format!(
                "hearth::Client at {} returned the wrong secret",
                c.addr()
            ));
        }
        clients.push(c);
    }
    for i in 0..budget.warmup * 2 {
        clients[i % 2]
            .secret(SECRET_ID)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut samples = [
        Vec::with_capacity(budget.count),
        Vec::with_capacity(budget.count),
    ];
    let start = Instant::now();
    for i in 0..budget.count * 2 {
        if start.elapsed() > budget.time * 2 {
            break;
        }
        let t = Instant::now();
        clients[i % 2]
            .secret(SECRET_ID)
            .await
            .map_err(|e| e.to_string())?;
        samples[i % 2].push(t.elapsed());
    }
    let [mut tcp, mut unix] = samples;
    let summary = |v: &mut Vec<Duration>| {
        let elapsed: Duration = v.iter().sum();
        Summary::of(v, elapsed)
    };
    Ok((summary(&mut tcp), summary(&mut unix)))
}
