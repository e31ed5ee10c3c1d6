//! Parameter Store's section: the same cache settings as secrets, under `HEARTH_PARAMETERS_*`
//! and AWS's `SSM_PARAMETER_STORE_*` variables (jitter is `HEARTH_SECRETS_JITTER_PERCENT`).

use std::time::Duration;

use super::cache::{
    self, CacheConfig, CacheVars, AWS_CACHE_ENABLED, AWS_CACHE_SIZE, AWS_TIMEOUT_UNITS,
    AWS_TTL_UNITS,
};
use super::reader::{Reader, Var};

/// Parameter Store's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_PARAMETERS_CACHE", "true", "Cache parameters (false: every read calls Parameter Store).")
        .aws(AWS_CACHE_ENABLED.0, AWS_CACHE_ENABLED.1),
    Var::new("HEARTH_PARAMETERS_SOFT_TTL", "240s (80% of the hard TTL if only that is set)", "Age at which a parameter read starts a background refresh; jittered per entry by HEARTH_SECRETS_JITTER_PERCENT."),
    Var::new("HEARTH_PARAMETERS_HARD_TTL", "300s", "Age at which a parameter read refetches before answering.")
        .aws("SSM_PARAMETER_STORE_TTL", AWS_TTL_UNITS),
    Var::new("HEARTH_PARAMETERS_STALE_IF_ERROR", "15m", "How long past the hard TTL a parameter is served while Parameter Store fails transiently (0 disables)."),
    Var::new("HEARTH_PARAMETERS_CACHE_SIZE", "1000", "Cached parameter values (LRU beyond).")
        .aws(AWS_CACHE_SIZE.0, AWS_CACHE_SIZE.1),
    Var::new("HEARTH_PARAMETERS_PREFETCH", "(none)", "Comma-separated parameter names or ARNs fetched with decryption in the background at init (GetParameters, 10 names per call)."),
    Var::new("HEARTH_PARAMETERS_TIMEOUT", "HEARTH_AWS_OPERATION_TIMEOUT", "Timeout of a Parameter Store call, retries included (10ms to 15m).")
        .aws("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", AWS_TIMEOUT_UNITS),
];

const CACHE_VARS: CacheVars = CacheVars {
    cache: "HEARTH_PARAMETERS_CACHE",
    soft_ttl: "HEARTH_PARAMETERS_SOFT_TTL",
    hard_ttl: "HEARTH_PARAMETERS_HARD_TTL",
    stale_if_error: "HEARTH_PARAMETERS_STALE_IF_ERROR",
    size: "HEARTH_PARAMETERS_CACHE_SIZE",
    prefetch: "HEARTH_PARAMETERS_PREFETCH",
    timeout: "HEARTH_PARAMETERS_TIMEOUT",
};

/// Parameter Store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParametersConfig {
    /// The cache (a hard TTL of zero: no caching); `prefetch` holds parameter names.
    pub cache: CacheConfig,
    /// Operation timeout of a Parameter Store call, when it differs from
    /// `HEARTH_AWS_OPERATION_TIMEOUT`.
    pub timeout: Option<Duration>,
}

/// Reads Parameter Store's section.
pub fn read(r: &mut Reader<'_>, jitter_percent: u8, request_timeout: Duration) -> ParametersConfig {
    let (cache, timeout) = cache::read(r, &CACHE_VARS, jitter_percent, request_timeout);
    ParametersConfig { cache, timeout }
}
