//! Whole-message encrypt and decrypt (client-apis/encrypt.md, decrypt.md), non-streaming.

use std::fmt;

use aws_lc_rs::aead::{Aad, Nonce};
use aws_lc_rs::rand;

use crate::context::{self, EncryptionContext};
use crate::error::{Error, Field};
use crate::header::{
    self, parse_header, ContentType, EncryptedDataKey, Header, IV_LEN, MESSAGE_ID_LEN, TAG_LEN,
};
use crate::key::{DataKey, MessageKeys};
use crate::signature::{SigningKey, Verifier};
use crate::suite::{CommitmentPolicy, Suite};
use crate::wire::Reader;
use crate::{body, MAX_PLAINTEXT_LEN};

/// The result of [`decrypt`]: the authenticated plaintext and encryption context.
///
/// `Debug` shows the plaintext's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The encryption context from the (now authenticated) header, reserved entries (the
    /// signature's public key) included. The caller compares it with the context it
    /// expects; [`crate::user_context`] drops the reserved entries.
    pub context: EncryptionContext,
    /// The message's algorithm suite.
    pub suite: Suite,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("context", &self.context)
            .field("suite", &self.suite)
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
    encrypt_with(
        Suite::Aes256GcmHkdfSha512CommitKey,
        key,
        edks,
        context,
        None,
        plaintext,
        frame_length,
    )
}

/// Encrypts `plaintext` in `suite`: 0x0478, or 0x0578 with `signer` (a [`SigningKey`] made
/// for this message alone, whose [`SigningKey::message_context`] the encrypted data keys
/// were made under). `context` is the caller's context, without reserved keys; the public
/// key entry is added here.
pub fn encrypt_with(
    suite: Suite,
    key: &DataKey,
    edks: &[EncryptedDataKey],
    context: &EncryptionContext,
    signer: Option<&SigningKey>,
    plaintext: &[u8],
    frame_length: u32,
) -> Result<Vec<u8>, Error> {
    if !suite.is_committing() {
        return Err(Error::UnsupportedSuite(suite.id()));
    }
    match (suite.signature(), signer) {
        (Some(_), None) => {
            return Err(Error::InvalidSigningKey {
                reason: "a signed suite needs a signing key",
            })
        }
        (None, Some(_)) => {
            return Err(Error::InvalidSigningKey {
                reason: "an unsigned suite takes no signing key",
            })
        }
        _ => {}
    }
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
    context::check_user_context(context)?;
    let serialized_context = match signer {
        Some(s) => context::serialize_full(&s.message_context(context))?,
        None => context::serialize_full(context)?,
    };

    let mut message_id = [0u8; MESSAGE_ID_LEN];
    rand::fill(&mut message_id).map_err(|_| Error::Crypto)?;
    let keys = MessageKeys::derive(suite, key, &message_id)?;
    let commitment = keys.commitment.ok_or(Error::Crypto)?;

    let mut out = header::write_body(
        suite,
        &message_id,
        &serialized_context,
        edks,
        frame_length,
        &commitment,
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

    // Per frame: marker or sequence number (4), IV, tag; plus the final frame's extra 8 and
    // a footer of at most 2 + 104 bytes.
    let frames = plaintext.len() / frame_length as usize + 1;
    out.reserve(
        plaintext
            .len()
            .saturating_add(frames.saturating_mul(4 + IV_LEN + TAG_LEN))
            .saturating_add(8 + 106),
    );
    body::seal(&keys, &message_id, frame_length, plaintext, &mut out)?;
    if let Some(signer) = signer {
        let signature = signer.sign(&out)?;
        let len = u16::try_from(signature.len()).map_err(|_| Error::Crypto)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&signature);
    }
    Ok(out)
}

/// Checks `header`'s suite against `policy` before any key is fetched.
pub fn check_policy(header: &Header, policy: CommitmentPolicy) -> Result<(), Error> {
    if policy.allows_decrypt(header.suite()) {
        Ok(())
    } else {
        Err(Error::CommitmentPolicy {
            suite: header.suite_id(),
            policy: policy.as_str(),
        })
    }
}

