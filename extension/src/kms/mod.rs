//! KMS data keys and envelope encryption: AWS Encryption SDK messages written (format 2.0,
//! suite 0x0478 or 0x0578) and read (every suite, under the commitment policy) with
//! `hearth-esdk`, their data keys from KMS, cached under strict limits.
//!
//! - [`keys`]: which keys decrypt may use (strict, or discovery with a filter).
//! - [`limits`]: the limit arithmetic (max age, messages, bytes; refresh-ahead thresholds).
//! - [`cache`]: the encryption-side data-key cache, partitioned by (key id, context).
//! - [`decrypt_cache`]: decrypted data keys, keyed by (encrypted data key, context).
//! - [`upstream`]: the GenerateDataKey and Decrypt calls and the mapping of their errors.
//! - [`service`]: [`KmsService`], what the handlers call: encrypt, decrypt, data key.

pub mod cache;
pub mod decrypt_cache;
pub mod keys;
pub mod limits;
pub mod service;
pub mod upstream;

pub use service::KmsService;

/// Errors of the KMS path. Cloneable so one upstream failure can answer every caller waiting
/// on the same single-flight call. Messages carry key ids and structural facts only: never a
/// plaintext, a data key or a ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// No `keyId` in the request and no `HEARTH_KMS_KEY_ID` configured.
    #[error("no KMS key given: send \"keyId\" or set HEARTH_KMS_KEY_ID")]
    KeyIdRequired,
    /// The key id is empty or longer than KMS allows.
    #[error("keyId must be 1 to 2048 characters: a key id, key ARN, alias name or alias ARN")]
    InvalidKeyId,
    /// A request field is not valid base64.
    #[error("{field} is not valid standard base64")]
    InvalidBase64 {
        /// The field at fault.
        field: &'static str,
    },
    /// The request's encryption context cannot be used.
    #[error("invalid encryption context: {reason}")]
    InvalidContext {
        /// What is wrong with it.
        reason: String,
    },
    /// The context the caller expects differs from the message's.
    #[error("the encryption context given does not match the message's")]
    ContextMismatch,
    /// The message is not a well-formed ESDK message Hearth can open, or it did not
    /// authenticate. The code is `hearth-esdk`'s stable code.
    #[error("cannot process the message: {0}")]
    Message(#[from] hearth_esdk::Error),
    /// The commitment policy refuses the suite: a non-committing message under
    /// require-encrypt-require-decrypt, or any encrypt under forbid-encrypt-allow-decrypt.
    #[error("{}", commitment_message(*suite, *policy, *encrypt))]
    CommitmentPolicy {
        /// The suite id.
        suite: u16,
        /// The configured policy.
        policy: hearth_esdk::CommitmentPolicy,
        /// Whether encrypt (not decrypt) was refused.
        encrypt: bool,
    },
    /// None of the message's AWS KMS encrypted data keys names a key decrypt may use.
    #[error("none of the message's {count} AWS KMS encrypted data keys names a key Hearth may use: add the key ARN to HEARTH_KMS_DECRYPT_KEYS, or set HEARTH_KMS_DISCOVERY=true with its account in HEARTH_KMS_DISCOVERY_ACCOUNTS")]
    KeyNotAllowed {
        /// How many `aws-kms` encrypted data keys the message has.
        count: usize,
    },
    /// The message has no encrypted data key from AWS KMS.
    #[error("the message carries no AWS KMS encrypted data key (provider id \"aws-kms\")")]
    NoKmsDataKey,
    /// KMS could not decrypt the data key: wrong key, wrong context or a corrupt blob.
    #[error("KMS could not decrypt the message's data key (wrong key, context or ciphertext)")]
    InvalidCiphertext,
    /// The KMS key does not exist (in this region).
    #[error("KMS key {key_id:?} was not found; check the key id and the region")]
    KeyNotFound {
        /// The key asked for.
        key_id: String,
    },
    /// IAM or the key policy denies the call.
    #[error("KMS denied the call on key {key_id:?}: grant kms:GenerateDataKey and kms:Decrypt on it to the function's role")]
    AccessDenied {
        /// The key asked for.
        key_id: String,
    },
    /// The key cannot be used now (disabled, pending deletion, wrong key usage).
    #[error("KMS key {key_id:?} cannot be used: {reason}")]
    KeyUnusable {
        /// The key asked for.
        key_id: String,
        /// KMS's error code.
        reason: String,
    },
    /// Throttled by KMS after the SDK's retries.
    #[error("KMS throttled the request; retry with backoff")]
    Throttled,
    /// KMS could not be reached.
    #[error("KMS is unavailable ({reason})")]
    Unavailable {
        /// What failed (connection refused, DNS, ...).
        reason: String,
    },
    /// The call exceeded HEARTH_AWS_OPERATION_TIMEOUT.
    #[error("KMS did not answer within HEARTH_AWS_OPERATION_TIMEOUT")]
    Timeout,
    /// KMS answered with an unexpected error or shape.
    #[error("KMS failed: {message}")]
    Upstream {
        /// Error code and message from AWS.
        message: String,
    },
}

