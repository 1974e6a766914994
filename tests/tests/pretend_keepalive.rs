//! `option http-pretend-keepalive`, lbd beside Debian's haproxy 2.6: in
//! `http-server-close` and `httpclose` modes the request a server gets says
//! `Connection: close` unless the backend pretends to keep the connection
//! alive. Both proxies must send the same header for each backend; lbd must
//! still close the server connection after the response.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::harness::*;

/// What the server saw of one request: its `Connection` header, and whether
/// the proxy closed the connection within 2 s of the response.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    connection: Option<String>,
    closed_by_proxy: bool,
}

type Record = Arc<Mutex<BTreeMap<String, Seen>>>;

/// A server answering every request with a 2-byte body and recording, per
/// path, what it saw. It never closes a connection itself.
fn recording_server() -> (u16, Record) {
    let seen: Record = Arc::default();
    let rec = Arc::clone(&seen);
    let port = serve_each(move |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let Some(head) = read_head(&mut s) else { return };
        let text = String::from_utf8_lossy(&head).into_owned();
        let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
        let connection = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v.trim().to_ascii_lowercase());
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
            return;
        }
        // Another request or the proxy's close; a timeout means the connection was
        // left open.
        let mut buf = [0u8; 256];
        let closed_by_proxy = matches!(s.read(&mut buf), Ok(0));
        let entry = Seen {
            connection,
            closed_by_proxy,
        };
        rec.lock().unwrap_or_else(|e| e.into_inner()).insert(path, entry);
    });
    (port, seen)
}

const PATHS: [&str; 5] = ["/sc", "/close", "/no", "/sc-plain", "/ka"];

/// Sends one request per path through the proxy on `port`, each on its own
/// client connection that stays open until the answer is read.
fn ask_all(port: u16) {
    for path in PATHS {
        let mut c = connect(&format!("127.0.0.1:{port}"));
        c.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        c.write_all(req.as_bytes()).expect("send");
        let head = read_head(&mut c).expect("an answer");
        assert!(head.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&head));
    }
}

#[test]
fn pretend_keepalive_keeps_connection_close_from_the_server_as_haproxy() {
    let run = |which: &str| -> BTreeMap<String, Seen> {
        let (srv, seen) = recording_server();
        let log = Syslog::start();
        let f = free_port();
        // The option comes from the defaults; one backend turns it off again, one
        // backend of a second defaults section never has it.
        let config = format!(
            "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
             \x20 option http-pretend-keepalive\n\
             frontend f\n  bind 127.0.0.1:{f}\n\
             \x20 use_backend bk_sc if {{ path /sc }}\n\
             \x20 use_backend bk_close if {{ path /close }}\n\
             \x20 use_backend bk_no if {{ path /no }}\n\
             \x20 use_backend bk_plain if {{ path /sc-plain }}\n\
             \x20 default_backend bk_ka\n\
             backend bk_sc\n  option http-server-close\n  server s1 127.0.0.1:{srv}\n\
             backend bk_close\n  option httpclose\n  server s1 127.0.0.1:{srv}\n\
             backend bk_no\n  option http-server-close\n  no option http-pretend-keepalive\n  server s1 127.0.0.1:{srv}\n\
             backend bk_ka\n  server s1 127.0.0.1:{srv}\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
             backend bk_plain\n  option http-server-close\n  server s1 127.0.0.1:{srv}\n"
        );
        let _proxy = start_beside(which, &config, f, &log);
        // The probe that found the proxy listening went to bk_ka's server: forget it.
        std::thread::sleep(Duration::from_millis(300));
        seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
        ask_all(f);
        let done = wait_until(Duration::from_secs(5), || {
            let s = seen.lock().unwrap_or_else(|e| e.into_inner());
            PATHS.iter().all(|p| s.contains_key(*p))
        });
        let got = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert!(done.is_some(), "{which}: the server did not see every request: {got:?}");
        got
    };
    let h = run("haproxy");
    let l = run("lbd");
    let header = |m: &BTreeMap<String, Seen>, p: &str| m.get(p).and_then(|s| s.connection.clone());
    // haproxy: `Connection: close` only where the backend closes and does not pretend.
    let close = Some("close".to_owned());
    let want = [
        (PATHS[0], None),
        (PATHS[1], None),
        (PATHS[2], close.clone()),
        (PATHS[3], close),
        (PATHS[4], None),
    ];
    for (p, v) in &want {
        assert_eq!(header(&h, p), *v, "haproxy, {p}: {h:?}");
        assert_eq!(header(&l, p), *v, "lbd, {p}: {l:?}");
    }
    // lbd closes the server connection after the response in both closing modes, pretending
    // or not (haproxy 2.6 leaves that close to the server).
    for p in ["/sc", "/close", "/no", "/sc-plain"] {
        assert!(l[p].closed_by_proxy, "lbd left the server connection of {p} open: {l:?}");
    }
}
