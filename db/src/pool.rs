//! The deadpool manager: opens connections with credentials from a [`CredentialSource`]
//! (refetching once after a password rotation), refuses privileged roles, and verifies
//! connections that sat idle long enough to have died (e.g. across a Lambda freeze).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket, Statement};

use crate::config::{DbConfig, PoolerMode, TlsMode};
use crate::credentials::{CredentialSource, DbCredentials};
use crate::error::DbError;
use crate::tls::{is_local_host, RustlsConnect};

/// Bound on the verification round trip of an idle connection. A half-open TCP connection
/// (peer gone without a reset, as after a long freeze) would otherwise stall the checkout.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// Plain counters, shared by the manager and [`crate::Db`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) waits: AtomicU64,
    pub(crate) pool_timeouts: AtomicU64,
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
    /// When the last request on this connection finished (or when it was opened).
    pub(crate) last_used: Instant,
    /// Named statements on the server that the driver made for itself (tokio-postgres's
    /// type lookups), as counted at the end of the last clean request: the statements the
    /// server lists that are not in [`PgConn::statements`]. They only ever grow; fewer means
    /// user SQL deallocated one, and the connection is closed.
    pub(crate) driver_statements: i64,
    statements: HashMap<String, Statement>,
    order: VecDeque<String>,
    cache_size: usize,
    driver: JoinHandle<()>,
    /// For cancelling a statement still running when the request is abandoned.
    tls: Option<Arc<ClientConfig>>,
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
                // Dropping the Statement makes tokio-postgres close it on the server, before
                // anything sent later.
                self.statements.remove(&old);
            }
        }
        self.order.push_back(sql.to_owned());
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    /// Asks the server, over a new connection, to cancel whatever this one is running: a
    /// request that timed out or whose client went away must not keep a backend busy (with
    /// `statement_timeout = 0` set by its SQL it would, after the socket is closed, until the
    /// statement ends). In the background, bounded; harmless when nothing runs.
    pub(crate) fn cancel_in_background(&self) {
        let token = self.client.cancel_token();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let cancel = async move {
                match tls {
                    Some(tls) => token.cancel_query(RustlsConnect(tls)).await,
                    None => token.cancel_query(NoTls).await,
                }
            };
            if let Ok(Err(e)) = tokio::time::timeout(VERIFY_TIMEOUT * 5, cancel).await {
                tracing::debug!(error = %e, "cancel request failed");
            }
        });
    }

    /// How many named statements of ours the server should hold.
    pub(crate) fn cached_statements(&self) -> i64 {
        self.statements.len() as i64
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
    /// The outcome of the last privileged-role check and the credentials it ran with (by
    /// fingerprint). The check runs on every new connection; a refusal answers every later
    /// connection attempt with those credentials without connecting, until they change.
    pub(crate) role_check: Mutex<Option<(u64, Result<(), RoleRefusal>)>>,
    /// Keys the credential fingerprints (random per process).
    pub(crate) hasher: RandomState,
}

/// Why a role was refused: its name and one sentence per reason, each with the fix.
#[derive(Debug, Clone)]
pub(crate) struct RoleRefusal {
    role: String,
    reasons: Vec<String>,
}

impl From<RoleRefusal> for DbError {
    fn from(r: RoleRefusal) -> Self {
        DbError::PrivilegedRole {
            role: r.role,
            reasons: r.reasons.join("; "),
        }
    }
}

/// Roles whose members escape Row-Level Security besides superuser and BYPASSRLS ones:
/// Aurora/RDS's `rds_superuser`, and the roles that read or write the server's files or run
/// programs as its OS user (which reach the data files under any policy).
const ESCAPING_ROLES: &str =
    "'rds_superuser', 'pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'";

