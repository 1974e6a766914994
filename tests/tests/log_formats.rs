//! Log lines from lbd and from Debian's haproxy 2.6, for the same
//! configuration and the same traffic: `option httplog clf`,
//! `option log-health-checks`, `option logasap`, `option dontlog-normal` with
//! `option log-separate-errors`. Token by token the same shape and the same
//! text, numbers aside (dates, ports, timers and byte counts differ by nature).

use std::io::{Read, Write};
use std::time::Duration;

use e2e::harness::*;
use e2e::web::Nginx;

fn config(log_port: u16, f: u16, g: u16, server: &str) -> String {
    format!(
        "global\n  log 127.0.0.1:{log_port} local0\n\
         defaults\n  mode http\n  log global\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
         frontend f\n  bind 127.0.0.1:{f}\n  option httplog clf\n  capture request header Host len 20\n  \
         capture request header User-Agent len 10\n  capture response header Server len 5\n  default_backend b\n\
         frontend g\n  bind 127.0.0.1:{g}\n  option httplog clf\n  default_backend b\n\
         backend b\n  server s1 {server}\n"
    )
}

/// Three requests: with request and response captures, and two without.
fn send_requests(f: u16, g: u16) {
    let ask = |port: u16, req: &str| {
        let mut s = connect(&format!("127.0.0.1:{port}"));
        s.write_all(req.as_bytes()).expect("send");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    };
    ask(
        f,
        "GET /x?y=1 HTTP/1.1\r\nHost: mail.xlc.local\r\nUser-Agent: curl/7.88.1\r\nConnection: close\r\n\r\n",
    );
    ask(g, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    ask(
        g,
        "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
}

/// A syslog line's message, after its header. (haproxy ends each datagram
/// with a line feed, lbd does not.)
fn message(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.split_once("]: ").map_or(line, |(_, m)| m)
}

/// The log message, numbers and the date replaced by placeholders.
fn shape(line: &str) -> String {
    message(line)
        .split(' ')
        .map(|t| {
            let digits = t.trim_start_matches('+');
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                "N".to_owned()
            } else if t.starts_with('[') && t.len() == 21 && t.as_bytes().get(3) == Some(&b'/') {
                "[DATE".to_owned()
            } else {
                t.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn httplog_clf_lines_have_haproxys_shape() {
    let np = free_port();
    let _nginx = Nginx::start("clf", &[&format!("127.0.0.1:{np}")]);
    let server = format!("127.0.0.1:{np}");

    let hlog = Syslog::start();
    let (hf, hg) = (free_port(), free_port());
    let h = start_beside("haproxy", &config(hlog.port(), hf, hg, &server), hg, &hlog);
    send_requests(hf, hg);
    let from_haproxy = hlog.lines(Duration::from_millis(800));
    drop(h);

    let llog = Syslog::start();
    let (lf, lg) = (free_port(), free_port());
    let _lbd = Lbd::start(&config(llog.port(), lf, lg, &server));
    send_requests(lf, lg);
    let from_lbd = llog.lines(Duration::from_millis(800));

    let hs: Vec<String> = from_haproxy.iter().map(|l| shape(l)).collect();
    let ls: Vec<String> = from_lbd.iter().map(|l| shape(l)).collect();
    assert_eq!(hs.len(), 3, "haproxy's lines: {from_haproxy:#?}");
    assert_eq!(ls, hs, "lbd's lines {from_lbd:#?}\nagainst haproxy's {from_haproxy:#?}");
}

/// The lines about `server` (`b/s1`) among `lines`, after the syslog header,
/// check durations replaced by `N`.
fn about(lines: &[String], server: &str) -> Vec<String> {
    lines
        .iter()
        .map(|l| message(l).to_owned())
        .filter(|m| m.contains(&format!(" {server} ")) || m.contains(&format!(" {server},")))
        .map(|m| match m.split_once("check duration: ") {
            Some((head, tail)) => format!("{head}check duration: N{}", tail.trim_start_matches(|c: char| c.is_ascii_digit())),
            None => m,
        })
        .collect()
}

/// `option log-health-checks`, next to haproxy checking the same servers: a
/// server that answers, stops answering for a while, then answers again; an
/// HTTP check that passes with its status code; a backup server that never
/// answers. Line for line, each server's story is told in the same words, at
/// the same steps (`status: 2/3 UP`, ...), and the state changes leave the
/// reason to the check lines.
#[test]
fn log_health_checks_lines_are_haproxys() {
    let np = free_port();
    let _nginx = Nginx::start("lhc", &[&format!("127.0.0.1:{np}")]);
    let flap = free_port();
    let dead = free_port();
    let cfg = |log_port: u16, fe: u16| {
        format!(
            "global\n  log 127.0.0.1:{log_port} local0\n\
             defaults\n  mode http\n  log global\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  timeout check 1s\n\
             frontend f\n  bind 127.0.0.1:{fe}\n  default_backend b\n\
             backend b\n  option log-health-checks\n  server s1 127.0.0.1:{flap} check inter 300ms rise 2 fall 3\n\
             backend c\n  option log-health-checks\n  option httpchk GET /\n  server s2 127.0.0.1:{np} check inter 300ms rise 2 fall 3\n  \
             server bk 127.0.0.1:{dead} check inter 300ms rise 2 fall 3 backup\n"
        )
    };
    let up = || std::net::TcpListener::bind(("127.0.0.1", flap)).expect("bind the flapping server");
    let listener = up();
    let (hlog, llog) = (Syslog::start(), Syslog::start());
    let h = Haproxy::start(&cfg(hlog.port(), free_port()));
    let _lbd = Lbd::start(&cfg(llog.port(), free_port()));
    // Up, down long enough to fall (3 checks) and some more, up again.
    let collect = |d: Duration| {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| hlog.lines(d));
            let b = s.spawn(|| llog.lines(d));
            (a.join().unwrap_or_default(), b.join().unwrap_or_default())
        });
        (a, b)
    };
    let (mut hl, mut ll) = collect(Duration::from_millis(1600));
    drop(listener);
    let (a, b) = collect(Duration::from_millis(2400));
    hl.extend(a);
    ll.extend(b);
    let _listener = up();
    let (a, b) = collect(Duration::from_millis(1600));
    hl.extend(a);
    ll.extend(b);
    drop(h);
    for server in ["b/s1", "c/s2", "c/bk"] {
        let (want, got) = (about(&hl, server), about(&ll, server));
        assert!(!want.is_empty(), "haproxy said nothing about {server}: {hl:#?}");
        assert_eq!(got, want, "{server}: lbd's lines, then haproxy's");
    }
    let none_left = |lines: &[String]| lines.iter().any(|l| l.contains("backend b has no server available!"));
    assert!(none_left(&hl) && none_left(&ll), "haproxy {hl:#?}\nlbd {ll:#?}");
}

/// An HTTP check target that answers its checks in turn 200, 503, 503, 200,
/// 503, 503, ...; returns its port and how many checks it answered.
fn one_good_in_three() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&n);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let _ = read_head(&mut s);
            let i = count.fetch_add(1, Ordering::AcqRel);
            let answer: &[u8] = if i.is_multiple_of(3) {
                b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = s.write_all(answer);
        }
    });
    (port, n)
}

