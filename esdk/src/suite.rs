//! Algorithm suites (framework/algorithm-suites.md) and commitment policies
//! (client-apis/client.md).
//!
//! | id     | key | KDF          | commits | signature | format |
//! |--------|-----|--------------|---------|-----------|--------|
//! | 0x0014 | 128 | none         | no      | none      | 1.0    |
//! | 0x0046 | 192 | none         | no      | none      | 1.0    |
//! | 0x0078 | 256 | none         | no      | none      | 1.0    |
//! | 0x0114 | 128 | HKDF-SHA256  | no      | none      | 1.0    |
//! | 0x0146 | 192 | HKDF-SHA256  | no      | none      | 1.0    |
//! | 0x0178 | 256 | HKDF-SHA256  | no      | none      | 1.0    |
//! | 0x0214 | 128 | HKDF-SHA256  | no      | P-256     | 1.0    |
//! | 0x0346 | 192 | HKDF-SHA384  | no      | P-384     | 1.0    |
//! | 0x0378 | 256 | HKDF-SHA384  | no      | P-384     | 1.0    |
//! | 0x0478 | 256 | HKDF-SHA512  | yes     | none      | 2.0    |
//! | 0x0578 | 256 | HKDF-SHA512  | yes     | P-384     | 2.0    |
//!
//! Every suite is AES-GCM with a 12-byte IV and a 16-byte tag.

use std::fmt;

/// One of the eleven ESDK algorithm suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Suite {
    /// 0x0014 `AES_128_GCM_IV12_TAG16_NO_KDF`.
    Aes128GcmNoKdf,
    /// 0x0046 `AES_192_GCM_IV12_TAG16_NO_KDF`.
    Aes192GcmNoKdf,
    /// 0x0078 `AES_256_GCM_IV12_TAG16_NO_KDF`.
    Aes256GcmNoKdf,
    /// 0x0114 `AES_128_GCM_IV12_TAG16_HKDF_SHA256`.
    Aes128GcmHkdfSha256,
    /// 0x0146 `AES_192_GCM_IV12_TAG16_HKDF_SHA256`.
    Aes192GcmHkdfSha256,
    /// 0x0178 `AES_256_GCM_IV12_TAG16_HKDF_SHA256`.
    Aes256GcmHkdfSha256,
    /// 0x0214 `AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256`.
    Aes128GcmHkdfSha256EcdsaP256,
    /// 0x0346 `AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384`.
    Aes192GcmHkdfSha384EcdsaP384,
    /// 0x0378 `AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384`.
    Aes256GcmHkdfSha384EcdsaP384,
    /// 0x0478 `AES_256_GCM_HKDF_SHA512_COMMIT_KEY`: Hearth's default.
    Aes256GcmHkdfSha512CommitKey,
    /// 0x0578 `AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384`: the official SDKs' default.
    Aes256GcmHkdfSha512CommitKeyEcdsaP384,
}

/// The key derivation of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kdf {
    /// The data key is the encryption key.
    Identity,
    /// HKDF, salt none, info = suite id || message id (format 1.0).
    HkdfSha256,
    /// As [`Kdf::HkdfSha256`] with SHA-384.
    HkdfSha384,
    /// HKDF-SHA512, salt = message id, info = suite id || "DERIVEKEY"; plus the commit key
    /// (format 2.0).
    CommittingHkdfSha512,
}

/// The signature algorithm of a signed suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// ECDSA on P-256 with SHA-256.
    P256,
    /// ECDSA on P-384 with SHA-384.
    P384,
}

impl Curve {
    /// Length of a compressed SEC1 public point on the curve.
    pub(crate) fn compressed_point_len(self) -> usize {
        match self {
            Curve::P256 => 33,
            Curve::P384 => 49,
        }
    }
}

impl Suite {
    /// All eleven suites, in id order.
    pub const ALL: [Suite; 11] = [
        Suite::Aes128GcmNoKdf,
        Suite::Aes192GcmNoKdf,
        Suite::Aes256GcmNoKdf,
        Suite::Aes128GcmHkdfSha256,
        Suite::Aes192GcmHkdfSha256,
        Suite::Aes256GcmHkdfSha256,
        Suite::Aes128GcmHkdfSha256EcdsaP256,
        Suite::Aes192GcmHkdfSha384EcdsaP384,
        Suite::Aes256GcmHkdfSha384EcdsaP384,
        Suite::Aes256GcmHkdfSha512CommitKey,
        Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ];

