//! Health checks. Each checked server has its own task, so a slow server never
//! delays another's checks, and checks never run on the connection path.
//!
//! State machine (HAProxy's): a health counter from 0 to `rise + fall - 1`; the
//! server is up while the counter is at least `rise`. A server starts up with the
//! counter at `rise`, so the first failed check takes it down. While up, a success
//! raises the counter to the maximum; a failure lowers it, and going below `rise`
//! marks the server down (counter 0). While down, successes raise it, and reaching
//! `rise` marks it up (counter at the maximum). Intervals: `inter` when stable,
//! `fastinter` while changing state, `downinter` while down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::log::Level;
use super::snapshot::{BackendRt, ServerRt, Snapshot};
use crate::config::model::{CheckKind, ExpectMatch, HttpCheckSend, TcpCheckStep, TcpExpect};

/// Largest check response read; enough for a status line, headers and a small body.
const MAX_CHECK_RESPONSE: usize = 16 * 1024;

/// What a check found.
pub struct Outcome {
    pub ok: bool,
    /// `Layer4 connection problem`, `Layer7 wrong status`, ...
    pub reason: String,
    /// Detail: `Connection refused`, `code: 503`.
    pub info: String,
    pub duration: Duration,
}

/// Spawns, on the checks' runtime, one task per checked server of `snapshot`.
/// The tasks stop when the generation moves on (a reload); the next snapshot's
/// tasks continue from the same shared health state.
pub fn spawn_for(handle: &tokio::runtime::Handle, snapshot: &Arc<Snapshot>, generation: u64, gen_rx: tokio::sync::watch::Receiver<u64>) {
    for backend in snapshot.backends.values() {
        for server in &backend.servers {
            if server.conf.params.check && !server.conf.params.disabled {
                let (snap, be, srv) = (Arc::clone(snapshot), Arc::clone(backend), Arc::clone(server));
                let mut rx = gen_rx.clone();
                handle.spawn(async move {
                    tokio::select! {
                        _ = run(snap, be, srv) => {}
                        _ = rx.wait_for(|g| *g != generation) => {}
                    }
                });
            }
        }
    }
}

fn interval(server: &ServerRt, health: u32) -> Duration {
    let p = &server.conf.params;
    let max = p.rise + p.fall - 1;
    if health == 0 {
        p.downinter.unwrap_or(p.inter)
    } else if health < max && health != p.rise {
        p.fastinter.unwrap_or(p.inter)
    } else {
        p.inter
    }
}

async fn run(snapshot: Arc<Snapshot>, backend: Arc<BackendRt>, server: Arc<ServerRt>) {
    // Spread the first checks over the first interval so thousands of servers do
    // not all connect in the same millisecond.
    let first = server.conf.params.inter.as_millis() as u64;
    let spread = (u64::from(server.conf.id) * 7919) % first.max(1);
    tokio::time::sleep(Duration::from_millis(spread)).await;
    loop {
        if server.checks_paused.load(std::sync::atomic::Ordering::Acquire) {
            tokio::time::sleep(server.conf.params.inter).await;
            continue;
        }
        let outcome = check_once(&backend, &server).await;
        apply(&snapshot, &backend, &server, &outcome);
        let health = server.health.lock().map(|h| h.value).unwrap_or(0);
        tokio::time::sleep(interval(&server, health)).await;
    }
}

