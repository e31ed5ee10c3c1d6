//! AWS SDK clients: built once at init and reused for the life of the environment
//! (connection reuse is the point), with bounded connect, attempt and operation timeouts
//! and the SDK's own retry modes rather than a hand-written loop.
//!
//! One client per (service, region): [`regional`] builds the primary region's client and,
//! when a fallback region is configured, the fallback's, each pointed at its own endpoint
//! when `HEARTH_AWS_ENDPOINTS` names one, and wraps them with the service's
//! [`Failover`] breaker.
//!
//! # Timeout defaults, and why
//!
//! - Connect 1 s (`HEARTH_AWS_CONNECT_TIMEOUT`): inside a region a TCP and TLS handshake
//!   with a regional endpoint takes milliseconds; a second means the path is broken, and
//!   Linux's first SYN retransmission comes at 1 s anyway.
//! - Attempt 2 s (`HEARTH_AWS_ATTEMPT_TIMEOUT`): GetSecretValue, GenerateDataKey and
//!   Decrypt answer in tens of milliseconds at p99; an attempt still silent after 2 s is
//!   better retried on a fresh connection (the frozen-then-thawed socket case) than awaited.
//! - Operation 5 s and 3 attempts (`HEARTH_AWS_OPERATION_TIMEOUT`, `HEARTH_AWS_MAX_ATTEMPTS`):
//!   room for one slow attempt plus a retry, while staying well inside the 10 s request
//!   timeout of the HTTP API and below typical function timeouts. Lambda's default function
//!   timeout is 3 s: functions left at that default should set a fallback region (below)
//!   or lower these.
//! - With a fallback region, the primary gets a budget of its own: operation timeout
//!   `HEARTH_FAILOVER_BUDGET` (2 s), `HEARTH_FAILOVER_MAX_ATTEMPTS` (2) attempts, each
//!   `budget / attempts` (1 s). The first request of a regional outage then waits at most
//!   2 s on the primary plus one fallback call (tens of milliseconds, a few hundred across
//!   regions): the ~3 s target. A refused connection or a 5xx fails both attempts in
//!   milliseconds; only a silent primary costs the whole budget. The fallback client keeps
//!   the normal settings: it is the last resort, and may take its time.
//! - Standard retry mode (`HEARTH_AWS_RETRY_MODE`): exponential backoff with jitter and a
//!   retry quota, so an outage does not multiply the load; adaptive mode adds client-side
//!   rate limiting for functions that are throttled routinely. Backoff starts at 50 ms,
//!   not the SDK's 1 s, because a request is waiting on every retry here.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::{RetryConfig, RetryMode};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::{AwsConfig, Config};
use crate::failover::{Failover, Service, Side};
use crate::metrics::Metrics;

/// Builds the shared SDK configuration. No network call happens here: credentials and
/// region come from the environment Lambda provides, and credentials resolve lazily.
pub async fn sdk_config(cfg: &AwsConfig) -> SdkConfig {
    let retry = retry_config(cfg);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(cfg.connect_timeout)
        .operation_attempt_timeout(cfg.attempt_timeout)
        .operation_timeout(cfg.operation_timeout)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts)
        .load()
        .await
}

/// The SDK's retry modes, as configured by `HEARTH_AWS_RETRY_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryModeSetting {
    /// Exponential backoff with jitter and a retry quota.
    Standard,
    /// Standard plus client-side rate limiting when throttled.
    Adaptive,
}

impl From<RetryModeSetting> for RetryMode {
    fn from(m: RetryModeSetting) -> Self {
        match m {
            RetryModeSetting::Standard => RetryMode::Standard,
            RetryModeSetting::Adaptive => RetryMode::Adaptive,
        }
    }
}

/// The clients of one service: the primary region's and, if configured, the fallback's,
/// with the breaker that decides between them. Built once at init.
#[derive(Debug)]
pub struct Regional<C> {
    /// Client of the primary region.
    pub primary: C,
    /// Client of the fallback region, if one is configured.
    pub fallback: Option<C>,
    /// The breaker and the regions' names.
    pub failover: Arc<Failover>,
}

impl<C> Regional<C> {
    /// Only a primary client: no failover (for embedding and tests).
    pub fn single(
        client: C,
        region: impl Into<String>,
        service: Service,
        metrics: &Metrics,
    ) -> Self {
        Regional {
            primary: client,
            fallback: None,
            failover: Arc::new(Failover::new(
                service,
                region,
                None,
                Duration::from_secs(30),
                metrics,
            )),
        }
    }

    /// The client for `side` (the primary's when there is no fallback).
    pub fn client(&self, side: Side) -> &C {
        match (side, &self.fallback) {
            (Side::Fallback, Some(c)) => c,
            _ => &self.primary,
        }
    }
}

