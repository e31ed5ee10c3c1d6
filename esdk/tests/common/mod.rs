//! Helpers shared by the integration tests: keys, sample inputs, hex, the vector file format
//! (described in tests/vectors/static_keys.py) and a seeded random generator.

#![allow(dead_code)] // each test file uses a different subset

use hearth_esdk::{DataKey, EncryptedDataKey, EncryptionContext};

pub const ARN: &str = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555";
pub const FALLBACK_ARN: &str =
    "arn:aws:kms:eu-central-1:123456789012:key/66666666-7777-8888-9999-000000000000";

pub fn key(byte: u8) -> DataKey {
    DataKey::from([byte; 32])
}

/// The fake KMS wrapping of tests/vectors/static_keys.py: "static-wrap:" + (key XOR 0x5c).
pub fn static_wrap(key: &DataKey) -> Vec<u8> {
    let mut out = b"static-wrap:".to_vec();
    out.extend(key.as_bytes().iter().map(|b| b ^ 0x5C));
    out
}

pub fn kms_edk(arn: &str, key: &DataKey) -> EncryptedDataKey {
    EncryptedDataKey {
        provider_id: "aws-kms".to_owned(),
        provider_info: arn.as_bytes().to_vec(),
        ciphertext: static_wrap(key),
    }
}

pub fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Deterministic, non-repeating-looking bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One record of a vector file.
#[derive(Debug, Clone, Default)]
pub struct Vector {
    pub name: String,
    pub frame_length: u32,
    pub data_key: Vec<u8>,
    pub context: EncryptionContext,
    pub edks: Vec<EncryptedDataKey>,
    pub plaintext: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub fn parse_vectors(text: &str) -> Vec<Vector> {
    let mut out: Vec<Vector> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[vector]" {
            out.push(Vector::default());
            continue;
        }
        let (name, value) = line
            .split_once(" =")
            .unwrap_or_else(|| panic!("bad line {line}"));
        let value = value.trim();
        let v = out.last_mut().expect("a [vector] line first");
        match name {
            "name" => v.name = value.to_owned(),
            "frame_length" => v.frame_length = value.parse().expect("frame length"),
            "data_key" => v.data_key = hex(value),
            "plaintext" => v.plaintext = hex(value),
            "ciphertext" => v.ciphertext = hex(value),
            "context" => {
                let (k, val) = value.split_once(':').expect("key:value");
                v.context.insert(
                    String::from_utf8(hex(k)).expect("utf-8 key"),
                    String::from_utf8(hex(val)).expect("utf-8 value"),
                );
            }
            "edk" => {
                let parts: Vec<&str> = value.split(':').collect();
                assert_eq!(parts.len(), 3, "edk line {line}");
                v.edks.push(EncryptedDataKey {
                    provider_id: String::from_utf8(hex(parts[0])).expect("utf-8 provider id"),
                    provider_info: hex(parts[1]),
                    ciphertext: hex(parts[2]),
                });
            }
            other => panic!("unknown field {other}"),
        }
    }
    out
}

pub fn write_vectors(vectors: &[Vector]) -> String {
    let mut s = String::from("# written by esdk/tests/interop.rs\n");
    for v in vectors {
        s.push_str("\n[vector]\n");
        s.push_str(&format!("name = {}\n", v.name));
        s.push_str(&format!("frame_length = {}\n", v.frame_length));
        s.push_str(&format!("data_key = {}\n", to_hex(&v.data_key)));
        for (k, val) in &v.context {
            s.push_str(&format!(
                "context = {}:{}\n",
                to_hex(k.as_bytes()),
                to_hex(val.as_bytes())
            ));
        }
        for e in &v.edks {
            s.push_str(&format!(
                "edk = {}:{}:{}\n",
                to_hex(e.provider_id.as_bytes()),
                to_hex(&e.provider_info),
                to_hex(&e.ciphertext)
            ));
        }
        s.push_str(&format!("plaintext = {}\n", to_hex(&v.plaintext)));
        s.push_str(&format!("ciphertext = {}\n", to_hex(&v.ciphertext)));
    }
    s
}

/// xorshift64*: a tiny seeded generator, so mutation tests are reproducible without a
/// dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}
