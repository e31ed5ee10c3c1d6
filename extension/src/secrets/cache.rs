//! The secrets cache: the shared read-through [`Cache`](crate::cache::Cache) in front of
//! GetSecretValue, keyed by (secret id, version id, version stage).

use std::ops::Deref;
use std::sync::OnceLock;

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

/// A cached secret version, with its GetSecretValue JSON encoded once, on the first HTTP read
/// of the entry, and kept with it.
///
/// A cached read answers with these bytes (a reference count, not a copy): encoding the
/// value per read (escaping every byte of ARN, name, version and secret, and growing the
/// response buffer) was about a fifth of a cached read's instructions (bench/PROFILING.md).
/// Lazily, so a version only the pool reads (the database secret) is never encoded. The
/// cost: an entry that was served holds its secret twice (value and JSON) for as long as it
/// is cached, as the value alone was before, in memory the process owns; neither copy is
/// zeroized on eviction (the value never was). Derefs to the value for every other reader.
pub struct CachedSecret {
    value: SecretValue,
    json: OnceLock<Bytes>,
}

impl CachedSecret {
    /// Wraps a fetched version.
    pub fn new(value: SecretValue) -> CachedSecret {
        CachedSecret {
            value,
            json: OnceLock::new(),
        }
    }

    /// The GetSecretValue JSON of this version, as AWS's extension answers it; encoded on
    /// the first call. Fails only if the value cannot be encoded, which its all-string fields
    /// rule out.
    pub fn json(&self) -> Result<Bytes, serde_json::Error> {
        if let Some(b) = self.json.get() {
            return Ok(b.clone());
        }
        let b = Bytes::from(serde_json::to_vec(&self.value)?);
        // A racing reader may have set it first: both encodings are the same bytes.
        Ok(self.json.get_or_init(|| b).clone())
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
        self.get(key).await.map(CachedSecret::new)
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
