//! Hearth's PostgreSQL pool: warm connections to Aurora PostgreSQL (or anything speaking the
//! protocol), with every request run under a per-request Row-Level-Security tenant context.
//!
//! # Layout
//!
//! - [`config`]: [`DbConfig`], [`TlsMode`] — typed configuration, validated.
//! - [`credentials`]: [`DbCredentials`], the [`CredentialSource`] trait the extension implements
//!   over its Secrets Manager cache, [`StaticCredentials`], [`SwappableCredentials`].
//! - [`error`]: [`DbError`] with stable codes and HTTP categories.
//! - [`iam`]: [`IamCredentials`], IAM authentication tokens as passwords (`HEARTH_DB_AUTH=iam`).
//! - `pool`: the deadpool manager (connect, 28P01 refetch, role check, idle verification).
//! - `db`: [`Db`] and the request protocol.
//! - `pooled`: the request protocol behind a transaction-mode pooler
//!   ([`PoolerMode::Transaction`]: PgBouncer, RDS Proxy); see its module docs.
//! - `params`, `values`, `numeric`: JSON ↔ Postgres conversion. `tls`: rustls adapter.
//!
//! # The isolation invariant
//!
//! **When a request ends — by success, SQL error, timeout, the client going away, or a result
//! that cannot be returned — its connection holds exactly its startup state, or it is closed.**
//! Startup state means: no open transaction, no cursor, no temporary table, view, function or
//! sequence, no sequence state (`lastval`, `currval`), no session advisory lock, no `LISTEN`,
//! the session's own role, every setting at its startup value, and no prepared statement except
//! the driver's own, unmodified. No state of one request can reach the next, whatever SQL the
//! first one ran.
//!
//! It is enforced by mechanism, not by recognising statements:
//!
//! 1. **The protocol's own steps cannot be replaced.** `BEGIN` is a simple query, and the
//!    settings run as `SELECT pg_catalog.set_config($1, $2, true)` on the *unnamed* statement
//!    (schema-qualified, so no function or `search_path` can stand in for it, and its returned
//!    value is checked). SQL `PREPARE` cannot create or replace the unnamed statement.
//! 2. **Every request ends with [`FINISH_SQL`]**, one query string pipelined after the
//!    statements: `COMMIT; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; RESET ROLE; CLOSE ALL;
//!    UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES; SELECT pg_catalog.pg_advisory_unlock_all(),
//!    <prepared-statement counts>` — what `DISCARD ALL` does except `DEALLOCATE ALL` (it would
//!    drop the driver's cached statements) and `DISCARD PLANS` (plans hold no data).
//! 3. **Its last statement checks the prepared statements** (`pg_prepared_statements`): none
//!    made by SQL `PREPARE` (`from_sql`) may remain — replacing one of the driver's named
//!    statements needs `DEALLOCATE` then `PREPARE`, so every replacement shows there — and the
//!    driver's own must all still be there (its cached statements plus its type lookups, whose
//!    number only grows). Otherwise — and after any failure or surprise in `BEGIN`, a
//!    setting, `COMMIT` or the clean-up, a timeout, a dropped request future, or a 26000
//!    ("prepared statement does not exist") — the connection is closed, never returned to the
//!    pool, and a cancel request stops whatever it may still be running. A request that
//!    tampers with the statements costs that one connection, never a later request.
//!
//! If `COMMIT` fails (deferred constraint, serialization) the rest of the string is skipped and
//! the connection is closed: rare, and safe. `COMMIT`, `BEGIN` or `ROLLBACK` inside user SQL
//! only change that request's own transaction; the final `COMMIT` ends whatever is open, and
//! the clean-up resets what a statement run outside the transaction set.
//!
//! Behind a transaction-mode pooler ([`PoolerMode::Transaction`]) closing Hearth's connection
//! does not close the server's, so the invariant is kept for the server connection that ran
//! the request by other means: one transaction per request (SQL that ends it is refused), no
//! named statement outliving it, what a rollback would not undo cleaned before `COMMIT` and
//! the rest after it in the same query string, and a server connection whose clean-up fails
//! left to the pooler inside a failed transaction and closed (it also terminates itself):
//! [`FINISH_POOLED_SQL`] and the `pooled` module.
//!
//! What a session clean-up cannot undo is not session state: rows, DDL, and persistent
//! settings the role may make. That is why the role check (below) runs on every new
//! connection and refuses owners of RLS tables, role defaults that change the role,
//! `row_security` or the search path, and the other ways past RLS. A request's SQL can set its
//! *own* tenant setting (`set_config('app.tenant_id', 'other', true)`): Row-Level Security
//! keyed on a setting isolates requests from one another, not injected SQL from the data of
//! the tenant it names — build SQL from parameters, never from input.
//!
//! # Request protocol and its cost
//!
//! ```text
//! BEGIN                                               -- simple query
//! SELECT pg_catalog.set_config($1, $2, true)          -- unnamed; tenant setting, then each
//!                                                     -- allow-listed setting ('' when absent)
//! <statement(s)>                                      -- named, prepared once per connection
//! FINISH_SQL                                          -- simple query: COMMIT, clean-up, check
//! ```
//!
//! All of it is written to the connection at once: one round trip once a statement is prepared
//! on the connection (its first use costs one more). What the mechanism costs, measured side
//! by side on one warm connection with no HTTP (`scripts/bench.sh`, comparison `rls_protocol`;
//! the run committed in `bench/results/db-isolation.md`, 2-core AMD EPYC VM, PostgreSQL 15):
//!
//! | protocol | p50 µs |
//! |---|--:|
//! | before: named statements, `COMMIT; RESET ALL; RESET ROLE` (not isolated) | 117 |
//! | **now**: unnamed `set_config`, named statement, [`FINISH_SQL`] | 238 |
//! | unnamed `set_config` and statement (parsed and planned every time) | 287 |
//! | named `set_config` too (replaceable, caught only by the check) | 219 |
//! | now, with 120 more statements cached on the connection | 343 |
//!
//! The round trips stay at one. The price is server time: the clean-up statements are nearly
//! free (a few µs); the unnamed `set_config` costs about 20 µs; the check of
//! `pg_prepared_statements` costs most (about 60-80 µs here, plus about 1 µs per statement the
//! connection has cached, since the server builds a row for each). Running user statements
//! unnamed as well would remove the named statements to check but parse and plan every
//! statement on every request, which is dearer already for this one-row query and grows with
//! the query's complexity; `DISCARD ALL` would need no check but drops the driver's own
//! type-lookup statements, after which the driver fails.
//!
//! # Results that cannot be returned
//!
//! Rows are converted as they stream in, and counted against
//! [`DbConfig::max_result_bytes`] at an estimate of their JSON size made *before* conversion (a
//! `numeric` by its header's digit count, so a value small on the wire but huge as text cannot
//! slip past), plus the column names. One row is still read whole by the driver before it is
//! counted (PostgreSQL bounds a value at 1 GB).
//! Past the cap, or when a value cannot be represented (a date beyond chrono's range, JSON
//! nested deeper than 128 levels), or a reply the driver cannot read (`COPY ... TO STDOUT`),
//! the remaining rows are read and dropped, never buffered.
//! Because `COMMIT` travels in the same round trip, the server has committed by then: the
//! request fails with [`DbError::ResultTooLarge`] or [`DbError::ResultUndecodable`] whose
//! [`DbError::committed`] says so explicitly (`"committed": true` on the wire: do not retry a
//! write). Reading the results before sending `COMMIT` would make that a rollback at the price
//! of a second round trip on *every* request; the explicit outcome keeps the common case at
//! one. Types that cannot be mapped at all are refused before anything runs
//! ([`DbError::UnsupportedType`]), and so are duplicate column names in object rows
//! ([`DbError::DuplicateColumn`]; `rowMode: array` keeps them) and `FETCH` / `EXECUTE`, whose
//! rows the server does not describe in advance ([`DbError::InvalidRequest`]).
//!
//! # Roles that escape Row-Level Security
//!
//! On every new connection, before anything else runs, one query string checks the session;
//! a role that escapes RLS is refused ([`DbError::PrivilegedRole`], naming every reason with
//! its fix) unless [`DbConfig::allow_privileged_role`]. The check pins `search_path` to
//! `pg_catalog, pg_temp` for its own transaction, so no operator a user defined, and no
//! temporary table, can change its answer. (The session's temporary schema, which comes first
//! when the path does not name it, is not counted as a schema before `pg_catalog`: it is never
//! searched for functions or operators, and behind a transaction pooler a new connection may
//! land on a server connection that once had a temporary table.)
//!
//! | the role | why it escapes RLS | fix named in the error |
//! |---|---|---|
//! | is superuser | superusers ignore RLS | an ordinary role |
//! | has BYPASSRLS | the attribute's purpose | `ALTER ROLE ... NOBYPASSRLS` |
//! | has CREATEROLE | can grant itself a role that does (PostgreSQL ≤ 15) | `NOCREATEROLE` |
//! | is a member (direct, inherited or NOINHERIT) of a superuser, BYPASSRLS or CREATEROLE role, of `rds_superuser`, or of `pg_execute_server_program` / `pg_read_server_files` / `pg_write_server_files` | `SET ROLE` escapes RLS; on Aurora/RDS the master user is NOSUPERUSER NOBYPASSRLS but a member of `rds_superuser` | `REVOKE`; connect as an application role, not the master user |
//! | owns, or is a member of the owner of, a table with RLS enabled — forced or not | owners skip RLS unless forced, and their SQL can un-force it or drop the policies | a NOLOGIN owner role |
//! | owns a function a policy calls | its SQL can redefine the policy | a NOLOGIN owner role |
//! | can query a partition without RLS of a table with RLS | partitions do not inherit the parent's RLS when queried directly | enable RLS on the partition, or revoke |
//! | can read a view over an RLS table whose owner RLS does not bind (not `security_invoker`), or a materialized view over one | the view reads as its owner; a materialized view stores every tenant's rows | `security_invoker = true`, or revoke |
//! | has a default `role` (`ALTER ROLE ... SET role`), `row_security` off, or a `search_path` with a schema before `pg_catalog` | `RESET ROLE`/`RESET ALL` return to those defaults; a schema before `pg_catalog` can shadow its operators | `ALTER ROLE ... RESET ...` |
//!
//! A refusal is kept per credential (a fingerprint of host, port, database, user and
//! password) and answered without connecting — a misconfigured environment does not open a
//! connection per request — until the credentials change (a rotation, a new secret value).
//! Not checked: privileges to `CREATE` in a schema on the search path (an operator defined
//! there for types `pg_catalog` has no exact operator for can still win) and `ALTER ROLE ...
//! PASSWORD` by the role itself (on Aurora, `rds.restrict_password_commands`): keep the role to
//! DML on tables it does not own.
//!
//! # Errors
//!
//! Server errors carry the SQLSTATE and the constraint, table and column the server names
//! ([`ServerError`]). The server's message is passed only for the conditions whose every
//! message is a fixed template naming schema objects (integrity constraints, permission and
//! policy violations, serialization failures and deadlocks, transaction state, unknown cursor
//! or prepared statement, division by zero, value too long); every other message — data
//! exceptions (`invalid input value for enum brand: "..."`), but also syntax and
//! undefined-object errors, which can quote values (`current_setting($1)`, `$1::regclass`,
//! `to_tsquery($1)`) — is replaced by the condition's name and, where the server gives one, the
//! character position in the statement. `DETAIL`, which quotes key values and failing rows, is
//! never used. A `RAISE` message (P0001) is the function author's text and is passed as written.
//!
//! # Connections
//!
//! Idle connections older than [`DbConfig::verify_idle_after`] are checked with a round trip
//! before use (a Lambda freeze may have outlived them) and replaced transparently if dead.
//! When opening a connection fails with SQLSTATE 28P01 (password rotated), the credential source
//! is asked once with `force_refresh = true` and the connection retried once; open connections
//! keep working.
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
//! | `int8` | integer or decimal string, full 64-bit range (beyond 2^53 too) | number, exact (e.g. `9007199254740993`); a decimal string with `numbers: string` |
//! | `float4`, `float8` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` | number (shortest exact form); those three as strings |
//! | `numeric` | number or decimal string, exact (`1e3` allowed); `"NaN"`, `"±Infinity"` | number with the column's scale kept (`1.50`), exact; NaN/Infinity as strings; a decimal string (`"1.50"`) with `numbers: string` |
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
//! `f64`, except `float4`/`float8` which are binary floats in Postgres too. JavaScript's
//! `JSON.parse` and Python's `json.loads` (for non-integers) still round such numbers, so a
//! request's `numbers: "string"` (default [`DbConfig::numbers`], `HEARTH_DB_NUMBERS`) returns
//! `int8` and `numeric` values, also inside arrays, as decimal strings; numbers inside
//! `json`/`jsonb` values are the document's own and stay numbers.
//!
//! # Why the pool is deadpool's generic pool, not deadpool-postgres
//!
//! The design names deadpool-postgres (`Manager::from_connect` with a `Connect` that fetches
//! current credentials per connection). Checked against deadpool-postgres 0.14.2, it cannot
//! carry what this crate must keep:
//!
//! - **Errors.** `Connect::connect` and the manager return `tokio_postgres::Error`, which has
//!   no public constructor: a refused role ([`DbError::PrivilegedRole`] with every reason and
//!   its fix), [`DbError::TlsRequired`], [`DbError::CredentialsUnavailable`] (secret or IAM
//!   signing failed) and the refusal answered from the cache without connecting could only
//!   surface as a generic connection error, losing their stable codes.
//! - **Recycling.** `RecyclingMethod` is `Fast` (no check: TESTING.md shows it hands out a
//!   connection the server killed during a freeze), or a query on *every* checkout
//!   (`Verified`, `Clean`, `Custom`): one more round trip per request. Hearth verifies only
//!   connections idle longer than [`DbConfig::verify_idle_after`].
//! - **Statement cache.** `ClientWrapper`'s cache is an unbounded map keyed by SQL text. The
//!   isolation check reads `pg_prepared_statements`, whose cost grows with every statement a
//!   connection holds — measured above: 238 µs p50 per request, 343 µs with 120 more cached
//!   statements (about 1 µs per statement) — and every distinct SQL text a caller sends would
//!   stay prepared on the server for the connection's life. Hearth keeps a bounded cache
//!   ([`DbConfig::statement_cache_size`], oldest evicted) and counts what it holds for the
//!   check. `RecyclingMethod::Clean` is the same clean-up as [`FINISH_SQL`] without the
//!   prepared-statement check and runs after the request instead of in its round trip.
//!
//! So the pool is deadpool's `managed::Pool` (what deadpool-postgres builds on) with this
//! crate's `Manager`; credentials come from a [`CredentialSource`] per new connection — the
//! secrets cache or [`IamCredentials`] — which is what `from_connect` was wanted for.

pub mod config;
pub mod credentials;
mod db;
pub mod error;
pub mod iam;
mod numeric;
mod params;
mod pool;
mod pooled;
mod tls;
mod values;

pub use config::{
    ConfigError, DbConfig, PoolerMode, TlsMode, DEFAULT_MAX_RESULT_BYTES, DEFAULT_TENANT_SETTING,
};
pub use credentials::{
    CredentialSource, CredentialsFuture, DbCredentials, StaticCredentials, SwappableCredentials,
};
pub use db::{Db, DbStats, FINISH_SQL, MAX_STATEMENTS, SET_CONFIG_SQL};
pub use error::{DbError, ErrorKind, ServerError};
pub use iam::IamCredentials;
pub use pooled::{FINISH_POOLED_ABORTED_SQL, FINISH_POOLED_SQL};
