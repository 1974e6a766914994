//! HTTP-mode rules end to end, with HAProxy's behaviour as the reference: the
//! `http-request` header rules and `set-path` as nginx receives them; the
//! answers lbd makes itself (deny, return, auth, redirect); `http-response`
//! rules; `errorfile`; `retry-on`; `option httpclose` and
//! `http-server-close`; `http-reuse never|always`; `balance url_param` and
//! `hdr()`; header captures and `dontlog-normal` in the log; ACL pattern files;
//! and what `lbd -c` says about a missing pattern file and about rule order.
//!
//! Each test runs its own lbd in front of its own nginx (`e2e::web::Nginx`)
//! on a loopback address of its own, so parallel tests never share a port
//! through SO_REUSEPORT. nginx names the port and its connection number in
//! every answer; under any path holding `/hdrs/` it also names the request
//! headers the rules touch, and under `/missing/` it answers 404.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e::harness::*;
use e2e::web::*;
use e2e::{first_alert_line, lbd_bin, run};

/// Put in front of every test's proxies: logs to the test's syslog receiver,
/// httplog everywhere, timeouts short enough to bound a test and long enough
/// never to fire in one.
const PREFIX: &str = "global
  log 127.0.0.1:@SYSLOG@ local0

defaults
  mode http
  log global
  option httplog
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout http-request 5s
  timeout http-keep-alive 5s

";

/// One lbd in front of one nginx, a syslog receiver and a scratch folder.
struct Rig {
    lbd: Lbd,
    /// nginx's ports, `@N1@`, `@N2@`... in the config.
    nginx_ports: Vec<u16>,
    /// The frontends' addresses (`@IP@:@FE1@`, `@IP@:@FE2@`...).
    fe: Vec<String>,
    syslog: Syslog,
    _ngx: Nginx,
    _dir: Scratch,
}

impl Rig {
    /// Starts nginx with `nginx_ports` ports on `ip`, writes `files` into a
    /// scratch folder (`@DIR@`), then starts lbd with `PREFIX` and `proxies`,
    /// where `@IP@`, `@FEn@` (`frontends` ports for binds), `@Nn@` (nginx's
    /// ports), `@DEAD@` (a port nobody listens on) and each of `vars` are
    /// replaced. Waits until every frontend port accepts.
    fn start(ip: &str, proxies: &str, nginx_ports: usize, frontends: usize, files: &[(&str, &str)], vars: &[(&str, String)]) -> Rig {
        // All ports picked at once, so none comes twice.
        let ports = free_ports_on(ip, nginx_ports + frontends + 1);
        let (nginx_ports, rest) = ports.split_at(nginx_ports);
        let (fe_ports, dead) = rest.split_at(frontends);
        let listen: Vec<String> = nginx_ports.iter().map(|p| format!("{ip}:{p}")).collect();
        let refs: Vec<&str> = listen.iter().map(String::as_str).collect();
        let ngx = Nginx::start("NGX", &refs);
        let dir = Scratch::new("rules");
        for (name, text) in files {
            std::fs::write(dir.path.join(name), text).expect("write a scratch file");
        }
        let syslog = Syslog::start();
        let mut cfg = format!("{PREFIX}{proxies}")
            .replace("@SYSLOG@", &syslog.port().to_string())
            .replace("@DIR@", &dir.path.display().to_string())
            .replace("@DEAD@", &dead[0].to_string())
            .replace("@IP@", ip);
        for (i, p) in nginx_ports.iter().enumerate() {
            cfg = cfg.replace(&format!("@N{}@", i + 1), &p.to_string());
        }
        for (i, p) in fe_ports.iter().enumerate() {
            cfg = cfg.replace(&format!("@FE{}@", i + 1), &p.to_string());
        }
        for (k, v) in vars {
            cfg = cfg.replace(k, v);
        }
        assert!(!cfg.contains('@'), "a placeholder is left:\n{cfg}");
        let lbd = Lbd::start(&cfg);
        let fe: Vec<String> = fe_ports.iter().map(|p| format!("{ip}:{p}")).collect();
        for a in &fe {
            let up = wait_until(Duration::from_secs(5), || std::net::TcpStream::connect(a.as_str()).is_ok());
            assert!(up.is_some(), "lbd is not listening on {a}; log:\n{}", lbd.log());
        }
        Rig {
            lbd,
            nginx_ports: nginx_ports.to_vec(),
            fe,
            syslog,
            _ngx: ngx,
            _dir: dir,
        }
    }

    /// One frontend `fe` on a loopback address of its own, with `lines` before
    /// its `default_backend bk`; `bk` has one server, the test's nginx.
    fn front(lines: &[&str]) -> Rig {
        let lines: String = lines.iter().map(|l| format!("  {l}\n")).collect();
        let proxies = format!("frontend fe\n  bind @IP@:@FE1@\n{lines}  default_backend bk\n\nbackend bk\n  server ngx @IP@:@N1@\n");
        Rig::start(&private_loopback(), &proxies, 1, 1, &[], &[])
    }

    /// A new client connection to frontend `n` (1-based, as `@FEn@`).
    fn conn(&self, n: usize) -> HttpConn {
        HttpConn::connect(&self.fe[n - 1])
    }

    /// The log messages (syslog header cut off) that arrive within `wait`.
    fn log_messages(&self, wait: Duration) -> Vec<String> {
        self.syslog
            .lines(wait)
            .iter()
            .filter_map(|l| l.split_once("]: ").map(|(_, m)| m.trim_end().to_owned()))
            .collect()
    }
}

/// The one log message that holds `"REQUEST"` (e.g. `GET /x HTTP/1.1`).
fn log_for<'m>(msgs: &'m [String], request: &str) -> &'m str {
    let quoted = format!("\"{request}\"");
    let found: Vec<&String> = msgs.iter().filter(|m| m.ends_with(&quoted)).collect();
    assert_eq!(found.len(), 1, "one log line for {quoted}: {msgs:#?}");
    found[0]
}

