//! Every change to a message is detected, and no input makes the parser panic.

mod common;

use common::*;
use hearth_esdk::{
    decrypt, decrypt_with_policy, encrypt, encrypt_with, parse_header, CommitmentPolicy, DataKey,
    Error, SigningKey, Suite,
};

const ALLOW: CommitmentPolicy = CommitmentPolicy::RequireEncryptAllowDecrypt;

fn small_message() -> (DataKey, Vec<u8>) {
    let k = key(0x33);
    let edks = [kms_edk(ARN, &k), kms_edk(FALLBACK_ARN, &k)];
    // Three frames (4 + 4 + 2 bytes) and a context, so every kind of field is present.
    let m = encrypt(
        &k,
        &edks,
        &ctx(&[("tenant", "t-1"), ("x", "y")]),
        b"0123456789",
        4,
    )
    .expect("encrypt");
    (k, m)
}

#[test]
fn flipping_any_bit_pattern_of_any_byte_is_detected() {
    let (k, m) = small_message();
    assert!(decrypt(&k, &m).is_ok());
    for pos in 0..m.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut t = m.clone();
            t[pos] ^= mask;
            let err = decrypt(&k, &t)
                .map(|d| d.plaintext)
                .expect_err(&format!("byte {pos} ^ {mask:#04x} went unnoticed"));
            // Whatever the error, it has a stable code.
            assert!(!err.code().is_empty());
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let (k, m) = small_message();
    let header_len = parse_header(&m).expect("header").header_length();
    for len in 0..m.len() {
        let err = decrypt(&k, &m[..len]).expect_err(&format!("cut at {len}"));
        assert!(
            matches!(err, Error::Truncated { .. }),
            "cut at {len}: {err:?}"
        );
        if len < header_len {
            assert!(matches!(
                parse_header(&m[..len]),
                Err(Error::Truncated { .. })
            ));
        } else {
            assert!(parse_header(&m[..len]).is_ok());
        }
    }
}

#[test]
fn other_keys_never_open_the_message() {
    let (_, m) = small_message();
    for b in [0u8, 1, 0x32, 0x34, 0xFF] {
        assert_eq!(
            decrypt(&key(b), &m).map(|d| d.plaintext),
            Err(Error::CommitmentMismatch)
        );
    }
}

