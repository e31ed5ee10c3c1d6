//! The HTTP listener's section: port, token, connection and size limits, timeouts.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hearth::wire::{DEFAULT_PORT, MAX_SOCKET_PATH};

use super::reader::{Reader, Var};

/// The listener's variables.
pub const VARS: &[Var] = &[
    Var::new("HEARTH_PORT", "2773", "Loopback port of the HTTP API.")
        .alias(&["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"]),
    Var::new("HEARTH_TOKEN", "value of AWS_SESSION_TOKEN", "Value the X-Aws-Parameters-Secrets-Token header must carry (set it where AWS_SESSION_TOKEN is empty or unset, as under `sam local invoke` with long-term keys)."),
    Var::new("HEARTH_UNIX_SOCKET", "(off)", "Absolute path of a Unix-domain socket to serve the same API on, beside the TCP port (e.g. /tmp/hearth.sock; Lambda's /tmp is shared by the function and its extensions). The token is still required. `hearth::Client` uses it when the function has the same variable."),
    Var::new("HEARTH_MAX_CONNECTIONS", "64", "Concurrent HTTP connections served."),
    Var::new("HEARTH_MAX_BODY_BYTES", "1048576", "Largest request body accepted (413 beyond)."),
    Var::new("HEARTH_MAX_HEADER_BYTES", "16384", "Largest request head accepted (431 beyond)."),
    Var::new("HEARTH_REQUEST_TIMEOUT", "10s", "Time to read a request (head and body; 408 beyond) and to handle it."),
];

/// HTTP listener settings.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Loopback port.
    pub port: u16,
    /// Expected value of the token header.
    pub token: String,
    /// A Unix-domain socket served beside the port, when set.
    pub unix_socket: Option<PathBuf>,
    /// Concurrent connections served; further ones wait in the accept queue.
    pub max_connections: NonZeroUsize,
    /// Largest request body accepted.
    pub max_body_bytes: NonZeroUsize,
    /// Largest request head (request line plus headers) accepted.
    pub max_header_bytes: NonZeroUsize,
    /// Time allowed to read a request head, and to handle one request.
    pub request_timeout: Duration,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("port", &self.port)
            .field("token", &"<redacted>")
            .field("unix_socket", &self.unix_socket)
            .field("max_connections", &self.max_connections)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// What a missing or empty token is told: both variables, and what to set.
const TOKEN_HELP: &str = "the API token comes from HEARTH_TOKEN, else AWS_SESSION_TOKEN (which \
     Lambda sets). Set HEARTH_TOKEN to a random value and send it in the \
     X-Aws-Parameters-Secrets-Token header; under AWS's Runtime Interface Emulator \
     (`sam local invoke`) started with long-term keys AWS_SESSION_TOKEN is empty, so pass \
     HEARTH_TOKEN (or AWS_SESSION_TOKEN) to the container";

/// Reads the listener's section.
pub fn read(r: &mut Reader<'_>) -> ServerConfig {
    let port = r.parse(
        "HEARTH_PORT",
        DEFAULT_PORT,
        "an integer port from 1 to 65535",
        |s| u16::from_str(s).ok().filter(|p| *p != 0),
    );
    let env = r.env;
    let (var, value) = match env.get("HEARTH_TOKEN") {
        Some(t) => ("HEARTH_TOKEN", Some(t)),
        None => ("AWS_SESSION_TOKEN", env.get("AWS_SESSION_TOKEN")),
    };
    // The token is never echoed: it is a credential.
    let token = match value {
        Some(t) if !t.trim().is_empty() => t.to_string(),
        Some(_) => {
            r.problem("HEARTH_TOKEN", format!("{var} is empty; {TOKEN_HELP}"));
            String::new()
        }
        None => {
            r.problem(
                "HEARTH_TOKEN",
                format!("neither HEARTH_TOKEN nor AWS_SESSION_TOKEN is set; {TOKEN_HELP}"),
            );
            String::new()
        }
    };
    let unix_socket = r.parse(
        "HEARTH_UNIX_SOCKET",
        None,
        &format!("an absolute path of at most {MAX_SOCKET_PATH} bytes, or empty for none"),
        parse_socket_path,
    );
    ServerConfig {
        port,
        token,
        unix_socket,
        max_connections: r.size("HEARTH_MAX_CONNECTIONS", 64, 4096),
        max_body_bytes: r.size("HEARTH_MAX_BODY_BYTES", 1 << 20, 64 << 20),
        max_header_bytes: r.size("HEARTH_MAX_HEADER_BYTES", 16 << 10, 1 << 20),
        request_timeout: r.duration(
            "HEARTH_REQUEST_TIMEOUT",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(900),
        ),
    }
}

/// `Some(None)` for empty (no socket), `Some(Some(path))` for a path that can name one.
fn parse_socket_path(s: &str) -> Option<Option<PathBuf>> {
    if s.is_empty() {
        return Some(None);
    }
    hearth::wire::check_socket_path(s)
        .ok()
        .map(|()| Some(PathBuf::from(s)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::{Config, Env};

    fn server(pairs: &[(&str, &str)]) -> Result<super::ServerConfig, String> {
        let mut all = vec![("AWS_SESSION_TOKEN", "t")];
        all.extend_from_slice(pairs);
        let env = Env::from_pairs(all.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_env(&env)
            .map(|c| c.server)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn unix_socket_is_off_unless_an_absolute_path_that_fits() {
        assert_eq!(server(&[]).unwrap().unix_socket, None);
        assert_eq!(
            server(&[("HEARTH_UNIX_SOCKET", " ")]).unwrap().unix_socket,
            None
        );
        let on = server(&[("HEARTH_UNIX_SOCKET", "/tmp/hearth.sock")]).unwrap();
        assert_eq!(
            on.unix_socket.as_deref(),
            Some(std::path::Path::new("/tmp/hearth.sock"))
        );
        let long = format!("/tmp/{}", "s".repeat(hearth::wire::MAX_SOCKET_PATH));
        for bad in ["hearth.sock", "./tmp/h.sock", "/tmp/", long.as_str()] {
            let e = server(&[("HEARTH_UNIX_SOCKET", bad)]).unwrap_err();
            assert!(
                e.contains("HEARTH_UNIX_SOCKET") && e.contains("absolute path"),
                "{bad}: {e}"
            );
        }
    }
}
