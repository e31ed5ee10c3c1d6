//! Result values → JSON, losslessly (see the mapping table in the crate docs).

use std::error::Error;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::{Number, Value};
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::Row;

use crate::numeric::{self, Numeric};

/// The raw binary bytes of any column, or `None` for NULL.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Bytes a row counts against the result cap: an estimate of each value's JSON size made
/// from its wire form *before* converting it (so that a value which is small on the wire but
/// huge as text — `'1e131071'::numeric` is 10 bytes and 131,072 digits — cannot get past the
/// cap into memory), plus each column's name and 4 bytes of punctuation.
pub(crate) fn row_size(row: &Row) -> usize {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let value = match row.try_get::<_, Raw<'_>>(i) {
                Ok(Raw(Some(raw))) => json_size(col.type_(), raw),
                _ => 4,
            };
            value.saturating_add(col.name().len() + 4)
        })
        .fold(0usize, usize::saturating_add)
}

/// An upper estimate of a value's JSON size from its binary form.
fn json_size(ty: &Type, raw: &[u8]) -> usize {
    match ty.kind() {
        Kind::Domain(base) => return json_size(base, raw),
        Kind::Array(member) => return array_json_size(member, raw).unwrap_or(raw.len()),
        _ => {}
    }
    match *ty {
        Type::NUMERIC => numeric::text_len(raw),
        // base64 grows by a third
        Type::BYTEA => raw.len() / 3 * 4 + 8,
        Type::BOOL => 5,
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::FLOAT4 | Type::FLOAT8 => 26,
        Type::UUID | Type::TIMESTAMPTZ | Type::TIMESTAMP | Type::DATE | Type::TIME => 40,
        // strings and JSON: their bytes and quotes (escapes aside)
        _ => raw.len().saturating_add(2),
    }
}

fn array_json_size(member: &Type, raw: &[u8]) -> Option<usize> {
    use fallible_iterator::FallibleIterator as _;
    let arr = postgres_protocol::types::array_from_sql(raw).ok()?;
    let mut total = 2usize;
    let mut values = arr.values();
    while let Some(v) = values.next().ok()? {
        total = total.saturating_add(match v {
            None => 5,
            Some(raw) => json_size(member, raw).saturating_add(1),
        });
    }
    Some(total)
}

/// Converts one row to JSON: an object keyed by column name, or an array in column order.
/// The error names the column whose value could not be converted.
/// With `strings`, `int8` and `numeric` values are decimal strings.
pub(crate) fn row_to_json(row: &Row, as_array: bool, strings: bool) -> Result<Value, String> {
    let mut values = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let bad = || col.name().to_owned();
        let Raw(raw) = row.try_get::<_, Raw<'_>>(i).map_err(|_| bad())?;
        let value = match raw {
            None => Value::Null,
            Some(raw) => to_json(col.type_(), raw, strings).map_err(|_| bad())?,
        };
        values.push(value);
    }
    if as_array {
        return Ok(Value::Array(values));
    }
    let mut out = serde_json::Map::with_capacity(values.len());
    for (col, value) in row.columns().iter().zip(values) {
        out.insert(col.name().to_owned(), value);
    }
    Ok(Value::Object(out))
}

type BoxError = Box<dyn Error + Sync + Send>;

fn number(text: &str) -> Result<Value, BoxError> {
    Ok(Value::Number(Number::from_str(text)?))
}

/// JSON for a float: a number when finite, else the strings `NaN`, `Infinity`, `-Infinity`.
fn float_text(text: String, finite: bool) -> Result<Value, BoxError> {
    if finite {
        number(&text)
    } else {
        Ok(Value::String(match text.as_str() {
            "inf" => "Infinity".to_owned(),
            "-inf" => "-Infinity".to_owned(),
            _ => "NaN".to_owned(),
        }))
    }
}

/// Microseconds since 2000-01-01 (Postgres's epoch) for timestamps; ±infinity as i64 extremes.
fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn timestamp(raw: &[u8]) -> Result<Result<NaiveDateTime, &'static str>, BoxError> {
    let micros = i64::from_sql(&Type::INT8, raw)?;
    Ok(match micros {
        i64::MAX => Err("infinity"),
        i64::MIN => Err("-infinity"),
        m => Ok(pg_epoch()
            .checked_add_signed(chrono::Duration::microseconds(m))
            .ok_or("timestamp out of range")?),
    })
}

