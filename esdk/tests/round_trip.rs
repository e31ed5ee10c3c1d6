//! Encrypt then decrypt: shapes of plaintext, context and frames; encrypt's input checks.

mod common;

use common::*;
use hearth_esdk::{
    decrypt, encrypt, parse_header, Error, DEFAULT_FRAME_LENGTH, MAX_ENCRYPTED_DATA_KEYS,
    MAX_PLAINTEXT_LEN,
};

/// Header bytes plus the body size this crate writes: full regular frames, then a final
/// frame holding the rest (a full frame when the length is an exact multiple).
fn expected_len(header_len: usize, plaintext: usize, frame: usize) -> usize {
    let regular = if plaintext == 0 {
        0
    } else {
        (plaintext - 1) / frame
    };
    let final_len = plaintext - regular * frame;
    header_len + regular * (4 + 12 + frame + 16) + (4 + 4 + 12 + 4 + final_len + 16)
}

fn round_trip(context: &hearth_esdk::EncryptionContext, plaintext: &[u8], frame: u32) -> Vec<u8> {
    let k = key(1);
    let message = encrypt(&k, &[kms_edk(ARN, &k)], context, plaintext, frame).expect("encrypt");
    let header = parse_header(&message).expect("header");
    assert_eq!(
        message.len(),
        expected_len(header.header_length(), plaintext.len(), frame as usize),
        "layout for {} bytes in frames of {frame}",
        plaintext.len()
    );
    let opened = decrypt(&k, &message).expect("decrypt");
    assert_eq!(opened.plaintext, plaintext);
    assert_eq!(&opened.context, context);
    message
}

#[test]
fn empty_and_non_empty_context() {
    round_trip(&ctx(&[]), b"secret", DEFAULT_FRAME_LENGTH);
    round_trip(
        &ctx(&[("tenant", "t-1"), ("purpose", "payments"), ("é", "日本")]),
        b"secret",
        DEFAULT_FRAME_LENGTH,
    );
}

#[test]
fn empty_plaintext_is_one_empty_final_frame() {
    round_trip(&ctx(&[]), b"", DEFAULT_FRAME_LENGTH);
    round_trip(&ctx(&[("k", "v")]), b"", 1);
}

#[test]
fn exact_multiples_of_the_frame_length() {
    round_trip(&ctx(&[]), &pattern(4096), 4096);
    round_trip(&ctx(&[]), &pattern(3 * 4096), 4096);
    round_trip(&ctx(&[]), &pattern(64), 16);
}

#[test]
fn every_length_around_several_frames() {
    for len in 0..=70 {
        round_trip(&ctx(&[("len", &len.to_string())]), &pattern(len), 16);
    }
}

#[test]
fn sixty_four_kib() {
    round_trip(
        &ctx(&[("size", "64KiB")]),
        &pattern(64 * 1024),
        DEFAULT_FRAME_LENGTH,
    );
    round_trip(&ctx(&[]), &pattern(64 * 1024 + 1), DEFAULT_FRAME_LENGTH);
}

#[test]
fn extreme_frame_lengths() {
    round_trip(&ctx(&[]), &pattern(9), 1);
    round_trip(&ctx(&[]), &pattern(100), u32::MAX);
}

#[test]
fn header_exposes_what_the_caller_needs_before_kms() {
    let k = key(2);
    let edks = vec![kms_edk(ARN, &k), kms_edk(FALLBACK_ARN, &k)];
    let context = ctx(&[("tenant", "t-9")]);
    let message = encrypt(&k, &edks, &context, b"x", 1024).expect("encrypt");
    let header = parse_header(&message).expect("header");
    assert_eq!(header.version(), 2);
    assert_eq!(header.suite_id(), 0x0478);
    assert_eq!(header.encrypted_data_keys(), &edks[..]);
    assert_eq!(header.encryption_context(), &context);
    assert_eq!(header.frame_length(), 1024);
    assert_eq!(&message[3..35], header.message_id());
    assert!(header.header_length() < message.len());
    // parse_header ignores what follows the header.
    assert_eq!(
        parse_header(&message[..header.header_length()]).expect("header only"),
        header
    );
}

