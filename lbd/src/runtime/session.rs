//! One client connection in TCP mode: choose a backend, a server (stickiness,
//! balancing, queueing), connect with retries, relay bytes both ways with
//! half-close and inactivity timeouts, and log the session in tcplog format.
//!
//! States: choose backend → [queue] → connect (retries, redispatch on the last)
//! → data → closed. The two letters of the log's termination state say who
//! ended the session (`C` client, `S` server, `c`/`s` a client/server timeout,
//! `K` killed by `shutdown-sessions`, `P` lbd itself, `-` normal end) and in
//! which state (`Q` queue, `C` connect, `D` data, `-` normal end).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::acl_eval::{self, fetch, HttpView, SampleCtx};
use super::balance::Pick;
use super::log::TcpLog;
use super::relay;
use super::snapshot::{BackendRt, FrontendRt, ServerRt, Snapshot};
use super::tls_io::Upstream;
use crate::config::model::{OnError, StickKind};

/// Pause before retrying a connection that was refused at once (HAProxy's turn-around).
pub(crate) const TURN_AROUND: Duration = Duration::from_secs(1);

/// A client connection: TCP (which can be spliced) or a UNIX socket.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn as_tcp(&self) -> Option<&TcpStream> {
        None
    }

    /// The socket's descriptor, for a last answer written past hyper.
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

    /// The TCP socket, for its options (a reset on close, `silent-drop`).
    fn tcp_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl ClientStream for TcpStream {
    fn as_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }

    fn tcp_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(self))
    }

    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

impl ClientStream for super::lazy_tcp::LazyTcp {
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.fd().map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd))
    }

    fn tcp_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.fd()
    }
}

/// In-memory streams: the HTTP probe (fuzzing, property tests) uses them.
impl ClientStream for tokio::io::DuplexStream {}

impl ClientStream for tokio::net::UnixStream {
    fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

/// Whether the client on `fd` has closed its sending side or reset the
/// connection: a peek finds the end of the stream. Bytes still unread (a body,
/// a pipelined request) say nothing yet.
pub(crate) fn client_closed(fd: std::os::fd::RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: `fd` is an open socket of the caller's; `b` is a valid one-byte buffer.
    let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    if n == 0 {
        return true;
    }
    n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECONNRESET)
}

