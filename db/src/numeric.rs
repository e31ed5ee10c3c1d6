//! Lossless conversion between decimal text and Postgres's binary `numeric` format, so numbers
//! never pass through `f64`.
//!
//! Binary layout: `ndigits: i16, weight: i16, sign: u16, dscale: u16`, then `ndigits` base-10000
//! digits (`i16`); the value is `Σ digit[i] × 10000^(weight − i)`, shown with `dscale` decimals.

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
/// Postgres's limit on the display scale.
const MAX_DSCALE: i64 = 0x3FFF;
/// Postgres allows up to 131072 digits before the point; bound the work we accept.
const MAX_DIGITS: i64 = 131_072;

/// A decoded numeric: either a finite decimal text or one of the special values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Numeric {
    /// Exact decimal text, e.g. `-12.50`.
    Finite(String),
    /// `NaN`, `Infinity` or `-Infinity`.
    Special(&'static str),
}

/// Decodes the binary `numeric` format.
pub(crate) fn decode(raw: &[u8]) -> Result<Numeric, String> {
    let rd = |i: usize| -> Result<u16, String> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".to_owned())
    };
    let ndigits = rd(0)? as i16;
    let weight = rd(2)? as i16;
    let sign = rd(4)?;
    let dscale = rd(6)? as usize;
    match sign {
        NAN => return Ok(Numeric::Special("NaN")),
        PINF => return Ok(Numeric::Special("Infinity")),
        NINF => return Ok(Numeric::Special("-Infinity")),
        POSITIVE | NEGATIVE => {}
        _ => return Err("bad numeric sign".into()),
    }
    if ndigits < 0 {
        return Err("bad numeric digit count".into());
    }
    let digits = (0..ndigits as usize)
        .map(|i| rd(8 + 2 * i).map(|d| d as i16))
        .collect::<Result<Vec<i16>, _>>()?;
    if digits.iter().any(|d| !(0..10000).contains(d)) {
        return Err("bad numeric digit".into());
    }
    let digit_at = |i: i64| -> i16 {
        if i < 0 {
            0
        } else {
            digits.get(i as usize).copied().unwrap_or(0)
        }
    };
    let mut out = String::new();
    if sign == NEGATIVE && !digits.is_empty() {
        out.push('-');
    }
    let weight = i64::from(weight);
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let d = digit_at(i);
            if i == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut j = 1i64;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit_at(weight + j)));
            j += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(Numeric::Finite(out))
}

/// The length of the text [`decode`] makes of this binary `numeric`, from its header alone
/// (sign, integer digits, point and `dscale` decimals); a malformed header counts as its length.
pub(crate) fn text_len(raw: &[u8]) -> usize {
    let Some(h) = raw.get(..8) else {
        return raw.len();
    };
    let weight = i16::from_be_bytes([h[2], h[3]]);
    let dscale = u16::from_be_bytes([h[6], h[7]]);
    let int_digits = (i64::from(weight).max(0) as usize + 1) * 4;
    int_digits + usize::from(dscale) + 2
}

