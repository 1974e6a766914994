//! The options that set lbd's TCP sockets up, seen from outside on real
//! loopback connections: `option tcpka|clitcpka|srvtcpka` (keep-alive probes),
//! `option nolinger` (a reset instead of a lingering close),
//! `option tcp-smart-connect` (the handshake's last ACK rides on the request)
//! and `option tcp-smart-accept` (the ACK of a request rides on the answer; set
//! on lbd's listening socket, read back from the running process).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use e2e::harness::*;

const TCP_DEFAULTS: &str = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n";
const HTTP_DEFAULTS: &str = "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n";

/// The kernel's view of one socket (`struct tcp_info`).
fn tcp_info(fd: RawFd) -> libc::tcp_info {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for the call; `fd` is an open socket.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt(TCP_INFO): {}", std::io::Error::last_os_error());
    info
}

/// Whether the established socket with this `ss` filter (one end on loopback)
/// has a keep-alive timer running.
fn keepalive_timer(filter: &str) -> bool {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", filter])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.trim().is_empty(), "no established socket matches {filter}");
    text.contains("timer:(keepalive")
}

/// TCP keep-alive probes on the side each option names: `clitcpka` toward the
/// client, `srvtcpka` toward the server, `tcpka` in a `listen` both; without
/// them, neither.
#[test]
fn keepalive_probes_go_where_tcpka_clitcpka_and_srvtcpka_say() {
    let srv = NamedServer::start("a", "127.0.0.1:0");
    let cases = [
        ("", "", false, false),
        ("  option clitcpka\n", "", true, false),
        ("", "  option srvtcpka\n", false, true),
        ("  option tcpka\n", "  option tcpka\n", true, true),
    ];
    for (fe_opts, be_opts, client_side, server_side) in cases {
        let port = free_port();
        let cfg = format!(
            "{TCP_DEFAULTS}frontend f\n  bind 127.0.0.1:{port}\n{fe_opts}  default_backend b\nbackend b\n{be_opts}  server a 127.0.0.1:{}\n",
            srv.port()
        );
        let _lbd = Lbd::start(&cfg);
        let held = connect(&format!("127.0.0.1:{port}"));
        assert_eq!(read_name(&held), "a");
        // lbd's own sockets: the one it accepted (local port: the frontend's)
        // and the one it opened (remote port: the server's, from lbd's port).
        let local = held.local_addr().expect("local addr").port();
        let toward_client = keepalive_timer(&format!("( sport = :{port} and dport = :{local} )"));
        let toward_server = keepalive_timer(&format!("( dport = :{} )", srv.port()));
        assert_eq!(
            (toward_client, toward_server),
            (client_side, server_side),
            "frontend options {fe_opts:?}, backend options {be_opts:?}: keep-alive (toward client, toward server)"
        );
    }
}

/// `option nolinger`: when `timeout client` ends an idle session, lbd resets
/// the connection (the client's socket is gone at once, `CLOSE`) instead of
/// closing it (the client's socket waits for its own close, `CLOSE_WAIT`). In
/// a backend it does the same to the server's connection.
#[test]
fn nolinger_resets_what_a_timeout_closes() {
    const TCP_CLOSE: u8 = 7;
    const TCP_CLOSE_WAIT: u8 = 8;
    for (fe_opts, be_opts) in [("", ""), ("  option nolinger\n", ""), ("", "  option nolinger\n")] {
        let backend = TcpListener::bind("127.0.0.1:0").expect("bind");
        let be_port = backend.local_addr().expect("addr").port();
        let port = free_port();
        let cfg = format!(
            "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 300ms\n  timeout server 10s\n\
             frontend f\n  bind 127.0.0.1:{port}\n{fe_opts}  default_backend b\nbackend b\n{be_opts}  server s 127.0.0.1:{be_port}\n"
        );
        let _lbd = Lbd::start(&cfg);
        let mut client = connect(&format!("127.0.0.1:{port}"));
        let (mut server_side, _) = backend.accept().expect("accept");
        server_side.write_all(b"hello\n").expect("greet");
        let mut buf = [0u8; 6];
        client.read_exact(&mut buf).expect("greeting");
        // The session idles past `timeout client`; both sides are closed.
        server_side.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut rest = [0u8; 16];
        let started = Instant::now();
        let _ = client.read(&mut rest);
        let _ = server_side.read(&mut rest);
        assert!(started.elapsed() < Duration::from_secs(4), "the timeout did not end the session");
        std::thread::sleep(Duration::from_millis(200));
        let state = |s: &TcpStream| tcp_info(s.as_raw_fd()).tcpi_state;
        let want = |on: bool| if on { TCP_CLOSE } else { TCP_CLOSE_WAIT };
        assert_eq!(
            (state(&client), state(&server_side)),
            (want(!fe_opts.is_empty()), want(!be_opts.is_empty())),
            "frontend options {fe_opts:?}, backend options {be_opts:?}: TCP state of (client, server) \
             (7 CLOSE after a reset, 8 CLOSE_WAIT after a FIN)"
        );
    }
}

