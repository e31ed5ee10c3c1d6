//! The request protocol behind a transaction-mode pooler (`HEARTH_DB_POOLER=transaction`:
//! PgBouncer `pool_mode = transaction`, RDS Proxy).
//!
//! A transaction pooler hands each transaction of a client connection to whichever server
//! connection is free, and takes it back when the server reports the session idle (a
//! `ReadyForQuery` with status `I`). So nothing may outlive the request's transaction, and the
//! request must stay inside one transaction from `BEGIN` to the clean-up:
//!
//! ```text
//! round trip 1: BEGIN                                        -- simple query
//!               SELECT pg_catalog.set_config('statement_timeout', $1, true)   -- unnamed
//!               SELECT pg_catalog.set_config($1, $2, true)   -- tenant, allow-listed settings
//!               Parse/Describe of each statement             -- named, inside the transaction
//! round trip 2: Bind/Execute of each statement
//!               SELECT pg_catalog.set_config('statement_timeout', $1, false)  -- see below
//!               FINISH_POOLED_SQL                            -- simple query: see below
//! (only when the transaction had failed)
//!               FINISH_POOLED_ABORTED_SQL                    -- ROLLBACK, clean-up
//! ```
//!
//! - No startup `options` (poolers refuse them): `statement_timeout` is set
//!   transaction-locally in the first round trip.
//! - Statements are prepared inside the transaction, on the server connection that runs them,
//!   and `DEALLOCATE ALL` in the clean-up removes them, so no named statement outlives the
//!   transaction (no "prepared statement does not exist" on the next server connection). The
//!   driver's type cache is cleared before every request for the same reason: its type lookups
//!   are named statements too. The price is the second round trip.
//! - SQL that would end the transaction early (`COMMIT`, `END`, `ROLLBACK` except
//!   `ROLLBACK TO`, `ABORT`, `PREPARE TRANSACTION`) is refused before anything is sent: after
//!   it the pooler could run the rest of the request, clean-up included, on another server
//!   connection and leave the first one with the request's session state. Procedures and `DO`
//!   blocks cannot end a transaction block, so the first keyword is enough.
//! - [`FINISH_POOLED_SQL`] is one query string, so the pooler sends all of it to the server
//!   connection that ran the request: inside the transaction, what a rollback would not undo
//!   (session advisory locks, SQL-prepared statements, sequence state), so that a `COMMIT`
//!   that fails (deferred constraint, serialization failure) leaves nothing behind; then
//!   `COMMIT`; then the whole clean-up; then the check that no prepared statement is left.
//!   When the transaction had failed, its first step fails with 25P02, the server connection
//!   is still in the transaction (the pooler keeps it for Hearth), and
//!   [`FINISH_POOLED_ABORTED_SQL`] rolls back and cleans up the same way.
//! - The clean-up steps run in anonymous blocks (`DO`): AWS documents that RDS Proxy does not
//!   track session state changed inside functions and procedures, while plain
//!   `SET`/`RESET`/`DISCARD`/`DEALLOCATE` statements would pin every client connection.
//! - If the clean-up block fails or is cancelled, or finds a prepared statement left, the
//!   server connection terminates itself (`pg_terminate_backend(pg_backend_pid())` in the
//!   block's exception handler) before it reports being idle: the pooler never hands a dirty
//!   server connection to anyone. Closing Hearth's client connection would not be enough
//!   (the pooler keeps idle server connections), but for a server connection still inside a
//!   transaction it is: PgBouncer closes a server connection whose client left mid-transaction.
//! - A hostile `SET statement_timeout = 1` committed with the request would cancel the
//!   clean-up (and so terminate the server connection, a denial of service to itself); so
//!   before `COMMIT` the request's own timeout is set at session level (when the transaction
//!   had failed that step fails too, but then the rollback undoes every `SET` of the
//!   request), and the clean-up's `RESET ALL` returns it to the server's default.
//! - Other doubts (a failed protocol step, a timeout, a broken reply) close Hearth's client
//!   connection: the clean-up already ran on the server connection.

use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use futures_util::TryStreamExt as _;
use hearth::wire::QueryResponse;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use crate::db::{
    assemble, check_statement, join_in_order, next_word, run_statement, Lease, Limits, Out,
    StatementRef, Step, SET_CONFIG_SQL,
};
use crate::error::DbError;

/// Sets the statement timeout for the session (see the module docs), unnamed.
const SESSION_TIMEOUT_SQL: &str = "SELECT pg_catalog.set_config('statement_timeout', $1, false)";

