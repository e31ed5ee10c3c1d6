//! The secrets cache.
//!
//! Each entry has a soft deadline (the soft TTL, jittered per entry so environments started
//! together do not refresh in lockstep) and a hard deadline (the hard TTL, the maximum
//! exposure window):
//!
//! | age of entry            | a read ...                                                  |
//! |-------------------------|-------------------------------------------------------------|
//! | before soft             | is served from the cache                                    |
//! | between soft and hard   | is served from the cache and starts one background refresh  |
//! | past hard               | waits for a refetch; on a transient failure the old value is served up to `stale_if_error` longer |
//!
//! Concurrent fetches of one key share a single upstream call (single-flight): the first
//! caller spawns the fetch as its own task, so a caller that disconnects does not cancel
//! it for the others. Timers do not run while Lambda freezes the environment, so refresh
//! ahead is driven by reads and by INVOKE events ([`SecretsCache::refresh_ahead`]), never
//! only by a timer. Time is `tokio::time::Instant`, which keeps counting across a freeze.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth::wire::SecretValue;
use lru::LruCache;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::upstream::SecretsUpstream;
use super::{SecretKey, SecretsError};
use crate::config::SecretsConfig;
use crate::flight::SingleFlight;
use crate::metrics::{Counter, Gauge, Metrics};

type FetchResult = Result<Arc<SecretValue>, SecretsError>;

/// Background refreshes running at once, so a thaw with many stale entries does not fire
/// hundreds of GetSecretValue calls together (and get throttled).
const REFRESH_CONCURRENCY: usize = 8;

struct Entry {
    value: Arc<SecretValue>,
    soft_at: Instant,
    hard_at: Instant,
    refreshing: AtomicBool,
    stale_logged: AtomicBool,
}

struct Inner {
    cfg: SecretsConfig,
    upstream: SecretsUpstream,
    // std Mutexes: held for a map operation only, never across an await.
    entries: Mutex<LruCache<SecretKey, Arc<Entry>>>,
    flight: SingleFlight<SecretKey, Arc<SecretValue>, SecretsError>,
    refresh_slots: Semaphore,
    hits: Arc<Counter>,
    misses: Arc<Counter>,
    coalesced: Arc<Counter>,
    stale_serves: Arc<Counter>,
    refreshes: Arc<Counter>,
    refresh_failures: Arc<Counter>,
    size: Arc<Gauge>,
}

/// The soft TTL scaled by a uniform factor in `1 ± percent/100`, never past the hard TTL.
fn jittered(soft: Duration, hard: Duration, percent: u8, rng: &mut impl rand::Rng) -> Duration {
    let j = f64::from(percent) / 100.0;
    let factor = if j > 0.0 {
        1.0 + rng.random_range(-j..=j)
    } else {
        1.0
    };
    soft.mul_f64(factor).min(hard)
}

/// The secrets cache; cheap to clone.
#[derive(Clone)]
pub struct SecretsCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SecretsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl SecretsCache {
    /// A cache in front of `upstream`.
    pub fn new(cfg: SecretsConfig, upstream: SecretsUpstream, metrics: &Metrics) -> Self {
        let capacity = cfg.capacity;
        Self {
            inner: Arc::new(Inner {
                cfg,
                upstream,
                entries: Mutex::new(LruCache::new(capacity)),
                flight: SingleFlight::default(),
                refresh_slots: Semaphore::new(REFRESH_CONCURRENCY),
                hits: metrics.counter("secrets.hits"),
                misses: metrics.counter("secrets.misses"),
                coalesced: metrics.counter("secrets.coalesced"),
                stale_serves: metrics.counter("secrets.stale_serves"),
                refreshes: metrics.counter("secrets.refreshes"),
                refresh_failures: metrics.counter("secrets.refresh_failures"),
                size: metrics.gauge("secrets.entries"),
            }),
        }
    }