/// httplog fields: `CIP:CPORT [DATE] FE BE/SRV TIMERS STATUS BYTES - - TSC
/// ac/fc/bc/sc/rc sq/bq [{CAPTURES}] "REQUEST"` (the request counts as one).
fn log_fields(msg: &str) -> Vec<&str> {
    let (head, request) = msg.split_once(" \"").expect("a quoted request");
    let mut f: Vec<&str> = head.split(' ').collect();
    f.push(request);
    f
}

/// The retry count of a log message: the `rc` of `ac/fc/bc/sc/rc`.
fn retries_field(msg: &str) -> String {
    let f = log_fields(msg);
    f[10].rsplit('/').next().unwrap_or_default().to_owned()
}

/// What nginx saw, from its answer under a `/hdrs/` path.
struct Seen {
    uri: String,
    headers: BTreeMap<&'static str, String>,
}

fn seen(r: &Resp) -> Seen {
    let text = r.text();
    assert_eq!(r.status, 200, "{r:?}");
    let uri = text
        .split(' ')
        .nth(2)
        .unwrap_or_else(|| panic!("not an nginx answer: {r:?}"))
        .to_owned();
    let mut headers = BTreeMap::new();
    for name in ["x-test", "x-added", "x-secret", "user-agent", "x-forwarded-for"] {
        let open = format!(" {name}=[");
        let start = text.find(&open).unwrap_or_else(|| panic!("no {name} in the answer: {text:?}")) + open.len();
        let len = text[start..].find(']').unwrap_or_else(|| panic!("{name} unterminated: {text:?}"));
        headers.insert(name, text[start..start + len].to_owned());
    }
    Seen { uri, headers }
}

#[test]
fn request_header_rules_and_set_path_are_what_nginx_receives() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        r"frontend fe
  bind @IP@:@FE1@
  http-request set-header X-Test %[src]
  http-request add-header X-Added from-lbd
  http-request add-header X-Forwarded-For 192.0.2.1
  http-request del-header X-Secret
  http-request replace-header User-Agent (.*)bot(.*) \1robot\2
  http-request set-path /new%[path]
  default_backend bk

backend bk
  server ngx @IP@:@N1@
",
        1,
        1,
        &[],
        &[],
    );
    let mut c = HttpConn::connect_from("127.0.0.9", &rig.fe[0]);
    let r = c.request(
        "GET",
        "/hdrs/a?x=1&y=2",
        &[
            ("X-Test", "the client's"),
            ("X-Secret", "s3cret"),
            ("X-Secret", "again"),
            ("User-Agent", "Mozilla-bot-1.0"),
            ("X-Forwarded-For", "198.51.100.9"),
        ],
        b"",
    );
    let s = seen(&r);
    // set-path changes the path only: the query stays.
    assert_eq!(s.uri, "/new/hdrs/a?x=1&y=2", "{r:?}");
    // set-header replaces the client's value with the sample.
    assert_eq!(s.headers["x-test"], "127.0.0.9", "{r:?}");
    assert_eq!(s.headers["x-added"], "from-lbd", "{r:?}");
    // add-header appends a line after the client's (nginx joins X-Forwarded-For lines).
    assert_eq!(s.headers["x-forwarded-for"], "198.51.100.9, 192.0.2.1", "{r:?}");
    // del-header removes every line of the header.
    assert_eq!(s.headers["x-secret"], "", "{r:?}");
    assert_eq!(s.headers["user-agent"], "Mozilla-robot-1.0", "{r:?}");

    // Next request on the same connection: a value the regex does not match is left alone.
    let r = c.request("GET", "/hdrs/", &[("User-Agent", "curl/8.0")], b"");
    let s = seen(&r);
    assert_eq!(s.uri, "/new/hdrs/", "{r:?}");
    assert_eq!(s.headers["user-agent"], "curl/8.0", "{r:?}");
    assert_eq!(s.headers["x-test"], "127.0.0.9", "set even when the client sent none: {r:?}");
    assert_eq!(s.headers["x-forwarded-for"], "192.0.2.1", "{r:?}");
}

#[test]
fn deny_return_auth_and_redirect_are_answered_by_lbd() {
    let rig = Rig::front(&[
        "http-request deny deny_status 429 if { path_beg /blocked }",
        "http-request return status 200 content-type text/plain string pong if { path /ping }",
        "http-request auth realm Private if { path_beg /private }",
        "http-request redirect scheme https code 301 if { path_beg /secure }",
    ]);
    let r = rig.conn(1).get("/blocked/page");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/html"), "{r:?}");
    let page = r.text();
    assert!(
        page.starts_with("<html>") && page.contains("<h1>429 Too Many Requests</h1>"),
        "lbd's error page: {page:?}"
    );

    let r = rig.conn(1).get("/ping");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
    assert_eq!(r.text(), "pong");
    // `path` is exact: a longer path reaches nginx.
    let r = rig.conn(1).get("/ping/more");
    assert_eq!(r.answer().uri, "/ping/more", "{r:?}");

    let r = rig.conn(1).get("/private/doc");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"Private\""), "{r:?}");

    let r = rig.conn(1).get("/secure/page?a=1");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("https://mail.xlc.local/secure/page?a=1"), "{r:?}");

    // Anything else reaches nginx.
    let r = rig.conn(1).get("/other");
    assert_eq!((r.status, r.answer().uri.as_str()), (200, "/other"), "{r:?}");
}

#[test]
fn lbd_answers_are_logged_with_haproxy_termination_states() {
    // HAProxy: `P` when a deny rule blocked the request, `L` when the proxy
    // answered itself (return, redirect); `R` while waiting for the request;
    // no backend chosen, so the frontend's name stands for it, and `<NOSRV>`.
    let rig = Rig::front(&[
        "http-request deny if { path_beg /blocked }",
        "http-request return status 200 content-type text/plain string pong if { path /ping }",
        "http-request redirect scheme https code 302 if { path_beg /secure }",
    ]);
    assert_eq!(rig.conn(1).get("/blocked").status, 403);
    assert_eq!(rig.conn(1).get("/ping").status, 200);
    assert_eq!(rig.conn(1).get("/secure").status, 302);
    let msgs = rig.log_messages(Duration::from_millis(800));
    for (request, status, tsc) in [
        ("GET /blocked HTTP/1.1", "403", "PR--"),
        ("GET /ping HTTP/1.1", "200", "LR--"),
        ("GET /secure HTTP/1.1", "302", "LR--"),
    ] {
        let msg = log_for(&msgs, request);
        let f = log_fields(msg);
        assert_eq!((f[2], f[3], f[5], f[9]), ("fe", "fe/<NOSRV>", status, tsc), "{msg}");
    }
}

