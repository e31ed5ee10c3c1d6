//! Parameter Store: the shared read-through [`Cache`] in front of GetParameter, keyed by
//! (name with its `:version` or `:label` selector, decryption).
//!
//! A SecureString read with decryption is cached under a key that only a decrypting read
//! can hit; a `String` or `StringList` answer is the same either way, so it is cached under
//! both keys (one upstream call serves both kinds of read).
//!
//! - [`upstream`]: the GetParameter and GetParameters calls and the mapping of their errors.

pub mod upstream;

use std::sync::Arc;

use hearth::wire::ParameterResponse;

use crate::cache::{Cache, CacheError, Names, Source};
use crate::config::CacheConfig;
use crate::metrics::Metrics;
use upstream::ParametersUpstream;

/// What identifies one cached parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParameterKey {
    /// Name or ARN with its selector (`/app/db:3`, `/app/db:prod`), as GetParameter takes it.
    pub name: String,
    /// Whether a SecureString is decrypted.
    pub with_decryption: bool,
}

/// Errors of the parameters path; cloneable so one upstream failure answers every caller
/// of a single-flight fetch. Messages never carry values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParametersError {
    /// No such parameter.
    #[error("parameter {name:?} was not found in Parameter Store; check the name (hierarchical names start with /) and the region")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The parameter exists but not the version or label asked for.
    #[error("parameter {name:?} has no such version or label; check version= or label=")]
    VersionNotFound {
        /// The name asked for.
        name: String,
    },
    /// IAM denies the call.
    #[error("access to parameter {name:?} was denied: grant ssm:GetParameter (and kms:Decrypt on the key of a SecureString) to the function's role")]
    AccessDenied {
        /// The name asked for.
        name: String,
    },
    /// The SecureString's KMS key cannot be used (disabled, deleted, or its policy revoked).
    #[error("Parameter Store could not decrypt parameter {name:?} with its KMS key (invalid, disabled, or the key policy no longer allows kms:Decrypt for the function's role)")]
    DecryptionFailure {
        /// The name asked for.
        name: String,
    },
    /// Parameter Store rejected the request's parameters.
    #[error("Parameter Store rejected the request: {message}")]
    InvalidRequest {
        /// Its explanation.
        message: String,
    },
    /// Throttled after the SDK's retries.
    #[error("Parameter Store throttled the request; retry with backoff")]
    Throttled,
    /// Parameter Store could not be reached, and no cached value may be served.
    #[error("Parameter Store is unavailable ({reason}) and no cached value is within the stale-if-error window")]
    Unavailable {
        /// What failed, never a value.
        reason: String,
    },
    /// The call ran out of time.
    #[error("Parameter Store did not answer in time (HEARTH_PARAMETERS_TIMEOUT)")]
    Timeout,
    /// Any other answer.
    #[error("Parameter Store failed: {message}")]
    Upstream {
        /// Error code and message from AWS.
        message: String,
    },
}

impl ParametersError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ParametersError::NotFound { .. } => "ParameterNotFound",
            ParametersError::VersionNotFound { .. } => "ParameterVersionNotFound",
            ParametersError::AccessDenied { .. } => "AccessDenied",
            ParametersError::DecryptionFailure { .. } => "DecryptionFailure",
            ParametersError::InvalidRequest { .. } => "InvalidParameter",
            ParametersError::Throttled => "Throttled",
            ParametersError::Unavailable { .. } => "UpstreamUnavailable",
            ParametersError::Timeout => "UpstreamTimeout",
            ParametersError::Upstream { .. } => "UpstreamError",
        }
    }

    /// HTTP status, in the same scheme as the secrets path.
    pub fn status(&self) -> u16 {
        match self {
            ParametersError::NotFound { .. } | ParametersError::VersionNotFound { .. } => 404,
            ParametersError::AccessDenied { .. } | ParametersError::DecryptionFailure { .. } => 403,
            ParametersError::InvalidRequest { .. } => 400,
            ParametersError::Throttled => 429,
            ParametersError::Unavailable { .. } => 503,
            ParametersError::Timeout => 504,
            ParametersError::Upstream { .. } => 502,
        }
    }

    /// Whether a cached value may stand in for this failure (stale-if-error).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ParametersError::Throttled
                | ParametersError::Unavailable { .. }
                | ParametersError::Timeout
                | ParametersError::Upstream { .. }
        )
    }
}

impl CacheError for ParametersError {
    fn is_transient(&self) -> bool {
        ParametersError::is_transient(self)
    }
    fn is_revocation(&self) -> bool {
        matches!(
            self,
            ParametersError::AccessDenied { .. } | ParametersError::DecryptionFailure { .. }
        )
    }
    fn code(&self) -> &'static str {
        ParametersError::code(self)
    }
}

impl crate::flight::Interrupted for ParametersError {
    fn interrupted() -> Self {
        ParametersError::Unavailable {
            reason: "the fetch was interrupted".into(),
        }
    }
}

/// The parameters cache; cheap to clone.
pub type ParametersCache = Cache<ParametersUpstream>;

const NAMES: Names = Names {
    hits: "parameters.hits",
    misses: "parameters.misses",
    coalesced: "parameters.coalesced",
    stale_serves: "parameters.stale_serves",
    refreshes: "parameters.refreshes",
    refresh_failures: "parameters.refresh_failures",
    revoked: "parameters.revoked",
    entries: "parameters.entries",
    what: "parameter",
};

impl Source for ParametersUpstream {
    type Key = ParameterKey;
    type Value = ParameterResponse;
    type Error = ParametersError;

    async fn fetch(&self, key: &ParameterKey) -> Result<ParameterResponse, ParametersError> {
        self.get(key).await
    }

    fn twin(&self, key: &ParameterKey, value: &ParameterResponse) -> Option<ParameterKey> {
        (value.parameter.kind != "SecureString").then(|| ParameterKey {
            name: key.name.clone(),
            with_decryption: !key.with_decryption,
        })
    }

    fn id(key: &ParameterKey) -> &str {
        &key.name
    }
}

/// GetParameters takes at most this many names per call.
pub const BATCH: usize = 10;

impl Cache<ParametersUpstream> {
    /// The parameters cache in front of `upstream`.
    pub fn parameters(cfg: CacheConfig, upstream: ParametersUpstream, metrics: &Metrics) -> Self {
        Cache::new(cfg, upstream, NAMES, metrics)
    }

    /// Fetches `names` with decryption in GetParameters calls of [`BATCH`] names, caches
    /// what came back, and returns (names cached, problems by name).
    pub async fn prefetch(&self, names: &[String]) -> (u64, Vec<(String, &'static str)>) {
        let calls = names
            .chunks(BATCH)
            .map(|batch| async move { (batch, self.upstream().get_batch(batch).await) });
        let mut ok = 0;
        let mut problems = Vec::new();
        for (batch, res) in futures::future::join_all(calls).await {
            match res {
                Ok((found, invalid)) => {
                    for (name, value) in found {
                        let key = ParameterKey {
                            name,
                            with_decryption: true,
                        };
                        self.insert(key, Arc::new(value));
                        ok += 1;
                    }
                    problems.extend(invalid.into_iter().map(|n| (n, "ParameterNotFound")));
                }
                Err(e) => problems.extend(batch.iter().map(|n| (n.clone(), e.code()))),
            }
        }
        (ok, problems)
    }
}
