//! The secrets cache's section: TTLs, jitter, stale-if-error, size, prefetch, and the
//! Secrets Manager timeout, with AWS's extension's variables read in AWS's units.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::reader::{list, parse_duration, parse_flag, Reader, Var};

/// What AWS's `PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED` accepts.
pub const AWS_CACHE_ENABLED: (&str, &str) = (
    "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
    "true or false; false: no caching",
);
/// What AWS's `PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE` accepts.
pub const AWS_CACHE_SIZE: (&str, &str) = (
    "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
    "0 to 1000; 0: no caching",
);

/// The secrets cache's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_SECRETS_CACHE", "true", "Cache secrets (false: every read calls Secrets Manager).")
        .aws(AWS_CACHE_ENABLED.0, AWS_CACHE_ENABLED.1),
    Var::new("HEARTH_SECRETS_SOFT_TTL", "240s (80% of the hard TTL if only that is set)", "Age at which a read starts a background refresh; jittered per entry."),
    Var::new("HEARTH_SECRETS_HARD_TTL", "300s", "Age at which a read refetches before answering (no 5-minute cap).")
        .aws("SECRETS_MANAGER_TTL", "seconds, 0 to 300; 0: no caching"),
    Var::new("HEARTH_SECRETS_JITTER_PERCENT", "10", "Soft-TTL jitter per entry, in percent (0 to 50)."),
    Var::new("HEARTH_SECRETS_STALE_IF_ERROR", "15m", "How long past the hard TTL a value is served while Secrets Manager fails transiently (0 disables)."),
    Var::new("HEARTH_SECRETS_CACHE_SIZE", "1000", "Cached secret versions (LRU beyond).")
        .aws(AWS_CACHE_SIZE.0, AWS_CACHE_SIZE.1),
    Var::new("HEARTH_SECRETS_PREFETCH", "(none)", "Comma-separated secret ids fetched in the background at init."),
    Var::new("HEARTH_SECRETS_TIMEOUT", "HEARTH_AWS_OPERATION_TIMEOUT", "Timeout of a GetSecretValue call, retries included, or none.")
        .aws("SECRETS_MANAGER_TIMEOUT_MILLIS", "milliseconds; 0: none"),
];

/// Secrets cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsConfig {
    /// Whether secrets are cached at all (off: every read calls Secrets Manager).
    pub caching: bool,
    /// Age after which a read triggers a background refresh (before jitter).
    pub soft_ttl: Duration,
    /// Age after which a read refetches synchronously: the maximum exposure window.
    pub hard_ttl: Duration,
    /// Per-entry jitter of the soft TTL, in percent (± this much).
    pub jitter_percent: u8,
    /// How long past the hard TTL a cached value may be served while AWS fails transiently.
    pub stale_if_error: Duration,
    /// Maximum cached versions (LRU beyond).
    pub capacity: NonZeroUsize,
    /// Secret ids fetched in the background at init.
    pub prefetch: Vec<String>,
    /// Timeout of a GetSecretValue call: `None` keeps the general operation timeout,
    /// `Some(None)` sets none.
    pub timeout: Option<Option<Duration>>,
}

/// Reads the secrets cache's section.
pub fn read(r: &mut Reader<'_>) -> SecretsConfig {
    // AWS's TTL: whole seconds up to 5 minutes; 0 turns caching off.
    let aws_ttl = r.parse_aws(
        "HEARTH_SECRETS_HARD_TTL",
        "an integer number of seconds from 0 to 300 (0: no caching)",
        |s| s.parse::<u64>().ok().filter(|n| *n <= 300),
    );
    let hard_ttl = match aws_ttl {
        Some(secs) if secs > 0 => Duration::from_secs(secs),
        _ => r.duration(
            "HEARTH_SECRETS_HARD_TTL",
            Duration::from_secs(300),
            Duration::from_millis(100),
            Duration::from_secs(7 * 24 * 3600),
        ),
    };
    let soft_default = if r.raw("HEARTH_SECRETS_HARD_TTL").is_some() || aws_ttl.is_some() {
        hard_ttl.mul_f64(0.8)
    } else {
        Duration::from_secs(240)
    };
    let soft_ttl = r.duration(
        "HEARTH_SECRETS_SOFT_TTL",
        soft_default,
        Duration::from_millis(100),
        hard_ttl,
    );
    let aws_enabled = r.parse_aws("HEARTH_SECRETS_CACHE", "true or false", parse_flag);
    let aws_size = r.parse_aws(
        "HEARTH_SECRETS_CACHE_SIZE",
        "an integer from 0 to 1000 (0: no caching)",
        |s| s.parse::<usize>().ok().filter(|n| *n <= 1000),
    );
    let caching = r.flag("HEARTH_SECRETS_CACHE", true)
        && aws_enabled != Some(false)
        && aws_ttl != Some(0)
        && aws_size != Some(0);
    let capacity = match aws_size.and_then(NonZeroUsize::new) {
        Some(n) => n,
        None => r.size("HEARTH_SECRETS_CACHE_SIZE", 1000, 1_000_000),
    };
    let timeout = match r.aws_millis("HEARTH_SECRETS_TIMEOUT") {
        Some(t) => Some(t),
        None => r.parse(
            "HEARTH_SECRETS_TIMEOUT",
            None,
            "a duration from 10ms to 15m, or none",
            |s| match s {
                "none" => Some(Some(None)),
                s => parse_duration(s)
                    .filter(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(900))
                    .map(|d| Some(Some(d))),
            },
        ),
    };
    let prefetch = r.parse(
        "HEARTH_SECRETS_PREFETCH",
        Vec::new(),
        "comma-separated secret ids or ARNs",
        |s| {
            let ids = list(s);
            ids.iter().all(|id| id.len() <= 2048).then_some(ids)
        },
    );
    if !caching && !prefetch.is_empty() {
        r.problem(
            "HEARTH_SECRETS_PREFETCH",
            "has no effect with secret caching off; remove it, or turn caching on".into(),
        );
    }
    SecretsConfig {
        caching,
        soft_ttl,
        hard_ttl,
        jitter_percent: r.parse(
            "HEARTH_SECRETS_JITTER_PERCENT",
            10,
            "an integer from 0 to 50",
            |s| s.parse::<u8>().ok().filter(|n| *n <= 50),
        ),
        stale_if_error: r.duration(
            "HEARTH_SECRETS_STALE_IF_ERROR",
            Duration::from_secs(15 * 60),
            Duration::ZERO,
            Duration::from_secs(7 * 24 * 3600),
        ),
        capacity,
        prefetch,
        timeout,
    }
}
