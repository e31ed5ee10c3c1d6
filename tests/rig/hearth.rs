//! The real `hearth` binary: standalone (for API tests) or under the Lambda simulator with
//! a real function binary (for lifecycle tests). Its stdout and stderr go to a log file the
//! test can read, e.g. to prove no secret value was ever logged.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use lambda_simulator::{FreezeMode, Simulator};

use crate::{free_port, target_bin};

/// The token tests use unless they say otherwise.
pub const TOKEN: &str = "rig-session-token";

/// A spawned process whose output is captured in a file; killed on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Spawns `bin` with a clean environment (only `PATH` plus `env`), output to a log file.
    pub fn spawn(bin: &Path, env: &[(String, String)]) -> Proc {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = dir.path().join("output.log");
        let out = File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Proc {
            child,
            log,
            _dir: dir,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (polling, bounded) for the process to exit. Async, so peers served by the
    /// test's own runtime (the simulator, fake APIs) keep running meanwhile.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A stopped process ignores SIGKILL until continued on some kernels' views of
            // the process table; continue first so it really goes away.
            self.signal("CONT");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `hearth` binary running standalone (no Extensions API), serving on a free port.
#[derive(Debug)]
pub struct Hearth {
    /// The process.
    pub proc: Proc,
    /// Its port.
    pub port: u16,
    /// A keep-alive HTTP client.
    pub http: reqwest::Client,
}

impl Hearth {
    /// Starts `hearth` with `env` (plus `HEARTH_TOKEN` and `HEARTH_PORT` unless given) and
    /// waits until `/health` answers.
    pub async fn start(env: &[(String, String)]) -> Hearth {
        let mut env = env.to_vec();
        let port = match env
            .iter()
            .find(|(k, _)| k == "HEARTH_PORT" || k == "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
        {
            Some((_, p)) => p.parse().unwrap_or(0),
            None => {
                let p = free_port();
                env.push(("HEARTH_PORT".into(), p.to_string()));
                p
            }
        };
        if !env.iter().any(|(k, _)| k == "HEARTH_TOKEN") {
            env.push(("HEARTH_TOKEN".into(), TOKEN.into()));
        }
        let proc = Proc::spawn(&target_bin("hearth"), &env);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let h = Hearth { proc, port, http };
        h.wait_healthy(Duration::from_secs(20)).await;
        h
    }

    async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(self.url("/health")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "hearth did not become healthy; output:\n{}",
            self.proc.output()
        );
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET with the token; returns status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(self.url(path))
            .header(hearth::wire::TOKEN_HEADER, TOKEN)
            .send()
            .await;
        into_json(r).await
    }

    /// POST JSON with the token; returns status and JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(self.url(path))
            .header(hearth::wire::TOKEN_HEADER, TOKEN)
            .json(body)
            .send()
            .await;
        into_json(r).await
    }

    /// A counter from `/v1/metrics` (0 when absent).
    pub async fn counter(&self, name: &str) -> u64 {
        let (_, m) = self.get("/v1/metrics").await;
        m["counters"][name].as_u64().unwrap_or(0)
    }
}

async fn into_json(r: reqwest::Result<reqwest::Response>) -> (u16, serde_json::Value) {
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        }
        Err(e) => (0, serde_json::Value::String(e.to_string())),
    }
}

/// The Lambda simulator with the real `hearth` extension and, optionally, a function.
pub struct SimEnv {
    /// The simulator.
    pub sim: Simulator,
    /// The extension process.
    pub extension: Proc,
    /// The function (runtime) process, once started.
    pub function: Option<Proc>,
    /// Port the extension serves on.
    pub port: u16,
}

impl std::fmt::Debug for SimEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimEnv").field("port", &self.port).finish()
    }
}

