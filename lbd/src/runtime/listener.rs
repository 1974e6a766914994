//! Listening sockets and accept loops. Sockets are opened with SO_REUSEPORT so
//! a second lbd (or a restart) can bind beside a running one. Accept loops never
//! die: on EMFILE/ENFILE they back off and count, every error is logged with a
//! rate limit, and `maxconn` stops accepting (leaving clients in the kernel's
//! backlog) rather than refusing.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixListener;
use tokio::sync::watch;

use super::lazy_tcp::LazyTcp;
use super::session::Accepted;
use super::snapshot::{FrontendRt, Snapshot};
use super::{http, session, Runtime, ACTIVE_CONNS};
use crate::config::addr::ListenAddr;
use crate::config::model::{Bind, Mode};

/// Accept errors seen, by kind, for the stats.
pub static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Connections accepted since the start.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

pub fn accepted_total() -> u64 {
    ACCEPTED.load(Ordering::Relaxed)
}
/// Connections refused by `tcp-request connection|session|content reject`.
pub static TCP_REJECTED: AtomicU64 = AtomicU64::new(0);

/// `tcp-request connection`, `session` and `content` rules, in that order: the
/// first `accept` or `reject` whose condition holds decides. Content rules see
/// what is known at accept time (addresses, ports, server counts); rules on
/// payload fetches wait for the HTTP path's inspection.
fn tcp_rules_accept(snapshot: &Snapshot, fe: &FrontendRt, acc: &Accepted) -> Verdict {
    use crate::config::model::TcpRuleStage;
    tcp_rules_pass(
        snapshot,
        fe,
        acc,
        &[TcpRuleStage::Connection, TcpRuleStage::Session, TcpRuleStage::Content],
    )
}

/// What the `tcp-request` rules decided about a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// `reject`: closed at once, with a reset.
    Reject,
    /// `silent-drop`: closed without the client being told.
    SilentDrop,
}

impl Verdict {
    /// Closes a refused connection as its rule says; `false` when it passed.
    fn refuse(self, tcp: Option<std::os::fd::BorrowedFd<'_>>) -> bool {
        if self == Verdict::Pass {
            return false;
        }
        TCP_REJECTED.fetch_add(1, Ordering::Relaxed);
        if let Some(tcp) = tcp {
            if self == Verdict::SilentDrop {
                session::silence(std::os::fd::AsRawFd::as_raw_fd(&tcp));
            }
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
        }
        true
    }
}

/// The `tcp-request` rules of the given stages, in order.
fn tcp_rules_pass(snapshot: &Snapshot, fe: &FrontendRt, acc: &Accepted, stages: &[crate::config::model::TcpRuleStage]) -> Verdict {
    use crate::config::model::TcpAction;
    let ctx = super::acl_eval::SampleCtx::for_client(acc, snapshot, fe, None, None);
    for &stage in stages {
        for rule in fe.conf.tcp_rules.iter().filter(|r| r.stage == stage) {
            if !super::acl_eval::holds(rule.cond.as_ref(), &ctx) {
                continue;
            }
            match rule.action {
                TcpAction::Accept => break,
                TcpAction::Reject => return Verdict::Reject,
                TcpAction::SilentDrop => return Verdict::SilentDrop,
                _ => {}
            }
        }
    }
    Verdict::Pass
}

/// Connections reset because their PROXY header was missing or invalid.
pub static PROXY_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Accepts delayed because the process ran out of file descriptors.
pub static FD_EXHAUSTED: AtomicU64 = AtomicU64::new(0);

/// Pause after EMFILE/ENFILE before accepting again.
const FD_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per this period for accept errors.
const ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);

pub enum BoundSocket {
    /// Accepted sockets are registered with the event loop only when they must
    /// wait (see [`super::lazy_tcp`]), so the listener hands out plain sockets.
    Tcp(AsyncFd<std::net::TcpListener>),
    Unix(UnixListener),
}

fn tcp_socket(sa: SocketAddr, bind: &Bind, default_backlog: i32) -> std::io::Result<std::net::TcpListener> {
    let domain = if sa.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if sa.is_ipv6() {
        if bind.params.v6only {
            s.set_only_v6(true)?;
        } else if bind.params.v4v6 {
            s.set_only_v6(false)?;
        }
    }
    if bind.params.transparent {
        let _ = s.set_ip_transparent(true);
    }
    // A VIP the box does not hold yet can still be bound (as with ip_nonlocal_bind).
    let _ = s.set_freebind(true);
    s.set_nonblocking(true)?;
    s.bind(&sa.into())?;
    let backlog = bind.params.backlog.map_or(default_backlog, |b| b.min(i32::MAX as u32) as i32);
    s.listen(backlog)?;
    Ok(s.into())
}

