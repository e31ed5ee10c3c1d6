//! The report: comparisons (each side against a baseline measured in the same run), single
//! figures, goals, the machine and the versions; written as Markdown and as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::stats::{round2, Summary};

/// One side of a comparison.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Its figures.
    pub summary: Summary,
    /// KMS calls per 10,000 operations, where that applies.
    pub kms_per_10k: Option<f64>,
    /// Anything a reader needs to read the figure right.
    pub note: String,
}

impl Row {
    /// A row without KMS counts.
    pub fn new(name: impl Into<String>, summary: Summary, note: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            summary,
            kms_per_10k: None,
            note: note.into(),
        }
    }
}

/// Several ways of doing one thing, measured side by side; `rows[baseline]` is the baseline.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Stable identifier (JSON key).
    pub id: String,
    /// Heading.
    pub title: String,
    /// Index of the baseline row.
    pub baseline: usize,
    /// The sides.
    pub rows: Vec<Row>,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
}

impl Comparison {
    /// Baseline p50 over the row's p50: how many times faster than the baseline.
    pub fn speedup(&self, row: &Row) -> f64 {
        let base = self.rows.get(self.baseline).map(|r| r.summary.p50_us);
        match base {
            Some(b) if row.summary.p50_us > 0.0 => b / row.summary.p50_us,
            _ => 0.0,
        }
    }

    /// The row's ops/s over the baseline's: its throughput as a multiple of the baseline's.
    pub fn throughput(&self, row: &Row) -> f64 {
        match self.rows.get(self.baseline).map(|r| r.summary.ops_per_s) {
            Some(b) if b > 0.0 => row.summary.ops_per_s / b,
            _ => 0.0,
        }
    }

    /// The first row whose name starts with `prefix`.
    pub fn row(&self, prefix: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name.starts_with(prefix))
    }
}

/// A single measured figure (start-up time, RSS, binary size, ...).
#[derive(Debug, Clone)]
pub struct Figure {
    /// What.
    pub name: String,
    /// Value in `unit`.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// How it was measured.
    pub note: String,
}

/// A goal from the issue, and whether this run met it.
#[derive(Debug, Clone)]
pub struct Goal {
    /// The goal as stated.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Met?
    pub met: bool,
    /// By how much (margin or shortfall).
    pub by: String,
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Report {
    /// CPU, cores, memory, kernel.
    pub machine: Vec<(String, String)>,
    /// Versions of everything measured.
    pub versions: Vec<(String, String)>,
    /// Start of the run, UTC.
    pub date: String,
    /// Build profile of the binaries.
    pub profile: String,
    /// Comparisons.
    pub comparisons: Vec<Comparison>,
    /// Single figures.
    pub figures: Vec<Figure>,
    /// Goals.
    pub goals: Vec<Goal>,
    /// Benchmarks that could not run (the binary exits non-zero when this is not empty).
    pub failures: Vec<String>,
    /// Run duration, seconds.
    pub duration_s: f64,
    /// (GenerateDataKey calls, encrypts) since Hearth started, for the goals.
    pub kms_totals: Option<(u64, u64)>,
    /// Start → serving /health, p50 ms, for the goals.
    pub startup_health_ms: Option<f64>,
    /// Per-invoke overhead, p50 ms, for the goals.
    pub overhead_ms: Option<f64>,
    /// Stripped binary size, for the goals.
    pub binary_bytes: Option<u64>,
    /// AWS's agent: start → serving p50 ms, stripped bytes (for the goals' context).
    pub agent_start_ms: Option<f64>,
    /// AWS's agent's stripped binary.
    pub agent_bytes: Option<u64>,
    /// Free-form sections (heading, Markdown body) printed after the comparisons.
    pub sections: Vec<(String, String)>,
}

impl Report {
    /// The comparison with `id`.
    pub fn comparison(&self, id: &str) -> Option<&Comparison> {
        self.comparisons.iter().find(|c| c.id == id)
    }

