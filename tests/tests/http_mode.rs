//! lbd's HTTP mode end to end: the seed's `ft_web` frontend and its six HTTP
//! backends (tests/fixtures/exchange-ssl.cfg, same rules) on loopback, in front
//! of two real nginx playing CAS1 and CAS2, plus Python and Rust servers for
//! NTLM, WebSocket and a 1 GiB Outlook Anywhere upload.
//!
//! Each CAS nginx listens on one port per lbd backend (`BACKENDS` order) and
//! names itself, the port and its connection number in every answer, so a test
//! sees which backend and which server carried a request, and over which
//! server-side connection.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::harness::*;
use e2e::web::*;

/// The HTTP backends of ft_web, in the order each CAS lists its ports.
const BACKENDS: [&str; 6] = ["bk_activesync", "bk_oa", "bk_autodiscover", "bk_ews", "bk_oab", "bk_owa_ecp"];

/// The seed's defaults, ft_web and HTTP backends with loopback addresses. Changes
/// from the seed: `inter 1s`; `timeout http-request 1s` and `http-keep-alive 1s`
/// (15 s in the seed) so the timeout tests stay short; `timeout tunnel 10s` for
/// WebSocket; three binds on the test's own loopback address `@IP@` instead of
/// the UNIX socket and port 80 (@HTTPS@ plays the SSL tab's output without PROXY
/// header, @PROXIED@ with it, @HTTP@ plays port 80, and the redirect rule names
/// it); a `global` with the syslog target and runtime socket is put in front.
/// `@bk_x@` stands for the backend's server lines.
const TEMPLATE: &str = r#"defaults
  mode tcp
  log global
  option tcplog
  balance leastconn
  option dontlognull
  option redispatch
  option contstats
  timeout server 600s
  timeout client 600s
  timeout connect 5s
  timeout http-request 1s
  timeout http-keep-alive 1s
  timeout tunnel 10s
  timeout queue 60s
  retries 3
  default-server inter 1s rise 2 fall 2
  backlog 10000

backend sourceaddr
  stick-table size 10k type ip
backend authorization
  stick-table size 10k expire 1h type string

frontend ft_web
  bind @IP@:@HTTPS@ name https
  bind @IP@:@PROXIED@ accept-proxy name https-proxied
  bind @IP@:@HTTP@ name http
  mode http
  option httplog
  log global
  option forwardfor
  redirect prefix https://mail.xlc.local if { dst_port @HTTP@ }
  redirect location /owa if { path / }
  use_backend bk_activesync if { path_beg -i /microsoft-server-activesync }
  use_backend bk_oa if { path_beg -i /rpc/rpcproxy.dll }
  use_backend bk_autodiscover if { path_beg -i /autodiscover }
  use_backend bk_ews if { path_beg -i /ews }
  use_backend bk_oab if { path_beg -i /oab }
  default_backend bk_owa_ecp

backend bk_activesync
  mode http
  option httplog
  stick on hdr(Authorization) table authorization
  option httpchk GET /Microsoft-Server-ActiveSync/ HTTP/1.1\r\nHost:\ mail.xlc.local
  http-check expect rstatus (2|3|401)
@bk_activesync@
backend bk_oa
  mode http
  option httplog
  stick on src table sourceaddr
  option httpchk RPC_IN_DATA /rpc/rpcproxy.dll?mail.xlc.local:6001 HTTP/1.1\r\nUser-Agent:\ MSRPC\r\nHost:\ mail.xlc.local
  http-check expect rstatus (2|3|401)
@bk_oa@
backend bk_autodiscover
  mode http
  option httplog
  option httpchk GET /Autodiscover/Autodiscover.xml HTTP/1.1\r\nUser-Agent:\ Mozilla/5.0\r\nHost:\ mail.xlc.local
  http-check expect rstatus (2|3|401)
@bk_autodiscover@
backend bk_ews
  mode http
  option httplog
  stick on src table sourceaddr
  option httpchk GET /EWS/Exchange.asmx HTTP/1.1\r\nHost:\ mail.xlc.local
  http-check expect rstatus (2|3|401)
@bk_ews@
backend bk_oab
  mode http
  option httplog
  option httpchk GET /OAB/ HTTP/1.1\r\nHost:\ mail.xlc.local
  http-check expect rstatus (2|3|401)