#[test]
fn response_rules_set_and_delete_headers_and_deny_gives_502() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  default_backend bk

backend bk
  http-response set-header X-Served-By bk-ngx
  http-response del-header Server
  http-response deny if { status 404 }
  server ngx @IP@:@N1@
",
        1,
        1,
        &[],
        &[],
    );
    // nginx itself names itself in `Server`...
    let direct = HttpConn::connect(&format!("{ip}:{}", rig.nginx_ports[0])).get("/");
    assert!(direct.header("server").is_some_and(|s| s.starts_with("nginx")), "{direct:?}");
    // ...which the rules remove, and they add their own header.
    let r = rig.conn(1).get("/page");
    assert_eq!((r.status, r.answer().uri.as_str()), (200, "/page"), "{r:?}");
    assert_eq!(r.header("x-served-by"), Some("bk-ngx"), "{r:?}");
    assert_eq!(r.header("server"), None, "{r:?}");
    // set-header replaces a value the server sent.
    assert_eq!(r.header_all("x-served-by").len(), 1, "{r:?}");

    // `http-response deny`: HAProxy answers 502 (its default status in the
    // response direction), never the server's response.
    let r = rig.conn(1).get("/missing/page");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(!r.text().contains("NGX"), "the server's body leaked: {r:?}");
}

#[test]
fn errorfile_is_sent_when_no_server_answers() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  default_backend bk

backend bk
  retries 0
  errorfile 503 @DIR@/503.http
  server dead @IP@:@DEAD@
",
        1,
        1,
        &[(
            "503.http",
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nmaintenance page\n",
        )],
        &[],
    );
    let started = Instant::now();
    let r = rig.conn(1).get("/anything");
    assert!(started.elapsed() < Duration::from_secs(2), "retries 0: {:?}", started.elapsed());
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
    assert_eq!(r.text(), "maintenance page\n");
}

/// What HAProxy 2.6 does with a request it cannot parse, checked by hand: a 400
/// with its page (or the frontend's `errorfile 400`) and `connection: close`,
/// whether a header line is malformed or the header block is larger than
/// `tune.bufsize`; the log says `400 0 - - PR--` and `"<BADREQ>"`.
#[test]
fn a_request_that_cannot_be_parsed_gets_the_400_page_or_the_errorfile_and_a_badreq_line() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  default_backend bk

frontend fe_custom
  bind @IP@:@FE2@
  errorfile 400 @DIR@/400.http
  default_backend bk

backend bk
  server ngx @IP@:@N1@
",
        1,
        2,
        &[(
            "400.http",
            "HTTP/1.1 400 Bad request\r\nContent-Type: text/plain\r\n\r\nrefused here\n",
        )],
        &[],
    );
    let _ = rig.log_messages(Duration::from_millis(100));
    let malformed = b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n".to_vec();
    let oversized = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)).into_bytes();
    let refused = |fe: usize, good_first: bool, raw: &[u8]| -> Resp {
        let mut c = rig.conn(fe);
        if good_first {
            assert_eq!(c.get("/").status, 200, "a good request first, on the same connection");
        }
        c.send_raw(raw).expect("send the request");
        let r = c.read_response(false).expect("an answer");
        assert_eq!(r.header("connection"), Some("close"), "{r:?}");
        let mut buf = [0u8; 16];
        assert_eq!(c.read_some(&mut buf).ok(), Some(0), "closed after the 400");
        r
    };
    for raw in [&malformed, &oversized] {
        let r = refused(1, false, raw);
        assert_eq!(r.status, 400, "not hyper's empty 400 or 431: {r:?}");
        assert_eq!(r.header("content-type"), Some("text/html"), "{r:?}");
        assert!(r.text().contains("<h1>400 Bad Request</h1>"), "{r:?}");
    }
    for (good_first, raw) in [(false, &oversized), (true, &malformed)] {
        let r = refused(2, good_first, raw);
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
        assert_eq!(r.text(), "refused here\n");
    }
    let msgs = rig.log_messages(Duration::from_millis(1000));
    let bad: Vec<&String> = msgs.iter().filter(|m| m.ends_with("\"<BADREQ>\"")).collect();
    assert_eq!(bad.len(), 4, "{msgs:#?}");
    for m in bad {
        let f = log_fields(m);
        assert_eq!((f[5], f[6], f[9]), ("400", "0", "PR--"), "{m}");
    }
}

