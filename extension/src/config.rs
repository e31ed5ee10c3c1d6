//! Configuration: environment variables parsed once, at start, into typed values.
//!
//! Two stages, as in AWS's own secrets agent: [`Env`] is a snapshot of the raw variables
//! (tests build one from a map instead of mutating the process environment), and
//! [`Config::from_env`] turns it into typed values. Every problem is collected, so a user
//! with three typos sees three lines, each naming the variable and what it accepts.
//! Unknown `HEARTH_*` variables are errors: a misspelt TTL silently ignored is the kind of
//! bug that surfaces as an outage months later.
//!
//! Where AWS's Parameters and Secrets extension has an equivalent variable, it is honoured
//! as an alias so a user can swap layers without changing configuration; the `HEARTH_`
//! name wins when both are set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use hearth::wire::DEFAULT_PORT;

pub use crate::aws::RetryModeSetting;

/// A snapshot of the environment variables the extension reads.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Snapshot of the process environment.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    /// Environment built from pairs (for tests and embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be tokens or credentials: show names only.
        f.debug_list().entries(self.vars.keys()).finish()
    }
}

/// One configuration problem, naming the variable and the accepted values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The variable at fault.
    pub variable: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// All configuration problems found at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Every problem, in variable order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{}: {}", p.variable, p.message)?;
        }
        Ok(())
    }
}

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
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
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

/// HTTP listener settings.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Loopback port.
    pub port: u16,
    /// Expected value of the token header.
    pub token: String,
    /// Concurrent connections served; further ones wait in the accept queue.
    pub max_connections: NonZeroUsize,
    /// Largest request body accepted.
    pub max_body_bytes: NonZeroUsize,
    /// Largest request head (request line plus headers) accepted.
    pub max_header_bytes: NonZeroUsize,
    /// Time allowed to read a request head, and to handle one request.
    pub request_timeout: Duration,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("port", &self.port)
            .field("token", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
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
}

/// AWS SDK client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
    /// Timeout of one operation, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation, the first included.
    pub max_attempts: u32,
    /// SDK retry mode.
    pub retry_mode: RetryModeSetting,
}

/// Regional failover settings (see `crate::failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverConfig {
    /// The function's own region (`AWS_REGION`, else `AWS_DEFAULT_REGION`).
    pub primary_region: Option<String>,
    /// Fallback region for Secrets Manager.
    pub secrets_region: Option<String>,
    /// Fallback region for KMS.
    pub kms_region: Option<String>,
    /// Key in the KMS fallback region under which data keys of `HEARTH_KMS_KEY_ID` are
    /// also encrypted.
    pub kms_key_id: Option<String>,
    /// Endpoint overrides by region name.
    pub endpoints: BTreeMap<String, String>,
    /// With a fallback: the primary's operation timeout, retries included.
    pub budget: Duration,
    /// With a fallback: attempts per call on the primary.
    pub max_attempts: u32,
    /// How long calls go straight to the fallback before the primary is probed.
    pub cooldown: Duration,
}

/// Secrets cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsConfig {
    /// Age after which a read triggers a background refresh (before jitter).
    pub soft_ttl: Duration,
    /// Age after which a read refetches synchronously: the maximum exposure window.
    pub hard_ttl: Duration,
    /// Per-entry jitter of the soft TTL, in percent (± this much).
    pub jitter_percent: u8,
    /// How long past the hard TTL a cached value may be served while AWS fails transiently.
    pub stale_if_error: Duration,
    /// Maximum cached versions (LRU beyond).
    pub capacity: NonZeroUsize,
    /// Secret ids fetched in the background at init.
    pub prefetch: Vec<String>,
}

/// KMS data-key cache and envelope-encryption settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// Key used when a request names none; without it requests must carry `keyId`.
    pub key_id: Option<String>,
    /// Whether data keys are cached at all (off: one GenerateDataKey per encrypt and one
    /// Decrypt per decrypt).
    pub caching: bool,
    /// Age at which a cached data key is no longer used.
    pub max_age: Duration,
    /// Messages (and data keys handed out) one data key may protect, the current one
    /// included.
    pub max_messages: u64,
    /// Plaintext bytes one data key may protect, the current message included.
    pub max_bytes: u64,
    /// Cached partitions (key id, context), and cached decrypted keys (LRU beyond).
    pub capacity: NonZeroUsize,
    /// Share of any limit, in percent, after which a replacement key is generated ahead.
    pub refresh_percent: u8,
    /// Encryption context of the data key generated at prewarm; `None` skips it.
    pub prewarm_context: Option<std::collections::BTreeMap<String, String>>,
    /// The ESDK commitment policy (`HEARTH_KMS_COMMITMENT_POLICY`).
    pub commitment_policy: hearth_esdk::CommitmentPolicy,
    /// The suite encrypt writes (`HEARTH_KMS_ALGORITHM`): 0x0478 or 0x0578.
    pub algorithm: hearth_esdk::Suite,
    /// Further keys decrypt may use (`HEARTH_KMS_DECRYPT_KEYS`): key ARNs or key ids.
    pub decrypt_keys: Vec<String>,
    /// Discovery mode with its filter (`HEARTH_KMS_DISCOVERY` and its filter variables);
    /// `None`: strict.
    pub discovery: Option<crate::kms::keys::DiscoveryFilter>,
}

/// Transport security to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTls {
    /// TLS with certificate and hostname verification against this CA bundle (PEM).
    Require(std::path::PathBuf),
    /// Plaintext: refused by the pool for any host that is not loopback.
    Disable,
}

/// Database pool settings; present when `HEARTH_DB_SECRET_ID` is set, or `HEARTH_DB_HOST`
/// with `HEARTH_DB_AUTH=iam`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// Secrets Manager secret in the RDS JSON form (username, password, host, port, dbname);
    /// with IAM auth and [`DbSettings::endpoint`] none is needed.
    pub secret_id: Option<String>,
    /// Connections opened at prewarm.
    pub pool_min: usize,
    /// Maximum open connections.
    pub pool_max: NonZeroUsize,
    /// Bound on opening one connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for a free connection.
    pub pool_wait_timeout: Duration,
    /// Server-side statement timeout.
    pub statement_timeout: Duration,
    /// Idle time after which a pooled connection is verified before use.
    pub verify_idle_after: Duration,
    /// Setting carrying the tenant.
    pub tenant_setting: String,
    /// Further settings a request may set.
    pub allowed_settings: Vec<String>,
    /// Accept requests without a tenant.
    pub tenantless: bool,
    /// Accept a superuser or BYPASSRLS role.
    pub allow_privileged_role: bool,
    /// Cap on one request's result bytes.
    pub max_result_bytes: NonZeroUsize,
    /// Transport security.
    pub tls: DbTls,
    /// Where the password comes from.
    pub auth: DbAuth,
    /// The endpoint given by variables (IAM only), instead of the secret's.
    pub endpoint: Option<DbEndpoint>,
    /// Direct, or behind a transaction-mode pooler.
    pub pooler: hearth_db::PoolerMode,
    /// Default form of int8 and numeric results.
    pub numbers: hearth::wire::NumberMode,
}

/// Where database passwords come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbAuth {
    /// The `password` field of the secret.
    Secret,
    /// IAM authentication tokens, generated per new connection.
    Iam,
}

/// A database endpoint given by variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbEndpoint {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Database name.
    pub dbname: String,
}

/// Every setting, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Listener.
    pub server: ServerConfig,
    /// Lifecycle.
    pub lifecycle: LifecycleConfig,
    /// Logging.
    pub log: LogConfig,
    /// Metrics.
    pub metrics: MetricsConfig,
    /// AWS clients.
    pub aws: AwsConfig,
    /// Secrets cache.
    pub secrets: SecretsConfig,
    /// KMS data keys.
    pub kms: KmsConfig,
    /// Database pool, when configured.
    pub db: Option<DbSettings>,
    /// Regional failover of Secrets Manager and KMS.
    pub failover: FailoverConfig,
}