@bk_oab@
backend bk_owa_ecp
  mode http
  option httplog
  cookie SERVERID insert indirect nocache
  option httpchk GET /owa/auth/logon.aspx HTTP/1.1\r\nHost:\ mail.xlc.local
  http-check expect rstatus (2|3|401)
@bk_owa_ecp@
"#;

/// lbd with ft_web in front of two nginx CAS, a syslog receiver and a runtime
/// socket in a scratch folder (so no test touches /run/lbd). Everything listens
/// on a loopback address of the test's own (`private_loopback`).
struct Site {
    lbd: Lbd,
    cas: Vec<Nginx>,
    /// Per CAS, the nginx port that serves each backend of `BACKENDS`.
    ports: Vec<[u16; 6]>,
    /// ft_web's binds: plain, `accept-proxy`, and the one playing port 80.
    https: String,
    proxied: String,
    http: String,
    syslog: Syslog,
    _dir: Scratch,
}

impl Site {
    fn start() -> Site {
        Self::start_with(&private_loopback(), &[])
    }

    /// Listens on `ip`. `replace` gives other server lines to some backends (the
    /// NTLM, WebSocket and sink servers); the rest use CAS1 and CAS2 with `check`.
    fn start_with(ip: &str, replace: &[(&str, String)]) -> Site {
        let free = free_ports_on(ip, 15);
        let ports: Vec<[u16; 6]> = free[..12].chunks(6).map(|c| std::array::from_fn(|i| c[i])).collect();
        let cas: Vec<Nginx> = ["CAS1", "CAS2"]
            .iter()
            .zip(&ports)
            .map(|(name, p)| {
                let listen: Vec<String> = p.iter().map(|port| format!("{ip}:{port}")).collect();
                let refs: Vec<&str> = listen.iter().map(String::as_str).collect();
                Nginx::start(name, &refs)
            })
            .collect();
        let (https, proxied, http) = (free[12], free[13], free[14]);
        let syslog = Syslog::start();
        let dir = Scratch::new("http");
        let mut cfg = format!(
            "global\n  log 127.0.0.1:{} local0\n  stats socket {}/lbd.sock mode 600 level admin\n\n{TEMPLATE}",
            syslog.port(),
            dir.path.display()
        )
        .replace("@IP@", ip)
        .replace("@HTTPS@", &https.to_string())
        .replace("@PROXIED@", &proxied.to_string())
        .replace("@HTTP@", &http.to_string());
        for (i, bk) in BACKENDS.iter().enumerate() {
            let lines = match replace.iter().find(|(name, _)| name == bk) {
                Some((_, lines)) => lines.clone(),
                None => (1..=2)
                    .map(|n| {
                        let cookie = if *bk == "bk_owa_ecp" {
                            format!(" cookie CAS{n}")
                        } else {
                            String::new()
                        };
                        format!("  server CAS{n} {ip}:{}{cookie} check\n", ports[n - 1][i])
                    })
                    .collect(),
            };
            cfg = cfg.replace(&format!("@{bk}@\n"), &lines);
        }
        assert!(!cfg.contains('@'), "a placeholder is left:\n{cfg}");
        let lbd = Lbd::start(&cfg);
        for port in [https, proxied, http] {
            let up = wait_until(Duration::from_secs(5), || std::net::TcpStream::connect((ip, port)).is_ok());
            assert!(up.is_some(), "ft_web is not listening on {port}; lbd log:\n{}", lbd.log());
        }
        Site {
            lbd,
            cas,
            ports,
            https: format!("{ip}:{https}"),
            proxied: format!("{ip}:{proxied}"),
            http: format!("{ip}:{http}"),
            syslog,
            _dir: dir,
        }
    }

    /// The backend whose nginx port took this request.
    fn backend_of(&self, a: &Answer) -> &'static str {
        self.ports
            .iter()
            .find_map(|p| p.iter().position(|port| *port == a.port))
            .map(|i| BACKENDS[i])
            .unwrap_or_else(|| panic!("port {} is no backend's: {a:?}", a.port))
    }

    /// A new client connection to the plain bind.
    fn conn(&self) -> HttpConn {
        HttpConn::connect(&self.https)
    }
}

