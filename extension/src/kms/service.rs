//! [`KmsService`]: encrypt, decrypt and data keys, as the HTTP handlers call them.
//!
//! Encrypt, suite 0x0478 (`HEARTH_KMS_ALGORITHM` default): data key from the cache
//! (partition = key id + the message's full encryption context, which is also the context
//! GenerateDataKey gets, because the official ESDK passes the message's context to KMS
//! Decrypt) → `hearth_esdk::encrypt` with one `aws-kms` encrypted data key whose provider
//! info is the key ARN KMS returned, and a second one under the fallback region's key when
//! `HEARTH_KMS_FALLBACK_KEY_ID` is set.
//!
//! Encrypt, suite 0x0578: a signing key made for the message, then GenerateDataKey under
//! the message's full context, which includes the signing key's public key
//! (`aws-crypto-public-key`). That context is what the official SDKs give KMS Decrypt, so
//! the encrypted data key must be bound to it, and since the public key is new for every
//! message, so is the encrypted data key: a signed message costs one KMS call. The only
//! way to cache is to reuse the signing key with the data key (what the ESDK's caching CMM
//! does), which Hearth refuses: a signing key is never used for two messages.
//!
//! Decrypt: `hearth_esdk::parse_header` first (a malformed message never reaches KMS) →
//! the commitment policy (`HEARTH_KMS_COMMITMENT_POLICY`) → compare the expected context,
//! if given (reserved `aws-crypto-` entries need not be sent) → keep the `aws-kms`
//! encrypted data keys whose key ARN the [`KeySelection`] allows (strict by default; none:
//! `KeyNotAllowed`, with no KMS call) → for each (at most [`MAX_KMS_ATTEMPTS`]), KMS
//! Decrypt with KeyId = provider info and the message's context, through the decrypt cache
//! → `hearth_esdk::decrypt_with_policy`, which checks the key commitment, every tag and the
//! signature. The response names the key ARN that opened the message.
//!
//! Data key (`/v1/kms/data-key`): a fresh GenerateDataKey per call, never the cached key
//! that protects ESDK messages. Callers of this endpoint do their own cryptography,
//! typically one key per object with fixed or counter IVs, as the GenerateDataKey
//! idiom goes; handing several of them one key would reuse AES-GCM nonces, and one leaked
//! key would expose every message of the cache window. A partition of its own would still
//! give the same key to many callers, so it is not an option.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hearth::wire::{
    DataKeyRequest, DataKeyResponse, DecryptRequest, DecryptResponse, EncryptRequest,
    EncryptResponse,
};
use hearth_esdk::{EncryptionContext, Suite, AWS_KMS_PROVIDER_ID, RESERVED_CONTEXT_PREFIX};
use zeroize::{Zeroize as _, Zeroizing};

use super::cache::{DataKeyCache, Entry, Partition};
use super::decrypt_cache::{DecryptCache, DecryptKey};
use super::keys::KeySelection;
use super::limits::Limits;
use super::upstream::KmsUpstream;
use super::KmsError;
use crate::config::KmsConfig;
use crate::failover::Outage as _;
use crate::metrics::{Counter, Metrics};

/// Encrypted data keys tried per message: Hearth writes one or two (primary and fallback
/// region); a hostile message listing many must not turn one request into many KMS calls.
pub const MAX_KMS_ATTEMPTS: usize = 4;

/// KMS's bound on a Decrypt ciphertext.
const KMS_MAX_CIPHERTEXT: usize = 6144;

/// KMS's bound on a key id (ARN).
const KMS_MAX_KEY_ID: usize = 2048;

/// Longest key id, alias or ARN accepted (KMS's own limit).
const MAX_KEY_ID_LEN: usize = 2048;

struct Inner {
    cfg: KmsConfig,
    upstream: KmsUpstream,
    keys: DataKeyCache,
    decrypted: DecryptCache,
    selection: KeySelection,
    encrypts: Arc<Counter>,
    decrypts: Arc<Counter>,
    data_keys: Arc<Counter>,
    refused_keys: Arc<Counter>,
}

/// The KMS service; cheap to clone.
#[derive(Clone)]
pub struct KmsService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KmsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsService")
            .field("data_keys", &self.inner.keys.len())
            .field("decrypted_keys", &self.inner.decrypted.len())
            .finish()
    }
}

impl KmsService {
    /// Builds the service around a KMS client built once at init.
    pub fn new(cfg: KmsConfig, client: aws_sdk_kms::Client, metrics: &Metrics) -> Self {
        Self::with_upstream(cfg, KmsUpstream::new(client, metrics), None, metrics)
    }