/// HAProxy 2.6 answers an HTTP/1.0 request with an `HTTP/1.1` status line, the
/// version it speaks (checked by hand); hyper would say `HTTP/1.0`.
#[test]
fn an_http10_request_gets_an_http11_status_line() {
    let rig = Rig::front(&["http-request deny if { path /deny }"]);
    let mut c = rig.conn(1);
    // The server's answer twice on one kept-alive connection, then lbd's own.
    for (path, status) in [("/x", 200), ("/y", 200), ("/deny", 403)] {
        let raw = format!("GET {path} HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
        c.send_raw(raw.as_bytes()).expect("send the request");
        let r = c.read_response(false).expect("an answer");
        assert_eq!((r.version.as_str(), r.status), ("HTTP/1.1", status), "{path}: {r:?}");
        if status == 200 {
            assert!(r.text().contains("NGX"), "{r:?}");
        }
    }
}

/// A server that answers every request `503` with the body `busy\n` (keep-alive,
/// request bodies read and discarded).
const BUSY_SERVER: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def any_method(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"busy\n"
        self.send_response(503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = any_method


server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
server.daemon_threads = True
server.serve_forever()
"#;

#[test]
fn retry_on_503_redispatches_a_get_but_never_replays_a_post_body() {
    let ip = private_loopback();
    let busy = PyServer::start_on(BUSY_SERVER, &ip);
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  default_backend bk

backend bk
  balance roundrobin
  retries 2
  option redispatch
  retry-on 503
  server busy @BUSY@
  server ngx @IP@:@N1@
",
        1,
        1,
        &[],
        &[("@BUSY@", busy.addr())],
    );
    // Round robin sends every other request to `busy` first: each GET still
    // gets nginx's answer.
    for i in 0..6 {
        let path = format!("/get-{i}");
        let r = rig.conn(1).get(&path);
        assert_eq!(
            r.status,
            200,
            "{path}: {r:?}\nbusy server log:\n{}\nlbd log:\n{}",
            busy.log(),
            rig.lbd.log()
        );
        assert_eq!(r.answer().uri, path, "{r:?}");
    }
    // A POST with a body is sent once: the one that meets `busy` gets its 503.
    let mut posts = Vec::new();
    for i in 0..4 {
        let path = format!("/post-{i}");
        let r = rig.conn(1).request("POST", &path, &[], b"payload");
        assert!(r.status == 200 || r.status == 503, "{path}: {r:?}");
        if r.status == 503 {
            assert_eq!(r.text(), "busy\n", "the server's own 503: {r:?}");
        } else {
            assert_eq!(r.answer().uri, path, "{r:?}");
        }
        posts.push((path, r.status));
    }
    assert!(posts.iter().any(|(_, s)| *s == 503), "no POST met the busy server: {posts:?}");
    let msgs = rig.log_messages(Duration::from_millis(800));
    // `option redispatch` moves the last retry (the second here) to another
    // server, as for connect failures: a GET that met `busy` logs `+2`.
    let mut redispatched = 0;
    for i in 0..6 {
        let msg = log_for(&msgs, &format!("GET /get-{i} HTTP/1.1"));
        let f = log_fields(msg);
        assert_eq!((f[3], f[5]), ("bk/ngx", "200"), "{msg}");
        let rc = retries_field(msg);
        assert!(rc == "0" || rc == "+2", "retries of a GET: {msg}");
        if rc == "+2" {
            redispatched += 1;
        }
    }
    assert!(redispatched > 0, "no GET was retried: {msgs:#?}");
    for (path, status) in &posts {
        let msg = log_for(&msgs, &format!("POST {path} HTTP/1.1"));
        let f = log_fields(msg);
        let server = if *status == 503 { "bk/busy" } else { "bk/ngx" };
        assert_eq!((f[3], f[5]), (server, status.to_string().as_str()), "{msg}");
        assert_eq!(retries_field(msg), "0", "a POST with a body is not replayed: {msg}");
    }
}

#[test]
fn httpclose_closes_every_connection_and_http_server_close_keeps_the_client() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe_close
  bind @IP@:@FE1@
  option httpclose
  default_backend bk

frontend fe_server_close
  bind @IP@:@FE2@
  option http-server-close
  default_backend bk

backend bk
  server ngx @IP@:@N1@
",
        1,
        2,
        &[],
        &[],
    );
    // httpclose: each response says `connection: close` and the connection ends after it,
    // even when the client asked for keep-alive.
    for (i, asked) in [None, Some("keep-alive")].into_iter().enumerate() {
        let stream = connect(&rig.fe[0]);
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut c = HttpConn::over_tcp(stream);
        let headers: Vec<(&str, &str)> = asked.map(|v| ("Connection", v)).into_iter().collect();
        let r = c.request("GET", &format!("/close-{i}"), &headers, b"");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("connection").map(str::to_ascii_lowercase).as_deref(),
            Some("close"),
            "{r:?}"
        );
        let mut buf = [0u8; 64];
        let after = Instant::now();
        assert_eq!(c.read_some(&mut buf).ok(), Some(0), "the connection must close after the response");
        assert!(after.elapsed() < Duration::from_secs(2), "closed after {:?}", after.elapsed());
    }

    // http-server-close: the client keeps its connection; nginx gets a new one per request.
    let mut c = rig.conn(2);
    let mut server_conns = BTreeSet::new();
    for i in 0..3 {
        let r = c.get(&format!("/sc-{i}"));
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert_ne!(
            r.header("connection").map(str::to_ascii_lowercase).as_deref(),
            Some("close"),
            "the client side stays open: {r:?}"
        );
        server_conns.insert(r.answer().conn);
    }
    assert_eq!(server_conns.len(), 3, "one nginx connection per request: {server_conns:?}");
}

/// Alternates `rounds` requests of two client connections on `path_prefix`
/// (with a pause so a released server connection is idle before the other
/// client asks) and returns the nginx connections each client's requests used.
fn interleave(rig: &Rig, path_prefix: &str, rounds: usize) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let (mut a, mut b) = (rig.conn(1), rig.conn(1));
    let (mut seen_a, mut seen_b) = (BTreeSet::new(), BTreeSet::new());
    for i in 0..rounds {
        for (c, seen, who) in [(&mut a, &mut seen_a, "a"), (&mut b, &mut seen_b, "b")] {
            let r = c.get(&format!("{path_prefix}/{who}-{i}"));
            assert_eq!(r.status, 200, "{who} {i}: {r:?}");
            seen.insert(r.answer().conn);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (seen_a, seen_b)
}

#[test]
fn http_reuse_never_keeps_server_connections_private_and_always_shares_them() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  use_backend bk_never if { path_beg /never }
  default_backend bk_always

backend bk_never
  http-reuse never
  server ngx @IP@:@N1@

backend bk_always
  http-reuse always
  server ngx @IP@:@N2@
",
        2,
        1,
        &[],
        &[],
    );
    let (a, b) = interleave(&rig, "/never", 10);
    assert!(
        a.is_disjoint(&b),
        "http-reuse never: a server connection served both clients: {a:?} {b:?}"
    );
    let (a, b) = interleave(&rig, "/always", 10);
    assert!(
        !a.is_disjoint(&b),
        "http-reuse always: the clients never shared an idle connection: {a:?} {b:?}"
    );
}

