//! CloudWatch Embedded Metric Format writer.
//!
//! Lambda ships stdout to CloudWatch Logs, which turns EMF lines into metrics with no API
//! call and no added latency. One line carries the change of every counter since the last
//! line, plus the mean of each latency over that period. The lifecycle calls [`Emf::flush`]
//! at most once per INVOKE event or per minute of activity, and once at SHUTDOWN; a period
//! in which nothing changed writes nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::metrics::{Metrics, Total};

/// Writes EMF lines for a [`Metrics`] registry.
pub struct Emf {
    metrics: Arc<Metrics>,
    namespace: String,
    function_name: String,
    state: Mutex<State>,
}

struct State {
    last: BTreeMap<&'static str, Total>,
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf")
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// `secrets.stale_serves` → `SecretsStaleServes`.
fn emf_name(name: &str) -> String {
    name.split(['.', '_'])
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

impl Emf {
    /// A writer to `out` (stdout in production).
    pub fn new(
        metrics: Arc<Metrics>,
        namespace: String,
        function_name: String,
        out: Box<dyn Write + Send>,
    ) -> Self {
        Self {
            metrics,
            namespace,
            function_name,
            state: Mutex::new(State {
                last: BTreeMap::new(),
                out,
            }),
        }
    }

    /// Builds the EMF document for the changes since the last flush, if any.
    fn document(&self, last: &mut BTreeMap<&'static str, Total>) -> Option<Value> {
        let mut metrics_decl = Vec::new();
        let mut root = Map::new();
        for (name, now) in self.metrics.totals() {
            let before = last.insert(name, now);
            let (value, unit) = match (now, before) {
                (Total::Count(n), Some(Total::Count(b))) if n > b => (json!(n - b), "Count"),
                (Total::Count(n), None) if n > 0 => (json!(n), "Count"),
                (Total::Level(n), b) if b != Some(Total::Level(n)) => (json!(n), "Count"),
                (Total::Latency { count, sum_us }, b) => {
                    let (bc, bs) = match b {
                        Some(Total::Latency { count, sum_us }) => (count, sum_us),
                        _ => (0, 0),
                    };
                    if count <= bc {
                        continue;
                    }
                    let mean_ms = (sum_us.saturating_sub(bs)) as f64 / (count - bc) as f64 / 1000.0;
                    (json!(mean_ms), "Milliseconds")
                }
                _ => continue,
            };
            let n = emf_name(name);
            metrics_decl.push(json!({"Name": n, "Unit": unit}));
            root.insert(n, value);
        }
        if metrics_decl.is_empty() {
            return None;
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        root.insert("FunctionName".into(), json!(self.function_name));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": ts,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": metrics_decl,
                }]
            }),
        );
        Some(Value::Object(root))
    }

    /// Writes one line with the changes since the last flush. Returns whether it wrote.
    pub fn flush(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { last, out } = &mut *st;
        match self.document(last) {
            Some(doc) => {
                // One write call per line, so lines never interleave with log lines.
                let line = format!("{doc}\n");
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_deltas_and_nothing_when_idle() {
        let m = Metrics::new();
        let buf = Buf::default();
        let emf = Emf::new(
            m.clone(),
            "Hearth".into(),
            "fn".into(),
            Box::new(buf.clone()),
        );
        let hits = m.counter("secrets.hits");
        let lat = m.latency("kms.latency");
        hits.add(3);
        lat.record(Duration::from_millis(4));
        assert!(emf.flush());
        assert!(!emf.flush(), "no change, no line");
        hits.add(2);
        assert!(emf.flush());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["SecretsHits"], 3);
        assert_eq!(lines[0]["KmsLatency"], 4.0);
        assert_eq!(lines[1]["SecretsHits"], 2);
        assert!(lines[1].get("KmsLatency").is_none());
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Hearth"
        );
        assert_eq!(lines[0]["FunctionName"], "fn");
    }

    #[test]
    fn names() {
        assert_eq!(emf_name("secrets.stale_serves"), "SecretsStaleServes");
    }
}
