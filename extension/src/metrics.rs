//! A small metrics registry: named counters and latency summaries, lock-free on the hot path.
//!
//! Handles are registered once (at init) and kept by the component that updates them; an
//! update is one relaxed atomic add. The same figures are served as JSON at `GET /v1/metrics`
//! and written as CloudWatch Embedded Metric Format lines by [`crate::emf`].
//!
//! Every name the extension registers is listed in [`NAMES`], which docs/deploy.md's metric
//! table must match (a unit test checks both directions; registering an unlisted name fails
//! debug builds, so every test run catches it). Adding a metric is one line there plus a row
//! in that table.

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

    /// Mirrors a cumulative count kept elsewhere (the pool's statistics): the counter rises to
    /// `total` and never falls, so EMF still writes per-period deltas of it.
    pub fn raise_to(&self, total: u64) {
        self.0.fetch_max(total, Ordering::Relaxed);
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

/// Most individual observations one EMF line carries per latency: CloudWatch accepts an
/// array of up to 100 values per metric in one EMF document.
pub const MAX_SAMPLES: usize = 100;

/// A latency summary: count, sum, max and fixed log-scale buckets for p50/p99 estimates,
/// plus up to [`MAX_SAMPLES`] individual observations since the last EMF line, so CloudWatch
/// computes percentiles (p90 of KMS calls) from real values rather than from per-line means.
#[derive(Debug, Default)]
pub struct Latency {
    count: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    // A std Mutex held for one push, taken with try_lock on the hot path (see `record`).
    samples: Mutex<Samples>,
}

/// A uniform sample (reservoir, Algorithm R) of the observations since the last drain.
#[derive(Debug, Default)]
struct Samples {
    values_us: Vec<u64>,
    seen: u64,
}

impl Samples {
    fn push(&mut self, us: u64) {
        self.seen += 1;
        if self.values_us.len() < MAX_SAMPLES {
            self.values_us.push(us);
            return;
        }
        // Keep the new value with probability MAX_SAMPLES / seen, in place of a random one.
        // A hash of the count is random enough for sampling and needs no RNG state.
        let slot = (splitmix64(self.seen) % self.seen) as usize;
        if let Some(v) = self.values_us.get_mut(slot) {
            *v = us;
        }
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
        // Never wait on the hot path: if another request or the EMF flush holds the sample
        // right now, this observation is counted above but not sampled.
        match self.samples.try_lock() {
            Ok(mut s) => s.push(us),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().push(us),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
    }

    /// The sampled observations (µs) since the last call, emptying the sample.
    pub(crate) fn drain_samples_us(&self) -> Vec<u64> {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.seen = 0;
        std::mem::take(&mut s.values_us)
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
        debug_assert!(
            NAMES.contains(&name),
            "metric {name} is not in metrics::NAMES"
        );
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
        debug_assert!(
            NAMES.contains(&name),
            "metric {name} is not in metrics::NAMES"
        );
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
        debug_assert!(
            NAMES.contains(&name),
            "metric {name} is not in metrics::NAMES"
        );
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

    /// Every metric's value now, for EMF: counter totals (EMF writes their deltas), gauge
    /// levels, and each latency's sampled observations since the last call (drained).
    pub(crate) fn take_readings(&self) -> Vec<(&'static str, Reading)> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.iter()
            .map(|(n, m)| {
                let t = match m {
                    Metric::Counter(c) => Reading::Count(c.get()),
                    Metric::Gauge(g) => Reading::Level(g.get()),
                    Metric::Latency(l) => Reading::Samples(l.drain_samples_us()),
                };
                (*n, t)
            })
            .collect()
    }
}

/// A metric's reading at one flush, for EMF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A counter's total since start.
    Count(u64),
    /// A gauge's level.
    Level(u64),
    /// A latency's sampled observations (µs) since the last flush.
    Samples(Vec<u64>),
}

/// Every metric name the extension registers. docs/deploy.md has one row per name (checked
/// by `every_metric_is_documented`); the EMF name is the CamelCase form (`secrets.hits` →
/// `SecretsHits`).
pub const NAMES: &[&str] = &[
    // secrets cache (secrets/cache.rs, secrets/upstream.rs)
    "secrets.hits",
    "secrets.misses",
    "secrets.coalesced",
    "secrets.stale_serves",
    "secrets.refreshes",
    "secrets.refresh_failures",
    "secrets.entries",
    "secrets.upstream_calls",
    "secrets.upstream_errors",
    "secrets.upstream_latency",
    "secrets.revoked",
    // Parameter Store cache (parameters/)
    "parameters.hits",
    "parameters.misses",
    "parameters.coalesced",
    "parameters.stale_serves",
    "parameters.refreshes",
    "parameters.refresh_failures",
    "parameters.revoked",
    "parameters.entries",
    "parameters.upstream_calls",
    "parameters.upstream_batch_calls",
    "parameters.upstream_errors",
    "parameters.upstream_latency",
    // KMS data keys and decrypts (kms/*.rs)
    "kms.cache_hits",
    "kms.cache_misses",
    "kms.calls_avoided",
    "kms.coalesced",
    "kms.evictions",
    "kms.uncached_keys",
    "kms.refreshes",
    "kms.refresh_failures",
    "kms.data_keys",
    "kms.current_key_messages",
    "kms.current_key_bytes",
    "kms.decrypted_keys",
    "kms.generate_data_key_calls",
    "kms.decrypt_calls",
    "kms.encrypt_calls",
    "kms.fallback_edk_failures",
    "kms.errors",
    "kms.latency",
    "kms.encrypts",
    "kms.decrypts",
    "kms.data_keys_served",
    "kms.decrypts_refused_key_not_allowed",
    // regional failover (failover.rs)
    "aws.failovers",
    "aws.breaker_opened",
    "aws.breaker_closed",
    "aws.breaker_probes",
    "aws.secrets.breaker_open",
    "aws.secrets.primary_calls",
    "aws.secrets.primary_errors",
    "aws.secrets.primary_latency",
    "aws.secrets.fallback_calls",
    "aws.secrets.fallback_errors",
    "aws.secrets.fallback_latency",
    "aws.kms.breaker_open",
    "aws.kms.primary_calls",
    "aws.kms.primary_errors",
    "aws.kms.primary_latency",
    "aws.kms.fallback_calls",
    "aws.kms.fallback_errors",
    "aws.kms.fallback_latency",
    "aws.ssm.breaker_open",
    "aws.ssm.primary_calls",
    "aws.ssm.primary_errors",
    "aws.ssm.primary_latency",
    "aws.ssm.fallback_calls",
    "aws.ssm.fallback_errors",
    "aws.ssm.fallback_latency",
    // database pool (database.rs)
    "db.pool_size",
    "db.pool_available",
    "db.connections_created",
    "db.connections_reused",
    "db.connections_verified",
    "db.connections_dead_replaced",
    "db.pool_waits",
    "db.pool_timeouts",
    "db.password_rotations",
    // HTTP API (api/guard.rs)
    "http.requests",
    "http.rejected",
    "http.errors",
    "http.server_errors",
    "http.latency",
    // lifecycle
    "prewarm.runs",
    "lifecycle.invokes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_by_name() {
        let m = Metrics::new();
        m.counter("secrets.hits").inc();
        m.counter("secrets.hits").add(2);
        assert_eq!(m.counter("secrets.hits").get(), 3);
        assert_eq!(m.snapshot()["counters"]["secrets.hits"], 3);
        m.counter("secrets.hits").raise_to(2);
        assert_eq!(m.counter("secrets.hits").get(), 3, "never falls");
        m.counter("secrets.hits").raise_to(7);
        assert_eq!(m.counter("secrets.hits").get(), 7);
    }

    #[test]
    fn samples_are_bounded_and_drained() {
        let l = Latency::default();
        for i in 0..1_000u64 {
            l.record(Duration::from_micros(i));
        }
        let s = l.drain_samples_us();
        assert_eq!(s.len(), MAX_SAMPLES);
        // A uniform sample of 0..1000 µs: some values from late in the period survive.
        assert!(s.iter().any(|v| *v >= 500), "{s:?}");
        assert!(l.drain_samples_us().is_empty());
        assert_eq!(l.count(), 1_000);
    }

    /// docs/deploy.md's metric table (between `<!-- metrics-table:start -->` and
    /// `<!-- metrics-table:end -->`) has exactly one row per name in [`NAMES`].
    #[test]
    fn every_metric_is_documented() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        let table = doc
            .split("<!-- metrics-table:start -->")
            .nth(1)
            .and_then(|t| t.split("<!-- metrics-table:end -->").next())
            .unwrap_or_default();
        let documented: Vec<String> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();
        let mut want: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
        let mut have = documented.clone();
        want.sort();
        have.sort();
        let missing: Vec<_> = want.iter().filter(|n| !have.contains(n)).collect();
        let extra: Vec<_> = have.iter().filter(|n| !want.contains(n)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/deploy.md metric table: missing rows {missing:?}, rows for no metric {extra:?}"
        );
        let mut dedup = have.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), have.len(), "a metric has two rows");
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
