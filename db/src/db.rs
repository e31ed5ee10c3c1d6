//! [`Db`]: the pool plus the per-request protocol (tenant context, pipelining, cleanup).

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use deadpool::managed::{Object, Pool, PoolError, TimeoutType, Timeouts};
use deadpool::Runtime;
use futures_util::TryStreamExt as _;
use hearth::wire::{Column, QueryRequest, QueryResponse, TransactionRequest, TransactionResponse};
use tokio_postgres::{Row, Statement};

use crate::config::{DbConfig, TlsMode};
use crate::credentials::CredentialSource;
use crate::error::DbError;
use crate::params::{self, Param};
use crate::pool::{bump, Counters, Manager};
use crate::values;

/// Statements accepted in one transaction request.
pub const MAX_STATEMENTS: usize = 100;

/// Ends every request. `COMMIT` of an aborted transaction rolls it back without an error.
/// `RESET ALL` / `RESET ROLE` undo whatever session-level state the request's SQL changed
/// (`set_config(..., false)`, `SET app.tenant_id`, `SET statement_timeout`, `SET ROLE`), so the
/// next request on this connection starts from the connection's startup defaults. If this
/// fails, the connection is dropped instead of returned to the pool.
const FINISH_SQL: &str = "COMMIT; RESET ALL; RESET ROLE";

/// Slack on top of the server-side statement timeout before the client gives up.
const CLIENT_GRACE: Duration = Duration::from_secs(1);

/// Pool counters for the extension's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbStats {
    /// Configured maximum number of connections.
    pub max_size: usize,
    /// Open connections (idle and in use).
    pub size: usize,
    /// Idle connections.
    pub available: usize,
    /// Checkouts that found every connection busy and the pool full, so had to wait.
    pub waits: u64,
    /// Connections opened.
    pub created: u64,
    /// Checkouts served by an existing connection.
    pub reused: u64,
    /// Idle connections verified with a round trip before use.
    pub verified: u64,
    /// Idle connections found dead (closed or failing verification) and replaced.
    pub recycled_dead: u64,
    /// Connections dropped after a request left them in an unknown state (error, timeout,
    /// cancelled request).
    pub discarded: u64,
    /// Forced credential refreshes after the server rejected a password (SQLSTATE 28P01).
    pub rotations: u64,
}

/// The pool. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Db {
    pool: Pool<Manager>,
    config: Arc<DbConfig>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A statement of a request, borrowed from the wire type.
struct StatementRef<'a> {
    sql: &'a str,
    params: &'a [serde_json::Value],
}

