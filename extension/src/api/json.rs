//! A JSON body extractor whose rejections are [`ApiError`]s, so malformed bodies, wrong
//! content types and oversized bodies get the same JSON error shape as everything else.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// `axum::Json`, with rejections mapped to [`ApiError`].
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(map_rejection(
                &rejection,
                state.config.server.max_body_bytes.get(),
            )),
        }
    }
}

fn map_rejection(r: &JsonRejection, limit: usize) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
        other => ApiError::MalformedJson(redact_values(&other.body_text())),
    }
}

/// serde names the offending field and position, which helps; for a type mismatch it also
/// quotes the value (`invalid type: string "4111..."`), which may be a secret. Mask those.
fn redact_values(msg: &str) -> String {
    if !(msg.contains("invalid type")
        || msg.contains("invalid value")
        || msg.contains("invalid length"))
    {
        return msg.to_string();
    }
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    quote = Some(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_mismatch_values_are_masked() {
        let m = redact_values(
            "plaintext: invalid type: string \"4111111111111111\", expected u64 at line 1",
        );
        assert!(!m.contains("4111"), "{m}");
        assert!(m.contains("plaintext"), "{m}");
        let m = redact_values("unknown field `tennant`, expected one of `sql`");
        assert!(m.contains("tennant"), "{m}");
    }
}