fn basic(user: &str) -> String {
    format!("Basic {}", base64(format!("{user}:secret").as_bytes()))
}

#[test]
fn every_ft_web_route_reaches_its_backend_whatever_the_case() {
    let site = Site::start();
    let auth = basic("user1");
    let with_auth: &[(&str, &str)] = &[("Authorization", &auth)];
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8], &'a str);
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/MICROSOFT-Server-ActiveSync?Cmd=Sync&User=user1",
            with_auth,
            b"",
            "bk_activesync",
        ),
        (
            "POST",
            "/microsoft-server-activesync/default.eas",
            with_auth,
            b"<Sync/>",
            "bk_activesync",
        ),
        ("RPC_IN_DATA", "/Rpc/RpcProxy.dll?mail.xlc.local:6001", &[], b"0123456789", "bk_oa"),
        ("RPC_OUT_DATA", "/rpc/rpcproxy.dll?mail.xlc.local:6001", &[], b"01", "bk_oa"),
        ("GET", "/AutoDiscover/AutoDiscover.xml", &[], b"", "bk_autodiscover"),
        ("POST", "/autodiscover/autodiscover.xml", &[], b"<Autodiscover/>", "bk_autodiscover"),
        ("GET", "/EWS/Exchange.asmx", &[], b"", "bk_ews"),
        ("POST", "/ews/exchange.asmx", &[], b"<soap/>", "bk_ews"),
        ("GET", "/oab/", &[], b"", "bk_oab"),
        ("GET", "/OAB/1234/oab.xml", &[], b"", "bk_oab"),
        ("GET", "/owa/", &[], b"", "bk_owa_ecp"),
        ("GET", "/OWA/auth/logon.aspx?replaceCurrent=1", &[], b"", "bk_owa_ecp"),
        ("GET", "/owa", &[], b"", "bk_owa_ecp"),
        ("GET", "/ECP/", &[], b"", "bk_owa_ecp"),
        ("GET", "/anything/else", &[], b"", "bk_owa_ecp"),
    ];
    for (method, path, headers, body, want) in cases {
        let r = site.conn().request(method, path, headers, body);
        assert_eq!(r.status, 200, "{method} {path}: {r:?}");
        let a = r.answer();
        assert_eq!((a.method.as_str(), a.uri.as_str()), (method, path), "{r:?}");
        assert_eq!(site.backend_of(&a), want, "{method} {path}: {a:?}");
    }
    // ActiveSync without credentials: nginx's 401 and its challenge come back as they are.
    let r = site.conn().get("/Microsoft-Server-ActiveSync");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"x\""));
    assert_eq!(site.backend_of(&r.answer()), "bk_activesync");
    // `/` alone goes to OWA; the query does not matter, `path` ignores it.
    for path in ["/", "/?x=1"] {
        let r = site.conn().get(path);
        assert_eq!(r.status, 302, "{path}: {r:?}");
        assert_eq!(r.header("location"), Some("/owa"), "{path}: {r:?}");
    }
    // The bind playing port 80 sends everything, `/` included, to HTTPS first.
    for (method, path, want) in [
        ("GET", "/owa/?a=1", "https://mail.xlc.local/owa/?a=1"),
        ("GET", "/", "https://mail.xlc.local/"),
        ("POST", "/EWS/Exchange.asmx", "https://mail.xlc.local/EWS/Exchange.asmx"),
    ] {
        let r = HttpConn::connect(&site.http).request(method, path, &[], b"");
        assert_eq!(r.status, 302, "{path}: {r:?}");
        assert_eq!(r.header("location"), Some(want), "{path}: {r:?}");
    }
}