/// Records a result and moves the server up or down as the counter says.
pub fn apply(snapshot: &Snapshot, backend: &BackendRt, server: &ServerRt, outcome: &Outcome) {
    let p = &server.conf.params;
    let max = p.rise + p.fall - 1;
    let was_up = server.is_up_by_checks();
    let Ok(mut h) = server.health.lock() else { return };
    h.last_code = outcome.info.strip_prefix("code: ").and_then(|c| c.parse().ok());
    h.last_duration_ms = outcome.duration.as_millis() as u64;
    if !outcome.ok {
        server.checks_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let status = if outcome.ok {
        format!("{} {}", outcome.reason, outcome.info)
    } else {
        format!("{}: {}", outcome.reason, outcome.info)
    };
    // `option log-health-checks`: as HAProxy, a check is logged when its result
    // differs from the last one's, or when the server was between fully up and
    // fully down (each step toward a change of state shows).
    let before = h.value;
    let log_it = backend.conf.options.log_health_checks && (status != h.last_status || (before > 0 && before < max));
    h.last_status = status;
    let mut change = None;
    if was_up {
        // `fall` counts consecutive failures: a success in between starts over.
        if outcome.ok {
            h.value = max;
        } else if h.value > p.rise {
            h.value -= 1;
        } else {
            h.value = 0;
            change = Some(false);
        }
    } else if outcome.ok {
        h.value += 1;
        if h.value >= p.rise {
            h.value = max;
            change = Some(true);
        }
    } else {
        h.value = 0;
    }
    let value = h.value;
    drop(h);
    if log_it {
        let up = change.unwrap_or(was_up);
        let (n, of, state) = if up {
            (value + 1 - p.rise, p.fall, "UP")
        } else {
            (value, p.rise, "DOWN")
        };
        let msg = format!(
            "Health check for {}server {}/{} {}{}, status: {n}/{of} {state}.",
            if p.backup { "backup " } else { "" },
            backend.name(),
            server.name(),
            if outcome.ok { "succeeded" } else { "failed" },
            check_details(outcome),
        );
        snapshot.logger.log(Level::Notice, &msg);
        eprintln!("[NOTICE] {msg}");
    }
    if let Some(up) = change {
        set_state(snapshot, backend, server, up, outcome);
    }
}

/// `, reason: R[, code: N][, info: "I"], check duration: Dms`, as HAProxy
/// words a check's result.
fn check_details(outcome: &Outcome) -> String {
    let info = match outcome.info.strip_prefix("code: ") {
        Some(code) => format!(", code: {code}"),
        None if outcome.info.is_empty() => String::new(),
        None => format!(", info: \"{}\"", outcome.info),
    };
    format!(
        ", reason: {}{info}, check duration: {}ms",
        outcome.reason,
        outcome.duration.as_millis()
    )
}

/// Marks a server up or down, logs it the HAProxy way and applies
/// `on-marked-down` / `on-marked-up`.
pub fn set_state(snapshot: &Snapshot, backend: &BackendRt, server: &ServerRt, up: bool, outcome: &Outcome) {
    server.set_up(up);
    let (act, bck) = backend.active_and_backup_up();
    let sessions = server.cur_conns.load(std::sync::atomic::Ordering::Relaxed);
    // With `option log-health-checks` the check's own line gave the reason.
    let details = if backend.conf.options.log_health_checks {
        String::new()
    } else {
        check_details(outcome)
    };
    let msg = if up {
        format!(
            "{} {}/{} is UP{details}. {act} active and {bck} backup servers online. 0 sessions requeued, 0 total in queue.",
            if server.conf.params.backup { "Backup Server" } else { "Server" },
            backend.name(),
            server.name(),
        )
    } else {
        format!(
            "{} {}/{} is DOWN{details}. {act} active and {bck} backup servers left. {sessions} sessions active, 0 requeued, 0 remaining in queue.",
            if server.conf.params.backup { "Backup Server" } else { "Server" },
            backend.name(),
            server.name(),
        )
    };
    // A server going down is an alert, as in HAProxy, however many are left.
    let level = if up { Level::Notice } else { Level::Alert };
    snapshot.logger.log(level, &msg);
    eprintln!("[{}] {msg}", if up { "NOTICE" } else { "WARNING" });
    if !up && act + bck == 0 {
        let m = format!("backend {} has no server available!", backend.name());
        snapshot.logger.log(Level::Emerg, &m);
        eprintln!("[ALERT] {m}");
    }
    if !up && server.conf.params.on_marked_down_shutdown {
        server.shutdown_sessions();
    }
    if up && server.conf.params.on_marked_up_shutdown_backup && !server.conf.params.backup {
        for s in backend.servers.iter().filter(|s| s.conf.params.backup) {
            s.shutdown_sessions();
        }
    }
}

fn check_target(server: &ServerRt) -> Option<SocketAddr> {
    let p = &server.conf.params;
    let base = server.target(p.check_port.unwrap_or(0))?;
    let ip = p.check_addr.unwrap_or(base.ip());
    let port = p.check_port.unwrap_or(base.port());
    if port == 0 {
        return None;
    }
    Some(SocketAddr::new(ip, port))
}

/// Runs one check against a server.
pub async fn check_once(backend: &BackendRt, server: &ServerRt) -> Outcome {
    let started = Instant::now();
    let conf = &backend.conf;
    let inter = server.conf.params.inter;
    let connect_timeout = conf.timeouts.connect.map_or(inter, |c| c.min(inter));
    let read_timeout = conf.timeouts.check.unwrap_or(inter);
    let fail = |reason: &str, info: String| Outcome {
        ok: false,
        reason: reason.into(),
        info,
        duration: started.elapsed(),
    };
    let Some(target) = check_target(server) else {
        return fail("Layer4 connection problem", "no port to check".into());
    };
    // Over TLS with `check-ssl`, or with `ssl` when the check goes to the traffic port itself (HAProxy's rule).
    let p = &server.conf.params;
    let tls = (p.check_ssl || (p.ssl && p.check_port.is_none() && p.check_addr.is_none()))
        .then(|| p.tls.0.clone())
        .flatten()
        .map(|cfg| {
            let sni = p
                .sni
                .as_deref()
                .and_then(|e| e.strip_prefix("str(")?.strip_suffix(')'))
                .map(str::to_owned);
            (cfg, sni)
        });
    if matches!(conf.check, CheckKind::TcpCheck) && !conf.tcp_checks.is_empty() {
        return tcp_check(&conf.tcp_checks, target, tls, connect_timeout, read_timeout, started).await;
    }
    let tls_check = tls.is_some();
    let connecting = super::tls_io::connect_server(super::tls_io::Target::Inet(target), None, tls, Default::default());
    let mut stream = match tokio::time::timeout(connect_timeout, connecting).await {
        Err(_) => return fail("Layer4 timeout", String::new()),
        Ok(Err(e)) if tls_check && e.kind() == std::io::ErrorKind::InvalidData => return fail("Layer6 invalid response", e.to_string()),
        Ok(Err(e)) => return fail("Layer4 connection problem", io_info(&e)),
        Ok(Ok(s)) => s,
    };
    let http = match &conf.check {
        CheckKind::Http(h) => Some(request_bytes(h, conf.http_check_send.as_ref())),
        _ => None,
    };
    let Some(request) = http else {
        return Outcome {
            ok: true,
            reason: "Layer4 check passed".into(),
            info: String::new(),
            duration: started.elapsed(),
        };
    };
    let exchange = async {
        stream.write_all(&request).await?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() >= MAX_CHECK_RESPONSE {
                break;
            }
            // Without string matchers the status line and headers are enough.
            if backend
                .conf
                .http_expects
                .iter()
                .all(|e| matches!(e.matcher, ExpectMatch::Status(_) | ExpectMatch::RStatus(_)))
                && buf.windows(4).any(|w| w == b"\r\n\r\n")
            {
                break;
            }
        }
        Ok::<Vec<u8>, std::io::Error>(buf)
    };
    let response = match tokio::time::timeout(read_timeout, exchange).await {
        Err(_) => return fail("Layer7 timeout", String::new()),
        Ok(Err(e)) => return fail("Layer7 invalid response", io_info(&e)),
        Ok(Ok(r)) => r,
    };
    evaluate_http(backend, &response, started)
}