/// Seeded random mutations (flips, overwrites, insertions, deletions, truncations, spliced
/// copies, big-endian length fields set to extremes) over a valid message: parsing and
/// decrypting must return an error, never panic, for any result that differs from it.
#[test]
fn random_mutations_are_rejected_without_panics() {
    let (k, m) = small_message();
    let mut rng = Rng::new(0x4845_4152_5448);
    let mut changed = 0;
    for _ in 0..20_000 {
        let mut t = m.clone();
        for _ in 0..1 + rng.below(4) {
            let len = t.len();
            if len == 0 {
                break;
            }
            let pos = rng.below(len);
            match rng.below(7) {
                0 => t[pos] ^= 1 << rng.below(8),
                1 => t[pos] = rng.byte(),
                2 => t.insert(pos, rng.byte()),
                3 => {
                    t.remove(pos);
                }
                4 => t.truncate(pos),
                5 => {
                    // Copy a random slice over another place.
                    let from = rng.below(len);
                    let n = rng.below(len - from.max(pos)).min(40);
                    let chunk = t[from..from + n].to_vec();
                    t[pos..pos + n].copy_from_slice(&chunk);
                }
                _ => {
                    if pos + 2 <= len {
                        let v: u16 = [0, 1, 0x7FFF, 0xFFFF][rng.below(4)];
                        t[pos..pos + 2].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
        }
        let _ = parse_header(&t);
        let result = decrypt(&k, &t);
        if t != m {
            changed += 1;
            assert!(result.is_err(), "mutation accepted: {}", to_hex(&t));
        }
    }
    assert!(changed > 19_000, "too few effective mutations: {changed}");
}

/// Random bytes, and random bytes behind a valid prefix, never panic the parser.
#[test]
fn random_inputs_never_panic() {
    let (k, m) = small_message();
    let mut rng = Rng::new(7);
    for _ in 0..5_000 {
        let len = rng.below(300);
        let mut t: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        if rng.below(2) == 0 {
            let keep = rng.below(m.len());
            t.splice(0..0, m[..keep].iter().copied());
        }
        let _ = parse_header(&t);
        assert!(decrypt(&k, &t).is_err());
    }
}

const SUITE_VECTORS: &str = include_str!("vectors/python-esdk-suites.txt");

/// Signed (0x0214, 0x0346, 0x0378, 0x0578) and format 1.0 messages from the Python SDK,
/// and one signed here, with their data keys.
fn signed_and_v1_messages() -> Vec<(DataKey, Vec<u8>)> {
    let mut out: Vec<(DataKey, Vec<u8>)> = parse_vectors(SUITE_VECTORS)
        .into_iter()
        .filter(|v| !v.plaintext.is_empty())
        .filter(|v| {
            let s = parse_header(&v.ciphertext).expect("header").suite();
            s.signature().is_some() || s.message_format_version() == 1
        })
        .map(|v| (DataKey::from_slice(&v.data_key).expect("key"), v.ciphertext))
        .collect();
    let k = key(0x35);
    let suite = Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
    let signer = SigningKey::generate(suite).expect("signing key");
    let m = encrypt_with(
        suite,
        &k,
        &[kms_edk(ARN, &k)],
        &ctx(&[("t", "1")]),
        Some(&signer),
        b"0123456789",
        4,
    )
    .expect("encrypt");
    out.push((k, m));
    out
}

#[test]
fn flipping_any_byte_of_signed_and_v1_messages_is_detected() {
    let messages = signed_and_v1_messages();
    assert!(messages.len() >= 19, "{}", messages.len());
    let mut codes = std::collections::BTreeSet::new();
    for (k, m) in &messages {
        decrypt_with_policy(k, m, ALLOW).expect("untouched message opens");
        for pos in 0..m.len() {
            let mut t = m.clone();
            t[pos] ^= 0x01;
            let err = decrypt_with_policy(k, &t, ALLOW)
                .map(|d| d.plaintext)
                .expect_err(&format!("byte {pos} went unnoticed"));
            assert!(!err.code().is_empty());
            codes.insert(err.code());
        }
    }
    // Header, body and footer changes are all seen, each with its own stable code.
    for want in [
        "AuthenticationFailed",
        "SignatureInvalid",
        "MalformedCiphertext",
    ] {
        assert!(codes.contains(want), "{want} not among {codes:?}");
    }
}

/// 20,000 seeded mutations spread over signed and format 1.0 messages (framed and
/// non-framed): never a panic, never an accepted change.
#[test]
fn random_mutations_of_signed_and_v1_messages_are_rejected_without_panics() {
    let messages = signed_and_v1_messages();
    let mut rng = Rng::new(0x5349_474E_4544);
    let mut changed = 0;
    for i in 0..20_000 {
        let (k, m) = &messages[i % messages.len()];
        let mut t = m.clone();
        for _ in 0..1 + rng.below(3) {
            let len = t.len();
            if len == 0 {
                break;
            }
            let pos = rng.below(len);
            match rng.below(6) {
                0 => t[pos] ^= 1 << rng.below(8),
                1 => t[pos] = rng.byte(),
                2 => t.insert(pos, rng.byte()),
                3 => {
                    t.remove(pos);
                }
                4 => t.truncate(pos),
                _ => {
                    if pos + 2 <= len {
                        let v: u16 = [0, 1, 0x7FFF, 0xFFFF][rng.below(4)];
                        t[pos..pos + 2].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
        }
        let _ = parse_header(&t);
        let result = decrypt_with_policy(k, &t, ALLOW);
        if t != *m {
            changed += 1;
            assert!(result.is_err(), "mutation accepted: {}", to_hex(&t));
        }
    }
    assert!(changed > 19_000, "too few effective mutations: {changed}");
}
