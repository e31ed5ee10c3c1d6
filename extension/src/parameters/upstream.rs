//! The GetParameter and GetParameters calls: one SDK client per region built at init,
//! through the same failover breaker as Secrets Manager and KMS, errors mapped to
//! [`ParametersError`].
//!
//! With a fallback region, a call the primary fails with an outage goes to the fallback,
//! where a parameter of the same name is read (an ARN naming the primary region is
//! rewritten for that call). An answer of the fallback that is not an outage (the parameter
//! is not copied there, IAM names the primary's ARNs) becomes
//! [`ParametersError::Unavailable`], so a cached value keeps being served within the
//! stale-if-error window while the primary is down.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::Parameter as SdkParameter;
use hearth::wire::{Parameter, ParameterResponse};
use tokio::sync::Semaphore;

use super::{ParameterKey, ParametersError};
use crate::aws::{Regional, TransportFailure};
use crate::failover::{Outage, Side};
use crate::metrics::{Counter, Latency, Metrics};

impl Outage for ParametersError {
    fn is_outage(&self) -> bool {
        self.is_transient()
    }

    fn behind_outage(self, primary_region: &str) -> Self {
        ParametersError::Unavailable {
            reason: format!(
                "the primary region {primary_region} is failing and the fallback region answered {}",
                self.code()
            ),
        }
    }
}

/// Calls Parameter Store and records call counts and latency.
#[derive(Debug, Clone)]
pub struct ParametersUpstream {
    clients: Arc<Regional<aws_sdk_ssm::Client>>,
    calls: Arc<Counter>,
    batch_calls: Arc<Counter>,
    errors: Arc<Counter>,
    latency: Arc<Latency>,
    /// Bound on calls in flight (`HEARTH_AWS_MAX_CONNECTIONS`), shared with Secrets Manager.
    slots: Option<Arc<Semaphore>>,
}

impl ParametersUpstream {
    /// Wraps the clients of the primary and fallback regions, built once at init.
    pub fn regional(clients: Regional<aws_sdk_ssm::Client>, metrics: &Metrics) -> Self {
        Self {
            clients: Arc::new(clients),
            calls: metrics.counter("parameters.upstream_calls"),
            batch_calls: metrics.counter("parameters.upstream_batch_calls"),
            errors: metrics.counter("parameters.upstream_errors"),
            latency: metrics.latency("parameters.upstream_latency"),
            slots: None,
        }
    }

    /// Bounds the calls in flight by `slots` (AWS's `PARAMETERS_SECRETS_EXTENSION_MAX_CONNECTIONS`).
    pub fn with_slots(mut self, slots: Option<Arc<Semaphore>>) -> Self {
        self.slots = slots;
        self
    }

