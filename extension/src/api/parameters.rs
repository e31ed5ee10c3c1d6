//! `GET /systemsmanager/parameters/get?name=&version=&label=&withDecryption=`: the same
//! path, query, header and response (GetParameter's JSON) as AWS's Parameters and Secrets
//! extension, so existing code works unchanged.
//!
//! `name` is URL-encoded by the caller (`%2Fapp%2Fdb` for `/app/db`) and may be an ARN, a
//! public parameter (`/aws/service/...`) or `/aws/reference/secretsmanager/<secret id>`
//! (Parameter Store then reads the secret, and requires `withDecryption=true`, as AWS's
//! extension does). A version or label is given either in the name (`name:3`,
//! `name:prod`) or as `version=` / `label=`, never both, as GetParameter takes it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use hearth::wire::ParameterResponse;

use super::secrets::{flag, invalid, required_id, strict_query, Cached};
use crate::error::ApiError;
use crate::parameters::ParameterKey;
use crate::state::AppState;

/// Whether `name` already carries a `:version` or `:label` selector. An ARN's own colons
/// come before its `parameter/` resource; only a colon after that is a selector.
fn has_selector(name: &str) -> bool {
    let resource = match name.strip_prefix("arn:") {
        Some(_) => name.split_once(":parameter").map_or("", |(_, r)| r),
        None => name,
    };
    resource.contains(':')
}

/// A Parameter Store label: 1 to 100 letters, digits, `.`, `-` or `_`, not starting with a
/// digit (that would read as a version).
fn valid_label(l: &str) -> bool {
    (1..=100).contains(&l.len())
        && !l.starts_with(|c: char| c.is_ascii_digit())
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Parses the query string strictly: unknown or repeated parameters are errors.
pub fn parse_query(pairs: &[(String, String)]) -> Result<ParameterKey, ApiError> {
    let [name, version, label, decrypt] =
        strict_query(pairs, ["name", "version", "label", "withDecryption"])?;
    let mut name = required_id("name", name, " (URL-encode it: /app/db is %2Fapp%2Fdb)")?;
    let with_decryption = flag("withDecryption", decrypt)?;
    let selector = match (version, label) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "InvalidParameter",
                "give version or label, not both",
            ))
        }
        (Some(v), None) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => Some(n.to_string()),
            _ => {
                return Err(invalid(
                    "InvalidParameter",
                    "version must be a positive integer",
                ))
            }
        },
        (None, Some(l)) if valid_label(&l) => Some(l),
        (None, Some(_)) => return Err(invalid(
            "InvalidParameter",
            "label must be 1 to 100 letters, digits, '.', '-' or '_', not starting with a digit",
        )),
        (None, None) => None,
    };
    if let Some(sel) = selector {
        if has_selector(&name) {
            return Err(invalid(
                "InvalidParameter",
                "the name already has a :version or :label selector; drop version= / label=, or the selector",
            ));
        }
        name = format!("{name}:{sel}");
    }
    Ok(ParameterKey {
        name,
        with_decryption,
    })
}

/// The handler.
pub async fn get(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Cached<ParameterResponse>>, ApiError> {
    let Query(pairs) = query.map_err(|_| {
        invalid(
            "InvalidParameter",
            "the query string is not valid URL encoding",
        )
    })?;
    let key = parse_query(&pairs)?;
    let value = state.parameters.get(&key, false).await?;
    Ok(Json(Cached(value)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn selectors() {
        let k = parse_query(&q(&[("name", "/app/db"), ("version", "3")])).unwrap();
        assert_eq!(k.name, "/app/db:3");
        assert!(!k.with_decryption);
        let k = parse_query(&q(&[
            ("name", "/app/db"),
            ("label", "prod"),
            ("withDecryption", "true"),
        ]))
        .unwrap();
        assert_eq!((k.name.as_str(), k.with_decryption), ("/app/db:prod", true));
        let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/db";
        let k = parse_query(&q(&[("name", arn), ("version", "2")])).unwrap();
        assert_eq!(k.name, format!("{arn}:2"));
        assert_eq!(parse_query(&q(&[("name", "/a:4")])).unwrap().name, "/a:4");
    }

    #[test]
    fn rejects_bad_queries() {
        for (pairs, code) in [
            (q(&[]), "MissingParameter"),
            (q(&[("name", "")]), "InvalidParameter"),
            (q(&[("name", "a"), ("nam", "b")]), "UnknownParameter"),
            (q(&[("name", "a"), ("name", "b")]), "InvalidParameter"),
            (
                q(&[("name", "a"), ("version", "1"), ("label", "x")]),
                "InvalidParameter",
            ),
            (q(&[("name", "a"), ("version", "0")]), "InvalidParameter"),
            (q(&[("name", "a"), ("version", "x")]), "InvalidParameter"),
            (q(&[("name", "a"), ("label", "1x")]), "InvalidParameter"),
            (q(&[("name", "a:2"), ("version", "3")]), "InvalidParameter"),
            (
                q(&[("name", "a"), ("withDecryption", "yes")]),
                "InvalidParameter",
            ),
        ] {
            assert_eq!(parse_query(&pairs).unwrap_err().code(), code, "{pairs:?}");
        }
    }
}
