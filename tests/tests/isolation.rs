//! An attacker's suite: no state of one request reaches the next tenant's request on the same
//! backend. Every test runs the real `hearth` binary against a real PostgreSQL 15 (role `app`
//! with SCRAM, table `items` under ENABLE + FORCE ROW LEVEL SECURITY) with the database secret in
//! moto.
//!
//! Each case: tenant A sends hostile SQL, then tenant B sends requests on the same pool and must
//! see nothing of A. With `HEARTH_DB_POOL_MAX=1` the next request reuses A's backend unless the
//! connection was closed, and both outcomes are accepted: (1) the same backend pid, back at its
//! startup state (compared with a fingerprint B took at the start of the test), or (2) another
//! pid, and then A's backend must be gone from `pg_stat_activity` within a few seconds.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hearth_tests::hearth::{Hearth, Proc, TOKEN};
use hearth_tests::moto::Moto;
use hearth_tests::pgbouncer::PgBouncer;
use hearth_tests::postgres::{ident, literal, PgCluster};
use serde_json::{json, Value};

const DB: &str = "hearth";
const SECRET: &str = "db/app";
const APP_PASSWORD: &str = "pw-app-1";
const A: &str = "tenant-A";
const B: &str = "tenant-B";
/// Tenants of the hammer, besides A and B.
const HAMMER_TENANTS: usize = 20;
/// Seed rows per tenant, named `<tenant>-row-<n>`.
const ROWS_PER_TENANT: usize = 3;
/// Bound on one HTTP request to the extension.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a whole test.
const TEST_BUDGET: Duration = Duration::from_secs(60);
/// How long a closed backend may take to leave `pg_stat_activity`.
const GONE_WITHIN: Duration = Duration::from_secs(5);
const QUERY: &str = "/v1/db/query";
const TX: &str = "/v1/db/transaction";

/// The session fingerprint B takes: everything a request may leave behind on a backend.
const STATE_SQL: &str = "SELECT pg_backend_pid() AS pid, \
     current_user::text AS cur_user, session_user::text AS sess_user, \
     current_setting('role') AS role, \
     current_setting('search_path') AS search_path, \
     current_setting('statement_timeout') AS statement_timeout, \
     coalesce(current_setting('app.user_id', true), '') AS user_id, \
     (SELECT count(*) FROM pg_cursors)::int AS cursors, \
     (SELECT count(*) FROM pg_prepared_statements WHERE from_sql)::int AS prepared, \
     (SELECT count(*) FROM pg_listening_channels())::int AS listening, \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND pid = pg_backend_pid())::int AS advisory_locks, \
     (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())::int AS temp_objects";
/// What a tenant reads: its rows and the tenant context it runs under.
const ROWS_SQL: &str = "SELECT tenant, name, current_setting('app.tenant_id', true) AS ctx \
     FROM items ORDER BY id";
/// Session-level values of the context settings (read outside hearth's transaction).
const SESSION_VALUES_SQL: &str = "SELECT \
     coalesce(current_setting('app.tenant_id', true), '') AS tenant_id, \
     coalesce(current_setting('app.user_id', true), '') AS user_id";
const PID_SQL: &str = "SELECT pg_backend_pid() AS pid";

// ---------------------------------------------------------------------------------------------
// Rig
// ---------------------------------------------------------------------------------------------

/// Runs a test body under [`TEST_BUDGET`].
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BUDGET, f)
        .await
        .expect("the test exceeded its time budget")
}

fn tenant_name(i: usize) -> String {
    format!("t{i:02}")
}

fn seed_names(tenant: &str) -> Vec<String> {
    (1..=ROWS_PER_TENANT)
        .map(|i| format!("{tenant}-row-{i}"))
        .collect()
}

/// A cluster with role `app` owning database `hearth`, the RLS tables `items` and `cards`, a
/// NOLOGIN role `reporting` granted to `app`, an enum type `brand`, and seed rows for A, B and
/// the hammer's tenants.
async fn cluster() -> PgCluster {
    let pg = PgCluster::start();
    pg.create_role("app", APP_PASSWORD).await;
    pg.create_database(DB, "app").await;
    let mut tenants: Vec<String> = (0..HAMMER_TENANTS).map(tenant_name).collect();
    tenants.extend([A.to_string(), B.to_string()]);
    let tenants = tenants
        .iter()
        .map(|t| literal(t))
        .collect::<Vec<_>>()
        .join(",");
    let policy = "tenant = NULLIF(current_setting('app.tenant_id', true), '')";
    let sql = format!(
        "CREATE ROLE reporting NOLOGIN;
         GRANT reporting TO app;
         CREATE TYPE brand AS ENUM ('visa');
         CREATE TABLE items (id bigserial PRIMARY KEY, tenant text, name text);
         CREATE TABLE cards (id bigserial PRIMARY KEY, tenant text, number text,
                             CONSTRAINT cards_number_key UNIQUE (number));
         GRANT SELECT, INSERT, UPDATE, DELETE ON items, cards TO app;
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app;
         ALTER TABLE items ENABLE ROW LEVEL SECURITY;
         ALTER TABLE items FORCE ROW LEVEL SECURITY;
         ALTER TABLE cards ENABLE ROW LEVEL SECURITY;
         ALTER TABLE cards FORCE ROW LEVEL SECURITY;
         CREATE POLICY isolation ON items USING ({policy}) WITH CHECK ({policy});
         CREATE POLICY isolation ON cards USING ({policy}) WITH CHECK ({policy});
         INSERT INTO items (tenant, name)
             SELECT t, t || '-row-' || i
             FROM unnest(ARRAY[{tenants}]) t, generate_series(1, {ROWS_PER_TENANT}) i
             ORDER BY t, i;"
    );
    pg.admin_on(DB).await.batch_execute(&sql).await.unwrap();
    pg
}