/// A keep-alive server that numbers its connections (`X-Conn: N` in each
/// answer) and says on stderr how each one ended: `N eof` when the peer closed
/// it, `N reset` when the peer reset it.
const CONN_END_SERVER: &str = r#"
import itertools, socket, sys, threading

IDS = itertools.count(1)


def serve(c, n):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = c.recv(65536)
                if not data:
                    print(n, "eof", file=sys.stderr, flush=True)
                    return
                buf += data
            _, buf = buf.split(b"\r\n\r\n", 1)
            body = b"conn %d\n" % n
            c.sendall(b"HTTP/1.1 200 OK\r\nX-Conn: %d\r\nContent-Length: %d\r\n\r\n" % (n, len(body)) + body)
    except ConnectionResetError:
        print(n, "reset", file=sys.stderr, flush=True)
    finally:
        c.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c, next(IDS)), daemon=True).start()
"#;

#[test]
fn a_leaving_client_s_server_connection_is_reset_once_enough_are_idle() {
    // HAProxy keeps idle server connections up to what is in use, and ends the
    // server connection of a client that leaves (`Connection: close`, HTTP/1.0
    // without keep-alive) with a reset right after the response when that many
    // are idle already. lbd counts the requests in progress on the server.
    let ip = private_loopback();
    let srv = PyServer::start_on(CONN_END_SERVER, &ip);
    let rig = Rig::start(
        &ip,
        "frontend fe\n  bind @IP@:@FE1@\n  default_backend bk\n\nbackend bk\n  server s @SRV@ pool-purge-delay 30s\n",
        1,
        1,
        &[],
        &[("@SRV@", srv.addr())],
    );
    let ended = |n: &str| {
        let find = || {
            srv.log()
                .lines()
                .find(|l| l.split_whitespace().next() == Some(n))
                .map(str::to_owned)
        };
        wait_until(Duration::from_secs(3), || find().is_some());
        find()
    };
    let leave = |request: &str| {
        let mut c = rig.conn(1);
        c.send_raw(request.as_bytes()).expect("send a request");
        let r = c.read_response(false).expect("a response");
        assert_eq!(r.status, 200, "{request:?}: {r:?}");
        let mut buf = [0u8; 16];
        assert_eq!(c.read_some(&mut buf).ok(), Some(0), "{request:?}: lbd closes the client connection");
        r.header("x-conn").expect("X-Conn").to_owned()
    };
    // Nothing is idle yet: the first leaving client's connection is kept.
    let kept = leave("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    // One is idle now. Each next client opens a connection of its own (`http-reuse
    // safe` gives a first request no idle one), which ends with a reset.
    let mut seen = BTreeSet::from([kept.clone()]);
    for request in [
        "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /c HTTP/1.0\r\nHost: x\r\n\r\n",
    ] {
        let n = leave(request);
        assert!(seen.insert(n.clone()), "{request:?}: a new server connection, not {n} again");
        assert_eq!(
            ended(&n).as_deref(),
            Some(format!("{n} reset").as_str()),
            "{request:?}: the server connection ends with a reset; server log:\n{}",
            srv.log()
        );
    }
    assert_eq!(ended(&kept), None, "the idle connection stays open; server log:\n{}", srv.log());
}

#[test]
fn url_param_and_header_hashing_keep_each_key_on_one_server() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  use_backend bk_hdr if { path_beg /tenant }
  default_backend bk_param

backend bk_param
  balance url_param user
  server s1 @IP@:@N1@
  server s2 @IP@:@N2@
  server s3 @IP@:@N3@

backend bk_hdr
  balance hdr(X-Tenant)
  server s1 @IP@:@N1@
  server s2 @IP@:@N2@
  server s3 @IP@:@N3@
",
        3,
        1,
        &[],
        &[],
    );
    // Round 0 on a new connection per request, rounds 1 and 2 on one
    // keep-alive connection: each request is balanced on its own.
    let mut by_user: BTreeMap<usize, u16> = BTreeMap::new();
    let mut by_tenant: BTreeMap<usize, u16> = BTreeMap::new();
    let mut kept = rig.conn(1);
    for round in 0..3 {
        for key in 0..20 {
            let mut fresh;
            let c = if round == 0 {
                fresh = rig.conn(1);
                &mut fresh
            } else {
                &mut kept
            };
            let path = format!("/app?x={round}&user=u{key}&y=2");
            let port = c.get(&path).answer().port;
            let first = *by_user.entry(key).or_insert(port);
            assert_eq!(first, port, "user u{key} moved in round {round}");
            let tenant = format!("tenant-{key}");
            let r = c.request("GET", &format!("/tenant/{round}"), &[("X-Tenant", &tenant)], b"");
            let port = r.answer().port;
            let first = *by_tenant.entry(key).or_insert(port);
            assert_eq!(first, port, "{tenant} moved in round {round}");
        }
    }
    let users: BTreeSet<u16> = by_user.values().copied().collect();
    let tenants: BTreeSet<u16> = by_tenant.values().copied().collect();
    assert!(users.len() >= 2, "20 users on one server: {by_user:?}");
    assert!(tenants.len() >= 2, "20 tenants on one server: {by_tenant:?}");
    for p in users.iter().chain(&tenants) {
        assert!(rig.nginx_ports.contains(p), "port {p}");
    }
}

#[test]
fn captured_host_is_logged_and_dontlog_normal_keeps_only_errors() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe_cap
  bind @IP@:@FE1@
  capture request header Host len 10
  default_backend bk

frontend fe_quiet
  bind @IP@:@FE2@
  option dontlog-normal
  use_backend bk_down if { path_beg /down }
  default_backend bk

backend bk
  server ngx @IP@:@N1@

backend bk_down
  retries 0
  server dead @IP@:@DEAD@
