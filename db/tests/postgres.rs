//! hearth-db against a real PostgreSQL 15 (one throwaway cluster per test, see
//! `hearth_tests::postgres`). Tables use ENABLE + FORCE ROW LEVEL SECURITY and the application
//! role `app` authenticates with SCRAM-SHA-256.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::num::NonZeroUsize;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::wire::{QueryRequest, QueryResponse, Statement, TransactionRequest};
use hearth_db::{
    CredentialSource, Db, DbConfig, DbCredentials, DbError, StaticCredentials,
    SwappableCredentials, TlsMode,
};
use hearth_tests::postgres::PgCluster;
use serde_json::{json, Value};

const APP_PW: &str = "app-pw-1";
const TENANTS: usize = 24;
const DB: &str = "hearth";

/// Bounds every wait in these tests: a hang fails the test instead of stalling the suite.
async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 20 s"))
}

fn tenant(i: usize) -> String {
    format!("tenant-{i:02}")
}

/// A cluster with role `app` owning database `hearth` and an RLS-protected `items` table
/// holding three rows for each of 24 tenants.
async fn cluster() -> PgCluster {
    let c = PgCluster::start();
    c.create_role("app", APP_PW).await;
    c.create_database(DB, "app").await;
    let admin = c.admin_on(DB).await;
    admin
        .batch_execute(
            "CREATE TABLE items (
                 id bigserial PRIMARY KEY,
                 tenant text NOT NULL,
                 name text NOT NULL,
                 UNIQUE (tenant, name));
             ALTER TABLE items OWNER TO app;
             ALTER TABLE items ENABLE ROW LEVEL SECURITY;
             ALTER TABLE items FORCE ROW LEVEL SECURITY;
             CREATE POLICY isolation ON items
                 USING (tenant = NULLIF(current_setting('app.tenant_id', true), ''))
                 WITH CHECK (tenant = NULLIF(current_setting('app.tenant_id', true), ''));
             INSERT INTO items (tenant, name)
                 SELECT format('tenant-%s', lpad(t::text, 2, '0')), format('row-%s', r)
                 FROM generate_series(0, 23) t, generate_series(1, 3) r;",
        )
        .await
        .unwrap();
    c
}

fn creds(c: &PgCluster, user: &str, password: &str) -> DbCredentials {
    DbCredentials {
        host: c.host().into(),
        port: c.port(),
        dbname: DB.into(),
        username: user.into(),
        password: password.into(),
    }
}

fn config(max: usize) -> DbConfig {
    let mut cfg = DbConfig::new(TlsMode::Disable);
    cfg.min_connections = 1;
    cfg.max_connections = NonZeroUsize::new(max).unwrap();
    cfg.connect_timeout = Duration::from_secs(3);
    cfg.pool_wait_timeout = Duration::from_secs(15);
    cfg.statement_timeout = Duration::from_secs(2);
    cfg.allowed_settings = vec!["app.user_id".into()];
    cfg
}

fn app_db(c: &PgCluster, cfg: DbConfig) -> Db {
    Db::new(
        cfg,
        Arc::new(StaticCredentials::new(creds(c, "app", APP_PW))),
    )
    .unwrap()
}

fn q(sql: &str, tenant: Option<&str>, params: Vec<Value>) -> QueryRequest {
    QueryRequest {
        sql: sql.into(),
        params,
        tenant: tenant.map(str::to_owned),
        context: BTreeMap::new(),
    }
}

fn tx(tenant: Option<&str>, sqls: &[&str]) -> TransactionRequest {
    TransactionRequest {
        tenant: tenant.map(str::to_owned),
        context: BTreeMap::new(),
        statements: sqls
            .iter()
            .map(|s| Statement {
                sql: (*s).into(),
                params: vec![],
            })
            .collect(),
    }
}

fn cell<'a>(r: &'a QueryResponse, col: &str) -> &'a Value {
    &r.rows[0][col]
}

async fn pid(db: &Db, t: &str) -> String {
    let r = bounded(
        "pid",
        db.query(&q("SELECT pg_backend_pid() AS pid", Some(t), vec![])),
    )
    .await
    .unwrap();
    cell(&r, "pid").to_string()
}

