//! Single-flight: concurrent requests for one key share one upstream call.
//!
//! The first caller spawns the work as its own task, so a caller that disconnects does not
//! cancel it for the others; later callers wait on a `watch` channel. The work itself stores
//! its result in the cache before the key leaves the in-flight map, so a caller arriving in
//! between finds one or the other, never neither.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// An error that can stand for a call whose task ended without answering (the runtime
/// shutting down).
pub trait Interrupted {
    /// The error every waiter gets then.
    fn interrupted() -> Self;
}

type Slot<V, E> = watch::Receiver<Option<Result<V, E>>>;

/// The in-flight calls, by key.
pub struct SingleFlight<K, V, E> {
    // A std Mutex: held for a map operation only, never across an await.
    inflight: Arc<Mutex<HashMap<K, Slot<V, E>>>>,
}

impl<K, V, E> Default for SingleFlight<K, V, E> {
    fn default() -> Self {
        Self {
            inflight: Arc::default(),
        }
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Interrupted + Clone + Send + Sync + 'static,
{
    /// The result of the call for `key`: joins the one in flight, or starts `make()` as a
    /// task. The flag says whether this caller joined another's call.
    pub async fn run<F, Fut>(&self, key: &K, make: F) -> (Result<V, E>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let (mut rx, joined) = self.join(key, make);
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            // The task ended without answering (runtime shutting down).
            Err(_) => None,
        };
        let res = answer.unwrap_or_else(|| Err(E::interrupted()));
        (res, joined)
    }

    /// Calls in flight (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no call is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn join<F, Fut>(&self, key: &K, make: F) -> (Slot<V, E>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = inflight.get(key) {
            return (rx.clone(), true);
        }
        let (tx, rx) = watch::channel(None);
        inflight.insert(key.clone(), rx.clone());
        let work = make();
        let map = self.inflight.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let res = work.await;
            map.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            let _ = tx.send(Some(res));
        });
        (rx, false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::kms::KmsError;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_call() {
        let flight: Arc<SingleFlight<u8, u32, KmsError>> = Arc::default();
        let calls = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let flight = flight.clone();
                let calls = calls.clone();
                tokio::spawn(async move {
                    flight
                        .run(&1, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(7)
                        })
                        .await
                })
            })
            .collect();
        let mut joined = 0;
        for t in tasks {
            let (v, j) = t.await.unwrap();
            assert_eq!(v, Ok(7));
            joined += u32::from(j);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(joined, 19);
        assert!(flight.is_empty());
    }

    #[tokio::test]
    async fn errors_reach_every_waiter_and_the_next_call_retries() {
        let flight: SingleFlight<u8, u32, KmsError> = SingleFlight::default();
        let (r, _) = flight.run(&1, || async { Err(KmsError::Throttled) }).await;
        assert_eq!(r, Err(KmsError::Throttled));
        let (r, joined) = flight.run(&1, || async { Ok(1) }).await;
        assert_eq!((r, joined), (Ok(1), false));
    }
}
