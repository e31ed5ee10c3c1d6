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

impl Floor {
    /// Starts the server answering `body` (with `Content-Type: application/json`).
    pub fn start(body: Bytes) -> Result<Floor, String> {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("floor bind: {e}"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| format!("floor: {e}"))?;
        let port = std_listener
            .local_addr()
            .map(|a: SocketAddr| a.port())
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
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut stopped => return,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                let body = body.clone();
                                tokio::spawn(async move {
                                    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                                        let body = body.clone();
                                        async move {
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
                                });
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
