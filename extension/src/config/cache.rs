//! What the secrets and Parameter Store sections share: one read-through cache's settings,
//! read from a section's own variables and from AWS's extension's variables in AWS's units.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::reader::{list, parse_duration, parse_flag, Reader};

/// Settings of one read-through cache (secrets, parameters). A hard TTL of zero turns
/// caching off: every read calls upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
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
    /// Secret ids (parameter names) fetched in the background at init.
    pub prefetch: Vec<String>,
}

impl CacheConfig {
    /// Whether values are cached at all.
    pub fn caching(&self) -> bool {
        !self.hard_ttl.is_zero()
    }
}

/// What AWS's `PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED` accepts (both stores).
pub const AWS_CACHE_ENABLED: (&str, &str) = (
    "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
    "true or false; false: no caching",
);
/// What AWS's `PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE` accepts (each store).
pub const AWS_CACHE_SIZE: (&str, &str) = (
    "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
    "0 to 1000; 0: no caching",
);
/// The units of AWS's TTL variables.
pub const AWS_TTL_UNITS: &str = "seconds, 0 to 300; 0: no caching";
/// The units of AWS's timeout variables.
pub const AWS_TIMEOUT_UNITS: &str = "milliseconds; 0: none beyond HEARTH_REQUEST_TIMEOUT";

/// The variables of one cache section.
pub struct CacheVars {
    /// On/off (AWS alias: cache enabled).
    pub cache: &'static str,
    /// Soft TTL.
    pub soft_ttl: &'static str,
    /// Hard TTL (AWS alias: the store's TTL in seconds).
    pub hard_ttl: &'static str,
    /// Stale-if-error window.
    pub stale_if_error: &'static str,
    /// Capacity (AWS alias: cache size).
    pub size: &'static str,
    /// Prefetch list.
    pub prefetch: &'static str,
    /// Operation timeout (AWS alias: the store's timeout in milliseconds).
    pub timeout: &'static str,
}

/// Reads one cache section: its settings, and its calls' operation timeout (`None`: the
/// general `HEARTH_AWS_OPERATION_TIMEOUT`). AWS's "no timeout" (0) still ends with the
/// request: a call without any bound would hold its single-flight slot, and every later
/// read of that key, forever.
pub fn read(
    r: &mut Reader<'_>,
    v: &CacheVars,
    jitter_percent: u8,
    request_timeout: Duration,
) -> (CacheConfig, Option<Duration>) {
    // AWS's TTL: whole seconds up to 5 minutes; 0 turns caching off.
    let aws_ttl = r.parse_aws(
        v.hard_ttl,
        "an integer number of seconds from 0 to 300 (0: no caching)",
        |s| s.parse::<u64>().ok().filter(|n| *n <= 300),
    );
    let hard_ttl = match aws_ttl {
        Some(secs) => Duration::from_secs(secs),
        None => r.duration(
            v.hard_ttl,
            Duration::from_secs(300),
            Duration::from_millis(100),
            Duration::from_secs(7 * 24 * 3600),
        ),
    };
    let soft_default = if r.raw(v.hard_ttl).is_some() || aws_ttl.is_some() {
        hard_ttl.mul_f64(0.8)
    } else {
        Duration::from_secs(240)
    };
    let soft_ttl = r.duration(
        v.soft_ttl,
        soft_default,
        Duration::from_millis(100).min(soft_default),
        hard_ttl.max(Duration::from_millis(100)),
    );
    let aws_enabled = r.parse_aws(v.cache, "true or false", parse_flag);
    let aws_size = r.parse_aws(v.size, "an integer from 0 to 1000 (0: no caching)", |s| {
        s.parse::<usize>().ok().filter(|n| *n <= 1000)
    });
    let caching = r.flag(v.cache, true)
        && aws_enabled != Some(false)
        && aws_size != Some(0)
        && !hard_ttl.is_zero();
    let capacity = match aws_size.and_then(NonZeroUsize::new) {
        Some(n) => n,
        None => r.size(v.size, 1000, 1_000_000),
    };
    let timeout = match r.parse_aws(
        v.timeout,
        "an integer number of milliseconds, 0 for none",
        |s| s.parse::<u64>().ok(),
    ) {
        Some(0) => Some(request_timeout),
        Some(ms) => Some(Duration::from_millis(ms)),
        None => r.parse(v.timeout, None, "a duration from 10ms to 15m", |s| {
            parse_duration(s)
                .filter(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(900))
                .map(Some)
        }),
    };
    let prefetch = r.parse(
        v.prefetch,
        Vec::new(),
        "comma-separated ids, names or ARNs",
        |s| {
            let ids = list(s);
            ids.iter().all(|id| id.len() <= 2048).then_some(ids)
        },
    );
    if !caching && !prefetch.is_empty() {
        r.problem(
            v.prefetch,
            "has no effect with caching off; remove it, or turn caching on".into(),
        );
    }
    let stale_if_error = r.duration(
        v.stale_if_error,
        Duration::from_secs(15 * 60),
        Duration::ZERO,
        Duration::from_secs(7 * 24 * 3600),
    );
    let (soft_ttl, hard_ttl) = if caching {
        (soft_ttl, hard_ttl)
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    let cache = CacheConfig {
        soft_ttl,
        hard_ttl,
        jitter_percent,
        stale_if_error,
        capacity,
        prefetch,
    };
    (cache, timeout)
}
