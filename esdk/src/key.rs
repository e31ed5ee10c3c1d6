//! The plaintext data key and the keys derived from it for one message
//! (framework/algorithm-suites.md, "Key Derivation").
//!
//! - No-KDF suites (0x0014, 0x0046, 0x0078): the data key is the AES key.
//! - Format 1.0 HKDF suites: HKDF with the suite's hash, no salt (HashLen zeros: the same
//!   HMAC key as an empty salt), info = suite id (big-endian) || message id (16 bytes).
//! - Committing suites (0x0478, 0x0578): HKDF-SHA512, salt = the 32-byte message id; the
//!   encryption key with info = suite id || "DERIVEKEY", the commit key with info =
//!   "COMMITKEY". The commit key is stored in the header as the suite data and compared on
//!   decrypt, so that only one data key can ever open a message.

use std::fmt;

use aws_lc_rs::{aead, constant_time, hkdf};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Error;
use crate::suite::{Kdf, Suite};

/// Length of the data key of the 256-bit suites (0x0478 and 0x0578 among them), and of the
/// commit key.
pub const DATA_KEY_LEN: usize = 32;

/// HKDF info label of the encryption key (after the suite id).
const DERIVE_KEY_LABEL: &[u8] = b"DERIVEKEY";
/// HKDF info of the commit key.
const COMMIT_KEY_LABEL: &[u8] = b"COMMITKEY";

/// A plaintext data key of 16, 24 or 32 bytes (as returned by KMS GenerateDataKey or
/// Decrypt); each suite needs one length ([`Suite::key_len`]).
///
/// The bytes are zeroized when the value is dropped and never shown by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    bytes: [u8; DATA_KEY_LEN],
    len: usize,
}

impl DataKey {
    /// Copies a data key from `bytes`, which must be 16, 24 or 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        if !matches!(bytes.len(), 16 | 24 | 32) {
            return Err(Error::InvalidDataKeyLength { len: bytes.len() });
        }
        let mut out = [0u8; DATA_KEY_LEN];
        out[..bytes.len()].copy_from_slice(bytes);
        Ok(DataKey {
            bytes: out,
            len: bytes.len(),
        })
    }

    /// The key bytes, for callers that must hand the key on (e.g. the data-key endpoint).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The key's length in bytes.
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.len
    }
}

impl From<[u8; DATA_KEY_LEN]> for DataKey {
    fn from(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKey {
            bytes,
            len: DATA_KEY_LEN,
        }
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

/// The keys of one message: the AES-GCM key and, for committing suites, the commit key.
pub(crate) struct MessageKeys {
    pub(crate) aead: aead::LessSafeKey,
    pub(crate) commitment: Option<[u8; DATA_KEY_LEN]>,
}

impl MessageKeys {
    /// Derives the message's keys from `key` for `suite` and the message `message_id`.
    pub(crate) fn derive(suite: Suite, key: &DataKey, message_id: &[u8]) -> Result<Self, Error> {
        if key.len() != suite.key_len() {
            return Err(Error::InvalidDataKeyLength { len: key.len() });
        }
        let key_len = suite.key_len();
        let suite_id = suite.id().to_be_bytes();
        let mut enc_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let mut commitment = None;
        let expand = |prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]| {
            prk.expand(info, OkmLen(out.len()))
                .and_then(|okm| okm.fill(out))
                .map_err(|_| Error::Crypto)
        };
        match suite.kdf() {
            Kdf::Identity => enc_key[..key_len].copy_from_slice(key.as_bytes()),
            Kdf::HkdfSha256 | Kdf::HkdfSha384 => {
                let alg = if suite.kdf() == Kdf::HkdfSha256 {
                    hkdf::HKDF_SHA256
                } else {
                    hkdf::HKDF_SHA384
                };
                let prk = hkdf::Salt::new(alg, &[]).extract(key.as_bytes());
                expand(&prk, &[&suite_id, message_id], &mut enc_key[..key_len])?;
            }
            Kdf::CommittingHkdfSha512 => {
                // One extract step serves both expansions, as the specification recommends.
                let prk = hkdf::Salt::new(hkdf::HKDF_SHA512, message_id).extract(key.as_bytes());
                expand(
                    &prk,
                    &[&suite_id, DERIVE_KEY_LABEL],
                    &mut enc_key[..key_len],
                )?;
                let mut commit = [0u8; DATA_KEY_LEN];
                expand(&prk, &[COMMIT_KEY_LABEL], &mut commit)?;
                commitment = Some(commit);
            }
        }
        let alg = match key_len {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            _ => &aead::AES_256_GCM,
        };
        let unbound = aead::UnboundKey::new(alg, &enc_key[..key_len]).map_err(|_| Error::Crypto)?;
        Ok(MessageKeys {
            aead: aead::LessSafeKey::new(unbound),
            commitment,
        })
    }

    /// Checks, in constant time, that `stored` is this key's commitment.
    pub(crate) fn verify_commitment(&self, stored: &[u8]) -> Result<(), Error> {
        let ours = self.commitment.as_ref().ok_or(Error::CommitmentMismatch)?;
        constant_time::verify_slices_are_equal(ours, stored).map_err(|_| Error::CommitmentMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTING: Suite = Suite::Aes256GcmHkdfSha512CommitKey;

    #[test]
    fn from_slice_checks_length() {
        assert!(DataKey::from_slice(&[7u8; 32]).is_ok());
        assert_eq!(DataKey::from_slice(&[7u8; 16]).map(|k| k.len()), Ok(16));
        assert_eq!(
            DataKey::from_slice(&[7u8; 24]).map(|k| k.as_bytes().len()),
            Ok(24)
        );
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
    fn key_length_must_match_the_suite() {
        let short = DataKey::from_slice(&[1u8; 16]).expect("key");
        assert!(MessageKeys::derive(Suite::Aes128GcmNoKdf, &short, &[0u8; 16]).is_ok());
        assert_eq!(
            MessageKeys::derive(COMMITTING, &short, &[0u8; 32]).map(|_| ()),
            Err(Error::InvalidDataKeyLength { len: 16 })
        );
    }

    #[test]
    fn commitment_depends_on_key_and_message_id() {
        let derive = |k: u8, id: u8| {
            MessageKeys::derive(COMMITTING, &DataKey::from([k; 32]), &[id; 32]).expect("derive")
        };
        let (a, b, c) = (derive(1, 0), derive(2, 0), derive(1, 1));
        assert_ne!(a.commitment, b.commitment);
        assert_ne!(a.commitment, c.commitment);
        let stored = a.commitment.expect("commits");
        assert!(a.verify_commitment(&stored).is_ok());
        assert_eq!(
            a.verify_commitment(&b.commitment.expect("commits")),
            Err(Error::CommitmentMismatch)
        );
        assert_eq!(a.verify_commitment(&[]), Err(Error::CommitmentMismatch));
        let legacy = MessageKeys::derive(
            Suite::Aes256GcmHkdfSha256,
            &DataKey::from([1; 32]),
            &[0; 16],
        )
        .expect("derive");
        assert!(legacy.commitment.is_none());
    }
}
