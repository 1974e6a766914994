//! Traffic logs to syslog targets, in HAProxy's formats. Sending never blocks
//! the data path: each target has a bounded queue, and a line that does not fit
//! is dropped and counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::config::addr;
use crate::config::model::{LogTarget, FACILITIES};

/// Lines waiting for one target; past this, lines are dropped (a slow or dead
/// syslog must not slow traffic).
const QUEUE_LINES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    fn from_name(n: &str) -> Option<Level> {
        Some(match n {
            "emerg" => Level::Emerg,
            "alert" => Level::Alert,
            "crit" => Level::Crit,
            "err" => Level::Err,
            "warning" => Level::Warning,
            "notice" => Level::Notice,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
}

/// The syslog facility number: the position in the standard list.
fn facility_code(name: &str) -> u8 {
    FACILITIES.iter().position(|f| *f == name).map_or(16, |i| i as u8)
}

/// One log destination with its queue.
pub struct Sink {
    facility: u8,
    max_level: Level,
    format: String,
    tx: mpsc::Sender<Vec<u8>>,
    pub dropped: AtomicU64,
}

enum Dest {
    Unix(String),
    Udp(SocketAddr),
    Stdout,
    Stderr,
}

fn dest_of(address: &str) -> Option<Dest> {
    match address {
        "stdout" => return Some(Dest::Stdout),
        "stderr" => return Some(Dest::Stderr),
        _ => {}
    }
    if let Some(path) = address.strip_prefix("unix@") {
        return Some(Dest::Unix(path.to_owned()));
    }
    if address.starts_with('/') {
        return Some(Dest::Unix(address.to_owned()));
    }
    let text = address
        .strip_prefix("udp@")
        .or_else(|| address.strip_prefix("udp4@"))
        .unwrap_or(address);
    let with_port = if text.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        text.to_owned()
    } else {
        format!("{text}:514")
    };
    match addr::parse_listen(&with_port, None) {
        Ok(v) => match v.first() {
            Some(addr::ListenAddr::Inet(sa)) => Some(Dest::Udp(*sa)),
            _ => None,
        },
        Err(_) => None,
    }
}

async fn writer(dest: Dest, mut rx: mpsc::Receiver<Vec<u8>>) {
    match dest {
        Dest::Unix(path) => {
            let Ok(sock) = tokio::net::UnixDatagram::unbound() else { return };
            while let Some(line) = rx.recv().await {
                // A syslog that is down loses lines; it never stalls traffic.
                let _ = sock.send_to(&line, &path).await;
            }
        }
        Dest::Udp(sa) => {
            let bind: SocketAddr = if sa.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
                return;
            };
            while let Some(line) = rx.recv().await {
                let _ = sock.send_to(&line, sa).await;
            }
        }
        Dest::Stdout | Dest::Stderr => {
            use tokio::io::AsyncWriteExt;
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if matches!(dest, Dest::Stdout) {
                Box::new(tokio::io::stdout())
            } else {
                Box::new(tokio::io::stderr())
            };
            while let Some(mut line) = rx.recv().await {
                line.push(b'\n');
                let _ = out.write_all(&line).await;
            }
        }
    }
}