/// Encodes decimal text (`-1.50`, `1e3`, `NaN`, `Infinity`, `-Infinity`) in the binary format.
/// Returns `None` for text that is not a decimal number.
pub(crate) fn encode(text: &str) -> Option<Vec<u8>> {
    let special = match text {
        "NaN" => Some(NAN),
        "Infinity" | "+Infinity" => Some(PINF),
        "-Infinity" => Some(NINF),
        _ => None,
    };
    if let Some(sign) = special {
        return Some(header(0, 0, sign, 0));
    }
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(p) => (&rest[..p], rest[p + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    // Bounded before any arithmetic: `frac.len() - exp` and `exp.abs()` overflow for
    // exponents near i64::MIN / i64::MAX.
    if !(-MAX_DIGITS..=MAX_DIGITS).contains(&exp) {
        return None;
    }
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = all × 10^(-scale)
    let all: String = format!("{int_part}{frac_part}");
    let scale = frac_part.len() as i64 - exp;
    if all.len() as i64 > 2 * MAX_DIGITS
        || all.len() as i64 - scale > MAX_DIGITS
        || scale > MAX_DSCALE
    {
        return None;
    }
    let dscale = scale.max(0);
    let (int_digits, frac_digits) = if scale <= 0 {
        (
            format!("{all}{}", "0".repeat((-scale) as usize)),
            String::new(),
        )
    } else if all.len() as i64 > scale {
        let cut = all.len() - scale as usize;
        (all[..cut].to_owned(), all[cut..].to_owned())
    } else {
        (
            String::new(),
            format!("{}{all}", "0".repeat(scale as usize - all.len())),
        )
    };
    let int_pad = (4 - int_digits.len() % 4) % 4;
    let int_digits = format!("{}{int_digits}", "0".repeat(int_pad));
    let frac_pad = (4 - frac_digits.len() % 4) % 4;
    let frac_digits = format!("{frac_digits}{}", "0".repeat(frac_pad));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |acc, b| acc * 10 + i16::from(b - b'0')))
            .collect()
    };
    let mut groups = group(&int_digits);
    let mut weight = groups.len() as i64 - 1;
    groups.extend(group(&frac_digits));
    let lead = groups.iter().take_while(|d| **d == 0).count();
    groups.drain(..lead);
    weight -= lead as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        return Some(header(0, 0, POSITIVE, dscale as u16));
    }
    let ndigits = i16::try_from(groups.len()).ok()?;
    let weight = i16::try_from(weight).ok()?;
    let mut out = header(
        ndigits,
        weight,
        if negative { NEGATIVE } else { POSITIVE },
        dscale as u16,
    );
    for d in groups {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Some(out)
}

fn header(ndigits: i16, weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(8);
    v.extend_from_slice(&ndigits.to_be_bytes());
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(&sign.to_be_bytes());
    v.extend_from_slice(&dscale.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        match decode(&encode(s).unwrap_or_default()) {
            Ok(Numeric::Finite(t)) => t,
            Ok(Numeric::Special(t)) => t.to_owned(),
            Err(e) => e,
        }
    }

    #[test]
    fn round_trips() {
        for (i, o) in [
            ("0", "0"),
            ("1", "1"),
            ("-1.50", "-1.50"),
            ("10000", "10000"),
            ("0.0001", "0.0001"),
            ("0.00001", "0.00001"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            (
                "-98765432109876543210.0123456789",
                "-98765432109876543210.0123456789",
            ),
            ("1e3", "1000"),
            ("1.5e-3", "0.0015"),
            ("12.5E1", "125"),
            (".5", "0.5"),
            ("5.", "5"),
            ("-0.000", "0.000"),
            ("NaN", "NaN"),
            ("-Infinity", "-Infinity"),
        ] {
            assert_eq!(round(i), o, "{i}");
        }
    }

    #[test]
    fn text_len_bounds_the_decoded_text() {
        for t in [
            "0",
            "-1.50",
            "1e131071",
            "123456789.000001",
            "-0.0001",
            "9e-16383",
        ] {
            let bin = encode(t).unwrap_or_default();
            let Ok(Numeric::Finite(text)) = decode(&bin) else {
                panic!("{t}")
            };
            assert!(
                text_len(&bin) >= text.len(),
                "{t}: {} < {}",
                text_len(&bin),
                text.len()
            );
        }
    }

    #[test]
    fn rejects_junk() {
        for bad in [
            "",
            "-",
            ".",
            "1.2.3",
            "abc",
            "1e",
            "1e999999999",
            "0x10",
            " 1",
            "1e-9223372036854775808",
            "1e9223372036854775807",
            "-1e-9223372036854775807",
            "1e+9223372036854775808",
        ] {
            assert!(encode(bad).is_none(), "{bad}");
        }
    }

    /// Seeded random inputs, biased towards the edges (huge exponents, long digit runs, signs,
    /// dots): encoding never panics, and whatever it accepts decodes again.
    #[test]
    fn fuzz_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "0",
            "1",
            "9",
            "-",
            "+",
            ".",
            "e",
            "E",
            "e-",
            "e+",
            "00000",
            "99999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "16383",
            "16384",
            "131072",
            "131073",
            "NaN",
            "Infinity",
            " ",
            "x",
        ];
        for _ in 0..20_000 {
            let n = (next() % 6) as usize + 1;
            let mut text = String::new();
            for _ in 0..n {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if let Some(bin) = encode(&text) {
                assert!(decode(&bin).is_ok(), "{text}");
            }
        }
        // Arbitrary bytes never panic the decoder either.
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode(&bytes);
        }
    }
}