impl Db {
    /// Validates `config` and builds the pool. Opens no connection (see [`Db::warm`]); reads the
    /// CA bundle when TLS is required.
    pub fn new(config: DbConfig, source: Arc<dyn CredentialSource>) -> Result<Db, DbError> {
        config.validate()?;
        let tls = match &config.tls {
            TlsMode::Require { ca_bundle } => Some(crate::tls::client_config(ca_bundle)?),
            TlsMode::Disable => None,
        };
        let counters = Arc::new(Counters::default());
        let config = Arc::new(config);
        let manager = Manager {
            config: config.clone(),
            source,
            tls,
            counters: counters.clone(),
            refresh_generation: tokio::sync::Mutex::new(0),
        };
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.get())
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(config.pool_wait_timeout),
                // Credentials fetch plus up to two connection attempts, each bounded inside.
                create: Some(config.connect_timeout * 3),
                recycle: Some(config.connect_timeout),
            })
            .build()
            .map_err(|e| DbError::DbUnavailable(format!("cannot build pool: {e}")))?;
        Ok(Db {
            pool,
            config,
            counters,
        })
    }

    /// Opens connections until `min_connections` are idle in the pool; returns how many are
    /// open. The first error (e.g. [`DbError::PrivilegedRole`], [`DbError::AuthFailed`]) is
    /// returned; connections opened before it stay in the pool.
    pub async fn warm(&self) -> Result<usize, DbError> {
        let want = self.config.min_connections;
        let results = futures_util::future::join_all((0..want).map(|_| self.pool.get())).await;
        let mut first_err = None;
        let mut held = Vec::with_capacity(want);
        for r in results {
            match r {
                Ok(o) => held.push(o),
                Err(e) if first_err.is_none() => first_err = Some(pool_error(e)),
                Err(_) => {}
            }
        }
        drop(held);
        match first_err {
            Some(e) => Err(e),
            None => Ok(self.pool.status().size),
        }
    }

    /// Runs one statement in its own transaction under the request's tenant context.
    pub async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, DbError> {
        let stmts = [StatementRef {
            sql: &req.sql,
            params: &req.params,
        }];
        let mut results = self
            .run(req.tenant.as_deref(), &req.context, &stmts)
            .await?;
        results
            .pop()
            .ok_or_else(|| DbError::DbUnavailable("no result".into()))
    }

    /// Runs the statements in one transaction: all commit or none.
    pub async fn transaction(
        &self,
        req: &TransactionRequest,
    ) -> Result<TransactionResponse, DbError> {
        if req.statements.is_empty() || req.statements.len() > MAX_STATEMENTS {
            return Err(DbError::InvalidRequest(format!(
                "a transaction needs 1 to {MAX_STATEMENTS} statements"
            )));
        }
        let stmts: Vec<StatementRef<'_>> = req
            .statements
            .iter()
            .map(|s| StatementRef {
                sql: &s.sql,
                params: &s.params,
            })
            .collect();
        let results = self
            .run(req.tenant.as_deref(), &req.context, &stmts)
            .await?;
        Ok(TransactionResponse { results })
    }

    /// Current counters.
    pub fn stats(&self) -> DbStats {
        let status = self.pool.status();
        let c = &self.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        DbStats {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waits: get(&c.waits),
            created: get(&c.created),
            reused: get(&c.reused),
            verified: get(&c.verified),
            recycled_dead: get(&c.recycled_dead),
            discarded: get(&c.discarded),
            rotations: get(&c.rotations),
        }
    }

    /// Closes the pool: idle connections are closed now, busy ones when their request ends;
    /// later requests fail with [`DbError::Closed`].
    pub fn close(&self) {
        self.pool.close();
    }

    /// The settings every request sets, in order: the tenant setting, then every allow-listed
    /// setting (to `''` when the request does not give it, so no earlier value can survive).
    fn settings(
        &self,
        tenant: Option<&str>,
        context: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, DbError> {
        let tenant = match tenant {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ if self.config.tenantless => String::new(),
            _ => return Err(DbError::TenantRequired),
        };
        if let Some(bad) = context
            .keys()
            .find(|k| !self.config.allowed_settings.contains(k))
        {
            return Err(DbError::SettingNotAllowed(bad.clone()));
        }
        let mut out = Vec::with_capacity(1 + self.config.allowed_settings.len());
        out.push((self.config.tenant_setting.clone(), tenant));
        for name in &self.config.allowed_settings {
            out.push((name.clone(), context.get(name).cloned().unwrap_or_default()));
        }
        Ok(out)
    }

    async fn checkout(&self) -> Result<Lease, DbError> {
        let status = self.pool.status();
        if status.available == 0 && status.size >= status.max_size {
            bump(&self.counters.waits);
        }
        let obj = self.pool.get().await.map_err(pool_error)?;
        Ok(Lease {
            obj: Some(obj),
            clean: false,
            counters: self.counters.clone(),
        })
    }

    async fn run(
        &self,
        tenant: Option<&str>,
        context: &BTreeMap<String, String>,
        stmts: &[StatementRef<'_>],
    ) -> Result<Vec<QueryResponse>, DbError> {
        let settings = self.settings(tenant, context)?;
        let mut lease = self.checkout().await?;
        let bound = self.config.statement_timeout * stmts.len() as u32 + CLIENT_GRACE;
        // If this future is dropped (client went away) or times out, `lease` is dropped
        // without being marked clean and the connection is closed, never reused mid-request.
        match tokio::time::timeout(bound, run_on(&mut lease, &settings, stmts)).await {
            Ok(r) => r,
            Err(_) => Err(DbError::StatementTimeout),
        }
    }
}

/// A checked-out connection that goes back to the pool only when marked clean.
struct Lease {
    obj: Option<Object<Manager>>,
    clean: bool,
    counters: Arc<Counters>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            if self.clean {
                drop(obj);
            } else {
                bump(&self.counters.discarded);
                // Detach from the pool; dropping the PgConn closes the socket, and the server
                // rolls back whatever was open.
                drop(Object::take(obj));
            }
        }
    }
}

type Step<'a> = Pin<Box<dyn Future<Output = Result<Option<QueryResponse>, DbError>> + Send + 'a>>;

