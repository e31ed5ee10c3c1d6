//! ARN helpers for regional failover: which region an ARN names, the same ARN in another
//! region, and the multi-Region key (mrk-) match the AWS Encryption SDK specifies
//! (`aws-kms-mrk-match-for-decrypt`): two KMS key identifiers match when they are equal, or
//! when both are multi-Region key ARNs that differ in the region only.
//!
//! Pure functions only: the failover paths call them, and they are tested here, because
//! moto cannot decrypt an mrk- ciphertext and so the mrk path cannot be tested end to end
//! against it.

/// The parts of `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn parse(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let arn = Arn {
        partition: parts.next()?,
        service: parts.next()?,
        region: parts.next()?,
        account: parts.next()?,
        resource: parts.next()?,
    };
    (!arn.partition.is_empty() && !arn.service.is_empty() && !arn.resource.is_empty())
        .then_some(arn)
}

/// The region an ARN names (`None` for a name, key id or alias, or an ARN without one).
pub fn region_of(id: &str) -> Option<&str> {
    parse(id).map(|a| a.region).filter(|r| !r.is_empty())
}

/// `id` with its region replaced by `region`, when `id` is an ARN naming a region.
/// A replica secret keeps its primary's ARN but for the region, and so does a multi-Region
/// key's replica.
pub fn with_region(id: &str, region: &str) -> Option<String> {
    let a = parse(id)?;
    if a.region.is_empty() {
        return None;
    }
    Some(format!(
        "arn:{}:{}:{}:{}:{}",
        a.partition, a.service, region, a.account, a.resource
    ))
}

/// Whether `id` is a multi-Region KMS key ARN (`arn:...:kms:REGION:ACCOUNT:key/mrk-...`).
/// A bare `mrk-...` key id is multi-Region too, but names no region, so it cannot be moved
/// to another one; aliases never identify a multi-Region key.
pub fn is_mrk_arn(id: &str) -> bool {
    parse(id).is_some_and(|a| {
        a.service == "kms"
            && !a.region.is_empty()
            && a.resource
                .strip_prefix("key/")
                .is_some_and(|k| k.starts_with("mrk-"))
    })
}

/// The partition, account and key id of a KMS key ARN
/// (`arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID`); `None` for anything else (aliases
/// included).
pub fn kms_key_parts(id: &str) -> Option<(&str, &str, &str)> {
    let a = parse(id)?;
    let key = a.resource.strip_prefix("key/")?;
    (a.service == "kms" && !a.region.is_empty() && !a.account.is_empty() && !key.is_empty())
        .then_some((a.partition, a.account, key))
}

/// The ESDK's mrk match: equal identifiers match; otherwise both must be multi-Region key
/// ARNs equal in every part but the region.
pub fn mrk_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if !is_mrk_arn(a) || !is_mrk_arn(b) {
        return false;
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => {
            x.partition == y.partition
                && x.service == y.service
                && x.account == y.account
                && x.resource == y.resource
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MRK_EAST: &str =
        "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
    const MRK_WEST: &str =
        "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
    const SRK_EAST: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef";
    const SRK_WEST: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef";

    #[test]
    fn region_of_arns_and_names() {
        assert_eq!(region_of(MRK_EAST), Some("us-east-1"));
        assert_eq!(
            region_of("arn:aws:secretsmanager:eu-west-1:1:secret:app/db-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(region_of("app/db"), None);
        assert_eq!(region_of("alias/app"), None);
        assert_eq!(region_of("mrk-1234"), None);
        assert_eq!(region_of("arn:aws:iam::1:role/x"), None);
    }

    #[test]
    fn secret_arn_is_rewritten_to_the_fallback_region() {
        // The resource part may itself contain colons (a secret name cannot, but an ARN's
        // resource can): everything after the account is kept as is.
        assert_eq!(
            with_region(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf",
                "eu-west-1"
            )
            .as_deref(),
            Some("arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf")
        );
        assert_eq!(
            with_region("arn:aws-cn:kms:cn-north-1:1:key/a:b", "cn-northwest-1").as_deref(),
            Some("arn:aws-cn:kms:cn-northwest-1:1:key/a:b")
        );
        assert_eq!(with_region("app/db", "eu-west-1"), None);
        assert_eq!(with_region("arn:aws:iam::1:role/x", "eu-west-1"), None);
        assert_eq!(with_region("arn:aws:kms", "eu-west-1"), None);
    }

    #[test]
    fn multi_region_keys_are_recognised() {
        assert!(is_mrk_arn(MRK_EAST));
        assert!(!is_mrk_arn(SRK_EAST));
        assert!(!is_mrk_arn("mrk-1234abcd12ab34cd56ef1234567890ab"));
        assert!(!is_mrk_arn(
            "arn:aws:kms:us-east-1:111122223333:alias/mrk-looks-like-one"
        ));
        assert!(!is_mrk_arn(
            "arn:aws:secretsmanager:us-east-1:111122223333:key/mrk-x"
        ));
    }

    #[test]
    fn mrk_match_ignores_the_region_only_for_multi_region_keys() {
        assert!(mrk_match(MRK_EAST, MRK_WEST));
        assert!(mrk_match(MRK_WEST, MRK_EAST));
        assert!(mrk_match(SRK_EAST, SRK_EAST));
        // Single-Region keys with the same id in two regions are different keys.
        assert!(!mrk_match(SRK_EAST, SRK_WEST));
        // Another account, or another multi-Region key, is another key.
        assert!(!mrk_match(
            MRK_EAST,
            "arn:aws:kms:eu-west-1:999999999999:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        ));
        assert!(!mrk_match(
            MRK_EAST,
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-ffff"
        ));
        assert!(!mrk_match(
            MRK_EAST,
            "arn:aws-cn:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        ));
        // A bare mrk id names no region: it matches only itself.
        assert!(!mrk_match("mrk-1234abcd12ab34cd56ef1234567890ab", MRK_EAST));
        assert_eq!(
            with_region(MRK_EAST, "eu-west-1").as_deref(),
            Some(MRK_WEST)
        );
    }
}
