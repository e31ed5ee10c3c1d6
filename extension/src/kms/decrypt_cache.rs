//! Decrypted data keys, keyed by (key ARN, encrypted data key, encryption context).
//!
//! A message's data key is decrypted by KMS once per max age, however many messages share
//! it; the context is part of the key because KMS authenticated the data key under exactly
//! that context. Concurrent misses for one key share one KMS Decrypt (single-flight).
//! Entries expire at the configured max age, are evicted LRU beyond the capacity, are
//! purged on INVOKE, and are zeroized on drop like every [`DataKey`].

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_esdk::{DataKey, EncryptionContext};
use lru::LruCache;
use tokio::time::Instant;

use super::KmsError;
use crate::flight::SingleFlight;
use crate::metrics::{Counter, Gauge, Metrics};

/// What a decrypted data key is cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecryptKey {
    /// The KMS key ARN from the encrypted data key's provider info.
    pub key_arn: String,
    /// The encrypted data key (KMS CiphertextBlob).
    pub edk_ciphertext: Vec<u8>,
    /// The message's encryption context.
    pub context: EncryptionContext,
}

/// One decrypted data key.
#[derive(Debug)]
pub struct Decrypted {
    /// The plaintext data key (zeroized on drop).
    pub key: DataKey,
    created: Instant,
}

struct Inner {
    max_age: Duration,
    entries: Mutex<LruCache<DecryptKey, Arc<Decrypted>>>,
    flight: SingleFlight<DecryptKey, Arc<Decrypted>, KmsError>,
    closed: AtomicBool,
    hits: Arc<Counter>,
    misses: Arc<Counter>,
    avoided: Arc<Counter>,
    evictions: Arc<Counter>,
    size: Arc<Gauge>,
}

/// The decrypted-key cache; cheap to clone.
#[derive(Clone)]
pub struct DecryptCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DecryptCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl DecryptCache {
    /// A cache of at most `capacity` keys, each kept at most `max_age`.
    pub fn new(max_age: Duration, capacity: NonZeroUsize, metrics: &Metrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_age,
                entries: Mutex::new(LruCache::new(capacity)),
                flight: SingleFlight::default(),
                closed: AtomicBool::new(false),
                hits: metrics.counter("kms.cache_hits"),
                misses: metrics.counter("kms.cache_misses"),
                avoided: metrics.counter("kms.calls_avoided"),
                evictions: metrics.counter("kms.evictions"),
                size: metrics.gauge("kms.decrypted_keys"),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<DecryptKey, Arc<Decrypted>>> {
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data key for `key`, from the cache or from `decrypt()` (KMS), which runs at most
    /// once for concurrent callers. Failures are not cached.
    pub async fn get<F, Fut>(
        &self,
        key: &DecryptKey,
        decrypt: F,
    ) -> Result<Arc<Decrypted>, KmsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<DataKey, KmsError>> + Send + 'static,
    {
        let now = Instant::now();
        {
            let mut entries = self.lock();
            match entries.get(key) {
                Some(e) if now.saturating_duration_since(e.created) < self.inner.max_age => {
                    self.inner.hits.inc();
                    self.inner.avoided.inc();
                    return Ok(e.clone());
                }
                Some(_) => {
                    entries.pop(key);
                    self.inner.evictions.inc();
                }
                None => {}
            }
        }
        self.inner.misses.inc();
        let (res, joined) = self
            .inner
            .flight
            .run(key, || {
                let this = self.clone();
                let key = key.clone();
                let fut = decrypt();
                async move {
                    let d = Arc::new(Decrypted {
                        key: fut.await?,
                        created: Instant::now(),
                    });
                    this.insert(key, d.clone());
                    Ok(d)
                }
            })
            .await;
        if joined {
            self.inner.avoided.inc();
        }
        res
    }

    fn insert(&self, key: DecryptKey, value: Arc<Decrypted>) {
        if self.inner.closed.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.lock();
        if entries.push(key, value).is_some() {
            self.inner.evictions.inc();
        }
        self.inner.size.set(entries.len() as u64);
    }

    /// Evicts keys past their max age (called on INVOKE). Returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = Instant::now();
        let mut entries = self.lock();
        let expired: Vec<DecryptKey> = entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.created) >= self.inner.max_age)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            entries.pop(k);
        }
        self.inner.evictions.add(expired.len() as u64);
        self.inner.size.set(entries.len() as u64);
        expired.len()
    }

    /// Drops every key and caches no more (SHUTDOWN). Returns how many were dropped.
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
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn key(blob: u8) -> DecryptKey {
        DecryptKey {
            key_arn: "arn".into(),
            edk_ciphertext: vec![blob],
            context: EncryptionContext::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn caches_until_max_age_and_evicts_lru() {
        let m = Metrics::new();
        let c = DecryptCache::new(Duration::from_secs(10), NonZeroUsize::new(1).unwrap(), &m);
        let calls = Arc::new(AtomicU32::new(0));
        let fetch = |calls: Arc<AtomicU32>| {
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(DataKey::from([1u8; 32]))
            }
        };
        c.get(&key(1), fetch(calls.clone())).await.unwrap();
        c.get(&key(1), fetch(calls.clone())).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        c.get(&key(1), fetch(calls.clone())).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let weak = Arc::downgrade(&c.get(&key(1), fetch(calls.clone())).await.unwrap());
        c.get(&key(2), fetch(calls.clone())).await.unwrap();
        assert!(weak.upgrade().is_none(), "evicted key dropped (zeroized)");
        assert_eq!(m.counter("kms.evictions").get(), 2);
        let failed = c
            .get(&key(3), || async { Err(KmsError::InvalidCiphertext) })
            .await;
        assert_eq!(failed.map(|_| ()), Err(KmsError::InvalidCiphertext));
        assert_eq!(c.len(), 1);
        assert_eq!(c.clear(), 1);
    }
}
