//! The crate's error type, with stable codes and HTTP categories. Messages carry the server's
//! SQLSTATE and message, never credentials or parameter values.

use crate::config::ConfigError;

/// HTTP category of a [`DbError`]; the extension turns it into a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is wrong (SQL, parameters, missing tenant, setting not allowed).
    BadRequest,
    /// 403: Row-Level Security or a privilege check refused the statement.
    Forbidden,
    /// 409: a constraint or serialization conflict; retrying may help.
    Conflict,
    /// 500: Hearth's configuration or the database role is unacceptable.
    Internal,
    /// 502: the database or credential source answered with an unexpected failure.
    Upstream,
    /// 503: the database is unreachable, restarting, or the pool is exhausted.
    Unavailable,
    /// 504: the statement ran out of time.
    Timeout,
}

impl ErrorKind {
    /// The HTTP status code of this category.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::Conflict => 409,
            Self::Internal => 500,
            Self::Upstream => 502,
            Self::Unavailable => 503,
            Self::Timeout => 504,
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Invalid [`crate::DbConfig`].
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The request has no tenant and tenantless mode is off.
    #[error("a tenant is required for database requests")]
    TenantRequired,
    /// The request sets a context setting that is not on the allow-list.
    #[error("setting {0:?} is not on the allow-list of context settings")]
    SettingNotAllowed(String),
    /// The request is malformed (e.g. a transaction without statements).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Parameter `$index` cannot be converted to the type the server expects.
    #[error("parameter ${index} must be {expected}")]
    ParamType {
        /// 1-based parameter number.
        index: usize,
        /// What was expected, e.g. `int8 (JSON integer or decimal string)`.
        expected: String,
    },
    /// The statement has a different number of parameters than the request gave.
    #[error("statement expects {expected} parameters, got {given}")]
    ParamCount {
        /// Parameters in the statement.
        expected: usize,
        /// Parameters in the request.
        given: usize,
    },
    /// A result column has a type this crate cannot map to JSON.
    #[error("column {column:?} has unsupported type {type_name}; cast it, e.g. {column}::text")]
    UnsupportedType {
        /// Column name.
        column: String,
        /// Postgres type name.
        type_name: String,
    },
    /// The server rejected the statement.
    #[error("{0}")]
    Sql(Box<ServerError>),
    /// Row-Level Security or a privilege check refused the statement (SQLSTATE 42501).
    #[error("policy violation: {0}")]
    PolicyViolation(Box<ServerError>),
    /// A unique constraint was violated (SQLSTATE 23505).
    #[error("unique violation: {0}")]
    UniqueViolation(Box<ServerError>),
    /// Another integrity constraint was violated (SQLSTATE class 23).
    #[error("constraint violation: {0}")]
    ConstraintViolation(Box<ServerError>),
    /// Serialization failure or deadlock (SQLSTATE class 40); the request may be retried.
    #[error("transaction conflict: {0}")]
    SerializationFailure(Box<ServerError>),
    /// Two result columns have the same name and rows were asked for as objects.
    #[error(
        "result columns {first} and {second} are both named {name:?}, so an object row would \
         lose one: alias them (SELECT a.id AS a_id, b.id AS b_id) or send \"rowMode\": \"array\""
    )]
    DuplicateColumn {
        /// The repeated name.
        name: String,
        /// 1-based position of its first occurrence.
        first: usize,
        /// 1-based position of the repeat.
        second: usize,
    },
    /// The results exceeded the configured cap while streaming; they were discarded.
    #[error(
        "the results exceed {limit} bytes (HEARTH_DB_MAX_RESULT_BYTES) and were not returned; \
         {} add a LIMIT or page with keyset pagination", outcome(*committed)
    )]
    ResultTooLarge {
        /// The cap, in bytes.
        limit: usize,
        /// Whether the transaction committed anyway.
        committed: bool,
    },
    /// A value the server returned cannot be represented in JSON by Hearth (a date beyond
    /// chrono's range, JSON nested deeper than 128 levels), or a reply the driver cannot read
    /// (`COPY ... TO STDOUT`).
    #[error(
        "{what} cannot be converted to JSON and the results were not returned; {} cast the \
         column to text (e.g. col::text), and run COPY outside Hearth", outcome(*committed)
    )]
    ResultUndecodable {
        /// What could not be converted.
        what: String,
        /// Whether the transaction committed anyway.
        committed: bool,
    },
    /// The statement exceeded the statement timeout (server-side or client-side bound).
    #[error("statement timed out")]
    StatementTimeout,
    /// No connection became free within the pool-wait timeout.
    #[error("timed out waiting for a free database connection")]
    PoolTimeout,
    /// The database cannot be reached or dropped the connection.
    #[error("database unavailable: {0}")]
    DbUnavailable(String),
    /// The server rejected the credentials (also after one forced refresh).
    #[error("database authentication failed ({sqlstate})")]
    AuthFailed {
        /// Five-character SQLSTATE (28P01 or 28000).
        sqlstate: String,
    },
    /// The credential source failed.
    #[error("database credentials unavailable: {0}")]
    CredentialsUnavailable(String),
    /// The role escapes Row-Level Security and `allow_privileged_role` is off.
    #[error(
        "database role {role:?} escapes Row-Level Security, so Hearth refuses it: {reasons}. \
         (HEARTH_DB_ALLOW_PRIVILEGED_ROLE=true accepts it, with RLS not protecting tenants.)"
    )]
    PrivilegedRole {
        /// Role name.
        role: String,
        /// Every reason, each with its fix, joined by `; `.
        reasons: String,
    },
    /// TLS is off and the host is not a loopback address.
    #[error("TLS is required for non-loopback database host {host:?}")]
    TlsRequired {
        /// The host from the credentials.
        host: String,
    },
    /// TLS setup failed (CA bundle unreadable, bad server name, ...).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The pool was closed.
    #[error("database pool is closed")]
    Closed,
}