    /// Waits for a slot when calls in flight are bounded; the semaphore is never closed.
    async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.slots {
            Some(s) => s.acquire().await.ok(),
            None => None,
        }
    }

    /// `id` as the given side must see it: an ARN moves to the fallback's region.
    fn on_side(&self, id: &str, side: Side) -> String {
        match side {
            Side::Primary => id.to_string(),
            Side::Fallback => {
                crate::arn::with_region(id, self.clients.failover.region(Side::Fallback))
                    .unwrap_or_else(|| id.to_string())
            }
        }
    }

    /// One GetParameter call.
    pub async fn get(&self, key: &ParameterKey) -> Result<ParameterResponse, ParametersError> {
        let _slot = self.slot().await;
        self.calls.inc();
        let started = Instant::now();
        let clients = &self.clients;
        let res = clients
            .failover
            .call(|side| async move {
                clients
                    .client(side)
                    .get_parameter()
                    .name(self.on_side(&key.name, side))
                    .with_decryption(key.with_decryption)
                    .send()
                    .await
                    .map_err(|e| map_error(&key.name, &e))
                    .and_then(|out| {
                        out.parameter
                            .map(|p| ParameterResponse {
                                parameter: to_wire(p),
                            })
                            .ok_or_else(|| ParametersError::Upstream {
                                message: "GetParameter answered without a parameter".into(),
                            })
                    })
            })
            .await;
        self.finish(started, &key.name, res)
    }

    /// One GetParameters call with decryption (at most 10 names): the parameters found,
    /// by the name they were asked for, and the names Parameter Store called invalid.
    pub async fn get_batch(
        &self,
        names: &[String],
    ) -> Result<(Vec<(String, ParameterResponse)>, Vec<String>), ParametersError> {
        let _slot = self.slot().await;
        self.batch_calls.inc();
        let started = Instant::now();
        let clients = &self.clients;
        let res = clients
            .failover
            .call(|side| async move {
                let asked: Vec<String> = names.iter().map(|n| self.on_side(n, side)).collect();
                let out = clients
                    .client(side)
                    .get_parameters()
                    .set_names(Some(asked.clone()))
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| map_error(&names.join(","), &e))?;
                let found = out
                    .parameters
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        let p = to_wire(p);
                        let sel = p.selector.clone().unwrap_or_default();
                        let i = asked.iter().position(|a| {
                            *a == format!("{}{sel}", p.name) || *a == format!("{}{sel}", p.arn)
                        })?;
                        Some((names[i].clone(), ParameterResponse { parameter: p }))
                    })
                    .collect();
                Ok((found, out.invalid_parameters.unwrap_or_default()))
            })
            .await;
        self.finish(started, "(batch)", res)
    }

    fn finish<T>(
        &self,
        started: Instant,
        name: &str,
        res: Result<T, ParametersError>,
    ) -> Result<T, ParametersError> {
        self.latency.record(started.elapsed());
        if let Err(err) = &res {
            self.errors.inc();
            tracing::warn!(name = %name, code = err.code(), "Parameter Store call failed");
        }
        res
    }
}

fn to_wire(p: SdkParameter) -> Parameter {
    Parameter {
        arn: p.arn.unwrap_or_default(),
        data_type: p.data_type.unwrap_or_default(),
        last_modified_date: p.last_modified_date.map(|d| d.as_secs_f64()),
        name: p.name.unwrap_or_default(),
        selector: p.selector,
        source_result: p.source_result,
        kind: p.r#type.map(|t| t.as_str().to_string()).unwrap_or_default(),
        value: p.value.unwrap_or_default(),
        version: p.version,
    }
}

fn map_error<E, R>(name: &str, e: &SdkError<E, R>) -> ParametersError
where
    E: ProvideErrorMetadata,
{
    let name = || name.to_string();
    if let SdkError::ServiceError(ctx) = e {
        let se = ctx.err();
        let message = se.message().unwrap_or("no message");
        return match se.code().unwrap_or("Unknown") {
            "ParameterNotFound" => ParametersError::NotFound { name: name() },
            "ParameterVersionNotFound" | "ParameterVersionLabelNotFound" => {
                ParametersError::VersionNotFound { name: name() }
            }
            "InvalidKeyId" => ParametersError::DecryptionFailure { name: name() },
            c if c.starts_with("KMS") => ParametersError::DecryptionFailure { name: name() },
            "AccessDeniedException" | "UnrecognizedClientException" => {
                ParametersError::AccessDenied { name: name() }
            }
            "ValidationException" | "InvalidParameters" | "ParameterPatternMismatchException" => {
                ParametersError::InvalidRequest {
                    message: message.chars().take(300).collect(),
                }
            }
            "ThrottlingException" | "TooManyUpdates" => ParametersError::Throttled,
            code => ParametersError::Upstream {
                message: format!("{code}: {}", message.chars().take(300).collect::<String>()),
            },
        };
    }
    match crate::aws::transport_failure(e) {
        Some(TransportFailure::Timeout) => ParametersError::Timeout,
        Some(TransportFailure::Unavailable(reason)) => ParametersError::Unavailable {
            reason: reason.into(),
        },
        Some(TransportFailure::Unparseable) => ParametersError::Upstream {
            message: "unparseable response".into(),
        },
        Some(TransportFailure::Construction) => ParametersError::InvalidRequest {
            message: "the request could not be built (check the name)".into(),
        },
        Some(TransportFailure::Unknown) | None => ParametersError::Upstream {
            message: "unknown failure".into(),
        },
    }
}