#[test]
fn forwardfor_names_the_client_or_the_proxy_protocol_source() {
    let site = Site::start();
    let mut c = HttpConn::connect_from("127.0.0.5", &site.https);
    for path in ["/owa/", "/EWS/Exchange.asmx"] {
        let a = c.get(path).answer();
        assert_eq!(a.xff, "127.0.0.5", "{path}: {a:?}");
    }
    // As the SSL tab feeds ft_web: a PROXY v1 header first, then keep-alive requests.
    let mut c = HttpConn::connect(&site.proxied);
    c.send_raw(b"PROXY TCP4 192.0.2.7 10.0.0.17 5555 443\r\n").expect("PROXY header");
    for path in ["/owa/", "/EWS/Exchange.asmx", "/oab/"] {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.answer().xff, "192.0.2.7", "{path}: {r:?}");
    }
    // A client naming X-Forwarded-For as hop-by-hop cannot strip the header lbd adds.
    let r = c.request("GET", "/owa/", &[("Connection", "keep-alive, X-Forwarded-For")], b"");
    assert_eq!(r.answer().xff, "192.0.2.7", "{r:?}");
}

#[test]
fn serverid_cookie_pins_owa_to_one_cas_and_never_reaches_it() {
    let site = Site::start();
    let first = site.conn().get("/owa/");
    let server = first.answer().server;
    let cookie = first
        .set_cookie("SERVERID")
        .unwrap_or_else(|| panic!("no SERVERID cookie: {first:?}"));
    assert_eq!(cookie, format!("SERVERID={server}"));
    let set = first.header_all("set-cookie").join(" | ");
    assert!(set.to_ascii_lowercase().contains("path=/"), "{set}");
    // `nocache`: a cacheable response (nginx adds Expires and max-age to static
    // files) that sets the cookie is marked private, so no shared cache keeps it.
    let r = site.conn().get("/owa/static/logo.gif");
    assert!(r.set_cookie("SERVERID").is_some(), "{r:?}");
    assert!(
        r.header_all("cache-control")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("private")),
        "`nocache` marks the response private: {r:?}"
    );
    // 20 requests carrying the cookie, alone or among others, on one connection.
    let mut c = site.conn();
    for i in 0..20 {
        let sent = match i % 3 {
            0 => cookie.clone(),
            1 => format!("{cookie}; session=abc"),
            _ => format!("session=abc; {cookie}"),
        };
        let r = c.request("GET", "/owa/", &[("Cookie", &sent)], b"");
        let a = r.answer();
        assert_eq!(a.server, server, "request {i} with {sent}: {a:?}");
        assert!(!a.cookie.contains("SERVERID"), "the server saw the cookie: {a:?}");
        if sent != cookie {
            assert_eq!(a.cookie.trim(), "session=abc", "other cookies pass: {a:?}");
        }
        assert_eq!(r.set_cookie("SERVERID"), None, "a valid cookie is not set again: {r:?}");
    }
    // The other CAS's cookie pins to the other CAS.
    let other = if server == "CAS1" { "CAS2" } else { "CAS1" };
    for _ in 0..5 {
        let a = c.request("GET", "/ecp/", &[("Cookie", &format!("SERVERID={other}"))], b"").answer();
        assert_eq!(a.server, other);
    }
    // Without the cookie, new clients spread over both.
    let seen: BTreeSet<String> = (0..20).map(|_| site.conn().get("/owa/").answer().server).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn activesync_users_stick_to_a_cas_by_authorization_header() {
    let site = Site::start();
    let mut per_user: BTreeMap<usize, String> = BTreeMap::new();
    for round in 0..5 {
        for user in 0..20 {
            let auth = basic(&format!("user-{user}"));
            let path = if round % 2 == 0 {
                "/Microsoft-Server-ActiveSync?Cmd=Ping"
            } else {
                "/MICROSOFT-SERVER-ACTIVESYNC/default.eas"
            };
            let r = site.conn().request("GET", path, &[("Authorization", &auth)], b"");
            assert_eq!(r.status, 200, "{r:?}");
            let a = r.answer();
            assert_eq!(a.auth, auth, "the header reaches the server");
            assert_eq!(site.backend_of(&a), "bk_activesync");
            let first = per_user.entry(user).or_insert_with(|| a.server.clone());
            assert_eq!(*first, a.server, "user-{user} moved in round {round}");
        }
    }
    let used: BTreeSet<&String> = per_user.values().collect();
    assert_eq!(used.len(), 2, "users spread over both CAS: {per_user:?}");
}

