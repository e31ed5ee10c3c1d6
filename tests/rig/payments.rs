//! The stack the example payments function (`functions/payments`) runs on: PostgreSQL with
//! the function's migrations and a SCRAM login role, moto with a KMS key and the database
//! secret in RDS JSON form, and the environment that points the `hearth` extension at them.
//! Shared by tests/tests/payments.rs and the demo (tests/bin/demo.rs).

use std::path::PathBuf;

use serde_json::json;

use crate::moto::Moto;
use crate::postgres::{ident, PgCluster};
use crate::workspace_root;

/// Database name.
pub const DB: &str = "payments";
/// Login role Hearth connects as (ordinary: not superuser, not BYPASSRLS).
pub const ROLE: &str = "payments_login";
/// Secrets Manager secret holding the database credentials.
pub const SECRET_ID: &str = "payments/db";

/// The running stack; everything stops on drop.
pub struct PaymentsStack {
    /// PostgreSQL.
    pub pg: PgCluster,
    /// moto (KMS, Secrets Manager).
    pub moto: Moto,
    /// ARN of the KMS key cards are encrypted under.
    pub key_arn: String,
}

impl std::fmt::Debug for PaymentsStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsStack")
            .field("pg_port", &self.pg.port())
            .field("moto", &self.moto.endpoint())
            .finish()
    }
}

/// The migrations, in file-name order.
pub fn migrations() -> Vec<(String, String)> {
    let dir = workspace_root().join("functions/payments/migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let sql =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                sql,
            )
        })
        .collect()
}

impl PaymentsStack {
    /// Starts Postgres and moto and provisions them; `password` is the role's first password.
    pub async fn start(password: &str) -> PaymentsStack {
        let pg = PgCluster::start();
        pg.create_role(ROLE, password).await;
        pg.create_database(DB, ROLE).await;
        let admin = pg.admin_on(DB).await;
        for (name, sql) in migrations() {
            admin
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("migration {name}: {e}"));
        }
        admin
            .batch_execute(&format!("GRANT payments_app TO {}", ident(ROLE)))
            .await
            .unwrap_or_else(|e| panic!("grant: {e}"));

        let moto = Moto::start();
        let key_arn = moto
            .kms_client()
            .await
            .create_key()
            .description("hearth payments cards")
            .send()
            .await
            .ok()
            .and_then(|k| k.key_metadata)
            .and_then(|m| m.arn)
            .unwrap_or_else(|| panic!("moto CreateKey failed"));
        moto.secrets_client()
            .await
            .create_secret()
            .name(SECRET_ID)
            .secret_string(Self::secret_json(&pg, password))
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto CreateSecret: {e}"));
        PaymentsStack { pg, moto, key_arn }
    }

    fn secret_json(pg: &PgCluster, password: &str) -> String {
        json!({"engine": "postgres", "host": pg.host(), "port": pg.port(), "dbname": DB,
               "username": ROLE, "password": password})
        .to_string()
    }

    /// Environment of the execution environment (the extension and the function share it,
    /// as under Lambda): moto's endpoint and credentials plus Hearth's settings.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        for (k, v) in [
            ("HEARTH_KMS_KEY_ID", self.key_arn.as_str()),
            ("HEARTH_DB_SECRET_ID", SECRET_ID),
            ("HEARTH_DB_TLS", "disable"),
            ("HEARTH_SECRETS_PREFETCH", SECRET_ID),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    /// Rotates the database password the way a rotation Lambda does: the new secret version
    /// staged AWSPENDING, the role's password changed, then AWSCURRENT moved to the new
    /// version. Open connections keep working; new ones need the new password.
    pub async fn rotate_password(&self, new_password: &str) {
        let sm = self.moto.secrets_client().await;
        let current = sm
            .describe_secret()
            .secret_id(SECRET_ID)
            .send()
            .await
            .ok()
            .and_then(|d| {
                d.version_ids_to_stages?
                    .into_iter()
                    .find_map(|(id, stages)| stages.iter().any(|s| s == "AWSCURRENT").then_some(id))
            })
            .unwrap_or_else(|| panic!("no AWSCURRENT version"));
        let pending = sm
            .put_secret_value()
            .secret_id(SECRET_ID)
            .secret_string(Self::secret_json(&self.pg, new_password))
            .version_stages("AWSPENDING")
            .send()
            .await
            .ok()
            .and_then(|r| r.version_id)
            .unwrap_or_else(|| panic!("PutSecretValue failed"));
        self.pg.set_password(ROLE, new_password).await;
        sm.update_secret_version_stage()
            .secret_id(SECRET_ID)
            .version_stage("AWSCURRENT")
            .move_to_version_id(&pending)
            .remove_from_version_id(&current)
            .send()
            .await
            .unwrap_or_else(|e| panic!("UpdateSecretVersionStage: {e}"));
    }
}

/// The payments function binary (built by `cargo build -p hearth-payments`).
pub fn payments_bin() -> PathBuf {
    crate::target_bin("hearth-payments")
}
