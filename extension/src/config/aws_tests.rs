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
    assert!(with_token(&[]).unwrap().secrets.cache.caching());
    for off in [
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false"),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "FALSE"),
        ("SECRETS_MANAGER_TTL", "0"),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "0"),
        ("HEARTH_SECRETS_CACHE", "false"),
    ] {
        let c = with_token(&[off]).unwrap();
        assert!(
            !c.secrets.cache.caching(),
            "{off:?} should turn caching off"
        );
        let both = off.0.starts_with("PARAMETERS_SECRETS_EXTENSION_");
        assert_eq!(
            c.parameters.cache.caching(),
            !both,
            "{off:?} for parameters"
        );
    }
    // The HEARTH_ name wins over AWS's.
    let c = with_token(&[
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_ENABLED", "false"),
        ("HEARTH_SECRETS_CACHE", "true"),
    ])
    .unwrap();
    assert!(c.secrets.cache.caching());
    // AWS's cache size in its range sets the capacity; beyond it is refused.
    let c = with_token(&[("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "20")]).unwrap();
    assert_eq!(
        (c.secrets.cache.capacity.get(), c.secrets.cache.caching()),
        (20, true)
    );
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
fn aws_timeouts_are_milliseconds_and_zero_ends_with_the_request() {
    assert_eq!(with_token(&[]).unwrap().secrets.timeout, None);
    let c = with_token(&[("SECRETS_MANAGER_TIMEOUT_MILLIS", "250")]).unwrap();
    assert_eq!(c.secrets.timeout, Some(Duration::from_millis(250)));
    // AWS's "no timeout": the call still ends with the request (HEARTH_REQUEST_TIMEOUT).
    let c = with_token(&[
        ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
        ("HEARTH_REQUEST_TIMEOUT", "7s"),
    ])
    .unwrap();
    assert_eq!(c.secrets.timeout, Some(Duration::from_secs(7)));
    let c = with_token(&[
        ("SECRETS_MANAGER_TIMEOUT_MILLIS", "0"),
        ("HEARTH_SECRETS_TIMEOUT", "3s"),
    ])
    .unwrap();
    assert_eq!(c.secrets.timeout, Some(Duration::from_secs(3)));
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
        "SSM_PARAMETER_STORE_TIMEOUT_MILLIS",
        "SSM_PARAMETER_STORE_TTL",
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

#[test]
fn parameters_settings_and_aws_aliases() {
    let p = |pairs: &[(&str, &str)]| {
        let mut all = vec![("HEARTH_TOKEN", "t")];
        all.extend_from_slice(pairs);
        Config::from_env(&env(&all)).map(|c| c.parameters)
    };
    let d = p(&[]).unwrap();
    assert_eq!(
        (d.cache.soft_ttl, d.cache.hard_ttl, d.timeout),
        (Duration::from_secs(240), Duration::from_secs(300), None)
    );
    // AWS's variables, in AWS's units: whole seconds 0..=300 (0: no caching), ms (0: none,
    // which still ends with HEARTH_REQUEST_TIMEOUT).
    let a = p(&[
        ("SSM_PARAMETER_STORE_TTL", "0"),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "0"),
    ])
    .unwrap();
    assert_eq!(a.cache.hard_ttl, Duration::ZERO);
    assert_eq!(a.timeout, Some(Duration::from_secs(10)));
    let a = p(&[
        ("SSM_PARAMETER_STORE_TTL", "100"),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "1500"),
    ])
    .unwrap();
    assert_eq!(
        (a.cache.soft_ttl, a.cache.hard_ttl, a.timeout),
        (
            Duration::from_secs(80),
            Duration::from_secs(100),
            Some(Duration::from_millis(1500))
        )
    );
    for (var, bad) in [
        ("SSM_PARAMETER_STORE_TTL", "301"),
        ("SSM_PARAMETER_STORE_TTL", "5m"),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "2s"),
        ("HEARTH_PARAMETERS_SOFT_TTL", "10m"),
    ] {
        let e = p(&[(var, bad)]).unwrap_err();
        assert_eq!(e.problems[0].variable, var, "{var}={bad}");
    }
    // The HEARTH_ names take durations, beyond AWS's 5-minute cap; they win over aliases.
    let h = p(&[
        ("HEARTH_PARAMETERS_HARD_TTL", "1h"),
        ("SSM_PARAMETER_STORE_TTL", "5"),
        ("HEARTH_PARAMETERS_PREFETCH", "/a, /b"),
    ])
    .unwrap();
    assert_eq!(h.cache.hard_ttl, Duration::from_secs(3600));
    assert_eq!(h.cache.prefetch, ["/a", "/b"]);
}