/// Runs a `tcp-check` script: an implicit connect first unless the script
/// starts with one; each `expect` looks at what came since the last `send`,
/// reading until it matches, the server closes, or `timeout check` (else
/// `inter`) runs out; a negated one fails as soon as the pattern shows up.
async fn tcp_check(
    steps: &[TcpCheckStep],
    target: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    connect_timeout: Duration,
    read_timeout: Duration,
    started: Instant,
) -> Outcome {
    let outcome = |ok: bool, reason: &str, info: String| Outcome {
        ok,
        reason: reason.into(),
        info,
        duration: started.elapsed(),
    };
    let io_failed = |reason: &str, e: &std::io::Error, step: usize, what: &str| {
        outcome(false, reason, format!("{} at step {step} of tcp-check ({what})", io_info(e)))
    };
    let implicit = match steps.first() {
        Some(TcpCheckStep::Connect { .. }) => None,
        _ => Some(TcpCheckStep::Connect { port: None, addr: None }),
    };
    let deadline = tokio::time::Instant::now() + read_timeout;
    let mut stream: Option<super::tls_io::Upstream> = None;
    let mut received: Vec<u8> = Vec::new();
    for (n, step) in implicit.iter().chain(steps).enumerate() {
        let step_no = n + usize::from(implicit.is_none());
        match step {
            TcpCheckStep::Connect { port, addr } => {
                let to = SocketAddr::new(addr.unwrap_or(target.ip()), port.unwrap_or(target.port()));
                let connecting = super::tls_io::connect_server(super::tls_io::Target::Inet(to), None, tls.clone(), Default::default());
                stream = match tokio::time::timeout(connect_timeout, connecting).await {
                    Err(_) => return outcome(false, "Layer4 timeout", format!("at step {step_no} of tcp-check (connect)")),
                    Ok(Err(e)) => return io_failed("Layer4 connection problem", &e, step_no, "connect"),
                    Ok(Ok(s)) => Some(s),
                };
                received.clear();
            }
            TcpCheckStep::Send(data) => {
                let Some(s) = stream.as_mut() else { continue };
                received.clear();
                if let Err(e) = tokio::time::timeout_at(deadline, s.write_all(data))
                    .await
                    .unwrap_or(Err(std::io::ErrorKind::TimedOut.into()))
                {
                    return io_failed("Layer7 invalid response", &e, step_no, "send");
                }
            }
            TcpCheckStep::Expect { negate, matcher } => {
                let Some(s) = stream.as_mut() else { continue };
                let found = |data: &[u8]| match matcher {
                    TcpExpect::Bytes(b) => !b.is_empty() && data.windows(b.len()).any(|w| w == &b[..]),
                    TcpExpect::Text(r) => r.is_match(&String::from_utf8_lossy(data)),
                    TcpExpect::Hex(r) => r.is_match(&crate::config::lexer::hex_upper(data)),
                };
                let mut chunk = [0u8; 4096];
                let mut closed = false;
                // A plain expect waits for its pattern; a negated one decides on what came first.
                let decided = |data: &[u8]| found(data) || (*negate && !data.is_empty());
                while !decided(&received) && !closed && received.len() < MAX_CHECK_RESPONSE {
                    match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
                        // Time is up: what came (if anything) is judged as it is.
                        Err(_) if *negate || !received.is_empty() => break,
                        Err(_) => return outcome(false, "Layer7 timeout", format!("at step {step_no} of tcp-check (expect)")),
                        Ok(Err(e)) => return io_failed("Layer7 invalid response", &e, step_no, "expect"),
                        Ok(Ok(0)) => closed = true,
                        Ok(Ok(k)) => received.extend_from_slice(&chunk[..k]),
                    }
                }
                if found(&received) == *negate {
                    let what = if *negate {
                        "matched content it must not"
                    } else {
                        "did not match content"
                    };
                    return outcome(false, "Layer7 wrong status", format!("TCPCHK {what} at step {step_no}"));
                }
            }
        }
    }
    outcome(true, "Layer7 check passed", String::new())
}

