//! Envelope encryption through Hearth (cached data keys, AWS Encryption SDK messages) against
//! KMS per message: `Encrypt`/`Decrypt` of the payload itself (1 KiB; KMS refuses more than
//! 4,096 bytes), and a fresh data key per message (`GenerateDataKey` or `Decrypt` of the
//! encrypted key, then AES-256-GCM locally: what an uncached ESDK does), both SDK → moto.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use hearth_tests::hearth::TOKEN;
use serde_json::{json, Value};

use crate::client::Http;
use crate::floor::Floor;
use crate::load::{self, Load};
use crate::peers::Peers;
use crate::report::{Comparison, Row};
use crate::stats::{measure, Budget, Summary};

/// The encryption context of every message.
const CONTEXT: (&str, &str) = ("tenant", "a");
/// Distinct messages cycled through by the decrypt benchmarks.
const MESSAGES: usize = 32;

/// Counters from Hearth's `/v1/metrics`.
pub async fn counters(http: &mut Http) -> Result<Value, String> {
    let b = http.get_ok("/v1/metrics").await?;
    let v: Value = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
    Ok(v["counters"].clone())
}

fn counter(c: &Value, name: &str) -> u64 {
    c[name].as_u64().unwrap_or(0)
}

struct HearthSide {
    encrypt: Summary,
    decrypt: Summary,
    /// The floor (trivial server, same request and response bytes) for each.
    encrypt_floor: Summary,
    decrypt_floor: Summary,
    /// GenerateDataKey calls per 10,000 encrypts (prewarm excluded).
    gdk_per_10k: f64,
    /// KMS Decrypt calls per 10,000 decrypts.
    decrypt_per_10k: f64,
    ops_encrypt: u64,
    ops_decrypt: u64,
}

async fn hearth_side(p: &Peers, size: usize, secs: u64) -> Result<HearthSide, String> {
    let mut http = Http::connect(p.hearth.port, Some(TOKEN)).await?;
    let plaintext = vec![0x5a_u8; size];
    let enc_body = json!({"plaintext": B64.encode(&plaintext), "context": {CONTEXT.0: CONTEXT.1}});
    let first = http
        .post_ok("/v1/kms/encrypt", Bytes::from(enc_body.to_string()))
        .await?;

    // Messages to decrypt, checked once.
    let mut bodies = Vec::with_capacity(MESSAGES);
    for _ in 0..MESSAGES {
        let r = http
            .post_ok("/v1/kms/encrypt", Bytes::from(enc_body.to_string()))
            .await?;
        let v: Value = serde_json::from_slice(&r).map_err(|e| e.to_string())?;
        bodies.push(json!({"ciphertext": v["ciphertext"], "context": {CONTEXT.0: CONTEXT.1}}));
    }
    let dec_answer = http
        .post_ok("/v1/kms/decrypt", Bytes::from(bodies[0].to_string()))
        .await?;
    let v: Value = serde_json::from_slice(&dec_answer).map_err(|e| e.to_string())?;
    if v["plaintext"].as_str().map(|s| B64.decode(s).ok()) != Some(Some(plaintext)) {
        return Err("Hearth decrypted to something else".into());
    }

    let enc = Load::post(p.hearth.port, "/v1/kms/encrypt", &enc_body)
        .token(TOKEN)
        .with(1, secs);
    let before = counters(&mut http).await?;
    let encrypt = load::run(&enc, || {}).await?;
    let mid = counters(&mut http).await?;
    let dec = Load::post(p.hearth.port, "/v1/kms/decrypt", &bodies[0])
        .cycling(bodies[1..].to_vec())
        .token(TOKEN)
        .with(1, secs);
    let decrypt = load::run(&dec, || {}).await?;
    let after = counters(&mut http).await?;

    let floor = Floor::start(first)?;
    let encrypt_floor = load::run(&enc.on(floor.port), || {}).await?;
    drop(floor);
    let floor = Floor::start(dec_answer)?;
    let decrypt_floor = load::run(&dec.on(floor.port), || {}).await?;
    drop(floor);

    let d = |a: &Value, b: &Value, n: &str| counter(b, n).saturating_sub(counter(a, n));
    let ops_encrypt = d(&before, &mid, "kms.encrypts");
    let ops_decrypt = d(&mid, &after, "kms.decrypts");
    let per10k = |calls: u64, ops: u64| {
        if ops == 0 {
            0.0
        } else {
            calls as f64 * 10_000.0 / ops as f64
        }
    };
    Ok(HearthSide {
        encrypt,
        decrypt,
        encrypt_floor,
        decrypt_floor,
        gdk_per_10k: per10k(d(&before, &mid, "kms.generate_data_key_calls"), ops_encrypt),
        decrypt_per_10k: per10k(d(&mid, &after, "kms.decrypt_calls"), ops_decrypt),
        ops_encrypt,
        ops_decrypt,
    })
}

