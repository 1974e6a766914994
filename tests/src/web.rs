//! HTTP pieces of the end-to-end harness: real nginx backends (on loopback or
//! inside a network namespace), small Python servers (NTLM-like, WebSocket
//! echo), a Rust body sink, and a blocking HTTP/1.1 client over one keep-alive
//! connection. Every process and thread is stopped on drop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::{connect, connect_from, Scratch};

/// How long a started backend may take to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// Runs `f` on a thread that has entered the network namespace `ns` (by name,
/// under `/run/netns`): sockets it opens live there.
pub fn run_in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this thread only, with a valid namespace descriptor.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A loopback address for one test alone: 127.A.B.C from this process's id and
/// a counter. lbd binds with SO_REUSEPORT, so two tests that happened to pick
/// the same free port on 127.0.0.1 would silently share it; on addresses of
/// their own they never meet.
pub fn private_loopback() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let n = N.fetch_add(1, Ordering::Relaxed) % 250;
    format!("127.{}.{}.{}", (pid >> 8) & 0xff, pid & 0xff, n + 2)
}

/// `n` distinct ports nobody listens on right now at `ip`, reserved for this test process
/// (see `harness::reserve_port`).
pub fn free_ports_on(ip: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| crate::harness::reserve_port(ip)).collect()
}

/// True when a TCP connection to `addr` succeeds within a short time.
fn accepts(addr: &str) -> bool {
    let Ok(sa) = addr.parse::<SocketAddr>() else {
        return false;
    };
    TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok()
}

/// The answer every nginx location gives, naming the server. `port` tells which
/// of the server's listening ports took the request (the tests give each lbd
/// backend its own port), `conn` is nginx's connection serial number.
fn nginx_body(name: &str) -> String {
    format!(
        "\"{name} $request_method $request_uri port=$server_port conn=$connection \
         xff=$http_x_forwarded_for cookie=$http_cookie auth=$http_authorization\\n\""
    )
}

/// The answer under any path holding `/hdrs/`: like `nginx_body`, then the
/// request headers that header rules touch, each as `name=[value]` (empty
/// brackets when absent; nginx 1.22 shows the first line of a repeated header,
/// all lines of X-Forwarded-For joined by ", ").
fn nginx_headers_body(name: &str) -> String {
    format!(
        "\"{name} $request_method $request_uri port=$server_port conn=$connection \
         x-test=[$http_x_test] x-added=[$http_x_added] x-secret=[$http_x_secret] \
         user-agent=[$http_user_agent] x-forwarded-for=[$http_x_forwarded_for]\\n\""
    )
}

/// One nginx process (`master_process off`, one worker), its prefix, temp files
/// and logs in a scratch folder. Killed on drop.
pub struct Nginx {
    pub name: String,
    pub listen: Vec<String>,
    netns: Option<String>,
    /// Certificate and key for the `listen ... ssl` addresses.
    tls: Option<(PathBuf, PathBuf)>,
    child: Option<Child>,
    dir: Scratch,
}

impl Nginx {
    /// Starts nginx named `name` listening on every `listen` address
    /// (`127.0.0.1:PORT`) and waits until each accepts.
    pub fn start(name: &str, listen: &[&str]) -> Nginx {
        Self::launch(None, name, listen, None)
    }

    /// The same inside the network namespace `ns` (`ip netns exec NS nginx ...`).
    pub fn start_in_netns(ns: &str, name: &str, listen: &[&str]) -> Nginx {
        Self::launch(Some(ns.to_owned()), name, listen, None)
    }

    /// The same with TLS: `listen` entries ending in ` ssl` serve `crt` and `key`.
    pub fn start_tls_in_netns(ns: &str, name: &str, listen: &[&str], crt: &Path, key: &Path) -> Nginx {
        Self::launch(Some(ns.to_owned()), name, listen, Some((crt.to_owned(), key.to_owned())))
    }

