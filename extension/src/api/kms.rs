//! `POST /v1/kms/encrypt`, `/v1/kms/decrypt` and `/v1/kms/data-key`: thin handlers over
//! [`crate::kms::KmsService`]; bodies are the wire types shared with the client crate.

use axum::extract::State;
use axum::Json;
use hearth::wire::{
    DataKeyRequest, DataKeyResponse, DecryptRequest, DecryptResponse, EncryptRequest,
    EncryptResponse,
};

use super::json::ApiJson;
use crate::error::ApiError;
use crate::state::AppState;

/// Encrypts a plaintext into an AWS Encryption SDK message.
pub async fn encrypt(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EncryptRequest>,
) -> Result<Json<EncryptResponse>, ApiError> {
    Ok(Json(state.kms.encrypt(req).await?))
}

/// Decrypts an AWS Encryption SDK message.
pub async fn decrypt(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DecryptRequest>,
) -> Result<Json<DecryptResponse>, ApiError> {
    Ok(Json(state.kms.decrypt(req).await?))
}

/// Hands out the partition's current data key for callers that do their own crypto.
pub async fn data_key(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DataKeyRequest>,
) -> Result<Json<DataKeyResponse>, ApiError> {
    Ok(Json(state.kms.data_key(req).await?))
}
