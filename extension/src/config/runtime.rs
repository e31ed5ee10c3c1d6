//! The lifecycle, logging and metrics sections.

use std::time::Duration;

use super::reader::{Reader, Var};

/// The lifecycle's variables.
pub const LIFECYCLE_VARS: &[Var] = &[
    Var::new(
        "HEARTH_PREWARM_BUDGET",
        "1500ms",
        "How long the first /event/next may wait for prewarm.",
    ),
    Var::new(
        "HEARTH_SHUTDOWN_BUDGET",
        "1500ms",
        "Drain time at SHUTDOWN (Lambda allows 2,000 ms).",
    ),
];

/// Logging's variables.
pub const LOG_VARS: &[Var] = &[
    Var::new(
        "HEARTH_LOG_LEVEL",
        "info",
        "trace, debug, info, warn, error, or none (no log lines).",
    )
    .alias(&[
        "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
        "AWS_LAMBDA_LOG_LEVEL",
    ]),
    Var::new(
        "HEARTH_LOG_FORMAT",
        "json under Lambda, else text",
        "text or json.",
    )
    .alias(&["AWS_LAMBDA_LOG_FORMAT"]),
];

/// Metrics' variables.
pub const METRICS_VARS: &[Var] = &[
    Var::new(
        "HEARTH_METRICS_EMF",
        "true",
        "Write CloudWatch Embedded Metric Format lines to stdout.",
    ),
    Var::new(
        "HEARTH_METRICS_NAMESPACE",
        "Hearth",
        "CloudWatch namespace of the EMF metrics.",
    ),
    Var::new("HEARTH_METRICS_FLUSH", "invocation-end", "When EMF is written: invocation-end (each invocation's own line, when the Telemetry API reports it done; holds /event/next until then, up to its 25 ms buffering after the function returns) or next-invoke (at the next INVOKE, no hold: the line carries the previous invocation)."),
];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (what CloudWatch's JSON log format expects).
    Json,
}

/// Log verbosity, as Lambda's `AWS_LAMBDA_LOG_LEVEL` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    Info,
    /// Only warnings and errors.
    Warn,
    /// Only errors.
    Error,
    /// Nothing (AWS's extension's `none`).
    Off,
}

impl LogLevel {
    /// The `tracing` level filter for this level.
    pub fn filter(self) -> tracing_subscriber::filter::LevelFilter {
        use tracing_subscriber::filter::LevelFilter;
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Off => LevelFilter::OFF,
        }
    }
}

/// Where the extension runs: decides which lifecycle events it registers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitType {
    /// Classic Lambda (on-demand or provisioned concurrency): INVOKE and SHUTDOWN.
    OnDemand,
    /// Lambda Managed Instances: INVOKE registration is rejected; SHUTDOWN only.
    ManagedInstances,
}

/// Lifecycle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// Which events to register for.
    pub init_type: InitType,
    /// How long the first `/event/next` may wait for prewarm.
    pub prewarm_budget: Duration,
    /// Time allowed for draining at SHUTDOWN (Lambda gives external extensions 2,000 ms).
    pub shutdown_budget: Duration,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Verbosity.
    pub level: LogLevel,
    /// Format.
    pub format: LogFormat,
}

/// Metrics settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Write CloudWatch Embedded Metric Format lines to stdout.
    pub emf: bool,
    /// CloudWatch namespace for EMF.
    pub namespace: String,
    /// Function name, used as the EMF dimension.
    pub function_name: String,
    /// When each invocation's EMF line is written.
    pub flush: MetricsFlush,
}

/// When the EMF line of an invocation is written (`HEARTH_METRICS_FLUSH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFlush {
    /// When the Telemetry API's `platform.runtimeDone` reports the invocation done, before
    /// the extension asks for the next event; at the next INVOKE where that API is missing.
    InvocationEnd,
    /// At the next INVOKE (and at SHUTDOWN): never holds `/event/next`, one invocation late.
    NextInvoke,
}

/// Reads the lifecycle's section.
pub fn read_lifecycle(r: &mut Reader<'_>) -> LifecycleConfig {
    let env = r.env;
    let init_type = match env.get("AWS_LAMBDA_INITIALIZATION_TYPE") {
        Some("lambda-managed-instances") => InitType::ManagedInstances,
        _ => InitType::OnDemand,
    };
    LifecycleConfig {
        init_type,
        prewarm_budget: r.duration(
            "HEARTH_PREWARM_BUDGET",
            Duration::from_millis(1500),
            Duration::ZERO,
            Duration::from_secs(9),
        ),
        shutdown_budget: r.duration(
            "HEARTH_SHUTDOWN_BUDGET",
            Duration::from_millis(1500),
            Duration::from_millis(100),
            Duration::from_millis(1900),
        ),
    }
}

/// Reads logging's section.
pub fn read_log(r: &mut Reader<'_>) -> LogConfig {
    let env = r.env;
    let in_lambda = env.get("AWS_LAMBDA_RUNTIME_API").is_some();
    LogConfig {
        level: r.parse(
            "HEARTH_LOG_LEVEL",
            LogLevel::Info,
            "trace, debug, info, warn, error or none",
            |s| {
                match s.to_ascii_lowercase().as_str() {
                    "trace" => Some(LogLevel::Trace),
                    "debug" => Some(LogLevel::Debug),
                    "info" => Some(LogLevel::Info),
                    "warn" | "warning" => Some(LogLevel::Warn),
                    "error" | "fatal" => Some(LogLevel::Error),
                    // AWS's extension's `none`: no log lines at all.
                    "none" | "off" => Some(LogLevel::Off),
                    _ => None,
                }
            },
        ),
        format: r.parse(
            "HEARTH_LOG_FORMAT",
            if in_lambda {
                LogFormat::Json
            } else {
                LogFormat::Text
            },
            "text or json",
            |s| match s.to_ascii_lowercase().as_str() {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            },
        ),
    }
}

/// Reads metrics' section.
pub fn read_metrics(r: &mut Reader<'_>) -> MetricsConfig {
    let env = r.env;
    MetricsConfig {
        emf: r.flag("HEARTH_METRICS_EMF", true),
        namespace: r.parse(
            "HEARTH_METRICS_NAMESPACE",
            "Hearth".to_string(),
            "1 to 255 printable characters",
            |s| (!s.is_empty() && s.len() <= 255 && !s.contains(':')).then(|| s.to_string()),
        ),
        function_name: env
            .get("AWS_LAMBDA_FUNCTION_NAME")
            .unwrap_or("local")
            .to_string(),
        flush: r.parse(
            "HEARTH_METRICS_FLUSH",
            MetricsFlush::InvocationEnd,
            "invocation-end or next-invoke",
            |s| match s {
                "invocation-end" => Some(MetricsFlush::InvocationEnd),
                "next-invoke" => Some(MetricsFlush::NextInvoke),
                _ => None,
            },
        ),
    }
}
