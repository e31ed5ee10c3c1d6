//! Secrets Manager: a cache keyed by (secret id, version id, version stage) with soft and
//! hard TTLs, single-flight misses, stale-if-error and LRU capacity.
//!
//! - [`upstream`]: the GetSecretValue call and the mapping of its errors.
//! - [`cache`]: the cache itself.

pub mod cache;
pub mod upstream;

pub use cache::SecretsCache;

/// What identifies one cached secret version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretKey {
    /// Name or ARN, as the caller gave it.
    pub secret_id: String,
    /// A specific version, if asked for.
    pub version_id: Option<String>,
    /// A staging label (`AWSCURRENT`, `AWSPENDING`, ...), if asked for.
    pub version_stage: Option<String>,
}

impl SecretKey {
    /// The current version of `secret_id`.
    pub fn current(secret_id: impl Into<String>) -> Self {
        Self {
            secret_id: secret_id.into(),
            version_id: None,
            version_stage: None,
        }
    }
}

/// Errors of the secrets path. Cloneable so one upstream failure can answer every caller
/// waiting on the same single-flight fetch. Messages never carry secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The secret or the requested version does not exist.
    #[error("secret {secret_id:?} (or the requested version) was not found in Secrets Manager; check the id and the region")]
    NotFound {
        /// The id asked for.
        secret_id: String,
    },
    /// IAM or the key policy denies access.
    #[error("access to secret {secret_id:?} was denied: grant secretsmanager:GetSecretValue (and kms:Decrypt on its key) to the function's role")]
    AccessDenied {
        /// The id asked for.
        secret_id: String,
    },
    /// Secrets Manager rejected the request's parameters.
    #[error("Secrets Manager rejected the request: {message}")]
    InvalidRequest {
        /// Secrets Manager's explanation.
        message: String,
    },
    /// Secrets Manager could not decrypt the secret with its KMS key: the key is disabled,
    /// pending deletion, or its policy no longer lets the function use it. Access was
    /// revoked; this is not an outage.
    #[error("Secrets Manager could not decrypt secret {secret_id:?} with its KMS key (disabled, scheduled for deletion, or the key policy no longer allows kms:Decrypt for the function's role); fix the key, or the secret's key")]
    DecryptionFailure {
        /// The id asked for.
        secret_id: String,
    },
    /// Throttled by Secrets Manager after the SDK's retries.
    #[error("Secrets Manager throttled the request; retry with backoff")]
    Throttled,
    /// Secrets Manager could not be reached, and no cached value may be served.
    #[error("Secrets Manager is unavailable ({reason}) and no cached value is within the stale-if-error window")]
    Unavailable {
        /// What failed (connection refused, DNS, ...), never a value.
        reason: String,
    },
    /// The call exceeded HEARTH_AWS_OPERATION_TIMEOUT.
    #[error("Secrets Manager did not answer within HEARTH_AWS_OPERATION_TIMEOUT")]
    Timeout,
    /// Secrets Manager answered with an unexpected error.
    #[error("Secrets Manager failed: {message}")]
    Upstream {
        /// Error code and message from AWS.
        message: String,
    },
}

impl SecretsError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SecretsError::NotFound { .. } => "SecretNotFound",
            SecretsError::AccessDenied { .. } => "AccessDenied",
            SecretsError::DecryptionFailure { .. } => "DecryptionFailure",
            SecretsError::InvalidRequest { .. } => "InvalidParameter",
            SecretsError::Throttled => "Throttled",
            SecretsError::Unavailable { .. } => "UpstreamUnavailable",
            SecretsError::Timeout => "UpstreamTimeout",
            SecretsError::Upstream { .. } => "UpstreamError",
        }
    }

    /// Whether a cached value may stand in for this failure (stale-if-error). A missing
    /// secret, a denied call or a failed decryption is an answer, not an outage.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SecretsError::Throttled
                | SecretsError::Unavailable { .. }
                | SecretsError::Timeout
                | SecretsError::Upstream { .. }
        )
    }

    /// Whether this answer revokes access to a value cached before: it stops being served.
    pub fn is_revocation(&self) -> bool {
        matches!(
            self,
            SecretsError::AccessDenied { .. } | SecretsError::DecryptionFailure { .. }
        )
    }
}

impl crate::flight::Interrupted for SecretsError {
    fn interrupted() -> Self {
        SecretsError::Unavailable {
            reason: "the fetch was interrupted".into(),
        }
    }
}
