//! The secrets cache's section: TTLs, jitter, stale-if-error, size, prefetch, and the
//! Secrets Manager timeout, with AWS's extension's variables read in AWS's units.

use std::time::Duration;

use super::cache::{
    self, CacheConfig, CacheVars, AWS_CACHE_ENABLED, AWS_CACHE_SIZE, AWS_TIMEOUT_UNITS,
    AWS_TTL_UNITS,
};
use super::reader::{Reader, Var};

/// The secrets cache's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_SECRETS_CACHE", "true", "Cache secrets (false: every read calls Secrets Manager).")
        .aws(AWS_CACHE_ENABLED.0, AWS_CACHE_ENABLED.1),
    Var::new("HEARTH_SECRETS_SOFT_TTL", "240s (80% of the hard TTL if only that is set)", "Age at which a read starts a background refresh; jittered per entry."),
    Var::new("HEARTH_SECRETS_HARD_TTL", "300s", "Age at which a read refetches before answering (no 5-minute cap).")
        .aws("SECRETS_MANAGER_TTL", AWS_TTL_UNITS),
    Var::new("HEARTH_SECRETS_JITTER_PERCENT", "10", "Soft-TTL jitter per entry, in percent (0 to 50), for secrets and parameters."),
    Var::new("HEARTH_SECRETS_STALE_IF_ERROR", "15m", "How long past the hard TTL a value is served while Secrets Manager fails transiently (0 disables)."),
    Var::new("HEARTH_SECRETS_CACHE_SIZE", "1000", "Cached secret versions (LRU beyond).")
        .aws(AWS_CACHE_SIZE.0, AWS_CACHE_SIZE.1),
    Var::new("HEARTH_SECRETS_PREFETCH", "(none)", "Comma-separated secret ids fetched in the background at init."),
    Var::new("HEARTH_SECRETS_TIMEOUT", "HEARTH_AWS_OPERATION_TIMEOUT", "Timeout of a GetSecretValue call, retries included (10ms to 15m).")
        .aws("SECRETS_MANAGER_TIMEOUT_MILLIS", AWS_TIMEOUT_UNITS),
];

const CACHE_VARS: CacheVars = CacheVars {
    cache: "HEARTH_SECRETS_CACHE",
    soft_ttl: "HEARTH_SECRETS_SOFT_TTL",
    hard_ttl: "HEARTH_SECRETS_HARD_TTL",
    stale_if_error: "HEARTH_SECRETS_STALE_IF_ERROR",
    size: "HEARTH_SECRETS_CACHE_SIZE",
    prefetch: "HEARTH_SECRETS_PREFETCH",
    timeout: "HEARTH_SECRETS_TIMEOUT",
};

/// Secrets cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsConfig {
    /// The cache (a hard TTL of zero: no caching).
    pub cache: CacheConfig,
    /// Operation timeout of a GetSecretValue call, when it differs from
    /// `HEARTH_AWS_OPERATION_TIMEOUT`.
    pub timeout: Option<Duration>,
}

/// Reads the secrets cache's section.
pub fn read(r: &mut Reader<'_>, request_timeout: Duration) -> SecretsConfig {
    let jitter = r.parse(
        "HEARTH_SECRETS_JITTER_PERCENT",
        10,
        "an integer from 0 to 50",
        |s| s.parse::<u8>().ok().filter(|n| *n <= 50),
    );
    let (cache, timeout) = cache::read(r, &CACHE_VARS, jitter, request_timeout);
    SecretsConfig { cache, timeout }
}
