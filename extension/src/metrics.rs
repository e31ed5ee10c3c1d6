//! A small metrics registry: named counters and latency summaries, lock-free on the hot path.
//!
//! Handles are registered once (at init) and kept by the component that updates them; an
//! update is one relaxed atomic add. The same figures are served as JSON at `GET /v1/metrics`
//! and written as CloudWatch Embedded Metric Format lines by [`crate::emf`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A current level (pool size, cache entries): set, not accumulated.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the level.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current level.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket upper bounds in microseconds: roughly 1-2-5 steps from 10 µs to 60 s.
const BOUNDS_US: [u64; 22] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000, 30_000_000, 60_000_000,
];

/// A latency summary: count, sum, max and fixed log-scale buckets for p50/p99 estimates.
#[derive(Debug, Default)]
pub struct Latency {
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
}

impl Latency {
    /// Records one observation.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        let i = BOUNDS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Upper bound (µs) of the bucket holding quantile `q` (0..=1), or 0 without data.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return BOUNDS_US
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| self.max_us.load(Ordering::Relaxed));
            }
        }
        self.max_us.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Value {
        let count = self.count();
        let sum = self.sum_us.load(Ordering::Relaxed);
        json!({
            "count": count,
            "meanUs": sum.checked_div(count).unwrap_or(0),
            "p50Us": self.quantile_us(0.50),
            "p99Us": self.quantile_us(0.99),
            "maxUs": self.max_us.load(Ordering::Relaxed),
        })
    }
}

enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Latency(Arc<Latency>),
}

/// The registry. Names are dotted, e.g. `secrets.hits`; the EMF name is derived from them.
#[derive(Default)]
pub struct Metrics {
    // A std Mutex: only registration and snapshots take it, never the hot path.
    entries: Mutex<BTreeMap<&'static str, Metric>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The counter called `name`, registering it on first use.
    pub fn counter(&self, name: &'static str) -> Arc<Counter> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e
            .entry(name)
            .or_insert_with(|| Metric::Counter(Arc::default()))
        {
            Metric::Counter(c) => c.clone(),
            // A name registered as another kind is a programming error; keep serving.
            _ => Arc::default(),
        }
    }

    /// The gauge called `name`, registering it on first use.
    pub fn gauge(&self, name: &'static str) -> Arc<Gauge> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e
            .entry(name)
            .or_insert_with(|| Metric::Gauge(Arc::default()))
        {
            Metric::Gauge(g) => g.clone(),
            _ => Arc::default(),
        }
    }

    /// The latency summary called `name`, registering it on first use.
    pub fn latency(&self, name: &'static str) -> Arc<Latency> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e
            .entry(name)
            .or_insert_with(|| Metric::Latency(Arc::default()))
        {
            Metric::Latency(l) => l.clone(),
            _ => Arc::default(),
        }
    }

    /// JSON snapshot: `{"counters":{..},"gauges":{..},"latencies":{name:{count,p50Us,..}}}`.
    pub fn snapshot(&self) -> Value {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut counters = serde_json::Map::new();
        let mut gauges = serde_json::Map::new();
        let mut latencies = serde_json::Map::new();
        for (name, m) in e.iter() {
            match m {
                Metric::Counter(c) => {
                    counters.insert((*name).to_string(), json!(c.get()));
                }
                Metric::Gauge(g) => {
                    gauges.insert((*name).to_string(), json!(g.get()));
                }
                Metric::Latency(l) => {
                    latencies.insert((*name).to_string(), l.snapshot());
                }
            }
        }
        json!({"counters": counters, "gauges": gauges, "latencies": latencies})
    }

    /// Counter values and latency (count, sum µs) totals, for EMF deltas.
    pub(crate) fn totals(&self) -> Vec<(&'static str, Total)> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.iter()
            .map(|(n, m)| {
                let t = match m {
                    Metric::Counter(c) => Total::Count(c.get()),
                    Metric::Gauge(g) => Total::Level(g.get()),
                    Metric::Latency(l) => Total::Latency {
                        count: l.count(),
                        sum_us: l.sum_us.load(Ordering::Relaxed),
                    },
                };
                (*n, t)
            })
            .collect()
    }
}

/// A metric's value at one moment, for EMF deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Total {
    Count(u64),
    Level(u64),
    Latency { count: u64, sum_us: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_by_name() {
        let m = Metrics::new();
        m.counter("a.b").inc();
        m.counter("a.b").add(2);
        assert_eq!(m.counter("a.b").get(), 3);
        assert_eq!(m.snapshot()["counters"]["a.b"], 3);
    }

    #[test]
    fn latency_quantiles() {
        let l = Latency::default();
        for _ in 0..98 {
            l.record(Duration::from_micros(40));
        }
        l.record(Duration::from_millis(3));
        l.record(Duration::from_millis(3));
        assert_eq!(l.quantile_us(0.5), 50);
        assert_eq!(l.quantile_us(0.99), 5_000);
        assert_eq!(l.count(), 100);
        assert_eq!(Latency::default().quantile_us(0.5), 0);
    }
}