    /// Builds the service around the primary and fallback regions' clients; data keys of
    /// the default key also get a copy under `fallback_key_id` (`HEARTH_KMS_FALLBACK_KEY_ID`).
    pub fn regional(
        cfg: KmsConfig,
        clients: crate::aws::Regional<aws_sdk_kms::Client>,
        fallback_key_id: Option<String>,
        metrics: &Metrics,
    ) -> Self {
        let upstream = KmsUpstream::regional(
            clients,
            cfg.key_id.clone(),
            fallback_key_id.clone(),
            metrics,
        );
        Self::with_upstream(cfg, upstream, fallback_key_id.as_deref(), metrics)
    }

    fn with_upstream(
        cfg: KmsConfig,
        upstream: KmsUpstream,
        fallback_key_id: Option<&str>,
        metrics: &Metrics,
    ) -> Self {
        let configured = cfg
            .key_id
            .iter()
            .map(String::as_str)
            .chain(fallback_key_id)
            .chain(cfg.decrypt_keys.iter().map(String::as_str));
        let selection = KeySelection::new(configured, cfg.discovery.clone());
        if selection.is_empty() && cfg.key_id.is_some() {
            tracing::warn!(
                "no KMS key ARN is configured for decrypt (HEARTH_KMS_KEY_ID is an alias): every decrypt will be refused with KeyNotAllowed; set HEARTH_KMS_DECRYPT_KEYS to the key ARN"
            );
        }
        let keys = DataKeyCache::new(
            Limits::from(&cfg),
            cfg.capacity,
            Arc::new(upstream.clone()),
            metrics,
        );
        let decrypted = DecryptCache::new(cfg.max_age, cfg.capacity, metrics);
        Self {
            inner: Arc::new(Inner {
                cfg,
                upstream,
                keys,
                decrypted,
                selection,
                encrypts: metrics.counter("kms.encrypts"),
                decrypts: metrics.counter("kms.decrypts"),
                data_keys: metrics.counter("kms.data_keys_served"),
                refused_keys: metrics.counter("kms.decrypts_refused_key_not_allowed"),
            }),
        }
    }