/// `fall 3` counts consecutive failures, as in HAProxy: a server that fails
/// two checks in three never goes down, for lbd as for haproxy beside it.
#[test]
fn fall_counts_consecutive_failed_checks() {
    use std::sync::atomic::Ordering;
    let cfg = |log_port: u16, fe: u16, srv: u16| {
        format!(
            "global\n  log 127.0.0.1:{log_port} local0\n\
             defaults\n  mode http\n  log global\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  timeout check 1s\n\
             frontend f\n  bind 127.0.0.1:{fe}\n  default_backend b\n\
             backend b\n  option log-health-checks\n  option httpchk GET /\n  server s1 127.0.0.1:{srv} check inter 100ms rise 2 fall 3\n"
        )
    };
    let (hport, hchecks) = one_good_in_three();
    let (lport, lchecks) = one_good_in_three();
    let (hlog, llog) = (Syslog::start(), Syslog::start());
    let h = Haproxy::start(&cfg(hlog.port(), free_port(), hport));
    let _lbd = Lbd::start(&cfg(llog.port(), free_port(), lport));
    let enough = wait_until(Duration::from_secs(10), || {
        hchecks.load(Ordering::Acquire) >= 12 && lchecks.load(Ordering::Acquire) >= 12
    });
    drop(h);
    assert!(enough.is_some(), "checks answered: haproxy {hchecks:?}, lbd {lchecks:?}");
    let (hl, ll) = (hlog.lines(Duration::from_millis(300)), llog.lines(Duration::from_millis(300)));
    let went_down = |lines: &[String]| lines.iter().any(|l| l.contains("is DOWN"));
    assert!(!went_down(&hl), "haproxy took it down: {hl:#?}");
    assert!(!went_down(&ll), "lbd took it down: {ll:#?}");
    // And both logged the steps: 3/3, 2/3, 1/3, back to 3/3.
    for lines in [&hl, &ll] {
        assert!(lines.iter().any(|l| l.contains("status: 1/3 UP.")), "{lines:#?}");
    }
}

