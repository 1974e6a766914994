//! HTTP mode. hyper parses and frames HTTP/1 on both sides; lbd decides.
//!
//! One client connection: hyper reads a request head (bounded by
//! `tune.bufsize` and `timeout http-request`), lbd runs the transaction, the
//! response body streams back, and the connection waits for the next request
//! (bounded by `timeout http-keep-alive`) unless a side asked to close.
//!
//! One transaction: monitor-uri → the frontend's `http-request` rules → stats
//! → `redirect` rules → `use_backend`/`default_backend` → the backend's
//! `http-request` rules → `option forwardfor`/`originalto` → a server (a
//! pinned NTLM connection, the persistence cookie, a stick table, else the
//! balancer, queueing at `maxconn`) → a server connection (the client's own,
//! an idle one per `http-reuse`, or a new one with retries and redispatch) →
//! the response head (bounded by `timeout server`) → `http-response` rules of
//! the backend then the frontend → persistence cookie → the body streams to
//! the client → the server connection goes back to its pool and the log line
//! is written. A `101` answer to an `Upgrade` turns both connections into a
//! tunnel under `timeout tunnel`.

mod body;
pub mod cork;
mod local;
pub mod probe;
mod rules;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use body::LbBody;
use body::{Ended, Finish};
use rules::Plan;
pub use upstream::Pool;
use upstream::Sender;

use super::acl_eval::{self, HttpView, Sample, SampleCtx};
use super::log::{HttpLog, Level};
use super::session::{self, Accepted, Chosen, ClientStream, SlotGuard};
use super::snapshot::{BackendRt, FrontendRt, ServerRt, Snapshot};
use crate::config::model::{Balance, CookieMode, HttpConnMode, HttpReuse, Mode, RetryOn};

/// Most header lines a request may carry (HAProxy's `tune.http.maxhdr` default).
const MAX_HEADERS: usize = 101;

thread_local! {
    /// The settings every client connection shares, made once per thread:
    /// setting the timer allocates, and each connection only clones it.
    static SERVER_H1: hyper::server::conn::http1::Builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .max_headers(MAX_HEADERS)
            // The timer is installed so hyper's own timeouts work; `timeout http-request`
            // and `timeout http-keep-alive` are enforced by lbd's watchdog instead of
            // hyper's header timer, which would arm a fresh timer for every request and
            // close without the 408 HAProxy sends.
            .header_read_timeout(None)
            // A client may shut its sending side once the request is out (`nc -N`, some
            // scripts): it still gets its answer, as with HAProxy.
            .half_close(true);
        b
    };
}

/// Largest `stats` admin form body read (bytes).
const MAX_FORM: usize = 64 * 1024;
/// Client connections cut because they stopped reading their response.
pub static SLOW_READERS: AtomicU64 = AtomicU64::new(0);
/// `head_started` when no request head is being read.
const NO_HEAD: u64 = u64::MAX;

/// What a client connection's requests and its watchdog share.
struct ConnShared {
    started: Instant,
    /// [`coarse_ms`] when the connection was accepted: the origin of the fields below.
    base_ms: u64,
    /// Requests whose response has not ended yet.
    inflight: AtomicU32,
    /// Requests whose response head has not gone out yet (see `ClientIo::poll_refusal`).
    owed: AtomicU32,
    /// When the last response ended (ms after `started`).
    idle_since: AtomicU64,
    /// When the first byte of the request head being read came, or `NO_HEAD`.
    head_started: AtomicU64,
    /// Requests received.
    served: AtomicU64,
    /// Since when a write to the client has been waiting for room (ms after `started`),
    /// or `NO_HEAD` when the client takes what is sent.
    write_blocked: AtomicU64,
    /// Set when the watchdog cut the connection for `timeout client`: the log says `c`.
    cut_by_timeout: std::sync::atomic::AtomicBool,
    bytes_in: AtomicU64,
}

impl ConnShared {
    /// Milliseconds since the connection was accepted, on the coarse clock.
    fn ms(&self) -> u64 {
        coarse_ms().saturating_sub(self.base_ms)
    }
}

/// The monotonic clock at the kernel tick's resolution (a few ms), in ms: it
/// reads a value the kernel keeps, without reading the CPU's counter, and the
/// per-connection timeouts and the log's `Tr` need no more (HAProxy too reads
/// its clock once per loop).
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Marks a request in flight until dropped (response ended or abandoned).
struct InFlight(Arc<ConnShared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since.store(s.ms(), Ordering::Release);
        s.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client stream as hyper sees it: first the bytes read before hyper took
/// over (after a PROXY header), then the socket; reads are timed for the watchdog.
struct ClientIo<C> {
    inner: super::tls_io::Prefixed<C>,
    shared: Arc<ConnShared>,
    /// The frontend, for its `errorfile 400`.
    fe: Arc<FrontendRt>,
    /// lbd's answer to a request hyper could not parse, sent in place of
    /// hyper's own, and how much of it is out.
    refusal: Option<(Vec<u8>, usize)>,
    /// Set once a `101` went out: what follows is a tunnel's data.
    tunnel: bool,
    /// The write being tried starts with a final response head of lbd's (and
    /// whether it is a `101`): once some of it is out, one head less is owed.
    head_out: Option<bool>,
    /// Small writes held to the end of the worker's pass (plain TCP on a worker thread).
    cork: Option<Arc<cork::Slot>>,
}

impl<C> Drop for ClientIo<C> {
    fn drop(&mut self) {
        // Before the socket (a field) closes.
        if let Some(c) = &self.cork {
            c.close();
        }
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for ClientIo<C> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            let s = &this.shared;
            s.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            if this.fe.conf.options.contstats {
                this.fe.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            }
            if s.inflight.load(Ordering::Acquire) == 0 && s.head_started.load(Ordering::Acquire) == NO_HEAD {
                s.head_started.store(s.ms(), Ordering::Release);
            }
        }
        r
    }
}

impl<C> ClientIo<C> {
    /// Remembers since when the client has stopped taking data (a slow reader).
    fn note_write(&self, blocked: bool) {
        let s = &self.shared;
        if blocked {
            if s.write_blocked.load(Ordering::Relaxed) == NO_HEAD {
                s.write_blocked.store(s.ms(), Ordering::Relaxed);
            }
        } else if s.write_blocked.load(Ordering::Relaxed) != NO_HEAD {
            s.write_blocked.store(NO_HEAD, Ordering::Relaxed);
        }
    }
}

impl<C: AsyncWrite + Unpin> ClientIo<C> {
    /// hyper answers a request it cannot parse itself, with an empty 400 or 431.
    /// HAProxy answers 400 with its page (or the frontend's `errorfile 400`), and
    /// so does lbd. hyper's answer is told apart as a 4xx status line written
    /// when every request handed to lbd already has its response head out
    /// (`owed`), after the bytes of a new request head came (`head_started`),
    /// and before any tunnel. It is swallowed whole once lbd's has gone out;
    /// hyper closes the connection after it.
    fn poll_refusal(&mut self, cx: &mut Context<'_>, first: &[u8], len: usize) -> Option<Poll<std::io::Result<usize>>> {
        if self.refusal.is_none() {
            if self.tunnel || !first.starts_with(b"HTTP/1.") {
                return None;
            }
            let s = &self.shared;
            let status = first.get(9..12).unwrap_or_default();
            if s.owed.load(Ordering::Acquire) > 0 {
                // A response head of lbd's; an interim 1xx is not the final one.
                if status.first() != Some(&b'1') || status == b"101" {
                    self.head_out = Some(status == b"101");
                }
                return None;
            }
            if status.first() != Some(&b'4') || s.head_started.load(Ordering::Acquire) == NO_HEAD {
                return None;
            }
            self.refusal = Some((local::error_raw(400, &self.fe.conf.errorfiles), 0));
        }
        // The answers before it go first.
        match self.drain_held(cx, true) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
            Poll::Pending => return Some(Poll::Pending),
        }
        let (bytes, sent) = self.refusal.as_mut()?;
        while *sent < bytes.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Some(Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))),
                Poll::Ready(Ok(n)) => *sent += n,
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
        Some(Poll::Ready(Ok(len)))
    }

    /// Sends what the connection holds ([`cork::Slot::drain`]), keeping the
    /// slow-reader clock: started when the socket blocks, started again when
    /// bytes go out.
    fn drain_held(&mut self, cx: &mut Context<'_>, all: bool) -> Poll<std::io::Result<()>> {
        let Some(c) = &self.cork else { return Poll::Ready(Ok(())) };
        let mut moved = false;
        let r = c.drain(&mut self.inner, cx, all, &mut moved);
        if moved {
            self.note_write(false);
        }
        if r.is_pending() {
            self.note_write(true);
        }
        r
    }

    /// After a write to the client: a head that went out is no longer owed.
    fn wrote(&mut self, r: &Poll<std::io::Result<usize>>) {
        self.note_write(r.is_pending());
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            if let Some(upgrade) = self.head_out.take() {
                self.shared.owed.fetch_sub(1, Ordering::AcqRel);
                self.tunnel |= upgrade;
            }
        }
    }
}

/// The bytes of a write: `bufs`, with `swap`'s bytes in place of buffer `swap.0`.
fn parts<'a>(bufs: &'a [std::io::IoSlice<'a>], swap: Option<(usize, &'a [u8])>) -> impl Iterator<Item = &'a [u8]> {
    bufs.iter().enumerate().map(move |(i, b)| match swap {
        Some((at, bytes)) if at == i => bytes,
        _ => &b[..],
    })
}

/// Writes up to this many bytes of several buffers as one: copied together.
const JOIN_MAX: usize = 4096;

