//! Tests of the whole configuration: defaults, aliases, problems.

#![allow(clippy::unwrap_used)]
use super::*;
use std::num::NonZeroUsize;
use std::time::Duration;

pub(super) fn env(pairs: &[(&str, &str)]) -> Env {
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
    let c = Config::from_env(&env(&[("AWS_SESSION_TOKEN", "a"), ("HEARTH_TOKEN", "b")])).unwrap();
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
        (c.secrets.cache.soft_ttl, c.secrets.cache.hard_ttl),
        (Duration::from_secs(240), Duration::from_secs(300))
    );
    // AWS's variable sets the hard TTL in its own units and range; soft follows at 80%.
    let c = Config::from_env(&env(&[
        ("HEARTH_TOKEN", "t"),
        ("SECRETS_MANAGER_TTL", "120"),
    ]))
    .unwrap();
    assert_eq!(
        (
            c.secrets.cache.soft_ttl,
            c.secrets.cache.hard_ttl,
            c.secrets.cache.caching()
        ),
        (Duration::from_secs(96), Duration::from_secs(120), true)
    );
    // Beyond AWS's 300 s it is refused, naming AWS's variable; the HEARTH_ name has no cap.
    let e = Config::from_env(&env(&[
        ("HEARTH_TOKEN", "t"),
        ("SECRETS_MANAGER_TTL", "3600"),
    ]))
    .unwrap_err();
    assert_eq!(e.problems[0].variable, "SECRETS_MANAGER_TTL");
    assert!(e.problems[0].message.contains("0 to 300"), "{e}");
    let c = Config::from_env(&env(&[
        ("HEARTH_TOKEN", "t"),
        ("SECRETS_MANAGER_TTL", "3600"),
        ("HEARTH_SECRETS_HARD_TTL", "1h"),
    ]))
    .unwrap();
    assert_eq!(c.secrets.cache.hard_ttl, Duration::from_secs(3600));
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
    assert_eq!(c.secrets.cache.prefetch, ["a", "b", "c"]);
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
    let e =
        Config::from_env(&env(&[("HEARTH_TOKEN", "t"), ("HEARTH_DB_POOL_MAX", "9")])).unwrap_err();
    assert!(e.problems[0].message.contains("HEARTH_DB_SECRET_ID"), "{e}");
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

#[test]
fn metrics_flush() {
    let c = Config::from_env(&env(&[("HEARTH_TOKEN", "t")])).unwrap();
    assert_eq!(c.metrics.flush, MetricsFlush::InvocationEnd);
    let c = Config::from_env(&env(&[
        ("HEARTH_TOKEN", "t"),
        ("HEARTH_METRICS_FLUSH", "next-invoke"),
    ]))
    .unwrap();
    assert_eq!(c.metrics.flush, MetricsFlush::NextInvoke);
    let e = Config::from_env(&env(&[
        ("HEARTH_TOKEN", "t"),
        ("HEARTH_METRICS_FLUSH", "later"),
    ]))
    .unwrap_err();
    assert_eq!(e.problems[0].variable, "HEARTH_METRICS_FLUSH");
    assert!(
        e.problems[0]
            .message
            .contains("invocation-end or next-invoke"),
        "{e}"
    );
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
