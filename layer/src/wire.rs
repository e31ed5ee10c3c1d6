//! Wire types of the extension's HTTP API: one definition, used by the server (the
//! `hearth` extension binary) and by the client in this crate.
//!
//! Field names are camelCase on the wire. Binary values travel as standard base64.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Header carrying the session token, the same one AWS's own secrets extension uses.
pub const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// Default listener port, the same as AWS's secrets extension.
pub const DEFAULT_PORT: u16 = 2773;

/// The variable naming the optional Unix-domain socket, read by the extension and the
/// client alike.
pub const UNIX_SOCKET_VAR: &str = "HEARTH_UNIX_SOCKET";

/// The longest socket path Linux binds (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Whether `path` can name the socket: absolute, not a directory (no trailing `/`), at
/// most [`MAX_SOCKET_PATH`] bytes. The reason when it cannot.
pub fn check_socket_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.ends_with('/') || path.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "an absolute path of at most {MAX_SOCKET_PATH} bytes, not ending in /, is needed (got {} bytes: {path:?})",
            path.len()
        ));
    }
    Ok(())
}

/// Every error response body: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a message that tells the user what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable CamelCase code, e.g. `SecretNotFound`.
    pub code: String,
    /// Human-readable explanation; never contains secret material.
    pub message: String,
    /// Database errors: the server's five-character SQLSTATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// Database errors: the constraint that was violated, when the server names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Database errors: the table the error concerns, when the server names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Database errors: the column the error concerns, when the server names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Database errors whose results could not be returned (`ResultTooLarge`,
    /// `ResultUndecodable`): whether the transaction committed anyway (`true`: do not retry a
    /// write) or was rolled back (`false`: nothing happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<bool>,
}

impl ErrorDetail {
    /// A detail with only a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            sqlstate: None,
            constraint: None,
            table: None,
            column: None,
            committed: None,
        }
    }
}

/// `GET /health` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `"ok"` once the listener serves requests.
    pub status: String,
    /// Crate version of the extension.
    pub version: String,
    /// Whether the background prewarm has finished (successfully or not).
    pub prewarmed: bool,
}

/// Encryption context: string pairs bound to a ciphertext as authenticated data.
pub type EncryptionContext = BTreeMap<String, String>;

/// `POST /v1/kms/encrypt` request. `Debug` shows the plaintext's length only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncryptRequest {
    /// Plaintext, base64.
    pub plaintext: String,
    /// Encryption context bound to the message.
    #[serde(default)]
    pub context: EncryptionContext,
    /// KMS key id or ARN; the configured default key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl std::fmt::Debug for EncryptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptRequest")
            .field("plaintext", &Redacted(self.plaintext.len()))
            .field("context", &self.context)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output: `<redacted N bytes>` (or values).
struct Redacted(usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted {}>", self.0)
    }
}

/// `POST /v1/kms/encrypt` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptResponse {
    /// AWS Encryption SDK message, base64.
    pub ciphertext: String,
}

/// `POST /v1/kms/decrypt` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecryptRequest {
    /// AWS Encryption SDK message, base64.
    pub ciphertext: String,
    /// When given, must equal the message's encryption context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<EncryptionContext>,
}

/// `POST /v1/kms/decrypt` response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptResponse {
    /// Plaintext, base64.
    pub plaintext: String,
    /// The message's encryption context, without the reserved `aws-crypto-` entries (the
    /// signature's public key of signed suites).
    pub context: EncryptionContext,
    /// ARN of the KMS key whose encrypted data key opened the message.
    #[serde(default)]
    pub key_arn: String,
}

impl std::fmt::Debug for DecryptResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptResponse")
            .field("plaintext", &"<redacted>")
            .field("context", &self.context)
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

/// `POST /v1/kms/data-key` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataKeyRequest {
    /// Encryption context the data key is generated under.
    #[serde(default)]
    pub context: EncryptionContext,
    /// KMS key id or ARN; the configured default key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// `POST /v1/kms/data-key` response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataKeyResponse {
    /// Plaintext data key, base64. Handle with care.
    pub plaintext: String,
    /// The data key encrypted by KMS, base64.
    pub ciphertext_blob: String,
    /// ARN of the KMS key that encrypted it.
    pub key_id: String,
}