/// Starts `hearth` on a free port and waits for `/health`; fails fast (with the extension's
/// output) when the process exits instead, e.g. on an unknown configuration variable.
async fn start_hearth(mut env: Vec<(String, String)>) -> Hearth {
    let port = hearth_tests::free_port();
    env.push(("HEARTH_PORT".into(), port.to_string()));
    env.push(("HEARTH_TOKEN".into(), TOKEN.into()));
    let mut proc = Proc::spawn(&hearth_tests::target_bin("hearth"), &env);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = proc.wait_exit(Duration::from_millis(1)).await {
            panic!(
                "hearth exited ({status}) instead of serving:\n{}",
                proc.output()
            );
        }
        let health = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return Hearth { proc, port, http };
        }
        assert!(
            Instant::now() < deadline,
            "hearth did not become healthy:\n{}",
            proc.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PostgreSQL, moto and hearth, plus B's fingerprint of a fresh session.
struct Rig {
    pg: PgCluster,
    /// PgBouncer between hearth and PostgreSQL, when started with [`Rig::start_pooled`].
    bouncer: Option<PgBouncer>,
    _moto: Moto,
    h: Hearth,
    baseline: Value,
}

impl Rig {
    /// Hearth as `app` with `extra` variables (`HEARTH_DB_POOL_MAX` defaults to 1).
    async fn start(extra: &[(&str, &str)]) -> Rig {
        let pg = cluster().await;
        Rig::start_on(pg, "app", APP_PASSWORD, extra, true).await
    }

    /// Hearth as `app` behind a real PgBouncer in transaction mode with `server_pool`
    /// server connections, with `HEARTH_DB_POOLER=transaction` and `extra` variables.
    async fn start_pooled(server_pool: usize, extra: &[(&str, &str)]) -> Rig {
        let pg = cluster().await;
        let bouncer = PgBouncer::start(&pg, &[("app", APP_PASSWORD)], server_pool);
        let mut extra = extra.to_vec();
        extra.push(("HEARTH_DB_POOLER", "transaction"));
        Rig::start_via(pg, Some(bouncer), "app", APP_PASSWORD, &extra, true).await
    }

    async fn start_on(
        pg: PgCluster,
        user: &str,
        password: &str,
        extra: &[(&str, &str)],
        take_baseline: bool,
    ) -> Rig {
        Rig::start_via(pg, None, user, password, extra, take_baseline).await
    }

    async fn start_via(
        pg: PgCluster,
        bouncer: Option<PgBouncer>,
        user: &str,
        password: &str,
        extra: &[(&str, &str)],
        take_baseline: bool,
    ) -> Rig {
        let moto = Moto::start();
        let (host, port) = match &bouncer {
            Some(b) => (b.host(), b.port()),
            None => (pg.host(), pg.port()),
        };
        let secret = json!({"engine": "postgres", "host": host, "port": port,
                            "dbname": DB, "username": user, "password": password});
        moto.secrets_client()
            .await
            .create_secret()
            .name(SECRET)
            .secret_string(secret.to_string())
            .send()
            .await
            .unwrap();
        let mut env = moto.env();
        env.push(("HEARTH_DB_SECRET_ID".into(), SECRET.into()));
        env.push(("HEARTH_DB_TLS".into(), "disable".into()));
        if !extra.iter().any(|(k, _)| *k == "HEARTH_DB_POOL_MAX") {
            env.push(("HEARTH_DB_POOL_MAX".into(), "1".into()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let h = start_hearth(env).await;
        let mut rig = Rig {
            pg,
            bouncer,
            _moto: moto,
            h,
            baseline: Value::Null,
        };
        if take_baseline {
            let p = rig.probe("baseline", B).await;
            assert_own_rows("baseline", B, &p.rows);
            rig.baseline = p.state;
        }
        rig
    }

    async fn query(&self, tenant: &str, sql: &str, params: Value) -> (u16, Value) {
        self.h
            .post(
                QUERY,
                &json!({"sql": sql, "params": params, "tenant": tenant}),
            )
            .await
    }

    async fn tx(&self, tenant: &str, sqls: &[String]) -> (u16, Value) {
        let statements: Vec<Value> = sqls.iter().map(|s| json!({"sql": s})).collect();
        self.h
            .post(TX, &json!({"tenant": tenant, "statements": statements}))
            .await
    }

    /// The backend pid `tenant`'s next request runs on (with a pool of one: the only one).
    async fn pid(&self, case: &str, tenant: &str) -> i64 {
        let (status, body) = self.query(tenant, PID_SQL, json!([])).await;
        assert_eq!(status, 200, "{case}: pid probe of {tenant} failed: {body}");
        body["rows"][0]["pid"].as_i64().unwrap()
    }

    /// Tenant A's hostile request. Returns the backend pid it ran on: reported by the request
    /// itself (a transaction gets `SELECT pg_backend_pid()` appended) when it succeeded, else
    /// the pid A's request just before it ran on.
    async fn attack(&self, case: &str, hostile: &Hostile) -> (i64, u16, Value) {
        let before = self.pid(case, A).await;
        let (status, body) = match hostile {
            Hostile::Query(sql) => self.query(A, sql, json!([])).await,
            Hostile::Tx(sqls) => {
                let mut sqls = sqls.clone();
                sqls.push(PID_SQL.to_string());
                self.tx(A, &sqls).await
            }
        };
        let reported = match hostile {
            Hostile::Tx(_) if status == 200 => body["results"]
                .as_array()
                .and_then(|r| r.last())
                .and_then(|r| r["rows"][0]["pid"].as_i64()),
            _ => None,
        };
        (reported.unwrap_or(before), status, body)
    }

    /// B's fingerprint and rows, in one transaction.
    async fn probe(&self, case: &str, tenant: &str) -> Probe {
        let (status, body) = self
            .tx(tenant, &[STATE_SQL.to_string(), ROWS_SQL.to_string()])
            .await;
        assert_eq!(
            status,
            200,
            "{case}: {tenant}'s request after the attack failed: {body}\n{}",
            self.bouncer
                .as_ref()
                .map(|b| tail(&b.log()))
                .unwrap_or_default()
        );
        let mut state = body["results"][0]["rows"][0].clone();
        let pid = state["pid"].as_i64().unwrap();
        state.as_object_mut().unwrap().remove("pid");
        let rows = body["results"][1]["rows"].as_array().unwrap().clone();
        Probe { pid, state, rows }
    }

    /// The invariant after A's request on backend `a_pid`: B sees only its own rows under its
    /// own context, its session is at the startup state, and if B is on another backend,
    /// A's backend is gone.
    async fn settle(&self, case: &str, a_pid: i64) {
        let p = self.probe(case, B).await;
        assert_own_rows(case, B, &p.rows);
        assert_eq!(
            p.state, self.baseline,
            "{case}: {B}'s session on backend {} (A's was {a_pid}) is not at the startup state",
            p.pid
        );
        if p.pid != a_pid {
            self.assert_gone(case, a_pid).await;
        }
        self.below_the_transaction(case).await;
    }

    /// B ends hearth's transaction itself: what is underneath, the session-level values, must
    /// be the startup ones, or B's later statements would run under A's tenant. (Refusing
    /// `COMMIT` in user SQL is a fine answer too.)
    async fn below_the_transaction(&self, case: &str) {
        let (status, body) = self
            .tx(
                B,
                &[
                    "COMMIT".to_string(),
                    SESSION_VALUES_SQL.to_string(),
                    "SELECT tenant, name FROM items".to_string(),
                ],
            )
            .await;
        if status != 200 {
            return;
        }
        assert_eq!(
            body["results"][1]["rows"],
            json!([{"tenant_id": "", "user_id": ""}]),
            "{case}: below B's transaction the session still carries A's settings"
        );
        let foreign: Vec<&Value> = body["results"][2]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["tenant"] != B)
            .collect();
        assert!(
            foreign.is_empty(),
            "{case}: after its own COMMIT, B reads other tenants' rows: {foreign:?}"
        );
    }

    /// A's backend must leave `pg_stat_activity` within [`GONE_WITHIN`].
    async fn assert_gone(&self, case: &str, pid: i64) {
        let admin = self.pg.admin().await;
        let pid = i32::try_from(pid).unwrap();
        let deadline = Instant::now() + GONE_WITHIN;
        loop {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .unwrap()
                .get(0);
            if n == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{case}: B runs on another backend, but A's backend {pid} is still open after \
                 {GONE_WITHIN:?}: a closed connection must really be closed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Advisory locks held by `pid` (or by any `app` backend when `None`), polled until none
    /// are left or [`GONE_WITHIN`] passed; returns what is still held.
    async fn advisory_locks(&self, pid: Option<i64>) -> Vec<(i32, i64)> {
        let admin = self.pg.admin().await;
        let deadline = Instant::now() + GONE_WITHIN;
        loop {
            let rows = admin
                .query(
                    "SELECT l.pid, l.objid::int8 FROM pg_locks l \
                     JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND a.usename = 'app' \
                       AND ($1::int8 IS NULL OR l.pid = $1)",
                    &[&pid],
                )
                .await
                .unwrap();
            let held: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            if held.is_empty() || Instant::now() >= deadline {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `n` requests of B that must all succeed and see only B's rows.
    async fn b_keeps_working(&self, case: &str, n: usize) {
        for i in 1..=n {
            let (status, body) = self.query(B, ROWS_SQL, json!([])).await;
            assert_eq!(
                status, 200,
                "{case}: request {i} of {n} of {B} failed (the attack broke the pool): {body}"
            );
            assert_own_rows(case, B, body["rows"].as_array().unwrap());
        }
    }
}

/// Hostile SQL of tenant A: one query, or the statements of one transaction.
#[derive(Clone)]
enum Hostile {
    Query(String),
    Tx(Vec<String>),
}

fn q(sql: &str) -> Hostile {
    Hostile::Query(sql.to_string())
}

fn tx(sqls: &[&str]) -> Hostile {
    Hostile::Tx(sqls.iter().map(|s| s.to_string()).collect())
}

struct Probe {
    pid: i64,
    state: Value,
    rows: Vec<Value>,
}

/// Every row is `tenant`'s and was read under `tenant`'s context, and its seed rows are there.
fn assert_own_rows(case: &str, tenant: &str, rows: &[Value]) {
    let foreign: Vec<&Value> = rows
        .iter()
        .filter(|r| r["tenant"] != tenant || r["ctx"] != tenant)
        .collect();
    assert!(
        foreign.is_empty(),
        "{case}: {tenant} saw rows or a context that are not its own: {foreign:?}"
    );
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    for want in seed_names(tenant) {
        assert!(
            names.contains(&want.as_str()),
            "{case}: {tenant} misses its own row {want}: {rows:?}"
        );
    }
}

/// The last lines of a process's output, for failure messages.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// A failed request that returned nothing of A.
fn assert_refused_without_a(case: &str, status: u16, body: &Value) {
    assert_eq!(
        status, 400,
        "{case}: B's request must fail with 400, got {status}: {body}"
    );
    assert!(
        !body.to_string().contains(A),
        "{case}: B's error carries A's data: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Cursors WITH HOLD
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cursor_with_hold_does_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[]).await;
        for (case, hostile) in [
            (
                "cursor WITH HOLD (transaction)",
                tx(&["DECLARE c CURSOR WITH HOLD FOR SELECT * FROM items"]),
            ),
            (
                "cursor WITH HOLD (query)",
                q("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM items"),
            ),
        ] {
            let (a_pid, ..) = r.attack(case, &hostile).await;
            // Hearth refuses FETCH itself (its rows are undescribed); the cursor must be gone
            // from the session too.
            let (status, body) = r.query(B, "FETCH ALL FROM c", json!([])).await;
            assert_refused_without_a(case, status, &body);
            let (status, body) = r
                .query(B, "SELECT name FROM pg_cursors WHERE name <> ''", json!([]))
                .await;
            assert_eq!(status, 200, "{case}: {body}");
            assert_eq!(body["rows"], json!([]), "{case}: B sees A's cursor: {body}");
            r.settle(case, a_pid).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Temporary tables and views
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn temp_tables_and_views_do_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[]).await;

        let case = "temp table scratch";
        let (a_pid, status, body) = r
            .attack(case, &q("CREATE TEMP TABLE scratch AS SELECT * FROM items"))
            .await;
        assert_eq!(status, 200, "{case}: A's request: {body}");
        let (status, body) = r.query(B, "SELECT * FROM scratch", json!([])).await;
        assert_refused_without_a(case, status, &body);
        r.settle(case, a_pid).await;

        let case = "temp view v";
        let (a_pid, status, body) = r
            .attack(case, &q("CREATE TEMP VIEW v AS SELECT * FROM items"))
            .await;
        assert_eq!(status, 200, "{case}: A's request: {body}");
        let (status, body) = r.query(B, "SELECT * FROM v", json!([])).await;
        assert!(
            !body.to_string().contains(A),
            "{case}: B read A's rows through A's view ({status}): {body}"
        );
        r.settle(case, a_pid).await;

        let case = "temp table shadowing items";
        let (a_pid, status, body) = r
            .attack(
                case,
                &tx(&[
                    "CREATE TEMP TABLE items AS SELECT * FROM public.items",
                    "INSERT INTO items (id, tenant, name) VALUES (0, 'tenant-A', 'planted')",
                ]),
            )
            .await;
        assert_eq!(status, 200, "{case}: A's request: {body}");
        // Fresh SQL text, so neither the driver's nor the server's plan cache hides the shadow.
        let shadow_read = "SELECT tenant, name, current_setting('app.tenant_id', true) AS ctx \
                           FROM items /* shadow check */";
        let (status, body) = r.query(B, shadow_read, json!([])).await;
        assert_eq!(status, 200, "{case}: B's read of items failed: {body}");
        assert_own_rows(case, B, body["rows"].as_array().unwrap());
        r.settle(case, a_pid).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 3. Sequences: lastval() and currval()
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sequence_values_do_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[]).await;
        for (case, probe_sql) in [
            ("lastval()", "SELECT lastval() AS v"),
            ("currval()", "SELECT currval('items_id_seq') AS v"),
        ] {
            let before = r.pid(case, A).await;
            let (status, body) =
                r.h.post(
                    TX,
                    &json!({"tenant": A, "statements": [
                        {"sql": "INSERT INTO items (tenant, name) VALUES ($1, 'x') RETURNING id",
                         "params": [A]},
                        {"sql": PID_SQL}]}),
                )
                .await;
            assert_eq!(status, 200, "{case}: A's insert: {body}");
            let a_id = body["results"][0]["rows"][0]["id"].clone();
            let a_pid = body["results"][1]["rows"][0]["pid"]
                .as_i64()
                .unwrap_or(before);
            let (status, body) = r.query(B, probe_sql, json!([])).await;
            assert_eq!(
                status, 400,
                "{case}: B must not read a sequence value of this session (A inserted id \
                 {a_id}), got {status}: {body}"
            );
            r.settle(case, a_pid).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4. Session advisory locks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn session_advisory_locks_do_not_outlive_the_request() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let case = "advisory lock";
        let (a_pid, status, body) = r
            .attack(case, &q("SELECT 1 AS locked FROM pg_advisory_lock(42)"))
            .await;
        assert_eq!(status, 200, "{case}: A's request: {body}");
        let held = r.advisory_locks(Some(a_pid)).await;
        assert!(
            held.is_empty(),
            "{case}: A's backend {a_pid} still holds advisory locks (pid, key) after its \
             request ended: {held:?}"
        );
        let (status, body) = r
            .query(B, "SELECT pg_try_advisory_lock(42) AS got", json!([]))
            .await;
        assert_eq!(status, 200, "{case}: B's request: {body}");
        assert_eq!(
            body["rows"][0]["got"], true,
            "{case}: B cannot take lock 42, so A's lock survived: {body}"
        );
        let held = r.advisory_locks(None).await;
        assert!(
            held.is_empty(),
            "{case}: B's session advisory lock outlived B's request: {held:?}"
        );
        r.settle(case, a_pid).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. LISTEN
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn listen_does_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let case = "LISTEN";
        let (a_pid, status, body) = r.attack(case, &q("LISTEN chan")).await;
        assert_eq!(status, 200, "{case}: A's request: {body}");
        let (status, body) = r
            .query(B, "SELECT pg_listening_channels() AS ch", json!([]))
            .await;
        assert_eq!(status, 200, "{case}: B's request: {body}");
        assert_eq!(
            body["rows"],
            json!([]),
            "{case}: B's session listens to A's channels"
        );
        r.settle(case, a_pid).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. Prepared statements
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deallocate_all_does_not_break_the_pool() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let case = "DEALLOCATE ALL (query)";
        let (a_pid, ..) = r.attack(case, &q("DEALLOCATE ALL")).await;
        r.b_keeps_working(case, 20).await;
        r.settle(case, a_pid).await;
    })
    .await;
}

#[tokio::test]
async fn deallocate_and_discard_inside_transactions_do_not_break_the_pool() {
    bounded(async {
        let r = Rig::start(&[]).await;
        for (case, hostile) in [
            (
                "DEALLOCATE ALL then SELECT 1 (transaction)",
                tx(&["DEALLOCATE ALL", "SELECT 1"]),
            ),
            (
                "COMMIT then DISCARD ALL (transaction)",
                tx(&["COMMIT", "DISCARD ALL"]),
            ),
        ] {
            let (a_pid, ..) = r.attack(case, &hostile).await;
            r.b_keeps_working(case, 5).await;
            r.settle(case, a_pid).await;
        }
    })
    .await;
}

#[tokio::test]
async fn sql_prepared_statements_do_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let case = "PREPARE evil";
        let (a_pid, status, body) = r
            .attack(
                case,
                &q("PREPARE evil(text, text) AS SELECT set_config($1, 'tenant-A', true)"),
            )
            .await;
        assert_eq!(status, 200, "{case}: A's request: {body}");
        let (status, body) = r
            .query(
                B,
                "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE from_sql",
                json!([]),
            )
            .await;
        assert_eq!(status, 200, "{case}: B's request: {body}");
        assert_eq!(
            body["rows"][0]["n"], 0,
            "{case}: A's prepared statement is visible to B: {body}"
        );
        r.settle(case, a_pid).await;
    })
    .await;
}

/// A replaces the driver's own prepared statements (the per-request `set_config`) by name.
#[tokio::test]
async fn replaced_driver_statements_do_not_set_the_next_tenants_context() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let case = "DEALLOCATE + PREPARE of the driver's statements";
        let (status, body) = r
            .query(
                A,
                "SELECT name FROM pg_prepared_statements WHERE NOT from_sql ORDER BY name",
                json!([]),
            )
            .await;
        assert_eq!(status, 200, "{case}: A's lookup: {body}");
        let names: Vec<String> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|row| row["name"].as_str().map(str::to_string))
            .collect();
        assert!(
            !names.is_empty(),
            "{case}: A sees no prepared statement: {body}"
        );
        let mut sqls = Vec::new();
        for n in names.iter().take(45) {
            sqls.push(format!("DEALLOCATE {}", ident(n)));
            sqls.push(format!(
                "PREPARE {}(text, text) AS SELECT set_config($1, 'tenant-A', true)",
                ident(n)
            ));
        }
        let sqls: Vec<&str> = sqls.iter().map(String::as_str).collect();
        let (a_pid, _status, _body) = r.attack(case, &tx(&sqls)).await;
        let (status, body) = r
            .query(
                B,
                "SELECT tenant, current_setting('app.tenant_id') AS ctx FROM items",
                json!([]),
            )
            .await;
        assert_eq!(status, 200, "{case}: B's request failed: {body}");
        let rows = body["rows"].as_array().unwrap();
        assert!(
            !rows.is_empty() && rows.iter().all(|r| r["tenant"] == B && r["ctx"] == B),
            "{case}: B must read only its rows under its own context (A replaced {names:?}): \
             {body}"
        );
        r.settle(case, a_pid).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 7. COMMIT / BEGIN / ROLLBACK inside user SQL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn transaction_control_in_user_sql_does_not_leak_the_context() {
    bounded(async {
        let r = Rig::start(&[]).await;
        for (case, hostile) in [
            (
                "COMMIT, session set_config, BEGIN",
                tx(&[
                    "COMMIT",
                    "SELECT set_config('app.tenant_id', 'tenant-A', false)",
                    "BEGIN",
                ]),
            ),
            (
                "ROLLBACK, SET app.tenant_id",
                tx(&["ROLLBACK", "SET app.tenant_id = 'tenant-A'"]),
            ),
            (
                "COMMIT, SET, BEGIN, failing statement",
                tx(&[
                    "COMMIT",
                    "SET app.tenant_id = 'tenant-A'",
                    "BEGIN",
                    "SELECT 1 / 0",
                ]),
            ),
        ] {
            let (a_pid, ..) = r.attack(case, &hostile).await;
            let (status, body) = r
                .query(
                    B,
                    "SELECT tenant, name, current_setting('app.tenant_id') AS ctx FROM items",
                    json!([]),
                )
                .await;
            assert_eq!(status, 200, "{case}: B's request: {body}");
            assert_own_rows(case, B, body["rows"].as_array().unwrap());
            r.settle(case, a_pid).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 8. Roles
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn role_changes_do_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[]).await;
        for (case, hostile) in [
            (
                "SET SESSION AUTHORIZATION",
                q("SET SESSION AUTHORIZATION reporting"),
            ),
            ("SET ROLE", q("SET ROLE reporting")),
            (
                "set_config('role')",
                q("SELECT set_config('role', 'reporting', false)"),
            ),
        ] {
            let (a_pid, ..) = r.attack(case, &hostile).await;
            let (status, body) = r
                .query(
                    B,
                    "SELECT current_user::text AS cu, session_user::text AS su",
                    json!([]),
                )
                .await;
            assert_eq!(status, 200, "{case}: B's request: {body}");
            assert_eq!(
                body["rows"],
                json!([{"cu": "app", "su": "app"}]),
                "{case}: B runs under another role"
            );
            r.settle(case, a_pid).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 9. Session-level settings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn session_settings_do_not_reach_the_next_tenant() {
    bounded(async {
        let r = Rig::start(&[("HEARTH_DB_CONTEXT_SETTINGS", "app.user_id")]).await;
        let user_id = "SELECT coalesce(current_setting('app.user_id', true), '') AS uid";
        for (case, hostile) in [
            (
                "session set_config of the tenant",
                q("SELECT set_config('app.tenant_id', 'tenant-A', false)"),
            ),
            (
                "session set_config of an allow-listed setting",
                q("SELECT set_config('app.user_id', 'u-A', false)"),
            ),
            ("SET app.user_id", q("SET app.user_id = 'u-A'")),
            ("SET search_path", q("SET search_path = pg_temp, public")),
            ("SET statement_timeout", q("SET statement_timeout = 1")),
        ] {
            let (a_pid, ..) = r.attack(case, &hostile).await;
            let (status, body) = r.query(B, user_id, json!([])).await;
            assert_eq!(status, 200, "{case}: B's request: {body}");
            assert_eq!(
                body["rows"][0]["uid"], "",
                "{case}: B reads A's app.user_id: {body}"
            );
            let (status, body) = r
                .query(B, "SELECT 1 AS one FROM pg_sleep(0.05)", json!([]))
                .await;
            assert_eq!(
                status, 200,
                "{case}: B's 50 ms statement failed (A's statement_timeout?): {body}"
            );
            r.settle(case, a_pid).await;
        }

        // The allow-listed setting given properly by A's request does not reach B either.
        let case = "context app.user_id";
        let (status, body) =
            r.h.post(
                QUERY,
                &json!({"sql": user_id, "tenant": A, "context": {"app.user_id": "u-A"}}),
            )
            .await;
        assert_eq!(
            (status, &body["rows"][0]["uid"]),
            (200, &json!("u-A")),
            "{case}: {body}"
        );
        let (status, body) = r.query(B, user_id, json!([])).await;
        assert_eq!(
            (status, &body["rows"][0]["uid"]),
            (200, &json!("")),
            "{case}: B reads A's app.user_id: {body}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Pool of four: the key cases with every connection dirtied at once
// ---------------------------------------------------------------------------------------------

/// One request that replaces every driver statement of its connection by one that sets the
/// tenant context to `tenant` (the two-step attack of the pool-of-one test, in one request).
fn replace_statements(tenant: &str) -> String {
    format!(
        "DO $$ DECLARE n text; BEGIN \
           FOR n IN SELECT name FROM pg_prepared_statements WHERE NOT from_sql LOOP \
             EXECUTE format('DEALLOCATE %I', n); \
             EXECUTE format('PREPARE %I(text, text) AS SELECT set_config($1, %L, true)', n, {}); \
           END LOOP; END $$",
        literal(tenant)
    )
}

/// Holds the connection a while and names it, so four concurrent requests run on four
/// distinct connections of a pool of four.
const HOLD_SQL: &str = "SELECT pg_backend_pid() AS pid FROM pg_sleep(0.2)";

/// `sqls` as a transaction of `tenant` on every connection of a pool of four at once (each
/// transaction starts with [`HOLD_SQL`]); returns status, body and pid of each. Every
/// statement text is fresh (a numbered comment), so it is prepared in the session as the
/// attack left it, never served from a cache the attack may have poisoned.
async fn on_every_connection(r: &Rig, tenant: &str, sqls: &[String]) -> Vec<(u16, Value, i64)> {
    static NONCE: AtomicUsize = AtomicUsize::new(0);
    let requests = (0..4).map(|_| {
        let all: Vec<String> = std::iter::once(HOLD_SQL)
            .chain(sqls.iter().map(String::as_str))
            .map(|sql| format!("{sql} /* {} */", NONCE.fetch_add(1, Ordering::Relaxed)))
            .collect();
        async move { r.tx(tenant, &all).await }
    });
    futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|(status, body)| {
            let pid = body["results"][0]["rows"][0]["pid"].as_i64().unwrap_or(0);
            (status, body, pid)
        })
        .collect()
}

#[tokio::test]
async fn key_cases_with_a_pool_of_four() {
    bounded(async {
        let r = Rig::start(&[("HEARTH_DB_POOL_MAX", "4"), ("HEARTH_DB_POOL_MIN", "4")]).await;
        let cursor = "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM items".to_string();
        let cases: [(&str, String, Option<&str>); 8] = [
            ("pool 4: cursor WITH HOLD", cursor, Some("FETCH ALL FROM c")),
            (
                "pool 4: temp table shadowing items",
                "CREATE TEMP TABLE items AS SELECT * FROM public.items".into(),
                None,
            ),
            (
                "pool 4: lastval()",
                "INSERT INTO items (tenant, name) VALUES ('tenant-A', 'x') RETURNING id".into(),
                Some("SELECT lastval() AS v"),
            ),
            ("pool 4: LISTEN", "LISTEN chan".into(), None),
            ("pool 4: SET ROLE", "SET ROLE reporting".into(), None),
            (
                "pool 4: session set_config",
                "SELECT set_config('app.tenant_id', 'tenant-A', false)".into(),
                None,
            ),
            (
                "pool 4: replaced driver statements",
                replace_statements(A),
                None,
            ),
            ("pool 4: DEALLOCATE ALL", "DEALLOCATE ALL".into(), None),
        ];
        for (case, hostile, must_fail) in cases {
            let a_pids: BTreeSet<i64> = on_every_connection(&r, A, &[hostile])
                .await
                .into_iter()
                .map(|(.., pid)| pid)
                .filter(|pid| *pid != 0)
                .collect();
            if let Some(sql) = must_fail {
                for (status, body, _) in on_every_connection(&r, B, &[sql.to_string()]).await {
                    assert_refused_without_a(case, status, &body);
                }
            }
            let probes =
                on_every_connection(&r, B, &[STATE_SQL.to_string(), ROWS_SQL.to_string()]).await;
            let mut b_pids = BTreeSet::new();
            for (status, body, pid) in probes {
                assert_eq!(status, 200, "{case}: B's request failed: {body}");
                assert_own_rows(case, B, body["results"][2]["rows"].as_array().unwrap());
                let mut state = body["results"][1]["rows"][0].clone();
                state.as_object_mut().unwrap().remove("pid");
                assert_eq!(
                    state, r.baseline,
                    "{case}: {B}'s session on backend {pid} is not at the startup state"
                );
                b_pids.insert(pid);
            }
            // B held all four connections: an attacked backend not among them was closed.
            if b_pids.len() == 4 {
                for pid in a_pids.difference(&b_pids) {
                    r.assert_gone(case, *pid).await;
                }
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 10. The hammer
// ---------------------------------------------------------------------------------------------

/// A small deterministic generator (xorshift64*), so every run sends the same mix.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// Hostile request number `k` of `tenant`: (path, body).
fn hammer_hostile(k: usize, tenant: &str) -> (&'static str, Value) {
    let lit = literal(tenant);
    let query = |sql: String| (QUERY, json!({"sql": sql, "tenant": tenant}));
    match k {
        0 => (
            TX,
            json!({"tenant": tenant, "statements": [
                {"sql": "DECLARE c CURSOR WITH HOLD FOR SELECT tenant, name FROM items"}]}),
        ),
        1 => query("CREATE TEMP TABLE scratch AS SELECT tenant, name FROM items".into()),
        2 => query("CREATE TEMP TABLE items AS SELECT * FROM public.items".into()),
        3 => query("LISTEN chan".into()),
        4 => query("SELECT pg_try_advisory_lock(42) AS got".into()),
        5 => query("DEALLOCATE ALL".into()),
        6 => (
            TX,
            json!({"tenant": tenant, "statements": [
                {"sql": "COMMIT"},
                {"sql": format!("SELECT set_config('app.tenant_id', {lit}, false)")},
                {"sql": "BEGIN"}]}),
        ),
        7 => query("SET ROLE reporting".into()),
        8 => query(format!("SELECT set_config('app.tenant_id', {lit}, false)")),
        9 => query("SET search_path = pg_temp, public".into()),
        10 => query(replace_statements(tenant)),
        11 => query(format!(
            "INSERT INTO items (tenant, name) VALUES ({lit}, 'x') RETURNING id"
        )),
        _ => query(format!(
            "PREPARE evil(text, text) AS SELECT set_config($1, {lit}, true)"
        )),
    }
}
const HAMMER_HOSTILE_KINDS: usize = 13;

/// Checks of a tenant: reads that return only its own rows when nothing leaks. Returns the
/// number of foreign rows seen, with an example, and how the plain read failed, if it did.
async fn hammer_check(
    h: &Hearth,
    tenant: &str,
    k: usize,
) -> (usize, Option<String>, Option<String>) {
    let sql = [
        ROWS_SQL,
        // Any cursor left in the session counts as a foreign row.
        "SELECT name AS tenant, name FROM pg_cursors WHERE name <> ''",
        "SELECT tenant, name, current_setting('app.tenant_id', true) AS ctx FROM scratch",
    ][k];
    let (status, body) = h.post(QUERY, &json!({"sql": sql, "tenant": tenant})).await;
    let rows = body["rows"].as_array().cloned().unwrap_or_default();
    let foreign: Vec<&Value> = rows
        .iter()
        .filter(|r| r["tenant"] != tenant || (k != 1 && r["ctx"] != tenant))
        .collect();
    let example = foreign
        .first()
        .map(|r| format!("{tenant} ran {sql:?} and got {r}"));
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    let plain_read_failed = k == 0
        && (status != 200
            || seed_names(tenant)
                .iter()
                .any(|n| !names.contains(&n.as_str())));
    let failure = plain_read_failed.then(|| format!("{tenant}: {status} {body}"));
    (foreign.len(), example, failure)
}

#[tokio::test]
async fn hammer_of_hostile_and_checking_tenants_sees_no_foreign_row() {
    bounded(async {
        let r = Rig::start(&[("HEARTH_DB_POOL_MAX", "4")]).await;
        const TASKS: usize = 8;
        const PER_TASK: usize = 25;
        let deadline = Instant::now() + Duration::from_secs(30);
        let tasks = (0..TASKS).map(|t| {
            let h = &r.h;
            async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let (mut foreign, mut examples, mut failed_reads) = (0, Vec::new(), Vec::new());
                for _ in 0..PER_TASK {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let tenant = tenant_name(rng.below(HAMMER_TENANTS));
                    if rng.below(2) == 0 {
                        let (path, body) = hammer_hostile(rng.below(HAMMER_HOSTILE_KINDS), &tenant);
                        h.post(path, &body).await;
                    } else {
                        let (n, example, failed) = hammer_check(h, &tenant, rng.below(3)).await;
                        foreign += n;
                        examples.extend(example);
                        failed_reads.extend(failed);
                    }
                }
                (foreign, examples, failed_reads)
            }
        });
        let results = futures::future::join_all(tasks).await;
        let foreign: usize = results.iter().map(|r| r.0).sum();
        let examples: Vec<&String> = results.iter().flat_map(|r| &r.1).take(5).collect();
        let failed: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
        assert_eq!(
            foreign, 0,
            "hammer: {foreign} cross-tenant rows or contexts seen, e.g. {examples:#?}"
        );
        assert!(
            failed.is_empty(),
            "hammer: {} plain reads failed or missed own rows (tenants {failed:?})",
            failed.len()
        );
        // Afterwards every connection is clean.
        for _ in 0..5 {
            let p = r.probe("hammer aftermath", B).await;
            assert_own_rows("hammer aftermath", B, &p.rows);
            assert_eq!(
                p.state, r.baseline,
                "hammer aftermath: backend {} is not at the startup state",
                p.pid
            );
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 11. Privileged roles
// ---------------------------------------------------------------------------------------------

/// `pg_stat_database.sessions` of database `hearth`, once it stopped moving (sessions are
/// counted when a backend reports its statistics, at the latest when it exits).
async fn sessions(pg: &PgCluster) -> i64 {
    let admin = pg.admin().await;
    let read = || async {
        admin
            .query_one(
                "SELECT sessions FROM pg_stat_database WHERE datname = $1",
                &[&DB],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = read().await;
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = read().await;
        if now == last || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// Hearth as `user` (created with SCRAM password, then `setup` run in database `hearth` as
/// superuser) must refuse every DB request with 500 `PrivilegedRole` naming one of `reasons`,
/// without opening a connection per request.
async fn assert_refused_role(case: &str, user: &str, setup: &str, reasons: &[&str]) {
    let pg = cluster().await;
    let password = format!("pw-{user}");
    pg.create_role(user, &password).await;
    pg.admin_on(DB).await.batch_execute(setup).await.unwrap();
    let r = Rig::start_on(pg, user, &password, &[], false).await;
    let refused = |status: u16, body: &Value| {
        assert_eq!(
            (status, error_code(body)),
            (500, "PrivilegedRole"),
            "{case}: hearth as {user} must refuse DB requests: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            reasons.iter().any(|w| message.contains(w)),
            "{case}: the message must name the reason (one of {reasons:?}): {message}"
        );
    };
    let (status, body) = r.query(B, "SELECT 1 AS one", json!([])).await;
    refused(status, &body);
    let before = sessions(&r.pg).await;
    for _ in 0..20 {
        let (status, body) = r.query(B, "SELECT 1 AS one", json!([])).await;
        refused(status, &body);
    }
    let (status, body) =
        r.h.post(
            TX,
            &json!({"tenant": B, "statements": [{"sql": "SELECT 1"}]}),
        )
        .await;
    refused(status, &body);
    let after = sessions(&r.pg).await;
    assert!(
        after - before <= 2,
        "{case}: 21 refused requests opened {} sessions: the refusal must be remembered, not \
         re-learnt by reconnecting",
        after - before
    );
}

#[tokio::test]
async fn aurora_style_master_user_is_refused() {
    bounded(assert_refused_role(
        "rds_superuser member owning tables without FORCE",
        "master",
        "CREATE ROLE rds_superuser NOLOGIN;
         GRANT rds_superuser TO master;
         CREATE TABLE ledger (id bigserial PRIMARY KEY, tenant text, amount int);
         ALTER TABLE ledger OWNER TO master;
         ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
         CREATE POLICY isolation ON ledger
             USING (tenant = NULLIF(current_setting('app.tenant_id', true), ''));",
        &["rds_superuser"],
    ))
    .await;
}

#[tokio::test]
async fn owner_of_an_rls_table_without_force_is_refused() {
    bounded(assert_refused_role(
        "owner of an RLS table without FORCE",
        "owner2",
        "CREATE TABLE loose (id bigserial PRIMARY KEY, tenant text);
         ALTER TABLE loose OWNER TO owner2;
         ALTER TABLE loose ENABLE ROW LEVEL SECURITY;
         CREATE POLICY isolation ON loose
             USING (tenant = NULLIF(current_setting('app.tenant_id', true), ''));",
        &["loose", "FORCE ROW LEVEL SECURITY"],
    ))
    .await;
}

#[tokio::test]
async fn member_of_a_bypassrls_role_is_refused() {
    bounded(assert_refused_role(
        "member of a BYPASSRLS role",
        "member",
        "CREATE ROLE bypasser NOLOGIN BYPASSRLS;
         GRANT bypasser TO member;",
        &["bypasser", "BYPASSRLS"],
    ))
    .await;
}

// ---------------------------------------------------------------------------------------------
// 12. Small ones: duplicate columns, hostile numerics, error bodies
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_column_names_are_refused_or_returned_as_arrays() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let sql = "SELECT 1 AS a, 2 AS a";
        let (status, body) = r.query(B, sql, json!([])).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "DuplicateColumn"),
            "duplicate columns: object rows would drop a value: {body}"
        );
        let (status, body) =
            r.h.post(QUERY, &json!({"sql": sql, "tenant": B, "rowMode": "array"}))
                .await;
        assert_eq!(status, 200, "duplicate columns in array mode: {body}");
        assert_eq!(
            body["rows"],
            json!([[1, 2]]),
            "duplicate columns in array mode"
        );
    })
    .await;
}

#[tokio::test]
async fn absurd_numeric_parameters_are_a_400_and_the_extension_survives() {
    bounded(async {
        let r = Rig::start(&[]).await;
        for value in [
            "1e-9223372036854775808",
            "1e9223372036854775807",
            "-1e-99999999999999999999",
        ] {
            let case = format!("numeric parameter {value}");
            let (status, body) = r.query(B, "SELECT $1::numeric AS n", json!([value])).await;
            assert_eq!(
                status,
                400,
                "{case}: {body}; extension output:\n{}",
                tail(&r.h.proc.output())
            );
            let (status, body) = r.h.get("/health").await;
            assert_eq!(status, 200, "{case}: /health afterwards: {body}");
            r.b_keeps_working(&case, 1).await;
        }
    })
    .await;
}

#[tokio::test]
async fn enum_errors_do_not_echo_the_value() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let (status, body) = r
            .query(B, "SELECT $1::brand AS b", json!(["SECRET-VALUE-123"]))
            .await;
        assert_eq!(status, 400, "enum error: {body}");
        assert!(
            !body.to_string().contains("SECRET-VALUE-123"),
            "enum error echoes the parameter value: {body}"
        );
        assert_eq!(
            body["error"]["sqlstate"], "22P02",
            "enum error must carry its SQLSTATE: {body}"
        );
    })
    .await;
}

#[tokio::test]
async fn unique_violation_names_the_constraint_without_the_values() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let insert = "INSERT INTO cards (tenant, number) VALUES ($1, $2)";
        let number = "4111-SECRET-CARD-0001";
        let (status, body) = r.query(B, insert, json!([B, number])).await;
        assert_eq!(status, 200, "first insert: {body}");
        let (status, body) = r.query(B, insert, json!([B, number])).await;
        assert_eq!(status, 409, "duplicate insert: {body}");
        assert_eq!(
            body["error"]["constraint"], "cards_number_key",
            "unique violation must name the constraint: {body}"
        );
        assert!(
            !body.to_string().contains(number),
            "unique violation echoes the row's values: {body}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 13. Atomicity of a result too large to return
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn result_too_large_says_truthfully_whether_it_committed() {
    bounded(async {
        let r = Rig::start(&[("HEARTH_DB_MAX_RESULT_BYTES", "10000")]).await;
        let (status, body) = r
            .query(
                A,
                "INSERT INTO items (tenant, name) SELECT $1, 'big-' || g \
                 FROM generate_series(1, 2000) g RETURNING name",
                json!([A]),
            )
            .await;
        assert_eq!(
            error_code(&body),
            "ResultTooLarge",
            "oversized result ({status}): {body}"
        );
        let committed = body["error"]["committed"]
            .as_bool()
            .unwrap_or_else(|| panic!("ResultTooLarge must say whether it committed: {body}"));
        let rows: i64 =
            r.pg.admin_on(DB)
                .await
                .query_one(
                    "SELECT count(*) FROM items WHERE tenant = $1 AND name LIKE 'big-%'",
                    &[&A],
                )
                .await
                .unwrap()
                .get(0);
        let expected = if committed { 2000 } else { 0 };
        assert_eq!(
            rows, expected,
            "ResultTooLarge said committed={committed}, but {rows} of the 2000 rows exist"
        );
        r.settle("result too large", r.pid("result too large", A).await)
            .await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 12. Behind a real PgBouncer in transaction mode (HEARTH_DB_POOLER=transaction)
// ---------------------------------------------------------------------------------------------

/// Server connections PgBouncer keeps to PostgreSQL in these tests.
const SERVER_POOL: usize = 2;

/// Hostile requests behind the pooler, besides the hammer's: (name, statements).
fn pooled_attacks(tenant: &str) -> Vec<(&'static str, Vec<String>)> {
    let lit = literal(tenant);
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("set role", v(&["SET ROLE reporting"])),
        (
            "session tenant",
            vec![format!("SELECT set_config('app.tenant_id', {lit}, false)")],
        ),
        ("search path", v(&["SET search_path = pg_temp, public"])),
        (
            "temp table shadowing items",
            v(&["CREATE TEMP TABLE items AS SELECT * FROM public.items"]),
        ),
        (
            "cursor with hold",
            v(&["DECLARE c CURSOR WITH HOLD FOR SELECT tenant, name FROM items"]),
        ),
        ("listen", v(&["LISTEN chan"])),
        ("advisory lock", v(&["SELECT pg_advisory_lock(42)"])),
        (
            "sql prepare",
            vec![format!(
                "PREPARE evil(text, text) AS SELECT set_config($1, {lit}, true)"
            )],
        ),
        ("sequence state", v(&["SELECT nextval('items_id_seq')"])),
        (
            "timeout that would cancel the clean-up",
            v(&[
                "SET statement_timeout = 1",
                "SET ROLE reporting",
                "CREATE TEMP TABLE scratch AS SELECT 1 AS x",
            ]),
        ),
        (
            "read-only default",
            v(&[
                "SET default_transaction_read_only = on",
                "SET ROLE reporting",
            ]),
        ),
        ("deallocate all", v(&["DEALLOCATE ALL"])),
        (
            "replace driver statements",
            vec![replace_statements(tenant)],
        ),
        (
            "state, then an error",
            v(&[
                "CREATE TEMP TABLE scratch AS SELECT tenant, name FROM items",
                "SELECT pg_advisory_lock(43)",
                "SELECT 1/0",
            ]),
        ),
    ]
}

impl Rig {
    /// Behind the pooler the next request may run on any server connection: B probes several
    /// times (PgBouncer hands out the most recently used server first, so the attack's
    /// connection comes first) and every probe must be at the startup state with only B's
    /// rows; no advisory lock of `app` may be left anywhere, and PostgreSQL must never see
    /// more than the pooler's server connections.
    async fn settle_pooled(&self, case: &str) {
        for _ in 0..2 * SERVER_POOL {
            let p = self.probe(case, B).await;
            assert_own_rows(case, B, &p.rows);
            assert_eq!(
                p.state, self.baseline,
                "{case}: behind the pooler, {B}'s session on backend {} is not at the startup \
                 state",
                p.pid
            );
        }
        let held = self.advisory_locks(None).await;
        assert!(held.is_empty(), "{case}: advisory locks left: {held:?}");
        // Backends being torn down may still be listed for a moment: poll, bounded.
        let admin = self.pg.admin().await;
        let deadline = Instant::now() + GONE_WITHIN;
        loop {
            let rows = admin
                .query(
                    "SELECT pid, state, left(query, 60) FROM pg_stat_activity \
                     WHERE usename = 'app'",
                    &[],
                )
                .await
                .unwrap();
            if rows.len() <= SERVER_POOL {
                break;
            }
            let shown: Vec<(i32, Option<String>, Option<String>)> = rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            assert!(
                Instant::now() < deadline,
                "{case}: {} backends of app behind a pooler of {SERVER_POOL}: {shown:?}",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A response no request may get behind the pooler: a 5xx other than the statement timeout
/// an attack set for itself, or a protocol error such as "prepared statement does not exist".
fn protocol_error(status: u16, body: &Value) -> bool {
    let text = body.to_string();
    (status >= 500 && error_code(body) != "StatementTimeout")
        || text.contains("does not exist")
        || text.contains("08P01")
}

/// Fails with PgBouncer's log when a response shows a protocol error.
fn assert_no_protocol_error(r: &Rig, case: &str, status: u16, body: &Value) {
    assert!(
        !protocol_error(status, body),
        "{case}: protocol error behind the pooler ({status}): {body}\n{}",
        r.bouncer
            .as_ref()
            .map(|b| tail(&b.log()))
            .unwrap_or_default()
    );
}

#[tokio::test]
async fn behind_pgbouncer_every_attack_leaves_every_server_connection_clean() {
    bounded(async {
        let r = Rig::start_pooled(SERVER_POOL, &[("HEARTH_DB_POOL_MAX", "4")]).await;
        // The reported failure: every request failed with 08P01 (startup option refused).
        let (status, body) = r.query(A, ROWS_SQL, json!([])).await;
        assert_no_protocol_error(&r, "first request", status, &body);
        assert_eq!(status, 200, "{body}");
        assert_own_rows("first request", A, body["rows"].as_array().unwrap());
        // The request's statement timeout holds behind the pooler, transaction-locally.
        let (status, body) = r.query(A, "SELECT pg_sleep(30)", json!([])).await;
        assert_eq!(
            (status, error_code(&body)),
            (504, "StatementTimeout"),
            "the statement timeout did not apply behind the pooler: {body}"
        );
        r.settle_pooled("after a timeout").await;
        for (case, sqls) in pooled_attacks(A) {
            let (status, body) = r.tx(A, &sqls).await;
            assert_no_protocol_error(&r, case, status, &body);
            r.settle_pooled(case).await;
        }
        // A COMMIT that fails (a deferred constraint) skips the rest of the query string; what
        // a rollback does not undo was cleaned before it.
        r.pg.admin_on(DB)
            .await
            .batch_execute(
                "CREATE TABLE deferred_t (id int CONSTRAINT deferred_u UNIQUE \
                 DEFERRABLE INITIALLY DEFERRED); GRANT INSERT ON deferred_t TO app;",
            )
            .await
            .unwrap();
        let (status, body) = r
            .tx(
                A,
                &[
                    "SELECT pg_advisory_lock(44)".to_string(),
                    "PREPARE kept AS SELECT 1".to_string(),
                    "INSERT INTO deferred_t VALUES (1), (1)".to_string(),
                ],
            )
            .await;
        assert_eq!(
            error_code(&body),
            "UniqueViolation",
            "failing COMMIT: {status} {body}"
        );
        r.settle_pooled("failing commit").await;
        // A clean-up that fails (here: the role may not read pg_prepared_statements, or not
        // call pg_advisory_unlock_all) must not leave its server connection to the pooler:
        // after COMMIT the server connection terminates itself; before it, the transaction is
        // still open and PgBouncer drops a server connection whose client left mid-way.
        for (case, revoke, grant) in [
            (
                "clean-up failing after COMMIT",
                "REVOKE SELECT ON pg_catalog.pg_prepared_statements FROM PUBLIC",
                "GRANT SELECT ON pg_catalog.pg_prepared_statements TO PUBLIC",
            ),
            (
                "clean-up failing before COMMIT",
                "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_advisory_unlock_all() FROM PUBLIC",
                "GRANT EXECUTE ON FUNCTION pg_catalog.pg_advisory_unlock_all() TO PUBLIC",
            ),
        ] {
            let admin = r.pg.admin_on(DB).await;
            admin.batch_execute(revoke).await.unwrap();
            let (status, body) = r
                .tx(
                    A,
                    &[
                        "SELECT pg_advisory_lock(45)".to_string(),
                        "SET ROLE reporting".to_string(),
                        "PREPARE kept2 AS SELECT 1".to_string(),
                    ],
                )
                .await;
            admin.batch_execute(grant).await.unwrap();
            assert!(
                status >= 500,
                "{case}: the request reported success: {body}"
            );
            r.settle_pooled(case).await;
        }
        // SQL that would end the transaction early is refused before anything runs: after it
        // the pooler could run the clean-up on another server connection.
        for sqls in [
            vec!["COMMIT".to_string()],
            vec![
                "SELECT 1".to_string(),
                "/* x */ end".to_string(),
                "SET ROLE reporting".to_string(),
            ],
            vec![
                "COMMIT".to_string(),
                format!("SELECT set_config('app.tenant_id', {}, false)", literal(A)),
                "BEGIN".to_string(),
            ],
            vec!["ROLLBACK".to_string()],
            vec!["PREPARE TRANSACTION 'x'".to_string()],
        ] {
            let (status, body) = r.tx(A, &sqls).await;
            assert_eq!(
                (status, error_code(&body)),
                (400, "InvalidRequest"),
                "transaction control {sqls:?} behind the pooler: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("HEARTH_DB_POOLER"),
                "{body}"
            );
        }
        // ROLLBACK TO a savepoint stays inside the transaction and is fine.
        let (status, body) = r
            .tx(
                A,
                &[
                    "SAVEPOINT s".to_string(),
                    "SELECT 1/0".to_string(),
                    "ROLLBACK TO s".to_string(),
                ],
            )
            .await;
        assert_eq!((status, error_code(&body)), (400, "SqlError"), "{body}");
        r.settle_pooled("transaction control").await;
    })
    .await;
}

#[tokio::test]
async fn hammer_behind_pgbouncer_sees_no_foreign_row_and_no_protocol_error() {
    bounded(async {
        let r = Rig::start_pooled(SERVER_POOL, &[("HEARTH_DB_POOL_MAX", "8")]).await;
        const TASKS: usize = 12;
        const PER_TASK: usize = 25;
        let deadline = Instant::now() + Duration::from_secs(35);
        let tasks = (0..TASKS).map(|t| {
            let r = &r;
            async move {
                let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (t as u64 + 7));
                let mut out = (0, Vec::new(), Vec::new(), Vec::new());
                for _ in 0..PER_TASK {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let tenant = tenant_name(rng.below(HAMMER_TENANTS));
                    match rng.below(3) {
                        0 => {
                            let (path, body) =
                                hammer_hostile(rng.below(HAMMER_HOSTILE_KINDS), &tenant);
                            let (status, resp) = r.h.post(path, &body).await;
                            if protocol_error(status, &resp) {
                                out.3.push(format!("{body} -> {status} {resp}"));
                            }
                        }
                        1 => {
                            let attacks = pooled_attacks(&tenant);
                            let (_, sqls) = &attacks[rng.below(attacks.len())];
                            let (status, resp) = r.tx(&tenant, sqls).await;
                            if protocol_error(status, &resp) {
                                out.3.push(format!("{sqls:?} -> {status} {resp}"));
                            }
                        }
                        _ => {
                            let (n, example, failed) =
                                hammer_check(&r.h, &tenant, rng.below(3)).await;
                            out.0 += n;
                            out.1.extend(example);
                            out.2.extend(failed);
                        }
                    }
                }
                out
            }
        });
        let results = futures::future::join_all(tasks).await;
        let foreign: usize = results.iter().map(|r| r.0).sum();
        let examples: Vec<&String> = results.iter().flat_map(|r| &r.1).take(5).collect();
        let failed: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
        let protocol: Vec<&String> = results.iter().flat_map(|r| &r.3).collect();
        assert_eq!(
            foreign, 0,
            "hammer behind the pooler: {foreign} cross-tenant rows or contexts, e.g. {examples:#?}"
        );
        assert!(
            failed.is_empty(),
            "hammer behind the pooler: {} plain reads failed or missed own rows ({failed:?})\n{}",
            failed.len(),
            tail(&r.h.proc.output())
        );
        assert!(
            protocol.is_empty(),
            "hammer behind the pooler: {} protocol errors, e.g. {:#?}\n{}",
            protocol.len(),
            protocol.iter().take(5).collect::<Vec<_>>(),
            tail(&r.h.proc.output())
        );
        r.settle_pooled("hammer aftermath").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Review (wrev): user code that runs *inside* COMMIT, after the pre-COMMIT clean-up
// ---------------------------------------------------------------------------------------------

/// A `WITH HOLD` cursor is materialised by `COMMIT` itself (PostgreSQL's `PreCommit_Portals`),
/// after `FINISH_POOLED_SQL`'s pre-COMMIT block ran. Its query takes a session advisory lock
/// (not undone by a rollback) and then fails, so the `COMMIT` fails, the transaction ends, the
/// rest of the query string (the clean-up) is skipped, and the server reports itself idle: the
/// pooler takes the server connection back with A's session lock still held. The same holds
/// for a deferred constraint trigger (`AfterTriggerFireDeferred`, also inside COMMIT).
#[tokio::test]
async fn behind_pgbouncer_state_taken_inside_a_failing_commit_does_not_survive() {
    bounded(async {
        let r = Rig::start_pooled(SERVER_POOL, &[("HEARTH_DB_POOL_MAX", "4")]).await;
        let cases: [(&str, Vec<String>); 2] = [
            (
                "WITH HOLD cursor failing at COMMIT",
                vec!["DECLARE c CURSOR WITH HOLD FOR \
                      SELECT pg_advisory_lock(46) AS l, 1 / (x - 2) AS boom \
                      FROM generate_series(1, 3) x"
                    .to_string()],
            ),
            (
                "deferred constraint trigger failing at COMMIT",
                vec![
                    "CREATE TEMP TABLE trap (x int)".to_string(),
                    "CREATE FUNCTION pg_temp.trap_f() RETURNS trigger LANGUAGE plpgsql AS \
                     $f$BEGIN PERFORM pg_advisory_lock(47); RAISE EXCEPTION 'trap'; END$f$"
                        .to_string(),
                    "CREATE CONSTRAINT TRIGGER trap_t AFTER INSERT ON pg_temp.trap \
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.trap_f()"
                        .to_string(),
                    // A DO block: an INSERT would be analysed at Parse, before the table exists.
                    "DO $d$BEGIN INSERT INTO pg_temp.trap VALUES (1); END$d$".to_string(),
                ],
            ),
        ];
        for (case, sqls) in cases {
            let (status, body) = r.tx(A, &sqls).await;
            // Refused, failed or (with the cursor closed before COMMIT) succeeded: any answer
            // but a protocol error; what matters is what is left behind.
            assert_no_protocol_error(&r, case, status, &body);
            r.settle_pooled(case).await;
        }
    })
    .await;
}

/// PostgreSQL ends a `--` comment at `\r` as well as `\n`: a `COMMIT` after a comment ended
/// by `\r` must be refused like any other (before the fix it ran, ending the request's
/// transaction mid-way, so the pooler could hand the rest of the request, clean-up included,
/// to another server connection).
#[tokio::test]
async fn behind_pgbouncer_a_commit_after_a_cr_ended_comment_is_refused() {
    bounded(async {
        let r = Rig::start_pooled(SERVER_POOL, &[("HEARTH_DB_POOL_MAX", "4")]).await;
        for sql in ["--\rCOMMIT", "-- x\rEND", "/* a */ --\rROLLBACK"] {
            let (status, body) = r.tx(A, &["SELECT 1".to_string(), sql.to_string()]).await;
            assert_eq!(
                (status, error_code(&body)),
                (400, "InvalidRequest"),
                "{sql:?} behind the pooler: {body}"
            );
        }
        r.settle_pooled("commit after a CR-ended comment").await;
    })
    .await;
}

/// The same attack without a pooler: a session advisory lock taken while COMMIT materialises
/// a `WITH HOLD` cursor whose query then fails.
#[tokio::test]
async fn state_taken_inside_a_failing_commit_does_not_survive() {
    bounded(async {
        let r = Rig::start(&[]).await;
        let case = "WITH HOLD cursor failing at COMMIT (no pooler)";
        let (a_pid, status, body) = r
            .attack(
                case,
                &tx(&["DECLARE c CURSOR WITH HOLD FOR \
                       SELECT pg_advisory_lock(46) AS l, 1 / (x - 2) AS boom \
                       FROM generate_series(1, 3) x"]),
            )
            .await;
        assert!(status >= 400, "{case}: A's request: {status} {body}");
        let held = r.advisory_locks(None).await;
        assert!(held.is_empty(), "{case}: advisory locks left: {held:?}");
        r.settle(case, a_pid).await;
    })
    .await;
}
