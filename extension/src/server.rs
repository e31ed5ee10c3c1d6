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
//! Unix-domain socket beside it: one loop, so one cap for both (a permit is taken before
//! accepting from whichever socket is ready first) and the same router, token check and
//! limits. The socket skips the TCP/IP stack, but the gain is modest: through
//! `hearth::Client` 6-16% lower p50 on the bench machine, and on the bare hop anywhere from
//! -26% to +28% across runs and machines (bench/results/report.md, "The hop itself"). So
//! it is an option, not the default: AWS's extension and every existing caller speak TCP on
//! port 2773.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;

/// Hyper refuses read buffers under this size.
const MIN_READ_BUFFER: usize = 8192;

/// How long the stale-socket probe waits for a connect to a socket file already there.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Binds `127.0.0.1:port` — loopback only, never a wildcard address.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
}

/// The socket file this process bound: removed only while it is still that file.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode. Exact while the listener is open: the socket holds its inode, so
    /// no other file can get that number meanwhile (once closed, the number is reused at
    /// once). Hence [`SocketFile::remove`] is called before the listener closes.
    id: (u64, u64),
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl SocketFile {
    /// Removes the file if it is still the socket this process bound (not one another
    /// process bound there since, nor anything put in its place). Call it while the
    /// listener is still open (see `id`).
    pub fn remove(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if file_id(&m) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a Unix-domain socket at `path`, readable and writable by this user only.
///
/// A socket file left at `path` by an earlier process (a connect to it is refused) is
/// replaced. Anything else there is refused, never removed: a live socket (another
/// process serves it, or its queue is full), a socket this user may not probe, a regular
/// file, a directory, a symbolic link (which could point the bind somewhere else).
pub async fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    let shown = path.display();
    let elsewhere = "set HEARTH_UNIX_SOCKET to another path";
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "cannot inspect {shown} ({e}); set HEARTH_UNIX_SOCKET to a path in a writable directory"
            ))
        }
        Ok(m) if m.file_type().is_socket() => {
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await
            {
                // Gone since the lstat: nothing to replace.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(|e| {
                        format!("cannot remove the stale socket {shown} ({e}); remove it or {elsewhere}")
                    })?;
                }
                Ok(Err(e)) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    return Err(format!(
                        "{shown} is a socket this process cannot probe ({e}); remove it or {elsewhere}"
                    ));
                }
                // Connected, or a full queue, or no answer: someone serves it.
                _ => return Err(format!("{shown} is in use by another process; {elsewhere}")),
            }
        }
        Ok(_) => {
            return Err(format!(
                "{shown} exists and is not a socket; remove it or {elsewhere}"
            ));
        }
    }
    // Owner-only from the moment it exists: bind under a umask that leaves no group or
    // other bits, rather than chmod the path afterwards (a window, and a path that could
    // be swapped). Init is the only thing creating files at this point.
    let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(umask);
    let listener = bound.map_err(|e| {
        format!("cannot listen on {shown} ({e}); set HEARTH_UNIX_SOCKET to a path in a writable directory")
    })?;
    let m = std::fs::symlink_metadata(path)
        .map_err(|e| format!("{shown} vanished after bind ({e}); {elsewhere}"))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: file_id(&m),
    };
    if !m.file_type().is_socket() || m.mode() & 0o077 != 0 {
        file.remove();
        drop(listener);
        return Err(format!(
            "{shown} was not created owner-only ({:o}); {elsewhere}",
            m.mode() & 0o777
        ));
    }
    Ok((listener, file))
}

/// A running listener.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    connections: Arc<Semaphore>,
    max_connections: u32,
}

impl Server {
    /// Serves `router` on the TCP `listener` until [`Server::shutdown`].
    pub fn spawn(listener: TcpListener, router: Router, cfg: &ServerConfig) -> Server {
        Self::spawn_with_unix(listener, None, router, cfg)
    }

    /// Serves `router` on the TCP `listener` and, if given, on the Unix-domain listener
    /// bound by [`bind_unix`], under one connection cap, until [`Server::shutdown`] (which
    /// removes the socket file).
    pub fn spawn_with_unix(
        listener: TcpListener,
        unix: Option<(UnixListener, SocketFile)>,
        router: Router,
        cfg: &ServerConfig,
    ) -> Server {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let max_connections = u32::try_from(cfg.max_connections.get()).unwrap_or(u32::MAX);
        let connections = Arc::new(Semaphore::new(max_connections as usize));
        let (stop, stop_rx) = watch::channel(false);
        let conn = ConnSettings {
            router,
            stop: stop_rx.clone(),
            read_buffer: cfg.max_header_bytes.get().max(MIN_READ_BUFFER),
            header_timeout: cfg.request_timeout,
        };
        let task = tokio::spawn(accept_loop(
            listener,
            unix,
            connections.clone(),
            stop_rx,
            conn,
        ));
        Server {
            local_addr,
            stop,
            task,
            connections,
            max_connections,
        }
    }

