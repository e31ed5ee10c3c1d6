//! The secrets cache: the shared read-through [`Cache`](crate::cache::Cache) in front of
//! GetSecretValue, keyed by (secret id, version id, version stage).

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

impl Source for SecretsUpstream {
    type Key = SecretKey;
    type Value = SecretValue;
    type Error = SecretsError;

    async fn fetch(&self, key: &SecretKey) -> Result<SecretValue, SecretsError> {
        self.get(key).await
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