fn io_info(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "Connection reset by peer".into(),
        _ => e.to_string(),
    }
}

/// The request an HTTP check sends: `option httpchk` (legacy headers included)
/// overridden by `http-check send`.
fn request_bytes(h: &crate::config::model::HttpCheck, send: Option<&HttpCheckSend>) -> Vec<u8> {
    let method = send.and_then(|s| s.method.as_deref()).unwrap_or(&h.method);
    let uri = send.and_then(|s| s.uri.as_deref()).unwrap_or(&h.uri);
    let version = send.and_then(|s| s.version.as_deref()).unwrap_or(&h.version);
    let mut out = format!("{method} {uri} {version}\r\n");
    let mut headers: Vec<(String, String)> = h.headers.clone();
    if let Some(s) = send {
        headers.extend(s.headers.iter().cloned());
    }
    for (n, v) in &headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    let body = send.and_then(|s| s.body.clone()).or_else(|| h.body.clone());
    if let Some(b) = &body {
        out.push_str(&format!("content-length: {}\r\n", b.len()));
    }
    out.push_str("connection: close\r\n\r\n");
    if let Some(b) = body {
        out.push_str(&b);
    }
    out.into_bytes()
}

fn evaluate_http(backend: &BackendRt, response: &[u8], started: Instant) -> Outcome {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let status = match resp.parse(response) {
        Ok(_) => resp.code,
        Err(_) => None,
    };
    let Some(code) = status else {
        return Outcome {
            ok: false,
            reason: "Layer7 invalid response".into(),
            info: String::new(),
            duration: started.elapsed(),
        };
    };
    let body_start = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let body = String::from_utf8_lossy(&response[body_start..]);
    let code_text = code.to_string();
    let expects = &backend.conf.http_expects;
    let ok = if expects.is_empty() {
        (200..400).contains(&code)
    } else {
        expects.iter().all(|e| {
            let m = match &e.matcher {
                ExpectMatch::Status(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code)),
                // Unanchored, as HAProxy: `(2|3|401)` accepts 503.
                ExpectMatch::RStatus(re) => re.is_match(&code_text),
                ExpectMatch::String(s) => body.contains(s.as_str()),
                ExpectMatch::RString(re) => re.is_match(&body),
            };
            m != e.negate
        })
    };
    let reason = if ok { "Layer7 check passed" } else { "Layer7 wrong status" };
    Outcome {
        ok,
        reason: reason.into(),
        info: format!("code: {code}"),
        duration: started.elapsed(),
    }
}
