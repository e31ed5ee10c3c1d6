//! The database path end to end: the real `hearth` binary, credentials from a Secrets
//! Manager secret in moto, a real PostgreSQL 15 with SCRAM authentication and tables under
//! ENABLE + FORCE ROW LEVEL SECURITY.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use hearth_tests::hearth::{Hearth, SimEnv};
use hearth_tests::moto::Moto;
use hearth_tests::postgres::PgCluster;
use serde_json::{json, Value};

const DB: &str = "hearth";
const SECRET: &str = "db/app";

/// A cluster with role `app` (SCRAM) owning database `hearth` and an RLS table `notes`.
async fn cluster() -> PgCluster {
    let c = PgCluster::start();
    c.create_role("app", "pw-1").await;
    c.create_database(DB, "app").await;
    c.admin_on(DB)
        .await
        .batch_execute(
            "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant text NOT NULL, body text NOT NULL);
             GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO app;
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app;
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
             ALTER TABLE notes FORCE ROW LEVEL SECURITY;
             CREATE POLICY isolation ON notes
                 USING (tenant = NULLIF(current_setting('app.tenant_id', true), ''))
                 WITH CHECK (tenant = NULLIF(current_setting('app.tenant_id', true), ''));
             INSERT INTO notes (tenant, body) VALUES ('a', 'a-1'), ('a', 'a-2'), ('b', 'b-1');",
        )
        .await
        .unwrap();
    c
}

fn rds_secret(pg: &PgCluster, user: &str, password: &str) -> String {
    json!({"engine": "postgres", "host": pg.host(), "port": pg.port(), "dbname": DB,
           "username": user, "password": password})
    .to_string()
}

