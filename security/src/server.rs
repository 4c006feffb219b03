//! The accept side: a bounded number of connections, the TLS handshake done
//! off the accept loop under a deadline, and the proven identity attached to
//! each connection for tonic to hand to every request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::{debug, warn};

use crate::identity::{Peer, Principal};
use crate::pki::Tls;

/// Bounds of the accept side.
#[derive(Clone, Debug)]
pub struct AcceptLimits {
    /// Open connections at once; a connection beyond it is closed at accept.
    pub max_connections: usize,
    /// A TLS handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
}

impl Default for AcceptLimits {
    fn default() -> Self {
        AcceptLimits { max_connections: 4096, handshake_timeout: Duration::from_secs(10) }
    }
}

/// Counters of refused connections (exported as metrics by the servers).
#[derive(Debug, Default)]
pub struct AcceptStats {
    /// Closed at accept: `max_connections` were open.
    pub over_limit: AtomicU64,
    /// TLS handshake failed or timed out (bad CA, no certificate, garbage).
    pub handshake_failed: AtomicU64,
    /// Handshake succeeded but the certificate names no identity of ours.
    pub no_identity: AtomicU64,
}

/// One accepted connection: plaintext or TLS, with what it proved.
pub struct Conn {
    io: Io,
    peer: Peer,
    _permit: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connections of `listener` for `Server::serve_with_incoming*`: TCP_NODELAY
/// set, at most `limits.max_connections` open, and with `tls` every one
/// past a TLS handshake with a client certificate naming an identity of the
/// trust domain. Never yields an error (a bad connection is dropped and
/// counted), so one bad peer cannot stop the server. Ends when the server
/// drops the stream.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    limits: AcceptLimits,
    stats: Arc<AcceptStats>,
) -> ReceiverStream<Result<Conn, io::Error>> {
    let (tx, rx) = mpsc::channel(256);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                if stats.over_limit.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                    warn!(%remote, max = limits.max_connections, "connection limit reached; closing new connections");
                }
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let Some(tls) = tls.clone() else {
                let conn = Conn {
                    io: Io::Plain(stream),
                    peer: Peer { remote: Some(remote), principal: None },
                    _permit: permit,
                };
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
                continue;
            };
            let (tx, stats, timeout) = (tx.clone(), stats.clone(), limits.handshake_timeout);
            tokio::spawn(async move {
                let acceptor = TlsAcceptor::from(tls.server_config());
                let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
                        warn!(%remote, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        stats.handshake_failed.fetch_add(1, Ordering::Relaxed);
                        debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                let principal = match peer_principal(&stream, tls.trust_domain()) {
                    Ok(p) => p,
                    Err(e) => {
                        stats.no_identity.fetch_add(1, Ordering::Relaxed);
                        warn!(%remote, error = %e, "client certificate names no identity; connection closed");
                        return;
                    }
                };
                debug!(%remote, identity = %principal, "TLS connection");
                let peer = Peer { remote: Some(remote), principal: Some(principal) };
                let _ = tx.send(Ok(Conn { io: Io::Tls(Box::new(stream)), peer, _permit: permit })).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

fn peer_principal(stream: &TlsStream<TcpStream>, trust_domain: &str) -> Result<Principal, String> {
    let certs = stream.get_ref().1.peer_certificates().ok_or("no client certificate")?;
    let leaf = certs.first().ok_or("empty client certificate chain")?;
    Principal::from_cert_der(leaf, trust_domain).map_err(|e| e.to_string())
}
