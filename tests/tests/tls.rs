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
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_owned()
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
