//! Listeners and limits: SO_REUSEPORT, UNIX sockets, maxconn, descriptor
//! exhaustion, observe layer4, HTTP checks with the seed's rstatus, logs to a
//! UNIX datagram socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::harness::*;

const DEFAULTS: &str = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n";

#[test]
fn a_second_lbd_binds_beside_the_first_with_reuseport() {
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!("{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{}\n", srv.port());
    let first = Lbd::start(&cfg);
    let second = Lbd::start(&cfg);
    assert_eq!(ask(&format!("127.0.0.1:{port}")), "s");
    drop(first);
    // The second keeps serving alone.
    for _ in 0..5 {
        assert_eq!(ask(&format!("127.0.0.1:{port}")), "s");
    }
    drop(second);
}

#[test]
fn unix_socket_bind_under_the_unix_bind_prefix_with_its_mode() {
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let dir = Scratch::new("unix");
    let cfg = format!(
        "global\n  unix-bind prefix {}/\n{DEFAULTS}frontend f\n  bind /ssl:web mode 660 group haproxy name web\n  default_backend b\nbackend b\n  server s 127.0.0.1:{}\n",
        dir.path.display(),
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let path = dir.path.join("ssl:web");
    let meta = std::fs::metadata(&path).expect("socket exists under the prefix");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    // Debian's haproxy package creates the `haproxy` group (scripts/test installs it).
    let haproxy_gid = std::fs::read_to_string("/etc/group").unwrap_or_default().lines().find_map(|l| {
        l.strip_prefix("haproxy:")
            .and_then(|r| r.split(':').nth(1))
            .and_then(|g| g.parse::<u32>().ok())
    });
    use std::os::unix::fs::MetadataExt;
    assert_eq!(Some(meta.gid()), haproxy_gid, "group set from the bind line");
    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).expect("greeting");
    assert_eq!(&buf, b"s\n");
}

#[test]
fn frontend_maxconn_keeps_extra_clients_waiting_in_the_backlog() {
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}frontend f\n  bind 127.0.0.1:{port}\n  maxconn 2\n  default_backend b\nbackend b\n  server s 127.0.0.1:{}\n",
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let a = connect(&addr);
    let b = connect(&addr);
    assert_eq!(read_name(&a), "s");
    assert_eq!(read_name(&b), "s");
    // The third connects (the kernel queues it) but is not served while two are open.
    let c = connect(&addr);
    c.set_read_timeout(Some(Duration::from_millis(400))).ok();
    let mut buf = [0u8; 1];
    let early = (&c).read(&mut buf);
    assert!(early.is_err(), "served beyond maxconn: {early:?}");
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(3))).ok();
    assert_eq!(read_name(&c), "s");
    drop(b);
}

#[test]
fn accept_loop_survives_running_out_of_descriptors() {
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let dir = Scratch::new("emfile");
    let cfg_path = dir.path.join("lbd.cfg");
    std::fs::write(
        &cfg_path,
        format!(
            "global\n  maxconn 1000\n{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{}\n",
            srv.port()
        ),
    )
    .expect("cfg");
    let err_path = dir.path.join("err");
    // A hard limit of 64 descriptors (lowering is always allowed).
    let mut child = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(e2e::lbd_bin())
        .arg("-f")
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("err"))
        .spawn()
        .expect("prlimit lbd");
    let started = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&err_path).unwrap_or_default().contains("started")
    });
    assert!(started.is_some());
    let addr = format!("127.0.0.1:{port}");
    // 100 clients need 200 descriptors: lbd runs out, backs off, and keeps going.
    let clients: Vec<_> = (0..100).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(clients);
    // The backlog still holds the clients lbd could not take yet; once it has
    // worked through them, new clients are served again.
    let served = wait_until(Duration::from_secs(20), || {
        let s = connect(&addr);
        s.set_read_timeout(Some(Duration::from_secs(1))).ok();
        read_name(&s) == "s"
    });
    assert!(served.is_some(), "lbd serves again once descriptors are free");
    let log = std::fs::read_to_string(&err_path).unwrap_or_default();
    println!("{log}");
    assert!(log.contains("accept error: Too many open files"), "{log}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn observe_layer4_marks_a_failing_server_down() {
    let good = NamedServer::start("good", "127.0.0.1:0");
    let dead = free_port();
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance roundrobin\n  retries 0\n  server dead 127.0.0.1:{dead} observe layer4 error-limit 2 on-error mark-down\n  server good 127.0.0.1:{}\n",
        good.port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..6 {
        let _ = ask(&addr);
    }
    lbd.wait_for_log("Server l/dead is DOWN", Duration::from_secs(3));
    let t = tally(&addr, 6);
    assert_eq!(t.get("good"), Some(&6), "{t:?}");
}

