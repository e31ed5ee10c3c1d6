//! The message body (data-format/message-body.md, message-body-aad.md).
//!
//! ```text
//! regular frame: seq u32 | IV [12] | content [frame length] | tag [16]
//! final frame:   0xFFFFFFFF | seq u32 | IV [12] | content length u32 | content | tag [16]
//! frame AAD:     message id | "AWSKMSEncryptionClient Frame" or "... Final Frame"
//!                | seq u32 | plaintext length u64
//! frame IV:      the sequence number, big-endian, left-padded with zeros to 12 bytes
//! non-framed:    IV [12] | content length u64 | content | tag [16]
//!                AAD: message id | "AWSKMSEncryptionClient Single Block" | 1 u32 | length u64
//! ```
//!
//! Sequence numbers start at 1 and increase by one; the final frame is always present and
//! last, and holds between 0 and frame-length bytes. In format 2.0 the frame IV must be the
//! padded sequence number (every SDK that writes 2.0 does so); in format 1.0 the IV stored in
//! the frame is used as it is (the specification does not ask decrypt to check it, and
//! GCM authenticates it), so messages from any 1.x writer open.

use aws_lc_rs::aead::{Aad, Nonce};

use crate::error::{malformed, Error, Field};
use crate::header::{IV_LEN, TAG_LEN};
use crate::key::MessageKeys;
use crate::wire::Reader;
use crate::MAX_PLAINTEXT_LEN;

/// Marks the final frame in place of a sequence number.
const FINAL_FRAME_MARKER: u32 = 0xFFFF_FFFF;
const REGULAR_FRAME_AAD: &[u8] = b"AWSKMSEncryptionClient Frame";
const FINAL_FRAME_AAD: &[u8] = b"AWSKMSEncryptionClient Final Frame";
const SINGLE_BLOCK_AAD: &[u8] = b"AWSKMSEncryptionClient Single Block";

/// The IV of frame `seq`: the sequence number padded to the IV length.
fn frame_iv(seq: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// The AAD of frame `seq` holding `len` plaintext bytes.
fn frame_aad(message_id: &[u8], last: bool, seq: u32, len: usize) -> Vec<u8> {
    let label = if last {
        FINAL_FRAME_AAD
    } else {
        REGULAR_FRAME_AAD
    };
    body_aad(message_id, label, seq, len)
}

fn body_aad(message_id: &[u8], label: &[u8], seq: u32, len: usize) -> Vec<u8> {
    let mut aad = Vec::with_capacity(message_id.len() + label.len() + 12);
    aad.extend_from_slice(message_id);
    aad.extend_from_slice(label);
    aad.extend_from_slice(&seq.to_be_bytes());
    // usize -> u64 never loses bits on supported targets.
    aad.extend_from_slice(&(len as u64).to_be_bytes());
    aad
}

/// Appends the framed encryption of `plaintext` to `out`.
///
/// A plaintext that is an exact, non-zero multiple of the frame length ends with a full final
/// frame (the "SHOULD" of the specification), not with an empty one.
pub(crate) fn seal(
    keys: &MessageKeys,
    message_id: &[u8],
    frame_length: u32,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let frame_len = usize::try_from(frame_length).map_err(|_| Error::InvalidFrameLength)?;
    if frame_len == 0 {
        return Err(Error::InvalidFrameLength);
    }
    let mut chunks = plaintext.chunks(frame_len).peekable();
    let mut seq: u32 = 1;
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        if last {
            out.extend_from_slice(&FINAL_FRAME_MARKER.to_be_bytes());
        }
        out.extend_from_slice(&seq.to_be_bytes());
        let iv = frame_iv(seq);
        out.extend_from_slice(&iv);
        if last {
            // chunk.len() <= frame_length, which is a u32.
            let len = u32::try_from(chunk.len()).map_err(|_| Error::InvalidFrameLength)?;
            out.extend_from_slice(&len.to_be_bytes());
        }
        let start = out.len();
        out.extend_from_slice(chunk);
        let aad = frame_aad(message_id, last, seq, chunk.len());
        let content = out.get_mut(start..).ok_or(Error::Crypto)?;
        let tag = keys
            .aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), content)
            .map_err(|_| Error::Crypto)?;
        out.extend_from_slice(tag.as_ref());
        if last {
            return Ok(());
        }
        // The final frame's sequence number must still fit below the marker.
        seq = seq
            .checked_add(1)
            .filter(|s| *s != FINAL_FRAME_MARKER)
            .ok_or(Error::PlaintextTooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            })?;
    }
}

