//! Structured logs via `tracing` to stdout, honouring `AWS_LAMBDA_LOG_LEVEL` and
//! `AWS_LAMBDA_LOG_FORMAT` (through the config aliases). Nothing logged anywhere in the
//! extension carries a secret value, a plaintext key or a password.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Safe to call once; later calls are ignored.
pub fn init(cfg: &LogConfig) {
    // Our own crates at the configured level; the SDK and hyper at warn. `none` (AWS's
    // extension) is silence from every crate. A static `Targets` filter: the filter never
    // changes at run time, so nothing needs EnvFilter's directive parser on the event path.
    let ours = cfg.level.filter();
    let default = if ours == LevelFilter::OFF {
        LevelFilter::OFF
    } else {
        LevelFilter::WARN
    };
    let filter = Targets::new()
        .with_default(default)
        .with_target("hearth", ours)
        .with_target("hearth_extension", ours)
        .with_target("hearth_db", ours);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .with_target(false);
    let _ = match cfg.format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(fmt.with_ansi(false).with_filter(filter))
            .try_init(),
    };
}
