//! The GenerateDataKey and Decrypt calls: one SDK client built at init, call counts and
//! latency recorded, errors mapped to [`KmsError`]. Plaintext keys are copied straight into
//! a zeroizing [`DataKey`]; the SDK's own buffer is zeroized before it is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use futures::future::BoxFuture;
use hearth_esdk::{DataKey, EncryptedDataKey, EncryptionContext, AWS_KMS_PROVIDER_ID};
use zeroize::Zeroize as _;

use super::cache::{KeySource, Materials, Partition};
use super::KmsError;
use crate::metrics::{Counter, Latency, Metrics};

/// Calls KMS and records call counts and latency.
#[derive(Debug, Clone)]
pub struct KmsUpstream {
    client: aws_sdk_kms::Client,
    generate_calls: Arc<Counter>,
    decrypt_calls: Arc<Counter>,
    errors: Arc<Counter>,
    latency: Arc<Latency>,
}

fn sdk_context(ctx: &EncryptionContext) -> Option<HashMap<String, String>> {
    // KMS rejects an empty map; an absent one is the empty context.
    (!ctx.is_empty()).then(|| ctx.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn take_key(blob: Option<Blob>) -> Result<DataKey, KmsError> {
    let mut bytes = blob.map(Blob::into_inner).unwrap_or_default();
    let key = DataKey::from_slice(&bytes);
    bytes.zeroize();
    key.map_err(|_| KmsError::Upstream {
        message: "KMS returned a data key that is not 32 bytes".into(),
    })
}

impl KmsUpstream {
    /// Wraps a client built once at init.
    pub fn new(client: aws_sdk_kms::Client, metrics: &Metrics) -> Self {
        Self {
            client,
            generate_calls: metrics.counter("kms.generate_data_key_calls"),
            decrypt_calls: metrics.counter("kms.decrypt_calls"),
            errors: metrics.counter("kms.errors"),
            latency: metrics.latency("kms.latency"),
        }
    }

    /// One GenerateDataKey call (AES-256) under `key_id` and the full `context`, which the
    /// ESDK's decrypt passes back to KMS.
    pub async fn generate(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Materials, KmsError> {
        self.generate_calls.inc();
        let started = Instant::now();
        let res = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(sdk_context(context))
            .send()
            .await;
        self.latency.record(started.elapsed());
        let mut out = res.map_err(|e| self.failed("GenerateDataKey", key_id, &e))?;
        let key = take_key(out.plaintext.take())?;
        let arn = out.key_id.take().unwrap_or_default();
        let blob = out.ciphertext_blob.take().map(Blob::into_inner);
        match blob {
            Some(ciphertext) if !arn.is_empty() && !ciphertext.is_empty() => Ok(Materials {
                key,
                edk: EncryptedDataKey {
                    provider_id: AWS_KMS_PROVIDER_ID.into(),
                    provider_info: arn.into_bytes(),
                    ciphertext,
                },
            }),
            _ => Err(KmsError::Upstream {
                message: "GenerateDataKey returned no key ARN or CiphertextBlob".into(),
            }),
        }
    }

    /// One Decrypt call of `blob` under `key_arn` and `context`.
    pub async fn decrypt(
        &self,
        key_arn: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KmsError> {
        self.decrypt_calls.inc();
        let started = Instant::now();
        let res = self
            .client
            .decrypt()
            .key_id(key_arn)
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(sdk_context(context))
            .send()
            .await;
        self.latency.record(started.elapsed());
        let mut out = res.map_err(|e| self.failed("Decrypt", key_arn, &e))?;
        let key = take_key(out.plaintext.take())?;
        // As the ESDK requires: the key KMS used must be the one the message names.
        if out.key_id.as_deref() != Some(key_arn) {
            return Err(KmsError::InvalidCiphertext);
        }
        Ok(key)
    }

    fn failed<E, R>(&self, op: &'static str, key_id: &str, e: &SdkError<E, R>) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        self.errors.inc();
        let err = map_error(key_id, e);
        tracing::warn!(operation = op, key_id = %key_id, code = err.code(), "KMS call failed");
        err
    }
}

impl KeySource for KmsUpstream {
    fn generate(&self, partition: &Partition) -> BoxFuture<'static, Result<Materials, KmsError>> {
        let this = self.clone();
        let p = partition.clone();
        Box::pin(async move { this.generate(&p.key_id, &p.context).await })
    }
}

fn map_error<E, R>(key_id: &str, e: &SdkError<E, R>) -> KmsError
where
    E: ProvideErrorMetadata,
{
    let key_id = key_id.to_string();
    match e {
        SdkError::ServiceError(ctx) => {
            let se = ctx.err();
            match se.code() {
                Some("NotFoundException") => KmsError::KeyNotFound { key_id },
                Some("AccessDeniedException")
                | Some("UnrecognizedClientException")
                | Some("InvalidGrantTokenException") => KmsError::AccessDenied { key_id },
                Some("InvalidCiphertextException") | Some("IncorrectKeyException") => {
                    KmsError::InvalidCiphertext
                }
                Some(
                    code @ ("DisabledException"
                    | "KMSInvalidStateException"
                    | "InvalidKeyUsageException"),
                ) => KmsError::KeyUnusable {
                    key_id,
                    reason: code.to_string(),
                },
                Some("ThrottlingException") | Some("LimitExceededException") => KmsError::Throttled,
                Some("DependencyTimeoutException") => KmsError::Timeout,
                Some("KeyUnavailableException") => KmsError::Unavailable {
                    reason: "the KMS key is temporarily unavailable".into(),
                },
                code => KmsError::Upstream {
                    message: format!(
                        "{}: {}",
                        code.unwrap_or("Unknown"),
                        se.message().unwrap_or("no message")
                    ),
                },
            }
        }
        SdkError::TimeoutError(_) => KmsError::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => KmsError::Timeout,
        SdkError::DispatchFailure(d) => KmsError::Unavailable {
            reason: if d.is_io() {
                "connection failed".into()
            } else {
                "request could not be sent".into()
            },
        },
        SdkError::ResponseError(_) => KmsError::Upstream {
            message: "unparseable response".into(),
        },
        SdkError::ConstructionFailure(_) => KmsError::Upstream {
            message: "the request could not be built (check the key id)".into(),
        },
        _ => KmsError::Upstream {
            message: "unknown failure".into(),
        },
    }
}