    /// The figure called `name`.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Hearth benchmark report\n");
        let _ = writeln!(
            s,
            "Run {} ({}, {:.0} s). Every ratio is against a baseline measured in the same run, \
             on this machine, over loopback. Every HTTP figure is measured by wrk (one keep-alive \
             connection per slot, no pipelining; p50/p99 from wrk's latency histogram, ops/s = \
             requests completed over the measured window, after one unmeasured second), with \
             wrk's own floor against a trivial server beside it; in-process figures are timed \
             per operation (p50/p99 by nearest rank). The load generator runs on the same 2 \
             cores as the server. `scripts/bench.sh` reruns it all.\n",
            self.date, self.profile, self.duration_s
        );
        let _ = writeln!(s, "> moto's latency is not AWS's: moto is a Python emulator that closes the connection after every response and takes milliseconds per call. Real Secrets Manager and KMS calls from Lambda typically take 5-30 ms (same region), so the ratios against direct AWS calls here are a floor-to-order-of-magnitude illustration, not a prediction. What does carry over unchanged: the number of KMS calls made.\n");
        if !self.failures.is_empty() {
            let _ = writeln!(s, "## FAILED\n");
            for f in &self.failures {
                let _ = writeln!(s, "- {f}");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "## Goals\n");
        let _ = writeln!(s, "| goal | measured | met? | by |\n|---|---|---|---|");
        for g in &self.goals {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                g.goal,
                g.measured,
                if g.met { "met" } else { "**missed**" },
                g.by
            );
        }
        s.push('\n');
        for c in &self.comparisons {
            let _ = writeln!(s, "## {}\n", c.title);
            let kms = c.rows.iter().any(|r| r.kms_per_10k.is_some());
            let _ = write!(
                s,
                "| side | p50 µs | p99 µs | mean µs | ops/s | n | p50 vs baseline | ops/s vs baseline |"
            );
            if kms {
                let _ = write!(s, " KMS calls / 10,000 ops |");
            }
            let _ = writeln!(s, " note |");
            let _ = write!(s, "|---|--:|--:|--:|--:|--:|--:|--:|");
            if kms {
                let _ = write!(s, "--:|");
            }
            let _ = writeln!(s, "---|");
            for (i, r) in c.rows.iter().enumerate() {
                let ratio = if i == c.baseline {
                    "baseline".to_string()
                } else {
                    let x = c.speedup(r);
                    if x >= 1.0 {
                        format!("{} × faster", fmt_ratio(x))
                    } else {
                        format!("{} × slower", fmt_ratio(1.0 / x))
                    }
                };
                let tput = if i == c.baseline {
                    "baseline".to_string()
                } else {
                    format!("{:.2}×", c.throughput(r))
                };
                let _ = write!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    fmt_us(r.summary.p50_us),
                    fmt_us(r.summary.p99_us),
                    fmt_us(r.summary.mean_us),
                    fmt_ops(r.summary.ops_per_s),
                    r.summary.n,
                    ratio,
                    tput
                );
                if kms {
                    let _ = write!(
                        s,
                        " {} |",
                        r.kms_per_10k
                            .map(|k| format!("{k:.0}"))
                            .unwrap_or_else(|| "".into())
                    );
                }
                let _ = writeln!(s, " {} |", r.note);
            }
            for n in &c.notes {
                let _ = writeln!(s, "\n{n}");
            }
            s.push('\n');
        }
        for (heading, body) in &self.sections {
            let _ = writeln!(s, "## {heading}\n\n{body}\n");
        }
        let _ = writeln!(s, "## Extension figures\n");
        let _ = writeln!(s, "| figure | value | how |\n|---|--:|---|");
        for f in &self.figures {
            let _ = writeln!(
                s,
                "| {} | {} {} | {} |",
                f.name,
                fmt_num(f.value),
                f.unit,
                f.note
            );
        }
        let _ = writeln!(s, "\n## Machine\n");
        for (k, v) in &self.machine {
            let _ = writeln!(s, "- {k}: {v}");
        }
        let _ = writeln!(s, "\n## Versions\n");
        for (k, v) in &self.versions {
            let _ = writeln!(s, "- {k}: {v}");
        }
        s
    }

    /// JSON.
    pub fn json(&self) -> Value {
        let pairs = |v: &[(String, String)]| -> Value {
            Value::Object(
                v.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        let comparisons: serde_json::Map<String, Value> = self
            .comparisons
            .iter()
            .map(|c| {
                let rows: Vec<Value> = c
                    .rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let mut v = r.summary.json();
                        v["name"] = json!(r.name);
                        v["baseline"] = json!(i == c.baseline);
                        v["speedup_vs_baseline_p50"] = json!(round2(c.speedup(r)));
                        v["throughput_vs_baseline"] = json!(round2(c.throughput(r)));
                        if let Some(k) = r.kms_per_10k {
                            v["kms_calls_per_10000_ops"] = json!(round2(k));
                        }
                        v["note"] = json!(r.note);
                        v
                    })
                    .collect();
                (
                    c.id.clone(),
                    json!({"title": c.title, "rows": rows, "notes": c.notes}),
                )
            })
            .collect();
        json!({
            "date": self.date,
            "profile": self.profile,
            "duration_s": round2(self.duration_s),
            "machine": pairs(&self.machine),
            "versions": pairs(&self.versions),
            "comparisons": comparisons,
            "figures": self.figures.iter().map(|f| json!({"name": f.name, "value": round2(f.value), "unit": f.unit, "note": f.note})).collect::<Vec<_>>(),
            "goals": self.goals.iter().map(|g| json!({"goal": g.goal, "measured": g.measured, "met": g.met, "by": g.by})).collect::<Vec<_>>(),
            "sections": self.sections.iter().map(|(h, b)| json!({"heading": h, "markdown": b})).collect::<Vec<_>>(),
            "failures": self.failures,
        })
    }

    /// Writes `report.md` and `report.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let json = serde_json::to_string_pretty(&self.json()).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("report.json"), json + "\n")
            .map_err(|e| format!("report.json: {e}"))?;
        std::fs::write(dir.join("report.md"), self.markdown())
            .map_err(|e| format!("report.md: {e}"))?;
        Ok(())
    }
}

fn fmt_us(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn fmt_ops(x: f64) -> String {
    format!("{x:.0}")
}

fn fmt_ratio(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 || x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
