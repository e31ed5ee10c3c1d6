//! The deadpool manager: opens connections with credentials from a [`CredentialSource`]
//! (refetching once after a password rotation), refuses privileged roles, and verifies
//! connections that sat idle long enough to have died (e.g. across a Lambda freeze).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket, Statement};

use crate::config::{DbConfig, TlsMode};
use crate::credentials::{CredentialSource, DbCredentials};
use crate::error::DbError;
use crate::tls::{is_local_host, RustlsConnect};

/// SQL of the per-request context statement; the setting name is a bound parameter too.
const SET_CONFIG_SQL: &str = "SELECT set_config($1, $2, true)";

/// Bound on the verification round trip of an idle connection. A half-open TCP connection
/// (peer gone without a reset, as after a long freeze) would otherwise stall the checkout.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// Plain counters, shared by the manager and [`crate::Db`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) waits: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) reused: AtomicU64,
    pub(crate) verified: AtomicU64,
    pub(crate) recycled_dead: AtomicU64,
    pub(crate) discarded: AtomicU64,
    pub(crate) rotations: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One pooled connection with its prepared statements.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    pub(crate) set_config: Statement,
    /// When the last request on this connection finished (or when it was opened).
    pub(crate) last_used: Instant,
    statements: HashMap<String, Statement>,
    order: VecDeque<String>,
    cache_size: usize,
    driver: JoinHandle<()>,
}

impl PgConn {
    /// The prepared statement for `sql`, preparing and caching it on first use.
    pub(crate) async fn prepare_cached(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(sql).await?;
        if self.order.len() >= self.cache_size {
            if let Some(old) = self.order.pop_front() {
                // Dropping the Statement makes tokio-postgres close it on the server.
                self.statements.remove(&old);
            }
        }
        self.order.push_back(sql.to_owned());
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    /// Forgets a cached statement (after it failed, e.g. because the schema changed).
    pub(crate) fn evict(&mut self, sql: &str) {
        if self.statements.remove(sql).is_some() {
            self.order.retain(|s| s != sql);
        }
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Closing the socket now rather than when the driver drains: a discarded connection
        // must not linger with an open transaction.
        self.driver.abort();
    }
}

/// Creates and recycles [`PgConn`]s.
pub(crate) struct Manager {
    pub(crate) config: Arc<DbConfig>,
    pub(crate) source: Arc<dyn CredentialSource>,
    pub(crate) tls: Option<Arc<ClientConfig>>,
    pub(crate) counters: Arc<Counters>,
    /// Generation of forced credential refreshes, so concurrent connection attempts that all
    /// hit 28P01 after a rotation cause one refresh, not one each.
    pub(crate) refresh_generation: tokio::sync::Mutex<u64>,
}

impl Manager {
    async fn connect(&self, creds: &DbCredentials) -> Result<PgConn, DbError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&creds.host)
            .port(creds.port)
            .dbname(&creds.dbname)
            .user(&creds.username)
            .password(creds.password.as_bytes())
            .application_name("hearth")
            .connect_timeout(self.config.connect_timeout)
            .keepalives(true)
            // Startup-packet settings are the session defaults that `RESET ALL` returns to.
            .options(format!(
                "-c statement_timeout={}",
                self.config.statement_timeout.as_millis().max(1)
            ));
        let bound = self.config.connect_timeout;
        let timed_out = || DbError::DbUnavailable(format!("connect timed out after {bound:?}"));
        let (client, driver) = match (&self.config.tls, &self.tls) {
            (TlsMode::Require { .. }, Some(tls)) => {
                pg.ssl_mode(SslMode::Require);
                let tls = RustlsConnect(tls.clone());
                tokio::time::timeout(bound, connect_with(&pg, tls))
                    .await
                    .map_err(|_| timed_out())??
            }
            _ => {
                if !is_local_host(&creds.host) {
                    return Err(DbError::TlsRequired {
                        host: creds.host.clone(),
                    });
                }
                pg.ssl_mode(SslMode::Disable);
                tokio::time::timeout(bound, connect_with(&pg, NoTls))
                    .await
                    .map_err(|_| timed_out())??
            }
        };
        // Prepare the context statement and check the role in one round trip.
        let setup = async {
            let (set_config, role) = tokio::join!(
                client.prepare(SET_CONFIG_SQL),
                client.simple_query(
                    "SELECT r.rolsuper, r.rolbypassrls, current_user FROM pg_roles r \
                     WHERE r.rolname = current_user"
                )
            );
            Ok::<_, DbError>((set_config?, role?))
        };
        let (set_config, role) = tokio::time::timeout(bound, setup)
            .await
            .map_err(|_| timed_out())??;
        self.check_role(&role)?;
        bump(&self.counters.created);
        Ok(PgConn {
            client,
            set_config,
            last_used: Instant::now(),
            statements: HashMap::new(),
            order: VecDeque::new(),
            cache_size: self.config.statement_cache_size,
            driver,
        })
    }

    /// Refuses superuser and BYPASSRLS roles: Row-Level Security does not apply to them. Checked
    /// on every new connection, since a rotation may switch to another user.
    fn check_role(&self, rows: &[SimpleQueryMessage]) -> Result<(), DbError> {
        let row = rows.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        });
        let Some(row) = row else {
            return Err(DbError::DbUnavailable("role lookup returned no row".into()));
        };
        let role = row.get(2).unwrap_or_default().to_owned();
        let what = if row.get(0) == Some("t") {
            "superuser"
        } else if row.get(1) == Some("t") {
            "BYPASSRLS"
        } else {
            return Ok(());
        };
        if self.config.allow_privileged_role {
            tracing::warn!(role = %role, what, "database role ignores Row-Level Security (allowed by configuration)");
            return Ok(());
        }
        Err(DbError::PrivilegedRole { role, what })
    }
}