/// The session clean-up: what `DISCARD ALL` does but `DISCARD PLANS` (which cannot run in a
/// block and holds no data), in one anonymous block inside an explicit transaction, then the
/// check that no prepared statement is left, then `COMMIT`. Should anything fail, the server
/// connection is left inside a failed transaction, which a pooler does not hand to another
/// client (PgBouncer closes it when Hearth drops its connection); and if the block itself
/// fails or is cancelled, or finds a prepared statement left, the server connection also
/// terminates itself first (as its own role again: a role may end its own sessions).
macro_rules! cleanup_block {
    () => {
        "BEGIN; DO $hearth$BEGIN \
         EXECUTE 'SET SESSION AUTHORIZATION DEFAULT'; EXECUTE 'RESET ALL'; \
         EXECUTE 'RESET ROLE'; EXECUTE 'CLOSE ALL'; EXECUTE 'UNLISTEN *'; \
         EXECUTE 'DISCARD TEMP'; EXECUTE 'DISCARD SEQUENCES'; EXECUTE 'DEALLOCATE ALL'; \
         PERFORM pg_catalog.pg_advisory_unlock_all(); \
         IF EXISTS (SELECT FROM pg_catalog.pg_prepared_statements) THEN \
           RAISE EXCEPTION 'prepared statements left'; \
         END IF; \
         EXCEPTION WHEN OTHERS OR query_canceled THEN \
           EXECUTE 'RESET ROLE'; \
           PERFORM pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid()); \
           RAISE; \
         END$hearth$; \
         SELECT true, pg_catalog.count(*) FILTER (WHERE from_sql), \
                pg_catalog.count(*) FILTER (WHERE NOT from_sql) \
         FROM pg_catalog.pg_prepared_statements; \
         COMMIT"
    };
}

/// Ends every request behind a transaction pooler, in one query string (the pooler keeps the
/// server connection for all of it):
///
/// 1. inside the request's transaction, first what would run user code during `COMMIT`
///    (deferred constraint triggers are fired now by `SET CONSTRAINTS ALL IMMEDIATE`, and
///    cursors are closed so that no `WITH HOLD` query is materialised by `COMMIT`: either
///    could take a session lock and then fail the `COMMIT`, which skips the clean-up), then
///    what a rollback would not undo — session advisory locks, SQL-prepared statements,
///    sequence state — so that a `COMMIT` that fails (a deferred constraint, a serialization
///    failure) leaves nothing: everything else the request did is rolled back with it;
/// 2. `COMMIT`;
/// 3. the full clean-up and the check, in a transaction of their own (see `cleanup_block!`).
///
/// When the transaction had already failed, step 1 fails with 25P02 and the rest is skipped;
/// the server connection is still in the transaction (so the pooler keeps it for Hearth) and
/// [`FINISH_POOLED_ABORTED_SQL`] follows.
pub const FINISH_POOLED_SQL: &str = concat!(
    "DO $hearth_pre$BEGIN EXECUTE 'SET CONSTRAINTS ALL IMMEDIATE'; EXECUTE 'CLOSE ALL'; \
     PERFORM pg_catalog.pg_advisory_unlock_all(); \
     EXECUTE 'DEALLOCATE ALL'; EXECUTE 'DISCARD SEQUENCES'; END$hearth_pre$; COMMIT; ",
    cleanup_block!()
);

/// Ends a request whose transaction had failed: `ROLLBACK` (which undoes every `SET` of the
/// request), then the clean-up block and the check.
pub const FINISH_POOLED_ABORTED_SQL: &str = concat!("ROLLBACK; ", cleanup_block!());

/// Whether `sql` would end the transaction it runs in.
pub(crate) fn ends_transaction(sql: &str) -> bool {
    let (first, rest) = next_word(sql);
    let first = first.to_ascii_uppercase();
    match first.as_str() {
        "COMMIT" | "END" | "ABORT" => true,
        "ROLLBACK" => {
            // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name keeps the transaction open.
            let (second, rest) = next_word(rest);
            let second = second.to_ascii_uppercase();
            let third = if second == "WORK" || second == "TRANSACTION" {
                next_word(rest).0.to_ascii_uppercase()
            } else {
                second
            };
            third != "TO"
        }
        "PREPARE" => next_word(rest).0.eq_ignore_ascii_case("transaction"),
        _ => false,
    }
}

