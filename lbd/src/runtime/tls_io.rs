//! TLS on lbd's connections: the client side of `bind ... ssl` (handshake after
//! an optional PROXY header) and the server side of `server ... ssl`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::session::ClientStream;

/// A stream that first yields bytes already read from it (what followed a PROXY header).
pub struct Prefixed<S> {
    pre: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(pre: Vec<u8>, inner: S) -> Self {
        Prefixed { pre, pos: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.pre.len() {
            let n = (this.pre.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.pre[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.pre.len() {
                this.pre = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

pub type ServerTls = tokio_rustls::server::TlsStream<Prefixed<TcpStream>>;

/// A TLS client connection: no splicing and no raw writes past the TLS layer.
impl ClientStream for ServerTls {}

/// Handshakes failed (bad client hello, timeout, wrong version): HAProxy's `SslFail` counter.
pub static HANDSHAKE_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Completes the server side of a TLS handshake within `wait`.
pub async fn accept(
    config: Arc<rustls::ServerConfig>,
    stream: Prefixed<TcpStream>,
    wait: std::time::Duration,
) -> Option<(ServerTls, crate::tls::TlsInfo)> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(wait, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let info = crate::tls::TlsInfo::of(tls.get_ref().1);
            Some((tls, info))
        }
        _ => {
            HANDSHAKE_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        }
    }
}

/// A connection to a server: plain TCP (which the relays can splice), or
/// anything else (TLS toward the server, a UNIX socket).
pub enum Upstream {
    Tcp(TcpStream),
    Other(Box<dyn IoStream>),
}

pub trait IoStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> IoStream for T {}

impl AsyncRead for Upstream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Other(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Tcp(s) => s.is_write_vectored(),
            Upstream::Other(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Upstream::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Where a server is reached.
pub enum Target<'a> {
    Inet(std::net::SocketAddr),
    Unix(&'a std::path::Path),
}

/// The backend's options that set a TCP connection to a server up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerSocket {
    /// `option tcp-smart-connect`, when there is something to send at once:
    /// the handshake's last ACK waits to go out with it (the server is woken
    /// once, for a connection with its request).
    pub smart_connect: bool,
    /// `option tcpka` or `srvtcpka`: TCP keep-alive probes.
    pub keepalive: bool,
    /// `option nolinger`: the connection ends with a reset, not a lingering close.
    pub nolinger: bool,
}

impl ServerSocket {
    /// For a backend's options; `sends_first` when lbd writes to the server as
    /// soon as it is connected (an HTTP request, a PROXY header, bytes already
    /// read from the client). As HAProxy, the ACK is not held back when
    /// nothing would carry it: a server that speaks first would wait for it.
    pub fn of(o: &crate::config::model::Options, sends_first: bool) -> ServerSocket {
        ServerSocket {
            smart_connect: o.tcp_smart_connect && sends_first,
            keepalive: o.tcpka || o.srvtcpka,
            nolinger: o.nolinger,
        }
    }
}

/// Opens a connection to a server: TCP or a UNIX socket, the PROXY header
/// (`send-proxy`) in clear first, then TLS when the server says `ssl`.
pub async fn connect_server(
    target: Target<'_>,
    proxy_header: Option<&[u8]>,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    opts: ServerSocket,
) -> std::io::Result<Upstream> {
    use tokio::io::AsyncWriteExt;
    match target {
        Target::Inet(sa) => {
            // The same socket(2) and connect(2) as `TcpStream::connect`, with the options between.
            let socket = if sa.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            if opts.smart_connect {
                let _ = socket2::SockRef::from(&socket).set_quickack(false);
            }
            if opts.keepalive {
                let _ = socket.set_keepalive(true);
            }
            let mut s = socket.connect(sa).await?;
            if opts.nolinger {
                let _ = socket2::SockRef::from(&s).set_linger(Some(std::time::Duration::ZERO));
            }
            let _ = s.set_nodelay(true);
            if let Some(h) = proxy_header {
                s.write_all(h).await?;
            }
            match tls {
                None => Ok(Upstream::Tcp(s)),
                // Boxed: the TLS handshake's state would otherwise enlarge every connection's task.
                Some((cfg, sni)) => Ok(Upstream::Other(Box::new(
                    Box::pin(connect_tls(cfg, sni.as_deref(), Some(sa.ip()), s)).await?,
                ))),
            }
        }
        Target::Unix(path) => {
            let mut s = tokio::net::UnixStream::connect(path).await?;
            if let Some(h) = proxy_header {
                s.write_all(h).await?;
            }
            match tls {
                None => Ok(Upstream::Other(Box::new(s))),
                Some((cfg, sni)) => Ok(Upstream::Other(Box::new(
                    Box::pin(connect_tls(cfg, sni.as_deref(), None, s)).await?,
                ))),
            }
        }
    }
}

/// Wraps `stream` in TLS toward a server named `sni` (or its address when none).
pub async fn connect_tls<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    config: Arc<rustls::ClientConfig>,
    sni: Option<&str>,
    fallback: Option<std::net::IpAddr>,
    stream: S,
) -> std::io::Result<tokio_rustls::client::TlsStream<S>> {
    use rustls_pki_types::ServerName;
    let name: ServerName<'static> = match sni.and_then(|s| ServerName::try_from(s.to_owned()).ok()) {
        Some(n) => n,
        None => match fallback {
            Some(ip) => ServerName::IpAddress(ip.into()),
            None => ServerName::try_from("localhost").map_err(|e| std::io::Error::other(e.to_string()))?,
        },
    };
    tokio_rustls::TlsConnector::from(config).connect(name, stream).await
}