impl DbError {
    /// Stable CamelCase code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "DbConfigInvalid",
            Self::TenantRequired => "TenantRequired",
            Self::SettingNotAllowed(_) => "SettingNotAllowed",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::ParamType { .. } => "ParamType",
            Self::ParamCount { .. } => "ParamCount",
            Self::UnsupportedType { .. } => "UnsupportedType",
            Self::Sql(_) => "SqlError",
            Self::PolicyViolation(_) => "PolicyViolation",
            Self::UniqueViolation(_) => "UniqueViolation",
            Self::ConstraintViolation(_) => "ConstraintViolation",
            Self::SerializationFailure(_) => "SerializationFailure",
            Self::DuplicateColumn { .. } => "DuplicateColumn",
            Self::ResultTooLarge { .. } => "ResultTooLarge",
            Self::ResultUndecodable { .. } => "ResultUndecodable",
            Self::StatementTimeout => "StatementTimeout",
            Self::PoolTimeout => "PoolTimeout",
            Self::DbUnavailable(_) => "DbUnavailable",
            Self::AuthFailed { .. } => "AuthFailed",
            Self::CredentialsUnavailable(_) => "CredentialsUnavailable",
            Self::PrivilegedRole { .. } => "PrivilegedRole",
            Self::TlsRequired { .. } => "TlsRequired",
            Self::Tls(_) => "TlsError",
            Self::Closed => "DbClosed",
        }
    }

    /// HTTP category.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TenantRequired
            | Self::SettingNotAllowed(_)
            | Self::InvalidRequest(_)
            | Self::ParamType { .. }
            | Self::ParamCount { .. }
            | Self::UnsupportedType { .. }
            | Self::DuplicateColumn { .. }
            | Self::ResultTooLarge { .. }
            | Self::ResultUndecodable { .. }
            | Self::Sql(_) => ErrorKind::BadRequest,
            Self::PolicyViolation(_) => ErrorKind::Forbidden,
            Self::UniqueViolation(_)
            | Self::ConstraintViolation(_)
            | Self::SerializationFailure(_) => ErrorKind::Conflict,
            Self::StatementTimeout => ErrorKind::Timeout,
            Self::PoolTimeout | Self::DbUnavailable(_) | Self::Closed => ErrorKind::Unavailable,
            Self::AuthFailed { .. } | Self::CredentialsUnavailable(_) | Self::Tls(_) => {
                ErrorKind::Upstream
            }
            Self::Config(_) | Self::PrivilegedRole { .. } | Self::TlsRequired { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// SQLSTATE of a server error, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::AuthFailed { sqlstate } => Some(sqlstate),
            Self::StatementTimeout => Some("57014"),
            _ => self.server().map(|e| e.sqlstate.as_str()),
        }
    }

    /// The server's error, for the SQL error variants.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Self::Sql(e)
            | Self::PolicyViolation(e)
            | Self::UniqueViolation(e)
            | Self::ConstraintViolation(e)
            | Self::SerializationFailure(e) => Some(e),
            _ => None,
        }
    }

    /// For `ResultTooLarge` and `ResultUndecodable`: whether the transaction committed.
    pub fn committed(&self) -> Option<bool> {
        match self {
            Self::ResultTooLarge { committed, .. } | Self::ResultUndecodable { committed, .. } => {
                Some(*committed)
            }
            _ => None,
        }
    }

    /// True when the error leaves the connection in an unknown state or shows it is broken,
    /// so it must not go back to the pool. 26000 (a prepared statement the driver holds was
    /// deallocated) and 42P05 (a name the driver chose is taken) mean user SQL tampered with
    /// the connection's statements.
    pub(crate) fn connection_suspect(&self) -> bool {
        matches!(
            self,
            Self::DbUnavailable(_) | Self::StatementTimeout | Self::AuthFailed { .. }
        ) || matches!(self.sqlstate(), Some("26000" | "42P05"))
    }
}