/// Every `HEARTH_*` variable this build understands, with its alias, default and meaning.
/// The README's configuration table is checked against this list by a test.
pub const VARIABLES: &[(&str, Option<&str>, &str, &str)] = &[
    ("HEARTH_PORT", Some("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"), "2773", "Loopback port of the HTTP API."),
    ("HEARTH_TOKEN", None, "value of AWS_SESSION_TOKEN", "Value the X-Aws-Parameters-Secrets-Token header must carry."),
    ("HEARTH_MAX_CONNECTIONS", Some("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS"), "64", "Concurrent HTTP connections served."),
    ("HEARTH_MAX_BODY_BYTES", None, "1048576", "Largest request body accepted (413 beyond)."),
    ("HEARTH_MAX_HEADER_BYTES", None, "16384", "Largest request head accepted."),
    ("HEARTH_REQUEST_TIMEOUT", None, "10s", "Time to read a request head and to handle one request."),
    ("HEARTH_PREWARM_BUDGET", None, "1500ms", "How long the first /event/next may wait for prewarm."),
    ("HEARTH_SHUTDOWN_BUDGET", None, "1500ms", "Drain time at SHUTDOWN (Lambda allows 2,000 ms)."),
    ("HEARTH_LOG_LEVEL", Some("AWS_LAMBDA_LOG_LEVEL"), "info", "trace, debug, info, warn or error."),
    ("HEARTH_LOG_FORMAT", Some("AWS_LAMBDA_LOG_FORMAT"), "json under Lambda, else text", "text or json."),
    ("HEARTH_METRICS_EMF", None, "true", "Write CloudWatch Embedded Metric Format lines to stdout."),
    ("HEARTH_METRICS_NAMESPACE", None, "Hearth", "CloudWatch namespace of the EMF metrics."),
    ("HEARTH_AWS_CONNECT_TIMEOUT", None, "1s", "Connect timeout of AWS API calls."),
    ("HEARTH_AWS_ATTEMPT_TIMEOUT", None, "2s", "Timeout of one attempt of an AWS API call."),
    ("HEARTH_AWS_OPERATION_TIMEOUT", None, "5s", "Timeout of an AWS API call, retries included."),
    ("HEARTH_AWS_MAX_ATTEMPTS", None, "3", "Attempts per AWS API call (1 to 10)."),
    ("HEARTH_AWS_RETRY_MODE", None, "standard", "SDK retry mode: standard or adaptive."),
    ("HEARTH_AWS_ENDPOINTS", None, "(none: the SDK's endpoints)", "Endpoint overrides per region, comma-separated region=URL pairs, e.g. us-east-1=http://127.0.0.1:4566,eu-west-1=http://127.0.0.1:4567."),
    ("HEARTH_FALLBACK_REGION", None, "(none: no failover)", "Region Secrets Manager and KMS calls fail over to when the primary region (AWS_REGION) fails."),
    ("HEARTH_SECRETS_FALLBACK_REGION", None, "HEARTH_FALLBACK_REGION", "Fallback region for Secrets Manager (replica secrets of the same name are read there), or none."),
    ("HEARTH_KMS_FALLBACK_REGION", None, "HEARTH_FALLBACK_REGION", "Fallback region for KMS, or none."),
    ("HEARTH_KMS_FALLBACK_KEY_ID", None, "(none)", "Key in the KMS fallback region: each data key of HEARTH_KMS_KEY_ID is also encrypted under it (a second encrypted data key), so messages decrypt in either region."),
    ("HEARTH_FAILOVER_BUDGET", None, "2s", "With a fallback region: the longest a call waits on the primary, retries included, before going to the fallback (100ms to 60s)."),
    ("HEARTH_FAILOVER_MAX_ATTEMPTS", None, "2", "With a fallback region: attempts per call on the primary (1 to 10), each given an equal share of the budget."),
    ("HEARTH_FAILOVER_COOLDOWN", None, "30s", "After the primary fails, calls go straight to the fallback this long; then one call probes the primary (1s to 1h)."),
    ("HEARTH_SECRETS_SOFT_TTL", None, "240s (80% of the hard TTL if only that is set)", "Age at which a read starts a background refresh; jittered per entry."),
    ("HEARTH_SECRETS_HARD_TTL", Some("SECRETS_MANAGER_TTL"), "300s", "Age at which a read refetches before answering (no 5-minute cap)."),
    ("HEARTH_SECRETS_JITTER_PERCENT", None, "10", "Soft-TTL jitter per entry, in percent (0 to 50)."),
    ("HEARTH_SECRETS_STALE_IF_ERROR", None, "15m", "How long past the hard TTL a value is served while Secrets Manager fails transiently (0 disables)."),
    ("HEARTH_SECRETS_CACHE_SIZE", Some("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"), "1000", "Cached secret versions (LRU beyond)."),
    ("HEARTH_SECRETS_PREFETCH", None, "(none)", "Comma-separated secret ids fetched in the background at init."),
    ("HEARTH_KMS_KEY_ID", None, "(none)", "KMS key id, ARN or alias used when a request names no keyId (requests must name one without it)."),
    ("HEARTH_KMS_CACHE", None, "true", "Cache data keys (false: one KMS call per encrypt and per decrypt)."),
    ("HEARTH_KMS_MAX_AGE", None, "300s", "Age at which a cached data key is retired (100ms to 24h)."),
    ("HEARTH_KMS_MAX_MESSAGES", None, "1048576", "Messages one data key may encrypt, the current one included (1 to 4294967296)."),
    ("HEARTH_KMS_MAX_BYTES", None, "1073741824", "Plaintext bytes one data key may encrypt, the current message included (1 to 2^62)."),
    ("HEARTH_KMS_CACHE_SIZE", None, "1000", "Cached (key, context) partitions, and cached decrypted data keys (LRU beyond)."),
    ("HEARTH_DB_SECRET_ID", None, "(none: database off)", "Secrets Manager secret (RDS JSON: username, password, host, port, dbname) for the pool."),
    ("HEARTH_DB_POOL_MIN", None, "1", "Connections opened at prewarm."),
    ("HEARTH_DB_POOL_MAX", None, "4", "Maximum open connections per environment."),
    ("HEARTH_DB_CONNECT_TIMEOUT", None, "3s", "Bound on opening one connection (TCP, TLS, authentication)."),
    ("HEARTH_DB_POOL_WAIT_TIMEOUT", None, "2s", "Bound on waiting for a free connection (503 PoolTimeout beyond)."),
    ("HEARTH_DB_STATEMENT_TIMEOUT", None, "5s", "Server-side statement_timeout of every connection."),
    ("HEARTH_DB_VERIFY_IDLE_AFTER", None, "5s", "Pooled connections idle longer are verified before use (freeze/thaw)."),
    ("HEARTH_DB_TENANT_SETTING", None, "app.tenant_id", "Transaction-local setting that carries the request's tenant."),
    ("HEARTH_DB_CONTEXT_SETTINGS", None, "(none)", "Comma-separated further settings a request may set, e.g. app.user_id."),
    ("HEARTH_DB_TENANTLESS", None, "false", "Accept requests without a tenant."),
    ("HEARTH_DB_ALLOW_PRIVILEGED_ROLE", None, "false", "Accept a role that escapes RLS: superuser, BYPASSRLS, CREATEROLE, member of such a role or of rds_superuser, owner of a table whose RLS is not forced."),
    ("HEARTH_DB_MAX_RESULT_BYTES", None, "6291456", "Cap on one request's result bytes, checked while rows stream in (ResultTooLarge beyond)."),
    ("HEARTH_DB_TLS", None, "require", "require (verify certificate and hostname) or disable (loopback hosts only)."),
    ("HEARTH_DB_CA_BUNDLE", None, "/opt/hearth/rds-ca-bundle.pem", "PEM CA bundle for TLS (the RDS global bundle for Aurora)."),
    ("HEARTH_DB_AUTH", None, "secret", "secret (the password in HEARTH_DB_SECRET_ID) or iam (IAM authentication tokens signed with the extension's credentials; TLS required)."),
    ("HEARTH_DB_HOST", None, "(from the secret)", "With HEARTH_DB_AUTH=iam: the database endpoint, instead of a secret (which is then not needed)."),
    ("HEARTH_DB_PORT", None, "5432", "With HEARTH_DB_HOST: the database port."),
    ("HEARTH_DB_USER", None, "(none)", "With HEARTH_DB_HOST: the database role (granted rds_iam)."),
    ("HEARTH_DB_NAME", None, "postgres", "With HEARTH_DB_HOST: the database name."),
    ("HEARTH_DB_POOLER", None, "none", "none (Aurora directly) or transaction (behind PgBouncer pool_mode=transaction or RDS Proxy: no startup options, nothing outlives a transaction)."),
    ("HEARTH_DB_NUMBERS", None, "number", "int8 and numeric results as exact JSON numbers (number) or as decimal strings (string, safe for JSON.parse); a request's numbers field overrides it."),
    ("HEARTH_KMS_PREWARM_CONTEXT", None, "(empty context)", "Encryption context of the data key generated at prewarm, as key=value pairs separated by commas (match what the function sends, and any IAM condition), or none to skip."),
    ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", None, "80", "Share of the age, message or byte limit after which a replacement key is generated ahead (50 to 100)."),
    ("HEARTH_KMS_ALGORITHM", None, "0x0478", "Algorithm suite encrypt writes: 0x0478 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY) or 0x0578 (the same signed with ECDSA P-384, the official SDKs' default; one KMS call per message, as a signing key is never reused)."),
    ("HEARTH_KMS_COMMITMENT_POLICY", None, "require-encrypt-require-decrypt", "ESDK commitment policy: require-encrypt-require-decrypt (read and write committing suites only), require-encrypt-allow-decrypt (also read ESDK 1.x messages, every suite) or forbid-encrypt-allow-decrypt (read every suite; encrypt is refused, as Hearth writes committing suites only)."),
    ("HEARTH_KMS_DECRYPT_KEYS", None, "(none)", "Comma-separated key ARNs (or key ids) decrypt may use besides HEARTH_KMS_KEY_ID and HEARTH_KMS_FALLBACK_KEY_ID; a message naming no allowed key is refused (KeyNotAllowed) without a KMS call. Aliases cannot be matched: name the key ARN."),
    ("HEARTH_KMS_DISCOVERY", None, "false", "Discovery mode: decrypt also tries any key ARN of the accounts in HEARTH_KMS_DISCOVERY_ACCOUNTS (required with it) in HEARTH_KMS_DISCOVERY_PARTITION."),
    ("HEARTH_KMS_DISCOVERY_ACCOUNTS", None, "(none)", "Comma-separated 12-digit account ids whose keys discovery may use."),
    ("HEARTH_KMS_DISCOVERY_PARTITION", None, "aws", "AWS partition of the discovery filter (aws, aws-cn, aws-us-gov, ...)."),
];