    /// The bound TCP address.
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
        drained
    }
}

/// What every connection is served with.
#[derive(Clone)]
struct ConnSettings {
    router: Router,
    stop: watch::Receiver<bool>,
    read_buffer: usize,
    header_timeout: Duration,
}

/// Accepts from the Unix-domain listener, or never when there is none.
async fn accept_unix(unix: Option<&UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match unix {
        Some(l) => Ok(l.accept().await?.0),
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    tcp: TcpListener,
    unix: Option<(UnixListener, SocketFile)>,
    connections: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    conn: ConnSettings,
) {
    let (unix, socket_file) = match unix {
        Some((l, f)) => (Some(l), Some(f)),
        None => (None, None),
    };
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => break,
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            r = tcp.accept() => r.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                serve(s, permit, &conn);
            }),
            r = accept_unix(unix.as_ref()) => r.map(|s| serve(s, permit, &conn)),
        };
        if let Err(e) = accepted {
            // EMFILE and friends: back off briefly instead of spinning.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The file goes first, while the listener still holds its inode (see `SocketFile`);
    // then the listeners close: no later client finds a socket file nobody serves.
    if let Some(f) = socket_file {
        f.remove();
    }
    drop(unix);
}

/// Serves one accepted connection on its own task, holding `permit` until it closes.
fn serve<S>(stream: S, permit: OwnedSemaphorePermit, c: &ConnSettings)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(c.router.clone());
    let mut stop = c.stop.clone();
    let builder = {
        let mut b = http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(c.header_timeout)
            .max_buf_size(c.read_buffer);
        b
    };
    tokio::spawn(async move {
        let _permit = permit;
        let conn = builder.serve_connection(TokioIo::new(JsonParseErrors::new(stream)), svc);
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
        let bind = |p: std::path::PathBuf| async move { bind_unix(&p).await };

        // Fresh path: bound, a socket, owner-only from the start.
        let (live, file) = bind(path.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // Another process still serves it: refused, and left in place.
        let e = bind(path.clone()).await.err().unwrap_or_default();
        assert!(e.contains("in use"), "{e}");
        assert!(path.exists());

        // Someone else replaces the file while this server still runs: this server's
        // clean-up leaves theirs alone.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let theirs =
            std::os::unix::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        file.remove();
        assert!(path.exists(), "removed a socket this process does not own");
        drop((live, theirs));

        // The server went away without removing it (a crash): the stale file is replaced,
        // and the new server's clean-up removes it.
        assert!(path.exists());
        let (again, second) = bind(path.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        second.remove();
        assert!(!path.exists());
        drop(again);

        // A live socket whose accept queue is full: the probe gets no answer rather than a
        // refusal, so the file is kept (a blocking probe would hang here).
        let busy = dir.path().join("busy.sock");
        let socket = tokio::net::UnixSocket::new_stream().unwrap_or_else(|e| panic!("{e}"));
        socket.bind(&busy).unwrap_or_else(|e| panic!("{e}"));
        let _listening = socket.listen(1).unwrap_or_else(|e| panic!("{e}"));
        let mut queued = Vec::new();
        let full = loop {
            let c = tokio::time::timeout(
                std::time::Duration::from_millis(50),
                tokio::net::UnixStream::connect(&busy),
            )
            .await;
            match c {
                Ok(Ok(s)) if queued.len() < 64 => queued.push(s),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(_) => break true,
                _ => break false,
            }
        };
        assert!(full, "the accept queue never filled");
        let probed = tokio::time::timeout(std::time::Duration::from_secs(5), bind(busy.clone()))
            .await
            .unwrap_or_else(|_| panic!("the probe hung on a full accept queue"));
        let e = probed.err().unwrap_or_default();
        assert!(e.contains("in use"), "{e}");
        assert!(busy.exists());
        drop(queued);

        // A regular file, a directory or a symbolic link is never removed.
        let regular = dir.path().join("file");
        std::fs::write(&regular, b"keep me").unwrap_or_else(|e| panic!("{e}"));
        let e = bind(regular.clone()).await.err().unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&regular).unwrap_or_default(), b"keep me");
        let e = bind(dir.path().to_path_buf())
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap_or_else(|e| panic!("{e}"));
        let e = bind(link.clone()).await.err().unwrap_or_default();
        assert!(e.contains("not a socket"), "{e}");
        assert!(std::fs::symlink_metadata(&link).is_ok());

        // A directory that does not exist: a clear error naming the variable.
        let e = bind(dir.path().join("no/such/dir.sock"))
            .await
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
