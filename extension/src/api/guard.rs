//! The request guard every request passes: `X-Forwarded-For` rejection, the token check
//! (constant-time), the head and body limits, and the request timeout. `GET /health` needs
//! no token, so a function can probe readiness before it knows the token.
//!
//! The body is read here, whole and bounded, before any handler runs: a body announced
//! over the limit gets 413 at once (never a wait for bytes that will not be read), a body
//! that arrives too slowly gets 408 (a slow client is not an upstream timeout), and no
//! answer ever leaves a body unread on a keep-alive connection (a 404 or 405 for a
//! request with a body would otherwise break the connection's next request). An answer
//! that does leave bytes unread says `Connection: close`.

use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth::wire::TOKEN_HEADER;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use subtle::ConstantTimeEq;

use std::sync::Arc;

use crate::error::ApiError;
use crate::metrics::{Counter, Latency, Metrics};
use crate::state::AppState;

/// Whether `presented` equals `expected`, in time independent of where they differ.
/// (Lengths may differ in time; a session token's length is not a secret.)
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    presented.ct_eq(expected).into()
}

/// The guard's metric handles, looked up once at init: a lookup by name takes the
/// registry's lock, which the hot path should not (bench/PROFILING.md).
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Arc<Counter>,
    rejected: Arc<Counter>,
    errors: Arc<Counter>,
    server_errors: Arc<Counter>,
    latency: Arc<Latency>,
}

impl HttpMetrics {
    /// Registers the handles.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.counter("http.requests"),
            rejected: metrics.counter("http.rejected"),
            errors: metrics.counter("http.errors"),
            server_errors: metrics.counter("http.server_errors"),
            latency: metrics.latency("http.latency"),
        }
    }
}

/// The size of a request head as sent: request line and header lines.
fn head_size(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
        + 2
}

/// The middleware.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state.http.requests.inc();
    let server = &state.config.server;
    let has_body = !req.body().is_end_stream();
    if head_size(&req) > server.max_header_bytes.get() {
        let limit = server.max_header_bytes.get();
        return closing(reject(&state, ApiError::HeaderTooLarge { limit }), has_body);
    }
    if req.headers().contains_key("x-forwarded-for") {
        return closing(reject(&state, ApiError::ForwardedRequest), has_body);
    }
    let is_health = req.uri().path() == "/health" && req.method() == Method::GET;
    if !is_health {
        match req.headers().get(TOKEN_HEADER) {
            None => return closing(reject(&state, ApiError::MissingToken), has_body),
            Some(v) if !token_matches(v.as_bytes(), server.token.as_bytes()) => {
                return closing(reject(&state, ApiError::InvalidToken), has_body)
            }
            Some(_) => {}
        }
    }
    let timeout = server.request_timeout;
    let req = if has_body {
        match read_body(req, server.max_body_bytes.get(), timeout).await {
            Ok(req) => req,
            Err(e) => return closing(reject(&state, e), true),
        }
    } else {
        req
    };
    let started = std::time::Instant::now();
    let resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::RequestTimeout.into_response(),
    };
    state.http.latency.record(started.elapsed());
    if resp.status().is_client_error() || resp.status().is_server_error() {
        state.http.errors.inc();
    }
    if resp.status().is_server_error() {
        // Apart from http.errors: a 4xx is the caller's mistake, a 5xx is Hearth's or an
        // upstream's, and only that one is worth an alarm.
        state.http.server_errors.inc();
    }
    resp
}

fn reject(state: &AppState, e: ApiError) -> Response {
    state.http.rejected.inc();
    e.into_response()
}

/// With `unread` (bytes of the request may still be on the wire): tells the client, and
/// hyper, that the connection ends with this answer.
fn closing(mut resp: Response, unread: bool) -> Response {
    if unread {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Reads the whole body, at most `limit` bytes, within `timeout`, and puts it back as a
/// buffered body (the JSON handlers read it whole anyway).
async fn read_body(req: Request, limit: usize, timeout: Duration) -> Result<Request, ApiError> {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    match collected {
        Err(_) => Err(ApiError::ClientTimeout),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Ok(Err(_)) => Err(ApiError::MalformedRequest),
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes.to_bytes()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(token_matches(b"abc", b"abc"));
        assert!(!token_matches(b"abd", b"abc"));
        assert!(!token_matches(b"ab", b"abc"));
        assert!(!token_matches(b"", b"abc"));
    }
}
