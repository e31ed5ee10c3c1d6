//! One RLS-scoped single-row SELECT, four ways, against the same Postgres:
//!
//! - through Hearth (`POST /v1/db/query`, keep-alive HTTP, its warm pool, pipelined);
//! - connect per invocation: a new tokio-postgres connection (SCRAM) every time, then
//!   `BEGIN; SELECT set_config(..); SELECT ..; COMMIT` as a function without a pool would;
//! - an in-process pool: hearth-db's `Db` used as a library (Hearth minus the HTTP hop);
//! - PgBouncer in transaction mode: a warm client connection to it (as a function that keeps
//!   its connection across invocations), and connect-per-invocation to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use hearth::wire::QueryRequest;
use hearth_db::{Db, DbConfig, DbCredentials, StaticCredentials, TlsMode};
use hearth_tests::hearth::TOKEN;
use serde_json::{json, Value};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::client::Http;
use crate::floor::Floor;
use crate::load::{self, Load};
use crate::peers::{row_id, Peers, DB, DB_PASSWORD, DB_USER, QUERY, TENANT};
use crate::report::{Comparison, Row};
use crate::stats::{measure, Budget};

async fn connect(conn: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The RLS-scoped request on a plain client, with statements prepared by the driver (what
/// most function code does).
async fn scoped_select(c: &mut Client, id: i64) -> Result<(), String> {
    let tx = c.transaction().await.map_err(|e| format!("BEGIN: {e}"))?;
    tx.query("SELECT set_config('app.tenant_id', $1, true)", &[&TENANT])
        .await
        .map_err(|e| format!("set_config: {e}"))?;
    let rows = tx
        .query(QUERY, &[&id])
        .await
        .map_err(|e| format!("SELECT: {e}"))?;
    tx.commit().await.map_err(|e| format!("COMMIT: {e}"))?;
    one_row(rows.len())
}

/// The same with unnamed statements (`query_typed`): the only form PgBouncer 1.18's
/// transaction mode can carry, since a named prepared statement may land on another server
/// connection.
async fn scoped_select_unnamed(c: &mut Client, id: i64) -> Result<(), String> {
    let tx = c.transaction().await.map_err(|e| format!("BEGIN: {e}"))?;
    tx.query_typed(
        "SELECT set_config('app.tenant_id', $1, true)",
        &[(&TENANT, Type::TEXT)],
    )
    .await
    .map_err(|e| format!("set_config: {e}"))?;
    let rows = tx
        .query_typed(QUERY, &[(&id, Type::INT8)])
        .await
        .map_err(|e| format!("SELECT: {e}"))?;
    tx.commit().await.map_err(|e| format!("COMMIT: {e}"))?;
    one_row(rows.len())
}

fn one_row(n: usize) -> Result<(), String> {
    if n == 1 {
        Ok(())
    } else {
        Err(format!("expected 1 row under RLS, got {n}"))
    }
}

fn query_json(i: usize) -> Value {
    json!({"sql": QUERY, "params": [row_id(i)], "tenant": TENANT})
}

fn query_body(i: usize) -> Bytes {
    Bytes::from(query_json(i).to_string())
}

/// One request of the RLS protocol on a warm raw connection, every step written at once (one
/// round trip): `BEGIN`, the tenant setting, the statement, then `finish`. `named` runs the
/// setting and the statement as driver-prepared named statements (what Hearth did before the
/// isolation work), else as the unnamed statement (what it does now).
async fn protocol_once(
    c: &Client,
    stmts: &(tokio_postgres::Statement, tokio_postgres::Statement),
    (named_set, named_query): (bool, bool),
    finish: &[&str],
    id: i64,
) -> Result<(), String> {
    use futures::future::{join, join_all};
    let begin = c.simple_query("BEGIN");
    let set = async {
        if named_set {
            c.query(&stmts.0, &[&TENANT]).await
        } else {
            c.query_typed(
                hearth_db::SET_CONFIG_SQL,
                &[(&"app.tenant_id", Type::TEXT), (&TENANT, Type::TEXT)],
            )
            .await
        }
    };
    let query = async {
        if named_query {
            c.query(&stmts.1, &[&id]).await
        } else {
            c.query_typed(QUERY, &[(&id, Type::INT8)]).await
        }
    };
    let work = async {
        let (a, b) = join(set, query).await;
        a.and(b)
    };
    let finish = join_all(finish.iter().map(|sql| c.simple_query(sql)));
    let (b, rows, f) = futures::future::join3(begin, work, finish).await;
    b.map_err(|e| format!("BEGIN: {e}"))?;
    let rows = rows.map_err(|e| format!("statement: {e}"))?;
    for r in f {
        r.map_err(|e| format!("finish: {e}"))?;
    }
    one_row(rows.len())
}

/// What the isolation protocol costs per request, on one warm raw connection with no HTTP and
/// no JSON: the steps Hearth ran before (named statements, `COMMIT; RESET ALL; RESET ROLE`)
/// against what it runs now (unnamed statements, `COMMIT`, then the full session clean-up),
/// and each change alone.
pub async fn protocol(p: &Peers, quick: bool) -> Result<Comparison, String> {
    let scale = if quick { 20 } else { 1 };
    let budget = Budget::new(500, 20_000, 10).scaled(scale);
    let c = connect(&p.pg_conn()).await?;
    let stmts = (
        c.prepare("SELECT set_config('app.tenant_id', $1, true)")
            .await
            .map_err(|e| format!("prepare: {e}"))?,
        c.prepare(QUERY)
            .await
            .map_err(|e| format!("prepare: {e}"))?,
    );
    let old_finish: &[&str] = &["COMMIT; RESET ALL; RESET ROLE"];
    let finish: &[&str] = &[hearth_db::FINISH_SQL];
    let mut rows = Vec::new();
    // (label, (set_config named, statement named), finish, note)
    type Case<'a> = (&'a str, (bool, bool), &'a [&'a str], &'a str);
    let plan: [Case<'_>; 4] = [
        (
            "before: named statements, COMMIT; RESET ALL; RESET ROLE",
            (true, true),
            old_finish,
            "the protocol before the isolation work",
        ),
        (
            "now: unnamed set_config, named statement, FINISH_SQL",
            (false, true),
            finish,
            "Hearth's protocol: clean-up and check in the COMMIT message",
        ),
        (
            "alternative: unnamed set_config and statement, FINISH_SQL",
            (false, false),
            finish,
            "no named statement of Hearth's at all: the statement is parsed and planned every time",
        ),
        (
            "alternative: named set_config and statement, FINISH_SQL",
            (true, true),
            finish,
            "cheapest, but the protocol step becomes replaceable (then caught by the check)",
        ),
    ];
    let mut keep = Vec::new();
    for pass in 0..2 {
        if pass == 1 {
            // The check reads pg_prepared_statements: its cost grows with the statements a
            // connection has cached.
            for i in 0..120 {
                let sql = format!("SELECT id, body FROM notes WHERE id = $1 AND {i} = {i}");
                keep.push(c.prepare(&sql).await.map_err(|e| format!("prepare: {e}"))?);
            }
        }
        for (label, modes, finish, note) in plan.iter().take(if pass == 0 { 4 } else { 2 }) {
            let mut st = &c;
            let stmts = &stmts;
            let s = measure(budget, &mut st, |c, i| {
                Box::pin(protocol_once(c, stmts, *modes, finish, row_id(i)))
            })
            .await?;
            let label = if pass == 0 {
                (*label).to_owned()
            } else {
                format!("{label}, 120 more statements cached")
            };
            rows.push(Row::new(label, s, *note));
        }
    }
    drop(keep);
    Ok(Comparison {
        id: "rls_protocol".into(),
        title: "What tenant isolation costs per request (raw connection, one round trip, no HTTP)".into(),
        baseline: 0,
        rows,
        notes: vec![format!(
            "One warm tokio-postgres connection to the same Postgres, `{QUERY}` as tenant `{TENANT}`, every step of a request written at once. The clean-up is `hearth_db::FINISH_SQL`: {}",
            hearth_db::FINISH_SQL
        )],
    })
}

/// Runs the comparison.
pub async fn run(p: &Peers, quick: bool) -> Result<Comparison, String> {
    let scale = if quick { 20 } else { 1 };
    let warm = Budget::new(200, 10_000, 10).scaled(scale);
    let cold = Budget::new(5, 300, 10).scaled(scale);

    // Hearth.
    let mut http = Http::connect(p.hearth.port, Some(TOKEN)).await?;
    let check = http.post_ok("/v1/db/query", query_body(0)).await?;
    let v: Value = serde_json::from_slice(&check).map_err(|e| e.to_string())?;
    if v["rowCount"] != json!(1) {
        return Err(format!("Hearth's query returned {v}"));
    }
    drop(http);
    // wrk, one connection, cycling through 100 row ids of the tenant (the body is checked
    // above; wrk fails the run on any status ≥ 400).
    let secs = if quick { 2 } else { 5 };
    let bodies: Vec<Value> = (0..100).map(query_json).collect();
    let load = Load::post(p.hearth.port, "/v1/db/query", &bodies[0])
        .cycling(bodies[1..].to_vec())
        .token(TOKEN)
        .with(1, secs);
    let hearth = load::run(&load, || {}).await?;
    let floor = Floor::start(check.clone())?;
    let floor_s = load::run(&load.on(floor.port), || {}).await?;
    drop(floor);

    // Hearth behind PgBouncer in transaction mode (HEARTH_DB_POOLER=transaction).
    let mut http = Http::connect(p.hearth_pooled.port, Some(TOKEN)).await?;
    let check = http.post_ok("/v1/db/query", query_body(0)).await?;
    let v: Value = serde_json::from_slice(&check).map_err(|e| e.to_string())?;
    if v["rowCount"] != json!(1) {
        return Err(format!("Hearth behind PgBouncer returned {v}"));
    }
    drop(http);
    let hearth_pooled = load::run(&load.on(p.hearth_pooled.port), || {}).await?;

    // Connect per invocation (SCRAM each time).
    let conn = p.pg_conn();
    let mut st = conn.clone();
    let per_invocation = measure(cold, &mut st, |conn, i| {
        Box::pin(async move {
            let mut c = connect(conn).await?;
            scoped_select(&mut c, row_id(i)).await
        })
    })
    .await?;

    // In-process pool: hearth-db as a library, same protocol as Hearth, no HTTP.
    let mut cfg = DbConfig::new(TlsMode::Disable);
    cfg.verify_idle_after = std::time::Duration::from_secs(5);
    let creds = StaticCredentials::new(DbCredentials {
        host: "127.0.0.1".into(),
        port: p.pg.port(),
        dbname: DB.into(),
        username: DB_USER.into(),
        password: DB_PASSWORD.into(),
    });
    let db = Db::new(cfg, Arc::new(creds)).map_err(|e| format!("hearth-db: {e}"))?;
    db.warm()
        .await
        .map_err(|e| format!("hearth-db warm: {e}"))?;
    let mut db_state = db;
    let pool = measure(warm, &mut db_state, |db, i| {
        let req = QueryRequest {
            sql: QUERY.into(),
            params: vec![json!(row_id(i))],
            tenant: Some(TENANT.into()),
            context: BTreeMap::new(),
            row_mode: None,
            numbers: None,
        };
        Box::pin(async move {
            let r = db
                .query(&req)
                .await
                .map_err(|e| format!("hearth-db: {e}"))?;
            one_row(r.rows.len())
        })
    })
    .await?;
    db_state.close();

    // PgBouncer, warm client connection.
    let mut c = connect(&p.bouncer_conn()).await?;
    let bouncer_warm = measure(warm, &mut c, |c, i| {
        Box::pin(async move { scoped_select_unnamed(c, row_id(i)).await })
    })
    .await?;
    drop(c);

    // PgBouncer, connect per invocation.
    let mut st = p.bouncer_conn();
    let bouncer_cold = measure(cold, &mut st, |conn, i| {
        Box::pin(async move {
            let mut c = connect(conn).await?;
            scoped_select_unnamed(&mut c, row_id(i)).await
        })
    })
    .await?;

    Ok(Comparison {
        id: "rls_select".into(),
        title: "RLS-scoped single-row SELECT: Hearth vs connect-per-invocation vs in-process pool vs PgBouncer".into(),
        baseline: 1,
        rows: vec![
            Row::new("Hearth (POST /v1/db/query, wrk, keep-alive HTTP)", hearth, "BEGIN, set_config, SELECT, COMMIT with the session clean-up and check, pipelined on a warm pooled connection"),
            Row::new("connect per invocation (tokio-postgres, SCRAM)", per_invocation, "new connection + SCRAM every time; BEGIN, set_config, SELECT, COMMIT (driver-prepared)"),
            Row::new("in-process pool (hearth-db `Db` as a library)", pool, "Hearth's pool and protocol without the HTTP hop"),
            Row::new("PgBouncer transaction mode, warm client connection", bouncer_warm, "BEGIN, set_config, SELECT, COMMIT as 4 round trips, unnamed statements"),
            Row::new("PgBouncer transaction mode, connect per invocation", bouncer_cold, "SCRAM to PgBouncer every time, then as above"),
            Row::new("Hearth → PgBouncer (transaction) → Postgres", hearth_pooled, "HEARTH_DB_POOLER=transaction: BEGIN, timeout and tenant set_config, statement prepared inside the transaction (round trip 1); execute, COMMIT and the clean-up block (round trip 2)"),
            Row::new("trivial hyper server, same request and response bytes", floor_s, "wrk's floor for the two Hearth rows"),
        ],
        notes: vec![format!(
            "Hearth rows: wrk -t1 -c1 cycling through 100 row ids (HTTP, JSON in and out); the other rows are timed in this process per call. Same Postgres, same table (1,000 rows, ENABLE + FORCE ROW LEVEL SECURITY), same query `{QUERY}` as tenant `{TENANT}`, always one row. PgBouncer: pool_mode=transaction, default_pool_size=4, SCRAM on both sides."
        )],
    })
}