/// A log message with every run of digits replaced by `N`: the shape of a
/// line, `+` marks and separators kept.
fn digits_to_n(line: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in message(line).chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A server that answers each request with a response head and half of a
/// 10-byte body, and sends the other half only once `release` is set; a
/// connection that sends no request just stays open until its client leaves.
fn held_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let release = std::sync::Arc::new(AtomicBool::new(false));
    let r = std::sync::Arc::clone(&release);
    let port = serve_each(move |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        if read_head(&mut s).is_none() {
            return;
        }
        let mut buf = [0u8; 16];
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
        let _ = wait_until(Duration::from_secs(10), || r.load(Ordering::Acquire));
        let _ = s.write_all(b"world");
        let _ = s.read(&mut buf);
    });
    (port, release)
}

/// `option logasap`, lbd beside haproxy: an HTTP transaction is logged as soon
/// as the server's response head came, while its body is still held back, and
/// a TCP session as soon as its server is connected, while it is still open;
/// the total time and the byte count then carry HAProxy's `+`, and the end of
/// either writes no second line. Line for line the same shape as haproxy's.
#[test]
fn logasap_lines_go_out_while_the_transfer_goes_on_as_haproxys() {
    use std::sync::atomic::Ordering;
    let cfg = |log_port: u16, f: u16, t: u16, srv: u16| {
        format!(
            "global\n  log 127.0.0.1:{log_port} local0\n\
             defaults\n  mode http\n  log global\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
             frontend f\n  bind 127.0.0.1:{f}\n  option httplog\n  option logasap\n  default_backend b\n\
             listen t\n  bind 127.0.0.1:{t}\n  mode tcp\n  option tcplog\n  option logasap\n  option dontlognull\n  \
             server s1 127.0.0.1:{srv}\n\
             backend b\n  server s1 127.0.0.1:{srv}\n"
        )
    };
    let run = |which: &str| -> Vec<String> {
        let (srv, release) = held_server();
        let log = Syslog::start();
        let (f, t) = (free_port(), free_port());
        let config = cfg(log.port(), f, t, srv);
        let _proxy = start_beside(which, &config, f, &log);

        let mut lines = Vec::new();
        let mut c = connect(&format!("127.0.0.1:{f}"));
        c.write_all(b"GET /held HTTP/1.1\r\nHost: a\r\n\r\n").expect("send");
        let early = log.next_line(Duration::from_secs(3));
        assert!(early.is_some(), "{which}: nothing logged while the body was held");
        lines.extend(early);
        release.store(true, Ordering::Release);
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        c.set_read_timeout(Some(Duration::from_secs(3))).ok();
        while !got.ends_with(b"helloworld") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        assert!(got.ends_with(b"helloworld"), "{which}: {}", String::from_utf8_lossy(&got));
        drop(c);

        // A TCP session that sends nothing: logged at the connect all the same.
        let s = connect(&format!("127.0.0.1:{t}"));
        let early = log.next_line(Duration::from_secs(3));
        assert!(early.is_some(), "{which}: nothing logged while the TCP session was open");
        lines.extend(early);
        drop(s);
        // The ends write nothing more.
        lines.extend(log.lines(Duration::from_millis(600)));
        lines
    };
    let from_haproxy = run("haproxy");
    let from_lbd = run("lbd");
    let hs: Vec<String> = from_haproxy.iter().map(|l| digits_to_n(l)).collect();
    let ls: Vec<String> = from_lbd.iter().map(|l| digits_to_n(l)).collect();
    assert_eq!(hs.len(), 2, "haproxy's lines: {from_haproxy:#?}");
    assert!(hs[0].contains("/+N N +N "), "{hs:#?}");
    assert_eq!(ls, hs, "lbd's lines {from_lbd:#?}\nagainst haproxy's {from_haproxy:#?}");
}

