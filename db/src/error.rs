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
    #[error("SQL error {sqlstate}: {message}")]
    Sql {
        /// Five-character SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// Row-Level Security or a privilege check refused the statement (SQLSTATE 42501).
    #[error("policy violation: {message}")]
    PolicyViolation {
        /// The server's message.
        message: String,
    },
    /// A unique constraint was violated (SQLSTATE 23505).
    #[error("unique violation: {message}")]
    UniqueViolation {
        /// The server's message.
        message: String,
    },
    /// Another integrity constraint was violated (SQLSTATE class 23).
    #[error("constraint violation {sqlstate}: {message}")]
    ConstraintViolation {
        /// Five-character SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// Serialization failure or deadlock (SQLSTATE class 40); the request may be retried.
    #[error("transaction conflict {sqlstate}: {message}")]
    SerializationFailure {
        /// Five-character SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
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
    /// The role is superuser or BYPASSRLS and `allow_privileged_role` is off.
    #[error(
        "database role {role:?} is {what}, which ignores Row-Level Security; use an ordinary \
         role or set allow_privileged_role"
    )]
    PrivilegedRole {
        /// Role name.
        role: String,
        /// `superuser` or `BYPASSRLS`.
        what: &'static str,
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
            Self::Sql { .. } => "SqlError",
            Self::PolicyViolation { .. } => "PolicyViolation",
            Self::UniqueViolation { .. } => "UniqueViolation",
            Self::ConstraintViolation { .. } => "ConstraintViolation",
            Self::SerializationFailure { .. } => "SerializationFailure",
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
            | Self::Sql { .. } => ErrorKind::BadRequest,
            Self::PolicyViolation { .. } => ErrorKind::Forbidden,
            Self::UniqueViolation { .. }
            | Self::ConstraintViolation { .. }
            | Self::SerializationFailure { .. } => ErrorKind::Conflict,
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
            Self::Sql { sqlstate, .. }
            | Self::ConstraintViolation { sqlstate, .. }
            | Self::SerializationFailure { sqlstate, .. }
            | Self::AuthFailed { sqlstate } => Some(sqlstate),
            Self::PolicyViolation { .. } => Some("42501"),
            Self::UniqueViolation { .. } => Some("23505"),
            Self::StatementTimeout => Some("57014"),
            _ => None,
        }
    }

    /// True when the error leaves the connection in an unknown state or shows it is broken,
    /// so it must not go back to the pool.
    pub(crate) fn connection_suspect(&self) -> bool {
        matches!(
            self,
            Self::DbUnavailable(_) | Self::StatementTimeout | Self::AuthFailed { .. }
        )
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
        let sqlstate = db.code().code().to_owned();
        let message = db.message().to_owned();
        match sqlstate.as_str() {
            "42501" => Self::PolicyViolation { message },
            "23505" => Self::UniqueViolation { message },
            "57014" => Self::StatementTimeout,
            "28P01" | "28000" => Self::AuthFailed { sqlstate },
            // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped
            "57P01" | "57P02" | "57P03" | "57P04" => Self::DbUnavailable(message),
            s if s.starts_with("23") => Self::ConstraintViolation { sqlstate, message },
            s if s.starts_with("40") => Self::SerializationFailure { sqlstate, message },
            // connection exceptions, insufficient resources, system errors
            s if s.starts_with("08") || s.starts_with("53") || s.starts_with("58") => {
                Self::DbUnavailable(format!("{sqlstate}: {message}"))
            }
            _ => Self::Sql { sqlstate, message },
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
            DbError::UniqueViolation {
                message: String::new()
            }
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
}