/// Reads the tenant's rows and checks that it sees exactly its own three rows and its own
/// context; returns a description of any violation.
async fn check_isolation(db: &Db, me: &str) -> Result<(), String> {
    let r = db
        .query(&q(
            "SELECT tenant, name, current_setting('app.tenant_id', true) AS ctx FROM items",
            Some(me),
            vec![],
        ))
        .await
        .map_err(|e| format!("{me}: read failed: {e}"))?;
    if r.rows.len() != 3 {
        return Err(format!("{me}: saw {} rows", r.rows.len()));
    }
    for row in &r.rows {
        if row["tenant"] != json!(me) || row["ctx"] != json!(me) {
            return Err(format!("{me}: saw {row:?}"));
        }
    }
    Ok(())
}

async fn admin_count(c: &PgCluster, sql: &str) -> i64 {
    c.admin_on(DB)
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_under_concurrency_with_faults() {
    let c = cluster().await;
    for max in [1, 4] {
        let mut cfg = config(max);
        cfg.statement_timeout = Duration::from_millis(200);
        let db = Arc::new(app_db(&c, cfg));
        let mut tasks = Vec::new();
        for i in 0..120 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let me = tenant(i % TENANTS);
                let other = tenant((i + 1) % TENANTS);
                let fault = match i % 10 {
                    0 => match db.query(&q("SELECT pg_sleep(5)", Some(&me), vec![])).await {
                        Err(DbError::StatementTimeout) => Ok(()),
                        r => Err(format!("{me}: expected StatementTimeout, got {r:?}")),
                    },
                    1 => match db.query(&q("SELECT 1/0", Some(&me), vec![])).await {
                        Err(e) if e.sqlstate() == Some("22012") => Ok(()),
                        r => Err(format!("{me}: expected 22012, got {r:?}")),
                    },
                    2 => {
                        // The client goes away mid-request: the future is dropped.
                        let req = q("SELECT pg_sleep(0.1)", Some(&me), vec![]);
                        let _ =
                            tokio::time::timeout(Duration::from_millis(30), db.query(&req)).await;
                        Ok(())
                    }
                    3 => db
                        .query(&q(
                            "SELECT set_config('app.tenant_id', $1, false)",
                            Some(&me),
                            vec![json!(other)],
                        ))
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{me}: leak attempt failed: {e}")),
                    4 => db
                        .query(&q(
                            &format!("SET app.tenant_id = '{other}'"),
                            Some(&me),
                            vec![],
                        ))
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{me}: SET failed: {e}")),
                    _ => Ok(()),
                };
                fault?;
                check_isolation(&db, &me).await
            }));
        }
        let mut failures = Vec::new();
        for t in tasks {
            match bounded("isolation task", t).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(format!("task panicked: {e}")),
            }
        }
        assert!(failures.is_empty(), "pool max {max}: {failures:#?}");
        let stats = db.stats();
        assert!(stats.size <= max, "{stats:?}");
        db.close();
    }
}

#[tokio::test]
async fn cross_tenant_insert_fails_with_check() {
    let c = cluster().await;
    let db = app_db(&c, config(2));
    let r = bounded(
        "insert",
        db.query(&q(
            "INSERT INTO items (tenant, name) VALUES ($1, 'x')",
            Some(&tenant(1)),
            vec![json!(tenant(2))],
        )),
    )
    .await;
    let err = r.unwrap_err();
    assert_eq!(err.code(), "PolicyViolation", "{err}");
    assert_eq!(err.kind().status(), 403);
    // Own-tenant insert works and counts one affected row.
    let ok = bounded(
        "insert own",
        db.query(&q(
            "INSERT INTO items (tenant, name) VALUES ($1, 'x')",
            Some(&tenant(1)),
            vec![json!(tenant(1))],
        )),
    )
    .await
    .unwrap();
    assert_eq!(ok.row_count, 1);
    assert_eq!(
        admin_count(&c, "SELECT count(*) FROM items WHERE name = 'x'").await,
        1,
        "only the own-tenant row exists"
    );
}