/// The primary's SDK settings when a fallback exists: a shorter operation budget split
/// equally among fewer attempts, so a silent primary costs at most the budget.
fn primary_with_fallback(cfg: &Config, service: Service) -> (TimeoutConfig, RetryConfig) {
    let f = &cfg.failover;
    let budget = f.budget.min(operation_timeout(cfg, service));
    let attempt = (budget / f.max_attempts.max(1)).min(cfg.aws.attempt_timeout);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(cfg.aws.connect_timeout.min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(budget)
        .build();
    let retry = retry_config(&cfg.aws).with_max_attempts(f.max_attempts);
    (timeouts, retry)
}

/// The operation timeout of `service`'s calls: its own setting (AWS's
/// `SECRETS_MANAGER_TIMEOUT_MILLIS`, ...) where set, else `HEARTH_AWS_OPERATION_TIMEOUT`.
fn operation_timeout(cfg: &Config, service: Service) -> Duration {
    let own = match service {
        Service::Secrets => cfg.secrets.timeout,
        Service::Parameters => cfg.parameters.timeout,
        Service::Kms => None,
    };
    own.unwrap_or(cfg.aws.operation_timeout)
}

/// The timeouts of a service whose own timeout differs from the general one.
fn service_timeouts(cfg: &Config, service: Service) -> Option<TimeoutConfig> {
    let op = operation_timeout(cfg, service);
    (op != cfg.aws.operation_timeout).then(|| {
        TimeoutConfig::builder()
            .connect_timeout(cfg.aws.connect_timeout)
            .operation_timeout(op)
            .operation_attempt_timeout(cfg.aws.attempt_timeout.min(op))
            .build()
    })
}

fn retry_config(cfg: &AwsConfig) -> RetryConfig {
    match cfg.retry_mode {
        RetryModeSetting::Standard => RetryConfig::standard(),
        RetryModeSetting::Adaptive => RetryConfig::adaptive(),
    }
    .with_max_attempts(cfg.max_attempts)
    .with_initial_backoff(Duration::from_millis(50))
}

/// The clients of `service`, built from the shared configuration `base` with `make`
/// (`aws_sdk_kms::Client::new`, ...). No network call happens here.
pub fn regional<C>(
    base: &SdkConfig,
    cfg: &Config,
    service: Service,
    metrics: &Metrics,
    make: impl Fn(&SdkConfig) -> C,
) -> Regional<C> {
    let fallback_region = match service {
        Service::Secrets => cfg.failover.secrets_region.clone(),
        Service::Kms => cfg.failover.kms_region.clone(),
        Service::Parameters => cfg.failover.parameters_region.clone(),
    };
    let primary_region = cfg
        .failover
        .primary_region
        .clone()
        .or_else(|| base.region().map(|r| r.to_string()))
        .unwrap_or_default();
    let timeouts = service_timeouts(cfg, service);
    let for_region = |region: &str| {
        let mut b = base.to_builder();
        if let Some(t) = &timeouts {
            b.set_timeout_config(Some(t.clone()));
        }
        if !region.is_empty() {
            b.set_region(Some(Region::new(region.to_string())));
        }
        if let Some(url) = cfg.failover.endpoints.get(region) {
            b.set_endpoint_url(Some(url.clone()));
        }
        b
    };
    let mut primary = for_region(&primary_region);
    if fallback_region.is_some() {
        let (timeouts, retry) = primary_with_fallback(cfg, service);
        primary = primary.timeout_config(timeouts).retry_config(retry);
    }
    let fallback = fallback_region
        .as_deref()
        .map(|r| make(&for_region(r).build()));
    Regional {
        primary: make(&primary.build()),
        fallback,
        failover: Arc::new(Failover::new(
            service,
            primary_region,
            fallback_region,
            cfg.failover.cooldown,
            metrics,
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Env;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut all = vec![("HEARTH_TOKEN", "t"), ("AWS_REGION", "us-east-1")];
        all.extend_from_slice(pairs);
        Config::from_env(&Env::from_pairs(all.iter().copied())).unwrap()
    }

    #[test]
    fn primary_budget_with_a_fallback() {
        let cfg = config(&[("HEARTH_FALLBACK_REGION", "eu-west-1")]);
        let (t, r) = primary_with_fallback(&cfg, Service::Kms);
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(r.max_attempts(), 2);
        // Never longer than the general settings.
        let cfg = config(&[
            ("HEARTH_FALLBACK_REGION", "eu-west-1"),
            ("HEARTH_FAILOVER_BUDGET", "10s"),
            ("HEARTH_FAILOVER_MAX_ATTEMPTS", "1"),
            ("HEARTH_AWS_OPERATION_TIMEOUT", "3s"),
        ]);
        let (t, _) = primary_with_fallback(&cfg, Service::Kms);
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_service_timeout_applies_to_that_service_only() {
        let base = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .build();
        let m = Metrics::new();
        let timeouts = |cfg: &Config, service| {
            let r = regional(&base, cfg, service, &m, |c| c.timeout_config().cloned());
            r.primary
                .unwrap_or_else(|| TimeoutConfig::builder().build())
        };
        // AWS's SECRETS_MANAGER_TIMEOUT_MILLIS: the secrets client's operation timeout.
        let cfg = config(&[("SECRETS_MANAGER_TIMEOUT_MILLIS", "250")]);
        let t = timeouts(&cfg, Service::Secrets);
        assert_eq!(t.operation_timeout(), Some(Duration::from_millis(250)));
        assert_eq!(
            t.operation_attempt_timeout(),
            Some(Duration::from_millis(250))
        );
        // KMS keeps the base configuration (none set on this bare SdkConfig).
        assert_eq!(timeouts(&cfg, Service::Kms).operation_timeout(), None);
        // 0 is no timeout of its own: the call still ends with the request.
        let cfg = config(&[("SECRETS_MANAGER_TIMEOUT_MILLIS", "0")]);
        let t = timeouts(&cfg, Service::Secrets);
        assert_eq!(t.operation_timeout(), Some(Duration::from_secs(10)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(1)));
        // Parameter Store's own variable, likewise.
        let cfg = config(&[("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "300")]);
        let t = timeouts(&cfg, Service::Parameters);
        assert_eq!(t.operation_timeout(), Some(Duration::from_millis(300)));
        // With a fallback, the primary's budget is never longer than the service's timeout.
        let cfg = config(&[
            ("HEARTH_FALLBACK_REGION", "eu-west-1"),
            ("SECRETS_MANAGER_TIMEOUT_MILLIS", "800"),
        ]);
        let (t, _) = primary_with_fallback(&cfg, Service::Secrets);
        assert_eq!(t.operation_timeout(), Some(Duration::from_millis(800)));
    }

    #[tokio::test]
    async fn one_client_per_region_with_its_own_endpoint() {
        let cfg = config(&[
            ("HEARTH_SECRETS_FALLBACK_REGION", "eu-west-1"),
            (
                "HEARTH_AWS_ENDPOINTS",
                "us-east-1=http://127.0.0.1:1,eu-west-1=http://127.0.0.1:2",
            ),
        ]);
        let base = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .build();
        let m = Metrics::new();
        let secrets = regional(&base, &cfg, Service::Secrets, &m, |c| {
            (
                c.region().map(|r| r.to_string()),
                c.endpoint_url().map(String::from),
            )
        });
        assert_eq!(
            secrets.primary,
            (Some("us-east-1".into()), Some("http://127.0.0.1:1".into()))
        );
        assert_eq!(
            secrets.fallback,
            Some((Some("eu-west-1".into()), Some("http://127.0.0.1:2".into())))
        );
        assert_eq!(secrets.failover.fallback_region(), Some("eu-west-1"));
        // KMS has no fallback configured: one client, the primary's.
        let kms = regional(&base, &cfg, Service::Kms, &m, |c| {
            c.region().map(|r| r.to_string())
        });
        assert!(kms.fallback.is_none());
        assert_eq!(kms.client(Side::Fallback), &Some("us-east-1".to_string()));
    }
}

// The SDK crates all re-export smithy's one `SdkError` type.
use aws_sdk_secretsmanager::error::SdkError;

/// A failure that happened before (or instead of) a service answer, as both the Secrets
/// Manager and the KMS error mappings see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// An attempt or the whole operation ran out of time.
    Timeout,
    /// Nothing could be sent or received; the text says which (never a value).
    Unavailable(&'static str),
    /// An answer came back that could not be parsed.
    Unparseable,
    /// The request could not be built from its inputs.
    Construction,
    /// Any other SDK failure.
    Unknown,
}

/// Classifies an SDK error that is not a service answer; `None` for a service error, which
/// each caller maps to its own typed error.
pub fn transport_failure<E, R>(e: &SdkError<E, R>) -> Option<TransportFailure> {
    Some(match e {
        SdkError::ServiceError(_) => return None,
        SdkError::TimeoutError(_) => TransportFailure::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => TransportFailure::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => {
            TransportFailure::Unavailable("connection failed")
        }
        SdkError::DispatchFailure(_) => TransportFailure::Unavailable("request could not be sent"),
        SdkError::ResponseError(_) => TransportFailure::Unparseable,
        SdkError::ConstructionFailure(_) => TransportFailure::Construction,
        _ => TransportFailure::Unknown,
    })
}
