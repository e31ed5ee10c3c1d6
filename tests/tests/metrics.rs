//! The CloudWatch side of Hearth, checked against the real `hearth` binary under the Lambda
//! simulator (which serves the Telemetry API):
//!
//! - every metric, namespace and dimension set that an alarm or a dashboard widget in
//!   `template.yaml` names appears in the EMF lines the extension really writes under
//!   secrets, KMS, database and failover traffic, and every metric it writes is in
//!   docs/deploy.md's table (a renamed metric fails here, not in production alerting);
//! - each invocation's EMF line is written when that invocation ends, before the next INVOKE,
//!   and carries that invocation's own counters; a lost `platform.runtimeDone` holds one
//!   invocation at most, then the extension writes at each INVOKE.
//!
//! The template is read with cfn-lint's YAML decoder from the project venv (it understands
//! CloudFormation's short tags), installed by scripts/install-test-deps.sh.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hearth_tests::hearth::{SimEnv, TOKEN};
use hearth_tests::moto::{create_key_with, Moto};
use hearth_tests::postgres::PgCluster;
use hearth_tests::workspace_root;
use lambda_simulator::DeliveryPolicy;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

/// These tests run real processes and time-sensitive lifecycles: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PRIMARY: &str = "us-east-1";
const FALLBACK: &str = "eu-west-1";
/// Bound on any single HTTP request to the extension here.
const REQUEST_BOUND: Duration = Duration::from_secs(15);

fn probe_function() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_probe-function"))
}

// ------------------------------------------------------------------ reading EMF and the template

/// The EMF documents in a process's output (its other lines are logs).
fn emf_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// What the EMF lines declare: (namespace, sorted dimension names, metric name).
fn declared(lines: &[Value]) -> BTreeSet<(String, Vec<String>, String)> {
    let mut out = BTreeSet::new();
    for doc in lines {
        for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            let ns = d["Namespace"].as_str().unwrap().to_string();
            for set in d["Dimensions"].as_array().unwrap() {
                let mut dims: Vec<String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                dims.sort();
                for m in d["Metrics"].as_array().unwrap() {
                    let name = m["Name"].as_str().unwrap().to_string();
                    // Every declared metric has its value in the document.
                    assert!(
                        doc.get(&name).is_some(),
                        "{name} declared but absent: {doc}"
                    );
                    out.insert((ns.clone(), dims.clone(), name));
                }
            }
        }
    }
    out
}

/// Sum of a counter over the lines (0 when absent).
fn total(lines: &[Value], name: &str) -> f64 {
    lines.iter().filter_map(|l| l[name].as_f64()).sum()
}