    /// While `on`, every request is answered `503` (still naming the server), as
    /// an application that is up but failing.
    pub fn set_failing(&self, on: bool) {
        let flag = self.dir.path.join("failing");
        if on {
            std::fs::write(flag, b"").expect("nginx failing flag");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    fn launch(netns: Option<String>, name: &str, listen: &[&str], tls: Option<(PathBuf, PathBuf)>) -> Nginx {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "nginx name {name:?} goes into its config unquoted"
        );
        let dir = Scratch::new("nginx");
        let mut n = Nginx {
            name: name.to_owned(),
            listen: listen.iter().map(|l| (*l).to_owned()).collect(),
            netns,
            tls,
            child: None,
            dir,
        };
        std::fs::write(n.conf_path(), n.config()).expect("write nginx.conf");
        n.spawn();
        n
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path.join("nginx.conf")
    }

    fn config(&self) -> String {
        let d = self.dir.path.display();
        let body = nginx_body(&self.name);
        let headers = nginx_headers_body(&self.name);
        let mut listen: String = self.listen.iter().map(|l| format!("    listen {l};\n")).collect();
        if let Some((crt, key)) = &self.tls {
            listen.push_str(&format!(
                "    ssl_certificate {};\n    ssl_certificate_key {};\n",
                crt.display(),
                key.display()
            ));
        }
        // Running as root without a master process: nginx never switches user, so
        // no `user` line (it is only honoured by a master process).
        format!(
            "master_process off;
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 1000; }}
http {{
  access_log off;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 10000;
  keepalive_timeout 75s;
  client_max_body_size 0;
  default_type text/plain;
  server {{
{listen}
    if (-f {d}/failing) {{ return 503 {body}; }}
    location / {{ return 200 {body}; }}
    # Static OWA files: cacheable (Expires, max-age), unlike the other answers.
    location ~* ^/owa/static/ {{ expires 1h; return 200 {body}; }}
    location ~* ^/(owa|ecp|ews|oab)(/|$) {{ return 200 {body}; }}
    location ~* ^/EWS/Exchange\\.asmx {{ return 200 {body}; }}
    location ~* ^/autodiscover/autodiscover\\.xml {{ return 200 {body}; }}
    location ~* ^/owa/auth/logon\\.aspx {{ return 200 {body}; }}
    # ActiveSync uses Basic authentication: no Authorization, no service.
    location ~* ^/Microsoft-Server-ActiveSync {{
      if ($http_authorization = \"\") {{
        add_header WWW-Authenticate 'Basic realm=\"x\"' always;
        return 401 {body};
      }}
      return 200 {body};
    }}
    # Outlook Anywhere: nginx answers `return` for any method token, RPC_IN_DATA
    # and RPC_OUT_DATA included, and discards the body.
    location ~* ^/rpc/rpcproxy\\.dll {{ return 200 {body}; }}
    # For header rules: any path holding /hdrs/ (wherever a rule moved it)
    # names the request headers those tests rewrite; /missing/ answers 404.
    location ~ /hdrs/ {{ return 200 {headers}; }}
    location ~ /missing/ {{ return 404 {body}; }}
  }}
}}
"
        )
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.dir.path.join("nginx.pid"));
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nginx"]);
                c
            }
            None => Command::new("nginx"),
        };
        let stderr = std::fs::File::create(self.dir.path.join("stderr.log")).expect("nginx stderr file");
        let child = cmd
            .arg("-p")
            .arg(&self.dir.path)
            .arg("-c")
            .arg(self.conf_path())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nginx (Debian package nginx-light): {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    /// nginx's own messages (stderr and error.log), for failure reports.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path.join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// Waits until every listening address accepts a connection.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("nginx {} exited ({status}):\n{}", self.name, self.log());
            }
            let addrs: Vec<String> = self
                .listen
                .iter()
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
                .collect();
            let ready = match &self.netns {
                Some(ns) => run_in_netns(ns, move || addrs.iter().all(|a| accepts(a))),
                None => addrs.iter().all(|a| accepts(a)),
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx {} not listening on {:?} within {READY_LIMIT:?}:\n{}",
                self.name,
                self.listen,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops serving at once (SIGKILL): its listening sockets and connections go
    /// away, as when a server crashes.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same addresses (after `kill`, or to replace it).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `/usr/bin/python3 -c SCRIPT HOST PORT` child serving on HOST:PORT; killed on drop.
pub struct PyServer {
    pub host: String,
    pub port: u16,
    child: Child,
    dir: Scratch,
}

impl PyServer {
    /// Starts `script` on 127.0.0.1 and a free port.
    pub fn start(script: &str) -> PyServer {
        Self::start_on(script, "127.0.0.1")
    }

    /// Starts `script` with `host` and a free port as its arguments and waits
    /// until the port accepts connections.
    pub fn start_on(script: &str, host: &str) -> PyServer {
        let port = free_ports_on(host, 1)[0];
        let dir = Scratch::new("py");
        let stderr = std::fs::File::create(dir.path.join("stderr.log")).expect("python stderr file");
        let child = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(host)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run /usr/bin/python3: {e}"));
        let mut srv = PyServer {
            host: host.to_owned(),
            port,
            child,
            dir,
        };
        let deadline = Instant::now() + READY_LIMIT;
        while !accepts(&srv.addr()) {
            if let Ok(Some(status)) = srv.child.try_wait() {
                panic!("python server exited ({status}):\n{}", srv.log());
            }
            assert!(Instant::now() < deadline, "python server not listening:\n{}", srv.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        srv
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An NTLM-like server (connection-based authentication, as IIS does for
/// Exchange): no `Authorization` → 401 `WWW-Authenticate: NTLM` and `Negotiate`;
/// `NTLM <type 1>` → 401 with a challenge, and this TCP connection is marked
/// challenged; `NTLM <type 3>` → 200 `authenticated conn=ID` only on a connection
/// that was challenged, 401 otherwise. Every answer carries `X-Conn: ID`, the
/// server-side connection's number, and a Content-Length.
pub const NTLM_SERVER: &str = r#"
import base64, itertools, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDS = itertools.count(1)
LOCK = threading.Lock()
CHALLENGE = base64.b64encode(
    b"NTLMSSP\x00\x02\x00\x00\x00" + bytes(8) + b"\x05\x02\x89\xa2"
    + b"\x01\x23\x45\x67\x89\xab\xcd\xef" + bytes(16)
).decode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with LOCK:
            self.conn_id = next(IDS)
        self.challenged = False

    def log_message(self, *args):
        pass

    def answer(self, code, body, extra=()):
        self.send_response(code)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("X-Conn", str(self.conn_id))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def any_method(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        token = b""
        if auth.startswith("NTLM "):
            try:
                token = base64.b64decode(auth[5:])
            except ValueError:
                token = b""
        kind = token[8] if len(token) > 8 and token.startswith(b"NTLMSSP\x00") else 0
        if kind == 1:
            self.challenged = True
            self.answer(401, b"challenge\n", [("WWW-Authenticate", "NTLM " + CHALLENGE)])
        elif kind == 3 and self.challenged:
            self.answer(200, b"authenticated conn=%d\n" % self.conn_id)
        else:
            self.answer(401, b"authenticate\n",
                        [("WWW-Authenticate", "NTLM"), ("WWW-Authenticate", "Negotiate")])

    do_GET = do_POST = do_HEAD = do_RPC_IN_DATA = do_RPC_OUT_DATA = any_method


server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
server.daemon_threads = True
server.serve_forever()
"#;

/// A WebSocket echo server (`websockets` 10.4): every message comes back as is.
pub const WS_ECHO_SERVER: &str = r#"
import asyncio, sys
import websockets


async def echo(ws, path):
    async for message in ws:
        await ws.send(message)


async def main():
    async with websockets.serve(echo, sys.argv[1], int(sys.argv[2])):
        await asyncio.Future()


asyncio.run(main())
"#;

/// An NTLM message of the given type (1 negotiate, 3 authenticate), base64: the
/// signature and type are real, the rest is zeros (the test server checks no more).
pub fn ntlm_token(kind: u8) -> String {
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend_from_slice(&[kind, 0, 0, 0]);
    if kind == 1 {
        m.extend_from_slice(&[0x07, 0x82, 0x08, 0xa2]);
        m.extend_from_slice(&[0; 16]);
    } else {
        m.extend_from_slice(&[0; 56]);
    }
    base64(&m)
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A server that takes requests (head parsed by hand, body by Content-Length),
/// counts and discards the body in 64 KiB reads and answers
/// `200` with the body's byte count. Keep-alive; one thread per connection.
pub struct Sink {
    pub addr: SocketAddr,
    /// Body bytes of the last complete request.
    pub last_body: Arc<AtomicU64>,
    /// Body bytes received so far, over every request.
    pub total_body: Arc<AtomicU64>,
    /// Request lines seen, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("sink bind");
        let addr = listener.local_addr().expect("sink addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let last_body = Arc::new(AtomicU64::new(0));
        let total_body = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l2, t2, r2, s2) = (last_body.clone(), total_body.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                        let (l3, t3, r3) = (l2.clone(), t2.clone(), r2.clone());
                        std::thread::spawn(move || {
                            let _ = sink_connection(s, &l3, &t3, &r3);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Sink {
            addr,
            last_body,
            total_body,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Serves requests on one sink connection until the peer closes.
fn sink_connection(mut s: TcpStream, last: &AtomicU64, total: &AtomicU64, reqs: &Mutex<Vec<String>>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        // The head, up to a blank line (16 KiB at most: it is test code).
        let head_end = loop {
            if let Some(i) = find(&pending, b"\r\n\r\n") {
                break i + 4;
            }
            if pending.len() > 16 * 1024 {
                return Err(io::Error::other("request head too large"));
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        pending.drain(..head_end);
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        let length: u64 = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let mut count = 0u64;
        // Bytes that came with the head belong to the body first.
        let early = (pending.len() as u64).min(length);
        pending.drain(..early as usize);
        count += early;
        total.fetch_add(early, Ordering::Relaxed);
        while count < length {
            let want = usize::try_from(length - count).unwrap_or(usize::MAX).min(buf.len());
            let n = s.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
            }
            count += n as u64;
            total.fetch_add(n as u64, Ordering::Relaxed);
        }
        last.store(count, Ordering::Relaxed);
        if let Ok(mut v) = reqs.lock() {
            v.push(request_line);
        }
        let body = count.to_string();
        s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes())?;
    }
}

/// What a request-capable byte stream needs.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Names lowercased, in order, repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes the response took on the wire (status line, headers and body).
    pub wire_len: usize,
}

impl Resp {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (any case).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The `NAME=value` part of the `Set-Cookie` header that sets cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.header_all("set-cookie").iter().find_map(|c| {
            c.split(';')
                .next()
                .map(str::trim)
                .filter(|kv| kv.starts_with(&prefix))
                .map(str::to_owned)
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The nginx answer in the body; panics with the response when it is not one.
    pub fn answer(&self) -> Answer {
        Answer::parse(&self.text()).unwrap_or_else(|| panic!("not an nginx answer: {self:?}"))
    }
}

/// The fields of an nginx answer (see `nginx_body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub server: String,
    pub method: String,
    pub uri: String,
    pub port: u16,
    pub conn: u64,
    pub xff: String,
    pub cookie: String,
    pub auth: String,
}

impl Answer {
    pub fn parse(body: &str) -> Option<Answer> {
        let line = body.strip_suffix('\n')?;
        let (rest, auth) = line.rsplit_once(" auth=")?;
        let (rest, cookie) = rest.rsplit_once(" cookie=")?;
        let (rest, xff) = rest.rsplit_once(" xff=")?;
        let (rest, conn) = rest.rsplit_once(" conn=")?;
        let (rest, port) = rest.rsplit_once(" port=")?;
        let mut words = rest.splitn(3, ' ');
        Some(Answer {
            server: words.next()?.to_owned(),
            method: words.next()?.to_owned(),
            uri: words.next()?.to_owned(),
            port: port.parse().ok()?,
            conn: conn.parse().ok()?,
            xff: xff.to_owned(),
            cookie: cookie.to_owned(),
            auth: auth.to_owned(),
        })
    }
}

/// A blocking HTTP/1.1 client over one connection (keep-alive: requests one
/// after the other on the same stream). Reads are bounded by the stream's read
/// timeout (10 s for the constructors here).
pub struct HttpConn {
    stream: Box<dyn Stream>,
    /// Bytes read from the stream and not consumed yet.
    buf: Vec<u8>,
    /// Sent as `Host` when a request gives none.
    pub host: String,
    /// The client's own address, for a TCP connection.
    pub local: Option<SocketAddr>,
}

impl HttpConn {
    pub fn connect(addr: &str) -> HttpConn {
        Self::over_tcp(connect(addr))
    }

    /// Connects from a chosen loopback source address.
    pub fn connect_from(src: &str, addr: &str) -> HttpConn {
        Self::over_tcp(connect_from(src, addr))
    }

    /// Uses an open TCP connection (its timeouts as the caller set them).
    pub fn over_tcp(stream: TcpStream) -> HttpConn {
        let local = stream.local_addr().ok();
        let mut c = Self::over(stream);
        c.local = local;
        c
    }

    /// Connects to a UNIX stream socket.
    pub fn unix(path: &Path) -> HttpConn {
        let s = std::os::unix::net::UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Self::over(s)
    }

    /// Uses an open stream (its timeouts as the caller set them).
    pub fn over<S: Stream + 'static>(stream: S) -> HttpConn {
        HttpConn {
            stream: Box::new(stream),
            buf: Vec::new(),
            host: "mail.xlc.local".to_owned(),
            local: None,
        }
    }

    /// Writes bytes as they are (a PROXY header, a partial head, a body chunk).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes a request head; `content_length` adds that header.
    pub fn write_head(&mut self, method: &str, path: &str, headers: &[(&str, &str)], content_length: Option<u64>) -> io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.host));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(n) = content_length {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        self.send_raw(head.as_bytes())
    }

    /// Sends one request (a Content-Length when `body` is not empty) and reads its response.
    pub fn try_request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Resp> {
        let length = (!body.is_empty()).then_some(body.len() as u64);
        self.write_head(method, path, headers, length)?;
        if !body.is_empty() {
            self.send_raw(body)?;
        }
        self.read_response(method == "HEAD")
    }

    /// `try_request`, panicking on an I/O error.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path` with no extra header.
    pub fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[], &[])
    }

    /// Reads more bytes into the buffer; an error on end of stream.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// One CRLF- (or LF-) terminated line, without its end.
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&raw[..raw.len() - 1]);
                return Ok(text.trim_end_matches('\r').to_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            self.fill()?;
        }
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one response. `head_only` for an answer to HEAD (no body).
    pub fn read_response(&mut self, head_only: bool) -> io::Result<Resp> {
        let status_line = self.line()?;
        let mut wire_len = status_line.len() + 2;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {status_line:?}")))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            wire_len += l.len() + 2;
            if l.is_empty() {
                break;
            }
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad header {l:?}")))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut resp = Resp {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
            wire_len,
        };
        if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = self.line()?;
                resp.wire_len += size_line.len() + 2;
                let hex = size_line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(hex, 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    loop {
                        let trailer = self.line()?;
                        resp.wire_len += trailer.len() + 2;
                        if trailer.is_empty() {
                            return Ok(resp);
                        }
                    }
                }
                let data = self.take(size + 2)?;
                resp.wire_len += size + 2;
                resp.body.extend_from_slice(&data[..size]);
            }
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad content-length {cl:?}")))?;
            resp.body = self.take(n)?;
            resp.wire_len += n;
        } else {
            // Delimited by the end of the connection.
            loop {
                match self.fill() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            resp.body = std::mem::take(&mut self.buf);
            resp.wire_len += resp.body.len();
        }
        Ok(resp)
    }

    /// Reads whatever comes next (buffered bytes first); `Ok(0)` when the peer closed.
    pub fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.buf.is_empty() {
            let n = out.len().min(self.buf.len());
            out[..n].copy_from_slice(&self.buf[..n]);
            self.buf.drain(..n);
            return Ok(n);
        }
        self.stream.read(out)
    }

    /// Reads exactly `n` bytes (buffered bytes first).
    pub fn read_exact_n(&mut self, n: usize) -> io::Result<Vec<u8>> {
        self.take(n)
    }
}
