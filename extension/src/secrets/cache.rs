//! The secrets cache: the shared read-through [`Cache`](crate::cache::Cache) in front of
//! GetSecretValue, keyed by (secret id, version id, version stage).

use std::ops::Deref;

use bytes::Bytes;
use hearth::wire::SecretValue;

use super::upstream::SecretsUpstream;
use super::{SecretKey, SecretsError};
use crate::cache::{Cache, CacheError, Names, Source};
use crate::config::CacheConfig;
use crate::metrics::Metrics;

/// The secrets cache; cheap to clone.
pub type SecretsCache = Cache<SecretsUpstream>;

const NAMES: Names = Names {
    hits: "secrets.hits",
    misses: "secrets.misses",
    coalesced: "secrets.coalesced",
    stale_serves: "secrets.stale_serves",
    refreshes: "secrets.refreshes",
    refresh_failures: "secrets.refresh_failures",
    revoked: "secrets.revoked",
    entries: "secrets.entries",
    what: "secret",
};

impl CacheError for SecretsError {
    fn is_transient(&self) -> bool {
        SecretsError::is_transient(self)
    }
    fn is_revocation(&self) -> bool {
        SecretsError::is_revocation(self)
    }
    fn code(&self) -> &'static str {
        SecretsError::code(self)
    }
}

/// A cached secret version with its GetSecretValue JSON encoded once, when it was fetched.
///
/// A cached read answers with these bytes (a reference count, not a copy): encoding the
/// value per read (escaping every byte of ARN, name, version and secret, and growing the
/// response buffer) was about a fifth of a cached read's instructions (bench/PROFILING.md).
/// Derefs to the value for every other reader (the database credentials).
pub struct CachedSecret {
    value: SecretValue,
    json: Bytes,
}

impl CachedSecret {
    /// Encodes `value` once.
    pub fn new(value: SecretValue) -> Result<CachedSecret, SecretsError> {
        let json = serde_json::to_vec(&value).map_err(|_| SecretsError::Upstream {
            message: "the secret could not be encoded as JSON".into(),
        })?;
        Ok(CachedSecret {
            value,
            json: Bytes::from(json),
        })
    }

    /// The GetSecretValue JSON of this version, as AWS's extension answers it.
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }
}

impl Deref for CachedSecret {
    type Target = SecretValue;
    fn deref(&self) -> &SecretValue {
        &self.value
    }
}

impl Source for SecretsUpstream {
    type Key = SecretKey;
    type Value = CachedSecret;
    type Error = SecretsError;

    async fn fetch(&self, key: &SecretKey) -> Result<CachedSecret, SecretsError> {
        CachedSecret::new(self.get(key).await?)
    }

    fn id(key: &SecretKey) -> &str {
        &key.secret_id
    }
}

impl Cache<SecretsUpstream> {
    /// The secrets cache in front of `upstream`.
    pub fn secrets(cfg: CacheConfig, upstream: SecretsUpstream, metrics: &Metrics) -> Self {
        Cache::new(cfg, upstream, NAMES, metrics)
    }

    /// Drops every cached version of `secret_id`, e.g. after the database rejected the
    /// password it holds (a rotation happened). The next read fetches.
    pub fn invalidate(&self, secret_id: &str) -> usize {
        self.invalidate_where(|k| k.secret_id == secret_id)
    }
}
