//! The AWS clients' and regional failover's section.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use super::reader::{Reader, Var};
pub use crate::aws::RetryModeSetting;

/// The AWS clients' and failover's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_AWS_CONNECT_TIMEOUT", "1s", "Connect timeout of AWS API calls."),
    Var::new("HEARTH_AWS_ATTEMPT_TIMEOUT", "2s", "Timeout of one attempt of an AWS API call."),
    Var::new("HEARTH_AWS_OPERATION_TIMEOUT", "5s", "Timeout of an AWS API call, retries included."),
    Var::new("HEARTH_AWS_MAX_ATTEMPTS", "3", "Attempts per AWS API call (1 to 10)."),
    Var::new("HEARTH_AWS_RETRY_MODE", "standard", "SDK retry mode: standard or adaptive."),
    Var::new("HEARTH_AWS_MAX_CONNECTIONS", "(none: unbounded)", "Most Secrets Manager and Parameter Store calls in flight at once (1 or more); further calls wait for one to end.")
        .alias(&["PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS"]),
    Var::new("HEARTH_AWS_ENDPOINTS", "(none: the SDK's endpoints)", "Endpoint overrides per region, comma-separated region=URL pairs, e.g. us-east-1=http://127.0.0.1:4566,eu-west-1=http://127.0.0.1:4567."),
    Var::new("HEARTH_FALLBACK_REGION", "(none: no failover)", "Region Secrets Manager, Parameter Store and KMS calls fail over to when the primary region (AWS_REGION) fails."),
    Var::new("HEARTH_SECRETS_FALLBACK_REGION", "HEARTH_FALLBACK_REGION", "Fallback region for Secrets Manager (replica secrets of the same name are read there), or none."),
    Var::new("HEARTH_KMS_FALLBACK_REGION", "HEARTH_FALLBACK_REGION", "Fallback region for KMS, or none."),
    Var::new(
        "HEARTH_PARAMETERS_FALLBACK_REGION",
        "HEARTH_FALLBACK_REGION",
        "Fallback region for Parameter Store (parameters of the same name are read there), or none.",
    ),
    Var::new("HEARTH_KMS_FALLBACK_KEY_ID", "(none)", "Key in the KMS fallback region: each data key of HEARTH_KMS_KEY_ID is also encrypted under it (a second encrypted data key), so messages decrypt in either region."),
    Var::new("HEARTH_FAILOVER_BUDGET", "2s", "With a fallback region: the longest a call waits on the primary, retries included, before going to the fallback (100ms to 60s)."),
    Var::new("HEARTH_FAILOVER_MAX_ATTEMPTS", "2", "With a fallback region: attempts per call on the primary (1 to 10), each given an equal share of the budget."),
    Var::new("HEARTH_FAILOVER_COOLDOWN", "30s", "After the primary fails, calls go straight to the fallback this long; then one call probes the primary (1s to 1h)."),
];

/// AWS SDK client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Timeout of one operation, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// SDK retry mode.
    pub retry_mode: RetryModeSetting,
    /// Most Secrets Manager and Parameter Store calls in flight at once; `None`: unbounded.
    pub max_connections: Option<NonZeroUsize>,
}

/// Regional failover settings (see `crate::failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverConfig {
    /// The function's own region (`AWS_REGION`, else `AWS_DEFAULT_REGION`).
    pub primary_region: Option<String>,
    /// Fallback region for Secrets Manager.
    pub secrets_region: Option<String>,
    /// Fallback region for KMS.
    pub kms_region: Option<String>,
    /// Fallback region for Parameter Store.
    pub parameters_region: Option<String>,
    /// Key in the KMS fallback region under which data keys of `HEARTH_KMS_KEY_ID` are
    /// also encrypted.
    pub kms_key_id: Option<String>,
    /// Endpoint overrides by region name.
    pub endpoints: BTreeMap<String, String>,
    /// With a fallback: the primary's operation timeout, retries included.
    pub budget: Duration,
    /// With a fallback: attempts per call on the primary.
    pub max_attempts: u32,
    /// How long calls go straight to the fallback before the primary is probed.
    pub cooldown: Duration,
}

/// Reads the AWS clients' section.
pub fn read_aws(r: &mut Reader<'_>) -> AwsConfig {
    AwsConfig {
        connect_timeout: r.duration(
            "HEARTH_AWS_CONNECT_TIMEOUT",
            Duration::from_secs(1),
            Duration::from_millis(10),
            Duration::from_secs(60),
        ),
        attempt_timeout: r.duration(
            "HEARTH_AWS_ATTEMPT_TIMEOUT",
            Duration::from_secs(2),
            Duration::from_millis(10),
            Duration::from_secs(300),
        ),
        operation_timeout: r.duration(
            "HEARTH_AWS_OPERATION_TIMEOUT",
            Duration::from_secs(5),
            Duration::from_millis(10),
            Duration::from_secs(900),
        ),
        max_attempts: r.parse(
            "HEARTH_AWS_MAX_ATTEMPTS",
            3,
            "an integer from 1 to 10",
            |s| s.parse::<u32>().ok().filter(|n| (1..=10).contains(n)),
        ),
        retry_mode: r.parse(
            "HEARTH_AWS_RETRY_MODE",
            RetryModeSetting::Standard,
            "standard or adaptive",
            |s| match s.to_ascii_lowercase().as_str() {
                "standard" => Some(RetryModeSetting::Standard),
                "adaptive" => Some(RetryModeSetting::Adaptive),
                _ => None,
            },
        ),
        max_connections: r.parse(
            "HEARTH_AWS_MAX_CONNECTIONS",
            None,
            "an integer from 1 to 100000",
            |s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .and_then(NonZeroUsize::new)
                    .map(Some)
            },
        ),
    }
}

