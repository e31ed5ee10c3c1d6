//! The plaintext data key and the keys derived from it for one message.
//!
//! Suite 0x0478 derives two 32-byte values from the data key with HKDF-SHA512, both with the
//! 32-byte message id as salt (framework/transitive-requirements.md):
//! - the encryption key, info = suite id (big-endian) || "DERIVEKEY";
//! - the commit key, info = "COMMITKEY", stored in the header as the suite data and compared
//!   on decrypt, so that only one data key can ever open a message.

use std::fmt;

use aws_lc_rs::{aead, constant_time, hkdf};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Error;
use crate::SUITE_ID;

/// Length of the suite's plaintext data key, derived encryption key and commit key.
pub const DATA_KEY_LEN: usize = 32;

/// HKDF info label of the encryption key (after the suite id).
const DERIVE_KEY_LABEL: &[u8] = b"DERIVEKEY";
/// HKDF info of the commit key.
const COMMIT_KEY_LABEL: &[u8] = b"COMMITKEY";

/// A 32-byte plaintext data key (as returned by KMS GenerateDataKey or Decrypt).
///
/// The bytes are zeroized when the value is dropped and never shown by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    bytes: [u8; DATA_KEY_LEN],
}

impl DataKey {
    /// Copies a data key from `bytes`, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: [u8; DATA_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidDataKeyLength { len: bytes.len() })?;
        Ok(DataKey { bytes })
    }

    /// The key bytes, for callers that must hand the key on (e.g. the data-key endpoint).
    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.bytes
    }
}

impl From<[u8; DATA_KEY_LEN]> for DataKey {
    fn from(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKey { bytes }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// The output length asked of HKDF-expand.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// The keys of one message: the AES-256-GCM key and the commit key.
pub(crate) struct MessageKeys {
    pub(crate) aead: aead::LessSafeKey,
    pub(crate) commitment: [u8; DATA_KEY_LEN],
}

impl MessageKeys {
    /// Derives both keys from `key` for the message `message_id`.
    pub(crate) fn derive(key: &DataKey, message_id: &[u8]) -> Result<Self, Error> {
        // One extract step serves both expansions, as the specification recommends.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, message_id).extract(&key.bytes);

        let mut enc_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let suite_id = SUITE_ID.to_be_bytes();
        prk.expand(&[&suite_id, DERIVE_KEY_LABEL], OkmLen(DATA_KEY_LEN))
            .and_then(|okm| okm.fill(enc_key.as_mut()))
            .map_err(|_| Error::Crypto)?;

        let mut commitment = [0u8; DATA_KEY_LEN];
        prk.expand(&[COMMIT_KEY_LABEL], OkmLen(DATA_KEY_LEN))
            .and_then(|okm| okm.fill(&mut commitment))
            .map_err(|_| Error::Crypto)?;

        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, enc_key.as_ref())
            .map_err(|_| Error::Crypto)?;
        Ok(MessageKeys {
            aead: aead::LessSafeKey::new(unbound),
            commitment,
        })
    }

    /// Checks, in constant time, that `stored` is this key's commitment.
    pub(crate) fn verify_commitment(&self, stored: &[u8]) -> Result<(), Error> {
        constant_time::verify_slices_are_equal(&self.commitment, stored)
            .map_err(|_| Error::CommitmentMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_slice_checks_length() {
        assert!(DataKey::from_slice(&[7u8; 32]).is_ok());
        assert_eq!(
            DataKey::from_slice(&[7u8; 31]).map(|_| ()),
            Err(Error::InvalidDataKeyLength { len: 31 })
        );
        assert_eq!(
            DataKey::from_slice(&[]).map(|_| ()),
            Err(Error::InvalidDataKeyLength { len: 0 })
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = DataKey::from([0xABu8; 32]);
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("REDACTED"));
    }

    #[test]
    fn commitment_depends_on_key_and_message_id() {
        let a = MessageKeys::derive(&DataKey::from([1u8; 32]), &[0u8; 32]).expect("derive");
        let b = MessageKeys::derive(&DataKey::from([2u8; 32]), &[0u8; 32]).expect("derive");
        let c = MessageKeys::derive(&DataKey::from([1u8; 32]), &[1u8; 32]).expect("derive");
        assert_ne!(a.commitment, b.commitment);
        assert_ne!(a.commitment, c.commitment);
        assert!(a.verify_commitment(&a.commitment).is_ok());
        assert_eq!(
            a.verify_commitment(&b.commitment),
            Err(Error::CommitmentMismatch)
        );
        assert_eq!(a.verify_commitment(&[]), Err(Error::CommitmentMismatch));
    }
}
