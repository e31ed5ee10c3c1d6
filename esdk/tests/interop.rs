//! Interoperability with the official AWS Encryption SDK (Python, aws-encryption-sdk 4.x).
//!
//! - `python_vectors_decrypt`: messages the Python SDK wrote (tests/vectors/python-esdk.txt,
//!   produced by tests/vectors/generate.py) decrypt here to the recorded plaintext, context
//!   and encrypted data keys. Runs without Python.
//! - `python_decrypts_rust_messages` (ignored: needs the project's virtualenv): messages
//!   written here are decrypted by the Python SDK (tests/vectors/decrypt.py). Run with
//!   `cargo test -p hearth-esdk --test interop -- --ignored`; the interpreter is
//!   `$HEARTH_ESDK_PYTHON` or `<workspace>/.venv/bin/python`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use hearth_esdk::{decrypt, encrypt, parse_header, DataKey, Error};

const PYTHON_VECTORS: &str = include_str!("vectors/python-esdk.txt");

fn python_vectors() -> Vec<Vector> {
    let vectors = parse_vectors(PYTHON_VECTORS);
    assert!(vectors.len() >= 9, "expected the committed vectors");
    vectors
}

#[test]
fn python_vectors_decrypt() {
    for v in python_vectors() {
        let key = DataKey::from_slice(&v.data_key).expect("32-byte key");
        let header = parse_header(&v.ciphertext).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(header.version(), 2, "{}", v.name);
        assert_eq!(header.suite_id(), 0x0478, "{}", v.name);
        assert_eq!(header.frame_length(), v.frame_length, "{}", v.name);
        assert_eq!(header.encryption_context(), &v.context, "{}", v.name);
        let mut edks = header.encrypted_data_keys().to_vec();
        edks.sort_by(|a, b| {
            (&a.provider_id, &a.provider_info, &a.ciphertext).cmp(&(
                &b.provider_id,
                &b.provider_info,
                &b.ciphertext,
            ))
        });
        assert_eq!(edks, v.edks, "{}", v.name);
        // The caller's view before KMS: the EDK holds the data key (fake KMS wrapping).
        assert!(edks.iter().all(|e| e.ciphertext == static_wrap(&key)));

        let opened = decrypt(&key, &v.ciphertext).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(opened.plaintext, v.plaintext, "{}", v.name);
        assert_eq!(opened.context, v.context, "{}", v.name);
    }
}

#[test]
fn python_vectors_cover_the_interesting_shapes() {
    let vectors = python_vectors();
    let names: Vec<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    for wanted in [
        "empty-plaintext-empty-context",
        "several-frames",
        "exact-multiple-of-frame",
        "unicode-context-sorting",
        "two-encrypted-data-keys",
    ] {
        assert!(names.contains(&wanted), "missing vector {wanted}");
    }
    let two = vectors
        .iter()
        .find(|v| v.name == "two-encrypted-data-keys")
        .expect("vector");
    assert_eq!(two.edks.len(), 2);
}

/// The Python SDK's messages have the layout this crate writes: re-encrypting the same
/// input here with the same key gives a message of the same length, with one documented
/// difference. When the plaintext is a non-zero multiple of the frame length, Python ends
/// with an extra empty final frame (the specification's "MAY"), where this crate makes the
/// last full frame the final one (its "SHOULD"); decrypt accepts both.
#[test]
fn rust_messages_have_the_python_layout() {
    // Python's empty final frame costs 4 + 4 + 12 + 4 + 16 = 40 bytes; making the last full
    // frame the final one costs 8 (marker and content length).
    const EXTRA_EMPTY_FINAL_FRAME: usize = 40 - 8;
    let mut saw_exact_multiple = false;
    for v in python_vectors() {
        let key = DataKey::from_slice(&v.data_key).expect("key");
        let ours =
            encrypt(&key, &v.edks, &v.context, &v.plaintext, v.frame_length).expect("encrypt");
        let exact_multiple =
            !v.plaintext.is_empty() && v.plaintext.len() % v.frame_length as usize == 0;
        saw_exact_multiple |= exact_multiple;
        let expected = if exact_multiple {
            ours.len() + EXTRA_EMPTY_FINAL_FRAME
        } else {
            ours.len()
        };
        assert_eq!(v.ciphertext.len(), expected, "{}", v.name);
        assert_eq!(
            parse_header(&ours).expect("header").header_length(),
            parse_header(&v.ciphertext).expect("header").header_length(),
            "{}",
            v.name
        );
    }
    assert!(
        saw_exact_multiple,
        "vectors should include an exact multiple"
    );
}

