//! The typed client for the extension's HTTP API (feature `client`).
//!
//! One [`Client`] per process, built at init and cloned freely (clones share one keep-alive
//! connection pool to `127.0.0.1`). One method per API operation; requests and responses are
//! the [`crate::wire`] types, binary values are decoded from base64 here, and values that
//! hold secrets ([`Plaintext`], [`DataKey`], [`crate::wire::SecretValue`]) redact
//! themselves in `Debug`.
//!
//! ```no_run
//! # async fn f() -> Result<(), hearth::client::Error> {
//! let hearth = hearth::Client::from_env()?;
//! let db: serde_json::Value = hearth.secret_json("prod/db").await?;
//! # Ok(()) }
//! ```
//!
//! - `builder`: [`ClientBuilder`], settings from the environment or explicit.
//! - `error`: [`Error`], carrying the extension's JSON error code and HTTP status.
//! - `transport`: the keep-alive pool, the freeze-safe retry, response decoding.
//! - `unix`: the connector for a Unix-domain socket (`HEARTH_UNIX_SOCKET`).
//! - `types`: [`Plaintext`], [`Decrypted`], [`DataKey`], [`SecretVersion`].

mod builder;
mod error;
mod transport;
mod types;
mod unix;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroize;

pub use builder::{ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use error::Error;
pub use types::{DataKey, Decrypted, Plaintext, SecretVersion};

use transport::{decode, encode_query_value, json_error, Call, Idempotency};

use crate::wire::{
    DataKeyRequest, DataKeyResponse, DecryptRequest, DecryptResponse, EncryptRequest,
    EncryptResponse, EncryptionContext, Health, Parameter, ParameterResponse, QueryRequest,
    QueryResponse, SecretValue, TransactionRequest, TransactionResponse, WarmResponse,
};

/// The keep-alive pool, over loopback TCP or a Unix-domain socket.
#[derive(Clone)]
pub(crate) enum HttpClient {
    Tcp(hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>),
    Unix(hyper_util::client::legacy::Client<unix::UnixConnector, Full<Bytes>>),
}

impl HttpClient {
    pub(crate) fn request(
        &self,
        req: hyper::Request<Full<Bytes>>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            HttpClient::Tcp(c) => c.request(req),
            HttpClient::Unix(c) => c.request(req),
        }
    }
}

