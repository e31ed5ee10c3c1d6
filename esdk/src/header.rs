//! The message header, versions 1.0 and 2.0 (data-format/message-header.md).
//!
//! ```text
//! version 1.0 (non-committing suites)     version 2.0 (committing suites)
//!   version       u8  = 0x01                version      u8  = 0x02
//!   type          u8  = 0x80                -
//!   suite id      u16                       suite id     u16
//!   message id    [u8; 16]                  message id   [u8; 32]
//!   AAD length    u16, then the serialized encryption context (see context.rs)
//!   EDK count     u16 (> 0), then (u16 len, provider id) (u16 len, info) (u16 len, ciphertext)
//!   content type  u8: 0x01 non-framed, 0x02 framed
//!   reserved      [u8; 4] = 0               -
//!   IV length     u8 = 12                   -
//!   frame length  u32 (0 iff non-framed)    frame length u32 (0 iff non-framed)
//!   -                                       suite data   [u8; 32], the commit key
//! header authentication (AES-GCM over an empty plaintext, AAD = the header body above):
//!   IV [u8; 12], tag [u8; 16]               tag [u8; 16] (the IV is all zeros)
//! ```
//!
//! A suite is only accepted in its own format version (committing suites in 2.0, the others
//! in 1.0), as the specification requires.

use crate::context::{self, EncryptionContext};
use crate::error::{malformed, Error, Field};
use crate::suite::Suite;
use crate::wire::{put_u16_prefixed, Reader};
use crate::MAX_ENCRYPTED_DATA_KEYS;

/// Length of the message id in format version 2.0.
pub const MESSAGE_ID_LEN: usize = 32;
/// Length of the message id in format version 1.0.
pub const MESSAGE_ID_LEN_V1: usize = 16;
/// Length of the algorithm suite data (the commit key) of the committing suites.
pub const COMMITMENT_LEN: usize = 32;
/// Length of every AES-GCM tag in the message.
pub const TAG_LEN: usize = 16;
/// Length of every AES-GCM IV in the message.
pub const IV_LEN: usize = 12;
/// Content type byte of framed content, the only one this crate writes.
pub const CONTENT_TYPE_FRAMED: u8 = 0x02;
/// Content type byte of non-framed content (read only).
const CONTENT_TYPE_NON_FRAMED: u8 = 0x01;
/// The format 1.0 message type: customer authenticated encrypted data.
const MESSAGE_TYPE_V1: u8 = 0x80;

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

/// How the body is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// One AES-GCM block for the whole plaintext (legacy; read only).
    NonFramed,
    /// Frames of [`Header::frame_length`] bytes.
    Framed,
}

/// A parsed message header. Parsing does not authenticate it: the tag is checked by
/// [`crate::decrypt`] once the data key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    version: u8,
    suite: Suite,
    message_id: Vec<u8>,
    context: EncryptionContext,
    encrypted_data_keys: Vec<EncryptedDataKey>,
    content_type: ContentType,
    frame_length: u32,
    commitment: Option<[u8; COMMITMENT_LEN]>,
    header_iv: [u8; IV_LEN],
    auth_tag: [u8; TAG_LEN],
    body_length: usize,
}

impl Header {
    /// Message format version: 1 or 2.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Algorithm suite id.
    pub fn suite_id(&self) -> u16 {
        self.suite.id()
    }

    /// Algorithm suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The random message id (16 bytes in format 1.0, 32 in 2.0).
    pub fn message_id(&self) -> &[u8] {
        &self.message_id
    }

    /// The encryption context stored in the header, reserved `aws-crypto-` entries (the
    /// signature's public key) included.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The encrypted data keys, in header order.
    pub fn encrypted_data_keys(&self) -> &[EncryptedDataKey] {
        &self.encrypted_data_keys
    }

    /// Framed or non-framed body.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// Plaintext bytes per regular frame (0 for non-framed content).
    pub fn frame_length(&self) -> u32 {
        self.frame_length
    }

    /// The key commitment (algorithm suite data) of committing suites.
    pub fn commitment(&self) -> Option<&[u8; COMMITMENT_LEN]> {
        self.commitment.as_ref()
    }

