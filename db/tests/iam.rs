//! IAM database authentication: Hearth's tokens against boto3's for the same inputs, and
//! against a real PostgreSQL 15 (TLS with a test CA) that takes a token as the role's password.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_async::time::TimeSource;
use aws_types::region::Region;
use aws_types::SdkConfig;
use hearth::wire::QueryRequest;
use hearth_db::{
    CredentialSource, CredentialsFuture, Db, DbConfig, DbCredentials, DbError, IamCredentials,
    StaticCredentials, TlsMode,
};
use hearth_tests::postgres::PgCluster;

const AKID: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2026-03-04T05:06:07Z
const T0: u64 = 1_772_600_767;

/// A clock tests move by hand.
#[derive(Debug, Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn at(secs: u64) -> Clock {
        Clock(Arc::new(AtomicU64::new(secs)))
    }
    fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl TimeSource for Clock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

fn sdk(clock: &Clock, session_token: Option<&str>) -> SdkConfig {
    SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            AKID,
            SECRET_KEY,
            session_token.map(str::to_owned),
            None,
            "test",
        )))
        .time_source(clock.clone())
        .build()
}

fn endpoint(host: &str, port: u16, user: &str, dbname: &str) -> Arc<dyn CredentialSource> {
    Arc::new(StaticCredentials::new(DbCredentials {
        host: host.into(),
        port,
        dbname: dbname.into(),
        username: user.into(),
        password: String::new(),
    }))
}

/// `host:port/` and the decoded query of a token.
fn parsed(token: &str) -> (String, BTreeMap<String, String>) {
    let (base, query) = token.split_once('?').expect("a token has a query");
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    };
    let map = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    (base.to_owned(), map)
}

/// boto3's `rds.generate_db_auth_token` for the same inputs, with botocore's clock frozen at
/// `secs` (botocore reads the time through `botocore.auth.get_current_datetime`).
fn boto3_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    secs: u64,
    session: Option<&str>,
) -> String {
    let python = hearth_tests::workspace_root().join(".venv/bin/python");
    let script = r#"
import datetime, sys
import botocore.auth
host, port, user, region, secs, akid, key, session = sys.argv[1:9]
fixed = datetime.datetime.fromtimestamp(int(secs), datetime.timezone.utc).replace(tzinfo=None)
botocore.auth.get_current_datetime = lambda *a, **k: fixed
import boto3
client = boto3.client("rds", region_name=region, aws_access_key_id=akid,
                      aws_secret_access_key=key, aws_session_token=session or None)
print(client.generate_db_auth_token(DBHostname=host, Port=int(port), DBUsername=user,
                                    Region=region))
"#;
    let out = Command::new(&python)
        .args(["-c", script, host, &port.to_string(), user, region])
        .arg(secs.to_string())
        .args([AKID, SECRET_KEY, session.unwrap_or("")])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run scripts/install-test-deps.sh)",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn iam_token_equals_boto3s_for_the_same_inputs() {
    let cases = [
        (
            "db.cluster-abc.eu-west-1.rds.amazonaws.com",
            5432,
            "app_user",
            "eu-west-1",
            T0,
            Some("sess/tok+en="),
        ),
        (
            "proxy-1.proxy-xyz.us-east-1.rds.amazonaws.com",
            6432,
            "svc.payments-ro",
            "us-east-1",
            T0 + 86_399,
            None,
        ),
    ];
    for (host, port, user, region, secs, session) in cases {
        let iam = IamCredentials::new(
            endpoint(host, port, user, "d"),
            sdk(&Clock::at(secs), session),
            Region::new(region),
        );
        let ours = iam.token(host, port, user).await.unwrap();
        let theirs = boto3_token(host, port, user, region, secs, session);
        let (ours_base, ours_q) = parsed(&ours);
        let (theirs_base, theirs_q) = parsed(&theirs);
        assert_eq!(ours_base, theirs_base, "{user}@{host}");
        assert_eq!(
            ours_q, theirs_q,
            "{user}@{host}: ours {ours}\nboto3 {theirs}"
        );
        assert!(ours_q.contains_key("X-Amz-Signature"), "{ours}");
    }
}

/// A cluster with TLS (a test CA) and a role `app` that owns database `hearth`.
async fn tls_cluster() -> (PgCluster, std::path::PathBuf) {
    let pg = PgCluster::start();
    let ca = pg.enable_tls();
    pg.create_role("app", "placeholder").await;
    pg.create_database("hearth", "app").await;
    (pg, ca)
}

fn iam_db(pg: &PgCluster, ca: &std::path::Path, clock: &Clock) -> (Db, Arc<CountingSource>) {
    let counting = Arc::new(CountingSource {
        inner: endpoint(pg.host(), pg.port(), "app", "hearth"),
        forced: AtomicU64::new(0),
    });
    let iam = IamCredentials::new(
        counting.clone(),
        sdk(clock, Some("session-token")),
        Region::new("eu-west-1"),
    );
    let mut cfg = DbConfig::new(TlsMode::Require {
        ca_bundle: ca.to_path_buf(),
    });
    cfg.tenantless = true;
    cfg.min_connections = 0;
    // Verify every idle connection, so one killed below is replaced, not used.
    cfg.verify_idle_after = Duration::ZERO;
    (Db::new(cfg, Arc::new(iam)).unwrap(), counting)
}