impl Sink {
    /// Starts the writer task for a target. Must run inside the tokio runtime.
    pub fn start(t: &LogTarget) -> Option<Arc<Sink>> {
        let dest = dest_of(&t.address)?;
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        tokio::spawn(writer(dest, rx));
        Some(Arc::new(Sink {
            facility: facility_code(&t.facility),
            max_level: t.level.as_deref().and_then(Level::from_name).unwrap_or(Level::Debug),
            format: t.format.clone().unwrap_or_else(|| "rfc3164".into()),
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    fn send(&self, level: Level, tag: &str, msg: &str) {
        if level > self.max_level {
            return;
        }
        let pri = u32::from(self.facility) * 8 + level as u32;
        let line = match self.format.as_str() {
            "raw" => msg.to_owned(),
            "rfc5424" => format!("<{pri}>1 {} - {tag} {} - - {msg}", iso_time(now()), std::process::id()),
            "short" => format!("<{}>{msg}", level as u32),
            _ => format!("<{pri}>{} {tag}[{}]: {msg}", syslog_time(now()), std::process::id()),
        };
        if self.tx.try_send(line.into_bytes()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The set of targets a proxy logs to.
#[derive(Clone, Default)]
pub struct Logger {
    sinks: Vec<Arc<Sink>>,
    tag: Arc<str>,
}

impl Logger {
    pub fn new(sinks: Vec<Arc<Sink>>, tag: &str) -> Self {
        Logger {
            sinks,
            tag: Arc::from(tag),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    pub fn log(&self, level: Level, msg: &str) {
        for s in &self.sinks {
            s.send(level, &self.tag, msg);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.sinks.iter().map(|s| s.dropped.load(Ordering::Relaxed)).sum()
    }
}

/// Milliseconds since the epoch.
pub fn now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian, UTC).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

struct Parts {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    ms: u64,
}

fn parts(ms_epoch: u128) -> Parts {
    let ms = (ms_epoch % 1000) as u64;
    let secs = (ms_epoch / 1000) as i64;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u64;
    Parts {
        y,
        mo,
        d,
        h: sod / 3600,
        mi: sod / 60 % 60,
        s: sod % 60,
        ms,
    }
}

/// `Nov 26 14:50:00`, the RFC 3164 timestamp (UTC).
pub fn syslog_time(ms_epoch: u128) -> String {
    let p = parts(ms_epoch);
    format!("{} {:>2} {:02}:{:02}:{:02}", MONTHS[(p.mo - 1) as usize], p.d, p.h, p.mi, p.s)
}

/// `26/Nov/2026:14:50:00.123`, HAProxy's accept date (UTC).
pub fn accept_date(ms_epoch: u128) -> String {
    let p = parts(ms_epoch);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02}.{:03}",
        p.d,
        MONTHS[(p.mo - 1) as usize],
        p.y,
        p.h,
        p.mi,
        p.s,
        p.ms
    )
}

fn iso_time(ms_epoch: u128) -> String {
    let p = parts(ms_epoch);
    format!("{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms)
}

/// A frontend's name in a log line, with `~` after it for a TLS client (HAProxy's `%ft`).
struct Tilde<'a>(&'a str, bool);

impl std::fmt::Display for Tilde<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        if self.1 {
            f.write_str("~")?;
        }
        Ok(())
    }
}

/// Whether a session or a transaction counts as an error, as HAProxy judges it
/// for `option dontlog-normal` (only errors are logged) and `option
/// log-separate-errors` (errors go out at the `err` level): it was
/// redispatched, it ended on anything but a normal end or lbd's own answer
/// (`term0` other than `-` and `L`), it needed retries, or (HTTP) its status
/// was 500 or above.
pub fn is_error(term0: char, retries: u32, redispatched: bool, status: i32) -> bool {
    redispatched || !matches!(term0, '-' | 'L') || (term0 == '-' && retries > 0) || status >= 500
}

/// The level of a log line: `err` for an error under `option log-separate-errors`.
pub fn level_of(error: bool, separate_errors: bool) -> Level {
    if error && separate_errors {
        Level::Err
    } else {
        Level::Info
    }
}

/// A total time or a byte count, `+`-prefixed in a line written early
/// (`option logasap`): the session goes on, and the figure is what it was then.
struct SoFar<T>(T, bool);

impl<T: std::fmt::Display> std::fmt::Display for SoFar<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1 {
            f.write_str("+")?;
        }
        self.0.fmt(f)
    }
}

/// The fields of a TCP log line (HAProxy's `option tcplog`).
pub struct TcpLog<'a> {
    pub client: Option<SocketAddr>,
    pub accept_ms: u128,
    pub frontend: &'a str,
    /// The client came over TLS: the frontend's name gets HAProxy's `~`.
    pub ssl: bool,
    pub backend: &'a str,
    pub server: &'a str,
    /// Time waiting in queues, to connect, and in total (ms); -1 when never reached.
    pub tw: i64,
    pub tc: i64,
    pub tt: i64,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// Two characters: who ended the session, and in which state.
    pub termination: [char; 2],
    pub actconn: u32,
    pub feconn: u32,
    pub beconn: u32,
    pub srv_conn: u32,
    pub retries: u32,
    pub redispatched: bool,
    pub srv_queue: u32,
    pub backend_queue: u32,
    /// Written when the server connection was made (`option logasap`), not at the end.
    pub early: bool,
}

impl TcpLog<'_> {
    /// `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`
    pub fn format(&self) -> String {
        let (ci, cp) = client_fields(self.client);
        let rc = retries_field(self.retries, self.redispatched);
        format!(
            "{ci}:{cp} [{}] {} {}/{} {}/{}/{} {} {}{} {}/{}/{}/{}/{rc} {}/{}",
            accept_date(self.accept_ms),
            Tilde(self.frontend, self.ssl),
            self.backend,
            self.server,
            self.tw,
            self.tc,
            SoFar(self.tt, self.early),
            SoFar(self.bytes, self.early),
            self.termination[0],
            self.termination[1],
            self.actconn,
            self.feconn,
            self.beconn,
            self.srv_conn,
            self.srv_queue,
            self.backend_queue
        )
    }
}

/// The `%rc` field: retries, `+`-prefixed when the last one went to another server.
fn retries_field(retries: u32, redispatched: bool) -> String {
    if redispatched {
        format!("+{retries}")
    } else {
        retries.to_string()
    }
}

/// The client address and port as logs print them.
fn client_fields(client: Option<SocketAddr>) -> (String, String) {
    match client {
        Some(SocketAddr::V4(a)) => (a.ip().to_string(), a.port().to_string()),
        Some(SocketAddr::V6(a)) => match a.ip().to_ipv4_mapped() {
            Some(v4) => (v4.to_string(), a.port().to_string()),
            None => (a.ip().to_string(), a.port().to_string()),
        },
        None => ("unix".to_owned(), "0".to_owned()),
    }
}

/// The fields of an HTTP log line (HAProxy's `option httplog`).
pub struct HttpLog<'a> {
    pub client: Option<SocketAddr>,
    pub accept_ms: u128,
    pub frontend: &'a str,
    /// The client came over TLS: the frontend's name gets HAProxy's `~`.
    pub ssl: bool,
    pub backend: &'a str,
    pub server: &'a str,
    /// Request head read, queue, connect, response head and total active times (ms); -1 when never reached.
    pub t_request: i64,
    pub t_queue: i64,
    pub t_connect: i64,
    pub t_response: i64,
    pub t_active: i64,
    /// Status sent to the client; -1 when none was.
    pub status: i32,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// Four characters: who ended it, in which state, the persistence cookie, the set-cookie.
    pub termination: [char; 4],
    pub actconn: u32,
    pub feconn: u32,
    pub beconn: u32,
    pub srv_conn: u32,
    pub retries: u32,
    pub redispatched: bool,
    /// Captured request headers, in `capture` order.
    pub captures: &'a [String],
    /// Captured response headers, in `capture` order.
    pub res_captures: &'a [String],
    /// `METHOD URI VERSION`, or `<BADREQ>`.
    pub request: &'a str,
    /// `option httplog clf`: the common log format with HAProxy's fields after it.
    pub clf: bool,
    /// Written when the server's response head came (`option logasap`), not at the end.
    pub early: bool,
}

