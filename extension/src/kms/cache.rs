//! The encryption-side data-key cache.
//!
//! One current data key per partition, a partition being (KMS key id, encryption context):
//! a key generated under one context is never used for another, as KMS binds the context
//! into its encrypted copy. Each key is used under [`Limits`], checked including the
//! current request; a key refused by a limit is evicted and replaced.
//!
//! | state of the current key        | a request ...                                        |
//! |---------------------------------|------------------------------------------------------|
//! | within `refresh_percent` of all limits | uses it                                       |
//! | past `refresh_percent` of a limit | uses it and starts one background replacement     |
//! | past a limit (this request included) | waits for a fresh key (single-flight)          |
//!
//! Timers do not run while Lambda freezes the environment, so replacements are started by
//! requests and by INVOKE events ([`DataKeyCache::refresh_ahead`]), which also evicts keys
//! past their max age. Time is `tokio::time::Instant`, which keeps counting across a freeze.
//!
//! Plaintext data keys live in [`hearth_esdk::DataKey`], which zeroizes on drop: an entry
//! evicted (LRU, limit, replacement, [`DataKeyCache::clear`]) is zeroized as soon as the
//! last request using it finishes. Every eviction is counted in `kms.evictions`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use hearth_esdk::{DataKey, EncryptedDataKey, EncryptionContext};
use lru::LruCache;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::limits::{Limits, Refusal, Usage};
use super::KmsError;
use crate::flight::SingleFlight;
use crate::metrics::{Counter, Gauge, Metrics};

/// Background replacements running at once, so a thaw with many due partitions does not
/// fire a burst of GenerateDataKey calls (and get throttled).
const REFRESH_CONCURRENCY: usize = 4;

/// Attempts to find room on a key before a request gets a key of its own. Only reached
/// when many concurrent requests exhaust fresh keys faster than they arrive (tiny limits).
const MAX_ROUNDS: usize = 4;

/// What a data key is cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    /// KMS key id, ARN or alias, as the request named it.
    pub key_id: String,
    /// The encryption context of the messages it encrypts.
    pub context: EncryptionContext,
}

/// A data key and its encrypted copy, as KMS GenerateDataKey returns them.
#[derive(Debug)]
pub struct Materials {
    /// Plaintext data key (zeroized on drop).
    pub key: DataKey,
    /// The copy encrypted by KMS: provider `aws-kms`, info = key ARN, the CiphertextBlob.
    pub edk: EncryptedDataKey,
    /// A second copy, encrypted under the fallback region's key (`HEARTH_KMS_FALLBACK_KEY_ID`),
    /// so the messages it protects decrypt while either region is down.
    pub fallback_edk: Option<EncryptedDataKey>,
}

impl Materials {
    /// Every encrypted copy of the data key, as a message's header lists them.
    pub fn edks(&self) -> Vec<EncryptedDataKey> {
        std::iter::once(&self.edk)
            .chain(&self.fallback_edk)
            .cloned()
            .collect()
    }

    /// ARN of the KMS key that encrypted the data key.
    pub fn key_arn(&self) -> String {
        String::from_utf8_lossy(&self.edk.provider_info).into_owned()
    }
}

/// Where fresh data keys come from (KMS in production, a counter in unit tests).
pub trait KeySource: Send + Sync + 'static {
    /// One new data key for `partition`.
    fn generate(&self, partition: &Partition) -> BoxFuture<'static, Result<Materials, KmsError>>;
}

/// One cached data key.
#[derive(Debug)]
pub struct Entry {
    /// The key and its encrypted copy.
    pub materials: Materials,
    created: Instant,
    // A std Mutex: check-and-add of two counters, never held across an await.
    usage: Mutex<Usage>,
    refreshing: AtomicBool,
}

