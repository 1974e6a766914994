//! The PROXY protocol: `bind ... accept-proxy` (v1 and v2, TCP and UNIX
//! sockets, garbage reset) and `server ... send-proxy` / `send-proxy-v2`.

use std::io::{Read, Write};
use std::time::Duration;

use e2e::harness::*;

const DEFAULTS: &str = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n";

fn v2_header(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

#[test]
fn accept_proxy_takes_the_client_address_from_v1_and_v2_headers() {
    let syslog = Syslog::start();
    let special = NamedServer::start("special", "127.0.0.1:0");
    let other = NamedServer::start("other", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "global\n  log 127.0.0.1:{} local0\n{DEFAULTS}  log global\n  option tcplog\nfrontend f\n  bind 127.0.0.1:{port} accept-proxy\n  use_backend b_special if {{ src 10.1.2.3 }}\n  default_backend b_other\nbackend b_special\n  server s 127.0.0.1:{}\nbackend b_other\n  server s 127.0.0.1:{}\n",
        syslog.port(),
        special.port(),
        other.port()
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    for (header, want) in [
        (b"PROXY TCP4 10.1.2.3 10.0.0.17 5555 443\r\n".to_vec(), "special"),
        (b"PROXY TCP4 10.9.9.9 10.0.0.17 5555 443\r\n".to_vec(), "other"),
        (v2_header([10, 1, 2, 3], 5556, [10, 0, 0, 17], 443), "special"),
        (v2_header([10, 9, 9, 9], 5556, [10, 0, 0, 17], 443), "other"),
    ] {
        let mut s = connect(&addr);
        // The header and the first client bytes in one segment: nothing may be lost.
        let mut first = header.clone();
        first.extend_from_slice(b"hello");
        s.write_all(&first).expect("write");
        let mut got = vec![0u8; want.len() + 1 + 5];
        s.read_exact(&mut got).expect("greeting and echo");
        assert_eq!(got, format!("{want}\nhello").as_bytes());
    }
    let lines = syslog.lines(Duration::from_millis(500));
    assert!(
        lines.iter().any(|l| l.contains("]: 10.1.2.3:5555 [")),
        "the log names the relayed client: {lines:#?}"
    );
}

#[test]
fn a_missing_or_garbage_header_resets_without_reaching_a_server() {
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port} accept-proxy\n  server s 127.0.0.1:{}\n",
        srv.port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let mut s = connect(&addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok();
    let mut buf = [0u8; 8];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "garbage is reset");
    lbd.wait_for_log("invalid PROXY", Duration::from_secs(2));
    assert_eq!(srv.accepted.load(std::sync::atomic::Ordering::Relaxed), 0, "no server saw it");
}

#[test]
fn unix_bind_with_accept_proxy_as_the_ssl_tab_feeds_it() {
    let special = NamedServer::start("special", "127.0.0.1:0");
    let dir = Scratch::new("ppunix");
    let cfg = format!(
        "global\n  unix-bind prefix {}/\n{DEFAULTS}frontend ft_web\n  bind /ssl:web accept-proxy name https\n  use_backend b if {{ src 10.1.2.3 }}\nbackend b\n  server s 127.0.0.1:{}\n",
        dir.path.display(),
        special.port()
    );
    let _lbd = Lbd::start(&cfg);
    let mut s = std::os::unix::net::UnixStream::connect(dir.path.join("ssl:web")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"PROXY TCP4 10.1.2.3 10.0.0.17 40000 443\r\n").expect("write");
    let mut got = [0u8; 8];
    s.read_exact(&mut got).expect("greeting");
    assert_eq!(&got, b"special\n");
}

/// A server that records the first bytes it receives and sends them back.
fn recording_server() -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return Vec::new() };
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"ping") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    (port, h)
}

#[test]
fn send_proxy_v1_and_v2_tell_the_server_who_the_client_is() {
    for (param, v2) in [("send-proxy", false), ("send-proxy-v2", true)] {
        let (sport, rec) = recording_server();
        let port = free_port();
        let cfg = format!("{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{sport} {param}\n");
        let _lbd = Lbd::start(&cfg);
        let mut c = connect(&format!("127.0.0.1:{port}"));
        let local = c.local_addr().expect("local");
        c.write_all(b"ping").expect("write");
        let got = rec.join().unwrap_or_default();
        assert!(got.ends_with(b"ping"), "{param}: {got:?}");
        if v2 {
            assert!(
                got.starts_with(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x0c\x7f\0\0\x01\x7f\0\0\x01"),
                "{got:?}"
            );
            assert_eq!(&got[24..26], &local.port().to_be_bytes());
            assert_eq!(&got[26..28], &port.to_be_bytes());
        } else {
            let line = String::from_utf8_lossy(&got);
            assert!(
                line.starts_with(&format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\nping", local.port())),
                "{line}"
            );
        }
    }
}