/// Writes `bufs` (with `swap`'s bytes, of the same length, in place of buffer
/// `swap.0`) to `w`. What fits in [`JOIN_MAX`] bytes, a response head and a
/// small body say, is copied into one buffer and goes out with a plain write
/// (`send`): the kernel's `writev` path costs more per call, and most writes
/// of a proxied request are small. Larger writes stay vectored.
fn write_joined<W: AsyncWrite + ?Sized>(
    w: Pin<&mut W>,
    cx: &mut Context<'_>,
    bufs: &[std::io::IoSlice<'_>],
    swap: Option<(usize, &[u8])>,
) -> Poll<std::io::Result<usize>> {
    let total: usize = parts(bufs, swap).map(<[u8]>::len).sum();
    if total <= JOIN_MAX {
        let mut joined = [0u8; JOIN_MAX];
        let mut len = 0;
        for b in parts(bufs, swap) {
            joined[len..len + b.len()].copy_from_slice(b);
            len += b.len();
        }
        return w.poll_write(cx, &joined[..len]);
    }
    match swap {
        Some((at, bytes)) => {
            let mut slices: Vec<std::io::IoSlice<'_>> = bufs.to_vec();
            if let Some(s) = slices.get_mut(at) {
                *s = std::io::IoSlice::new(bytes);
            }
            w.poll_write_vectored(cx, &slices)
        }
        None => w.poll_write_vectored(cx, bufs),
    }
}

/// hyper answers an HTTP/1.0 request with an `HTTP/1.0` status line; HAProxy
/// (and lbd) say `HTTP/1.1`, the version they speak, whatever the client's.
/// `Some` with the first bytes to write instead when `head` is such a line.
fn as_http11(head: &[u8]) -> Option<Vec<u8>> {
    if !head.starts_with(b"HTTP/1.0 ") {
        return None;
    }
    let mut v = head.to_vec();
    v[7] = b'1';
    Some(v)
}

impl<C: AsyncWrite + Unpin> AsyncWrite for ClientIo<C> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.cork.is_some() {
            return Pin::new(this).poll_write_vectored(cx, &[std::io::IoSlice::new(buf)]);
        }
        if let Some(r) = this.poll_refusal(cx, buf, buf.len()) {
            return r;
        }
        // Same length: what hyper is told was written maps byte for byte.
        let fixed = this.head_out.and_then(|_| as_http11(buf));
        let r = Pin::new(&mut this.inner).poll_write(cx, fixed.as_deref().unwrap_or(buf));
        this.wrote(&r);
        r
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let at = bufs.iter().position(|b| !b.is_empty());
        let first = at.map_or(&[][..], |i| &bufs[i][..]);
        if let Some(r) = this.poll_refusal(cx, first, bufs.iter().map(|b| b.len()).sum()) {
            return r;
        }
        let fixed = this.head_out.and_then(|_| as_http11(first));
        let swap = at.zip(fixed.as_deref());
        if let Some(c) = &this.cork {
            if !this.tunnel {
                if let Some(r) = c.hold(cx, bufs, swap) {
                    let r = Poll::Ready(r);
                    this.wrote(&r);
                    return r;
                }
            }
            // Too much to hold, a tunnel, or held bytes blocked: what is held goes first.
            std::task::ready!(this.drain_held(cx, true))?;
        }
        let r = write_joined(Pin::new(&mut this.inner), cx, bufs, swap);
        this.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // What is held goes out at the end of the pass; here only what an
        // end-of-pass send left behind.
        std::task::ready!(this.drain_held(cx, false))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.drain_held(cx, true))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A server connection kept for this client connection only: with `http-reuse
/// never`, or pinned because the server started NTLM/Negotiate authentication
/// on it (such a connection is authenticated as this client and must never
/// carry another client's requests).
struct Private {
    backend: String,
    server_id: u32,
    tx: Sender,
    pinned: bool,
}

/// One client connection.
struct ClientCtx {
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    tls: Option<Arc<crate::tls::TlsInfo>>,
    accept_ms: u128,
    shared: Arc<ConnShared>,
    private: Mutex<Option<Private>>,
    /// Whether `private` may hold a connection: most clients never have one.
    has_private: std::sync::atomic::AtomicBool,
    /// Tunnels (WebSocket) this connection turned into; `run` waits for them.
    tunnels: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Set by a transaction that ends the connection without an answer.
    abort: std::sync::atomic::AtomicBool,
    /// The client socket (`None` over TLS or in memory), for `silent-drop`.
    fd: Option<std::os::fd::RawFd>,
}

/// Returned to hyper to close a client connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection closed without an answer")]
struct Abort;

impl ClientCtx {
    /// `silent-drop`: whatever is sent or closed from now on never reaches the client.
    fn silence(&self) {
        if let Some(fd) = self.fd {
            super::session::silence(fd);
        }
    }

    fn take_private(&self) -> Option<Private> {
        if !self.has_private.load(Ordering::Acquire) {
            return None;
        }
        self.private.lock().ok()?.take()
    }

    fn put_private(&self, p: Private) {
        if let Ok(mut slot) = self.private.lock() {
            *slot = Some(p);
            self.has_private.store(true, Ordering::Release);
        }
    }

    fn pinned_to(&self, backend: &str) -> Option<u32> {
        if !self.has_private.load(Ordering::Acquire) {
            return None;
        }
        let slot = self.private.lock().ok()?;
        slot.as_ref().filter(|p| p.pinned && p.backend == backend).map(|p| p.server_id)
    }
}

/// How the connection's watchdog fired.
enum Expiry {
    /// A request head did not arrive in time: answer 408.
    Request,
    /// Idle between requests for too long: close silently.
    KeepAlive,
    /// The client took no data for `timeout client` while a response waited: cut.
    SlowReader,
}

/// Waits until the client is too slow to send a request head, or idles too
/// long between requests. It wakes at most once per limit, whatever the
/// request rate: each wake-up recomputes the deadline from the shared state.
async fn watchdog(
    s: &ConnShared,
    snapshot: &Snapshot,
    request: Option<Duration>,
    keep_alive: Option<Duration>,
    client: Option<Duration>,
) -> Expiry {
    // How often to look again while a request is in flight or no limit applies.
    // The shortest limit that may apply next: a request in flight can end (and a
    // keep-alive or request limit start) at any moment.
    let recheck = [client, keep_alive, request]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(5));
    loop {
        let retired = snapshot.retire_signal.notified();
        tokio::pin!(retired);
        retired.as_mut().enable();
        // A response whose last bytes still wait for the client counts as busy.
        let idle = s.inflight.load(Ordering::Acquire) == 0 && s.write_blocked.load(Ordering::Relaxed) == NO_HEAD;
        if idle && snapshot.close_idle.load(Ordering::Acquire) && s.head_started.load(Ordering::Acquire) == NO_HEAD {
            // lbd is stopping: an idle connection closes now.
            return Expiry::KeepAlive;
        }
        let wait = if !idle {
            // A client that takes none of its response for `timeout client` (a slow
            // reader holding the connection and its server) is cut.
            let blocked = s.write_blocked.load(Ordering::Relaxed);
            match client {
                Some(limit) if blocked != NO_HEAD => {
                    let deadline = blocked.saturating_add(limit.as_millis() as u64);
                    let now = s.ms();
                    if now >= deadline {
                        return Expiry::SlowReader;
                    }
                    Duration::from_millis(deadline - now).min(recheck)
                }
                _ => recheck,
            }
        } else {
            let now = s.ms();
            let head = s.head_started.load(Ordering::Acquire);
            let (limit, since, kind) = if head != NO_HEAD {
                (request, head, Expiry::Request)
            } else if s.served.load(Ordering::Acquire) == 0 {
                (request, 0, Expiry::Request)
            } else {
                (keep_alive, s.idle_since.load(Ordering::Acquire), Expiry::KeepAlive)
            };
            match limit {
                None => recheck,
                Some(limit) => {
                    let deadline = since.saturating_add(limit.as_millis() as u64);
                    if now >= deadline {
                        return kind;
                    }
                    Duration::from_millis(deadline - now)
                }
            }
        };
        // Never longer than `timeout client`: a request that starts meanwhile
        // may need its response watched for a slow reader.
        let wait = wait.min(recheck);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = retired => {}
        }
    }
}

/// Sends a last answer straight on the socket: hyper owns the stream, but only
/// reads are pending on it when the watchdog fires.
fn send_raw(fd: Option<std::os::fd::RawFd>, bytes: &[u8]) {
    // `fd` belongs to the client stream, still alive in the caller's scope; a
    // non-blocking send of a few hundred bytes either fits the socket buffer or is dropped.
    if let Some(fd) = fd {
        let _ = cork::send_now(fd, bytes);
    }
}

