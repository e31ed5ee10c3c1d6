//! `HEARTH_WARMER_TARGETS`: which functions to warm and with how many parallel pings,
//! parsed once at init. `name:concurrency,...`, e.g. `payments:3,orders-api:1`; a name may be
//! a function name, an ARN or `name:alias` (the concurrency is always the last `:` field).

use std::num::NonZeroU32;

/// Name of the variable.
pub const VARIABLE: &str = "HEARTH_WARMER_TARGETS";

/// Most parallel pings per target: beyond this, warm-up would exhaust account concurrency.
pub const MAX_CONCURRENCY: u32 = 100;

/// One function to warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Function name, ARN or `name:qualifier`.
    pub name: String,
    /// Parallel pings, hence environments kept warm.
    pub concurrency: NonZeroU32,
}

/// Invalid `HEARTH_WARMER_TARGETS`.
#[derive(Debug, thiserror::Error)]
#[error("{VARIABLE}: {0}; expected name:concurrency[,name:concurrency...], concurrency 1 to {MAX_CONCURRENCY}, e.g. payments:3,orders:1")]
pub struct TargetsError(String);

/// Parses the variable's value.
pub fn parse(value: &str) -> Result<Vec<Target>, TargetsError> {
    let mut out: Vec<Target> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, n) = entry
            .rsplit_once(':')
            .ok_or_else(|| TargetsError(format!("{entry:?} has no :concurrency")))?;
        let concurrency = n
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
            .and_then(NonZeroU32::new)
            .ok_or_else(|| {
                TargetsError(format!(
                    "{entry:?}: concurrency {n:?} is not 1 to {MAX_CONCURRENCY}"
                ))
            })?;
        let name = name.trim();
        if name.is_empty() || name.len() > 170 {
            return Err(TargetsError(format!(
                "{entry:?}: the function name is empty or too long"
            )));
        }
        if out.iter().any(|t| t.name == name) {
            return Err(TargetsError(format!("{name:?} is listed twice")));
        }
        out.push(Target {
            name: name.to_string(),
            concurrency,
        });
    }
    if out.is_empty() {
        return Err(TargetsError("no targets".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_names_arns_and_aliases() {
        let t = parse(" payments:3, arn:aws:lambda:us-east-1:123456789012:function:orders:live:2 ")
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].name.as_str(), t[0].concurrency.get()),
            ("payments", 3)
        );
        assert_eq!(
            t[1].name,
            "arn:aws:lambda:us-east-1:123456789012:function:orders:live"
        );
        assert_eq!(t[1].concurrency.get(), 2);
    }

    #[test]
    fn rejects_bad_values_naming_the_variable() {
        for bad in [
            "",
            "payments",
            "payments:0",
            "payments:x",
            "payments:101",
            ":3",
            "a:1,a:2",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(VARIABLE), "{bad:?} → {e}");
        }
    }
}
