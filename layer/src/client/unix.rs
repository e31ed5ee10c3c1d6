//! The connector for the extension's Unix-domain socket (`HEARTH_UNIX_SOCKET`).
//!
//! hyper-util's pool takes any `tower::Service<Uri>` that yields a connection, and already
//! knows a `TokioIo<UnixStream>` as one; what it lacks is the service that dials a path.
//! The URI's authority is ignored: every request goes to the one socket.
//!
//! Before the token is sent, the connector asks the kernel who serves the socket
//! (`SO_PEERCRED`): only this process's own user, or root, is trusted with it. A socket in
//! a shared directory that some other user bound first (before the extension started, or
//! after it stopped) gets an error instead of the session token.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Dials one Unix-domain socket, within a connect timeout.
#[derive(Clone, Debug)]
pub(crate) struct UnixConnector {
    path: Arc<PathBuf>,
    timeout: Duration,
}

impl UnixConnector {
    pub(crate) fn new(path: &Path, timeout: Duration) -> Self {
        UnixConnector {
            path: Arc::new(path.to_path_buf()),
            timeout,
        }
    }
}

impl tower::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (path, timeout) = (self.path.clone(), self.timeout);
        Box::pin(async move {
            let s = match tokio::time::timeout(timeout, UnixStream::connect(path.as_path())).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(explain(e)),
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connect timed out after {timeout:?}"),
                    ))
                }
            };
            let peer = s.peer_cred()?.uid();
            let me = rustix::process::geteuid().as_raw();
            if peer != me && peer != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "the socket is served by uid {peer}, not by this user (uid {me}) or root: \
                         the token is not sent to it; check HEARTH_UNIX_SOCKET"
                    ),
                ));
            }
            Ok(TokioIo::new(s))
        })
    }
}

/// A connect error with what to do about it (the path is in the client's error already).
fn explain(e: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind::*;
    let hint = match e.kind() {
        NotFound | ConnectionRefused => {
            "no extension serves this socket: set the extension's HEARTH_UNIX_SOCKET to the \
             same path, or unset HEARTH_UNIX_SOCKET for the function to use 127.0.0.1:PORT"
        }
        PermissionDenied => {
            "the socket is owner-only: run the function as the extension's user, or use TCP"
        }
        _ => return e,
    };
    std::io::Error::new(e.kind(), format!("{e}; {hint}"))
}