impl std::fmt::Debug for DataKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyResponse")
            .field("plaintext", &"<redacted>")
            .field("ciphertext_blob", &self.ciphertext_blob)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// One SQL statement with its positional parameters (`$1`, `$2`, ...). `Debug` shows the
/// SQL and the number of parameters, never their values (they may be card data).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Statement {
    /// SQL text with `$n` placeholders.
    pub sql: String,
    /// Parameter values, converted to the types the server reports for the statement.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statement")
            .field("sql", &self.sql)
            .field("params", &Redacted(self.params.len()))
            .finish()
    }
}

/// `POST /v1/db/query` request. `Debug` redacts the parameter values as [`Statement`] does.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryRequest {
    /// SQL text with `$n` placeholders.
    pub sql: String,
    /// Parameter values.
    #[serde(default)]
    pub params: Vec<serde_json::Value>,
    /// Tenant id set as the RLS context for this request only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Extra transaction-local settings, each name on the configured allow-list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// Shape of each result row; `object` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_mode: Option<RowMode>,
    /// Form of `int8` and `numeric` values in the results; the extension's default
    /// (`HEARTH_DB_NUMBERS`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<NumberMode>,
}

/// Shape of result rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RowMode {
    /// Each row is an object keyed by column name. A result with two columns of the same name
    /// (`SELECT p.id, t.id`) is refused with `DuplicateColumn` before it runs, never silently
    /// merged: alias the columns or ask for `array`.
    #[default]
    Object,
    /// Each row is an array of values in the order of `columns`; duplicate names are fine.
    Array,
}

/// Form of `int8` and `numeric` result values (inside `json`/`jsonb` values numbers stay
/// numbers either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NumberMode {
    /// Exact JSON numbers (`9007199254740993`, `1.50`): exact for parsers that keep them, but
    /// JavaScript's `JSON.parse` and Python's `json.loads` (for floats) round them.
    #[default]
    Number,
    /// Decimal strings (`"9007199254740993"`, `"1.50"`), exact in every language.
    String,
}

impl std::fmt::Debug for QueryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRequest")
            .field("sql", &self.sql)
            .field("params", &Redacted(self.params.len()))
            .field("tenant", &self.tenant)
            .field("context", &self.context)
            .field("row_mode", &self.row_mode)
            .field("numbers", &self.numbers)
            .finish()
    }
}

/// A result column: name and Postgres type name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Postgres type name, e.g. `int8`, `text`, `_int4`.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Result of one statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// Result columns (empty for statements that return no rows).
    pub columns: Vec<Column>,
    /// Rows: objects keyed by column name, or arrays in column order (see [`RowMode`]).
    pub rows: Vec<serde_json::Value>,
    /// Rows returned, or rows affected for INSERT/UPDATE/DELETE.
    pub row_count: u64,
}

/// `POST /v1/db/transaction` request: all statements commit together or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionRequest {
    /// Tenant id set as the RLS context for this transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Extra transaction-local settings, each name on the configured allow-list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// Shape of each result row; `object` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_mode: Option<RowMode>,
    /// Form of `int8` and `numeric` values in the results; the extension's default
    /// (`HEARTH_DB_NUMBERS`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers: Option<NumberMode>,
    /// Statements, run in order.
    pub statements: Vec<Statement>,
}

/// `POST /v1/db/transaction` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResponse {
    /// One result per statement, in order.
    pub results: Vec<QueryResponse>,
}

/// `POST /v1/warm` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmResponse {
    /// What was warmed, e.g. `{"secrets": 2, "dbConnections": 2, "dataKeys": 1}`.
    pub warmed: BTreeMap<String, u64>,
    /// Problems met while warming (never fatal).
    pub errors: Vec<String>,
    /// Wall time spent, in milliseconds.
    pub duration_ms: u64,
}

