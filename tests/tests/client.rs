//! The typed client (`hearth::Client`) against the real `hearth` binary, moto and a real
//! PostgreSQL: every operation, and every error the client can provoke through its typed
//! API (a malformed JSON body cannot be sent through it; that path is covered in api.rs).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hearth::client::{Error, SecretVersion};
use hearth::wire::{QueryRequest, Statement, TransactionRequest};
use hearth::Client;
use hearth_tests::free_port;
use hearth_tests::hearth::{Hearth, TOKEN};
use hearth_tests::moto::Moto;
use hearth_tests::postgres::PgCluster;
use serde_json::json;

fn client(port: u16) -> Client {
    Client::builder().port(port).token(TOKEN).build().unwrap()
}

fn api_error(e: &Error) -> (u16, &str) {
    (e.status().unwrap_or(0), e.code().unwrap_or(""))
}

fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_health_warm_metrics_and_token_errors() {
    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("app/config")
        .secret_string(r#"{"user":"svc","limit":7,"password":"pw-one-1"}"#)
        .send()
        .await
        .unwrap();
    let pending = sm
        .put_secret_value()
        .secret_id("app/config")
        .secret_string(r#"{"user":"svc","limit":8,"password":"pw-two-2"}"#)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap()
        .version_id
        .unwrap();
    sm.create_secret()
        .name("plain")
        .secret_string("not json: hunter2")
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("blob")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
            1u8, 2, 3,
        ]))
        .send()
        .await
        .unwrap();

    // The client waits for an extension that is not up yet.
    let port = free_port();
    let c = client(port);
    let waiting = tokio::spawn({
        let c = c.clone();
        async move { c.wait_ready(Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut env = moto.env();
    env.push(("HEARTH_PORT".into(), port.to_string()));
    env.push(("HEARTH_LOG_LEVEL".into(), "debug".into()));
    let h = Hearth::start(&env).await;
    let health = waiting.await.unwrap().unwrap();
    assert_eq!(health.status, "ok");

    let v = c.secret("app/config").await.unwrap();
    assert_eq!(v.name, "app/config");
    assert!(v.version_stages.iter().any(|s| s == "AWSCURRENT"));
    assert!(v.secret_string.as_deref().unwrap().contains("pw-one-1"));
    let shown = format!("{v:?}");
    assert!(
        !shown.contains("pw-one-1"),
        "Debug leaks the value: {shown}"
    );

    let p = c
        .secret_version("app/config", &SecretVersion::Stage("AWSPENDING".into()))
        .await
        .unwrap();
    assert_eq!(p.version_id, pending);
    let by_id = c
        .secret_version("app/config", &SecretVersion::Id(pending.clone()))
        .await
        .unwrap();
    assert!(by_id.secret_string.as_deref().unwrap().contains("pw-two-2"));

    #[derive(Debug, serde::Deserialize)]
    struct Config {
        user: String,
        limit: u32,
    }
    let cfg: Config = c.secret_json("app/config").await.unwrap();
    assert_eq!((cfg.user.as_str(), cfg.limit), ("svc", 7));

    let e = c.secret_json::<Config>("plain").await.unwrap_err();
    assert!(matches!(e, Error::SecretFormat { .. }), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = c.secret_json::<Config>("blob").await.unwrap_err();
    assert!(e.to_string().contains("binary"), "{e}");
    assert!(c.secret("blob").await.unwrap().secret_binary.is_some());

    let refreshed = c.secret_refresh("app/config").await.unwrap();
    assert_eq!(refreshed.version_id, v.version_id);

    let e = c.secret("no/such/secret").await.unwrap_err();
    assert_eq!(api_error(&e), (404, "SecretNotFound"), "{e}");
    assert!(e.is_not_found());
    let e = c.secret("").await.unwrap_err();
    assert_eq!(api_error(&e), (400, "InvalidParameter"), "{e}");
    // Reserved characters in the id are encoded, not taken as further parameters.
    let e = c.secret("a&versionStage=AWSCURRENT").await.unwrap_err();
    assert_eq!(api_error(&e), (404, "SecretNotFound"), "{e}");

    // Tokens: health needs none; everything else does.
    let anonymous = Client::builder().port(port).build().unwrap();
    assert_eq!(anonymous.health().await.unwrap().status, "ok");
    let e = anonymous.secret("app/config").await.unwrap_err();
    assert_eq!(api_error(&e), (401, "MissingToken"), "{e}");
    let wrong = Client::builder().port(port).token("nope").build().unwrap();
    let e = wrong.metrics().await.unwrap_err();
    assert_eq!(api_error(&e), (403, "InvalidToken"), "{e}");
    let e = wrong.warm().await.unwrap_err();
    assert_eq!(api_error(&e), (403, "InvalidToken"), "{e}");

    let warmed = c.warm().await.unwrap();
    assert!(warmed.warmed.contains_key("secrets"), "{warmed:?}");
    let m = c.metrics().await.unwrap();
    assert!(m["counters"]["secrets.hits"].as_u64().unwrap() >= 1, "{m}");
    assert!(
        m["counters"]["secrets.upstream_calls"].as_u64().unwrap() >= 5,
        "{m}"
    );

    let out = h.proc.output();
    for leaked in ["pw-one-1", "pw-two-2", "hunter2"] {
        assert!(
            !out.contains(leaked),
            "{leaked} in the extension's log:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_operations_and_errors() {
    let moto = Moto::start();
    let key = moto.create_kms_key().await;
    let mut env = moto.env();
    env.push(("HEARTH_KMS_KEY_ID".into(), key.clone()));
    let h = Hearth::start(&env).await;
    let c = client(h.port);

    let context = ctx(&[("tenant", "t1"), ("purpose", "card")]);
    let message = c.encrypt(b"4111111111111111", &context).await.unwrap();
    let d = c.decrypt(&message, Some(&context)).await.unwrap();
    assert_eq!(d.plaintext.as_bytes(), b"4111111111111111");
    assert_eq!(d.context, context);
    assert!(!format!("{d:?}").contains("4111"), "{d:?}");
    let d = c.decrypt(&message, None).await.unwrap();
    assert_eq!(d.context, context, "context comes back without asking");

    let explicit = c.encrypt_with_key(b"x", &context, &key).await.unwrap();
    assert_eq!(
        c.decrypt(&explicit, None)
            .await
            .unwrap()
            .plaintext
            .as_bytes(),
        b"x"
    );

    let other = ctx(&[("tenant", "t2"), ("purpose", "card")]);
    let e = c.decrypt(&message, Some(&other)).await.unwrap_err();
    assert_eq!(api_error(&e), (400, "ContextMismatch"), "{e}");
    let e = c.decrypt(b"not an ESDK message", None).await.unwrap_err();
    assert_eq!(api_error(&e), (400, "UnsupportedVersion"), "{e}");
    let mut truncated = message.clone();
    truncated.truncate(message.len() / 2);
    let e = c.decrypt(&truncated, None).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    let reserved = ctx(&[("aws-crypto-public-key", "x")]);
    let e = c.encrypt(b"x", &reserved).await.unwrap_err();
    assert_eq!(api_error(&e), (400, "InvalidEncryptionContext"), "{e}");
    let missing_key = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let e = c
        .encrypt_with_key(b"x", &ctx(&[("k", "v")]), missing_key)
        .await
        .unwrap_err();
    assert_eq!(api_error(&e), (404, "KeyNotFound"), "{e}");

    let dk = c.data_key(&context, None).await.unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(dk.key_id, key);
    assert!(!dk.ciphertext_blob.is_empty());
    assert!(format!("{dk:?}").contains("redacted"));

    // Without a default key every request must name one.
    let h2 = Hearth::start(&moto.env()).await;
    let e = client(h2.port).encrypt(b"x", &context).await.unwrap_err();
    assert_eq!(api_error(&e), (400, "KeyIdRequired"), "{e}");
    let e = client(h2.port).data_key(&context, None).await.unwrap_err();
    assert_eq!(api_error(&e), (400, "KeyIdRequired"), "{e}");

    let out = h.proc.output();
    assert!(!out.contains("4111111111111111"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_query_transaction_and_errors() {
    let pg = PgCluster::start();
    pg.create_role("app", "pw-db-1").await;
    pg.create_database("hearth", "app").await;
    pg.admin_on("hearth")
        .await
        .batch_execute(
            "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant text NOT NULL, body text NOT NULL);
             GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO app;
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app;
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
             ALTER TABLE notes FORCE ROW LEVEL SECURITY;
             CREATE POLICY isolation ON notes
                 USING (tenant = NULLIF(current_setting('app.tenant_id', true), ''))
                 WITH CHECK (tenant = NULLIF(current_setting('app.tenant_id', true), ''));",
        )
        .await
        .unwrap();
    let moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name("db/app")
        .secret_string(
            json!({"engine": "postgres", "host": pg.host(), "port": pg.port(), "dbname": "hearth",
                   "username": "app", "password": "pw-db-1"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let mut env = moto.env();
    env.push(("HEARTH_DB_SECRET_ID".into(), "db/app".into()));
    env.push(("HEARTH_DB_TLS".into(), "disable".into()));
    let h = Hearth::start(&env).await;
    let c = client(h.port);

    let q = |sql: &str, params: Vec<serde_json::Value>, tenant: Option<&str>| QueryRequest {
        sql: sql.into(),
        params,
        tenant: tenant.map(str::to_string),
        context: BTreeMap::new(),
        row_mode: None,
        numbers: None,
    };
    let r = c
        .query(&q(
            "INSERT INTO notes (tenant, body) VALUES ($1, $2) RETURNING id",
            vec![json!("a"), json!("first")],
            Some("a"),
        ))
        .await
        .unwrap();
    assert_eq!(r.row_count, 1);
    assert_eq!(r.columns[0].type_name, "int8");

    let t = c
        .transaction(&TransactionRequest {
            tenant: Some("a".into()),
            context: BTreeMap::new(),
            row_mode: None,
            numbers: None,
            statements: vec![
                Statement {
                    sql: "INSERT INTO notes (tenant, body) VALUES ('a', 'second')".into(),
                    params: vec![],
                },
                Statement {
                    sql: "SELECT body FROM notes ORDER BY id".into(),
                    params: vec![],
                },
            ],
        })
        .await
        .unwrap();
    assert_eq!(t.results.len(), 2);
    assert_eq!(t.results[1].rows.len(), 2, "{t:?}");

    // RLS: tenant b sees nothing of a's.
    let r = c
        .query(&q("SELECT body FROM notes", vec![], Some("b")))
        .await
        .unwrap();
    assert_eq!(r.row_count, 0);

    let e = c.query(&q("SELECT 1", vec![], None)).await.unwrap_err();
    assert_eq!(api_error(&e), (400, "TenantRequired"), "{e}");
    let e = c
        .query(&q(
            "INSERT INTO notes (tenant, body) VALUES ($1, $2)",
            vec![json!("b"), json!("sneaky")],
            Some("a"),
        ))
        .await
        .unwrap_err();
    assert_eq!(api_error(&e), (403, "PolicyViolation"), "{e}");
    let e = c
        .query(&q("SELECT $1::int8", vec![], Some("a")))
        .await
        .unwrap_err();
    assert_eq!(api_error(&e), (400, "ParamCount"), "{e}");
    let e = c
        .query(&q("SELEKT 1", vec![], Some("a")))
        .await
        .unwrap_err();
    assert_eq!(api_error(&e), (400, "SqlError"), "{e}");
    // All or nothing: the failing second statement takes the first with it.
    let e = c
        .transaction(&TransactionRequest {
            tenant: Some("a".into()),
            context: BTreeMap::new(),
            row_mode: None,
            numbers: None,
            statements: vec![
                Statement {
                    sql: "INSERT INTO notes (tenant, body) VALUES ('a', 'lost')".into(),
                    params: vec![],
                },
                Statement {
                    sql: "INSERT INTO notes (tenant, body) VALUES ('b', 'x')".into(),
                    params: vec![],
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(api_error(&e), (403, "PolicyViolation"), "{e}");
    let r = c
        .query(&q(
            "SELECT count(*)::int8 AS n FROM notes",
            vec![],
            Some("a"),
        ))
        .await
        .unwrap();
    assert_eq!(r.rows[0]["n"], json!(2));
}

/// Waits (bounded) until the kernel shows the process as stopped.
async fn wait_stopped(pid: u32) {
    for _ in 0..200 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Field 3, after the parenthesised command name.
        if stat
            .rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('T'))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("process {pid} did not stop");
}

/// A stopped extension makes the client time out (bounded), and a restarted one is reached
/// again through the same client, although its pooled connection died with the old process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_extension_restart() {
    let h = Hearth::start(&[]).await;
    let port = h.port;
    let c = Client::builder()
        .port(port)
        .token(TOKEN)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    c.metrics().await.unwrap();

    h.proc.signal("STOP");
    wait_stopped(h.proc.pid()).await;
    let t0 = Instant::now();
    let e = c.metrics().await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    h.proc.signal("CONT");
    c.metrics().await.unwrap();

    drop(h);
    let h = Hearth::start(&[("HEARTH_PORT".into(), port.to_string())]).await;
    let m = c.metrics().await.unwrap();
    assert!(m["counters"].is_object());
    drop(h);
    let e = c.health().await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
}

/// `HEARTH_UNIX_SOCKET`: the same API on a Unix-domain socket beside the port, with the
/// same token check and limits; the file is owner-only and gone after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_serves_the_same_api_with_the_same_gate() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let moto = Moto::start();
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("uds/secret")
        .secret_string("uds-value-7")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hearth.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let mut env = moto.env();
    env.push(("HEARTH_UNIX_SOCKET".into(), sock_s.clone()));
    env.push(("HEARTH_MAX_HEADER_BYTES".into(), "4096".into()));
    let mut h = Hearth::start(&env).await;

    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    // The function's own environment switches the client: same variable as the extension.
    let vars = [
        ("HEARTH_UNIX_SOCKET", sock_s.as_str()),
        ("HEARTH_TOKEN", TOKEN),
        ("HEARTH_PORT", "1"),
    ];
    let uds = hearth::ClientBuilder::from_vars(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(uds.addr(), format!("unix:{sock_s}"));
    let v = uds.secret("uds/secret").await.unwrap();
    assert_eq!(v.secret_string.as_deref(), Some("uds-value-7"));
    // One cache behind both listeners: the TCP read is a hit.
    let tcp = client(h.port);
    assert_eq!(
        tcp.secret("uds/secret")
            .await
            .unwrap()
            .secret_string
            .as_deref(),
        Some("uds-value-7")
    );
    let m = uds.metrics().await.unwrap();
    assert_eq!(
        m["counters"]["secrets.upstream_calls"].as_u64(),
        Some(1),
        "{m}"
    );
    let e = uds.secret("uds/missing").await.unwrap_err();
    assert_eq!(api_error(&e), (404, "SecretNotFound"), "{e}");

    // The token is still the gate.
    let anonymous = Client::builder().unix_socket(&sock).build().unwrap();
    assert_eq!(anonymous.health().await.unwrap().status, "ok");
    let e = anonymous.secret("uds/secret").await.unwrap_err();
    assert_eq!(api_error(&e), (401, "MissingToken"), "{e}");
    let wrong = Client::builder()
        .unix_socket(&sock)
        .token("nope")
        .build()
        .unwrap();
    let e = wrong.secret("uds/secret").await.unwrap_err();
    assert_eq!(api_error(&e), (403, "InvalidToken"), "{e}");

    // The same limits: an oversized head is answered in JSON, as on TCP.
    let mut raw = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let req = format!(
        "GET /secretsmanager/get?secretId=uds/secret HTTP/1.1\r\nhost: localhost\r\nx-aws-parameters-secrets-token: {TOKEN}\r\nx-pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = raw.write_all(req.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(answer.contains("HeaderTooLarge"), "{answer}");

    // A client pointed at a socket nobody serves gets a transport error naming it.
    let nowhere = Client::builder()
        .unix_socket(dir.path().join("nobody.sock"))
        .token(TOKEN)
        .build()
        .unwrap();
    let e = nowhere.secret("uds/secret").await.unwrap_err();
    assert!(e.to_string().contains("nobody.sock"), "{e}");

    h.proc.signal("TERM");
    assert!(h.proc.wait_exit(Duration::from_secs(10)).await.is_some());
    assert!(
        std::fs::symlink_metadata(&sock).is_err(),
        "the socket file outlived the extension"
    );
    assert!(!h.proc.output().contains("uds-value-7"));
}

/// One connection cap for both listeners: connections held open on TCP keep a request on
/// the socket waiting, and it is served as soon as one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_shares_the_connection_cap_with_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hearth.sock");
    let mut env = moto.env();
    env.push(("HEARTH_UNIX_SOCKET".into(), sock.to_str().unwrap().into()));
    env.push(("HEARTH_MAX_CONNECTIONS".into(), "2".into()));
    let h = Hearth::start(&env).await;
    // Take every permit with keep-alive TCP connections that were served (the rig's own
    // readiness probe may hold one already): open them until one is not answered.
    let addr = format!("127.0.0.1:{}", h.port);
    let mut held = Vec::new();
    loop {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let answered = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
            .await
            .is_ok_and(|r| r.is_ok_and(|n| n > 0));
        held.push(s);
        if !answered {
            break;
        }
        assert!(
            held.len() <= 2,
            "more than 2 TCP connections served at once"
        );
    }

    let quick = Client::builder()
        .unix_socket(&sock)
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let e = quick.health().await.unwrap_err();
    assert!(
        matches!(e, Error::Timeout(_)),
        "served beyond HEARTH_MAX_CONNECTIONS: {e}"
    );

    held.clear();
    let patient = Client::builder()
        .unix_socket(&sock)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(patient.health().await.unwrap().status, "ok");
}

/// The client sends its token only to a socket served by its own user (or root): a socket
/// some other user bound at the path gets an error naming that uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_socket_served_by_another_user() {
    // Debian's interpreter: the pyenv one lives under /root, which `nobody` cannot read.
    let python = "/usr/bin/python3";
    if effective_uid() != 0 || !std::path::Path::new(python).exists() {
        eprintln!("skipped: needs root and {python} to start a listener as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = dir.path().join("squatter.sock");
    // A listener owned by `nobody` that accepts and would read whatever is sent.
    let script = format!(
        "import socket,os,time\ns=socket.socket(socket.AF_UNIX)\ns.bind({:?})\nos.chmod({:?},0o777)\ns.listen(8)\nc,_=s.accept()\ntime.sleep(10)",
        sock.to_str().unwrap(),
        sock.to_str().unwrap()
    );
    let mut squatter = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            python,
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = Client::builder()
        .unix_socket(&sock)
        .token(TOKEN)
        .build()
        .unwrap();
    let e = c.secret("any").await.unwrap_err();
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert!(e.to_string().contains("uid 65534"), "{e}");
}

/// This test process's effective uid, from the owner of a file it just created.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid()
}
