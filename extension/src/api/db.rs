//! `POST /v1/db/query` and `POST /v1/db/transaction`: statements under the request's
//! tenant (Row-Level Security), through the pooled connections.

use axum::extract::State;
use axum::Json;
use hearth::wire::{QueryRequest, QueryResponse, TransactionRequest, TransactionResponse};

use super::json::ApiJson;
use crate::database::Database;
use crate::error::ApiError;
use crate::state::AppState;

fn pool(state: &AppState) -> Result<&Database, ApiError> {
    state.db.as_deref().ok_or_else(|| {
        ApiError::NotConfigured(
            "the database is not configured: set HEARTH_DB_SECRET_ID on the function".into(),
        )
    })
}

/// One statement.
pub async fn query(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<QueryResponse>, ApiError> {
    Ok(Json(pool(&state)?.query(&req).await?))
}

/// Several statements, all or nothing.
pub async fn transaction(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TransactionRequest>,
) -> Result<Json<TransactionResponse>, ApiError> {
    Ok(Json(pool(&state)?.transaction(&req).await?))
}
