//! What a signed message costs to open: decrypting a 1 KiB ESDK message in suite 0x0578
//! (AES-256-GCM, HKDF-SHA512, key commitment, ECDSA P-384 signature) against 0x0478 (the same
//! without the signature), in process with `hearth-esdk` and a data key already in hand — no
//! KMS, no HTTP — so the difference is the signature check alone. Encryption too: for 0x0578
//! it includes making the per-message P-384 key pair.

use hearth_esdk::{
    decrypt, encrypt_with, DataKey, EncryptedDataKey, EncryptionContext, SigningKey, Suite,
};

use crate::report::{Comparison, Row};
use crate::stats::{measure, Budget};

fn message(suite: Suite, key: &DataKey, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let edk = EncryptedDataKey {
        provider_id: "aws-kms".into(),
        provider_info: b"arn:aws:kms:us-east-1:123456789012:key/bench".to_vec(),
        ciphertext: vec![7u8; 184],
    };
    let context = EncryptionContext::from([("tenant".to_owned(), "t-1".to_owned())]);
    let signer = match suite.signature() {
        Some(_) => Some(SigningKey::generate(suite).map_err(|e| e.to_string())?),
        None => None,
    };
    encrypt_with(
        suite,
        key,
        &[edk],
        &context,
        signer.as_ref(),
        plaintext,
        hearth_esdk::DEFAULT_FRAME_LENGTH,
    )
    .map_err(|e| e.to_string())
}

/// Runs the comparison.
pub async fn run(quick: bool) -> Result<Comparison, String> {
    let budget = Budget::new(200, 5_000, 10).scaled(if quick { 10 } else { 1 });
    let key = DataKey::from_slice(&[9u8; 32]).map_err(|e| e.to_string())?;
    let plaintext = vec![0x5au8; 1024];
    let mut rows = Vec::new();
    for (label, suite) in [
        (
            "decrypt 1 KiB, 0x0478 (unsigned)",
            Suite::Aes256GcmHkdfSha512CommitKey,
        ),
        (
            "decrypt 1 KiB, 0x0578 (ECDSA P-384)",
            Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        ),
    ] {
        let msg = message(suite, &key, &plaintext)?;
        let mut st = (&key, msg);
        let s = measure(budget, &mut st, |(key, msg), _| {
            Box::pin(async move {
                let out = decrypt(key, msg).map_err(|e| e.to_string())?;
                if out.plaintext.len() == 1024 {
                    Ok(())
                } else {
                    Err("wrong plaintext".into())
                }
            })
        })
        .await?;
        rows.push(Row::new(
            label,
            s,
            "hearth-esdk in process, data key in hand",
        ));
    }
    for (label, suite) in [
        ("encrypt 1 KiB, 0x0478", Suite::Aes256GcmHkdfSha512CommitKey),
        (
            "encrypt 1 KiB, 0x0578 (new key pair + signature)",
            Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        ),
    ] {
        let mut st = (&key, plaintext.clone());
        let s = measure(budget, &mut st, |(key, pt), _| {
            Box::pin(async move { message(suite, key, pt).map(|_| ()) })
        })
        .await?;
        rows.push(Row::new(
            label,
            s,
            "hearth-esdk in process, data key in hand",
        ));
    }
    Ok(Comparison {
        id: "esdk_signed".into(),
        title: "ESDK message, 1 KiB: signed suite 0x0578 vs 0x0478 (in process, no KMS)".into(),
        baseline: 0,
        rows,
        notes: vec![
            "Through Hearth each request adds the HTTP hop and, on a cache miss, KMS; 0x0578 encryption also makes one GenerateDataKey per message (the data key is bound to the message's public key), which the envelope-encryption comparison does not show.".into(),
        ],
    })
}
