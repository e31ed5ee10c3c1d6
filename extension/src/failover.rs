//! Regional failover for one AWS service: a circuit breaker in front of the primary region.
//!
//! | breaker   | a call ...                                                                 |
//! |-----------|----------------------------------------------------------------------------|
//! | closed    | goes to the primary; on an outage (see [`Outage`]) it goes on to the fallback, and the breaker opens |
//! | open      | goes straight to the fallback, until the cool-down has passed              |
//! | open, cool-down over | the first call probes the primary (and falls back if that fails); calls meanwhile go to the fallback |
//! | probing   | success closes the breaker; an outage opens it for another cool-down       |
//!
//! One failed call opens the breaker. That is deliberate: the call already went through the
//! SDK's own retries (bounded by `HEARTH_FAILOVER_BUDGET` and `HEARTH_FAILOVER_MAX_ATTEMPTS`),
//! so it is a strong signal, and waiting for a threshold would make every request of a
//! regional outage pay the budget again. An answer from the primary (not found, access
//! denied, a bad request) is not an outage: the region is up, and the answer is returned.
//! An answer from the *fallback* while the primary is failing (not found because the value
//! is not replicated, denied because IAM names the primary's ARNs) is not the truth about
//! the value: [`Outage::behind_outage`] lets a service report the primary's outage instead,
//! so stale-if-error keeps serving what was cached (secrets and parameters do; KMS returns
//! the answer as is).
//!
//! The breaker does not care what the call is: [`Failover::call`] takes a closure that
//! builds the call for a [`Side`], so the same breaker serves GetSecretValue, GenerateDataKey
//! and Decrypt, and the unit tests below drive it with no network at all. Time is
//! `tokio::time::Instant`, paused in the tests. Each transition is logged once, at the
//! moment it happens, never per request.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{Counter, Gauge, Latency, Metrics};

/// Whether an error means the region failed (transport error, timeout, 5xx, throttling
/// after the SDK's retries), as opposed to the region answering.
pub trait Outage {
    /// True when another region might succeed where this one failed.
    fn is_outage(&self) -> bool;

    /// What the caller sees when the primary is failing (this call's attempt, or the one
    /// that opened the breaker) and the fallback answered `self`, an answer that is not an
    /// outage: not found because the value is not replicated there, access denied because
    /// IAM names the primary region's ARNs. The primary's outage is the cause, so services
    /// with stale-if-error turn the answer into a transient error (a cached value keeps
    /// being served); the default returns the fallback's answer as is.
    fn behind_outage(self, _primary_region: &str) -> Self
    where
        Self: Sized,
    {
        self
    }
}

/// Which region a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The function's own region (`AWS_REGION`).
    Primary,
    /// The configured fallback region.
    Fallback,
}

/// The services that fail over; each has its own breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// AWS Secrets Manager.
    Secrets,
    /// AWS KMS.
    Kms,
    /// AWS Systems Manager Parameter Store.
    Parameters,
}

impl Service {
    /// Name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Service::Secrets => "secretsmanager",
            Service::Kms => "kms",
            Service::Parameters => "ssm",
        }
    }
}

/// The breaker's state as reported to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to the primary.
    Closed,
    /// Calls go to the fallback.
    Open,
    /// One call is probing the primary; the others go to the fallback.
    Probing,
}

enum State {
    Closed,
    Open { until: Instant },
    Probing,
}

enum Route {
    Primary,
    Probe,
    Fallback,
}

/// Latency and error figures of one region of one service.
struct RegionMetrics {
    calls: Arc<Counter>,
    errors: Arc<Counter>,
    latency: Arc<Latency>,
}

