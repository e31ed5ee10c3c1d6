//! The GetSecretValue call: one SDK client per region built at init, errors mapped to
//! [`SecretsError`].
//!
//! With a fallback region, a call the primary fails with an outage (see
//! [`SecretsError::is_transient`]) goes to the fallback region, where a replica secret of
//! the same name is read; a full ARN naming the primary region is rewritten to the
//! fallback region for that call (a replica's ARN differs from its primary's in the region
//! only). A not-found, denied or decryption-failed answer from the primary is returned as
//! is; an answer of the fallback that is not an outage becomes [`SecretsError::Unavailable`]
//! (see [`Outage::behind_outage`]), so a cached value keeps being served within the
//! stale-if-error window while the primary is down.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use base64::Engine as _;
use hearth::wire::SecretValue;
use tokio::sync::Semaphore;

use super::{SecretKey, SecretsError};
use crate::aws::Regional;
use crate::aws::TransportFailure;
use crate::failover::{Outage, Service, Side};
use crate::metrics::{Counter, Latency, Metrics};

impl Outage for SecretsError {
    fn is_outage(&self) -> bool {
        self.is_transient()
    }

    /// The fallback's answer (not replicated, IAM scoped to the primary's ARNs, ...) does
    /// not decide staleness: the primary's outage does.
    fn behind_outage(self, primary_region: &str) -> Self {
        SecretsError::Unavailable {
            reason: format!(
                "the primary region {primary_region} is failing and the fallback region answered {}",
                self.code()
            ),
        }
    }
}

/// Calls Secrets Manager and records call counts and latency.
#[derive(Debug, Clone)]
pub struct SecretsUpstream {
    clients: Arc<Regional<aws_sdk_secretsmanager::Client>>,
    calls: Arc<Counter>,
    errors: Arc<Counter>,
    latency: Arc<Latency>,
    /// Bound on calls in flight (`HEARTH_AWS_MAX_CONNECTIONS`), shared with Parameter Store.
    slots: Option<Arc<Semaphore>>,
}

impl SecretsUpstream {
    /// Wraps a client built once at init, without failover.
    pub fn new(client: aws_sdk_secretsmanager::Client, metrics: &Metrics) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        Self::regional(
            Regional::single(client, region, Service::Secrets, metrics),
            metrics,
        )
    }

    /// Wraps the clients of the primary and fallback regions, built once at init.
    pub fn regional(clients: Regional<aws_sdk_secretsmanager::Client>, metrics: &Metrics) -> Self {
        Self {
            clients: Arc::new(clients),
            calls: metrics.counter("secrets.upstream_calls"),
            errors: metrics.counter("secrets.upstream_errors"),
            latency: metrics.latency("secrets.upstream_latency"),
            slots: None,
        }
    }

    /// Bounds the calls in flight by `slots` (AWS's `PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`).
    pub fn with_slots(mut self, slots: Option<Arc<Semaphore>>) -> Self {
        self.slots = slots;
        self
    }

    /// One GetSecretValue call.
    pub async fn get(&self, key: &SecretKey) -> Result<SecretValue, SecretsError> {
        // The semaphore is never closed, so acquiring fails never; waiting is the bound.
        let _slot = match &self.slots {
            Some(s) => s.acquire().await.ok(),
            None => None,
        };
        self.calls.inc();
        let started = Instant::now();
        let clients = &self.clients;
        let res = clients
            .failover
            .call(|side| async move {
                let secret_id = match side {
                    Side::Primary => key.secret_id.clone(),
                    Side::Fallback => crate::arn::with_region(
                        &key.secret_id,
                        clients.failover.region(Side::Fallback),
                    )
                    .unwrap_or_else(|| key.secret_id.clone()),
                };
                clients
                    .client(side)
                    .get_secret_value()
                    .secret_id(secret_id)
                    .set_version_id(key.version_id.clone())
                    .set_version_stage(key.version_stage.clone())
                    .send()
                    .await
                    .map(to_wire)
                    .map_err(|e| map_error(&key.secret_id, &e))
            })
            .await;
        self.latency.record(started.elapsed());
        if let Err(err) = &res {
            self.errors.inc();
            tracing::warn!(secret_id = %key.secret_id, code = err.code(), "GetSecretValue failed");
        }
        res
    }
}

fn to_wire(out: GetSecretValueOutput) -> SecretValue {
    SecretValue {
        arn: out.arn.unwrap_or_default(),
        name: out.name.unwrap_or_default(),
        version_id: out.version_id.unwrap_or_default(),
        secret_string: out.secret_string,
        secret_binary: out
            .secret_binary
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref())),
        version_stages: out.version_stages.unwrap_or_default(),
        created_date: out
            .created_date
            .and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
    }
}

fn map_error<R>(secret_id: &str, e: &SdkError<GetSecretValueError, R>) -> SecretsError {
    match e {
        SdkError::ServiceError(ctx) => {
            let se = ctx.err();
            match se {
                GetSecretValueError::ResourceNotFoundException(_) => SecretsError::NotFound {
                    secret_id: secret_id.to_string(),
                },
                GetSecretValueError::DecryptionFailure(_) => SecretsError::DecryptionFailure {
                    secret_id: secret_id.to_string(),
                },
                GetSecretValueError::InvalidParameterException(_)
                | GetSecretValueError::InvalidRequestException(_) => SecretsError::InvalidRequest {
                    message: se.message().unwrap_or("invalid request").to_string(),
                },
                _ => match se.code() {
                    Some("AccessDeniedException") | Some("UnrecognizedClientException") => {
                        SecretsError::AccessDenied {
                            secret_id: secret_id.to_string(),
                        }
                    }
                    Some("ThrottlingException") | Some("TooManyRequestsException") => {
                        SecretsError::Throttled
                    }
                    code => SecretsError::Upstream {
                        message: format!(
                            "{}: {}",
                            code.unwrap_or("Unknown"),
                            se.message().unwrap_or("no message")
                        ),
                    },
                },
            }
        }
        other => match crate::aws::transport_failure(other) {
            Some(TransportFailure::Timeout) => SecretsError::Timeout,
            Some(TransportFailure::Unavailable(reason)) => SecretsError::Unavailable {
                reason: reason.into(),
            },
            Some(TransportFailure::Unparseable) => SecretsError::Upstream {
                message: "unparseable response".into(),
            },
            Some(TransportFailure::Construction) => SecretsError::InvalidRequest {
                message: "the request could not be built (check the secret id)".into(),
            },
            Some(TransportFailure::Unknown) | None => SecretsError::Upstream {
                message: "unknown failure".into(),
            },
        },
    }
}
