//! The extension's life, in the order DESIGN.md gives and for the reasons it gives:
//!
//! 1. parse configuration (bad: one log line per problem, an init error, exit non-zero);
//! 2. bind the loopback listener **before** registering, so the function never meets
//!    "connection refused";
//! 3. register with the Extensions API (INVOKE + SHUTDOWN; SHUTDOWN only on Lambda
//!    Managed Instances, which reject INVOKE);
//! 4. prewarm in the background, holding the first `/event/next` at most
//!    `HEARTH_PREWARM_BUDGET` so the first invocation finds warm caches;
//! 5. event loop: INVOKE kicks off refresh-ahead work; with EMF on and the Telemetry API
//!    available (`HEARTH_METRICS_FLUSH=invocation-end`, the default) it then waits for that
//!    invocation's `platform.runtimeDone` (the function has returned: its caller already has
//!    the response) and writes the invocation's EMF line before returning to
//!    `/event/next`, so the line is out before Lambda freezes the environment; otherwise it
//!    returns at once and the line is written at the next INVOKE. SHUTDOWN drains and exits
//!    0 within the budget.
//!
//! Without `AWS_LAMBDA_RUNTIME_API` (a local run) steps 3 and 5 are replaced by waiting for
//! Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_extension::{service_fn, Extension, LambdaEvent, NextEvent};
use tokio::sync::mpsc;

use crate::config::{
    Config, ConfigError, Env, InitType, LogConfig, LogFormat, LogLevel, MetricsFlush,
};
use crate::database::Database;
use crate::emf::Emf;
use crate::failover::Service;
use crate::kms::KmsService;
use crate::metrics::Metrics;
use crate::parameters::upstream::ParametersUpstream;
use crate::parameters::ParametersCache;
use crate::secrets::upstream::SecretsUpstream;
use crate::secrets::SecretsCache;
use crate::server::{self, Server};
use crate::state::AppState;
use crate::telemetry::{self, InvocationEnds};
use crate::{api, aws, logging, prewarm};

/// Error type the Extensions API reports for configuration problems.
const CONFIG_ERROR_TYPE: &str = "Extension.ConfigError";
/// Error type for a listener that cannot bind.
const BIND_ERROR_TYPE: &str = "Extension.BindError";

fn extension_name() -> String {
    // Lambda requires the registered name to equal the executable's file name.
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "hearth".to_string())
}

fn events_for(init: InitType) -> &'static [&'static str] {
    match init {
        InitType::OnDemand => &["INVOKE", "SHUTDOWN"],
        InitType::ManagedInstances => &["SHUTDOWN"],
    }
}

/// Runs the extension to completion and returns the process exit code.
pub async fn run(env: Env) -> ExitCode {
    let started = Instant::now();
    let in_lambda = env.get("AWS_LAMBDA_RUNTIME_API").is_some();
    let cfg = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            let format = if in_lambda {
                LogFormat::Json
            } else {
                LogFormat::Text
            };
            logging::init(&LogConfig {
                level: LogLevel::Info,
                format,
            });
            log_config_error(&e);
            if in_lambda {
                report_init_error(CONFIG_ERROR_TYPE, &e.to_string()).await;
            }
            return ExitCode::FAILURE;
        }
    };
    logging::init(&cfg.log);

    let listener = match server::bind(cfg.server.port).await {
        Ok(l) => l,
        Err(e) => {
            let msg = format!(
                "cannot listen on 127.0.0.1:{} ({e}); set HEARTH_PORT to a free port",
                cfg.server.port
            );
            return init_failed(in_lambda, BIND_ERROR_TYPE, &msg).await;
        }
    };

    let unix_listener = match &cfg.server.unix_socket {
        None => None,
        Some(path) => match server::bind_unix(path).await {
            Ok(bound) => Some(bound),
            Err(msg) => return init_failed(in_lambda, BIND_ERROR_TYPE, &msg).await,
        },
    };

    let state = match build_state(cfg).await {
        Ok(s) => s,
        Err(msg) => {
            if let Some((_, file)) = &unix_listener {
                file.remove();
            }
            return init_failed(in_lambda, CONFIG_ERROR_TYPE, &msg).await;
        }
    };
    let cfg = state.config.clone();
    let server = Server::spawn_with_unix(
        listener,
        unix_listener,
        api::router(state.clone()),
        &cfg.server,
    );
    tracing::info!(
        port = server.local_addr().port(),
        unix_socket = cfg
            .server
            .unix_socket
            .as_ref()
            .map(|p| p.display().to_string()),
        startup_us = started.elapsed().as_micros() as u64,
        "listening"
    );
    let emf = Arc::new(Emf::new(
        state.metrics.clone(),
        cfg.metrics.namespace.clone(),
        cfg.metrics.function_name.clone(),
        Box::new(std::io::stdout()),
    ));

    let prewarm_task = tokio::spawn({
        let state = state.clone();
        async move { prewarm::prewarm(&state).await }
    });

    let reason = if in_lambda {
        match event_loop(&state, &emf, prewarm_task).await {
            Ok(reason) => reason,
            // A transport failure talking to the local Extensions API means the
            // environment is being torn down (the simulator, for one, stops serving right
            // after handing out SHUTDOWN): drain as for SHUTDOWN rather than vanish.
            Err(e)
                if e.downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some() =>
            {
                tracing::warn!(error = %e, "the Extensions API went away; shutting down");
                "extensions-api-closed".to_string()
            }
            Err(e) => {
                tracing::error!(error = %e, "Extensions API failed");
                server.shutdown(cfg.lifecycle.shutdown_budget).await;
                return ExitCode::FAILURE;
            }
        }
    } else {
        tracing::info!(
            "AWS_LAMBDA_RUNTIME_API is not set: running standalone until Ctrl-C or SIGTERM"
        );
        wait_for_signal().await;
        "signal".to_string()
    };

    let t0 = Instant::now();
    let drained = server.shutdown(cfg.lifecycle.shutdown_budget).await;
    // After the drain, so no request is still using a key: zeroize every cached key.
    let keys_zeroized = state.kms.shutdown();
    tracing::debug!(keys_zeroized, "data keys dropped");
    if let Some(db) = &state.db {
        db.close();
    }
    if cfg.metrics.emf {
        flush_metrics(&state, &emf);
    }
    tracing::info!(reason = %reason, drained, shutdown_ms = t0.elapsed().as_millis() as u64, "shutdown complete");
    ExitCode::SUCCESS
}

