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
use hearth::wire::{
    Column, NumberMode, QueryRequest, QueryResponse, RowMode, TransactionRequest,
    TransactionResponse,
};
use tokio_postgres::types::Type;
use tokio_postgres::{SimpleQueryMessage, Statement};

use crate::config::{DbConfig, PoolerMode, TlsMode};
use crate::credentials::CredentialSource;
use crate::error::DbError;
use crate::params::{self, Param};
use crate::pool::{bump, Counters, Manager};
use crate::values;

/// Statements accepted in one transaction request.
pub const MAX_STATEMENTS: usize = 100;

/// The per-request context statement: the unnamed statement, schema-qualified, so that no
/// prepared statement, function or `search_path` that user SQL left behind can stand in for it.
pub const SET_CONFIG_SQL: &str = "SELECT pg_catalog.set_config($1, $2, true)";

/// Ends every request, in one query string after the statements: `COMMIT` (of an aborted
/// transaction: a rollback, without an error), then what returns the session to its startup
/// state whatever the request's SQL did — what `DISCARD ALL` does except `DEALLOCATE ALL`
/// (which would drop the driver's statements) and `DISCARD PLANS` (plans hold no data;
/// `DISCARD ALL` cannot follow `COMMIT` in one string either) — and last a check of the
/// prepared statements: none made by SQL `PREPARE` may remain (that is the only way a
/// statement of the driver's can be replaced) and the driver's own must all still be there.
/// Everything that names a function or a catalog view is schema-qualified, and `RESET ALL`
/// runs before it. If `COMMIT` fails, the rest is skipped and the connection is closed.
pub const FINISH_SQL: &str = "COMMIT; \
    SET SESSION AUTHORIZATION DEFAULT; RESET ALL; RESET ROLE; CLOSE ALL; UNLISTEN *; \
    DISCARD TEMP; DISCARD SEQUENCES; \
    SELECT pg_catalog.pg_advisory_unlock_all(), \
           pg_catalog.count(*) FILTER (WHERE from_sql), \
           pg_catalog.count(*) FILTER (WHERE NOT from_sql) \
    FROM pg_catalog.pg_prepared_statements";

/// Slack on top of the server-side statement timeout before the client gives up.
pub(crate) const CLIENT_GRACE: Duration = Duration::from_secs(1);

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
    /// Checkouts that waited `pool_wait_timeout` and got no connection ([`DbError::PoolTimeout`]).
    pub pool_timeouts: u64,
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
pub(crate) struct StatementRef<'a> {
    pub(crate) sql: &'a str,
    pub(crate) params: &'a [serde_json::Value],
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
            role_check: std::sync::Mutex::new(None),
            hasher: std::collections::hash_map::RandomState::new(),
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
        let mode = req.row_mode.unwrap_or_default();
        let mut results = self
            .run(
                req.tenant.as_deref(),
                &req.context,
                mode,
                req.numbers,
                &stmts,
            )
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
        let mode = req.row_mode.unwrap_or_default();
        let results = self
            .run(
                req.tenant.as_deref(),
                &req.context,
                mode,
                req.numbers,
                &stmts,
            )
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
            pool_timeouts: get(&c.pool_timeouts),
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
        let obj = self.pool.get().await.map_err(pool_error).inspect_err(|e| {
            if matches!(e, DbError::PoolTimeout) {
                bump(&self.counters.pool_timeouts);
            }
        })?;
        Ok(Lease {
            obj: Some(obj),
            clean: false,
            cancel: true,
            counters: self.counters.clone(),
        })
    }

    async fn run(
        &self,
        tenant: Option<&str>,
        context: &BTreeMap<String, String>,
        mode: RowMode,
        numbers: Option<NumberMode>,
        stmts: &[StatementRef<'_>],
    ) -> Result<Vec<QueryResponse>, DbError> {
        let settings = self.settings(tenant, context)?;
        let mut lease = self.checkout().await?;
        let bound = self.config.statement_timeout * stmts.len() as u32 + CLIENT_GRACE;
        let limits = Limits {
            as_array: mode == RowMode::Array,
            max_bytes: self.config.max_result_bytes,
            numbers_as_strings: numbers.unwrap_or(self.config.numbers) == NumberMode::String,
        };
        // If this future is dropped (client went away) or times out, `lease` is dropped
        // without being marked clean and the connection is closed, never reused mid-request.
        let work = async {
            match self.config.pooler {
                PoolerMode::None => run_on(&mut lease, &settings, stmts, limits).await,
                PoolerMode::Transaction => {
                    let timeout = self.config.statement_timeout.as_millis().max(1).to_string();
                    crate::pooled::run_on(&mut lease, &settings, &timeout, stmts, limits).await
                }
            }
        };
        match tokio::time::timeout(bound, work).await {
            Ok(r) => r,
            Err(_) => Err(DbError::StatementTimeout),
        }
    }
}

