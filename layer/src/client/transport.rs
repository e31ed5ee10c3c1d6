//! Sending one request over the keep-alive pool, with the one retry that a Lambda freeze
//! makes necessary, and turning the answer into a value or an [`Error`].
//!
//! # Why one retry, and when
//!
//! Lambda freezes the whole environment between invocations. A pooled connection may have
//! been closed by the extension meanwhile (its idle or header-read limit), and the client
//! learns that only when it writes the next request. hyper-util's pool already retries a
//! request that was never written (the connection was found closed at checkout). What is
//! left is a request written on a connection that then closes before any byte of a response
//! arrives: the extension may or may not have seen it. Idempotent operations are retried
//! once; non-idempotent ones (`/v1/db/query`, `/v1/db/transaction`, which may write) only
//! when hyper reports the request was never sent. Nothing is retried once a response began.

use std::error::Error as _;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;

use super::error::Error;
use super::Inner;
use crate::wire::{ErrorBody, TOKEN_HEADER};

/// Whether repeating a request is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, encryption, key hand-out, warm: repeating has no effect the caller can see.
    Idempotent,
    /// May write (database statements): retried only when surely not sent.
    NotIdempotent,
}

/// How a failed attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The request was never written (closed pooled connection, refused connect).
    NotSent,
    /// Written, then the connection closed or reset before any response byte.
    NoResponse,
}

/// One request description; cheap to repeat (the body is a shared `Bytes`).
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub body: Option<Bytes>,
    pub auth: bool,
    pub idempotency: Idempotency,
}

impl Inner {
    /// Sends `call`, returning status and body bytes (retrying once, see the module docs).
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<(StatusCode, Bytes), Error> {
        let deadline = Instant::now() + self.timeout;
        let attempt = async {
            let mut retried = false;
            loop {
                match self.attempt(call).await {
                    Ok(r) => return Ok(r),
                    Err((failure, err)) => {
                        let retry = !retried
                            && match failure {
                                Some(Failure::NotSent) => true,
                                Some(Failure::NoResponse) => {
                                    call.idempotency == Idempotency::Idempotent
                                }
                                None => false,
                            };
                        if !retry {
                            return Err(err);
                        }
                        retried = true;
                    }
                }
            }
        };
        match tokio::time::timeout_at(deadline.into(), attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
    ) -> Result<(StatusCode, Bytes), (Option<Failure>, Error)> {
        let uri = format!("http://{}{}", self.authority, call.path_and_query);
        let mut req = Request::builder().method(call.method.clone()).uri(uri);
        if call.auth {
            if let Some(t) = &self.token {
                req = req.header(TOKEN_HEADER, t.clone());
            }
        }
        if call.body.is_some() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let req = req
            .body(Full::new(call.body.clone().unwrap_or_default()))
            .map_err(|e| {
                (
                    None,
                    Error::Config {
                        variable: "request",
                        message: e.to_string(),
                    },
                )
            })?;
        let resp = match self.http.request(req).await {
            Ok(r) => r,
            Err(e) => {
                let failure = classify(&e);
                return Err((
                    failure,
                    Error::Transport {
                        addr: self.addr.clone(),
                        reason: describe(&e),
                        maybe_sent: failure != Some(Failure::NotSent),
                    },
                ));
            }
        };
        let status = resp.status();
        let body = Limited::new(resp.into_body(), self.max_response_bytes)
            .collect()
            .await
            .map_err(|e| {
                (
                    None,
                    Error::Transport {
                        addr: self.addr.clone(),
                        reason: format!("reading the response body: {e}"),
                        maybe_sent: true,
                    },
                )
            })?
            .to_bytes();
        Ok((status, body))
    }
}

/// Where in the exchange a pool error happened.
fn classify(e: &hyper_util::client::legacy::Error) -> Option<Failure> {
    if e.is_connect() {
        return Some(Failure::NotSent);
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_canceled() {
                return Some(Failure::NotSent);
            }
            if h.is_incomplete_message() {
                return Some(Failure::NoResponse);
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return Some(Failure::NoResponse);
            }
        }
        source = s.source();
    }
    None
}

/// The error and its causes on one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Decodes a success body as `T`, or an error body as [`Error::Api`].
pub(crate) fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, Error> {
    if status.is_success() {
        serde_json::from_slice(body).map_err(|e| Error::Decode {
            status: status.as_u16(),
            reason: json_error(std::any::type_name::<T>(), &e),
        })
    } else {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => Err(Error::Api {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
            }),
            Err(e) => Err(Error::Decode {
                status: status.as_u16(),
                reason: json_error("error body", &e),
            }),
        }
    }
}

/// A serde_json error without its text: for type mismatches that text quotes the value,
/// which may be a secret. Category and position are enough to debug a shape mismatch.
pub(crate) fn json_error(what: &str, e: &serde_json::Error) -> String {
    format!(
        "{what}: {:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters kept).
pub(crate) fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query_value("db/prod creds"), "db%2Fprod%20creds");
        assert_eq!(
            encode_query_value("arn:aws:secretsmanager:us-east-1:1:secret:x+y&z=é"),
            "arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A1%3Asecret%3Ax%2By%26z%3D%C3%A9"
        );
    }

    #[test]
    fn decode_error_body_and_mismatch() {
        let e = decode::<serde_json::Value>(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"SecretNotFound","message":"no"}}"#,
        )
        .unwrap_err();
        assert_eq!((e.status(), e.code()), (Some(404), Some("SecretNotFound")));
        let e =
            decode::<crate::wire::Health>(StatusCode::OK, br#"{"status":"hunter2"}"#).unwrap_err();
        assert!(matches!(e, Error::Decode { status: 200, .. }), "{e}");
        let e =
            decode::<crate::wire::EncryptResponse>(StatusCode::OK, br#"{"ciphertext":12345678}"#)
                .unwrap_err();
        assert!(!e.to_string().contains("12345678"), "{e}");
        let e = decode::<serde_json::Value>(StatusCode::BAD_GATEWAY, b"<html>").unwrap_err();
        assert!(matches!(e, Error::Decode { status: 502, .. }), "{e}");
    }
}