fn set_config_step<'a>(
    client: &'a Client,
    sql: &'static str,
    params: Vec<(&'a str, Type)>,
    expect: Option<&'a str>,
) -> Step<'a> {
    Box::pin(async move {
        let stream = client.query_typed_raw(sql, params).await?;
        let rows: Vec<tokio_postgres::Row> = stream.try_collect().await?;
        match (rows.first().map(|r| r.try_get::<_, &str>(0)), expect) {
            (Some(Ok(_)), None) if rows.len() == 1 => Ok(Out::Done),
            (Some(Ok(v)), Some(want)) if v == want && rows.len() == 1 => Ok(Out::Done),
            _ => Err(DbError::DbUnavailable(
                "a setting did not take the request's value; the connection is closed".into(),
            )),
        }
    })
}

fn finish_step(client: &Client) -> Step<'_> {
    Box::pin(async move {
        let msgs = match client.simple_query(FINISH_POOLED_SQL).await {
            Ok(msgs) => msgs,
            // The transaction had failed: the server connection is still Hearth's.
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => client
                .simple_query(FINISH_POOLED_ABORTED_SQL)
                .await
                .map_err(cleanup_error)?,
            Err(e) => return Err(cleanup_error(e)),
        };
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
    })
}

/// The request's error for a failed end of request: a failing `COMMIT` is the request's own
/// outcome (a deferred constraint, a serialization failure) and keeps its SQLSTATE; a failure
/// inside Hearth's clean-up blocks is not the caller's, and says so — except a deferred
/// constraint or trigger that `SET CONSTRAINTS ALL IMMEDIATE` fired there, which is.
fn cleanup_error(e: tokio_postgres::Error) -> DbError {
    let in_block = e
        .as_db_error()
        .and_then(|d| d.where_())
        .is_some_and(|w| w.contains("inline_code_block") && !w.contains("SET CONSTRAINTS ALL"));
    match e.code() {
        Some(code) if in_block => DbError::DbUnavailable(format!(
            "the session clean-up after the request failed (SQLSTATE {}); the transaction was \
             not committed and the connection is closed",
            code.code()
        )),
        _ => e.into(),
    }
}

/// Whether the clean-up ran and left no prepared statement.
fn cleaned(r: &Result<Out, DbError>) -> bool {
    matches!(
        r,
        Ok(Out::Cleaned {
            from_sql: 0,
            driver: 0
        })
    )
}

