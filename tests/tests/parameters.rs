//! Parameter Store through `GET /systemsmanager/parameters/get`, against moto's SSM and the
//! real `hearth` binary, and the proof that code written for AWS's Parameters and Secrets
//! extension works unchanged: AWS's own Python runtime interface client (`awslambdaric`)
//! under the Lambda simulator calling both paths the way AWS documents, the curl line of
//! AWS's documentation with only AWS's variables set, and the snippets of docs/deploy.md
//! executed as they are written there.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use hearth::wire::TOKEN_HEADER;
use hearth_tests::hearth::{Hearth, Proc, SimEnv, TOKEN};
use hearth_tests::moto::Moto;
use hearth_tests::{free_port, target_bin, workspace_root};
use serde_json::{json, Value};

use hearth_tests::{error_code as code, with_env as with};

/// `name` percent-encoded for a query string, as callers of AWS's extension must send it.
fn enc(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str, kind: ParameterType) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

async fn param(h: &Hearth, query: &str) -> (u16, Value) {
    h.get(&format!("/systemsmanager/parameters/get?{query}"))
        .await
}

#[tokio::test]
async fn parameter_store_reads_as_aws_extension_serves_them() {
    let moto = Moto::start();
    let ssm = moto.ssm_client().await;
    put(
        &ssm,
        "/app/config/url",
        "https://one",
        ParameterType::String,
    )
    .await;
    put(&ssm, "/app/list", "a,b,c", ParameterType::StringList).await;
    put(
        &ssm,
        "/app/secret",
        "s3cret-value",
        ParameterType::SecureString,
    )
    .await;
    let h = Hearth::start(&moto.env()).await;

    // String, by its hierarchical name, URL-encoded: the SSM API's JSON, field for field.
    let (status, body) = param(&h, &format!("name={}", enc("/app/config/url"))).await;
    assert_eq!(status, 200, "{body}");
    let p = &body["Parameter"];
    assert_eq!(p["Name"], "/app/config/url");
    assert_eq!(p["Type"], "String");
    assert_eq!(p["Value"], "https://one");
    assert_eq!(p["Version"], 1);
    assert_eq!(p["DataType"], "text");
    assert!(p["LastModifiedDate"].is_number(), "{body}");
    let arn = p["ARN"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:aws:ssm:us-east-1:123456789012:parameter/app/config/url"),
        "{arn}"
    );
    // A second read is a hit.
    let hits = h.counter("parameters.hits").await;
    param(&h, &format!("name={}", enc("/app/config/url"))).await;
    assert_eq!(h.counter("parameters.hits").await, hits + 1);

    let (_, body) = param(&h, &format!("name={}", enc("/app/list"))).await;
    assert_eq!(
        (&body["Parameter"]["Type"], &body["Parameter"]["Value"]),
        (&json!("StringList"), &json!("a,b,c"))
    );

    // SecureString: the plaintext only with withDecryption=true; a read without it, before
    // or after, never gets the decrypted value from the cache.
    let plain = format!("name={}", enc("/app/secret"));
    let (_, before) = param(&h, &plain).await;
    assert_eq!(before["Parameter"]["Type"], "SecureString");
    assert_ne!(before["Parameter"]["Value"], "s3cret-value");
    let (status, dec) = param(&h, &format!("{plain}&withDecryption=true")).await;
    assert_eq!(
        (status, &dec["Parameter"]["Value"]),
        (200, &json!("s3cret-value"))
    );
    let (_, after) = param(&h, &plain).await;
    assert_ne!(after["Parameter"]["Value"], "s3cret-value");
    let (_, after) = param(&h, &format!("{plain}&withDecryption=false")).await;
    assert_ne!(after["Parameter"]["Value"], "s3cret-value");

    // The typed Rust client reads the same way.
    let client = hearth::client::Client::builder()
        .port(h.port)
        .token(TOKEN)
        .build()
        .unwrap();
    let p = client.parameter("/app/secret", true).await.unwrap();
    assert_eq!(
        (p.kind.as_str(), p.value.as_str()),
        ("SecureString", "s3cret-value")
    );
    assert!(
        !format!("{p:?}").contains("s3cret-value"),
        "Debug redacts the value"
    );

    // Versions and labels: name:version, version=, label= and name:label.
    put(
        &ssm,
        "/app/config/url",
        "https://two",
        ParameterType::String,
    )
    .await;
    ssm.label_parameter_version()
        .name("/app/config/url")
        .parameter_version(1)
        .labels("prod")
        .send()
        .await
        .unwrap();
    for (query, want) in [
        (format!("name={}", enc("/app/config/url:1")), "https://one"),
        (
            format!("name={}&version=1", enc("/app/config/url")),
            "https://one",
        ),
        (
            format!("name={}&version=2", enc("/app/config/url")),
            "https://two",
        ),
        (
            format!("name={}&label=prod", enc("/app/config/url")),
            "https://one",
        ),
        (
            format!("name={}", enc("/app/config/url:prod")),
            "https://one",
        ),
        // By ARN, and an ARN with a version.
        (format!("name={}&version=2", enc(&arn)), "https://two"),
    ] {
        let (status, body) = param(&h, &query).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["Parameter"]["Value"], want, "{query}: {body}");
    }
    // (AWS also returns "Selector": ":prod" here; moto 5.2.5 leaves it out, so it is not
    // asserted. Hearth passes the field through when SSM sends it.)
    let (_, body) = param(&h, &format!("name={}", enc(&arn))).await;
    assert_eq!(body["Parameter"]["Name"], "/app/config/url", "{body}");

    // A Secrets Manager secret through /aws/reference/secretsmanager/ (decryption required
    // by Parameter Store, as with AWS's extension).
    let sm = moto.secrets_client().await;
    sm.create_secret()
        .name("db-creds")
        .secret_string(r#"{"user":"app"}"#)
        .send()
        .await
        .unwrap();
    let reference = enc("/aws/reference/secretsmanager/db-creds");
    let (status, body) = param(&h, &format!("name={reference}&withDecryption=true")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Parameter"]["Value"], r#"{"user":"app"}"#);
    let (status, body) = param(&h, &format!("name={reference}")).await;
    assert_eq!((status, code(&body)), (400, "InvalidParameter"), "{body}");

    // Answers that are not values: JSON errors with stable codes.
    for (query, want_status, want_code) in [
        (
            format!("name={}", enc("/app/missing")),
            404,
            "ParameterNotFound",
        ),
        (
            format!("name={}&version=9", enc("/app/list")),
            404,
            "ParameterVersionNotFound",
        ),
        // An unknown label: Parameter Store answers ParameterNotFound, passed through.
        (
            format!("name={}&label=nope", enc("/app/list")),
            404,
            "ParameterNotFound",
        ),
        ("name=a&version=1&label=x".into(), 400, "InvalidParameter"),
        ("name=a&version=zero".into(), 400, "InvalidParameter"),
        (
            format!("name={}&version=1", enc("/a:2")),
            400,
            "InvalidParameter",
        ),
        (
            "name=a&withDecryption=maybe".into(),
            400,
            "InvalidParameter",
        ),
        ("nmae=a".into(), 400, "UnknownParameter"),
        (String::new(), 400, "MissingParameter"),
    ] {
        let (status, body) = param(&h, &query).await;
        assert_eq!(
            (status, code(&body)),
            (want_status, want_code),
            "{query}: {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // The same token check as every other path.
    let r = h
        .http
        .get(h.url("/systemsmanager/parameters/get?name=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // No value ever reached the log.
    let log = h.proc.output();
    assert!(
        !log.contains("s3cret-value") && !log.contains("https://two"),
        "{log}"
    );
}

#[tokio::test]
async fn fifty_concurrent_cold_reads_make_one_get_parameter() {
    let moto = Moto::start();
    let ssm = moto.ssm_client().await;
    let h = Hearth::start(&moto.env()).await;
    // As for secrets: retried with a fresh parameter until the reads really overlapped.
    let mut overlapped = false;
    for attempt in 0..5 {
        let name = format!("/hot/{attempt}");
        put(&ssm, &name, "v", ParameterType::String).await;
        let calls = h.counter("parameters.upstream_calls").await;
        let misses = h.counter("parameters.misses").await;
        let path = format!("/systemsmanager/parameters/get?name={}", enc(&name));
        let results = futures::future::join_all((0..50).map(|_| h.get(&path))).await;
        for (status, body) in &results {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(body["Parameter"]["Value"], "v");
        }
        assert_eq!(
            h.counter("parameters.upstream_calls").await - calls,
            1,
            "50 concurrent cold reads → 1 GetParameter"
        );
        if h.counter("parameters.misses").await - misses > 1 {
            overlapped = true;
            break;
        }
    }
    assert!(overlapped, "the 50 reads never overlapped in 5 attempts");
    assert!(h.counter("parameters.coalesced").await >= 1);
}

#[tokio::test]
async fn prefetch_uses_get_parameters_in_batches_of_ten() {
    let moto = Moto::start();
    let ssm = moto.ssm_client().await;
    let mut names = Vec::new();
    for i in 0..12 {
        let name = format!("/pre/p{i}");
        put(&ssm, &name, &format!("v{i}"), ParameterType::String).await;
        names.push(name);
    }
    put(&ssm, "/pre/secure", "hidden", ParameterType::SecureString).await;
    names.push("/pre/secure".into());
    let list = names.join(",");
    let h = Hearth::start(&with(moto.env(), &[("HEARTH_PARAMETERS_PREFETCH", &list)])).await;
    let (_, warm) = h.post("/v1/warm", &json!({})).await;
    assert_eq!(warm["warmed"]["parameters"], 13, "{warm}");
    // 13 names: two GetParameters calls at init and two for /v1/warm; no GetParameter.
    assert_eq!(h.counter("parameters.upstream_batch_calls").await, 4);
    for (i, name) in names.iter().take(12).enumerate() {
        let (_, body) = param(&h, &format!("name={}", enc(name))).await;
        assert_eq!(body["Parameter"]["Value"], format!("v{i}"));
    }
    let (_, body) = param(
        &h,
        &format!("name={}&withDecryption=true", enc("/pre/secure")),
    )
    .await;
    assert_eq!(body["Parameter"]["Value"], "hidden");
    assert_eq!(h.counter("parameters.upstream_calls").await, 0);
    // The prefetched SecureString was decrypted: a read without decryption must not get it.
    let (_, body) = param(&h, &format!("name={}", enc("/pre/secure"))).await;
    assert_ne!(body["Parameter"]["Value"], "hidden");
    assert_eq!(h.counter("parameters.upstream_calls").await, 1);
}

/// Starts `hearth` with exactly `vars` (no HEARTH_* variable) and waits for /health.
async fn start_bare(vars: &[(String, String)], port: u16) -> Proc {
    let proc = Proc::spawn(&target_bin("hearth"), vars);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return proc;
        }
        assert!(
            Instant::now() < deadline,
            "hearth did not start:\n{}",
            proc.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The curl line of AWS's documentation for its extension, run as is with only AWS's
/// variables set; `SSM_PARAMETER_STORE_TTL=0` then means what it means there: no caching.
#[tokio::test]
async fn aws_documented_curl_line_works_with_only_aws_variables() {
    let moto = Moto::start();
    let ssm = moto.ssm_client().await;
    put(&ssm, "MyParameter", "from-ssm", ParameterType::String).await;
    let port = free_port();
    let vars = with(
        moto.env(),
        &[
            ("AWS_SESSION_TOKEN", "session-token-from-lambda"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port.to_string()),
            ("SSM_PARAMETER_STORE_TTL", "0"),
            ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", "3000"),
        ],
    );
    let _proc = start_bare(&vars, port).await;
    // AWS's line, with the port the function's environment names.
    let line = r#"curl -sS -H "X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN" "http://localhost:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT/systemsmanager/parameters/get?name=MyParameter""#;
    for _ in 0..3 {
        let out = Command::new("sh")
            .args(["-c", line])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_SESSION_TOKEN", "session-token-from-lambda")
            .env("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string())
            .output()
            .unwrap();
        let body: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(body["Parameter"]["Value"], "from-ssm", "{body}");
    }
    let metrics: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/v1/metrics"))
        .header(TOKEN_HEADER, "session-token-from-lambda")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // TTL 0: no caching, every read called Parameter Store.
    assert_eq!(
        metrics["counters"]["parameters.upstream_calls"], 3,
        "{metrics}"
    );
    assert_eq!(
        metrics["counters"]["parameters.hits"].as_u64().unwrap_or(0),
        0
    );
}

fn python() -> PathBuf {
    workspace_root().join(".venv/bin/python")
}

/// The handler of the proof: written as AWS's documentation shows for its own extension
/// (standard-library urllib, token from AWS_SESSION_TOKEN, port from
/// PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, names in the code as in AWS's example), nothing
/// Hearth-specific. It ignores the event: lambda-simulator 0.2 delivers the payload without
/// `Content-Type: application/json`, so awslambdaric hands it over as bytes, not a dict.
const AWS_STYLE_HANDLER: &str = r#"
import json
import os
import urllib.parse
import urllib.request

headers = {"X-Aws-Parameters-Secrets-Token": os.environ.get("AWS_SESSION_TOKEN")}
port = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2773")


secret_name = "prod/app/db"
parameter_name = "/prod/app/key"


def lambda_handler(event, context):
    secrets_url = ("http://localhost:" + port + "/secretsmanager/get?secretId="
                   + urllib.parse.quote(secret_name, safe=""))
    with urllib.request.urlopen(urllib.request.Request(secrets_url, headers=headers)) as r:
        secret = json.loads(r.read())
    params_url = ("http://localhost:" + port + "/systemsmanager/parameters/get?name="
                  + urllib.parse.quote(parameter_name, safe="") + "&withDecryption=true")
    with urllib.request.urlopen(urllib.request.Request(params_url, headers=headers)) as r:
        parameter = json.loads(r.read())
    return {"secret": secret["SecretString"], "parameter": parameter["Parameter"]["Value"]}
"#;

/// The proof of "unchanged": AWS's own runtime interface client for Python runs a handler
/// written for AWS's extension, under the Lambda simulator, beside the real `hearth`.
#[tokio::test]
async fn aws_runtime_interface_client_function_works_unchanged() {
    let moto = Moto::start();
    let ssm = moto.ssm_client().await;
    put(
        &ssm,
        "/prod/app/key",
        "param-value",
        ParameterType::SecureString,
    )
    .await;
    moto.secrets_client()
        .await
        .create_secret()
        .name("prod/app/db")
        .secret_string("secret-value")
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("handler.py"), AWS_STYLE_HANDLER).unwrap();
    // The runtime's bootstrap, as a Lambda container image runs it:
    // `python -m awslambdaric handler.lambda_handler` in the task root.
    let bootstrap = dir.path().join("bootstrap");
    std::fs::write(
        &bootstrap,
        format!(
            "#!/bin/sh\ncd '{}' && exec '{}' -m awslambdaric handler.lambda_handler\n",
            dir.path().display(),
            python().display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&bootstrap)
        .status()
        .unwrap();

    let mut sim = SimEnv::start(&moto.env(), false).await;
    let port = sim.port.to_string();
    sim.start_function(
        &bootstrap,
        &with(
            moto.env(),
            &[("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.as_str())],
        ),
    );
    for _ in 0..2 {
        let (_, out) = sim.invoke(json!({})).await;
        assert_eq!(
            out,
            json!({"secret": "secret-value", "parameter": "param-value"}),
            "function:\n{}",
            sim.function.as_ref().map(Proc::output).unwrap_or_default()
        );
    }
}

/// The fenced block under `heading` in docs/deploy.md.
fn doc_block(heading: &str, lang: &str) -> String {
    let doc = std::fs::read_to_string(workspace_root().join("docs/deploy.md")).unwrap();
    let after = doc.split_once(heading).unwrap().1;
    let start = format!("```{lang}\n");
    let body = after.split_once(&start).unwrap().1;
    body.split_once("\n```").unwrap().0.to_string()
}

/// The Python and Node snippets of docs/deploy.md, executed as written against a running
/// hearth and moto: their helper functions read a secret and parameters and encrypt. (Their
/// handlers' database call needs the payments schema, which tests/tests/payments.rs covers.)
#[tokio::test]
async fn deploy_doc_snippets_run() {
    let moto = Moto::start();
    let ssm = moto.ssm_client().await;
    put(
        &ssm,
        "/prod/payments/endpoint",
        "https://psp",
        ParameterType::String,
    )
    .await;
    put(
        &ssm,
        "/prod/payments/pin",
        "4242",
        ParameterType::SecureString,
    )
    .await;
    moto.secrets_client()
        .await
        .create_secret()
        .name("prod/payments/api")
        .secret_string(r#"{"key":"k-123"}"#)
        .send()
        .await
        .unwrap();
    let key = moto.create_kms_key().await;
    let port = free_port();
    let h = Hearth::start(&with(
        moto.env(),
        &[
            ("HEARTH_KMS_KEY_ID", key.as_str()),
            ("HEARTH_PORT", &port.to_string()),
        ],
    ))
    .await;
    let run_env = [
        ("AWS_SESSION_TOKEN", TOKEN.to_string()),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
    ];
    let run = |cmd: &mut Command| {
        let out = cmd
            .env_clear()
            .envs(run_env.iter().cloned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let want = json!({"key": "k-123", "endpoint": "https://psp", "pin": "4242", "encrypted": true});

    let py = doc_block("### Python (standard library only)", "python")
        + r#"

print(json.dumps({
    "key": json.loads(get_secret("prod/payments/api"))["key"],
    "endpoint": get_parameter("/prod/payments/endpoint"),
    "pin": get_parameter("/prod/payments/pin", decrypt=True),
    "encrypted": len(hearth("POST", "/v1/kms/encrypt", {"plaintext": "aGk=", "context": {"purpose": "card"}})["ciphertext"]) > 0,
}))
"#;
    assert_eq!(run(Command::new("python3").args(["-c", &py])), want);

    let dir = tempfile::tempdir().unwrap();
    let js = doc_block("### Node.js (18+, global `fetch`)", "js")
        + r#"

console.log(JSON.stringify({
  key: JSON.parse(await getSecret("prod/payments/api")).key,
  endpoint: await getParameter("/prod/payments/endpoint"),
  pin: await getParameter("/prod/payments/pin", true),
  encrypted: (await hearth("POST", "/v1/kms/encrypt", { plaintext: "aGk=", context: { purpose: "card" } })).ciphertext.length > 0,
}));
"#;
    let file = dir.path().join("snippet.mjs");
    std::fs::write(&file, js).unwrap();
    assert_eq!(run(Command::new("node").arg(&file)), want);
    drop(h);
}