fn to_json(ty: &Type, raw: &[u8], strings: bool) -> Result<Value, BoxError> {
    match ty.kind() {
        Kind::Array(member) => return array(member, raw, strings),
        Kind::Domain(base) => return to_json(base, raw, strings),
        Kind::Enum(_) => return Ok(Value::String(String::from_utf8(raw.to_vec())?)),
        _ => {}
    }
    Ok(match *ty {
        Type::VOID => Value::Null,
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
        Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
        Type::INT8 => {
            let text = i64::from_sql(ty, raw)?.to_string();
            if strings {
                Value::String(text)
            } else {
                number(&text)?
            }
        }
        Type::OID => Value::from(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => {
            // Format as f32 so 0.1 stays 0.1 rather than 0.10000000149011612.
            let f = f32::from_sql(ty, raw)?;
            float_text(f.to_string(), f.is_finite())?
        }
        Type::FLOAT8 => {
            let f = f64::from_sql(ty, raw)?;
            float_text(f.to_string(), f.is_finite())?
        }
        Type::NUMERIC => match numeric::decode(raw)? {
            Numeric::Finite(text) if strings => Value::String(text),
            Numeric::Finite(text) => number(&text)?,
            Numeric::Special(s) => Value::String(s.to_owned()),
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::String(String::from_sql(ty, raw)?)
        }
        Type::CHAR => Value::String(char::from(i8::from_sql(ty, raw)? as u8).to_string()),
        Type::UUID => Value::String(uuid::Uuid::from_sql(ty, raw)?.to_string()),
        Type::JSON | Type::JSONB => Value::from_sql(ty, raw)?,
        Type::BYTEA => Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
        Type::TIMESTAMPTZ => Value::String(match timestamp(raw)? {
            Ok(t) => DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            Err(inf) => inf.to_owned(),
        }),
        Type::TIMESTAMP => Value::String(match timestamp(raw)? {
            Ok(t) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            Err(inf) => inf.to_owned(),
        }),
        Type::DATE => Value::String(match i32::from_sql(&Type::INT4, raw)? {
            i32::MAX => "infinity".to_owned(),
            i32::MIN => "-infinity".to_owned(),
            _ => NaiveDate::from_sql(ty, raw)?.format("%Y-%m-%d").to_string(),
        }),
        // Microseconds since midnight; PostgreSQL allows 24:00:00, which chrono cannot hold.
        Type::TIME => match i64::from_sql(&Type::INT8, raw)? {
            86_400_000_000 => Value::String("24:00:00".to_owned()),
            _ => Value::String(
                NaiveTime::from_sql(ty, raw)?
                    .format("%H:%M:%S%.f")
                    .to_string(),
            ),
        },
        _ => return Err("unsupported type".into()),
    })
}

/// Arrays of any supported member type; multi-dimensional arrays become nested JSON arrays.
fn array(member: &Type, raw: &[u8], strings: bool) -> Result<Value, BoxError> {
    use fallible_iterator::FallibleIterator as _;
    use postgres_protocol::types::array_from_sql;

    let arr = array_from_sql(raw)?;
    let dims: Vec<usize> = arr.dimensions().map(|d| Ok(d.len as usize)).collect()?;
    let values: Vec<Value> = arr
        .values()
        .map(|v| match v {
            None => Ok(Value::Null),
            Some(raw) => to_json(member, raw, strings),
        })
        .collect()?;
    if dims.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    fn nest(dims: &[usize], values: &mut std::vec::IntoIter<Value>) -> Value {
        match dims {
            [] => values.next().unwrap_or(Value::Null),
            [n, rest @ ..] => Value::Array((0..*n).map(|_| nest(rest, values)).collect()),
        }
    }
    Ok(nest(&dims, &mut values.into_iter()))
}

/// Whether [`row_to_json`] can map columns of this type; checked before a statement runs, so an
/// unmappable result never surfaces after the transaction committed.
pub(crate) fn supported(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Array(member) => supported(member),
        Kind::Domain(base) => supported(base),
        Kind::Enum(_) => true,
        _ => matches!(
            *ty,
            Type::BOOL
                | Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::OID
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::NUMERIC
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::CHAR
                | Type::UUID
                | Type::JSON
                | Type::JSONB
                | Type::BYTEA
                | Type::TIMESTAMPTZ
                | Type::TIMESTAMP
                | Type::DATE
                | Type::TIME
                | Type::VOID
        ),
    }
}
