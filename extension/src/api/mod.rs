//! The HTTP API: routes, the request guard, and the handlers.
//!
//! - [`guard`]: token check, `X-Forwarded-For` rejection, request timeout.
//! - [`secrets`]: `GET /secretsmanager/get`, compatible with AWS's secrets extension.
//! - [`db`]: `POST /v1/db/query` and `/v1/db/transaction`.
//! - [`kms`]: `POST /v1/kms/encrypt`, `/v1/kms/decrypt` and `/v1/kms/data-key`.
//! - [`json`]: the JSON body extractor whose rejections become [`ApiError`]s.

pub mod db;
pub mod guard;
pub mod json;
pub mod kms;
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

/// Builds the router with every route and layer.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes.get();
    Router::new()
        .route("/health", get(health))
        .route("/secretsmanager/get", get(secrets::get))
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