/// Counts forced refreshes of the endpoint source (one per rejected token).
struct CountingSource {
    inner: Arc<dyn CredentialSource>,
    forced: AtomicU64,
}

impl CredentialSource for CountingSource {
    fn credentials(&self, force_refresh: bool) -> CredentialsFuture<'_> {
        if force_refresh {
            self.forced.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.credentials(force_refresh)
    }
}

async fn token_for(clock_secs: u64, pg: &PgCluster) -> String {
    let iam = IamCredentials::new(
        endpoint(pg.host(), pg.port(), "app", "hearth"),
        sdk(&Clock::at(clock_secs), Some("session-token")),
        Region::new("eu-west-1"),
    );
    iam.token(pg.host(), pg.port(), "app").await.unwrap()
}

fn select_one() -> QueryRequest {
    QueryRequest {
        sql: "SELECT current_user::text AS who, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            .into(),
        params: vec![],
        tenant: None,
        context: BTreeMap::new(),
        row_mode: None,
        numbers: None,
    }
}

#[tokio::test]
async fn postgres_accepts_the_token_over_tls_and_a_new_one_after_expiry() {
    let (pg, ca) = tls_cluster().await;
    let token = token_for(T0, &pg).await;
    pg.set_password("app", &token).await;
    let clock = Clock::at(T0);
    let (db, counting) = iam_db(&pg, &ca, &clock);
    let r = db.query(&select_one()).await.unwrap();
    assert_eq!(r.rows[0]["who"], "app");
    assert_eq!(r.rows[0]["ssl"], true, "IAM connections must use TLS");

    // Within the reuse window a new connection takes the cached token; past it, a new one is
    // signed (the server now expects the newer token, as a real expiry would need).
    let later = T0 + hearth_db::iam::REUSE_FOR.as_secs() + 1;
    clock.set(later);
    pg.set_password("app", &token_for(later, &pg).await).await;
    pg.terminate_backends("app").await;
    let r = tokio::time::timeout(Duration::from_secs(20), db.query(&select_one()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.rows[0]["who"], "app");
    assert_eq!(
        counting.forced.load(Ordering::SeqCst),
        0,
        "the expired token was replaced before use, not after a rejection"
    );
    assert_eq!(db.stats().rotations, 0);
}

#[tokio::test]
async fn a_rejected_token_is_refetched_once_then_fails_with_auth_failed() {
    let (pg, ca) = tls_cluster().await;
    // The server expects a token from another time than the one Hearth signs at.
    let expected = token_for(T0, &pg).await;
    pg.set_password("app", &expected).await;
    let clock = Clock::at(T0 + 60);
    let (db, counting) = iam_db(&pg, &ca, &clock);
    let e = tokio::time::timeout(Duration::from_secs(20), db.query(&select_one()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&e, DbError::AuthFailed { sqlstate } if sqlstate == "28P01"),
        "{e:?}"
    );
    assert_eq!(e.code(), "AuthFailed");
    assert_eq!(
        counting.forced.load(Ordering::SeqCst),
        1,
        "one refetch, not more"
    );
    assert_eq!(db.stats().rotations, 1);
    // Nothing shows the token: not the error, not Debug of the pool or of the source.
    let shown = format!("{e} {e:?} {db:?}");
    for secret in [
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "session-token",
        &expected,
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[tokio::test]
async fn iam_credentials_debug_shows_no_token() {
    let clock = Clock::at(T0);
    let iam = IamCredentials::new(
        endpoint("h", 5432, "u", "d"),
        sdk(&clock, Some("session-token")),
        Region::new("eu-west-1"),
    );
    let creds = iam.credentials(false).await.unwrap();
    assert!(creds.password.contains("X-Amz-Signature"));
    let shown = format!("{iam:?} {creds:?}");
    assert!(
        !shown.contains("X-Amz") && !shown.contains("session-token") && !shown.contains(SECRET_KEY),
        "{shown}"
    );
    // Reused within the window, replaced past it, and a forced refresh signs anew.
    let again = iam.credentials(false).await.unwrap();
    assert_eq!(again.password, creds.password);
    clock.set(T0 + hearth_db::iam::REUSE_FOR.as_secs() + 1);
    let fresh = iam.credentials(false).await.unwrap();
    assert_ne!(fresh.password, creds.password);
    clock.set(T0 + hearth_db::iam::REUSE_FOR.as_secs() + 2);
    let forced = iam.credentials(true).await.unwrap();
    assert_ne!(forced.password, fresh.password);
}
