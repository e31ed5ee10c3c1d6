//! The retry rule against a loopback server that closes connections on purpose. The real
//! extension is exercised in tests/tests/client.rs.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Accepts connections; the first `drop_first` requests are read and then the connection
/// is closed without an answer (as a server closing an idle keep-alive connection would
/// look to a client thawed after a freeze); later ones get `200 {"status":"ok",..}`.
async fn flaky_server(drop_first: usize) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let k = {
                let mut l = log.lock().unwrap();
                l.push(line);
                l.len()
            };
            if k <= drop_first {
                drop(s);
                continue;
            }
            let body = r#"{"status":"ok","version":"t","prewarmed":true}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn idempotent_requests_are_retried_once_after_a_silent_close() {
    let (port, seen) = flaky_server(1).await;
    let c = Client::builder().port(port).token("t").build().unwrap();
    let h = c.health().await.unwrap();
    assert_eq!(h.status, "ok");
    assert_eq!(seen.lock().unwrap().len(), 2, "one retry");
}

#[tokio::test]
async fn retries_stop_after_one() {
    let (port, seen) = flaky_server(2).await;
    let c = Client::builder().port(port).build().unwrap();
    let e = c.health().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                maybe_sent: true,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn database_writes_are_not_retried_once_sent() {
    let (port, seen) = flaky_server(1).await;
    let c = Client::builder().port(port).token("t").build().unwrap();
    let req = crate::wire::QueryRequest {
        sql: "INSERT INTO t VALUES (1)".into(),
        params: vec![],
        tenant: Some("t1".into()),
        context: Default::default(),
        row_mode: None,
        numbers: None,
    };
    let e = c.query(&req).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                maybe_sent: true,
                ..
            }
        ),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["POST /v1/db/query HTTP/1.1".to_string()]);
}

#[tokio::test]
async fn refused_connection_is_a_transport_error_not_sent() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Client::builder().port(port).build().unwrap();
    let e = c.health().await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                maybe_sent: false,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_transient());
    let t0 = Instant::now();
    let e = c.wait_ready(Duration::from_millis(100)).await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(1), "{e}");
}

#[tokio::test]
async fn timeout_is_reported() {
    // Accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let c = Client::builder()
        .port(port)
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let e = c.metrics().await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
}
