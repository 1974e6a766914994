//! Connections to servers: opening them (with `send-proxy` when asked), and
//! keeping idle ones per server for reuse (`http-reuse`). hyper does the
//! HTTP/1 framing; each connection's I/O runs in its own task.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::runtime::tls_io::{connect_server, Target};

use super::body::LbBody;

pub type Sender = SendRequest<LbBody>;

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

type Idle = Mutex<VecDeque<(Sender, Instant)>>;

/// Idle connections to one server, oldest first, one list per worker thread:
/// a connection's I/O runs on the thread that opened it, so a request handed
/// to a connection of another thread would cross threads twice.
#[derive(Default)]
pub struct Pool {
    shards: std::sync::OnceLock<Box<[Idle]>>,
}

impl Pool {
    /// This worker thread's list.
    fn idle(&self) -> &Idle {
        let shards = self
            .shards
            .get_or_init(|| (0..crate::runtime::worker_count()).map(|_| Idle::default()).collect());
        &shards[crate::runtime::worker_index() % shards.len()]
    }

    /// The most recently used idle connection that is still ready for a request.
    pub async fn take(&self, purge: Duration) -> Option<Sender> {
        loop {
            let (tx, since) = {
                let mut idle = self.idle().lock().ok()?;
                idle.pop_back()?
            };
            if since.elapsed() > purge {
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
        let now = Instant::now();
        if let Ok(mut idle) = self.idle().lock() {
            // The oldest ones expire first; they are at the front.
            while idle
                .front()
                .is_some_and(|(t, since)| t.is_closed() || now.duration_since(*since) > purge)
            {
                idle.pop_front();
            }
            if idle.len() >= max {
                idle.pop_front();
            }
            idle.push_back((tx, now));
        }
    }
}

/// Waits (briefly) until a kept connection is ready for its next request; `None` when it closed.
pub async fn ready(mut tx: Sender) -> Option<Sender> {
    if tx.is_closed() {
        return None;
    }
    if tx.is_ready() {
        return Some(tx);
    }
    match tokio::time::timeout(READY_WAIT, tx.ready()).await {
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
) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, connect_server(target, proxy_header.as_deref(), tls)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(r) => r?,
    };
    let (tx, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD.max(8192))
        .handshake::<_, LbBody>(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        // Ends when the server closes or the last sender is dropped.
        let _ = conn.with_upgrades().await;
    });
    Ok(tx)
}