#[test]
fn python_vector_with_wrong_key_fails_commitment() {
    let v = &python_vectors()[1];
    let mut wrong = v.data_key.clone();
    wrong[0] ^= 1;
    let err =
        decrypt(&DataKey::from_slice(&wrong).expect("key"), &v.ciphertext).expect_err("wrong key");
    assert_eq!(err, Error::CommitmentMismatch);
    assert_eq!(err.code(), "CommitmentMismatch");
}

/// name, context, plaintext, frame length, key ARNs (one encrypted data key each).
type RustCase = (
    &'static str,
    hearth_esdk::EncryptionContext,
    Vec<u8>,
    u32,
    Vec<&'static str>,
);

fn rust_messages() -> Vec<Vector> {
    let cases: Vec<RustCase> = vec![
        ("empty", ctx(&[]), Vec::new(), 4096, vec![ARN]),
        (
            "small-with-context",
            ctx(&[("tenant", "t-1"), ("purpose", "hearth")]),
            b"hello from rust".to_vec(),
            4096,
            vec![ARN],
        ),
        (
            "frame-length-1",
            ctx(&[("k", "v")]),
            pattern(7),
            1,
            vec![ARN],
        ),
        ("frame-length-100", ctx(&[]), pattern(1000), 100, vec![ARN]),
        ("exact-multiple", ctx(&[]), pattern(8192), 4096, vec![ARN]),
        (
            "unicode-context",
            ctx(&[("é", "日本"), ("B", "1"), ("a", ""), ("", "empty key")]),
            "grüße 🌍".as_bytes().to_vec(),
            4096,
            vec![ARN],
        ),
        (
            "two-edks",
            ctx(&[("tenant", "t-2")]),
            pattern(5000),
            4096,
            vec![ARN, FALLBACK_ARN],
        ),
        (
            "64k",
            ctx(&[("size", "65536")]),
            pattern(65536),
            4096,
            vec![ARN],
        ),
        ("signed-empty", ctx(&[]), Vec::new(), 4096, vec![ARN]),
        (
            "signed-with-context",
            ctx(&[("tenant", "t-3")]),
            pattern(10_000),
            4096,
            vec![ARN, FALLBACK_ARN],
        ),
    ];
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (name, context, plaintext, frame_length, arns))| {
            let key = key(0x40 + i as u8);
            let edks: Vec<_> = arns.iter().map(|arn| kms_edk(arn, &key)).collect();
            let ciphertext = if name.starts_with("signed") {
                let suite = hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
                let signer = hearth_esdk::SigningKey::generate(suite).expect("signing key");
                hearth_esdk::encrypt_with(
                    suite,
                    &key,
                    &edks,
                    &context,
                    Some(&signer),
                    &plaintext,
                    frame_length,
                )
                .expect("encrypt")
            } else {
                encrypt(&key, &edks, &context, &plaintext, frame_length).expect("encrypt")
            };
            Vector {
                name: name.to_owned(),
                frame_length,
                data_key: key.as_bytes().to_vec(),
                context,
                edks,
                plaintext,
                ciphertext,
            }
        })
        .collect()
}

#[test]
#[ignore = "needs the Python aws-encryption-sdk in <workspace>/.venv (or $HEARTH_ESDK_PYTHON)"]
fn python_decrypts_rust_messages() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("HEARTH_ESDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../.venv/bin/python"));
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hearth-esdk-rust-messages.txt");
    std::fs::write(&file, write_vectors(&rust_messages())).expect("write messages");

    let output = Command::new(&python)
        .arg(manifest.join("tests/vectors/decrypt.py"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("decrypted 10 hearth-esdk messages"),
        "{stdout}"
    );
}

