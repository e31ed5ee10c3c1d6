//! The KMS data-key cache's and envelope encryption's section.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::Duration;

use super::reader::{list, Reader, Var};

/// KMS's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_KMS_KEY_ID", "(none)", "KMS key id, ARN or alias used when a request names no keyId (requests must name one without it)."),
    Var::new("HEARTH_KMS_CACHE", "true", "Cache data keys (false: one KMS call per encrypt and per decrypt)."),
    Var::new("HEARTH_KMS_MAX_AGE", "300s", "Age at which a cached data key is retired (100ms to 24h)."),
    Var::new("HEARTH_KMS_MAX_MESSAGES", "1048576", "Messages one data key may encrypt, the current one included (1 to 4294967296)."),
    Var::new("HEARTH_KMS_MAX_BYTES", "1073741824", "Plaintext bytes one data key may encrypt, the current message included (1 to 2^62)."),
    Var::new("HEARTH_KMS_CACHE_SIZE", "1000", "Cached (key, context) partitions, and cached decrypted data keys (LRU beyond)."),
    Var::new("HEARTH_KMS_PREWARM_CONTEXT", "(empty context)", "Encryption context of the data key generated at prewarm, as key=value pairs separated by commas (match what the function sends, and any IAM condition), or none to skip."),
    Var::new("HEARTH_KMS_REFRESH_AHEAD_PERCENT", "80", "Share of the age, message or byte limit after which a replacement key is generated ahead (50 to 100)."),
    Var::new("HEARTH_KMS_ALGORITHM", "0x0478", "Algorithm suite encrypt writes: 0x0478 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY) or 0x0578 (the same signed with ECDSA P-384, the official SDKs' default; one KMS call per message, as a signing key is never reused)."),
    Var::new("HEARTH_KMS_COMMITMENT_POLICY", "require-encrypt-require-decrypt", "ESDK commitment policy: require-encrypt-require-decrypt (read and write committing suites only), require-encrypt-allow-decrypt (also read ESDK 1.x messages, every suite) or forbid-encrypt-allow-decrypt (read every suite; encrypt is refused, as Hearth writes committing suites only)."),
    Var::new("HEARTH_KMS_DECRYPT_KEYS", "(none)", "Comma-separated key ARNs (or key ids) decrypt may use besides HEARTH_KMS_KEY_ID and HEARTH_KMS_FALLBACK_KEY_ID; a message naming no allowed key is refused (KeyNotAllowed) without a KMS call. Aliases cannot be matched: name the key ARN."),
    Var::new("HEARTH_KMS_DISCOVERY", "false", "Discovery mode: decrypt also tries any key ARN of the accounts in HEARTH_KMS_DISCOVERY_ACCOUNTS (required with it) in HEARTH_KMS_DISCOVERY_PARTITION."),
    Var::new("HEARTH_KMS_DISCOVERY_ACCOUNTS", "(none)", "Comma-separated 12-digit account ids whose keys discovery may use."),
    Var::new("HEARTH_KMS_DISCOVERY_PARTITION", "aws", "AWS partition of the discovery filter (aws, aws-cn, aws-us-gov, ...)."),
];

/// KMS data-key cache and envelope-encryption settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// Key used when a request names none; without it requests must carry `keyId`.
    pub key_id: Option<String>,
    /// Whether data keys are cached at all (off: one GenerateDataKey per encrypt and one
    /// Decrypt per decrypt).
    pub caching: bool,
    /// Age at which a cached data key is no longer used.
    pub max_age: Duration,
    /// Messages (and data keys handed out) one data key may protect, the current one
    /// included.
    pub max_messages: u64,
    /// Plaintext bytes one data key may protect, the current message included.
    pub max_bytes: u64,
    /// Cached partitions (key id, context), and cached decrypted keys (LRU beyond).
    pub capacity: NonZeroUsize,
    /// Share of any limit, in percent, after which a replacement key is generated ahead.
    pub refresh_percent: u8,
    /// Encryption context of the data key generated at prewarm; `None` skips it.
    pub prewarm_context: Option<BTreeMap<String, String>>,
    /// The ESDK commitment policy (`HEARTH_KMS_COMMITMENT_POLICY`).
    pub commitment_policy: hearth_esdk::CommitmentPolicy,
    /// The suite encrypt writes (`HEARTH_KMS_ALGORITHM`): 0x0478 or 0x0578.
    pub algorithm: hearth_esdk::Suite,
    /// Further keys decrypt may use (`HEARTH_KMS_DECRYPT_KEYS`): key ARNs or key ids.
    pub decrypt_keys: Vec<String>,
    /// Discovery mode with its filter (`HEARTH_KMS_DISCOVERY` and its filter variables);
    /// `None`: strict.
    pub discovery: Option<crate::kms::keys::DiscoveryFilter>,
}