/// Direct KMS Encrypt and Decrypt of the payload (1 KiB).
async fn direct_kms(p: &Peers, size: usize, b: Budget) -> Result<(Summary, Summary), String> {
    let kms = p.moto.kms_client().await;
    let key = p.key_arn.clone();
    let plaintext = Blob::new(vec![0x5a_u8; size]);
    let mut st = (kms.clone(), key.clone(), plaintext);
    let encrypt = measure(b, &mut st, |(kms, key, pt), _| {
        Box::pin(async move {
            kms.encrypt()
                .key_id(key.as_str())
                .plaintext(pt.clone())
                .encryption_context(CONTEXT.0, CONTEXT.1)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("KMS Encrypt: {e:?}"))
        })
    })
    .await?;
    let mut blobs = Vec::new();
    for _ in 0..MESSAGES.min(8) {
        let r = kms
            .encrypt()
            .key_id(key.as_str())
            .plaintext(Blob::new(vec![0x5a_u8; size]))
            .encryption_context(CONTEXT.0, CONTEXT.1)
            .send()
            .await
            .map_err(|e| format!("KMS Encrypt: {e:?}"))?;
        blobs.push(r.ciphertext_blob.ok_or("Encrypt returned no ciphertext")?);
    }
    let mut st = (kms, blobs);
    let decrypt = measure(b, &mut st, |(kms, blobs), i| {
        let blob = blobs[i % blobs.len()].clone();
        Box::pin(async move {
            kms.decrypt()
                .ciphertext_blob(blob)
                .encryption_context(CONTEXT.0, CONTEXT.1)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("KMS Decrypt: {e:?}"))
        })
    })
    .await?;
    Ok((encrypt, decrypt))
}

/// One message sealed under a fresh data key: (encrypted data key, nonce, ciphertext).
type Sealed = (Blob, [u8; NONCE_LEN], Vec<u8>);

async fn seal_per_message(
    kms: &aws_sdk_kms::Client,
    key: &str,
    pt: &[u8],
) -> Result<Sealed, String> {
    let dk = kms
        .generate_data_key()
        .key_id(key)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context(CONTEXT.0, CONTEXT.1)
        .send()
        .await
        .map_err(|e| format!("GenerateDataKey: {e:?}"))?;
    let plain = dk
        .plaintext
        .ok_or("GenerateDataKey returned no plaintext")?;
    let edk = dk
        .ciphertext_blob
        .ok_or("GenerateDataKey returned no blob")?;
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, plain.as_ref()).map_err(|e| format!("AES key: {e}"))?,
    );
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|e| format!("rand: {e}"))?;
    let mut buf = pt.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(CONTEXT.1.as_bytes()),
        &mut buf,
    )
    .map_err(|e| format!("seal: {e}"))?;
    Ok((edk, nonce, buf))
}

async fn open_per_message(kms: &aws_sdk_kms::Client, m: &Sealed) -> Result<(), String> {
    let dk = kms
        .decrypt()
        .ciphertext_blob(m.0.clone())
        .encryption_context(CONTEXT.0, CONTEXT.1)
        .send()
        .await
        .map_err(|e| format!("KMS Decrypt: {e:?}"))?;
    let plain = dk.plaintext.ok_or("Decrypt returned no plaintext")?;
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, plain.as_ref()).map_err(|e| format!("AES key: {e}"))?,
    );
    let mut buf = m.2.clone();
    k.open_in_place(
        Nonce::assume_unique_for_key(m.1),
        Aad::from(CONTEXT.1.as_bytes()),
        &mut buf,
    )
    .map_err(|e| format!("open: {e}"))?;
    Ok(())
}

/// A fresh data key per message (an uncached envelope-encryption client).
async fn per_message(p: &Peers, size: usize, b: Budget) -> Result<(Summary, Summary), String> {
    let kms = p.moto.kms_client().await;
    let key = p.key_arn.clone();
    let pt = vec![0x5a_u8; size];
    let mut st = (kms.clone(), key.clone(), pt.clone());
    let encrypt = measure(b, &mut st, |(kms, key, pt), _| {
        Box::pin(async move { seal_per_message(kms, key, pt).await.map(|_| ()) })
    })
    .await?;
    let mut msgs = Vec::new();
    for _ in 0..MESSAGES.min(8) {
        msgs.push(seal_per_message(&kms, &key, &pt).await?);
    }
    let mut st = (kms, msgs);
    let decrypt = measure(b, &mut st, |(kms, msgs), i| {
        Box::pin(async move { open_per_message(kms, &msgs[i % msgs.len()]).await })
    })
    .await?;
    Ok((encrypt, decrypt))
}

