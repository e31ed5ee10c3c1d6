//! Whole-message encrypt and decrypt (client-apis/encrypt.md, decrypt.md), non-streaming.

use std::fmt;

use aws_lc_rs::aead::{Aad, Nonce};
use aws_lc_rs::rand;

use crate::context::{self, EncryptionContext};
use crate::error::{Error, Field};
use crate::header::{self, parse_header, EncryptedDataKey, IV_LEN, MESSAGE_ID_LEN, TAG_LEN};
use crate::key::{DataKey, MessageKeys};
use crate::wire::Reader;
use crate::{body, MAX_PLAINTEXT_LEN};

/// The result of [`decrypt`]: the authenticated plaintext and encryption context.
///
/// `Debug` shows the plaintext's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The encryption context from the (now authenticated) header. The caller compares it
    /// with the context it expects.
    pub context: EncryptionContext,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("context", &self.context)
            .finish()
    }
}

/// Encrypts `plaintext` into an ESDK message (format 2.0, suite 0x0478, framed).
///
/// `key` is the plaintext data key and `edks` its encrypted copies (at least one, at most
/// [`crate::MAX_ENCRYPTED_DATA_KEYS`]); both come from the caller's key provider (KMS).
/// `frame_length` is the plaintext bytes per frame, usually
/// [`crate::DEFAULT_FRAME_LENGTH`]. A fresh random message id is drawn for every call, so the
/// same data key can safely encrypt many messages.
pub fn encrypt(
    key: &DataKey,
    edks: &[EncryptedDataKey],
    context: &EncryptionContext,
    plaintext: &[u8],
    frame_length: u32,
) -> Result<Vec<u8>, Error> {
    if frame_length == 0 {
        return Err(Error::InvalidFrameLength);
    }
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(Error::PlaintextTooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT_LEN,
        });
    }
    header::check_encrypted_data_keys(edks)?;
    let serialized_context = context::serialize(context)?;

    let mut message_id = [0u8; MESSAGE_ID_LEN];
    rand::fill(&mut message_id).map_err(|_| Error::Crypto)?;
    let keys = MessageKeys::derive(key, &message_id)?;

    let mut out = header::write_body(
        &message_id,
        &serialized_context,
        edks,
        frame_length,
        &keys.commitment,
    )?;
    let header_tag = keys
        .aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0u8; IV_LEN]),
            Aad::from(&out[..]),
            &mut [],
        )
        .map_err(|_| Error::Crypto)?;
    out.extend_from_slice(header_tag.as_ref());

    // Per frame: marker or sequence number (4), IV, tag; plus the final frame's extra 8.
    let frames = plaintext.len() / frame_length as usize + 1;
    out.reserve(
        plaintext
            .len()
            .saturating_add(frames.saturating_mul(4 + IV_LEN + TAG_LEN))
            .saturating_add(8),
    );
    body::seal(&keys, &message_id, frame_length, plaintext, &mut out)?;
    Ok(out)
}

/// Decrypts an ESDK message written by [`encrypt`] or by any official AWS Encryption SDK
/// (format 2.0, suite 0x0478, framed content).
///
/// Checks, in order: the header's structure, the key commitment (so a wrong `key` fails
/// with [`Error::CommitmentMismatch`]), the header tag, then every frame's sequence number,
/// IV and tag; the message must end right after the final frame. No plaintext is returned
/// unless everything verifies.
pub fn decrypt(key: &DataKey, message: &[u8]) -> Result<Decrypted, Error> {
    let header = parse_header(message)?;
    let keys = MessageKeys::derive(key, header.message_id())?;
    keys.verify_commitment(header.commitment())?;

    let header_body = message
        .get(..header.body_length())
        .ok_or(Error::Truncated {
            field: Field::HeaderAuthTag,
        })?;
    keys.aead
        .open_separate_gather(
            Nonce::assume_unique_for_key([0u8; IV_LEN]),
            Aad::from(header_body),
            &[],
            header.auth_tag(),
            &mut [],
        )
        .map_err(|_| Error::AuthenticationFailed {
            field: Field::HeaderAuthTag,
        })?;

    let mut r = Reader::new(message);
    r.take(header.header_length(), Field::HeaderAuthTag)?;
    let plaintext = body::open(&keys, header.message_id(), header.frame_length(), &mut r)?;
    Ok(Decrypted {
        plaintext,
        context: header.encryption_context().clone(),
    })
}
