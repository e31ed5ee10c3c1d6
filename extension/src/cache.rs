//! The read-through cache shared by the Secrets Manager and Parameter Store paths.
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
//! An answer that revokes access (a secret whose KMS key was disabled, `DecryptionFailure`,
//! a key policy that no longer allows the function) is not transient: the cached value is
//! dropped at once, whatever its age, counted (`<prefix>.revoked`) and logged once.
//!
//! Concurrent fetches of one key share a single upstream call (single-flight): the first
//! caller spawns the fetch as its own task, so a caller that disconnects does not cancel
//! it for the others. Timers do not run while Lambda freezes the environment, so refresh
//! ahead is driven by reads and by INVOKE events ([`Cache::refresh_ahead`]), never only by
//! a timer. Time is `tokio::time::Instant`, which keeps counting across a freeze.
//!
//! A hard TTL of zero turns caching off (AWS's `SSM_PARAMETER_STORE_TTL=0`): every read
//! calls upstream, concurrent reads of one key still share one call.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::flight::{Interrupted, SingleFlight};
use crate::metrics::{Counter, Gauge, Metrics};

/// What a cache's upstream failures must tell it.
pub trait CacheError: Interrupted + Clone + Send + Sync + 'static {
    /// Whether a cached value may stand in for this failure (stale-if-error).
    fn is_transient(&self) -> bool;
    /// Whether this answer revokes access to the value: it then stops being served.
    fn is_revocation(&self) -> bool;
    /// Stable machine-readable code, for logs.
    fn code(&self) -> &'static str;
}

/// The upstream a cache reads through.
pub trait Source: Send + Sync + 'static {
    /// What identifies one cached value.
    type Key: Clone + Eq + Hash + Send + Sync + 'static;
    /// The cached value.
    type Value: Send + Sync + 'static;
    /// The upstream's error.
    type Error: CacheError;
    /// One upstream call.
    fn fetch(
        &self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Self::Value, Self::Error>> + Send;
    /// Another key the same value answers (e.g. a plain parameter read with and without
    /// decryption), cached along with it.
    fn twin(&self, _key: &Self::Key, _value: &Self::Value) -> Option<Self::Key> {
        None
    }
    /// The id to name in logs (never a value).
    fn id(key: &Self::Key) -> &str;
}

/// The metric names of one cache (`secrets.hits`, `parameters.hits`, ...). Names are
/// `&'static str` in the registry, so each cache spells its own out.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// Reads served from the cache.
    pub hits: &'static str,
    /// Reads that called upstream.
    pub misses: &'static str,
    /// Reads that joined another's upstream call.
    pub coalesced: &'static str,
    /// Values served past their hard TTL because upstream failed transiently.
    pub stale_serves: &'static str,
    /// Background refreshes started.
    pub refreshes: &'static str,
    /// Background refreshes that failed.
    pub refresh_failures: &'static str,
    /// Cached values dropped because upstream revoked access.
    pub revoked: &'static str,
    /// Gauge: cached entries.
    pub entries: &'static str,
    /// What a value is, in log lines ("secret", "parameter").
    pub what: &'static str,
}

type FetchResult<V, E> = Result<Arc<V>, E>;

/// Background refreshes running at once, so a thaw with many stale entries does not fire
/// hundreds of upstream calls together (and get throttled).
const REFRESH_CONCURRENCY: usize = 8;

struct Entry<V> {
    value: Arc<V>,
    soft_at: Instant,
    hard_at: Instant,
    refreshing: AtomicBool,
    stale_logged: AtomicBool,
}

type Entries<S> = LruCache<<S as Source>::Key, Arc<Entry<<S as Source>::Value>>>;
type Due<S> = Vec<(<S as Source>::Key, Arc<Entry<<S as Source>::Value>>)>;

struct Inner<S: Source> {
    cfg: CacheConfig,
    upstream: S,
    names: Names,
    // std Mutexes: held for a map operation only, never across an await.
    entries: Mutex<Entries<S>>,
    flight: SingleFlight<S::Key, Arc<S::Value>, S::Error>,
    refresh_slots: Semaphore,
    hits: Arc<Counter>,
    misses: Arc<Counter>,
    coalesced: Arc<Counter>,
    stale_serves: Arc<Counter>,
    refreshes: Arc<Counter>,
    refresh_failures: Arc<Counter>,
    revoked: Arc<Counter>,
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

/// A read-through cache in front of `S`; cheap to clone.
pub struct Cache<S: Source> {
    inner: Arc<Inner<S>>,
}

impl<S: Source> Clone for Cache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Source> std::fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("of", &self.inner.names.what)
            .field("entries", &self.len())
            .finish()
    }
}

