//! The local peers every benchmark runs against, started once: moto (Secrets Manager, KMS),
//! a throwaway PostgreSQL 15 cluster with an RLS table, PgBouncer in transaction mode in front
//! of it, and the real `hearth` binary configured for all three caches.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_tests::free_port;
use hearth_tests::hearth::Hearth;
use hearth_tests::moto::Moto;
use hearth_tests::postgres::PgCluster;
use serde_json::json;

/// The secret read by the secrets benchmarks.
pub const SECRET_ID: &str = "bench/api-key";
/// The database secret (RDS JSON) Hearth's pool uses.
pub const DB_SECRET_ID: &str = "bench/db";
/// The same database through PgBouncer, for the Hearth that runs behind it.
pub const DB_POOLED_SECRET_ID: &str = "bench/db-pgbouncer";
/// Database, role and password of the application.
pub const DB: &str = "hearth";
/// Application role (SCRAM authentication, not superuser, no BYPASSRLS).
pub const DB_USER: &str = "app";
/// Its password.
pub const DB_PASSWORD: &str = "bench-pw-1";
/// The RLS-scoped single-row query every database benchmark runs.
pub const QUERY: &str = "SELECT id, body FROM notes WHERE id = $1";
/// The tenant every database benchmark runs as.
pub const TENANT: &str = "a";
/// Rows in the table (tenants `a`..`j` in turn).
const ROWS: i64 = 1000;

/// The `id` of the `i`-th query: always a row of tenant [`TENANT`].
pub fn row_id(i: usize) -> i64 {
    1 + 10 * (i as i64 % (ROWS / 10))
}

/// Every peer, stopped on drop (in reverse order of fields).
pub struct Peers {
    /// Hearth (standalone binary, release build next to this one).
    pub hearth: Hearth,
    /// A second Hearth whose pool connects through [`Peers::bouncer`], with
    /// `HEARTH_DB_POOLER=transaction`.
    pub hearth_pooled: Hearth,
    /// PgBouncer, transaction mode.
    pub bouncer: PgBouncer,
    /// PostgreSQL.
    pub pg: PgCluster,
    /// moto.
    pub moto: Moto,
    /// ARN of the KMS key.
    pub key_arn: String,
    /// The Unix-domain socket [`Peers::hearth`] also serves (`HEARTH_UNIX_SOCKET`).
    pub hearth_socket: std::path::PathBuf,
    /// Holds that socket; removed after Hearth stops.
    _socket_dir: tempfile::TempDir,
}

/// A secret value of a realistic size (an API credential as JSON).
pub fn secret_value() -> String {
    json!({"apiKey": "k-".repeat(20), "apiSecret": "s".repeat(64), "endpoint": "https://api.example.com/v2", "issued": "2025-01-01T00:00:00Z"}).to_string()
}

