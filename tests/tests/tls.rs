//! TLS offload end to end: the SSL tab's service blocks (the seed's
//! `exchange-ssl-tab.conf`, addresses and key paths aside), native
//! `bind ... ssl`, `server ... ssl`, with real clients (curl, openssl s_client,
//! Python's imaplib and poplib) and real servers (nginx, dovecot, openssl
//! s_server). Certificates come from a private CA made for each test.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::harness::*;
use e2e::lbd_bin;
use e2e::mail::Dovecot;
use e2e::pki::{Kind, Leaf, Pki};
use e2e::web::*;

const SEED_TAB: &str = include_str!("../fixtures/exchange-ssl-tab.conf");
const NAME: &str = "mail.xlc.local";

fn leaf<'a>(file: &'a str, kind: Kind, names: &'a [&'a str]) -> Leaf<'a> {
    Leaf {
        file,
        kind,
        names,
        expired: false,
        org: "lbd tests",
    }
}

/// curl over HTTPS to `ip:port` as `name`, from `src`: (status, body).
fn curl(ca: &Path, name: &str, ip: &str, port: u16, src: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("{name}:{port}:{ip}")])
        .args(["--interface", src])
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// `openssl s_client` to `addr` with SNI `name`, verifying against `ca`; its whole output.
fn s_client(addr: &str, name: &str, ca: &Path, extra: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", name, "-verify_return_error"])
        .arg("-CAfile")
        .arg(ca)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
        // Leave stdin open briefly so TLS 1.3 session tickets arrive before the close.
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().expect("openssl output");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The subject line of the certificate `openssl s_client` saw.
fn subject(out: &str) -> String {
    out.lines().find(|l| l.starts_with("subject=")).unwrap_or("").to_owned()
}

/// The seed's SSL tab with its addresses and key paths moved into the test's own.
fn seed_tab(store: &Path, ip: &str, https: u16, imaps: u16, pops: u16, imap: u16, pop: u16) -> String {
    SEED_TAB
        .replace("/etc/ssl/frontends", &store.display().to_string())
        .replace("10.0.0.17:443", &format!("{ip}:{https}"))
        .replace("10.0.0.17:993", &format!("{ip}:{imaps}"))
        .replace("10.0.0.17:995", &format!("{ip}:{pops}"))
        .replace("127.0.0.1:143", &format!("{ip}:{imap}"))
        .replace("127.0.0.1:110", &format!("{ip}:{pop}"))
}

/// Runs a Python snippet with `/usr/bin/python3`; its stdout, or a panic with its stderr.
fn python(code: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python prelude: `mail.xlc.local` resolves to the test's address (argv 1, 2),
/// so clients connect by name and check the certificate against it.
const RESOLVE: &str = r#"
import socket, ssl, sys
name, ip, port, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
_gai = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: _gai(ip if host == name else host, *a, **k)
ctx = ssl.create_default_context(cafile=ca)
"#;

const IMAPS_CLIENT: &str = r#"
import imaplib
m = imaplib.IMAP4_SSL(name, port, ssl_context=ctx)
greeting = m.welcome.decode()
typ, _ = m.login("alice", "secret")
typ2, data = m.select("INBOX")
version = m.sock.version()
m.logout()
print(greeting, typ, typ2, version)
"#;

const POP3S_CLIENT: &str = r#"
import poplib
p = poplib.POP3_SSL(name, port, context=ctx, timeout=10)
greeting = p.getwelcome().decode()
p.user("bob")
ok = p.pass_("secret").decode()
count, size = p.stat()
p.quit()
print(greeting, ok.split()[0], count)
"#;

/// The seed's layout: the SSL tab relays HTTPS into `bind /ssl:web
/// accept-proxy` (the backend sees the client's own address), and IMAPS/POP3S
/// into the clear IMAP/POP frontends in front of dovecot.
#[test]
fn ssl_tab_offloads_https_imaps_and_pop3s_as_the_seed_does() {
    let pki = Pki::new(&[leaf("mail", Kind::Rsa, &[NAME])]);
    let scratch = Scratch::new("tlsseed");
    let store = scratch.path.join("frontends");
    pki.store("mail", &store, NAME);
    let ip = private_loopback();
    let client_ip = private_loopback();
    let p = free_ports_on(&ip, 8);
    let (https, imaps, pops, imap_fe, pop_fe, web, imap_be, pop_be) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    let _nginx = Nginx::start("CAS1", &[&format!("{ip}:{web}")]);
    let _dovecot = Dovecot::start("CAS1", &ip, imap_be, pop_be);
    let run = scratch.path.join("run");
    let config = format!(
        "global
    unix-bind prefix {run}
defaults
    mode http
    timeout client 10s
    timeout server 10s
    timeout connect 2s
frontend ft_web
    bind /ssl:web accept-proxy
    option forwardfor
    default_backend bk_web
backend bk_web
    server CAS1 {ip}:{web}
frontend ft_exchange_imap
    mode tcp
    bind {ip}:{imap_fe}
    default_backend bk_exchange_imap
backend bk_exchange_imap
    mode tcp
    server CAS1 {ip}:{imap_be}
frontend ft_exchange_pop
    mode tcp
    bind {ip}:{pop_fe}
    default_backend bk_exchange_pop
backend bk_exchange_pop
    mode tcp
    server CAS1 {ip}:{pop_be}
",
        run = run.display()
    );
    let tab = seed_tab(&store, &ip, https, imaps, pops, imap_fe, pop_fe);
    let tab_file = scratch.path.join("ssl.cfg");
    std::fs::write(&tab_file, &tab).expect("ssl tab");
    let lbd = Lbd::start_with(&config, &["-s", tab_file.to_str().expect("utf-8 path")]);

    // HTTPS: curl verifies the chain and the name; nginx sees the client's address.
    for path in ["/owa/", "/EWS/Exchange.asmx"] {
        let (code, body) = curl(&pki.ca(), NAME, &ip, https, &client_ip, path);
        assert_eq!(code, 200, "{path}: {body}\n{}", lbd.log());
        let a = Answer::parse(&body).unwrap_or_else(|| panic!("nginx answer: {body}"));
        assert_eq!(a.server, "CAS1");
        assert_eq!(a.xff, client_ip, "X-Forwarded-For is the TLS client, carried by the PROXY header");
    }
    // openssl s_client: the chain verifies, TLS 1.3 by default, 1.2 on request.
    let out = s_client(&format!("{ip}:{https}"), NAME, &pki.ca(), &[], "");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    let out = s_client(&format!("{ip}:{https}"), NAME, &pki.ca(), &["-tls1_2"], "");
    assert!(out.contains("Protocol  : TLSv1.2"), "{out}");
    // IMAPS and POP3S with Python's own clients, through dovecot.
    let ca = pki.ca().display().to_string();
    let got = python(&format!("{RESOLVE}{IMAPS_CLIENT}"), &[NAME, &ip, &imaps.to_string(), &ca]);
    assert!(got.contains("CAS1 ready") && got.contains("OK OK"), "imap: {got}");
    let got = python(&format!("{RESOLVE}{POP3S_CLIENT}"), &[NAME, &ip, &pops.to_string(), &ca]);
    assert!(got.contains("CAS1 ready") && got.contains("+OK"), "pop3: {got}");
}

/// Resumption as `openssl s_client` sees it: a first connection saves its
/// session (after an HTTP exchange, so TLS 1.3 tickets arrive), a second one
/// offers it; the second must say `Reused`.
fn resumes(addr: &str, ca: &Path, extra: &[&str]) -> bool {
    let dir = Scratch::new("sess");
    let sess = dir.path.join("sess.pem");
    let sess = sess.to_str().expect("utf-8 path");
    let request = "GET /owa/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut first: Vec<&str> = vec!["-sess_out", sess, "-ign_eof"];
    first.extend_from_slice(extra);
    let out = s_client(addr, NAME, ca, &first, request);
    assert!(out.contains("New, TLS"), "{out}");
    let mut second: Vec<&str> = vec!["-sess_in", sess];
    second.extend_from_slice(extra);
    s_client(addr, NAME, ca, &second, "").contains("Reused, TLS")
}

/// Several certificates on one bind (a combined PEM, a separate key, a
/// directory, a name in the store): SNI picks by name, wildcards included, and
/// an unknown name gets the first. RSA, ECDSA and Ed25519 keys; sessions resume
/// by ID and by ticket, in TLS 1.2 and 1.3; `ssl_fc*` fetches route.
#[test]
fn sni_picks_among_certificates_and_sessions_resume() {
    let pki = Pki::new(&[
        leaf("mail", Kind::Rsa, &[NAME]),
        leaf("ec", Kind::Ecdsa, &["ec.example"]),
        leaf("ed", Kind::Ed25519, &["ed.example"]),
        leaf("wild", Kind::Rsa, &["*.wild.example"]),
    ]);
    let scratch = Scratch::new("tlssni");
    let store = scratch.path.join("store");
    pki.store("ec", &store, "ec.example");
    let dir = scratch.path.join("wilddir");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(pki.path("wild.pem"), dir.join("wild.pem")).expect("copy");
    let ip = private_loopback();
    let p = free_ports_on(&ip, 4);
    let (tls, web_a, web_b, tab_port) = (p[0], p[1], p[2], p[3]);
    let _a = Nginx::start("A", &[&format!("{ip}:{web_a}")]);
    let _b = Nginx::start("B", &[&format!("{ip}:{web_b}")]);
    let (mail_crt, mail_key) = pki.pair("mail");
    let config = format!(
        "global
    crt-base {store}
defaults
    mode http
    timeout client 10s
    timeout server 10s
    timeout connect 2s
frontend ft
    bind {ip}:{tls} ssl crt {mail_crt} key {mail_key}
    bind {ip}:{tls2} ssl crt {mail_pem} crt ec.example crt {dir} crt {ed_pem} alpn http/1.1
    http-request deny if !{{ ssl_fc }}
    http-request deny if {{ path_beg /tls13only }} !{{ ssl_fc_protocol TLSv1.3 }}
    use_backend bk_b if {{ ssl_fc_sni -i ec.example }}
    default_backend bk_a
backend bk_a
    server A {ip}:{web_a}
backend bk_b
    server B {ip}:{web_b}
",
        store = store.display(),
        mail_crt = mail_crt.display(),
        mail_key = mail_key.display(),
        mail_pem = pki.path("mail.pem").display(),
        ed_pem = pki.path("ed.pem").display(),
        dir = dir.display(),
        tls2 = tab_port,
    );
    let lbd = Lbd::start(&config);
    let multi = format!("{ip}:{tab_port}");
    let ca = pki.ca();
    for (sni, want) in [
        (NAME, "CN = mail.xlc.local"),
        ("ec.example", "CN = ec.example"),
        ("ed.example", "CN = ed.example"),
        ("host.wild.example", "CN = *.wild.example"),
    ] {
        let out = s_client(&multi, sni, &ca, &[], "");
        assert!(subject(&out).contains(want), "SNI {sni}: {}\n{out}", subject(&out));
        assert!(out.contains("Verify return code: 0 (ok)"), "SNI {sni}: {out}");
    }
    // No match: the first certificate, which then fails the name check.
    let out = s_client(&multi, "unknown.example", &ca, &[], "");
    assert!(subject(&out).contains("CN = mail.xlc.local"), "{out}");
    // ssl_fc_sni routes; ssl_fc_protocol is seen.
    let (code, body) = curl(&ca, "ec.example", &ip, tab_port, &ip, "/owa/");
    assert_eq!((code, body.split(' ').next()), (200, Some("B")), "{body}\n{}", lbd.log());
    let (code, body) = curl(&ca, NAME, &ip, tab_port, &ip, "/owa/");
    assert_eq!((code, body.split(' ').next()), (200, Some("A")), "{body}");
    let (code, _) = curl(&ca, NAME, &ip, tab_port, &ip, "/tls13only/x");
    assert_eq!(code, 200, "curl speaks TLS 1.3");
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--tls-max", "1.2", "--cacert"])
        .arg(&ca)
        .args(["--resolve", &format!("{NAME}:{tab_port}:{ip}")])
        .arg(format!("https://{NAME}:{tab_port}/tls13only/x"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403", "TLS 1.2 is refused there");
    // Resumption: session IDs and tickets, TLS 1.2 and 1.3, on the key-apart bind too.
    let single = format!("{ip}:{tls}");
    assert!(resumes(&single, &ca, &["-tls1_2"]), "TLS 1.2 ticket");
    assert!(resumes(&single, &ca, &["-tls1_2", "-no_ticket"]), "TLS 1.2 session ID");
    assert!(resumes(&single, &ca, &["-tls1_3"]), "TLS 1.3 ticket");
    assert!(resumes(&multi, &ca, &["-tls1_3"]), "TLS 1.3 ticket, several certificates");
}

/// The SSL tab's `sni = parent:pattern`: several services (certificates and
/// servers) on one address.
#[test]
fn ssl_tab_sni_services_share_one_address() {
    let pki = Pki::new(&[leaf("mail", Kind::Rsa, &[NAME]), leaf("ec", Kind::Ecdsa, &["ec.example"])]);
    let ip = private_loopback();
    let p = free_ports_on(&ip, 3);
    let (tls, web_a, web_b) = (p[0], p[1], p[2]);
    let _a = Nginx::start("A", &[&format!("{ip}:{web_a}")]);
    let _b = Nginx::start("B", &[&format!("{ip}:{web_b}")]);
    let (mail_crt, mail_key) = pki.pair("mail");
    let (ec_crt, ec_key) = pki.pair("ec");
    let tab = format!(
        "; two services, one address\n[main]\naccept = {ip}:{tls}\ncert = {}\nkey = {}\nconnect = {ip}:{web_a}\n\n[second]\nsni = main:*.example\ncert = {}\nkey = {}\nconnect = {ip}:{web_b}\n",
        mail_crt.display(),
        mail_key.display(),
        ec_crt.display(),
        ec_key.display()
    );
    let scratch = Scratch::new("tlstabsni");
    let tab_file = scratch.path.join("ssl.cfg");
    std::fs::write(&tab_file, tab).expect("tab");
    let lbd = Lbd::start_with(
        "defaults\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\n",
        &["-s", tab_file.to_str().expect("utf-8")],
    );
    let ca = pki.ca();
    let (code, body) = curl(&ca, NAME, &ip, tls, &ip, "/owa/");
    assert_eq!((code, body.split(' ').next()), (200, Some("A")), "{body}\n{}", lbd.log());
    let (code, body) = curl(&ca, "ec.example", &ip, tls, &ip, "/owa/");
    assert_eq!((code, body.split(' ').next()), (200, Some("B")), "{body}\n{}", lbd.log());
}

/// `lbd -c -f CONFIG -s TAB`: (exit code, output).
fn check_tab(config: &str, tab: &str) -> (i32, String) {
    let dir = Scratch::new("tlscheck");
    let cfg = dir.path.join("lb7.cfg");
    let ssl = dir.path.join("ssl.cfg");
    std::fs::write(&cfg, config).expect("config");
    std::fs::write(&ssl, tab).expect("tab");
    let out = Command::new(lbd_bin())
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .arg("-s")
        .arg(&ssl)
        .output()
        .expect("run lbd -c");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
            .replace(&format!("{}/", dir.path.display()), ""),
    )
}

/// Bad input in the SSL tab: each mistake is an error (or, for an expired
/// certificate, a warning) naming the SSL tab's file and line.
#[test]
fn ssl_tab_mistakes_are_named_with_file_and_line() {
    let pki = Pki::new(&[
        leaf("mail", Kind::Rsa, &[NAME]),
        leaf("other", Kind::Rsa, &[NAME]),
        Leaf {
            file: "old",
            kind: Kind::Ecdsa,
            names: &["old.example"],
            expired: true,
            org: "lbd tests",
        },
    ]);
    let (crt, key) = pki.pair("mail");
    let (_, other_key) = pki.pair("other");
    let (old_crt, old_key) = pki.pair("old");
    let bad_pem = pki.path("bad.pem");
    std::fs::write(
        &bad_pem,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .expect("bad pem");
    let lb7 = "defaults\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\n";
    let block = |extra: &str, cert: &Path, key: &Path| {
        format!(
            "; test\n[https]\nclient = no\naccept = 127.0.0.1:1443\nconnect = 127.0.0.1:80\ncert = {}\nkey = {}\n{extra}",
            cert.display(),
            key.display()
        )
    };
    // A good one first: valid.
    let (code, out) = check_tab(lb7, &block("", &crt, &key));
    assert_eq!(code, 0, "{out}");
    let cases: Vec<(String, usize, &str)> = vec![
        (block("", &crt, &other_key), 7, "the private key does not match the certificate"),
        (block("", &bad_pem, &key), 6, "bad PEM certificate"),
        (block("", &pki.path("missing.pem"), &key), 6, "cannot read"),
        (block("", &crt, &pki.path("missing.key")), 7, "cannot be read"),
        (block("verifyPeerz = yes\n", &crt, &key), 8, "unknown option 'verifyPeerz'"),
        (block("sslVersionMin = TLSv1.0\n", &crt, &key), 8, "TLS 1.2 and 1.3 only"),
        (
            format!(
                "{}\n[again]\naccept = 127.0.0.1:1443\nconnect = 127.0.0.1:81\ncert = {}\n",
                block("", &crt, &key),
                pki.path("mail.pem").display()
            ),
            10,
            "already the address of [https]",
        ),
        ("[x]\naccept = 1443\n".to_owned(), 1, "'connect' is missing"),
    ];
    for (tab, line, needle) in &cases {
        let (code, out) = check_tab(lb7, tab);
        assert_eq!(code, 1, "{needle}: {out}");
        let alert = out
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no message with {needle:?}:\n{out}"));
        assert!(
            alert.contains(&format!("ssl.cfg:{line}]")),
            "{needle}: expected line {line}: {alert}"
        );
        assert!(
            out.contains("Error(s) found in configuration file : ") && out.contains("ssl.cfg"),
            "{out}"
        );
    }
    // An address the LB Layer7 file binds already.
    let taken = format!("{lb7}frontend plain\n    bind 127.0.0.1:1443\n    mode tcp\n    default_backend b\nbackend b\n    mode tcp\n    server s 127.0.0.1:80\n");
    let (code, out) = check_tab(&taken, &block("", &crt, &key));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("ssl.cfg:4]") && l.contains("also bound by frontend 'plain'")),
        "{out}"
    );
    // Expired: a warning that names it, and the configuration is still valid (HAProxy serves it too).
    let (code, out) = check_tab(lb7, &block("", &old_crt, &old_key));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("[WARNING]") && l.contains("ssl.cfg:6]") && l.contains("expired on")),
        "{out}"
    );
}

