//! The crate's error type and the names of the message fields it reports.
//!
//! Every error carries only structural facts (a field name, a count, an id byte): never key
//! bytes, derived keys or plaintext, so any of them can be logged or returned to a caller.

use std::fmt;

/// A field of the message format, named in [`Error::Truncated`], [`Error::Malformed`] and
/// [`Error::AuthenticationFailed`]. `Display` gives a stable snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Header: message format version (1 byte).
    Version,
    /// Header (format 1.0): message type (1 byte, 0x80).
    MessageType,
    /// Header: algorithm suite id (2 bytes).
    SuiteId,
    /// Header: message id (32 bytes).
    MessageId,
    /// Header: the AAD, i.e. the u16 length of the serialized encryption context and the
    /// bytes it delimits (a message that ends anywhere inside them is truncated here).
    AadLength,
    /// Header: number of encryption context entries (2 bytes).
    ContextCount,
    /// Header: length of an encryption context key (2 bytes).
    ContextKeyLength,
    /// Header: an encryption context key.
    ContextKey,
    /// Header: length of an encryption context value (2 bytes).
    ContextValueLength,
    /// Header: an encryption context value.
    ContextValue,
    /// Header: number of encrypted data keys (2 bytes).
    EdkCount,
    /// Header: length of a key provider id (2 bytes).
    ProviderIdLength,
    /// Header: a key provider id.
    ProviderId,
    /// Header: length of a key provider info (2 bytes).
    ProviderInfoLength,
    /// Header: a key provider info.
    ProviderInfo,
    /// Header: length of an encrypted data key's ciphertext (2 bytes).
    EdkCiphertextLength,
    /// Header: an encrypted data key's ciphertext.
    EdkCiphertext,
    /// Header: content type (1 byte).
    ContentType,
    /// Header (format 1.0): reserved bytes (4, zero).
    Reserved,
    /// Header (format 1.0): IV length (1 byte, 12).
    IvLength,
    /// Header: frame length (4 bytes).
    FrameLength,
    /// Header: algorithm suite data, the key commitment (32 bytes).
    SuiteData,
    /// Header (format 1.0): the header authentication IV (12 bytes).
    HeaderIv,
    /// Header: authentication tag (16 bytes).
    HeaderAuthTag,
    /// Body: a frame's sequence number (or the final-frame marker).
    SequenceNumber,
    /// Body: a frame's IV (12 bytes), or the non-framed body's.
    FrameIv,
    /// Body: the final frame's encrypted content length (4 bytes), or the non-framed
    /// body's (8 bytes).
    FrameContentLength,
    /// Body: a frame's encrypted content, or the non-framed body's.
    FrameContent,
    /// Body: a frame's authentication tag (16 bytes), or the non-framed body's.
    FrameAuthTag,
    /// Footer: the signature length (2 bytes).
    SignatureLength,
    /// Footer: the signature.
    Signature,
}