/// A checked-out connection that goes back to the pool only when marked clean.
pub(crate) struct Lease {
    pub(crate) obj: Option<Object<Manager>>,
    pub(crate) clean: bool,
    /// Send a cancel request when discarding: something may still run on the server. Cleared
    /// when the request's exchange completed (behind a pooler a cancel for a client that is
    /// closing is pointless, and PgBouncer 1.18 can crash on it).
    pub(crate) cancel: bool,
    counters: Arc<Counters>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            if self.clean {
                drop(obj);
            } else {
                bump(&self.counters.discarded);
                // Detach from the pool; cancel what may still run, and dropping the PgConn
                // closes the socket, so the server rolls back whatever was open.
                let conn = Object::take(obj);
                if self.cancel {
                    conn.cancel_in_background();
                }
                drop(conn);
            }
        }
    }
}

/// How results are shaped and bounded for one request.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) as_array: bool,
    /// Cap on the bytes of all results of the request together.
    pub(crate) max_bytes: usize,
    /// `int8` and `numeric` as decimal strings.
    pub(crate) numbers_as_strings: bool,
}

/// What one step of the pipeline produced.
pub(crate) enum Out {
    /// A protocol step (BEGIN, a setting, COMMIT) that succeeded.
    Done,
    /// A statement prepared inside the request's transaction (pooler mode).
    Prepared(Statement),
    /// A statement's results.
    Rows(QueryResponse),
    /// A statement that ran, but whose results cannot be returned.
    TooLarge,
    Undecodable(String),
    /// The clean-up step: SQL-`PREPARE`d statements left, and the driver's own statements.
    Cleaned {
        from_sql: i64,
        driver: i64,
    },
}

pub(crate) type Step<'a> = Pin<Box<dyn Future<Output = Result<Out, DbError>> + Send + 'a>>;

