//! The loopback floor: a trivial hyper HTTP/1.1 server answering every request with a fixed
//! body, on its own thread and single-threaded runtime (as a separate process would be).
//! Whatever Hearth adds on top of this is the cost of its own work, not of the HTTP hop.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running floor server; stopped on drop.
pub struct Floor {
    /// Its port on 127.0.0.1.
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Where a floor listens.
enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Floor {
    /// Starts the server answering `body` (with `Content-Type: application/json`) on a free
    /// port of 127.0.0.1.
    pub fn start(body: Bytes) -> Result<Floor, String> {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("floor bind: {e}"))?;
        let port = std_listener
            .local_addr()
            .map(|a: SocketAddr| a.port())
            .map_err(|e| format!("floor: {e}"))?;
        Floor::serve(Bound::Tcp(std_listener), port, body)
    }

    /// The same server on a Unix-domain socket at `path` (port 0).
    pub fn start_unix(body: Bytes, path: &std::path::Path) -> Result<Floor, String> {
        let l = std::os::unix::net::UnixListener::bind(path)
            .map_err(|e| format!("floor bind {}: {e}", path.display()))?;
        Floor::serve(Bound::Unix(l), 0, body)
    }

    fn serve(bound: Bound, port: u16, body: Bytes) -> Result<Floor, String> {
        match &bound {
            Bound::Tcp(l) => l.set_nonblocking(true),
            Bound::Unix(l) => l.set_nonblocking(true),
        }
        .map_err(|e| format!("floor: {e}"))?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("floor".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    match bound {
                        Bound::Tcp(l) => {
                            let Ok(listener) = TcpListener::from_std(l) else {
                                return;
                            };
                            loop {
                                tokio::select! {
                                    _ = &mut stopped => return,
                                    accepted = listener.accept() => {
                                        let Ok((stream, _)) = accepted else { continue };
                                        let _ = stream.set_nodelay(true);
                                        tokio::spawn(connection(stream, body.clone()));
                                    }
                                }
                            }
                        }
                        Bound::Unix(l) => {
                            let Ok(listener) = tokio::net::UnixListener::from_std(l) else {
                                return;
                            };
                            loop {
                                tokio::select! {
                                    _ = &mut stopped => return,
                                    accepted = listener.accept() => {
                                        let Ok((stream, _)) = accepted else { continue };
                                        tokio::spawn(connection(stream, body.clone()));
                                    }
                                }
                            }
                        }
                    }
                });
            })
            .map_err(|e| format!("floor thread: {e}"))?;
        Ok(Floor {
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Serves one connection: every request's body is read whole (as Hearth does), then `body`.
async fn connection<S>(stream: S, body: Bytes)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        let body = body.clone();
        async move {
            let _ = http_body_util::BodyExt::collect(req.into_body()).await;
            let mut r = Response::new(Full::new(body));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(r)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

impl Drop for Floor {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
