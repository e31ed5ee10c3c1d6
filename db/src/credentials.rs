//! Where connection credentials come from. The extension implements [`CredentialSource`] over
//! its Secrets Manager cache (or IAM auth tokens); [`StaticCredentials`] serves local runs and
//! [`SwappableCredentials`] lets tests rotate a password at run time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use zeroize::Zeroize;

/// Everything needed to open a connection. The password is zeroized on drop and never shown
/// by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DbCredentials {
    /// Host name or IP address (a path starting with `/` means a Unix socket directory).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub dbname: String,
    /// Role to log in as.
    pub username: String,
    /// Password or IAM authentication token.
    pub password: String,
}

impl fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCredentials")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Drop for DbCredentials {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

/// Boxed future returned by [`CredentialSource::credentials`].
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<DbCredentials, String>> + Send + 'a>>;

/// Supplies credentials for new connections.
///
/// Called for every new connection with `force_refresh = false` (a cached value is expected);
/// when the server rejects the password (SQLSTATE 28P01, e.g. after a rotation) it is called
/// once more with `force_refresh = true` and the connection is retried once. The error string
/// is logged and returned to callers, so it must not contain secret material.
pub trait CredentialSource: Send + Sync {
    /// Current credentials; bypass any cache when `force_refresh`.
    fn credentials(&self, force_refresh: bool) -> CredentialsFuture<'_>;
}

/// Fixed credentials, e.g. for local runs against a developer database.
#[derive(Debug, Clone)]
pub struct StaticCredentials(DbCredentials);

impl StaticCredentials {
    /// Always hands out `creds`.
    pub fn new(creds: DbCredentials) -> Self {
        Self(creds)
    }
}

impl CredentialSource for StaticCredentials {
    fn credentials(&self, _force_refresh: bool) -> CredentialsFuture<'_> {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

/// Credentials whose "published" password can be replaced at run time, with a cache in front
/// that only a forced refresh updates — the shape of a Secrets Manager cache during rotation.
/// Counts forced refreshes so tests can assert on them.
#[derive(Debug, Clone)]
pub struct SwappableCredentials {
    inner: Arc<Mutex<SwapState>>,
}

#[derive(Debug)]
struct SwapState {
    cached: DbCredentials,
    published: DbCredentials,
    forced_refreshes: u64,
}

impl SwappableCredentials {
    /// Starts with `creds` both cached and published.
    pub fn new(creds: DbCredentials) -> Self {
        let state = SwapState {
            cached: creds.clone(),
            published: creds,
            forced_refreshes: 0,
        };
        Self {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    /// Publishes a new password; callers see it only after a forced refresh.
    pub fn publish_password(&self, password: &str) {
        let mut s = self.lock();
        s.published.password.zeroize();
        s.published.password = password.to_owned();
    }

    /// How many times `credentials(true)` was called.
    pub fn forced_refreshes(&self) -> u64 {
        self.lock().forced_refreshes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SwapState> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CredentialSource for SwappableCredentials {
    fn credentials(&self, force_refresh: bool) -> CredentialsFuture<'_> {
        let c = {
            let mut s = self.lock();
            if force_refresh {
                s.forced_refreshes += 1;
                s.cached = s.published.clone();
            }
            s.cached.clone()
        };
        Box::pin(async move { Ok(c) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let c = DbCredentials {
            host: "h".into(),
            port: 5432,
            dbname: "d".into(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?} {:?}", SwappableCredentials::new(c.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
