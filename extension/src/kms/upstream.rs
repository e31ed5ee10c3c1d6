//! The GenerateDataKey, Encrypt and Decrypt calls: one SDK client per region built at
//! init, call counts and latency recorded, errors mapped to [`KmsError`]. Plaintext keys are
//! copied straight into a zeroizing [`DataKey`]; the SDK's own buffer is zeroized before it
//! is dropped.
//!
//! Regional failover (with `HEARTH_KMS_FALLBACK_REGION`):
//! - GenerateDataKey goes to the primary; on an outage it goes to the fallback region,
//!   under the partition's fallback key (see [`KmsUpstream::fallback_key_for`]). A data key
//!   generated in the primary is also encrypted (KMS Encrypt, same context) under
//!   `HEARTH_KMS_FALLBACK_KEY_ID` in the fallback region: once per data key, as the cache
//!   generates keys once, not per message. The second encrypted data key is what lets a
//!   message decrypt while the primary region is down. If that Encrypt fails, the data key
//!   is used with one encrypted copy (counted in `kms.fallback_edk_failures`): an outage of
//!   the backup region must not become an outage of encryption. A data key generated in the
//!   fallback (primary down) carries the fallback's copy only.
//! - Decrypt goes to the region the encrypted data key names; a multi-Region key (mrk-)
//!   can be decrypted by its replica in either region, so it fails over like any call, with
//!   the ARN moved to the other region ([`crate::arn::mrk_match`] semantics).
//!
//! The plaintext data key sent to KMS Encrypt lives in the SDK's request buffers, which
//! Hearth cannot zeroize; the same is true of the SDK's GenerateDataKey response before it
//! is taken here. That is the SDK's boundary, as for the official ESDK.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use futures::future::BoxFuture;
use hearth_esdk::{DataKey, EncryptedDataKey, EncryptionContext, AWS_KMS_PROVIDER_ID};

use crate::aws::TransportFailure;
use zeroize::Zeroize as _;

use super::cache::{KeySource, Materials, Partition};
use super::KmsError;
use crate::arn;
use crate::aws::Regional;
use crate::failover::{Outage, Service, Side};
use crate::metrics::{Counter, Latency, Metrics};

impl Outage for KmsError {
    /// KMS failed, rather than answered: another region may succeed.
    fn is_outage(&self) -> bool {
        matches!(
            self,
            KmsError::Throttled
                | KmsError::Unavailable { .. }
                | KmsError::Timeout
                | KmsError::Upstream { .. }
        )
    }
}

/// Calls KMS and records call counts and latency.
#[derive(Debug, Clone)]
pub struct KmsUpstream {
    clients: Arc<Regional<aws_sdk_kms::Client>>,
    default_key_id: Option<String>,
    fallback_key_id: Option<String>,
    generate_calls: Arc<Counter>,
    decrypt_calls: Arc<Counter>,
    encrypt_calls: Arc<Counter>,
    fallback_edk_failures: Arc<Counter>,
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
        message: "KMS returned a data key that is not 16, 24 or 32 bytes".into(),
    })
}

