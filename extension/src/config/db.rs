//! The database pool's section: present when `HEARTH_DB_SECRET_ID` is set.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::reader::{Reader, Var};

/// The pool's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_DB_SECRET_ID", "(none: database off)", "Secrets Manager secret (RDS JSON: username, password, host, port, dbname) for the pool."),
    Var::new("HEARTH_DB_POOL_MIN", "1", "Connections opened at prewarm."),
    Var::new("HEARTH_DB_POOL_MAX", "4", "Maximum open connections per environment."),
    Var::new("HEARTH_DB_CONNECT_TIMEOUT", "3s", "Bound on opening one connection (TCP, TLS, authentication)."),
    Var::new("HEARTH_DB_POOL_WAIT_TIMEOUT", "2s", "Bound on waiting for a free connection (503 PoolTimeout beyond)."),
    Var::new("HEARTH_DB_STATEMENT_TIMEOUT", "5s", "Server-side statement_timeout of every connection."),
    Var::new("HEARTH_DB_VERIFY_IDLE_AFTER", "5s", "Pooled connections idle longer are verified before use (freeze/thaw)."),
    Var::new("HEARTH_DB_TENANT_SETTING", "app.tenant_id", "Transaction-local setting that carries the request's tenant."),
    Var::new("HEARTH_DB_CONTEXT_SETTINGS", "(none)", "Comma-separated further settings a request may set, e.g. app.user_id."),
    Var::new("HEARTH_DB_TENANTLESS", "false", "Accept requests without a tenant."),
    Var::new("HEARTH_DB_ALLOW_PRIVILEGED_ROLE", "false", "Accept a role that escapes RLS: superuser, BYPASSRLS, CREATEROLE, member of such a role or of rds_superuser, owner of a table whose RLS is not forced."),
    Var::new("HEARTH_DB_MAX_RESULT_BYTES", "6291456", "Cap on one request's result bytes, checked while rows stream in (ResultTooLarge beyond)."),
    Var::new("HEARTH_DB_TLS", "require", "require (verify certificate and hostname) or disable (loopback hosts only)."),
    Var::new("HEARTH_DB_CA_BUNDLE", "/opt/hearth/rds-ca-bundle.pem", "PEM CA bundle for TLS (the RDS global bundle for Aurora)."),
    Var::new("HEARTH_DB_AUTH", "secret", "secret (the password in HEARTH_DB_SECRET_ID) or iam (IAM authentication tokens signed with the extension's credentials; TLS required)."),
    Var::new("HEARTH_DB_HOST", "(from the secret)", "With HEARTH_DB_AUTH=iam: the database endpoint, instead of a secret (which is then not needed)."),
    Var::new("HEARTH_DB_PORT", "5432", "With HEARTH_DB_HOST: the database port."),
    Var::new("HEARTH_DB_USER", "(none)", "With HEARTH_DB_HOST: the database role (granted rds_iam)."),
    Var::new("HEARTH_DB_NAME", "postgres", "With HEARTH_DB_HOST: the database name."),
    Var::new("HEARTH_DB_POOLER", "none", "none (Aurora directly) or transaction (behind PgBouncer pool_mode=transaction or RDS Proxy: no startup options, nothing outlives a transaction)."),
    Var::new("HEARTH_DB_NUMBERS", "number", "int8 and numeric results as exact JSON numbers (number) or as decimal strings (string, safe for JSON.parse); a request's numbers field overrides it."),
];

/// Transport security to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTls {
    /// TLS with certificate and hostname verification against this CA bundle (PEM).
    Require(std::path::PathBuf),
    /// Plaintext: refused by the pool for any host that is not loopback.
    Disable,
}