",
        1,
        2,
        &[],
        &[],
    );
    assert_eq!(rig.conn(1).get("/cap").status, 200);
    assert_eq!(rig.conn(2).get("/normal").status, 200);
    assert_eq!(rig.conn(2).get("/down").status, 503);
    let msgs = rig.log_messages(Duration::from_millis(800));

    // `mail.xlc.local` cut to 10 characters, in braces before the request.
    let msg = log_for(&msgs, "GET /cap HTTP/1.1");
    assert!(msg.ends_with(" 0/0 {mail.xlc.l} \"GET /cap HTTP/1.1\""), "{msg}");
    let f = log_fields(msg);
    assert_eq!(f.len(), 14, "{msg}");
    assert_eq!((f[2], f[3], f[5], f[12]), ("fe_cap", "bk/ngx", "200", "{mail.xlc.l}"), "{msg}");

    assert!(
        !msgs.iter().any(|m| m.contains("/normal")),
        "dontlog-normal: a 200 was logged: {msgs:#?}"
    );
    let msg = log_for(&msgs, "GET /down HTTP/1.1");
    let f = log_fields(msg);
    assert_eq!((f[2], f[3], f[5]), ("fe_quiet", "bk_down/dead", "503"), "{msg}");
    assert_eq!(f[9], "SC--", "{msg}");
}

#[test]
fn acl_pattern_files_match_and_ignore_comments() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  acl blocked src -f @DIR@/blocked.lst
  acl elsewhere src -f @DIR@/elsewhere.lst
  http-request deny if { path_beg /one } blocked
  http-request deny if { path_beg /two } elsewhere
  default_backend bk

backend bk
  server ngx @IP@:@N1@
",
        1,
        1,
        &[
            ("blocked.lst", "# every loopback client\n127.0.0.0/8\n"),
            ("elsewhere.lst", "# clients far away\n\n10.0.0.0/8\n192.0.2.0/24\n"),
        ],
        &[],
    );
    let r = rig.conn(1).get("/one/x");
    assert_eq!(r.status, 403, "127.0.0.0/8 from the file matches a loopback client: {r:?}");
    let r = rig.conn(1).get("/two/x");
    assert_eq!((r.status, r.answer().uri.as_str()), (200, "/two/x"), "no line matches: {r:?}");
}

/// Runs `lbd -c -f FILE` on `cfg` written to a scratch file; returns the output and the file.
fn check_config(cfg: &str) -> (Output, std::path::PathBuf, Scratch) {
    let dir = Scratch::new("rules-check");
    let file = dir.path.join("check.cfg");
    std::fs::write(&file, cfg).expect("write config");
    let out = run(Command::new(lbd_bin()).arg("-c").arg("-f").arg(&file));
    (out, file, dir)
}

/// The 1-based line of `cfg` that starts (after indentation) with `prefix`.
fn line_of(cfg: &str, prefix: &str) -> usize {
    cfg.lines()
        .position(|l| l.trim_start().starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line {prefix:?}"))
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_pattern_file_fails_the_check_naming_file_and_line() {
    let missing = Path::new("/nonexistent-lbd-e2e/blocked.lst");
    let cfg = format!(
        "defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend fe
  bind 127.0.0.1:8080
  acl blocked src -f {}
  http-request deny if blocked
  default_backend bk

backend bk
  server s1 127.0.0.1:8081
",
        missing.display()
    );
    let (out, file, _dir) = check_config(&cfg);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(err.contains(&missing.display().to_string()), "the pattern file is named:\n{err}");
    let name = file.file_name().and_then(|n| n.to_str()).expect("file name");
    assert!(err.contains(name), "the config file is named:\n{err}");
    assert_eq!(first_alert_line(&err), Some(line_of(&cfg, "acl blocked")), "{err}");
}

#[test]
fn a_redirect_after_use_backend_is_a_warning_that_names_its_line() {
    let cfg = "defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend fe
  bind 127.0.0.1:8080
  use_backend bk if { path_beg /app }
  redirect location /elsewhere if { path /old }
  default_backend bk

backend bk
  server s1 127.0.0.1:8081
";
    let (out, file, _dir) = check_config(cfg);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "a warning is not an error:\n{err}");
    let name = file.file_name().and_then(|n| n.to_str()).expect("file name");
    let line = line_of(cfg, "redirect location");
    let at = format!("{name}:{line}]");
    let warning = err
        .lines()
        .find(|l| l.starts_with("[WARNING]") && l.contains(&at))
        .unwrap_or_else(|| panic!("no warning naming {at}:\n{err}"));
    assert!(warning.contains("redirect"), "{warning}");
    assert!(!err.contains("[ALERT]"), "{err}");
}

/// Answers any GET with a 512 MiB body, written as fast as the reader takes it
/// (more than loopback's socket buffers can hold: they grow to tens of MiB here).
const BIG_SERVER: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        n = 512 * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(n // len(chunk)):
                self.wfile.write(chunk)
        except OSError:
            pass


server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
server.daemon_threads = True
server.serve_forever()
"#;

#[test]
fn a_client_that_stops_reading_its_response_is_cut_after_timeout_client() {
    let ip = private_loopback();
    let big = PyServer::start_on(BIG_SERVER, &ip);
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  timeout client 1s
  default_backend bk

backend bk
  server big @BIG@
",
        1,
        1,
        &[],
        &[("@BIG@", big.addr())],
    );
    let mut c = rig.conn(1);
    c.write_head("GET", "/big", &[], None).expect("request");
    // Read nothing for longer than `timeout client`: socket buffers fill, lbd waits, then cuts.
    std::thread::sleep(Duration::from_millis(3000));
    let started = Instant::now();
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match c.read_some(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still streaming after {total} bytes");
    }
    assert!(
        total < 512 * 1024 * 1024,
        "the whole body came through ({total} bytes): the connection was not cut"
    );
    let msgs = rig.log_messages(Duration::from_millis(800));
    let msg = log_for(&msgs, "GET /big HTTP/1.1");
    assert_eq!(log_fields(msg)[9], "cD--", "{msg}");
}

#[test]
fn tarpit_holds_its_refusal_and_response_headers_are_captured() {
    let rig = Rig::front(&[
        "timeout tarpit 1s",
        "capture request header Host len 32",
        "capture response header Server len 5",
        "http-request tarpit if { path_beg /trap }",
    ]);
    let started = Instant::now();
    let r = rig.conn(1).get("/trap");
    let waited = started.elapsed();
    assert_eq!(r.status, 500, "a tarpit answers 500: {r:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "held for timeout tarpit (1 s): {waited:?}"
    );
    assert_eq!(rig.conn(1).get("/fine").status, 200);
    let msgs = rig.log_messages(Duration::from_millis(800));
    let trap = log_for(&msgs, "GET /trap HTTP/1.1");
    assert_eq!(log_fields(trap)[9], "PT--", "{trap}");
    // Request captures first, then response ones (nginx's `Server` cut to 5 characters).
    let fine = log_for(&msgs, "GET /fine HTTP/1.1");
    assert!(fine.ends_with(" {mail.xlc.local} {nginx} \"GET /fine HTTP/1.1\""), "{fine}");
}

#[test]
fn reject_closes_the_connection_without_an_answer() {
    let rig = Rig::front(&["http-request reject if { path_beg /rej }"]);
    let mut c = rig.conn(1);
    c.write_head("GET", "/rej", &[], None).expect("request");
    let mut buf = [0u8; 64];
    assert_eq!(c.read_some(&mut buf).ok(), Some(0), "closed without a byte: {:?}", &buf[..8]);
    assert_eq!(rig.conn(1).get("/fine").status, 200);
    let msgs = rig.log_messages(Duration::from_millis(800));
    let f = log_fields(log_for(&msgs, "GET /rej HTTP/1.1"));
    assert_eq!((f[5], f[9]), ("-1", "PR--"), "{f:?}");
}

/// `silent-drop`: unlike `reject`, the client is not told: no answer, no FIN,
/// no reset; its connection just stops (HAProxy puts the socket in TCP repair
/// mode before closing it, and so does lbd). With `tcp-smart-accept` (on by
/// default in HTTP mode) the request's ACK is still held when the rule runs;
/// lbd sends it first, or the client would send the request again and hear a
/// reset.
#[test]
fn silent_drop_leaves_the_client_waiting_on_a_connection_that_is_gone() {
    silent_drop_with(&["http-request silent-drop if { path_beg /drop }"]);
    silent_drop_with(&["no option tcp-smart-accept", "http-request silent-drop if { path_beg /drop }"]);
}

fn silent_drop_with(lines: &[&str]) {
    use std::io::{Read, Write};
    let rig = Rig::front(lines);
    let mut s = std::net::TcpStream::connect(rig.fe[0].as_str()).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    s.write_all(b"GET /drop HTTP/1.1\r\nHost: a\r\n\r\n").expect("request");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("the client heard from lbd: {other:?}"),
    }
    // lbd has let the connection go, and serves the next client.
    assert_eq!(rig.conn(1).get("/fine").status, 200);
    let msgs = rig.log_messages(Duration::from_millis(800));
    let f = log_fields(log_for(&msgs, "GET /drop HTTP/1.1"));
    assert_eq!((f[5], f[9]), ("-1", "PR--"), "{f:?}");
}