fn outcome(committed: bool) -> &'static str {
    if committed {
        "the transaction COMMITTED (do not retry a write):"
    } else {
        "the transaction was rolled back:"
    }
}

/// An error the server reported, made safe to show: the SQLSTATE, the constraint, table and
/// column the server names, and its message only where that message cannot quote a value.
///
/// PostgreSQL quotes input values in the messages of data exceptions (class 22, e.g.
/// `invalid input value for enum brand: "4111…"`), so those messages — and any from a class
/// not known to be value-free — are replaced by the condition's name. The `DETAIL` field,
/// which quotes key values and failing rows, is never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// Five-character SQLSTATE.
    pub sqlstate: String,
    /// The server's message, or the condition's name where the message is withheld.
    pub message: String,
    /// The constraint the server names (class 23).
    pub constraint: Option<String>,
    /// The table the server names, schema-qualified when it says the schema.
    pub table: Option<String>,
    /// The column the server names.
    pub column: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SQLSTATE {}: {}", self.sqlstate, self.message)?;
        if let Some(c) = &self.constraint {
            write!(f, " (constraint {c:?})")?;
        }
        Ok(())
    }
}

/// Whether the server's message for this SQLSTATE is a fixed template that names only schema
/// objects (constraints, tables, columns, types) and cursors or statements named in the SQL
/// text — never a value. Kept to conditions whose every message is known: classes such as 42
/// and 3F quote values too (`current_setting($1)`, `$1::regclass`, `to_tsquery($1)`), so they
/// are withheld like the data exceptions of class 22.
fn message_is_value_free(sqlstate: &str) -> bool {
    matches!(
        sqlstate,
        // integrity constraints: the message names the constraint (DETAIL has the values)
        "23000" | "23001" | "23502" | "23503" | "23505" | "23514" | "23P01"
            // permission denied / row-level security policy for table "x"
            | "42501"
            // transaction state, serialization and deadlock
            | "25001" | "25006" | "25P01" | "25P02" | "40001" | "40P01" | "40002" | "40003"
            // cursor or prepared statement named in the SQL text does not exist
            | "34000" | "26000"
            // division by zero; value too long for type character varying(n)
            | "22012" | "22001"
            // lock not available; feature not supported
            | "55P03" | "0A000"
            // a RAISE message is the function author's text, passed through as written
            | "P0001"
    )
}

