//! The HTTP API: routes, the request guard, and the handlers.
//!
//! - [`guard`]: token check, `X-Forwarded-For` rejection, request timeout.
//! - [`secrets`]: `GET /secretsmanager/get`, compatible with AWS's secrets extension.
//! - [`parameters`]: `GET /systemsmanager/parameters/get`, compatible with it too.
//! - [`db`]: `POST /v1/db/query` and `/v1/db/transaction`.
//! - [`kms`]: `POST /v1/kms/encrypt`, `/v1/kms/decrypt` and `/v1/kms/data-key`.
//! - [`json`]: the JSON body extractor whose rejections become [`ApiError`]s.

pub mod db;
pub mod guard;
pub mod json;
pub mod kms;
pub mod parameters;
pub mod secrets;

use std::sync::atomic::Ordering;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use hearth::wire::{Health, WarmResponse};
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// Every route the router serves, as (method, path). `openapi.json` at the repository root
/// documents exactly these; a unit test keeps the two in step, and an integration test
/// checks the real binary answers each of them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/secretsmanager/get"),
    ("GET", "/systemsmanager/parameters/get"),
    ("POST", "/v1/db/query"),
    ("POST", "/v1/db/transaction"),
    ("POST", "/v1/kms/encrypt"),
    ("POST", "/v1/kms/decrypt"),
    ("POST", "/v1/kms/data-key"),
    ("GET", "/v1/metrics"),
    ("POST", "/v1/warm"),
];

/// Builds the router with every route and layer.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes.get();
    Router::new()
        .route("/health", get(health))
        .route("/secretsmanager/get", get(secrets::get))
        .route("/systemsmanager/parameters/get", get(parameters::get))
        .route("/v1/db/query", post(db::query))
        .route("/v1/db/transaction", post(db::transaction))
        .route("/v1/kms/encrypt", post(kms::encrypt))
        .route("/v1/kms/decrypt", post(kms::decrypt))
        .route("/v1/kms/data-key", post(kms::data_key))
        .route("/v1/metrics", get(metrics))
        .route("/v1/warm", post(warm))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        prewarmed: state.prewarmed.load(Ordering::Acquire),
    })
}

async fn metrics(State(state): State<AppState>) -> Json<Value> {
    if let Some(db) = &state.db {
        db.publish();
    }
    Json(state.metrics.snapshot())
}

async fn warm(State(state): State<AppState>) -> Json<WarmResponse> {
    Json(crate::prewarm::prewarm(&state).await)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn openapi_documents_exactly_the_routes() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json"))
            .unwrap_or_default();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            for method in ops
                .as_object()
                .into_iter()
                .flatten()
                .map(|(m, _)| m.to_uppercase())
            {
                documented.insert((method, path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = super::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
    }
}