#[test]
fn a_dying_cas_costs_no_client_request_and_is_used_again_after_rise() {
    let mut site = Site::start();
    let mut c = site.conn();
    let paths = ["/oab/", "/owa/", "/EWS/Exchange.asmx"];
    let mut before = BTreeSet::new();
    let started = Instant::now();
    for i in 0..200 {
        if i == 100 {
            site.cas[0].kill();
            // lbd learns that its idle connections to CAS1 closed before the next request.
            std::thread::sleep(Duration::from_millis(200));
        }
        let path = paths[i % paths.len()];
        let r = c
            .try_request("GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("request {i} ({path}): client connection error {e}"));
        assert!(
            (200..400).contains(&r.status) || r.status == 401,
            "request {i} ({path}) failed over badly: {r:?}"
        );
        let a = r.answer();
        if i < 100 {
            before.insert(a.server);
        } else {
            assert_eq!(a.server, "CAS2", "request {i}: the dead CAS answered?");
        }
    }
    assert_eq!(before.len(), 2, "both CAS served before the kill: {before:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    // The checks see it too (`fall` 2 at `inter` 1 s)...
    site.lbd.wait_for_log("Server bk_oab/CAS1 is DOWN", Duration::from_secs(6));
    // ...and once it is back, it is used again after `rise` (2) good checks.
    site.cas[0].restart();
    let back = Instant::now();
    let again = wait_until(Duration::from_secs(8), || {
        std::thread::sleep(Duration::from_millis(80));
        site.conn().get("/oab/").answer().server == "CAS1"
    });
    assert!(again.is_some(), "CAS1 unused 8 s after its restart; lbd log:\n{}", site.lbd.log());
    assert!(
        back.elapsed() >= Duration::from_millis(900),
        "back before a single check: {:?}",
        back.elapsed()
    );
}

#[test]
fn an_incomplete_request_head_gets_408_after_timeout_http_request() {
    let site = Site::start();
    let mut c = site.conn();
    c.send_raw(b"GET /owa/ HTTP/1.1\r\nHost: mail.xlc.local\r\n").expect("partial head");
    let sent = Instant::now();
    let r = c.read_response(false).expect("a response to the partial request");
    let waited = sent.elapsed();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "timeout http-request is 1 s, waited {waited:?}"
    );
    let mut buf = [0u8; 64];
    assert_eq!(c.read_some(&mut buf).ok(), Some(0), "closed after the 408");
}

#[test]
fn an_idle_keepalive_connection_is_closed_silently() {
    let site = Site::start();
    let mut c = site.conn();
    assert_eq!(c.get("/owa/").status, 200);
    let done = Instant::now();
    let mut buf = [0u8; 64];
    let n = c.read_some(&mut buf);
    let waited = done.elapsed();
    assert_eq!(n.ok(), Some(0), "closed without a byte: {:?}", String::from_utf8_lossy(&buf));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "timeout http-keep-alive is 1 s, closed after {waited:?}"
    );
}

#[test]
fn ntlm_keeps_the_server_connection_private_to_its_client() {
    let ip = private_loopback();
    let ntlm = PyServer::start_on(NTLM_SERVER, &ip);
    let site = Site::start_with(&ip, &[("bk_ews", format!("  http-reuse always\n  server CAS1 {}\n", ntlm.addr()))]);
    let path = "/EWS/Exchange.asmx";
    let mut c1 = site.conn();
    // Step 1: anonymous, the server asks for NTLM.
    let r = c1.get(path);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header_all("www-authenticate").contains(&"NTLM"), "{r:?}");
    let conn = r.header("x-conn").map(str::to_owned);
    // Step 2: negotiate, the server challenges this TCP connection.
    let r = c1.request("GET", path, &[("Authorization", &format!("NTLM {}", ntlm_token(1)))], b"");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("NTLM ")), "{r:?}");
    assert_eq!(
        r.header("x-conn").map(str::to_owned),
        conn,
        "step 2 on the server connection of step 1"
    );
    // Another client now: even with `http-reuse always` it never gets that connection.
    let mut c2 = site.conn();
    let r2 = c2.get(path);
    assert_eq!(r2.status, 401, "{r2:?}");
    assert!(r2.header("x-conn").is_some());
    assert_ne!(
        r2.header("x-conn").map(str::to_owned),
        conn,
        "the challenged connection leaked to another client"
    );
    // Step 3: authenticate on the challenged connection.
    let r = c1.request("GET", path, &[("Authorization", &format!("NTLM {}", ntlm_token(3)))], b"");
    assert_eq!(r.status, 200, "{r:?}\nserver log:\n{}", ntlm.log());
    assert_eq!(r.header("x-conn").map(str::to_owned), conn);
    // Authenticated now, and still this client's alone: other clients never get it,
    // while the first client keeps using it.
    for _ in 0..3 {
        let r2 = site.conn().get(path);
        assert_ne!(
            r2.header("x-conn").map(str::to_owned),
            conn,
            "the authenticated connection leaked: {r2:?}"
        );
    }
    let r = c1.get(path);
    assert_eq!(r.header("x-conn").map(str::to_owned), conn, "{r:?}");
}

