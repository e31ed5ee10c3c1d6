//! A table of malformed messages, one header or body field at a time, each mapped to the
//! error (and stable code) it must produce when decrypted with the right key.

mod common;

use common::*;
use hearth_esdk::{decrypt, encrypt, parse_header, DataKey, Error, Field};

/// Byte offsets of the fields in the sample message (format 2.0 has no type, reserved, IV
/// length or header IV fields).
struct Layout {
    message_id: usize,
    aad_len: usize,
    ctx_count: usize,
    key_len: usize,
    key: usize,
    value_len: usize,
    value: usize,
    edk_count: usize,
    pid_len: usize,
    pid: usize,
    info_len: usize,
    info: usize,
    ct_len: usize,
    ct: usize,
    content_type: usize,
    frame_len: usize,
    suite_data: usize,
    tag: usize,
    body: usize,
}

const FRAME: u32 = 4;
const PLAINTEXT: &[u8] = b"0123456789"; // two regular frames of 4, a final frame of 2

fn sample() -> (DataKey, Vec<u8>, Layout) {
    let k = key(9);
    let edk = kms_edk(ARN, &k);
    let message = encrypt(
        &k,
        std::slice::from_ref(&edk),
        &ctx(&[("k", "v")]),
        PLAINTEXT,
        FRAME,
    )
    .expect("encrypt");
    let info = edk.provider_info.len();
    let ct = edk.ciphertext.len();
    let l = Layout {
        message_id: 3,
        aad_len: 35,
        ctx_count: 37,
        key_len: 39,
        key: 41,
        value_len: 42,
        value: 44,
        edk_count: 45,
        pid_len: 47,
        pid: 49,
        info_len: 56,
        info: 58,
        ct_len: 58 + info,
        ct: 60 + info,
        content_type: 60 + info + ct,
        frame_len: 61 + info + ct,
        suite_data: 65 + info + ct,
        tag: 97 + info + ct,
        body: 113 + info + ct,
    };
    // The layout is right: spot-check fields against what was encrypted.
    assert_eq!(&message[l.pid..l.pid + 7], b"aws-kms");
    assert_eq!(message[l.key], b'k');
    assert_eq!(message[l.value], b'v');
    assert_eq!(message[l.content_type], 2);
    assert_eq!(&message[l.frame_len..l.frame_len + 4], &FRAME.to_be_bytes());
    assert_eq!(
        parse_header(&message).expect("header").header_length(),
        l.body
    );
    (k, message, l)
}

fn set(message: &[u8], offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut m = message.to_vec();
    m[offset..offset + bytes.len()].copy_from_slice(bytes);
    m
}

fn flip(message: &[u8], offset: usize) -> Vec<u8> {
    let mut m = message.to_vec();
    m[offset] ^= 0x01;
    m
}

fn malformed(field: Field) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::Malformed { field: f, .. } if *f == field)
}

