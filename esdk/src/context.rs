//! The encryption context and its serialization in the header's AAD field.
//!
//! Serialized form (framework/structures.md, "Serialization"): a u16 entry count, then for
//! each entry, sorted by the key's UTF-8 bytes, a u16-length-prefixed key and a
//! u16-length-prefixed value. An empty context serializes to zero bytes. In the header this is
//! preceded by its own u16 length (the "AAD length").

use std::collections::BTreeMap;

use crate::error::{malformed, Error, Field};
use crate::wire::{put_u16_prefixed, Reader};

/// The encryption context: non-secret key/value pairs bound to a message as AAD.
///
/// A `BTreeMap` keeps the entries sorted by key; `String`'s ordering is the byte-wise order
/// of its UTF-8 encoding, which is the order the format requires.
pub type EncryptionContext = BTreeMap<String, String>;

/// Keys with this prefix are reserved for the ESDK itself (e.g. `aws-crypto-public-key` in
/// signed suites); encrypt refuses them, as the specification requires.
pub const RESERVED_CONTEXT_PREFIX: &str = "aws-crypto-";

/// Checks that a caller's context uses no reserved key.
pub(crate) fn check_user_context(context: &EncryptionContext) -> Result<(), Error> {
    if context
        .keys()
        .any(|k| k.starts_with(RESERVED_CONTEXT_PREFIX))
    {
        return Err(Error::InvalidEncryptionContext {
            reason: "keys starting with \"aws-crypto-\" are reserved",
        });
    }
    Ok(())
}

/// The caller's part of a message's context: every entry but the reserved `aws-crypto-`
/// ones (the signature's public key).
pub fn user_context(context: &EncryptionContext) -> EncryptionContext {
    context
        .iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_CONTEXT_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Serializes a caller's `context` (without the outer AAD length), refusing reserved keys
/// and checking every limit of the format.
#[cfg(test)]
pub(crate) fn serialize(context: &EncryptionContext) -> Result<Vec<u8>, Error> {
    check_user_context(context)?;
    serialize_full(context)
}

/// Serializes a message's full context, reserved entries included.
pub(crate) fn serialize_full(context: &EncryptionContext) -> Result<Vec<u8>, Error> {
    if context.is_empty() {
        return Ok(Vec::new());
    }
    let invalid = |reason| Error::InvalidEncryptionContext { reason };
    let count = u16::try_from(context.len()).map_err(|_| invalid("more than 65535 entries"))?;
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_be_bytes());
    for (key, value) in context {
        put_u16_prefixed(&mut out, key.as_bytes()).ok_or(invalid("a key exceeds 65535 bytes"))?;
        put_u16_prefixed(&mut out, value.as_bytes())
            .ok_or(invalid("a value exceeds 65535 bytes"))?;
        // Stop early rather than build a huge buffer that would be rejected anyway.
        if out.len() > usize::from(u16::MAX) {
            return Err(invalid("serialized form exceeds 65535 bytes"));
        }
    }
    Ok(out)
}

/// Parses the serialized context `aad` (the bytes covered by the AAD length).
///
/// Entries in any order are accepted (the header tag authenticates the exact bytes, and the
/// other SDKs do not check the order either); duplicate keys and invalid UTF-8 are rejected.
pub(crate) fn parse(aad: &[u8]) -> Result<EncryptionContext, Error> {
    let mut context = EncryptionContext::new();
    if aad.is_empty() {
        return Ok(context);
    }
    let mut r = Reader::region(aad, "extends past the AAD length");
    let count = r.u16(Field::ContextCount)?;
    if count == 0 {
        return Err(malformed(
            Field::ContextCount,
            "zero entries in a non-empty AAD",
        ));
    }
    // Each entry needs at least its two length fields.
    if usize::from(count) > r.remaining() / 4 {
        return Err(malformed(
            Field::ContextCount,
            "more entries than the AAD can hold",
        ));
    }
    for _ in 0..count {
        let key = r.u16_prefixed(Field::ContextKeyLength, Field::ContextKey)?;
        let value = r.u16_prefixed(Field::ContextValueLength, Field::ContextValue)?;
        let key =
            std::str::from_utf8(key).map_err(|_| malformed(Field::ContextKey, "not UTF-8"))?;
        let value =
            std::str::from_utf8(value).map_err(|_| malformed(Field::ContextValue, "not UTF-8"))?;
        if context.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(malformed(Field::ContextKey, "duplicate key"));
        }
    }
    if r.remaining() != 0 {
        return Err(malformed(Field::AadLength, "longer than its entries"));
    }
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_context_is_zero_bytes() {
        assert_eq!(serialize(&EncryptionContext::new()), Ok(Vec::new()));
        assert_eq!(parse(&[]), Ok(EncryptionContext::new()));
    }

    #[test]
    fn entries_are_sorted_by_key_bytes() {
        // "B" (0x42) sorts before "a" (0x61); "é" (0xC3 0xA9) after both.
        let c = ctx(&[("é", "3"), ("a", "2"), ("B", "1")]);
        let bytes = serialize(&c).expect("serializes");
        let expected: Vec<u8> = [
            &[0, 3][..],
            &[0, 1, b'B', 0, 1, b'1'],
            &[0, 1, b'a', 0, 1, b'2'],
            &[0, 2, 0xC3, 0xA9, 0, 1, b'3'],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(parse(&bytes), Ok(c));
    }

    #[test]
    fn reserved_prefix_is_refused() {
        let err = serialize(&ctx(&[("aws-crypto-public-key", "x")])).expect_err("reserved");
        assert_eq!(err.code(), "InvalidEncryptionContext");
    }

    #[test]
    fn oversized_context_is_refused() {
        let long = "v".repeat(65_536);
        assert!(serialize(&ctx(&[("k", &long)])).is_err());
        let big: EncryptionContext = (0..3000)
            .map(|i| (format!("key-{i:05}"), "0123456789abcdef".to_owned()))
            .collect();
        assert!(serialize(&big).is_err());
    }

    #[test]
    fn duplicate_and_bad_utf8_are_malformed() {
        let dup = [&[0, 2][..], &[0, 1, b'a', 0, 0], &[0, 1, b'a', 0, 0]].concat();
        assert_eq!(
            parse(&dup),
            Err(malformed(Field::ContextKey, "duplicate key"))
        );
        let bad = [&[0, 1][..], &[0, 1, 0xFF, 0, 0]].concat();
        assert_eq!(parse(&bad), Err(malformed(Field::ContextKey, "not UTF-8")));
    }

    #[test]
    fn count_and_length_mismatches_are_malformed() {
        assert_eq!(
            parse(&[0, 0]),
            Err(malformed(
                Field::ContextCount,
                "zero entries in a non-empty AAD"
            ))
        );
        assert_eq!(
            parse(&[0xFF, 0xFF, 0, 0, 0, 0]),
            Err(malformed(
                Field::ContextCount,
                "more entries than the AAD can hold"
            ))
        );
        let trailing = [&[0, 1][..], &[0, 1, b'a', 0, 0], &[9]].concat();
        assert_eq!(
            parse(&trailing),
            Err(malformed(Field::AadLength, "longer than its entries"))
        );
    }
}