/// Database pool settings; present when `HEARTH_DB_SECRET_ID` is set, or `HEARTH_DB_HOST`
/// with `HEARTH_DB_AUTH=iam`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// Secrets Manager secret in the RDS JSON form (username, password, host, port, dbname);
    /// with IAM auth and [`DbSettings::endpoint`] none is needed.
    pub secret_id: Option<String>,
    /// Connections opened at prewarm.
    pub pool_min: usize,
    /// Maximum open connections.
    pub pool_max: NonZeroUsize,
    /// Bound on opening one connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a free connection.
    pub pool_wait_timeout: Duration,
    /// Server-side statement timeout.
    pub statement_timeout: Duration,
    /// Idle time after which a pooled connection is verified before use.
    pub verify_idle_after: Duration,
    /// Setting carrying the tenant.
    pub tenant_setting: String,
    /// Further settings a request may set.
    pub allowed_settings: Vec<String>,
    /// Accept requests without a tenant.
    pub tenantless: bool,
    /// Accept a superuser or BYPASSRLS role.
    pub allow_privileged_role: bool,
    /// Cap on one request's result bytes.
    pub max_result_bytes: NonZeroUsize,
    /// Transport security.
    pub tls: DbTls,
    /// Where the password comes from.
    pub auth: DbAuth,
    /// The endpoint given by variables (IAM only), instead of the secret's.
    pub endpoint: Option<DbEndpoint>,
    /// Direct, or behind a transaction-mode pooler.
    pub pooler: hearth_db::PoolerMode,
    /// Default form of int8 and numeric results.
    pub numbers: hearth::wire::NumberMode,
}

/// Where database passwords come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAuth {
    /// The `password` field of the secret.
    Secret,
    /// IAM authentication tokens, generated per new connection.
    Iam,
}

/// A database endpoint given by variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbEndpoint {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Database name.
    pub dbname: String,
}