/// `option abortonclose`: ends once the client on `fd` has closed (looked at
/// now, then every 50 ms: only requests waiting in a queue run this).
pub(crate) async fn until_client_closed(fd: std::os::fd::RawFd) {
    while !client_closed(fd) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `silent-drop`: the connection goes away without the client being told. In
/// TCP repair mode (CAP_NET_ADMIN) the kernel sends nothing at all when the
/// socket is closed; failing that, whatever the close sends dies at the first
/// hop (TTL and hop limit 1), as HAProxy does.
///
/// First, what the client sent is acknowledged (quick-ACK mode back on sends
/// an ACK that `tcp-smart-accept` was holding): data left unacknowledged would
/// come again, and a kernel without the connection answers it with a reset.
pub fn silence(fd: std::os::fd::RawFd) {
    let set = |level: libc::c_int, name: libc::c_int| {
        let one: libc::c_int = 1;
        // SAFETY: `fd` is an open socket of the caller's; the option value is a
        // c_int that lives for the call.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                std::ptr::addr_of!(one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    };
    set(libc::IPPROTO_TCP, libc::TCP_QUICKACK);
    if set(libc::IPPROTO_TCP, libc::TCP_REPAIR) {
        return;
    }
    // One of the two fails on the other address family, harmlessly.
    set(libc::IPPROTO_IP, libc::IP_TTL);
    set(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS);
}

/// What the listener knows about a new connection.
pub struct Accepted {
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// Set when the client came over TLS (`bind ... ssl`).
    pub tls: Option<std::sync::Arc<crate::tls::TlsInfo>>,
    pub accept_ms: u128,
    pub started: Instant,
}

/// Holds a server slot for the life of a connection; frees it on drop.
pub(crate) struct SlotGuard {
    server: Arc<ServerRt>,
    backend: Arc<BackendRt>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.server.cur_conns.fetch_sub(1, Ordering::AcqRel);
        self.backend.cur_conns.fetch_sub(1, Ordering::AcqRel);
        self.server.slot_freed.notify_one();
        self.backend.slot_freed.notify_one();
    }
}

/// `counted`: the balancer already counted the connection on the server.
pub(crate) fn take_slot(backend: &Arc<BackendRt>, server: &Arc<ServerRt>, counted: bool) -> SlotGuard {
    if !counted {
        let now = server.cur_conns.fetch_add(1, Ordering::AcqRel) + 1;
        server.max_conns.fetch_max(now, Ordering::Relaxed);
    }
    server.total_conns.fetch_add(1, Ordering::Relaxed);
    let now = backend.cur_conns.fetch_add(1, Ordering::AcqRel) + 1;
    backend.max_conns.fetch_max(now, Ordering::Relaxed);
    backend.total_conns.fetch_add(1, Ordering::Relaxed);
    SlotGuard {
        server: Arc::clone(server),
        backend: Arc::clone(backend),
    }
}

/// Picks the backend: the first `use_backend` whose condition holds, else `default_backend`.
pub fn choose_backend(snapshot: &Snapshot, fe: &FrontendRt, acc: &Accepted, http: Option<&HttpView>) -> Option<Arc<BackendRt>> {
    let ctx = SampleCtx::for_client(acc, snapshot, fe, None, http);
    for (b, cond) in &fe.switching {
        if acl_eval::holds(cond.as_ref(), &ctx) {
            return Some(Arc::clone(b));
        }
    }
    fe.default_backend.clone()
}

pub(crate) struct Sticky {
    keys: Vec<(usize, Vec<u8>)>,
}

/// Looks the client up in the backend's stick tables (`stick on`, `stick match`).
pub(crate) fn sticky_server(
    snapshot: &Snapshot,
    fe: &FrontendRt,
    be: &BackendRt,
    acc: &Accepted,
    http: Option<&HttpView>,
) -> (Option<Arc<ServerRt>>, Sticky) {
    let ctx = SampleCtx::for_client(acc, snapshot, fe, Some(be), http);
    let mut keys = Vec::new();
    let mut found = None;
    for (i, r) in be.stick_rules.iter().enumerate() {
        if !acl_eval::holds(r.rule.cond.as_ref(), &ctx) {
            continue;
        }
        let Some(sample) = fetch(&r.rule.expr, &ctx) else { continue };
        let key = r.table.key_for(&sample.key_bytes()).into_vec();
        if found.is_none() && matches!(r.kind, StickKind::On | StickKind::Match) {
            if let Some(id) = r.table.lookup(&key) {
                if let Some(s) = be.server_by_id(id) {
                    if s.is_up() && !s.conf.params.non_stick {
                        found = Some(Arc::clone(s));
                    }
                }
            }
        }
        keys.push((i, key));
    }
    (found, Sticky { keys })
}

pub(crate) fn store_sticky(be: &BackendRt, sticky: &Sticky, server: &ServerRt) {
    if server.conf.params.non_stick {
        return;
    }
    for (i, key) in &sticky.keys {
        let r = &be.stick_rules[*i];
        if matches!(r.kind, StickKind::On | StickKind::StoreRequest) {
            r.table.store(key, server.conf.id);
        }
    }
}

pub(crate) enum Chosen {
    Server(Arc<ServerRt>, SlotGuard),
    QueueTimeout,
    NoServer,
}

/// A sticky server if usable, else the balancer, waiting in the queue when every
/// server is at its `maxconn` (bounded by `timeout queue`, else `timeout connect`).
pub(crate) async fn choose_server(
    be: &Arc<BackendRt>,
    sticky: Option<Arc<ServerRt>>,
    client: std::net::IpAddr,
    exclude: Option<u32>,
    hash: Option<u64>,
) -> Chosen {
    if let Some(s) = sticky {
        if s.has_slot() || s.conf.params.maxconn == 0 {
            let g = take_slot(be, &s, false);
            return Chosen::Server(s, g);
        }
    }
    let queue_timeout = be
        .conf
        .timeouts
        .queue
        .or(be.conf.timeouts.connect)
        .unwrap_or(Duration::from_secs(5));
    // Read the clock only when the request has to queue.
    let mut deadline = None;
    loop {
        let notified = be.slot_freed.notified();
        match be.balancer.pick(&be.servers, client, be.conf.options.allbackups, exclude, hash) {
            Pick::Server(s) => {
                let g = take_slot(be, &s, true);
                // Another session may have taken the slot between the pick and now.
                if s.conf.params.maxconn != 0 && s.cur_conns.load(Ordering::Acquire) > s.conf.params.maxconn {
                    drop(g);
                } else {
                    return Chosen::Server(s, g);
                }
            }
            Pick::NoServer => return Chosen::NoServer,
            Pick::Full => {}
        }
        let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + queue_timeout);
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Chosen::QueueTimeout;
        }
    }
}