impl HttpLog<'_> {
    /// `%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r`,
    /// or the CLF line of [`HttpLog::format_clf`].
    pub fn format(&self) -> String {
        if self.clf {
            return self.format_clf();
        }
        let (ci, cp) = client_fields(self.client);
        let rc = retries_field(self.retries, self.redispatched);
        let mut captures = String::new();
        for list in [self.captures, self.res_captures] {
            if !list.is_empty() {
                captures.push_str(&format!("{{{}}} ", list.join("|")));
            }
        }
        let t: String = self.termination.iter().collect();
        format!(
            "{ci}:{cp} [{}] {} {}/{} {}/{}/{}/{}/{} {} {} - - {t} {}/{}/{}/{}/{rc} 0/0 {captures}\"{}\"",
            accept_date(self.accept_ms),
            Tilde(self.frontend, self.ssl),
            self.backend,
            self.server,
            self.t_request,
            self.t_queue,
            self.t_connect,
            self.t_response,
            SoFar(self.t_active, self.early),
            self.status,
            SoFar(self.bytes, self.early),
            self.actconn,
            self.feconn,
            self.beconn,
            self.srv_conn,
            self.request
        )
    }

    /// `option httplog clf`: `%{+Q}o %{-Q}ci - - [%trg] %r %ST %B "" "" %cp %ms
    /// %ft %b %s %TR %Tw %Tc %Tr %Ta %tsc %ac %fc %bc %sc %rc %sq %bq %CC %CS
    /// %hrl %hsl`, text fields in double quotes. As in HAProxy, a field that is
    /// empty (no captures) adds no separator of its own.
    pub fn format_clf(&self) -> String {
        let (ci, cp) = client_fields(self.client);
        let p = parts(self.accept_ms);
        let date = format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            p.d,
            MONTHS[(p.mo - 1) as usize],
            p.y,
            p.h,
            p.mi,
            p.s
        );
        let t: String = self.termination.iter().collect();
        let rc = retries_field(self.retries, self.redispatched);
        let quoted = |list: &[String]| list.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" ");
        let mut line = format!(
            "{ci} - - [{date}] \"{}\" {} {} \"\" \"\" {cp} {:03} \"{}\" \"{}\" \"{}\" {} {} {} {} {} {t} {} {} {} {} {rc} 0 0 \"\" \"\" ",
            self.request,
            self.status,
            SoFar(self.bytes, self.early),
            p.ms,
            Tilde(self.frontend, self.ssl),
            self.backend,
            self.server,
            self.t_request,
            self.t_queue,
            self.t_connect,
            self.t_response,
            SoFar(self.t_active, self.early),
            self.actconn,
            self.feconn,
            self.beconn,
            self.srv_conn,
        );
        if !self.captures.is_empty() {
            line.push_str(&quoted(self.captures));
            line.push(' ');
        }
        line.push_str(&quoted(self.res_captures));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        // 2026-11-26 14:50:00.123 UTC
        let ms = 1_795_704_600_123u128;
        assert_eq!(accept_date(ms), "26/Nov/2026:14:50:00.123");
        assert_eq!(syslog_time(ms), "Nov 26 14:50:00");
        assert_eq!(accept_date(0), "01/Jan/1970:00:00:00.000");
    }

    #[test]
    fn clf_line_quotes_text_and_skips_empty_capture_lists() {
        let req = ["mail.xlc.local".to_owned()];
        let res = ["nginx".to_owned()];
        let line = |captures: &[String], res_captures: &[String]| {
            HttpLog {
                accept_ms: 1_795_704_600_023,
                ssl: true,
                termination: ['-', '-', '-', '-'],
                retries: 1,
                redispatched: true,
                captures,
                res_captures,
                clf: true,
                ..sample()
            }
            .format()
        };
        let head = "10.0.0.5 - - [26/Nov/2026:14:50:00 +0000] \"GET /owa/ HTTP/1.1\" 200 512 \"\" \"\" 34567 023 \"ft_web~\" \"bk_owa_ecp\" \"CAS1\" 0 0 1 2 3 ---- 1 1 1 1 +1 0 0 \"\" \"\" ";
        assert_eq!(line(&[], &[]), head);
        assert_eq!(line(&req, &[]), format!("{head}\"mail.xlc.local\" "));
        assert_eq!(line(&[], &res), format!("{head}\"nginx\""));
        assert_eq!(line(&req, &res), format!("{head}\"mail.xlc.local\" \"nginx\""));
    }

    /// A line of the seed's OWA backend; tests change what they look at.
    fn sample() -> HttpLog<'static> {
        HttpLog {
            client: Some("10.0.0.5:34567".parse().unwrap()),
            accept_ms: 1_795_704_600_123,
            frontend: "ft_web",
            ssl: false,
            backend: "bk_owa_ecp",
            server: "CAS1",
            t_request: 0,
            t_queue: 0,
            t_connect: 1,
            t_response: 2,
            t_active: 3,
            status: 200,
            bytes: 512,
            termination: ['-', '-', 'N', 'I'],
            actconn: 1,
            feconn: 1,
            beconn: 1,
            srv_conn: 1,
            retries: 0,
            redispatched: false,
            captures: &[],
            res_captures: &[],
            request: "GET /owa/ HTTP/1.1",
            clf: false,
            early: false,
        }
    }

    #[test]
    fn httplog_line_has_haproxy_fields() {
        let host = ["mail.xlc.local".to_owned()];
        let l = HttpLog {
            captures: &host,
            ..sample()
        };
        assert_eq!(
            l.format(),
            "10.0.0.5:34567 [26/Nov/2026:14:50:00.123] ft_web bk_owa_ecp/CAS1 0/0/1/2/3 200 512 - - --NI 1/1/1/1/0 0/0 {mail.xlc.local} \"GET /owa/ HTTP/1.1\""
        );
        // Over TLS, HAProxy writes the frontend's name with a `~`.
        let tls = HttpLog { ssl: true, ..l };
        assert!(tls.format().contains("] ft_web~ bk_owa_ecp/CAS1 "), "{}", tls.format());
        // `option logasap`: written when the response head came; Ta and the bytes are so far.
        let early = HttpLog { early: true, ..sample() };
        assert!(early.format().contains(" 0/0/1/2/+3 200 +512 - - --NI "), "{}", early.format());
        let clf = HttpLog { clf: true, ..early };
        assert!(clf.format().contains("\" 200 +512 \"\""), "{}", clf.format());
        assert!(clf.format().contains(" 0 0 1 2 +3 --NI "), "{}", clf.format());
    }

    #[test]
    fn tcplog_line_has_haproxy_fields() {
        let l = TcpLog {
            client: Some("10.0.0.5:34567".parse().unwrap()),
            accept_ms: 1_795_704_600_123,
            frontend: "ft",
            ssl: false,
            backend: "bk",
            server: "s1",
            tw: 0,
            tc: 1,
            tt: 5007,
            bytes: 212,
            termination: ['-', '-'],
            actconn: 1,
            feconn: 1,
            beconn: 0,
            srv_conn: 0,
            retries: 0,
            redispatched: false,
            srv_queue: 0,
            backend_queue: 0,
            early: false,
        };
        assert_eq!(
            l.format(),
            "10.0.0.5:34567 [26/Nov/2026:14:50:00.123] ft bk/s1 0/1/5007 212 -- 1/1/0/0/0 0/0"
        );
        // `option logasap`: written at the connect, the total time and the bytes are so far.
        let early = TcpLog {
            early: true,
            tt: 1,
            bytes: 0,
            ..l
        };
        assert_eq!(
            early.format(),
            "10.0.0.5:34567 [26/Nov/2026:14:50:00.123] ft bk/s1 0/1/+1 +0 -- 1/1/0/0/0 0/0"
        );
    }
}