impl Peers {
    /// Starts everything and fills it with the benchmark's data.
    pub async fn start() -> Result<Peers, String> {
        let moto = tokio::task::block_in_place(Moto::start);
        let pg = tokio::task::block_in_place(PgCluster::start);
        pg.create_role(DB_USER, DB_PASSWORD).await;
        pg.create_database(DB, DB_USER).await;
        pg.admin_on(DB)
            .await
            .batch_execute(&format!(
                "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant text NOT NULL, body text NOT NULL);
                 GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {DB_USER};
                 GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {DB_USER};
                 ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE notes FORCE ROW LEVEL SECURITY;
                 CREATE POLICY isolation ON notes
                     USING (tenant = NULLIF(current_setting('app.tenant_id', true), ''));
                 INSERT INTO notes (tenant, body)
                     SELECT chr(97 + ((g - 1) % 10)), 'note ' || g FROM generate_series(1, {ROWS}) g;
                 ANALYZE notes;"
            ))
            .await
            .map_err(|e| format!("postgres setup: {e}"))?;
        let bouncer = PgBouncer::start(pg.port())?;

        let sm = moto.secrets_client().await;
        sm.create_secret()
            .name(SECRET_ID)
            .secret_string(secret_value())
            .send()
            .await
            .map_err(|e| format!("CreateSecret: {e:?}"))?;
        let db_secret = json!({"engine": "postgres", "host": pg.host(), "port": pg.port(),
            "dbname": DB, "username": DB_USER, "password": DB_PASSWORD});
        sm.create_secret()
            .name(DB_SECRET_ID)
            .secret_string(db_secret.to_string())
            .send()
            .await
            .map_err(|e| format!("CreateSecret: {e:?}"))?;
        let key_arn = moto
            .kms_client()
            .await
            .create_key()
            .send()
            .await
            .map_err(|e| format!("CreateKey: {e:?}"))?
            .key_metadata
            .and_then(|m| m.arn)
            .ok_or("CreateKey returned no ARN")?;

        // A second Hearth whose pool goes through PgBouncer (HEARTH_DB_POOLER=transaction).
        let pooled_secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": bouncer.port,
            "dbname": DB, "username": DB_USER, "password": DB_PASSWORD});
        sm.create_secret()
            .name(DB_POOLED_SECRET_ID)
            .secret_string(pooled_secret.to_string())
            .send()
            .await
            .map_err(|e| format!("CreateSecret: {e:?}"))?;

        let socket_dir = tempfile::Builder::new()
            .prefix("hearth-bench-")
            .tempdir()
            .map_err(|e| format!("socket dir: {e}"))?;
        let hearth_socket = socket_dir.path().join("hearth.sock");
        let mut env = hearth_env(&moto, &key_arn);
        env.push((
            "HEARTH_UNIX_SOCKET".into(),
            hearth_socket.display().to_string(),
        ));
        let hearth = Hearth::start(&env).await;
        let mut env = moto.env();
        for (k, v) in [
            ("HEARTH_DB_SECRET_ID", DB_POOLED_SECRET_ID),
            ("HEARTH_DB_TLS", "disable"),
            ("HEARTH_DB_POOLER", "transaction"),
            ("HEARTH_METRICS_EMF", "false"),
            ("HEARTH_KMS_PREWARM_CONTEXT", "none"),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        let hearth_pooled = Hearth::start(&env).await;
        Ok(Peers {
            hearth,
            hearth_pooled,
            bouncer,
            pg,
            moto,
            key_arn,
            hearth_socket,
            _socket_dir: socket_dir,
        })
    }

    /// A libpq-style connection string straight to Postgres as the application role.
    pub fn pg_conn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={DB_USER} password={DB_PASSWORD} dbname={DB}",
            self.pg.port()
        )
    }

    /// The same through PgBouncer.
    pub fn bouncer_conn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={DB_USER} password={DB_PASSWORD} dbname={DB}",
            self.bouncer.port
        )
    }
}

/// Hearth's configuration in the benchmarks: defaults, plus the three caches pointed at the
/// local peers. (Plaintext to Postgres is allowed only because it is on loopback.)
pub fn hearth_env(moto: &Moto, key_arn: &str) -> Vec<(String, String)> {
    let mut env = moto.env();
    for (k, v) in [
        ("HEARTH_KMS_KEY_ID", key_arn),
        ("HEARTH_DB_SECRET_ID", DB_SECRET_ID),
        ("HEARTH_DB_TLS", "disable"),
        ("HEARTH_SECRETS_PREFETCH", SECRET_ID),
        ("HEARTH_METRICS_EMF", "false"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// PgBouncer (Debian's package) in transaction mode on a free port, in front of Postgres,
/// with SCRAM authentication on both sides. As root it drops to the `postgres` user (it
/// refuses to run as root). Killed on drop.
pub struct PgBouncer {
    /// Port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Where Debian installs it.
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

impl PgBouncer {
    /// Starts it and waits until it accepts connections (bounded).
    pub fn start(pg_port: u16) -> Result<PgBouncer, String> {
        let dir = tempfile::Builder::new()
            .prefix("hearth-pgbouncer-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port();
        let d = dir.path();
        let ini: PathBuf = d.join("pgbouncer.ini");
        std::fs::write(
            d.join("userlist.txt"),
            format!("\"{DB_USER}\" \"{DB_PASSWORD}\"\n"),
        )
        .map_err(|e| format!("pgbouncer userlist: {e}"))?;
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{DB} = host=127.0.0.1 port={pg_port} dbname={DB}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = scram-sha-256\nauth_file = {}/userlist.txt\n\
                 pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {}/pgbouncer.log\nlog_connections = 0\nlog_disconnections = 0\n",
                d.display(),
                d.display()
            ),
        )
        .map_err(|e| format!("pgbouncer.ini: {e}"))?;
        let mut cmd = Command::new(PGBOUNCER);
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(d)
                .status();
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {PGBOUNCER} (apt-get install pgbouncer): {e}"))?;
        let mut b = PgBouncer {
            port,
            child,
            _dir: dir,
        };
        let log = b._dir.path().join("pgbouncer.log");
        wait_serving("pgbouncer", &mut b.child, &log, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(b)
    }
}

/// Waits up to 10 s for `ready`, failing early (with the log at `log`) if `child` exits.
pub(crate) fn wait_serving(
    what: &str,
    child: &mut std::process::Child,
    log: &std::path::Path,
    ready: impl Fn() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("{what} exited ({status}): {log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} did not serve within 10 s"))
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process runs as root (peers that refuse root then drop to `postgres`).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
