//! The connector for the extension's Unix-domain socket (`HEARTH_UNIX_SOCKET`).
//!
//! hyper-util's pool takes any `tower::Service<Uri>` that yields a connection, and already
//! knows a `TokioIo<UnixStream>` as one; what it lacks is the service that dials a path.
//! The URI's authority is ignored: every request goes to the one socket.

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
            match tokio::time::timeout(timeout, UnixStream::connect(path.as_path())).await {
                Ok(Ok(s)) => Ok(TokioIo::new(s)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )),
            }
        })
    }
}