/// The messages handed to Python decrypt here too (so a Python failure is an interop
/// problem, not a broken message).
#[test]
fn rust_messages_decrypt_here() {
    for v in rust_messages() {
        let key = DataKey::from_slice(&v.data_key).expect("key");
        let opened = decrypt(&key, &v.ciphertext).expect("decrypt");
        assert_eq!(opened.plaintext, v.plaintext, "{}", v.name);
        assert_eq!(
            hearth_esdk::user_context(&opened.context),
            v.context,
            "{}",
            v.name
        );
        let signed = v.name.starts_with("signed");
        assert_eq!(opened.suite.signature().is_some(), signed, "{}", v.name);
    }
}

const SUITE_VECTORS: &str = include_str!("vectors/python-esdk-suites.txt");

/// The Python SDK's messages in every suite (tests/vectors/python-esdk-suites.txt, written
/// by `generate.py --all-suites`): each decrypts under a policy that allows it, with the
/// recorded plaintext and full context; non-committing ones are refused under the default
/// policy before any key is needed.
#[test]
fn every_suite_from_python_decrypts_under_the_policy_that_allows_it() {
    use hearth_esdk::{check_policy, decrypt_with_policy, CommitmentPolicy, ContentType, Suite};
    let vectors = parse_vectors(SUITE_VECTORS);
    assert_eq!(vectors.len(), 44);
    let mut seen = std::collections::BTreeSet::new();
    let mut non_framed = 0;
    for v in &vectors {
        let key = DataKey::from_slice(&v.data_key).expect("key");
        let header = parse_header(&v.ciphertext).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let suite = header.suite();
        assert!(
            v.name.starts_with(&format!("{:04x}-", suite.id())),
            "{}",
            v.name
        );
        assert_eq!(
            header.version(),
            suite.message_format_version(),
            "{}",
            v.name
        );
        assert_eq!(header.frame_length(), v.frame_length, "{}", v.name);
        assert_eq!(header.encryption_context(), &v.context, "{}", v.name);
        if header.content_type() == ContentType::NonFramed {
            non_framed += 1;
            assert_eq!(v.frame_length, 0, "{}", v.name);
        }
        seen.insert(suite);
        for policy in [
            CommitmentPolicy::RequireEncryptAllowDecrypt,
            CommitmentPolicy::ForbidEncryptAllowDecrypt,
        ] {
            let opened = decrypt_with_policy(&key, &v.ciphertext, policy)
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!(opened.plaintext, v.plaintext, "{}", v.name);
            assert_eq!(opened.context, v.context, "{}", v.name);
            assert_eq!(opened.suite, suite);
        }
        let strict = CommitmentPolicy::RequireEncryptRequireDecrypt;
        if suite.is_committing() {
            assert!(decrypt(&key, &v.ciphertext).is_ok(), "{}", v.name);
        } else {
            let err = check_policy(&header, strict).expect_err("refused");
            assert_eq!(err.code(), "CommitmentPolicyViolation");
            assert_eq!(decrypt(&key, &v.ciphertext).map(|_| ()), Err(err));
        }
        // The reserved public key is there exactly for signed suites.
        assert_eq!(
            hearth_esdk::user_context(&v.context).len() < v.context.len(),
            suite.signature().is_some(),
            "{}",
            v.name
        );
        // A wrong key of the right length never opens it.
        let mut wrong = v.data_key.clone();
        wrong[0] ^= 1;
        let wrong = DataKey::from_slice(&wrong).expect("key");
        let err = decrypt_with_policy(
            &wrong,
            &v.ciphertext,
            CommitmentPolicy::RequireEncryptAllowDecrypt,
        )
        .expect_err("wrong key");
        assert!(
            matches!(
                err,
                Error::CommitmentMismatch | Error::AuthenticationFailed { .. }
            ),
            "{}: {err:?}",
            v.name
        );
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), Suite::ALL.to_vec());
    assert_eq!(non_framed, 22);
}