/// Reads variables, records which ones were consumed, and collects problems.
struct Reader<'a> {
    env: &'a Env,
    problems: Vec<ConfigProblem>,
}

impl<'a> Reader<'a> {
    /// The raw value and the name it came from (the `HEARTH_` name wins over its alias).
    fn raw(&self, name: &'static str) -> Option<(&'static str, &'a str)> {
        if let Some(v) = self.env.get(name) {
            return Some((name, v));
        }
        let alias = VARIABLES
            .iter()
            .find(|(n, ..)| *n == name)
            .and_then(|(_, a, ..)| *a)?;
        self.env.get(alias).map(|v| (alias, v))
    }

    fn problem(&mut self, variable: &str, message: String) {
        self.problems.push(ConfigProblem {
            variable: variable.to_string(),
            message,
        });
    }

    fn parse<T>(
        &mut self,
        name: &'static str,
        default: T,
        accepted: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        match self.raw(name) {
            None => default,
            Some((var, raw)) => match parse(raw.trim()) {
                Some(v) => v,
                None => {
                    self.problem(var, format!("invalid value {raw:?}; accepted: {accepted}"));
                    default
                }
            },
        }
    }

    fn duration(
        &mut self,
        name: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let accepted = format!(
            "a duration such as 250ms, 30s, 5m or 1h (a bare number is seconds), from {} to {}",
            humanize(min),
            humanize(max)
        );
        self.parse(name, default, &accepted, |s| {
            parse_duration(s).filter(|d| *d >= min && *d <= max)
        })
    }

