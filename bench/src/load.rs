//! The calibrated load generator every HTTP figure goes through: `wrk` (C, epoll, one
//! keep-alive connection per slot, no pipelining) driven by a small Lua script that sets the
//! method, body and headers and prints its latency histogram's percentiles as one JSON line.
//!
//! Why wrk and not our own client: measured side by side against the same trivial server,
//! this harness's hyper client cost about 100 µs per request on this machine, wrk about 30;
//! a client that costs more than the server it measures reports its own cost (issue 16). The
//! report prints wrk's floor (a trivial server answering the same bytes) beside every HTTP row,
//! so each figure can be read as "floor + what the server adds".
//!
//! wrk runs with one thread per connection up to two (the machine has two cores, which the
//! server shares), a one-second unmeasured warm-up, then the measured window.

use std::io::Write as _;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::stats::Summary;

/// One load: what to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Load {
    /// Port on 127.0.0.1.
    pub port: u16,
    /// Request path with query.
    pub path: String,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Request body (JSON), for POST.
    pub body: Option<String>,
    /// More bodies: when set, requests cycle through `body` and these.
    pub more_bodies: Vec<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Concurrent keep-alive connections.
    pub conns: usize,
    /// Measured window.
    pub secs: u64,
}

impl Load {
    /// A GET of `path` on `port`.
    pub fn get(port: u16, path: &str) -> Load {
        Load {
            port,
            path: path.into(),
            method: "GET",
            body: None,
            more_bodies: vec![],
            headers: vec![],
            conns: 1,
            secs: 5,
        }
    }

    /// A POST of `body` (JSON) to `path` on `port`.
    pub fn post(port: u16, path: &str, body: &serde_json::Value) -> Load {
        Load {
            port,
            path: path.into(),
            method: "POST",
            body: Some(body.to_string()),
            more_bodies: vec![],
            headers: vec![("Content-Type".into(), "application/json".into())],
            conns: 1,
            secs: 5,
        }
    }

    /// Requests cycle through the first body and `more`.
    pub fn cycling(mut self, more: Vec<serde_json::Value>) -> Load {
        self.more_bodies = more.iter().map(|v| v.to_string()).collect();
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Load {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// With Hearth's (and AWS's agent's) token header.
    pub fn token(self, token: &str) -> Load {
        self.header(hearth::wire::TOKEN_HEADER, token)
    }

    /// With `conns` connections for `secs` seconds.
    pub fn with(mut self, conns: usize, secs: u64) -> Load {
        self.conns = conns;
        self.secs = secs;
        self
    }

    /// The same load against another port (the floor beside a server).
    pub fn on(&self, port: u16) -> Load {
        Load {
            port,
            ..self.clone()
        }
    }

    /// The Lua script wrk runs: request shape, and a `done` that prints the summary.
    fn script(&self) -> String {
        let mut s = format!("wrk.method = \"{}\"\n", self.method);
        if let Some(b) = &self.body {
            s.push_str(&format!("wrk.body = [==[{b}]==]\n"));
        }
        for (k, v) in &self.headers {
            s.push_str(&format!("wrk.headers[\"{k}\"] = [==[{v}]==]\n"));
        }
        if let (Some(first), false) = (&self.body, self.more_bodies.is_empty()) {
            // Pre-formatted requests, cycled: no per-request formatting cost in the client.
            s.push_str("local bodies = {");
            for b in std::iter::once(first).chain(&self.more_bodies) {
                s.push_str(&format!("[==[{b}]==],"));
            }
            s.push_str("}\nlocal reqs = {}\nlocal i = 0\n");
            s.push_str("function init(args)\n  for k, b in ipairs(bodies) do reqs[k] = wrk.format(nil, nil, nil, b) end\nend\n");
            s.push_str("function request()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n");
        }
        s.push_str(
            r#"function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('HEARTH_WRK {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.2f,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#,
        );
        s
    }
}

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    /// p50, p99, mean and requests per second over the measured window.
    pub summary: Summary,
    /// Socket errors plus answers with status ≥ 400.
    pub errors: u64,
}

/// Parses the `HEARTH_WRK {...}` line the script prints.
pub fn parse(stdout: &str) -> Option<WrkResult> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("HEARTH_WRK "))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let n = v["requests"].as_u64()?;
    let dur = v["duration_us"].as_f64()?;
    Some(WrkResult {
        summary: Summary {
            n: n as usize,
            p50_us: v["p50_us"].as_f64()?,
            p99_us: v["p99_us"].as_f64()?,
            mean_us: v["mean_us"].as_f64()?,
            ops_per_s: if dur > 0.0 {
                n as f64 / (dur / 1e6)
            } else {
                0.0
            },
        },
        errors: v["errors"].as_u64()?,
    })
}

async fn wrk_once(l: &Load, secs: u64, on_tick: &mut dyn FnMut()) -> Result<WrkResult, String> {
    let mut script = tempfile::Builder::new()
        .suffix(".lua")
        .tempfile()
        .map_err(|e| format!("wrk script: {e}"))?;
    script
        .write_all(l.script().as_bytes())
        .map_err(|e| format!("wrk script: {e}"))?;
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", l.conns.clamp(1, 2)))
        .arg(format!("-c{}", l.conns))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script.path())
        .arg(format!("http://127.0.0.1:{}{}", l.port, l.path))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
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
    parse(&text).ok_or_else(|| format!("cannot parse wrk output:\n{text}"))
}

/// Runs `l`: one second unmeasured, then the measured window. `on_tick` runs every 50 ms of
/// the measured window (to sample a server's RSS). Any error answer fails the load.
pub async fn run(l: &Load, mut on_tick: impl FnMut()) -> Result<Summary, String> {
    wrk_once(l, 1, &mut || {}).await?;
    let r = wrk_once(l, l.secs, &mut on_tick).await?;
    if r.errors > 0 {
        return Err(format!(
            "wrk saw {} errors (socket errors or status ≥ 400) on {} {}",
            r.errors, l.method, l.path
        ));
    }
    if r.summary.n == 0 {
        return Err(format!(
            "wrk completed no request on {} {}",
            l.method, l.path
        ));
    }
    Ok(r.summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_line() {
        let out = "Running 5s test\nHEARTH_WRK {\"requests\":100000,\"duration_us\":5000000,\"p50_us\":31,\"p99_us\":70,\"mean_us\":33.50,\"errors\":0}\n";
        let r = parse(out).expect("parsed");
        assert_eq!(r.summary.n, 100_000);
        assert!((r.summary.ops_per_s - 20_000.0).abs() < 1e-6);
        assert!((r.summary.p50_us - 31.0).abs() < 1e-9);
        assert!((r.summary.p99_us - 70.0).abs() < 1e-9);
        assert_eq!(r.errors, 0);
        assert!(parse("no summary line").is_none());
    }

    #[test]
    fn script_carries_method_body_and_headers() {
        let l = Load::post(1, "/v1/kms/encrypt", &serde_json::json!({"a": 1})).token("t0k");
        let s = l.script();
        assert!(s.contains("wrk.method = \"POST\""));
        assert!(s.contains("wrk.body = [==[{\"a\":1}]==]"));
        assert!(s.contains("[==[t0k]==]"));
    }
}