/// Runs the four comparisons (encrypt and decrypt, 1 KiB and 64 KiB).
pub async fn run(p: &Peers, quick: bool) -> Result<Vec<Comparison>, String> {
    let scale = if quick { 20 } else { 1 };
    let mut out = Vec::new();
    for (size, label) in [(1024usize, "1 KiB"), (64 * 1024, "64 KiB")] {
        // At 1 KiB a 5 s window is well over 10,000 encrypts: the "KMS calls per 10,000"
        // figure is counted, not extrapolated.
        let h = hearth_side(p, size, if quick { 2 } else { 5 }).await?;
        let direct_budget = Budget::new(5, 200, 10).scaled(scale);
        let (pm_enc, pm_dec) = per_message(p, size, direct_budget).await?;
        let mut enc_rows = vec![Row {
            name: "Hearth (cached data key, ESDK message)".into(),
            summary: h.encrypt,
            kms_per_10k: Some(h.gdk_per_10k),
            note: format!(
                "wrk -t1 -c1, one request body; GenerateDataKey calls counted over all {} encrypts of the run (/v1/metrics); the first data key was made at prewarm",
                h.ops_encrypt
            ),
        }];
        let enc_floor = Row::new(
            "trivial hyper server, same request and response bytes",
            h.encrypt_floor,
            format!(
                "wrk's floor: Hearth adds p50 {:+.0} µs",
                h.encrypt.p50_us - h.encrypt_floor.p50_us
            ),
        );
        let dec_floor = Row::new(
            "trivial hyper server, same request and response bytes",
            h.decrypt_floor,
            format!(
                "wrk's floor: Hearth adds p50 {:+.0} µs",
                h.decrypt.p50_us - h.decrypt_floor.p50_us
            ),
        );
        let mut dec_rows = vec![Row {
            name: "Hearth (cached data key, ESDK message)".into(),
            summary: h.decrypt,
            kms_per_10k: Some(h.decrypt_per_10k),
            note: format!(
                "wrk -t1 -c1 cycling through {MESSAGES} distinct messages; KMS Decrypt calls counted over all {} decrypts",
                h.ops_decrypt
            ),
        }];
        enc_rows.push(enc_floor);
        dec_rows.push(dec_floor);
        let baseline = 2;
        if size <= 4096 {
            let (kms_enc, kms_dec) = direct_kms(p, size, direct_budget).await?;
            enc_rows.push(Row {
                name: "direct KMS Encrypt per message (SDK → moto)".into(),
                summary: kms_enc,
                kms_per_10k: Some(10_000.0),
                note: "payload encrypted by KMS itself (≤ 4 KiB only)".into(),
            });
            dec_rows.push(Row {
                name: "direct KMS Decrypt per message (SDK → moto)".into(),
                summary: kms_dec,
                kms_per_10k: Some(10_000.0),
                note: String::new(),
            });
        }
        enc_rows.push(Row {
            name: "GenerateDataKey per message + local AES-256-GCM (SDK → moto)".into(),
            summary: pm_enc,
            kms_per_10k: Some(10_000.0),
            note: "an uncached envelope-encryption client".into(),
        });
        dec_rows.push(Row {
            name: "KMS Decrypt of the data key per message + local AES-256-GCM (SDK → moto)".into(),
            summary: pm_dec,
            kms_per_10k: Some(10_000.0),
            note: String::new(),
        });
        let note = if size > 4096 {
            vec!["KMS Encrypt takes at most 4,096 bytes of plaintext, so at 64 KiB the per-message baseline is a fresh data key per message.".to_string()]
        } else {
            vec![]
        };
        out.push(Comparison {
            id: format!("encrypt_{}k", size / 1024),
            title: format!("Envelope encrypt, {label}: Hearth vs KMS per message"),
            baseline,
            rows: enc_rows,
            notes: note.clone(),
        });
        out.push(Comparison {
            id: format!("decrypt_{}k", size / 1024),
            title: format!("Envelope decrypt, {label}: Hearth vs KMS per message"),
            baseline,
            rows: dec_rows,
            notes: note,
        });
    }
    Ok(out)
}
