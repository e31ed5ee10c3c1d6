//! The loopback HTTP listener: accept loop, connection cap, per-connection limits and
//! graceful drain.
//!
//! A hand-written accept loop rather than `axum::serve`, because the loop is where the
//! limits live: a semaphore caps connections (further clients wait in the kernel's accept
//! queue rather than being refused), hyper's read buffer caps the request head, a header
//! read timeout stops slow clients, and shutdown asks every connection to finish its
//! current request and close.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;

/// Hyper refuses read buffers under this size.
const MIN_READ_BUFFER: usize = 8192;

/// Binds `127.0.0.1:port` — loopback only, never a wildcard address.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await
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
    /// Serves `router` on `listener` until [`Server::shutdown`].
    pub fn spawn(listener: TcpListener, router: Router, cfg: &ServerConfig) -> Server {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
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
            stop,
            task,
            connections,
            max_connections,
        }
    }

    /// The bound address.
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

async fn accept_loop(
    listener: TcpListener,
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
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(read_buffer)
                .serve_connection(TokioIo::new(stream), svc);
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