/// Runs one request on `lease` behind a transaction pooler; see the module docs.
pub(crate) async fn run_on(
    lease: &mut Lease,
    settings: &[(String, String)],
    statement_timeout_ms: &str,
    stmts: &[StatementRef<'_>],
    limits: Limits,
) -> Result<Vec<QueryResponse>, DbError> {
    let out = exchange(lease, settings, statement_timeout_ms, stmts, limits).await;
    // The exchange completed: nothing of this request still runs on the server.
    lease.cancel = false;
    out
}

async fn exchange(
    lease: &mut Lease,
    settings: &[(String, String)],
    statement_timeout_ms: &str,
    stmts: &[StatementRef<'_>],
    limits: Limits,
) -> Result<Vec<QueryResponse>, DbError> {
    if stmts.iter().any(|s| ends_transaction(s.sql)) {
        // Nothing was sent: the connection is as clean as before.
        lease.clean = true;
        return Err(DbError::InvalidRequest(
            "COMMIT, END, ROLLBACK (other than ROLLBACK TO a savepoint), ABORT and PREPARE \
             TRANSACTION are refused behind a transaction pooler (HEARTH_DB_POOLER=transaction): \
             every request is one transaction; send the statements as one /v1/db/transaction"
                .into(),
        ));
    }
    let Some(conn) = lease.obj.as_deref_mut() else {
        return Err(DbError::DbUnavailable("connection gone".into()));
    };
    lease.clean = false;
    // The driver's type lookups of an earlier request were prepared on whichever server
    // connection ran it.
    conn.client.clear_type_cache();
    let client = &conn.client;

    // Round trip 1: the transaction, its settings, its server connection, the statements'
    // shapes.
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(2 + settings.len() + stmts.len());
    steps.push(Box::pin(async move {
        client.simple_query("BEGIN").await?;
        Ok(Out::Done)
    }));
    steps.push(set_config_step(
        client,
        "SELECT pg_catalog.set_config('statement_timeout', $1, true)",
        vec![(statement_timeout_ms, Type::TEXT)],
        None,
    ));
    for (name, value) in settings {
        steps.push(set_config_step(
            client,
            SET_CONFIG_SQL,
            vec![(name.as_str(), Type::TEXT), (value.as_str(), Type::TEXT)],
            Some(value.as_str()),
        ));
    }
    for s in stmts {
        steps.push(Box::pin(async move {
            Ok(Out::Prepared(client.prepare(s.sql).await?))
        }));
    }
    let protocol_steps = 2 + settings.len();
    let mut protocol_ok = true;
    let mut prepared: Vec<Statement> = Vec::with_capacity(stmts.len());
    let mut failure: Option<DbError> = None;
    for (i, r) in join_in_order(steps).await.into_iter().enumerate() {
        match r {
            Ok(Out::Done) => {}
            Ok(Out::Prepared(st)) => prepared.push(st),
            Ok(_) => {
                protocol_ok = false;
                failure.get_or_insert(DbError::DbUnavailable("pipeline out of order".into()));
            }
            Err(e) => {
                if i < protocol_steps || e.connection_suspect() {
                    protocol_ok = false;
                }
                failure.get_or_insert(e);
            }
        }
    }
    let mut params = Vec::with_capacity(stmts.len());
    if failure.is_none() {
        for (st, s) in prepared.iter().zip(stmts) {
            match check_statement(st, s, limits) {
                Ok(p) => params.push(p),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    if let Some(e) = failure {
        // End the transaction and clean up before the pooler takes the server connection
        // back. Dropping the statements first closes them inside the transaction.
        drop(prepared);
        let finished = finish_step(client).await;
        let ok = protocol_ok && cleaned(&finished) && !e.connection_suspect();
        lease.clean = ok;
        if ok {
            conn.last_used = Instant::now();
        }
        return Err(e);
    }

    // Round trip 2: the statements, the session timeout, COMMIT and the clean-up.
    let budget = AtomicUsize::new(limits.max_bytes);
    let budget = &budget;
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(stmts.len() + 2);
    for (stmt, params) in prepared.iter().zip(&params) {
        steps.push(Box::pin(run_statement(
            client, stmt, params, limits, budget,
        )));
    }
    steps.push(set_config_step(
        client,
        SESSION_TIMEOUT_SQL,
        vec![(statement_timeout_ms, Type::TEXT)],
        None,
    ));
    steps.push(finish_step(client));
    let mut results = join_in_order(steps).await;
    let finished = results
        .pop()
        .unwrap_or(Err(DbError::DbUnavailable("pipeline lost".into())));
    // The session timeout fails when the transaction already failed; that rolls back what the
    // request set, so its outcome does not matter.
    let _session_timeout = results.pop();
    // The server connection is clean when the clean-up ran on it and found nothing left;
    // Hearth's client connection also needs every protocol step to have succeeded.
    let intact = cleaned(&finished);
    let committed = match finished {
        Ok(Out::Cleaned { .. }) => {
            if !intact {
                tracing::warn!(
                    "the clean-up behind the pooler did not find the session clean; the \
                     connection is closed"
                );
            }
            lease.clean = intact && protocol_ok;
            Ok(())
        }
        Ok(_) => Err(DbError::DbUnavailable("pipeline out of order".into())),
        Err(e) => Err(e),
    };
    let mut evicted = Vec::new();
    let out = assemble(
        &mut lease.clean,
        results,
        0,
        stmts,
        committed,
        limits,
        &mut evicted,
    );
    drop(prepared);
    if lease.clean {
        conn.last_used = Instant::now();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ends_transaction;

    #[test]
    fn statements_that_end_the_transaction() {
        for yes in [
            "COMMIT",
            "commit and chain",
            "  -- c\nEND",
            "/* x */ ROLLBACK",
            "rollback work",
            "ROLLBACK TRANSACTION AND CHAIN",
            "abort",
            "PREPARE TRANSACTION 'x'",
            "prepare  /* */ transaction 'x'",
            "COMMIT PREPARED 'x'",
            "--\rCOMMIT",
            "-- x\rEND",
            "ROLLBACK --\r AND CHAIN",
        ] {
            assert!(ends_transaction(yes), "{yes}");
        }
        for no in [
            "ROLLBACK TO s1",
            "rollback to savepoint s1",
            "ROLLBACK WORK TO s1",
            "ROLLBACK TRANSACTION TO SAVEPOINT s1",
            "PREPARE p AS SELECT 1",
            "SAVEPOINT s1",
            "RELEASE s1",
            "SELECT 'COMMIT'",
            "committed",
            "BEGIN",
            "",
        ] {
            assert!(!ends_transaction(no), "{no}");
        }
    }
}