/// The request protocol on one connection.
///
/// Round trips: any statement not yet prepared on this connection costs one (then cached);
/// everything else — `BEGIN`, one `set_config` per setting, the statements, and
/// `COMMIT; RESET ALL; RESET ROLE` — is written at once and costs one round trip together.
/// tokio-postgres sends each request when its future is first polled, in that order, and
/// each carries its own Sync, so a failure in one step makes the following statements fail
/// with 25P02 and turns the final `COMMIT` into a rollback.
async fn run_on(
    lease: &mut Lease,
    settings: &[(String, String)],
    stmts: &[StatementRef<'_>],
) -> Result<Vec<QueryResponse>, DbError> {
    let Some(conn) = lease.obj.as_deref_mut() else {
        return Err(DbError::DbUnavailable("connection gone".into()));
    };
    // 1. Prepare and convert parameters; nothing has been started on the server yet, so an
    //    error here leaves the connection clean.
    let mut prepared: Vec<(Statement, Vec<Param>)> = Vec::with_capacity(stmts.len());
    for s in stmts {
        let stmt = match conn.prepare_cached(s.sql).await {
            Ok(stmt) => stmt,
            Err(e) => {
                lease.clean = !e.connection_suspect();
                return Err(e);
            }
        };
        if let Some(col) = stmt
            .columns()
            .iter()
            .find(|c| !values::supported(c.type_()))
        {
            lease.clean = true;
            return Err(DbError::UnsupportedType {
                column: col.name().to_owned(),
                type_name: col.type_().name().to_owned(),
            });
        }
        match params::convert_all(s.params, stmt.params()) {
            Ok(p) => prepared.push((stmt, p)),
            Err(e) => {
                lease.clean = true;
                return Err(e);
            }
        }
    }

    // 2. The pipeline.
    let client = &conn.client;
    let set_config = &conn.set_config;
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(settings.len() + stmts.len() + 2);
    steps.push(Box::pin(async move {
        client.simple_query("BEGIN").await?;
        Ok(None)
    }));
    for (name, value) in settings {
        steps.push(Box::pin(async move {
            client
                .execute_raw(set_config, [name.as_str(), value.as_str()])
                .await?;
            Ok(None)
        }));
    }
    for (stmt, params) in &prepared {
        steps.push(Box::pin(async move {
            let stream = client.query_raw(stmt, params.iter()).await?;
            let mut stream = pin!(stream);
            let mut rows: Vec<Row> = Vec::new();
            while let Some(row) = stream.try_next().await? {
                rows.push(row);
            }
            let row_count = stream.rows_affected().unwrap_or(rows.len() as u64);
            Ok(Some(to_response(stmt, &rows, row_count)?))
        }));
    }
    steps.push(Box::pin(async move {
        client.simple_query(FINISH_SQL).await?;
        Ok(None)
    }));
    let mut results = join_in_order(steps).await;

    // 3. The connection is reusable only if the final step ran: the transaction is over and the
    //    session settings are back to their defaults.
    let finished = results
        .pop()
        .unwrap_or(Err(DbError::DbUnavailable("pipeline lost".into())));
    let mut responses = Vec::with_capacity(stmts.len());
    let mut first_err = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(Some(resp)) => responses.push(resp),
            Ok(None) => {}
            Err(e) => {
                if first_err.is_none() {
                    // Steps before the statements are BEGIN and the settings.
                    if let Some(s) = i.checked_sub(1 + settings.len()).and_then(|k| stmts.get(k)) {
                        if matches!(e, DbError::Sql { .. }) {
                            conn.evict(s.sql);
                        }
                    }
                    first_err = Some(e);
                }
            }
        }
    }
    lease.clean = finished.is_ok();
    if lease.clean {
        conn.last_used = Instant::now();
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    // All statements succeeded; a failing COMMIT (deferred constraint, serialization) means
    // nothing was committed.
    finished?;
    Ok(responses)
}

fn to_response(stmt: &Statement, rows: &[Row], row_count: u64) -> Result<QueryResponse, DbError> {
    let columns = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_().name().to_owned(),
        })
        .collect();
    let rows = rows
        .iter()
        .map(values::row_to_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(QueryResponse {
        columns,
        rows,
        row_count,
    })
}

/// Polls every future in index order until all are done. Unlike `join_all`, the order of
/// first polls is guaranteed, which is the order tokio-postgres writes the requests in.
async fn join_in_order<T>(mut futs: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(futs.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

fn pool_error(e: PoolError<DbError>) -> DbError {
    match e {
        PoolError::Timeout(TimeoutType::Wait) => DbError::PoolTimeout,
        PoolError::Timeout(_) => DbError::DbUnavailable("opening a connection timed out".into()),
        PoolError::Backend(e) => e,
        PoolError::Closed => DbError::Closed,
        other => DbError::DbUnavailable(other.to_string()),
    }
}
