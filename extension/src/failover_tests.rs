//! Tests of the regional failover breaker.

#![allow(clippy::unwrap_used)]
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum E {
    Down,
    NotFound,
}

impl Outage for E {
    fn is_outage(&self) -> bool {
        *self == E::Down
    }
}

/// A pretend pair of regions: what the primary answers, how long it takes, and how
/// many calls each side got.
struct Regions {
    primary: Mutex<Result<&'static str, E>>,
    primary_delay: Duration,
    primary_calls: AtomicU32,
    fallback_calls: AtomicU32,
}

impl Regions {
    fn new(primary: Result<&'static str, E>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            primary: Mutex::new(primary),
            primary_delay: delay,
            primary_calls: AtomicU32::new(0),
            fallback_calls: AtomicU32::new(0),
        })
    }

    fn set_primary(&self, r: Result<&'static str, E>) {
        *self.primary.lock().unwrap() = r;
    }

    fn calls(&self) -> (u32, u32) {
        (
            self.primary_calls.load(Ordering::SeqCst),
            self.fallback_calls.load(Ordering::SeqCst),
        )
    }

    async fn serve(self: Arc<Self>, side: Side) -> Result<&'static str, E> {
        match side {
            Side::Primary => {
                self.primary_calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.primary_delay).await;
                *self.primary.lock().unwrap()
            }
            Side::Fallback => {
                self.fallback_calls.fetch_add(1, Ordering::SeqCst);
                Ok("fallback")
            }
        }
    }
}

const COOLDOWN: Duration = Duration::from_secs(30);

fn failover(metrics: &Metrics) -> Failover {
    Failover::new(
        Service::Secrets,
        "us-east-1",
        Some("eu-west-1".into()),
        COOLDOWN,
        metrics,
    )
}

async fn call(f: &Failover, r: &Arc<Regions>) -> Result<&'static str, E> {
    f.call(|side| r.clone().serve(side)).await
}

#[tokio::test(start_paused = true)]
async fn healthy_primary_serves_and_fallback_is_untouched() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Ok("primary"), Duration::from_millis(5));
    for _ in 0..3 {
        assert_eq!(call(&f, &r).await, Ok("primary"));
    }
    assert_eq!(r.calls(), (3, 0));
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(m.counter("aws.failovers").get(), 0);
    assert_eq!(m.latency("aws.secrets.primary_latency").count(), 3);
}

#[tokio::test(start_paused = true)]
async fn outage_fails_over_and_opens_the_breaker() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Err(E::Down), Duration::from_secs(2));
    let t0 = Instant::now();
    assert_eq!(call(&f, &r).await, Ok("fallback"));
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(2),
        "one primary wait, then fallback"
    );
    assert_eq!(f.state(), BreakerState::Open);
    // Open: the next calls go straight to the fallback, without waiting on the primary.
    let t1 = Instant::now();
    for _ in 0..5 {
        assert_eq!(call(&f, &r).await, Ok("fallback"));
    }
    assert_eq!(t1.elapsed(), Duration::ZERO);
    assert_eq!(r.calls(), (1, 6));
    assert_eq!(m.counter("aws.failovers").get(), 1);
    assert_eq!(m.counter("aws.breaker_opened").get(), 1);
    assert_eq!(m.gauge("aws.secrets.breaker_open").get(), 1);
    assert_eq!(m.counter("aws.secrets.primary_errors").get(), 1);
    assert_eq!(m.counter("aws.secrets.fallback_calls").get(), 6);
}

/// An error type whose fallback answers behind an outage become `Behind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum F {
    Down,
    NotFound,
    Behind,
}

impl Outage for F {
    fn is_outage(&self) -> bool {
        *self == F::Down
    }
    fn behind_outage(self, primary_region: &str) -> Self {
        assert_eq!(primary_region, "us-east-1");
        F::Behind
    }
}

#[tokio::test(start_paused = true)]
async fn a_fallback_answer_behind_a_primary_outage_reports_the_outage() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = f
        .call(|side| async move {
            match side {
                Side::Primary => Err::<(), _>(F::Down),
                Side::Fallback => Err(F::NotFound),
            }
        })
        .await;
    assert_eq!(r, Err(F::Behind));
    // Open breaker: straight to the fallback, and the same holds.
    assert_eq!(f.state(), BreakerState::Open);
    let r = f
        .call(|side| async move {
            assert_eq!(side, Side::Fallback);
            Err::<(), _>(F::NotFound)
        })
        .await;
    assert_eq!(r, Err(F::Behind));
    // A fallback that is down too stays an outage.
    let r = f.call(|_| async { Err::<(), _>(F::Down) }).await;
    assert_eq!(r, Err(F::Down));
}

#[tokio::test(start_paused = true)]
async fn an_answer_is_not_an_outage() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Err(E::NotFound), Duration::from_millis(5));
    assert_eq!(call(&f, &r).await, Err(E::NotFound));
    assert_eq!(r.calls(), (1, 0));
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(m.counter("aws.failovers").get(), 0);
}

