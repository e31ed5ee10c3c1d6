//! # hearth-tests: the local rig
//!
//! Helpers that start real peers on free loopback ports and clean up after themselves,
//! even when a test panics (every helper is a guard whose `Drop` stops what it started):
//!
//! - [`postgres`]: a throwaway PostgreSQL 15 cluster (works as root and as a normal user).
//! - [`moto`]: the moto AWS emulator (KMS, Secrets Manager) from the project's virtualenv.
//! - [`pgbouncer`]: a real PgBouncer in transaction mode in front of a cluster.
//! - [`hearth`]: the real `hearth` binary, standalone or under the Lambda simulator.
//! - [`payments`]: everything the example payments function needs (Postgres with its
//!   migrations, a KMS key and the database secret in moto).
//!
//! The virtualenv and the Debian packages are installed by `scripts/install-test-deps.sh`,
//! which the README's test command runs first.

pub mod hearth;
pub mod moto;
pub mod payments;
pub mod pgbouncer;
pub mod postgres;

use std::net::TcpListener;
use std::path::PathBuf;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `(name, value)` pairs as the owned environment the rig's processes take.
pub fn env_vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `base` with `extra` appended.
pub fn with_env(mut base: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    base.extend(env_vars(extra));
    base
}

/// The stable code of a JSON error body (`{"error":{"code":...}}`).
pub fn error_code(body: &serde_json::Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or("<no JSON error code>")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A binary built in the same target directory as the running test (`target/<profile>/`).
pub fn target_bin(name: &str) -> PathBuf {
    // The benchmark runs its harness from one profile and the shipping `hearth` from
    // another: HEARTH_BENCH_HEARTH_BIN names the extension binary to run.
    if name == "hearth" {
        if let Some(p) = std::env::var_os("HEARTH_BENCH_HEARTH_BIN") {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "HEARTH_BENCH_HEARTH_BIN={} is not a file",
                p.display()
            );
            return p;
        }
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>; a binary of this crate
    // (the demo) runs from target/<profile>/ itself.
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}
