//! Latency samples and their summary (p50, p99, mean, throughput), and the bounded
//! measurement loop every sequential benchmark uses.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How much one benchmark may run: at most `count` operations and at most `time`, whichever
/// ends first (after `warmup` unmeasured operations, also bounded by `time`).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Unmeasured operations first (connections opened, caches filled, code paged in).
    pub warmup: usize,
    /// Measured operations, at most.
    pub count: usize,
    /// Wall time, at most, for warm-up and measurement each.
    pub time: Duration,
}

impl Budget {
    /// A budget.
    pub const fn new(warmup: usize, count: usize, secs: u64) -> Self {
        Self {
            warmup,
            count,
            time: Duration::from_secs(secs),
        }
    }

    /// The same budget with counts divided by `by` (quick runs while developing).
    pub fn scaled(self, by: usize) -> Self {
        Self {
            warmup: (self.warmup / by).max(1),
            count: (self.count / by).max(5),
            time: self.time,
        }
    }
}

/// Summary of one series of operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Operations measured.
    pub n: usize,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Operations per second over the measured wall time.
    pub ops_per_s: f64,
}

impl Summary {
    /// Summarises `samples` taken over `elapsed` of wall time.
    pub fn of(samples: &mut [Duration], elapsed: Duration) -> Summary {
        samples.sort_unstable();
        let n = samples.len();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pct = |q: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            // Nearest rank.
            let rank = ((n as f64) * q).ceil().max(1.0) as usize;
            us(samples[rank.min(n) - 1])
        };
        let total: Duration = samples.iter().sum();
        Summary {
            n,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            mean_us: if n == 0 { 0.0 } else { us(total) / n as f64 },
            ops_per_s: if elapsed.is_zero() {
                0.0
            } else {
                n as f64 / elapsed.as_secs_f64()
            },
        }
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "n": self.n,
            "p50_us": round2(self.p50_us),
            "p99_us": round2(self.p99_us),
            "mean_us": round2(self.mean_us),
            "ops_per_s": round2(self.ops_per_s),
        })
    }
}

/// Rounds to two decimals (for reports).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The future of one measured operation, borrowing the benchmark's state.
pub type OpFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Runs `op(state, i)` sequentially within `budget`, timing each measured call. The first
/// error ends the benchmark: a comparison whose side fails did not run.
pub async fn measure<S, F>(budget: Budget, state: &mut S, mut op: F) -> Result<Summary, String>
where
    F: for<'a> FnMut(&'a mut S, usize) -> OpFuture<'a>,
{
    let start = Instant::now();
    for i in 0..budget.warmup {
        if start.elapsed() > budget.time {
            break;
        }
        op(state, i).await?;
    }
    let mut samples = Vec::with_capacity(budget.count);
    let start = Instant::now();
    for i in 0..budget.count {
        if start.elapsed() > budget.time {
            break;
        }
        let t = Instant::now();
        op(state, budget.warmup + i).await?;
        samples.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    if samples.is_empty() {
        return Err("no operation completed within the time budget".into());
    }
    Ok(Summary::of(&mut samples, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let sum = Summary::of(&mut s, Duration::from_secs(1));
        assert_eq!(sum.n, 100);
        assert!((sum.p50_us - 50.0).abs() < 1e-6);
        assert!((sum.p99_us - 99.0).abs() < 1e-6);
        assert!((sum.mean_us - 50.5).abs() < 1e-6);
        assert!((sum.ops_per_s - 100.0).abs() < 1e-6);
    }

    #[test]
    fn empty_series_is_zero() {
        let sum = Summary::of(&mut [], Duration::ZERO);
        assert_eq!(sum.n, 0);
        assert_eq!(sum.p50_us, 0.0);
    }
}