/// Secrets Manager's GetSecretValue shape, as AWS's secrets extension returns it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretValue {
    /// Secret ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Secret name.
    pub name: String,
    /// Version id.
    pub version_id: String,
    /// String value, when the secret is a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<String>,
    /// Binary value, base64, when the secret is binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<String>,
    /// Staging labels attached to this version.
    #[serde(default)]
    pub version_stages: Vec<String>,
    /// Creation date as an RFC 3339 timestamp (AWS's extension uses the same field name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("arn", &self.arn)
            .field("name", &self.name)
            .field("version_id", &self.version_id)
            .field(
                "secret_string",
                &self.secret_string.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secret_binary",
                &self.secret_binary.as_ref().map(|_| "<redacted>"),
            )
            .field("version_stages", &self.version_stages)
            .finish()
    }
}

/// Parameter Store's GetParameter response, as AWS's extension returns it from
/// `GET /systemsmanager/parameters/get`: the SSM API's JSON, field for field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterResponse {
    /// The parameter.
    #[serde(rename = "Parameter")]
    pub parameter: Parameter,
}

/// One parameter, in the SSM API's JSON casing (`LastModifiedDate` is epoch seconds, a
/// number, as the API sends it).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Parameter {
    /// Parameter ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// `text`, `aws:ec2:image` or `aws:ssm:integration`.
    #[serde(default)]
    pub data_type: String,
    /// Last change, in seconds since the epoch (fractional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date: Option<f64>,
    /// Parameter name (without the selector).
    pub name: String,
    /// The `:version` or `:label` asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// For `/aws/reference/secretsmanager/` names: the secret's metadata, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_result: Option<String>,
    /// `String`, `StringList` or `SecureString`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The value (a SecureString read without decryption: its ciphertext).
    pub value: String,
    /// Version number.
    pub version: i64,
}

impl std::fmt::Debug for ParameterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parameter.fmt(f)
    }
}

impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameter")
            .field("arn", &self.arn)
            .field("name", &self.name)
            .field("type", &self.kind)
            .field("version", &self.version)
            .field("value", &"<redacted>")
            .field(
                "source_result",
                &self.source_result.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_redacts_value() {
        let v = SecretValue {
            arn: "arn".into(),
            name: "n".into(),
            version_id: "v".into(),
            secret_string: Some("hunter2".into()),
            secret_binary: None,
            version_stages: vec!["AWSCURRENT".into()],
            created_date: None,
        };
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn request_debug_redacts_plaintext_and_params() {
        let e = EncryptRequest {
            plaintext: "c2VjcmV0LXBsYWludGV4dA==".into(),
            context: EncryptionContext::from([("tenant".into(), "t".into())]),
            key_id: None,
        };
        let q = QueryRequest {
            sql: "insert into cards values ($1)".into(),
            params: vec![serde_json::json!("4111111111111111")],
            tenant: Some("t".into()),
            context: BTreeMap::new(),
            row_mode: None,
            numbers: None,
        };
        let st = Statement {
            sql: "select $1".into(),
            params: vec![serde_json::json!("4111111111111111")],
        };
        let tx = TransactionRequest {
            statements: vec![st.clone()],
            tenant: None,
            context: BTreeMap::new(),
            row_mode: None,
            numbers: None,
        };
        for shown in [
            format!("{e:?} {e:#?}"),
            format!("{q:?} {q:#?}"),
            format!("{st:?}"),
            format!("{tx:?}"),
        ] {
            assert!(!shown.contains("c2VjcmV0"), "{shown}");
            assert!(!shown.contains("4111"), "{shown}");
            assert!(shown.contains("<redacted"), "{shown}");
        }
    }

    #[test]
    fn query_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<QueryRequest>(r#"{"sql":"select 1","tennant":"a"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn error_body_shape() {
        let body = ErrorBody {
            error: ErrorDetail::new("SecretNotFound", "m"),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap_or_default(),
            serde_json::json!({"error":{"code":"SecretNotFound","message":"m"}})
        );
    }
}
