//! The message header, version 2.0 (data-format/message-header.md).
//!
//! ```text
//! header body:
//!   version            u8   = 0x02
//!   suite id           u16  = 0x0478
//!   message id         [u8; 32]
//!   AAD length         u16, then the serialized encryption context (see context.rs)
//!   EDK count          u16  (> 0)
//!   EDK entries        (u16 len, provider id) (u16 len, provider info) (u16 len, ciphertext)
//!   content type       u8   = 0x02 (framed)
//!   frame length       u32  (> 0)
//!   suite data         [u8; 32]  the commit key
//! header authentication:
//!   tag                [u8; 16]  AES-GCM over an empty plaintext, AAD = header body, IV = 0
//! ```
//!
//! Version 2.0 has no type byte, no reserved bytes, no IV length and no header IV (the IV
//! is all zeros); those fields exist only in version 1.0, which this crate does not accept.

use crate::context::{self, EncryptionContext};
use crate::error::{malformed, Error, Field};
use crate::wire::{put_u16_prefixed, Reader};
use crate::{MAX_ENCRYPTED_DATA_KEYS, MESSAGE_FORMAT_VERSION, SUITE_ID};

/// Length of the message id in format version 2.0.
pub const MESSAGE_ID_LEN: usize = 32;
/// Length of the algorithm suite data (the commit key) of suite 0x0478.
pub const COMMITMENT_LEN: usize = 32;
/// Length of every AES-GCM tag in the message.
pub const TAG_LEN: usize = 16;
/// Length of every AES-GCM IV in the message.
pub const IV_LEN: usize = 12;
/// Content type byte of framed content, the only one this crate writes and reads.
pub const CONTENT_TYPE_FRAMED: u8 = 0x02;
/// Content type byte of non-framed content (legacy; refused).
const CONTENT_TYPE_NON_FRAMED: u8 = 0x01;

/// Key provider id of AWS KMS encrypted data keys (their provider info is the key ARN).
pub const AWS_KMS_PROVIDER_ID: &str = "aws-kms";

/// One encrypted copy of the message's data key, as stored in the header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedDataKey {
    /// Who can decrypt it: `"aws-kms"` for KMS.
    pub provider_id: String,
    /// Provider-specific key identifier: for KMS, the key ARN as UTF-8 bytes.
    pub provider_info: Vec<u8>,
    /// The encrypted data key (for KMS, the `CiphertextBlob`).
    pub ciphertext: Vec<u8>,
}

/// A parsed message header. Parsing does not authenticate it: the tag is checked by
/// [`crate::decrypt`] once the data key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    message_id: [u8; MESSAGE_ID_LEN],
    context: EncryptionContext,
    encrypted_data_keys: Vec<EncryptedDataKey>,
    frame_length: u32,
    commitment: [u8; COMMITMENT_LEN],
    auth_tag: [u8; TAG_LEN],
    body_length: usize,
}

impl Header {
    /// Message format version (always 2).
    pub fn version(&self) -> u8 {
        MESSAGE_FORMAT_VERSION
    }

    /// Algorithm suite id (always 0x0478).
    pub fn suite_id(&self) -> u16 {
        SUITE_ID
    }

    /// The random 32-byte message id.
    pub fn message_id(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.message_id
    }

    /// The encryption context stored in the header.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The encrypted data keys, in header order.
    pub fn encrypted_data_keys(&self) -> &[EncryptedDataKey] {
        &self.encrypted_data_keys
    }

    /// Plaintext bytes per regular frame.
    pub fn frame_length(&self) -> u32 {
        self.frame_length
    }

    /// The key commitment (algorithm suite data).
    pub fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// Total header length in bytes, including the authentication tag: the body starts here.
    pub fn header_length(&self) -> usize {
        self.body_length.saturating_add(TAG_LEN)
    }

    /// Length of the header body (the bytes the header tag authenticates).
    pub(crate) fn body_length(&self) -> usize {
        self.body_length
    }

    pub(crate) fn auth_tag(&self) -> &[u8; TAG_LEN] {
        &self.auth_tag
    }
}