/// A client for the Hearth extension on `127.0.0.1`. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: HttpClient,
    /// The URI authority: `127.0.0.1:PORT`, or `localhost` over a Unix-domain socket.
    authority: String,
    /// Where the extension is, as errors and [`Client::addr`] show it.
    addr: String,
    token: Option<HeaderValue>,
    timeout: Duration,
    max_response_bytes: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.addr)
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl Client {
    /// A client configured from the environment (see [`ClientBuilder::from_env`]).
    /// Must be called inside a Tokio runtime.
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env()?.build()
    }

    /// A builder with defaults, for explicit settings (tests, non-Lambda hosts).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    fn from_builder(b: ClientBuilder) -> Client {
        let mut pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        pool.pool_timer(TokioTimer::new())
            // Idle connections are dropped after a while; across a freeze the timer may not
            // fire in time, which the one retry in `transport` covers.
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(b.max_idle_connections)
            .retry_canceled_requests(true);
        let (http, authority, addr) = match &b.unix_socket {
            Some(path) => (
                HttpClient::Unix(pool.build(unix::UnixConnector::new(path, b.connect_timeout))),
                "localhost".to_string(),
                format!("unix:{}", path.display()),
            ),
            None => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(b.connect_timeout));
                connector.enforce_http(true);
                let authority = format!("127.0.0.1:{}", b.port);
                (
                    HttpClient::Tcp(pool.build(connector)),
                    authority.clone(),
                    authority,
                )
            }
        };
        // `build` validated the token as a header value.
        let token = b.token.and_then(|t| {
            let mut v = HeaderValue::from_str(&t).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Client {
            inner: Arc::new(Inner {
                http,
                authority,
                addr,
                token,
                timeout: b.timeout,
                max_response_bytes: b.max_response_bytes,
            }),
        }
    }

    /// `127.0.0.1:PORT`, or `unix:PATH` over a Unix-domain socket.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    async fn get<T: DeserializeOwned>(&self, path_and_query: &str, auth: bool) -> Result<T, Error> {
        let (status, body) = self
            .inner
            .send(&Call {
                method: Method::GET,
                path_and_query,
                body: None,
                auth,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        decode(status, &body)
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency: Idempotency,
    ) -> Result<T, Error> {
        let mut json = serde_json::to_vec(body).map_err(|e| Error::Decode {
            status: 0,
            reason: json_error("request body", &e),
        })?;
        let sent = self
            .inner
            .send(&Call {
                method: Method::POST,
                path_and_query: path,
                body: Some(Bytes::copy_from_slice(&json)),
                auth: true,
                idempotency,
            })
            .await;
        // The request body may carry a plaintext (encrypt) or card data (query params).
        json.zeroize();
        let (status, body) = sent?;
        decode(status, &body)
    }

    /// `GET /health`: readiness and version (no token needed).
    pub async fn health(&self) -> Result<Health, Error> {
        self.get("/health", false).await
    }

    /// Polls `GET /health` until the extension answers or `timeout` passes. Useful at
    /// function init outside Lambda (under Lambda the extension is up before the function
    /// starts: it binds before it registers).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Health, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let last = match tokio::time::timeout(left, self.health()).await {
                Ok(Ok(h)) => return Ok(h),
                Ok(Err(e)) => e,
                Err(_) => Error::Timeout(timeout),
            };
            if Instant::now() + Duration::from_millis(10) >= deadline {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The current (`AWSCURRENT`) value of secret `id` (name or ARN).
    pub async fn secret(&self, id: &str) -> Result<SecretValue, Error> {
        self.get_secret(id, None, false).await
    }

    /// A given version (by id or staging label) of secret `id`.
    pub async fn secret_version(
        &self,
        id: &str,
        version: &SecretVersion,
    ) -> Result<SecretValue, Error> {
        self.get_secret(id, Some(version), false).await
    }

    /// The current value of secret `id`, bypassing the extension's cache (`refreshNow=true`).
    /// Costs a Secrets Manager call: use after an authentication failure, not routinely.
    pub async fn secret_refresh(&self, id: &str) -> Result<SecretValue, Error> {
        self.get_secret(id, None, true).await
    }

    async fn get_secret(
        &self,
        id: &str,
        version: Option<&SecretVersion>,
        refresh_now: bool,
    ) -> Result<SecretValue, Error> {
        let mut q = format!("/secretsmanager/get?secretId={}", encode_query_value(id));
        match version {
            Some(SecretVersion::Id(v)) => {
                q.push_str("&versionId=");
                q.push_str(&encode_query_value(v));
            }
            Some(SecretVersion::Stage(s)) => {
                q.push_str("&versionStage=");
                q.push_str(&encode_query_value(s));
            }
            None => {}
        }
        if refresh_now {
            q.push_str("&refreshNow=true");
        }
        self.get(&q, true).await
    }

    /// Parameter Store parameter `name` (a name, ARN, `name:version` or `name:label`), as
    /// GetParameter returns it; a SecureString is decrypted only with `with_decryption`.
    pub async fn parameter(&self, name: &str, with_decryption: bool) -> Result<Parameter, Error> {
        let q = format!(
            "/systemsmanager/parameters/get?name={}&withDecryption={with_decryption}",
            encode_query_value(name)
        );
        let r: ParameterResponse = self.get(&q, true).await?;
        Ok(r.parameter)
    }

    /// The current value of secret `id`, its `SecretString` parsed as JSON into `T` (e.g.
    /// the RDS form `{username, password, host, port, dbname}`).
    pub async fn secret_json<T: DeserializeOwned>(&self, id: &str) -> Result<T, Error> {
        let mut v = self.secret(id).await?;
        let parsed = match &v.secret_string {
            Some(s) => serde_json::from_str(s).map_err(|e| Error::SecretFormat {
                secret_id: id.to_string(),
                reason: json_error("SecretString as JSON", &e),
            }),
            None => Err(Error::SecretFormat {
                secret_id: id.to_string(),
                reason: "the secret is binary (SecretBinary), not a JSON string".into(),
            }),
        };
        if let Some(s) = v.secret_string.as_mut() {
            s.zeroize();
        }
        parsed
    }

    /// Encrypts `plaintext` under the extension's default KMS key into an AWS Encryption
    /// SDK message bound to `context`; returns the message bytes.
    pub async fn encrypt(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        self.encrypt_inner(plaintext, context, None).await
    }

    /// Like [`Client::encrypt`], under KMS key `key_id` (id, ARN or alias).
    pub async fn encrypt_with_key(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
        key_id: &str,
    ) -> Result<Vec<u8>, Error> {
        self.encrypt_inner(plaintext, context, Some(key_id)).await
    }

    async fn encrypt_inner(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<Vec<u8>, Error> {
        let mut req = EncryptRequest {
            plaintext: B64.encode(plaintext),
            context: context.clone(),
            key_id: key_id.map(str::to_string),
        };
        // Encrypting twice yields two valid messages and no other effect: safe to retry.
        let resp: Result<EncryptResponse, Error> = self
            .post("/v1/kms/encrypt", &req, Idempotency::Idempotent)
            .await;
        req.plaintext.zeroize();
        unb64(&resp?.ciphertext, "ciphertext")
    }

    /// Decrypts an AWS Encryption SDK message. With `expected_context`, the extension
    /// refuses (`ContextMismatch`) a message whose context differs.
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        expected_context: Option<&EncryptionContext>,
    ) -> Result<Decrypted, Error> {
        let req = DecryptRequest {
            ciphertext: B64.encode(ciphertext),
            context: expected_context.cloned(),
        };
        let mut resp: DecryptResponse = self
            .post("/v1/kms/decrypt", &req, Idempotency::Idempotent)
            .await?;
        let plaintext = unb64(&resp.plaintext, "plaintext").map(Plaintext::new);
        resp.plaintext.zeroize();
        Ok(Decrypted {
            plaintext: plaintext?,
            context: std::mem::take(&mut resp.context),
            key_arn: std::mem::take(&mut resp.key_arn),
        })
    }

    /// A data key for `context` (under `key_id`, or the default key), for callers that do
    /// their own crypto: a fresh key from KMS on every call (one GenerateDataKey each).
    pub async fn data_key(
        &self,
        context: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<DataKey, Error> {
        let req = DataKeyRequest {
            context: context.clone(),
            key_id: key_id.map(str::to_string),
        };
        let mut resp: DataKeyResponse = self
            .post("/v1/kms/data-key", &req, Idempotency::Idempotent)
            .await?;
        let plaintext = unb64(&resp.plaintext, "plaintext").map(Plaintext::new);
        resp.plaintext.zeroize();
        Ok(DataKey {
            plaintext: plaintext?,
            ciphertext_blob: unb64(&resp.ciphertext_blob, "ciphertextBlob")?,
            key_id: std::mem::take(&mut resp.key_id),
        })
    }

    /// Runs one SQL statement under the request's tenant (RLS context) in its own
    /// transaction. Not retried once sent: the statement may write.
    pub async fn query(&self, req: &QueryRequest) -> Result<QueryResponse, Error> {
        self.post("/v1/db/query", req, Idempotency::NotIdempotent)
            .await
    }

    /// Runs several statements in one transaction: all commit, or none.
    pub async fn transaction(
        &self,
        req: &TransactionRequest,
    ) -> Result<TransactionResponse, Error> {
        self.post("/v1/db/transaction", req, Idempotency::NotIdempotent)
            .await
    }

    /// `POST /v1/warm`: asks the extension to warm its caches and pool now.
    pub async fn warm(&self) -> Result<WarmResponse, Error> {
        self.post("/v1/warm", &serde_json::json!({}), Idempotency::Idempotent)
            .await
    }

    /// `GET /v1/metrics`: counters, gauges and latency summaries as JSON.
    pub async fn metrics(&self) -> Result<serde_json::Value, Error> {
        self.get("/v1/metrics", true).await
    }
}

fn unb64(s: &str, field: &str) -> Result<Vec<u8>, Error> {
    B64.decode(s).map_err(|_| Error::Decode {
        status: 200,
        reason: format!("{field} is not valid base64"),
    })
}

#[cfg(test)]
mod tests;