#[test]
fn malformed_fields_give_stable_errors() {
    let (k, m, l) = sample();
    let auth_header = Error::AuthenticationFailed {
        field: Field::HeaderAuthTag,
    };
    let truncated = |field| Error::Truncated { field };

    // (name, mutated message, expected error, expected code)
    type Check = Box<dyn Fn(&Error) -> bool>;
    let eq = |want: Error| -> Check { Box::new(move |e: &Error| *e == want) };
    let cases: Vec<(&str, Vec<u8>, Check, &str)> = vec![
        (
            "version 1.0 (its type byte then reads 0x04)",
            set(&m, 0, &[1]),
            Box::new(malformed(Field::MessageType)),
            "MalformedCiphertext",
        ),
        (
            "version 3",
            set(&m, 0, &[3]),
            eq(Error::UnsupportedVersion(3)),
            "UnsupportedVersion",
        ),
        (
            "signed suite 0x0578 without a public key",
            set(&m, 1, &[0x05, 0x78]),
            Box::new(|e: &Error| matches!(e, Error::InvalidPublicKey { .. })),
            "InvalidPublicKey",
        ),
        (
            "format 1.0 suite 0x0178 in a 2.0 header",
            set(&m, 1, &[0x01, 0x78]),
            Box::new(malformed(Field::SuiteId)),
            "MalformedCiphertext",
        ),
        (
            "unknown suite 0x0479",
            set(&m, 1, &[0x04, 0x79]),
            eq(Error::UnsupportedSuite(0x0479)),
            "UnsupportedAlgorithm",
        ),
        (
            "message id",
            flip(&m, l.message_id + 5),
            eq(Error::CommitmentMismatch),
            "CommitmentMismatch",
        ),
        (
            "AAD length + 1",
            set(&m, l.aad_len, &[0, 9]),
            Box::new(malformed(Field::AadLength)),
            "MalformedCiphertext",
        ),
        (
            "AAD length - 1",
            set(&m, l.aad_len, &[0, 7]),
            Box::new(malformed(Field::ContextValue)),
            "MalformedCiphertext",
        ),
        (
            "AAD length past the end",
            set(&m, l.aad_len, &[0xFF, 0xFF]),
            eq(truncated(Field::AadLength)),
            "TruncatedCiphertext",
        ),
        (
            "context count 0",
            set(&m, l.ctx_count, &[0, 0]),
            Box::new(malformed(Field::ContextCount)),
            "MalformedCiphertext",
        ),
        (
            "context count 2",
            set(&m, l.ctx_count, &[0, 2]),
            Box::new(malformed(Field::ContextCount)),
            "MalformedCiphertext",
        ),
        (
            "context key length huge",
            set(&m, l.key_len, &[0xFF, 0xFF]),
            Box::new(malformed(Field::ContextKey)),
            "MalformedCiphertext",
        ),
        (
            "context key length + 1",
            set(&m, l.key_len, &[0, 2]),
            Box::new(malformed(Field::ContextValue)),
            "MalformedCiphertext",
        ),
        (
            "context value length + 1",
            set(&m, l.value_len, &[0, 2]),
            Box::new(malformed(Field::ContextValue)),
            "MalformedCiphertext",
        ),
        (
            "context key not UTF-8",
            set(&m, l.key, &[0xFF]),
            Box::new(malformed(Field::ContextKey)),
            "MalformedCiphertext",
        ),
        (
            "context value not UTF-8",
            set(&m, l.value, &[0xC3]),
            Box::new(malformed(Field::ContextValue)),
            "MalformedCiphertext",
        ),
        (
            "context key changed",
            set(&m, l.key, b"j"),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "context value changed",
            set(&m, l.value, b"w"),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "EDK count 0",
            set(&m, l.edk_count, &[0, 0]),
            Box::new(malformed(Field::EdkCount)),
            "MalformedCiphertext",
        ),
        (
            "EDK count 2",
            set(&m, l.edk_count, &[0, 2]),
            eq(truncated(Field::ProviderId)),
            "TruncatedCiphertext",
        ),
        (
            "EDK count 33",
            set(&m, l.edk_count, &[0, 33]),
            eq(Error::TooManyEncryptedDataKeys { count: 33, max: 32 }),
            "TooManyEncryptedDataKeys",
        ),
        (
            "EDK count 65535",
            set(&m, l.edk_count, &[0xFF, 0xFF]),
            eq(Error::TooManyEncryptedDataKeys {
                count: 65535,
                max: 32,
            }),
            "TooManyEncryptedDataKeys",
        ),
        (
            "provider id length huge",
            set(&m, l.pid_len, &[0xFF, 0xFF]),
            eq(truncated(Field::ProviderId)),
            "TruncatedCiphertext",
        ),
        (
            "provider id not UTF-8",
            set(&m, l.pid, &[0x80]),
            Box::new(malformed(Field::ProviderId)),
            "MalformedCiphertext",
        ),
        (
            "provider id changed",
            set(&m, l.pid, b"b"),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "provider info length huge",
            set(&m, l.info_len, &[0xFF, 0xFF]),
            eq(truncated(Field::ProviderInfo)),
            "TruncatedCiphertext",
        ),
        (
            "provider info changed",
            flip(&m, l.info + 3),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "EDK ciphertext length huge",
            set(&m, l.ct_len, &[0xFF, 0xFF]),
            eq(truncated(Field::EdkCiphertext)),
            "TruncatedCiphertext",
        ),
        (
            "EDK ciphertext changed",
            flip(&m, l.ct),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "content type non-framed with a frame length",
            set(&m, l.content_type, &[1]),
            Box::new(malformed(Field::FrameLength)),
            "MalformedCiphertext",
        ),
        (
            "content type 0",
            set(&m, l.content_type, &[0]),
            Box::new(malformed(Field::ContentType)),
            "MalformedCiphertext",
        ),
        (
            "content type 3",
            set(&m, l.content_type, &[3]),
            Box::new(malformed(Field::ContentType)),
            "MalformedCiphertext",
        ),
        (
            "frame length 0",
            set(&m, l.frame_len, &[0, 0, 0, 0]),
            Box::new(malformed(Field::FrameLength)),
            "MalformedCiphertext",
        ),
        (
            "frame length changed",
            set(&m, l.frame_len, &[0, 0, 0, 5]),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "suite data (commitment)",
            flip(&m, l.suite_data + 31),
            eq(Error::CommitmentMismatch),
            "CommitmentMismatch",
        ),
        (
            "header tag",
            flip(&m, l.tag),
            eq(auth_header.clone()),
            "AuthenticationFailed",
        ),
        (
            "header tag last byte",
            flip(&m, l.body - 1),
            eq(auth_header),
            "AuthenticationFailed",
        ),
        // Body.
        (
            "first sequence number 2",
            set(&m, l.body, &[0, 0, 0, 2]),
            Box::new(malformed(Field::SequenceNumber)),
            "MalformedCiphertext",
        ),
        (
            "first sequence number 0",
            set(&m, l.body, &[0, 0, 0, 0]),
            Box::new(malformed(Field::SequenceNumber)),
            "MalformedCiphertext",
        ),
        (
            "frame IV",
            flip(&m, l.body + 4),
            Box::new(malformed(Field::FrameIv)),
            "MalformedCiphertext",
        ),
        (
            "frame content",
            flip(&m, l.body + 16),
            eq(Error::AuthenticationFailed {
                field: Field::FrameAuthTag,
            }),
            "AuthenticationFailed",
        ),
        (
            "frame tag",
            flip(&m, l.body + 20),
            eq(Error::AuthenticationFailed {
                field: Field::FrameAuthTag,
            }),
            "AuthenticationFailed",
        ),
        (
            "final frame marker",
            flip(&m, l.body + 2 * 36),
            Box::new(malformed(Field::SequenceNumber)),
            "MalformedCiphertext",
        ),
        (
            "final sequence number",
            set(&m, l.body + 2 * 36 + 4, &[0, 0, 0, 4]),
            Box::new(malformed(Field::SequenceNumber)),
            "MalformedCiphertext",
        ),
        (
            "final content length > frame",
            set(&m, l.body + 2 * 36 + 20, &[0, 0, 0, 5]),
            Box::new(malformed(Field::FrameContentLength)),
            "MalformedCiphertext",
        ),
        (
            "final content length - 1",
            set(&m, l.body + 2 * 36 + 20, &[0, 0, 0, 1]),
            eq(Error::AuthenticationFailed {
                field: Field::FrameAuthTag,
            }),
            "AuthenticationFailed",
        ),
        (
            "final content length + 1",
            set(&m, l.body + 2 * 36 + 20, &[0, 0, 0, 3]),
            eq(truncated(Field::FrameAuthTag)),
            "TruncatedCiphertext",
        ),
        (
            "trailing byte",
            [&m[..], &[0]].concat(),
            eq(Error::TrailingBytes { count: 1 }),
            "TrailingBytes",
        ),
        (
            "header only",
            m[..l.body].to_vec(),
            eq(truncated(Field::SequenceNumber)),
            "TruncatedCiphertext",
        ),
        (
            "final frame missing",
            m[..l.body + 2 * 36].to_vec(),
            eq(truncated(Field::SequenceNumber)),
            "TruncatedCiphertext",
        ),
        (
            "regular frames swapped",
            [
                &m[..l.body],
                &m[l.body + 36..l.body + 72],
                &m[l.body..l.body + 36],
                &m[l.body + 72..],
            ]
            .concat(),
            Box::new(malformed(Field::SequenceNumber)),
            "MalformedCiphertext",
        ),
        (
            "regular frame dropped",
            [&m[..l.body], &m[l.body + 36..]].concat(),
            Box::new(malformed(Field::SequenceNumber)),
            "MalformedCiphertext",
        ),
    ];

    // Sanity: the untouched message decrypts, and each case really changes it.
    assert_eq!(decrypt(&k, &m).expect("valid").plaintext, PLAINTEXT);
    for (name, mutated, check, code) in &cases {
        assert_ne!(mutated, &m, "{name}: mutation is a no-op");
        let err = decrypt(&k, mutated).expect_err(name);
        assert!(check(&err), "{name}: unexpected error {err:?}");
        assert_eq!(err.code(), *code, "{name}: {err:?}");
    }
}

