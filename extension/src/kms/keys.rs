//! Which KMS keys decrypt may use: the ESDK's strict and discovery modes
//! (framework/aws-kms/aws-kms-mrk-aware-master-key-provider.md, discovery filter).
//!
//! Strict (the default): an encrypted data key is tried only when its key ARN is one the
//! configuration names — `HEARTH_KMS_KEY_ID`, `HEARTH_KMS_FALLBACK_KEY_ID` and
//! `HEARTH_KMS_DECRYPT_KEYS` — with the ESDK's multi-Region match (an mrk- ARN matches its
//! replicas in other regions). A configured bare key id (`1234abcd-...` or `mrk-...`)
//! matches a key ARN with that key id: KMS assigns key ids, nobody can make a key with the
//! id of someone else's. Aliases cannot be matched against a message (an encrypted data key
//! names the key ARN, never an alias), so they are skipped here, and a configuration whose
//! only key is an alias decrypts nothing until `HEARTH_KMS_DECRYPT_KEYS` names the ARN.
//!
//! Discovery (`HEARTH_KMS_DISCOVERY=true`): any key ARN in the partition and one of the
//! accounts of the filter (`HEARTH_KMS_DISCOVERY_PARTITION`, `HEARTH_KMS_DISCOVERY_ACCOUNTS`)
//! is tried too. The filter is required: unrestricted discovery would let anyone who can
//! make a KMS key and grant the function `kms:Decrypt` on it have forged messages accepted.
//!
//! The check is pure and runs before any KMS call, so a message naming no allowed key costs
//! nothing upstream.

use std::collections::BTreeSet;

use crate::arn;

/// The discovery filter: the partition and accounts whose keys discovery may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryFilter {
    /// AWS partition, e.g. `aws`.
    pub partition: String,
    /// 12-digit account ids (never empty).
    pub accounts: BTreeSet<String>,
}

/// The keys decrypt may use.
#[derive(Debug, Clone, Default)]
pub struct KeySelection {
    /// Key ARNs named in configuration.
    arns: Vec<String>,
    /// Bare key ids named in configuration.
    key_ids: Vec<String>,
    discovery: Option<DiscoveryFilter>,
}

impl KeySelection {
    /// The selection from the configured key identifiers (aliases are skipped, see the
    /// module docs) and the optional discovery filter.
    pub fn new<'a>(
        configured: impl IntoIterator<Item = &'a str>,
        discovery: Option<DiscoveryFilter>,
    ) -> Self {
        let mut sel = KeySelection {
            discovery,
            ..Default::default()
        };
        for id in configured {
            let id = id.trim();
            if arn::kms_key_parts(id).is_some() {
                sel.arns.push(id.to_string());
            } else if is_bare_key_id(id) {
                sel.key_ids.push(id.to_string());
            } else if !id.is_empty() {
                tracing::warn!(
                    key = %id,
                    "a configured KMS key is not a key ARN or key id (an alias?): messages \
                     whose data key it encrypted are refused on decrypt; list its ARN in \
                     HEARTH_KMS_DECRYPT_KEYS"
                );
            }
        }
        sel
    }

    /// Whether no key at all can be used (every configured key is an alias, or none is
    /// configured, and discovery is off).
    pub fn is_empty(&self) -> bool {
        self.arns.is_empty() && self.key_ids.is_empty() && self.discovery.is_none()
    }

    /// Whether the encrypted data key of `key_arn` may be sent to KMS.
    pub fn allows(&self, key_arn: &str) -> bool {
        let Some((partition, account, key_id)) = arn::kms_key_parts(key_arn) else {
            return false;
        };
        self.arns.iter().any(|a| arn::mrk_match(a, key_arn))
            || self.key_ids.iter().any(|k| k == key_id)
            || self
                .discovery
                .as_ref()
                .is_some_and(|f| f.partition == partition && f.accounts.contains(account))
    }
}

/// A KMS key id as KMS makes them: a UUID, or `mrk-` and 32 hex digits.
pub fn is_bare_key_id(id: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = id.strip_prefix("mrk-") {
        return rest.len() == 32 && hex(rest);
    }
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| hex(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str =
        "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555";
    const MRK: &str = "arn:aws:kms:eu-west-1:111122223333:key/mrk-0123456789abcdef0123456789abcdef";

    #[test]
    fn strict_accepts_only_configured_keys() {
        let sel = KeySelection::new([OURS, "alias/app", MRK], None);
        assert!(!sel.is_empty());
        assert!(sel.allows(OURS));
        assert!(!sel.allows(&OURS.replace("111122223333", "444455556666")));
        assert!(!sel.allows(&OURS.replace("555555555555", "555555555556")));
        // The same key in another region is another key, unless it is multi-Region.
        assert!(!sel.allows(&OURS.replace("eu-west-1", "us-east-1")));
        assert!(sel.allows(&MRK.replace("eu-west-1", "us-east-1")));
        assert!(!sel.allows("alias/app"));
        assert!(!sel.allows("not an arn"));
        assert!(KeySelection::new(["alias/app"], None).is_empty());
    }

    #[test]
    fn bare_key_ids_match_their_arns() {
        let sel = KeySelection::new(["11111111-2222-3333-4444-555555555555"], None);
        assert!(sel.allows(OURS));
        assert!(!sel.allows(MRK));
        assert!(is_bare_key_id("mrk-0123456789abcdef0123456789abcdef"));
        assert!(!is_bare_key_id("mrk-xyz"));
        assert!(!is_bare_key_id("alias/x"));
    }

    #[test]
    fn discovery_filter_by_partition_and_account() {
        let filter = DiscoveryFilter {
            partition: "aws".into(),
            accounts: BTreeSet::from(["111122223333".to_string()]),
        };
        let sel = KeySelection::new([], Some(filter));
        assert!(sel.allows(OURS));
        assert!(sel.allows(&OURS.replace("11111111-", "99999999-")));
        assert!(!sel.allows(&OURS.replace("111122223333", "444455556666")));
        assert!(!sel.allows(&OURS.replace("arn:aws:", "arn:aws-cn:")));
        assert!(!sel.allows("arn:aws:kms:eu-west-1:111122223333:alias/x"));
    }
}
