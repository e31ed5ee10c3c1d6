//! KMS envelope encryption end to end: the real `hearth` binary against moto's KMS, driven
//! over HTTP, with the official Python and JavaScript AWS Encryption SDKs on the other side
//! for interop (tests/python/esdk_interop.py, tests/node/esdk_interop.js; both installed by
//! scripts/install-test-deps.sh).
//!
//! Counts come from `/v1/metrics` (`kms.generate_data_key_calls`, `kms.decrypt_calls`),
//! never from timing moto. Each test starts its own moto and hearth processes, so tests
//! run in parallel without sharing state.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hearth_tests::hearth::{Hearth, TOKEN};
use hearth_tests::moto::{create_key_with, Moto};
use hearth_tests::workspace_root;
use serde_json::{json, Value};

/// moto plus one KMS key created by the test's own client.
struct Kms {
    moto: Moto,
    key_arn: String,
    client: aws_sdk_kms::Client,
}

async fn kms() -> Kms {
    let moto = Moto::start();
    let client = moto.kms_client().await;
    let key_arn = create_key_with(&client).await;
    Kms {
        moto,
        key_arn,
        client,
    }
}

impl Kms {
    /// Hearth with the key as its default (unless `extra` sets HEARTH_KMS_KEY_ID), debug
    /// logs (so a leak would show), and `extra` settings.
    async fn hearth(&self, extra: &[(&str, &str)]) -> Hearth {
        let mut env = self.moto.env();
        env.push(("HEARTH_LOG_LEVEL".into(), "debug".into()));
        env.push(("HEARTH_METRICS_EMF".into(), "false".into()));
        if !extra.iter().any(|(k, _)| *k == "HEARTH_KMS_KEY_ID") {
            env.push(("HEARTH_KMS_KEY_ID".into(), self.key_arn.clone()));
        }
        for (k, v) in extra {
            if !v.is_empty() {
                env.push((k.to_string(), v.to_string()));
            }
        }
        Hearth::start(&env).await
    }

    /// Runs tests/python/esdk_interop.py; stdout on success, stderr on failure.
    fn python(&self, args: &[&str], request: &Value) -> Result<String, String> {
        let root = workspace_root();
        self.run(
            root.join(".venv/bin/python"),
            root.join("tests/python/esdk_interop.py"),
            args,
            request,
        )
    }

    /// Runs tests/node/esdk_interop.js (the JavaScript ESDK, its defaults); stdout on
    /// success, stderr on failure.
    fn node(&self, args: &[&str], request: &Value) -> Result<String, String> {
        let root = workspace_root();
        self.run(
            PathBuf::from("node"),
            root.join("tests/node/esdk_interop.js"),
            args,
            request,
        )
    }