#[test]
fn truncation_inside_each_header_field_names_the_field() {
    let (k, m, l) = sample();
    let cases = [
        (0, Field::Version),
        (2, Field::SuiteId),
        (l.message_id + 31, Field::MessageId),
        (l.aad_len + 1, Field::AadLength),
        (l.key + 1, Field::AadLength),
        (l.edk_count + 1, Field::EdkCount),
        (l.pid_len + 1, Field::ProviderIdLength),
        (l.pid + 3, Field::ProviderId),
        (l.info_len, Field::ProviderInfoLength),
        (l.info + 10, Field::ProviderInfo),
        (l.ct_len + 1, Field::EdkCiphertextLength),
        (l.ct + 1, Field::EdkCiphertext),
        (l.content_type, Field::ContentType),
        (l.frame_len + 3, Field::FrameLength),
        (l.suite_data + 16, Field::SuiteData),
        (l.tag + 15, Field::HeaderAuthTag),
        (l.body + 3, Field::SequenceNumber),
        (l.body + 10, Field::FrameIv),
        (l.body + 18, Field::FrameContent),
        (l.body + 30, Field::FrameAuthTag),
        (l.body + 72 + 22, Field::FrameContentLength),
    ];
    for (len, field) in cases {
        let want = Error::Truncated { field };
        if len < l.body {
            assert_eq!(
                parse_header(&m[..len]),
                Err(want.clone()),
                "parse cut at {len}"
            );
        }
        let err = decrypt(&k, &m[..len]).expect_err("truncated");
        assert_eq!(err, want, "decrypt cut at {len}");
        assert_eq!(err.code(), "TruncatedCiphertext");
    }
}