/// `observe layer4`: a failed connection counts against the server.
pub(crate) fn observe_failure(snapshot: &Snapshot, be: &BackendRt, s: &ServerRt) {
    let p = &s.conf.params;
    if p.observe.is_none() || !s.is_up() {
        return;
    }
    let n = s.observed_errors.fetch_add(1, Ordering::AcqRel) + 1;
    if n < p.error_limit {
        return;
    }
    s.observed_errors.store(0, Ordering::Release);
    let outcome = super::check::Outcome {
        ok: false,
        reason: "Health analyze".into(),
        info: format!("{n} consecutive layer4 errors"),
        duration: Duration::ZERO,
    };
    match p.on_error {
        OnError::MarkDown | OnError::SuddenDeath => {
            if let Ok(mut h) = s.health.lock() {
                h.value = 0;
            }
            super::check::set_state(snapshot, be, s, false, &outcome);
        }
        OnError::FailCheck => super::check::apply(snapshot, be, s, &outcome),
        OnError::FastInter => {}
    }
}

/// Runs one TCP-mode session. `preread` holds bytes already read from the
/// client (by the HTTP responder) that must reach the server first.
#[allow(clippy::manual_async_fn)] // see the body's first comment
pub fn run<C: ClientStream>(
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    mut client: C,
    acc: Accepted,
    preread: Vec<u8>,
    backend: Option<Arc<BackendRt>>,
) -> impl std::future::Future<Output = ()> {
    // An async block, not an async fn: it keeps one copy of the arguments, not
    // two (rust-lang/rust#62958), in a future that lives as long as the connection.
    async move {
        let be = match backend {
            Some(b) => Some(b),
            None => choose_backend(&snapshot, &fe, &acc, None),
        };
        let client_ip = acc.src.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |s| s.ip());
        let local_port = acc.dst.map_or(0, |d| d.port());
        let mut log = LogState {
            backend: "<NOSRV>".into(),
            server: "<NOSRV>".into(),
            tw: -1,
            tc: -1,
            bytes_in: 0,
            bytes_out: 0,
            term: ['P', 'R'],
            retries: 0,
            redispatched: false,
            logged: false,
        };
        let Some(be) = be else {
            finish(&fe, &acc, &log, None);
            return;
        };
        log.backend = be.name().to_owned();
        let (sticky_srv, sticky) = sticky_server(&snapshot, &fe, &be, &acc, None);
        let queued_at = Instant::now();
        let (mut server, mut slot) = match choose_server(&be, sticky_srv, client_ip, None, None).await {
            Chosen::Server(s, g) => (s, g),
            Chosen::QueueTimeout => {
                log.term = ['s', 'Q'];
                log.tw = queued_at.elapsed().as_millis() as i64;
                finish(&fe, &acc, &log, Some(&be));
                return;
            }
            Chosen::NoServer => {
                log.term = ['S', 'C'];
                finish(&fe, &acc, &log, Some(&be));
                return;
            }
        };
        log.tw = queued_at.elapsed().as_millis() as i64;
        let connect_timeout = be.conf.timeouts.connect.unwrap_or(Duration::from_secs(5));
        let retries = be.conf.retries;
        let connect_started = Instant::now();
        let mut attempt = 0;
        let upstream = loop {
            let Some(target) = server.endpoint(local_port) else {
                log.term = ['P', 'C'];
                log.server = server.name().to_owned();
                finish(&fe, &acc, &log, Some(&be));
                return;
            };
            let tried = Instant::now();
            // `send-proxy` / `send-proxy-v2`: tell the server who the client is, first.
            let proxy_header = server
                .conf
                .params
                .send_proxy
                .map(|v| super::proxy_proto::header(v, acc.src, acc.dst));
            let tls = server.tls_for(&snapshot, &fe, &be, &acc);
            let opts = super::tls_io::ServerSocket::of(&be.conf.options, proxy_header.is_some() || !preread.is_empty());
            let connecting = super::tls_io::connect_server(target, proxy_header.as_deref(), tls, opts);
            let res = tokio::time::timeout(connect_timeout, connecting).await;
            match res {
                Ok(Ok(s)) => break s,
                failure => {
                    let timed_out = failure.is_err();
                    server.connect_errors.fetch_add(1, Ordering::Relaxed);
                    observe_failure(&snapshot, &be, &server);
                    if attempt >= retries {
                        log.term = if timed_out { ['s', 'C'] } else { ['S', 'C'] };
                        log.server = server.name().to_owned();
                        log.retries = attempt;
                        finish(&fe, &acc, &log, Some(&be));
                        return;
                    }
                    attempt += 1;
                    // Refused at once: wait a turn-around before trying again.
                    if !timed_out {
                        let pause = TURN_AROUND.min(connect_timeout).saturating_sub(tried.elapsed());
                        tokio::time::sleep(pause).await;
                    }
                    // The last retry goes to another server with `option redispatch`.
                    if attempt == retries && be.conf.options.redispatch {
                        let exclude = Some(server.conf.id);
                        if let Chosen::Server(s, g) = choose_server(&be, None, client_ip, exclude, None).await {
                            log.redispatched = true;
                            server = s;
                            slot = g;
                        }
                    }
                }
            }
        };
        log.retries = attempt;
        log.tc = connect_started.elapsed().as_millis() as i64;
        log.server = server.name().to_owned();
        server.observed_errors.store(0, Ordering::Release);
        store_sticky(&be, &sticky, &server);
        // `option logasap`: the line goes out now that the server is connected,
        // not when the session ends, which may be hours later.
        if fe.conf.options.logasap {
            write_log(&fe, &acc, &log, Some(&be), true);
            log.logged = true;
        }
        let mut upstream = upstream;
        let stop = Stop {
            server: &server,
            snapshot: &snapshot,
            generation: server.kill_generation(),
        };
        let meter = Meter {
            started: Instant::now(),
            activity: AtomicU64::new(0),
            bytes_in: AtomicU64::new(preread.len() as u64),
            bytes_out: AtomicU64::new(0),
            counted: [AtomicU64::new(0), AtomicU64::new(0)],
        };
        let counters = Counters([
            (&fe.bytes_in, &fe.bytes_out),
            (&be.bytes_in, &be.bytes_out),
            (&server.bytes_in, &server.bytes_out),
        ]);
        // `option contstats`: the counters move while the session lasts, not only at its end.
        let cont = fe.conf.options.contstats.then_some(&counters);
        let limit = idle_limit(&fe, &be);
        let (fo, bo) = (&fe.conf.options, &be.conf.options);
        // HAProxy splices only when asked to (`option splice-*`); so does lbd.
        let splice = fo.splice_auto || fo.splice_request || fo.splice_response || bo.splice_auto || bo.splice_request || bo.splice_response;
        let term = if !preread.is_empty() && upstream.write_all(&preread).await.is_err() {
            ['S', 'D']
        } else if let (true, Some(ctcp), Upstream::Tcp(upstream)) = (splice, client.as_tcp(), &upstream) {
            // The rarer relays are boxed so they do not enlarge every session's task.
            Box::pin(async {
                let up = super::splice::relay(ctcp, upstream, &meter.activity, meter.started, &meter.bytes_in);
                let down = super::splice::relay(upstream, ctcp, &meter.activity, meter.started, &meter.bytes_out);
                tokio::pin!(up, down);
                supervise(up, down, &meter, limit, &stop, cont).await
            })
            .await
        } else if let (Some(ctcp), Upstream::Tcp(upstream)) = (client.as_tcp(), &upstream) {
            let ended = AtomicU8::new(0);
            let up = relay::tcp(ctcp, upstream, meter.tally(&meter.bytes_in), &ended);
            let down = relay::tcp(upstream, ctcp, meter.tally(&meter.bytes_out), &ended);
            tokio::pin!(up, down);
            supervise(up, down, &meter, limit, &stop, cont).await
        } else {
            Box::pin(async {
                let (mut sr, mut sw) = tokio::io::split(&mut upstream);
                let (mut cr, mut cw) = tokio::io::split(&mut client);
                let up = relay::copy(&mut cr, &mut sw, meter.tally(&meter.bytes_in));
                let down = relay::copy(&mut sr, &mut cw, meter.tally(&meter.bytes_out));
                tokio::pin!(up, down);
                supervise(up, down, &meter, limit, &stop, cont).await
            })
            .await
        };
        log.term = term;
        log.bytes_in = meter.bytes_in.load(Ordering::Relaxed);
        log.bytes_out = meter.bytes_out.load(Ordering::Relaxed);
        meter.count(&counters);
        finish(&fe, &acc, &log, Some(&be));
        drop(slot);
    }
}

