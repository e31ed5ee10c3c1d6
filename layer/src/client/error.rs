//! The client's error type: what the extension answered (its JSON error code and HTTP
//! status), or why no answer arrived.

use std::time::Duration;

/// Everything a [`crate::Client`] call can fail with.
///
/// Messages never contain a secret value, a plaintext or a token: the extension's own
/// messages are free of them by contract, and this crate's messages name fields, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The extension answered with an error: `{"error":{"code","message"}}` and `status`.
    #[error("hearth extension returned {status} {code}: {message}")]
    Api {
        /// HTTP status, e.g. 404.
        status: u16,
        /// The stable code, e.g. `SecretNotFound`, `ContextMismatch`, `TenantRequired`.
        code: String,
        /// The extension's message (tells the user what to do).
        message: String,
    },
    /// The request did not get an answer: connection refused, reset, closed early.
    #[error("cannot reach the hearth extension at {addr}: {reason}")]
    Transport {
        /// `127.0.0.1:PORT`.
        addr: String,
        /// What the transport reported.
        reason: String,
        /// Whether the request may have reached the extension (it was written, or partly):
        /// a non-idempotent request (a database write) may then have been executed.
        maybe_sent: bool,
    },
    /// No answer within the client's timeout.
    #[error("the hearth extension did not answer within {0:?}")]
    Timeout(Duration),
    /// The extension answered, but not in the expected shape (wrong version, not Hearth).
    #[error("unexpected response from the hearth extension (status {status}): {reason}")]
    Decode {
        /// HTTP status of the answer.
        status: u16,
        /// What did not match; names fields, never values.
        reason: String,
    },
    /// Client configuration is invalid (a variable or a builder setting).
    #[error("invalid hearth client configuration: {variable}: {message}")]
    Config {
        /// Variable or setting name, e.g. `HEARTH_PORT`.
        variable: &'static str,
        /// What is accepted.
        message: String,
    },
    /// The secret holds something other than what was asked for (binary instead of a
    /// string, or a string that is not JSON of the requested shape).
    #[error("secret {secret_id:?}: {reason}")]
    SecretFormat {
        /// The secret asked for.
        secret_id: String,
        /// What is wrong; never the value.
        reason: String,
    },
}

impl Error {
    /// The extension's error code (`SecretNotFound`, `MissingToken`, ...), when it answered
    /// with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when the extension answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the extension answered 404 (unknown secret, key or endpoint).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the error is worth retrying later: the extension was unreachable, timed out,
    /// was overloaded, or an upstream it depends on was unavailable.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout(_) => true,
            Error::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let e = Error::Api {
            status: 404,
            code: "SecretNotFound".into(),
            message: "m".into(),
        };
        assert_eq!(e.code(), Some("SecretNotFound"));
        assert!(e.is_not_found());
        assert!(!e.is_transient());
        assert!(Error::Timeout(Duration::from_secs(1)).is_transient());
        assert_eq!(Error::Timeout(Duration::from_secs(1)).code(), None);
    }
}
