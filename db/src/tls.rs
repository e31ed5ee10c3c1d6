//! TLS for tokio-postgres over rustls: certificate-chain and hostname verification against a
//! CA bundle (for Aurora, the RDS global bundle). A small adapter instead of another crate.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::error::DbError;

/// Builds a rustls client configuration trusting only the certificates in `ca_bundle`.
pub(crate) fn client_config(ca_bundle: &Path) -> Result<Arc<ClientConfig>, DbError> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_bundle).map_err(|e| {
        DbError::Tls(format!(
            "cannot read CA bundle {}: {e}",
            ca_bundle.display()
        ))
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| DbError::Tls(format!("bad certificate in CA bundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| DbError::Tls(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(DbError::Tls(format!(
            "no certificates in {}",
            ca_bundle.display()
        )));
    }
    // Name the provider explicitly: the workspace enables both of rustls's providers, which
    // makes the process-wide default ambiguous.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// True for hosts where plaintext never leaves the machine.
pub(crate) fn is_local_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `MakeTlsConnect` for tokio-postgres.
#[derive(Clone)]
pub(crate) struct RustlsConnect(pub(crate) Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, io::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid server name"))?;
        Ok(RustlsConnector {
            config: self.0.clone(),
            name,
        })
    }
}

/// One pending TLS handshake.
pub(crate) struct RustlsConnector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            connector.connect(self.name, stream).await.map(RustlsStream)
        })
    }
}

/// The encrypted stream. Channel binding (SCRAM-SHA-256-PLUS) is not offered; plain
/// SCRAM-SHA-256 over the verified TLS session is used.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in ["127.0.0.1", "127.1.2.3", "::1", "localhost", "/tmp/pg"] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["10.0.0.1", "db.example.com", "0.0.0.0", "::"] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