    fn partition(
        &self,
        key_id: Option<String>,
        context: EncryptionContext,
    ) -> Result<Partition, KmsError> {
        let key_id = key_id
            .or_else(|| self.inner.cfg.key_id.clone())
            .ok_or(KmsError::KeyIdRequired)?;
        if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
            return Err(KmsError::InvalidKeyId);
        }
        if context
            .keys()
            .any(|k| k.starts_with(RESERVED_CONTEXT_PREFIX))
        {
            return Err(KmsError::InvalidContext {
                reason: format!("keys starting with {RESERVED_CONTEXT_PREFIX:?} are reserved"),
            });
        }
        Ok(Partition { key_id, context })
    }

    /// A data key for one use of `bytes` bytes, cached unless caching is off.
    async fn key_for(&self, partition: &Partition, bytes: u64) -> Result<Arc<Entry>, KmsError> {
        if self.inner.cfg.caching {
            self.inner.keys.acquire(partition, bytes).await
        } else {
            let m = self
                .inner
                .upstream
                .generate(&partition.key_id, &partition.context)
                .await?;
            Ok(Arc::new(Entry::new(m)))
        }
    }

    /// `POST /v1/kms/encrypt`.
    pub async fn encrypt(&self, req: EncryptRequest) -> Result<EncryptResponse, KmsError> {
        self.inner.encrypts.inc();
        let plaintext = Zeroizing::new(
            B64.decode(req.plaintext.as_bytes())
                .map_err(|_| KmsError::InvalidBase64 { field: "plaintext" })?,
        );
        if plaintext.len() > hearth_esdk::MAX_PLAINTEXT_LEN {
            return Err(hearth_esdk::Error::PlaintextTooLarge {
                len: plaintext.len(),
                max: hearth_esdk::MAX_PLAINTEXT_LEN,
            }
            .into());
        }
        let cfg = &self.inner.cfg;
        let suite = cfg.algorithm;
        if !cfg.commitment_policy.allows_encrypt(suite) {
            return Err(KmsError::CommitmentPolicy {
                suite: suite.id(),
                policy: cfg.commitment_policy,
                encrypt: true,
            });
        }
        let partition = self.partition(req.key_id, req.context)?;
        let message = if suite.signature().is_some() {
            // One signing key and one data key per message: see the module docs.
            let signer = hearth_esdk::SigningKey::generate(suite)?;
            let full = signer.message_context(&partition.context);
            let materials = self
                .inner
                .upstream
                .generate(&partition.key_id, &full)
                .await?;
            hearth_esdk::encrypt_with(
                suite,
                &materials.key,
                &materials.edks(),
                &partition.context,
                Some(&signer),
                &plaintext,
                hearth_esdk::DEFAULT_FRAME_LENGTH,
            )?
        } else {
            let entry = self.key_for(&partition, plaintext.len() as u64).await?;
            hearth_esdk::encrypt_with(
                Suite::Aes256GcmHkdfSha512CommitKey,
                &entry.materials.key,
                &entry.materials.edks(),
                &partition.context,
                None,
                &plaintext,
                hearth_esdk::DEFAULT_FRAME_LENGTH,
            )?
        };
        Ok(EncryptResponse {
            ciphertext: B64.encode(message),
        })
    }

    /// `POST /v1/kms/decrypt`.
    pub async fn decrypt(&self, req: DecryptRequest) -> Result<DecryptResponse, KmsError> {
        self.inner.decrypts.inc();
        let message =
            B64.decode(req.ciphertext.as_bytes())
                .map_err(|_| KmsError::InvalidBase64 {
                    field: "ciphertext",
                })?;
        let header = hearth_esdk::parse_header(&message)?;
        let policy = self.inner.cfg.commitment_policy;
        hearth_esdk::check_policy(&header, policy).map_err(|_| KmsError::CommitmentPolicy {
            suite: header.suite_id(),
            policy,
            encrypt: false,
        })?;
        // A signed suite's public key (or an unsigned suite's lack of one) is checked before
        // any KMS call, like the policy.
        hearth_esdk::check_public_key(&header)?;
        let context = header.encryption_context().clone();
        if req
            .context
            .as_ref()
            .is_some_and(|want| !context_matches(want, &context))
        {
            return Err(KmsError::ContextMismatch);
        }
        let kms_edks: Vec<_> = header
            .encrypted_data_keys()
            .iter()
            .filter(|e| e.provider_id == AWS_KMS_PROVIDER_ID)
            .collect();
        if kms_edks.is_empty() {
            return Err(KmsError::NoKmsDataKey);
        }
        let mut candidates: Vec<_> = kms_edks
            .iter()
            .copied()
            .filter(|e| {
                std::str::from_utf8(&e.provider_info)
                    .is_ok_and(|arn| self.inner.selection.allows(arn))
            })
            .take(MAX_KMS_ATTEMPTS)
            .collect();
        // What KMS would refuse as malformed is refused here, before any call: its
        // ciphertext is 1 to 6,144 bytes and a key id at most 2,048 characters.
        let allowed = candidates.len();
        candidates.retain(|e| {
            (1..=KMS_MAX_CIPHERTEXT).contains(&e.ciphertext.len())
                && e.provider_info.len() <= KMS_MAX_KEY_ID
        });
        if allowed > 0 && candidates.is_empty() {
            return Err(KmsError::InvalidCiphertext);
        }
        if candidates.is_empty() {
            self.inner.refused_keys.inc();
            return Err(KmsError::KeyNotAllowed {
                count: kms_edks.len(),
            });
        }
        let mut last = KmsError::NoKmsDataKey;
        // The encrypted data key of the region that is up first (primary and fallback keys,
        // see the upstream's module docs): while the primary's breaker is open, a message
        // carrying both copies never waits on the primary. Stable: otherwise header order.
        candidates.sort_by_key(|e| {
            std::str::from_utf8(&e.provider_info)
                .map(|arn| !self.inner.upstream.healthy_first(arn))
                .unwrap_or(true)
        });
        let mut outage = false;
        for edk in candidates {
            let Ok(arn) = std::str::from_utf8(&edk.provider_info) else {
                last = KmsError::InvalidCiphertext;
                continue;
            };
            let key = DecryptKey {
                key_arn: arn.to_string(),
                edk_ciphertext: edk.ciphertext.clone(),
                context: context.clone(),
            };
            let opened = if self.inner.cfg.caching {
                let upstream = self.inner.upstream.clone();
                let k = key.clone();
                self.inner
                    .decrypted
                    .get(&key, move || async move {
                        upstream
                            .decrypt(&k.key_arn, &k.edk_ciphertext, &k.context)
                            .await
                    })
                    .await
                    .and_then(|d| Ok(hearth_esdk::decrypt_with_policy(&d.key, &message, policy)?))
            } else {
                self.inner
                    .upstream
                    .decrypt(arn, &edk.ciphertext, &context)
                    .await
                    .and_then(|k| Ok(hearth_esdk::decrypt_with_policy(&k, &message, policy)?))
            };
            match opened {
                Ok(mut d) => {
                    if outage {
                        self.inner.upstream.note_failover();
                    }
                    let plaintext = B64.encode(&d.plaintext);
                    d.plaintext.zeroize();
                    return Ok(DecryptResponse {
                        plaintext,
                        context: hearth_esdk::user_context(&d.context),
                        key_arn: arn.to_string(),
                    });
                }
                // This key could not be used: another encrypted data key may work.
                Err(
                    e @ (KmsError::InvalidCiphertext
                    | KmsError::KeyNotFound { .. }
                    | KmsError::AccessDenied { .. }
                    | KmsError::KeyUnusable { .. }),
                ) => last = e,
                // This key's region failed: the next encrypted data key may be in another.
                Err(e) if e.is_outage() => {
                    outage = true;
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// `POST /v1/kms/data-key`: a fresh data key from KMS for every call, never a cached
    /// one (see the module docs). Counted in `kms.data_keys_served` and, as every KMS call,
    /// in `kms.generate_data_key_calls`; the data-key cache's message and byte counts are
    /// untouched, as the key protects no ESDK message.
    pub async fn data_key(&self, req: DataKeyRequest) -> Result<DataKeyResponse, KmsError> {
        let partition = self.partition(req.key_id, req.context)?;
        let materials = self
            .inner
            .upstream
            .generate_single(&partition.key_id, &partition.context)
            .await?;
        self.inner.data_keys.inc();
        Ok(DataKeyResponse {
            plaintext: B64.encode(materials.key.as_bytes()),
            ciphertext_blob: B64.encode(&materials.edk.ciphertext),
            key_id: materials.key_arn(),
        })
    }

    /// Prewarm: generates the data key of the default key and the empty context. Returns
    /// whether there was anything to warm.
    pub async fn warm(&self) -> Result<bool, KmsError> {
        let Some(key_id) = self.inner.cfg.key_id.clone() else {
            return Ok(false);
        };
        // Signed messages (0x0578) take a data key of their own each: nothing to warm.
        if !self.inner.cfg.caching || self.inner.cfg.algorithm.signature().is_some() {
            return Ok(false);
        }
        let Some(context) = self.inner.cfg.prewarm_context.clone() else {
            return Ok(false);
        };
        let partition = Partition { key_id, context };
        self.inner.keys.warm(&partition).await?;
        Ok(true)
    }

    /// INVOKE: evicts expired keys and replaces due ones in the background. Returns the
    /// number of replacements started.
    pub fn refresh_ahead(&self) -> usize {
        self.inner.decrypted.purge_expired();
        self.inner.keys.refresh_ahead()
    }

    /// SHUTDOWN, after the server drained: drops (zeroizes) every cached plaintext key.
    /// Returns how many were dropped.
    pub fn shutdown(&self) -> usize {
        self.inner.keys.clear() + self.inner.decrypted.clear()
    }
}

/// Whether the caller's expected context `want` matches the message's `context`: equal
/// after dropping the reserved `aws-crypto-` entries from both (the caller never set them
/// and need not send them); any reserved entry the caller does send must match too.
fn context_matches(want: &EncryptionContext, context: &EncryptionContext) -> bool {
    hearth_esdk::user_context(want) == hearth_esdk::user_context(context)
        && want
            .iter()
            .filter(|(k, _)| k.starts_with(RESERVED_CONTEXT_PREFIX))
            .all(|(k, v)| context.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_entries_are_not_required_from_the_caller() {
        let ctx = |pairs: &[(&str, &str)]| -> EncryptionContext {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let message = ctx(&[("tenant", "t"), ("aws-crypto-public-key", "AkX")]);
        assert!(context_matches(&ctx(&[("tenant", "t")]), &message));
        assert!(context_matches(&message, &message));
        assert!(!context_matches(&ctx(&[]), &message));
        assert!(!context_matches(&ctx(&[("tenant", "u")]), &message));
        assert!(!context_matches(
            &ctx(&[("tenant", "t"), ("aws-crypto-public-key", "other")]),
            &message
        ));
    }
}
