//! Structured logs via `tracing` to stdout, honouring `AWS_LAMBDA_LOG_LEVEL` and
//! `AWS_LAMBDA_LOG_FORMAT` (through the config aliases). Nothing logged anywhere in the
//! extension carries a secret value, a plaintext key or a password.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat, LogLevel};

/// Installs the global subscriber. Safe to call once; later calls are ignored.
pub fn init(cfg: &LogConfig) {
    // Our own crates at the configured level; the SDK and hyper one step quieter.
    // `none` (AWS's extension) is silence from every crate.
    let directive = match cfg.level {
        LogLevel::Off => "off".to_string(),
        level => format!(
            "warn,hearth={lvl},hearth_extension={lvl},hearth_db={lvl}",
            lvl = level.directive()
        ),
    };
    let filter = EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_target(false);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
