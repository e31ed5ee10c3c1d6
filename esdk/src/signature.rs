//! Message signatures of the signed suites (data-format/message-footer.md): ECDSA with
//! P-256/SHA-256 or P-384/SHA-384 over the whole header and body, the signature (ASN.1 DER)
//! in the footer as `u16 length | signature`, and the public key in the encryption context
//! under [`PUBLIC_KEY_CONTEXT_KEY`] as the base64 of its compressed SEC1 point.
//!
//! Verification is aws-lc's ECDSA, which takes compressed points directly and accepts
//! high-S signatures (some SDKs do not normalize S); signing uses a key pair generated for
//! one message and dropped with it.

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    ECDSA_P384_SHA384_ASN1_SIGNING,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::context::EncryptionContext;
use crate::error::Error;
use crate::suite::{Curve, Suite};

/// The reserved encryption context key that carries a signed message's public key.
pub const PUBLIC_KEY_CONTEXT_KEY: &str = "aws-crypto-public-key";

/// Longest DER signature accepted in a footer (P-384: at most 104 bytes; a margin for
/// non-minimal encodings other SDKs might emit is not needed, DER is exact).
const MAX_SIGNATURE_LEN: usize = 128;

/// The public key that checks a signed message, taken from its encryption context.
pub(crate) struct Verifier {
    curve: Curve,
    point: Vec<u8>,
}

impl Verifier {
    /// The verifier for a message of `suite` with `context`: `None` for unsigned suites
    /// (whose context must then not carry a public key), an error when a signed suite's
    /// context has no well-formed public key.
    pub(crate) fn for_message(
        suite: Suite,
        context: &EncryptionContext,
    ) -> Result<Option<Verifier>, Error> {
        let encoded = context.get(PUBLIC_KEY_CONTEXT_KEY);
        let Some(curve) = suite.signature() else {
            return match encoded {
                None => Ok(None),
                Some(_) => Err(Error::InvalidPublicKey {
                    reason: "an unsigned suite's context carries aws-crypto-public-key",
                }),
            };
        };
        let encoded = encoded.ok_or(Error::InvalidPublicKey {
            reason: "a signed suite's context lacks aws-crypto-public-key",
        })?;
        let point = B64.decode(encoded).map_err(|_| Error::InvalidPublicKey {
            reason: "aws-crypto-public-key is not base64",
        })?;
        if point.len() != curve.compressed_point_len() || !matches!(point.first(), Some(2 | 3)) {
            return Err(Error::InvalidPublicKey {
                reason: "aws-crypto-public-key is not a compressed point of the suite's curve",
            });
        }
        Ok(Some(Verifier { curve, point }))
    }

    /// Checks `signature` (DER) over `signed` (header and body).
    pub(crate) fn verify(&self, signed: &[u8], signature: &[u8]) -> Result<(), Error> {
        if signature.len() > MAX_SIGNATURE_LEN {
            return Err(Error::SignatureInvalid);
        }
        let alg = match self.curve {
            Curve::P256 => &ECDSA_P256_SHA256_ASN1,
            Curve::P384 => &ECDSA_P384_SHA384_ASN1,
        };
        UnparsedPublicKey::new(alg, &self.point)
            .verify(signed, signature)
            .map_err(|_| Error::SignatureInvalid)
    }
}

/// A signing key for one message of a signed suite (only P-384 suites are written).
///
/// Make one per message with [`SigningKey::generate`]; `Debug` shows only the public key.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: String,
}