/// Metric names are `&'static str` in the registry; there are three services and two sides,
/// so they are spelt out rather than built (and leaked) at run time.
fn region_metrics(service: Service, side: Side, m: &Metrics) -> RegionMetrics {
    let (calls, errors, latency) = match (service, side) {
        (Service::Secrets, Side::Primary) => (
            "aws.secrets.primary_calls",
            "aws.secrets.primary_errors",
            "aws.secrets.primary_latency",
        ),
        (Service::Secrets, Side::Fallback) => (
            "aws.secrets.fallback_calls",
            "aws.secrets.fallback_errors",
            "aws.secrets.fallback_latency",
        ),
        (Service::Kms, Side::Primary) => (
            "aws.kms.primary_calls",
            "aws.kms.primary_errors",
            "aws.kms.primary_latency",
        ),
        (Service::Kms, Side::Fallback) => (
            "aws.kms.fallback_calls",
            "aws.kms.fallback_errors",
            "aws.kms.fallback_latency",
        ),
        (Service::Parameters, Side::Primary) => (
            "aws.ssm.primary_calls",
            "aws.ssm.primary_errors",
            "aws.ssm.primary_latency",
        ),
        (Service::Parameters, Side::Fallback) => (
            "aws.ssm.fallback_calls",
            "aws.ssm.fallback_errors",
            "aws.ssm.fallback_latency",
        ),
    };
    RegionMetrics {
        calls: m.counter(calls),
        errors: m.counter(errors),
        latency: m.latency(latency),
    }
}

/// The primary and fallback regions of one service, and the breaker between them.
pub struct Failover {
    service: Service,
    primary_region: String,
    fallback_region: Option<String>,
    cooldown: Duration,
    // A std Mutex: a state check or transition, never held across an await.
    state: Mutex<State>,
    primary: RegionMetrics,
    fallback: RegionMetrics,
    failovers: Arc<Counter>,
    opened: Arc<Counter>,
    closed: Arc<Counter>,
    probes: Arc<Counter>,
    open: Arc<Gauge>,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover")
            .field("service", &self.service)
            .field("primary_region", &self.primary_region)
            .field("fallback_region", &self.fallback_region)
            .field("state", &self.state())
            .finish()
    }
}

/// Re-arms the probe if the probing call is cancelled before it has an outcome, so the
/// breaker never sticks in `Probing` with every call going to the fallback.
struct ProbeGuard<'a> {
    failover: &'a Failover,
    armed: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut s = self.failover.lock();
            if matches!(*s, State::Probing) {
                *s = State::Open {
                    until: Instant::now(),
                };
            }
        }
    }
}