#[tokio::test]
async fn session_level_settings_never_reach_the_next_request() {
    let c = cluster().await;
    let mut cfg = config(1);
    cfg.tenantless = true;
    let db = app_db(&c, cfg);
    let t1 = tenant(1);
    let first_pid = pid(&db, &t1).await;
    let leaks = [
        "SELECT set_config('app.tenant_id', 'tenant-02', false)",
        "SET app.tenant_id = 'tenant-02'",
        "SET SESSION app.tenant_id = 'tenant-02'",
    ];
    let probe = "SELECT current_setting('app.tenant_id', true) AS t, \
                 current_setting('app.user_id', true) AS u, \
                 current_setting('statement_timeout') AS st, pg_backend_pid() AS pid, \
                 (SELECT count(*) FROM items) AS n";
    for leak in leaks {
        let r = bounded("leak", db.query(&q(leak, Some(&t1), vec![]))).await;
        assert!(r.is_ok(), "{leak}: {r:?}");
        bounded(
            "leak2",
            db.query(&q(
                "SELECT set_config('app.user_id', 'evil', false)",
                Some(&t1),
                vec![],
            )),
        )
        .await
        .unwrap();
        bounded(
            "leak3",
            db.query(&q("SET statement_timeout = 0", Some(&t1), vec![])),
        )
        .await
        .unwrap();
        // Tenantless request on the same connection: nothing of the above is visible.
        let r = bounded("probe", db.query(&q(probe, None, vec![])))
            .await
            .unwrap();
        assert_eq!(cell(&r, "pid").to_string(), first_pid, "same connection");
        assert_eq!(cell(&r, "t"), &json!(""), "{leak}");
        assert_eq!(cell(&r, "u"), &json!(""), "{leak}");
        assert_eq!(cell(&r, "st"), &json!("2s"), "{leak}");
        assert_eq!(cell(&r, "n"), &json!(0), "{leak}: no tenant sees no rows");
        // A transaction that ends our transaction early still sees no stale context.
        let t = bounded(
            "commit-inside",
            db.transaction(&tx(Some("tenant-03"), &["COMMIT", probe])),
        )
        .await
        .unwrap();
        assert_eq!(t.results[1].rows[0]["t"], json!(""), "{leak}");
        assert_eq!(t.results[1].rows[0]["n"], json!(0), "{leak}");
        // And a tenant request sees its own tenant only.
        let r = bounded("probe", db.query(&q(probe, Some("tenant-04"), vec![])))
            .await
            .unwrap();
        assert_eq!(cell(&r, "t"), &json!("tenant-04"));
        assert_eq!(cell(&r, "n"), &json!(3));
        assert_eq!(cell(&r, "pid").to_string(), first_pid, "same connection");
    }
    // SET ROLE is undone too.
    c.admin_on(DB)
        .await
        .batch_execute("CREATE ROLE other; GRANT other TO app")
        .await
        .unwrap();
    bounded(
        "set role",
        db.query(&q("SET ROLE other", Some(&t1), vec![])),
    )
    .await
    .unwrap();
    let r = bounded(
        "who",
        db.query(&q("SELECT current_user AS u", Some(&t1), vec![])),
    )
    .await
    .unwrap();
    assert_eq!(cell(&r, "u"), &json!("app"));
    assert_eq!(pid(&db, &t1).await, first_pid);
    assert_eq!(db.stats().discarded, 0);
}

#[tokio::test]
async fn dropped_request_mid_transaction_discards_the_connection() {
    let c = cluster().await;
    let db = app_db(&c, config(1));
    let me = tenant(5);
    let before = pid(&db, &me).await;
    let req = tx(
        Some(&me),
        &[
            "INSERT INTO items (tenant, name) VALUES ('tenant-05', 'dropped')",
            "SELECT pg_sleep(1)",
        ],
    );
    let r = tokio::time::timeout(Duration::from_millis(300), db.transaction(&req)).await;
    assert!(
        r.is_err(),
        "the request should still be running when dropped"
    );
    assert_eq!(db.stats().discarded, 1);
    let after = pid(&db, &me).await;
    assert_ne!(
        before, after,
        "a dropped mid-transaction connection must not be reused"
    );
    // The abandoned backend finishes what was already written to it (the whole pipeline,
    // COMMIT included, or a rollback if it notices the closed socket first) and exits; it is
    // never left idle in a transaction.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = admin_count(
            &c,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {before}"),
        )
        .await;
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "abandoned backend still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle_in_tx = "SELECT count(*) FROM pg_stat_activity \
                      WHERE usename = 'app' AND state LIKE 'idle in transaction%'";
    assert_eq!(admin_count(&c, idle_in_tx).await, 0);
    // All or nothing: the row exists at most once, in its own tenant.
    let n = admin_count(&c, "SELECT count(*) FROM items WHERE name = 'dropped'").await;
    assert!(n <= 1, "{n}");
    check_isolation_allowing(&db, &me, n as usize).await;
}