fn hearth_env(moto: &Moto, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.push(("HEARTH_DB_SECRET_ID".into(), SECRET.into()));
    env.push(("HEARTH_DB_TLS".into(), "disable".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn bodies(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn queries_run_under_the_request_tenant() {
    let pg = cluster().await;
    let moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name(SECRET)
        .secret_string(rds_secret(&pg, "app", "pw-1"))
        .send()
        .await
        .unwrap();
    let h = Hearth::start(&hearth_env(&moto, &[])).await;

    let q = |tenant: &str| json!({"sql": "SELECT body FROM notes ORDER BY body", "tenant": tenant});
    let (status, a) = h.post("/v1/db/query", &q("a")).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(bodies(&a), ["a-1", "a-2"]);
    assert_eq!(a["columns"], json!([{"name": "body", "type": "text"}]));
    assert_eq!(bodies(&h.post("/v1/db/query", &q("b")).await.1), ["b-1"]);
    assert_eq!(
        bodies(&h.post("/v1/db/query", &q("nobody")).await.1),
        Vec::<String>::new()
    );

    // No tenant: refused. Cross-tenant insert: the policy's WITH CHECK refuses it.
    let (status, body) = h.post("/v1/db/query", &json!({"sql": "SELECT 1"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("TenantRequired"))
    );
    let (status, body) = h
        .post(
            "/v1/db/query",
            &json!({"sql": "INSERT INTO notes (tenant, body) VALUES ($1, $2)", "params": ["b", "sneaky"], "tenant": "a"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("PolicyViolation")),
        "{body}"
    );

    // A transaction is all or nothing.
    let (status, body) = h
        .post(
            "/v1/db/transaction",
            &json!({"tenant": "a", "statements": [
                {"sql": "INSERT INTO notes (tenant, body) VALUES ($1, $2)", "params": ["a", "a-3"]},
                {"sql": "SELECT * FROM no_such_table"}]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("SqlError")),
        "{body}"
    );
    assert_eq!(
        bodies(&h.post("/v1/db/query", &q("a")).await.1),
        ["a-1", "a-2"]
    );

    // int8 beyond 2^53 survives the HTTP hop exactly.
    let (_, body) = h
        .post(
            "/v1/db/query",
            &json!({"sql": "SELECT $1::int8 AS n", "params": ["9007199254740993"], "tenant": "a"}),
        )
        .await;
    assert!(
        serde_json::to_string(&body["rows"][0]["n"]).unwrap() == "9007199254740993",
        "{body}"
    );

    let (_, m) = h.get("/v1/metrics").await;
    assert!(
        m["counters"]["db.connections_reused"].as_u64().unwrap() >= 5,
        "{m}"
    );
    let out = h.proc.output();
    assert!(
        !out.contains("pw-1"),
        "the database password reached the log:\n{out}"
    );
}

/// Rotation as Secrets Manager's rotation Lambda does it: new password on the role and in
/// the secret's AWSPENDING version, then AWSCURRENT moves. Requests keep succeeding; new
/// connections fail once with 28P01, refetch the secret and retry.
#[tokio::test]
async fn password_rotation_under_load_loses_no_request() {
    let pg = cluster().await;
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    let created = sm
        .create_secret()
        .name(SECRET)
        .secret_string(rds_secret(&pg, "app", "pw-1"))
        .send()
        .await
        .unwrap();
    let h = Hearth::start(&hearth_env(
        &moto,
        &[
            ("HEARTH_DB_POOL_MAX", "4"),
            ("HEARTH_DB_VERIFY_IDLE_AFTER", "0"),
        ],
    ))
    .await;

    let stop = Instant::now() + Duration::from_secs(3);
    let load = async {
        let mut done = 0;
        let mut failed = Vec::new();
        while Instant::now() < stop {
            let (status, body) = h
                .post(
                    "/v1/db/query",
                    &json!({"sql": "SELECT body FROM notes", "tenant": "a"}),
                )
                .await;
            if status != 200 {
                failed.push(body);
            }
            done += 1;
        }
        (done, failed)
    };
    let rotate = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pending = sm
            .put_secret_value()
            .secret_id(SECRET)
            .secret_string(rds_secret(&pg, "app", "pw-2"))
            .version_stages("AWSPENDING")
            .send()
            .await
            .unwrap();
        pg.set_password("app", "pw-2").await;
        sm.update_secret_version_stage()
            .secret_id(SECRET)
            .version_stage("AWSCURRENT")
            .move_to_version_id(pending.version_id().unwrap())
            .remove_from_version_id(created.version_id().unwrap())
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Force new connections: they need the new password.
        pg.terminate_backends("app").await
    };
    let ((done, failed), killed) = tokio::join!(load, rotate);
    // Requests in flight on a killed backend may fail; everything else must not.
    assert!(
        failed.len() <= killed,
        "{} of {done} failed (killed {killed}): {failed:?}",
        failed.len()
    );
    // After the kill, a burst that opens new connections: zero failures.
    let read_b = json!({"sql": "SELECT body FROM notes", "tenant": "b"});
    let burst = (0..12).map(|_| h.post("/v1/db/query", &read_b));
    for (status, body) in futures::future::join_all(burst).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(bodies(&body), ["b-1"]);
    }
    let (_, m) = h.get("/v1/metrics").await;
    assert!(
        m["counters"]["db.password_rotations"].as_u64().unwrap() >= 1,
        "{m}"
    );
    let out = h.proc.output();
    assert!(
        !out.contains("pw-1") && !out.contains("pw-2"),
        "a password reached the log:\n{out}"
    );
}

#[tokio::test]
async fn privileged_roles_are_refused_at_start() {
    let pg = cluster().await;
    pg.admin()
        .await
        .batch_execute("CREATE ROLE boss LOGIN SUPERUSER PASSWORD 'boss-pw'")
        .await
        .unwrap();
    let moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name(SECRET)
        .secret_string(rds_secret(&pg, "boss", "boss-pw"))
        .send()
        .await
        .unwrap();
    let h = Hearth::start(&hearth_env(&moto, &[])).await;
    // Prewarm opens the first connection and refuses the role, saying why.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.proc.output().contains("PrivilegedRole") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = h.proc.output();
    assert!(out.contains("PrivilegedRole"), "{out}");
    let (status, body) = h
        .post("/v1/db/query", &json!({"sql": "SELECT 1", "tenant": "a"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("PrivilegedRole")),
        "{body}"
    );
    assert!(!out.contains("boss-pw"));
}

/// Lambda freezes the environment; meanwhile the server drops idle connections. The first
/// request after the thaw must succeed, not fail on a dead pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_query_after_a_freeze_that_outlived_the_connections_succeeds() {
    let pg = cluster().await;
    let moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name(SECRET)
        .secret_string(rds_secret(&pg, "app", "pw-1"))
        .send()
        .await
        .unwrap();
    let extra = [
        ("HEARTH_DB_POOL_MIN", "2"),
        ("HEARTH_DB_VERIFY_IDLE_AFTER", "200ms"),
    ];
    let mut env = SimEnv::start(&hearth_env(&moto, &extra), true).await;
    env.start_function(&hearth_tests::target_bin("probe-function"), &[]);
    let query = json!({"query": {"sql": "SELECT body FROM notes", "tenant": "a"}});
    let (_, out) = env.invoke(query.clone()).await;
    assert_eq!(out["status"], 200, "{out}");
    env.wait_frozen(Duration::from_secs(5)).await;
    // While frozen: the database kills every connection of the app role.
    let killed = pg.terminate_backends("app").await;
    assert!(killed >= 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, out) = env.invoke(query).await;
    assert_eq!(
        out["status"], 200,
        "first query after the thaw failed: {out}"
    );
    assert_eq!(bodies(&out["result"]), ["a-1", "a-2"]);
}

/// Runs `JSON.parse` in Node on `body` and returns what `script` prints (`r` is the result).
fn node_parse(body: &str, script: &str) -> Value {
    let mut child = std::process::Command::new("node")
        .args([
            "-e",
            &format!(
                "const r = JSON.parse(require('fs').readFileSync(0, 'utf8')); \
                 process.stdout.write(JSON.stringify({script}));"
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node (scripts/install-test-deps.sh installs it)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "node failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn string_numbers_stay_exact_through_javascript_json_parse() {
    let pg = cluster().await;
    let moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name(SECRET)
        .secret_string(rds_secret(&pg, "app", "pw-1"))
        .send()
        .await
        .unwrap();
    // The default for requests that do not say is string; a request can ask for numbers.
    let h = Hearth::start(&hearth_env(&moto, &[("HEARTH_DB_NUMBERS", "string")])).await;
    let sql = "SELECT 9007199254740993::int8 AS big, \
               123456789012345678901234567890::numeric AS wide, 1.50::numeric(5,2) AS scaled, \
               ARRAY[9007199254740993, NULL]::int8[] AS arr, 'NaN'::numeric AS nan, \
               7::int4 AS small, '{\"n\": 9007199254740993}'::jsonb AS doc";
    let raw = |body: Value| {
        let h = &h;
        async move {
            let resp = h
                .http
                .post(h.url("/v1/db/query"))
                .header(
                    "X-Aws-Parameters-Secrets-Token",
                    hearth_tests::hearth::TOKEN,
                )
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    let pick = "[r.rows[0].big, r.rows[0].wide, r.rows[0].scaled, r.rows[0].arr, \
                r.rows[0].nan, r.rows[0].small, typeof r.rows[0].big]";
    let strings = raw(json!({"sql": sql, "tenant": "a"})).await;
    assert_eq!(
        node_parse(&strings, pick),
        json!([
            "9007199254740993",
            "123456789012345678901234567890",
            "1.50",
            ["9007199254740993", null],
            "NaN",
            7,
            "string"
        ]),
        "{strings}"
    );
    // Inside json/jsonb numbers stay numbers (they are the document's own).
    assert!(
        strings.contains(r#""doc":{"n":9007199254740993}"#),
        "{strings}"
    );
    // As numbers, the wire is exact but JSON.parse rounds: why the string mode exists.
    let numbers = raw(json!({"sql": sql, "tenant": "a", "numbers": "number"})).await;
    assert!(numbers.contains(r#""big":9007199254740993"#), "{numbers}");
    assert!(
        numbers.contains(r#""wide":123456789012345678901234567890"#),
        "{numbers}"
    );
    let parsed = node_parse(&numbers, "[String(r.rows[0].big), String(r.rows[0].wide)]");
    assert_ne!(
        parsed[0], "9007199254740993",
        "JSON.parse kept a 2^53+1 number?"
    );
    // Transactions take the option too; a bad value is a 400 naming the accepted ones.
    let (status, tx) = h
        .post(
            "/v1/db/transaction",
            &json!({"tenant": "a", "numbers": "string",
                    "statements": [{"sql": "SELECT 9007199254740993::int8 AS big"}]}),
        )
        .await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(tx["results"][0]["rows"][0]["big"], "9007199254740993");
    let (status, bad) = h
        .post(
            "/v1/db/query",
            &json!({"sql": "SELECT 1", "tenant": "a", "numbers": "bigint"}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("string"),
        "{bad}"
    );
}