/// A tiny HTTP server answering every request with `status`.
fn http_status_server(status: u16) -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        for mut s in l.incoming().flatten().take(200) {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
        }
    });
    (port, h)
}

#[test]
fn seed_rstatus_accepts_503_as_haproxy_does_and_status_does_not() {
    let (p503, _h) = http_status_server(503);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}backend rs\n  option httpchk GET /\n  http-check expect rstatus (2|3|401)\n  server s 127.0.0.1:{p503} check inter 100ms\n\
backend st\n  option httpchk GET /\n  http-check expect status 200-399\n  server s 127.0.0.1:{p503} check inter 100ms\n\
frontend f\n  bind 127.0.0.1:{port}\n  default_backend rs\n"
    );
    let lbd = Lbd::start(&cfg);
    lbd.wait_for_log("Server st/s is DOWN, reason: Layer7 wrong status", Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !lbd.log().contains("Server rs/s is DOWN"),
        "unanchored (2|3|401) matches the '3' of 503:\n{}",
        lbd.log()
    );
}

#[test]
fn on_marked_up_shutdown_backup_sessions_cuts_backup_sessions() {
    let mut main = NamedServer::start("main", "127.0.0.1:0");
    let main_port = main.port();
    let bk = NamedServer::start("backup", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server main 127.0.0.1:{main_port} check inter 100ms rise 1 fall 1 on-marked-up shutdown-backup-sessions\n  server backup 127.0.0.1:{} backup\n",
        bk.port()
    );
    let lbd = Lbd::start(&cfg);
    main.kill();
    lbd.wait_for_log("Server l/main is DOWN", Duration::from_secs(3));
    let mut s = connect(&format!("127.0.0.1:{port}"));
    assert_eq!(read_name(&s), "backup");
    let _again = NamedServer::start("main", &format!("127.0.0.1:{main_port}"));
    lbd.wait_for_log("Server l/main is UP", Duration::from_secs(3));
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let started = Instant::now();
    let mut buf = [0u8; 4];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "the backup session is cut");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn logs_reach_a_unix_datagram_socket_in_rfc3164() {
    let dir = Scratch::new("devlog");
    let sock_path = dir.path.join("log");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind log socket");
    sock.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "global\n  log {} local3 info\n{DEFAULTS}  log global\n  option tcplog\nlisten l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{}\n",
        sock_path.display(),
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let mut c = connect(&format!("127.0.0.1:{port}"));
    c.write_all(b"x").ok();
    c.shutdown(std::net::Shutdown::Write).ok();
    let mut all = Vec::new();
    c.read_to_end(&mut all).ok();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a log line");
    let line = String::from_utf8_lossy(&buf[..n]);
    // local3 (19) * 8 + info (6) = 158
    assert!(
        line.starts_with("<158>") && line.contains(" lbd[") && line.contains(" l l/s "),
        "{line}"
    );
}

#[test]
fn tcp_request_connection_and_content_rules_accept_and_reject() {
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let (p1, p2) = (free_port(), free_port());
    let cfg = format!(
        "{DEFAULTS}frontend f1\n  bind 127.0.0.1:{p1}\n  tcp-request connection reject if {{ src 127.0.0.2 }}\n  default_backend b\n\
frontend f2\n  bind 127.0.0.1:{p2}\n  tcp-request inspect-delay 1s\n  tcp-request content accept if {{ src 127.0.0.3 }}\n  tcp-request content reject\n  default_backend b\n\
backend b\n  server s 127.0.0.1:{}\n",
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let served = |src: &str, port: u16| read_name(&connect_from(src, &format!("127.0.0.1:{port}"))) == "s";
    assert!(served("127.0.0.1", p1));
    assert!(!served("127.0.0.2", p1), "connection rule rejects 127.0.0.2");
    assert!(
        served("127.0.0.3", p2),
        "content rule accepts 127.0.0.3 before the catch-all reject"
    );
    assert!(!served("127.0.0.1", p2));
}
