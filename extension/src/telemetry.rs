//! When an invocation ends, from the Lambda Telemetry API: the only signal an extension gets
//! that the function has returned (the Extensions API says only when the next one starts).
//!
//! The extension subscribes to `platform` events at init (a listener of its own, bound
//! before the subscription, so the first batch never meets "connection refused"). Each
//! `platform.runtimeDone` marks its request id done in [`InvocationEnds`]; the INVOKE
//! handler waits for its own request id there, writes that invocation's EMF line, and only
//! then returns to `/event/next`. Lambda freezes the environment once the runtime has
//! answered and every extension has called `/event/next`, so the line is out before the
//! freeze, not at the next thaw.
//!
//! No AWS API call is made: the events come over loopback (the sandbox's own address).
//! Where the Telemetry API is missing (AWS's Runtime Interface Emulator, other emulators)
//! the subscription fails, which is logged once, and the lifecycle writes EMF at the next
//! INVOKE instead. A `platform.runtimeDone` that does not arrive by the invocation's
//! deadline (plus [`GRACE`]) switches to that fallback for good, so a lost event never
//! holds an environment twice.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Json;
use serde::Deserialize;
use tokio::sync::Notify;

/// How long after an invocation's deadline `platform.runtimeDone` may still arrive: Lambda
/// buffers telemetry for the subscription's `timeoutMs` (25 ms here) and then posts it.
pub const GRACE: Duration = Duration::from_secs(1);

/// Telemetry buffering: Lambda's minimum delay (25 ms) and minimum batch bounds, so the
/// event comes as soon as Lambda allows.
const BUFFER_TIMEOUT_MS: u64 = 25;
const BUFFER_MAX_ITEMS: u64 = 1_000;
const BUFFER_MAX_BYTES: u64 = 262_144;
/// Largest batch body accepted (Lambda's `maxBytes` bound plus headroom for the framing).
const MAX_BATCH_BYTES: usize = 1_048_576;
/// Request ids remembered as done: a runtimeDone may land before its INVOKE is handled.
const REMEMBERED: usize = 64;
/// Bound on the subscription call at init.
/// Connections the telemetry listener serves at once (Lambda uses one or two).
const TELEMETRY_CONNECTIONS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(4) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The invocations the Telemetry API reported done, and a way to wait for one.
#[derive(Debug, Default)]
pub struct InvocationEnds {
    done: Mutex<VecDeque<String>>,
    notify: Notify,
    /// Set after a runtimeDone failed to arrive: the lifecycle stops waiting.
    unreliable: AtomicBool,
}

impl InvocationEnds {
    /// Marks `request_id` done and wakes its waiter.
    pub fn record(&self, request_id: &str) {
        let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() >= REMEMBERED {
            d.pop_front();
        }
        d.push_back(request_id.to_owned());
        drop(d);
        self.notify.notify_waiters();
    }

    fn take(&self, request_id: &str) -> bool {
        let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match d.iter().position(|r| r == request_id) {
            Some(i) => {
                d.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether waiting is still worth it (no runtimeDone has gone missing).
    pub fn reliable(&self) -> bool {
        !self.unreliable.load(Ordering::Relaxed)
    }

    /// Waits until `request_id` is reported done or `until` passes. Returns whether it was
    /// reported; on a timeout the waiting is switched off for later invocations.
    pub async fn wait(&self, request_id: &str, until: Instant) -> bool {
        loop {
            // Registered before the check, so a record() in between is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.take(request_id) {
                return true;
            }
            if tokio::time::timeout_at(tokio::time::Instant::from_std(until), notified)
                .await
                .is_err()
            {
                if self.take(request_id) {
                    return true;
                }
                self.unreliable.store(true, Ordering::Relaxed);
                return false;
            }
        }
    }
}

/// One Telemetry API event; only the fields read here.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    record: serde_json::Value,
}

async fn receive(
    State(ends): State<Arc<InvocationEnds>>,
    Json(events): Json<Vec<Event>>,
) -> axum::http::StatusCode {
    for e in events {
        if e.kind == "platform.runtimeDone" {
            if let Some(id) = e.record.get("requestId").and_then(|v| v.as_str()) {
                ends.record(id);
            }
        }
    }
    axum::http::StatusCode::OK
}

/// Where to listen, and the host to name in the subscription: `sandbox.localdomain` (what
/// Lambda documents and resolves inside the sandbox) when it resolves, else loopback.
async fn listen_addr() -> (SocketAddr, &'static str) {
    let lookup = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::lookup_host("sandbox.localdomain:0"),
    )
    .await;
    if let Ok(Ok(mut addrs)) = lookup {
        if let Some(a) = addrs.find(SocketAddr::is_ipv4) {
            return (a, "sandbox.localdomain");
        }
    }
    (SocketAddr::from(([127, 0, 0, 1], 0)), "127.0.0.1")
}