/// template.yaml as JSON, decoded by cfn-lint (short tags become `{"Ref": ..}` etc.).
fn template() -> Value {
    let root = workspace_root();
    let py = root.join(".venv/bin/python");
    let out = Command::new(&py)
        .arg("-c")
        .arg(
            "import json, sys\n\
             from cfnlint.decode import decode\n\
             t, problems = decode(sys.argv[1])\n\
             if problems:\n    sys.exit(str(problems))\n\
             print(json.dumps(t, default=str))",
        )
        .arg(root.join("template.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/install-test-deps.sh", py.display()));
    assert!(
        out.status.success(),
        "decoding template.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A metric an alarm or a widget names.
#[derive(Debug)]
struct Use {
    by: String,
    namespace: String,
    name: String,
    /// (dimension name, value as written: `{"Ref": ..}` in alarms, a string in the dashboard).
    dims: Vec<(String, Value)>,
}

/// The placeholder the dashboard's `${PaymentsFunction}` is replaced by.
const FUNCTION_PLACEHOLDER: &str = "<PaymentsFunction>";

fn uses(t: &Value) -> Vec<Use> {
    let mut out = Vec::new();
    let metric = |by: &str, m: &Value| Use {
        by: by.to_string(),
        namespace: m["Namespace"].as_str().unwrap_or_default().to_string(),
        name: m["MetricName"].as_str().unwrap_or_default().to_string(),
        dims: m["Dimensions"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|d| (d["Name"].as_str().unwrap().to_string(), d["Value"].clone()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    for (name, res) in t["Resources"].as_object().unwrap() {
        let props = &res["Properties"];
        match res["Type"].as_str() {
            Some("AWS::CloudWatch::Alarm") => {
                if props.get("MetricName").is_some() {
                    out.push(metric(name, props));
                }
                for q in props["Metrics"].as_array().into_iter().flatten() {
                    if let Some(m) = q.pointer("/MetricStat/Metric") {
                        out.push(metric(name, m));
                    }
                }
            }
            Some("AWS::CloudWatch::Dashboard") => {
                let body = props["DashboardBody"]["Fn::Sub"]
                    .as_str()
                    .expect("DashboardBody is a !Sub string");
                let body = body.replace("${PaymentsFunction}", FUNCTION_PLACEHOLDER);
                let body = regex_lite_sub(&body);
                let dash: Value = serde_json::from_str(&body).unwrap();
                for w in dash["widgets"].as_array().unwrap() {
                    let title = w["properties"]["title"].as_str().unwrap_or("?");
                    for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
                        let parts = m.as_array().unwrap();
                        let Some(ns) = parts.first().and_then(Value::as_str) else {
                            continue; // an expression
                        };
                        let strings: Vec<&Value> =
                            parts.iter().take_while(|p| p.is_string()).collect();
                        let dims = strings[2..]
                            .chunks(2)
                            .map(|c| (c[0].as_str().unwrap().to_string(), c[1].clone()))
                            .collect();
                        out.push(Use {
                            by: format!("{name} widget {title:?}"),
                            namespace: ns.to_string(),
                            name: strings[1].as_str().unwrap().to_string(),
                            dims,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Replaces every other `${...}` of a !Sub string by `X`.
fn regex_lite_sub(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => {
                out.push('X');
                rest = &rest[i + j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The EMF names in docs/deploy.md's metric table (its second column).
fn documented_emf_names() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/deploy.md")).unwrap();
    let table = doc
        .split("<!-- metrics-table:start -->")
        .nth(1)
        .and_then(|t| t.split("<!-- metrics-table:end -->").next())
        .expect("docs/deploy.md has the metrics table markers");
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(2))
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

/// The metric uses of the template (outside AWS/Lambda) that `written` lacks. Panics on a
/// use outside `namespace` or with a dimension other than the payments function's name.
fn unwritten(
    t: &Value,
    namespace: &str,
    written: &BTreeSet<(String, Vec<String>, String)>,
) -> Vec<String> {
    let uses = uses(t);
    assert!(uses.len() > 20, "found too few metric uses: {uses:#?}");
    let mut missing = Vec::new();
    for u in &uses {
        if u.namespace == "AWS/Lambda" {
            continue;
        }
        assert_eq!(
            u.namespace, namespace,
            "{u:?}: not the extension's namespace"
        );
        let mut dims: Vec<String> = u.dims.iter().map(|(n, _)| n.clone()).collect();
        dims.sort();
        for (_, value) in &u.dims {
            assert!(
                *value == json!({"Ref": "PaymentsFunction"})
                    || *value == json!(FUNCTION_PLACEHOLDER),
                "{u:?}: the dimension must be the payments function's name"
            );
        }
        if !written.contains(&(u.namespace.clone(), dims, u.name.clone())) {
            missing.push(format!("{} ({})", u.name, u.by));
        }
    }
    missing
}

// ------------------------------------------------------------------ peers

/// A loopback TCP relay in front of moto that can be switched to refuse (accept and drop at
/// once): a region whose endpoint fails every call, transiently.
struct Relay {
    port: u16,
    refuse: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refuse = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let refuse = refuse.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if refuse.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    tokio::spawn(async move {
                        if let Ok(mut out) = TcpStream::connect(("127.0.0.1", target)).await {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(30),
                                tokio::io::copy_bidirectional(&mut inbound, &mut out),
                            )
                            .await;
                        }
                    });
                }
            }
        });
        Relay { port, refuse, task }
    }

    fn refuse(&self) {
        self.refuse.store(true, Ordering::SeqCst);
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sdk(moto: &Moto, region: &'static str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "metrics-test",
        ))
        .load()
        .await
}

/// The extension's HTTP API, called by the test directly (the simulator does not freeze
/// the environment in these tests).
struct Api {
    http: reqwest::Client,
    port: u16,
}

impl Api {
    async fn call(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = tokio::time::timeout(REQUEST_BOUND, req.send())
            .await
            .expect("request to the extension hung")
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(
            self.http
                .get(format!("http://127.0.0.1:{}{path}", self.port))
                .header("X-Aws-Parameters-Secrets-Token", TOKEN),
        )
        .await
    }

    /// Waits (bounded) until no Secrets Manager or Parameter Store call is in flight: every
    /// call started has recorded its latency. INVOKE starts background refreshes; one still
    /// in flight when a region is switched off could answer (and close the breaker) later.
    async fn quiesce(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, m) = self.get("/v1/metrics").await;
            let n = |kind: &str, name: &str| m[kind][name].as_u64().unwrap_or(0);
            let lat = |name: &str| m["latencies"][name]["count"].as_u64().unwrap_or(0);
            let idle = lat("secrets.upstream_latency") == n("counters", "secrets.upstream_calls")
                && lat("parameters.upstream_latency")
                    == n("counters", "parameters.upstream_calls")
                        + n("counters", "parameters.upstream_batch_calls");
            if idle {
                return;
            }
            assert!(Instant::now() < deadline, "AWS calls still in flight: {m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            self.http
                .post(format!("http://127.0.0.1:{}{path}", self.port))
                .header("X-Aws-Parameters-Secrets-Token", TOKEN)
                .json(&body),
        )
        .await
    }
}

async fn emf_after(env: &SimEnv, count: usize) -> Vec<Value> {
    // The line is written before the extension asks for its next event; the invocation is
    // complete for the simulator slightly earlier. Bounded poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = emf_lines(&env.extension.output());
        if lines.len() >= count || Instant::now() >= deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------ the tests

/// Secrets, KMS, database and failover traffic through the real binary; then every metric
/// the template's alarms and dashboard name must be among the EMF lines it wrote, under the
/// namespace and dimension set they use, and every metric written must be documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_and_dashboard_name_only_metrics_the_extension_writes() {
    let _serial = SERIAL.lock().await;
    let t = template();
    let function = &t["Resources"]["PaymentsFunction"]["Properties"];
    let namespace = function["Environment"]["Variables"]["HEARTH_METRICS_NAMESPACE"]
        .as_str()
        .expect("the template sets HEARTH_METRICS_NAMESPACE on the payments function as a literal")
        .to_string();
    assert!(
        function["Layers"].is_array(),
        "the alarmed function carries the Hearth layer"
    );

    let moto = Moto::start();
    let primary_sdk = sdk(&moto, PRIMARY).await;
    let fallback_sdk = sdk(&moto, FALLBACK).await;
    let sm = aws_sdk_secretsmanager::Client::new(&primary_sdk);
    let sm_fallback = aws_sdk_secretsmanager::Client::new(&fallback_sdk);
    for c in [&sm, &sm_fallback] {
        for name in ["app/cfg", "app/cold"] {
            c.create_secret()
                .name(name)
                .secret_string("v1")
                .send()
                .await
                .unwrap();
        }
    }
    for c in [&primary_sdk, &fallback_sdk] {
        aws_sdk_ssm::Client::new(c)
            .put_parameter()
            .name("/app/flag")
            .value("on")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .unwrap();
    }
    let key = create_key_with(&aws_sdk_kms::Client::new(&primary_sdk)).await;
    let fallback_key = create_key_with(&aws_sdk_kms::Client::new(&fallback_sdk)).await;

    let pg = PgCluster::start();
    pg.create_role("app", "pw-1").await;
    pg.create_database("hearth", "app").await;
    let db_secret = |password: &str| {
        json!({"engine": "postgres", "host": pg.host(), "port": pg.port(), "dbname": "hearth",
               "username": "app", "password": password})
        .to_string()
    };
    sm.create_secret()
        .name("db/app")
        .secret_string(db_secret("pw-1"))
        .send()
        .await
        .unwrap();

    // One moto serves both regions (they are isolated in it); a relay in front of each
    // region's endpoint is the fault switch.
    let moto_port: u16 = moto.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let relay_primary = Relay::start(moto_port).await;
    let relay_fallback = Relay::start(moto_port).await;
    let endpoints = format!(
        "{PRIMARY}={},{FALLBACK}={}",
        relay_primary.endpoint(),
        relay_fallback.endpoint()
    );
    let vars: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", PRIMARY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("HEARTH_AWS_ENDPOINTS", endpoints.as_str()),
        ("HEARTH_FALLBACK_REGION", FALLBACK),
        ("HEARTH_FAILOVER_COOLDOWN", "1h"),
        ("HEARTH_FAILOVER_BUDGET", "1s"),
        ("HEARTH_KMS_KEY_ID", key.as_str()),
        ("HEARTH_KMS_FALLBACK_KEY_ID", fallback_key.as_str()),
        ("HEARTH_SECRETS_SOFT_TTL", "1s"),
        ("HEARTH_SECRETS_HARD_TTL", "2s"),
        ("HEARTH_SECRETS_JITTER_PERCENT", "0"),
        ("HEARTH_PARAMETERS_SOFT_TTL", "1s"),
        ("HEARTH_PARAMETERS_HARD_TTL", "2s"),
        ("HEARTH_DB_SECRET_ID", "db/app"),
        ("HEARTH_DB_TLS", "disable"),
        ("HEARTH_DB_POOL_MIN", "1"),
        ("HEARTH_DB_POOL_MAX", "1"),
        ("HEARTH_DB_POOL_WAIT_TIMEOUT", "300ms"),
        ("HEARTH_DB_VERIFY_IDLE_AFTER", "0s"),
        ("HEARTH_METRICS_NAMESPACE", namespace.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut env = SimEnv::start(&vars, false).await;
    env.start_function(&probe_function(), &[]);
    let api = Api {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        port: env.port,
    };
    let mut invocations = 0;

    // Healthy regions. Secrets and parameters: one miss, then hits.
    for _ in 0..4 {
        let (status, body) = api.get("/secretsmanager/get?secretId=app%2Fcfg").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .get("/systemsmanager/parameters/get?name=%2Fapp%2Fflag")
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // KMS: a message (GenerateDataKey in the primary, Encrypt under the fallback key) and
    // its decryption (Decrypt).
    let (status, body) = api
        .post(
            "/v1/kms/encrypt",
            json!({"plaintext": B64.encode(b"card"), "context": {"tenant": "t-1"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, out) = api
        .post(
            "/v1/kms/decrypt",
            json!({"ciphertext": body["ciphertext"], "context": {"tenant": "t-1"}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    // The same context again: the cached data key, a KMS call avoided.
    let (status, body) = api
        .post(
            "/v1/kms/encrypt",
            json!({"plaintext": B64.encode(b"card"), "context": {"tenant": "t-1"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A request without the token is rejected.
    let (status, _) = api
        .call(
            api.http
                .get(format!(
                    "http://127.0.0.1:{}/secretsmanager/get?secretId=x",
                    api.port
                ))
                .header("X-Aws-Parameters-Secrets-Token", "wrong"),
        )
        .await;
    assert_eq!(status, 403);
    // Database: a query holds the only connection while another one waits for it past the
    // wait timeout (a pool wait, a pool timeout, a 503).
    let q = |sql: &str| json!({"sql": sql, "tenant": "a"});
    let (slow, waiting) = tokio::join!(
        api.post("/v1/db/query", q("SELECT 1 AS one FROM pg_sleep(1)")),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            api.post("/v1/db/query", q("SELECT 2 AS two")).await
        }
    );
    assert_eq!(slow.0, 200, "{}", slow.1);
    assert_eq!(
        (waiting.0, waiting.1["error"]["code"].as_str()),
        (503, Some("PoolTimeout")),
        "{}",
        waiting.1
    );
    // Password rotation: the cached credentials are fresh (refreshNow), then the role's
    // password and the secret change and the pooled connection dies; the next connection
    // is refused with 28P01 and the pool refetches the secret.
    let (status, _) = api
        .get("/secretsmanager/get?secretId=db%2Fapp&refreshNow=true")
        .await;
    assert_eq!(status, 200);
    pg.set_password("app", "pw-2").await;
    sm.put_secret_value()
        .secret_id("db/app")
        .secret_string(db_secret("pw-2"))
        .send()
        .await
        .unwrap();
    pg.terminate_backends("app").await;
    let (status, body) = api.post("/v1/db/query", q("SELECT 3 AS three")).await;
    assert_eq!(status, 200, "{body}");
    env.invoke(json!({})).await;
    invocations += 1;
    // The line goes out when the Telemetry API reports the end, just after the simulator
    // sees the response: wait for it, so the next phase's traffic is not counted in it.
    assert_eq!(emf_after(&env, invocations).await.len(), invocations);

    // The primary region fails: reads fail over and the breaker opens; KMS calls fail in
    // the primary (KMS errors) and go on to the fallback.
    api.quiesce().await;
    relay_primary.refuse();
    // A secret never read before: no background refresh (INVOKE's refresh-ahead of app/cfg
    // may still be in flight) can answer it, so this read meets the refusing primary.
    let (status, body) = api.get("/secretsmanager/get?secretId=app%2Fcold").await;
    assert_eq!(status, 200, "{body}");
    let (_status, _body) = api
        .post(
            "/v1/kms/encrypt",
            json!({"plaintext": B64.encode(b"card"), "context": {"tenant": "t-2"}}),
        )
        .await;
    env.invoke(json!({})).await;
    invocations += 1;
    // The line goes out when the Telemetry API reports the end, just after the simulator
    // sees the response: wait for it, so the next phase's traffic is not counted in it.
    assert_eq!(emf_after(&env, invocations).await.len(), invocations);

    // Both regions fail: past its hard TTL the cached secret is served stale.
    api.quiesce().await;
    relay_fallback.refuse();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (status, body) = api.get("/secretsmanager/get?secretId=app%2Fcfg").await;
    assert_eq!(
        (status, body["SecretString"].as_str()),
        (200, Some("v1")),
        "{body}"
    );
    let (status, body) = api
        .get("/systemsmanager/parameters/get?name=%2Fapp%2Fflag")
        .await;
    assert_eq!(
        (status, body["Parameter"]["Value"].as_str()),
        (200, Some("on")),
        "{body}"
    );
    env.invoke(json!({})).await;
    invocations += 1;
    // The line goes out when the Telemetry API reports the end, just after the simulator
    // sees the response: wait for it, so the next phase's traffic is not counted in it.
    assert_eq!(emf_after(&env, invocations).await.len(), invocations);

    let lines = emf_after(&env, invocations).await;
    assert_eq!(
        lines.len(),
        invocations,
        "one EMF line per invocation; output:\n{}",
        env.extension.output()
    );
    // Real outcomes behind the names.
    for (name, at_least) in [
        ("SecretsHits", 3.0),
        ("SecretsMisses", 1.0),
        ("SecretsStaleServes", 1.0),
        ("ParametersHits", 3.0),
        ("ParametersStaleServes", 1.0),
        ("KmsGenerateDataKeyCalls", 1.0),
        ("KmsDecryptCalls", 1.0),
        ("KmsEncryptCalls", 1.0),
        ("KmsErrors", 1.0),
        ("AwsFailovers", 1.0),
        ("DbPoolWaits", 1.0),
        ("DbPoolTimeouts", 1.0),
        ("DbPasswordRotations", 1.0),
        ("HttpServerErrors", 1.0),
    ] {
        assert!(
            total(&lines, name) >= at_least,
            "{name}: {} over {lines:#?}",
            total(&lines, name)
        );
    }
    assert_eq!(lines[0]["AwsSecretsBreakerOpen"], 0);
    assert_eq!(lines[1]["AwsSecretsBreakerOpen"], 1, "{}", lines[1]);
    assert!(
        lines[0]["KmsLatency"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "latencies are individual values: {}",
        lines[0]
    );
    for l in &lines {
        assert_eq!(l["FunctionName"], "hearth-test", "the function's name: {l}");
    }

    // Every metric of the namespace that an alarm or a widget names was written, with the
    // same namespace and dimension set, the dimension bound to the payments function.
    let written = declared(&lines);
    let missing = unwritten(&t, &namespace, &written);
    assert!(
        missing.is_empty(),
        "named in template.yaml but never written by the extension: {missing:#?}\nwritten: {written:#?}"
    );

    // Every metric written is documented.
    let documented = documented_emf_names();
    let undocumented: Vec<&String> = written
        .iter()
        .map(|(_, _, n)| n)
        .filter(|n| !documented.contains(*n))
        .collect();
    assert!(
        undocumented.is_empty(),
        "written but not in docs/deploy.md's metric table: {undocumented:?}"
    );
}

/// The line of invocation n is written when n ends (the Telemetry API's
/// `platform.runtimeDone`), before the extension asks for its next event, so it is in the
/// output while the environment is frozen, before INVOKE n+1 exists, and it carries n's own
/// counters: a miss for the first read, a hit for the second, nothing for none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invocation_writes_its_own_line_before_the_freeze() {
    let _serial = SERIAL.lock().await;
    let moto = Moto::start();
    moto.secrets_client()
        .await
        .create_secret()
        .name("cfg")
        .secret_string("v1")
        .send()
        .await
        .unwrap();
    let mut env = SimEnv::start(&moto.env(), true).await;
    env.start_function(&probe_function(), &moto.env());

    let payloads = [
        json!({"secretId": "cfg"}),
        json!({"secretId": "cfg"}),
        json!({}),
    ];
    let mut held = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let (_, out) = env.invoke(payload.clone()).await;
        if payload.get("secretId").is_some() {
            assert_eq!(out["status"], 200, "{out}");
        }
        let t = Instant::now();
        env.wait_frozen(Duration::from_secs(5)).await;
        held.push(t.elapsed().as_secs_f64() * 1000.0);
        // Frozen: nothing more can be written until the next INVOKE thaws it.
        let lines = emf_lines(&env.extension.output());
        assert_eq!(
            lines.len(),
            i + 1,
            "after invocation {} and before the next INVOKE: {lines:#?}\n{}",
            i + 1,
            env.extension.output()
        );
        let line = &lines[i];
        assert_eq!(line["LifecycleInvokes"], 1, "{line}");
        match i {
            0 => {
                assert_eq!(line["SecretsMisses"], 1, "{line}");
                assert!(line.get("SecretsHits").is_none(), "{line}");
            }
            1 => {
                assert_eq!(line["SecretsHits"], 1, "{line}");
                assert!(line.get("SecretsMisses").is_none(), "{line}");
            }
            _ => {
                assert!(line.get("SecretsHits").is_none(), "{line}");
                assert!(line.get("HttpRequests").is_none(), "{line}");
            }
        }
    }
    // The cost: the extension holds /event/next until the event arrives (the simulator,
    // like Lambda, delivers telemetry within the subscription's 25 ms buffering).
    eprintln!("function response seen -> environment frozen, per invocation: {held:.1?} ms");
}

/// A `platform.runtimeDone` that never arrives holds that one invocation until its deadline
/// (plus a grace), once: the extension then writes, warns, and writes at each INVOKE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_runtime_done_holds_one_invocation_then_lines_come_at_invoke() {
    let _serial = SERIAL.lock().await;
    let mut env = SimEnv::start(&[], false).await;
    env.sim
        .set_telemetry_delivery_policy("platform.runtimeDone", DeliveryPolicy::Suppress)
        .await;
    env.start_function(&probe_function(), &[]);
    env.invoke(json!({})).await;
    // The simulator's deadline is 3 s after the invoke, plus Hearth's 1 s grace.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.extension.output().contains("did not arrive") {
        assert!(
            Instant::now() < deadline,
            "no warning about the missing event:\n{}",
            env.extension.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The line follows the warning.
    assert_eq!(emf_after(&env, 1).await.len(), 1);
    // From now on each INVOKE writes what changed since the last line: invocation 2's
    // figures go out at INVOKE 3, and nothing holds the extension any more.
    env.invoke(json!({})).await;
    env.invoke(json!({})).await;
    let lines = emf_after(&env, 2).await;
    assert_eq!(lines.len(), 2, "{}", env.extension.output());
    assert_eq!(lines[1]["LifecycleInvokes"], 1, "{}", lines[1]);
    let out = env.extension.output();
    assert_eq!(out.matches("did not arrive").count(), 1, "{out}");
}

/// The check itself: with everything the template names counted as written, it passes;
/// rename one metric in one alarm (as a typo or a rename in the code would) and it names
/// that metric and that alarm. Likewise a dimension set that differs.
#[test]
fn a_renamed_metric_or_dimension_is_caught() {
    let t = template();
    let all: BTreeSet<(String, Vec<String>, String)> = uses(&t)
        .into_iter()
        .filter(|u| u.namespace != "AWS/Lambda")
        .map(|u| (u.namespace, vec!["FunctionName".to_string()], u.name))
        .collect();
    assert!(unwritten(&t, "Hearth", &all).is_empty());

    let mut renamed = t.clone();
    let name = renamed["Resources"]["SecretHitRate"]["Properties"]["Metrics"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find_map(|q| q.pointer_mut("/MetricStat/Metric/MetricName"))
        .unwrap();
    *name = json!("SecretHits");
    assert_eq!(
        unwritten(&renamed, "Hearth", &all),
        ["SecretHits (SecretHitRate)"]
    );

    let other_dims: BTreeSet<_> = all
        .iter()
        .map(|(ns, _, n)| {
            (
                ns.clone(),
                vec!["FunctionName".into(), "Region".into()],
                n.clone(),
            )
        })
        .collect();
    assert!(!unwritten(&t, "Hearth", &other_dims).is_empty());
}
