//! The loopback HTTP listener: accept loop, connection cap, per-connection limits and
//! graceful drain.
//!
//! [`JsonParseErrors`] wraps each connection's socket: a request hyper cannot parse (a head
//! over the read buffer, a malformed request line) is answered by hyper itself, with an
//! empty body; the wrapper turns exactly those answers into the JSON error every other
//! path returns.
//!
//! A hand-written accept loop rather than `axum::serve`, because the loop is where the
//! limits live: a semaphore caps connections (further clients wait in the kernel's accept
//! queue rather than being refused), hyper's read buffer caps the request head, a header
//! read timeout stops slow clients, and shutdown asks every connection to finish its
//! current request and close.
//!
//! The same loop serves loopback TCP (always) and, when `HEARTH_UNIX_SOCKET` is set, a
//! Unix-domain socket beside it ([`Listener`] is what the two have in common). The socket
//! skips the TCP/IP stack: on the bench machine the hop alone was 28% faster at p50
//! (bench/results/report.md, "The hop itself"). It is an option, not the default: AWS's
//! extension and every existing caller speak TCP on port 2773. Same router, so the same
//! token check, limits and answers.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;

/// Hyper refuses read buffers under this size.
const MIN_READ_BUFFER: usize = 8192;

/// Binds `127.0.0.1:port` — loopback only, never a wildcard address.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
}

/// Binds a Unix-domain socket at `path`, readable and writable by this user only.
///
/// A socket file left at `path` by an earlier process (nothing accepts on it any more) is
/// replaced. Anything else there is refused, never removed: a live socket (another
/// process serves it), a regular file, a directory, a symbolic link (which could point
/// the bind, or the removal at shutdown, somewhere else).
pub fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect {shown} ({e}); set HEARTH_UNIX_SOCKET to a path in a writable directory")),
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!("{shown} is in use by another process; set HEARTH_UNIX_SOCKET to another path"));
            }
            std::fs::remove_file(path).map_err(|e| {
                format!("cannot remove the stale socket {shown} ({e}); remove it or set HEARTH_UNIX_SOCKET to another path")
            })?;
        }
        Ok(_) => {
            return Err(format!("{shown} exists and is not a socket; remove it or set HEARTH_UNIX_SOCKET to another path"));
        }
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {shown} ({e}); set HEARTH_UNIX_SOCKET to a path in a writable directory"))?;
    // Owner only. The token stays the gate (Lambda runs the function and its extensions as
    // one user); this keeps other local users out of even trying.
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(path);
        return Err(format!("cannot restrict {shown} to its owner ({e})"));
    }
    Ok(listener)
}

/// What the accept loop needs of a listening socket.
pub trait Listener: Send + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Accepts the next connection.
    fn accept_io(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        let (s, _) = self.accept().await?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

impl Listener for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        Ok(self.accept().await?.0)
    }
}

/// A running listener.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    /// The socket file to remove at shutdown, for a Unix-domain listener.
    socket_file: Option<PathBuf>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    connections: Arc<Semaphore>,
    max_connections: u32,
}

impl Server {
    /// Serves `router` on the TCP `listener` until [`Server::shutdown`].
    pub fn spawn(listener: TcpListener, router: Router, cfg: &ServerConfig) -> Server {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        Self::spawn_on(listener, local_addr, None, router, cfg)
    }

    /// Serves `router` on the Unix-domain `listener` bound at `path` (see [`bind_unix`])
    /// until [`Server::shutdown`], which removes the socket file.
    pub fn spawn_unix(
        listener: UnixListener,
        path: PathBuf,
        router: Router,
        cfg: &ServerConfig,
    ) -> Server {
        let none = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self::spawn_on(listener, none, Some(path), router, cfg)
    }

    fn spawn_on<L: Listener>(
        listener: L,
        local_addr: SocketAddr,
        socket_file: Option<PathBuf>,
        router: Router,
        cfg: &ServerConfig,
    ) -> Server {
        let max_connections = u32::try_from(cfg.max_connections.get()).unwrap_or(u32::MAX);
        let connections = Arc::new(Semaphore::new(max_connections as usize));
        let (stop, stop_rx) = watch::channel(false);
        let read_buffer = cfg.max_header_bytes.get().max(MIN_READ_BUFFER);
        let header_timeout = cfg.request_timeout;
        let task = tokio::spawn(accept_loop(
            listener,
            router,
            connections.clone(),
            stop_rx,
            read_buffer,
            header_timeout,
        ));
        Server {
            local_addr,
            socket_file,
            stop,
            task,
            connections,
            max_connections,
        }
    }