/// The condition name of a SQLSTATE for withheld messages (the common ones).
fn condition_name(sqlstate: &str) -> &'static str {
    match sqlstate {
        "22P02" => "invalid_text_representation",
        "22003" => "numeric_value_out_of_range",
        "22007" => "invalid_datetime_format",
        "22008" => "datetime_field_overflow",
        "22023" => "invalid_parameter_value",
        "22021" => "character_not_in_repertoire",
        "22P05" => "untranslatable_character",
        "2201B" => "invalid_regular_expression",
        "22025" => "invalid_escape_sequence",
        "22P03" => "invalid_binary_representation",
        "22004" => "null_value_not_allowed",
        "21000" => "cardinality_violation",
        "42601" => "syntax_error",
        "42P01" => "undefined_table",
        "42703" => "undefined_column",
        "42883" => "undefined_function",
        "42704" => "undefined_object",
        "42702" => "ambiguous_column",
        "42725" => "ambiguous_function",
        "42804" => "datatype_mismatch",
        "42846" => "cannot_coerce",
        "42P18" => "indeterminate_datatype",
        "42P02" => "undefined_parameter",
        "42P07" => "duplicate_table",
        "42710" => "duplicate_object",
        "42803" => "grouping_error",
        "42P10" => "invalid_column_reference",
        "3F000" => "invalid_schema_name",
        "55000" => "object_not_in_prerequisite_state",
        "XX000" => "internal_error",
        _ => "error",
    }
}

impl ServerError {
    fn from_db(db: &tokio_postgres::error::DbError) -> Self {
        let sqlstate = db.code().code().to_owned();
        let message = if message_is_value_free(&sqlstate) {
            db.message().to_owned()
        } else {
            let at = match db.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                    format!(" at character {p} of the statement")
                }
                _ => String::new(),
            };
            format!(
                "{}{at} (the server's message is withheld because it can quote parameter \
                 values; see the SQLSTATE)",
                condition_name(&sqlstate)
            )
        };
        let table = db.table().map(|t| match db.schema() {
            Some(s) => format!("{s}.{t}"),
            None => t.to_owned(),
        });
        ServerError {
            sqlstate,
            message,
            constraint: db.constraint().map(str::to_owned),
            table,
            column: db.column().map(str::to_owned),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // Client-side: I/O error, closed connection, protocol error, TLS. The Display of
            // these never includes parameter values or passwords.
            let text = e.to_string();
            if text.starts_with("error performing TLS handshake") {
                return Self::Tls(text);
            }
            return Self::DbUnavailable(text);
        };
        let server = Box::new(ServerError::from_db(db));
        match server.sqlstate.as_str() {
            "42501" => Self::PolicyViolation(server),
            "23505" => Self::UniqueViolation(server),
            "57014" => Self::StatementTimeout,
            "28P01" | "28000" => Self::AuthFailed {
                sqlstate: server.sqlstate,
            },
            // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped
            "57P01" | "57P02" | "57P03" | "57P04" => Self::DbUnavailable(server.to_string()),
            s if s.starts_with("23") => Self::ConstraintViolation(server),
            s if s.starts_with("40") => Self::SerializationFailure(server),
            // connection exceptions, insufficient resources, system errors
            s if s.starts_with("08") || s.starts_with("53") || s.starts_with("58") => {
                Self::DbUnavailable(server.to_string())
            }
            _ => Self::Sql(server),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_codes() {
        assert_eq!(DbError::TenantRequired.kind().status(), 400);
        assert_eq!(DbError::PoolTimeout.kind().status(), 503);
        assert_eq!(DbError::StatementTimeout.kind().status(), 504);
        assert_eq!(
            DbError::UniqueViolation(Box::new(ServerError {
                sqlstate: "23505".into(),
                message: String::new(),
                constraint: None,
                table: None,
                column: None,
            }))
            .kind()
            .status(),
            409
        );
        let e = DbError::ParamType {
            index: 2,
            expected: "int8".into(),
        };
        assert_eq!(e.code(), "ParamType");
        assert_eq!(e.to_string(), "parameter $2 must be int8");
    }

    #[test]
    fn value_quoting_messages_are_withheld() {
        for (state, free) in [
            ("22P02", false),
            ("22007", false),
            ("22003", false),
            ("XX000", false),
            ("23505", true),
            ("42P01", false),
            ("42601", false),
            ("3F000", false),
            ("34000", true),
            ("22012", true),
        ] {
            assert_eq!(message_is_value_free(state), free, "{state}");
        }
    }
}
