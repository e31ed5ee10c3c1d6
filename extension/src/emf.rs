//! CloudWatch Embedded Metric Format writer.
//!
//! Lambda ships stdout to CloudWatch Logs, which turns EMF lines into metrics with no API
//! call and no added latency. One line carries, for the period since the last line:
//!
//! - every counter that changed, as its **delta** (unit Count), so a CloudWatch `Sum` over
//!   any period is the number of events in it and "> 0 in 5 minutes" means what it says;
//! - every latency observed, as an **array of individual values** in milliseconds (at most
//!   [`MAX_SAMPLES`], a uniform sample when there were more), so CloudWatch percentiles
//!   (`p90`) are percentiles of calls, not of per-line means;
//! - every gauge's current level, on every line written, so an alarm on a level (a breaker
//!   held open) keeps getting datapoints while the function is invoked.
//!
//! Dimensions: `FunctionName` only ([`DIMENSIONS`]); the template's alarms use the same.
//! The lifecycle calls [`Emf::flush`] at most once per invocation (when the Telemetry API
//! reports the invocation done, else at the next INVOKE), once a minute on Managed
//! Instances, and once at SHUTDOWN; a period in which nothing changed writes nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::metrics::{Metrics, Reading, MAX_SAMPLES};

/// The dimension set of every metric the extension writes.
pub const DIMENSIONS: &[&str] = &["FunctionName"];

/// Most metrics one EMF directive may declare (CloudWatch's limit); a line with more is
/// split into several directives over the same document.
const MAX_METRICS_PER_DIRECTIVE: usize = 100;

/// Writes EMF lines for a [`Metrics`] registry.
pub struct Emf {
    metrics: Arc<Metrics>,
    namespace: String,
    function_name: String,
    state: Mutex<State>,
}

struct State {
    /// Counter totals and gauge levels at the last line.
    last: BTreeMap<&'static str, u64>,
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
pub fn emf_name(name: &str) -> String {
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
    fn document(&self, last: &mut BTreeMap<&'static str, u64>) -> Option<Value> {
        let mut decl = Vec::new();
        let mut root = Map::new();
        let mut gauges = Vec::new();
        let mut changed = false;
        for (name, reading) in self.metrics.take_readings() {
            let (value, unit) = match reading {
                Reading::Count(n) => {
                    let before = last.insert(name, n).unwrap_or(0);
                    if n <= before {
                        continue;
                    }
                    changed = true;
                    (json!(n - before), "Count")
                }
                Reading::Level(n) => {
                    changed |= last.insert(name, n) != Some(n);
                    gauges.push((name, n));
                    continue;
                }
                Reading::Samples(us) => {
                    if us.is_empty() {
                        continue;
                    }
                    changed = true;
                    debug_assert!(us.len() <= MAX_SAMPLES);
                    let ms: Vec<Value> = us.iter().map(|u| json!(*u as f64 / 1000.0)).collect();
                    (Value::Array(ms), "Milliseconds")
                }
            };
            let n = emf_name(name);
            decl.push(json!({"Name": n, "Unit": unit}));
            root.insert(n, value);
        }
        if !changed {
            return None;
        }
        for (name, level) in gauges {
            let n = emf_name(name);
            decl.push(json!({"Name": n, "Unit": "Count"}));
            root.insert(n, json!(level));
        }
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        root.insert("FunctionName".into(), json!(self.function_name));
        let directives: Vec<Value> = decl
            .chunks(MAX_METRICS_PER_DIRECTIVE)
            .map(|metrics| {
                json!({
                    "Namespace": self.namespace,
                    "Dimensions": [DIMENSIONS],
                    "Metrics": metrics,
                })
            })
            .collect();
        root.insert(
            "_aws".into(),
            json!({"Timestamp": ts, "CloudWatchMetrics": directives}),
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
        assert_eq!(lines[0]["KmsLatency"], json!([4.0]));
        assert_eq!(lines[1]["SecretsHits"], 2);
        assert!(lines[1].get("KmsLatency").is_none());
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Hearth"
        );
        assert_eq!(lines[0]["FunctionName"], "fn");
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName"]])
        );
    }

    #[test]
    fn latencies_are_values_and_gauges_ride_every_line() {
        let m = Metrics::new();
        let buf = Buf::default();
        let emf = Emf::new(m.clone(), "H".into(), "fn".into(), Box::new(buf.clone()));
        let lat = m.latency("kms.latency");
        let open = m.gauge("aws.kms.breaker_open");
        let calls = m.counter("kms.decrypt_calls");
        for ms in [1, 2, 150] {
            lat.record(Duration::from_millis(ms));
        }
        open.set(1);
        assert!(emf.flush());
        assert!(!emf.flush(), "an unchanged gauge alone writes nothing");
        calls.inc();
        assert!(emf.flush());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["KmsLatency"], json!([1.0, 2.0, 150.0]));
        assert_eq!(lines[0]["AwsKmsBreakerOpen"], 1);
        assert_eq!(lines[1]["AwsKmsBreakerOpen"], 1, "the level rides along");
        assert_eq!(lines[1]["KmsDecryptCalls"], 1);
        assert!(lines[1].get("KmsLatency").is_none());
        let declared: Vec<&str> = lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, ["KmsDecryptCalls", "AwsKmsBreakerOpen"]);
    }

    #[test]
    fn every_metric_fits_in_directives_within_the_limit() {
        let m = Metrics::new();
        let buf = Buf::default();
        let emf = Emf::new(m.clone(), "H".into(), "fn".into(), Box::new(buf.clone()));
        for name in crate::metrics::NAMES {
            m.counter(name).inc();
        }
        assert!(emf.flush());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let doc: Value = serde_json::from_str(text.trim()).unwrap();
        let total: usize = doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let n = d["Metrics"].as_array().unwrap().len();
                assert!(n <= MAX_METRICS_PER_DIRECTIVE);
                n
            })
            .sum();
        assert_eq!(total, crate::metrics::NAMES.len());
    }

    #[test]
    fn names() {
        assert_eq!(emf_name("secrets.stale_serves"), "SecretsStaleServes");
    }
}