/// The request protocol on one connection.
///
/// Round trips: any statement not yet prepared on this connection costs one (then cached);
/// everything else — `BEGIN`, one `set_config` per setting, the statements, and
/// [`FINISH_SQL`] — is written at once and costs one round trip together. The settings run as
/// the unnamed statement, so no user SQL can replace them; the statements are named and
/// cached, and [`FINISH_SQL`]'s check closes a connection whose statements were touched.
/// tokio-postgres sends each request when its future is first polled, in that order, and each
/// carries its own Sync, so a failure in one step makes the following statements fail with
/// 25P02 and turns `COMMIT` into a rollback.
async fn run_on(
    lease: &mut Lease,
    settings: &[(String, String)],
    stmts: &[StatementRef<'_>],
    limits: Limits,
) -> Result<Vec<QueryResponse>, DbError> {
    let Some(conn) = lease.obj.as_deref_mut() else {
        return Err(DbError::DbUnavailable("connection gone".into()));
    };
    // 1. Prepare and convert parameters; nothing has been started on the server yet, so an
    //    error here leaves the connection clean (unless the connection itself failed).
    let mut prepared: Vec<(Statement, Vec<Param>)> = Vec::with_capacity(stmts.len());
    for s in stmts {
        let stmt = match conn.prepare_cached(s.sql).await {
            Ok(stmt) => stmt,
            Err(e) => {
                lease.clean = !e.connection_suspect();
                return Err(e);
            }
        };
        lease.clean = true;
        let params = check_statement(&stmt, s, limits)?;
        prepared.push((stmt, params));
    }
    lease.clean = false;
    let ours = conn.cached_statements();

    // 2. The pipeline.
    let client = &conn.client;
    let budget = std::sync::atomic::AtomicUsize::new(limits.max_bytes);
    let budget = &budget;
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(settings.len() + stmts.len() + 2);
    steps.push(Box::pin(async move {
        client.simple_query("BEGIN").await?;
        Ok(Out::Done)
    }));
    for (name, value) in settings {
        steps.push(Box::pin(async move {
            let params = [(name.as_str(), Type::TEXT), (value.as_str(), Type::TEXT)];
            let stream = client.query_typed_raw(SET_CONFIG_SQL, params).await?;
            let rows: Vec<tokio_postgres::Row> = stream.try_collect().await?;
            // The statement cannot be replaced, but check what is in force anyway.
            match rows.first().map(|r| r.try_get::<_, &str>(0)) {
                Some(Ok(v)) if v == value && rows.len() == 1 => Ok(Out::Done),
                _ => Err(DbError::DbUnavailable(format!(
                    "setting {name} did not take the request's value; the connection is closed"
                ))),
            }
        }));
    }
    for (stmt, params) in &prepared {
        steps.push(Box::pin(run_statement(
            client, stmt, params, limits, budget,
        )));
    }
    steps.push(Box::pin(async move {
        let msgs = client.simple_query(FINISH_SQL).await?;
        let row = msgs.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        });
        let count = |i: usize| {
            row.and_then(|r| r.get(i))
                .and_then(|v| v.parse::<i64>().ok())
        };
        match (count(1), count(2)) {
            (Some(from_sql), Some(driver)) => Ok(Out::Cleaned { from_sql, driver }),
            _ => Err(DbError::DbUnavailable(
                "clean-up check returned no row".into(),
            )),
        }
    }));
    let mut results = join_in_order(steps).await;

    // 3. The connection is reusable only if every protocol step succeeded and the clean-up
    //    found the session as it must be.
    let finished = results
        .pop()
        .unwrap_or(Err(DbError::DbUnavailable("pipeline lost".into())));
    let protocol_ok = results
        .iter()
        .take(1 + settings.len())
        .all(|r| matches!(r, Ok(Out::Done)));
    let committed = match finished {
        Ok(Out::Cleaned { from_sql, driver }) => {
            let theirs = driver - ours;
            let intact = protocol_ok && from_sql == 0 && theirs >= conn.driver_statements;
            if intact {
                conn.driver_statements = theirs;
            } else {
                tracing::warn!(
                    from_sql,
                    missing = conn.driver_statements - theirs,
                    "a request changed the connection's prepared statements or protocol steps; \
                     the connection is closed"
                );
            }
            lease.clean = intact;
            Ok(())
        }
        Ok(_) => Err(DbError::DbUnavailable("pipeline out of order".into())),
        Err(e) => Err(e),
    };
    let mut evicted = Vec::new();
    let out = assemble(
        &mut lease.clean,
        results,
        1 + settings.len(),
        stmts,
        committed,
        limits,
        &mut evicted,
    );
    for sql in evicted {
        conn.evict(sql);
    }
    if lease.clean {
        conn.last_used = Instant::now();
    }
    out
}