/// Parses the header at the start of `message` (anything after it is ignored).
///
/// Use it to read the encrypted data keys and the encryption context before the data key is
/// known. Nothing is authenticated yet: treat the values as untrusted until
/// [`crate::decrypt`] succeeds.
pub fn parse_header(message: &[u8]) -> Result<Header, Error> {
    let mut r = Reader::new(message);

    let version = r.u8(Field::Version)?;
    if version != MESSAGE_FORMAT_VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    let suite = r.u16(Field::SuiteId)?;
    if suite != SUITE_ID {
        return Err(Error::UnsupportedSuite(suite));
    }
    let message_id = r.array::<MESSAGE_ID_LEN>(Field::MessageId)?;

    // A message that ends inside the context is reported as truncated in the AAD as a whole.
    let aad = r.u16_prefixed(Field::AadLength, Field::AadLength)?;
    let context = context::parse(aad)?;

    let edk_count = usize::from(r.u16(Field::EdkCount)?);
    if edk_count == 0 {
        return Err(malformed(Field::EdkCount, "zero encrypted data keys"));
    }
    if edk_count > MAX_ENCRYPTED_DATA_KEYS {
        return Err(Error::TooManyEncryptedDataKeys {
            count: edk_count,
            max: MAX_ENCRYPTED_DATA_KEYS,
        });
    }
    let mut encrypted_data_keys = Vec::with_capacity(edk_count);
    for _ in 0..edk_count {
        let provider_id = r.u16_prefixed(Field::ProviderIdLength, Field::ProviderId)?;
        let provider_id = std::str::from_utf8(provider_id)
            .map_err(|_| malformed(Field::ProviderId, "not UTF-8"))?;
        let provider_info = r.u16_prefixed(Field::ProviderInfoLength, Field::ProviderInfo)?;
        let ciphertext = r.u16_prefixed(Field::EdkCiphertextLength, Field::EdkCiphertext)?;
        encrypted_data_keys.push(EncryptedDataKey {
            provider_id: provider_id.to_owned(),
            provider_info: provider_info.to_vec(),
            ciphertext: ciphertext.to_vec(),
        });
    }

    match r.u8(Field::ContentType)? {
        CONTENT_TYPE_FRAMED => {}
        CONTENT_TYPE_NON_FRAMED => {
            return Err(Error::UnsupportedContentType(CONTENT_TYPE_NON_FRAMED))
        }
        _ => return Err(malformed(Field::ContentType, "unknown content type")),
    }
    let frame_length = r.u32(Field::FrameLength)?;
    if frame_length == 0 {
        return Err(malformed(Field::FrameLength, "zero with framed content"));
    }
    let commitment = r.array::<COMMITMENT_LEN>(Field::SuiteData)?;
    let body_length = r.position();
    let auth_tag = r.array::<TAG_LEN>(Field::HeaderAuthTag)?;

    Ok(Header {
        message_id,
        context,
        encrypted_data_keys,
        frame_length,
        commitment,
        auth_tag,
        body_length,
    })
}

/// Checks the encrypted data keys given to encrypt.
pub(crate) fn check_encrypted_data_keys(edks: &[EncryptedDataKey]) -> Result<(), Error> {
    if edks.is_empty() {
        return Err(Error::InvalidEncryptedDataKey {
            reason: "at least one encrypted data key is required",
        });
    }
    if edks.len() > MAX_ENCRYPTED_DATA_KEYS {
        return Err(Error::TooManyEncryptedDataKeys {
            count: edks.len(),
            max: MAX_ENCRYPTED_DATA_KEYS,
        });
    }
    Ok(())
}

/// Serializes a header body (everything the header tag covers).
pub(crate) fn write_body(
    message_id: &[u8; MESSAGE_ID_LEN],
    context: &[u8],
    edks: &[EncryptedDataKey],
    frame_length: u32,
    commitment: &[u8; COMMITMENT_LEN],
) -> Result<Vec<u8>, Error> {
    let too_long = |reason| Error::InvalidEncryptedDataKey { reason };
    let mut out = Vec::with_capacity(128 + context.len());
    out.push(MESSAGE_FORMAT_VERSION);
    out.extend_from_slice(&SUITE_ID.to_be_bytes());
    out.extend_from_slice(message_id);
    put_u16_prefixed(&mut out, context).ok_or(Error::InvalidEncryptionContext {
        reason: "serialized form exceeds 65535 bytes",
    })?;
    let count = u16::try_from(edks.len()).map_err(|_| too_long("too many encrypted data keys"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for edk in edks {
        put_u16_prefixed(&mut out, edk.provider_id.as_bytes())
            .ok_or(too_long("provider id exceeds 65535 bytes"))?;
        put_u16_prefixed(&mut out, &edk.provider_info)
            .ok_or(too_long("provider info exceeds 65535 bytes"))?;
        put_u16_prefixed(&mut out, &edk.ciphertext)
            .ok_or(too_long("ciphertext exceeds 65535 bytes"))?;
    }
    out.push(CONTENT_TYPE_FRAMED);
    out.extend_from_slice(&frame_length.to_be_bytes());
    out.extend_from_slice(commitment);
    Ok(out)
}
