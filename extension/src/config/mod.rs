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
//!
//! Each subsystem owns its section, in a file of this module: its variables (the [`Var`]
//! rows the README's table is made from), its typed settings and their parsing. This file
//! only assembles them and checks for unknown names.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod aws;
#[cfg(test)]
mod aws_tests;
mod cache;
mod db;
mod kms;
mod parameters;
mod reader;
mod runtime;
mod secrets;
mod server;
#[cfg(test)]
mod tests;

pub use aws::{AwsConfig, FailoverConfig, RetryModeSetting};
pub use cache::CacheConfig;
pub use db::{DbAuth, DbEndpoint, DbSettings, DbTls};
pub use kms::KmsConfig;
pub use parameters::ParametersConfig;
pub use reader::{parse_duration, Var};
pub use runtime::{
    InitType, LifecycleConfig, LogConfig, LogFormat, LogLevel, MetricsConfig, MetricsFlush,
};
pub use secrets::SecretsConfig;
pub use server::ServerConfig;

use reader::{closest, Reader};

/// Every section's variables, in the README's order.
pub const SECTIONS: &[&[Var]] = &[
    server::VARS,
    runtime::LIFECYCLE_VARS,
    runtime::LOG_VARS,
    runtime::METRICS_VARS,
    aws::VARS,
    secrets::VARS,
    parameters::VARS,
    kms::VARS,
    db::VARS,
];

/// Prefixes of AWS's Parameters and Secrets extension's variables: one Hearth does not
/// know is an error, as an unknown `HEARTH_*` one is (a user switching layers would
/// otherwise lose a setting silently).
const AWS_PREFIXES: &[&str] = &[
    "PARAMETERS_SECRETS_EXTENSION_",
    "SSM_PARAMETER_STORE_",
    "SECRETS_MANAGER_",
];

/// Every variable this build understands.
pub fn variables() -> impl Iterator<Item = &'static Var> {
    SECTIONS.iter().flat_map(|s| s.iter())
}

/// The row of `name`.
fn find(name: &str) -> Option<&'static Var> {
    variables().find(|v| v.name == name)
}

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
    /// Parameter Store cache.
    pub parameters: ParametersConfig,
    /// KMS data keys.
    pub kms: KmsConfig,
    /// Database pool, when configured.
    pub db: Option<DbSettings>,
    /// Regional failover of Secrets Manager and KMS.
    pub failover: FailoverConfig,
}

impl Config {
    /// Parses and validates every setting.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let mut r = Reader {
            env,
            problems: Vec::new(),
        };
        let server = server::read(&mut r);
        let lifecycle = runtime::read_lifecycle(&mut r);
        let log = runtime::read_log(&mut r);
        let metrics = runtime::read_metrics(&mut r);
        let aws = aws::read_aws(&mut r);
        let secrets = secrets::read(&mut r, server.request_timeout);
        let parameters =
            parameters::read(&mut r, secrets.cache.jitter_percent, server.request_timeout);
        let kms = kms::read(&mut r);
        let db = db::read(&mut r);
        let failover = aws::read_failover(&mut r, kms.key_id.is_some());
        unknown_variables(&mut r);

        if r.problems.is_empty() {
            Ok(Config {
                server,
                lifecycle,
                log,
                metrics,
                aws,
                secrets,
                parameters,
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

/// Unknown `HEARTH_*` variables, and unknown variables of AWS's extension, are problems.
fn unknown_variables(r: &mut Reader<'_>) {
    let hearth: BTreeSet<&str> = variables().map(|v| v.name).collect();
    let aws: BTreeSet<&str> = variables()
        .flat_map(|v| v.aliases.iter().copied().chain(v.aws.map(|(a, _)| a)))
        .filter(|a| AWS_PREFIXES.iter().any(|p| a.starts_with(p)))
        .collect();
    let env = r.env;
    for name in env.vars.keys() {
        // HEARTH_WARMER_* belongs to the warmer function, which may carry the layer too.
        if name.starts_with("HEARTH_") && !name.starts_with("HEARTH_WARMER_") {
            if !hearth.contains(name.as_str()) {
                let hint = closest(name, &hearth)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                r.problem(
                    name,
                    format!("is not a Hearth setting{hint}; accepted: the variables listed in the README"),
                );
            }
        } else if AWS_PREFIXES.iter().any(|p| name.starts_with(p)) && !aws.contains(name.as_str()) {
            let hint = closest(name, &aws)
                .map(|k| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            r.problem(
                name,
                format!(
                    "is not a variable of AWS's Parameters and Secrets extension that Hearth honours{hint}; \
                     accepted: the aliases listed in the README's configuration table (remove it, or use the HEARTH_ variable)"
                ),
            );
        }
    }
}

/// The README's configuration table, generated from [`SECTIONS`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| variable | alias (AWS's extension / Lambda) | default | meaning |\n|---|---|---|---|\n",
    );
    for v in variables() {
        let mut alias: Vec<String> = v.aliases.iter().map(|a| format!("`{a}`")).collect();
        if let Some((a, units)) = v.aws {
            alias.push(format!("`{a}` ({units})"));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            v.name,
            alias.join(", "),
            v.default,
            v.meaning
        ));
    }
    out
}

#[cfg(test)]
mod readme {
    /// The README documents every variable, with its default, exactly as the code has it.
    /// `HEARTH_UPDATE_README=1 cargo test -p hearth-extension readme` rewrites the table.
    #[test]
    fn readme_table_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_default();
        let start = "<!-- config-table:start -->\n";
        let end = "<!-- config-table:end -->";
        let Some((head, rest)) = readme.split_once(start) else {
            panic!("README.md has no {start:?} marker");
        };
        let Some((table, tail)) = rest.split_once(end) else {
            panic!("README.md has no {end:?} marker");
        };
        let want = super::markdown_table();
        if table != want && std::env::var_os("HEARTH_UPDATE_README").is_some() {
            let updated = format!("{head}{start}{want}{end}{tail}");
            if let Err(e) = std::fs::write(path, updated) {
                panic!("could not rewrite README.md: {e}");
            }
            return;
        }
        assert!(
            table == want,
            "README.md's configuration table is out of date; rerun with HEARTH_UPDATE_README=1, or replace it with:\n{want}"
        );
    }
}