/// Byte counts and the time of the last activity of a session.
struct Meter {
    started: Instant,
    /// Milliseconds after `started` of the last byte moved, either way.
    activity: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// How much of `bytes_in` and `bytes_out` the proxies' counters have had.
    counted: [AtomicU64; 2],
}

/// The byte counters (in, out) a session adds to: its frontend's, its
/// backend's and its server's.
struct Counters<'a>([(&'a AtomicU64, &'a AtomicU64); 3]);

/// How often `option contstats` brings the counters up to date during a session.
const CONTSTATS_PERIOD: Duration = Duration::from_secs(1);

impl Meter {
    /// Adds to `to` the bytes moved since the last call.
    fn count(&self, to: &Counters<'_>) {
        let [counted_in, counted_out] = &self.counted;
        let now_in = self.bytes_in.load(Ordering::Relaxed);
        let now_out = self.bytes_out.load(Ordering::Relaxed);
        let d_in = now_in.saturating_sub(counted_in.swap(now_in, Ordering::Relaxed));
        let d_out = now_out.saturating_sub(counted_out.swap(now_out, Ordering::Relaxed));
        if d_in == 0 && d_out == 0 {
            return;
        }
        for (i, o) in to.0 {
            i.fetch_add(d_in, Ordering::Relaxed);
            o.fetch_add(d_out, Ordering::Relaxed);
        }
    }

