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
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;

    /// Hands out distinct keys and counts GenerateDataKey calls; optionally slow.
    struct Counting {
        calls: Arc<AtomicU64>,
        delay: Duration,
    }

    impl KeySource for Counting {
        fn generate(&self, p: &Partition) -> BoxFuture<'static, Result<Materials, KmsError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let delay = self.delay;
            let info = p.key_id.clone().into_bytes();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Ok(Materials {
                    key: DataKey::from([n as u8; 32]),
                    edk: EncryptedDataKey {
                        provider_id: "aws-kms".into(),
                        provider_info: info,
                        ciphertext: n.to_be_bytes().to_vec(),
                    },
                    fallback_edk: None,
                })
            })
        }
    }

    fn cache(
        max_messages: u64,
        max_bytes: u64,
        capacity: usize,
        refresh_percent: u8,
    ) -> (DataKeyCache, Arc<AtomicU64>, Arc<Metrics>) {
        let calls = Arc::new(AtomicU64::new(0));
        let metrics = Metrics::new();
        let c = DataKeyCache::new(
            Limits {
                max_age: Duration::from_secs(300),
                max_messages,
                max_bytes,
                refresh_percent,
            },
            std::num::NonZeroUsize::new(capacity).unwrap(),
            Arc::new(Counting {
                calls: calls.clone(),
                delay: Duration::from_millis(10),
            }),
            &metrics,
        );
        (c, calls, metrics)
    }

    fn part(ctx: &str) -> Partition {
        Partition {
            key_id: "k".into(),
            context: EncryptionContext::from([("t".to_string(), ctx.to_string())]),
        }
    }

    fn id(e: &Entry) -> Vec<u8> {
        e.materials.edk.ciphertext.clone()
    }

    #[tokio::test(start_paused = true)]
    async fn fourth_message_gets_a_fresh_key() {
        let (c, calls, m) = cache(3, 1 << 20, 10, 100);
        let p = part("a");
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(id(&c.acquire(&p, 1).await.unwrap()));
            // Let a background refresh finish, so the count below is deterministic.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[1], ids[2]);
        assert_ne!(ids[2], ids[3]);
        // Key 2 was generated ahead, after the third message used key 1 up.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(m.counter("kms.cache_hits").get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn byte_limit_includes_the_current_request() {
        let (c, calls, _) = cache(1000, 100, 10, 100);
        let p = part("a");
        let a = id(&c.acquire(&p, 60).await.unwrap());
        // 60 + 41 > 100: this request may not use key 1 although it has 40 bytes left.
        let b = id(&c.acquire(&p, 41).await.unwrap());
        assert_ne!(a, b);
        // 41 + 58 = 99: below the limit (and below the 100 % refresh-ahead threshold).
        let b2 = id(&c.acquire(&p, 58).await.unwrap());
        assert_eq!(b, b2);
        // Bigger than any key's budget: a key of its own, not cached.
        let big = id(&c.acquire(&p, 101).await.unwrap());
        assert_ne!(big, b);
        assert_eq!(id(&c.acquire(&p, 0).await.unwrap()), b);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn max_age_with_paused_time() {
        let (c, calls, _) = cache(1000, 1 << 20, 10, 100);
        let p = part("a");
        let a = id(&c.acquire(&p, 1).await.unwrap());
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(id(&c.acquire(&p, 1).await.unwrap()), a);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_ne!(id(&c.acquire(&p, 1).await.unwrap()), a);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_ahead_means_no_request_waits() {
        let (c, calls, m) = cache(10, 1 << 20, 10, 80);
        let p = part("a");
        for _ in 0..8 {
            c.acquire(&p, 1).await.unwrap();
        }
        // The eighth message reached 80 %: a replacement is being generated.
        assert_eq!(m.counter("kms.refreshes").get(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let misses = m.counter("kms.cache_misses").get();
        c.acquire(&p, 1).await.unwrap();
        assert_eq!(
            m.counter("kms.cache_misses").get(),
            misses,
            "served without waiting"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invoke_refresh_ahead_and_expiry() {
        let (c, calls, m) = cache(1000, 1 << 20, 10, 80);
        c.acquire(&part("used"), 1).await.unwrap();
        c.warm(&part("idle")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(250)).await;
        // Both are due by age; only the used one is replaced.
        assert_eq!(c.refresh_ahead(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        tokio::time::advance(Duration::from_secs(60)).await;
        // The idle key is past its max age now and is evicted; the replacement is not.
        let before = m.counter("kms.evictions").get();
        c.refresh_ahead();
        assert_eq!(m.counter("kms.evictions").get(), before + 1);
        assert_eq!(c.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_cold_misses_make_one_call() {
        let (c, calls, m) = cache(1000, 1 << 20, 10, 100);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { id(&c.acquire(&part("a"), 1).await.unwrap()) })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        assert!(ids.iter().all(|i| *i == ids[0]));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(m.counter("kms.coalesced").get(), 49);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_never_exceeds_the_message_limit() {
        let (c, _, _) = cache(3, 1 << 20, 10, 100);
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { id(&c.acquire(&part("a"), 1).await.unwrap()) })
            })
            .collect();
        let mut per_key = std::collections::HashMap::<Vec<u8>, u32>::new();
        for t in tasks {
            *per_key.entry(t.await.unwrap()).or_default() += 1;
        }
        assert!(per_key.values().all(|n| *n <= 3), "{per_key:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn evicted_keys_are_dropped_and_counted() {
        let (c, _, m) = cache(1000, 1 << 20, 1, 100);
        let first = c.acquire(&part("a"), 1).await.unwrap();
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_some(), "cached while current");
        // Capacity 1: partition b evicts partition a.
        c.acquire(&part("b"), 1).await.unwrap();
        assert_eq!(m.counter("kms.evictions").get(), 1);
        // Nothing holds the entry any more: its DataKey was dropped, which zeroizes it.
        assert!(weak.upgrade().is_none());

        // A key still in use by a request outlives its eviction until the request ends.
        let held = c.acquire(&part("b"), 1).await.unwrap();
        let weak = Arc::downgrade(&held);
        assert_eq!(c.clear(), 1);
        assert_eq!(m.counter("kms.evictions").get(), 2);
        assert!(weak.upgrade().is_some());
        drop(held);
        assert!(weak.upgrade().is_none());
        // After clear (shutdown) nothing is cached again.
        c.acquire(&part("c"), 1).await.unwrap();
        assert!(c.is_empty());
    }
}
