//! The database pool as the extension runs it: `hearth-db`'s pool, fed credentials from the
//! secrets cache, with its statistics published to the metrics registry.
//!
//! Credentials come from a Secrets Manager secret in the RDS JSON form. When the database
//! rejects the password (SQLSTATE 28P01, after a rotation) the pool asks again with
//! `force_refresh`, which refetches the secret past the cache — and that refetch also
//! updates the cache, so every later reader sees the rotated value.
//!
//! With `HEARTH_DB_AUTH=iam` the endpoint comes from the secret (its password unused) or from
//! `HEARTH_DB_HOST`/`PORT`/`USER`/`NAME`, and the password is an IAM authentication token
//! signed with the extension's own SDK configuration ([`hearth_db::IamCredentials`]).

use std::sync::Arc;

use hearth::wire::{
    QueryRequest, QueryResponse, SecretValue, TransactionRequest, TransactionResponse,
};
use hearth_db::{
    CredentialSource, CredentialsFuture, Db, DbConfig, DbCredentials, DbError, IamCredentials,
    StaticCredentials, TlsMode,
};

use crate::config::{DbAuth, DbSettings, DbTls};
use crate::metrics::{Counter, Gauge, Metrics};
use crate::secrets::{SecretKey, SecretsCache};

/// Reads database credentials from the secrets cache.
struct SecretCredentials {
    secrets: SecretsCache,
    secret_id: String,
    /// False with IAM auth: the secret gives the endpoint, the token the password.
    need_password: bool,
}

impl CredentialSource for SecretCredentials {
    fn credentials(&self, force_refresh: bool) -> CredentialsFuture<'_> {
        Box::pin(async move {
            // AWSCURRENT by name: the version rotation moves, read the same way AWS's
            // rotation functions read it.
            let key = SecretKey {
                secret_id: self.secret_id.clone(),
                version_id: None,
                version_stage: Some("AWSCURRENT".to_string()),
            };
            let value = self
                .secrets
                .get(&key, force_refresh)
                .await
                .map_err(|e| format!("database secret {:?}: {}", self.secret_id, e.code()))?;
            parse_rds_secret(&value, self.need_password)
        })
    }
}

/// Parses the RDS secret JSON. Errors name the missing field, never a value.
fn parse_rds_secret(v: &SecretValue, need_password: bool) -> Result<DbCredentials, String> {
    let text = v
        .secret_string
        .as_deref()
        .ok_or("the database secret has no SecretString; store it in the RDS JSON form")?;
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        "the database secret is not JSON; store it in the RDS JSON form".to_string()
    })?;
    let field = |name: &str| {
        json.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let need =
        |name: &str| field(name).ok_or(format!("the database secret has no string field {name:?}"));
    let port = match json.get("port") {
        None => 5432,
        Some(serde_json::Value::String(s)) => s
            .parse()
            .map_err(|_| "the database secret's port is not a number")?,
        Some(p) => p
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or("the database secret's port is not a port number")?,
    };
    Ok(DbCredentials {
        host: need("host")?,
        port,
        dbname: field("dbname").unwrap_or_else(|| "postgres".to_string()),
        username: need("username")?,
        password: if need_password {
            need("password")?
        } else {
            String::new()
        },
    })
}

/// A gauge and the pool statistic (a level) it shows.
type StatGauge = (Arc<Gauge>, fn(&hearth_db::DbStats) -> u64);
/// A counter and the cumulative pool statistic it mirrors (so EMF writes its deltas).
type StatCounter = (Arc<Counter>, fn(&hearth_db::DbStats) -> u64);

/// The pool plus the metrics its statistics are published to.
pub struct Database {
    db: Db,
    gauges: [StatGauge; 2],
    counters: [StatCounter; 7],
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.db.fmt(f)
    }
}

