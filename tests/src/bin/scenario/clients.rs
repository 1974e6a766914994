//! Real clients in the client namespace: TCP sockets on the RPC ports, curl,
//! Python's imaplib and poplib, openssl s_client, and a raw (optionally TLS)
//! socket for the timeout cases. Each binds a chosen source address, and
//! `mail.xlc.local` means the VIP (curl's `--resolve`, and the same in Python).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::web::run_in_netns;

use crate::world::{FQDN, NS_APP, NS_CLIENT, VIP};

/// Connects from `src` to the VIP's `port` inside the client namespace.
pub fn tcp_connect(src: &str, port: u16) -> Result<TcpStream, String> {
    let src = src.to_owned();
    run_in_netns(NS_CLIENT, move || {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).map_err(|e| e.to_string())?;
        let from: SocketAddr = format!("{src}:0").parse().map_err(|e| format!("{e}"))?;
        sock.bind(&from.into()).map_err(|e| format!("bind {src}: {e}"))?;
        let to: SocketAddr = format!("{VIP}:{port}").parse().map_err(|e| format!("{e}"))?;
        sock.connect_timeout(&to.into(), Duration::from_secs(5))
            .map_err(|e| format!("connect {to} from {src}: {e}"))?;
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Ok(s)
    })
}

/// The greeting line of a connection (the server's name); empty when closed first.
pub fn greeting(s: &TcpStream) -> String {
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
    line.trim_end().to_owned()
}

/// Connects to `port` from `src` and returns the greeting (`CAS1:135`...).
pub fn tcp_name(src: &str, port: u16) -> Result<String, String> {
    let s = tcp_connect(src, port)?;
    let name = greeting(&s);
    if name.is_empty() {
        return Err(format!("port {port} from {src}: closed without a greeting"));
    }
    Ok(name)
}

/// The CAS a greeting names (`CAS1:135` and `* OK CAS1 ready` give `CAS1`).
pub fn cas_of(text: &str) -> String {
    for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if w.starts_with("CAS") && w.len() == 4 {
            return w.to_owned();
        }
    }
    String::new()
}

/// True when the peer closes `s` (EOF or reset) within `limit`, ignoring data.
pub fn closed_within(s: &TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    let mut r = s;
    while std::time::Instant::now() < deadline {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Ok when the peer closes `s` within `limit` without sending a byte.
pub fn closed_silently(s: &TcpStream, limit: Duration) -> Result<(), String> {
    use std::io::Read;
    let _ = s.set_read_timeout(Some(limit));
    let mut buf = [0u8; 256];
    let mut r = s;
    match r.read(&mut buf) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!("got {:?}", String::from_utf8_lossy(&buf[..n]))),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Err(format!("still open after {limit:?}"))
        }
        Err(_) => Ok(()),
    }
}

/// A response as curl saw it.
#[derive(Debug, Default, Clone)]
pub struct Curl {
    pub status: u16,
    /// Header lines of the final response, as `name: value`.
    pub headers: Vec<String>,
    pub body: String,
}

impl Curl {
    pub fn header(&self, name: &str) -> Option<String> {
        let want = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with(&want))
            .map(|h| h[want.len()..].trim().to_owned())
    }

    /// The CAS that answered (nginx names itself first in every body).
    pub fn cas(&self) -> String {
        self.body.split_whitespace().next().map(cas_of).unwrap_or_default()
    }

    /// A `key=value` field of nginx's answer (`xff`, `cookie`, `auth`).
    pub fn field(&self, key: &str) -> String {
        let want = format!("{key}=");
        self.body
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&want))
            .unwrap_or_default()
            .to_owned()
    }
}

/// Runs curl from `src` in the client namespace against `url` (http or https
/// on `mail.xlc.local`, which resolves to the VIP), verifying the server with `ca`.
pub fn curl(src: &str, ca: &Path, url: &str, extra: &[&str]) -> Result<Curl, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", NS_CLIENT, "curl", "-sS", "-i", "--max-time", "15"])
        .args(["--interface", src])
        .args(["--resolve", &format!("{FQDN}:443:{VIP}"), "--resolve", &format!("{FQDN}:80:{VIP}")])
        .arg("--cacert")
        .arg(ca)
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {url} from {src}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(parse_http(&String::from_utf8_lossy(&out.stdout)))
}

/// Splits `curl -i` output: the last response's status, headers and body.
fn parse_http(text: &str) -> Curl {
    let mut rest = text;
    loop {
        let Some((head, body)) = rest.split_once("\r\n\r\n") else {
            return Curl::default();
        };
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        // An interim 100 Continue precedes the real response.
        if status == 100 && body.starts_with("HTTP/") {
            rest = body;
            continue;
        }
        return Curl {
            status,
            headers: lines.map(str::to_owned).collect(),
            body: body.to_owned(),
        };
    }
}

