//! Connections to servers: opening them (with `send-proxy` when asked), and
//! keeping idle ones per server for reuse (`http-reuse`). hyper does the
//! HTTP/1 framing; each connection's I/O runs in its own task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::runtime::tls_io::{connect_server, Target};

use super::body::LbBody;

/// A server connection's request handle, and the worker thread whose runtime
/// runs the connection's I/O (its idle list).
pub struct Sender {
    pub tx: SendRequest<LbBody>,
    owner: usize,
    /// Set when the connection is to end with a reset (see [`Sender::reset`]).
    reset: Arc<AtomicBool>,
}

impl Sender {
    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Ends the connection once its exchange is over, with a reset rather than a
    /// FIN, as HAProxy ends a server connection that its closing client leaves
    /// behind when enough are idle already: neither side keeps the socket in
    /// FIN-WAIT or TIME-WAIT.
    pub fn reset(self) {
        self.reset.store(true, Ordering::Release);
    }
}

/// Idle connections kept per server when `pool-max-conn` is not set (HAProxy
/// sets no limit; lbd bounds it so a burst cannot pin thousands of sockets).
pub const MAX_IDLE: usize = 256;
/// How long an idle connection waits for reuse before it is dropped, when
/// `pool-purge-delay` is not set (HAProxy's default): servers close idle connections too.
pub const PURGE_DELAY: Duration = Duration::from_secs(5);
/// How long a returned connection may take to become ready again.
const READY_WAIT: Duration = Duration::from_millis(200);
/// The largest response head a server may send (bytes).
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Idle connections with the time they went idle ([`super::coarse_ms`]).
type Idle = Mutex<VecDeque<(Sender, u64)>>;

/// Idle connections to one server, oldest first, one list per worker thread:
/// a connection's I/O runs on the thread that opened it, so a request handed
/// to a connection of another thread would cross threads twice.
#[derive(Default)]
pub struct Pool {
    shards: std::sync::OnceLock<Box<[Idle]>>,
}

impl Pool {
    fn shards(&self) -> &[Idle] {
        self.shards
            .get_or_init(|| (0..crate::runtime::worker_count()).map(|_| Idle::default()).collect())
    }

    /// The most recently used idle connection of this thread; when it has
    /// none, one of another thread's (as HAProxy takes idle connections from
    /// other threads rather than opening a new one).
    fn pop(&self) -> Option<(Sender, u64)> {
        let shards = self.shards();
        let me = crate::runtime::worker_index() % shards.len();
        if let Some(c) = shards[me].lock().ok()?.pop_back() {
            return Some(c);
        }
        shards
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .find_map(|(_, s)| s.lock().ok()?.pop_back())
    }

    /// The most recently used idle connection that is still ready for a request.
    pub async fn take(&self, purge: Duration) -> Option<Sender> {
        loop {
            let (tx, since) = self.pop()?;
            if super::coarse_ms().saturating_sub(since) > purge.as_millis() as u64 {
                continue;
            }
            if let Some(tx) = ready(tx).await {
                return Some(tx);
            }
        }
    }

    /// Keeps `tx` for reuse: at most `max` idle ones, each for `purge`.
    pub fn put(&self, tx: Sender, max: usize, purge: Duration) {
        if tx.is_closed() || max == 0 {
            return;
        }
        let now = super::coarse_ms();
        let purge = purge.as_millis() as u64;
        // Back to the list of the thread that runs its I/O, wherever it was used.
        let shards = self.shards();
        if let Ok(mut idle) = shards[tx.owner % shards.len()].lock() {
            drop_expired(&mut idle, now, purge);
            if idle.len() >= max {
                idle.pop_front();
            }
            idle.push_back((tx, now));
        }
    }

    /// Whether fewer than `demand` connections are idle (the expired and closed
    /// ones, dropped on the way, not counted).
    pub fn idle_below(&self, demand: usize, purge: Duration) -> bool {
        let now = super::coarse_ms();
        let purge = purge.as_millis() as u64;
        let mut n = 0;
        for shard in self.shards() {
            if let Ok(mut idle) = shard.lock() {
                drop_expired(&mut idle, now, purge);
                n += idle.len();
            }
        }
        n < demand
    }
}

/// Drops the connections idle for longer than `purge` ms, or closed, from the
/// front of a list: the oldest ones expire first.
fn drop_expired(idle: &mut VecDeque<(Sender, u64)>, now: u64, purge: u64) {
    while idle
        .front()
        .is_some_and(|(t, since)| t.is_closed() || now.saturating_sub(*since) > purge)
    {
        idle.pop_front();
    }
}

/// Waits (briefly) until a kept connection is ready for its next request; `None` when it closed.
pub async fn ready(mut tx: Sender) -> Option<Sender> {
    if tx.is_closed() {
        return None;
    }
    if tx.tx.is_ready() {
        return Some(tx);
    }
    match tokio::time::timeout(READY_WAIT, tx.tx.ready()).await {
        Ok(Ok(())) => Some(tx),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timeout")]
    Timeout,
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

/// Opens a connection (TCP or UNIX, TLS when the server says `ssl`), sends the
/// PROXY header if one is given, and starts hyper on it.
pub async fn connect(
    target: Target<'_>,
    timeout: Duration,
    proxy_header: Option<Vec<u8>>,
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, Option<String>)>,
    opts: crate::runtime::tls_io::ServerSocket,
) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, connect_server(target, proxy_header.as_deref(), tls, opts)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(r) => r?,
    };
    let reset = Arc::new(AtomicBool::new(false));
    let (tx, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD.max(8192))
        .handshake::<_, LbBody>(TokioIo::new(CloseOnly(stream, Arc::clone(&reset))))
        .await?;
    tokio::spawn(async move {
        // Ends when the server closes or the last sender is dropped.
        let _ = conn.with_upgrades().await;
    });
    Ok(Sender {
        tx,
        owner: crate::runtime::worker_index(),
        reset,
    })
}

/// A server connection that hyper ends by closing it: no `shutdown(2)` first
/// (the close sends the FIN anyway), one system call less per connection.
/// Over TLS the close_notify still goes out: only plain TCP skips it.
/// Once its last [`Sender`] is gone, the connection ends; with a reset when
/// [`Sender::reset`] asked for one.
struct CloseOnly(crate::runtime::tls_io::Upstream, Arc<AtomicBool>);

impl Drop for CloseOnly {
    fn drop(&mut self) {
        if let (crate::runtime::tls_io::Upstream::Tcp(s), true) = (&self.0, self.1.load(Ordering::Acquire)) {
            let _ = s.set_zero_linger();
        }
    }
}

impl tokio::io::AsyncRead for CloseOnly {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CloseOnly {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        super::write_joined(std::pin::Pin::new(&mut self.get_mut().0), cx, bufs, None)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            crate::runtime::tls_io::Upstream::Tcp(_) => std::task::Poll::Ready(Ok(())),
            other => std::pin::Pin::new(other).poll_shutdown(cx),
        }
    }
}