/// A client WebSocket frame (FIN set, masked as clients must).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if let Ok(n16) = u16::try_from(n) {
        f.push(0x80 | 126);
        f.extend_from_slice(&n16.to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one server frame: (opcode, payload). Server frames are not masked.
fn server_frame(c: &mut HttpConn, what: &str) -> (u8, Vec<u8>) {
    let h = c.read_exact_n(2).unwrap_or_else(|e| panic!("{what}: frame header: {e}"));
    assert_eq!(h[0] & 0x80, 0x80, "one frame per message (FIN)");
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let b = c.read_exact_n(2).expect("length");
            u64::from(u16::from_be_bytes([b[0], b[1]]))
        }
        127 => {
            let b = c.read_exact_n(8).expect("length");
            u64::from_be_bytes(b.try_into().expect("8 bytes"))
        }
        n => u64::from(n),
    };
    let payload = c.read_exact_n(usize::try_from(len).expect("length")).expect("payload");
    (h[0] & 0x0f, payload)
}

#[test]
fn websocket_upgrade_becomes_a_tunnel_that_outlives_the_http_timeouts() {
    let ip = private_loopback();
    let ws = PyServer::start_on(WS_ECHO_SERVER, &ip);
    let site = Site::start_with(&ip, &[("bk_owa_ecp", format!("  server CAS1 {} cookie CAS1\n", ws.addr()))]);
    let mut c = site.conn();
    // The RFC 6455 example key, whose accept value is known.
    let r = c.request(
        "GET",
        "/owa/notifications",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    );
    assert_eq!(r.status, 101, "{r:?}\nserver log:\n{}", ws.log());
    assert_eq!(r.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert!(r.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")), "{r:?}");
    c.send_raw(&client_frame(1, b"hello through lbd")).expect("text frame");
    assert_eq!(server_frame(&mut c, "text echo"), (1, b"hello through lbd".to_vec()));
    // Idle longer than http-request and http-keep-alive (1 s): only `timeout tunnel` counts now.
    std::thread::sleep(Duration::from_millis(1500));
    let big: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    c.send_raw(&client_frame(2, &big)).expect("binary frame");
    assert_eq!(server_frame(&mut c, "binary echo after idling"), (2, big));
    // The tunnel still counts as a connection of ft_web (for maxconn and a graceful stop).
    let stat = runtime_cmd(&site._dir.path.join("lbd.sock"), "show stat");
    let scur = stat
        .lines()
        .find(|l| l.starts_with("ft_web,FRONTEND,"))
        .and_then(|l| l.split(',').nth(4))
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(scur, Some(1), "{stat}");
    // Close handshake: the server echoes the close, then ends the connection.
    c.send_raw(&client_frame(8, &1000u16.to_be_bytes())).expect("close frame");
    let (op, _) = server_frame(&mut c, "close echo");
    assert_eq!(op, 8, "close frame back");
    let mut buf = [0u8; 16];
    assert_eq!(c.read_some(&mut buf).ok(), Some(0), "tunnel closed after the close handshake");
}

#[test]
fn a_one_gib_rpc_in_data_streams_through_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    const CHUNK: usize = 64 * 1024;
    let deadline = Instant::now() + Duration::from_secs(120);
    let sink = Sink::start();
    let site = Site::start_with(&private_loopback(), &[("bk_oa", format!("  server CAS1 {}\n", sink.addr))]);
    let path = "/rpc/rpcproxy.dll?mail.xlc.local:6001";
    let stream = connect(&site.https);
    stream.set_write_timeout(Some(Duration::from_secs(30))).ok();
    let mut c = HttpConn::over_tcp(stream);
    let headers: &[(&str, &str)] = &[("User-Agent", "MSRPC")];
    // Warm up lbd's buffers on the same path, then take the reference size.
    let r = c.request("RPC_IN_DATA", path, headers, &vec![0u8; 1 << 20]);
    assert_eq!((r.status, r.text()), (200, (1u64 << 20).to_string()));
    let rss_before = site.lbd.rss_kib();
    assert!(rss_before > 0, "lbd's RSS is readable");
    let peak = AtomicU64::new(rss_before);
    let done = AtomicBool::new(false);
    let resp = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(site.lbd.rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let sent = (|| {
            c.write_head("RPC_IN_DATA", path, headers, Some(GIB))?;
            let zeros = vec![0u8; CHUNK];
            for i in 0..GIB / CHUNK as u64 {
                if Instant::now() > deadline {
                    return Err(std::io::Error::other(format!("deadline passed after {i} chunks")));
                }
                c.send_raw(&zeros)?;
            }
            c.read_response(false)
        })();
        done.store(true, Ordering::Relaxed);
        sent
    });
    let r = resp.unwrap_or_else(|e| panic!("1 GiB upload: {e}; sink counted {}", sink.total_body.load(Ordering::Relaxed)));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), GIB.to_string(), "the sink's count");
    assert_eq!(sink.last_body.load(Ordering::Relaxed), GIB);
    let grew = peak.load(Ordering::Relaxed).saturating_sub(rss_before);
    assert!(grew < 32 * 1024, "lbd's RSS grew by {grew} KiB while streaming 1 GiB");
}