/// `option dontlog-normal` with `option log-separate-errors`, lbd beside
/// haproxy, in HTTP and in TCP mode: a plain 200, lbd's own redirect and a TCP
/// session that ended well write nothing; a 503 from a dead server and a TCP
/// session whose server refused write their lines, at the `err` level.
#[test]
fn dontlog_normal_keeps_errors_only_in_both_modes_as_haproxy() {
    let np = free_port();
    let _nginx = Nginx::start("dln", &[&format!("127.0.0.1:{np}")]);
    let dead = free_port();
    let cfg = |log_port: u16, f: u16, t: u16, u: u16| {
        format!(
            "global\n  log 127.0.0.1:{log_port} local0\n\
             defaults\n  mode http\n  log global\n  retries 0\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  \
             option dontlog-normal\n  option log-separate-errors\n\
             frontend f\n  bind 127.0.0.1:{f}\n  option httplog\n  http-request redirect location /elsewhere if {{ path /r }}\n  \
             use_backend dead if {{ path /dead }}\n  default_backend b\n\
             listen t\n  bind 127.0.0.1:{t}\n  mode tcp\n  option tcplog\n  server s1 127.0.0.1:{np}\n\
             listen u\n  bind 127.0.0.1:{u}\n  mode tcp\n  option tcplog\n  server s1 127.0.0.1:{dead}\n\
             backend b\n  server s1 127.0.0.1:{np}\n\
             backend dead\n  server s1 127.0.0.1:{dead}\n"
        )
    };
    let ask = |port: u16, req: &[u8]| {
        let mut s = connect(&format!("127.0.0.1:{port}"));
        let _ = s.write_all(req);
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let run = |which: &str| -> Vec<String> {
        let log = Syslog::start();
        let (f, t, u) = (free_port(), free_port(), free_port());
        let config = cfg(log.port(), f, t, u);
        let _proxy = start_beside(which, &config, f, &log);
        let close = "Host: a\r\nConnection: close\r\n\r\n";
        assert!(ask(f, format!("GET / HTTP/1.1\r\n{close}").as_bytes()).starts_with("HTTP/1.1 200"));
        assert!(ask(f, format!("GET /r HTTP/1.1\r\n{close}").as_bytes()).starts_with("HTTP/1.1 302"));
        assert!(ask(f, format!("GET /dead HTTP/1.1\r\n{close}").as_bytes()).starts_with("HTTP/1.1 503"));
        assert!(ask(t, format!("GET / HTTP/1.1\r\n{close}").as_bytes()).starts_with("HTTP/1.1 200"));
        ask(u, b"");
        log.lines(Duration::from_millis(800))
    };
    // The priority (facility and level), then the message's shape.
    let shaped = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| format!("{} {}", l.split_once('>').map_or("", |(p, _)| p), digits_to_n(l)))
            .collect()
    };
    let from_haproxy = run("haproxy");
    let from_lbd = run("lbd");
    let (hs, ls) = (shaped(&from_haproxy), shaped(&from_lbd));
    assert_eq!(hs.len(), 2, "haproxy's lines: {from_haproxy:#?}");
    assert!(hs.iter().all(|l| l.starts_with("<131 ")), "haproxy's lines at err: {hs:#?}");
    assert_eq!(ls, hs, "lbd's lines {from_lbd:#?}\nagainst haproxy's {from_haproxy:#?}");
}

/// A server that answers each request one second after it came, with a 2-byte
/// body, and records the paths it was asked for.
fn slow_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = std::sync::Arc::clone(&seen);
    let port = serve_each(move |mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        while let Some(head) = read_head(&mut s) {
            let text = String::from_utf8_lossy(&head).into_owned();
            let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
            rec.lock().unwrap_or_else(|e| e.into_inner()).push(path);
            std::thread::sleep(Duration::from_secs(1));
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                return;
            }
        }
    });
    (port, seen)
}