    /// The suite with this id, if it is one of the eleven.
    pub fn from_id(id: u16) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The two-byte suite id.
    pub fn id(self) -> u16 {
        match self {
            Suite::Aes128GcmNoKdf => 0x0014,
            Suite::Aes192GcmNoKdf => 0x0046,
            Suite::Aes256GcmNoKdf => 0x0078,
            Suite::Aes128GcmHkdfSha256 => 0x0114,
            Suite::Aes192GcmHkdfSha256 => 0x0146,
            Suite::Aes256GcmHkdfSha256 => 0x0178,
            Suite::Aes128GcmHkdfSha256EcdsaP256 => 0x0214,
            Suite::Aes192GcmHkdfSha384EcdsaP384 => 0x0346,
            Suite::Aes256GcmHkdfSha384EcdsaP384 => 0x0378,
            Suite::Aes256GcmHkdfSha512CommitKey => 0x0478,
            Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => 0x0578,
        }
    }

    /// The specification's name of the suite.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes128GcmNoKdf => "AES_128_GCM_IV12_TAG16_NO_KDF",
            Suite::Aes192GcmNoKdf => "AES_192_GCM_IV12_TAG16_NO_KDF",
            Suite::Aes256GcmNoKdf => "AES_256_GCM_IV12_TAG16_NO_KDF",
            Suite::Aes128GcmHkdfSha256 => "AES_128_GCM_IV12_TAG16_HKDF_SHA256",
            Suite::Aes192GcmHkdfSha256 => "AES_192_GCM_IV12_TAG16_HKDF_SHA256",
            Suite::Aes256GcmHkdfSha256 => "AES_256_GCM_IV12_TAG16_HKDF_SHA256",
            Suite::Aes128GcmHkdfSha256EcdsaP256 => "AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256",
            Suite::Aes192GcmHkdfSha384EcdsaP384 => "AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
            Suite::Aes256GcmHkdfSha384EcdsaP384 => "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
            Suite::Aes256GcmHkdfSha512CommitKey => "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
            Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
            }
        }
    }

    /// Length of the plaintext data key (and of the AES key): 16, 24 or 32 bytes.
    pub fn key_len(self) -> usize {
        match self {
            Suite::Aes128GcmNoKdf
            | Suite::Aes128GcmHkdfSha256
            | Suite::Aes128GcmHkdfSha256EcdsaP256 => 16,
            Suite::Aes192GcmNoKdf
            | Suite::Aes192GcmHkdfSha256
            | Suite::Aes192GcmHkdfSha384EcdsaP384 => 24,
            _ => 32,
        }
    }

    pub(crate) fn kdf(self) -> Kdf {
        match self {
            Suite::Aes128GcmNoKdf | Suite::Aes192GcmNoKdf | Suite::Aes256GcmNoKdf => Kdf::Identity,
            Suite::Aes128GcmHkdfSha256
            | Suite::Aes192GcmHkdfSha256
            | Suite::Aes256GcmHkdfSha256
            | Suite::Aes128GcmHkdfSha256EcdsaP256 => Kdf::HkdfSha256,
            Suite::Aes192GcmHkdfSha384EcdsaP384 | Suite::Aes256GcmHkdfSha384EcdsaP384 => {
                Kdf::HkdfSha384
            }
            Suite::Aes256GcmHkdfSha512CommitKey | Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                Kdf::CommittingHkdfSha512
            }
        }
    }

    /// Whether the suite commits the message to its data key (0x0478 and 0x0578).
    pub fn is_committing(self) -> bool {
        self.kdf() == Kdf::CommittingHkdfSha512
    }

    /// The signature algorithm, for signed suites.
    pub fn signature(self) -> Option<Curve> {
        match self {
            Suite::Aes128GcmHkdfSha256EcdsaP256 => Some(Curve::P256),
            Suite::Aes192GcmHkdfSha384EcdsaP384
            | Suite::Aes256GcmHkdfSha384EcdsaP384
            | Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => Some(Curve::P384),
            _ => None,
        }
    }

    /// The message format version the suite is written in: 2 for committing suites, else 1.
    pub fn message_format_version(self) -> u8 {
        if self.is_committing() {
            2
        } else {
            1
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x} {}", self.id(), self.name())
    }
}