impl Failover {
    /// A breaker for `service`, closed. Without a fallback region every call goes to the
    /// primary and the breaker never opens (there is nowhere else to go).
    pub fn new(
        service: Service,
        primary_region: impl Into<String>,
        fallback_region: Option<String>,
        cooldown: Duration,
        metrics: &Metrics,
    ) -> Self {
        let open = match service {
            Service::Secrets => metrics.gauge("aws.secrets.breaker_open"),
            Service::Kms => metrics.gauge("aws.kms.breaker_open"),
            Service::Parameters => metrics.gauge("aws.ssm.breaker_open"),
        };
        Self {
            service,
            primary_region: primary_region.into(),
            fallback_region,
            cooldown,
            state: Mutex::new(State::Closed),
            primary: region_metrics(service, Side::Primary, metrics),
            fallback: region_metrics(service, Side::Fallback, metrics),
            failovers: metrics.counter("aws.failovers"),
            opened: metrics.counter("aws.breaker_opened"),
            closed: metrics.counter("aws.breaker_closed"),
            probes: metrics.counter("aws.breaker_probes"),
            open,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The primary region.
    pub fn primary_region(&self) -> &str {
        &self.primary_region
    }

    /// The fallback region, if configured.
    pub fn fallback_region(&self) -> Option<&str> {
        self.fallback_region.as_deref()
    }

    /// The region of `side` (the primary's when there is no fallback).
    pub fn region(&self, side: Side) -> &str {
        match side {
            Side::Fallback => self.fallback_region().unwrap_or(&self.primary_region),
            Side::Primary => &self.primary_region,
        }
    }

    /// The side serving `region`: the fallback's if it is the fallback region, otherwise
    /// the primary's (the client of the function's own region).
    pub fn side_of(&self, region: Option<&str>) -> Side {
        match (region, self.fallback_region()) {
            (Some(r), Some(f)) if r == f => Side::Fallback,
            _ => Side::Primary,
        }
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::Probing => BreakerState::Probing,
        }
    }

    /// Whether the primary should be tried first: the breaker is closed, or its cool-down
    /// is over. No side effect (it claims no probe), so a caller may ask and then not call.
    pub fn prefers_primary(&self) -> bool {
        match *self.lock() {
            State::Closed => true,
            State::Open { until } => Instant::now() >= until,
            State::Probing => false,
        }
    }

    fn route(&self) -> Route {
        if self.fallback_region.is_none() {
            return Route::Primary;
        }
        let mut s = self.lock();
        match *s {
            State::Closed => Route::Primary,
            State::Probing => Route::Fallback,
            State::Open { until } if Instant::now() >= until => {
                *s = State::Probing;
                self.probes.inc();
                tracing::info!(
                    service = self.service.name(),
                    region = %self.primary_region,
                    "cool-down over: probing the primary region with one call"
                );
                Route::Probe
            }
            State::Open { .. } => Route::Fallback,
        }
    }

    /// Runs `op` against the primary, or the fallback as the breaker and the outcome say.
    /// `op` builds the call for a side; it is called once, or twice when the primary fails
    /// with an outage and the call goes on to the fallback.
    pub async fn call<T, E, F, Fut>(&self, mut op: F) -> Result<T, E>
    where
        F: FnMut(Side) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Outage,
    {
        let route = self.route();
        if matches!(route, Route::Fallback) {
            return self.on_fallback(op(Side::Fallback)).await;
        }
        let mut guard = ProbeGuard {
            failover: self,
            armed: matches!(route, Route::Probe),
        };
        let res = self.call_on(Side::Primary, op(Side::Primary)).await;
        guard.armed = false;
        match res {
            Err(e) if e.is_outage() && self.fallback_region.is_some() => {
                self.failovers.inc();
                tracing::debug!(
                    service = self.service.name(),
                    from = %self.primary_region,
                    to = self.fallback_region().unwrap_or_default(),
                    "primary region failed; calling the fallback region"
                );
                self.on_fallback(op(Side::Fallback)).await
            }
            r => r,
        }
    }

    /// A call on the fallback because the primary is failing: a fallback answer that is
    /// not an outage goes through [`Outage::behind_outage`].
    async fn on_fallback<T, E, Fut>(&self, fut: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Outage,
    {
        self.call_on(Side::Fallback, fut).await.map_err(|e| {
            if e.is_outage() {
                e
            } else {
                e.behind_outage(&self.primary_region)
            }
        })
    }

    /// One call on `side`, timed and counted. On the primary, its outcome feeds the
    /// breaker: an outage opens it, any answer (success or a 4xx) closes it. Used directly
    /// where only one side can serve the call (a data key encrypted under one region's
    /// key), so even an open breaker lets it through: there is nothing else to try.
    pub async fn call_on<T, E, Fut>(&self, side: Side, fut: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        E: Outage,
    {
        let m = match side {
            Side::Primary => &self.primary,
            Side::Fallback => &self.fallback,
        };
        m.calls.inc();
        let started = Instant::now();
        let res = fut.await;
        m.latency.record(started.elapsed());
        let outage = res.as_ref().err().is_some_and(Outage::is_outage);
        if res.is_err() {
            m.errors.inc();
        }
        if side == Side::Primary && self.fallback_region.is_some() {
            if outage {
                self.primary_failed();
            } else {
                self.primary_answered();
            }
        }
        res
    }

    /// Counts a call that another region served after this one failed (for callers that
    /// choose the region themselves, as decrypt does among a message's data keys).
    pub fn note_failover(&self) {
        self.failovers.inc();
    }

    fn primary_failed(&self) {
        let mut s = self.lock();
        let until = Instant::now() + self.cooldown;
        match *s {
            State::Closed => {
                self.opened.inc();
                self.open.set(1);
                tracing::warn!(
                    service = self.service.name(),
                    region = %self.primary_region,
                    fallback = self.fallback_region().unwrap_or_default(),
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "primary region failing: circuit breaker opened, calls go to the fallback region"
                );
            }
            State::Probing => {
                tracing::warn!(
                    service = self.service.name(),
                    region = %self.primary_region,
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "probe of the primary region failed: circuit breaker stays open"
                );
            }
            // Already open: a straggler or a last-resort call failed; extend quietly.
            State::Open { .. } => {}
        }
        *s = State::Open { until };
    }

    fn primary_answered(&self) {
        let mut s = self.lock();
        if !matches!(*s, State::Closed) {
            *s = State::Closed;
            self.closed.inc();
            self.open.set(0);
            tracing::info!(
                service = self.service.name(),
                region = %self.primary_region,
                "primary region answering again: circuit breaker closed"
            );
        }
    }
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