    fn tally<'a>(&'a self, bytes: &'a AtomicU64) -> relay::Tally<'a> {
        relay::Tally {
            activity: &self.activity,
            started: self.started,
            bytes,
        }
    }
}

/// The inactivity limit of an established session and who is blamed when it
/// fires: data moving either way keeps both sides alive (HAProxy's default,
/// without `option independent-streams`), so the smaller of `timeout client`
/// and `timeout server` decides. `timeout tunnel` replaces both once connected.
fn idle_limit(fe: &FrontendRt, be: &BackendRt) -> Option<(Duration, char)> {
    let (tc, ts) = match be.conf.timeouts.tunnel.or(fe.conf.timeouts.tunnel) {
        Some(tt) => (Some(tt), Some(tt)),
        None => (fe.conf.timeouts.client, be.conf.timeouts.server),
    };
    match (tc, ts) {
        (Some(c), Some(s)) => Some((c.min(s), if c <= s { 'c' } else { 's' })),
        (Some(c), None) => Some((c, 'c')),
        (None, Some(s)) => Some((s, 's')),
        (None, None) => None,
    }
}

/// What ends a session from outside: its server's sessions being shut down,
/// or its snapshot being hard-stopped after a reload.
struct Stop<'a> {
    server: &'a ServerRt,
    snapshot: &'a Snapshot,
    generation: u64,
}

impl Stop<'_> {
    async fn wait(&self) {
        loop {
            let woken = self.server.wake.notified();
            tokio::pin!(woken);
            // Registered before looking, so a wake-up between the look and the wait is not lost.
            woken.as_mut().enable();
            if self.server.kill_generation() != self.generation || self.snapshot.hard_stopped.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }
}

