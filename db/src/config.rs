//! Typed pool configuration. The extension parses its environment variables into this struct;
//! nothing here reads the environment.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// Default name of the transaction-local setting that carries the tenant id.
pub const DEFAULT_TENANT_SETTING: &str = "app.tenant_id";

/// How connections are protected in transit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext. Accepted only when the host from the credentials is a loopback address
    /// (`127.0.0.0/8`, `::1`, `localhost`) or a Unix socket directory; anything else fails with
    /// [`crate::DbError::TlsRequired`] — never a silent plaintext connection to a remote host.
    Disable,
    /// TLS with certificate-chain and hostname verification against the CA bundle at this path
    /// (PEM; for Aurora the RDS global bundle).
    Require {
        /// PEM file holding one or more CA certificates.
        ca_bundle: PathBuf,
    },
}

/// What sits between Hearth and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolerMode {
    /// Hearth talks to PostgreSQL (or a session-mode pooler): one server session per
    /// connection, named statements cached on it, `statement_timeout` as a startup option.
    #[default]
    None,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`, RDS Proxy): each
    /// transaction may run on another server connection. No startup `options` (poolers refuse
    /// them), `statement_timeout` set transaction-locally, statements prepared inside the
    /// request's transaction and deallocated before it ends, no SQL that ends the transaction
    /// early, and the clean-up inside the same query string as `COMMIT` (see the crate docs).
    Transaction,
}

/// Pool and request configuration.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Connections opened by [`crate::Db::warm`] (may be 0).
    pub min_connections: usize,
    /// Upper bound on open connections.
    pub max_connections: NonZeroUsize,
    /// Bound on opening one connection (TCP, TLS, authentication, session setup).
    pub connect_timeout: Duration,
    /// Bound on waiting for a free connection when all `max_connections` are busy.
    pub pool_wait_timeout: Duration,
    /// Server-side `statement_timeout` of every connection; the client also bounds a request
    /// by `statement_timeout × statements + 1 s`.
    pub statement_timeout: Duration,
    /// Connections idle longer than this are verified with a round trip before use (they may
    /// have died while the environment was frozen). More recently used ones are not, for speed.
    pub verify_idle_after: Duration,
    /// Name of the setting that carries the tenant, e.g. `app.tenant_id`.
    pub tenant_setting: String,
    /// Further settings a request may set through its `context` map, e.g. `app.user_id`.
    pub allowed_settings: Vec<String>,
    /// Accept requests without a tenant (the tenant setting is then set to `''`).
    pub tenantless: bool,
    /// Accept a role that escapes Row-Level Security (superuser, BYPASSRLS, owner of an RLS
    /// table, ...; see the crate docs), with a warning in the log.
    pub allow_privileged_role: bool,
    /// Transport security.
    pub tls: TlsMode,
    /// Statement shapes (parameter and column types) kept per connection, least recently
    /// added evicted first.
    pub statement_cache_size: usize,
    /// Cap on the bytes of one request's results (all statements together), checked while the
    /// rows stream in; beyond it the request fails with [`crate::DbError::ResultTooLarge`].
    /// The default is Lambda's 6 MB limit on a synchronous response.
    pub max_result_bytes: usize,
    /// Direct to PostgreSQL, or through a transaction-mode pooler.
    pub pooler: PoolerMode,
    /// Form of `int8` and `numeric` results when a request does not say.
    pub numbers: hearth::wire::NumberMode,
}

/// Default of [`DbConfig::max_result_bytes`]: Lambda's limit on a synchronous response.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 6 * 1024 * 1024;

impl DbConfig {
    /// A configuration with sensible defaults and the given TLS mode.
    pub fn new(tls: TlsMode) -> Self {
        Self {
            min_connections: 1,
            max_connections: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            verify_idle_after: Duration::from_secs(10),
            tenant_setting: DEFAULT_TENANT_SETTING.to_owned(),
            allowed_settings: Vec::new(),
            tenantless: false,
            allow_privileged_role: false,
            tls,
            statement_cache_size: 128,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            pooler: PoolerMode::None,
            numbers: hearth::wire::NumberMode::Number,
        }
    }

    /// Checks invariants; each error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_connections > self.max_connections.get() {
            return Err(ConfigError::new(
                "min_connections",
                format!("must not exceed max_connections ({})", self.max_connections),
            ));
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("pool_wait_timeout", self.pool_wait_timeout),
            ("statement_timeout", self.statement_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(field, "must be greater than zero".into()));
            }
        }
        // statement_timeout is sent to the server in whole milliseconds.
        if self.statement_timeout < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "statement_timeout",
                "must be at least 1 ms".into(),
            ));
        }
        if !is_setting_name(&self.tenant_setting) {
            return Err(ConfigError::new(
                "tenant_setting",
                "must be a dotted identifier such as app.tenant_id".into(),
            ));
        }
        for s in &self.allowed_settings {
            if !is_setting_name(s) {
                return Err(ConfigError::new(
                    "allowed_settings",
                    format!("{s:?} is not a dotted identifier such as app.user_id"),
                ));
            }
            if s.eq_ignore_ascii_case(&self.tenant_setting) {
                return Err(ConfigError::new(
                    "allowed_settings",
                    format!("{s:?} is the tenant setting; it is set from the request's tenant"),
                ));
            }
        }
        if self.max_result_bytes == 0 {
            return Err(ConfigError::new(
                "max_result_bytes",
                "must be at least 1".into(),
            ));
        }
        if self.statement_cache_size == 0 {
            return Err(ConfigError::new(
                "statement_cache_size",
                "must be at least 1".into(),
            ));
        }
        if let TlsMode::Require { ca_bundle } = &self.tls {
            if ca_bundle.as_os_str().is_empty() {
                return Err(ConfigError::new("tls", "CA bundle path is empty".into()));
            }
        }
        Ok(())
    }
}

/// A configuration value out of range; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database configuration: {field} {reason}")]
pub struct ConfigError {
    /// Field of [`DbConfig`] at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: String) -> Self {
        Self { field, reason }
    }
}

/// A custom setting name: two or more identifiers joined by dots (`app.tenant_id`). Custom
/// settings must contain a dot, which also keeps requests away from built-in settings such as
/// `role` or `search_path`.
pub(crate) fn is_setting_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    s.len() <= 63
        && parts.len() >= 2
        && parts.iter().all(|p| {
            let mut chars = p.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names() {
        assert!(is_setting_name("app.tenant_id"));
        assert!(is_setting_name("a.b.c"));
        for bad in [
            "tenant",
            "app.",
            ".x",
            "app.1x",
            "app.te nant",
            "app.x'--",
            "role",
            "",
        ] {
            assert!(!is_setting_name(bad), "{bad}");
        }
    }

    #[test]
    fn validate_names_field() {
        let mut c = DbConfig::new(TlsMode::Disable);
        assert!(c.validate().is_ok());
        c.tenant_setting = "tenant".into();
        assert_eq!(c.validate().map_err(|e| e.field), Err("tenant_setting"));
        c.tenant_setting = DEFAULT_TENANT_SETTING.into();
        c.allowed_settings = vec!["app.user_id".into(), "bad name".into()];
        assert_eq!(c.validate().map_err(|e| e.field), Err("allowed_settings"));
        c.allowed_settings.clear();
        c.min_connections = 9;
        assert_eq!(c.validate().map_err(|e| e.field), Err("min_connections"));
        c.min_connections = 1;
        c.statement_timeout = Duration::ZERO;
        assert_eq!(c.validate().map_err(|e| e.field), Err("statement_timeout"));
    }
}
