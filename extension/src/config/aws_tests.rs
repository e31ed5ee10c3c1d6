//! Tests of compatibility with AWS's Parameters and Secrets extension: its variables, in its
//! units, and the errors for those it does not have.

#![allow(clippy::unwrap_used)]
use std::time::Duration;

use super::tests::env;
use super::*;

fn with_token(pairs: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
    let mut all = vec![("HEARTH_TOKEN", "t")];
    all.extend_from_slice(pairs);
    Config::from_env(&env(&all))
}

#[test]
fn aws_cache_switches_turn_secret_caching_off() {
    assert!(with_token(&[]).unwrap().secrets.caching);
    for off in [
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false"),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "FALSE"),
        ("SECRETS_MANAGER_TTL", "0"),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "0"),
        ("HEARTH_SECRETS_CACHE", "false"),
    ] {
        let c = with_token(&[off]).unwrap();
        assert!(!c.secrets.caching, "{off:?} should turn caching off");
    }
    // The HEARTH_ name wins over AWS's.
    let c = with_token(&[
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false"),
        ("HEARTH_SECRETS_CACHE", "true"),
    ])
    .unwrap();
    assert!(c.secrets.caching);
    // AWS's cache size in its range sets the capacity; beyond it is refused.
    let c = with_token(&[("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "20")]).unwrap();
    assert_eq!((c.secrets.capacity.get(), c.secrets.caching), (20, true));
    let e = with_token(&[("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "1001")]).unwrap_err();
    assert_eq!(
        e.problems[0].variable,
        "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE"
    );
    let e = with_token(&[("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "nope")]).unwrap_err();
    assert_eq!(
        e.problems[0].variable,
        "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED"
    );
    // Prefetching with caching off would be a wasted call: refused.
    let e = with_token(&[
        ("SECRETS_MANAGER_TTL", "0"),
        ("HEARTH_SECRETS_PREFETCH", "a"),
    ])
    .unwrap_err();
    assert_eq!(e.problems[0].variable, "HEARTH_SECRETS_PREFETCH");
}

#[test]
fn aws_timeouts_are_milliseconds_and_zero_is_none() {
    assert_eq!(with_token(&[]).unwrap().secrets.timeout, None);
    let c = with_token(&[("SECRETS_MANAGER_TIMEOUT_MILLIS", "250")]).unwrap();
    assert_eq!(c.secrets.timeout, Some(Some(Duration::from_millis(250))));
    let c = with_token(&[("SECRETS_MANAGER_TIMEOUT_MILLIS", "0")]).unwrap();
    assert_eq!(c.secrets.timeout, Some(None));
    let c = with_token(&[("HEARTH_SECRETS_TIMEOUT", "none")]).unwrap();
    assert_eq!(c.secrets.timeout, Some(None));
    let c = with_token(&[
        ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
        ("HEARTH_SECRETS_TIMEOUT", "3s"),
    ])
    .unwrap();
    assert_eq!(c.secrets.timeout, Some(Some(Duration::from_secs(3))));
    let e = with_token(&[("SECRETS_MANAGER_TIMEOUT_MILLIS", "1.5s")]).unwrap_err();
    assert_eq!(e.problems[0].variable, "SECRETS_MANAGER_TIMEOUT_MILLIS");
}

#[test]
fn aws_log_level_and_max_connections() {
    let c = with_token(&[("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "NONE")]).unwrap();
    assert_eq!(c.log.level, LogLevel::Off);
    let c = with_token(&[("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "debug")]).unwrap();
    assert_eq!(c.log.level, LogLevel::Debug);
    // The extension's own setting wins over Lambda's function-wide one.
    let c = with_token(&[
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", "warn"),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
    ])
    .unwrap();
    assert_eq!(c.log.level, LogLevel::Warn);
    assert_eq!(with_token(&[]).unwrap().aws.max_connections, None);
    let c = with_token(&[("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "3")]).unwrap();
    assert_eq!(c.aws.max_connections.map(|n| n.get()), Some(3));
    let e = with_token(&[("PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS", "0")]).unwrap_err();
    assert_eq!(
        e.problems[0].variable,
        "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS"
    );
}

#[test]
fn unknown_variables_of_aws_extension_are_errors_naming_them() {
    let e = with_token(&[
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLE", "false"),
        ("SECRETS_MANAGER_TTL_SECONDS", "60"),
    ])
    .unwrap_err();
    let names: Vec<&str> = e.problems.iter().map(|p| p.variable.as_str()).collect();
    assert_eq!(
        names,
        [
            "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLE",
            "SECRETS_MANAGER_TTL_SECONDS"
        ]
    );
    assert!(
        e.problems[0]
            .message
            .contains("did you mean PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED?"),
        "{e}"
    );
    // Every documented variable of AWS's extension is known.
    for name in [
        "PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED",
        "PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE",
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
        "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL",
        "PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS",
        "SECRETS_MANAGER_TIMEOUT_MILLIS",
        "SECRETS_MANAGER_TTL",
    ] {
        let known =
            variables().any(|v| v.aliases.contains(&name) || v.aws.map(|(a, _)| a) == Some(name));
        assert!(known, "{name} is not honoured");
    }
}

#[test]
fn missing_or_empty_token_names_both_variables_and_what_to_set() {
    for pairs in [
        vec![],
        vec![("AWS_SESSION_TOKEN", "")],
        vec![("HEARTH_TOKEN", " ")],
    ] {
        let e = Config::from_env(&env(&pairs)).unwrap_err();
        let msg = &e.problems[0].message;
        assert_eq!(e.problems[0].variable, "HEARTH_TOKEN");
        for needle in [
            "HEARTH_TOKEN",
            "AWS_SESSION_TOKEN",
            "sam local invoke",
            "X-Aws-Parameters-Secrets-Token",
        ] {
            assert!(msg.contains(needle), "{pairs:?}: {msg} lacks {needle}");
        }
    }
}