/// Decrypts the non-framed body in `r` (positioned just after the header) into
/// `plaintext`, leaving `r` after the body's tag.
pub(crate) fn open_single(
    keys: &MessageKeys,
    message_id: &[u8],
    r: &mut Reader<'_>,
    plaintext: &mut Vec<u8>,
) -> Result<(), Error> {
    let iv = r.array::<IV_LEN>(Field::FrameIv)?;
    let len = r.u64(Field::FrameContentLength)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|n| *n <= MAX_PLAINTEXT_LEN)
        .ok_or(Error::PlaintextTooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max: MAX_PLAINTEXT_LEN,
        })?;
    let content = r.take(len, Field::FrameContent)?;
    let tag = r.take(TAG_LEN, Field::FrameAuthTag)?;
    plaintext.resize(len, 0);
    keys.aead
        .open_separate_gather(
            Nonce::assume_unique_for_key(iv),
            Aad::from(body_aad(message_id, SINGLE_BLOCK_AAD, 1, len)),
            content,
            tag,
            plaintext,
        )
        .map_err(|_| Error::AuthenticationFailed {
            field: Field::FrameAuthTag,
        })
}

/// Decrypts the framed body in `r` (positioned just after the header) into `plaintext`,
/// leaving `r` right after the final frame. `strict_iv`: frame IVs must be the padded
/// sequence number (format 2.0).
pub(crate) fn open_framed(
    keys: &MessageKeys,
    message_id: &[u8],
    frame_length: u32,
    strict_iv: bool,
    r: &mut Reader<'_>,
    plaintext: &mut Vec<u8>,
) -> Result<(), Error> {
    let frame_len = usize::try_from(frame_length)
        .map_err(|_| malformed(Field::FrameLength, "too large for this platform"))?;
    let mut expected: u32 = 1;
    loop {
        let first = r.u32(Field::SequenceNumber)?;
        let last = first == FINAL_FRAME_MARKER;
        let seq = if last {
            r.u32(Field::SequenceNumber)?
        } else {
            first
        };
        if seq != expected {
            return Err(malformed(Field::SequenceNumber, "out of order"));
        }
        let iv = r.array::<IV_LEN>(Field::FrameIv)?;
        if strict_iv && iv != frame_iv(seq) {
            return Err(malformed(Field::FrameIv, "not the sequence number"));
        }
        let len = if last {
            let len = r.u32(Field::FrameContentLength)?;
            if len > frame_length {
                return Err(malformed(
                    Field::FrameContentLength,
                    "final frame longer than the frame length",
                ));
            }
            usize::try_from(len)
                .map_err(|_| malformed(Field::FrameContentLength, "too large for this platform"))?
        } else {
            frame_len
        };
        let total = plaintext.len().saturating_add(len);
        if total > MAX_PLAINTEXT_LEN {
            return Err(Error::PlaintextTooLarge {
                len: total,
                max: MAX_PLAINTEXT_LEN,
            });
        }
        let content = r.take(len, Field::FrameContent)?;
        let tag = r.take(TAG_LEN, Field::FrameAuthTag)?;

        let start = plaintext.len();
        plaintext.resize(total, 0);
        let out = plaintext.get_mut(start..).ok_or(Error::Crypto)?;
        keys.aead
            .open_separate_gather(
                Nonce::assume_unique_for_key(iv),
                Aad::from(frame_aad(message_id, last, seq, len)),
                content,
                tag,
                out,
            )
            .map_err(|_| Error::AuthenticationFailed {
                field: Field::FrameAuthTag,
            })?;

        if last {
            return Ok(());
        }
        expected = expected
            .checked_add(1)
            .ok_or(malformed(Field::SequenceNumber, "too many frames"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iv_is_the_padded_sequence_number() {
        assert_eq!(frame_iv(1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(frame_iv(0x0102_0304), [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn aad_layout() {
        const MESSAGE_ID_LEN: usize = crate::header::MESSAGE_ID_LEN;
        let id = [0x11u8; MESSAGE_ID_LEN];
        let aad = frame_aad(&id, true, 3, 0x0102);
        let expected = [
            &id[..],
            b"AWSKMSEncryptionClient Final Frame",
            &[0, 0, 0, 3],
            &[0, 0, 0, 0, 0, 0, 1, 2],
        ]
        .concat();
        assert_eq!(aad, expected);
        let regular = frame_aad(&id, false, 1, 4096);
        assert_eq!(
            regular.get(MESSAGE_ID_LEN..MESSAGE_ID_LEN + REGULAR_FRAME_AAD.len()),
            Some(REGULAR_FRAME_AAD)
        );
    }
}
