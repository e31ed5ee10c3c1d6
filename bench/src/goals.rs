//! The goals, evaluated against this run's figures: met or missed, and by how much.

use crate::report::{Goal, Report};
use crate::secrets::{AGENT, FLOOR, HEARTH, NGINX};

fn goal(r: &mut Report, text: &str, measured: String, met: bool, by: String) {
    r.goals.push(Goal {
        goal: text.into(),
        measured,
        met,
        by,
    });
}

fn pct(x: f64, limit: f64) -> String {
    format!("{:.0}% of the limit", 100.0 * x / limit)
}

/// Appends one [`Goal`] per goal that could be evaluated (a missing figure is a failure
/// already).
pub fn evaluate(r: &mut Report) {
    // The cached read over HTTP, at every concurrency: against the static ceiling, AWS's
    // agent, and the floor.
    for conns in [1usize, 16, 64] {
        let Some(c) = r.comparison(&format!("read_c{conns}")).cloned() else {
            continue;
        };
        let (Some(h), nginx, agent) = (c.row(HEARTH), c.row(NGINX), c.row(AGENT)) else {
            continue;
        };
        if let Some(n) = nginx {
            let x = h.summary.ops_per_s / n.summary.ops_per_s;
            goal(
                r,
                &format!("cached read at {conns} conn: throughput ≥ 0.95× static nginx"),
                format!(
                    "{:.0} vs {:.0} req/s = {x:.2}×",
                    h.summary.ops_per_s, n.summary.ops_per_s
                ),
                x >= 0.95,
                format!("{:.2} of the 0.95 wanted", x / 0.95),
            );
        }
        if let Some(a) = agent {
            let x = h.summary.ops_per_s / a.summary.ops_per_s;
            goal(
                r,
                &format!("cached read at {conns} conn: throughput never below AWS's agent"),
                format!(
                    "{:.0} vs {:.0} req/s = {x:.2}×",
                    h.summary.ops_per_s, a.summary.ops_per_s
                ),
                x >= 1.0,
                format!("{x:.2}× the agent"),
            );
            goal(
                r,
                &format!("cached read at {conns} conn: p99 no worse than AWS's agent"),
                format!("{:.0} vs {:.0} µs", h.summary.p99_us, a.summary.p99_us),
                h.summary.p99_us <= a.summary.p99_us,
                format!(
                    "{:.2}× the agent's p99",
                    h.summary.p99_us / a.summary.p99_us
                ),
            );
        }
        if conns == 1 {
            if let Some(f) = c.row(FLOOR) {
                let d = h.summary.p50_us - f.summary.p50_us;
                goal(
                    r,
                    "Hearth's cost over the trivial-server floor ≤ 10 µs p50 (1 conn, wrk)",
                    format!(
                        "{d:+.0} µs ({:.0} vs {:.0} µs)",
                        h.summary.p50_us, f.summary.p50_us
                    ),
                    d <= 10.0,
                    pct(d.max(0.0), 10.0),
                );
            }
            let p50 = h.summary.p50_us;
            goal(
                r,
                "cached secret read p50 ≤ 50 µs (1 conn, wrk)",
                format!("{p50:.0} µs"),
                p50 <= 50.0,
                pct(p50, 50.0),
            );
            if let Some(direct) = r
                .comparison("secret_read")
                .and_then(|s| s.row("direct GetSecretValue"))
                .map(|d| d.summary.p50_us)
            {
                let x = direct / p50;
                goal(
                    r,
                    "cached read ≥ 50× faster than direct GetSecretValue (moto)",
                    format!("{x:.0}× ({p50:.0} µs vs {direct:.0} µs p50)"),
                    x >= 50.0,
                    format!("{:.1}× the target", x / 50.0),
                );
            }
        }
    }
    if let Some(c) = r.comparison("secret_read").cloned() {
        let tcp = c.row("hearth::Client.secret (typed");
        let unix = c.row("hearth::Client.secret over the Unix");
        if let (Some(tcp), Some(unix)) = (tcp, unix) {
            let (t, u) = (tcp.summary.p50_us, unix.summary.p50_us);
            let gain = 1.0 - u / t;
            goal(
                r,
                "the Unix-domain socket option beats loopback TCP by ≥ 20% p50 (typed client, cached read)",
                format!("{:.0}% faster ({u:.0} vs {t:.0} µs)", gain * 100.0),
                gain >= 0.20,
                format!("{:.0}% of the 20% asked", gain * 100.0 / 0.20),
            );
        }
    }
    if let Some(c) = r.comparison("encrypt_1k").cloned() {
        if let Some(h) = c.rows.first() {
            let per = h.kms_per_10k.unwrap_or(f64::MAX);
            let total = r
                .kms_totals
                .map(|(g, e)| format!("; {g} GenerateDataKey for {e} encrypts since start, prewarm's key included"))
                .unwrap_or_default();
            goal(r, "10,000 encrypts → 1 GenerateDataKey", format!("{per:.2} GenerateDataKey per 10,000 encrypts, counted over {} measured encrypts{total}", h.summary.n), h.summary.n >= 10_000 && per <= 1.0, format!("{per:.2} of the 1 allowed"));
        }
    }
    if let Some(c) = r.comparison("rls_select").cloned() {
        if let (Some(h), Some(pool)) = (c.rows.first(), c.rows.get(2)) {
            let x = c.speedup(h);
            goal(
                r,
                "RLS query ≥ 30× faster than connect-per-invocation",
                format!("{x:.0}×"),
                x >= 30.0,
                format!("{:.1}× the target", x / 30.0),
            );
            let d = h.summary.p50_us - pool.summary.p50_us;
            goal(
                r,
                "RLS query through Hearth within 60 µs p50 of the in-process pool",
                format!(
                    "{d:+.0} µs ({:.0} vs {:.0} µs)",
                    h.summary.p50_us, pool.summary.p50_us
                ),
                d <= 60.0,
                pct(d.max(0.0), 60.0),
            );
        }
    }
    if let Some(ms) = r.startup_health_ms {
        goal(
            r,
            "process start → serving ≤ 15 ms",
            format!("{ms:.2} ms (p50)"),
            ms <= 15.0,
            pct(ms, 15.0),
        );
    }
    if let Some(ms) = r.overhead_ms {
        goal(
            r,
            "per-invoke overhead ≤ 1 ms",
            format!(
                "{ms:.0} ms p50 in the simulator's whole (truncated) milliseconds, i.e. under {} ms",
                ms + 1.0
            ),
            ms < 1.0,
            "below the simulator's 1 ms resolution".into(),
        );
    }
    if let Some(b) = r.binary_bytes {
        let mb = b as f64 / 1e6;
        goal(
            r,
            "stripped binary ≤ 10 MB (10^6 bytes)",
            format!(
                "{mb:.2} MB ({:.2} MiB){}",
                b as f64 / 1_048_576.0,
                r.agent_bytes
                    .map(|a| format!("; AWS's agent: {:.2} MB", a as f64 / 1e6))
                    .unwrap_or_default()
            ),
            mb <= 10.0,
            pct(mb, 10.0),
        );
    }
    if let Some(f) = r.figure("idle RSS").cloned() {
        let mb = f.value * 1_048_576.0 / 1e6;
        goal(
            r,
            "idle RSS ≤ 25 MB (10^6 bytes)",
            format!("{mb:.1} MB ({:.1} MiB)", f.value),
            mb <= 25.0,
            pct(mb, 25.0),
        );
    }
}