/// `option tcp-smart-accept`: the listening socket is put out of quick-ACK
/// mode, which the connections it accepts inherit, so that a client's request
/// is acknowledged by the response rather than by an empty ACK of its own.
/// (Only after `listen(2)`, which resets that mode.) As in HAProxy, it is on in
/// HTTP mode unless `no option tcp-smart-accept` says otherwise, and off in TCP
/// mode unless asked for.
pub fn smart_accept(fe: &FrontendRt) -> bool {
    fe.conf.options.tcp_smart_accept.unwrap_or(fe.conf.mode == Mode::Http)
}

/// `option tcpka` or `clitcpka` (TCP keep-alive probes) and `option nolinger`
/// (a reset rather than a lingering close) on a client's socket.
fn client_socket_options(fe: &FrontendRt, s: &std::net::TcpStream) {
    let o = &fe.conf.options;
    if o.tcpka || o.clitcpka {
        let _ = socket2::SockRef::from(s).set_keepalive(true);
    }
    if o.nolinger {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    }
}

/// A listening socket, registered with the current runtime's event loop.
pub fn register(l: std::net::TcpListener) -> std::io::Result<AsyncFd<std::net::TcpListener>> {
    // SAFETY: the AsyncFd owns the listener, whose descriptor stays open and
    // the same until the AsyncFd drops it.
    Ok(unsafe { AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }?)
}

/// The sockets of one listening address.
pub enum Bound {
    /// One socket, served on the main runtime (UNIX sockets, or any when no
    /// worker runtime runs).
    One(BoundSocket),
    /// One socket per worker thread, all bound with SO_REUSEPORT: the kernel
    /// spreads connections over them, and each thread serves its own from
    /// accept to close (no work stealing; a plain HTTP connection may first
    /// move to the least loaded worker).
    Sharded(Vec<std::net::TcpListener>),
}

/// Opens the sockets for `addr`: one per worker thread when the address is TCP.
pub fn bind(
    fe: &FrontendRt,
    bind: &Bind,
    addr: &ListenAddr,
    global: &crate::config::model::Global,
    shards: usize,
) -> Result<Bound, String> {
    match addr {
        ListenAddr::Inet(sa) if shards > 0 => {
            let backlog = default_backlog(fe);
            let socks = (0..shards)
                .map(|_| tcp_socket(*sa, bind, backlog).map_err(|e| format!("{}: cannot bind {sa} ({}): {e}", fe.name(), bind.loc)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Bound::Sharded(socks))
        }
        _ => bind_addr(fe, bind, addr, global).map(Bound::One),
    }
}

fn default_backlog(fe: &FrontendRt) -> i32 {
    fe.conf
        .backlog
        .or(fe.conf.maxconn)
        .map_or(1024, |b| b.clamp(1, i32::MAX as u32) as i32)
}

/// Opens one listening socket for `addr` of a frontend's `bind` line.
pub fn bind_addr(fe: &FrontendRt, bind: &Bind, addr: &ListenAddr, global: &crate::config::model::Global) -> Result<BoundSocket, String> {
    let default_backlog = default_backlog(fe);
    match addr {
        ListenAddr::Inet(sa) => {
            let l = tcp_socket(*sa, bind, default_backlog).map_err(|e| format!("{}: cannot bind {sa} ({}): {e}", fe.name(), bind.loc))?;
            Ok(BoundSocket::Tcp(register(l).map_err(|e| format!("{}: {sa}: {e}", fe.name()))?))
        }
        ListenAddr::Unix { path, .. } => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // A stale socket from an earlier run would make bind fail.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket_like()) {
                let _ = std::fs::remove_file(path);
            }
            let l = UnixListener::bind(path).map_err(|e| format!("{}: cannot bind {} ({}): {e}", fe.name(), path.display(), bind.loc))?;
            if let Some(m) = bind.params.mode.or(global.unix_bind_mode) {
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(m));
            }
            let uid = bind
                .params
                .uid
                .or_else(|| id_of("/etc/passwd", bind.params.user.as_deref().or(global.unix_bind_user.as_deref())));
            let gid = bind
                .params
                .gid
                .or_else(|| id_of("/etc/group", bind.params.group.as_deref().or(global.unix_bind_group.as_deref())));
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(path, uid, gid)
                    .map_err(|e| format!("{}: cannot set the owner of {}: {e}", fe.name(), path.display()))?;
            }
            Ok(BoundSocket::Unix(l))
        }
    }
}