impl<S: Source> Cache<S> {
    /// A cache in front of `upstream`, counting under `names`.
    pub fn new(cfg: CacheConfig, upstream: S, names: Names, metrics: &Metrics) -> Self {
        let capacity = cfg.capacity;
        Self {
            inner: Arc::new(Inner {
                cfg,
                upstream,
                names,
                entries: Mutex::new(LruCache::new(capacity)),
                flight: SingleFlight::default(),
                refresh_slots: Semaphore::new(REFRESH_CONCURRENCY),
                hits: metrics.counter(names.hits),
                misses: metrics.counter(names.misses),
                coalesced: metrics.counter(names.coalesced),
                stale_serves: metrics.counter(names.stale_serves),
                refreshes: metrics.counter(names.refreshes),
                refresh_failures: metrics.counter(names.refresh_failures),
                revoked: metrics.counter(names.revoked),
                size: metrics.gauge(names.entries),
            }),
        }
    }

    /// The upstream this cache reads through.
    pub fn upstream(&self) -> &S {
        &self.inner.upstream
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<S>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of cached values.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads a value, from the cache when allowed (`refresh_now` bypasses it).
    pub async fn get(&self, key: &S::Key, refresh_now: bool) -> FetchResult<S::Value, S::Error> {
        if refresh_now {
            self.inner.misses.inc();
            return self.fetch_shared(key).await;
        }
        let now = Instant::now();
        let entry = self.entries().get(key).cloned();
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
                                id = %S::id(key),
                                what = self.inner.names.what,
                                code = err.code(),
                                "serving a cached value past its hard TTL because AWS failed transiently"
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

    /// Drops every cached value whose key matches; returns how many.
    pub fn invalidate_where(&self, doomed: impl Fn(&S::Key) -> bool) -> usize {
        let mut entries = self.entries();
        let keys: Vec<S::Key> = entries
            .iter()
            .filter(|(k, _)| doomed(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            entries.pop(k);
        }
        self.inner.size.set(entries.len() as u64);
        keys.len()
    }

    /// Starts a background refresh of every entry past its soft deadline. Called on each
    /// INVOKE event: after a long freeze it brings entries up to date while the function's
    /// own reads are still served at once.
    pub fn refresh_ahead(&self) -> usize {
        let now = Instant::now();
        let due: Due<S> = self
            .entries()
            .iter()
            .filter(|(_, e)| now >= e.soft_at && !e.refreshing.load(Ordering::Relaxed))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (k, e) in &due {
            self.spawn_refresh(k.clone(), e);
        }
        due.len()
    }

    fn spawn_refresh(&self, key: S::Key, entry: &Arc<Entry<S::Value>>) {
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
                tracing::debug!(id = %S::id(&key), code = err.code(), "background refresh failed");
            }
        });
    }

    /// Fetches `key` from upstream, sharing one call among concurrent callers. The result
    /// is cached before the call leaves the in-flight map, so no caller sees neither.
    async fn fetch_shared(&self, key: &S::Key) -> FetchResult<S::Value, S::Error> {
        let (res, joined) = self
            .inner
            .flight
            .run(key, || {
                let this = self.clone();
                let key = key.clone();
                async move {
                    match this.inner.upstream.fetch(&key).await {
                        Ok(v) => {
                            let v = Arc::new(v);
                            this.insert(key, v.clone());
                            Ok(v)
                        }
                        Err(e) => {
                            if e.is_revocation() {
                                this.revoke(&key, &e);
                            }
                            Err(e)
                        }
                    }
                }
            })
            .await;
        if joined {
            self.inner.coalesced.inc();
        }
        res
    }

    /// Drops the cached value of `key` (and its twin) after upstream revoked access.
    fn revoke(&self, key: &S::Key, err: &S::Error) {
        let mut entries = self.entries();
        let Some(e) = entries.pop(key) else { return };
        if let Some(twin) = self.inner.upstream.twin(key, &e.value) {
            entries.pop(&twin);
        }
        self.inner.size.set(entries.len() as u64);
        drop(entries);
        self.inner.revoked.inc();
        tracing::warn!(
            id = %S::id(key),
            what = self.inner.names.what,
            code = err.code(),
            "access to a cached value was revoked: it is no longer served"
        );
    }

    /// Caches a value fetched outside [`Cache::get`] (a batch prefetch).
    pub fn insert(&self, key: S::Key, value: Arc<S::Value>) {
        let cfg = &self.inner.cfg;
        if cfg.hard_ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let soft = jittered(
            cfg.soft_ttl,
            cfg.hard_ttl,
            cfg.jitter_percent,
            &mut rand::rng(),
        );
        let twin = self.inner.upstream.twin(&key, &value);
        let entry = |value: Arc<S::Value>| {
            Arc::new(Entry {
                value,
                soft_at: now + soft,
                hard_at: now + cfg.hard_ttl,
                refreshing: AtomicBool::new(false),
                stale_logged: AtomicBool::new(false),
            })
        };
        let mut entries = self.entries();
        if let Some(twin) = twin {
            entries.put(twin, entry(value.clone()));
        }
        entries.put(key, entry(value));
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