impl Database {
    /// Builds the pool (no connection is opened yet).
    pub fn new(
        settings: &DbSettings,
        secrets: SecretsCache,
        sdk: &aws_config::SdkConfig,
        metrics: &Metrics,
    ) -> Result<Database, DbError> {
        let tls = match &settings.tls {
            DbTls::Require(ca) => TlsMode::Require {
                ca_bundle: ca.clone(),
            },
            DbTls::Disable => TlsMode::Disable,
        };
        let mut cfg = DbConfig::new(tls);
        cfg.min_connections = settings.pool_min;
        cfg.max_connections = settings.pool_max;
        cfg.connect_timeout = settings.connect_timeout;
        cfg.pool_wait_timeout = settings.pool_wait_timeout;
        cfg.statement_timeout = settings.statement_timeout;
        cfg.verify_idle_after = settings.verify_idle_after;
        cfg.tenant_setting = settings.tenant_setting.clone();
        cfg.allowed_settings = settings.allowed_settings.clone();
        cfg.tenantless = settings.tenantless;
        cfg.allow_privileged_role = settings.allow_privileged_role;
        cfg.max_result_bytes = settings.max_result_bytes.get();
        cfg.pooler = settings.pooler;
        cfg.numbers = settings.numbers;
        let base: Arc<dyn CredentialSource> = match (&settings.endpoint, &settings.secret_id) {
            (Some(e), _) => Arc::new(StaticCredentials::new(DbCredentials {
                host: e.host.clone(),
                port: e.port,
                dbname: e.dbname.clone(),
                username: e.user.clone(),
                password: String::new(),
            })),
            (None, Some(id)) => Arc::new(SecretCredentials {
                secrets,
                secret_id: id.clone(),
                need_password: settings.auth == DbAuth::Secret,
            }),
            (None, None) => {
                return Err(DbError::CredentialsUnavailable(
                    "set HEARTH_DB_SECRET_ID, or HEARTH_DB_HOST with HEARTH_DB_AUTH=iam".into(),
                ))
            }
        };
        let source: Arc<dyn CredentialSource> = match settings.auth {
            DbAuth::Secret => base,
            DbAuth::Iam => {
                // The extension's own credentials (the function's role) sign the tokens, for
                // the region the function runs in.
                let region = sdk.region().cloned().ok_or_else(|| {
                    DbError::CredentialsUnavailable(
                        "IAM database auth needs a region: AWS_REGION is not set".into(),
                    )
                })?;
                Arc::new(IamCredentials::new(base, sdk.clone(), region))
            }
        };
        let db = Db::new(cfg, source)?;
        Ok(Database {
            db,
            gauges: [
                (metrics.gauge("db.pool_size"), |s| s.size as u64),
                (metrics.gauge("db.pool_available"), |s| s.available as u64),
            ],
            counters: [
                (metrics.counter("db.connections_created"), |s| s.created),
                (metrics.counter("db.connections_reused"), |s| s.reused),
                (metrics.counter("db.connections_verified"), |s| s.verified),
                (metrics.counter("db.connections_dead_replaced"), |s| {
                    s.recycled_dead
                }),
                (metrics.counter("db.pool_waits"), |s| s.waits),
                (metrics.counter("db.pool_timeouts"), |s| s.pool_timeouts),
                (metrics.counter("db.password_rotations"), |s| s.rotations),
            ],
        })
    }

    /// Copies the pool's statistics into the metrics registry.
    pub fn publish(&self) {
        let stats = self.db.stats();
        for (g, f) in &self.gauges {
            g.set(f(&stats));
        }
        for (c, f) in &self.counters {
            c.raise_to(f(&stats));
        }
    }

    /// Opens the configured minimum of connections (and checks the role).
    pub async fn warm(&self) -> Result<usize, DbError> {
        let r = self.db.warm().await;
        self.publish();
        r
    }

    /// One statement under the request's tenant.
    pub async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, DbError> {
        let r = self.db.query(req).await;
        self.publish();
        r
    }

    /// Several statements, all or nothing, under the request's tenant.
    pub async fn transaction(
        &self,
        req: &TransactionRequest,
    ) -> Result<TransactionResponse, DbError> {
        let r = self.db.transaction(req).await;
        self.publish();
        r
    }

    /// Closes the pool.
    pub fn close(&self) {
        self.db.close();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_rds_secret_t(v: &SecretValue) -> Result<DbCredentials, String> {
        parse_rds_secret(v, true)
    }

    #[test]
    fn iam_needs_no_password() {
        let c = parse_rds_secret(
            &secret(r#"{"username":"app","host":"h","port":5433}"#),
            false,
        )
        .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("app", ""));
    }

    fn secret(s: &str) -> SecretValue {
        SecretValue {
            arn: "a".into(),
            name: "n".into(),
            version_id: "v".into(),
            secret_string: Some(s.into()),
            secret_binary: None,
            version_stages: vec![],
            created_date: None,
        }
    }

    #[test]
    fn parses_rds_form() {
        let c = parse_rds_secret_t(&secret(
            r#"{"username":"app","password":"pw","host":"db.example","port":"6432","dbname":"d","engine":"postgres"}"#,
        ))
        .unwrap();
        assert_eq!(
            (
                c.host.as_str(),
                c.port,
                c.dbname.as_str(),
                c.username.as_str()
            ),
            ("db.example", 6432, "d", "app")
        );
        let c = parse_rds_secret_t(&secret(
            r#"{"username":"app","password":"pw","host":"h","port":5433}"#,
        ))
        .unwrap();
        assert_eq!((c.port, c.dbname.as_str()), (5433, "postgres"));
    }

    #[test]
    fn errors_never_carry_values() {
        let e =
            parse_rds_secret_t(&secret(r#"{"username":"app","password":"s3cr3t"}"#)).unwrap_err();
        assert!(e.contains("host") && !e.contains("s3cr3t"), "{e}");
        let e = parse_rds_secret_t(&secret("s3cr3t")).unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