#[test]
fn timeout_server_counts_inactivity_while_a_long_upload_streams() {
    let ip = private_loopback();
    let sink = Sink::start();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  default_backend bk

backend bk
  timeout server 1s
  server sink @SINK@
",
        1,
        1,
        &[],
        &[("@SINK@", sink.addr.to_string())],
    );
    // An Outlook Anywhere-style upload: 3 s of body in small steps, the answer only at its end.
    let mut c = rig.conn(1);
    c.write_head("RPC_IN_DATA", "/rpc/rpcproxy.dll", &[], Some(10_000)).expect("head");
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        c.send_raw(&[b'x'; 1000]).expect("body step");
    }
    let r = c.read_response(false).expect("answer after the upload");
    assert_eq!((r.status, r.text().as_str()), (200, "10000"), "{r:?}");
    // A body that stops moving: the server waits, lbd gives up after `timeout server`.
    let mut c = rig.conn(1);
    c.write_head("RPC_IN_DATA", "/rpc/rpcproxy.dll", &[], Some(10_000)).expect("head");
    c.send_raw(&[b'x'; 1000]).expect("first part");
    let started = Instant::now();
    let r = c.read_response(false).expect("an answer to the stalled upload");
    assert_eq!(r.status, 504, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn pool_max_conn_zero_keeps_no_idle_server_connection() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend fe
  bind @IP@:@FE1@
  bind @IP@:@FE2@
  use_backend bk_nopool if { dst_port @FE2@ }
  default_backend bk

backend bk
  http-reuse always
  server ngx @IP@:@N1@

backend bk_nopool
  http-reuse always
  server ngx @IP@:@N1@ pool-max-conn 0
",
        1,
        2,
        &[],
        &[],
    );
    let conns = |fe: usize| -> BTreeSet<u64> {
        let mut c = rig.conn(fe);
        (0..6).map(|i| c.get(&format!("/pool-{i}")).answer().conn).collect()
    };
    // Pooled: one keep-alive client reuses one server connection.
    assert_eq!(conns(1).len(), 1, "pooled server connection reused");
    // `pool-max-conn 0`: every request opens a server connection of its own.
    assert_eq!(conns(2).len(), 6, "no idle connection kept with pool-max-conn 0");
}

