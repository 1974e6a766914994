//! `option contstats` (the seed sets it in its defaults): the byte counters of
//! `show stat` move while a long session or transaction is still going, not
//! only when it ends; without the option they move at the end, as in HAProxy.
//! Either way the totals come out the same.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use e2e::harness::*;

/// The `show stat` column `col` of the row `px,sv` (0 when absent).
fn stat(sock: &std::path::Path, px: &str, sv: &str, col: &str) -> u64 {
    let out = runtime_cmd(sock, "show stat");
    let header: Vec<&str> = out.lines().next().unwrap_or("").trim_start_matches("# ").split(',').collect();
    let Some(at) = header.iter().position(|h| *h == col) else {
        return 0;
    };
    out.lines()
        .find(|l| l.starts_with(&format!("{px},{sv},")))
        .and_then(|l| l.split(',').nth(at))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A TCP session that moved 100,000 bytes each way and stays open: with
/// `contstats` the frontend, backend and server counters show them within a
/// couple of seconds; without, they stay at 0 until the session ends. After
/// the end both give the exact same totals.
#[test]
fn contstats_counts_a_tcp_session_while_it_lasts() {
    let srv = NamedServer::start("a", "127.0.0.1:0");
    for cont in [false, true] {
        let dir = Scratch::new("contstats-tcp");
        let sock = dir.path.join("lbd.sock");
        let port = free_port();
        let cfg = format!(
            "global\n  stats socket {}\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
             listen l\n  bind 127.0.0.1:{port}\n{}  server a 127.0.0.1:{}\n",
            sock.display(),
            if cont { "  option contstats\n" } else { "" },
            srv.port()
        );
        let _lbd = Lbd::start(&cfg);
        assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
        let mut c = connect(&format!("127.0.0.1:{port}"));
        let mut greeting = [0u8; 2];
        c.read_exact(&mut greeting).expect("greeting");
        c.write_all(&[b'x'; 100_000]).expect("send");
        let mut echo = vec![0u8; 100_000];
        c.read_exact(&mut echo).expect("echo");
        let rows = [("l", "FRONTEND"), ("l", "BACKEND"), ("l", "a")];
        let counted = |min_in: u64, min_out: u64| {
            rows.iter()
                .all(|(px, sv)| stat(&sock, px, sv, "bin") >= min_in && stat(&sock, px, sv, "bout") >= min_out)
        };
        if cont {
            assert!(
                wait_until(Duration::from_secs(4), || counted(100_000, 100_000)).is_some(),
                "contstats: counters of an open session: {:?}",
                rows.map(|(px, sv)| (stat(&sock, px, sv, "bin"), stat(&sock, px, sv, "bout")))
            );
        } else {
            std::thread::sleep(Duration::from_millis(1500));
            let seen = rows.map(|(px, sv)| (stat(&sock, px, sv, "bin"), stat(&sock, px, sv, "bout")));
            assert!(
                seen.iter().all(|&c| c == (0, 0)),
                "without contstats, counted before the end: {seen:?}"
            );
        }
        drop(c);
        let exact = || {
            rows.iter()
                .all(|(px, sv)| stat(&sock, px, sv, "bin") == 100_000 && stat(&sock, px, sv, "bout") == 100_002)
        };
        assert!(
            wait_until(Duration::from_secs(4), exact).is_some(),
            "contstats {cont}: totals after the end: {:?}",
            rows.map(|(px, sv)| (stat(&sock, px, sv, "bin"), stat(&sock, px, sv, "bout")))
        );
    }
}

/// An HTTP upload and download both in the middle of their bodies (as an
/// Outlook Anywhere RPC_IN_DATA / RPC_OUT_DATA pair would be for hours): with
/// `contstats` the bytes in (request body) and out (response body) show on
/// the frontend, backend and server while the transaction goes on; without,
/// nothing shows until it ends.
#[test]
fn contstats_counts_http_bodies_while_they_stream() {
    const UP: usize = 200_000;
    const DOWN: usize = 300_000;
    for cont in [false, true] {
        let backend = TcpListener::bind("127.0.0.1:0").expect("bind");
        let be_port = backend.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let Ok((mut s, _)) = backend.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut got = 0usize;
            let mut buf = vec![0u8; 65536];
            // The head and as much body as the client sent.
            while got < UP {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
            let _ = s.write_all(&vec![b'y'; DOWN]);
            // Then hold, reading, until lbd lets go.
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
        let dir = Scratch::new("contstats-http");
        let sock = dir.path.join("lbd.sock");
        let port = free_port();
        let cfg = format!(
            "global\n  stats socket {}\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
             frontend f\n  bind 127.0.0.1:{port}\n{}  default_backend b\nbackend b\n  server s 127.0.0.1:{be_port}\n",
            sock.display(),
            if cont { "  option contstats\n" } else { "" },
        );
        let lbd = Lbd::start(&cfg);
        assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
        let mut c = connect(&format!("127.0.0.1:{port}"));
        c.write_all(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            .expect("head");
        c.write_all(&vec![b'x'; UP]).expect("body");
        // The response head and the part of its body the server sent.
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while seen.len() < DOWN {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => panic!("the response stopped at {} bytes; lbd log:\n{}", seen.len(), lbd.log()),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let rows = [("f", "FRONTEND"), ("b", "BACKEND"), ("b", "s")];
        let now = || rows.map(|(px, sv)| (stat(&sock, px, sv, "bin"), stat(&sock, px, sv, "bout")));
        if cont {
            let live = wait_until(Duration::from_secs(4), || {
                now().iter().all(|&(i, o)| i >= UP as u64 && o >= DOWN as u64)
            });
            assert!(live.is_some(), "contstats: (bin, bout) in the middle of the bodies: {:?}", now());
        } else {
            std::thread::sleep(Duration::from_millis(1500));
            // Nothing from this transaction yet (the frontend's bytes in wait for the connection's end).
            assert!(
                now().iter().all(|&c| c == (0, 0)),
                "without contstats, counted before the end: {:?}",
                now()
            );
        }
        drop(c);
        let _ = server.join();
        // Once over, both ways count at least the bodies that went through.
        let done = wait_until(Duration::from_secs(4), || {
            now().iter().all(|&(i, o)| i >= UP as u64 && o >= DOWN as u64)
        });
        assert!(done.is_some(), "contstats {cont}: (bin, bout) after the end: {:?}", now());
    }
}
