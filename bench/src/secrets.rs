//! Cached secret read through Hearth (keep-alive HTTP) against a direct `GetSecretValue`
//! per request (the AWS SDK, one client built once, against moto).

use hearth_tests::hearth::TOKEN;

use crate::client::Http;
use crate::peers::{secret_value, Peers, SECRET_ID};
use crate::report::{Comparison, Row};
use crate::stats::{measure, Budget};

/// The request path of the cached read.
pub fn path() -> String {
    format!(
        "/secretsmanager/get?secretId={}",
        SECRET_ID.replace('/', "%2F")
    )
}

/// Runs the comparison.
pub async fn run(p: &Peers, quick: bool) -> Result<Comparison, String> {
    let scale = if quick { 20 } else { 1 };
    let mut http = Http::connect(p.hearth.port, Some(TOKEN)).await?;
    let first = http.get_ok(&path()).await?;
    let v: serde_json::Value = serde_json::from_slice(&first).map_err(|e| e.to_string())?;
    if v["SecretString"].as_str() != Some(secret_value().as_str()) {
        return Err(format!("Hearth returned the wrong secret: {v}"));
    }
    let mut st = (http, path());
    let hearth = measure(
        Budget::new(1000, 20_000, 10).scaled(scale),
        &mut st,
        |(http, path), _| Box::pin(async move { http.get_ok(path).await.map(|_| ()) }),
    )
    .await?;
    drop(st);

    let sm = p.moto.secrets_client().await;
    let direct = measure(Budget::new(10, 300, 10).scaled(scale), &mut (), |_, _| {
        let sm = sm.clone();
        Box::pin(async move {
            sm.get_secret_value()
                .secret_id(SECRET_ID)
                .send()
                .await
                .map_err(|e| format!("GetSecretValue: {e:?}"))
                .map(|_| ())
        })
    })
    .await?;

    Ok(Comparison {
        id: "secret_read".into(),
        title: "Secret read: Hearth's cache vs GetSecretValue per request".into(),
        baseline: 1,
        rows: vec![
            Row::new(
                "Hearth, cached (keep-alive HTTP/1.1)",
                hearth,
                "GET /secretsmanager/get with the token header, one connection",
            ),
            Row::new(
                "direct GetSecretValue per request (AWS SDK → moto)",
                direct,
                "one SDK client, built once; moto's latency, not AWS's",
            ),
        ],
        notes: vec![],
    })
}