#[test]
fn one_client_connection_reuses_few_server_connections() {
    // Counted through nginx's `$connection` serial number in each answer.
    let site = Site::start();
    let mut c = site.conn();
    let mut server_conns = BTreeSet::new();
    for i in 0..100 {
        let r = c.get("/oab/");
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        let a = r.answer();
        server_conns.insert((a.server, a.conn));
    }
    assert!(
        server_conns.len() <= 10,
        "100 keep-alive requests took {} server connections: {server_conns:?}",
        server_conns.len()
    );
}

#[test]
fn httplog_line_names_frontend_backend_server_status_and_request() {
    let site = Site::start();
    let mut c = site.conn();
    // Health checks and other traffic are not logged by ft_web; drop what came so far.
    let _ = site.syslog.lines(Duration::from_millis(100));
    let local = c.local.expect("TCP client");
    let r = c.get("/owa/");
    assert_eq!(r.status, 200);
    let server = r.answer().server;
    drop(c);
    let lines = site.syslog.lines(Duration::from_millis(1000));
    let line = lines
        .iter()
        .find(|l| l.contains("\"GET /owa/ HTTP/1.1\""))
        .unwrap_or_else(|| panic!("no httplog line: {lines:#?}"));
    assert!(line.starts_with("<134>"), "facility local0, level info: {line}");
    // CIP:CPORT [DATE] FRONTEND BACKEND/SERVER TR/Tw/Tc/Tr/Ta STATUS BYTES - - TSC ac/fc/bc/sc/rc sq/bq "REQUEST"
    let msg = line.split_once("]: ").map(|(_, m)| m.trim_end()).expect("syslog header");
    let f: Vec<&str> = msg.split(' ').collect();
    assert_eq!(f.len(), 15, "{msg}");
    assert_eq!(f[0], local.to_string());
    assert!(f[1].starts_with('[') && f[1].ends_with(']') && f[1].len() == 26, "date: {}", f[1]);
    assert_eq!(f[2], "ft_web");
    assert_eq!(f[3], format!("bk_owa_ecp/{server}"));
    let times: Vec<i64> = f[4].split('/').map(|t| t.parse().expect("timer")).collect();
    assert_eq!(times.len(), 5, "{}", f[4]);
    assert!(times.iter().all(|t| *t >= 0) && times[4] >= times[3], "{}", f[4]);
    assert_eq!(f[5], "200");
    // HAProxy counts the response as the server sent it (without the inserted
    // Set-Cookie), so only bounds are checked.
    let bytes: usize = f[6].parse().expect("bytes");
    assert!(
        bytes > r.body.len() && bytes <= r.wire_len,
        "bytes {bytes}, on the wire {}",
        r.wire_len
    );
    assert_eq!((f[7], f[8]), ("-", "-"), "no captured cookies");
    // A normal end (`--`); the persistence cookie: none came (`N`), one was inserted (`I`).
    assert_eq!(f[9], "--NI");
    assert_eq!(f[10].split('/').count(), 5, "{}", f[10]);
    assert!(f[10].split('/').all(|n| n.parse::<u64>().is_ok()), "{}", f[10]);
    assert_eq!(f[11], "0/0");
    assert_eq!(f[12..].join(" "), "\"GET /owa/ HTTP/1.1\"");
}