#[tokio::test(start_paused = true)]
async fn after_the_cooldown_one_call_probes_and_success_closes() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Err(E::Down), Duration::from_secs(1));
    call(&f, &r).await.unwrap();
    r.set_primary(Ok("primary"));
    tokio::time::advance(COOLDOWN - Duration::from_millis(1)).await;
    assert!(!f.prefers_primary());
    assert_eq!(call(&f, &r).await, Ok("fallback"), "still cooling down");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(f.prefers_primary());
    assert_eq!(r.calls(), (1, 2));
    // The probe takes 1 s; a call made meanwhile goes to the fallback, not the primary.
    let (probe, during) = tokio::join!(call(&f, &r), async {
        tokio::task::yield_now().await;
        assert_eq!(f.state(), BreakerState::Probing);
        call(&f, &r).await
    });
    assert_eq!((probe, during), (Ok("primary"), Ok("fallback")));
    assert_eq!(r.calls(), (2, 3));
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(call(&f, &r).await, Ok("primary"));
    assert_eq!(m.counter("aws.breaker_probes").get(), 1);
    assert_eq!(m.counter("aws.breaker_closed").get(), 1);
    assert_eq!(m.gauge("aws.secrets.breaker_open").get(), 0);
}

#[tokio::test(start_paused = true)]
async fn failed_probe_falls_back_and_reopens_for_another_cooldown() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Err(E::Down), Duration::from_secs(2));
    call(&f, &r).await.unwrap();
    tokio::time::advance(COOLDOWN).await;
    let t0 = Instant::now();
    assert_eq!(call(&f, &r).await, Ok("fallback"));
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(2),
        "the probe paid the budget"
    );
    assert_eq!(f.state(), BreakerState::Open);
    assert_eq!(r.calls(), (2, 2));
    // A full new cool-down, not the remainder of the old one.
    tokio::time::advance(COOLDOWN - Duration::from_secs(1)).await;
    call(&f, &r).await.unwrap();
    assert_eq!(r.calls(), (2, 3));
    // Opened once, probed once: transitions are counted, not requests.
    assert_eq!(m.counter("aws.breaker_opened").get(), 1);
    assert_eq!(m.counter("aws.breaker_probes").get(), 1);
    assert_eq!(m.counter("aws.failovers").get(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_lets_the_next_call_probe() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Err(E::Down), Duration::from_secs(2));
    call(&f, &r).await.unwrap();
    tokio::time::advance(COOLDOWN).await;
    r.set_primary(Ok("primary"));
    // The probing request is dropped mid-call (its client went away).
    let cut = tokio::time::timeout(Duration::from_millis(100), call(&f, &r)).await;
    assert!(cut.is_err());
    assert_eq!(f.state(), BreakerState::Open);
    assert_eq!(call(&f, &r).await, Ok("primary"));
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(m.counter("aws.breaker_probes").get(), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_failures_open_once() {
    let m = Metrics::new();
    let f = failover(&m);
    let r = Regions::new(Err(E::Down), Duration::from_secs(1));
    let results = futures::future::join_all((0..10).map(|_| call(&f, &r))).await;
    assert!(results.iter().all(|x| *x == Ok("fallback")));
    assert_eq!(r.calls(), (10, 10));
    assert_eq!(m.counter("aws.breaker_opened").get(), 1);
    assert_eq!(m.counter("aws.failovers").get(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_direct_primary_call_counts_for_the_breaker() {
    let m = Metrics::new();
    let f = failover(&m);
    // Only the primary can serve this call: it fails, the breaker opens...
    let down = f
        .call_on(Side::Primary, async { Err::<(), _>(E::Down) })
        .await;
    assert_eq!(down, Err(E::Down));
    assert_eq!(f.state(), BreakerState::Open);
    // ...and even open, a last-resort call goes through; an answer closes it.
    let up = f
        .call_on(Side::Primary, async { Err::<(), _>(E::NotFound) })
        .await;
    assert_eq!(up, Err(E::NotFound));
    assert_eq!(f.state(), BreakerState::Closed);
    // The fallback's outcomes never move the primary's breaker.
    f.call_on(Side::Fallback, async { Err::<(), _>(E::Down) })
        .await
        .unwrap_err();
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(m.counter("aws.kms.fallback_errors").get(), 0);
    assert_eq!(m.counter("aws.secrets.fallback_errors").get(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_fallback_calls_pass_through() {
    let m = Metrics::new();
    let f = Failover::new(Service::Kms, "us-east-1", None, COOLDOWN, &m);
    let r = Regions::new(Err(E::Down), Duration::from_millis(5));
    assert_eq!(call(&f, &r).await, Err(E::Down));
    assert_eq!(call(&f, &r).await, Err(E::Down));
    assert_eq!(r.calls(), (2, 0));
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(m.counter("aws.breaker_opened").get(), 0);
    assert_eq!(f.side_of(Some("eu-west-1")), Side::Primary);
}

#[test]
fn sides_of_regions() {
    let m = Metrics::new();
    let f = failover(&m);
    assert_eq!(f.side_of(Some("eu-west-1")), Side::Fallback);
    assert_eq!(f.side_of(Some("us-east-1")), Side::Primary);
    assert_eq!(f.side_of(Some("ap-south-1")), Side::Primary);
    assert_eq!(f.side_of(None), Side::Primary);
    assert_eq!(f.region(Side::Fallback), "eu-west-1");
}
