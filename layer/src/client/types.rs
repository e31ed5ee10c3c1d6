//! Client-side value types that hold secret material: they redact themselves in `Debug` and
//! zeroize their bytes on drop. The wire types stay in [`crate::wire`]; these are what the
//! client hands to the caller after decoding base64.

use zeroize::Zeroizing;

use crate::wire::EncryptionContext;

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretVersion {
    /// A version id (`versionId=`).
    Id(String),
    /// A staging label (`versionStage=`), e.g. `AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING`.
    Stage(String),
}

/// Bytes that must not leak: zeroized on drop, `<redacted>` in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Plaintext(Zeroizing::new(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext(<redacted {} bytes>)", self.0.len())
    }
}

/// Result of [`crate::Client::decrypt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Plaintext,
    /// The message's encryption context.
    pub context: EncryptionContext,
    /// ARN of the KMS key that opened the message.
    pub key_arn: String,
}

/// Result of [`crate::Client::data_key`]: a data key for callers that do their own crypto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKey {
    /// The plaintext data key.
    pub plaintext: Plaintext,
    /// The data key encrypted by KMS (store it next to what you encrypt).
    pub ciphertext_blob: Vec<u8>,
    /// ARN of the KMS key that encrypted it.
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let d = DataKey {
            plaintext: Plaintext::new(b"topsecretkeymaterial".to_vec()),
            ciphertext_blob: vec![1, 2],
            key_id: "arn".into(),
        };
        let shown = format!("{d:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains("116, 111, 112"), "{shown}");
        assert!(shown.contains("redacted 20 bytes"), "{shown}");
    }
}