    /// Number of cached versions.
    pub fn len(&self) -> usize {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads a secret version, from the cache when allowed.
    pub async fn get(&self, key: &SecretKey, refresh_now: bool) -> FetchResult {
        if !self.inner.cfg.caching {
            // Caching off (AWS's PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED=false, or a TTL
            // or cache size of 0): every read is its own call, as with AWS's extension.
            self.inner.misses.inc();
            return self.inner.upstream.get(key).await.map(Arc::new);
        }
        if refresh_now {
            self.inner.misses.inc();
            return self.fetch_shared(key).await;
        }
        let now = Instant::now();
        let entry = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        match entry {
            Some(e) if now < e.hard_at => {
                self.inner.hits.inc();
                if now >= e.soft_at {
                    self.spawn_refresh(key.clone(), &e);
                }
                Ok(e.value.clone())
            }
            Some(e) => {
                self.inner.misses.inc();
                match self.fetch_shared(key).await {
                    Ok(v) => Ok(v),
                    Err(err)
                        if err.is_transient()
                            && Instant::now() < e.hard_at + self.inner.cfg.stale_if_error =>
                    {
                        self.inner.stale_serves.inc();
                        if !e.stale_logged.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                secret_id = %key.secret_id,
                                code = err.code(),
                                "serving a cached secret past its hard TTL because Secrets Manager failed transiently"
                            );
                        }
                        Ok(e.value.clone())
                    }
                    Err(err) => Err(err),
                }
            }
            None => {
                self.inner.misses.inc();
                self.fetch_shared(key).await
            }
        }
    }

    /// Drops every cached version of `secret_id`, e.g. after the database rejected the
    /// password it holds (a rotation happened). The next read fetches.
    pub fn invalidate(&self, secret_id: &str) -> usize {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        let doomed: Vec<SecretKey> = entries
            .iter()
            .filter(|(k, _)| k.secret_id == secret_id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            entries.pop(k);
        }
        self.inner.size.set(entries.len() as u64);
        doomed.len()
    }

    /// Starts a background refresh of every entry past its soft deadline. Called on each
    /// INVOKE event: after a long freeze it brings entries up to date while the function's
    /// own reads are still served at once.
    pub fn refresh_ahead(&self) -> usize {
        let now = Instant::now();
        let due: Vec<(SecretKey, Arc<Entry>)> = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, e)| now >= e.soft_at && !e.refreshing.load(Ordering::Relaxed))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (k, e) in &due {
            self.spawn_refresh(k.clone(), e);
        }
        due.len()
    }

    fn spawn_refresh(&self, key: SecretKey, entry: &Arc<Entry>) {
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.refreshes.inc();
        let this = self.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            let _slot = this.inner.refresh_slots.acquire().await;
            if let Err(err) = this.fetch_shared(&key).await {
                this.inner.refresh_failures.inc();
                // Let a later read or INVOKE try again; the current value keeps serving.
                entry.refreshing.store(false, Ordering::Release);
                tracing::debug!(secret_id = %key.secret_id, code = err.code(), "background refresh failed");
            }
        });
    }

    /// Fetches `key` from upstream, sharing one call among concurrent callers. The result
    /// is cached before the call leaves the in-flight map, so no caller sees neither.
    async fn fetch_shared(&self, key: &SecretKey) -> FetchResult {
        let (res, joined) = self
            .inner
            .flight
            .run(key, || {
                let this = self.clone();
                let key = key.clone();
                async move {
                    let v = Arc::new(this.inner.upstream.get(&key).await?);
                    this.insert(key, v.clone());
                    Ok(v)
                }
            })
            .await;
        if joined {
            self.inner.coalesced.inc();
        }
        res
    }

    fn insert(&self, key: SecretKey, value: Arc<SecretValue>) {
        let now = Instant::now();
        let cfg = &self.inner.cfg;
        let soft = jittered(
            cfg.soft_ttl,
            cfg.hard_ttl,
            cfg.jitter_percent,
            &mut rand::rng(),
        );
        let entry = Arc::new(Entry {
            value,
            soft_at: now + soft,
            hard_at: now + cfg.hard_ttl,
            refreshing: AtomicBool::new(false),
            stale_logged: AtomicBool::new(false),
        });
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.put(key, entry);
        self.inner.size.set(entries.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn jitter_spreads_soft_deadlines_within_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let soft = Duration::from_secs(240);
        let hard = Duration::from_secs(300);
        let samples: Vec<Duration> = (0..1000)
            .map(|_| jittered(soft, hard, 10, &mut rng))
            .collect();
        let min = samples.iter().min().copied().unwrap_or_default();
        let max = samples.iter().max().copied().unwrap_or_default();
        assert!(
            min >= Duration::from_secs(216) && max <= Duration::from_secs(264),
            "{min:?}..{max:?}"
        );
        // Spread, not lockstep: the range covers most of ±10%.
        assert!(max - min > Duration::from_secs(40), "{min:?}..{max:?}");
        assert_eq!(jittered(soft, hard, 0, &mut rng), soft);
        // Never past the hard TTL.
        assert!(jittered(hard, hard, 50, &mut rng) <= hard);
    }
}
