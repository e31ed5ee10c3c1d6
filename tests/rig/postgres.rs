//! A throwaway PostgreSQL 15 cluster on a free loopback port, for tests.
//!
//! The superuser `postgres` is trusted on 127.0.0.1; every other role authenticates with
//! SCRAM-SHA-256, as on Aurora. As root (CI), the server binaries run as the `postgres` OS
//! user, since the server refuses to run as root. Dropping the cluster stops the server
//! (`pg_ctl stop -m immediate`) and removes its directory, also when a test panics.
//! The process calls block; from `#[tokio::test(flavor = "multi_thread")]` wrap `restart`
//! in `tokio::task::block_in_place`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tokio_postgres::{Client, NoTls};

/// Where Debian's postgresql-15 package installs the server binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running cluster; stopped and deleted on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// Creates and starts a cluster. Panics with the server's output if that fails.
    pub fn start() -> PgCluster {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("hearth-pg-")
            .tempdir()
            .expect("temp dir");
        if as_postgres {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path()),
                "chown",
            );
        }
        let mut cluster = PgCluster {
            dir,
            port: 0,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run_pg(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // First match wins: the superuser keeps trust, application roles need SCRAM.
        let hba = "local all all trust\n\
                   host all postgres 127.0.0.1/32 trust\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        // A port picked from a closed listener can be taken by someone else meanwhile: retry.
        for attempt in 0..3 {
            cluster.port = free_port();
            match cluster.try_pg_ctl_start() {
                Ok(()) => return cluster,
                Err(e) if attempt == 2 => panic!("postgres did not start: {e}"),
                Err(_) => continue,
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// A superuser client on database `postgres`.
    pub async fn admin(&self) -> Client {
        self.admin_on("postgres").await
    }

    /// A superuser client on database `dbname`.
    pub async fn admin_on(&self, dbname: &str) -> Client {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&conn, NoTls)
            .await
            .expect("admin connection");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// Creates database `name` owned by `owner` (a role created with [`PgCluster::create_role`]).
    pub async fn create_database(&self, name: &str, owner: &str) {
        let sql = format!("CREATE DATABASE {} OWNER {}", ident(name), ident(owner));
        self.admin()
            .await
            .batch_execute(&sql)
            .await
            .expect("create database");
    }

    /// Creates a login role with a SCRAM password: not superuser, no BYPASSRLS.
    pub async fn create_role(&self, name: &str, password: &str) {
        let sql = format!(
            "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}",
            ident(name),
            literal(password)
        );
        self.admin()
            .await
            .batch_execute(&sql)
            .await
            .expect("create role");
    }

    /// Changes a role's password; existing sessions stay logged in.
    pub async fn set_password(&self, role: &str, password: &str) {
        let sql = format!("ALTER ROLE {} PASSWORD {}", ident(role), literal(password));
        self.admin()
            .await
            .batch_execute(&sql)
            .await
            .expect("alter role");
    }

    /// Kills every backend of `role` (as a Lambda freeze outliving server or NAT timeouts
    /// would); returns how many were terminated.
    pub async fn terminate_backends(&self, role: &str) -> usize {
        let rows = self
            .admin()
            .await
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                &[&role],
            )
            .await
            .expect("terminate backends");
        rows.len()
    }

    /// Stops the server immediately (open connections die) and starts it again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.try_pg_ctl_start().expect("postgres restart");
    }

    /// Turns on TLS with a fresh test CA and a server certificate for `localhost` and
    /// `127.0.0.1`, restarts the server, and returns the CA bundle's path. Needs `openssl`.
    pub fn enable_tls(&self) -> PathBuf {
        let dir = self.dir.path();
        let data = self.data_dir();
        let ca = dir.join("ca.pem");
        let ext = dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        // Paths under the temp dir contain no spaces, so whitespace-split command lines work.
        let d = path_str(dir);
        let steps = [
            format!(
                "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hearth-test-CA \
                 -addext basicConstraints=critical,CA:TRUE \
                 -addext keyUsage=critical,keyCertSign,cRLSign -keyout {d}/ca.key -out {d}/ca.pem"
            ),
            format!(
                "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout {d}/server.key \
                 -out {d}/server.csr"
            ),
            format!(
                "x509 -req -in {d}/server.csr -CA {d}/ca.pem -CAkey {d}/ca.key -CAcreateserial \
                 -days 2 -extfile {d}/server.ext -out {d}/server.crt"
            ),
        ];
        for args in steps {
            run(
                Command::new("openssl").args(args.split_whitespace()),
                "openssl",
            );
        }
        for f in ["server.crt", "server.key"] {
            std::fs::copy(dir.join(f), data.join(f)).expect("copy certificate");
            if self.as_postgres {
                run(
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(data.join(f)),
                    "chown",
                );
            }
            run(Command::new("chmod").arg("600").arg(data.join(f)), "chmod");
        }
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("read conf");
        conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(data.join("postgresql.conf"), conf).expect("write conf");
        self.restart();
        ca
    }

    fn stop(&self) {
        let data = self.data_dir();
        let _ = self
            .pg_command("pg_ctl")
            .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
            .output();
    }

    fn try_pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            path_str(self.dir.path())
        );
        let out = self
            .pg_command("pg_ctl")
            .args([
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-o",
                &opts,
                "start",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            return Ok(());
        }
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!(
            "{}\n{server_log}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_command(&self, program: &str) -> Command {
        let bin = Path::new(PG_BIN).join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    fn run_pg(&self, program: &str, args: &[&str]) {
        run(self.pg_command(program).args(args), program);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        // TempDir removes the directory when it drops after this.
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process runs as root (CI), where servers run as the `postgres` OS user.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Quotes an SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
