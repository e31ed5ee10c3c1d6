//! A minimal keep-alive HTTP/1.1 client: one hyper connection, requests sent one after the
//! other on it. Lighter than a pooled client, so the figures are the server's and the hop's,
//! not a client library's.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive connection to `127.0.0.1:port`.
pub struct Http {
    sender: SendRequest<Full<Bytes>>,
    token: Option<String>,
}

impl Http {
    /// Opens the connection; `token` goes into `X-Aws-Parameters-Secrets-Token`.
    pub async fn connect(port: u16, token: Option<&str>) -> Result<Http, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Http {
            sender,
            token: token.map(str::to_owned),
        })
    }

    /// GET `path`; status and body.
    pub async fn get(&mut self, path: &str) -> Result<(u16, Bytes), String> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    /// POST a JSON `body` to `path`; status and body.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<(u16, Bytes), String> {
        self.send(Method::POST, path, body).await
    }

    /// GET `path` and fail unless 200.
    pub async fn get_ok(&mut self, path: &str) -> Result<Bytes, String> {
        match self.get(path).await? {
            (200, b) => Ok(b),
            (s, b) => Err(format!("GET {path}: {s} {}", String::from_utf8_lossy(&b))),
        }
    }

    /// POST and fail unless 200.
    pub async fn post_ok(&mut self, path: &str, body: Bytes) -> Result<Bytes, String> {
        match self.post(path, body).await? {
            (200, b) => Ok(b),
            (s, b) => Err(format!("POST {path}: {s} {}", String::from_utf8_lossy(&b))),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "127.0.0.1");
        if !body.is_empty() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header(hearth::wire::TOKEN_HEADER, t.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("request: {e}"))?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection closed: {e}"))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}