async fn connect_with<T>(
    pg: &tokio_postgres::Config,
    tls: T,
) -> Result<(Client, JoinHandle<()>), DbError>
where
    T: MakeTlsConnect<Socket> + Send,
    T::TlsConnect: Send,
    T::Stream: Send + 'static,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    T::Stream: AsyncRead + AsyncWrite,
{
    let (client, connection) = pg.connect(tls).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok((client, driver))
}

impl managed::Manager for Manager {
    type Type = PgConn;
    type Error = DbError;

    async fn create(&self) -> Result<PgConn, DbError> {
        let generation = *self.refresh_generation.lock().await;
        let creds = self
            .source
            .credentials(false)
            .await
            .map_err(DbError::CredentialsUnavailable)?;
        match self.connect(&creds).await {
            Err(DbError::AuthFailed { sqlstate }) if sqlstate == "28P01" => {}
            other => return other,
        }
        // The password was rejected: probably rotated. Refetch once (unless a concurrent
        // attempt already did) and retry once.
        let creds = {
            let mut current = self.refresh_generation.lock().await;
            let force = *current == generation;
            if force {
                *current += 1;
                bump(&self.counters.rotations);
                tracing::info!("database password rejected; refetching credentials once");
            }
            self.source
                .credentials(force)
                .await
                .map_err(DbError::CredentialsUnavailable)?
        };
        self.connect(&creds).await
    }

    async fn recycle(&self, conn: &mut PgConn, _: &Metrics) -> RecycleResult<DbError> {
        if conn.client.is_closed() {
            bump(&self.counters.recycled_dead);
            return Err(RecycleError::message("connection closed"));
        }
        if conn.last_used.elapsed() >= self.config.verify_idle_after {
            bump(&self.counters.verified);
            let check = tokio::time::timeout(
                self.config.connect_timeout.min(VERIFY_TIMEOUT),
                conn.client.check_connection(),
            )
            .await;
            if !matches!(check, Ok(Ok(()))) {
                bump(&self.counters.recycled_dead);
                tracing::debug!("idle database connection failed verification; replacing it");
                return Err(RecycleError::message("connection failed verification"));
            }
        }
        bump(&self.counters.reused);
        Ok(())
    }
}