/// One query string, one round trip, on every new connection before anything else runs: the
/// facts about the session Rust decides on (`schemas`, `session`, `role`, `row_security`,
/// read before anything changes them), then, with `search_path` pinned to `pg_catalog` for
/// the transaction so that no operator or function a user created can stand in, one row per
/// way the role escapes Row-Level Security:
///
/// - `superuser`, `bypassrls`: they ignore RLS;
/// - `createrole`: it can grant itself a role that does (PostgreSQL 15 and earlier), and so
///   can a member of a CREATEROLE role (`member`);
/// - `member`: membership (direct or inherited, with or without INHERIT, since `SET ROLE`
///   works either way) in a superuser, BYPASSRLS or CREATEROLE role or in [`ESCAPING_ROLES`];
/// - `owner`: the owner of an RLS table — or a member of its owner — skips RLS unless it is
///   forced, and can un-force it or drop the policies with one statement of injected SQL, so
///   owning one is refused whether or not it is forced;
/// - `policy-function`: owning a function a policy calls lets SQL redefine the policy;
/// - `partition`: a partition without RLS of a table with RLS exposes its rows directly;
/// - `view`: a view (not `security_invoker`) whose owner RLS does not bind, or a materialized
///   view, over an RLS table, that the role can read.
fn role_check_sql() -> String {
    format!(
        "SELECT 'schemas', pg_catalog.array_to_string(pg_catalog.current_schemas(true), ',') \
         UNION ALL SELECT 'session', pg_catalog.session_user()::text \
         UNION ALL SELECT 'role', pg_catalog.current_user()::text \
         UNION ALL SELECT 'row_security', pg_catalog.current_setting('row_security'); \
         BEGIN; SET LOCAL search_path = pg_catalog, pg_temp; \
         WITH me AS (SELECT oid, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles \
                     WHERE rolname = current_user), \
              rls AS (SELECT oid, relowner, relforcerowsecurity FROM pg_class \
                      WHERE relkind IN ('r', 'p') AND relrowsecurity) \
         SELECT 'superuser', '' FROM me WHERE rolsuper \
         UNION ALL SELECT 'bypassrls', '' FROM me WHERE rolbypassrls \
         UNION ALL SELECT 'createrole', '' FROM me WHERE rolcreaterole \
         UNION ALL SELECT 'member', r.rolname::text FROM me, pg_roles r \
           WHERE r.oid <> me.oid \
             AND (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolname IN ({ESCAPING_ROLES})) \
             AND pg_has_role(me.oid, r.oid, 'MEMBER') \
         UNION ALL SELECT 'owner', c.oid::regclass::text FROM me, rls c \
           WHERE pg_has_role(me.oid, c.relowner, 'MEMBER') \
         UNION ALL SELECT DISTINCT 'policy-function', f.oid::regprocedure::text \
           FROM me, pg_policy pol JOIN pg_depend d \
             ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid \
                AND d.refclassid = 'pg_proc'::regclass \
           JOIN pg_proc f ON f.oid = d.refobjid \
           WHERE pg_has_role(me.oid, f.proowner, 'MEMBER') \
         UNION ALL SELECT 'partition', i.inhrelid::regclass::text FROM me, pg_inherits i \
           JOIN rls parent ON parent.oid = i.inhparent \
           JOIN pg_class child ON child.oid = i.inhrelid AND NOT child.relrowsecurity \
           WHERE has_table_privilege(me.oid, child.oid, 'SELECT, INSERT, UPDATE, DELETE') \
         UNION ALL SELECT DISTINCT 'view', v.oid::regclass::text FROM me, pg_class v \
           JOIN pg_rewrite rw ON rw.ev_class = v.oid \
           JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid \
                AND d.refclassid = 'pg_class'::regclass \
           JOIN rls t ON t.oid = d.refobjid \
           JOIN pg_roles o ON o.oid = v.relowner \
           WHERE v.relkind IN ('v', 'm') AND has_table_privilege(me.oid, v.oid, 'SELECT') \
             AND (v.relkind = 'm' OR (NOT coalesce('security_invoker=true' = ANY(v.reloptions), false) \
                  AND (o.rolsuper OR o.rolbypassrls \
                       OR (pg_has_role(o.oid, t.relowner, 'MEMBER') AND NOT t.relforcerowsecurity)))); \
         COMMIT"
    )
}