impl SigningKey {
    /// A fresh key pair for `suite`, which must be 0x0578 (the signed suite this crate
    /// writes).
    pub fn generate(suite: Suite) -> Result<SigningKey, Error> {
        if suite != Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384 {
            return Err(Error::UnsupportedSuite(suite.id()));
        }
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).map_err(|_| Error::Crypto)?;
        let compressed: EcPublicKeyCompressedBin<'_> =
            pair.public_key().as_be_bytes().map_err(|_| Error::Crypto)?;
        let public = B64.encode(compressed.as_ref());
        Ok(SigningKey { pair, public })
    }

    /// The value of [`PUBLIC_KEY_CONTEXT_KEY`]: the base64 compressed public point.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The message's full encryption context: `context` plus the public key entry. This is
    /// the context KMS must see when it makes the encrypted data keys (the official SDKs
    /// pass the whole stored context to KMS Decrypt).
    pub fn message_context(&self, context: &EncryptionContext) -> EncryptionContext {
        let mut full = context.clone();
        full.insert(PUBLIC_KEY_CONTEXT_KEY.to_owned(), self.public.clone());
        full
    }

    /// Signs `data` (header and body): the DER signature.
    pub(crate) fn sign(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), data)
            .map_err(|_| Error::Crypto)?;
        Ok(sig.as_ref().to_vec())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: Suite = Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;

    #[test]
    fn generated_keys_verify_through_the_compressed_point() {
        let k = SigningKey::generate(SIGNED).expect("key");
        let ctx = k.message_context(&EncryptionContext::new());
        let v = Verifier::for_message(SIGNED, &ctx)
            .expect("ok")
            .expect("signed");
        assert_eq!(v.point.len(), 49);
        let sig = k.sign(b"header and body").expect("sign");
        assert!(v.verify(b"header and body", &sig).is_ok());
        assert_eq!(
            v.verify(b"header and bodz", &sig),
            Err(Error::SignatureInvalid)
        );
        assert_eq!(
            v.verify(b"header and body", &sig[1..]),
            Err(Error::SignatureInvalid)
        );
        assert!(!format!("{k:?}").contains("pair"));
    }

    #[test]
    fn high_s_signatures_are_accepted() {
        // (r, s) and (r, n - s) are both valid ECDSA signatures; some SDKs emit the high one.
        const N: [u8; 48] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81,
            0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec,
            0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
        ];
        let k = SigningKey::generate(SIGNED).expect("key");
        let v = Verifier::for_message(SIGNED, &k.message_context(&EncryptionContext::new()))
            .expect("ok")
            .expect("signed");
        let der = k.sign(b"msg").expect("sign");
        let (r, s) = split_der(&der);
        let s: Vec<u8> = s.iter().copied().skip_while(|b| *b == 0).collect();
        let mut s48 = [0u8; 48];
        s48[48 - s.len()..].copy_from_slice(&s);
        // n - s, big-endian subtraction.
        let mut high = [0u8; 48];
        let mut borrow = 0i16;
        for i in (0..48).rev() {
            let d = i16::from(N[i]) - i16::from(s48[i]) - borrow;
            borrow = i16::from(d < 0);
            high[i] = (d + 256 * borrow) as u8;
        }
        let high_der = join_der(r, &high);
        assert_ne!(high_der, der);
        // Exactly one of s and n - s is above n / 2: the test covers a high S either way.
        assert!(v.verify(b"msg", &high_der).is_ok());
    }

    fn split_der(der: &[u8]) -> (&[u8], &[u8]) {
        // SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-384.
        let body = if der[1] == 0x81 { &der[3..] } else { &der[2..] };
        let rl = usize::from(body[1]);
        let r = &body[2..2 + rl];
        let rest = &body[2 + rl..];
        let sl = usize::from(rest[1]);
        (r, &rest[2..2 + sl])
    }

    fn int_der(v: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }

    fn join_der(r: &[u8], s: &[u8]) -> Vec<u8> {
        let body = [int_der(r), int_der(s)].concat();
        let mut out = vec![0x30];
        if body.len() >= 0x80 {
            out.push(0x81);
        }
        out.push(body.len() as u8);
        out.extend(body);
        out
    }

    #[test]
    fn public_key_rules() {
        let unsigned = Suite::Aes256GcmHkdfSha512CommitKey;
        let mut ctx = EncryptionContext::new();
        assert!(Verifier::for_message(unsigned, &ctx).expect("ok").is_none());
        assert_eq!(
            Verifier::for_message(SIGNED, &ctx).err().map(|e| e.code()),
            Some("InvalidPublicKey")
        );
        ctx.insert(PUBLIC_KEY_CONTEXT_KEY.into(), "!!".into());
        assert_eq!(
            Verifier::for_message(SIGNED, &ctx).err().map(|e| e.code()),
            Some("InvalidPublicKey")
        );
        assert_eq!(
            Verifier::for_message(unsigned, &ctx)
                .err()
                .map(|e| e.code()),
            Some("InvalidPublicKey")
        );
        ctx.insert(PUBLIC_KEY_CONTEXT_KEY.into(), B64.encode([2u8; 33]));
        // A P-256-sized point for a P-384 suite.
        assert!(Verifier::for_message(SIGNED, &ctx).is_err());
        assert!(SigningKey::generate(unsigned).is_err());
    }
}
