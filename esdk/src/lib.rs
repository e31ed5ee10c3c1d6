//! # hearth-esdk
//!
//! The AWS Encryption SDK message format. Read: all eleven algorithm suites, message format
//! versions 1.0 and 2.0, framed and non-framed bodies, signed suites (ECDSA footer), under
//! the ESDK's commitment policies ([`CommitmentPolicy`]). Written: format 2.0, framed, suite
//! 0x0478 (`AES_256_GCM_HKDF_SHA512_COMMIT_KEY`) or 0x0578 (the same, signed with ECDSA
//! P-384, a key pair per message). Messages written here decrypt with the official SDKs
//! (Python, JavaScript, Java, ...), and theirs decrypt here.
//!
//! This is a pure library: no KMS calls and no I/O. The caller gets the plaintext data key
//! and its encrypted copies from KMS and passes them in:
//!
//! - encrypt: for 0x0578 first [`SigningKey::generate`], whose
//!   [`SigningKey::message_context`] is the context KMS must see; `GenerateDataKey` (plus
//!   `Encrypt` under a fallback key, if any) → [`DataKey`] + [`EncryptedDataKey`]s →
//!   [`encrypt`] or [`encrypt_with`];
//! - decrypt: [`parse_header`] → [`check_policy`] → pick an [`EncryptedDataKey`] → KMS
//!   `Decrypt` with the header's encryption context → [`decrypt_with_policy`], then compare
//!   [`Decrypted::context`] with the context the request expects.
//!
//! The specification is the public repository awslabs/aws-encryption-sdk-specification
//! (data-format/, framework/algorithm-suites.md, framework/transitive-requirements.md,
//! client-apis/encrypt.md and decrypt.md).
//!
//! Cryptography is aws-lc-rs (HKDF, AES-GCM, ECDSA, random numbers, constant-time
//! compare); the plaintext data key and the derived key bytes are zeroized on drop.
//!
//! ```
//! use hearth_esdk::{decrypt, encrypt, DataKey, EncryptedDataKey, EncryptionContext};
//!
//! let key = DataKey::from_slice(&[7u8; 32])?; // from KMS GenerateDataKey in real use
//! let edk = EncryptedDataKey {
//!     provider_id: "aws-kms".into(),
//!     provider_info: b"arn:aws:kms:eu-west-1:123456789012:key/example".to_vec(),
//!     ciphertext: b"CiphertextBlob from KMS".to_vec(),
//! };
//! let context = EncryptionContext::from([("tenant".to_owned(), "t-1".to_owned())]);
//! let message = encrypt(&key, &[edk], &context, b"hello", hearth_esdk::DEFAULT_FRAME_LENGTH)?;
//!
//! let header = hearth_esdk::parse_header(&message)?;
//! assert_eq!(header.encryption_context(), &context);
//! let opened = decrypt(&key, &message)?;
//! assert_eq!(opened.plaintext, b"hello");
//! # Ok::<(), hearth_esdk::Error>(())
//! ```
//!
//! # Layout
//! - `error`: [`Error`] with stable [`Error::code`]s, and [`Field`], the field
//!   names errors report.
//! - `suite`: [`Suite`] (the eleven algorithm suites) and [`CommitmentPolicy`].
//! - `key`: [`DataKey`]; derivation of the per-message encryption key and commit key.
//! - `signature`: [`SigningKey`] and the footer's signature check.
//! - `context`: [`EncryptionContext`] and its serialization.
//! - `header`: [`Header`], [`EncryptedDataKey`], [`parse_header`] and header serialization.
//! - `body`: framed body encryption and decryption (frame AAD, IVs, sequence numbers), and
//!   non-framed decryption.
//! - `message`: [`encrypt`] and [`decrypt`], which tie the parts together.
//! - `wire`: the bounds-checked reader every parser uses.
//!
//! # Limits
//! Parsing never panics and never allocates more than the input's size: counts and lengths
//! are checked against the bytes actually present. At most [`MAX_ENCRYPTED_DATA_KEYS`]
//! encrypted data keys and [`MAX_PLAINTEXT_LEN`] bytes of plaintext per message. Not
//! supported: writing suites other than 0x0478 and 0x0578 (or format 1.0, or non-framed
//! bodies), required encryption context keys that are authenticated but not stored,
//! streaming.

mod body;
mod context;
mod error;
mod header;
mod key;
mod message;
mod signature;
mod suite;
mod wire;

pub use context::{user_context, EncryptionContext, RESERVED_CONTEXT_PREFIX};
pub use error::{Error, Field};
pub use header::{parse_header, ContentType, EncryptedDataKey, Header, AWS_KMS_PROVIDER_ID};
pub use key::{DataKey, DATA_KEY_LEN};
pub use message::{
    check_policy, check_public_key, decrypt, decrypt_with_policy, encrypt, encrypt_with, Decrypted,
};
pub use signature::{SigningKey, PUBLIC_KEY_CONTEXT_KEY};
pub use suite::{CommitmentPolicy, Curve, Suite};

/// Message format version written (2.0); 1.0 is read too.
pub const MESSAGE_FORMAT_VERSION: u8 = 0x02;
/// The default algorithm suite written: `AES_256_GCM_HKDF_SHA512_COMMIT_KEY`.
pub const SUITE_ID: u16 = 0x0478;
/// Default plaintext bytes per frame (the ESDK default).
pub const DEFAULT_FRAME_LENGTH: u32 = 4096;
/// Most encrypted data keys a message may carry, on encrypt and on decrypt. The ESDK
/// recommends such a bound so a hostile message cannot make the caller try many KMS calls;
/// Hearth writes one or two (primary and fallback region).
pub const MAX_ENCRYPTED_DATA_KEYS: usize = 32;
/// Largest plaintext encrypted or decrypted in one message (64 MiB): far above any Lambda
/// payload, and a bound on the memory one call can use.
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024 * 1024;