/// Whether `s` looks like an AWS region name (`us-east-1`, `cn-north-1`, `us-gov-west-1`).
pub fn valid_region(s: &str) -> bool {
    (4..=32).contains(&s.len())
        && s.contains('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `HEARTH_AWS_ENDPOINTS`: `region=url` pairs, comma-separated.
fn parse_endpoints(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (region, url) = pair.split_once('=')?;
        let (region, url) = (region.trim(), url.trim());
        let url_ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() > "https://".len()
            && !url.contains(char::is_whitespace);
        if !valid_region(region) || !url_ok || out.insert(region.into(), url.into()).is_some() {
            return None;
        }
    }
    Some(out)
}

/// The failover settings; problems are added to `r`.
pub fn read_failover(r: &mut Reader<'_>, has_default_key: bool) -> FailoverConfig {
    let env = r.env;
    const REGION: &str = "an AWS region name such as eu-west-1, or none";
    let region = |r: &mut Reader<'_>, name: &'static str| {
        r.parse(name, None, REGION, |s| match s {
            "" | "none" => Some(None),
            s if valid_region(s) => Some(Some(s.to_string())),
            _ => None,
        })
    };
    let primary_region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .filter(|s| !s.is_empty())
        .map(String::from);
    let any = region(r, "HEARTH_FALLBACK_REGION");
    let per_service = |r: &mut Reader<'_>, name: &'static str| {
        let (var, fallback) = match r.raw(name) {
            Some(_) => (name, region(r, name)),
            None => ("HEARTH_FALLBACK_REGION", any.clone()),
        };
        match (&fallback, &primary_region) {
            (Some(_), None) => {
                r.problem(
                    var,
                    "needs the primary region: set AWS_REGION (Lambda sets it)".into(),
                );
                None
            }
            (Some(f), Some(p)) if f == p => {
                r.problem(
                    var,
                    format!("is the primary region ({p}); accepted: another region"),
                );
                None
            }
            _ => fallback,
        }
    };
    let secrets_region = per_service(r, "HEARTH_SECRETS_FALLBACK_REGION");
    let kms_region = per_service(r, "HEARTH_KMS_FALLBACK_REGION");
    let parameters_region = per_service(r, "HEARTH_PARAMETERS_FALLBACK_REGION");
    let kms_key_id = r.parse(
        "HEARTH_KMS_FALLBACK_KEY_ID",
        None,
        "a KMS key id, key ARN, alias name or alias ARN in the KMS fallback region (1 to 2048 characters)",
        |s| (!s.is_empty() && s.len() <= 2048).then(|| Some(s.to_string())),
    );
    if let Some(key) = &kms_key_id {
        let key_region = crate::arn::region_of(key);
        if kms_region.is_none() {
            r.problem(
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "has no effect without a KMS fallback region; set HEARTH_KMS_FALLBACK_REGION or HEARTH_FALLBACK_REGION".into(),
            );
        } else if !has_default_key {
            r.problem(
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "pairs with HEARTH_KMS_KEY_ID; set that too".into(),
            );
        } else if key_region.is_some() && key_region != kms_region.as_deref() {
            r.problem(
                "HEARTH_KMS_FALLBACK_KEY_ID",
                format!(
                    "names region {}, not the KMS fallback region {}; accepted: a key in the fallback region",
                    key_region.unwrap_or_default(),
                    kms_region.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    let endpoints = r.parse(
        "HEARTH_AWS_ENDPOINTS",
        BTreeMap::new(),
        "comma-separated region=URL pairs (http:// or https://), each region once",
        parse_endpoints,
    );
    let budget = r.duration(
        "HEARTH_FAILOVER_BUDGET",
        Duration::from_secs(2),
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let max_attempts = r.parse(
        "HEARTH_FAILOVER_MAX_ATTEMPTS",
        2,
        "an integer from 1 to 10",
        |s| s.parse::<u32>().ok().filter(|n| (1..=10).contains(n)),
    );
    let cooldown = r.duration(
        "HEARTH_FAILOVER_COOLDOWN",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    FailoverConfig {
        primary_region,
        secrets_region,
        kms_region,
        parameters_region,
        kms_key_id,
        endpoints,
        budget,
        max_attempts,
        cooldown,
    }
}