/// The numeric id of a user or group name (or of a number given as text).
fn id_of(file: &str, name: Option<&str>) -> Option<u32> {
    let name = name?;
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.nth(1).and_then(|id| id.parse().ok())).flatten()
    })
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_socket()
    }
}

fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Logs an accept error at most once per period.
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn error(&mut self, fe: &str, e: &std::io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|l| now.duration_since(l) < ERROR_LOG_PERIOD) {
            self.suppressed += 1;
            return;
        }
        eprintln!(
            "[WARNING] frontend {fe}: accept error: {e} ({} similar errors not shown)",
            self.suppressed
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Counts a connection in the frontend and process totals (and its worker's
/// load) while it lives.
struct ConnGuard {
    fe: Arc<FrontendRt>,
    _worker: super::WorkerLoad,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.fe.cur_conns.fetch_sub(1, Ordering::AcqRel);
        ACTIVE_CONNS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts on one socket until `stop` turns true. Each connection is served
/// by the frontend that binds this address in the snapshot current at accept
/// time, so a reload changes what new connections get without closing the socket.
pub async fn accept_loop(rt: Arc<Runtime>, addr: ListenAddr, socket: BoundSocket, stop: watch::Receiver<bool>) {
    accept_until_stopped(&rt, &addr, &socket, stop).await;
    // Clients already in the kernel's accept queue would be reset when the socket
    // closes: take them first (a stop or a takeover loses nothing queued).
    while let Ok(Ok((stream, src, dst))) = tokio::time::timeout(Duration::ZERO, accept(&socket, &addr)).await {
        let snapshot = rt.current();
        let Some(fe) = snapshot.frontend_for(&addr).cloned() else { break };
        spawn_session(snapshot, fe, &addr, stream, src, dst, None, None);
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_session(
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    addr: &ListenAddr,
    stream: Stream,
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    permit_g: Option<tokio::sync::OwnedSemaphorePermit>,
    permit_f: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    if let Stream::Tcp(s) = &stream {
        client_socket_options(&fe, s);
    }
    let now = fe.cur_conns.fetch_add(1, Ordering::AcqRel) + 1;
    fe.max_conns.fetch_max(now, Ordering::Relaxed);
    fe.total_conns.fetch_add(1, Ordering::Relaxed);
    ACTIVE_CONNS.fetch_add(1, Ordering::AcqRel);
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    let bind = fe.conf.binds.iter().find(|b| b.addrs.contains(addr));
    let tls = bind.and_then(|b| b.params.tls.0.clone());
    let http = fe.conf.mode == Mode::Http;
    // A plain HTTP connection's socket is not registered yet, so it can go to
    // the least loaded worker thread; the others stay on the accepting one.
    let plain_http = http && tls.is_none() && matches!(stream, Stream::Tcp(_));
    let (worker, elsewhere) = if plain_http {
        super::lightest_worker()
    } else {
        (super::worker_index(), false)
    };
    let guard = ConnGuard {
        fe: Arc::clone(&fe),
        _worker: super::count_on_worker(worker),
    };
    let acc = Accepted {
        src,
        dst,
        tls: None,
        accept_ms: super::log::now(),
        started: Instant::now(),
    };
    let accept_proxy = bind.is_some_and(|b| b.params.accept_proxy);
    let hold = (permit_g, permit_f, guard);
    // Each kind of connection is its own task, sized for what it runs (a
    // wrapper future around them would add its own copy of their arguments).
    match (stream, tls) {
        // Plain HTTP: registered once it has to wait, by the worker that serves it.
        (Stream::Tcp(s), None) if http => {
            let task = serve(snapshot, fe, LazyTcp::new(s), acc, accept_proxy, hold, http::run);
            if elsewhere {
                super::start_on(worker, Box::pin(task));
            } else {
                drop(tokio::spawn(task));
            }
        }
        (Stream::Tcp(s), tls) => {
            let s = match tokio::net::TcpStream::from_std(s) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("[WARNING] frontend {}: {e}", fe.name());
                    return;
                }
            };
            match tls {
                Some(tls) => drop(tokio::spawn(serve_tls(snapshot, fe, s, acc, accept_proxy, tls, hold))),
                None => drop(tokio::spawn(serve(snapshot, fe, s, acc, accept_proxy, hold, tcp_session))),
            }
        }
        (Stream::Unix(s), _) if http => drop(tokio::spawn(serve(snapshot, fe, s, acc, accept_proxy, hold, http::run))),
        (Stream::Unix(s), _) => drop(tokio::spawn(serve(snapshot, fe, s, acc, accept_proxy, hold, tcp_session))),
    }
}

/// A TCP-mode session with the backend its rules choose.
fn tcp_session<C: session::ClientStream>(
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    client: C,
    acc: Accepted,
    preread: Vec<u8>,
) -> impl std::future::Future<Output = ()> {
    session::run(snapshot, fe, client, acc, preread, None)
}

/// What a connection holds while it lives: its places under the process's and
/// the frontend's `maxconn`, and its count in the totals.
type Hold = (
    Option<tokio::sync::OwnedSemaphorePermit>,
    Option<tokio::sync::OwnedSemaphorePermit>,
    ConnGuard,
);

/// Longest wait for a TLS handshake when `timeout client` is not set.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// `bind ... ssl`: the PROXY header first (when the bind accepts one), then
/// the TLS handshake, then the frontend's work on the decrypted stream.
async fn serve_tls(
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    mut client: tokio::net::TcpStream,
    mut acc: Accepted,
    accept_proxy: bool,
    tls: Arc<rustls::ServerConfig>,
    hold: Hold,
) {
    let _hold = hold;
    let mut preread = Vec::new();
    if accept_proxy {
        match proxy_prelude(&fe, &mut client, &mut acc).await {
            Some(rest) => preread = rest,
            None => return,
        }
    }
    // `tcp-request connection` rules come before the handshake, as in HAProxy: a
    // rejected source costs no TLS work.
    if tcp_rules_pass(&snapshot, &fe, &acc, &[crate::config::model::TcpRuleStage::Connection])
        .refuse(Some(std::os::fd::AsFd::as_fd(&client)))
    {
        return;
    }
    let wait = fe.conf.timeouts.client.unwrap_or(HANDSHAKE_WAIT).min(HANDSHAKE_WAIT);
    let Some((stream, info)) = super::tls_io::accept(tls, super::tls_io::Prefixed::new(preread, client), wait).await else {
        return;
    };
    acc.tls = Some(Arc::new(info));
    dispatch(snapshot, fe, stream, acc, Vec::new()).await;
}

/// Reads the PROXY header of an `accept-proxy` bind: the bytes after it, or
/// `None` when the connection was reset for a missing or bad header.
async fn proxy_prelude<C: session::ClientStream>(fe: &FrontendRt, client: &mut C, acc: &mut Accepted) -> Option<Vec<u8>> {
    let wait = fe
        .conf
        .timeouts
        .http_request
        .or(fe.conf.timeouts.client)
        .unwrap_or(PROXY_HEADER_WAIT)
        .min(PROXY_HEADER_WAIT);
    match Box::pin(super::proxy_proto::read_header(client, wait)).await {
        Ok(got) => {
            if got.src.is_some() {
                acc.src = got.src;
                acc.dst = got.dst;
            }
            Some(got.rest)
        }
        Err(e) => {
            PROXY_ERRORS.fetch_add(1, Ordering::Relaxed);
            eprintln!("[WARNING] frontend {}: {e}; connection reset", fe.name());
            // A clear reset rather than a quiet close.
            if let Some(tcp) = client.tcp_fd() {
                let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            }
            None
        }
    }
}

/// Longest wait for a PROXY header when `timeout client` is not set.
const PROXY_HEADER_WAIT: Duration = Duration::from_secs(5);

async fn accept_until_stopped(rt: &Arc<Runtime>, addr: &ListenAddr, socket: &BoundSocket, mut stop: watch::Receiver<bool>) {
    let mut errors = RateLimitedLog { last: None, suppressed: 0 };
    // A new socket acknowledges at once (the kernel's default).
    let mut quickack = true;
    loop {
        if *stop.borrow() {
            return;
        }
        let snapshot = rt.current();
        let Some(fe) = snapshot.frontend_for(addr).cloned() else {
            // Removed by a reload: the runtime stops this loop right after the switch.
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
            }
        };
        // Set here rather than at bind time so that a reload which changes the
        // frontend's mode or option applies to the socket it keeps.
        if let BoundSocket::Tcp(l) = socket {
            let want = !smart_accept(&fe);
            if want != quickack && socket2::SockRef::from(l.get_ref()).set_quickack(want).is_ok() {
                quickack = want;
            }
        }
        // Accept, then take the connection slots: while they are full this loop
        // holds at most the one connection it accepted, and the kernel keeps the
        // other clients queued. (Taking the slots first would let an idle
        // worker's loop sit on a slot while clients wait on another worker's socket.)
        let accepted = tokio::select! {
            r = accept(socket, addr) => r,
            _ = stop.changed() => return,
        };
        let accepted = match accepted {
            Ok(conn) => {
                let permit_g = tokio::select! {
                    p = Arc::clone(&rt.slots).acquire_owned() => p,
                    _ = stop.changed() => return,
                };
                let Ok(permit_g) = permit_g else { return };
                let permit_f = match &fe.slots {
                    Some(s) => {
                        let p = tokio::select! {
                            p = Arc::clone(s).acquire_owned() => p,
                            _ = stop.changed() => return,
                        };
                        match p {
                            Ok(p) => Some(p),
                            Err(_) => return,
                        }
                    }
                    None => None,
                };
                Ok((conn, permit_g, permit_f))
            }
            Err(e) => Err(e),
        };
        match accepted {
            Ok(((stream, src, dst), permit_g, permit_f)) => {
                // A reload may have happened while waiting: serve with what is current now.
                let snapshot = rt.current();
                let fe = snapshot.frontend_for(addr).cloned().unwrap_or(fe);
                spawn_session(snapshot, fe, addr, stream, src, dst, Some(permit_g), permit_f);
            }
            Err(e) => {
                ACCEPT_ERRORS.fetch_add(1, Ordering::Relaxed);
                errors.error(fe.name(), &e);
                if is_fd_exhaustion(&e) {
                    FD_EXHAUSTED.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(FD_BACKOFF).await;
                }
            }
        }
    }
}

/// A plain (not TLS) connection: its PROXY header and `tcp-request` rules,
/// then `then` (the frontend's mode: a TCP session or HTTP).
#[allow(clippy::manual_async_fn)] // see the body's first comment
fn serve<C, F, Fut>(
    snapshot: Arc<Snapshot>,
    fe: Arc<FrontendRt>,
    mut client: C,
    mut acc: Accepted,
    accept_proxy: bool,
    hold: Hold,
    then: F,
) -> impl std::future::Future<Output = ()>
where
    C: session::ClientStream,
    F: FnOnce(Arc<Snapshot>, Arc<FrontendRt>, C, Accepted, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // An async block, not an async fn: it keeps one copy of the arguments, not
    // two (rust-lang/rust#62958), in a future that lives as long as the connection.
    async move {
        let _hold = hold;
        if let Some(preread) = admit(&snapshot, &fe, &mut client, &mut acc, accept_proxy).await {
            then(snapshot, fe, client, acc, preread).await;
        }
    }
}

/// The PROXY header (`accept-proxy`), then the `tcp-request` rules: the bytes
/// read after the header, or `None` when the connection is refused.
async fn admit<C: session::ClientStream>(
    snapshot: &Snapshot,
    fe: &FrontendRt,
    client: &mut C,
    acc: &mut Accepted,
    accept_proxy: bool,
) -> Option<Vec<u8>> {
    // `accept-proxy`: the relay's header says who the client is; the bytes after it are the client's.
    let preread = if accept_proxy {
        proxy_prelude(fe, client, acc).await?
    } else {
        Vec::new()
    };
    (!tcp_rules_accept(snapshot, fe, acc).refuse(client.tcp_fd())).then_some(preread)
}

/// The `tcp-request` rules, then the frontend's mode.
async fn dispatch<C: session::ClientStream>(snapshot: Arc<Snapshot>, fe: Arc<FrontendRt>, client: C, acc: Accepted, preread: Vec<u8>) {
    if tcp_rules_accept(&snapshot, &fe, &acc).refuse(client.tcp_fd()) {
        return;
    }
    if fe.conf.mode == Mode::Http {
        // Boxed: otherwise every TCP-mode task would reserve room for the HTTP state too.
        Box::pin(http::run(snapshot, fe, client, acc, preread)).await;
    } else {
        session::run(snapshot, fe, client, acc, preread, None).await;
    }
}

enum Stream {
    /// Non-blocking, not registered yet.
    Tcp(std::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(socket: &BoundSocket, addr: &ListenAddr) -> std::io::Result<(Stream, Option<SocketAddr>, Option<SocketAddr>)> {
    match socket {
        BoundSocket::Tcp(l) => {
            let (s, peer) = l
                .async_io(tokio::io::Interest::READABLE, |l| {
                    socket2::SockRef::from(l).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                })
                .await?;
            let _ = s.set_nodelay(true);
            let peer = peer
                .as_socket()
                .ok_or_else(|| std::io::Error::other("accepted a socket that is not TCP/IP"))?;
            let s = std::net::TcpStream::from(s);
            // A socket bound to one address is reached on that address: no getsockname(2).
            let local = match addr {
                ListenAddr::Inet(a) if !a.ip().is_unspecified() && a.port() != 0 => Some(*a),
                _ => s.local_addr().ok(),
            };
            Ok((Stream::Tcp(s), Some(peer), local))
        }
        BoundSocket::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Stream::Unix(s), None, None))
        }
    }
}