/// Serves one client connection; `preread` holds bytes already read (after a PROXY header).
#[allow(clippy::manual_async_fn)] // see the body's first comment
pub fn run<C: ClientStream>(
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    client: C,
    acc: Accepted,
    preread: Vec<u8>,
) -> impl std::future::Future<Output = ()> {
    // An async block, not an async fn: it keeps one copy of the arguments, not
    // two (rust-lang/rust#62958), in a future that lives as long as the connection.
    async move {
        let fd = client.raw_fd();
        let shared = Arc::new(ConnShared {
            started: acc.started,
            base_ms: coarse_ms(),
            inflight: AtomicU32::new(0),
            owed: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(if preread.is_empty() { NO_HEAD } else { 0 }),
            served: AtomicU64::new(0),
            write_blocked: AtomicU64::new(NO_HEAD),
            cut_by_timeout: std::sync::atomic::AtomicBool::new(false),
            bytes_in: AtomicU64::new(0),
        });
        let t = &fe.conf.timeouts;
        let request_limit = t.http_request.or(t.client);
        let keep_alive_limit = t.http_keep_alive.or(t.http_request).or(t.client);
        let limit = (snapshot.global.tune_bufsize as usize).max(8192);
        let close_each = fe.conf.options.http_conn_mode == HttpConnMode::Close;
        let ignore_probes = fe.conf.options.http_ignore_probes;
        let cx = Arc::new(ClientCtx {
            snapshot,
            fe,
            src: acc.src,
            dst: acc.dst,
            tls: acc.tls.clone(),
            accept_ms: acc.accept_ms,
            shared: Arc::clone(&shared),
            private: Mutex::new(None),
            has_private: std::sync::atomic::AtomicBool::new(false),
            tunnels: Mutex::new(Vec::new()),
            abort: std::sync::atomic::AtomicBool::new(false),
            fd,
        });
        let held = cork::slot(fd);
        let io = ClientIo {
            inner: super::tls_io::Prefixed::new(preread, client),
            shared: Arc::clone(&shared),
            fe: Arc::clone(&cx.fe),
            refusal: None,
            tunnel: false,
            head_out: None,
            cork: held.clone(),
        };
        let svc_cx = Arc::clone(&cx);
        let svc = hyper::service::service_fn(move |req| {
            let cx = Arc::clone(&svc_cx);
            async move {
                let resp = handle(Arc::clone(&cx), req).await;
                // hyper closes the connection when the service fails, sending nothing.
                if cx.abort.swap(false, Ordering::AcqRel) {
                    drop(resp);
                    return Err(Abort);
                }
                Ok(resp)
            }
        });
        let mut builder = SERVER_H1.with(Clone::clone);
        builder.max_buf_size(limit).keep_alive(!close_each);
        let conn = builder.serve_connection(TokioIo::new(io), svc).with_upgrades();
        tokio::pin!(conn);
        let outcome = tokio::select! {
            r = &mut conn => Ok(r),
            e = watchdog(&shared, &cx.snapshot, request_limit, keep_alive_limit, cx.fe.conf.timeouts.client) => Err(e),
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // A request hyper refused to parse: lbd answered 400 in place of hyper
                // (ClientIo); HAProxy logs it as blocked by the proxy while reading the request.
                if e.is_parse() || e.is_parse_too_large() {
                    log_bad_request(&cx, 400, ['P', 'R']);
                }
            }
            Err(Expiry::Request) => {
                let nothing_sent = shared.head_started.load(Ordering::Acquire) == NO_HEAD;
                if !(nothing_sent && ignore_probes) {
                    // Anything held goes before the 408.
                    if let Some(h) = &held {
                        h.close();
                    }
                    send_raw(fd, &local::error_raw(408, &cx.fe.conf.errorfiles));
                    log_bad_request(&cx, 408, ['c', 'R']);
                }
            }
            Err(Expiry::KeepAlive) => {}
            Err(Expiry::SlowReader) => {
                SLOW_READERS.fetch_add(1, Ordering::Relaxed);
                shared.cut_by_timeout.store(true, Ordering::Release);
            }
        }
        // With `option contstats` they were counted as they came.
        if !cx.fe.conf.options.contstats {
            cx.fe.bytes_in.fetch_add(shared.bytes_in.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let tunnels = cx.tunnels.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for t in tunnels {
            let _ = t.await;
        }
    }
}

fn log_bad_request(cx: &ClientCtx, status: i32, term: [char; 2]) {
    let fe = &cx.fe;
    if !fe.conf.options.httplog || fe.logger.is_empty() {
        return;
    }
    let line = HttpLog {
        client: cx.src,
        accept_ms: cx.accept_ms,
        frontend: fe.name(),
        ssl: cx.tls.is_some(),
        backend: fe.name(),
        server: "<NOSRV>",
        t_request: -1,
        t_queue: -1,
        t_connect: -1,
        t_response: -1,
        t_active: cx.shared.started.elapsed().as_millis() as i64,
        status,
        bytes: 0,
        termination: [term[0], term[1], '-', '-'],
        actconn: super::ACTIVE_CONNS.load(Ordering::Relaxed),
        feconn: fe.cur_conns.load(Ordering::Relaxed),
        beconn: 0,
        srv_conn: 0,
        retries: 0,
        redispatched: false,
        captures: &[],
        res_captures: &[],
        request: "<BADREQ>",
        clf: fe.conf.options.httplog_clf,
        early: false,
    }
    .format();
    // Always an error (`P` or `c`): logged under `dontlog-normal` too.
    fe.logger
        .log(super::log::level_of(true, fe.conf.options.log_separate_errors), &line);
}

/// A moment, read from the clock only when the frontend logs: the timers of a
/// transaction are for its log line, and the clock is not free.
#[derive(Clone, Copy)]
struct Stamp(Option<Instant>);

impl Stamp {
    fn now(timed: bool) -> Stamp {
        Stamp(timed.then(Instant::now))
    }

    /// Milliseconds since, or 0 when not timed.
    fn ms(self) -> i64 {
        self.0.map_or(0, |t| t.elapsed().as_millis() as i64)
    }
}

/// Where a server connection goes once its response ended.
enum GiveBack {
    Pool(Arc<ServerRt>),
    Private {
        backend: String,
        server_id: u32,
        pinned: bool,
    },
    /// Its client leaves: to the pool while the server has fewer idle
    /// connections than requests in progress, else nowhere (a reset).
    Leaving(Arc<ServerRt>),
    /// Nowhere: a private connection whose client leaves ends with a reset.
    Reset,
}

/// One transaction's state for the log, and what its end releases.
struct Txn {
    cx: Arc<ClientCtx>,
    _inflight: InFlight,
    started: Stamp,
    backend: Option<Arc<BackendRt>>,
    server: Option<Arc<ServerRt>>,
    t_request: i64,
    t_queue: i64,
    t_connect: i64,
    t_response: i64,
    status: i32,
    term: [char; 4],
    retries: u32,
    redispatched: bool,
    captures: Vec<String>,
    res_captures: Vec<String>,
    request: String,
    slot: Option<SlotGuard>,
    give_back: Option<(Sender, GiveBack)>,
    /// Bytes of the response head (estimated) sent before the body.
    head_bytes: u64,
    /// Bytes of the request head (estimated) sent to the server, and how much
    /// of its body went out: the backend's and the server's bytes in.
    req_head_bytes: u64,
    req_body_sent: Option<Arc<AtomicU64>>,
    /// The request body's and the response body's bytes were added to the
    /// counters as they went (`option contstats`): the end adds only the heads.
    live_in: bool,
    live_out: bool,
    /// The log line went out when the response head came (`option logasap`).
    logged: bool,
}

impl Finish for Txn {
    fn finish(mut self: Box<Self>, ended: Ended, bytes: u64) {
        match ended {
            Ended::Complete => {
                if let Some((tx, to)) = self.give_back.take() {
                    match to {
                        GiveBack::Pool(s) => {
                            let (max, purge) = pool_limits(&s);
                            s.pool.put(tx, max, purge)
                        }
                        GiveBack::Private {
                            backend,
                            server_id,
                            pinned,
                        } => self.cx.put_private(Private {
                            backend,
                            server_id,
                            tx,
                            pinned,
                        }),
                        GiveBack::Reset => tx.reset(),
                        GiveBack::Leaving(s) => {
                            let (max, purge) = pool_limits(&s);
                            // The requests in progress (this one included) are the ones that
                            // could want an idle connection next; HAProxy too keeps idle
                            // connections up to what was recently in use, and resets the rest.
                            if s.pool.idle_below(s.cur_conns.load(Ordering::Acquire) as usize, purge) {
                                s.pool.put(tx, max, purge)
                            } else {
                                tx.reset()
                            }
                        }
                    }
                }
            }
            Ended::Aborted if self.cx.shared.cut_by_timeout.load(Ordering::Acquire) => self.set_term('c', 'D'),
            Ended::Aborted => self.set_term('C', 'D'),
            Ended::TimedOut => self.set_term('s', 'D'),
            Ended::Failed => self.set_term('S', 'D'),
        }
        let total = bytes + self.head_bytes;
        let out = if self.live_out { self.head_bytes } else { total };
        let fe = &self.cx.fe;
        fe.bytes_out.fetch_add(out, Ordering::Relaxed);
        let sent = if self.live_in {
            self.req_head_bytes
        } else {
            self.req_head_bytes + self.req_body_sent.as_ref().map_or(0, |c| c.load(Ordering::Relaxed))
        };
        if let Some(be) = &self.backend {
            be.bytes_out.fetch_add(out, Ordering::Relaxed);
            be.bytes_in.fetch_add(sent, Ordering::Relaxed);
        }
        if let Some(s) = &self.server {
            s.bytes_out.fetch_add(out, Ordering::Relaxed);
            s.bytes_in.fetch_add(sent, Ordering::Relaxed);
        }
        if !self.logged {
            self.log(total, false);
        }
        // The server slot is released only now: leastconn counts transactions in progress.
        drop(self.slot.take());
    }
}

impl Txn {
    fn set_term(&mut self, who: char, state: char) {
        if self.term[0] == '-' {
            self.term[0] = who;
            self.term[1] = state;
        }
    }

    /// Writes the transaction's log line: at its end, or `early` when the
    /// server's response head came (`option logasap`), with the total time and
    /// the bytes as they were then.
    fn log(&self, bytes: u64, early: bool) {
        let fe = &self.cx.fe;
        let o = &fe.conf.options;
        if !(o.httplog || o.tcplog) || fe.logger.is_empty() {
            return;
        }
        let error = super::log::is_error(self.term[0], self.retries, self.redispatched, self.status);
        if o.dontlog_normal && !error {
            return;
        }
        let backend = self.backend.as_ref().map_or(fe.name(), |b| b.name());
        let server = self.server.as_ref().map_or("<NOSRV>", |s| s.name());
        let line = HttpLog {
            client: self.cx.src,
            accept_ms: self.cx.accept_ms,
            frontend: fe.name(),
            ssl: self.cx.tls.is_some(),
            backend,
            server,
            t_request: self.t_request,
            t_queue: self.t_queue,
            t_connect: self.t_connect,
            t_response: self.t_response,
            t_active: self.started.ms(),
            status: self.status,
            bytes,
            termination: self.term,
            actconn: super::ACTIVE_CONNS.load(Ordering::Relaxed),
            feconn: fe.cur_conns.load(Ordering::Relaxed),
            beconn: self.backend.as_ref().map_or(0, |b| b.cur_conns.load(Ordering::Relaxed)),
            srv_conn: self.server.as_ref().map_or(0, |s| s.cur_conns.load(Ordering::Relaxed)),
            retries: self.retries,
            redispatched: self.redispatched,
            captures: &self.captures,
            res_captures: &self.res_captures,
            request: &self.request,
            clf: o.httplog_clf,
            early,
        }
        .format();
        fe.logger.log(super::log::level_of(error, o.log_separate_errors), &line);
    }

    /// Sends a response lbd made; its end writes the log line.
    fn answer(mut self, mut resp: Response<LbBody>, close: bool) -> Response<LbBody> {
        if self.term[0] == '-' {
            self.term[0] = 'L';
            self.term[1] = 'R';
        }
        self.status = i32::from(resp.status().as_u16());
        if close || self.cx.snapshot.retired.load(Ordering::Acquire) {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        self.head_bytes = head_size(resp.headers());
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, body.on_finish(Box::new(self)))
    }

    /// An answer from an `http-request` rule: a refusal is logged `PR` (`PT`
    /// when tarpitted), others `LR`.
    async fn rule_answer(mut self, a: RuleAnswer) -> Response<LbBody> {
        if a.blocked {
            self.term[0] = 'P';
            self.term[1] = if a.delay.is_some() { 'T' } else { 'R' };
        }
        if let Some(d) = a.delay {
            tokio::time::sleep(d).await;
        }
        if a.drop {
            if a.silent {
                self.cx.silence();
            }
            return self.drop_connection();
        }
        self.answer(a.resp, a.close)
    }

    /// Ends the client connection without an answer; the log shows status -1.
    fn drop_connection(self) -> Response<LbBody> {
        self.cx.abort.store(true, Ordering::Release);
        Response::new(LbBody::empty().on_finish(Box::new(self)))
    }

    /// An error answer, with the backend's errorfiles if one was chosen.
    fn fail(mut self, code: u16, term: [char; 2]) -> Response<LbBody> {
        self.term[0] = term[0];
        self.term[1] = term[1];
        let files = self.backend.as_ref().map_or(&self.cx.fe.conf.errorfiles, |b| &b.conf.errorfiles);
        let resp = local::error(code, files);
        self.answer(resp, false)
    }
}

/// The request target as rules and logs see it: in origin form (the usual
/// case) the text as it came, else the whole URI.
fn target_text(u: &http::Uri) -> std::borrow::Cow<'_, str> {
    match u.path_and_query() {
        Some(pq) if u.scheme().is_none() => pq.as_str().into(),
        _ => u.to_string().into(),
    }
}