/// curl from the appliance itself (the monitors on 127.0.0.1).
pub fn curl_app(url: &str) -> Result<u16, String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            NS_APP,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("curl {url}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Python: imaplib/poplib logins, and a raw socket for the timeout cases.
const PY: &str = r#"
import imaplib, json, poplib, socket, ssl, sys, time
op, mode, src, port, ca, vip, fqdn = sys.argv[1:8]
port = int(port)
real = socket.create_connection
def via_vip(address, timeout=10, source_address=None, **kw):
    return real((vip, address[1]), timeout, (src, 0))
socket.create_connection = via_vip
ctx = ssl.create_default_context(cafile=ca)
if op == "imap":
    user = sys.argv[8]
    c = imaplib.IMAP4_SSL(fqdn, port, ssl_context=ctx, timeout=10) if mode == "tls" else imaplib.IMAP4(fqdn, port, timeout=10)
    greet = c.welcome.decode()
    typ, _ = c.login(user, "secret")
    typ2, data = c.select("INBOX")
    c.logout()
    print(json.dumps({"greeting": greet, "login": typ, "select": typ2}))
elif op == "pop3":
    user = sys.argv[8]
    c = poplib.POP3_SSL(fqdn, port, context=ctx, timeout=10) if mode == "tls" else poplib.POP3(fqdn, port, timeout=10)
    greet = c.getwelcome().decode()
    c.user(user)
    r = c.pass_("secret").decode()
    n, size = c.stat()
    c.quit()
    print(json.dumps({"greeting": greet, "login": r, "messages": n}))
elif op == "raw":
    payload, wait = sys.argv[8].encode().decode("unicode_escape").encode("latin-1"), float(sys.argv[9])
    s = socket.create_connection((fqdn, port), 10)
    if mode == "tls":
        s = ctx.wrap_socket(s, server_hostname=fqdn)
    t0 = time.monotonic()
    s.sendall(payload)
    s.settimeout(wait)
    data, first, end = b"", None, None
    try:
        while True:
            b = s.recv(65536)
            if not b:
                end = time.monotonic() - t0
                break
            if first is None:
                first = time.monotonic() - t0
            data += b
    except (socket.timeout, TimeoutError):
        pass
    except (ConnectionResetError, ssl.SSLError, OSError):
        end = time.monotonic() - t0
    print(json.dumps({"first": first, "end": end, "data": data.decode("latin-1")}))
"#;

fn python(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", NS_CLIENT, "/usr/bin/python3", "-c", PY])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        return Err(format!("python {}: {last}", args.first().copied().unwrap_or_default()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Logs `user` in over IMAP (`tls`: implicit TLS) and opens INBOX; returns the
/// greeting once everything said OK.
pub fn imap_login(src: &str, ca: &Path, port: u16, tls: bool, user: &str) -> Result<String, String> {
    let ca = ca.display().to_string();
    let port = port.to_string();
    let out = python(&["imap", if tls { "tls" } else { "clear" }, src, &port, &ca, VIP, FQDN, user])?;
    if !(out.contains("\"login\": \"OK\"") && out.contains("\"select\": \"OK\"")) {
        return Err(format!("imap: {out}"));
    }
    Ok(json_str(&out, "greeting"))
}

/// Logs `user` in over POP3 and asks STAT; returns the greeting.
pub fn pop3_login(src: &str, ca: &Path, port: u16, tls: bool, user: &str) -> Result<String, String> {
    let ca = ca.display().to_string();
    let port = port.to_string();
    let out = python(&["pop3", if tls { "tls" } else { "clear" }, src, &port, &ca, VIP, FQDN, user])?;
    if !out.contains("\"login\": \"+OK") {
        return Err(format!("pop3: {out}"));
    }
    Ok(json_str(&out, "greeting"))
}

/// What a raw connection saw: seconds to the first byte and to the close
/// (None: not within the wait), and the bytes.
#[derive(Debug, Clone)]
pub struct Raw {
    pub first: Option<f64>,
    pub end: Option<f64>,
    pub data: String,
}

/// Sends `payload` (Python escapes such as `\r\n`) on a new connection and
/// reads until the peer closes or `wait` seconds of silence pass.
pub fn raw(src: &str, ca: &Path, port: u16, tls: bool, payload: &str, wait: f64) -> Result<Raw, String> {
    let ca = ca.display().to_string();
    let (port, wait) = (port.to_string(), wait.to_string());
    let out = python(&["raw", if tls { "tls" } else { "clear" }, src, &port, &ca, VIP, FQDN, payload, &wait])?;
    let num = |k: &str| -> Option<f64> {
        let v = out.split(&format!("\"{k}\": ")).nth(1)?;
        v.split([',', '}']).next()?.trim().parse().ok()
    };
    Ok(Raw {
        first: num("first"),
        end: num("end"),
        data: json_str(&out, "data"),
    })
}

/// A string field of the one-line JSON the Python client prints (escapes kept).
fn json_str(json: &str, key: &str) -> String {
    json.split(&format!("\"{key}\": \""))
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// `openssl s_client` to the VIP's `port` for `mail.xlc.local`, verifying with
/// `ca`, sending `request`; returns everything it printed.
pub fn s_client(src: &str, ca: &Path, port: u16, request: &str) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", NS_CLIENT, "timeout", "15", "openssl", "s_client", "-connect"])
        .arg(format!("{VIP}:{port}"))
        .args(["-servername", FQDN, "-verify_return_error", "-verify_hostname", FQDN, "-ign_eof"])
        .arg("-CAfile")
        .arg(ca)
        .args(["-bind", &format!("{src}:0")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("openssl: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(request.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("openssl: {e}"))?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Raw IMAP on a held connection: logs in and returns the stream and greeting.
pub fn imap_hold(src: &str, port: u16, user: &str) -> Result<(TcpStream, String), String> {
    let s = tcp_connect(src, port)?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut greet = String::new();
    r.read_line(&mut greet).map_err(|e| format!("imap greeting: {e}"))?;
    (&s).write_all(format!("a1 LOGIN {user} secret\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| format!("imap login: {e}"))? == 0 {
            return Err("imap: closed during login".into());
        }
        if line.starts_with("a1 ") {
            break;
        }
    }
    if !line.starts_with("a1 OK") {
        return Err(format!("imap login: {line}"));
    }
    Ok((s, greet.trim_end().to_owned()))
}