/// lbd's cookie date stamps: `VALUE|LAST|FIRST`, seconds since 1970 in base 36.
fn stamp(value: &str, last: u64, first: u64) -> String {
    fn b36(mut n: u64) -> String {
        let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut out = Vec::new();
        loop {
            out.push(digits[(n % 36) as usize]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        out.reverse();
        String::from_utf8(out).unwrap_or_default()
    }
    format!("{value}|{}|{}", b36(last), b36(first))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The (last, first) stamps of a `SRV=...` Set-Cookie line.
fn stamps_of(set_cookie: &str) -> (String, u64, u64) {
    let v = set_cookie.trim_start_matches("SRV=").split(';').next().unwrap_or("");
    let mut p = v.split('|');
    let value = p.next().unwrap_or("").to_owned();
    let last = p.next().and_then(|t| u64::from_str_radix(t, 36).ok()).unwrap_or(0);
    let first = p.next().and_then(|t| u64::from_str_radix(t, 36).ok()).unwrap_or(0);
    (value, last, first)
}

/// `cookie ... maxidle 8s maxlife 30s`: the inserted cookie carries its
/// last-seen and first-seen dates; a cookie idle too long (log flag E) or too
/// old (O) is ignored and replaced, a valid one past a quarter of maxidle is
/// stamped again (U) with its first date kept, and a fresh one is left alone.
#[test]
fn cookie_maxidle_and_maxlife_stamp_refresh_and_expire_the_persistence_cookie() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend ft
  bind @IP@:@FE1@
  default_backend bk
backend bk
  cookie SRV insert indirect nocache maxidle 8s maxlife 30s
  server s1 @IP@:@N1@ cookie s1
  server s2 @IP@:@N2@ cookie s2
",
        2,
        1,
        &[],
        &[],
    );
    let port_of = |srv: &str| if srv == "s1" { rig.nginx_ports[0] } else { rig.nginx_ports[1] };
    let ask = |cookie: Option<&str>| {
        let mut c = rig.conn(1);
        let headers: Vec<(&str, &str)> = cookie.map(|v| vec![("Cookie", v)]).unwrap_or_default();
        c.request("GET", "/owa/", &headers, b"")
    };
    // No cookie: one is inserted, stamped now.
    let r = ask(None);
    let set = r.set_cookie("SRV").unwrap_or_else(|| panic!("no cookie: {r:?}"));
    let (srv, last, first) = stamps_of(&set);
    let now = unix_now();
    assert!(now.abs_diff(last) <= 2 && last == first, "{set}");
    assert_eq!(r.answer().port, port_of(&srv));
    // Fresh: the same server, no new cookie.
    let fresh = stamp(&srv, now, now);
    let r = ask(Some(&format!("SRV={fresh}")));
    assert_eq!(r.answer().port, port_of(&srv));
    assert_eq!(r.set_cookie("SRV"), None, "a fresh cookie is left alone");
    // Seen 5 s ago (over a quarter of maxidle): stamped again, the first date kept.
    let older = stamp(&srv, now - 5, now - 20);
    let r = ask(Some(&format!("SRV={older}")));
    assert_eq!(r.answer().port, port_of(&srv));
    let (v, last, first) = stamps_of(&r.set_cookie("SRV").unwrap_or_else(|| panic!("not refreshed: {r:?}")));
    assert_eq!((v.as_str(), first), (srv.as_str(), now - 20));
    assert!(unix_now().abs_diff(last) <= 2);
    // Idle 60 s (maxidle 8 s): ignored and replaced with new dates.
    let idle = stamp(&srv, now - 60, now - 60);
    let r = ask(Some(&format!("SRV={idle}")));
    let (_, last, first) = stamps_of(&r.set_cookie("SRV").unwrap_or_else(|| panic!("expired cookie kept: {r:?}")));
    assert!(unix_now().abs_diff(last) <= 2 && last == first);
    // First seen 60 s ago (maxlife 30 s), last seen now: too old, replaced.
    let old = stamp(&srv, now, now - 60);
    let r = ask(Some(&format!("SRV={old}")));
    let (_, _, first) = stamps_of(&r.set_cookie("SRV").unwrap_or_else(|| panic!("old cookie kept: {r:?}")));
    assert!(unix_now().abs_diff(first) <= 2);
    // The log's cookie flags: N then I, V and -, V and U, E then I, O then I.
    let logs = rig.log_messages(Duration::from_secs(1)).join("\n");
    for flags in ["--NI", "--VN", "--VU", "--EI", "--OI"] {
        assert!(logs.contains(&format!(" {flags} ")), "no {flags} in:\n{logs}");
    }
}

/// An absolute-form request target names the host: a Host header that says
/// otherwise is replaced (RFC 9112, 3.2.2), so rules see what the server sees.
#[test]
fn an_absolute_form_target_overrides_a_different_host_header() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "frontend ft
  bind @IP@:@FE1@
  http-request return status 200 content-type text/plain string a-example if { hdr(host) -i a.example }
  http-request deny deny_status 403
",
        1,
        1,
        &[],
        &[],
    );
    let mut c = rig.conn(1);
    c.send_raw(b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n")
        .expect("send");
    let r = c.read_response(false).expect("answer");
    assert_eq!((r.status, r.text().trim()), (200, "a-example"), "{r:?}");
    let r = rig.conn(1).request("GET", "/x", &[("Host", "b.example")], b"");
    assert_eq!(r.status, 403, "origin form keeps its Host: {r:?}");
}

/// `show stat`'s bytes in for a backend and its server count what went to the
/// server: the request head and its body (HAProxy's `bin`).
#[test]
fn backend_and_server_bytes_in_count_request_bodies() {
    let ip = private_loopback();
    let rig = Rig::start(
        &ip,
        "global
  stats socket @DIR@/lbd.sock level admin
frontend ft
  bind @IP@:@FE1@
  default_backend bk
backend bk
  server s1 @IP@:@N1@
",
        1,
        1,
        &[],
        &[],
    );
    let body = vec![b'x'; 100_000];
    let r = rig
        .conn(1)
        .request("POST", "/owa/", &[("Content-Type", "application/octet-stream")], &body);
    assert_eq!(r.status, 200, "{r:?}");
    let sock = rig._dir.path.join("lbd.sock");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("stats socket");
        use std::io::{Read, Write};
        s.write_all(b"show stat\n").expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let header: Vec<&str> = out.lines().next().unwrap_or("").trim_start_matches("# ").split(',').collect();
        let col = header.iter().position(|h| *h == "bin").expect("bin column");
        let bin = |px: &str, sv: &str| -> u64 {
            out.lines()
                .find(|l| l.starts_with(&format!("{px},{sv},")))
                .and_then(|l| l.split(',').nth(col))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if bin("bk", "BACKEND") >= 100_000 && bin("bk", "s1") >= 100_000 {
            break;
        }
        assert!(Instant::now() < deadline, "bytes in not counted:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
