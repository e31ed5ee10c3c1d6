//! The function's errors, answered as `{"error":{"code","message"}}` (the same shape as
//! the extension's errors). Messages name fields, never their values: a request may carry
//! a card number.

use serde_json::{json, Value};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The event is malformed or a field is invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// No payment with this id for this tenant (also when it belongs to another tenant:
    /// Row-Level Security hides it, and the answer must not tell the two apart).
    #[error("no payment {0} for this tenant")]
    NotFound(String),
    /// The stored card data does not decrypt to what the row says (tampered or misfiled).
    #[error("stored card data failed its integrity check")]
    Integrity,
    /// Hearth (or what it fronts: KMS, the database) failed.
    #[error("dependency failed: {0}")]
    Dependency(#[from] hearth::client::Error),
}

impl PaymentError {
    /// Stable code.
    pub fn code(&self) -> &str {
        match self {
            PaymentError::InvalidRequest(_) => "InvalidRequest",
            PaymentError::NotFound(_) => "PaymentNotFound",
            PaymentError::Integrity => "IntegrityError",
            PaymentError::Dependency(e) if e.is_transient() => "ServiceUnavailable",
            PaymentError::Dependency(_) => "DependencyError",
        }
    }

    /// The response body.
    pub fn to_json(&self) -> Value {
        let mut detail = json!({"code": self.code(), "message": self.to_string()});
        if let PaymentError::Dependency(e) = self {
            if let Some(code) = e.code() {
                detail["cause"] = json!(code);
            }
        }
        json!({ "error": detail })
    }
}

/// Shorthand for [`PaymentError::InvalidRequest`].
pub fn invalid(message: impl Into<String>) -> PaymentError {
    PaymentError::InvalidRequest(message.into())
}
