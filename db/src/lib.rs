//! Hearth's PostgreSQL pool: warm connections to Aurora PostgreSQL (or anything speaking the
//! protocol), with every request run under a per-request Row-Level-Security tenant context.
//!
//! # Layout
//!
//! - [`config`]: [`DbConfig`], [`TlsMode`] — typed configuration, validated.
//! - [`credentials`]: [`DbCredentials`], the [`CredentialSource`] trait the extension implements
//!   over its Secrets Manager cache, [`StaticCredentials`], [`SwappableCredentials`].
//! - [`error`]: [`DbError`] with stable codes and HTTP categories.
//! - `pool`: the deadpool manager (connect, 28P01 refetch, role check, idle verification).
//! - `db`: [`Db`] and the request protocol.
//! - `params`, `values`, `numeric`: JSON ↔ Postgres conversion. `tls`: rustls adapter.
//!
//! # Request protocol
//!
//! Every request (one statement, or a transaction of several) runs as
//!
//! ```text
//! BEGIN
//! SELECT set_config($1, $2, true)     -- tenant setting, tenant: both bound parameters
//! SELECT set_config($1, $2, true)     -- each allow-listed setting ('' when not given)
//! <statement(s)>
//! COMMIT; RESET ALL; RESET ROLE
//! ```
//!
//! written to the connection at once (pipelined: one round trip once the statements are
//! prepared; prepared statements are cached per connection). Settings are transaction-local,
//! every managed setting is set on every request, and the final `RESET ALL` undoes session-level
//! changes a statement may have made (`set_config(..., false)`, `SET app.tenant_id`,
//! `SET statement_timeout`, `SET ROLE`). A connection goes back to the pool only when that last
//! step succeeded; after any other outcome (connection error, client-side timeout, the request's
//! future dropped because the client went away) it is closed, so no tenant context can reach
//! another request. Because `COMMIT` is written together with the statements, a request whose
//! future is dropped after it was written still runs to its end on the server (it commits, or
//! rolls back if the server notices the closed socket first) — the same "outcome unknown" as any
//! request whose reply is lost; the server-side `statement_timeout` always aborts and rolls back.
//! What is *not* reset: temporary tables, advisory locks, `LISTEN` — SQL that
//! creates them is the function's own business.
//!
//! Idle connections older than [`DbConfig::verify_idle_after`] are checked with a round trip
//! before use (a Lambda freeze may have outlived them) and replaced transparently if dead.
//! When opening a connection fails with SQLSTATE 28P01 (password rotated), the credential source
//! is asked once with `force_refresh = true` and the connection retried once; open connections
//! keep working. Every new connection checks its role: superuser and BYPASSRLS roles are refused
//! ([`DbError::PrivilegedRole`]) unless [`DbConfig::allow_privileged_role`].
//!
//! # JSON ↔ Postgres types
//!
//! Parameters are converted to the type the server reports for each `$n` of the prepared
//! statement; a value that does not fit is [`DbError::ParamType`] naming `$n` (never the
//! value). JSON `null` is SQL NULL for every type. Results map the same way back.
//!
//! | Postgres type | parameter accepts (JSON) | result (JSON) |
//! |---|---|---|
//! | `bool` | `true` / `false` | boolean |
//! | `int2`, `int4`, `oid` | integer, or decimal string | number |
//! | `int8` | integer or decimal string, full 64-bit range (beyond 2^53 too) | number, exact (e.g. `9007199254740993`) |
//! | `float4`, `float8` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` | number (shortest exact form); those three as strings |
//! | `numeric` | number or decimal string, exact (`1e3` allowed); `"NaN"`, `"±Infinity"` | number with the column's scale kept (`1.50`), exact; NaN/Infinity as strings |
//! | `text`, `varchar`, `bpchar`, `name`, enums | string | string |
//! | `"char"` | — | one-character string |
//! | `uuid` | string | string |
//! | `json`, `jsonb` | any JSON value (embedded, not a string) | embedded JSON, numbers exact |
//! | `timestamptz` | RFC 3339 string with offset | RFC 3339 string in UTC (`…Z`); `"infinity"`, `"-infinity"` |
//! | `timestamp` | `YYYY-MM-DDTHH:MM:SS[.ffffff]` | same form; `"infinity"`, `"-infinity"` |
//! | `date` | `YYYY-MM-DD` | same form; `"infinity"`, `"-infinity"` |
//! | `time` | `HH:MM:SS[.ffffff]` | same form |
//! | `bytea` | standard base64 string | standard base64 string |
//! | arrays of the above | JSON array (one dimension; `null` elements allowed) | JSON array, nested for multi-dimensional arrays |
//! | domains | as their base type | as their base type |
//! | `void` | — | `null` |
//! | anything else | [`DbError::ParamType`]: cast the placeholder, e.g. `$1::text` | [`DbError::UnsupportedType`] before the statement runs: cast the column, e.g. `col::text` |
//!
//! Numbers travel as exact decimal text (`serde_json`'s `arbitrary_precision`), never through
//! `f64`, except `float4`/`float8` which are binary floats in Postgres too.

pub mod config;
pub mod credentials;
mod db;
pub mod error;
mod numeric;
mod params;
mod pool;
mod tls;
mod values;

pub use config::{ConfigError, DbConfig, TlsMode, DEFAULT_TENANT_SETTING};
pub use credentials::{
    CredentialSource, CredentialsFuture, DbCredentials, StaticCredentials, SwappableCredentials,
};
pub use db::{Db, DbStats, MAX_STATEMENTS};
pub use error::{DbError, ErrorKind};