impl SimEnv {
    /// Starts the simulator and the extension with `env` on top of Lambda's variables, and
    /// waits for the extension to register (as Lambda does before starting the runtime).
    pub async fn start(env: &[(String, String)], freeze: bool) -> SimEnv {
        let sim = Simulator::builder()
            .function_name("hearth-test")
            .freeze_mode(if freeze {
                FreezeMode::Process
            } else {
                FreezeMode::None
            })
            .shutdown_timeout(Duration::from_millis(2000))
            .build()
            .await
            .unwrap_or_else(|e| panic!("simulator: {e}"));
        let port = free_port();
        let mut all: Vec<(String, String)> = sim.lambda_env_vars().into_iter().collect();
        all.push(("AWS_SESSION_TOKEN".into(), TOKEN.into()));
        all.push(("HEARTH_PORT".into(), port.to_string()));
        all.push(("HEARTH_LOG_FORMAT".into(), "text".into()));
        all.extend(env.iter().cloned());
        let extension = Proc::spawn(&target_bin("hearth"), &all);
        if freeze {
            sim.register_freeze_pid(extension.pid());
        }
        let s = SimEnv {
            sim,
            extension,
            function: None,
            port,
        };
        let registered = s
            .sim
            .wait_for(
                || async { s.sim.extension_count().await >= 1 },
                Duration::from_secs(20),
            )
            .await;
        assert!(
            registered.is_ok(),
            "extension did not register; output:\n{}",
            s.extension.output()
        );
        s
    }

    /// Waits until the simulator has frozen the environment *and* the extension process is
    /// really stopped. lambda-simulator 0.2.0 marks the environment frozen before it sends
    /// SIGSTOP, and a signal takes effect asynchronously, so `wait_for_frozen` alone can return
    /// while the extension still runs for a moment (seen under load: a "frozen" extension
    /// answering). Reads the process state from /proc.
    pub async fn wait_frozen(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let frozen = self.sim.wait_for_frozen(within).await;
        assert!(
            frozen.is_ok(),
            "the simulator did not freeze the environment"
        );
        let stat = format!("/proc/{}/stat", self.extension.pid());
        loop {
            // The state is the field after the parenthesised command name.
            let state = std::fs::read_to_string(&stat).ok().and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
            });
            if state.as_deref() == Some("T") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the extension process is not stopped (state {state:?}) although the \
                 simulator says frozen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Starts the function binary with Lambda's variables plus `env`.
    pub fn start_function(&mut self, bin: &Path, env: &[(String, String)]) {
        let mut all: Vec<(String, String)> = self.sim.lambda_env_vars().into_iter().collect();
        all.push(("AWS_SESSION_TOKEN".into(), TOKEN.into()));
        all.push(("HEARTH_PORT".into(), self.port.to_string()));
        all.extend(env.iter().cloned());
        let f = Proc::spawn(bin, &all);
        if self.sim.freeze_mode() == FreezeMode::Process {
            self.sim.register_freeze_pid(f.pid());
        }
        self.function = Some(f);
    }

    /// Invokes, and reads the extension overhead the simulator computes for this invocation
    /// (function response → every extension back at `/event/next`). The simulator forgets
    /// that figure right after emitting its platform report, so it is polled while the
    /// invocation runs; `None` when it was missed.
    pub async fn invoke_measured(
        &self,
        payload: serde_json::Value,
    ) -> (serde_json::Value, Option<f64>) {
        let id = self.sim.enqueue_payload(payload).await;
        let poll = async {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(ms) = self.sim.get_extension_overhead_ms(&id).await {
                    return Some(ms);
                }
                let state = self.sim.get_invocation_state(&id).await;
                if state.is_some_and(|s| s.response.is_some() || s.error.is_some()) {
                    return self.sim.get_extension_overhead_ms(&id).await;
                }
                tokio::task::yield_now().await;
            }
            None
        };
        tokio::join!(self.wait(&id), poll)
    }

    /// Invokes the function and waits for its response payload.
    pub async fn invoke(&self, payload: serde_json::Value) -> (String, serde_json::Value) {
        let id = self.sim.enqueue_payload(payload).await;
        let out = self.wait(&id).await;
        (id, out)
    }

    async fn wait(&self, id: &str) -> serde_json::Value {
        // Polled rather than `Simulator::wait_for_invocation_complete`: that waits on a
        // notification registered after its state check and can miss a completion that
        // lands in between (seen here as 30 s hangs of finished invocations).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(state) = self.sim.get_invocation_state(id).await {
                if state.response.is_some() || state.error.is_some() {
                    return state
                        .response
                        .map(|r| r.payload)
                        .unwrap_or(serde_json::Value::Null);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "invocation {id} did not complete within 30 s\nextension:\n{}\nfunction:\n{}",
                    self.extension.output(),
                    self.function.as_ref().map(Proc::output).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
