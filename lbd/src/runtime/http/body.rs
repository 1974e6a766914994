//! The one body type lbd hands to hyper on both sides: nothing, a buffer it
//! made itself, or a body streamed from the other side. Streamed bodies are
//! forwarded frame by frame, never gathered, and carry an inactivity limit.
//! A body may carry a [`Finish`] that runs exactly once, when the body ends or
//! is dropped (the response was sent, or the client went away): that is where a
//! server connection goes back to its pool and the log line is written.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds a number of body bytes to some statistics counters.
pub type Live = Box<dyn Fn(u64) + Send + Sync>;

/// How a body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every byte went through.
    Complete,
    /// Dropped before its end: the receiving side went away.
    Aborted,
    /// No data for longer than the inactivity limit.
    TimedOut,
    /// The sending side failed (reset, bad framing).
    Failed,
}

/// What runs when a body ends; `bytes` is how many body bytes went through.
pub trait Finish: Send + Sync {
    fn finish(self: Box<Self>, ended: Ended, bytes: u64);
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream(Incoming),
}

/// The inactivity limit of a streamed body (`timeout client` for a request
/// body, `timeout server` for a response body): it bounds a peer that stops
/// sending in the middle of a body.
struct Idle {
    limit: Duration,
    /// Armed only once the peer makes the body wait: most bodies never do.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

pub struct LbBody {
    kind: Kind,
    bytes: u64,
    /// Where the body bytes that went through are also counted, for whoever keeps the other end.
    shared_count: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Statistics counters that take the bytes as they go through (`option contstats`).
    live: Option<Live>,
    idle: Option<Idle>,
    finish: Option<Box<dyn Finish>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?}")]
pub struct IdleTimeout(Duration);

impl LbBody {
    pub fn empty() -> Self {
        Self::new(Kind::Empty)
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        let b: Bytes = data.into();
        if b.is_empty() {
            Self::empty()
        } else {
            Self::new(Kind::Full(Some(b)))
        }
    }

    /// A body streamed from the other side, cut after `limit` without data.
    pub fn stream(body: Incoming, limit: Option<Duration>) -> Self {
        let mut b = Self::new(Kind::Stream(body));
        b.idle = limit.map(|limit| Idle { limit, sleep: None });
        b
    }

    fn new(kind: Kind) -> Self {
        LbBody {
            kind,
            bytes: 0,
            shared_count: None,
            live: None,
            idle: None,
            finish: None,
        }
    }

    /// Also counts the bytes that go through in `count`.
    pub fn counted(mut self, count: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.shared_count = Some(count);
        self
    }

    /// Also adds the bytes that go through to statistics counters, as they go.
    pub fn live(&mut self, counters: Live) {
        self.live = Some(counters);
    }

    pub fn on_finish(mut self, f: Box<dyn Finish>) -> Self {
        self.finish = Some(f);
        self
    }

    fn end(&mut self, how: Ended) {
        if let Some(f) = self.finish.take() {
            f.finish(how, self.bytes);
        }
    }
}

impl Body for LbBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream(inc) => Pin::new(inc).poll_frame(cx).map_err(BoxError::from),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                    if let Some(c) = &this.shared_count {
                        c.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    if let Some(live) = &this.live {
                        live(d.len() as u64);
                    }
                }
                if let Some(Idle { limit, sleep: Some(sleep) }) = &mut this.idle {
                    let next = tokio::time::Instant::now() + *limit;
                    sleep.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.end(Ended::Complete);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.end(Ended::Failed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => {
                if let Some(idle) = &mut this.idle {
                    let limit = idle.limit;
                    let sleep = idle.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        let limit = idle.limit;
                        this.end(Ended::TimedOut);
                        return Poll::Ready(Some(Err(Box::new(IdleTimeout(limit)))));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(inc) => inc.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Stream(inc) => inc.size_hint(),
        }
    }
}

impl Drop for LbBody {
    fn drop(&mut self) {
        // A body hyper never had to poll (HEAD, 204, 304, an empty request) ended fine.
        let how = if self.is_end_stream() { Ended::Complete } else { Ended::Aborted };
        self.end(how);
    }
}
