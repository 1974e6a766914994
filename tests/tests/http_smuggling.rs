//! Request smuggling and malformed input against the real lbd in `mode http`,
//! over raw sockets.
//!
//! A recording backend written here (strict HTTP/1.1 on httparse: CRLF only, one
//! framing header, plain decimal lengths, well-formed chunks) notes every request
//! lbd forwards. Each case sends raw bytes on a fresh client connection and checks
//! its expected outcome (rejected by lbd, normalised, or forwarded as is) and, for
//! every case, the invariant that makes smuggling impossible: the requests the
//! backend saw are exactly the requests lbd logged with a real server, the backend
//! could parse every byte lbd sent, and no forwarded request carries both
//! Content-Length and Transfer-Encoding or two Content-Lengths. A request that lbd
//! and the server framed differently would show up as a request lbd never logged,
//! a logged one the server never got, or bytes the server could not parse.
//!
//! All cases run against one lbd, one after the other, each on its own
//! connection; every failing case is collected and reported at the end.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e2e::harness::*;

/// `timeout http-request` of the lbd under test.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one case may wait for lbd on the client side.
const CASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Quiet time after a response that may still be followed by a close.
const IDLE: Duration = Duration::from_millis(200);
/// The backend's only answer.
const OK_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Statuses by which lbd itself refuses a request (505 included for bad versions).
fn is_rejection_status(code: u16) -> bool {
    (400..=431).contains(&code) || code == 501 || code == 505
}

fn lbd_config(port: u16, syslog_port: u16, backend_port: u16) -> String {
    format!(
        "global\n  log 127.0.0.1:{syslog_port} local0\n\
         defaults\n  mode http\n  log global\n  option httplog\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  \
         timeout http-request {}s\n\
         frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
         backend be\n  server rec 127.0.0.1:{backend_port}\n",
        HTTP_REQUEST_TIMEOUT.as_secs()
    )
}

/// Printable form of raw bytes, cut to `max` bytes.
fn show(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let more = if bytes.len() > max {
        format!("...(+{} bytes)", bytes.len() - max)
    } else {
        String::new()
    };
    format!("\"{}\"{more}", cut.escape_ascii())
}