#[test]
fn every_message_gets_a_fresh_message_id() {
    let k = key(3);
    let a = encrypt(&k, &[kms_edk(ARN, &k)], &ctx(&[]), b"same", 4096).expect("encrypt");
    let b = encrypt(&k, &[kms_edk(ARN, &k)], &ctx(&[]), b"same", 4096).expect("encrypt");
    let (ha, hb) = (parse_header(&a).expect("a"), parse_header(&b).expect("b"));
    assert_ne!(ha.message_id(), hb.message_id());
    assert_ne!(ha.commitment(), hb.commitment());
    assert_ne!(a, b);
}

#[test]
fn wrong_key_is_rejected() {
    let k = key(4);
    let message =
        encrypt(&k, &[kms_edk(ARN, &k)], &ctx(&[("a", "b")]), b"data", 4096).expect("encrypt");
    let err = decrypt(&key(5), &message).expect_err("wrong key");
    assert_eq!(err, Error::CommitmentMismatch);
}

#[test]
fn encrypt_rejects_bad_input() {
    let k = key(6);
    let edk = kms_edk(ARN, &k);
    let code = |r: Result<Vec<u8>, Error>| r.expect_err("must fail").code();

    assert_eq!(
        code(encrypt(&k, std::slice::from_ref(&edk), &ctx(&[]), b"x", 0)),
        "InvalidFrameLength"
    );
    assert_eq!(
        code(encrypt(&k, &[], &ctx(&[]), b"x", 4096)),
        "InvalidEncryptedDataKey"
    );
    let many = vec![edk.clone(); MAX_ENCRYPTED_DATA_KEYS + 1];
    assert_eq!(
        code(encrypt(&k, &many, &ctx(&[]), b"x", 4096)),
        "TooManyEncryptedDataKeys"
    );
    let max = vec![edk.clone(); MAX_ENCRYPTED_DATA_KEYS];
    assert!(encrypt(&k, &max, &ctx(&[]), b"x", 4096).is_ok());

    let mut long_info = edk.clone();
    long_info.provider_info = vec![b'a'; 65_536];
    assert_eq!(
        code(encrypt(&k, &[long_info], &ctx(&[]), b"x", 4096)),
        "InvalidEncryptedDataKey"
    );
    let mut long_ct = edk.clone();
    long_ct.ciphertext = vec![0; 70_000];
    assert_eq!(
        code(encrypt(&k, &[long_ct], &ctx(&[]), b"x", 4096)),
        "InvalidEncryptedDataKey"
    );

    assert_eq!(
        code(encrypt(
            &k,
            std::slice::from_ref(&edk),
            &ctx(&[("aws-crypto-public-key", "x")]),
            b"x",
            4096
        )),
        "InvalidEncryptionContext"
    );
    let long_value = "v".repeat(70_000);
    assert_eq!(
        code(encrypt(
            &k,
            std::slice::from_ref(&edk),
            &ctx(&[("k", &long_value)]),
            b"x",
            4096
        )),
        "InvalidEncryptionContext"
    );

    let too_big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
    assert_eq!(
        code(encrypt(&k, &[edk], &ctx(&[]), &too_big, 4096)),
        "PlaintextTooLarge"
    );
}

#[test]
fn errors_and_debug_output_never_show_secrets() {
    let k = key(0xA7);
    let plaintext = b"TOP-SECRET-PLAINTEXT";
    let message = encrypt(&k, &[kms_edk(ARN, &k)], &ctx(&[]), plaintext, 4096).expect("encrypt");
    let opened = decrypt(&k, &message).expect("decrypt");
    let shown = format!("{opened:?} {k:?}");
    assert!(!shown.contains("TOP-SECRET"), "{shown}");
    assert!(!shown.contains("a7") && !shown.contains("167"), "{shown}");

    let mut tampered = message.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = decrypt(&k, &tampered).expect_err("tampered");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("TOP-SECRET") && !shown.contains("a7"),
        "{shown}"
    );
}