impl KmsError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::KeyIdRequired => "KeyIdRequired",
            KmsError::InvalidKeyId => "InvalidKeyId",
            KmsError::InvalidBase64 { .. } => "InvalidBase64",
            KmsError::InvalidContext { .. } => "InvalidEncryptionContext",
            KmsError::ContextMismatch => "ContextMismatch",
            KmsError::Message(e) => e.code(),
            KmsError::CommitmentPolicy { .. } => "CommitmentPolicyViolation",
            KmsError::KeyNotAllowed { .. } => "KeyNotAllowed",
            KmsError::NoKmsDataKey => "NoKmsDataKey",
            KmsError::InvalidCiphertext => "InvalidCiphertext",
            KmsError::KeyNotFound { .. } => "KeyNotFound",
            KmsError::AccessDenied { .. } => "AccessDenied",
            KmsError::KeyUnusable { .. } => "KeyUnusable",
            KmsError::Throttled => "Throttled",
            KmsError::Unavailable { .. } => "UpstreamUnavailable",
            KmsError::Timeout => "UpstreamTimeout",
            KmsError::Upstream { .. } => "UpstreamError",
        }
    }

    /// Whether the caller sent something wrong (HTTP 400), as opposed to KMS or the
    /// environment failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            KmsError::KeyIdRequired
                | KmsError::InvalidKeyId
                | KmsError::InvalidBase64 { .. }
                | KmsError::InvalidContext { .. }
                | KmsError::ContextMismatch
                | KmsError::Message(_)
                | KmsError::CommitmentPolicy { .. }
                | KmsError::NoKmsDataKey
                | KmsError::InvalidCiphertext
        )
    }
}

fn commitment_message(suite: u16, policy: hearth_esdk::CommitmentPolicy, encrypt: bool) -> String {
    let policy = policy.as_str();
    if encrypt {
        format!("HEARTH_KMS_COMMITMENT_POLICY={policy} forbids the committing suites, the only ones Hearth writes ({suite:#06x}); set require-encrypt-allow-decrypt to keep reading legacy messages and encrypt again")
    } else {
        format!("the message uses the non-committing algorithm suite {suite:#06x}, which HEARTH_KMS_COMMITMENT_POLICY={policy} refuses; set require-encrypt-allow-decrypt to read messages written by ESDK 1.x")
    }
}

impl crate::flight::Interrupted for KmsError {
    fn interrupted() -> Self {
        KmsError::Unavailable {
            reason: "the KMS call was interrupted".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_errors_keep_the_esdk_code() {
        let e = KmsError::from(hearth_esdk::Error::CommitmentMismatch);
        assert_eq!(e.code(), "CommitmentMismatch");
        assert!(e.is_bad_input());
        assert!(!KmsError::Throttled.is_bad_input());
    }

    #[test]
    fn policy_and_key_errors_say_what_to_do() {
        let e = KmsError::CommitmentPolicy {
            suite: 0x0378,
            policy: hearth_esdk::CommitmentPolicy::RequireEncryptRequireDecrypt,
            encrypt: false,
        };
        assert_eq!(e.code(), "CommitmentPolicyViolation");
        assert!(e.to_string().contains("0x0378"), "{e}");
        assert!(
            e.to_string().contains("require-encrypt-allow-decrypt"),
            "{e}"
        );
        let e = KmsError::KeyNotAllowed { count: 1 };
        assert_eq!(e.code(), "KeyNotAllowed");
        assert!(!e.is_bad_input());
        assert!(e.to_string().contains("HEARTH_KMS_DECRYPT_KEYS"));
    }
}