async fn check_isolation_allowing(db: &Db, me: &str, extra: usize) {
    let r = bounded(
        "read",
        db.query(&q("SELECT tenant FROM items", Some(me), vec![])),
    )
    .await
    .unwrap();
    assert_eq!(r.rows.len(), 3 + extra);
    assert!(r.rows.iter().all(|row| row["tenant"] == json!(me)), "{r:?}");
}

fn signal(pid: i32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

async fn app_backends(c: &PgCluster) -> Vec<i32> {
    c.admin_on(DB)
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE usename = 'app'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_dead_idle_connections_are_replaced() {
    let c = cluster().await;
    let me = tenant(7);

    // Killed backends (server restarted or idle-killed while frozen).
    let mut cfg = config(4);
    cfg.min_connections = 4;
    cfg.verify_idle_after = Duration::from_millis(50);
    let db = app_db(&c, cfg);
    assert_eq!(bounded("warm", db.warm()).await.unwrap(), 4);
    assert_eq!(c.terminate_backends("app").await, 4);
    tokio::time::sleep(Duration::from_millis(100)).await;
    check_isolation(&db, &me)
        .await
        .expect("first request after the freeze");
    let s = db.stats();
    assert_eq!(s.recycled_dead, 4, "{s:?}");
    db.close();

    // An unresponsive peer (half-open connection): only the verification round trip notices.
    let mut cfg = config(1);
    cfg.verify_idle_after = Duration::from_millis(50);
    let db = app_db(&c, cfg.clone());
    assert_eq!(bounded("warm", db.warm()).await.unwrap(), 1);
    let stopped = app_backends(&c).await;
    assert_eq!(stopped.len(), 1);
    stopped.iter().for_each(|p| signal(*p, "-STOP"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = check_isolation(&db, &me).await;
    stopped.iter().for_each(|p| signal(*p, "-CONT"));
    r.expect("first request after the freeze");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let s = db.stats();
    assert_eq!((s.verified, s.recycled_dead, s.created), (1, 1, 2), "{s:?}");
    db.close();

    // Control: without verification the same situation fails the request.
    cfg.verify_idle_after = Duration::from_secs(3600);
    let db = app_db(&c, cfg);
    bounded("warm", db.warm()).await.unwrap();
    let stopped: Vec<i32> = vec![pid(&db, &me).await.parse().unwrap()];
    stopped.iter().for_each(|p| signal(*p, "-STOP"));
    let r = bounded(
        "unverified",
        db.query(&q("SELECT 1 AS one", Some(&me), vec![])),
    )
    .await;
    stopped.iter().for_each(|p| signal(*p, "-CONT"));
    assert!(matches!(r, Err(DbError::StatementTimeout)), "{r:?}");
    // Recently used connections are not verified.
    check_isolation(&db, &me).await.unwrap();
    check_isolation(&db, &me).await.unwrap();
    assert_eq!(db.stats().verified, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_rotation_without_failed_requests() {
    let c = cluster().await;
    let source = SwappableCredentials::new(creds(&c, "app", APP_PW));
    let mut cfg = config(4);
    cfg.min_connections = 1;
    let db = Arc::new(Db::new(cfg, Arc::new(source.clone())).unwrap());
    bounded("warm", db.warm()).await.unwrap();
    let me = tenant(9);
    let old_pid = pid(&db, &me).await;

    let worker = |db: Arc<Db>, n: usize| {
        tokio::spawn(async move {
            let mut failures = 0;
            let mut pids = HashSet::new();
            for _ in 0..n {
                let req = q(
                    "SELECT pg_backend_pid() AS pid, pg_sleep(0.01)",
                    Some("t"),
                    vec![],
                );
                match db.query(&req).await {
                    Ok(r) => {
                        pids.insert(cell(&r, "pid").to_string());
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failures += 1;
                    }
                }
            }
            (failures, pids)
        })
    };
    // Steady load on two connections (opened before the change) while the password changes.
    let early: Vec<_> = (0..2).map(|_| worker(db.clone(), 60)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.set_password("app", "app-pw-2").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        source.forced_refreshes(),
        0,
        "existing connections needed no new password"
    );
    source.publish_password("app-pw-2");
    // A burst needing four connections at once: the pool must open new ones, which first
    // fail with the cached old password (28P01), then succeed after one forced refresh.
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.query(&q(
                    "SELECT pg_backend_pid() AS pid, pg_sleep(0.3)",
                    Some("t"),
                    vec![],
                ))
                .await
                .map(|r| cell(&r, "pid").to_string())
                .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut failures = 0;
    let mut pids = HashSet::new();
    for b in burst {
        match bounded("burst", b).await.unwrap() {
            Ok(p) => {
                pids.insert(p);
            }
            Err(e) => {
                eprintln!("burst failed: {e}");
                failures += 1;
            }
        }
    }
    for w in early {
        let (f, p) = bounded("worker", w).await.unwrap();
        failures += f;
        pids.extend(p);
    }
    assert_eq!(failures, 0);
    assert!(
        pids.contains(&old_pid),
        "the pre-rotation connection stayed in use"
    );
    let s = db.stats();
    assert!(
        s.created > 2,
        "new connections were opened after the rotation: {s:?}"
    );
    assert_eq!(source.forced_refreshes(), 1, "{s:?}");
    assert_eq!(s.rotations, 1);
    db.close();

    // A fresh pool with the stale cached password: exactly one forced refresh, then success.
    let stale = SwappableCredentials::new(creds(&c, "app", APP_PW));
    stale.publish_password("app-pw-2");
    let db = Db::new(config(1), Arc::new(stale.clone())).unwrap();
    assert_eq!(bounded("warm", db.warm()).await.unwrap(), 1);
    assert_eq!(stale.forced_refreshes(), 1);
    // A source that never learns the new password: AuthFailed, no password in the message.
    let wrong = Db::new(
        config(1),
        Arc::new(StaticCredentials::new(creds(&c, "app", APP_PW))),
    )
    .unwrap();
    let err = bounded("wrong", wrong.warm()).await.unwrap_err();
    assert_eq!(err.code(), "AuthFailed", "{err}");
    assert!(!format!("{err} {err:?}").contains(APP_PW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load() {
    let c = cluster().await;
    let mut cfg = config(4);
    cfg.statement_timeout = Duration::from_secs(1);
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.pool_wait_timeout = Duration::from_secs(2);
    cfg.verify_idle_after = Duration::from_millis(100);
    let db = Arc::new(app_db(&c, cfg));
    bounded("warm", db.warm()).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let me = tenant(w);
                let mut errors = Vec::new();
                let mut ok = 0;
                for _ in 0..2000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    // A hang past the timeouts fails here.
                    let started = Instant::now();
                    let r = tokio::time::timeout(Duration::from_secs(6), check(&db, &me)).await;
                    match r {
                        Err(_) => errors.push(format!("hung for {:?}", started.elapsed())),
                        Ok(Ok(())) => ok += 1,
                        Ok(Err(e)) => errors.push(e),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, errors)
            })
        })
        .collect();
    async fn check(db: &Db, me: &str) -> Result<(), String> {
        match db
            .query(&q(
                "SELECT count(*) AS n, pg_sleep(0.02) FROM items",
                Some(me),
                vec![],
            ))
            .await
        {
            Ok(r) if cell(&r, "n") == &json!(3) => Ok(()),
            Ok(r) => Err(format!("isolation: {r:?}")),
            Err(e) if e.kind().status() == 503 => Err(format!("503:{}", e.code())),
            Err(e) => Err(format!("unexpected: {} {e}", e.code())),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| c.restart());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut unavailable = 0;
    for w in workers {
        let (ok, errors) = bounded("worker", w).await.unwrap();
        assert!(ok > 0);
        for e in errors {
            assert!(
                e.starts_with("503:"),
                "only 503s are acceptable during a restart: {e}"
            );
            unavailable += 1;
        }
    }
    eprintln!("requests failing with 503 during the restart: {unavailable}");
    // After the restart every request succeeds.
    for i in 0..20 {
        check(&db, &tenant(i % TENANTS))
            .await
            .unwrap_or_else(|e| panic!("after restart: {e}"));
    }
}

#[tokio::test]
async fn privileged_roles_are_refused() {
    let c = cluster().await;
    c.admin()
        .await
        .batch_execute(
            "CREATE ROLE su LOGIN SUPERUSER PASSWORD 'su-pw';
             CREATE ROLE byp LOGIN BYPASSRLS PASSWORD 'byp-pw';",
        )
        .await
        .unwrap();
    for (role, pw, what) in [("su", "su-pw", "superuser"), ("byp", "byp-pw", "BYPASSRLS")] {
        let source: Arc<dyn CredentialSource> =
            Arc::new(StaticCredentials::new(creds(&c, role, pw)));
        let db = Db::new(config(1), source.clone()).unwrap();
        let err = bounded("warm", db.warm()).await.unwrap_err();
        assert_eq!(err.code(), "PrivilegedRole", "{role}: {err}");
        assert!(err.to_string().contains(what), "{err}");
        let err = bounded("query", db.query(&q("SELECT 1", Some("t"), vec![])))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "PrivilegedRole");

        let mut cfg = config(1);
        cfg.allow_privileged_role = true;
        let db = Db::new(cfg, source).unwrap();
        assert_eq!(bounded("warm", db.warm()).await.unwrap(), 1, "{role}");
    }
    // The ordinary role is accepted.
    assert_eq!(
        bounded("warm", app_db(&c, config(1)).warm()).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn type_mapping_round_trips() {
    let c = cluster().await;
    c.admin_on(DB)
        .await
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('calm', 'busy');
             CREATE TABLE types_t (
                 b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric,
                 n2 numeric(10,2), t text, vc varchar(20), u uuid, j json, jb jsonb,
                 tz timestamptz, ts timestamp, d date, tm time, by bytea, ai4 int4[],
                 at text[], ai8 int8[], an numeric[], m mood);
             ALTER TABLE types_t OWNER TO app;",
        )
        .await
        .unwrap();
    let db = app_db(&c, config(2));
    // Parsed with arbitrary precision: the text of every number is kept.
    let row: serde_json::Map<String, Value> = serde_json::from_str(
        r#"{
            "b": true, "i2": -32768, "i4": 2147483647, "i8": 9007199254740993,
            "f4": 0.1, "f8": 1.0000000000000002,
            "n": 123456789012345678901234567890.123456789, "n2": 1.50,
            "t": "h\u00e9llo ' \" \\", "vc": "abc", "u": "6f1c3b7e-8a4b-4c1d-9e2f-0a1b2c3d4e5f",
            "j": {"a": [1, 2.50, "x"], "big": 12345678901234567890},
            "jb": {"k": {"n": 1.0}},
            "tz": "2024-02-29T12:34:56.789012Z", "ts": "2024-02-29T12:34:56.500",
            "d": "2024-02-29", "tm": "23:59:59.250", "by": "AAEC/w==",
            "ai4": [1, null, 3], "at": ["a", "b c", null],
            "ai8": [9007199254740993, -9223372036854775808], "an": [1.5, "NaN"], "m": "busy"
        }"#,
    )
    .unwrap();
    let cols: Vec<&String> = row.keys().collect();
    let insert = format!(
        "INSERT INTO types_t ({}) VALUES ({})",
        cols.iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        (1..=cols.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let params: Vec<Value> = row.values().cloned().collect();
    let nulls = vec![Value::Null; cols.len()];
    for p in [params, nulls] {
        let r = bounded("insert", db.query(&q(&insert, Some("t"), p)))
            .await
            .unwrap();
        assert_eq!(r.row_count, 1);
    }
    let select = format!(
        "SELECT {} FROM types_t ORDER BY i4 NULLS LAST",
        cols.iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = bounded("select", db.query(&q(&select, Some("t"), vec![])))
        .await
        .unwrap();
    assert_eq!(r.row_count, 2);
    // Compare as text: numbers must keep every digit.
    assert_eq!(
        serde_json::to_string(&r.rows[0]).unwrap(),
        serde_json::to_string(&row).unwrap()
    );
    assert!(r.rows[1].values().all(Value::is_null), "{:?}", r.rows[1]);
    let types: BTreeMap<&str, &str> = r
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str()))
        .collect();
    assert_eq!(types["i8"], "int8");
    assert_eq!(types["ai4"], "_int4");
    assert_eq!(types["m"], "mood");

    // Decimal strings, specials and multi-dimensional arrays.
    let r = bounded(
        "specials",
        db.query(&q(
            "SELECT $1::int8 AS big, $2::numeric AS exp, ARRAY[[1,2],[3,4]] AS m2, \
             '-Infinity'::numeric AS ninf, 'NaN'::float8 AS fnan, 'infinity'::timestamptz AS tinf, \
             'x'::\"char\" AS ch, NULL::int4 AS nul, '{}'::int4[] AS empty",
            Some("t"),
            vec![json!("9007199254740993"), json!("1.5e3")],
        )),
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_string(&r.rows[0]).unwrap(),
        r#"{"big":9007199254740993,"ch":"x","empty":[],"exp":1500,"fnan":"NaN","m2":[[1,2],[3,4]],"ninf":"-Infinity","nul":null,"tinf":"infinity"}"#
    );
}

#[tokio::test]
async fn request_errors() {
    let c = cluster().await;
    let db = app_db(&c, config(1));
    let t = Some("tenant-01");
    let err = |r: Result<QueryResponse, DbError>| r.unwrap_err();

    let e = err(bounded(
        "p",
        db.query(&q(
            "SELECT $1::int4 + $2::int4 AS s",
            t,
            vec![json!(1), json!("abc-secret")],
        )),
    )
    .await);
    assert!(matches!(e, DbError::ParamType { index: 2, .. }), "{e:?}");
    assert!(
        e.to_string().contains("$2") && !e.to_string().contains("abc-secret"),
        "{e}"
    );
    assert_eq!(e.kind().status(), 400);

    let e = err(bounded("c", db.query(&q("SELECT $1::int4 AS s", t, vec![]))).await);
    assert_eq!(e.code(), "ParamCount");

    let e = err(bounded("syntax", db.query(&q("SELEC 1", t, vec![]))).await);
    assert_eq!((e.code(), e.sqlstate()), ("SqlError", Some("42601")), "{e}");
    assert_eq!(e.kind().status(), 400);

    let e = err(bounded("tenant", db.query(&q("SELECT 1", None, vec![]))).await);
    assert_eq!(e.code(), "TenantRequired");
    let e = err(bounded("tenant", db.query(&q("SELECT 1", Some(""), vec![]))).await);
    assert_eq!(e.code(), "TenantRequired");

    let mut req = q(
        "SELECT current_setting('app.user_id', true) AS u",
        t,
        vec![],
    );
    req.context.insert("app.role".into(), "admin".into());
    let e = err(bounded("setting", db.query(&req)).await);
    assert_eq!(e.code(), "SettingNotAllowed");
    req.context.clear();
    req.context.insert("app.user_id".into(), "u-1".into());
    let r = bounded("setting ok", db.query(&req)).await.unwrap();
    assert_eq!(cell(&r, "u"), &json!("u-1"));

    let e = err(bounded(
        "unsupported",
        db.query(&q("SELECT point(1,2) AS p", t, vec![])),
    )
    .await);
    assert_eq!(e.code(), "UnsupportedType");

    let e = err(bounded(
        "unique",
        db.query(&q(
            "INSERT INTO items (tenant, name) VALUES ('tenant-01', 'row-1')",
            t,
            vec![],
        )),
    )
    .await);
    assert_eq!((e.code(), e.kind().status()), ("UniqueViolation", 409));

    // A transaction is atomic: the first insert is rolled back with the failing second one.
    let e = bounded(
        "tx",
        db.transaction(&tx(
            t,
            &[
                "INSERT INTO items (tenant, name) VALUES ('tenant-01', 'new')",
                "INSERT INTO items (tenant, name) VALUES ('tenant-01', 'row-1')",
            ],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "UniqueViolation");
    assert_eq!(
        admin_count(&c, "SELECT count(*) FROM items WHERE name = 'new'").await,
        0
    );
    let e = bounded("empty tx", db.transaction(&tx(t, &[])))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "InvalidRequest");

    // All of that on one connection, which stayed usable.
    assert_eq!(db.stats().created, 1);
    assert_eq!(db.stats().discarded, 0);
    check_isolation(&db, "tenant-01").await.unwrap();
}

#[tokio::test]
async fn plaintext_to_a_remote_host_is_refused() {
    let source = StaticCredentials::new(DbCredentials {
        host: "192.0.2.10".into(), // TEST-NET-1: never contacted, refused before connecting
        port: 5432,
        dbname: "d".into(),
        username: "u".into(),
        password: "p".into(),
    });
    let db = Db::new(config(1), Arc::new(source)).unwrap();
    let e = bounded("warm", db.warm()).await.unwrap_err();
    assert_eq!(e.code(), "TlsRequired", "{e}");
    // A missing CA bundle is a construction error.
    let cfg = DbConfig::new(TlsMode::Require {
        ca_bundle: "/nonexistent/ca.pem".into(),
    });
    let e = Db::new(cfg, Arc::new(StaticCredentials::new(creds_dummy()))).unwrap_err();
    assert_eq!(e.code(), "TlsError");
}

#[tokio::test]
async fn tls_with_certificate_and_hostname_verification() {
    let c = cluster().await;
    let ca = c.enable_tls();
    for host in ["127.0.0.1", "localhost"] {
        let mut cfg = config(1);
        cfg.tls = TlsMode::Require {
            ca_bundle: ca.clone(),
        };
        let mut cr = creds(&c, "app", APP_PW);
        cr.host = host.into();
        let db = Db::new(cfg, Arc::new(StaticCredentials::new(cr))).unwrap();
        let r = bounded(
            "tls query",
            db.query(&q(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                Some("t"),
                vec![],
            )),
        )
        .await
        .unwrap();
        assert_eq!(cell(&r, "ssl"), &json!(true), "{host}");
    }
    // After the server gets a certificate from another CA, the old bundle rejects it.
    let old_ca = ca.with_extension("old.pem");
    std::fs::copy(&ca, &old_ca).unwrap();
    let new_ca = c.enable_tls();
    assert_ne!(
        std::fs::read(&old_ca).unwrap(),
        std::fs::read(&new_ca).unwrap()
    );
    let mut cfg = config(1);
    cfg.tls = TlsMode::Require { ca_bundle: old_ca };
    let db = Db::new(
        cfg,
        Arc::new(StaticCredentials::new(creds(&c, "app", APP_PW))),
    )
    .unwrap();
    let e = bounded("wrong CA", db.warm()).await.unwrap_err();
    assert_eq!(e.code(), "TlsError", "{e}");
}

fn creds_dummy() -> DbCredentials {
    DbCredentials {
        host: "localhost".into(),
        port: 1,
        dbname: "d".into(),
        username: "u".into(),
        password: "p".into(),
    }
}

/// Mean latency of a one-statement request on a warm connection (pipelined: one round trip).
#[tokio::test]
async fn pipelined_request_latency() {
    let c = cluster().await;
    let db = app_db(&c, config(1));
    check_isolation(&db, "tenant-01").await.unwrap();
    let n = 500;
    let started = Instant::now();
    for _ in 0..n {
        bounded(
            "q",
            db.query(&q("SELECT 1 AS one", Some("tenant-01"), vec![])),
        )
        .await
        .unwrap();
    }
    let per = started.elapsed() / n;
    eprintln!("mean request latency on loopback: {per:?}");
    // One round trip instead of five (BEGIN, set_config x2, statement, COMMIT) per request.
    let raw = c.admin_on(DB).await;
    let started = Instant::now();
    for _ in 0..n {
        raw.batch_execute("BEGIN").await.unwrap();
        raw.query("SELECT set_config('app.tenant_id', $1, true)", &[&"t"])
            .await
            .unwrap();
        raw.query("SELECT set_config('app.user_id', $1, true)", &[&"t"])
            .await
            .unwrap();
        raw.query("SELECT 1", &[]).await.unwrap();
        raw.batch_execute("COMMIT; RESET ALL; RESET ROLE")
            .await
            .unwrap();
    }
    let sequential = started.elapsed() / n;
    eprintln!("same steps awaited one by one: {sequential:?}");
    assert!(
        per < sequential,
        "pipelined {per:?} vs sequential {sequential:?}"
    );
}
