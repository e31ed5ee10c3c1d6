//! IAM database authentication: [`IamCredentials`] hands out, for each new connection, the
//! endpoint of a base [`CredentialSource`] (fixed configuration, or the database secret with
//! its password ignored) with a fresh-enough IAM authentication token as the password.
//!
//! Tokens are made by `aws_sdk_rds::auth_token::AuthTokenGenerator` with the extension's
//! credentials, region and time source (so tests can fix the time). A token is valid for 15
//! minutes from its signing time; one is reused for new connections until [`REUSE_FOR`] has
//! passed (three minutes of margin for clock skew and the connection attempt itself), then
//! replaced. A rejected token (28P01) makes the pool ask again with `force_refresh`, which
//! signs a new one; a second rejection fails with `AuthFailed`.
//!
//! The token is a credential: it lives only in [`crate::DbCredentials::password`] (redacted by
//! `Debug`, zeroized on drop) and in the cache here, never in an error or a log line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use aws_types::region::Region;
use aws_types::SdkConfig;
use zeroize::Zeroize;

use crate::credentials::{CredentialSource, CredentialsFuture};

/// How long one token is handed to new connections (its validity is 15 minutes).
pub const REUSE_FOR: Duration = Duration::from_secs(12 * 60);

/// Credentials whose password is an IAM authentication token.
pub struct IamCredentials {
    base: Arc<dyn CredentialSource>,
    sdk: SdkConfig,
    region: Region,
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    host: String,
    port: u16,
    username: String,
    signed_at: SystemTime,
    token: String,
}

impl Drop for Cached {
    fn drop(&mut self) {
        self.token.zeroize();
    }
}

impl std::fmt::Debug for IamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamCredentials")
            .field("region", &self.region)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl IamCredentials {
    /// Tokens for the endpoint `base` gives (its password is ignored), signed with `sdk`'s
    /// credentials provider and time source for `region`.
    pub fn new(base: Arc<dyn CredentialSource>, sdk: SdkConfig, region: Region) -> Self {
        Self {
            base,
            sdk,
            region,
            cache: Mutex::new(None),
        }
    }

    /// A token for `host:port` and `username` as of the SDK config's time source. The error
    /// names what failed (credentials, signing), never a credential.
    pub async fn token(&self, host: &str, port: u16, username: &str) -> Result<String, String> {
        let config = TokenConfig::builder()
            .hostname(host)
            .port(u64::from(port))
            .username(username)
            .region(self.region.clone())
            .build()
            .map_err(|e| format!("IAM token configuration: {e}"))?;
        let token = AuthTokenGenerator::new(config)
            .auth_token(&self.sdk)
            .await
            .map_err(|e| {
                // The SDK's errors name the missing credentials or time source; they carry no
                // secret, but keep them short and bounded anyway.
                let mut m = e.to_string();
                m.truncate(200);
                format!("cannot sign an IAM database token: {m}")
            })?;
        Ok(token.as_str().to_owned())
    }

    fn now(&self) -> SystemTime {
        self.sdk
            .time_source()
            .map(|t| t.now())
            .unwrap_or_else(SystemTime::now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        // A poisoned lock only means a panic mid-update of plain data.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CredentialSource for IamCredentials {
    fn credentials(&self, force_refresh: bool) -> CredentialsFuture<'_> {
        Box::pin(async move {
            let mut creds = self.base.credentials(force_refresh).await?;
            let now = self.now();
            if !force_refresh {
                let cache = self.lock();
                if let Some(c) = cache.as_ref().filter(|c| {
                    c.host == creds.host
                        && c.port == creds.port
                        && c.username == creds.username
                        && now
                            .duration_since(c.signed_at)
                            .is_ok_and(|age| age < REUSE_FOR)
                }) {
                    creds.password.zeroize();
                    creds.password = c.token.clone();
                    return Ok(creds);
                }
            }
            let token = self.token(&creds.host, creds.port, &creds.username).await?;
            creds.password.zeroize();
            creds.password = token.clone();
            *self.lock() = Some(Cached {
                host: creds.host.clone(),
                port: creds.port,
                username: creds.username.clone(),
                signed_at: now,
                token,
            });
            Ok(creds)
        })
    }
}