/// Decrypts a message under the default commitment policy,
/// require-encrypt-require-decrypt: suites 0x0478 and 0x0578. See [`decrypt_with_policy`].
pub fn decrypt(key: &DataKey, message: &[u8]) -> Result<Decrypted, Error> {
    decrypt_with_policy(key, message, CommitmentPolicy::RequireEncryptRequireDecrypt)
}

/// Checks, from the header alone, that a signed suite's context carries a well-formed public
/// key and an unsigned suite's carries none: what [`decrypt_with_policy`] would refuse before
/// it verifies anything, so that a caller can refuse it before asking KMS for the data key.
pub fn check_public_key(header: &crate::Header) -> Result<(), Error> {
    Verifier::for_message(header.suite(), header.encryption_context()).map(|_| ())
}

/// Decrypts an ESDK message written by [`encrypt`] or by any official AWS Encryption SDK:
/// any of the eleven suites `policy` allows, format 1.0 or 2.0, framed or not, signed or not.
///
/// Checks, in order: the header's structure and the policy, the public key of signed
/// suites, the key commitment (so a wrong `key` fails with [`Error::CommitmentMismatch`]),
/// the header tag, every frame's sequence number and tag, the signature over header and
/// body; the message must end right after the body or footer. No plaintext is returned
/// unless everything verifies.
pub fn decrypt_with_policy(
    key: &DataKey,
    message: &[u8],
    policy: CommitmentPolicy,
) -> Result<Decrypted, Error> {
    let header = parse_header(message)?;
    check_policy(&header, policy)?;
    let verifier = Verifier::for_message(header.suite(), header.encryption_context())?;
    let keys = MessageKeys::derive(header.suite(), key, header.message_id())?;
    if let Some(stored) = header.commitment() {
        keys.verify_commitment(stored)?;
    }

    let header_body = message
        .get(..header.body_length())
        .ok_or(Error::Truncated {
            field: Field::HeaderAuthTag,
        })?;
    keys.aead
        .open_separate_gather(
            Nonce::assume_unique_for_key(header.header_iv()),
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
    // Never more plaintext than ciphertext: the input bounds the allocation.
    let mut plaintext = Vec::with_capacity(r.remaining().min(MAX_PLAINTEXT_LEN));
    let result = open_body(
        &header,
        &keys,
        verifier.as_ref(),
        message,
        &mut r,
        &mut plaintext,
    );
    if let Err(e) = result {
        // Do not leave unauthenticated plaintext lying in freed memory.
        zeroize::Zeroize::zeroize(&mut plaintext);
        return Err(e);
    }
    Ok(Decrypted {
        plaintext,
        context: header.encryption_context().clone(),
        suite: header.suite(),
    })
}

fn open_body(
    header: &Header,
    keys: &MessageKeys,
    verifier: Option<&Verifier>,
    message: &[u8],
    r: &mut Reader<'_>,
    plaintext: &mut Vec<u8>,
) -> Result<(), Error> {
    match header.content_type() {
        ContentType::Framed => body::open_framed(
            keys,
            header.message_id(),
            header.frame_length(),
            header.version() == 2,
            r,
            plaintext,
        )?,
        ContentType::NonFramed => body::open_single(keys, header.message_id(), r, plaintext)?,
    }
    if let Some(verifier) = verifier {
        let signed = message.get(..r.position()).ok_or(Error::Crypto)?;
        let signature = r.u16_prefixed(Field::SignatureLength, Field::Signature)?;
        if r.remaining() != 0 {
            return Err(Error::TrailingBytes {
                count: r.remaining(),
            });
        }
        verifier.verify(signed, signature)?;
    }
    match r.remaining() {
        0 => Ok(()),
        count => Err(Error::TrailingBytes { count }),
    }
}