/// A one-request HTTP server that answers with the number of TCP segments its
/// connection had received once the request head was in: SYN, ACK and the
/// request make 3; when the ACK rides on the request, 2.
fn segment_counting_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let t = std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = tcp_info(s.as_raw_fd()).tcpi_segs_in.to_string();
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    (port, t)
}

fn get_body(port: u16) -> String {
    let mut s = connect(&format!("127.0.0.1:{port}"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

/// `option tcp-smart-connect`: the server gets the connection and the request
/// in one segment instead of an ACK and then the request.
#[test]
fn tcp_smart_connect_sends_the_handshake_ack_with_the_request() {
    let mut segments = Vec::new();
    for be_opts in ["", "  option tcp-smart-connect\n"] {
        let (be_port, server) = segment_counting_server();
        let port = free_port();
        let cfg = format!(
            "{HTTP_DEFAULTS}frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n{be_opts}  server s 127.0.0.1:{be_port}\n"
        );
        let _lbd = Lbd::start(&cfg);
        let body = get_body(port);
        server.join().expect("server thread");
        segments.push(body.parse::<u32>().unwrap_or_else(|_| panic!("body {body:?}")));
    }
    assert_eq!(
        segments[1] + 1,
        segments[0],
        "segments at the server (without, with the option): {segments:?}"
    );
}

/// With nothing to send at once (a server that speaks first, in TCP mode),
/// `tcp-smart-connect` does not hold the ACK back: the kernel would send it
/// only after 200 ms, and the server would see the connection that late.
#[test]
fn tcp_smart_connect_does_not_delay_a_server_that_speaks_first() {
    let srv = NamedServer::start("a", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{TCP_DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  option tcp-smart-connect\n  server a 127.0.0.1:{}\n",
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let s = connect(&format!("127.0.0.1:{port}"));
        assert_eq!(read_name(&s), "a");
        worst = worst.max(started.elapsed());
    }
    assert!(worst < Duration::from_millis(150), "a greeting took {worst:?}");
}

/// lbd's listening sockets on `port`, duplicated into this process
/// (`pidfd_getfd`, as root).
fn listeners_of(pid: u32, port: u16) -> Vec<OwnedFd> {
    // SAFETY: plain system calls; every descriptor they return is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: pidfd_open returned a new descriptor.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("lbd's fds").flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let Some(n) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else {
            continue;
        };
        // SAFETY: see above.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0) };
        if fd < 0 {
            continue;
        }
        // SAFETY: pidfd_getfd returned a new descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let sock = socket2::SockRef::from(&fd);
        let listening = sock.is_listener().unwrap_or(false);
        let on_port = sock.local_addr().ok().and_then(|a| a.as_socket()).is_some_and(|a| a.port() == port);
        if listening && on_port {
            found.push(fd);
        }
    }
    found
}

/// `option tcp-smart-accept`: as in HAProxy, on by default in HTTP mode and
/// off in TCP mode, and the option (or `no option`, in the defaults or the
/// frontend) decides either way. lbd's listening sockets leave quick-ACK mode
/// exactly when it is on, and a client's first bytes then wait for the answer
/// to be acknowledged.
#[test]
fn tcp_smart_accept_holds_the_ack_of_a_request_in_http_mode_unless_turned_off() {
    let cases = [
        ("http", "", "", true),
        ("http", "", "  no option tcp-smart-accept\n", false),
        ("http", "  no option tcp-smart-accept\n", "", false),
        ("http", "  no option tcp-smart-accept\n", "  option tcp-smart-accept\n", true),
        ("tcp", "", "", false),
        ("tcp", "", "  option tcp-smart-accept\n", true),
    ];
    for (mode, defaults, opts, smart) in cases {
        let port = free_port();
        let cfg = format!(
            "defaults\n  mode {mode}\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n{defaults}\
             frontend f\n  bind 127.0.0.1:{port}\n{opts}  default_backend b\nbackend b\n  server s 127.0.0.1:9\n"
        );
        let lbd = Lbd::start(&cfg);
        let settled = wait_until(Duration::from_secs(5), || {
            let socks = listeners_of(lbd.pid(), port);
            !socks.is_empty() && socks.iter().all(|s| socket2::SockRef::from(s).quickack().ok() == Some(!smart))
        });
        let seen: Vec<_> = listeners_of(lbd.pid(), port)
            .iter()
            .map(|s| socket2::SockRef::from(s).quickack().ok())
            .collect();
        assert!(
            settled.is_some(),
            "mode {mode}, options {opts:?}: quick-ACK of lbd's listening sockets {seen:?}, want {}",
            !smart
        );
        // And on the wire: right after a client's first bytes, are they still
        // unacknowledged (the ACK held for the answer) or acknowledged already?
        let held: Vec<u32> = (0..5)
            .map(|_| {
                let mut c = connect(&format!("127.0.0.1:{port}"));
                c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
                tcp_info(c.as_raw_fd()).tcpi_unacked
            })
            .collect();
        let want_held = if smart {
            held.iter().any(|&n| n > 0)
        } else {
            held.iter().all(|&n| n == 0)
        };
        assert!(
            want_held,
            "mode {mode}, options {opts:?}: segments unacknowledged right after sending {held:?}"
        );
    }
}
