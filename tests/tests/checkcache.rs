//! `option checkcache`, lbd beside Debian's haproxy 2.6: the same server
//! answers, one per request path, go through both proxies, and each proxy
//! either passes the answer or blocks it because a shared cache could keep
//! the cookie it sets. The two must agree on every case, log the block as
//! `PH--` and send the same alert.

use std::io::{Read, Write};
use std::time::Duration;

use e2e::harness::*;

/// The cases: a method, and the status line and headers the server answers.
const CASES: &[(&str, &str)] = &[
    // 0: a cookie on a plain 200, nothing said about caches.
    ("GET", "200 OK\r\nSet-Cookie: s=1"),
    // 1: the same with a lifetime: a cache may keep it.
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    // 2-6: kept out of shared caches.
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: private"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: no-cache=\"set-cookie\""),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60\r\nPragma: no-cache"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: s-maxage=0"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: public, no-store"),
    // 7-8: a status that is not cacheable by default, unless `public` says so.
    ("GET", "302 Found\r\nLocation: /x\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    ("GET", "302 Found\r\nLocation: /x\r\nSet-Cookie: s=1\r\nCache-Control: public"),
    // 9-10: a method whose answers are not cached, unless `public` says so.
    ("POST", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    ("POST", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: public"),
    // 11: no cookie at all.
    ("GET", "200 OK\r\nCache-Control: public, max-age=60"),
    // 12-14: freshness or a validator without Cache-Control.
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nExpires: Thu, 01 Jan 2037 00:00:00 GMT"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nETag: \"v1\""),
    (
        "GET",
        "404 Not Found\r\nSet-Cookie: s=1\r\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT",
    ),
    // 15: the no-cache="set-cookie" form with more fields after it.
    (
        "GET",
        "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60, no-cache=\"set-cookie, x\"",
    ),
    // 16-17: `public` with a lifetime, on a status and a method not cached by default.
    (
        "GET",
        "302 Found\r\nLocation: /x\r\nSet-Cookie: s=1\r\nCache-Control: public, max-age=60",
    ),
    ("POST", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: public, max-age=60"),
    // 18-20: the other methods said to be cacheable.
    ("HEAD", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    ("OPTIONS", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    ("TRACE", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    // 21-24: statuses cacheable by default, and one that is not.
    (
        "GET",
        "301 Moved Permanently\r\nLocation: /x\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60",
    ),
    ("GET", "410 Gone\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    ("GET", "501 Not Implemented\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    ("GET", "500 Internal Server Error\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60"),
    // 25-27: Pragma alone with a validator; plain no-cache; max-age=0.
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nETag: \"v1\"\r\nPragma: no-cache"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nETag: \"v1\"\r\nCache-Control: no-cache"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=0"),
    // 28-29: the order of directives: the last word wins.
    (
        "GET",
        "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60\r\nCache-Control: private\r\nCache-Control: public",
    ),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: public, max-age=60, private"),
    // 30-31: Vary, and upper case.
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: max-age=60\r\nVary: *"),
    ("GET", "200 OK\r\nSet-Cookie: s=1\r\nCache-Control: PRIVATE"),
];

/// A server answering a request for `/N` with case N of [`CASES`] and a 2-byte body.
fn case_server() -> u16 {
    serve_each(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        while let Some(head) = read_head(&mut s) {
            let text = String::from_utf8_lossy(&head).into_owned();
            let n: usize = text
                .split(' ')
                .nth(1)
                .and_then(|p| p.trim_start_matches('/').parse().ok())
                .unwrap_or(0);
            let answer = CASES.get(n).map_or("500 No Such Case", |c| c.1);
            let out = format!("HTTP/1.1 {answer}\r\nContent-Length: 2\r\n\r\nok");
            if s.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// The status each case gets through the proxy on `port`.
fn statuses(port: u16) -> Vec<u16> {
    (0..CASES.len())
        .map(|n| {
            let (method, _) = CASES[n];
            let mut c = connect(&format!("127.0.0.1:{port}"));
            let body = if method == "POST" { "Content-Length: 1\r\n\r\nx" } else { "\r\n" };
            let req = format!("{method} /{n} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{body}");
            c.write_all(req.as_bytes()).expect("send");
            c.set_read_timeout(Some(Duration::from_secs(3))).ok();
            let mut out = Vec::new();
            let _ = c.read_to_end(&mut out);
            let text = String::from_utf8_lossy(&out);
            text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
        })
        .collect()
}

#[test]
fn checkcache_blocks_cacheable_cookies_as_haproxy() {
    let srv = case_server();
    let cfg = |log_port: u16, f: u16| {
        format!(
            "global\n  log 127.0.0.1:{log_port} local0\n\
             defaults\n  mode http\n  log global\n  option httplog\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
             frontend f\n  bind 127.0.0.1:{f}\n  default_backend b\n\
             backend b\n  option checkcache\n  server s1 127.0.0.1:{srv}\n"
        )
    };
    let run = |which: &str| -> (Vec<u16>, Vec<String>) {
        let log = Syslog::start();
        let f = free_port();
        let config = cfg(log.port(), f);
        let _proxy = start_beside(which, &config, f, &log);
        let got = statuses(f);
        (got, log.lines(Duration::from_millis(600)))
    };
    let (hstatus, hlines) = run("haproxy");
    let (lstatus, llines) = run("lbd");
    // The cases each proxy blocked, from its `PH--` log lines.
    let blocked = |lines: &[String]| -> Vec<usize> {
        (0..CASES.len())
            .filter(|n| {
                let req = format!(" /{n} HTTP/1.1\"");
                lines.iter().any(|l| l.contains(" PH-- ") && l.trim_end().ends_with(&req))
            })
            .collect()
    };
    let (want, got) = (blocked(&hlines), blocked(&llines));
    assert!(
        !want.is_empty() && want.len() < CASES.len(),
        "haproxy blocked {want:?}: {hlines:#?}"
    );
    assert_eq!(got, want, "cases blocked: lbd, then haproxy");
    // Each block sends an alert naming the backend and the server.
    let alerts = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("Blocking cacheable cookie in response from instance b, server s1."))
            .count()
    };
    assert_eq!(alerts(&hlines), want.len(), "haproxy: {hlines:#?}");
    assert_eq!(alerts(&llines), want.len(), "lbd: {llines:#?}");
    // lbd answers a blocked case 502 as HAProxy's manual says (haproxy 2.6 sends
    // an error page under the server's status instead), the others as haproxy.
    for n in 0..CASES.len() {
        if want.contains(&n) {
            assert_eq!(lstatus[n], 502, "case {n}: {:?}", CASES[n]);
        } else {
            assert_eq!(lstatus[n], hstatus[n], "case {n}: {:?}", CASES[n]);
        }
    }
}