async fn build_state(cfg: Config) -> Result<AppState, String> {
    let metrics = Metrics::new();
    let sdk = aws::sdk_config(&cfg.aws).await;
    // One client per (service, region), built here once; see aws.rs and failover.rs.
    let secrets_clients = aws::regional(
        &sdk,
        &cfg,
        Service::Secrets,
        &metrics,
        aws_sdk_secretsmanager::Client::new,
    );
    // Calls in flight to Secrets Manager and Parameter Store, when bounded.
    let aws_slots = cfg
        .aws
        .max_connections
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n.get())));
    let upstream =
        SecretsUpstream::regional(secrets_clients, &metrics).with_slots(aws_slots.clone());
    let secrets = SecretsCache::secrets(cfg.secrets.cache.clone(), upstream, &metrics);
    let ssm_clients = aws::regional(
        &sdk,
        &cfg,
        Service::Parameters,
        &metrics,
        aws_sdk_ssm::Client::new,
    );
    let parameters = ParametersCache::parameters(
        cfg.parameters.cache.clone(),
        ParametersUpstream::regional(ssm_clients, &metrics).with_slots(aws_slots),
        &metrics,
    );
    let kms_clients = aws::regional(&sdk, &cfg, Service::Kms, &metrics, aws_sdk_kms::Client::new);
    let kms = KmsService::regional(
        cfg.kms.clone(),
        kms_clients,
        cfg.failover.kms_key_id.clone(),
        &metrics,
    );
    let db = match &cfg.db {
        None => None,
        Some(settings) => match Database::new(settings, secrets.clone(), &sdk, &metrics) {
            Ok(db) => Some(Arc::new(db)),
            Err(e) => return Err(format!("database pool: {e}")),
        },
    };
    let http = Arc::new(crate::api::guard::HttpMetrics::new(&metrics));
    Ok(AppState {
        http,
        config: Arc::new(cfg),
        metrics,
        secrets,
        parameters,
        kms,
        db,
        prewarmed: Arc::new(AtomicBool::new(false)),
    })
}

/// Copies the pool's statistics into the registry, then writes the EMF line.
fn flush_metrics(state: &AppState, emf: &Emf) {
    if let Some(db) = &state.db {
        db.publish();
    }
    emf.flush();
}

/// The instant of a Lambda deadline given in milliseconds since the epoch.
fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Handles one INVOKE: kicks off refresh-ahead, then writes EMF as `HEARTH_METRICS_FLUSH`
/// and the Telemetry API allow (see the module docs).
async fn on_invoke(
    state: &AppState,
    emf: &Emf,
    ends: Option<&InvocationEnds>,
    request_id: &str,
    deadline_ms: u64,
) {
    // Only kick off work here: it runs while the function does.
    state.secrets.refresh_ahead();
    state.parameters.refresh_ahead();
    state.kms.refresh_ahead();
    let invokes = state.metrics.counter("lifecycle.invokes");
    if !state.config.metrics.emf {
        invokes.inc();
        return;
    }
    match ends.filter(|e| e.reliable()) {
        Some(ends) => {
            invokes.inc();
            let until = deadline_instant(deadline_ms) + telemetry::GRACE;
            if !ends.wait(request_id, until).await {
                tracing::warn!(
                    request_id,
                    "platform.runtimeDone did not arrive by the deadline; EMF is written at each INVOKE \
                     from now on"
                );
            }
            // The function has returned: this line carries this invocation's figures.
            flush_metrics(state, emf);
        }
        None => {
            // The previous invocation's figures, then count this one.
            flush_metrics(state, emf);
            invokes.inc();
        }
    }
}

