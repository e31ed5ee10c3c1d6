//! The warmer (feature `runtime`): a `tower::Layer` for `lambda_runtime` handlers that
//! answers warm-up pings itself, and [`run`], the one call that starts a function with it.
//!
//! A ping (see [`ping`] for the recognised forms) never reaches the handler. The layer
//! asks the extension to warm (`POST /v1/warm`, best effort: a function without the
//! extension still answers pings), and when the sender fires `concurrency > 1` pings in
//! parallel it holds the environment busy for `delay` (default 75 ms, lambda-warmer's
//! default), so that Lambda routes the parallel pings to distinct environments. Both happen
//! at once: the reply takes the longer of the two. The reply:
//!
//! ```json
//! {"warmed": true, "instanceId": "…", "coldStart": false, "correlationId": "…",
//!  "source": "lambda-warmer", "extensionWarmed": true}
//! ```
//!
//! `instanceId` is generated once per process (one process per execution environment), so a
//! sender counts distinct environments by counting distinct ids; `coldStart` is true only
//! for the first event the process handles, ping or not.
//!
//! The handler's event type `A` is parsed from the same JSON when the event is not a ping.
//! Parse errors name the field but never quote the value (an event may carry card data).
//! Streaming responses are not supported behind this layer: the response must be `Serialize`.
//!
//! - [`ping`]: recognising pings (pure).
//! - [`instance`]: the environment's id and cold-start flag.

pub mod instance;
pub mod ping;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use instance::Instance;
pub use ping::{PingSource, WarmPing};

use crate::client::Client;

/// Default hold when `concurrency > 1` and the ping names no `delay`.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(75);

/// Time allowed for `POST /v1/warm` before the ping is answered anyway.
pub const DEFAULT_WARM_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the Lambda runtime with `handler` behind a [`WarmerLayer`] built from the
/// environment: the one call a Rust function's `main` needs.
///
/// ```no_run
/// use lambda_runtime::{service_fn, Error, LambdaEvent};
/// use serde_json::Value;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     hearth::run(service_fn(|e: LambdaEvent<Value>| async move { Ok::<_, Error>(e.payload) })).await
/// }
/// ```
pub async fn run<S, A>(handler: S) -> Result<(), lambda_runtime::Error>
where
    S: tower::Service<LambdaEvent<A>>,
    S::Future: Send + 'static,
    S::Response: Serialize + Send + 'static,
    S::Error: Into<Diagnostic> + std::fmt::Debug + Send + 'static,
    A: DeserializeOwned,
{
    lambda_runtime::run(tower::Layer::layer(&WarmerLayer::from_env(), handler)).await
}

/// The event as the wrapped handler receives it from `lambda_runtime`: a ping, or the
/// handler's own event type.
#[derive(Debug)]
pub enum WarmerEvent<A> {
    /// A warm-up ping; the handler does not run.
    Ping(WarmPing),
    /// Any other event.
    Event(A),
}

impl<'de, A: DeserializeOwned> Deserialize<'de> for WarmerEvent<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        if let Some(p) = ping::parse(&value) {
            return Ok(WarmerEvent::Ping(p));
        }
        serde_json::from_value(value)
            .map(WarmerEvent::Event)
            .map_err(|e| serde::de::Error::custom(redact_serde_message(&e.to_string())))
    }
}

/// serde quotes the offending value in type and value mismatches (`invalid type: integer
/// `4111111111111111`, expected a string`); keep the rest (field names help), drop that.
fn redact_serde_message(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let tail = rest.find(", expected").map(|i| &rest[i..]).unwrap_or("");
            return format!("{prefix}<redacted>{tail}");
        }
    }
    msg.to_string()
}

/// What the wrapped service answers: the warmer's reply, or the handler's response.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum WarmerResponse<R> {
    /// The reply to a ping.
    Warmed(WarmReply),
    /// The handler's response.
    Handler(R),
}

/// The reply to a ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmReply {
    /// Always true.
    pub warmed: bool,
    /// This environment's id (stable for the life of the process).
    pub instance_id: String,
    /// Whether this ping was the first event the process handled.
    pub cold_start: bool,
    /// The ping's correlation id, echoed.
    pub correlation_id: Option<String>,
    /// Who sent the ping.
    pub source: String,
    /// Whether `POST /v1/warm` succeeded.
    pub extension_warmed: bool,
}

