//! The one place where errors become HTTP responses.
//!
//! Every handler returns `Result<_, ApiError>`; each domain error (secrets, KMS, database)
//! converts into [`ApiError`], and [`ApiError::status`] / [`ApiError::code`] decide what the
//! caller sees: `{"error":{"code":"...","message":"..."}}`. Messages tell the user what to
//! do; they never carry a secret value, a plaintext key or a password.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth::wire::{ErrorBody, ErrorDetail};

use crate::kms::KmsError;
use crate::parameters::ParametersError;
use crate::secrets::SecretsError;
use hearth_db::DbError;

/// Every error the HTTP API can return.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token header.
    #[error("missing X-Aws-Parameters-Secrets-Token header; send the value of AWS_SESSION_TOKEN")]
    MissingToken,
    /// Token header present but wrong.
    #[error("the X-Aws-Parameters-Secrets-Token header does not match this environment's token")]
    InvalidToken,
    /// `X-Forwarded-For` present: the request was relayed, which a loopback API never needs.
    #[error("X-Forwarded-For is not accepted: this API serves the local function only")]
    ForwardedRequest,
    /// Unknown path.
    #[error("no such endpoint: {0}; see the HTTP API table in the README")]
    NotFound(String),
    /// Known path, wrong method.
    #[error("method not allowed for this endpoint")]
    MethodNotAllowed,
    /// Body over the configured cap.
    #[error("request body exceeds {limit} bytes (HEARTH_MAX_BODY_BYTES)")]
    PayloadTooLarge {
        /// The cap.
        limit: usize,
    },
    /// Body is not JSON or not the expected shape.
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// Body is not `application/json`.
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    /// A request field or query parameter is invalid.
    #[error("{message}")]
    InvalidRequest {
        /// Stable code, e.g. `InvalidParameter`.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The client sent its body too slowly: a slow client, not a slow upstream.
    #[error("the request body did not arrive within HEARTH_REQUEST_TIMEOUT; send the whole body at once")]
    ClientTimeout,
    /// The request head is over the configured cap.
    #[error("request head exceeds {limit} bytes (HEARTH_MAX_HEADER_BYTES); send fewer or shorter headers")]
    HeaderTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The request could not be read as HTTP/1.1 (bad request line, header or chunking).
    #[error(
        "malformed HTTP request; send HTTP/1.1 with a valid request line, headers and body framing"
    )]
    MalformedRequest,
    /// The request took longer than HEARTH_REQUEST_TIMEOUT.
    #[error("the request did not complete within HEARTH_REQUEST_TIMEOUT")]
    RequestTimeout,
    /// A feature that is not configured.
    #[error("{0}")]
    NotConfigured(String),
    /// Secrets Manager or the secrets cache.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Parameter Store or the parameters cache.
    #[error(transparent)]
    Parameters(#[from] ParametersError),
    /// The database pool or a statement.
    #[error(transparent)]
    Db(#[from] DbError),
    /// KMS, the data-key caches or the message format.
    #[error(transparent)]
    Kms(#[from] KmsError),
}

impl ApiError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken => StatusCode::UNAUTHORIZED,
            ApiError::InvalidToken => StatusCode::FORBIDDEN,
            ApiError::ForwardedRequest => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MalformedJson(_) | ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MalformedRequest => StatusCode::BAD_REQUEST,
            ApiError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Secrets(e) => match e {
                SecretsError::NotFound { .. } => StatusCode::NOT_FOUND,
                SecretsError::AccessDenied { .. } | SecretsError::DecryptionFailure { .. } => {
                    StatusCode::FORBIDDEN
                }
                SecretsError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
                SecretsError::Throttled => StatusCode::TOO_MANY_REQUESTS,
                SecretsError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                SecretsError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                SecretsError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            },
            ApiError::Parameters(e) => {
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Db(e) => {
                StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Kms(e) => match e {
                _ if e.is_bad_input() => StatusCode::BAD_REQUEST,
                KmsError::KeyNotFound { .. } => StatusCode::NOT_FOUND,
                KmsError::AccessDenied { .. } | KmsError::KeyNotAllowed { .. } => {
                    StatusCode::FORBIDDEN
                }
                KmsError::KeyUnusable { .. } => StatusCode::CONFLICT,
                KmsError::Throttled => StatusCode::TOO_MANY_REQUESTS,
                KmsError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                KmsError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "MissingToken",
            ApiError::InvalidToken => "InvalidToken",
            ApiError::ForwardedRequest => "ForwardedRequestRejected",
            ApiError::NotFound(_) => "NotFound",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::PayloadTooLarge { .. } => "PayloadTooLarge",
            ApiError::MalformedJson(_) => "MalformedJson",
            ApiError::UnsupportedMediaType => "UnsupportedMediaType",
            ApiError::InvalidRequest { code, .. } => code,
            ApiError::RequestTimeout => "RequestTimeout",
            ApiError::ClientTimeout => "ClientTimeout",
            ApiError::HeaderTooLarge { .. } => "HeaderTooLarge",
            ApiError::MalformedRequest => "MalformedRequest",
            ApiError::NotConfigured(_) => "NotConfigured",
            ApiError::Secrets(e) => e.code(),
            ApiError::Parameters(e) => e.code(),
            ApiError::Kms(e) => e.code(),
            ApiError::Db(e) => e.code(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut detail = ErrorDetail::new(self.code(), self.to_string());
        if let ApiError::Db(e) = &self {
            detail.sqlstate = e.sqlstate().map(str::to_owned);
            detail.committed = e.committed();
            if let Some(server) = e.server() {
                detail.constraint = server.constraint.clone();
                detail.table = server.table.clone();
                detail.column = server.column.clone();
            }
        }
        let body = ErrorBody { error: detail };
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_stable() {
        assert_eq!(ApiError::MissingToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::InvalidToken.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ApiError::PayloadTooLarge { limit: 1 }.code(),
            "PayloadTooLarge"
        );
        let e: ApiError = SecretsError::NotFound {
            secret_id: "x".into(),
        }
        .into();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::NOT_FOUND, "SecretNotFound")
        );
    }

    #[test]
    fn kms_statuses() {
        let cases = [
            (KmsError::ContextMismatch, 400, "ContextMismatch"),
            (KmsError::KeyIdRequired, 400, "KeyIdRequired"),
            (KmsError::InvalidCiphertext, 400, "InvalidCiphertext"),
            (
                hearth_esdk::Error::UnsupportedSuite(0x0178).into(),
                400,
                "UnsupportedAlgorithm",
            ),
            (
                KmsError::AccessDenied { key_id: "k".into() },
                403,
                "AccessDenied",
            ),
            (
                KmsError::KeyNotFound { key_id: "k".into() },
                404,
                "KeyNotFound",
            ),
            (KmsError::Throttled, 429, "Throttled"),
            (
                KmsError::Unavailable { reason: "r".into() },
                503,
                "UpstreamUnavailable",
            ),
            (KmsError::Timeout, 504, "UpstreamTimeout"),
            (
                KmsError::Upstream {
                    message: "m".into(),
                },
                502,
                "UpstreamError",
            ),
        ];
        for (e, status, code) in cases {
            let e = ApiError::from(e);
            assert_eq!((e.status().as_u16(), e.code()), (status, code));
        }
    }
}