impl KmsUpstream {
    /// Wraps a client built once at init, without failover.
    pub fn new(client: aws_sdk_kms::Client, metrics: &Metrics) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        Self::regional(
            Regional::single(client, region, Service::Kms, metrics),
            None,
            None,
            metrics,
        )
    }

    /// Wraps the clients of the primary and fallback regions. `fallback_key_id` is the
    /// fallback region's counterpart of `default_key_id` (`HEARTH_KMS_KEY_ID`).
    pub fn regional(
        clients: Regional<aws_sdk_kms::Client>,
        default_key_id: Option<String>,
        fallback_key_id: Option<String>,
        metrics: &Metrics,
    ) -> Self {
        Self {
            clients: Arc::new(clients),
            default_key_id,
            fallback_key_id,
            generate_calls: metrics.counter("kms.generate_data_key_calls"),
            decrypt_calls: metrics.counter("kms.decrypt_calls"),
            encrypt_calls: metrics.counter("kms.encrypt_calls"),
            fallback_edk_failures: metrics.counter("kms.fallback_edk_failures"),
            errors: metrics.counter("kms.errors"),
            latency: metrics.latency("kms.latency"),
        }
    }

    /// The key standing in for `key_id` in the fallback region, and whether it is a key of
    /// its own (so data keys get a second encrypted copy under it): the configured fallback
    /// key for the default key, the same multi-Region key's replica for an mrk- ARN (one
    /// copy serves both regions), none otherwise (that key has no known counterpart, and
    /// its calls do not fail over).
    pub fn fallback_key_for(&self, key_id: &str) -> Option<(String, bool)> {
        let region = self.clients.failover.fallback_region()?;
        if let (Some(default), Some(fallback)) = (&self.default_key_id, &self.fallback_key_id) {
            if default == key_id {
                return Some((fallback.clone(), true));
            }
        }
        if arn::is_mrk_arn(key_id) {
            return arn::with_region(key_id, region).map(|k| (k, false));
        }
        None
    }

    /// GenerateDataKey under `key_id` (in the primary region, or in the fallback region
    /// under its fallback key), plus the fallback copy described in the module docs.
    pub async fn generate(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Materials, KmsError> {
        self.generate_with(key_id, context, true).await
    }

    /// [`KmsUpstream::generate`] without the fallback copy: for `/v1/kms/data-key`, whose
    /// caller gets only the primary encrypted data key, so a copy would be a wasted call that
    /// sends the plaintext key to a second region.
    pub async fn generate_single(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Materials, KmsError> {
        self.generate_with(key_id, context, false).await
    }

    async fn generate_with(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        with_copy: bool,
    ) -> Result<Materials, KmsError> {
        let failover = &self.clients.failover;
        let fallback_key = self.fallback_key_for(key_id);
        let (side, mut materials) = match &fallback_key {
            Some((fallback, _)) => {
                failover
                    .call(|side| async move {
                        let key = match side {
                            Side::Primary => key_id,
                            Side::Fallback => fallback.as_str(),
                        };
                        self.generate_in(side, key, context)
                            .await
                            .map(|m| (side, m))
                    })
                    .await?
            }
            None => (
                Side::Primary,
                failover
                    .call_on(
                        Side::Primary,
                        self.generate_in(Side::Primary, key_id, context),
                    )
                    .await?,
            ),
        };
        if let (Side::Primary, Some((fallback, true)), true) = (side, &fallback_key, with_copy) {
            let copy = failover
                .call_on(
                    Side::Fallback,
                    self.encrypt_in(Side::Fallback, fallback, &materials.key, context),
                )
                .await;
            match copy {
                Ok(edk) => materials.fallback_edk = Some(edk),
                Err(e) => {
                    self.fallback_edk_failures.inc();
                    tracing::warn!(
                        key_id = %fallback,
                        code = e.code(),
                        "could not encrypt the data key under the fallback key: its messages decrypt in the primary region only"
                    );
                }
            }
        }
        Ok(materials)
    }

    /// One GenerateDataKey call (AES-256) under `key_id` and the full `context`, which the
    /// ESDK's decrypt passes back to KMS.
    async fn generate_in(
        &self,
        side: Side,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<Materials, KmsError> {
        self.generate_calls.inc();
        let started = Instant::now();
        let res = self
            .clients
            .client(side)
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(sdk_context(context))
            .send()
            .await;
        self.latency.record(started.elapsed());
        let mut out = res.map_err(|e| self.failed("GenerateDataKey", side, key_id, &e))?;
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
                fallback_edk: None,
            }),
            _ => Err(KmsError::Upstream {
                message: "GenerateDataKey returned no key ARN or CiphertextBlob".into(),
            }),
        }
    }

    /// One Encrypt call of the data key under `key_id` and `context`: another encrypted
    /// copy of it, as the ESDK's keyrings add one per additional key.
    async fn encrypt_in(
        &self,
        side: Side,
        key_id: &str,
        key: &DataKey,
        context: &EncryptionContext,
    ) -> Result<EncryptedDataKey, KmsError> {
        self.encrypt_calls.inc();
        let started = Instant::now();
        let res = self
            .clients
            .client(side)
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(key.as_bytes().to_vec()))
            .set_encryption_context(sdk_context(context))
            .send()
            .await;
        self.latency.record(started.elapsed());
        let mut out = res.map_err(|e| self.failed("Encrypt", side, key_id, &e))?;
        let arn = out.key_id.take().unwrap_or_default();
        match out.ciphertext_blob.take().map(Blob::into_inner) {
            Some(ciphertext) if !arn.is_empty() && !ciphertext.is_empty() => Ok(EncryptedDataKey {
                provider_id: AWS_KMS_PROVIDER_ID.into(),
                provider_info: arn.into_bytes(),
                ciphertext,
            }),
            _ => Err(KmsError::Upstream {
                message: "Encrypt returned no key ARN or CiphertextBlob".into(),
            }),
        }
    }

    /// Whether the region of `key_arn` is the one to try first now: the primary's while its
    /// breaker lets calls through, the fallback's while it is open. A multi-Region key can
    /// be decrypted in either region, so it always qualifies.
    pub fn healthy_first(&self, key_arn: &str) -> bool {
        let f = &self.clients.failover;
        if f.fallback_region().is_none() || arn::is_mrk_arn(key_arn) {
            return true;
        }
        match f.side_of(arn::region_of(key_arn)) {
            Side::Primary => f.prefers_primary(),
            Side::Fallback => !f.prefers_primary(),
        }
    }

    /// Counts a decrypt that another encrypted data key served after one failed.
    pub fn note_failover(&self) {
        self.clients.failover.note_failover();
    }

    /// Decrypts `blob` under `key_arn` and `context`, in the region the ARN names (either
    /// region for a multi-Region key, failing over between them).
    pub async fn decrypt(
        &self,
        key_arn: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KmsError> {
        let f = &self.clients.failover;
        let region = arn::region_of(key_arn);
        let ours =
            region.is_some_and(|r| r == f.primary_region() || Some(r) == f.fallback_region());
        if arn::is_mrk_arn(key_arn) && f.fallback_region().is_some() && ours {
            return f
                .call(|side| async move {
                    let arn = arn::with_region(key_arn, f.region(side))
                        .unwrap_or_else(|| key_arn.to_string());
                    self.decrypt_in(side, &arn, blob, context).await
                })
                .await;
        }
        let side = f.side_of(region);
        f.call_on(side, self.decrypt_in(side, key_arn, blob, context))
            .await
    }

    /// One Decrypt call of `blob` under `key_arn` and `context`.
    async fn decrypt_in(
        &self,
        side: Side,
        key_arn: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, KmsError> {
        self.decrypt_calls.inc();
        let started = Instant::now();
        let res = self
            .clients
            .client(side)
            .decrypt()
            .key_id(key_arn)
            .ciphertext_blob(Blob::new(blob))
            .set_encryption_context(sdk_context(context))
            .send()
            .await;
        self.latency.record(started.elapsed());
        let mut out = res.map_err(|e| self.failed("Decrypt", side, key_arn, &e))?;
        let key = take_key(out.plaintext.take())?;
        // As the ESDK requires: the key KMS used must be the one the message names.
        if out.key_id.as_deref() != Some(key_arn) {
            return Err(KmsError::InvalidCiphertext);
        }
        Ok(key)
    }

    fn failed<E, R>(
        &self,
        op: &'static str,
        side: Side,
        key_id: &str,
        e: &SdkError<E, R>,
    ) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        self.errors.inc();
        let err = map_error(key_id, e);
        let region = self.clients.failover.region(side);
        tracing::warn!(operation = op, region = %region, key_id = %key_id, code = err.code(), "KMS call failed");
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
                // A request KMS refuses as malformed (an encrypted data key of the wrong size,
                // an over-long key id) is bad input, never an outage: it must not open the
                // region's breaker.
                Some("InvalidCiphertextException")
                | Some("IncorrectKeyException")
                | Some("ValidationException") => KmsError::InvalidCiphertext,
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
        other => match crate::aws::transport_failure(other) {
            Some(TransportFailure::Timeout) => KmsError::Timeout,
            Some(TransportFailure::Unavailable(reason)) => KmsError::Unavailable {
                reason: reason.into(),
            },
            Some(TransportFailure::Unparseable) => KmsError::Upstream {
                message: "unparseable response".into(),
            },
            Some(TransportFailure::Construction) => KmsError::Upstream {
                message: "the request could not be built (check the key id)".into(),
            },
            Some(TransportFailure::Unknown) | None => KmsError::Upstream {
                message: "unknown failure".into(),
            },
        },
    }
}