/// Reads KMS's section.
pub fn read(r: &mut Reader<'_>) -> KmsConfig {
    let mut kms = KmsConfig {
        key_id: r.parse(
            "HEARTH_KMS_KEY_ID",
            None,
            "a KMS key id, key ARN, alias name or alias ARN (1 to 2048 characters)",
            |s| (!s.is_empty() && s.len() <= 2048).then(|| Some(s.to_string())),
        ),
        caching: r.flag("HEARTH_KMS_CACHE", true),
        max_age: r.duration(
            "HEARTH_KMS_MAX_AGE",
            Duration::from_secs(300),
            Duration::from_millis(100),
            Duration::from_secs(24 * 3600),
        ),
        max_messages: r.parse(
            "HEARTH_KMS_MAX_MESSAGES",
            1 << 20,
            "an integer from 1 to 4294967296 (the message format's limit, 2^32)",
            |s| s.parse::<u64>().ok().filter(|n| (1..=1 << 32).contains(n)),
        ),
        max_bytes: r.parse(
            "HEARTH_KMS_MAX_BYTES",
            1 << 30,
            "an integer from 1 to 4611686018427387904 (2^62)",
            |s| s.parse::<u64>().ok().filter(|n| (1..=1 << 62).contains(n)),
        ),
        capacity: r.size("HEARTH_KMS_CACHE_SIZE", 1000, 1_000_000),
        prewarm_context: r.parse(
            "HEARTH_KMS_PREWARM_CONTEXT",
            Some(BTreeMap::new()),
            "key=value pairs separated by commas, e.g. purpose=card, or none",
            |s| {
                if s.eq_ignore_ascii_case("none") {
                    return Some(None);
                }
                let mut ctx = BTreeMap::new();
                for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=')?;
                    if k.trim().is_empty() || k.trim().starts_with("aws-crypto-") {
                        return None;
                    }
                    ctx.insert(k.trim().to_string(), v.trim().to_string());
                }
                Some(Some(ctx))
            },
        ),
        refresh_percent: r.parse(
            "HEARTH_KMS_REFRESH_AHEAD_PERCENT",
            80,
            "an integer from 50 to 100",
            |s| s.parse::<u8>().ok().filter(|n| (50..=100).contains(n)),
        ),
        commitment_policy: r.parse(
            "HEARTH_KMS_COMMITMENT_POLICY",
            hearth_esdk::CommitmentPolicy::RequireEncryptRequireDecrypt,
            "require-encrypt-require-decrypt, require-encrypt-allow-decrypt or forbid-encrypt-allow-decrypt",
            hearth_esdk::CommitmentPolicy::parse,
        ),
        algorithm: r.parse(
            "HEARTH_KMS_ALGORITHM",
            hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKey,
            "0x0478 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY) or 0x0578 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384)",
            |s| {
                let s = s.to_ascii_uppercase();
                [
                    hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKey,
                    hearth_esdk::Suite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
                ]
                .into_iter()
                .find(|suite| s == format!("0X{:04X}", suite.id()) || s == suite.name())
            },
        ),
        decrypt_keys: r.parse(
            "HEARTH_KMS_DECRYPT_KEYS",
            Vec::new(),
            "comma-separated KMS key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID) or key ids; aliases cannot be matched against a message",
            |s| {
                let keys = list(s);
                keys.iter()
                    .all(|k| {
                        crate::arn::kms_key_parts(k).is_some()
                            || crate::kms::keys::is_bare_key_id(k)
                    })
                    .then_some(keys)
            },
        ),
        discovery: None,
    };
    let discovery = r.flag("HEARTH_KMS_DISCOVERY", false);
    let accounts = r.parse(
        "HEARTH_KMS_DISCOVERY_ACCOUNTS",
        BTreeSet::new(),
        "comma-separated 12-digit AWS account ids",
        |s| {
            let ids: BTreeSet<String> = s
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
            ids.iter()
                .all(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()))
                .then_some(ids)
        },
    );
    let partition = r.parse(
        "HEARTH_KMS_DISCOVERY_PARTITION",
        "aws".to_string(),
        "an AWS partition name such as aws, aws-cn or aws-us-gov",
        |s| {
            (!s.is_empty()
                && s.len() <= 32
                && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
            .then(|| s.to_string())
        },
    );
    if discovery {
        if accounts.is_empty() {
            r.problem(
                "HEARTH_KMS_DISCOVERY_ACCOUNTS",
                "is required with HEARTH_KMS_DISCOVERY=true: name the accounts whose keys may open messages (unfiltered discovery would accept messages under anyone's key)".into(),
            );
        }
        kms.discovery = Some(crate::kms::keys::DiscoveryFilter {
            partition,
            accounts,
        });
    } else if !accounts.is_empty() {
        r.problem(
            "HEARTH_KMS_DISCOVERY_ACCOUNTS",
            "has no effect without HEARTH_KMS_DISCOVERY=true; set that too".into(),
        );
    }

    kms
}