/// Writes the store entry `NAME/{crt,key}.pem` from a leaf, as the GUI does on upload.
fn install(pki: &Pki, file: &str, store: &Path) {
    pki.store(file, store, NAME);
}

/// An `openssl s_client -quiet` session kept open: requests written, answers read.
struct Live {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Live {
    fn open(addr: &str, ca: &Path) -> Live {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", addr, "-servername", NAME, "-verify_return_error"])
            .arg("-CAfile")
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Live { child, out }
    }

    /// One keep-alive request; the answer's body line.
    fn get(&mut self, path: &str) -> String {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        write!(stdin, "GET {path} HTTP/1.1\r\nHost: {NAME}\r\n\r\n").expect("write");
        stdin.flush().expect("flush");
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).expect("read") > 0, "connection closed");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.out.read_exact(&mut body).expect("body");
        String::from_utf8_lossy(&body).into_owned()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_log(lbd: &Lbd, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lbd.log().matches(needle).count() < count {
        assert!(Instant::now() < deadline, "no {needle:?} in the log:\n{}", lbd.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A reload reads certificates again: new connections get the new one while
/// a connection made before goes on; a broken certificate is refused and the
/// previous one keeps serving.
#[test]
fn reload_rereads_certificates_and_a_bad_one_keeps_the_old() {
    let pki = Pki::new(&[
        Leaf {
            org: "first",
            ..leaf("one", Kind::Rsa, &[NAME])
        },
        Leaf {
            org: "second",
            ..leaf("two", Kind::Ecdsa, &[NAME])
        },
    ]);
    let scratch = Scratch::new("tlsreload");
    let store = scratch.path.join("store");
    install(&pki, "one", &store);
    let ip = private_loopback();
    let p = free_ports_on(&ip, 2);
    let (tls, web) = (p[0], p[1]);
    let _nginx = Nginx::start("CAS1", &[&format!("{ip}:{web}")]);
    let config = format!(
        "global
    crt-base {store}
defaults
    mode http
    timeout client 30s
    timeout server 10s
    timeout connect 2s
frontend ft
    bind {ip}:{tls} ssl crt {NAME}
    default_backend bk
backend bk
    server CAS1 {ip}:{web}
",
        store = store.display()
    );
    let lbd = Lbd::start(&config);
    let addr = format!("{ip}:{tls}");
    let ca = pki.ca();
    assert!(subject(&s_client(&addr, NAME, &ca, &[], "")).contains("O = first"));
    let mut live = Live::open(&addr, &ca);
    assert!(live.get("/owa/1").starts_with("CAS1 GET /owa/1"));

    install(&pki, "two", &store);
    unsafe {
        libc::kill(lbd.pid() as i32, libc::SIGHUP);
    }
    wait_log(&lbd, "[NOTICE] reloaded", 1);
    let out = s_client(&addr, NAME, &ca, &[], "");
    assert!(subject(&out).contains("O = second"), "{out}");
    // The connection made before the reload is answered (then closed, as
    // HAProxy's old process closes keep-alive connections after a reload).
    assert!(
        live.get("/owa/2").starts_with("CAS1 GET /owa/2"),
        "the connection made before the reload goes on"
    );

    std::fs::write(
        store.join(NAME).join("crt.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .expect("break");
    unsafe {
        libc::kill(lbd.pid() as i32, libc::SIGHUP);
    }
    wait_log(&lbd, "reload refused", 1);
    assert!(lbd.log().contains("not a valid certificate"), "{}", lbd.log());
    let out = s_client(&addr, NAME, &ca, &[], "");
    assert!(
        subject(&out).contains("O = second"),
        "the last good certificate still serves: {out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
}

/// A real OpenSSL server (`openssl s_server -www`) on `ip:port` with the leaf `file`.
struct SServer {
    child: std::process::Child,
}

impl SServer {
    fn start(pki: &Pki, file: &str, ip: &str, port: u16) -> SServer {
        let (crt, key) = pki.pair(file);
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-accept", &format!("{ip}:{port}")])
            .arg("-cert")
            .arg(&crt)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        SServer { child }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    curl_output(&out.stdout)
}

/// `server ... ssl` re-encrypts toward a real OpenSSL server: the chain and
/// the SNI name are verified (`verify required ca-file`), a wrong name fails;
/// `verify none` trusts anything. HTTP and TCP modes, and the SSL tab's `client = yes`.
#[test]
fn server_ssl_reencrypts_toward_an_openssl_server() {
    let pki = Pki::new(&[leaf("cas", Kind::Ecdsa, &["cas1.xlc.local"])]);
    let ip = private_loopback();
    let p = free_ports_on(&ip, 7);
    let (tls_srv, fe_ok, fe_badname, fe_none, fe_tcp, tab_port, fe_checked) = (p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
    let _s = SServer::start(&pki, "cas", &ip, tls_srv);
    let ca = pki.ca().display().to_string();
    let config = format!(
        "defaults
    mode http
    timeout client 10s
    timeout server 10s
    timeout connect 2s
listen ok
    bind {ip}:{fe_ok}
    server CAS1 {ip}:{tls_srv} ssl verify required ca-file {ca} sni str(cas1.xlc.local)
listen badname
    bind {ip}:{fe_badname}
    retries 0
    server CAS1 {ip}:{tls_srv} ssl verify required ca-file {ca} sni str(other.xlc.local)
listen none
    bind {ip}:{fe_none}
    server CAS1 {ip}:{tls_srv} ssl verify none
listen tcp
    mode tcp
    bind {ip}:{fe_tcp}
    server CAS1 {ip}:{tls_srv} ssl verify required ca-file {ca} sni str(cas1.xlc.local)
"
    );
    let scratch = Scratch::new("tlsclient");
    let sock = scratch.path.join("lbd.sock");
    let config = format!(
        "global
    stats socket {sock}
{config}listen checked
    bind {ip}:{fe_checked}
    server good {ip}:{tls_srv} ssl verify required ca-file {ca} sni str(cas1.xlc.local) check inter 300 rise 1 fall 1
    server wrongname {ip}:{tls_srv} ssl verify required ca-file {ca} sni str(other.xlc.local) check inter 300 rise 1 fall 1
    server plainport {ip}:{tls_srv} check-ssl verify none check inter 300 rise 1 fall 1
",
        sock = sock.display()
    );
    let tab = scratch.path.join("ssl.cfg");
    std::fs::write(
        &tab,
        format!("[reencrypt]\nclient = yes\naccept = {ip}:{tab_port}\nconnect = {ip}:{tls_srv}\nsni = cas1.xlc.local\nverifyChain = yes\nCAfile = {ca}\n"),
    )
    .expect("tab");
    let lbd = Lbd::start_with(&config, &["-s", tab.to_str().expect("utf-8")]);
    for port in [fe_ok, fe_none, fe_tcp, tab_port] {
        let (code, body) = http_get(&format!("{ip}:{port}"), "/");
        assert_eq!(code, 200, "port {port}: {body}\n{}", lbd.log());
        assert!(body.contains("s_server"), "the answer comes from openssl s_server: {body}");
    }
    let (code, _) = http_get(&format!("{ip}:{fe_badname}"), "/");
    assert_eq!(code, 503, "a certificate for another name is refused");
    // Health checks go over TLS too: the server whose name does not verify goes down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = runtime_cmd(&sock, "show stat");
        let status = |srv: &str| {
            stat.lines()
                .find(|l| l.starts_with(&format!("checked,{srv},")))
                .and_then(|l| l.split(',').nth(17))
                .unwrap_or("")
                .to_owned()
        };
        if status("good") == "UP" && status("plainport") == "UP" && status("wrongname") == "DOWN" {
            break;
        }
        assert!(Instant::now() < deadline, "check states: {stat}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One command on lbd's runtime socket; the answer.
fn runtime_cmd(sock: &Path, cmd: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("runtime socket");
    writeln!(s, "{cmd}").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A server that records what its first connection sends until it closes.
fn recorder(ip: &str) -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let l = std::net::TcpListener::bind((ip, 0)).expect("bind recorder");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"hello\n") {
                break;
            }
        }
        got
    });
    (port, h)
}

/// The SSL tab's PROXY switch in its spellings: `protocol = proxy` and
/// `sendproxy = yes` send v1, `sendproxy = v2` sends v2; both carry the TLS
/// client's address and the address it connected to, before its bytes.
#[test]
fn ssl_tab_sends_proxy_v1_and_v2() {
    let pki = Pki::new(&[leaf("mail", Kind::Rsa, &[NAME])]);
    let ip = private_loopback();
    let client_ip = private_loopback();
    let (crt, key) = pki.pair("mail");
    for (switch, v2) in [("protocol = proxy", false), ("sendproxy = yes", false), ("sendproxy = v2", true)] {
        let (rec_port, rec) = recorder(&ip);
        let tls = free_ports_on(&ip, 1)[0];
        let scratch = Scratch::new("tlsproxy");
        let tab = scratch.path.join("ssl.cfg");
        std::fs::write(
            &tab,
            format!(
                "[p]\naccept = {ip}:{tls}\nconnect = {ip}:{rec_port}\ncert = {}\nkey = {}\n{switch}\n",
                crt.display(),
                key.display()
            ),
        )
        .expect("tab");
        let lbd = Lbd::start_with(
            "defaults\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\n",
            &["-s", tab.to_str().expect("utf-8")],
        );
        let out = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &format!("{ip}:{tls}"), "-servername", NAME])
            .args(["-bind", &format!("{client_ip}:0")])
            .arg("-CAfile")
            .arg(pki.ca())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(b"hello\n")?;
                    std::thread::sleep(Duration::from_millis(500));
                }
                let _ = c.kill();
                c.wait()
            });
        assert!(out.is_ok());
        let got = rec.join().expect("recorder");
        assert!(
            got.ends_with(b"hello\n"),
            "{switch}: {:?}\n{}",
            String::from_utf8_lossy(&got),
            lbd.log()
        );
        if v2 {
            assert!(got.starts_with(b"\r\n\r\n\0\r\nQUIT\n\x21\x11"), "{switch}: {got:?}");
            let src: Vec<u8> = client_ip.split('.').map(|o| o.parse().unwrap_or(0)).collect();
            let dst: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap_or(0)).collect();
            assert_eq!(&got[16..20], &src[..], "v2 source address");
            assert_eq!(&got[20..24], &dst[..], "v2 destination address");
            assert_eq!(u16::from_be_bytes([got[26], got[27]]), tls, "v2 destination port");
        } else {
            let line = String::from_utf8_lossy(&got);
            assert!(line.starts_with(&format!("PROXY TCP4 {client_ip} {ip} ")), "{switch}: {line}");
            assert!(line.lines().next().unwrap_or("").ends_with(&format!(" {tls}")), "{switch}: {line}");
        }
    }
}

/// `tcp-request connection reject` on a TLS bind answers before any TLS:
/// the rejected client sees a reset where a ServerHello would be.
#[test]
fn tcp_request_connection_rules_come_before_the_handshake() {
    let pki = Pki::new(&[leaf("mail", Kind::Rsa, &[NAME])]);
    let ip = private_loopback();
    let client = private_loopback();
    let p = free_ports_on(&ip, 2);
    let _nginx = Nginx::start("CAS1", &[&format!("{ip}:{}", p[1])]);
    let (crt, key) = pki.pair("mail");
    let lbd = Lbd::start(&format!(
        "defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\nfrontend ft\n    bind {ip}:{} ssl crt {} key {}\n    tcp-request connection reject if {{ src {client} }}\n    default_backend bk\nbackend bk\n    server CAS1 {ip}:{}\n",
        p[0],
        crt.display(),
        key.display(),
        p[1]
    ));
    let (code, body) = curl(&pki.ca(), NAME, &ip, p[0], &ip, "/owa/");
    assert_eq!(code, 200, "{body}\n{}", lbd.log());
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("{ip}:{}", p[0]),
            "-servername",
            NAME,
            "-bind",
            &format!("{client}:0"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !text.contains("Server certificate") && !text.contains("subject="),
        "a handshake happened:\n{text}"
    );
}