impl Field {
    /// The stable snake_case name of the field.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Version => "version",
            Field::MessageType => "message_type",
            Field::SuiteId => "suite_id",
            Field::MessageId => "message_id",
            Field::AadLength => "aad_length",
            Field::ContextCount => "context_count",
            Field::ContextKeyLength => "context_key_length",
            Field::ContextKey => "context_key",
            Field::ContextValueLength => "context_value_length",
            Field::ContextValue => "context_value",
            Field::EdkCount => "edk_count",
            Field::ProviderIdLength => "provider_id_length",
            Field::ProviderId => "provider_id",
            Field::ProviderInfoLength => "provider_info_length",
            Field::ProviderInfo => "provider_info",
            Field::EdkCiphertextLength => "edk_ciphertext_length",
            Field::EdkCiphertext => "edk_ciphertext",
            Field::ContentType => "content_type",
            Field::Reserved => "reserved",
            Field::IvLength => "iv_length",
            Field::FrameLength => "frame_length",
            Field::SuiteData => "suite_data",
            Field::HeaderIv => "header_iv",
            Field::HeaderAuthTag => "header_auth_tag",
            Field::SequenceNumber => "sequence_number",
            Field::FrameIv => "frame_iv",
            Field::FrameContentLength => "frame_content_length",
            Field::FrameContent => "frame_content",
            Field::FrameAuthTag => "frame_auth_tag",
            Field::SignatureLength => "signature_length",
            Field::Signature => "signature",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong while encrypting, parsing or decrypting a message.
///
/// [`Error::code`] gives a stable machine-readable code for each variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message ended in the middle of `field`.
    #[error("message truncated in {field}")]
    Truncated {
        /// The field that was cut short.
        field: Field,
    },
    /// The message format version is neither 1.0 nor 2.0.
    #[error("unsupported message format version {0:#04x}")]
    UnsupportedVersion(u8),
    /// The algorithm suite is not one of the ESDK's eleven (on decrypt), or not one this
    /// crate writes (on encrypt: 0x0478 and 0x0578).
    #[error("unsupported algorithm suite {0:#06x}")]
    UnsupportedSuite(u16),
    /// The commitment policy refuses the message's suite (a non-committing suite under
    /// require-encrypt-require-decrypt, or a suite encrypt may not use).
    #[error("the commitment policy {policy} does not allow algorithm suite {suite:#06x}")]
    CommitmentPolicy {
        /// The suite id.
        suite: u16,
        /// The policy's name.
        policy: &'static str,
    },
    /// A signed message's public key is missing or malformed, or an unsigned one has one.
    #[error("invalid signature public key: {reason}")]
    InvalidPublicKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// The footer's signature does not verify: the message was altered.
    #[error("the message signature does not verify")]
    SignatureInvalid,
    /// A field holds a value the format does not allow.
    #[error("malformed {field}: {reason}")]
    Malformed {
        /// The offending field.
        field: Field,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The header lists more encrypted data keys than [`crate::MAX_ENCRYPTED_DATA_KEYS`].
    #[error("too many encrypted data keys: {count} (at most {max})")]
    TooManyEncryptedDataKeys {
        /// The number in the header or in the input.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The data key does not match the key commitment in the header: wrong key, or a
    /// tampered header.
    #[error("key commitment mismatch: the data key does not belong to this message")]
    CommitmentMismatch,
    /// An AES-GCM tag did not verify: the message was altered or the key is wrong.
    #[error("authentication failed at {field}")]
    AuthenticationFailed {
        /// [`Field::HeaderAuthTag`] or [`Field::FrameAuthTag`].
        field: Field,
    },
    /// Bytes follow the end of the message (the final frame, or the footer).
    #[error("{count} unexpected bytes after the end of the message")]
    TrailingBytes {
        /// How many bytes follow.
        count: usize,
    },
    /// The plaintext data key does not have the suite's length (16, 24 or 32 bytes).
    #[error("data key has the wrong length for the suite: {len} bytes")]
    InvalidDataKeyLength {
        /// The length supplied.
        len: usize,
    },
    /// Encrypt was called with a frame length of 0.
    #[error("frame length must be greater than 0")]
    InvalidFrameLength,
    /// The plaintext is larger than [`crate::MAX_PLAINTEXT_LEN`].
    #[error("plaintext of {len} bytes exceeds the limit of {max} bytes")]
    PlaintextTooLarge {
        /// The plaintext length (on decrypt: the length decrypted so far).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The encryption context cannot be serialized (too long) or uses a reserved key.
    #[error("invalid encryption context: {reason}")]
    InvalidEncryptionContext {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Encrypt was given a signing key for an unsigned suite, or none for a signed one.
    #[error("signing key: {reason}")]
    InvalidSigningKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// An encrypted data key passed to encrypt cannot be serialized, or none was given.
    #[error("invalid encrypted data key: {reason}")]
    InvalidEncryptedDataKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The crypto library failed (random number generator, key setup). Not caused by input.
    #[error("cryptographic operation failed")]
    Crypto,
}

impl Error {
    /// A stable CamelCase code for the error, fit for an API error body or a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Truncated { .. } => "TruncatedCiphertext",
            Error::UnsupportedVersion(_) => "UnsupportedVersion",
            Error::UnsupportedSuite(_) => "UnsupportedAlgorithm",
            Error::CommitmentPolicy { .. } => "CommitmentPolicyViolation",
            Error::InvalidPublicKey { .. } => "InvalidPublicKey",
            Error::SignatureInvalid => "SignatureInvalid",
            Error::Malformed { .. } => "MalformedCiphertext",
            Error::TooManyEncryptedDataKeys { .. } => "TooManyEncryptedDataKeys",
            Error::CommitmentMismatch => "CommitmentMismatch",
            Error::AuthenticationFailed { .. } => "AuthenticationFailed",
            Error::TrailingBytes { .. } => "TrailingBytes",
            Error::InvalidDataKeyLength { .. } => "InvalidDataKey",
            Error::InvalidFrameLength => "InvalidFrameLength",
            Error::PlaintextTooLarge { .. } => "PlaintextTooLarge",
            Error::InvalidEncryptionContext { .. } => "InvalidEncryptionContext",
            Error::InvalidEncryptedDataKey { .. } => "InvalidEncryptedDataKey",
            Error::InvalidSigningKey { .. } => "InvalidSigningKey",
            Error::Crypto => "CryptoFailure",
        }
    }
}

/// Shorthand used inside the crate.
pub(crate) fn malformed(field: Field, reason: &'static str) -> Error {
    Error::Malformed { field, reason }
}