    /// Total header length in bytes, including the authentication: the body starts here.
    pub fn header_length(&self) -> usize {
        let iv = if self.version == 1 { IV_LEN } else { 0 };
        self.body_length.saturating_add(iv + TAG_LEN)
    }

    /// Length of the header body (the bytes the header tag authenticates).
    pub(crate) fn body_length(&self) -> usize {
        self.body_length
    }

    pub(crate) fn header_iv(&self) -> [u8; IV_LEN] {
        self.header_iv
    }

    pub(crate) fn auth_tag(&self) -> &[u8; TAG_LEN] {
        &self.auth_tag
    }
}

/// Parses the header at the start of `message` (anything after it is ignored).
///
/// Use it to read the suite, the encrypted data keys and the encryption context before the
/// data key is known. Nothing is authenticated yet: treat the values as untrusted until
/// [`crate::decrypt`] succeeds.
pub fn parse_header(message: &[u8]) -> Result<Header, Error> {
    let mut r = Reader::new(message);

    let version = r.u8(Field::Version)?;
    if version != 1 && version != 2 {
        return Err(Error::UnsupportedVersion(version));
    }
    let v1 = version == 1;
    if v1 && r.u8(Field::MessageType)? != MESSAGE_TYPE_V1 {
        return Err(malformed(Field::MessageType, "not 0x80"));
    }
    let suite_id = r.u16(Field::SuiteId)?;
    let suite = Suite::from_id(suite_id).ok_or(Error::UnsupportedSuite(suite_id))?;
    if suite.message_format_version() != version {
        return Err(malformed(
            Field::SuiteId,
            "suite not allowed in this message format version",
        ));
    }
    let id_len = if v1 {
        MESSAGE_ID_LEN_V1
    } else {
        MESSAGE_ID_LEN
    };
    let message_id = r.take(id_len, Field::MessageId)?.to_vec();

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

    let content_type = match r.u8(Field::ContentType)? {
        CONTENT_TYPE_FRAMED => ContentType::Framed,
        CONTENT_TYPE_NON_FRAMED => ContentType::NonFramed,
        _ => return Err(malformed(Field::ContentType, "unknown content type")),
    };
    if v1 {
        if r.array::<4>(Field::Reserved)? != [0; 4] {
            return Err(malformed(Field::Reserved, "not zero"));
        }
        if usize::from(r.u8(Field::IvLength)?) != IV_LEN {
            return Err(malformed(Field::IvLength, "not the suite's 12"));
        }
    }
    let frame_length = r.u32(Field::FrameLength)?;
    match (content_type, frame_length) {
        (ContentType::Framed, 0) => {
            return Err(malformed(Field::FrameLength, "zero with framed content"))
        }
        (ContentType::NonFramed, 1..) => {
            return Err(malformed(
                Field::FrameLength,
                "not zero with non-framed content",
            ))
        }
        _ => {}
    }
    let commitment = if v1 {
        None
    } else {
        Some(r.array::<COMMITMENT_LEN>(Field::SuiteData)?)
    };
    let body_length = r.position();
    let header_iv = if v1 {
        r.array::<IV_LEN>(Field::HeaderIv)?
    } else {
        [0u8; IV_LEN]
    };
    let auth_tag = r.array::<TAG_LEN>(Field::HeaderAuthTag)?;

    Ok(Header {
        version,
        suite,
        message_id,
        context,
        encrypted_data_keys,
        content_type,
        frame_length,
        commitment,
        header_iv,
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

/// Serializes a format 2.0 header body (everything the header tag covers), framed.
pub(crate) fn write_body(
    suite: Suite,
    message_id: &[u8; MESSAGE_ID_LEN],
    context: &[u8],
    edks: &[EncryptedDataKey],
    frame_length: u32,
    commitment: &[u8; COMMITMENT_LEN],
) -> Result<Vec<u8>, Error> {
    let too_long = |reason| Error::InvalidEncryptedDataKey { reason };
    let mut out = Vec::with_capacity(128 + context.len());
    out.push(suite.message_format_version());
    out.extend_from_slice(&suite.id().to_be_bytes());
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