/// Runs both directions until they end, the session idles out, or the server's
/// sessions are shut down. Returns the log's termination state.
async fn supervise<U, D>(
    up: U,
    down: D,
    meter: &Meter,
    limit: Option<(Duration, char)>,
    stop: &Stop<'_>,
    cont: Option<&Counters<'_>>,
) -> [char; 2]
where
    U: std::future::Future<Output = std::io::Result<()>>,
    D: std::future::Future<Output = std::io::Result<()>>,
{
    let watchdog = async {
        let Some((limit, who)) = limit else {
            return std::future::pending::<char>().await;
        };
        loop {
            let last = Duration::from_millis(meter.activity.load(Ordering::Acquire));
            let idle = meter.started.elapsed().saturating_sub(last);
            if idle >= limit {
                return who;
            }
            tokio::time::sleep(limit - idle).await;
        }
    };
    // Both directions run to their EOF (half-closes pass through); an error on
    // either side (a reset) ends the whole session at once, as HAProxy does,
    // rather than leaving the other direction waiting on a peer that will
    // never hear an EOF.
    let both = async { tokio::try_join!(async { up.await.map_err(|_| 'C') }, async { down.await.map_err(|_| 'S') }) };
    tokio::select! {
        r = both => match r {
            Ok(_) => ['-', '-'],
            Err(side) => [side, 'D'],
        },
        who = watchdog => [who, 'D'],
        () = contstats(meter, cont) => ['-', '-'],
        // `shutdown-sessions`, or a reload replaced the snapshot and `hard-stop-after` ran out.
        _ = stop.wait() => ['K', 'D'],
    }
}

/// With `option contstats`, brings the counters up to date every
/// [`CONTSTATS_PERIOD`]; never ends.
async fn contstats(meter: &Meter, cont: Option<&Counters<'_>>) {
    let Some(to) = cont else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(CONTSTATS_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        meter.count(to);
    }
}

struct LogState {
    backend: String,
    server: String,
    tw: i64,
    tc: i64,
    bytes_in: u64,
    bytes_out: u64,
    term: [char; 2],
    retries: u32,
    redispatched: bool,
    /// The line went out when the server was connected (`option logasap`).
    logged: bool,
}

/// The end of a session: its log line, unless it went out early.
fn finish(fe: &FrontendRt, acc: &Accepted, log: &LogState, be: Option<&BackendRt>) {
    if !log.logged {
        write_log(fe, acc, log, be, false);
    }
}

/// A session's log line: at its end, or `early` when its server connection
/// was made (`option logasap`), with the total time and bytes as they were
/// then. As in HAProxy, an early line is written whatever the session later
/// carries, so `dontlognull` does not hold it back.
fn write_log(fe: &FrontendRt, acc: &Accepted, log: &LogState, be: Option<&BackendRt>, early: bool) {
    let o = &fe.conf.options;
    if !(o.tcplog || o.httplog) || fe.logger.is_empty() {
        return;
    }
    if !early && o.dontlognull && log.bytes_in == 0 && log.term == ['-', '-'] {
        return;
    }
    let term = if early { ['-', '-'] } else { log.term };
    let error = super::log::is_error(term[0], log.retries, log.redispatched, 0);
    if o.dontlog_normal && !error {
        return;
    }
    let line = TcpLog {
        client: acc.src,
        accept_ms: acc.accept_ms,
        frontend: fe.name(),
        ssl: acc.tls.is_some(),
        backend: &log.backend,
        server: &log.server,
        tw: log.tw,
        tc: log.tc,
        tt: acc.started.elapsed().as_millis() as i64,
        bytes: log.bytes_out,
        termination: term,
        actconn: super::ACTIVE_CONNS.load(Ordering::Relaxed),
        feconn: fe.cur_conns.load(Ordering::Relaxed),
        beconn: be.map_or(0, |b| b.cur_conns.load(Ordering::Relaxed)),
        srv_conn: be
            .and_then(|b| b.servers.iter().find(|s| s.name() == log.server))
            .map_or(0, |s| s.cur_conns.load(Ordering::Relaxed)),
        retries: log.retries,
        redispatched: log.redispatched,
        srv_queue: 0,
        backend_queue: 0,
        early,
    }
    .format();
    fe.logger.log(super::log::level_of(error, o.log_separate_errors), &line);
}
