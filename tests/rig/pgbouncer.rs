//! A real PgBouncer (Debian package `pgbouncer`) in front of a [`PgCluster`], on a free
//! loopback port, for tests of `HEARTH_DB_POOLER=transaction`.
//!
//! Transaction mode, a small server pool (`default_pool_size`), SCRAM-SHA-256 for clients with
//! the plaintext passwords in its auth file (PgBouncer then also logs in to PostgreSQL with
//! SCRAM). Like PostgreSQL it refuses to run as root: as root (CI) it runs as the `postgres`
//! OS user. Dropping the guard stops it (SIGTERM to the pid in its pid file, then SIGKILL) and
//! removes its directory, also when a test panics.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::PgCluster;

/// Where Debian installs the binary.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A running PgBouncer; stopped on drop.
pub struct PgBouncer {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode in front of `pg` with `pool_size` server
    /// connections per (database, user), for the roles `users` (name, password). Panics with
    /// its log if it does not accept connections within 10 s.
    pub fn start(pg: &PgCluster, users: &[(&str, &str)], pool_size: usize) -> PgBouncer {
        let as_postgres = crate::postgres::is_root();
        let dir = tempfile::Builder::new()
            .prefix("hearth-pgbouncer-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let port = crate::free_port();
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let userlist: String = users
            .iter()
            .map(|(u, p)| format!("{} {}\n", quote(u), quote(p)))
            .collect();
        std::fs::write(d.join("userlist.txt"), userlist).expect("write userlist");
        let ini = format!(
            "[databases]\n\
             * = host=127.0.0.1 port={pg_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = 500\n\
             max_db_connections = {pool_size}\n\
             server_lifetime = 3600\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n\
             admin_users = \n",
            pg_port = pg.port(),
            dir = path_str(d),
        );
        std::fs::write(d.join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");
        let mut cmd = if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(d)
                .status()
                .expect("chown");
            assert!(chown.success(), "chown of the PgBouncer directory failed");
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", PGBOUNCER]);
            c
        } else {
            Command::new(PGBOUNCER)
        };
        let child = cmd
            .arg(d.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pgbouncer (apt install pgbouncer; scripts/install-test-deps.sh)");
        let mut bouncer = PgBouncer { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() >= deadline || matches!(bouncer.child.try_wait(), Ok(Some(_))) {
                panic!("pgbouncer did not start:\n{}", bouncer.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.pid")
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // The pid in the file is PgBouncer's own (under runuser the child is runuser).
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let pid = pid.trim();
            if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
                let _ = Command::new("kill").args(["-TERM", pid]).status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
