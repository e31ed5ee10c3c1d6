//! Tests of the data-key cache.

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
