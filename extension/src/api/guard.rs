//! The request guard every request passes: `X-Forwarded-For` rejection, the token check
//! (constant-time), and the request timeout. `GET /health` needs no token, so a function
//! can probe readiness before it knows the token.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth::wire::TOKEN_HEADER;
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

/// The middleware.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    state.http.requests.inc();
    if req.headers().contains_key("x-forwarded-for") {
        return reject(&state, ApiError::ForwardedRequest);
    }
    let is_health = req.uri().path() == "/health" && req.method() == Method::GET;
    if !is_health {
        match req.headers().get(TOKEN_HEADER) {
            None => return reject(&state, ApiError::MissingToken),
            Some(v) if !token_matches(v.as_bytes(), state.config.server.token.as_bytes()) => {
                return reject(&state, ApiError::InvalidToken)
            }
            Some(_) => {}
        }
    }
    let timeout = state.config.server.request_timeout;
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