    /// The bound address (`127.0.0.1:0` for a Unix-domain listener).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish, and waits at most `budget`.
    /// Returns whether every connection closed in time.
    pub async fn shutdown(self, budget: Duration) -> bool {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(budget, async {
            let _ = self.task.await;
            // Every connection holds a permit until it closes.
            let _ = self.connections.acquire_many(self.max_connections).await;
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!("shutdown budget ran out with connections still open");
        }
        if let Some(path) = &self.socket_file {
            // The listener is closed: no later client finds a dead socket file.
            let _ = std::fs::remove_file(path);
        }
        drained
    }
}

async fn accept_loop<L: Listener>(
    listener: L,
    router: Router,
    connections: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    read_buffer: usize,
    header_timeout: Duration,
) {
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let stream = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept_io() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let svc = TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(read_buffer)
                .serve_connection(TokioIo::new(JsonParseErrors::new(stream)), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// hyper answers a request it cannot parse by itself — 431 for a head over its read
/// buffer, 400 for a malformed one — with an empty body, and has no hook to change that
/// answer. This wrapper rewrites exactly those answers: a 400 or 431 status line with
/// `content-length: 0`, which no Hearth handler writes (every error of ours carries a JSON
/// body, and the guard answers an oversized head itself, in JSON, below hyper's limit).
/// hyper closes the connection after such an answer, so the longer body cannot
/// desynchronise a later response. Vectored writes are declined so that hyper writes a
/// response head in one call, where it can be recognised.
pub struct JsonParseErrors<T> {
    inner: T,
    /// A replacement being written, how far, and the length of the write it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonParseErrors<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The JSON answer standing in for hyper's empty one, if `head` is one.
fn json_for_canned(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status, error) = if text.starts_with("HTTP/1.1 431 ") || text.starts_with("HTTP/1.0 431 ")
    {
        (
            "431 Request Header Fields Too Large",
            crate::error::ApiError::HeaderTooLarge { limit: 0 },
        )
    } else if text.starts_with("HTTP/1.1 400 ") || text.starts_with("HTTP/1.0 400 ") {
        ("400 Bad Request", crate::error::ApiError::MalformedRequest)
    } else {
        return None;
    };
    let lower = text.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") || !lower.ends_with("\r\n\r\n") {
        return None;
    }
    let message = match &error {
        // hyper's limit is the read buffer, not the configured one: say what to do.
        crate::error::ApiError::HeaderTooLarge { .. } => {
            "request head too large (HEARTH_MAX_HEADER_BYTES); send fewer or shorter headers"
                .to_string()
        }
        e => e.to_string(),
    };
    let body = serde_json::to_string(&hearth::wire::ErrorBody {
        error: hearth::wire::ErrorDetail::new(error.code(), message),
    })
    .ok()?;
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.pending.is_none() {
            match json_for_canned(buf) {
                Some(replacement) => self.pending = Some((replacement, 0, buf.len())),
                None => return std::pin::Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        let this = &mut *self;
        while let Some((bytes, done, _)) = this.pending.as_mut() {
            if *done == bytes.len() {
                break;
            }
            match std::pin::Pin::new(&mut this.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *done += n,
                other => return other,
            }
        }
        // The replacement is out; the write it replaced counts as written.
        let stands_for = this.pending.take().map_or(0, |(_, _, n)| n);
        Poll::Ready(Ok(stands_for))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::{bind_unix, json_for_canned};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    #[tokio::test]
    async fn unix_socket_replaces_only_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("h.sock");

        // Fresh path: bound, a socket, owner-only.
        let live = bind_unix(&path).unwrap_or_else(|e| panic!("{e}"));
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // Another process still serves it: refused, and left in place.
        let e = bind_unix(&path).err().unwrap_or_default();
        assert!(e.contains("in use"), "{e}");
        assert!(path.exists());

        // The server went away without removing it (a crash): the stale file is replaced.
        drop(live);
        assert!(path.exists());
        let _again = bind_unix(&path).unwrap_or_else(|e| panic!("{e}"));

        // A regular file, a directory or a symbolic link is never removed.
        let file = dir.path().join("file");
        std::fs::write(&file, b"keep me").unwrap_or_else(|e| panic!("{e}"));
        let e = bind_unix(&file).err().unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap_or_default(), b"keep me");
        let e = bind_unix(dir.path()).err().unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap_or_else(|e| panic!("{e}"));
        let e = bind_unix(&link).err().unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        assert!(std::fs::symlink_metadata(&link).is_ok());

        // A directory that does not exist: a clear error naming the variable.
        let e = bind_unix(&dir.path().join("no/such/dir.sock"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("HEARTH_UNIX_SOCKET"), "{e}");
    }

    #[test]
    fn only_hyper_s_empty_parse_errors_are_rewritten() {
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let out =
            String::from_utf8(json_for_canned(canned).unwrap_or_default()).unwrap_or_default();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("connection: close\r\n"), "{out}");
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "HeaderTooLarge");
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(json_for_canned(bad).is_some());
        // Our own answers carry a body, and other statuses are never touched.
        for head in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        ] {
            assert!(json_for_canned(head).is_none(), "{:?}", String::from_utf8_lossy(head));
        }
    }
}
