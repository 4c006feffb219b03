//! The dialing side: a tonic connector that opens TCP (TCP_NODELAY) and,
//! with TLS, presents this process's current certificate and accepts only
//! the server it expects. Each new connection reads the current certificate,
//! so a rotation reaches every reconnect without rebuilding channels.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub use crate::pki::Expect;
use crate::pki::Tls;

/// Opens connections for a tonic [`Endpoint`]; see [`Connector::lazy`].
#[derive(Clone, Debug)]
pub struct Connector {
    tls: Option<Arc<Tls>>,
    expect: Expect,
    connect_timeout: Duration,
}

impl Connector {
    /// `tls: None` dials plaintext (the configuration said so explicitly).
    pub fn new(tls: Option<Arc<Tls>>, expect: Expect) -> Connector {
        Connector { tls, expect, connect_timeout: Duration::from_secs(5) }
    }

    /// Bounds TCP connect plus TLS handshake.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Connector {
        self.connect_timeout = timeout;
        self
    }

    /// `http://addr` (or `addr` as given when it has a scheme) as an endpoint.
    /// The scheme stays `http`: TLS is this connector's business, not tonic's.
    pub fn endpoint(address: &str) -> Result<Endpoint, tonic::transport::Error> {
        let address = address.strip_prefix("https://").unwrap_or(address);
        let uri = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
        Endpoint::from_shared(uri)
    }

    /// A channel that connects (and reconnects) on first use.
    pub fn lazy(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(self.clone())
    }

    /// A channel connected now.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
        endpoint.connect_with_connector(self.clone()).await
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<ClientIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in address"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let work = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let Some(tls) = &this.tls else { return Ok(ClientIo::Plain(tcp)) };
                let config = tls.client_config(this.expect.clone()).map_err(io::Error::other)?;
                // The name only fills SNI: identities are checked on the
                // certificate's SPIFFE URI, not on the address we dialed.
                let name = ServerName::try_from(host.clone())
                    .unwrap_or_else(|_| ServerName::try_from("baton.invalid").expect("static name"));
                let stream = TlsConnector::from(config).connect(name, tcp).await?;
                Ok(ClientIo::Tls(Box::new(stream)))
            };
            match tokio::time::timeout(this.connect_timeout, work).await {
                Ok(Ok(io)) => Ok(TokioIo::new(io)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            }
        })
    }
}

/// A dialed connection, plaintext or TLS.
pub enum ClientIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ClientIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