/// The layer. Clone it freely; clones share the client and the instance.
#[derive(Debug, Clone)]
pub struct WarmerLayer {
    client: Option<Client>,
    instance: Arc<Instance>,
    default_delay: Duration,
    warm_timeout: Duration,
}

impl WarmerLayer {
    /// A layer that warms the extension through `client` (none: pings are answered without
    /// warming), for this process's [`Instance`].
    pub fn new(client: Option<Client>) -> Self {
        WarmerLayer {
            client,
            instance: Instance::process(),
            default_delay: DEFAULT_DELAY,
            warm_timeout: DEFAULT_WARM_TIMEOUT,
        }
    }

    /// A layer with a client from the environment ([`Client::from_env`]); without a usable
    /// configuration it logs once and answers pings without warming.
    pub fn from_env() -> Self {
        match Client::from_env() {
            Ok(c) => Self::new(Some(c)),
            Err(e) => {
                tracing::warn!(error = %e, "warmer: no Hearth client; pings will not warm the extension");
                Self::new(None)
            }
        }
    }

    /// Uses `instance` instead of the process's (tests).
    pub fn instance(mut self, instance: Arc<Instance>) -> Self {
        self.instance = instance;
        self
    }

    /// Hold used when a ping has `concurrency > 1` and names no `delay`.
    pub fn default_delay(mut self, delay: Duration) -> Self {
        self.default_delay = delay.min(ping::MAX_DELAY);
        self
    }

    /// Time allowed for `POST /v1/warm`.
    pub fn warm_timeout(mut self, timeout: Duration) -> Self {
        self.warm_timeout = timeout;
        self
    }
}

impl<S> tower::Layer<S> for WarmerLayer {
    type Service = WarmerService<S>;

    fn layer(&self, inner: S) -> WarmerService<S> {
        WarmerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`WarmerLayer`] wraps a handler in.
#[derive(Debug, Clone)]
pub struct WarmerService<S> {
    inner: S,
    layer: WarmerLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, A> tower::Service<LambdaEvent<WarmerEvent<A>>> for WarmerService<S>
where
    S: tower::Service<LambdaEvent<A>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = WarmerResponse<S::Response>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<WarmerEvent<A>>) -> Self::Future {
        let cold_start = self.layer.instance.first_event();
        let LambdaEvent { payload, context } = event;
        match payload {
            WarmerEvent::Event(a) => {
                let fut = self.inner.call(LambdaEvent::new(a, context));
                Box::pin(async move { fut.await.map(WarmerResponse::Handler) })
            }
            WarmerEvent::Ping(p) => {
                let layer = self.layer.clone();
                Box::pin(
                    async move { Ok(WarmerResponse::Warmed(answer(&layer, p, cold_start).await)) },
                )
            }
        }
    }
}

/// Warms the extension and holds (at once), then builds the reply.
async fn answer(layer: &WarmerLayer, p: WarmPing, cold_start: bool) -> WarmReply {
    let hold = if p.concurrency > 1 {
        p.delay.unwrap_or(layer.default_delay)
    } else {
        Duration::ZERO
    };
    let warm = async {
        let Some(client) = &layer.client else {
            return false;
        };
        match tokio::time::timeout(layer.warm_timeout, client.warm()).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "warmer: POST /v1/warm failed");
                false
            }
            Err(_) => {
                tracing::warn!(timeout = ?layer.warm_timeout, "warmer: POST /v1/warm timed out");
                false
            }
        }
    };
    let (extension_warmed, ()) = tokio::join!(warm, async {
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
    });
    tracing::info!(
        source = p.source.as_str(),
        concurrency = p.concurrency,
        correlation_id = p.correlation_id.as_deref().unwrap_or(""),
        cold_start,
        extension_warmed,
        hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
        "warm-up ping answered; handler not run"
    );
    WarmReply {
        warmed: true,
        instance_id: layer.instance.id().to_string(),
        cold_start,
        correlation_id: p.correlation_id,
        source: p.source.as_str().to_string(),
        extension_warmed,
    }
}

#[cfg(test)]
mod tests;
