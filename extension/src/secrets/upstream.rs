//! The GetSecretValue call: one SDK client built at init, errors mapped to [`SecretsError`].

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use base64::Engine as _;
use hearth::wire::SecretValue;

use super::{SecretKey, SecretsError};
use crate::metrics::{Counter, Latency, Metrics};

/// Calls Secrets Manager and records call counts and latency.
#[derive(Debug, Clone)]
pub struct SecretsUpstream {
    client: aws_sdk_secretsmanager::Client,
    calls: Arc<Counter>,
    errors: Arc<Counter>,
    latency: Arc<Latency>,
}

impl SecretsUpstream {
    /// Wraps a client built once at init.
    pub fn new(client: aws_sdk_secretsmanager::Client, metrics: &Metrics) -> Self {
        Self {
            client,
            calls: metrics.counter("secrets.upstream_calls"),
            errors: metrics.counter("secrets.upstream_errors"),
            latency: metrics.latency("secrets.upstream_latency"),
        }
    }

    /// One GetSecretValue call.
    pub async fn get(&self, key: &SecretKey) -> Result<SecretValue, SecretsError> {
        self.calls.inc();
        let started = Instant::now();
        let res = self
            .client
            .get_secret_value()
            .secret_id(&key.secret_id)
            .set_version_id(key.version_id.clone())
            .set_version_stage(key.version_stage.clone())
            .send()
            .await;
        self.latency.record(started.elapsed());
        match res {
            Ok(out) => Ok(to_wire(out)),
            Err(e) => {
                self.errors.inc();
                let err = map_error(&key.secret_id, &e);
                tracing::warn!(secret_id = %key.secret_id, code = err.code(), "GetSecretValue failed");
                Err(err)
            }
        }
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
        SdkError::TimeoutError(_) => SecretsError::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => SecretsError::Timeout,
        SdkError::DispatchFailure(d) => SecretsError::Unavailable {
            reason: if d.is_io() {
                "connection failed".into()
            } else {
                "request could not be sent".into()
            },
        },
        SdkError::ResponseError(_) => SecretsError::Upstream {
            message: "unparseable response".into(),
        },
        SdkError::ConstructionFailure(_) => SecretsError::InvalidRequest {
            message: "the request could not be built (check the secret id)".into(),
        },
        _ => SecretsError::Upstream {
            message: "unknown failure".into(),
        },
    }
}