#[test]
fn abortonclose_drops_a_queued_request_whose_client_left_as_haproxy() {
    let (srv, seen) = slow_server();
    // As haproxy 2.6 makes it, the option acts only where both the frontend (from the
    // defaults) and the backend have it: f1/b1 do, b2 turns it off, b3 sets it alone.
    let cfg = |log_port: u16, f: [u16; 3]| {
        let defaults = "  mode http\n  log global\n  option httplog\n  timeout connect 1s\n  timeout client 10s\n  \
             timeout server 10s\n  timeout queue 10s\n";
        format!(
            "global\n  log 127.0.0.1:{log_port} local0\n\
             defaults\n{defaults}  option abortonclose\n\
             frontend f1\n  bind 127.0.0.1:{}\n  default_backend b1\n\
             frontend f2\n  bind 127.0.0.1:{}\n  default_backend b2\n\
             backend b1\n  server s1 127.0.0.1:{srv} maxconn 1\n\
             backend b2\n  no option abortonclose\n  server s1 127.0.0.1:{srv} maxconn 1\n\
             defaults\n{defaults}\
             frontend f3\n  bind 127.0.0.1:{}\n  default_backend b3\n\
             backend b3\n  option abortonclose\n  server s1 127.0.0.1:{srv} maxconn 1\n",
            f[0], f[1], f[2]
        )
    };
    let send = |port: u16, path: &str| {
        let mut s = connect(&format!("127.0.0.1:{port}"));
        s.set_read_timeout(Some(Duration::from_secs(8))).ok();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .expect("send");
        s
    };
    let answer = |mut s: std::net::TcpStream| {
        let mut out = [0u8; 64];
        let n = s.read(&mut out).unwrap_or(0);
        String::from_utf8_lossy(&out[..n]).into_owned()
    };
    // On each frontend: a request holds the only slot; a second client sends its
    // request and shuts its sending side; a third sends its request and leaves.
    let run = |which: &str, prefix: &str| -> (Vec<String>, Vec<String>, Vec<String>) {
        let log = Syslog::start();
        let f = [free_port(), free_port(), free_port()];
        let config = cfg(log.port(), f);
        let _proxy = start_beside(which, &config, f[0], &log);
        seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let mut half_closed = Vec::new();
        for (port, tag) in f.into_iter().zip(["ab", "no", "be"]) {
            let holder = send(port, &format!("/{prefix}-{tag}-a"));
            std::thread::sleep(Duration::from_millis(300));
            let b = send(port, &format!("/{prefix}-{tag}-b"));
            b.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let c = send(port, &format!("/{prefix}-{tag}-c"));
            std::thread::sleep(Duration::from_millis(100));
            drop(c);
            half_closed.push(answer(b));
            assert!(answer(holder).starts_with("HTTP/1.1 200"), "{which}: the first request");
        }
        wait_until(Duration::from_secs(8), || seen.lock().unwrap_or_else(|e| e.into_inner()).len() >= 7);
        let mut paths = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        paths.sort();
        (paths, half_closed, log.lines(Duration::from_millis(800)))
    };
    let (hpaths, hanswer, hlines) = run("haproxy", "h");
    let (lpaths, lanswer, llines) = run("lbd", "l");
    let want = |p: &str| -> Vec<String> {
        ["ab-a", "be-a", "be-b", "be-c", "no-a", "no-b", "no-c"]
            .iter()
            .map(|t| format!("/{p}-{t}"))
            .collect()
    };
    assert_eq!(hpaths, want("h"), "haproxy: what the server was asked: {hlines:#?}");
    assert_eq!(lpaths, want("l"), "lbd: what the server was asked: {llines:#?}");
    // The half-closed client gets no answer where the request was dropped, else its answer.
    let status = |a: &[String]| a.iter().map(|t| t.get(..12).unwrap_or(t).to_owned()).collect::<Vec<_>>();
    assert_eq!(status(&hanswer), ["", "HTTP/1.1 200", "HTTP/1.1 200"], "haproxy: {hanswer:?}");
    assert_eq!(status(&lanswer), status(&hanswer), "lbd: {lanswer:?}");
    // The dropped requests' lines: no server, no status, `CQ--`.
    let dropped = |lines: &[String], p: &str| -> Vec<String> {
        ["b", "c"]
            .iter()
            .map(|t| {
                let req = format!("\"GET /{p}-ab-{t} HTTP/1.1\"");
                let l = lines
                    .iter()
                    .find(|l| l.contains(&req))
                    .unwrap_or_else(|| panic!("no line for {req}: {lines:#?}"));
                digits_to_n(&l.replace(&format!("/{p}-"), "/"))
            })
            .collect()
    };
    let (hd, ld) = (dropped(&hlines, "h"), dropped(&llines, "l"));
    assert!(
        hd.iter().all(|l| l.contains(" bN/<NOSRV> ") && l.contains(" CQ-- ")),
        "haproxy: {hd:#?}"
    );
    assert_eq!(ld, hd, "lbd's lines, then haproxy's");
}