/// Reads the role check's rows into the role name and every reason it is refused.
fn role_refusal(msgs: &[SimpleQueryMessage]) -> Result<RoleRefusal, DbError> {
    let fact = |key: &str| -> Option<String> {
        msgs.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) if r.get(0) == Some(key) => r.get(1).map(str::to_owned),
            _ => None,
        })
    };
    let role =
        fact("role").ok_or_else(|| DbError::DbUnavailable("role lookup returned no row".into()))?;
    let mut reasons = Vec::new();
    if fact("session").as_deref() != Some(role.as_str()) {
        reasons.push(format!(
            "the session runs as {role:?}, not as the role it logged in with (a role default \
             set with ALTER ROLE ... SET role): ALTER ROLE ... RESET role"
        ));
    }
    if fact("row_security").as_deref() != Some("on") {
        reasons.push(
            "row_security is not on for it (ALTER ROLE/DATABASE ... SET row_security): RESET it"
                .to_owned(),
        );
    }
    // The session's temporary schema comes first when the path does not name it, but it is
    // never searched for functions or operators; behind a transaction pooler a new connection
    // may land on a server connection that once had a temporary table.
    if let Some(first) = fact("schemas")
        .as_deref()
        .and_then(|s| {
            s.split(',')
                .find(|x| !x.is_empty() && !x.starts_with("pg_temp_"))
        })
        .filter(|x| *x != "pg_catalog")
    {
        reasons.push(format!(
            "its search_path puts schema {first:?} before pg_catalog, where SQL can define \
             operators and functions that stand in for the catalog's: leave pg_catalog first \
             (ALTER ROLE ... RESET search_path)"
        ));
    }
    for m in msgs {
        let SimpleQueryMessage::Row(r) = m else {
            continue;
        };
        let name = r.get(1).unwrap_or_default();
        match r.get(0).unwrap_or_default() {
            "superuser" => reasons.push(
                "it is a superuser, which ignores Row-Level Security: connect as an ordinary \
                 role (CREATE ROLE ... LOGIN NOSUPERUSER NOBYPASSRLS)"
                    .to_owned(),
            ),
            "bypassrls" => reasons.push(
                "it has BYPASSRLS, which ignores Row-Level Security: ALTER ROLE ... NOBYPASSRLS"
                    .to_owned(),
            ),
            "createrole" => reasons.push(
                "it has CREATEROLE, so it can grant itself a role that bypasses Row-Level \
                 Security: ALTER ROLE ... NOCREATEROLE"
                    .to_owned(),
            ),
            "member" => reasons.push(format!(
                "it is a member of {name:?}, a superuser, BYPASSRLS or CREATEROLE role, Aurora's \
                 rds_superuser or a server-file role, so SET ROLE escapes Row-Level Security: \
                 REVOKE {name} FROM the role (on Aurora, connect as an application role, not \
                 the master user)"
            )),
            "owner" => reasons.push(format!(
                "it owns table {name} (directly or through a role it is a member of): an owner \
                 skips Row-Level Security unless it is forced, and its SQL can un-force it or \
                 drop the policies: make a NOLOGIN role the owner (ALTER TABLE {name} OWNER TO \
                 ...), and ALTER TABLE {name} FORCE ROW LEVEL SECURITY"
            )),
            "policy-function" => reasons.push(format!(
                "it owns function {name}, which a Row-Level Security policy calls, so its SQL \
                 can redefine the policy: make a NOLOGIN role the owner"
            )),
            "partition" => reasons.push(format!(
                "it can query partition {name} directly, which has no Row-Level Security of its \
                 own: ALTER TABLE {name} ENABLE ROW LEVEL SECURITY (and FORCE), with the \
                 parent's policies, or REVOKE its privileges on the partition"
            )),
            "view" => reasons.push(format!(
                "it can read view {name}, which reads a table under Row-Level Security as an \
                 owner the policies do not bind (or is a materialized view): CREATE VIEW ... \
                 WITH (security_invoker = true), or REVOKE SELECT ON {name}"
            )),
            _ => {}
        }
    }
    Ok(RoleRefusal { role, reasons })
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
            .keepalives(true);
        if self.config.pooler == PoolerMode::None {
            // Startup-packet settings are the session defaults that `RESET ALL` returns to.
            // A transaction-mode pooler refuses the `options` parameter (PgBouncer: 08P01
            // "unsupported startup parameter"); there every request sets the timeout
            // transaction-locally instead.
            pg.options(format!(
                "-c statement_timeout={}",
                self.config.statement_timeout.as_millis().max(1)
            ));
        }
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
        // Every new connection: injected SQL may have changed ownership, grants or role
        // defaults since the last one. A refusal is kept for these credentials.
        let msgs = tokio::time::timeout(bound, client.simple_query(&role_check_sql()))
            .await
            .map_err(|_| timed_out())??;
        let refusal = role_refusal(&msgs)?;
        let outcome = if refusal.reasons.is_empty() {
            Ok(())
        } else if self.config.allow_privileged_role {
            tracing::warn!(
                role = %refusal.role,
                reasons = %refusal.reasons.join("; "),
                "database role escapes Row-Level Security (allowed by configuration)"
            );
            Ok(())
        } else {
            Err(refusal)
        };
        let fingerprint = self.fingerprint(creds);
        if let Ok(mut slot) = self.role_check.lock() {
            *slot = Some((fingerprint, outcome.clone()));
        }
        outcome?;
        bump(&self.counters.created);
        Ok(PgConn {
            client,
            last_used: Instant::now(),
            driver_statements: 0,
            statements: HashMap::new(),
            order: VecDeque::new(),
            cache_size: self.config.statement_cache_size,
            driver,
            tls: self.tls.clone(),
        })
    }

    fn fingerprint(&self, c: &DbCredentials) -> u64 {
        self.hasher
            .hash_one((&c.host, c.port, &c.dbname, &c.username, &c.password))
    }

    /// The cached role-check outcome for these credentials, if it ran with them.
    fn cached_role_check(&self, creds: &DbCredentials) -> Option<Result<(), RoleRefusal>> {
        let fingerprint = self.fingerprint(creds);
        let slot = self.role_check.lock().ok()?;
        match &*slot {
            Some((f, outcome)) if *f == fingerprint => Some(outcome.clone()),
            _ => None,
        }
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
        // A role refused with these credentials is refused again without connecting: a
        // misconfigured environment must not open a connection per request.
        if let Some(Err(refusal)) = self.cached_role_check(&creds) {
            return Err(refusal.into());
        }
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
        if let Some(Err(refusal)) = self.cached_role_check(&creds) {
            return Err(refusal.into());
        }
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