fn head_size(h: &HeaderMap) -> u64 {
    // Status line plus each header line; close enough for byte counters.
    17 + h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum::<usize>() as u64 + 2
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Headers about one hop only: never forwarded as they came.
const HOP_BY_HOP: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::PROXY_AUTHENTICATE,
];

/// The tokens of a header block's Connection headers.
fn connection_tokens(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // The names the Connection header lists are hop-by-hop too. Its tokens are
    // split once (usually just "keep-alive" or "close"), then one pass over the
    // names present (usually a handful) instead of a lookup per hop-by-hop name.
    let doomed: SmallVec<[header::HeaderName; 4]> = {
        let listed: SmallVec<[&str; 4]> = connection_tokens(h).collect();
        h.keys()
            .filter(|n| {
                if *n == header::UPGRADE {
                    return !keep_upgrade;
                }
                // Names are stored in lower case: plain comparisons suffice for ours.
                HOP_BY_HOP.contains(n)
                    || matches!(n.as_str(), "keep-alive" | "proxy-connection")
                    || listed.iter().any(|t| n.as_str().eq_ignore_ascii_case(t))
            })
            .cloned()
            .collect()
    };
    for n in doomed {
        h.remove(n);
    }
}

/// A server's `pool-max-conn` (-1: lbd's bound; 0: no pooling) and `pool-purge-delay`.
fn pool_limits(s: &ServerRt) -> (usize, Duration) {
    let p = &s.conf.params;
    let max = match p.pool_max_conn {
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(upstream::MAX_IDLE),
        _ => upstream::MAX_IDLE,
    };
    (max, p.pool_purge_delay.unwrap_or(upstream::PURGE_DELAY))
}

/// What fetches see of a request while its rules run.
fn request_view<'a>(parts: &'a http::request::Parts, uri: &'a str, vars: &'a [(String, Sample)]) -> HttpView<'a> {
    HttpView {
        method: parts.method.as_str(),
        uri,
        version: version_text(parts.version),
        headers: &parts.headers,
        status: None,
        res_headers: None,
        vars,
    }
}

/// Whether a frontend and a backend are one `listen` section (a frontend and a
/// backend may also share a name while being two sections).
fn same_proxy(fe: &FrontendRt, be: &BackendRt) -> bool {
    fe.conf.loc == be.conf.loc && fe.name() == be.name()
}

/// The client IP as logs and X-Forwarded-For write it (IPv4-mapped IPv6 as IPv4).
fn client_ip(a: Option<SocketAddr>) -> Option<IpAddr> {
    a.map(|a| a.ip().to_canonical())
}

fn in_network(ip: IpAddr, net: &str) -> bool {
    let (host, bits) = match net.split_once('/') {
        Some((h, b)) => (h, b.parse::<u8>().ok()),
        None => (net, None),
    };
    let Ok(n) = host.parse::<IpAddr>() else { return false };
    let bits = bits.unwrap_or(if n.is_ipv4() { 32 } else { 128 });
    super::acl_eval::ip_in(ip, n, bits)
}