/// The ESDK's commitment policy: which suites encrypt may use and decrypt may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CommitmentPolicy {
    /// Encrypt and decrypt only committing suites (the ESDK's default, and Hearth's).
    #[default]
    RequireEncryptRequireDecrypt,
    /// Encrypt committing suites; decrypt any (migration from ESDK 1.x).
    RequireEncryptAllowDecrypt,
    /// Encrypt non-committing suites only; decrypt any (ESDK 1.7 behaviour).
    ForbidEncryptAllowDecrypt,
}

impl CommitmentPolicy {
    /// The policy's kebab-case name, as Hearth's configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitmentPolicy::RequireEncryptRequireDecrypt => "require-encrypt-require-decrypt",
            CommitmentPolicy::RequireEncryptAllowDecrypt => "require-encrypt-allow-decrypt",
            CommitmentPolicy::ForbidEncryptAllowDecrypt => "forbid-encrypt-allow-decrypt",
        }
    }

    /// Parses [`CommitmentPolicy::as_str`]'s names (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<CommitmentPolicy> {
        [
            CommitmentPolicy::RequireEncryptRequireDecrypt,
            CommitmentPolicy::RequireEncryptAllowDecrypt,
            CommitmentPolicy::ForbidEncryptAllowDecrypt,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether a message in `suite` may be decrypted.
    pub fn allows_decrypt(self, suite: Suite) -> bool {
        suite.is_committing() || self != CommitmentPolicy::RequireEncryptRequireDecrypt
    }

    /// Whether a message may be encrypted in `suite`.
    pub fn allows_encrypt(self, suite: Suite) -> bool {
        suite.is_committing() != (self == CommitmentPolicy::ForbidEncryptAllowDecrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_properties_match_the_table() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_id(s.id()), Some(s));
            assert_eq!(s.name().contains("COMMIT"), s.is_committing(), "{s}");
            assert_eq!(s.name().contains("ECDSA"), s.signature().is_some(), "{s}");
            let bits = s.key_len() * 8;
            assert!(s.name().starts_with(&format!("AES_{bits}_")), "{s}");
        }
        assert_eq!(Suite::from_id(0x0479), None);
        assert_eq!(
            Suite::Aes128GcmHkdfSha256EcdsaP256.signature(),
            Some(Curve::P256)
        );
        assert_eq!(Suite::Aes256GcmNoKdf.message_format_version(), 1);
        assert_eq!(
            Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384.message_format_version(),
            2
        );
    }

    #[test]
    fn policies() {
        use CommitmentPolicy::*;
        let legacy = Suite::Aes256GcmHkdfSha384EcdsaP384;
        let modern = Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
        assert!(!RequireEncryptRequireDecrypt.allows_decrypt(legacy));
        assert!(RequireEncryptRequireDecrypt.allows_decrypt(modern));
        assert!(RequireEncryptAllowDecrypt.allows_decrypt(legacy));
        assert!(ForbidEncryptAllowDecrypt.allows_decrypt(modern));
        assert!(RequireEncryptAllowDecrypt.allows_encrypt(modern));
        assert!(!RequireEncryptAllowDecrypt.allows_encrypt(legacy));
        assert!(ForbidEncryptAllowDecrypt.allows_encrypt(legacy));
        assert!(!ForbidEncryptAllowDecrypt.allows_encrypt(modern));
        for p in [
            RequireEncryptRequireDecrypt,
            RequireEncryptAllowDecrypt,
            ForbidEncryptAllowDecrypt,
        ] {
            assert_eq!(CommitmentPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(CommitmentPolicy::parse("require"), None);
        assert_eq!(CommitmentPolicy::default(), RequireEncryptRequireDecrypt);
    }
}
