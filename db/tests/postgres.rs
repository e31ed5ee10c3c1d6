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
             GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app;
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app;
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
        row_mode: None,
        numbers: None,
    }
}

fn tx(tenant: Option<&str>, sqls: &[&str]) -> TransactionRequest {
    TransactionRequest {
        tenant: tenant.map(str::to_owned),
        context: BTreeMap::new(),
        row_mode: None,
        numbers: None,
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
    assert!(
        r.rows[1].as_object().unwrap().values().all(Value::is_null),
        "{:?}",
        r.rows[1]
    );
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

/// New sessions the server has seen for database `hearth` (counted when a backend starts).
async fn sessions(c: &PgCluster) -> i64 {
    // Exiting backends flush their statistics as they go; give them a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Read through a connection to another database, which is not counted.
    c.admin()
        .await
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = 'hearth'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Aurora's master user (NOSUPERUSER NOBYPASSRLS, member of `rds_superuser`, owner of the
/// tables), owners of RLS tables (not forced, forced, through a role), members of BYPASSRLS and
/// CREATEROLE roles, a CREATEROLE role, readers of a partition without RLS, of a definer view
/// and of a materialized view over an RLS table, the owner of a policy's function, and roles
/// whose defaults change the role, the search path or row_security are each refused with the
/// reason and the fix — and a refusal does not reconnect on every request.
#[tokio::test]
async fn roles_that_escape_rls_are_refused_once_per_credential() {
    let c = cluster().await;
    c.admin_on(DB)
        .await
        .batch_execute(
            "CREATE ROLE rds_superuser NOLOGIN;
             CREATE ROLE master LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD 'm-pw';
             GRANT rds_superuser TO master;
             CREATE TABLE orders (id int, tenant text);
             ALTER TABLE orders OWNER TO master;
             ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
             CREATE ROLE owner1 LOGIN PASSWORD 'o-pw';
             CREATE TABLE ledger (id int, tenant text);
             ALTER TABLE ledger OWNER TO owner1;
             ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
             CREATE ROLE ledger_owner NOLOGIN;
             CREATE TABLE journal (id int);
             ALTER TABLE journal OWNER TO ledger_owner;
             ALTER TABLE journal ENABLE ROW LEVEL SECURITY;
             CREATE ROLE via_member LOGIN NOINHERIT PASSWORD 'v-pw';
             GRANT ledger_owner TO via_member;
             CREATE ROLE bypasser NOLOGIN BYPASSRLS;
             CREATE ROLE escalator LOGIN PASSWORD 'e-pw';
             GRANT bypasser TO escalator;
             CREATE ROLE creator LOGIN CREATEROLE PASSWORD 'c-pw';
             CREATE ROLE admins NOLOGIN CREATEROLE;
             CREATE ROLE cr_member LOGIN PASSWORD 'cm-pw';
             GRANT admins TO cr_member;
             CREATE ROLE forced_owner LOGIN PASSWORD 'fo-pw';
             CREATE TABLE forced (id int);
             ALTER TABLE forced OWNER TO forced_owner;
             ALTER TABLE forced ENABLE ROW LEVEL SECURITY;
             ALTER TABLE forced FORCE ROW LEVEL SECURITY;
             CREATE TABLE pt (tenant text) PARTITION BY LIST (tenant);
             CREATE TABLE pt_b PARTITION OF pt FOR VALUES IN ('b');
             ALTER TABLE pt ENABLE ROW LEVEL SECURITY;
             CREATE ROLE part_reader LOGIN PASSWORD 'pr-pw';
             GRANT SELECT ON pt, pt_b TO part_reader;
             CREATE VIEW all_items AS SELECT * FROM items;
             CREATE ROLE view_reader LOGIN PASSWORD 'vr-pw';
             GRANT SELECT ON all_items TO view_reader;
             CREATE MATERIALIZED VIEW items_mv AS SELECT * FROM items;
             CREATE ROLE mv_reader LOGIN PASSWORD 'mv-pw';
             GRANT SELECT ON items_mv TO mv_reader;
             CREATE ROLE fn_owner LOGIN PASSWORD 'fn-pw';
             CREATE FUNCTION tenant_ok(t text) RETURNS bool LANGUAGE sql STABLE
                 AS $$ SELECT t = current_setting('app.tenant_id', true) $$;
             ALTER FUNCTION tenant_ok(text) OWNER TO fn_owner;
             CREATE TABLE gated (tenant text);
             ALTER TABLE gated ENABLE ROW LEVEL SECURITY;
             CREATE POLICY gate ON gated USING (tenant_ok(tenant));
             CREATE ROLE other_role NOLOGIN;
             CREATE ROLE defaulted LOGIN PASSWORD 'd-pw';
             GRANT other_role TO defaulted;
             ALTER ROLE defaulted SET role = 'other_role';
             CREATE ROLE pathy LOGIN PASSWORD 'p-pw';
             ALTER ROLE pathy SET search_path = public, pg_catalog;
             CREATE ROLE norls LOGIN PASSWORD 'n-pw';
             ALTER ROLE norls SET row_security = off;",
        )
        .await
        .unwrap();
    for (role, pw, wants) in [
        (
            "master",
            "m-pw",
            &["\"rds_superuser\"", "orders", "FORCE ROW LEVEL SECURITY"][..],
        ),
        (
            "owner1",
            "o-pw",
            &["ledger", "FORCE ROW LEVEL SECURITY"][..],
        ),
        ("via_member", "v-pw", &["journal"][..]),
        ("escalator", "e-pw", &["\"bypasser\"", "REVOKE"][..]),
        ("creator", "c-pw", &["CREATEROLE", "NOCREATEROLE"][..]),
        ("cr_member", "cm-pw", &["\"admins\""][..]),
        (
            "forced_owner",
            "fo-pw",
            &["forced", "NOLOGIN role the owner"][..],
        ),
        ("part_reader", "pr-pw", &["partition public.pt_b"][..]),
        (
            "view_reader",
            "vr-pw",
            &["view public.all_items", "security_invoker"][..],
        ),
        ("mv_reader", "mv-pw", &["view public.items_mv"][..]),
        ("fn_owner", "fn-pw", &["tenant_ok(text)"][..]),
        ("defaulted", "d-pw", &["RESET role"][..]),
        ("pathy", "p-pw", &["before pg_catalog"][..]),
        ("norls", "n-pw", &["row_security"][..]),
    ] {
        let db = Db::new(
            config(2),
            Arc::new(StaticCredentials::new(creds(&c, role, pw))),
        )
        .unwrap();
        let err = bounded("warm", db.warm()).await.unwrap_err();
        assert_eq!(err.code(), "PrivilegedRole", "{role}: {err}");
        let text = err.to_string();
        for want in wants {
            assert!(text.contains(want), "{role}: {want:?} missing from: {text}");
        }
        let before = sessions(&c).await;
        for _ in 0..20 {
            let err = bounded("query", db.query(&q("SELECT 1", Some("t"), vec![])))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "PrivilegedRole", "{role}: {err}");
        }
        let after = sessions(&c).await;
        assert_eq!(
            after - before,
            0,
            "{role}: refused requests opened connections"
        );
    }

    // The refusal is kept until the credentials change: fixing the credentials is enough.
    let source = Arc::new(SwappableCredentials::new(creds(&c, "owner1", "o-pw")));
    let db = Db::new(config(1), source.clone()).unwrap();
    assert_eq!(
        bounded("warm", db.warm()).await.unwrap_err().code(),
        "PrivilegedRole"
    );
    c.set_password("owner1", "o-pw-2").await;
    c.admin_on(DB)
        .await
        .batch_execute("ALTER TABLE ledger OWNER TO ledger_owner")
        .await
        .unwrap();
    source.publish_password("o-pw-2");
    // Same (cached) credentials: still refused without connecting.
    assert_eq!(
        bounded("q", db.query(&q("SELECT 1", Some("t"), vec![])))
            .await
            .unwrap_err()
            .code(),
        "PrivilegedRole"
    );
    let db = Db::new(
        config(1),
        Arc::new(StaticCredentials::new(creds(&c, "owner1", "o-pw-2"))),
    )
    .unwrap();
    bounded("q", db.query(&q("SELECT 1 AS one", Some("t"), vec![])))
        .await
        .unwrap();
}

/// Server errors carry the SQLSTATE and the names the server gives, but never a value: data
/// exceptions quote their input, so their messages are withheld; DETAIL is never used.
#[tokio::test]
async fn errors_name_objects_never_values() {
    let c = cluster().await;
    c.admin_on(DB)
        .await
        .batch_execute("CREATE TYPE brand AS ENUM ('visa'); GRANT USAGE ON TYPE brand TO app;")
        .await
        .unwrap();
    let db = app_db(&c, config(1));
    let secret = "4111-1111-SECRET";
    for (sql, state) in [
        ("SELECT $1::text::brand AS b", "22P02"),
        ("SELECT $1::text::int AS n", "22P02"),
        ("SELECT $1::text::date AS d", "22007"),
        ("SELECT $1::text::numeric AS n", "22P02"),
        (
            "SELECT to_tsquery('simple', $1 || ' &')::text AS q",
            "42601",
        ),
        ("SELECT has_schema_privilege($1, 'usage') AS p", "3F000"),
        ("SELECT current_setting($1) AS s", "42704"),
        ("SELECT $1::text::regclass::text AS r", "42P01"),
    ] {
        let err = bounded(
            "q",
            db.query(&q(sql, Some("tenant-01"), vec![json!(secret)])),
        )
        .await
        .unwrap_err();
        assert_eq!(err.sqlstate(), Some(state), "{sql}: {err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(secret), "{sql}: {shown}");
    }
    // A unique violation names the constraint and table; the key's value is not shown.
    let err = bounded(
        "dup",
        db.query(&q(
            "INSERT INTO items (tenant, name) VALUES ('tenant-01', $1)",
            Some("tenant-01"),
            vec![json!("row-1")],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "UniqueViolation", "{err}");
    let server = err.server().unwrap();
    assert_eq!(server.constraint.as_deref(), Some("items_tenant_name_key"));
    assert_eq!(server.table.as_deref(), Some("public.items"));
    assert!(!format!("{err} {err:?}").contains("row-1"), "{err:?}");
    // A not-null violation names the column.
    let err = bounded(
        "null",
        db.query(&q(
            "INSERT INTO items (tenant, name) VALUES ('tenant-01', NULL)",
            Some("tenant-01"),
            vec![],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.server().unwrap().column.as_deref(), Some("name"));
}

/// Duplicate column names are refused in object mode (nothing runs) and kept in array mode; the
/// result cap is checked while streaming; a numeric parameter at the edge of i64 is a clean 400.
#[tokio::test]
async fn result_shapes_caps_and_numeric_edges() {
    let c = cluster().await;
    let mut cfg = config(1);
    cfg.max_result_bytes = 20_000;
    let db = app_db(&c, cfg);
    let me = "tenant-01";
    let err = bounded(
        "dup",
        db.query(&q(
            "INSERT INTO items (tenant, name) VALUES ($1, 'dup') RETURNING id, name AS id",
            Some(me),
            vec![json!(me)],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "DuplicateColumn", "{err}");
    assert_eq!(
        admin_count(&c, "SELECT count(*) FROM items WHERE name = 'dup'").await,
        0,
        "a refused statement must not have run"
    );
    let mut req = q("SELECT 1 AS a, 2 AS a, NULL AS b", Some(me), vec![]);
    req.row_mode = Some(hearth::wire::RowMode::Array);
    let r = bounded("array", db.query(&req)).await.unwrap();
    assert_eq!(r.rows, vec![json!([1, 2, null])]);
    assert_eq!(r.columns.len(), 3);

    // Over the cap: the rows stream past and are dropped; the outcome is stated.
    let err = bounded(
        "big",
        db.query(&q(
            "INSERT INTO items (tenant, name) SELECT $1, 'big-' || g \
             FROM generate_series(1, 5000) g RETURNING name",
            Some(me),
            vec![json!(me)],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "ResultTooLarge", "{err}");
    let committed = err.committed().unwrap();
    let stored = admin_count(&c, "SELECT count(*) FROM items WHERE name LIKE 'big-%'").await;
    assert_eq!(stored, if committed { 5000 } else { 0 }, "{err}");
    // The connection stays usable and isolated.
    let r = bounded(
        "count",
        db.query(&q(
            "SELECT count(*) AS n, bool_and(tenant = $1) AS own FROM items",
            Some(me),
            vec![json!(me)],
        )),
    )
    .await
    .unwrap();
    assert_eq!(r.rows[0]["n"], json!(3 + stored), "{r:?}");
    assert_eq!(r.rows[0]["own"], json!(true), "{r:?}");

    // A value small on the wire but huge as text counts at its decoded size.
    let err = bounded(
        "numeric",
        db.query(&q(
            "SELECT array_fill('1e131071'::numeric, ARRAY[100]) AS a",
            Some(me),
            vec![],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "ResultTooLarge", "{err}");

    // A reply the driver cannot read after a write that committed says so.
    let err = bounded(
        "copy",
        db.transaction(&tx(
            Some(me),
            &[
                "INSERT INTO items (tenant, name) VALUES ('tenant-01', 'before-copy')",
                "COPY (SELECT 1) TO STDOUT",
            ],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "ResultUndecodable", "{err}");
    assert_eq!(err.committed(), Some(true), "{err}");
    assert_eq!(
        admin_count(&c, "SELECT count(*) FROM items WHERE name = 'before-copy'").await,
        1
    );

    for bad in [
        "1e-9223372036854775808",
        "1e9223372036854775807",
        "-1e+9223372036854775807",
    ] {
        let err = bounded(
            "numeric",
            db.query(&q("SELECT $1::numeric AS n", Some(me), vec![json!(bad)])),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "ParamType", "{bad}: {err}");
    }
}

/// Hostile SQL of one request leaves nothing for the next on the same backend: each attack runs
/// as tenant-01, then tenant-02 on the one pooled connection must see only its own rows and
/// context, and none of the attack's objects. Session state is cleaned in place (same backend
/// pid); tampering with the connection's prepared statements closes it (new pid).
#[tokio::test]
async fn hostile_sql_leaves_nothing_for_the_next_request() {
    let c = cluster().await;
    let db = app_db(&c, config(1));
    let (a, b) = ("tenant-01", "tenant-02");
    let run_tx = |sqls: &'static [&'static str]| {
        let db = &db;
        async move {
            let _ = bounded("attack", db.transaction(&tx(Some(a), sqls))).await;
        }
    };
    // (attack, probe that must fail or be empty for B, same backend expected; None: either
    // way, the invariant allows both)
    let cases: &[(&[&str], &str, Option<bool>)] = &[
        (
            &["DECLARE c CURSOR WITH HOLD FOR SELECT * FROM items"],
            "SELECT name FROM pg_cursors WHERE name <> ''",
            Some(true),
        ),
        (
            &["CREATE TEMP TABLE scratch AS SELECT * FROM items"],
            "SELECT * FROM scratch",
            Some(true),
        ),
        (
            &["CREATE TEMP VIEW v AS SELECT * FROM items"],
            "SELECT * FROM v",
            Some(true),
        ),
        (
            &["INSERT INTO items (tenant, name) VALUES ('tenant-01', 'seq') RETURNING id"],
            "SELECT lastval()",
            Some(true),
        ),
        (
            &["SELECT pg_advisory_lock(42)", "LISTEN chan"],
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' \
             UNION ALL SELECT 0 FROM pg_listening_channels()",
            Some(true),
        ),
        (
            &[
                "COMMIT",
                "SELECT set_config('app.tenant_id', 'tenant-01', false)",
                "BEGIN",
            ],
            "SELECT 1 WHERE current_setting('app.tenant_id') <> 'tenant-02'",
            Some(true),
        ),
        (
            &[
                "SET ROLE NONE",
                "SELECT set_config('search_path', 'pg_temp', false)",
            ],
            "SELECT 1 WHERE current_setting('search_path') = 'pg_temp'",
            Some(true),
        ),
        (
            &["PREPARE evil(text, text) AS SELECT set_config($1, 'tenant-01', true)"],
            "SELECT name FROM pg_prepared_statements WHERE from_sql",
            Some(false),
        ),
        (&["DEALLOCATE ALL"], "SELECT 1 WHERE false", Some(false)),
        (
            &["COMMIT", "DISCARD ALL"],
            "SELECT 1 WHERE false",
            Some(false),
        ),
        (&["COPY items TO STDOUT"], "SELECT 1 WHERE false", None),
        (&["COPY items FROM STDIN"], "SELECT 1 WHERE false", None),
        (
            &["SET statement_timeout = 1", "SET idle_session_timeout = 1"],
            "SELECT pg_sleep(0.05) WHERE false",
            None,
        ),
    ];
    for (attack, probe, same) in cases {
        let before = pid(&db, a).await;
        run_tx(attack).await;
        let after = pid(&db, b).await;
        match same {
            Some(true) => assert_eq!(before, after, "{attack:?}: expected clean-up in place"),
            Some(false) => assert_ne!(before, after, "{attack:?}: expected the connection closed"),
            None => {}
        }
        match bounded("probe", db.query(&q(probe, Some(b), vec![]))).await {
            Ok(r) => assert!(r.rows.is_empty(), "{attack:?}: {probe} saw {:?}", r.rows),
            Err(e) => assert!(e.server().is_some(), "{attack:?}: {probe}: {e}"),
        }
        check_isolation(&db, b).await.unwrap();
    }
    // Replacing the statements the driver holds (its type lookups, prepared once an enum is
    // met) — by the names the server lists — closes the connection, and B still runs as B.
    c.admin_on(DB)
        .await
        .batch_execute("CREATE TYPE mood AS ENUM ('ok'); GRANT USAGE ON TYPE mood TO app;")
        .await
        .unwrap();
    bounded(
        "enum",
        db.query(&q("SELECT 'ok'::mood AS m", Some(a), vec![])),
    )
    .await
    .unwrap();
    let listed = bounded(
        "names",
        db.query(&q(
            "SELECT name FROM pg_prepared_statements",
            Some(a),
            vec![],
        )),
    )
    .await
    .unwrap();
    let names: Vec<String> = listed
        .rows
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !names.is_empty(),
        "the driver's type lookups should be listed"
    );
    let before = pid(&db, a).await;
    let statements = names
        .iter()
        .flat_map(|n| {
            [
                format!("DEALLOCATE {n}"),
                format!("PREPARE {n}(text, text) AS SELECT set_config($1, 'tenant-01', true)"),
            ]
        })
        .map(|sql| Statement {
            sql,
            params: vec![],
        })
        .collect();
    let req = TransactionRequest {
        tenant: Some(a.into()),
        context: BTreeMap::new(),
        row_mode: None,
        numbers: None,
        statements,
    };
    bounded("replace", db.transaction(&req)).await.unwrap();
    assert_ne!(before, pid(&db, b).await, "tampered connection kept");
    check_isolation(&db, b).await.unwrap();
    // Deallocating them (without replacing) closes the connection too.
    bounded(
        "enum",
        db.query(&q("SELECT 'ok'::mood AS m", Some(a), vec![])),
    )
    .await
    .unwrap();
    let before = pid(&db, a).await;
    bounded("dealloc", db.query(&q("DEALLOCATE ALL", Some(a), vec![])))
        .await
        .unwrap();
    assert_ne!(
        before,
        pid(&db, b).await,
        "connection with lost statements kept"
    );
    bounded(
        "enum",
        db.query(&q("SELECT 'ok'::mood AS m", Some(b), vec![])),
    )
    .await
    .unwrap();
}

/// A request abandoned by the client-side bound (its SQL turned the server's statement
/// timeout off) does not leave its backend running: the statement is cancelled.
#[tokio::test]
async fn abandoned_statements_are_cancelled_on_the_server() {
    let c = cluster().await;
    let mut cfg = config(1);
    cfg.statement_timeout = Duration::from_millis(300);
    let db = app_db(&c, cfg);
    let err = bounded(
        "sleep",
        db.transaction(&tx(
            Some("tenant-01"),
            &["SET statement_timeout = 0", "SELECT pg_sleep(1000)"],
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "StatementTimeout", "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running = admin_count(
            &c,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1000)%'",
        )
        .await;
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned statement still runs on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_isolation(&db, "tenant-02").await.unwrap();
}