/// The persistence cookie's value in the request, if any.
fn request_cookie<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// Rewrites cookie `name` in the request's Cookie lines: `value` maps its value
/// to the new one, or to `None` to drop the cookie; other cookies stay as they are.
fn rewrite_request_cookie(h: &mut HeaderMap, name: &str, value: impl Fn(&str) -> Option<String>) {
    let lines: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|line| {
            line.split(';')
                .filter_map(|kv| {
                    let kv = kv.trim();
                    match kv.split_once('=') {
                        Some((k, v)) if k == name => value(v).map(|v| format!("{k}={v}")),
                        None if kv == name => None,
                        _ => Some(kv.to_owned()),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|l| !l.is_empty())
        .collect();
    h.remove(header::COOKIE);
    for l in lines {
        if let Ok(v) = HeaderValue::from_str(&l) {
            h.append(header::COOKIE, v);
        }
    }
}

/// Removes cookie `name` from the request (insert mode: the server never set it).
fn remove_request_cookie(h: &mut HeaderMap, name: &str) {
    rewrite_request_cookie(h, name, |_| None);
}

/// `cookie NAME prefix`: strips `SERVER~` from the cookie's value before the server sees it.
fn strip_cookie_prefix(h: &mut HeaderMap, name: &str) {
    rewrite_request_cookie(h, name, |v| Some(v.split_once('~').map_or(v, |(_, rest)| rest).to_owned()));
}

/// The hash `balance uri|url_param|hdr` chooses a server with; `None` when the request lacks the data.
fn balance_hash(balance: &Balance, view: &HttpView) -> Option<u64> {
    let data: String = match balance {
        Balance::Uri { whole, len, depth } => {
            let mut s = if *whole { view.uri.to_owned() } else { view.path().to_owned() };
            if let Some(d) = depth {
                let mut seen = 0;
                if let Some((i, _)) = s.match_indices('/').find(|_| {
                    seen += 1;
                    seen > *d
                }) {
                    s.truncate(i);
                }
            }
            if let Some(l) = len {
                let mut cut = (*l as usize).min(s.len());
                // Never inside a multi-byte character of the path.
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
            }
            s
        }
        Balance::UrlParam(name) => view
            .query()?
            .split('&')
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| k == name).map(|(_, v)| v))?
            .to_owned(),
        Balance::Hdr { name, use_domain_only } => {
            let v = view.header(name)?;
            if *use_domain_only {
                let host = v.split(':').next().unwrap_or(v);
                let labels: Vec<&str> = host.split('.').collect();
                // The label before the TLD: "www.example.com" -> "example".
                labels
                    .len()
                    .checked_sub(2)
                    .and_then(|i| labels.get(i))
                    .copied()
                    .unwrap_or(host)
                    .to_owned()
            } else {
                v.to_owned()
            }
        }
        _ => return None,
    };
    Some(super::balance::hash_bytes(data.as_bytes()))
}

/// The values `capture ... header NAME len N` keep for the log, cut to their length.
fn capture(list: &[(String, u32)], headers: &HeaderMap) -> Vec<String> {
    list.iter()
        .map(|(name, len)| {
            let v = headers.get(name.as_str()).and_then(|v| v.to_str().ok()).unwrap_or("");
            v.chars().take(*len as usize).collect()
        })
        .collect()
}

/// Whether a request may be sent again after a failure (RFC 9110's idempotent methods, no body).
fn replayable(method: &http::Method, body: &Incoming) -> bool {
    use http_body::Body;
    matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE") && body.is_end_stream()
}

async fn handle(cx: Arc<ClientCtx>, req: Request<Incoming>) -> Response<LbBody> {
    let shared = &cx.shared;
    shared.inflight.fetch_add(1, Ordering::AcqRel);
    shared.owed.fetch_add(1, Ordering::AcqRel);
    let inflight = InFlight(Arc::clone(shared));
    let now = shared.ms();
    let head_at = shared.head_started.swap(NO_HEAD, Ordering::AcqRel);
    let t_request = if head_at == NO_HEAD {
        0
    } else {
        now.saturating_sub(head_at) as i64
    };
    let first_request = shared.served.fetch_add(1, Ordering::AcqRel) == 0;
    let fe = Arc::clone(&cx.fe);
    let snapshot = Arc::clone(&cx.snapshot);

    let (mut parts, body) = req.into_parts();
    // Hop-by-hop headers go first, before any rule or `option forwardfor` adds its
    // own: a client's `Connection: X-Forwarded-For` must not strip lbd's header.
    let says = |token: &str| connection_tokens(&parts.headers).any(|t| t.eq_ignore_ascii_case(token));
    let wants_upgrade = parts.version == Version::HTTP_11 && parts.headers.contains_key(header::UPGRADE) && says("upgrade");
    // The client leaves after this response: it said so (HTTP/1.0 closes unless
    // it asks for keep-alive). (`option httpclose` closes the server side anyway.)
    let client_closes = match parts.version {
        Version::HTTP_10 => !says("keep-alive"),
        _ => says("close"),
    };
    strip_hop_by_hop(&mut parts.headers, wants_upgrade);
    // Absolute form (`GET http://a.example/x`): the target's authority is the host, whatever
    // a Host header says (RFC 9112, 3.2.2); rules, logs and the server all see that one.
    if let Some(authority) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    let mut uri = target_text(&parts.uri).into_owned();
    let version = version_text(parts.version);
    let timed = (fe.conf.options.httplog || fe.conf.options.tcplog) && !fe.logger.is_empty();
    let captures = capture(&fe.conf.captures, &parts.headers);
    let mut txn = Txn {
        cx: Arc::clone(&cx),
        _inflight: inflight,
        started: Stamp::now(timed),
        backend: None,
        server: None,
        t_request,
        t_queue: -1,
        t_connect: -1,
        t_response: -1,
        status: -1,
        term: ['-', '-', '-', '-'],
        retries: 0,
        redispatched: false,
        captures,
        res_captures: Vec::new(),
        // Only a frontend that logs needs the request line.
        request: if timed {
            format!("{} {} {version}", parts.method, uri)
        } else {
            String::new()
        },
        slot: None,
        give_back: None,
        head_bytes: 0,
        req_head_bytes: 0,
        req_body_sent: None,
        live_in: false,
        live_out: false,
        logged: false,
    };
    let mut vars: Vec<(String, Sample)> = Vec::new();

    macro_rules! view {
        () => {
            request_view(&parts, &uri, &vars)
        };
    }
    macro_rules! ctx {
        ($view:expr, $be:expr) => {
            SampleCtx {
                src: cx.src,
                dst: cx.dst,
                tls: cx.tls.as_deref(),
                snapshot: &snapshot,
                frontend: &fe,
                backend: $be,
                http: Some($view),
            }
        };
    }

    // monitor-uri: lbd answers for the whole service.
    if let Some(m) = &fe.conf.monitor_uri {
        let view = view!();
        if view.path() == m {
            let ctx = ctx!(&view, None);
            let failing = fe.conf.monitor_fail.iter().any(|c| acl_eval::eval(c, &ctx));
            let code = if failing { 503 } else { 200 };
            return txn.answer(local::simple(code, "text/html", local::page(code)), false);
        }
    }

    // The frontend's http-request rules.
    if let Some(a) = request_rules(&cx, &fe.conf.http_request, None, &mut parts, &mut uri, &mut vars) {
        return txn.rule_answer(a).await;
    }

    // The stats page.
    if fe.conf.stats_enabled {
        let stats_uri = fe.conf.stats_uri.clone().unwrap_or_else(|| "/haproxy?stats".to_owned());
        if uri.starts_with(&stats_uri) {
            let resp = stats(&cx, &parts, &uri, &stats_uri, &vars, body).await;
            return txn.answer(resp, false);
        }
    }

    // `redirect` rules, then backend switching.
    for (r, cond, _) in &fe.conf.redirects {
        let view = view!();
        let ctx = ctx!(&view, None);
        if acl_eval::holds(cond.as_ref(), &ctx) {
            let resp = local::redirect(r, &view);
            return txn.answer(resp, false);
        }
    }
    let be = {
        let view = view!();
        let acc = Accepted {
            src: cx.src,
            dst: cx.dst,
            tls: cx.tls.clone(),
            accept_ms: cx.accept_ms,
            started: shared.started,
        };
        session::choose_backend(&snapshot, &fe, &acc, Some(&view))
    };
    let Some(be) = be else {
        return txn.fail(503, ['S', 'C']);
    };
    txn.backend = Some(Arc::clone(&be));
    if be.conf.mode != Mode::Http {
        return txn.fail(500, ['P', 'R']);
    }
    if !same_proxy(&fe, &be) {
        if let Some(a) = request_rules(&cx, &be.conf.http_request, Some(&be), &mut parts, &mut uri, &mut vars) {
            return txn.rule_answer(a).await;
        }
    }

    // Who the client is, for the server.
    let (fo, bo) = (&fe.conf.options, &be.conf.options);
    if let (Some(ff), Some(ip)) = (bo.forwardfor.as_ref().or(fo.forwardfor.as_ref()), client_ip(cx.src)) {
        let excepted = ff.except.as_deref().is_some_and(|n| in_network(ip, n));
        let present = parts.headers.contains_key(ff.header.as_str());
        let skip = excepted || (ff.if_none && present);
        if !skip {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::from_bytes(ff.header.as_bytes()),
                HeaderValue::from_str(&ip.to_string()),
            ) {
                parts.headers.append(n, v);
            }
        }
    }
    if fo.originalto || bo.originalto {
        if let Some(ip) = client_ip(cx.dst) {
            if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                parts.headers.append("x-original-to", v);
            }
        }
    }

    // The server: a pinned connection's, the persistence cookie's, a stick table's, or the balancer's.
    let cookie = be.conf.cookie.as_ref();
    let mut cookie_server: Option<Arc<ServerRt>> = None;
    // The date stamps of an inserted cookie with `maxidle`/`maxlife`: (last seen, first seen).
    let mut cookie_dates: Option<(u64, u64)> = None;
    if let Some(c) = cookie {
        let value = request_cookie(&parts.headers, &c.name).map(|v| match c.mode {
            CookieMode::Prefix => v.split_once('~').map_or(v, |(p, _)| p).to_owned(),
            _ => v.to_owned(),
        });
        let dated = c.mode == CookieMode::Insert && (c.maxidle.is_some() || c.maxlife.is_some());
        let (value, dates) = match value {
            Some(v) if dated => {
                let (v, d) = cookie_stamp::split(&v);
                (Some(v.to_owned()), d)
            }
            v => (v, None),
        };
        let now = cookie_stamp::now();
        let expired = dates.and_then(|(last, first)| {
            if c.maxidle.is_some_and(|m| now.saturating_sub(last) > m.as_secs()) {
                Some('E')
            } else if c.maxlife.is_some_and(|m| now.saturating_sub(first) > m.as_secs()) {
                Some('O')
            } else {
                None
            }
        });
        txn.term[2] = match (&value, expired) {
            (None, _) => 'N',
            // Too long unused (maxidle) or too old (maxlife): ignored, a new one is set.
            (Some(_), Some(flag)) => flag,
            (Some(v), None) => match be.servers.iter().find(|s| s.conf.cookie.as_deref() == Some(v.as_str())) {
                None => 'I',
                Some(s) if s.is_up() || be.conf.options.persist => {
                    cookie_server = Some(Arc::clone(s));
                    cookie_dates = dates;
                    'V'
                }
                Some(_) => 'D',
            },
        };
        match c.mode {
            CookieMode::Insert => remove_request_cookie(&mut parts.headers, &c.name),
            CookieMode::Prefix => strip_cookie_prefix(&mut parts.headers, &c.name),
            CookieMode::Rewrite => {}
        }
    }
    let acc = Accepted {
        src: cx.src,
        dst: cx.dst,
        tls: cx.tls.clone(),
        accept_ms: cx.accept_ms,
        started: shared.started,
    };
    let (sticky_srv, sticky) = {
        let view = view!();
        session::sticky_server(&snapshot, &fe, &be, &acc, Some(&view))
    };
    let pinned = cx.pinned_to(be.name()).and_then(|id| be.server_by_id(id).cloned());
    let hash = {
        let view = view!();
        balance_hash(&be.conf.balance, &view)
    };
    let client_addr = client_ip(cx.src).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let queued = Stamp::now(timed);
    let preferred = pinned.or_else(|| cookie_server.clone()).or(sticky_srv);
    let choice = session::choose_server(&be, preferred, client_addr, None, hash);
    // `option abortonclose`: a client that leaves while its request waits in the queue
    // takes the request with it (`CQ`); the server never sees it. As in haproxy 2.6, the
    // frontend must have the option too (from a defaults section: a frontend's own
    // line is ignored), else the client's close counts as a half-close.
    let abortonclose = be.conf.options.abortonclose && fe.conf.options.abortonclose;
    let chosen = match cx.fd.filter(|_| abortonclose) {
        Some(fd) => tokio::select! {
            biased;
            c = choice => c,
            () = session::until_client_closed(fd) => {
                txn.t_queue = queued.ms();
                txn.term[0] = 'C';
                txn.term[1] = 'Q';
                return txn.drop_connection();
            }
        },
        None => choice.await,
    };
    let (mut server, slot) = match chosen {
        Chosen::Server(s, g) => (s, g),
        Chosen::QueueTimeout => {
            txn.t_queue = queued.ms();
            return txn.fail(503, ['s', 'Q']);
        }
        Chosen::NoServer => return txn.fail(503, ['S', 'C']),
    };
    txn.t_queue = queued.ms();
    txn.slot = Some(slot);

    // The request as the server gets it.
    let client_upgrade = if wants_upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let server_close = matches!(
        fe.conf.options.http_conn_mode.max_mode(be.conf.options.http_conn_mode),
        HttpConnMode::ServerClose | HttpConnMode::Close
    );
    if wants_upgrade {
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if server_close && !be.conf.options.http_pretend_keepalive {
        // `option http-pretend-keepalive`: the server is not told; lbd still closes after
        // the response.
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // `retry-on` beyond connect failures: requests without a body keep a copy of their head.
    let replay_head = (!be.conf.retry_on.is_empty() && replayable(&parts.method, &body))
        .then(|| (parts.method.clone(), uri.clone(), parts.headers.clone()));
    let client_timeout = fe.conf.timeouts.client;
    // How much of the request body went out: after a client-side body error it
    // tells whether the server saw the request at all.
    let body_sent = {
        use http_body::Body;
        (!body.is_end_stream()).then(|| Arc::new(AtomicU64::new(0)))
    };
    txn.req_head_bytes = head_size(&parts.headers) + (parts.method.as_str().len() + uri.len() + 11) as u64;
    txn.req_body_sent = body_sent.clone();
    let mut outgoing = Some({
        let mut out_body = LbBody::stream(body, client_timeout);
        if let Some(c) = &body_sent {
            out_body = out_body.counted(Arc::clone(c));
        }
        let mut r = Request::new(out_body);
        *r.method_mut() = parts.method.clone();
        *r.version_mut() = Version::HTTP_11;
        // `http-response` rules may still look at the request's headers.
        *r.headers_mut() = if be.conf.http_response.is_empty() && fe.conf.http_response.is_empty() {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        // The parsed target is reused unless a rule rewrote it.
        if uri == target_text(&parts.uri) {
            *r.uri_mut() = std::mem::take(&mut parts.uri);
        } else {
            match uri.parse::<http::Uri>() {
                Ok(u) => *r.uri_mut() = u,
                Err(_) => return txn.fail(400, ['P', 'R']),
            }
        }
        r
    });

    // Connect (or reuse), send, and wait for the response head.
    let local_port = cx.dst.map_or(0, |d| d.port());
    let connect_timeout = be.conf.timeouts.connect.unwrap_or(Duration::from_secs(5));
    let server_timeout = be.conf.timeouts.server;
    let reuse = be.conf.http_reuse;
    let connect_started = Stamp::now(timed);
    let mut attempt = 0u32;
    let mut stale_retries = 0u32;
    // Set when a `retry-on` replay is the last retry and `option redispatch` moves it.
    let mut redispatch_next = false;
    // Whether the connection used is one pinned to this client by NTLM/Negotiate.
    let mut used_pinned = false;
    let (resp, tx) = loop {
        if std::mem::take(&mut redispatch_next) {
            let exclude = Some(server.conf.id);
            if let Chosen::Server(s, g) = session::choose_server(&be, None, client_addr, exclude, hash).await {
                txn.redispatched = true;
                server = s;
                txn.slot = Some(g);
            }
        }
        // 1. A connection of this client's, to this server.
        let mut tx: Option<Sender> = None;
        let mut reused = false;
        if let Some(p) = cx.take_private() {
            if p.backend == be.name() && p.server_id == server.conf.id {
                tx = upstream::ready(p.tx).await;
                reused = tx.is_some();
                // Authenticated as this client (NTLM): it stays this client's.
                used_pinned = reused && p.pinned;
            }
        }
        // 2. An idle one from the server's pool, as `http-reuse` allows.
        let shareable = match reuse {
            HttpReuse::Never => false,
            HttpReuse::Safe => !first_request,
            HttpReuse::Aggressive | HttpReuse::Always => true,
        };
        if tx.is_none() && shareable && !server_close {
            tx = server.pool.take(pool_limits(&server).1).await;
            reused = tx.is_some();
        }
        // 3. A new one.
        let tx = match tx {
            Some(t) => t,
            None => {
                let Some(target) = server.endpoint(local_port) else {
                    return txn.fail(503, ['P', 'C']);
                };
                let header = server.conf.params.send_proxy.map(|v| super::proxy_proto::header(v, cx.src, cx.dst));
                let tls = server.tls_for(&snapshot, &fe, &be, &acc);
                let tried = Instant::now();
                // The request (or the TLS hello) goes out as soon as the connection is up.
                let opts = crate::runtime::tls_io::ServerSocket::of(&be.conf.options, true);
                match upstream::connect(target, connect_timeout, header, tls, opts).await {
                    Ok(t) => t,
                    Err(e) => {
                        let timed_out = matches!(e, upstream::ConnectError::Timeout);
                        server.connect_errors.fetch_add(1, Ordering::Relaxed);
                        session::observe_failure(&snapshot, &be, &server);
                        if attempt >= be.conf.retries {
                            txn.server = Some(Arc::clone(&server));
                            txn.retries = attempt;
                            // Never connected: Tc stays -1, as in HAProxy's logs.
                            return txn.fail(503, if timed_out { ['s', 'C'] } else { ['S', 'C'] });
                        }
                        attempt += 1;
                        if !timed_out {
                            let pause = session::TURN_AROUND.min(connect_timeout).saturating_sub(tried.elapsed());
                            tokio::time::sleep(pause).await;
                        }
                        if attempt == be.conf.retries && be.conf.options.redispatch {
                            let exclude = Some(server.conf.id);
                            if let Chosen::Server(s, g) = session::choose_server(&be, None, client_addr, exclude, hash).await {
                                txn.redispatched = true;
                                server = s;
                                txn.slot = Some(g);
                            }
                        }
                        continue;
                    }
                }
            }
        };
        let mut tx = tx;
        let Some(mut req) = outgoing.take() else {
            return txn.fail(500, ['P', 'H']);
        };
        // `option contstats`: the request body counts for this backend and
        // server as it goes out.
        if fe.conf.options.contstats && body_sent.is_some() {
            let (b, s) = (Arc::clone(&be), Arc::clone(&server));
            req.body_mut().live(Box::new(move |n| {
                b.bytes_in.fetch_add(n, Ordering::Relaxed);
                s.bytes_in.fetch_add(n, Ordering::Relaxed);
            }));
            txn.live_in = true;
        }
        if txn.t_connect < 0 || !reused {
            txn.t_connect = connect_started.ms();
        }
        let sent_at = Stamp::now(timed);
        let send = tx.tx.try_send_request(req);
        // `timeout server` counts inactivity, as in HAProxy: while the request body is
        // still moving (an Outlook Anywhere RPC_IN_DATA streams for hours before the
        // server answers), the wait for the response head goes on.
        let result = match server_timeout {
            Some(t) => {
                tokio::pin!(send);
                let mut seen = body_sent.as_ref().map_or(0, |c| c.load(Ordering::Relaxed));
                loop {
                    match tokio::time::timeout(t, &mut send).await {
                        Ok(r) => break Ok(r),
                        Err(_) => {
                            let now = body_sent.as_ref().map_or(0, |c| c.load(Ordering::Relaxed));
                            if now == seen {
                                break Err(());
                            }
                            seen = now;
                        }
                    }
                }
            }
            None => Ok(send.await),
        };
        // Whether `retry-on` sends the request again for this outcome.
        let mut replay = |why: RetryOn, txn: &mut Txn| -> bool {
            let Some((m, u, h)) = &replay_head else { return false };
            if !be.conf.retry_on.contains(&why) || attempt >= be.conf.retries {
                return false;
            }
            attempt += 1;
            txn.retries = attempt;
            // As for connect failures, `option redispatch` moves the last retry to another server.
            redispatch_next = attempt == be.conf.retries && be.conf.options.redispatch;
            outgoing = Some(rebuild(m, u, h));
            true
        };
        match result {
            Err(()) => {
                if replay(RetryOn::ResponseTimeout, &mut txn) {
                    continue;
                }
                txn.server = Some(Arc::clone(&server));
                txn.t_response = sent_at.ms();
                return txn.fail(504, ['s', 'H']);
            }
            Ok(Ok(resp)) => {
                if replay(RetryOn::Status(resp.status().as_u16()), &mut txn) {
                    continue;
                }
                txn.t_response = sent_at.ms();
                break (resp, tx);
            }
            Ok(Err(mut e)) => {
                // A reused connection the server had closed: the request never left, send it on a new one.
                if let Some(req) = e.take_message() {
                    if stale_retries < 3 {
                        stale_retries += 1;
                        outgoing = Some(req);
                        continue;
                    }
                }
                // The client's own body broke off or was malformed (a bad chunk size):
                // the client's fault, answered 400; no complete request reached the server.
                if e.error().is_user() {
                    txn.t_response = sent_at.ms();
                    if body_sent.as_ref().is_some_and(|c| c.load(Ordering::Relaxed) > 0) {
                        txn.server = Some(Arc::clone(&server));
                    }
                    // A client that stopped sending its body for `timeout client` gets 408 (cD).
                    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e.error());
                    while let Some(c) = cause {
                        if c.is::<body::IdleTimeout>() {
                            return txn.fail(408, ['c', 'D']);
                        }
                        cause = c.source();
                    }
                    return txn.fail(400, ['C', 'D']);
                }
                let why = if e.error().is_incomplete_message() {
                    RetryOn::EmptyResponse
                } else {
                    RetryOn::JunkResponse
                };
                if replay(why, &mut txn) {
                    continue;
                }
                txn.server = Some(Arc::clone(&server));
                txn.t_response = sent_at.ms();
                // A reused server connection closed under a client's later request: as
                // HAProxy does, the client's own keep-alive connection closes without an
                // answer, and the client retries as it does for any stale keep-alive.
                if reused && !first_request && why == RetryOn::EmptyResponse {
                    txn.term[0] = 'S';
                    txn.term[1] = 'H';
                    return txn.drop_connection();
                }
                return txn.fail(502, ['S', 'H']);
            }
        }
    };
    server.observed_errors.store(0, Ordering::Release);
    txn.server = Some(Arc::clone(&server));
    session::store_sticky(&be, &sticky, &server);

    // The response.
    let (mut rparts, rbody) = resp.into_parts();
    let status = rparts.status.as_u16();
    let ntlm = status == 401
        && rparts.headers.get_all(header::WWW_AUTHENTICATE).iter().any(|v| {
            let t = v.as_bytes();
            t.len() >= 4 && (t[..4].eq_ignore_ascii_case(b"ntlm") || (t.len() >= 9 && t[..9].eq_ignore_ascii_case(b"negotiate")))
        });
    let upgraded = status == 101 && wants_upgrade;
    let server_upgrade = if upgraded {
        rparts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    strip_hop_by_hop(&mut rparts.headers, upgraded);
    if upgraded {
        rparts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }

    // http-response rules: the backend's, then the frontend's.
    {
        // A `listen` section is its own frontend and backend: its rules run once.
        let fe_rules: &[crate::config::model::HttpRule] = if same_proxy(&fe, &be) { &[] } else { &fe.conf.http_response };
        for list in [&be.conf.http_response[..], fe_rules] {
            for rule in list {
                let plan = {
                    let view = HttpView {
                        status: Some(rparts.status.as_u16()),
                        res_headers: Some(&rparts.headers),
                        ..request_view(&parts, &uri, &vars)
                    };
                    let ctx = ctx!(&view, Some(&be));
                    rules::plan(rule, &ctx, &view, true, be.name())
                };
                match rules::apply_headers(plan, &mut rparts.headers, &mut vars) {
                    Some(Plan::Stop) => break,
                    Some(Plan::Answer(r, close)) => {
                        txn.term[0] = 'P';
                        txn.term[1] = 'H';
                        return txn.answer(r, close);
                    }
                    Some(Plan::Blocked(r)) => {
                        txn.term[0] = 'P';
                        txn.term[1] = 'H';
                        return txn.answer(r, true);
                    }
                    Some(Plan::Drop(silent)) => {
                        txn.term[0] = 'P';
                        txn.term[1] = 'H';
                        if silent {
                            txn.cx.silence();
                        }
                        return txn.drop_connection();
                    }
                    Some(Plan::Status(s)) => {
                        if let Ok(s) = StatusCode::from_u16(s) {
                            rparts.status = s;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    // `option checkcache`: as HAProxy, a response a shared cache could keep
    // along with the cookie the server sets is blocked, with an alert. (haproxy
    // 2.6 then sends an error page under the server's own status, "200 Service
    // ready" for a 200; lbd sends the 502 HAProxy's manual describes.)
    if be.conf.options.checkcache && caches_a_cookie(&parts.method, rparts.status, &rparts.headers) {
        snapshot.logger.log(
            Level::Alert,
            &format!(
                "Blocking cacheable cookie in response from instance {}, server {}.",
                be.name(),
                server.name()
            ),
        );
        txn.term[0] = 'P';
        txn.term[1] = 'H';
        return txn.answer(local::error(502, &be.conf.errorfiles), true);
    }

    // The persistence cookie.
    if let Some(c) = cookie {
        let valid_for_server = txn.term[2] == 'V' && cookie_server.as_ref().is_some_and(|s| Arc::ptr_eq(s, &server));
        if let Some(value) = server.conf.cookie.as_deref() {
            let dated = c.maxidle.is_some() || c.maxlife.is_some();
            let now = cookie_stamp::now();
            // With `maxidle`, a valid cookie is stamped again once a quarter of the idle time has passed.
            let refresh = valid_for_server
                && c.maxidle
                    .is_some_and(|m| cookie_dates.is_none_or(|(last, _)| now.saturating_sub(last) >= (m.as_secs() / 4).max(1)));
            match c.mode {
                CookieMode::Insert if !(c.indirect && valid_for_server) || refresh => {
                    let value = if dated {
                        let first = cookie_dates.filter(|_| valid_for_server).map_or(now, |(_, f)| f);
                        cookie_stamp::join(value, now, first)
                    } else {
                        value.to_owned()
                    };
                    let mut text = format!("{}={value}; path=/", c.name);
                    for d in &c.domains {
                        text.push_str(&format!("; domain={d}"));
                    }
                    if c.httponly {
                        text.push_str("; HttpOnly");
                    }
                    if c.secure {
                        text.push_str("; Secure");
                    }
                    for a in &c.attrs {
                        text.push_str(&format!("; {a}"));
                    }
                    if let Ok(v) = HeaderValue::from_str(&text) {
                        rparts.headers.append(header::SET_COOKIE, v);
                        txn.term[3] = if refresh { 'U' } else { 'I' };
                        if c.nocache && cacheable(&parts.method, rparts.status, &rparts.headers) {
                            mark_private(&mut rparts.headers);
                        }
                    }
                }
                CookieMode::Rewrite | CookieMode::Prefix => {
                    let lines: Vec<HeaderValue> = rparts.headers.get_all(header::SET_COOKIE).iter().cloned().collect();
                    let prefix = format!("{}=", c.name);
                    let mut changed = false;
                    let new: Vec<HeaderValue> = lines
                        .into_iter()
                        .map(|v| match v.to_str() {
                            Ok(t) if t.starts_with(&prefix) => {
                                changed = true;
                                let rest = &t[prefix.len()..];
                                let text = if c.mode == CookieMode::Rewrite {
                                    let attrs = rest.find(';').map_or("", |i| &rest[i..]);
                                    format!("{prefix}{value}{attrs}")
                                } else {
                                    format!("{prefix}{value}~{rest}")
                                };
                                HeaderValue::from_str(&text).unwrap_or(v)
                            }
                            _ => v,
                        })
                        .collect();
                    if changed {
                        rparts.headers.remove(header::SET_COOKIE);
                        for v in new {
                            rparts.headers.append(header::SET_COOKIE, v);
                        }
                        txn.term[3] = 'R';
                    }
                }
                _ => {}
            }
        }
        if txn.term[3] == '-' {
            txn.term[3] = 'N';
        }
    }
    if (fe.conf.options.http_conn_mode == HttpConnMode::Close || snapshot.retired.load(Ordering::Acquire)) && !upgraded {
        rparts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }

    txn.res_captures = capture(&fe.conf.res_captures, &rparts.headers);
    txn.status = i32::from(rparts.status.as_u16());
    txn.head_bytes = head_size(&rparts.headers);
    // `option logasap`: the line goes out now, not when the body (or the
    // tunnel) ends, which for a long download or an Outlook RPC channel may be
    // hours later.
    if fe.conf.options.logasap {
        txn.log(txn.head_bytes, true);
        txn.logged = true;
    }
    if upgraded {
        // The tunnel outlives the response: it holds the server slot itself.
        let slot = txn.slot.take();
        let tunnel_timeout = be.conf.timeouts.tunnel.or(fe.conf.timeouts.tunnel).or(fe.conf.timeouts.client);
        if let (Some(c), Some(s)) = (client_upgrade, server_upgrade) {
            let task = tokio::spawn(async move {
                if let (Ok(c), Ok(s)) = (c.await, s.await) {
                    tunnel(TokioIo::new(c), TokioIo::new(s), tunnel_timeout).await;
                }
                drop(slot);
                drop(tx);
            });
            // The client connection's task waits for its tunnel, so the tunnel keeps
            // counting toward `maxconn` and a graceful stop waits for it.
            if let Ok(mut t) = cx.tunnels.lock() {
                t.push(task);
            }
        }
        let resp = Response::from_parts(rparts, LbBody::empty().on_finish(Box::new(txn)));
        return resp;
    }
    // Where the server connection goes once the body ended.
    // This client's alone: authenticated as it (NTLM), never shared (`http-reuse never`),
    // or named to the server by a PROXY header.
    let private = ntlm || used_pinned || reuse == HttpReuse::Never || server.conf.params.send_proxy.is_some();
    let give_back = if server_close {
        None
    } else if private && client_closes {
        // Nobody else may use it, and its client leaves.
        Some(GiveBack::Reset)
    } else if private {
        Some(GiveBack::Private {
            backend: be.name().to_owned(),
            server_id: server.conf.id,
            pinned: ntlm || used_pinned,
        })
    } else if client_closes {
        Some(GiveBack::Leaving(Arc::clone(&server)))
    } else {
        Some(GiveBack::Pool(Arc::clone(&server)))
    };
    txn.give_back = give_back.map(|g| (tx, g));
    let mut body = LbBody::stream(rbody, server_timeout);
    // `option contstats`: the response body counts as it goes.
    if fe.conf.options.contstats {
        let (f, b, s) = (Arc::clone(&fe), Arc::clone(&be), Arc::clone(&server));
        body.live(Box::new(move |n| {
            for c in [&f.bytes_out, &b.bytes_out, &s.bytes_out] {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }));
        txn.live_out = true;
    }
    let body = body.on_finish(Box::new(txn));
    Response::from_parts(rparts, body)
}

/// The date stamps lbd adds to an inserted persistence cookie when the backend
/// says `maxidle` or `maxlife`: `VALUE|LAST|FIRST`, the times the cookie was
/// last and first seen, in seconds since 1970 written in base 36. (HAProxy
/// stamps its cookies too, in an encoding of its own; a cookie from one is not
/// read by the other.)
mod cookie_stamp {
    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn enc(mut n: u64) -> String {
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut out = Vec::new();
        loop {
            out.push(DIGITS[(n % 36) as usize]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        out.reverse();
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn join(value: &str, last: u64, first: u64) -> String {
        format!("{value}|{}|{}", enc(last), enc(first))
    }

    /// The value and its stamps; a cookie without readable stamps has none.
    pub fn split(v: &str) -> (&str, Option<(u64, u64)>) {
        let mut parts = v.splitn(3, '|');
        let value = parts.next().unwrap_or(v);
        let last = parts.next().and_then(|t| u64::from_str_radix(t, 36).ok());
        let first = parts.next().and_then(|t| u64::from_str_radix(t, 36).ok());
        match (last, first) {
            (Some(l), Some(f)) => (value, Some((l, f))),
            _ => (value, None),
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn stamps_round_trip() {
            let c = super::join("CAS1", 1_795_700_000, 1_795_600_000);
            assert_eq!(super::split(&c), ("CAS1", Some((1_795_700_000, 1_795_600_000))));
            assert_eq!(super::split("CAS1"), ("CAS1", None));
            assert_eq!(super::split("CAS1|zz"), ("CAS1", None));
        }
    }
}

/// What a shared cache could keep of a response, as HAProxy 2.6 judges it for
/// `cookie ... nocache` and `option checkcache` (compared case by case with a
/// live haproxy in tests/tests/checkcache.rs):
/// - a GET, HEAD, OPTIONS or TRACE with a status caches may keep (200, 203,
///   204, 206, 300, 301, 404, 405, 410, 414, 501) starts cacheable, cookies
///   included; `Pragma: no-cache` makes any response not cacheable;
/// - then each `Cache-Control` directive, in order: `private`, `no-cache`,
///   `no-store`, `max-age=0` and `s-maxage=0` make it not cacheable;
///   `no-cache="set-cookie..."` keeps its cookies out; `public` makes it
///   cacheable, cookies included, whatever its method and status;
/// - without a lifetime (`max-age`, `s-maxage`, `Expires`) or a validator
///   (`Last-Modified`, `ETag`) no cache keeps it.
#[derive(Clone, Copy)]
struct CacheVerdict {
    cacheable: bool,
    /// A cache keeping it would keep the cookies it sets too.
    with_cookies: bool,
}

fn cache_verdict(method: &http::Method, status: StatusCode, h: &HeaderMap) -> CacheVerdict {
    let not = CacheVerdict {
        cacheable: false,
        with_cookies: false,
    };
    let says = |name: header::HeaderName| {
        h.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
    };
    if status.as_u16() < 200 || says(header::PRAGMA).any(|d| d.eq_ignore_ascii_case("no-cache")) {
        return not;
    }
    let starts = |d: &str, p: &str| d.len() >= p.len() && d.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let by_default = matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    ) && [200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501].contains(&status.as_u16());
    let mut v = CacheVerdict {
        cacheable: by_default,
        with_cookies: by_default,
    };
    let mut fresh = false;
    for d in says(header::CACHE_CONTROL) {
        if ["private", "no-cache", "no-store", "max-age=0", "s-maxage=0"]
            .iter()
            .any(|n| d.eq_ignore_ascii_case(n))
        {
            v = not;
        } else if starts(d, "no-cache=\"set-cookie") {
            v.with_cookies = false;
        } else if starts(d, "s-maxage") || starts(d, "max-age") {
            fresh = true;
        } else if starts(d, "public") {
            v = CacheVerdict {
                cacheable: true,
                with_cookies: true,
            };
        }
    }
    fresh = fresh || h.contains_key(header::EXPIRES);
    if !fresh && !h.contains_key(header::LAST_MODIFIED) && !h.contains_key(header::ETAG) {
        v.cacheable = false;
    }
    v
}

/// Whether a shared cache could keep this response (`cookie ... nocache`).
fn cacheable(method: &http::Method, status: StatusCode, h: &HeaderMap) -> bool {
    cache_verdict(method, status, h).cacheable
}

/// `option checkcache`: the server sets a cookie on a response a shared cache
/// could keep with it, and one client's cookie could reach another.
fn caches_a_cookie(method: &http::Method, status: StatusCode, h: &HeaderMap) -> bool {
    if !h.contains_key(header::SET_COOKIE) {
        return false;
    }
    let v = cache_verdict(method, status, h);
    v.cacheable && v.with_cookies
}

/// `cookie ... nocache` on a cacheable response: a `Cache-Control: private`
/// line of its own, so no shared cache keeps a response that carries a
/// persistence cookie.
fn mark_private(h: &mut HeaderMap) {
    h.append(header::CACHE_CONTROL, HeaderValue::from_static("private"));
}

/// A fresh copy of a body-less request, for `retry-on`.
fn rebuild(method: &http::Method, uri: &str, headers: &HeaderMap) -> Request<LbBody> {
    let mut r = Request::new(LbBody::empty());
    *r.method_mut() = method.clone();
    *r.headers_mut() = headers.clone();
    if let Ok(u) = uri.parse() {
        *r.uri_mut() = u;
    }
    r
}

/// Relays an upgraded connection (WebSocket) both ways until one side ends or it idles out.
async fn tunnel<A, B>(mut a: A, mut b: B, idle: Option<Duration>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(&mut a);
    let (mut br, mut bw) = tokio::io::split(&mut b);
    let activity = AtomicU64::new(0);
    let started = Instant::now();
    let bytes_up = AtomicU64::new(0);
    let bytes_down = AtomicU64::new(0);
    let up = super::relay::copy(
        &mut ar,
        &mut bw,
        super::relay::Tally {
            activity: &activity,
            started,
            bytes: &bytes_up,
        },
    );
    let down = super::relay::copy(
        &mut br,
        &mut aw,
        super::relay::Tally {
            activity: &activity,
            started,
            bytes: &bytes_down,
        },
    );
    let watchdog = async {
        let Some(limit) = idle else {
            return std::future::pending::<()>().await;
        };
        loop {
            let last = Duration::from_millis(activity.load(Ordering::Acquire));
            let quiet = started.elapsed().saturating_sub(last);
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = watchdog => {}
    }
}

/// What an `http-request` rule answered.
struct RuleAnswer {
    resp: Response<LbBody>,
    close: bool,
    /// A refusal (deny, reject, tarpit): logged `PR` (`PT` when tarpitted).
    blocked: bool,
    /// How long to hold the answer back (`tarpit`).
    delay: Option<Duration>,
    /// No answer at all: the connection is closed (`reject`, `silent-drop`).
    drop: bool,
    /// `silent-drop`: and the client is not even told (see [`super::session::silence`]).
    silent: bool,
}

/// Runs one list of `http-request` rules; `Some` when lbd answers itself.
fn request_rules(
    cx: &ClientCtx,
    list: &[crate::config::model::HttpRule],
    be: Option<&BackendRt>,
    parts: &mut http::request::Parts,
    uri: &mut String,
    vars: &mut Vec<(String, Sample)>,
) -> Option<RuleAnswer> {
    let be_name = be.map_or(cx.fe.name(), |b| b.name());
    for rule in list {
        let plan = {
            let view = request_view(parts, uri, vars);
            let ctx = SampleCtx {
                src: cx.src,
                dst: cx.dst,
                tls: cx.tls.as_deref(),
                snapshot: &cx.snapshot,
                frontend: &cx.fe,
                backend: be,
                http: Some(&view),
            };
            rules::plan(rule, &ctx, &view, false, be_name)
        };
        match rules::apply_headers(plan, &mut parts.headers, vars) {
            None | Some(Plan::Nothing) | Some(Plan::Status(_)) => {}
            Some(Plan::Stop) => return None,
            Some(Plan::Answer(r, close)) => {
                return Some(RuleAnswer {
                    resp: r,
                    close,
                    blocked: false,
                    delay: None,
                    drop: false,
                    silent: false,
                })
            }
            Some(Plan::Blocked(r)) => {
                return Some(RuleAnswer {
                    resp: r,
                    close: true,
                    blocked: true,
                    delay: None,
                    drop: false,
                    silent: false,
                })
            }
            Some(Plan::Drop(silent)) => {
                return Some(RuleAnswer {
                    resp: Response::new(LbBody::empty()),
                    close: true,
                    blocked: true,
                    delay: None,
                    drop: true,
                    silent,
                })
            }
            Some(Plan::Tarpit(r)) => {
                // Held for `timeout tarpit` (else `timeout connect`), then refused.
                let t = &cx.fe.conf.timeouts;
                return Some(RuleAnswer {
                    resp: r,
                    close: true,
                    blocked: true,
                    delay: t.tarpit.or(t.connect),
                    drop: false,
                    silent: false,
                });
            }
            Some(Plan::Uri(u)) => *uri = u,
            Some(Plan::Method(m)) => parts.method = m,
            Some(_) => {}
        }
    }
    None
}

/// The stats page: HTML, CSV, and the admin form's actions.
async fn stats(
    cx: &ClientCtx,
    parts: &http::request::Parts,
    uri: &str,
    stats_uri: &str,
    vars: &[(String, Sample)],
    body: Incoming,
) -> Response<LbBody> {
    let fe = &cx.fe;
    let view = request_view(parts, uri, vars);
    if !local::stats_authorized(&fe.conf.stats_auth, view.header("authorization")) {
        return local::auth_required(fe.conf.stats_realm.as_deref().unwrap_or("HAProxy Statistics"));
    }
    let ctx = SampleCtx {
        src: cx.src,
        dst: cx.dst,
        tls: cx.tls.as_deref(),
        snapshot: &cx.snapshot,
        frontend: fe,
        backend: None,
        http: Some(&view),
    };
    let admin = fe.conf.stats_admin.iter().any(|c| acl_eval::eval(c, &ctx));
    if parts.method == http::Method::POST {
        if !admin {
            return local::error(403, &fe.conf.errorfiles);
        }
        let limited = http_body_util::Limited::new(body, MAX_FORM);
        let Ok(collected) = limited.collect().await else {
            return local::error(400, &fe.conf.errorfiles);
        };
        let form = collected.to_bytes();
        let st = match super::stats_page::admin_action(&cx.snapshot, &String::from_utf8_lossy(&form)) {
            Ok(()) => "DONE",
            Err(_) => "ERR",
        };
        let mut r = local::simple(303, "text/html", bytes::Bytes::new());
        if let Ok(v) = HeaderValue::from_str(&format!("{stats_uri};st={st}")) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    if uri[stats_uri.len()..].contains(";csv") {
        return local::simple(200, "text/plain", super::api::show_stat(&cx.snapshot));
    }
    let mut r = local::simple(200, "text/html", super::stats_page::html(&cx.snapshot, admin));
    if let Some(refresh) = fe.conf.stats_refresh {
        r.headers_mut().insert("refresh", HeaderValue::from(refresh.as_secs().max(1)));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `write_joined` hands a writer that takes everything at once.
    fn joined(bufs: &[&[u8]], swap: Option<(usize, &[u8])>) -> (Vec<u8>, usize) {
        let slices: Vec<std::io::IoSlice<'_>> = bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
        let mut out = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match write_joined(Pin::new(&mut out), &mut cx, &slices, swap) {
            Poll::Ready(Ok(n)) => (out, n),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn small_writes_go_out_joined_with_the_swapped_head() {
        let (out, n) = joined(&[b"HTTP/1.0 200 OK\r\n\r\n", b"", b"ok\n"], Some((0, b"HTTP/1.1 200 OK\r\n\r\n")));
        assert_eq!(out, b"HTTP/1.1 200 OK\r\n\r\nok\n");
        assert_eq!(n, out.len());
        let (out, _) = joined(&[b"GET / HTTP/1.1\r\n", b"host: a\r\n\r\n"], None);
        assert_eq!(out, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    }

    #[test]
    fn large_writes_stay_vectored_and_keep_the_swap() {
        let body = vec![b'x'; JOIN_MAX * 2];
        let (out, n) = joined(&[b"HTTP/1.0 200 OK\r\n\r\n", &body], Some((0, b"HTTP/1.1 200 OK\r\n\r\n")));
        // A Vec takes every buffer of a vectored write.
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n\r\nxxx"));
        assert_eq!(out.len(), 19 + body.len());
        assert_eq!(n, out.len());
        let (out, _) = joined(&[&body[..JOIN_MAX], b"!"], None);
        assert_eq!(out.len(), JOIN_MAX + 1);
        assert_eq!(out.last(), Some(&b'!'));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn nocache_marks_only_what_a_cache_could_keep_as_haproxy_does() {
        let get = http::Method::GET;
        let ok = StatusCode::OK;
        let yes = [
            vec![("cache-control", "max-age=60")],
            vec![("expires", "Thu, 01 Dec 2000 16:00:00 GMT")],
            vec![("last-modified", "Thu, 01 Dec 2020 16:00:00 GMT")],
            vec![("etag", "\"x\"")],
            vec![("cache-control", "s-maxage=10")],
            vec![("cache-control", "max-age=60, must-revalidate"), ("vary", "*")],
        ];
        for h in &yes {
            assert!(cacheable(&get, ok, &headers(h)), "{h:?}");
        }
        let no = [
            vec![],
            vec![("cache-control", "public")],
            vec![("cache-control", "max-age=0"), ("last-modified", "Thu, 01 Dec 2020 16:00:00 GMT")],
            vec![("cache-control", "max-age=60, private")],
            vec![("cache-control", "max-age=60, no-store")],
            vec![("cache-control", "no-cache")],
            vec![("cache-control", "s-maxage=0, max-age=60")],
            vec![("expires", "Thu, 01 Dec 2030 16:00:00 GMT"), ("cache-control", "max-age=0")],
            vec![("pragma", "no-cache"), ("cache-control", "max-age=60")],
        ];
        for h in &no {
            assert!(!cacheable(&get, ok, &headers(h)), "{h:?}");
        }
        let fresh = headers(&[("cache-control", "max-age=60")]);
        assert!(cacheable(&http::Method::HEAD, ok, &fresh));
        assert!(cacheable(&get, StatusCode::MOVED_PERMANENTLY, &fresh));
        assert!(cacheable(&get, StatusCode::NO_CONTENT, &fresh));
        assert!(!cacheable(&http::Method::POST, ok, &fresh));
        assert!(!cacheable(&http::Method::PUT, ok, &fresh));
        assert!(!cacheable(&get, StatusCode::FOUND, &fresh));
        assert!(!cacheable(&get, StatusCode::INTERNAL_SERVER_ERROR, &fresh));
        let mut h = fresh.clone();
        mark_private(&mut h);
        let lines: Vec<_> = h.get_all("cache-control").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(lines, ["max-age=60", "private"]);
    }

    #[test]
    fn persistence_cookie_is_found_and_removed_without_touching_others() {
        let mut h = headers(&[("cookie", "a=1; SERVERID=CAS2; b=2"), ("cookie", "SERVERID=x")]);
        assert_eq!(request_cookie(&h, "SERVERID"), Some("CAS2"));
        remove_request_cookie(&mut h, "SERVERID");
        let left: Vec<_> = h.get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(left, ["a=1; b=2"]);
        let mut p = headers(&[("cookie", "JSESSIONID=CAS1~abc; z=1")]);
        strip_cookie_prefix(&mut p, "JSESSIONID");
        assert_eq!(p[header::COOKIE], "JSESSIONID=abc; z=1");
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut h = headers(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "a"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        let mut u = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut u, true);
        assert!(u.contains_key(header::UPGRADE));
    }

    #[test]
    fn forwardfor_except_networks() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(in_network(ip, "10.0.0.0/8"));
        assert!(!in_network(ip, "10.1.3.0/24"));
        assert!(in_network(ip, "10.1.2.3"));
        assert!(!in_network("::1".parse().unwrap(), "10.0.0.0/8"));
    }

    #[test]
    fn balance_hashes_take_the_configured_part_of_the_request() {
        let h = headers(&[("host", "www.example.com:8080")]);
        let view = |uri: &'static str| HttpView {
            method: "GET",
            uri,
            version: "HTTP/1.1",
            headers: &h,
            status: None,
            res_headers: None,
            vars: &[],
        };
        let uri = Balance::Uri {
            whole: false,
            len: None,
            depth: Some(1),
        };
        // depth 1: only the first directory counts, so both land on one server.
        assert_eq!(balance_hash(&uri, &view("/img/a.png?x")), balance_hash(&uri, &view("/img/b.png")));
        assert_ne!(balance_hash(&uri, &view("/img/a")), balance_hash(&uri, &view("/css/a")));
        let param = Balance::UrlParam("user".into());
        assert_eq!(balance_hash(&param, &view("/x")), None);
        assert!(balance_hash(&param, &view("/x?user=bob")).is_some());
        let host = Balance::Hdr {
            name: "host".into(),
            use_domain_only: true,
        };
        assert_eq!(
            balance_hash(&host, &view("/")),
            Some(crate::runtime::balance::hash_bytes(b"example"))
        );
    }

    #[test]
    fn an_origin_form_path_with_a_scheme_inside_stays_whole() {
        let h = HeaderMap::new();
        let view = |uri: &'static str| HttpView {
            method: "GET",
            uri,
            version: "HTTP/1.1",
            headers: &h,
            status: None,
            res_headers: None,
            vars: &[],
        };
        assert_eq!(view("/admin/http://x?q").path(), "/admin/http://x");
        assert_eq!(view("http://host/a/b?q").path(), "/a/b");
        assert_eq!(view("http://host").path(), "/");
        // `balance uri len N` never cuts inside a character.
        let b = Balance::Uri {
            whole: false,
            len: Some(2),
            depth: None,
        };
        assert!(balance_hash(&b, &view("/é")).is_some());
    }

    #[test]
    fn a_replayed_request_keeps_method_uri_and_headers() {
        let r = rebuild(&http::Method::GET, "/a?b", &headers(&[("host", "x")]));
        assert_eq!(r.uri(), "/a?b");
        assert_eq!(r.headers()["host"], "x");
    }
}