/// Turns the outcomes of the pipeline's steps (without the final clean-up step) into the
/// request's result: the statements' responses, or the first error, with what it means for
/// the transaction. A step that shows the connection broken or tampered with clears `clean`;
/// statements whose SQL failed on the server are listed in `evicted`.
pub(crate) fn assemble<'s>(
    clean: &mut bool,
    results: Vec<Result<Out, DbError>>,
    protocol_steps: usize,
    stmts: &[StatementRef<'s>],
    committed: Result<(), DbError>,
    limits: Limits,
    evicted: &mut Vec<&'s str>,
) -> Result<Vec<QueryResponse>, DbError> {
    let mut responses = Vec::with_capacity(stmts.len());
    let mut first_err = None;
    let mut server_failed = false;
    let mut undeliverable = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(Out::Rows(resp)) => responses.push(resp),
            Ok(Out::TooLarge) => {
                undeliverable.get_or_insert(None);
            }
            Ok(Out::Undecodable(column)) => {
                undeliverable.get_or_insert(Some(column));
            }
            Ok(Out::Done | Out::Cleaned { .. } | Out::Prepared(_)) => {}
            Err(e) => {
                // A step that shows the connection broken or its statements tampered with
                // (26000) closes it, whatever the clean-up said.
                if e.connection_suspect() {
                    *clean = false;
                }
                server_failed |= e.server().is_some() || e.sqlstate().is_some();
                if first_err.is_none() {
                    // Steps before the statements are BEGIN and the settings.
                    if let Some(s) = i.checked_sub(protocol_steps).and_then(|k| stmts.get(k)) {
                        if matches!(e, DbError::Sql(_)) {
                            evicted.push(s.sql);
                        }
                    }
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        // A statement whose reply the driver could not read (COPY ... TO STDOUT, a failing
        // type lookup) is not a server error: if nothing failed on the server, the
        // transaction committed, and the caller must know that before retrying a write.
        if !server_failed && committed.is_ok() && matches!(e, DbError::DbUnavailable(_)) {
            return Err(DbError::ResultUndecodable {
                what: format!("the reply to a statement ({e})"),
                committed: true,
            });
        }
        return Err(e);
    }
    // All statements succeeded; a failing COMMIT (deferred constraint, serialization) means
    // nothing was committed.
    committed?;
    match undeliverable {
        None => Ok(responses),
        Some(None) => Err(DbError::ResultTooLarge {
            limit: limits.max_bytes,
            committed: true,
        }),
        Some(Some(column)) => Err(DbError::ResultUndecodable {
            what: format!("a value of column {column:?}"),
            committed: true,
        }),
    }
}

/// Refuses what cannot be run or returned (undescribed rows, unsupported column types,
/// duplicate names in object rows) and converts the parameters to the statement's types.
pub(crate) fn check_statement(
    stmt: &Statement,
    s: &StatementRef<'_>,
    limits: Limits,
) -> Result<Vec<Param>, DbError> {
    if stmt.columns().is_empty() && returns_undescribed_rows(s.sql) {
        return Err(DbError::InvalidRequest(
            "FETCH and EXECUTE return rows whose columns the server does not describe in \
             advance, so Hearth cannot return them: select from the query directly"
                .into(),
        ));
    }
    if let Some(col) = stmt
        .columns()
        .iter()
        .find(|c| !values::supported(c.type_()))
    {
        return Err(DbError::UnsupportedType {
            column: col.name().to_owned(),
            type_name: col.type_().name().to_owned(),
        });
    }
    if !limits.as_array {
        check_unique_names(stmt)?;
    }
    params::convert_all(s.params, stmt.params())
}

/// Whether a statement the server describes as returning no rows may return some anyway:
/// `FETCH` from a cursor and `EXECUTE` of a SQL-prepared statement, whose rows would reach the
/// client without a description. Decided on the first keyword after whitespace and comments.
pub(crate) fn returns_undescribed_rows(sql: &str) -> bool {
    let (word, _) = next_word(sql);
    word.eq_ignore_ascii_case("fetch") || word.eq_ignore_ascii_case("execute")
}

/// The next keyword of `sql` after whitespace and comments (`--` and nested `/* */`, as
/// PostgreSQL reads them), and the text after it. The extended protocol takes one statement
/// per message, so the first keyword says what kind of statement it is.
pub(crate) fn next_word(sql: &str) -> (String, &str) {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            // PostgreSQL ends a `--` comment at either newline character (`[\n\r]` in its
            // scanner): "--\rCOMMIT" is a COMMIT.
            rest = r.split_once(['\n', '\r']).map_or("", |(_, after)| after);
        } else if rest.starts_with("/*") {
            let mut depth = 0usize;
            let mut end = rest.len();
            let bytes = rest.as_bytes();
            let mut i = 0;
            while i + 1 < bytes.len() {
                match (bytes[i], bytes[i + 1]) {
                    (b'/', b'*') => {
                        depth += 1;
                        i += 2;
                    }
                    (b'*', b'/') => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => i += 1,
                }
            }
            rest = rest.get(end..).unwrap_or("");
        } else {
            break;
        }
    }
    let len = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    (rest[..len].to_owned(), &rest[len..])
}