impl Entry {
    /// A new entry created now.
    pub fn new(materials: Materials) -> Self {
        Entry {
            materials,
            created: Instant::now(),
            usage: Mutex::new(Usage::default()),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Reserves one message of `bytes` bytes on this key, if the limits allow it.
    fn reserve(&self, limits: &Limits, now: Instant, bytes: u64) -> Result<Usage, Refusal> {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let after = limits.admit(now.saturating_duration_since(self.created), *usage, bytes)?;
        *usage = after;
        Ok(after)
    }

    /// What the key has protected so far.
    pub fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn age(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.created)
    }
}

struct Inner {
    limits: Limits,
    source: Arc<dyn KeySource>,
    // A std Mutex: held for a map operation only, never across an await.
    entries: Mutex<LruCache<Partition, Arc<Entry>>>,
    flight: SingleFlight<Partition, Arc<Entry>, KmsError>,
    refresh_slots: Semaphore,
    closed: AtomicBool,
    hits: Arc<Counter>,
    misses: Arc<Counter>,
    avoided: Arc<Counter>,
    coalesced: Arc<Counter>,
    evictions: Arc<Counter>,
    uncached: Arc<Counter>,
    refreshes: Arc<Counter>,
    refresh_failures: Arc<Counter>,
    size: Arc<Gauge>,
    current_messages: Arc<Gauge>,
    current_bytes: Arc<Gauge>,
}

/// The data-key cache; cheap to clone.
#[derive(Clone)]
pub struct DataKeyCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl DataKeyCache {
    /// A cache of at most `capacity` partitions in front of `source`.
    pub fn new(
        limits: Limits,
        capacity: std::num::NonZeroUsize,
        source: Arc<dyn KeySource>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                source,
                entries: Mutex::new(LruCache::new(capacity)),
                flight: SingleFlight::default(),
                refresh_slots: Semaphore::new(REFRESH_CONCURRENCY),
                closed: AtomicBool::new(false),
                hits: metrics.counter("kms.cache_hits"),
                misses: metrics.counter("kms.cache_misses"),
                avoided: metrics.counter("kms.calls_avoided"),
                coalesced: metrics.counter("kms.coalesced"),
                evictions: metrics.counter("kms.evictions"),
                uncached: metrics.counter("kms.uncached_keys"),
                refreshes: metrics.counter("kms.refreshes"),
                refresh_failures: metrics.counter("kms.refresh_failures"),
                size: metrics.gauge("kms.data_keys"),
                current_messages: metrics.gauge("kms.current_key_messages"),
                current_bytes: metrics.gauge("kms.current_key_bytes"),
            }),
        }
    }

    /// Number of cached partitions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Partition, Arc<Entry>>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A data key for one message of `bytes` plaintext bytes in `partition`, its use
    /// already counted against the key's limits.
    pub async fn acquire(&self, partition: &Partition, bytes: u64) -> Result<Arc<Entry>, KmsError> {
        let limits = self.inner.limits;
        if !limits.fits_fresh(bytes) {
            // Larger than a whole key's byte budget: a key of its own, never cached.
            self.inner.misses.inc();
            return self.uncached(partition).await;
        }
        let mut missed = false;
        for _ in 0..MAX_ROUNDS {
            let current = self.lock().get(partition).cloned();
            if let Some(entry) = current {
                let now = Instant::now();
                match entry.reserve(&limits, now, bytes) {
                    Ok(after) => {
                        if !missed {
                            self.inner.hits.inc();
                            self.inner.avoided.inc();
                        }
                        self.note_use(partition, &entry, now, after);
                        return Ok(entry);
                    }
                    Err(_) => self.retire(partition, &entry),
                }
            }
            if !missed {
                missed = true;
                self.inner.misses.inc();
            }
            let fresh = self.generate_shared(partition).await?;
            let now = Instant::now();
            if let Ok(after) = fresh.reserve(&limits, now, bytes) {
                self.note_use(partition, &fresh, now, after);
                return Ok(fresh);
            }
        }
        self.uncached(partition).await
    }

    fn note_use(&self, partition: &Partition, entry: &Arc<Entry>, now: Instant, after: Usage) {
        self.inner.current_messages.set(after.messages);
        self.inner.current_bytes.set(after.bytes);
        if self.inner.limits.refresh_due(entry.age(now), after) {
            self.spawn_refresh(partition.clone(), entry);
        }
    }

    /// A key for one request only: generated, used once, dropped (zeroized).
    async fn uncached(&self, partition: &Partition) -> Result<Arc<Entry>, KmsError> {
        self.inner.uncached.inc();
        let m = self.inner.source.generate(partition).await?;
        Ok(Arc::new(Entry::new(m)))
    }

    /// Removes `entry` if it is still the current key of `partition`.
    fn retire(&self, partition: &Partition, entry: &Arc<Entry>) {
        let mut entries = self.lock();
        if entries
            .peek(partition)
            .is_some_and(|cur| Arc::ptr_eq(cur, entry))
        {
            entries.pop(partition);
            self.inner.evictions.inc();
            self.inner.size.set(entries.len() as u64);
        }
    }

    /// Generates a key for `partition`, sharing one GenerateDataKey among concurrent
    /// callers (misses and background replacements alike), and makes it current.
    async fn generate_shared(&self, partition: &Partition) -> Result<Arc<Entry>, KmsError> {
        let (res, joined) = self
            .inner
            .flight
            .run(partition, || {
                let this = self.clone();
                let partition = partition.clone();
                let generate = self.inner.source.generate(&partition);
                async move {
                    let entry = Arc::new(Entry::new(generate.await?));
                    this.insert(partition, entry.clone());
                    Ok(entry)
                }
            })
            .await;
        if joined {
            self.inner.coalesced.inc();
            self.inner.avoided.inc();
        }
        res
    }

    fn insert(&self, partition: Partition, entry: Arc<Entry>) {
        if self.inner.closed.load(Ordering::Acquire) {
            // Shut down: the key serves the requests that asked for it, then is dropped.
            return;
        }
        let mut entries = self.lock();
        // `push` returns what it displaced: the partition's previous key, or the least
        // recently used partition when full. Either way that key leaves the cache.
        if entries.push(partition, entry).is_some() {
            self.inner.evictions.inc();
        }
        self.inner.size.set(entries.len() as u64);
    }

    fn spawn_refresh(&self, partition: Partition, entry: &Arc<Entry>) {
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.refreshes.inc();
        let this = self.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            let _slot = this.inner.refresh_slots.acquire().await;
            // A request may have replaced the key meanwhile (it hit a limit first): then
            // there is nothing left to refresh, and generating would waste a KMS call.
            let current = this
                .lock()
                .peek(&partition)
                .is_some_and(|cur| Arc::ptr_eq(cur, &entry));
            if !current {
                return;
            }
            if let Err(err) = this.generate_shared(&partition).await {
                this.inner.refresh_failures.inc();
                // Let a later request or INVOKE try again; the current key keeps serving.
                entry.refreshing.store(false, Ordering::Release);
                tracing::debug!(code = err.code(), "data key refresh-ahead failed");
            }
        });
    }

    /// Called on each INVOKE: evicts keys past their max age (zeroizing them now rather
    /// than at the next request) and starts a replacement for every key that is due and
    /// was used since it was generated (an idle partition is left to expire, so unused
    /// contexts do not cost a GenerateDataKey every few minutes forever). Returns the
    /// number of replacements started.
    pub fn refresh_ahead(&self) -> usize {
        let now = Instant::now();
        let limits = self.inner.limits;
        let mut due = Vec::new();
        {
            let mut entries = self.lock();
            let expired: Vec<Partition> = entries
                .iter()
                .filter(|(_, e)| e.age(now) >= limits.max_age)
                .map(|(p, _)| p.clone())
                .collect();
            for p in &expired {
                entries.pop(p);
                self.inner.evictions.inc();
            }
            self.inner.size.set(entries.len() as u64);
            for (p, e) in entries.iter() {
                let used = e.usage();
                if used.messages > 0
                    && limits.refresh_due(e.age(now), used)
                    && !e.refreshing.load(Ordering::Relaxed)
                {
                    due.push((p.clone(), e.clone()));
                }
            }
        }
        for (p, e) in &due {
            self.spawn_refresh(p.clone(), e);
        }
        due.len()
    }

    /// Generates the current key of `partition` unless one is cached (prewarm).
    pub async fn warm(&self, partition: &Partition) -> Result<(), KmsError> {
        if self.lock().peek(partition).is_some() {
            return Ok(());
        }
        self.generate_shared(partition).await.map(|_| ())
    }

    /// Drops every cached key (they are zeroized as the last user lets go) and refuses to
    /// cache any more: called at SHUTDOWN, after the server has drained. Returns how many
    /// keys were dropped.
    pub fn clear(&self) -> usize {
        self.inner.closed.store(true, Ordering::Release);
        let mut entries = self.lock();
        let n = entries.len();
        entries.clear();
        self.inner.evictions.add(n as u64);
        self.inner.size.set(0);
        n
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