#[test]
fn after_a_reload_keepalive_connections_close_after_their_next_response() {
    // Outlook Anywhere goes to a sink that answers only once the whole body came.
    let sink = Sink::start();
    let site = Site::start_with(&private_loopback(), &[("bk_oa", format!("  server CAS1 {}\n", sink.addr))]);
    let mut idle = site.conn();
    assert_eq!(idle.get("/owa/").status, 200);
    // A request in flight: its head is out, its body not yet.
    let mut busy = site.conn();
    busy.write_head("RPC_IN_DATA", "/rpc/rpcproxy.dll", &[], Some(5)).expect("head");
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) on the child lbd process this test started.
    unsafe {
        libc::kill(site.lbd.pid() as i32, libc::SIGHUP);
    }
    site.lbd.wait_for_log("reloaded", Duration::from_secs(5));
    // The busy one gets its answer, told to close, then closes.
    busy.send_raw(b"hello").expect("body");
    let r = busy.read_response(false).expect("response of the request in flight");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    let mut buf = [0u8; 64];
    assert_eq!(busy.read_some(&mut buf).ok(), Some(0));
    // The idle one is not cut under a client about to use it: its next request is
    // answered, with `connection: close`, and then it closes.
    let r = idle.get("/owa/");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert_eq!(idle.read_some(&mut buf).ok(), Some(0));
    // New connections are served by the new configuration and kept alive.
    let mut fresh = site.conn();
    for _ in 0..3 {
        let r = fresh.get("/owa/");
        assert_eq!((r.status, r.header("connection")), (200, None), "{r:?}");
    }
}

/// Pipelined requests from a client that reads nothing for a while, through a
/// small receive buffer: lbd's answers (small ones, which a worker holds to
/// the end of its pass and sends together) fill the socket buffers and the
/// rest waits in lbd. Once the client reads, every answer arrives whole and in
/// order, and the last request's `Connection: close` ends the connection after
/// its answer.
#[test]
fn pipelined_answers_to_a_client_that_reads_late_arrive_whole_and_in_order() {
    let site = Site::start();
    let addr: std::net::SocketAddr = site.https.parse().expect("bind address");
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    sock.connect(&addr.into()).expect("connect");
    let stream: std::net::TcpStream = sock.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    // About 7 MB of answers: more than lbd's send buffer (4 MiB at most) and
    // the client's receive buffer take, so lbd has to wait for the client.
    let n = 20000;
    let requests: Vec<u8> = (0..n)
        .flat_map(|i| {
            let close = if i + 1 == n { "Connection: close\r\n" } else { "" };
            format!("GET /owa/p{i} HTTP/1.1\r\nHost: mail.xlc.local\r\n{close}\r\n").into_bytes()
        })
        .collect();
    // From another thread: lbd stops reading once its answers cannot go out.
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &requests));
    std::thread::sleep(Duration::from_secs(3));
    let mut c = HttpConn::over_tcp(stream);
    for i in 0..n {
        let r = c.read_response(false).unwrap_or_else(|e| panic!("answer {i}: {e}"));
        assert_eq!(r.status, 200, "answer {i}: {r:?}");
        assert_eq!(r.answer().uri, format!("/owa/p{i}"), "answer {i} out of order");
    }
    sender.join().expect("sender thread").expect("requests sent");
    let mut buf = [0u8; 64];
    assert_eq!(c.read_some(&mut buf).ok(), Some(0), "closed after the last answer");
}
