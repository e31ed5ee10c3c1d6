//! Prewarm: fetch what the first invocation will need while the function initialises.
//! Failures are logged and counted, never fatal: the request path fetches on demand.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hearth::wire::WarmResponse;

use crate::secrets::SecretKey;
use crate::state::AppState;

/// Warms every configured cache, concurrently. Used at init and by `POST /v1/warm`.
pub async fn prewarm(state: &AppState) -> WarmResponse {
    let started = Instant::now();
    let mut warmed = BTreeMap::new();
    let mut errors = Vec::new();

    // Started first so the GenerateDataKey overlaps the secret fetches.
    let data_key = {
        let kms = state.kms.clone();
        tokio::spawn(async move { kms.warm().await })
    };

    let pool = state
        .db
        .clone()
        .map(|db| tokio::spawn(async move { db.warm().await }));

    let fetches = state.config.secrets.cache.prefetch.iter().map(|id| {
        let cache = state.secrets.clone();
        let key = SecretKey::current(id.clone());
        async move { (key.secret_id.clone(), cache.get(&key, false).await) }
    });
    let parameters = {
        let cache = state.parameters.clone();
        let names = state.config.parameters.cache.prefetch.clone();
        async move { cache.prefetch(&names).await }
    };
    let (secret_results, (params_ok, param_problems)) =
        futures::future::join(futures::future::join_all(fetches), parameters).await;
    for (name, code) in param_problems {
        tracing::warn!(name = %name, code, "parameter prefetch failed; the first read will fetch");
        errors.push(format!("parameter {name}: {code}"));
    }
    if !state.config.parameters.cache.prefetch.is_empty() {
        warmed.insert("parameters".to_string(), params_ok);
    }
    let mut ok = 0u64;
    for (id, res) in secret_results {
        match res {
            Ok(_) => ok += 1,
            Err(e) => {
                tracing::warn!(secret_id = %id, code = e.code(), "prefetch failed; the first read will fetch");
                errors.push(format!("secret {id}: {}", e.code()));
            }
        }
    }
    warmed.insert("secrets".to_string(), ok);

    match data_key.await.unwrap_or(Ok(false)) {
        Ok(true) => {
            warmed.insert("dataKeys".to_string(), 1);
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(
                code = e.code(),
                "data key prewarm failed; the first encrypt will generate one"
            );
            errors.push(format!("data key: {}", e.code()));
        }
    }

    if let Some(pool) = pool {
        match pool.await {
            Ok(Ok(n)) => {
                warmed.insert("dbConnections".to_string(), n as u64);
            }
            Ok(Err(e)) => {
                // A privileged role is refused here, at start, with the reason in the log.
                tracing::error!(code = e.code(), error = %e, "database prewarm failed");
                errors.push(format!("database: {}", e.code()));
            }
            Err(_) => errors.push("database: prewarm task failed".to_string()),
        }
    }

    state.prewarmed.store(true, Ordering::Release);
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    state.metrics.counter("prewarm.runs").inc();
    WarmResponse {
        warmed,
        errors,
        duration_ms,
    }
}