/// Reads the pool's section: `None` without `HEARTH_DB_SECRET_ID` (or `HEARTH_DB_HOST`),
/// where any other
/// `HEARTH_DB_*` variable is a problem (it would have no effect).
pub fn read(r: &mut Reader<'_>) -> Option<DbSettings> {
    let env = r.env;
    let auth = r.parse(
        "HEARTH_DB_AUTH",
        DbAuth::Secret,
        "secret or iam",
        |s| match s.to_ascii_lowercase().as_str() {
            "secret" => Some(DbAuth::Secret),
            "iam" => Some(DbAuth::Iam),
            _ => None,
        },
    );
    let endpoint = match env.get("HEARTH_DB_HOST") {
        None => {
            for name in ["HEARTH_DB_PORT", "HEARTH_DB_USER", "HEARTH_DB_NAME"] {
                if env.get(name).is_some() && env.get("HEARTH_DB_SECRET_ID").is_some() {
                    r.problem(
                        name,
                        "is used with HEARTH_DB_HOST only; the secret names the endpoint".into(),
                    );
                }
            }
            None
        }
        Some(host) => {
            if auth != DbAuth::Iam {
                r.problem(
                    "HEARTH_DB_HOST",
                    "is used with HEARTH_DB_AUTH=iam only; with secret auth the host comes \
                     from HEARTH_DB_SECRET_ID"
                        .into(),
                );
            }
            if host.is_empty() || host.len() > 253 {
                r.problem("HEARTH_DB_HOST", "accepted: a host name".into());
            }
            let port = r.parse("HEARTH_DB_PORT", 5432, "a port from 1 to 65535", |s| {
                s.parse::<u16>().ok().filter(|p| *p > 0)
            });
            let user = env.get("HEARTH_DB_USER").unwrap_or_default().to_string();
            if user.is_empty() {
                r.problem(
                    "HEARTH_DB_USER",
                    "is required with HEARTH_DB_HOST: the database role to log in as".into(),
                );
            }
            let dbname = env.get("HEARTH_DB_NAME").unwrap_or("postgres").to_string();
            Some(DbEndpoint {
                host: host.to_string(),
                port,
                user,
                dbname,
            })
        }
    };
    let secret_id = env.get("HEARTH_DB_SECRET_ID");
    let db = match (secret_id, &endpoint) {
        (None, None) => None,
        (id, _) => {
            if let Some(id) = id {
                if id.is_empty() || id.len() > 2048 {
                    r.problem(
                        "HEARTH_DB_SECRET_ID",
                        "accepted: a secret id or ARN of 1 to 2048 characters".into(),
                    );
                }
            }
            let pool_max = r.size("HEARTH_DB_POOL_MAX", 4, 1000);
            let pool_min = r.parse(
                "HEARTH_DB_POOL_MIN",
                1,
                "an integer from 0 to HEARTH_DB_POOL_MAX",
                |s| s.parse::<usize>().ok(),
            );
            if pool_min > pool_max.get() {
                r.problem(
                    "HEARTH_DB_POOL_MIN",
                    format!("{pool_min} exceeds HEARTH_DB_POOL_MAX ({pool_max})"),
                );
            }
            let setting = |s: &str| {
                let ok = s.split('.').count() >= 2
                    && s.split('.').all(|p| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                ok.then(|| s.to_string())
            };
            let tenant_setting = r.parse(
                "HEARTH_DB_TENANT_SETTING",
                "app.tenant_id".to_string(),
                "a dotted identifier such as app.tenant_id",
                setting,
            );
            let allowed_settings = r.parse(
                "HEARTH_DB_CONTEXT_SETTINGS",
                Vec::new(),
                "comma-separated dotted identifiers such as app.user_id",
                |s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(setting)
                        .collect()
                },
            );
            let ca = r.parse(
                "HEARTH_DB_CA_BUNDLE",
                std::path::PathBuf::from("/opt/hearth/rds-ca-bundle.pem"),
                "a path to a PEM file",
                |s| (!s.is_empty()).then(|| std::path::PathBuf::from(s)),
            );
            let tls = r.parse(
                "HEARTH_DB_TLS",
                DbTls::Require(ca.clone()),
                "require or disable",
                |s| match s.to_ascii_lowercase().as_str() {
                    "require" | "verify-full" => Some(DbTls::Require(ca.clone())),
                    "disable" => Some(DbTls::Disable),
                    _ => None,
                },
            );
            if auth == DbAuth::Iam && tls == DbTls::Disable {
                r.problem(
                    "HEARTH_DB_TLS",
                    "disable is refused with HEARTH_DB_AUTH=iam: an IAM token is a \
                     credential and Aurora accepts it over TLS only; use require"
                        .into(),
                );
            }
            let pooler = r.parse(
                "HEARTH_DB_POOLER",
                hearth_db::PoolerMode::None,
                "none or transaction",
                |s| match s.to_ascii_lowercase().as_str() {
                    "none" => Some(hearth_db::PoolerMode::None),
                    "transaction" => Some(hearth_db::PoolerMode::Transaction),
                    _ => None,
                },
            );
            let numbers = r.parse(
                "HEARTH_DB_NUMBERS",
                hearth::wire::NumberMode::Number,
                "number or string",
                |s| match s.to_ascii_lowercase().as_str() {
                    "number" => Some(hearth::wire::NumberMode::Number),
                    "string" => Some(hearth::wire::NumberMode::String),
                    _ => None,
                },
            );
            Some(DbSettings {
                secret_id: id.map(str::to_string),
                auth,
                endpoint: endpoint.clone(),
                pooler,
                numbers,
                pool_min,
                pool_max,
                connect_timeout: r.duration(
                    "HEARTH_DB_CONNECT_TIMEOUT",
                    Duration::from_secs(3),
                    Duration::from_millis(50),
                    Duration::from_secs(60),
                ),
                pool_wait_timeout: r.duration(
                    "HEARTH_DB_POOL_WAIT_TIMEOUT",
                    Duration::from_secs(2),
                    Duration::from_millis(1),
                    Duration::from_secs(60),
                ),
                statement_timeout: r.duration(
                    "HEARTH_DB_STATEMENT_TIMEOUT",
                    Duration::from_secs(5),
                    Duration::from_millis(1),
                    Duration::from_secs(900),
                ),
                verify_idle_after: r.duration(
                    "HEARTH_DB_VERIFY_IDLE_AFTER",
                    Duration::from_secs(5),
                    Duration::ZERO,
                    Duration::from_secs(3600),
                ),
                tenant_setting,
                allowed_settings,
                tenantless: r.flag("HEARTH_DB_TENANTLESS", false),
                allow_privileged_role: r.flag("HEARTH_DB_ALLOW_PRIVILEGED_ROLE", false),
                max_result_bytes: r.size(
                    "HEARTH_DB_MAX_RESULT_BYTES",
                    hearth_db::DEFAULT_MAX_RESULT_BYTES,
                    1 << 30,
                ),
                tls,
            })
        }
    };
    if db.is_none() {
        for var in VARS.iter().skip(1) {
            if env.get(var.name).is_some() {
                r.problem(
                    var.name,
                    "has no effect without HEARTH_DB_SECRET_ID (or HEARTH_DB_HOST with \
                     HEARTH_DB_AUTH=iam); set that to enable the pool"
                        .into(),
                );
            }
        }
    }
    db
}