/// Object rows need distinct column names; refused before anything runs.
fn check_unique_names(stmt: &Statement) -> Result<(), DbError> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, col) in stmt.columns().iter().enumerate() {
        if let Some(first) = seen.insert(col.name(), i + 1) {
            return Err(DbError::DuplicateColumn {
                name: col.name().to_owned(),
                first,
                second: i + 1,
            });
        }
    }
    Ok(())
}

/// Runs one statement and converts its rows as they arrive. Once the request's byte budget is
/// spent, or a value cannot be converted, the rows are still read (the server sends them
/// anyway, and the protocol must reach its end) but dropped at once, never buffered.
pub(crate) async fn run_statement(
    client: &tokio_postgres::Client,
    stmt: &Statement,
    params: &[Param],
    limits: Limits,
    budget: &std::sync::atomic::AtomicUsize,
) -> Result<Out, DbError> {
    let stream = client.query_raw(stmt, params.iter()).await?;
    let mut stream = pin!(stream);
    let mut rows = Vec::new();
    let mut failed: Option<Out> = None;
    while let Some(row) = stream.try_next().await? {
        if failed.is_some() {
            continue;
        }
        let size = values::row_size(&row);
        let left = budget.load(Ordering::Relaxed);
        if size > left {
            budget.store(0, Ordering::Relaxed);
            rows = Vec::new();
            failed = Some(Out::TooLarge);
            continue;
        }
        budget.store(left - size, Ordering::Relaxed);
        match values::row_to_json(&row, limits.as_array, limits.numbers_as_strings) {
            Ok(v) => rows.push(v),
            Err(column) => {
                rows = Vec::new();
                failed = Some(Out::Undecodable(column));
            }
        }
    }
    if let Some(f) = failed {
        return Ok(f);
    }
    let row_count = stream.rows_affected().unwrap_or(rows.len() as u64);
    Ok(Out::Rows(QueryResponse {
        columns: stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                type_name: c.type_().name().to_owned(),
            })
            .collect(),
        rows,
        row_count,
    }))
}

/// Polls every future in index order until all are done. Unlike `join_all`, the order of
/// first polls is guaranteed, which is the order tokio-postgres writes the requests in.
pub(crate) async fn join_in_order<T>(
    mut futs: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>,
) -> Vec<T> {
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

#[cfg(test)]
mod tests {
    use super::returns_undescribed_rows;

    #[test]
    fn undescribed_row_statements() {
        for yes in [
            "FETCH ALL FROM c",
            "  fetch 10 c",
            "-- a comment\nEXECUTE p(1)",
            "/* a /* nested */ comment */ Fetch c",
            "-- a comment\rFETCH ALL FROM c",
            "--\r\nexecute p",
        ] {
            assert!(returns_undescribed_rows(yes), "{yes}");
        }
        for no in [
            "SELECT 1",
            "fetched",
            "INSERT INTO t VALUES (1)",
            "/* unterminated",
            "",
        ] {
            assert!(!returns_undescribed_rows(no), "{no}");
        }
    }
}
