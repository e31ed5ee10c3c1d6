//! `GET /secretsmanager/get?secretId=&versionId=&versionStage=&refreshNow=`: the same path,
//! query, header and response as AWS's Parameters and Secrets extension, so existing code
//! works unchanged.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};

use crate::error::ApiError;
use crate::secrets::{SecretKey, SecretsError};
use crate::state::AppState;

pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        code,
        message: message.into(),
    }
}

/// A required id of 1 to 2048 characters (AWS's limit for names and ARNs), trimmed;
/// `hint` is added to the message of an empty one.
pub(crate) fn required_id(name: &str, v: Option<String>, hint: &str) -> Result<String, ApiError> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() && s.len() <= 2048 => Ok(s.to_string()),
        Some(_) => Err(invalid(
            "InvalidParameter",
            format!("{name} must be 1 to 2048 characters{hint}"),
        )),
        None => Err(invalid(
            "MissingParameter",
            format!("the {name} query parameter is required"),
        )),
    }
}

/// An optional `true` / `false` query parameter (absent: false).
pub(crate) fn flag(name: &str, v: Option<String>) -> Result<bool, ApiError> {
    match v.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid(
            "InvalidParameter",
            format!("{name} must be true or false"),
        )),
    }
}

/// The values of the query parameters `names`, in that order. Strict: an unknown or
/// repeated parameter is an error, never silently ignored.
pub(crate) fn strict_query<const N: usize>(
    pairs: &[(String, String)],
    names: [&str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (k, v) in pairs {
        let Some(i) = names.iter().position(|n| n == k) else {
            return Err(invalid(
                "UnknownParameter",
                format!(
                    "unknown query parameter {:?}; accepted: {}",
                    k.chars().take(64).collect::<String>(),
                    names.join(", ")
                ),
            ));
        };
        if values[i].replace(v.clone()).is_some() {
            return Err(invalid(
                "InvalidParameter",
                format!("query parameter {k} is given more than once"),
            ));
        }
    }
    Ok(values)
}

/// Parses the query string strictly: unknown or repeated parameters are errors, not
/// silently ignored.
pub fn parse_query(pairs: &[(String, String)]) -> Result<(SecretKey, bool), ApiError> {
    let [secret_id, version_id, version_stage, refresh_now] = strict_query(
        pairs,
        ["secretId", "versionId", "versionStage", "refreshNow"],
    )?;
    let secret_id = required_id("secretId", secret_id, "")?;
    let refresh_now = flag("refreshNow", refresh_now)?;
    let nonempty = |name: &str, v: Option<String>| match v {
        Some(s) if s.is_empty() => Err(invalid(
            "InvalidParameter",
            format!("{name} must not be empty"),
        )),
        other => Ok(other),
    };
    Ok((
        SecretKey {
            secret_id,
            version_id: nonempty("versionId", version_id)?,
            version_stage: nonempty("versionStage", version_stage)?,
        },
        refresh_now,
    ))
}

/// A cached value serialized in place, straight from the cache's `Arc` (Parameter Store
/// answers). Cloning it per read cost an allocation and a copy per field (about 4% of a
/// cached read's instructions, see bench/PROFILING.md).
pub struct Cached<T>(pub Arc<T>);

impl<T: Serialize> Serialize for Cached<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The handler: the cached version's JSON, encoded once when it was fetched.
pub async fn get(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|_| {
        invalid(
            "InvalidParameter",
            "the query string is not valid URL encoding",
        )
    })?;
    let (key, refresh_now) = parse_query(&pairs)?;
    let value = state.secrets.get(&key, refresh_now).await?;
    let json = value.json().map_err(|_| SecretsError::Upstream {
        message: "the secret could not be encoded as JSON".into(),
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
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
    fn parses_all_parameters() {
        let (k, r) = parse_query(&q(&[
            ("secretId", "db"),
            ("versionStage", "AWSPENDING"),
            ("refreshNow", "true"),
        ]))
        .unwrap();
        assert_eq!(k.secret_id, "db");
        assert_eq!(k.version_stage.as_deref(), Some("AWSPENDING"));
        assert!(r);
    }

    #[test]
    fn rejects_bad_queries() {
        for (pairs, code) in [
            (q(&[]), "MissingParameter"),
            (q(&[("secretId", "")]), "InvalidParameter"),
            (q(&[("secretId", "a"), ("secret", "b")]), "UnknownParameter"),
            (
                q(&[("secretId", "a"), ("secretId", "b")]),
                "InvalidParameter",
            ),
            (
                q(&[("secretId", "a"), ("refreshNow", "yes")]),
                "InvalidParameter",
            ),
        ] {
            assert_eq!(parse_query(&pairs).unwrap_err().code(), code, "{pairs:?}");
        }
    }
}
