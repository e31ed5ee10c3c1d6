//! [`ClientBuilder`]: where the client finds the extension (port, or Unix-domain socket)
//! and how it proves it is the function of this environment (token), from the environment
//! or set explicitly.

use std::path::PathBuf;
use std::time::Duration;

use super::error::Error;
use super::Client;
use crate::wire::DEFAULT_PORT;

/// Default time allowed for one request, response body included. Longer than the
/// extension's own default request timeout (10 s), so the extension's `RequestTimeout`
/// answer arrives before the client gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Default connect timeout: the extension is on loopback, so a connect either succeeds at
/// once or the extension is not there.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds a [`Client`]. `Client::from_env()` is `ClientBuilder::from_env()?.build()`.
#[derive(Clone)]
pub struct ClientBuilder {
    pub(super) port: u16,
    pub(super) unix_socket: Option<PathBuf>,
    pub(super) token: Option<String>,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) max_idle_connections: usize,
    pub(super) max_response_bytes: usize,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("port", &self.port)
            .field("unix_socket", &self.unix_socket)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_connections", &self.max_idle_connections)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            port: DEFAULT_PORT,
            unix_socket: None,
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            // One is enough for the usual one-invocation-at-a-time function; a few more for
            // functions that fan out. Each idle connection holds one of the extension's
            // connection slots (HEARTH_MAX_CONNECTIONS), so keep it small.
            max_idle_connections: 4,
            max_response_bytes: 16 << 20,
        }
    }
}

impl ClientBuilder {
    /// Defaults: port 2773, no token, 15 s timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings from the process environment, the same variables the extension reads:
    /// port from `HEARTH_PORT`, else `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT`, else 2773;
    /// the Unix-domain socket from `HEARTH_UNIX_SOCKET` when it is set (the extension
    /// serves it beside the port; Lambda gives the function and its extensions the same
    /// variables, so one setting switches both); token from `HEARTH_TOKEN`, else
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`ClientBuilder::from_env`], reading variables through `get` (for tests, and for
    /// callers that keep their configuration elsewhere).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut b = Self::default();
        let port = [
            ("HEARTH_PORT", get("HEARTH_PORT")),
            (
                "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT",
                get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"),
            ),
        ]
        .into_iter()
        .find_map(|(name, v)| v.filter(|v| !v.is_empty()).map(|v| (name, v)));
        if let Some((variable, v)) = port {
            b.port = match v.trim().parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(Error::Config {
                        variable,
                        message: "must be a port number from 1 to 65535".into(),
                    })
                }
            };
        }
        b.unix_socket = get(crate::wire::UNIX_SOCKET_VAR)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        b.token = get("HEARTH_TOKEN")
            .filter(|t| !t.is_empty())
            .or_else(|| get("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()));
        Ok(b)
    }

    /// Port of the extension on 127.0.0.1.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Talk to the extension over the Unix-domain socket at `path` (an absolute path; the
    /// extension's `HEARTH_UNIX_SOCKET`) instead of TCP. Skips the TCP/IP stack: faster
    /// per request, see the crate's bench report.
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.unix_socket = Some(path.into());
        self
    }

    /// Talk to the extension over loopback TCP (the default), undoing
    /// [`ClientBuilder::unix_socket`] or a `HEARTH_UNIX_SOCKET` read from the environment.
    pub fn tcp(mut self) -> Self {
        self.unix_socket = None;
        self
    }

    /// Value of the `X-Aws-Parameters-Secrets-Token` header.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Time allowed for one request, response included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time allowed to open a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Idle keep-alive connections kept open to the extension.
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.max_idle_connections = n;
        self
    }

    /// Largest response body accepted.
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// Checks the settings and builds the client. No connection is opened yet.
    ///
    /// Must be called inside a Tokio runtime (the connection pool spawns its tasks there).
    pub fn build(self) -> Result<Client, Error> {
        if self.port == 0 {
            return Err(Error::Config {
                variable: "port",
                message: "must be from 1 to 65535".into(),
            });
        }
        if let Some(p) = &self.unix_socket {
            let checked = match p.to_str() {
                Some(s) => crate::wire::check_socket_path(s),
                None => Err("the path is not UTF-8".to_string()),
            };
            if let Err(why) = checked {
                return Err(Error::Config {
                    variable: crate::wire::UNIX_SOCKET_VAR,
                    message: format!(
                        "{why}; use the extension's HEARTH_UNIX_SOCKET, or unset it for TCP"
                    ),
                });
            }
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config {
                variable: "timeout",
                message: "timeouts must be greater than zero".into(),
            });
        }
        if let Some(t) = &self.token {
            if hyper::header::HeaderValue::from_str(t).is_err() {
                return Err(Error::Config {
                    variable: "token",
                    message: "must be visible ASCII (a header value)".into(),
                });
            }
        }
        Ok(Client::from_builder(self))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn env_defaults_and_precedence() {
        let b = ClientBuilder::from_vars(vars(&[])).unwrap();
        assert_eq!(b.port, 2773);
        assert!(b.token.is_none());

        let b = ClientBuilder::from_vars(vars(&[
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2999"),
            ("AWS_SESSION_TOKEN", "session"),
        ]))
        .unwrap();
        assert_eq!((b.port, b.token.as_deref()), (2999, Some("session")));

        let b = ClientBuilder::from_vars(vars(&[
            ("HEARTH_PORT", "3000"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "2999"),
            ("HEARTH_TOKEN", "explicit"),
            ("AWS_SESSION_TOKEN", "session"),
        ]))
        .unwrap();
        assert_eq!((b.port, b.token.as_deref()), (3000, Some("explicit")));
    }

    #[test]
    fn bad_port_names_the_variable() {
        let e = ClientBuilder::from_vars(vars(&[("HEARTH_PORT", "http")])).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Config {
                    variable: "HEARTH_PORT",
                    ..
                }
            ),
            "{e}"
        );
        let e = ClientBuilder::from_vars(vars(&[("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "0")]))
            .unwrap_err();
        assert!(e
            .to_string()
            .contains("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"));
    }

    #[test]
    fn unix_socket_from_env_and_explicit() {
        let b = ClientBuilder::from_vars(vars(&[("HEARTH_UNIX_SOCKET", "/tmp/h.sock")])).unwrap();
        assert_eq!(
            b.unix_socket.as_deref(),
            Some(std::path::Path::new("/tmp/h.sock"))
        );
        let b = ClientBuilder::from_vars(vars(&[("HEARTH_UNIX_SOCKET", "")])).unwrap();
        assert!(b.unix_socket.is_none());
        assert!(ClientBuilder::new()
            .unix_socket("/tmp/h.sock")
            .tcp()
            .unix_socket
            .is_none());
    }

    #[tokio::test]
    async fn relative_unix_socket_is_refused() {
        let e = ClientBuilder::new()
            .unix_socket("h.sock")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("HEARTH_UNIX_SOCKET"), "{e}");
        let c = ClientBuilder::new()
            .unix_socket("/tmp/h.sock")
            .build()
            .unwrap();
        assert_eq!(c.addr(), "unix:/tmp/h.sock");
    }

    #[test]
    fn debug_redacts_token() {
        let b = ClientBuilder::new().token("s3cr3t");
        let shown = format!("{b:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
