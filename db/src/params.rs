//! JSON request parameters → values of the types the server reported for the prepared
//! statement. A value that does not fit is a [`DbError::ParamType`] naming `$n` and the expected
//! type, never echoing the value.

use std::error::Error;

use base64::Engine as _;
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value;
use tokio_postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};

use crate::error::DbError;
use crate::numeric;

/// A parameter value already converted for its server type.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    U32(u32),
    F32(f32),
    F64(f64),
    /// Pre-encoded binary `numeric`.
    Numeric(Vec<u8>),
    /// text, varchar, bpchar, name, enum labels (their binary form is the text).
    Text(String),
    Bytea(Vec<u8>),
    Uuid(uuid::Uuid),
    Json(Value),
    Timestamptz(DateTime<Utc>),
    Timestamp(NaiveDateTime),
    Date(NaiveDate),
    Time(NaiveTime),
    Array(Vec<Param>),
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        // Domains are sent in their base type's format.
        let ty = base_type(ty);
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Bool(v) => v.to_sql(ty, out),
            Self::I16(v) => v.to_sql(ty, out),
            Self::I32(v) => v.to_sql(ty, out),
            Self::I64(v) => v.to_sql(ty, out),
            Self::U32(v) => v.to_sql(ty, out),
            Self::F32(v) => v.to_sql(ty, out),
            Self::F64(v) => v.to_sql(ty, out),
            Self::Numeric(v) => {
                out.extend_from_slice(v);
                Ok(IsNull::No)
            }
            Self::Text(v) => {
                out.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            Self::Bytea(v) => v.to_sql(ty, out),
            Self::Uuid(v) => v.to_sql(ty, out),
            Self::Json(v) => v.to_sql(ty, out),
            Self::Timestamptz(v) => v.to_sql(ty, out),
            Self::Timestamp(v) => v.to_sql(ty, out),
            Self::Date(v) => v.to_sql(ty, out),
            Self::Time(v) => v.to_sql(ty, out),
            Self::Array(v) => v.to_sql(ty, out),
        }
    }

    // Conversion already followed the statement's reported types.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base_type(base),
        _ => ty,
    }
}

/// Converts all parameters of one statement.
pub(crate) fn convert_all(values: &[Value], types: &[Type]) -> Result<Vec<Param>, DbError> {
    if values.len() != types.len() {
        return Err(DbError::ParamCount {
            expected: types.len(),
            given: values.len(),
        });
    }
    values
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (v, ty))| {
            convert(v, ty).map_err(|expected| DbError::ParamType {
                index: i + 1,
                expected,
            })
        })
        .collect()
}

/// Converts one value; the error is the description of what was expected.
fn convert(v: &Value, ty: &Type) -> Result<Param, String> {
    if v.is_null() {
        return Ok(Param::Null);
    }
    let ty = base_type(ty);
    let bad = |what: &str| format!("{} ({what})", ty.name());
    if let Kind::Array(member) = ty.kind() {
        let Value::Array(items) = v else {
            return Err(bad("JSON array"));
        };
        if items.iter().any(Value::is_array) && !matches!(member.kind(), Kind::Array(_)) {
            return Err(bad("one-dimensional JSON array"));
        }
        return items
            .iter()
            .map(|item| convert(item, member))
            .collect::<Result<Vec<_>, _>>()
            .map(Param::Array)
            .map_err(|_| bad(&format!("JSON array of {}", member.name())));
    }
    if let Kind::Enum(_) = ty.kind() {
        return v
            .as_str()
            .map(|s| Param::Text(s.to_owned()))
            .ok_or_else(|| bad("string label"));
    }
    let int_text = || -> Option<String> {
        match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    };
    match *ty {
        Type::BOOL => v
            .as_bool()
            .map(Param::Bool)
            .ok_or_else(|| bad("true or false")),
        Type::INT2 => int_text()
            .and_then(|s| s.parse().ok())
            .map(Param::I16)
            .ok_or_else(|| bad("integer from -32768 to 32767")),
        Type::INT4 => int_text()
            .and_then(|s| s.parse().ok())
            .map(Param::I32)
            .ok_or_else(|| bad("32-bit integer")),
        Type::INT8 => int_text()
            .and_then(|s| s.parse().ok())
            .map(Param::I64)
            .ok_or_else(|| bad("64-bit integer, as a JSON integer or a decimal string")),
        Type::OID => int_text()
            .and_then(|s| s.parse().ok())
            .map(Param::U32)
            .ok_or_else(|| bad("unsigned 32-bit integer")),
        Type::FLOAT4 => float(v)
            .map(|f| Param::F32(f as f32))
            .ok_or_else(|| bad("number")),
        Type::FLOAT8 => float(v).map(Param::F64).ok_or_else(|| bad("number")),
        Type::NUMERIC => int_text()
            .and_then(|s| numeric::encode(&s))
            .map(Param::Numeric)
            .ok_or_else(|| bad("JSON number or decimal string")),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => v
            .as_str()
            .map(|s| Param::Text(s.to_owned()))
            .ok_or_else(|| bad("string")),
        Type::UUID => v
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(Param::Uuid)
            .ok_or_else(|| bad("UUID string")),
        Type::JSON | Type::JSONB => Ok(Param::Json(v.clone())),
        Type::TIMESTAMPTZ => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Param::Timestamptz(t.with_timezone(&Utc)))
            .ok_or_else(|| bad("RFC 3339 timestamp with offset")),
        Type::TIMESTAMP => v
            .as_str()
            .and_then(parse_naive_timestamp)
            .map(Param::Timestamp)
            .ok_or_else(|| bad("timestamp string YYYY-MM-DDTHH:MM:SS[.ffffff]")),
        Type::DATE => v
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(Param::Date)
            .ok_or_else(|| bad("date string YYYY-MM-DD")),
        Type::TIME => v
            .as_str()
            .and_then(|s| NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok())
            .map(Param::Time)
            .ok_or_else(|| bad("time string HH:MM:SS[.ffffff]")),
        Type::BYTEA => v
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .map(Param::Bytea)
            .ok_or_else(|| bad("base64 string")),
        _ => Err(format!(
            "{} (unsupported parameter type; cast the placeholder, e.g. ${{n}}::text)",
            ty.name()
        )),
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn parse_naive_timestamp(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_names_index_not_value() {
        let err = convert_all(
            &[Value::from(1), Value::from("secret-value")],
            &[Type::INT4, Type::INT8],
        );
        let Err(e) = err else {
            panic!("expected error")
        };
        let shown = e.to_string();
        assert!(shown.contains("$2"), "{shown}");
        assert!(!shown.contains("secret-value"), "{shown}");
    }

    #[test]
    fn int8_beyond_f64() {
        let v: Value = serde_json::from_str("9007199254740993").unwrap_or_default();
        assert!(matches!(
            convert(&v, &Type::INT8),
            Ok(Param::I64(9_007_199_254_740_993))
        ));
        let s = Value::from("9007199254740993");
        assert!(matches!(
            convert(&s, &Type::INT8),
            Ok(Param::I64(9_007_199_254_740_993))
        ));
        assert!(convert(&Value::from(1.5), &Type::INT8).is_err());
    }
}