/// Starts the listener and subscribes to `platform` events. Call once, after registering
/// and before the first `/event/next` (Lambda accepts subscriptions only during init).
pub async fn subscribe(extension_id: &str) -> Result<Arc<InvocationEnds>, String> {
    let (addr, host) = listen_addr().await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for telemetry: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("telemetry listener: {e}"))?
        .port();
    let ends = Arc::new(InvocationEnds::default());
    let app = axum::Router::new()
        .route("/", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .with_state(ends.clone());
    // The API listener's accept loop, with its limits: a process in the sandbox that opens
    // idle connections here waits in the accept queue instead of using up descriptors, and a
    // slow one is cut off by the read timeout.
    let limits = crate::config::ServerConfig {
        port,
        token: String::new(),
        unix_socket: None,
        max_connections: TELEMETRY_CONNECTIONS,
        max_body_bytes: std::num::NonZeroUsize::new(MAX_BATCH_BYTES)
            .unwrap_or(std::num::NonZeroUsize::MIN),
        max_header_bytes: std::num::NonZeroUsize::new(16 << 10)
            .unwrap_or(std::num::NonZeroUsize::MIN),
        request_timeout: Duration::from_secs(5),
    };
    let server = crate::server::Server::spawn(listener, app, &limits);

    let body = serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": ["platform"],
        "buffering": {
            "maxItems": BUFFER_MAX_ITEMS,
            "maxBytes": BUFFER_MAX_BYTES,
            "timeoutMs": BUFFER_TIMEOUT_MS,
        },
        "destination": {"protocol": "HTTP", "URI": format!("http://{host}:{port}/")},
    });
    let outcome = async {
        let req = hyper::Request::builder()
            .method("PUT")
            .uri("/2022-07-01/telemetry")
            .header("Lambda-Extension-Identifier", extension_id)
            .header("Content-Type", "application/json")
            .body(lambda_runtime_api_client::body::Body::from(
                body.to_string(),
            ))
            .map_err(|e| e.to_string())?;
        let client = lambda_runtime_api_client::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(SUBSCRIBE_TIMEOUT, client.call(req))
            .await
            .map_err(|_| "the Telemetry API did not answer".to_string())?
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("the Telemetry API answered {}", resp.status()))
        }
    }
    .await;
    match outcome {
        Ok(()) => {
            // The listener serves for the life of the process; dropping its handle would
            // stop it (the stop channel closes).
            std::mem::forget(server);
            Ok(ends)
        }
        Err(e) => {
            server.shutdown(Duration::ZERO).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_done_invocation_is_found_whether_it_landed_before_or_after_the_wait() {
        let ends = Arc::new(InvocationEnds::default());
        ends.record("early");
        let soon = Instant::now() + Duration::from_secs(5);
        assert!(ends.wait("early", soon).await);
        let waiter = tokio::spawn({
            let ends = ends.clone();
            async move {
                ends.wait("late", Instant::now() + Duration::from_secs(5))
                    .await
            }
        });
        tokio::task::yield_now().await;
        ends.record("other");
        ends.record("late");
        assert!(waiter.await.unwrap_or(false));
        assert!(ends.reliable());
    }

    #[tokio::test]
    async fn a_missing_event_times_out_once_and_switches_waiting_off() {
        let ends = InvocationEnds::default();
        let until = Instant::now() + Duration::from_millis(50);
        assert!(!ends.wait("never", until).await);
        assert!(!ends.reliable());
    }
}