    fn run(
        &self,
        program: PathBuf,
        script: PathBuf,
        args: &[&str],
        request: &Value,
    ) -> Result<String, String> {
        let mut child = Command::new(program)
            .arg(script)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.moto.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(request.to_string().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap()).unwrap()
}

/// Encrypts with Hearth; panics unless 200.
async fn encrypt(h: &Hearth, plaintext: &[u8], context: Value) -> Vec<u8> {
    let (status, body) = h
        .post(
            "/v1/kms/encrypt",
            &json!({"plaintext": b64(plaintext), "context": context}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    unb64(&body["ciphertext"])
}

/// The encrypted data key of a Hearth message (which data key encrypted it).
fn edk(message: &[u8]) -> Vec<u8> {
    let header = hearth_esdk::parse_header(message).unwrap();
    header.encrypted_data_keys()[0].ciphertext.clone()
}

async fn generated(h: &Hearth) -> u64 {
    h.counter("kms.generate_data_key_calls").await
}

/// Waits (bounded) until prewarm, which generates the default key's empty-context data
/// key, has finished, so counts that follow are deterministic.
async fn prewarmed(h: &Hearth) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if h.get("/health").await.1["prewarmed"] == true {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("prewarm did not finish");
}

/// The extension did not panic, and never printed `plaintext`.
fn assert_output_clean(h: &Hearth, plaintext: &str) {
    let output = h.proc.output();
    assert!(!output.contains("panicked"), "{output}");
    assert!(!output.contains(plaintext), "{output}");
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap_or("")),
        (want_status, want_code),
        "{body}"
    );
}

#[tokio::test]
async fn round_trip_context_data_key_and_shutdown() {
    let k = kms().await;
    let mut h = k.hearth(&[]).await;
    let secret = b"round-trip plaintext 6f1c2a";
    let ctx = json!({"tenant": "t-1", "purpose": "test"});

    for context in [json!({}), ctx.clone()] {
        let message = encrypt(&h, secret, context.clone()).await;
        let header = hearth_esdk::parse_header(&message).unwrap();
        let edk = &header.encrypted_data_keys()[0];
        assert_eq!(edk.provider_id, "aws-kms");
        assert_eq!(edk.provider_info, k.key_arn.as_bytes());
        // With the context, without it (echoed back), and with a wrong one.
        for given in [Some(context.clone()), None] {
            let mut req = json!({"ciphertext": b64(&message)});
            if let Some(c) = given {
                req["context"] = c;
            }
            let (status, body) = h.post("/v1/kms/decrypt", &req).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(unb64(&body["plaintext"]), secret);
            assert_eq!(body["context"], context);
        }
        let (status, body) = h
            .post(
                "/v1/kms/decrypt",
                &json!({"ciphertext": b64(&message), "context": {"tenant": "t-2"}}),
            )
            .await;
        assert_error(status, &body, 400, "ContextMismatch");
    }
    // Two partitions (empty context, ctx): two data keys; two decrypts of each message
    // shared one KMS Decrypt through the decrypt cache.
    assert_eq!(generated(&h).await, 2);
    assert_eq!(h.counter("kms.decrypt_calls").await, 2);

    // The data-key endpoint makes a fresh data key per call, never the cached key that
    // protects the messages above, and counts each call.
    let (status, dk) = h
        .post("/v1/kms/data-key", &json!({"context": ctx.clone()}))
        .await;
    assert_eq!(status, 200, "{dk}");
    assert_eq!(dk["keyId"], k.key_arn.as_str());
    let key = unb64(&dk["plaintext"]);
    assert_eq!(key.len(), 32);
    assert_eq!(
        generated(&h).await,
        3,
        "one GenerateDataKey per data-key call"
    );
    let (status, dk2) = h
        .post("/v1/kms/data-key", &json!({"context": ctx.clone()}))
        .await;
    assert_eq!(status, 200, "{dk2}");
    assert_ne!(unb64(&dk2["plaintext"]), key, "a fresh key per call");
    assert_ne!(dk2["ciphertextBlob"], dk["ciphertextBlob"]);
    assert_eq!(generated(&h).await, 4);
    assert_eq!(h.counter("kms.data_keys_served").await, 2);
    // The messages' partition still has its own key: another encrypt reuses it.
    let again = encrypt(&h, secret, ctx.clone()).await;
    assert_eq!(generated(&h).await, 4);
    assert_ne!(edk(&again), unb64(&dk["ciphertextBlob"]));
    // It is a real KMS data key under that context: KMS decrypts its blob to it.
    let out = k
        .client
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(unb64(
            &dk["ciphertextBlob"],
        )))
        .encryption_context("tenant", "t-1")
        .encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(out.plaintext.unwrap().as_ref(), key.as_slice());