/// A URI cut for a report line.
fn cut(uri: &str) -> String {
    if uri.len() <= 200 {
        uri.to_owned()
    } else {
        format!("{}...(+{} bytes)", String::from_utf8_lossy(&uri.as_bytes()[..200]), uri.len() - 200)
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------
// The recording backend
// ---------------------------------------------------------------------------

/// One request as the backend received it from lbd.
#[derive(Clone, Debug)]
struct Seen {
    conn: usize,
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// False when lbd closed the connection inside the body (an abort, not a framing error).
    body_complete: bool,
    /// Rules lbd broke while forwarding it (both CL and TE, two CLs, bare LF, ...).
    violations: Vec<String>,
}

#[derive(Clone, Debug)]
enum Event {
    Request(Seen),
    /// The backend could not parse what lbd sent: lbd must never do that.
    Unparseable {
        conn: usize,
        what: String,
    },
}

#[derive(Default)]
struct Journal {
    events: Vec<Event>,
    /// Raw bytes received, per backend connection.
    raw: Vec<Vec<u8>>,
    /// The incomplete request head each connection is waiting on (empty when none):
    /// bytes lbd left there, such as the start of a smuggled request.
    partial: Vec<Vec<u8>>,
    bytes: usize,
}

fn lock(j: &Mutex<Journal>) -> MutexGuard<'_, Journal> {
    j.lock().unwrap_or_else(|e| e.into_inner())
}

struct Backend {
    port: u16,
    journal: Arc<Mutex<Journal>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("backend bind");
        let port = listener.local_addr().expect("backend addr").port();
        listener.set_nonblocking(true).expect("nonblocking listener");
        let journal = Arc::new(Mutex::new(Journal::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (j, st) = (journal.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let conn = {
                            let mut g = lock(&j);
                            g.raw.push(Vec::new());
                            g.partial.push(Vec::new());
                            g.raw.len() - 1
                        };
                        let j2 = j.clone();
                        std::thread::spawn(move || serve(s, conn, j2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend {
            port,
            journal,
            stop,
            accept: Some(accept),
        }
    }

    /// (events recorded, bytes received) so far.
    fn snapshot(&self) -> (usize, usize) {
        let g = lock(&self.journal);
        (g.events.len(), g.bytes)
    }

    /// Waits until nothing new has arrived for a moment (at most 1 s).
    fn settle(&self) {
        let mut last = self.snapshot();
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..20 {
            let now = self.snapshot();
            if now == last {
                return;
            }
            last = now;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn events(&self) -> Vec<Event> {
        lock(&self.journal).events.clone()
    }

    /// Connections holding the start of a request head that never completed.
    fn partials(&self) -> Vec<(usize, Vec<u8>)> {
        let g = lock(&self.journal);
        g.partial.iter().cloned().enumerate().filter(|(_, p)| !p.is_empty()).collect()
    }

    fn raw_tail(&self, conn: usize, max: usize) -> String {
        let g = lock(&self.journal);
        let raw = g.raw.get(conn).map(Vec::as_slice).unwrap_or_default();
        show(&raw[raw.len().saturating_sub(max)..], max)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(s: TcpStream, conn: usize, journal: Arc<Mutex<Journal>>) {
    let _ = s.set_nonblocking(false);
    // Bounded: lbd's pooled connections end when the test kills lbd anyway.
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut c = Conn {
        s,
        conn,
        buf: Vec::new(),
        journal,
    };
    loop {
        match c.one_request() {
            Ok(true) => {}
            Ok(false) => return,
            Err(what) => {
                let mut g = lock(&c.journal);
                g.partial[conn].clear();
                g.events.push(Event::Unparseable { conn, what });
                return;
            }
        }
    }
}

/// A parsed request head.
struct Head {
    len: usize,
    method: String,
    uri: String,
    headers: Vec<(String, Vec<u8>)>,
    violations: Vec<String>,
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

struct Conn {
    s: TcpStream,
    conn: usize,
    buf: Vec<u8>,
    journal: Arc<Mutex<Journal>>,
}

impl Conn {
    /// Reads more bytes into `buf`; false on end of stream (or a read error).
    fn more(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                let mut g = lock(&self.journal);
                g.raw[self.conn].extend_from_slice(&chunk[..n]);
                g.bytes += n;
                true
            }
        }
    }

    /// Serves one request: Ok(true) to go on, Ok(false) when lbd closed, Err when
    /// lbd sent something this strict server cannot parse.
    fn one_request(&mut self) -> Result<bool, String> {
        let head = loop {
            let parsed = parse_head(&self.buf);
            lock(&self.journal).partial[self.conn] = match parsed {
                Ok(None) => self.buf.clone(),
                _ => Vec::new(),
            };
            if let Some(head) = parsed? {
                break head;
            }
            if self.buf.len() > 1 << 20 {
                return Err(format!("request head over 1 MiB: {}", show(&self.buf, 200)));
            }
            if !self.more() {
                return if self.buf.is_empty() {
                    Ok(false)
                } else {
                    Err(format!("connection closed inside a request head: {}", show(&self.buf, 300)))
                };
            }
        };
        self.buf.drain(..head.len);
        let mut violations = head.violations;
        let framing = framing(&head.headers, &mut violations)?;
        let expect_continue = head
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case(b"100-continue"));
        // Recorded as soon as the head is in: a body lbd aborts still leaves the request.
        let idx = {
            let mut g = lock(&self.journal);
            g.events.push(Event::Request(Seen {
                conn: self.conn,
                method: head.method,
                uri: head.uri,
                headers: head.headers,
                body: Vec::new(),
                body_complete: false,
                violations,
            }));
            g.events.len() - 1
        };
        if expect_continue {
            let _ = self.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let body = match framing {
            Framing::Empty => Some(Vec::new()),
            Framing::Length(n) => self.read_length(n),
            Framing::Chunked => self.read_chunked()?,
        };
        let complete = body.is_some();
        if let Some(Event::Request(seen)) = lock(&self.journal).events.get_mut(idx) {
            seen.body = body.unwrap_or_default();
            seen.body_complete = complete;
        }
        if !complete {
            return Ok(false);
        }
        Ok(self.s.write_all(OK_RESPONSE).is_ok())
    }

    /// The body, or None when the connection ended first.
    fn read_length(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.more() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The decoded body, None when the connection ended first, Err on bad framing.
    fn read_chunked(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut body = Vec::new();
        loop {
            let (used, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete(x)) => break x,
                    Ok(httparse::Status::Partial) => {
                        if !self.more() {
                            return Ok(None);
                        }
                    }
                    Err(_) => return Err(format!("invalid chunk-size line: {}", show(&self.buf, 60))),
                }
            };
            let line = &self.buf[..used];
            if !line[0].is_ascii_hexdigit() || line[..used - 2].iter().any(|b| matches!(b, b'\r' | b'\n')) {
                return Err(format!("invalid chunk-size line: {}", show(line, 60)));
            }
            self.buf.drain(..used);
            if size == 0 {
                break;
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= 1 << 24)
                .ok_or_else(|| format!("chunk of {size} bytes"))?;
            while self.buf.len() < size + 2 {
                if !self.more() {
                    return Ok(None);
                }
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(format!("chunk data not followed by CRLF: {}", show(&self.buf[size..], 40)));
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
        // The trailer section, up to its empty line.
        loop {
            let end = loop {
                if let Some(i) = find_crlf(&self.buf) {
                    break i;
                }
                if !self.more() {
                    return Ok(None);
                }
            };
            let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
            if line.is_empty() {
                return Ok(Some(body));
            }
            let valid = match line.iter().position(|&b| b == b':') {
                Some(c) => {
                    c > 0
                        && line[..c].iter().all(|&b| is_tchar(b))
                        && line[c + 1..].iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
                }
                None => false,
            };
            if !valid {
                return Err(format!("invalid trailer field: {}", show(&line, 80)));
            }
        }
    }
}

/// Parses a request head strictly; Ok(None) while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut hs = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut hs);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("unparseable request head ({e}): {}", show(buf, 300))),
        Ok(httparse::Status::Complete(len)) => {
            let violations = line_ending_violation(&buf[..len]).into_iter().collect();
            Ok(Some(Head {
                len,
                method: req.method.unwrap_or("").to_owned(),
                uri: req.path.unwrap_or("").to_owned(),
                headers: req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
                violations,
            }))
        }
    }
}

/// httparse takes bare LF and skips leading empty lines; lbd must send neither.
fn line_ending_violation(head: &[u8]) -> Option<String> {
    if head.starts_with(b"\r\n") || head.starts_with(b"\n") {
        return Some("empty line before the request line".to_owned());
    }
    for (i, &b) in head.iter().enumerate() {
        if b == b'\n' && (i == 0 || head[i - 1] != b'\r') {
            return Some(format!("bare LF at byte {i} of the head"));
        }
        if b == b'\r' && head.get(i + 1) != Some(&b'\n') {
            return Some(format!("bare CR at byte {i} of the head"));
        }
    }
    None
}

/// How the body is framed. Violations are noted (the request still parses); Err
/// when the body length cannot be determined at all.
fn framing(headers: &[(String, Vec<u8>)], violations: &mut Vec<String>) -> Result<Framing, String> {
    let values = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let cls = values("content-length");
    let tes = values("transfer-encoding");
    if cls.len() > 1 {
        violations.push(format!("{} Content-Length headers", cls.len()));
    }
    if !cls.is_empty() && !tes.is_empty() {
        violations.push("both Content-Length and Transfer-Encoding".to_owned());
    }
    if !tes.is_empty() {
        let codings: Vec<String> = tes
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .collect();
        if codings.last().map(String::as_str) != Some("chunked") {
            return Err(format!("Transfer-Encoding {codings:?} does not end in chunked"));
        }
        let chunked = codings.iter().filter(|c| *c == "chunked").count();
        if chunked > 1 {
            violations.push(format!("chunked applied {chunked} times: Transfer-Encoding {codings:?}"));
        }
        if codings.iter().any(String::is_empty) {
            violations.push(format!("empty transfer coding in {codings:?}"));
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = cls.first() else {
        return Ok(Framing::Empty);
    };
    if first.is_empty() || first.len() > 12 || !first.iter().all(u8::is_ascii_digit) {
        return Err(format!("Content-Length {} is not a plain decimal", show(first, 40)));
    }
    if cls.iter().any(|v| v != first) {
        return Err(format!("different Content-Lengths: {cls:?}"));
    }
    let n = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("Content-Length {}", show(first, 40)))?;
    Ok(Framing::Length(n))
}

// ---------------------------------------------------------------------------
// The client side
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// lbd answers 400..=431, 501 (or 505) or closes, and the backend gets no byte.
    Rejected,
    /// The backend gets exactly `requests` clean requests, the client as many 200s first.
    Normalised { requests: usize },
    /// Plain valid traffic: `requests` requests through, `requests` 200s back.
    Forwarded { requests: usize },
    /// Rejecting and normalising are both correct: only the invariant is checked.
    Either,
}

struct Case {
    name: &'static str,
    expect: Expect,
    send: Vec<u8>,
    /// The bodies the backend must receive, in order, when given.
    bodies: Option<Vec<Vec<u8>>>,
}

impl Case {
    fn bodies(&mut self, bodies: &[&str]) {
        self.bodies = Some(bodies.iter().map(|b| b.as_bytes().to_vec()).collect());
    }
}

/// What the client saw on its connection.
#[derive(Debug, Default)]
struct ClientView {
    /// Final statuses (1xx skipped), in order.
    statuses: Vec<u16>,
    /// lbd closed (or reset) the connection.
    closed: bool,
    /// Neither the awaited responses nor a close within CASE_TIMEOUT.
    timed_out: bool,
    /// Bytes lbd sent that are not HTTP responses.
    garbage: Option<String>,
    write_error: Option<String>,
}

/// Sends `send` on a fresh connection and reads what comes back, as long as
/// `expect` needs and never longer than CASE_TIMEOUT.
fn run_client(addr: &str, send: &[u8], expect: Expect) -> ClientView {
    let mut view = ClientView::default();
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).ok();
    s.set_write_timeout(Some(CASE_TIMEOUT)).ok();
    let deadline = Instant::now() + CASE_TIMEOUT;
    if let Err(e) = s.write_all(send) {
        // lbd may refuse and close before an oversize request is fully written.
        view.write_error = Some(e.to_string());
    }
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let finals = match parse_responses(&raw, false) {
            Ok(f) => f.len(),
            Err(e) => {
                view.garbage = Some(e);
                break;
            }
        };
        let enough = match expect {
            Expect::Forwarded { requests } | Expect::Normalised { requests } => finals >= requests,
            Expect::Either => finals >= 1,
            // A rejection must end with a close.
            Expect::Rejected => false,
        };
        if enough && expect != Expect::Either {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            view.timed_out = !enough;
            break;
        }
        let wait = if enough { IDLE.min(deadline - now) } else { deadline - now };
        s.set_read_timeout(Some(wait.max(Duration::from_millis(1)))).ok();
        match s.read(&mut chunk) {
            Ok(0) => {
                view.closed = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                view.timed_out = !enough;
                break;
            }
            Err(_) => {
                view.closed = true;
                break;
            }
        }
    }
    match parse_responses(&raw, view.closed) {
        Ok(statuses) => view.statuses = statuses,
        Err(e) => {
            view.garbage.get_or_insert(e);
        }
    }
    view
}

/// Final statuses of the complete responses in `buf` (1xx skipped). `eof`: the
/// connection is closed, so a body without length ends here.
fn parse_responses(buf: &[u8], eof: bool) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        let head = match r.parse(&buf[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => break,
            Err(e) => return Err(format!("not an HTTP response ({e}): {}", show(&buf[pos..], 120))),
        };
        let code = r.code.unwrap_or(0);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let start = pos + head;
        if (100..200).contains(&code) && code != 101 {
            pos = start;
            continue;
        }
        let body_len = if code == 204 || code == 304 {
            Some(0)
        } else if header("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
            chunked_len(&buf[start..])
        } else if let Some(cl) = header("content-length") {
            cl.parse::<usize>().ok().filter(|cl| buf.len() - start >= *cl)
        } else if eof {
            Some(buf.len() - start)
        } else {
            None
        };
        match body_len {
            Some(len) => {
                statuses.push(code);
                pos = start + len;
            }
            None => break,
        }
    }
    Ok(statuses)
}

/// Length of a complete chunked body at the start of `b`, trailers included.
fn chunked_len(b: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&b[pos..]) {
            Ok(httparse::Status::Complete(x)) => x,
            _ => return None,
        };
        pos += used;
        if size == 0 {
            break;
        }
        pos = pos.checked_add(usize::try_from(size).ok()?)?.checked_add(2)?;
        if pos > b.len() {
            return None;
        }
    }
    loop {
        let end = find_crlf(b.get(pos..)?)?;
        pos += end + 2;
        if end == 0 {
            return Some(pos);
        }
    }
}

// ---------------------------------------------------------------------------
// lbd's log
// ---------------------------------------------------------------------------

/// Collects every syslog datagram on a thread, so none is lost to a full buffer.
struct LogDrain {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LogDrain {
    fn start(syslog: &Syslog) -> LogDrain {
        let sock = syslog.sock.try_clone().expect("clone the syslog socket");
        sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (lines.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_owned();
                    l.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }
        });
        LogDrain {
            lines,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every line, once lbd has been quiet for 500 ms (waits at most 3 s).
    fn settled(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = self.count();
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(50));
            let n = self.count();
            if n != last {
                last = n;
                quiet_since = Instant::now();
            }
        }
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for LogDrain {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One httplog line: `... CIP:CPORT [DATE] FRONTEND BACKEND/SERVER ... "METHOD URI VERSION"`.
#[derive(Debug)]
struct LogLine {
    line: String,
    server: String,
    /// (method, normalised URI); None for `<BADREQ>` or a cut line.
    request: Option<(String, String)>,
}

impl LogLine {
    /// A request lbd sent to a real server.
    fn forwarded(&self) -> Option<&(String, String)> {
        self.request.as_ref().filter(|_| self.server != "<NOSRV>")
    }
}

fn parse_log(line: &str) -> Option<LogLine> {
    let date = line.find(" [")?;
    let after = &line[date + 2..];
    let close = after.find("] ")?;
    let mut fields = after[close + 2..].split_whitespace();
    let _frontend = fields.next()?;
    let server = fields.next()?.rsplit_once('/')?.1.to_owned();
    let request = match (line.find('"'), line.rfind('"')) {
        (Some(a), Some(b)) if b > a && &line[a + 1..b] != "<BADREQ>" => {
            let req = &line[a + 1..b];
            req.split_once(' ').map(|(method, rest)| {
                let uri = rest.rsplit_once(' ').map_or(rest, |(u, _)| u);
                (method.to_owned(), norm_uri(uri))
            })
        }
        _ => None,
    };
    Some(LogLine {
        line: line.to_owned(),
        server,
        request,
    })
}

/// A URI as lbd logs it and as the backend gets it, made comparable: HAProxy-style
/// `#XX` log escapes and `%XX` escapes decoded, absolute-form cut to origin-form,
/// fragment dropped.
fn norm_uri(uri: &str) -> String {
    let b = uri.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if (b[i] == b'#' || b[i] == b'%') && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    let s = String::from_utf8_lossy(&out).into_owned();
    let lower = s.to_ascii_lowercase();
    let s = match ["http://", "https://"].iter().find(|p| lower.starts_with(**p)) {
        Some(p) => s[p.len()..]
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| s[p.len() + i..].to_owned()),
        None => s,
    };
    match s.find('#') {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The case number a URI carries (`/case-17...` → 17).
fn tag_of(uri: &str) -> Option<usize> {
    let at = uri.find("/case-")? + "/case-".len();
    let digits: String = uri[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    /// The path of the next case: every URI of case N starts with `/case-N`.
    fn path(&self) -> String {
        format!("/case-{}", self.0.len() + 1)
    }

    fn add(&mut self, name: &'static str, expect: Expect, make: impl FnOnce(&str) -> String) -> &mut Case {
        let send = make(&self.path()).into_bytes();
        self.0.push(Case {
            name,
            expect,
            send,
            bodies: None,
        });
        self.0.last_mut().expect("just pushed")
    }
}

fn table() -> Vec<Case> {
    use Expect::*;
    const F1: Expect = Forwarded { requests: 1 };
    const N1: Expect = Normalised { requests: 1 };
    let mut t = Table::default();

    // Controls: plain valid traffic goes through untouched.
    t.add("control: GET", F1, |p| format!("GET {p} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .bodies(&[""]);
    t.add("control: POST with Content-Length", F1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
    })
    .bodies(&["hello"]);
    t.add("control: POST chunked", F1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    })
    .bodies(&["hello world"]);
    t.add("control: HTTP/1.0 GET", F1, |p| format!("GET {p} HTTP/1.0\r\nHost: t\r\n\r\n"))
        .bodies(&[""]);
    t.add("control: Expect: 100-continue", F1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
    })
    .bodies(&["hello"]);
    t.add("control: two pipelined GETs", Forwarded { requests: 2 }, |p| {
        format!("GET {p}/a HTTP/1.1\r\nHost: t\r\n\r\nGET {p}/b HTTP/1.1\r\nHost: t\r\n\r\n")
    })
    .bodies(&["", ""]);
    let inner = format!("GET {}/smuggled HTTP/1.1\r\nHost: t\r\n\r\n", t.path());
    t.add("control: a request inside a Content-Length body stays body", F1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{inner}", inner.len())
    })
    .bodies(&[&inner]);
    t.add("control: GET with a body by Content-Length", F1, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody")
    })
    .bodies(&["body"]);
    t.add("control: Connection: close", F1, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    })
    .bodies(&[""]);
    t.add("control: any token method is forwarded", F1, |p| {
        format!("PURGE {p} HTTP/1.1\r\nHost: t\r\n\r\n")
    })
    .bodies(&[""]);

    // Content-Length against Transfer-Encoding.
    t.add("CL.TE: Content-Length 6 + chunked, body `0\\r\\n\\r\\nG`", N1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG")
    })
    .bodies(&[""]);
    t.add("CL.TE: a whole request after the last chunk", N1, |p| {
        let tail = format!("0\r\n\r\nGET {p}/smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
        format!(
            "POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{tail}",
            tail.len()
        )
    })
    .bodies(&[""]);
    t.add("TE.CL: chunked + Content-Length 3", N1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n")
    })
    .bodies(&["SMUGGLED"]);
    let inner = format!("GET {}/smuggled HTTP/1.1\r\nHost: t\r\n\r\n", t.path());
    t.add("TE.CL: a request inside a chunk, Content-Length 0", N1, |p| {
        format!(
            "POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        )
    })
    .bodies(&[&inner]);
    t.add("TE.TE: `Transfer-Encoding: xchunked`", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello")
    });
    t.add("TE.TE: `Transfer-Encoding : chunked` (space before colon)", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n")
    });
    t.add("TE.TE: `Transfer-Encoding:\\tchunked` (valid OWS) + Content-Length", N1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\nG")
    })
    .bodies(&[""]);
    t.add("TE.TE: `Transfer-Encoding: chunked, identity`", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    });
    t.add("TE.TE: two TE headers, the last one bogus", Rejected, |p| {
        format!(
            "POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n\r\n0\r\n\r\n"
        )
    });
    t.add("TE.TE: two TE headers, bogus then chunked", Either, |p| {
        format!(
            "POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: cow\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
    });
    t.add("TE.TE: `Transfer-encoding: cow`", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-encoding: cow\r\n\r\nhello")
    });
    t.add("TE.TE: obs-folded Transfer-Encoding", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n")
    });
    t.add("TE.TE: `Transfer-Encoding: \\x0bchunked`", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n")
    });
    t.add("TE: `chunked, chunked` in one header", Either, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    });
    t.add("TE: two `Transfer-Encoding: chunked` headers", Either, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    });
    t.add("HTTP/1.0 with Transfer-Encoding", Rejected, |p| {
        format!("POST {p} HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    });

    // Content-Length values.
    t.add("CL: duplicate, same value", N1, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
    })
    .bodies(&["hello"]);
    t.add("CL: duplicate, different values", Rejected, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
    });
    t.add("CL: `5, 5` (list of one value)", Either, |p| {
        format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello")
    });
    for (name, value) in [
        ("CL: `+5`", "+5"),
        ("CL: `-1`", "-1"),
        ("CL: `0x5`", "0x5"),
        ("CL: 20-digit overflow", "99999999999999999999"),
        ("CL: trailing garbage `5abc`", "5abc"),
        ("CL: empty value", ""),
    ] {
        t.add(name, Rejected, |p| {
            format!("POST {p} HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nhello")
        });
    }

    // Line endings, bytes and header syntax.
    t.add("bare LF line endings (re-serialised with CRLF)", N1, |p| {
        format!("GET {p} HTTP/1.1\nHost: t\n\n")
    })
    .bodies(&[""]);
    t.add("bare CR ending the request line", Rejected, |p| {
        format!("GET {p} HTTP/1.1\rHost: t\r\n\r\n")
    });
    t.add("bare CR inside a header value", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n")
    });
    t.add("NUL in a header value", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n")
    });
    t.add("NUL in a header name", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-\0A: b\r\n\r\n")
    });
    t.add("control char 0x01 in a header value", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n")
    });
    t.add("DEL 0x7f in a header value", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n")
    });
    t.add("space before the colon", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-Foo : bar\r\n\r\n")
    });
    t.add("`(` in a header name", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX(Foo): bar\r\n\r\n")
    });
    t.add("obs-fold continuation line", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-Foo: a\r\n  b\r\n\r\n")
    });
    t.add("whitespace-led line before the first header", Either, |p| {
        format!("GET {p} HTTP/1.1\r\n X-Junk: y\r\nHost: t\r\n\r\n")
    });

    // The request line.
    t.add("two spaces in the request line", Either, |p| {
        format!("GET  {p} HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("tab in the request line", Either, |p| {
        format!("GET\t{p} HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("lowercase `http/1.1`", Rejected, |p| format!("GET {p} http/1.1\r\nHost: t\r\n\r\n"));
    t.add("`HTTP/2.0` on the request line", Rejected, |p| {
        format!("GET {p} HTTP/2.0\r\nHost: t\r\n\r\n")
    });
    t.add("HTTP/0.9 style `GET /`", Rejected, |p| format!("GET {p}\r\n\r\n"));
    t.add("absolute-form URI", N1, |p| format!("GET http://t{p} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .bodies(&[""]);
    t.add("method with a slash `GE/T`", Rejected, |p| {
        format!("GE/T {p} HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("space inside the URI", Rejected, |p| {
        format!("GET {p} b HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("URI with a `#fragment`", Either, |p| {
        format!("GET {p}#frag HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("URI with raw UTF-8", Either, |p| {
        format!("GET {p}/\u{e9}t\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("empty line before the request line", Either, |p| {
        format!("\r\nGET {p} HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    t.add("Host missing on HTTP/1.1", Either, |p| format!("GET {p} HTTP/1.1\r\n\r\n"));
    t.add("two Host headers", Either, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    });

    // Chunked framing.
    let chunked = |p: &str, body: &str| format!("POST {p} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
    t.add("chunk size `zz`", Rejected, |p| chunked(p, "zz\r\nhello\r\n0\r\n\r\n"));
    t.add("chunk size overflow (18 hex digits)", Rejected, |p| {
        chunked(p, "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n")
    });
    t.add("chunk extension", N1, |p| chunked(p, "5;name=value\r\nhello\r\n0\r\n\r\n"))
        .bodies(&["hello"]);
    t.add("chunk data not followed by CRLF", Either, |p| chunked(p, "5\r\nhello0\r\n\r\n"));
    t.add("last chunk without its final CRLF, then a request", Either, |p| {
        chunked(p, &format!("5\r\nhello\r\n0\r\nGET {p}/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"))
    });
    t.add("chunk-size line ended by a bare LF", Either, |p| {
        chunked(p, "5\nhello\r\n0\r\n\r\n")
    });
    t.add("chunked with trailer fields", N1, |p| {
        chunked(p, "5\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n")
    })
    .bodies(&["hello"]);

    // Sizes (tune.bufsize is 16384).
    t.add("one header over 16384 bytes", Rejected, |p| {
        format!("GET {p} HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(17_000))
    });
    t.add("200 headers, 22 KB in all", Rejected, |p| {
        let fill: String = (0..200).map(|i| format!("X-Fill-{i:03}: {}\r\n", "b".repeat(96))).collect();
        format!("GET {p} HTTP/1.1\r\nHost: t\r\n{fill}\r\n")
    });
    t.add("150 small headers", Either, |p| {
        let fill: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET {p} HTTP/1.1\r\nHost: t\r\n{fill}\r\n")
    });
    t.add("70 KB URI", Rejected, |p| {
        format!("GET {p}/{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000))
    });

    t.0
}

// ---------------------------------------------------------------------------
// Running and judging
// ---------------------------------------------------------------------------

struct Run {
    client: ClientView,
    /// Index of the first backend event at or after this case's start.
    first_event: usize,
    /// Bytes the backend received while the case ran (and settled).
    bytes: usize,
    took: Duration,
}

type Req = (String, String);

/// Multiset difference: (in `a` only, in `b` only).
fn diff(a: &[Req], b: &[Req]) -> (Vec<Req>, Vec<Req>) {
    let mut count: BTreeMap<&Req, i64> = BTreeMap::new();
    for r in a {
        *count.entry(r).or_insert(0) += 1;
    }
    for r in b {
        *count.entry(r).or_insert(0) -= 1;
    }
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    for (r, n) in count {
        for _ in 0..n.max(0) {
            only_a.push(r.clone());
        }
        for _ in 0..(-n).max(0) {
            only_b.push(r.clone());
        }
    }
    (only_a, only_b)
}

fn seen_req(s: &Seen) -> Req {
    (s.method.clone(), norm_uri(&s.uri))
}

#[test]
fn smuggling_and_malformed_requests_never_desync_lbd_and_the_server() {
    let syslog = Syslog::start();
    let logs = LogDrain::start(&syslog);
    let backend = Backend::start();
    let port = free_port();
    let _lbd = Lbd::start(&lbd_config(port, syslog.port(), backend.port));
    let addr = format!("127.0.0.1:{port}");
    let cases = table();
    assert!(cases.len() >= 45, "only {} cases", cases.len());

    let mut runs = Vec::new();
    for case in &cases {
        let (first_event, bytes_before) = backend.snapshot();
        let started = Instant::now();
        let client = run_client(&addr, &case.send, case.expect);
        backend.settle();
        let (_, bytes_after) = backend.snapshot();
        runs.push(Run {
            client,
            first_event,
            bytes: bytes_after - bytes_before,
            took: started.elapsed(),
        });
    }
    let lines = logs.settled();
    let events = backend.events();

    // Backend events go to the case their URI names, else to the case that was
    // running when they arrived.
    let window_of = |e: usize| runs.iter().rposition(|r| r.first_event <= e).unwrap_or(0);
    let tagged = |uri: &str| tag_of(&norm_uri(uri)).filter(|t| (1..=cases.len()).contains(t)).map(|t| t - 1);
    let mut owned: Vec<Vec<&Seen>> = vec![Vec::new(); cases.len()];
    let mut untagged_seen: Vec<Vec<Req>> = vec![Vec::new(); cases.len()];
    let mut unparseable: Vec<Vec<String>> = vec![Vec::new(); cases.len()];
    for (e, ev) in events.iter().enumerate() {
        match ev {
            Event::Request(seen) => match tagged(&seen.uri) {
                Some(i) => owned[i].push(seen),
                None => {
                    let i = window_of(e);
                    owned[i].push(seen);
                    untagged_seen[i].push(seen_req(seen));
                }
            },
            Event::Unparseable { conn, what } => unparseable[window_of(e)].push(format!(
                "backend conn {conn} could not parse what lbd sent: {what}; its last bytes: {}",
                backend.raw_tail(*conn, 300)
            )),
        }
    }
    // Log lines go to the case their URI names.
    let parsed: Vec<LogLine> = lines.iter().filter_map(|l| parse_log(l)).collect();
    let mut logged: Vec<Vec<&LogLine>> = vec![Vec::new(); cases.len()];
    let mut untagged_logged: Vec<Req> = Vec::new();
    for l in &parsed {
        match l.request.as_ref().and_then(|(_, uri)| tagged(uri)) {
            Some(i) => logged[i].push(l),
            None => {
                if let Some(r) = l.forwarded() {
                    untagged_logged.push(r.clone());
                }
            }
        }
    }
    let partials = backend.partials();
    let rejection_lines = parsed.iter().filter(|l| l.server == "<NOSRV>").count();
    let badreq_lines = parsed.iter().filter(|l| l.request.is_none() && l.line.contains("<BADREQ>")).count();

    let mut report = String::new();
    let mut summary = String::new();
    let mut rejected_outcomes = 0;
    for (i, (case, run)) in cases.iter().zip(&runs).enumerate() {
        let n = i + 1;
        let c = &run.client;
        let mut fail: Vec<String> = unparseable[i].clone();
        let seen = &owned[i];
        for s in seen {
            for v in &s.violations {
                fail.push(format!("lbd forwarded {} {} with {v}", s.method, cut(&s.uri)));
            }
        }
        // The invariant: what the backend saw (tagged for this case) is what lbd logged with a server.
        let seen_tagged: Vec<Req> = seen.iter().filter(|s| tagged(&s.uri) == Some(i)).map(|s| seen_req(s)).collect();
        let logged_fwd: Vec<Req> = logged[i].iter().filter_map(|l| l.forwarded().cloned()).collect();
        let (not_logged, not_seen) = diff(&seen_tagged, &logged_fwd);
        for (m, u) in not_logged {
            fail.push(format!("the backend got `{m} {}` but lbd never logged it with a server", cut(&u)));
        }
        for (m, u) in not_seen {
            fail.push(format!(
                "lbd logged `{m} {}` as sent to a server, but the backend never got it",
                cut(&u)
            ));
        }
        let (extra, _) = diff(&untagged_seen[i], &untagged_logged);
        for (m, u) in extra {
            fail.push(format!("the backend got `{m} {}` (no case tag), which lbd never logged", cut(&u)));
        }
        if let Some(g) = &c.garbage {
            fail.push(format!("the client got bytes that are not HTTP: {g}"));
        }
        let all_200 = |k: usize| c.statuses.len() >= k && c.statuses[..k].iter().all(|s| *s == 200);
        let check_bodies = |fail: &mut Vec<String>| {
            if let Some(want) = &case.bodies {
                let got: Vec<Vec<u8>> = seen.iter().map(|s| s.body.clone()).collect();
                if &got != want || seen.iter().any(|s| !s.body_complete) {
                    let show_all = |v: &[Vec<u8>]| v.iter().map(|b| show(b, 80)).collect::<Vec<_>>().join(", ");
                    fail.push(format!("bodies at the backend [{}], expected [{}]", show_all(&got), show_all(want)));
                }
            }
        };
        match case.expect {
            Expect::Rejected => {
                if !seen.is_empty() {
                    fail.push(format!("expected a rejection, but the backend got {} request(s)", seen.len()));
                }
                if run.bytes != 0 {
                    fail.push(format!("expected a rejection, but the backend got {} bytes", run.bytes));
                }
                match c.statuses.first() {
                    Some(code) if !is_rejection_status(*code) => fail.push(format!("expected a rejection, got status {code}")),
                    _ => {}
                }
                if c.statuses.iter().any(|s| (200..300).contains(s)) {
                    fail.push(format!("expected a rejection, got statuses {:?}", c.statuses));
                }
                if !c.closed {
                    fail.push("expected the connection to be closed after the rejection".to_owned());
                }
            }
            Expect::Normalised { requests } => {
                if seen.len() != requests {
                    fail.push(format!("expected {requests} request(s) at the backend, got {}", seen.len()));
                }
                if !all_200(requests) {
                    fail.push(format!("expected {requests} 200 response(s) first, got {:?}", c.statuses));
                }
                check_bodies(&mut fail);
            }
            Expect::Forwarded { requests } => {
                if seen.len() != requests {
                    fail.push(format!("expected {requests} request(s) at the backend, got {}", seen.len()));
                }
                if c.statuses.len() != requests || !all_200(requests) {
                    fail.push(format!("expected exactly {requests} 200 response(s), got {:?}", c.statuses));
                }
                check_bodies(&mut fail);
            }
            Expect::Either => {}
        }
        let rejected = seen.is_empty() && (c.statuses.first().is_some_and(|s| *s >= 400) || (c.statuses.is_empty() && c.closed));
        if rejected {
            rejected_outcomes += 1;
        }
        let outcome = format!(
            "statuses {:?}{}{}, backend {} request(s) {} byte(s), {} ms",
            c.statuses,
            if c.closed { " closed" } else { "" },
            if c.timed_out { " TIMED OUT" } else { "" },
            seen.len(),
            run.bytes,
            run.took.as_millis()
        );
        summary.push_str(&format!(
            "#{n:02} {:<28} {:<60} {outcome}\n",
            format!("{:?}", case.expect),
            case.name
        ));
        if !fail.is_empty() {
            report.push_str(&format!("\n#{n} {} (expected {:?}): {outcome}\n", case.name, case.expect));
            for f in &fail {
                report.push_str(&format!("  - {f}\n"));
            }
            if let Some(e) = &c.write_error {
                report.push_str(&format!("  client write error: {e}\n"));
            }
            for s in seen {
                let hs: Vec<String> = s.headers.iter().map(|(k, v)| format!("{k}: {}", show(v, 60))).collect();
                report.push_str(&format!(
                    "  backend conn {}: {} {} [{}] body {}{}\n",
                    s.conn,
                    s.method,
                    cut(&s.uri),
                    hs.join("; "),
                    show(&s.body, 80),
                    if s.body_complete { "" } else { " (cut)" }
                ));
            }
            for l in &logged[i] {
                report.push_str(&format!("  log: {}\n", l.line));
            }
        }
    }
    // Lines lbd logged as forwarded that no case's backend traffic accounts for.
    let all_untagged_seen: Vec<Req> = untagged_seen.iter().flatten().cloned().collect();
    let (_, orphans) = diff(&all_untagged_seen, &untagged_logged);
    for (m, u) in orphans {
        report.push_str(&format!(
            "\nlbd logged `{m} {}` (no case tag) as sent to a server, but the backend never got it\n",
            cut(&u)
        ));
    }
    for (conn, bytes) in partials {
        report.push_str(&format!(
            "\nbackend conn {conn} was left holding an incomplete request head from lbd: {}\n",
            show(&bytes, 200)
        ));
    }
    // Every rejection is logged: `<BADREQ>` for what the parser refused, `<NOSRV>` in general.
    if rejection_lines < rejected_outcomes {
        report.push_str(&format!(
            "\n{rejected_outcomes} cases ended in a rejection but lbd logged only {rejection_lines} <NOSRV> line(s) \
             ({badreq_lines} of them <BADREQ>)\n"
        ));
    }
    eprintln!("{} cases:\n{summary}", cases.len());
    assert!(
        report.is_empty(),
        "request smuggling / malformed input suite failed:\n{report}\nall cases:\n{summary}\nlbd log:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_slowloris_head_gets_408_and_never_reaches_the_server() {
    let syslog = Syslog::start();
    let logs = LogDrain::start(&syslog);
    let backend = Backend::start();
    let port = free_port();
    let _lbd = Lbd::start(&lbd_config(port, syslog.port(), backend.port));
    let head = b"GET /slow HTTP/1.1\r\nHost: t\r\nUser-Agent: one byte every 300 ms\r\n\r\n";
    let limit = HTTP_REQUEST_TIMEOUT + Duration::from_secs(2);
    let mut s = connect(&format!("127.0.0.1:{port}"));
    s.set_nodelay(true).ok();
    let start = Instant::now();
    let (mut sent, mut got, mut first_byte_at, mut closed) = (0, Vec::new(), None, false);
    let mut chunk = [0u8; 4096];
    // Bounded by `limit` and a second of grace; the head alone would need ~20 s.
    while start.elapsed() < limit + Duration::from_secs(1) {
        if got.is_empty() && sent < head.len() {
            let _ = s.write_all(&head[sent..sent + 1]);
            sent += 1;
        }
        s.set_read_timeout(Some(Duration::from_millis(300))).ok();
        match s.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                first_byte_at.get_or_insert(start.elapsed());
                got.extend_from_slice(&chunk[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(sent < head.len(), "the whole head went out: the test did not stay slow");
    let statuses = parse_responses(&got, closed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        statuses.first(),
        Some(&408),
        "expected a 408 within {limit:?}; got {}",
        show(&got, 300)
    );
    let at = first_byte_at.expect("a response");
    assert!(at <= limit, "408 after {at:?}, more than {limit:?}");
    assert!(
        at >= Duration::from_millis(1500),
        "408 after only {at:?}: timeout http-request is {HTTP_REQUEST_TIMEOUT:?}"
    );
    assert!(closed, "the connection stays open after the 408");
    backend.settle();
    assert_eq!(backend.snapshot(), (0, 0), "the backend got something: {:?}", backend.events());
    let lines = logs.settled();
    let forwarded: Vec<&String> = lines
        .iter()
        .filter(|l| parse_log(l).is_some_and(|p| p.forwarded().is_some()))
        .collect();
    assert!(forwarded.is_empty(), "lbd logged a forwarded request: {forwarded:#?}");
}
