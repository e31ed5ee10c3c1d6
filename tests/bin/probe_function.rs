//! A real Lambda function for lifecycle tests. Its first line checks whether the extension
//! already answers `/health` (it must: the extension binds before it registers, and Lambda
//! starts the runtime only after extensions register). Each invocation reports that, and
//! reads a secret (`secretId`) or runs a query (`query`) through the extension when the
//! event asks.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

fn health_now(port: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let port = std::env::var("HEARTH_PORT").unwrap_or_else(|_| "2773".into());
    let health_at_start = health_now(&port);
    let token = std::env::var("AWS_SESSION_TOKEN").unwrap_or_default();
    let http = reqwest::Client::builder().no_proxy().build()?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let http = http.clone();
        let port = port.clone();
        let token = token.clone();
        async move {
            let mut out = json!({ "healthAtStart": health_at_start });
            if let Some(id) = event.payload.get("secretId").and_then(Value::as_str) {
                let r = http
                    .get(format!(
                        "http://127.0.0.1:{port}/secretsmanager/get?secretId={id}"
                    ))
                    .header("X-Aws-Parameters-Secrets-Token", &token)
                    .send()
                    .await?;
                out["status"] = json!(r.status().as_u16());
                out["secret"] = r.json::<Value>().await?;
            }
            if event.payload.get("metrics").is_some() {
                let r = http
                    .get(format!("http://127.0.0.1:{port}/v1/metrics"))
                    .header("X-Aws-Parameters-Secrets-Token", &token)
                    .send()
                    .await?;
                out["metrics"] = r.json::<Value>().await?;
            }
            if let Some(query) = event.payload.get("query") {
                let r = http
                    .post(format!("http://127.0.0.1:{port}/v1/db/query"))
                    .header("X-Aws-Parameters-Secrets-Token", token)
                    .json(query)
                    .send()
                    .await?;
                out["status"] = json!(r.status().as_u16());
                out["result"] = r.json::<Value>().await?;
            }
            Ok::<Value, Error>(out)
        }
    }))
    .await
}