    // Unknown key, and no key at all.
    let (status, body) = h
        .post(
            "/v1/kms/encrypt",
            &json!({"plaintext": "aGk=", "keyId": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"}),
        )
        .await;
    assert_error(status, &body, 404, "KeyNotFound");
    let nokey = k.hearth(&[("HEARTH_KMS_KEY_ID", "")]).await;
    let (status, body) = nokey
        .post("/v1/kms/encrypt", &json!({"plaintext": "aGk="}))
        .await;
    assert_error(status, &body, 400, "KeyIdRequired");
    let (status, body) = nokey
        .post("/v1/kms/data-key", &json!({"keyId": k.key_arn}))
        .await;
    assert_eq!(status, 200, "{body}");

    // SHUTDOWN (standalone: SIGTERM) drops every cached key after the drain.
    h.proc.signal("TERM");
    assert!(h.proc.wait_exit(Duration::from_secs(5)).await.is_some());
    let output = h.proc.output();
    assert!(output.contains("keys_zeroized=4"), "{output}");
    for leak in [
        String::from_utf8_lossy(secret).into_owned(),
        b64(secret),
        dk["plaintext"].as_str().unwrap().to_string(),
    ] {
        assert!(!output.contains(&leak), "output leaks {leak}:\n{output}");
    }
}

#[tokio::test]
async fn python_esdk_interop_both_ways() {
    let k = kms().await;
    let h = k.hearth(&[]).await;
    let secret = b"interop plaintext \x00\xff 9c41";
    let ctx = json!({"tenant": "t-9", "order": "42"});

    // Hearth → Python, with and without context; a wrong expected context fails.
    for context in [json!({}), ctx.clone()] {
        let message = encrypt(&h, secret, context.clone()).await;
        let out = k
            .python(
                &["decrypt", &k.key_arn],
                &json!({"ciphertext": b64(&message), "context": context}),
            )
            .unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(unb64(&out["plaintext"]), secret);
        assert_eq!(out["context"], context);
        let wrong = k.python(
            &["decrypt", &k.key_arn],
            &json!({"ciphertext": b64(&message), "context": {"tenant": "other"}}),
        );
        assert!(wrong.unwrap_err().contains("mismatch"));
    }
    // A larger, multi-frame plaintext too (frames of 4096 bytes).
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let message = encrypt(&h, &big, ctx.clone()).await;
    let out = k
        .python(
            &["decrypt", &k.key_arn],
            &json!({"ciphertext": b64(&message), "context": null}),
        )
        .unwrap();
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(unb64(&out["plaintext"]), big);

    // Python → Hearth, with and without context.
    for context in [json!({}), ctx.clone()] {
        let message = k
            .python(
                &["encrypt", &k.key_arn],
                &json!({"plaintext": b64(secret), "context": context}),
            )
            .unwrap();
        let (status, body) = h
            .post(
                "/v1/kms/decrypt",
                &json!({"ciphertext": message, "context": context}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(unb64(&body["plaintext"]), secret);
        assert_eq!(body["context"], context);
        let (status, body) = h
            .post(
                "/v1/kms/decrypt",
                &json!({"ciphertext": message, "context": {"tenant": "other"}}),
            )
            .await;
        assert_error(status, &body, 400, "ContextMismatch");
    }
    // The signed suite (0x0578, the Python SDK's own default) decrypts too, and the
    // response names the key that opened it; the reserved public key is neither required
    // nor returned.
    let signed = k
        .python(
            &[
                "encrypt",
                &k.key_arn,
                "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
            ],
            &json!({"plaintext": b64(secret), "context": ctx}),
        )
        .unwrap();
    assert_eq!(suite_of(&B64.decode(&signed).unwrap()), 0x0578);
    let (status, body) = h
        .post(
            "/v1/kms/decrypt",
            &json!({"ciphertext": signed, "context": ctx}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(unb64(&body["plaintext"]), secret);
    assert_eq!(body["context"], ctx);
    assert_eq!(body["keyArn"], k.key_arn.as_str());
}

fn suite_of(message: &[u8]) -> u16 {
    hearth_esdk::parse_header(message).unwrap().suite_id()
}

const ALL_SUITES: [u16; 11] = [
    0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378, 0x0478, 0x0578,
];

/// Messages of every suite written by the Python SDK (framed and non-framed, with and
/// without context, empty and multi-frame), and the Node SDK's default output: each opens
/// under the policy that allows it and is refused, before any KMS call, under the one that
/// does not.
#[tokio::test]
async fn every_official_sdk_message_decrypts_under_the_policy_that_allows_it() {
    let k = kms().await;
    let strict = k.hearth(&[]).await;
    let legacy = k
        .hearth(&[(
            "HEARTH_KMS_COMMITMENT_POLICY",
            "require-encrypt-allow-decrypt",
        )])
        .await;
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    let ctx = json!({"tenant": "t-5", "purpose": "interop"});
    // (frame length, context, plaintext): 10,000 bytes make three 4096-byte frames.
    let shapes = [
        (4096, ctx.clone(), big.clone()),
        (0, json!({}), big.clone()),
        (4096, json!({}), Vec::new()),
        (0, ctx.clone(), Vec::new()),
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for suite in ALL_SUITES {
        for (frame, context, plaintext) in &shapes {
            cases.push(json!({"suite": suite, "frameLength": frame, "plaintext": b64(plaintext), "context": context}));
            expected.push((suite, *frame, context.clone(), plaintext.clone()));
        }
    }
    let out = k
        .python(&["encrypt-many", &k.key_arn], &Value::Array(cases))
        .unwrap();
    let messages: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(messages.len(), 44);

    let strict_calls = strict.counter("kms.decrypt_calls").await;
    let mut refused = 0;
    for (message, (suite, frame, context, plaintext)) in messages.iter().zip(&expected) {
        let raw = B64.decode(message).unwrap();
        let header = hearth_esdk::parse_header(&raw).unwrap();
        assert_eq!(header.suite_id(), *suite);
        assert_eq!(header.frame_length(), *frame);
        let committing = *suite >= 0x0478;
        let req = json!({"ciphertext": message, "context": context});
        let (status, body) = strict.post("/v1/kms/decrypt", &req).await;
        if committing {
            assert_eq!(status, 200, "{suite:#06x}: {body}");
            assert_eq!(unb64(&body["plaintext"]), *plaintext);
        } else {
            assert_error(status, &body, 400, "CommitmentPolicyViolation");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains("require-encrypt-allow-decrypt"), "{msg}");
            refused += 1;
        }
        let (status, body) = legacy.post("/v1/kms/decrypt", &req).await;
        assert_eq!(status, 200, "{suite:#06x} frame {frame}: {body}");
        assert_eq!(unb64(&body["plaintext"]), *plaintext);
        assert_eq!(body["context"], *context);
        assert_eq!(body["keyArn"], k.key_arn.as_str());
    }
    assert_eq!(refused, 36);
    // Only the committing messages reached KMS on the strict side.
    assert_eq!(
        strict.counter("kms.decrypt_calls").await - strict_calls,
        8,
        "refused messages must not call KMS"
    );

    // The Node SDK's default output (0x0578), with and without context.
    for context in [json!({}), ctx.clone()] {
        let message = k
            .node(
                &["encrypt", &k.key_arn],
                &json!({"plaintext": b64(&big), "context": context}),
            )
            .unwrap();
        assert_eq!(suite_of(&B64.decode(&message).unwrap()), 0x0578);
        for h in [&strict, &legacy] {
            let (status, body) = h
                .post(
                    "/v1/kms/decrypt",
                    &json!({"ciphertext": message, "context": context}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(unb64(&body["plaintext"]), big);
            assert_eq!(body["context"], context);
        }
    }

    // forbid-encrypt-allow-decrypt reads every suite and refuses to encrypt (Hearth writes
    // committing suites only), with a code and a message saying what to do.
    let forbid = k
        .hearth(&[(
            "HEARTH_KMS_COMMITMENT_POLICY",
            "forbid-encrypt-allow-decrypt",
        )])
        .await;
    let (status, body) = forbid
        .post("/v1/kms/decrypt", &json!({"ciphertext": messages[32]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = forbid
        .post("/v1/kms/encrypt", &json!({"plaintext": "aGk="}))
        .await;
    assert_error(status, &body, 400, "CommitmentPolicyViolation");
}

/// Hearth's signed messages (HEARTH_KMS_ALGORITHM=0x0578) decrypt in both official SDKs
/// with their defaults; each takes its own data key (the signing key is never reused);
/// tampering the header, body or footer fails with a stable code.
#[tokio::test]
async fn hearth_signed_messages_open_in_both_official_sdks() {
    let k = kms().await;
    let h = k.hearth(&[("HEARTH_KMS_ALGORITHM", "0x0578")]).await;
    prewarmed(&h).await;
    let before = generated(&h).await;
    assert_eq!(
        before, 0,
        "nothing to prewarm: signed messages never share a data key"
    );
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 241) as u8).collect();
    let ctx = json!({"tenant": "t-7"});
    let mut signed = Vec::new();
    for (plaintext, context) in [
        (b"signed by hearth".to_vec(), json!({})),
        (big.clone(), ctx.clone()),
    ] {
        let message = encrypt(&h, &plaintext, context.clone()).await;
        assert_eq!(suite_of(&message), 0x0578);
        let header = hearth_esdk::parse_header(&message).unwrap();
        assert!(header
            .encryption_context()
            .contains_key("aws-crypto-public-key"));
        let req = json!({"ciphertext": b64(&message), "context": context});
        let py: Value =
            serde_json::from_str(&k.python(&["decrypt", &k.key_arn], &req).unwrap()).unwrap();
        assert_eq!(
            (unb64(&py["plaintext"]), py["suite"].as_u64()),
            (plaintext.clone(), Some(0x0578))
        );
        assert_eq!(py["context"], context);
        let js: Value =
            serde_json::from_str(&k.node(&["decrypt", &k.key_arn], &req).unwrap()).unwrap();
        assert_eq!(
            (unb64(&js["plaintext"]), js["suite"].as_u64()),
            (plaintext.clone(), Some(0x0578))
        );
        assert_eq!(js["context"], context);
        let (status, body) = h.post("/v1/kms/decrypt", &req).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(unb64(&body["plaintext"]), plaintext);
        signed.push(message);
    }
    // Two messages, two data keys, each bound to its own public key.
    assert_eq!(generated(&h).await - before, 2);

    // Tampering: message id (header), a body byte, the footer's last byte; the edk and the
    // context are bound by KMS and the header tag (covered in the bad-inputs test).
    let m = &signed[1];
    let header_len = hearth_esdk::parse_header(m).unwrap().header_length();
    for (pos, code) in [
        (5, "CommitmentMismatch"),
        (header_len + 40, "AuthenticationFailed"),
        (m.len() - 1, "SignatureInvalid"),
        (m.len() - 60, "SignatureInvalid"),
    ] {
        let mut t = m.clone();
        t[pos] ^= 0x01;
        let (status, body) = h
            .post("/v1/kms/decrypt", &json!({"ciphertext": b64(&t)}))
            .await;
        assert_error(status, &body, 400, code);
    }
    assert_output_clean(&h, "signed by hearth");
}

/// Strict key selection: a message under a key the configuration does not name is refused
/// with KeyNotAllowed and no KMS call; naming the key, or discovery with its account, opens
/// it; discovery for another account does not.
#[tokio::test]
async fn decrypt_uses_only_configured_keys_unless_discovery_allows_the_account() {
    let k = kms().await;
    let other = create_key_with(&k.client).await;
    let message = k
        .python(
            &["encrypt", &other],
            &json!({"plaintext": b64(b"under another key"), "context": {}}),
        )
        .unwrap();
    let req = json!({"ciphertext": message});

    let strict = k.hearth(&[]).await;
    prewarmed(&strict).await;
    let calls = strict.counter("kms.decrypt_calls").await;
    let (status, body) = strict.post("/v1/kms/decrypt", &req).await;
    assert_error(status, &body, 403, "KeyNotAllowed");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("HEARTH_KMS_DECRYPT_KEYS"));
    assert_eq!(
        strict.counter("kms.decrypt_calls").await,
        calls,
        "no KMS call"
    );
    assert_eq!(
        strict.counter("kms.decrypts_refused_key_not_allowed").await,
        1
    );

    let named = k
        .hearth(&[("HEARTH_KMS_DECRYPT_KEYS", other.as_str())])
        .await;
    let (status, body) = named.post("/v1/kms/decrypt", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keyArn"], other.as_str());
    assert_eq!(unb64(&body["plaintext"]), b"under another key");

    let discovery = k
        .hearth(&[
            ("HEARTH_KMS_DISCOVERY", "true"),
            ("HEARTH_KMS_DISCOVERY_ACCOUNTS", "123456789012"),
        ])
        .await;
    let (status, body) = discovery.post("/v1/kms/decrypt", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keyArn"], other.as_str());

    let elsewhere = k
        .hearth(&[
            ("HEARTH_KMS_DISCOVERY", "true"),
            ("HEARTH_KMS_DISCOVERY_ACCOUNTS", "111122223333"),
        ])
        .await;
    let calls = elsewhere.counter("kms.decrypt_calls").await;
    let (status, body) = elsewhere.post("/v1/kms/decrypt", &req).await;
    assert_error(status, &body, 403, "KeyNotAllowed");
    assert_eq!(elsewhere.counter("kms.decrypt_calls").await, calls);
}

#[tokio::test]
async fn message_byte_and_age_limits() {
    let k = kms().await;

    // Max messages 3: the fourth message has a new data key.
    let h = k
        .hearth(&[
            ("HEARTH_KMS_MAX_MESSAGES", "3"),
            ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "100"),
        ])
        .await;
    prewarmed(&h).await;
    assert_eq!(
        generated(&h).await,
        1,
        "prewarm generated the empty context's key"
    );
    let mut edks = Vec::new();
    for _ in 0..4 {
        edks.push(edk(&encrypt(&h, b"m", json!({})).await));
    }
    assert_eq!(edks[0], edks[1]);
    assert_eq!(edks[1], edks[2]);
    assert_ne!(edks[2], edks[3]);
    assert_eq!(generated(&h).await, 2);

    // Max bytes 100, the current request included: 60 then 41 bytes need two keys.
    let h = k
        .hearth(&[
            ("HEARTH_KMS_MAX_BYTES", "100"),
            ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "100"),
        ])
        .await;
    prewarmed(&h).await;
    let a = edk(&encrypt(&h, &[1; 60], json!({})).await);
    let b = edk(&encrypt(&h, &[1; 41], json!({})).await);
    let c = edk(&encrypt(&h, &[1; 58], json!({})).await);
    assert_ne!(a, b);
    assert_eq!(b, c);
    assert_eq!(generated(&h).await, 2);

    // Max age 1 s (real time): a key is not used once it is 1 s old.
    let h = k
        .hearth(&[
            ("HEARTH_KMS_MAX_AGE", "1s"),
            ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "100"),
        ])
        .await;
    prewarmed(&h).await;
    let base = generated(&h).await;
    // A context of its own, so the prewarmed key's age plays no part.
    let ctx = json!({"t": "age"});
    let a = edk(&encrypt(&h, b"x", ctx.clone()).await);
    assert_eq!(edk(&encrypt(&h, b"x", ctx.clone()).await), a);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_ne!(edk(&encrypt(&h, b"x", ctx.clone()).await), a);
    assert_eq!(generated(&h).await - base, 2);
}

#[tokio::test]
async fn caching_off_calls_kms_every_time() {
    let k = kms().await;
    let h = k.hearth(&[("HEARTH_KMS_CACHE", "false")]).await;
    prewarmed(&h).await;
    assert_eq!(generated(&h).await, 0, "nothing to prewarm without a cache");
    let a = encrypt(&h, b"x", json!({})).await;
    let b = encrypt(&h, b"x", json!({})).await;
    assert_ne!(edk(&a), edk(&b));
    for m in [&a, &a] {
        let (status, body) = h
            .post("/v1/kms/decrypt", &json!({"ciphertext": b64(m)}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(generated(&h).await, 2);
    assert_eq!(h.counter("kms.decrypt_calls").await, 2);
    assert_eq!(h.counter("kms.calls_avoided").await, 0);
}

#[tokio::test]
async fn refresh_ahead_replaces_the_key_before_it_expires() {
    let k = kms().await;
    // Max age 2 s, refresh at 50 %: a request after 1 s starts the replacement, and the
    // request after 2 s is served from the cache without waiting on KMS.
    let h = k
        .hearth(&[
            ("HEARTH_KMS_MAX_AGE", "2s"),
            ("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "50"),
        ])
        .await;
    prewarmed(&h).await;
    let base = generated(&h).await;
    let first = edk(&encrypt(&h, b"x", json!({"t": "a"})).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(edk(&encrypt(&h, b"x", json!({"t": "a"})).await), first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while generated(&h).await - base < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(generated(&h).await - base, 2, "replacement generated ahead");
    let misses = h.counter("kms.cache_misses").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let next = edk(&encrypt(&h, b"x", json!({"t": "a"})).await);
    assert_ne!(next, first, "the first key is past its max age");
    assert_eq!(
        h.counter("kms.cache_misses").await,
        misses,
        "no request waited"
    );
    // (That request, finding the replacement itself past 50 % of its age, may have
    // started the next replacement: the chain continues while the partition is in use.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_encrypts_one_generate_data_key() {
    let k = kms().await;
    let h = k.hearth(&[("HEARTH_KMS_MAX_MESSAGES", "100000")]).await;
    // The empty context: the key prewarm generated is the only one this test may see.
    prewarmed(&h).await;
    let url = h.url("/v1/kms/encrypt");
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                // One keep-alive connection per task.
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let body = json!({"plaintext": b64(format!("msg {i}").as_bytes()), "context": {}});
                let mut ok = 0u32;
                for _ in 0..625 {
                    let r = http
                        .post(&url)
                        .header(hearth::wire::TOKEN_HEADER, TOKEN)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(total, 10_000);
    assert_eq!(generated(&h).await, 1);
    assert!(h.counter("kms.calls_avoided").await >= 9_999);
    let (_, m) = h.get("/v1/metrics").await;
    assert_eq!(m["gauges"]["kms.current_key_messages"], 10_000);
    eprintln!(
        "10,000 encrypts over 16 connections in {elapsed:?} ({:.0}/s); server-side {}; kms {}",
        10_000.0 / elapsed.as_secs_f64(),
        m["latencies"]["http.latency"],
        m["latencies"]["kms.latency"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_misses_are_single_flight() {
    let k = kms().await;
    let h = std::sync::Arc::new(k.hearth(&[]).await);
    prewarmed(&h).await;
    let base = generated(&h).await;
    let ctx = json!({"cold": "yes"});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let h = h.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move { encrypt(&h, b"cold", ctx).await })
        })
        .collect();
    let mut messages = Vec::new();
    for t in tasks {
        messages.push(t.await.unwrap());
    }
    assert_eq!(generated(&h).await - base, 1);
    assert!(messages.iter().all(|m| edk(m) == edk(&messages[0])));

    // 50 concurrent cold decrypts of messages sharing one data key: one KMS Decrypt.
    let tasks: Vec<_> = messages
        .into_iter()
        .map(|m| {
            let h = h.clone();
            tokio::spawn(async move {
                h.post("/v1/kms/decrypt", &json!({"ciphertext": b64(&m)}))
                    .await
            })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(h.counter("kms.decrypt_calls").await, 1);
}

/// Replaces the first occurrence of `needle` in `hay` with `with` (same length).
fn patch(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = hay.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut out = hay.to_vec();
    out[at..at + with.len()].copy_from_slice(with);
    out
}

#[tokio::test]
async fn bad_inputs_get_stable_codes_and_never_break_the_server() {
    let k = kms().await;
    let h = k.hearth(&[]).await;
    let good = encrypt(&h, b"tamper target plaintext", json!({"tenant": "abc"})).await;
    let header = hearth_esdk::parse_header(&good).unwrap();
    let blob = header.encrypted_data_keys()[0].ciphertext.clone();
    let n = good.len();

    let flip = |i: usize| {
        let mut m = good.clone();
        m[i] ^= 0x01;
        m
    };
    let mut blob_flipped = blob.clone();
    let mid = blob.len() / 2;
    blob_flipped[mid] ^= 0x55;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "TruncatedCiphertext"),
        ("header cut", good[..10].to_vec(), "TruncatedCiphertext"),
        (
            "last byte cut",
            good[..n - 1].to_vec(),
            "TruncatedCiphertext",
        ),
        (
            "version 1 (no type byte 0x80)",
            {
                let mut m = good.clone();
                m[0] = 0x01;
                m
            },
            "MalformedCiphertext",
        ),
        (
            "version 3",
            {
                let mut m = good.clone();
                m[0] = 0x03;
                m
            },
            "UnsupportedVersion",
        ),
        (
            "suite 0x0178 in a 2.0 header",
            {
                let mut m = good.clone();
                m[1] = 0x01;
                m
            },
            "MalformedCiphertext",
        ),
        (
            "unknown suite 0x0479",
            {
                let mut m = good.clone();
                m[2] = 0x79;
                m
            },
            "UnsupportedAlgorithm",
        ),
        ("body tag flipped", flip(n - 1), "AuthenticationFailed"),
        (
            "trailing bytes",
            [good.as_slice(), b"xx"].concat(),
            "TrailingBytes",
        ),
        (
            "provider id",
            patch(&good, b"aws-kms", b"aws-kmz"),
            "NoKmsDataKey",
        ),
        (
            "context value",
            patch(&good, b"abc", b"abd"),
            "InvalidCiphertext",
        ),
        (
            "edk blob",
            patch(&good, &blob, &blob_flipped),
            "InvalidCiphertext",
        ),
        ("garbage", vec![0x02; 300], "UnsupportedAlgorithm"),
    ];
    for (name, message, code) in &cases {
        let (status, body) = h
            .post("/v1/kms/decrypt", &json!({"ciphertext": b64(message)}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap_or("")),
            (400, *code),
            "{name}: {body}"
        );
    }

    // An encrypted data key naming a key of another account (as anyone can mint): refused
    // before KMS.
    let calls = h.counter("kms.decrypt_calls").await;
    let forged = patch(&good, b"123456789012", b"999999999999");
    let (status, body) = h
        .post("/v1/kms/decrypt", &json!({"ciphertext": b64(&forged)}))
        .await;
    assert_error(status, &body, 403, "KeyNotAllowed");
    assert_eq!(h.counter("kms.decrypt_calls").await, calls);

    // Malformed base64, malformed JSON, wrong shapes, a reserved context key.
    let bad_requests = [
        (
            json!({"ciphertext": "not base64!"}),
            "/v1/kms/decrypt",
            "InvalidBase64",
        ),
        (
            json!({"plaintext": "%%%"}),
            "/v1/kms/encrypt",
            "InvalidBase64",
        ),
        (json!({"plaintext": 5}), "/v1/kms/encrypt", "MalformedJson"),
        (
            json!({"ciphertext": "AA==", "extra": 1}),
            "/v1/kms/decrypt",
            "MalformedJson",
        ),
        (
            json!({"plaintext": "aGk=", "context": {"aws-crypto-x": "1"}}),
            "/v1/kms/encrypt",
            "InvalidEncryptionContext",
        ),
        (
            json!({"context": {"a": 1}}),
            "/v1/kms/data-key",
            "MalformedJson",
        ),
        (
            json!({"plaintext": "aGk=", "keyId": ""}),
            "/v1/kms/encrypt",
            "InvalidKeyId",
        ),
    ];
    for (body, path, code) in &bad_requests {
        let (status, resp) = h.post(path, body).await;
        assert_error(status, &resp, 400, code);
    }
    let r = h
        .http
        .post(h.url("/v1/kms/encrypt"))
        .header(hearth::wire::TOKEN_HEADER, TOKEN)
        .header("content-type", "application/json")
        .body("{\"plaintext\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MalformedJson");

    // Still healthy, and still decrypting the untouched message.
    let (status, _) = h.get("/health").await;
    assert_eq!(status, 200);
    let (status, body) = h
        .post("/v1/kms/decrypt", &json!({"ciphertext": b64(&good)}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_output_clean(&h, "tamper target");
}

/// An encrypted data key that KMS would refuse as malformed (empty, or over its 6,144-byte
/// bound) under an allowed key is refused before any KMS call, as bad input: it must not reach
/// KMS, where a validation error could be taken for an outage.
#[tokio::test]
async fn malformed_encrypted_data_keys_never_reach_kms() {
    let k = kms().await;
    let h = k.hearth(&[]).await;
    prewarmed(&h).await;
    let key = hearth_esdk::DataKey::from_slice(&[3u8; 32]).unwrap();
    for len in [0usize, 7000] {
        let edk = hearth_esdk::EncryptedDataKey {
            provider_id: "aws-kms".into(),
            provider_info: k.key_arn.as_bytes().to_vec(),
            ciphertext: vec![0u8; len],
        };
        let context = hearth_esdk::EncryptionContext::new();
        let message = hearth_esdk::encrypt(
            &key,
            &[edk],
            &context,
            b"forged",
            hearth_esdk::DEFAULT_FRAME_LENGTH,
        )
        .unwrap();
        let calls = h.counter("kms.decrypt_calls").await;
        let (status, body) = h
            .post("/v1/kms/decrypt", &json!({"ciphertext": b64(&message)}))
            .await;
        assert_error(status, &body, 400, "InvalidCiphertext");
        assert_eq!(
            h.counter("kms.decrypt_calls").await,
            calls,
            "{len}-byte EDK reached KMS"
        );
    }
}