/// Registers, holds the first `/event/next` for prewarm, then handles events until
/// SHUTDOWN. Returns the shutdown reason.
async fn event_loop(
    state: &AppState,
    emf: &Arc<Emf>,
    prewarm_task: tokio::task::JoinHandle<hearth::wire::WarmResponse>,
) -> Result<String, lambda_extension::Error> {
    let cfg = state.config.clone();
    let (shutdown_tx, mut shutdown_rx) = mpsc::unbounded_channel::<String>();
    // Set after registration when the Telemetry API subscription succeeds.
    let ends: Arc<OnceLock<Arc<InvocationEnds>>> = Arc::default();
    let processor = {
        let state = state.clone();
        let emf = emf.clone();
        let ends = ends.clone();
        service_fn(move |event: LambdaEvent| {
            let state = state.clone();
            let emf = emf.clone();
            let ends = ends.clone();
            let shutdown_tx = shutdown_tx.clone();
            async move {
                match event.next {
                    NextEvent::Invoke(inv) => {
                        on_invoke(
                            &state,
                            &emf,
                            ends.get().map(|e| &**e),
                            &inv.request_id,
                            inv.deadline_ms,
                        )
                        .await;
                    }
                    NextEvent::Shutdown(s) => {
                        let _ = shutdown_tx.send(s.shutdown_reason);
                    }
                }
                Ok::<(), lambda_extension::Error>(())
            }
        })
    };
    let name = extension_name();
    let events = events_for(cfg.lifecycle.init_type);
    let registered = Extension::new()
        .with_extension_name(&name)
        .with_events(events)
        .with_events_processor(processor)
        .register()
        .await?;
    tracing::info!(extension = %name, events = ?events, "registered");

    let wants_telemetry = cfg.metrics.emf
        && cfg.metrics.flush == MetricsFlush::InvocationEnd
        && cfg.lifecycle.init_type == InitType::OnDemand;
    if wants_telemetry {
        // During init, as Lambda requires: before the first /event/next.
        match telemetry::subscribe(&registered.extension_id).await {
            Ok(e) => {
                let _ = ends.set(e);
                tracing::debug!("subscribed to the Telemetry API: EMF at each invocation's end");
            }
            Err(e) => tracing::info!(
                error = %e,
                "no Telemetry API: EMF is written at each INVOKE (one invocation late)"
            ),
        }
    }

    if tokio::time::timeout(cfg.lifecycle.prewarm_budget, prewarm_task)
        .await
        .is_err()
    {
        tracing::info!(
            "prewarm still running after HEARTH_PREWARM_BUDGET; continuing in the background"
        );
    }

    if cfg.lifecycle.init_type == InitType::ManagedInstances && cfg.metrics.emf {
        // No INVOKE events here: flush EMF once a minute instead (a no-op when idle).
        let emf = emf.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                flush_metrics(&state, &emf);
            }
        });
    }

    tokio::select! {
        biased;
        reason = shutdown_rx.recv() => Ok(reason.unwrap_or_else(|| "unknown".into())),
        r = registered.run() => {
            // After SHUTDOWN the loop's next poll may fail as the environment tears down;
            // that is the end of a clean shutdown, not an error.
            if let Ok(reason) = shutdown_rx.try_recv() {
                return Ok(reason);
            }
            r?;
            Err("the Extensions API event stream ended".into())
        }
    }
}

fn log_config_error(e: &ConfigError) {
    for p in &e.problems {
        tracing::error!(variable = %p.variable, "invalid configuration: {}: {}", p.variable, p.message);
    }
}

/// Reports an init error through the Extensions API. Registration comes first because the
/// init-error endpoint needs the extension's identifier.
/// An init failure after logging is set up: one error line, the Extensions API told (in
/// Lambda), exit 1.
async fn init_failed(in_lambda: bool, error_type: &str, msg: &str) -> ExitCode {
    tracing::error!("{msg}");
    if in_lambda {
        report_init_error(error_type, msg).await;
    }
    ExitCode::FAILURE
}

async fn report_init_error(error_type: &str, message: &str) {
    let name = extension_name();
    let registered = match Extension::new()
        .with_extension_name(&name)
        .with_events(&["SHUTDOWN"])
        .register()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not register to report the init error");
            return;
        }
    };
    let body = lambda_extension::requests::ErrorRequest {
        error_message: message,
        error_type,
        stack_trace: vec![],
    };
    let req = match lambda_extension::requests::init_error(
        &registered.extension_id,
        error_type,
        Some(body),
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not build the init error request");
            return;
        }
    };
    let client = match lambda_runtime_api_client::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not build the Extensions API client");
            return;
        }
    };
    match client.call(req).await {
        Ok(resp) => tracing::info!(status = resp.status().as_u16(), "init error reported"),
        Err(e) => tracing::warn!(error = %e, "init error report failed"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