    fn size(&mut self, name: &'static str, default: usize, max: usize) -> NonZeroUsize {
        let accepted = format!("an integer from 1 to {max}");
        let v = self.parse(name, default, &accepted, |s| {
            s.parse::<usize>().ok().filter(|n| (1..=max).contains(n))
        });
        NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN)
    }

    fn flag(&mut self, name: &'static str, default: bool) -> bool {
        self.parse(name, default, "true or false", |s| {
            match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            }
        })
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis() % 1000 != 0 || d.is_zero() {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

impl Config {
    /// Parses and validates every setting.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let mut r = Reader {
            env,
            problems: Vec::new(),
        };

        let port = r.parse(
            "HEARTH_PORT",
            DEFAULT_PORT,
            "an integer port from 1 to 65535",
            |s| u16::from_str(s).ok().filter(|p| *p != 0),
        );
        let token = match env
            .get("HEARTH_TOKEN")
            .or_else(|| env.get("AWS_SESSION_TOKEN"))
        {
            Some(t) if !t.is_empty() => t.to_string(),
            // The token is never echoed: it is a credential.
            Some(_) => {
                r.problem(
                    "HEARTH_TOKEN",
                    "is empty; accepted: a non-empty token".into(),
                );
                String::new()
            }
            None => {
                r.problem(
                    "HEARTH_TOKEN",
                    "neither HEARTH_TOKEN nor AWS_SESSION_TOKEN is set; accepted: a non-empty token \
                     (Lambda sets AWS_SESSION_TOKEN; set HEARTH_TOKEN for local runs)"
                        .into(),
                );
                String::new()
            }
        };
        let server = ServerConfig {
            port,
            token,
            max_connections: r.size("HEARTH_MAX_CONNECTIONS", 64, 4096),
            max_body_bytes: r.size("HEARTH_MAX_BODY_BYTES", 1 << 20, 64 << 20),
            max_header_bytes: r.size("HEARTH_MAX_HEADER_BYTES", 16 << 10, 1 << 20),
            request_timeout: r.duration(
                "HEARTH_REQUEST_TIMEOUT",
                Duration::from_secs(10),
                Duration::from_millis(100),
                Duration::from_secs(900),
            ),
        };

        let init_type = match env.get("AWS_LAMBDA_INITIALIZATION_TYPE") {
            Some("lambda-managed-instances") => InitType::ManagedInstances,
            _ => InitType::OnDemand,
        };
        let lifecycle = LifecycleConfig {
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
        };

        let in_lambda = env.get("AWS_LAMBDA_RUNTIME_API").is_some();
        let log = LogConfig {
            level: r.parse(
                "HEARTH_LOG_LEVEL",
                LogLevel::Info,
                "trace, debug, info, warn or error",
                |s| {
                    match s.to_ascii_lowercase().as_str() {
                        "trace" => Some(LogLevel::Trace),
                        "debug" => Some(LogLevel::Debug),
                        "info" => Some(LogLevel::Info),
                        "warn" | "warning" => Some(LogLevel::Warn),
                        "error" | "fatal" => Some(LogLevel::Error),
                        // AWS's extension accepts `none`; the nearest is errors only.
                        "none" => Some(LogLevel::Error),
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
        };

        let metrics = MetricsConfig {
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
        };

        let aws = AwsConfig {
            connect_timeout: r.duration(
                "HEARTH_AWS_CONNECT_TIMEOUT",
                Duration::from_secs(1),
                Duration::from_millis(10),
                Duration::from_secs(60),
            ),
            attempt_timeout: r.duration(
                "HEARTH_AWS_ATTEMPT_TIMEOUT",
                Duration::from_secs(2),
                Duration::from_millis(10),
                Duration::from_secs(300),
            ),
            operation_timeout: r.duration(
                "HEARTH_AWS_OPERATION_TIMEOUT",
                Duration::from_secs(5),
                Duration::from_millis(10),
                Duration::from_secs(900),
            ),
            max_attempts: r.parse(
                "HEARTH_AWS_MAX_ATTEMPTS",
                3,
                "an integer from 1 to 10",
                |s| s.parse::<u32>().ok().filter(|n| (1..=10).contains(n)),
            ),
            retry_mode: r.parse(
                "HEARTH_AWS_RETRY_MODE",
                RetryModeSetting::Standard,
                "standard or adaptive",
                |s| match s.to_ascii_lowercase().as_str() {
                    "standard" => Some(RetryModeSetting::Standard),
                    "adaptive" => Some(RetryModeSetting::Adaptive),
                    _ => None,
                },
            ),
        };

        let hard_ttl = r.duration(
            "HEARTH_SECRETS_HARD_TTL",
            Duration::from_secs(300),
            Duration::from_millis(100),
            Duration::from_secs(7 * 24 * 3600),
        );
        let soft_default = if r.raw("HEARTH_SECRETS_HARD_TTL").is_some() {
            hard_ttl.mul_f64(0.8)
        } else {
            Duration::from_secs(240)
        };
        let soft_ttl = r.duration(
            "HEARTH_SECRETS_SOFT_TTL",
            soft_default,
            Duration::from_millis(100),
            hard_ttl,
        );
        let secrets = SecretsConfig {
            soft_ttl,
            hard_ttl,
            jitter_percent: r.parse(
                "HEARTH_SECRETS_JITTER_PERCENT",
                10,
                "an integer from 0 to 50",
                |s| s.parse::<u8>().ok().filter(|n| *n <= 50),
            ),
            stale_if_error: r.duration(
                "HEARTH_SECRETS_STALE_IF_ERROR",
                Duration::from_secs(15 * 60),
                Duration::ZERO,
                Duration::from_secs(7 * 24 * 3600),
            ),
            capacity: r.size("HEARTH_SECRETS_CACHE_SIZE", 1000, 1_000_000),
            prefetch: r.parse(
                "HEARTH_SECRETS_PREFETCH",
                Vec::new(),
                "comma-separated secret ids or ARNs",
                |s| {
                    let ids: Vec<String> = s
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect();
                    ids.iter().all(|id| id.len() <= 2048).then_some(ids)
                },
            ),
        };

        let kms = KmsConfig {
            key_id: r.parse(
                "HEARTH_KMS_KEY_ID",
                None,
                "a KMS key id, key ARN, alias name or alias ARN (1 to 2048 characters)",
                |s| (!s.is_empty() && s.len() <= 2048).then(|| Some(s.to_string())),
            ),
            caching: r.flag("HEARTH_KMS_CACHE", true),
            max_age: r.duration(
                "HEARTH_KMS_MAX_AGE",
                Duration::from_secs(300),
                Duration::from_millis(100),
                Duration::from_secs(24 * 3600),
            ),
            max_messages: r.parse(
                "HEARTH_KMS_MAX_MESSAGES",
                1 << 20,
                "an integer from 1 to 4294967296 (the message format's limit, 2^32)",
                |s| s.parse::<u64>().ok().filter(|n| (1..=1 << 32).contains(n)),
            ),
            max_bytes: r.parse(
                "HEARTH_KMS_MAX_BYTES",
                1 << 30,
                "an integer from 1 to 4611686018427387904 (2^62)",
                |s| s.parse::<u64>().ok().filter(|n| (1..=1 << 62).contains(n)),
            ),
            capacity: r.size("HEARTH_KMS_CACHE_SIZE", 1000, 1_000_000),
            prewarm_context: r.parse(
                "HEARTH_KMS_PREWARM_CONTEXT",
                Some(std::collections::BTreeMap::new()),
                "key=value pairs separated by commas, e.g. purpose=card, or none",
                |s| {
                    if s.eq_ignore_ascii_case("none") {
                        return Some(None);
                    }
                    let mut ctx = std::collections::BTreeMap::new();
                    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=')?;
                        if k.trim().is_empty() || k.trim().starts_with("aws-crypto-") {
                            return None;
                        }
                        ctx.insert(k.trim().to_string(), v.trim().to_string());
                    }
                    Some(Some(ctx))
                },
            ),
            refresh_percent: r.parse(
                "HEARTH_KMS_REFRESH_AHEAD_PERCENT",
                80,
                "an integer from 50 to 100",
                |s| s.parse::<u8>().ok().filter(|n| (50..=100).contains(n)),
            ),
            commitment_policy: r.parse(
                "HEARTH_KMS_COMMITMENT_POLICY",
                hearth_esdk::CommitmentPolicy::RequireEncryptRequireDecrypt,
                "require-encrypt-require-decrypt, require-encrypt-allow-decrypt or forbid-encrypt-allow-decrypt",
                hearth_esdk::CommitmentPolicy::parse,
            ),
            algorithm: r.parse(
                "HEARTH_KMS_ALGORITHM",
                hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKey,
                "0x0478 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY) or 0x0578 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384)",
                |s| {
                    let s = s.to_ascii_uppercase();
                    [
                        hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKey,
                        hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
                    ]
                    .into_iter()
                    .find(|suite| s == format!("0X{:04X}", suite.id()) || s == suite.name())
                },
            ),
            decrypt_keys: r.parse(
                "HEARTH_KMS_DECRYPT_KEYS",
                Vec::new(),
                "comma-separated KMS key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID) or key ids; aliases cannot be matched against a message",
                |s| {
                    let keys: Vec<String> = s
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(String::from)
                        .collect();
                    keys.iter()
                        .all(|k| {
                            crate::arn::kms_key_parts(k).is_some()
                                || crate::kms::keys::is_bare_key_id(k)
                        })
                        .then_some(keys)
                },
            ),
            discovery: None,
        };
        let discovery = r.flag("HEARTH_KMS_DISCOVERY", false);
        let accounts = r.parse(
            "HEARTH_KMS_DISCOVERY_ACCOUNTS",
            std::collections::BTreeSet::new(),
            "comma-separated 12-digit AWS account ids",
            |s| {
                let ids: std::collections::BTreeSet<String> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect();
                ids.iter()
                    .all(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()))
                    .then_some(ids)
            },
        );
        let partition = r.parse(
            "HEARTH_KMS_DISCOVERY_PARTITION",
            "aws".to_string(),
            "an AWS partition name such as aws, aws-cn or aws-us-gov",
            |s| {
                (!s.is_empty()
                    && s.len() <= 32
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
                .then(|| s.to_string())
            },
        );
        let mut kms = kms;
        if discovery {
            if accounts.is_empty() {
                r.problem(
                    "HEARTH_KMS_DISCOVERY_ACCOUNTS",
                    "is required with HEARTH_KMS_DISCOVERY=true: name the accounts whose keys may open messages (unfiltered discovery would accept messages under anyone's key)".into(),
                );
            }
            kms.discovery = Some(crate::kms::keys::DiscoveryFilter {
                partition,
                accounts,
            });
        } else if !accounts.is_empty() {
            r.problem(
                "HEARTH_KMS_DISCOVERY_ACCOUNTS",
                "has no effect without HEARTH_KMS_DISCOVERY=true; set that too".into(),
            );
        }

        let auth = r.parse(
            "HEARTH_DB_AUTH",
            DbAuth::Secret,
            "secret or iam",
            |s| match s.to_ascii_lowercase().as_str() {
                "secret" => Some(DbAuth::Secret),
                "iam" => Some(DbAuth::Iam),
                _ => None,
            },
        );
        let endpoint = match env.get("HEARTH_DB_HOST") {
            None => {
                for name in ["HEARTH_DB_PORT", "HEARTH_DB_USER", "HEARTH_DB_NAME"] {
                    if env.get(name).is_some() && env.get("HEARTH_DB_SECRET_ID").is_some() {
                        r.problem(
                            name,
                            "is used with HEARTH_DB_HOST only; the secret names the endpoint"
                                .into(),
                        );
                    }
                }
                None
            }
            Some(host) => {
                if auth != DbAuth::Iam {
                    r.problem(
                        "HEARTH_DB_HOST",
                        "is used with HEARTH_DB_AUTH=iam only; with secret auth the host comes \
                         from HEARTH_DB_SECRET_ID"
                            .into(),
                    );
                }
                if host.is_empty() || host.len() > 253 {
                    r.problem("HEARTH_DB_HOST", "accepted: a host name".into());
                }
                let port = r.parse("HEARTH_DB_PORT", 5432, "a port from 1 to 65535", |s| {
                    s.parse::<u16>().ok().filter(|p| *p > 0)
                });
                let user = env.get("HEARTH_DB_USER").unwrap_or_default().to_string();
                if user.is_empty() {
                    r.problem(
                        "HEARTH_DB_USER",
                        "is required with HEARTH_DB_HOST: the database role to log in as".into(),
                    );
                }
                let dbname = env.get("HEARTH_DB_NAME").unwrap_or("postgres").to_string();
                Some(DbEndpoint {
                    host: host.to_string(),
                    port,
                    user,
                    dbname,
                })
            }
        };
        let secret_id = env.get("HEARTH_DB_SECRET_ID");
        let db = match (secret_id, &endpoint) {
            (None, None) => None,
            (id, _) => {
                if let Some(id) = id {
                    if id.is_empty() || id.len() > 2048 {
                        r.problem(
                            "HEARTH_DB_SECRET_ID",
                            "accepted: a secret id or ARN of 1 to 2048 characters".into(),
                        );
                    }
                }
                let pool_max = r.size("HEARTH_DB_POOL_MAX", 4, 1000);
                let pool_min = r.parse(
                    "HEARTH_DB_POOL_MIN",
                    1,
                    "an integer from 0 to HEARTH_DB_POOL_MAX",
                    |s| s.parse::<usize>().ok(),
                );
                if pool_min > pool_max.get() {
                    r.problem(
                        "HEARTH_DB_POOL_MIN",
                        format!("{pool_min} exceeds HEARTH_DB_POOL_MAX ({pool_max})"),
                    );
                }
                let setting = |s: &str| {
                    let ok = s.split('.').count() >= 2
                        && s.split('.').all(|p| {
                            !p.is_empty()
                                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        });
                    ok.then(|| s.to_string())
                };
                let tenant_setting = r.parse(
                    "HEARTH_DB_TENANT_SETTING",
                    "app.tenant_id".to_string(),
                    "a dotted identifier such as app.tenant_id",
                    setting,
                );
                let allowed_settings = r.parse(
                    "HEARTH_DB_CONTEXT_SETTINGS",
                    Vec::new(),
                    "comma-separated dotted identifiers such as app.user_id",
                    |s| {
                        s.split(',')
                            .map(str::trim)
                            .filter(|x| !x.is_empty())
                            .map(setting)
                            .collect()
                    },
                );
                let ca = r.parse(
                    "HEARTH_DB_CA_BUNDLE",
                    std::path::PathBuf::from("/opt/hearth/rds-ca-bundle.pem"),
                    "a path to a PEM file",
                    |s| (!s.is_empty()).then(|| std::path::PathBuf::from(s)),
                );
                let tls = r.parse(
                    "HEARTH_DB_TLS",
                    DbTls::Require(ca.clone()),
                    "require or disable",
                    |s| match s.to_ascii_lowercase().as_str() {
                        "require" | "verify-full" => Some(DbTls::Require(ca.clone())),
                        "disable" => Some(DbTls::Disable),
                        _ => None,
                    },
                );
                if auth == DbAuth::Iam && tls == DbTls::Disable {
                    r.problem(
                        "HEARTH_DB_TLS",
                        "disable is refused with HEARTH_DB_AUTH=iam: an IAM token is a \
                         credential and Aurora accepts it over TLS only; use require"
                            .into(),
                    );
                }
                let pooler = r.parse(
                    "HEARTH_DB_POOLER",
                    hearth_db::PoolerMode::None,
                    "none or transaction",
                    |s| match s.to_ascii_lowercase().as_str() {
                        "none" => Some(hearth_db::PoolerMode::None),
                        "transaction" => Some(hearth_db::PoolerMode::Transaction),
                        _ => None,
                    },
                );
                let numbers = r.parse(
                    "HEARTH_DB_NUMBERS",
                    hearth::wire::NumberMode::Number,
                    "number or string",
                    |s| match s.to_ascii_lowercase().as_str() {
                        "number" => Some(hearth::wire::NumberMode::Number),
                        "string" => Some(hearth::wire::NumberMode::String),
                        _ => None,
                    },
                );
                Some(DbSettings {
                    secret_id: id.map(str::to_string),
                    auth,
                    endpoint: endpoint.clone(),
                    pooler,
                    numbers,
                    pool_min,
                    pool_max,
                    connect_timeout: r.duration(
                        "HEARTH_DB_CONNECT_TIMEOUT",
                        Duration::from_secs(3),
                        Duration::from_millis(50),
                        Duration::from_secs(60),
                    ),
                    pool_wait_timeout: r.duration(
                        "HEARTH_DB_POOL_WAIT_TIMEOUT",
                        Duration::from_secs(2),
                        Duration::from_millis(1),
                        Duration::from_secs(60),
                    ),
                    statement_timeout: r.duration(
                        "HEARTH_DB_STATEMENT_TIMEOUT",
                        Duration::from_secs(5),
                        Duration::from_millis(1),
                        Duration::from_secs(900),
                    ),
                    verify_idle_after: r.duration(
                        "HEARTH_DB_VERIFY_IDLE_AFTER",
                        Duration::from_secs(5),
                        Duration::ZERO,
                        Duration::from_secs(3600),
                    ),
                    tenant_setting,
                    allowed_settings,
                    tenantless: r.flag("HEARTH_DB_TENANTLESS", false),
                    allow_privileged_role: r.flag("HEARTH_DB_ALLOW_PRIVILEGED_ROLE", false),
                    max_result_bytes: r.size(
                        "HEARTH_DB_MAX_RESULT_BYTES",
                        hearth_db::DEFAULT_MAX_RESULT_BYTES,
                        1 << 30,
                    ),
                    tls,
                })
            }
        };
        let failover = failover_config(&mut r, env, kms.key_id.is_some());

        if db.is_none() {
            for name in VARIABLES
                .iter()
                .map(|(n, ..)| *n)
                .filter(|n| n.starts_with("HEARTH_DB_"))
            {
                if name != "HEARTH_DB_SECRET_ID" && env.get(name).is_some() {
                    r.problem(
                        name,
                        "has no effect without HEARTH_DB_SECRET_ID (or HEARTH_DB_HOST with \
                         HEARTH_DB_AUTH=iam); set that to enable the pool"
                            .into(),
                    );
                }
            }
        }

        let known: BTreeSet<&str> = VARIABLES.iter().map(|(n, ..)| *n).collect();
        // HEARTH_WARMER_* belongs to the warmer function, which may carry the layer too.
        for name in env
            .vars
            .keys()
            .filter(|k| k.starts_with("HEARTH_") && !k.starts_with("HEARTH_WARMER_"))
        {
            if !known.contains(name.as_str()) {
                let hint = closest(name, &known)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                r.problem(name, format!("is not a Hearth setting{hint}; accepted: the variables listed in the README"));
            }
        }

        if r.problems.is_empty() {
            Ok(Config {
                server,
                lifecycle,
                log,
                metrics,
                aws,
                secrets,
                kms,
                db,
                failover,
            })
        } else {
            r.problems.sort_by(|a, b| a.variable.cmp(&b.variable));
            Err(ConfigError {
                problems: r.problems,
            })
        }
    }
}

/// Whether `s` looks like an AWS region name (`us-east-1`, `cn-north-1`, `us-gov-west-1`).
fn valid_region(s: &str) -> bool {
    (4..=32).contains(&s.len())
        && s.contains('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `HEARTH_AWS_ENDPOINTS`: `region=url` pairs, comma-separated.
fn parse_endpoints(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (region, url) = pair.split_once('=')?;
        let (region, url) = (region.trim(), url.trim());
        let url_ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() > "https://".len()
            && !url.contains(char::is_whitespace);
        if !valid_region(region) || !url_ok || out.insert(region.into(), url.into()).is_some() {
            return None;
        }
    }
    Some(out)
}

/// The failover settings; problems are added to `r`.
fn failover_config(r: &mut Reader<'_>, env: &Env, has_default_key: bool) -> FailoverConfig {
    const REGION: &str = "an AWS region name such as eu-west-1, or none";
    let region = |r: &mut Reader<'_>, name: &'static str| {
        r.parse(name, None, REGION, |s| match s {
            "" | "none" => Some(None),
            s if valid_region(s) => Some(Some(s.to_string())),
            _ => None,
        })
    };
    let primary_region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .filter(|s| !s.is_empty())
        .map(String::from);
    let any = region(r, "HEARTH_FALLBACK_REGION");
    let per_service = |r: &mut Reader<'_>, name: &'static str| {
        let (var, fallback) = match r.raw(name) {
            Some(_) => (name, region(r, name)),
            None => ("HEARTH_FALLBACK_REGION", any.clone()),
        };
        match (&fallback, &primary_region) {
            (Some(_), None) => {
                r.problem(
                    var,
                    "needs the primary region: set AWS_REGION (Lambda sets it)".into(),
                );
                None
            }
            (Some(f), Some(p)) if f == p => {
                r.problem(
                    var,
                    format!("is the primary region ({p}); accepted: another region"),
                );
                None
            }
            _ => fallback,
        }
    };
    let secrets_region = per_service(r, "HEARTH_SECRETS_FALLBACK_REGION");
    let kms_region = per_service(r, "HEARTH_KMS_FALLBACK_REGION");
    let kms_key_id = r.parse(
        "HEARTH_KMS_FALLBACK_KEY_ID",
        None,
        "a KMS key id, key ARN, alias name or alias ARN in the KMS fallback region (1 to 2048 characters)",
        |s| (!s.is_empty() && s.len() <= 2048).then(|| Some(s.to_string())),
    );
    if let Some(key) = &kms_key_id {
        let key_region = crate::arn::region_of(key);
        if kms_region.is_none() {
            r.problem(
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "has no effect without a KMS fallback region; set HEARTH_KMS_FALLBACK_REGION or HEARTH_FALLBACK_REGION".into(),
            );
        } else if !has_default_key {
            r.problem(
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "pairs with HEARTH_KMS_KEY_ID; set that too".into(),
            );
        } else if key_region.is_some() && key_region != kms_region.as_deref() {
            r.problem(
                "HEARTH_KMS_FALLBACK_KEY_ID",
                format!(
                    "names region {}, not the KMS fallback region {}; accepted: a key in the fallback region",
                    key_region.unwrap_or_default(),
                    kms_region.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    let endpoints = r.parse(
        "HEARTH_AWS_ENDPOINTS",
        BTreeMap::new(),
        "comma-separated region=URL pairs (http:// or https://), each region once",
        parse_endpoints,
    );
    let budget = r.duration(
        "HEARTH_FAILOVER_BUDGET",
        Duration::from_secs(2),
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let max_attempts = r.parse(
        "HEARTH_FAILOVER_MAX_ATTEMPTS",
        2,
        "an integer from 1 to 10",
        |s| s.parse::<u32>().ok().filter(|n| (1..=10).contains(n)),
    );
    let cooldown = r.duration(
        "HEARTH_FAILOVER_COOLDOWN",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    FailoverConfig {
        primary_region,
        secrets_region,
        kms_region,
        kms_key_id,
        endpoints,
        budget,
        max_attempts,
        cooldown,
    }
}

/// The known name nearest to `name` by edit distance, if it is close.
fn closest<'k>(name: &str, known: &BTreeSet<&'k str>) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_with_session_token() {
        let c = Config::from_env(&env(&[("AWS_SESSION_TOKEN", "tok")])).unwrap();
        assert_eq!(c.server.port, 2773);
        assert_eq!(c.server.token, "tok");
        assert_eq!(c.server.max_connections.get(), 64);
        assert_eq!(c.lifecycle.init_type, InitType::OnDemand);
        assert_eq!(c.log.format, LogFormat::Text);
    }

    #[test]
    fn hearth_token_overrides_session_token() {
        let c =
            Config::from_env(&env(&[("AWS_SESSION_TOKEN", "a"), ("HEARTH_TOKEN", "b")])).unwrap();
        assert_eq!(c.server.token, "b");
    }

    #[test]
    fn missing_token_is_an_error_naming_the_variable() {
        let e = Config::from_env(&env(&[])).unwrap_err();
        assert_eq!(e.problems[0].variable, "HEARTH_TOKEN");
    }

    #[test]
    fn official_alias_is_honoured_and_hearth_name_wins() {
        let c = Config::from_env(&env(&[
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2999"),
        ]))
        .unwrap();
        assert_eq!(c.server.port, 2999);
        let c = Config::from_env(&env(&[
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2999"),
            ("HEARTH_PORT", "3000"),
        ]))
        .unwrap();
        assert_eq!(c.server.port, 3000);
    }

    #[test]
    fn bad_values_name_variable_and_accepted_values() {
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_PORT", "http"),
            ("HEARTH_REQUEST_TIMEOUT", "forever"),
            ("HEARTH_LOG_LEVEL", "loud"),
        ]))
        .unwrap_err();
        let vars: Vec<_> = e.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            vars,
            ["HEARTH_LOG_LEVEL", "HEARTH_PORT", "HEARTH_REQUEST_TIMEOUT"]
        );
        assert!(e.problems[1].message.contains("1 to 65535"), "{}", e);
        assert!(e.to_string().contains("accepted"));
    }

    #[test]
    fn unknown_hearth_variable_is_reported_with_suggestion() {
        let e = Config::from_env(&env(&[("HEARTH_TOKEN", "t"), ("HEARTH_PROT", "1")])).unwrap_err();
        assert_eq!(e.problems[0].variable, "HEARTH_PROT");
        assert!(e.problems[0].message.contains("HEARTH_PORT"), "{}", e);
    }

    #[test]
    fn token_value_never_appears_in_debug_or_errors() {
        let c = Config::from_env(&env(&[("HEARTH_TOKEN", "s3cr3t-token")])).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "s3cr3t-token"),
            ("HEARTH_PORT", "x"),
        ]))
        .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn secrets_ttls() {
        let c = Config::from_env(&env(&[("HEARTH_TOKEN", "t")])).unwrap();
        assert_eq!(
            (c.secrets.soft_ttl, c.secrets.hard_ttl),
            (Duration::from_secs(240), Duration::from_secs(300))
        );
        // The official extension's variable sets the hard TTL; soft follows at 80%.
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("SECRETS_MANAGER_TTL", "3600"),
        ]))
        .unwrap();
        assert_eq!(
            (c.secrets.soft_ttl, c.secrets.hard_ttl),
            (Duration::from_secs(2880), Duration::from_secs(3600))
        );
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_SECRETS_HARD_TTL", "60s"),
            ("HEARTH_SECRETS_SOFT_TTL", "90s"),
        ]))
        .unwrap_err();
        assert_eq!(e.problems[0].variable, "HEARTH_SECRETS_SOFT_TTL");
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_SECRETS_PREFETCH", "a, b,,c"),
        ]))
        .unwrap();
        assert_eq!(c.secrets.prefetch, ["a", "b", "c"]);
    }

    #[test]
    fn db_settings() {
        let c = Config::from_env(&env(&[("HEARTH_TOKEN", "t")])).unwrap();
        assert!(c.db.is_none());
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_DB_SECRET_ID", "db"),
            ("HEARTH_DB_TLS", "disable"),
            ("HEARTH_DB_CONTEXT_SETTINGS", "app.user_id, app.role"),
        ]))
        .unwrap();
        let db = c.db.unwrap();
        assert_eq!(db.tls, DbTls::Disable);
        assert_eq!(db.allowed_settings, ["app.user_id", "app.role"]);
        assert_eq!((db.pool_min, db.pool_max.get()), (1, 4));
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_DB_SECRET_ID", "db"),
            ("HEARTH_DB_POOL_MIN", "9"),
            ("HEARTH_DB_TENANT_SETTING", "tenant; drop table x"),
        ]))
        .unwrap_err();
        let vars: Vec<_> = e.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(vars, ["HEARTH_DB_POOL_MIN", "HEARTH_DB_TENANT_SETTING"]);
        let e = Config::from_env(&env(&[("HEARTH_TOKEN", "t"), ("HEARTH_DB_POOL_MAX", "9")]))
            .unwrap_err();
        assert!(e.problems[0].message.contains("HEARTH_DB_SECRET_ID"), "{e}");
    }

    #[test]
    fn db_auth_pooler_and_numbers() {
        let problems = |pairs: &[(&str, &str)]| {
            let mut all = vec![("HEARTH_TOKEN", "t")];
            all.extend_from_slice(pairs);
            match Config::from_env(&env(&all)) {
                Ok(_) => Vec::new(),
                Err(e) => e.problems.into_iter().map(|p| p.variable).collect(),
            }
        };
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_DB_AUTH", "iam"),
            ("HEARTH_DB_HOST", "db.cluster-x.eu-west-1.rds.amazonaws.com"),
            ("HEARTH_DB_USER", "app"),
            ("HEARTH_DB_POOLER", "transaction"),
            ("HEARTH_DB_NUMBERS", "string"),
        ]))
        .unwrap();
        let db = c.db.unwrap();
        assert_eq!(db.auth, DbAuth::Iam);
        assert_eq!(db.secret_id, None);
        let e = db.endpoint.unwrap();
        assert_eq!(
            (e.port, e.user.as_str(), e.dbname.as_str()),
            (5432, "app", "postgres")
        );
        assert_eq!(db.pooler, hearth_db::PoolerMode::Transaction);
        assert_eq!(db.numbers, hearth::wire::NumberMode::String);
        // IAM over plaintext is refused, for every host: the token is a credential.
        let iam_host = [
            ("HEARTH_DB_AUTH", "iam"),
            ("HEARTH_DB_HOST", "127.0.0.1"),
            ("HEARTH_DB_USER", "u"),
        ];
        assert_eq!(
            problems(&[&iam_host[..], &[("HEARTH_DB_TLS", "disable")]].concat()),
            ["HEARTH_DB_TLS"]
        );
        assert_eq!(problems(&iam_host[..2]), ["HEARTH_DB_USER"]);
        assert_eq!(
            problems(&[("HEARTH_DB_HOST", "h"), ("HEARTH_DB_USER", "u")]),
            ["HEARTH_DB_HOST"]
        );
        assert_eq!(problems(&[("HEARTH_DB_AUTH", "iam")]), ["HEARTH_DB_AUTH"]);
        assert_eq!(
            problems(&[("HEARTH_DB_AUTH", "token"), ("HEARTH_DB_SECRET_ID", "s")]),
            ["HEARTH_DB_AUTH"]
        );
        assert_eq!(
            problems(&[
                ("HEARTH_DB_SECRET_ID", "s"),
                ("HEARTH_DB_POOLER", "session")
            ]),
            ["HEARTH_DB_POOLER"]
        );
        assert_eq!(
            problems(&[("HEARTH_DB_SECRET_ID", "s"), ("HEARTH_DB_NUMBERS", "text")]),
            ["HEARTH_DB_NUMBERS"]
        );
        assert_eq!(
            problems(&[("HEARTH_DB_SECRET_ID", "s"), ("HEARTH_DB_USER", "u")]),
            ["HEARTH_DB_USER"]
        );
        // IAM with the endpoint from the secret (its password unused).
        assert!(problems(&[("HEARTH_DB_AUTH", "iam"), ("HEARTH_DB_SECRET_ID", "s")]).is_empty());
    }

    #[test]
    fn kms_prewarm_context() {
        let c = Config::from_env(&env(&[("HEARTH_TOKEN", "t")])).unwrap();
        assert_eq!(c.kms.prewarm_context, Some(Default::default()));
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_PREWARM_CONTEXT", "purpose=card, app=pay"),
        ]))
        .unwrap();
        let ctx = c.kms.prewarm_context.unwrap();
        assert_eq!(
            (ctx["purpose"].as_str(), ctx["app"].as_str()),
            ("card", "pay")
        );
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_PREWARM_CONTEXT", "none"),
        ]))
        .unwrap();
        assert_eq!(c.kms.prewarm_context, None);
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_PREWARM_CONTEXT", "purpose"),
        ]))
        .unwrap_err();
        assert_eq!(e.problems[0].variable, "HEARTH_KMS_PREWARM_CONTEXT");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn managed_instances_detected() {
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
        ]))
        .unwrap();
        assert_eq!(c.lifecycle.init_type, InitType::ManagedInstances);
    }

    #[test]
    fn kms_defaults_and_overrides() {
        let c = Config::from_env(&env(&[("HEARTH_TOKEN", "t")])).unwrap();
        assert_eq!(
            c.kms,
            KmsConfig {
                key_id: None,
                caching: true,
                max_age: Duration::from_secs(300),
                max_messages: 1 << 20,
                max_bytes: 1 << 30,
                capacity: NonZeroUsize::new(1000).unwrap(),
                refresh_percent: 80,
                prewarm_context: Some(Default::default()),
                commitment_policy: hearth_esdk::CommitmentPolicy::RequireEncryptRequireDecrypt,
                algorithm: hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKey,
                decrypt_keys: Vec::new(),
                discovery: None,
            }
        );
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_KEY_ID", "alias/app"),
            ("HEARTH_KMS_CACHE", "false"),
            ("HEARTH_KMS_MAX_AGE", "1500ms"),
            ("HEARTH_KMS_MAX_MESSAGES", "3"),
            ("HEARTH_KMS_MAX_BYTES", "4096"),
            ("HEARTH_KMS_CACHE_SIZE", "10"),
            ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "100"),
        ]))
        .unwrap();
        assert_eq!(c.kms.key_id.as_deref(), Some("alias/app"));
        assert!(!c.kms.caching);
        assert_eq!(c.kms.max_age, Duration::from_millis(1500));
        assert_eq!((c.kms.max_messages, c.kms.max_bytes), (3, 4096));
        assert_eq!((c.kms.capacity.get(), c.kms.refresh_percent), (10, 100));
    }

    #[test]
    fn kms_algorithm_policy_and_key_selection() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555";
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_ALGORITHM", "0x0578"),
            (
                "HEARTH_KMS_COMMITMENT_POLICY",
                "require-encrypt-allow-decrypt",
            ),
            (
                "HEARTH_KMS_DECRYPT_KEYS",
                &format!("{arn}, 11111111-2222-3333-4444-666666666666"),
            ),
            ("HEARTH_KMS_DISCOVERY", "true"),
            ("HEARTH_KMS_DISCOVERY_ACCOUNTS", "111122223333,444455556666"),
        ]))
        .unwrap();
        assert_eq!(c.kms.algorithm.id(), 0x0578);
        assert_eq!(
            c.kms.commitment_policy,
            hearth_esdk::CommitmentPolicy::RequireEncryptAllowDecrypt
        );
        assert_eq!(c.kms.decrypt_keys.len(), 2);
        let filter = c.kms.discovery.unwrap();
        assert_eq!(
            (filter.partition.as_str(), filter.accounts.len()),
            ("aws", 2)
        );
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            (
                "HEARTH_KMS_ALGORITHM",
                "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
            ),
        ]))
        .unwrap();
        assert_eq!(c.kms.algorithm.id(), 0x0578);

        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_ALGORITHM", "0x0378"),
            ("HEARTH_KMS_COMMITMENT_POLICY", "require"),
            ("HEARTH_KMS_DECRYPT_KEYS", "alias/app"),
            ("HEARTH_KMS_DISCOVERY", "true"),
        ]))
        .unwrap_err();
        let vars: Vec<&str> = e.problems.iter().map(|p| p.variable.as_str()).collect();
        for v in [
            "HEARTH_KMS_ALGORITHM",
            "HEARTH_KMS_COMMITMENT_POLICY",
            "HEARTH_KMS_DECRYPT_KEYS",
            "HEARTH_KMS_DISCOVERY_ACCOUNTS",
        ] {
            assert!(vars.contains(&v), "{v} not in {vars:?}");
        }
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_DISCOVERY_ACCOUNTS", "12345"),
        ]))
        .unwrap_err();
        assert_eq!(e.problems[0].variable, "HEARTH_KMS_DISCOVERY_ACCOUNTS");
    }

    #[test]
    fn kms_bad_values_are_named() {
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_MAX_AGE", "50ms"),
            ("HEARTH_KMS_MAX_MESSAGES", "0"),
            ("HEARTH_KMS_MAX_BYTES", "-1"),
            ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "40"),
            ("HEARTH_KMS_KEY_ID", ""),
        ]))
        .unwrap_err();
        let vars: Vec<_> = e.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            vars,
            [
                "HEARTH_KMS_KEY_ID",
                "HEARTH_KMS_MAX_AGE",
                "HEARTH_KMS_MAX_BYTES",
                "HEARTH_KMS_MAX_MESSAGES",
                "HEARTH_KMS_REFRESH_AHEAD_PERCENT",
            ]
        );
        assert!(e.problems[4].message.contains("50 to 100"), "{e}");
        // 2^32 messages is the format's own limit and is accepted; one more is not.
        assert!(Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_MAX_MESSAGES", "4294967296"),
        ]))
        .is_ok());
        assert!(Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_KMS_MAX_MESSAGES", "4294967297"),
        ]))
        .is_err());
    }

    #[test]
    fn failover_defaults_and_overrides() {
        let c = Config::from_env(&env(&[("HEARTH_TOKEN", "t")])).unwrap();
        assert_eq!(
            (
                c.failover.secrets_region.as_deref(),
                c.failover.kms_region.as_deref()
            ),
            (None, None)
        );
        assert_eq!(c.failover.cooldown, Duration::from_secs(30));
        assert_eq!(
            (c.failover.budget, c.failover.max_attempts),
            (Duration::from_secs(2), 2)
        );
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_REGION", "us-east-1"),
            ("HEARTH_FALLBACK_REGION", "eu-west-1"),
            ("HEARTH_KMS_FALLBACK_REGION", "none"),
            (
                "HEARTH_AWS_ENDPOINTS",
                "us-east-1=http://127.0.0.1:1, eu-west-1=https://kms.example",
            ),
            ("HEARTH_FAILOVER_COOLDOWN", "2s"),
        ]))
        .unwrap();
        let f = c.failover;
        assert_eq!(f.primary_region.as_deref(), Some("us-east-1"));
        assert_eq!(f.secrets_region.as_deref(), Some("eu-west-1"));
        assert_eq!(f.kms_region, None);
        assert_eq!(f.endpoints["us-east-1"], "http://127.0.0.1:1");
        assert_eq!(f.endpoints["eu-west-1"], "https://kms.example");
        assert_eq!(f.cooldown, Duration::from_secs(2));
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("HEARTH_KMS_FALLBACK_REGION", "eu-west-1"),
            ("HEARTH_KMS_KEY_ID", "arn:aws:kms:us-east-1:1:key/a"),
            (
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "arn:aws:kms:eu-west-1:1:key/b",
            ),
        ]))
        .unwrap();
        assert_eq!(
            (c.failover.secrets_region, c.failover.kms_region.as_deref()),
            (None, Some("eu-west-1"))
        );
    }

    #[test]
    fn failover_problems_are_named() {
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("HEARTH_FALLBACK_REGION", "eu-west-1"),
        ]))
        .unwrap_err();
        // No primary region: named once per service it would apply to.
        assert!(
            e.problems
                .iter()
                .all(|p| p.variable == "HEARTH_FALLBACK_REGION"),
            "{e}"
        );
        assert!(e.problems[0].message.contains("AWS_REGION"), "{e}");
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_REGION", "us-east-1"),
            ("HEARTH_SECRETS_FALLBACK_REGION", "us-east-1"),
            ("HEARTH_KMS_FALLBACK_REGION", "EU west"),
            ("HEARTH_KMS_FALLBACK_KEY_ID", "k"),
            ("HEARTH_AWS_ENDPOINTS", "us-east-1=ftp://x"),
            ("HEARTH_FAILOVER_BUDGET", "10ms"),
            ("HEARTH_FAILOVER_MAX_ATTEMPTS", "0"),
            ("HEARTH_FAILOVER_COOLDOWN", "0s"),
        ]))
        .unwrap_err();
        let vars: Vec<_> = e.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            vars,
            [
                "HEARTH_AWS_ENDPOINTS",
                "HEARTH_FAILOVER_BUDGET",
                "HEARTH_FAILOVER_COOLDOWN",
                "HEARTH_FAILOVER_MAX_ATTEMPTS",
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "HEARTH_KMS_FALLBACK_REGION",
                "HEARTH_SECRETS_FALLBACK_REGION",
            ]
        );
        // A fallback key ARN in a region other than the fallback region is a mistake.
        let e = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_REGION", "us-east-1"),
            ("HEARTH_FALLBACK_REGION", "eu-west-1"),
            ("HEARTH_KMS_KEY_ID", "alias/app"),
            (
                "HEARTH_KMS_FALLBACK_KEY_ID",
                "arn:aws:kms:us-east-1:1:key/b",
            ),
        ]))
        .unwrap_err();
        assert_eq!(e.problems[0].variable, "HEARTH_KMS_FALLBACK_KEY_ID");
        assert!(e.problems[0].message.contains("eu-west-1"), "{e}");
    }

    #[test]
    fn json_logs_by_default_under_lambda() {
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ]))
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let c = Config::from_env(&env(&[
            ("HEARTH_TOKEN", "t"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ]))
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
    }
}

/// The README's configuration table, generated from [`VARIABLES`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| variable | alias (AWS's extension / Lambda) | default | meaning |\n|---|---|---|---|\n",
    );
    for (name, alias, default, meaning) in VARIABLES {
        let alias = alias.map(|a| format!("`{a}`")).unwrap_or_default();
        out.push_str(&format!("| `{name}` | {alias} | {default} | {meaning} |\n"));
    }
    out
}

#[cfg(test)]
mod readme {
    /// The README documents every variable, with its default, exactly as the code has it.
    #[test]
    fn readme_table_matches_the_code() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .unwrap_or_default();
        let start = "<!-- config-table:start -->\n";
        let end = "<!-- config-table:end -->";
        let table = readme
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(t, _)| t.to_string())
            .unwrap_or_default();
        let want = super::markdown_table();
        assert!(
            table == want,
            "README.md's configuration table is out of date; replace it with:\n{want}"
        );
    }
}
