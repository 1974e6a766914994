//! The runtime socket (HAProxy's text protocol, driven with `socat`) and reloads.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::harness::*;

const DEFAULTS: &str = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n";

/// Sends one command line with socat and returns the answer.
fn socat(sock: &std::path::Path, input: &str) -> String {
    let mut child = Command::new("socat")
        .arg("-t5")
        .arg("stdio")
        .arg(format!("unix-connect:{}", sock.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat is required (scripts/test installs it)");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("socat output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cmd(sock: &std::path::Path, c: &str) -> String {
    socat(sock, &format!("{c}\n"))
}

#[test]
fn runtime_api_commands_over_socat() {
    let dir = Scratch::new("api");
    let admin = dir.path.join("admin.sock");
    let user = dir.path.join("user.sock");
    let s1 = NamedServer::start("s1", "127.0.0.1:0");
    let s2 = NamedServer::start("s2", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "global\n  stats socket {} level admin\n  stats socket {} level user\n{DEFAULTS}backend st\n  stick-table type ip size 1k\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  balance roundrobin\n  stick on src table st\n  server s1 127.0.0.1:{} check inter 200ms\n  server s2 127.0.0.1:{}\n",
        admin.display(),
        user.display(),
        s1.port(),
        s2.port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    assert!(wait_until(Duration::from_secs(5), || admin.exists()).is_some());

    let info = cmd(&admin, "show info");
    assert!(info.contains("Name: lbd") && info.contains("Config_hash: "), "{info}");
    let hash = cmd(&admin, "show config-hash");
    assert!(info.contains(hash.trim()), "{hash} in {info}");
    assert!(cmd(&admin, "show backend").starts_with("# name\n"));
    assert!(cmd(&admin, "help").contains("show stat"));

    // A client through lbd is stuck in table st.
    let first = ask(&addr);
    let table = cmd(&admin, "show table st");
    assert!(table.starts_with("# table: st, type: ip, size:1024, used:1"), "{table}");
    assert!(table.contains("key=127.0.0.1") && table.contains("server_id="), "{table}");
    assert!(cmd(&admin, "show table").contains("# table: st, type: ip, size:1024, used:1"));
    cmd(&admin, "clear table st key 127.0.0.1");
    assert!(cmd(&admin, "show table st").contains("used:0"));
    assert!(!first.is_empty());

    // Servers: maintenance, drain, weight, health, sessions.
    let state = cmd(&admin, "show servers state");
    assert!(
        state.starts_with("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state"),
        "{state}"
    );
    assert!(state.lines().any(|l| l.contains(" b ") && l.contains(" s1 ")), "{state}");
    cmd(&admin, "disable server b/s1");
    cmd(&admin, "clear table st");
    assert!(tally(&addr, 6).keys().all(|k| k == "s2"));
    assert!(cmd(&admin, "show stat")
        .lines()
        .any(|l| l.starts_with("b,s1,") && l.contains(",MAINT,")));
    cmd(&admin, "enable server b/s1");
    cmd(&admin, "set server b/s2 state drain");
    cmd(&admin, "clear table st");
    assert!(tally(&addr, 6).keys().all(|k| k == "s1"));
    cmd(&admin, "set server b/s2 state ready");
    cmd(&admin, "set weight b/s1 0");
    cmd(&admin, "clear table st");
    assert!(tally(&addr, 4).keys().all(|k| k == "s2"));
    cmd(&admin, "set server b/s1 weight 1");
    cmd(&admin, "disable health b/s1");
    cmd(&admin, "enable health b/s1");
    cmd(&admin, "clear table st");
    let held = connect(&addr);
    let on = read_name(&held);
    cmd(&admin, &format!("shutdown sessions server b/{on}"));
    held.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut buf = [0u8; 4];
    assert_eq!((&held).read(&mut buf).unwrap_or(0), 0, "the session is cut");

    // Levels.
    assert_eq!(cmd(&user, "disable server b/s1"), "Permission denied\n\n");
    assert!(cmd(&user, "show stat").starts_with("# pxname,svname,"));
    // Interactive mode: several commands on one connection.
    let p = socat(&admin, "prompt\nshow backend\nshow config-hash\nquit\n");
    assert!(p.contains("> ") && p.contains("# name") && p.contains(hash.trim()), "{p}");
    // Unknown command.
    assert!(cmd(&admin, "frobnicate").starts_with("Unknown command"));
    drop(lbd);
}

#[test]
fn show_stat_columns_match_haproxy_for_the_same_config() {
    let dir = Scratch::new("stat");
    let hsock = dir.path.join("haproxy.sock");
    let lsock = dir.path.join("lbd.sock");
    let (hp, lp) = (free_port(), free_port());
    let body = |port: u16| {
        format!("{DEFAULTS}frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  server s1 127.0.0.1:9 check inter 1s\n")
    };
    let h = Haproxy::start(&format!("global\n  stats socket {} level admin\n{}", hsock.display(), body(hp)));
    let lbd = Lbd::start(&format!("global\n  stats socket {} level admin\n{}", lsock.display(), body(lp)));
    assert!(wait_until(Duration::from_secs(5), || hsock.exists() && lsock.exists()).is_some());
    let hs = cmd(&hsock, "show stat");
    let ls = cmd(&lsock, "show stat");
    drop(h);
    let header = |s: &str| s.lines().next().unwrap_or("").split(',').map(str::to_owned).collect::<Vec<_>>();
    let (hh, lh) = (header(&hs), header(&ls));
    assert!(lh.len() >= 80, "at least 80 columns");
    assert_eq!(&hh[..lh.len() - 1], &lh[..lh.len() - 1], "lbd's columns are haproxy's, in order");
    // Same rows (frontend, server, backend), same column count per row.
    for (name, sv) in [("f", "FRONTEND"), ("b", "s1"), ("b", "BACKEND")] {
        let row = ls
            .lines()
            .find(|l| l.starts_with(&format!("{name},{sv},")))
            .unwrap_or_else(|| panic!("{name}/{sv} in {ls}"));
        assert_eq!(row.split(',').count(), lh.len(), "{row}");
        assert!(hs.lines().any(|l| l.starts_with(&format!("{name},{sv},"))));
    }
    drop(lbd);
}

fn write_config(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn reload_adds_and_removes_listeners_and_keeps_state() {
    let dir = Scratch::new("reload");
    let sock = dir.path.join("lbd.sock");
    let mut a = NamedServer::start("a", "127.0.0.1:0");
    let b = NamedServer::start("b", "127.0.0.1:0");
    let c = NamedServer::start("c", "127.0.0.1:0");
    let (p1, p2) = (free_port(), free_port());
    let base = |extra: &str| {
        format!(
            "global\n  stats socket {} level admin\n{DEFAULTS}backend st\n  stick-table type ip size 1k\nlisten one\n  bind 127.0.0.1:{p1}\n  stick on src table st\n  server a 127.0.0.1:{} check inter 100ms\n  server b 127.0.0.1:{} check inter 100ms\n{extra}",
            sock.display(),
            a.port(),
            b.port()
        )
    };
    let cfg_a = base("");
    let cfg_b = base(&format!("listen two\n  bind 127.0.0.1:{p2}\n  server c 127.0.0.1:{}\n", c.port()));
    let lbd = Lbd::start(&cfg_a);
    let cfg_path = lbd.config.clone();
    assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
    let one = format!("127.0.0.1:{p1}");
    let stuck = ask(&one);
    // `a` dies: health says DOWN, and must still say so after the reload.
    a.kill();
    lbd.wait_for_log("Server one/a is DOWN", Duration::from_secs(3));
    let before = cmd(&sock, "show config-hash");
    write_config(&cfg_path, &cfg_b);
    let r = cmd(&sock, "reload");
    assert!(r.starts_with("Success=1"), "{r}\n{}", lbd.log());
    let after = cmd(&sock, "show config-hash");
    assert_ne!(before, after);
    assert_eq!(ask(&format!("127.0.0.1:{p2}")), "c", "the new listener serves");
    let stat = cmd(&sock, "show stat");
    assert!(
        stat.lines().any(|l| l.starts_with("one,a,") && l.contains(",DOWN,")),
        "health carried over:\n{stat}"
    );
    assert!(cmd(&sock, "show table st").contains("used:1"), "stick entries carried over");
    if stuck == "b" {
        assert_eq!(ask(&one), "b");
    }
    // Back to A: listener two closes.
    write_config(&cfg_path, &cfg_a);
    assert!(cmd(&sock, "reload").starts_with("Success=1"));
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{p2}")).is_err(),
        "the removed listener is closed"
    );
    assert_eq!(ask(&one), "b");
}

#[test]
fn a_bad_config_is_refused_and_traffic_continues() {
    let dir = Scratch::new("bad");
    let sock = dir.path.join("lbd.sock");
    let s = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "global\n  stats socket {} level admin\n{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{}\n",
        sock.display(),
        s.port()
    );
    let lbd = Lbd::start(&cfg);
    assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
    let addr = format!("127.0.0.1:{port}");
    let held = connect(&addr);
    assert_eq!(read_name(&held), "s");
    let hash = cmd(&sock, "show config-hash");
    write_config(&lbd.config, &format!("{cfg}  bnd :1\n"));
    let r = cmd(&sock, "reload");
    let bad_line = format!(":{}]", cfg.lines().count() + 1);
    assert!(
        r.starts_with("Success=0") && r.contains("unknown keyword 'bnd'") && r.contains(&bad_line),
        "{r}"
    );
    // SIGHUP takes the same path and refuses too.
    let _ = Command::new("kill").arg("-HUP").arg(lbd.pid().to_string()).status();
    lbd.wait_for_log("reload refused", Duration::from_secs(3));
    assert_eq!(cmd(&sock, "show config-hash"), hash);
    assert_eq!(ask(&addr), "s");
    (&held).write_all(b"still here").ok();
    let mut buf = [0u8; 10];
    (&held).read_exact(&mut buf).ok();
    assert_eq!(&buf, b"still here", "the connection in flight is untouched");
}

/// A keep-alive HTTP/1.1 server: every request gets `200` with a 2-byte body.
fn keepalive_http_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    port
}

/// Sends `n` requests on one keep-alive connection; true when all are answered.
/// `n` requests over keep-alive connections. Like any HTTP client, it opens a
/// new connection when an answer says `connection: close` (what lbd says after
/// a reload, so clients move to the new configuration); any other close fails.
fn keepalive_requests(addr: &str, n: usize) -> bool {
    let connect = || {
        let s = std::net::TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        Some(s)
    };
    let Some(mut s) = connect() else {
        eprintln!("keep-alive: connect failed");
        return false;
    };
    for i in 0..n {
        if s.write_all(format!("GET /{i} HTTP/1.1\r\nHost: lbd\r\n\r\n").as_bytes()).is_err() {
            return false;
        }
        let mut resp = Vec::new();
        let mut b = [0u8; 256];
        while !resp.ends_with(b"\r\n\r\nok") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => {
                    eprintln!("keep-alive: request {i} got {:?}", String::from_utf8_lossy(&resp));
                    return false;
                }
                Ok(k) => resp.extend_from_slice(&b[..k]),
            }
        }
        if String::from_utf8_lossy(&resp)
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n")
        {
            let Some(fresh) = connect() else {
                eprintln!("keep-alive: reconnect failed");
                return false;
            };
            s = fresh;
        }
    }
    true
}

#[test]
fn a_hundred_reloads_under_load_lose_nothing() {
    let dir = Scratch::new("load");
    let sock = dir.path.join("lbd.sock");
    let s1 = NamedServer::start("s1", "127.0.0.1:0");
    let s2 = NamedServer::start("s2", "127.0.0.1:0");
    let s3 = NamedServer::start("s3", "127.0.0.1:0");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let web = keepalive_http_server();
    let common = format!(
        "global\n  stats socket {} level admin\n  hard-stop-after 10s\n{DEFAULTS}backend st\n  stick-table type ip size 1k\nlisten web\n  bind 127.0.0.1:{p3}\n  mode http\n  server w 127.0.0.1:{web}\nlisten tcp\n  bind 127.0.0.1:{p1}\n  stick on src table st\n  server s1 127.0.0.1:{} check inter 200ms\n  server s2 127.0.0.1:{} check inter 200ms\n",
        sock.display(),
        s1.port(),
        s2.port()
    );
    let cfg_a = common.clone();
    // B adds a server to `tcp` (the last section of `common`), a listener and a backend.
    let cfg_b = format!(
        "{common}  server s3 127.0.0.1:{}\nlisten extra\n  bind 127.0.0.1:{p2}\n  server s3 127.0.0.1:{}\nbackend spare\n  server s1 127.0.0.1:{}\n",
        s3.port(),
        s3.port(),
        s1.port()
    );
    let lbd = Lbd::start(&cfg_a);
    assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
    let addr = format!("127.0.0.1:{p1}");
    let stuck = ask(&addr);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut workers = Vec::new();
    // New connections, long-lived connections carrying data back and forth, and
    // HTTP keep-alive connections.
    {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let web_addr = format!("127.0.0.1:{p3}");
        workers.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if keepalive_requests(&web_addr, 10) {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("keep-alive session failed at {:?}", Instant::now());
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in 0..3 {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), addr.clone());
        workers.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if w == 0 {
                    let mut s = connect(&addr);
                    let name = read_name(&s);
                    let good = !name.is_empty() && {
                        let mut fine = true;
                        for i in 0..20u32 {
                            let msg = format!("ping {i}\n");
                            let mut back = vec![0u8; msg.len()];
                            fine &= s.write_all(msg.as_bytes()).is_ok() && s.read_exact(&mut back).is_ok() && back == msg.as_bytes();
                        }
                        fine
                    };
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        eprintln!("long session failed (name {name:?})");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                } else if ask(&addr).is_empty() {
                    eprintln!("new connection got no answer");
                    failed.fetch_add(1, Ordering::Relaxed);
                } else {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 0..100 {
        write_config(&lbd.config, if i % 2 == 0 { &cfg_b } else { &cfg_a });
        let r = cmd(&sock, "reload");
        assert!(r.starts_with("Success=1"), "reload {i}: {r}");
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("100 reloads under load: {ok} good sessions, {failed} failed");
    assert_eq!(failed, 0, "{ok} good, {failed} failed\n{}", lbd.log());
    assert!(ok > 100);
    assert!(cmd(&sock, "show table st").contains("used:1"), "stick entries survive");
    assert_eq!(ask(&addr), stuck, "the client is still stuck to its server");
    let stat = cmd(&sock, "show stat");
    // `UP`, or `UP 1/3` while its first check since the last reload is pending (as HAProxy shows it).
    assert!(
        stat.lines()
            .any(|l| l.starts_with("tcp,s1,") && l.split(',').nth(17).is_some_and(|s| s.starts_with("UP"))),
        "{stat}"
    );
}

#[test]
fn memory_after_a_thousand_reloads_stays_within_ten_percent_of_after_ten() {
    let dir = Scratch::new("mem");
    let sock = dir.path.join("lbd.sock");
    let s = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "global\n  stats socket {} level admin\n{DEFAULTS}backend st\n  stick-table type ip size 1k\nlisten l\n  bind 127.0.0.1:{port}\n  stick on src table st\n  server s 127.0.0.1:{} check inter 500ms\n",
        sock.display(),
        s.port()
    );
    let lbd = Lbd::start(&cfg);
    assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
    let mut after_10 = 0;
    for i in 1..=1000 {
        // Many reloads per socat call: `reload;reload;...` on one line.
        if i % 10 == 0 {
            let r = socat(&sock, &format!("{}\n", ["reload"; 10].join(";")));
            assert_eq!(r.matches("Success=1").count(), 10, "{r}");
            if i == 10 {
                std::thread::sleep(Duration::from_millis(200));
                after_10 = lbd.rss_kib();
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after_1000 = lbd.rss_kib();
    println!("RSS after 10 reloads: {after_10} KiB; after 1000: {after_1000} KiB");
    assert!(cmd(&sock, "show info").contains("Reloads: 1000"));
    assert!((after_1000 as f64) <= after_10 as f64 * 1.10, "{after_10} KiB -> {after_1000} KiB");
    assert_eq!(ask(&format!("127.0.0.1:{port}")), "s");
}

/// `curl` a URL; returns (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is required");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn stats_page_csv_and_prometheus_metrics() {
    let s1 = NamedServer::start("s1", "127.0.0.1:0");
    let (port, sport) = (free_port(), free_port());
    let cfg = format!(
        "{DEFAULTS}frontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  server s1 127.0.0.1:{} check inter 200ms\n\
listen stats\n  bind 127.0.0.1:{sport}\n  mode http\n  stats enable\n  stats uri /stats\n  stats refresh 10s\n  stats auth admin:s3cret\n  stats admin if {{ src 127.0.0.1 }}\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n",
        s1.port()
    );
    let _lbd = Lbd::start(&cfg);
    assert_eq!(ask(&format!("127.0.0.1:{port}")), "s1");
    let base = format!("http://127.0.0.1:{sport}");
    // The page needs the credentials.
    assert_eq!(curl(&[&format!("{base}/stats")]).0, 401);
    let (code, page) = curl(&["-u", "admin:s3cret", &format!("{base}/stats")]);
    assert_eq!(code, 200);
    assert!(
        page.contains("<html") && page.contains(">b (backend)<") && page.contains("s1</td>") && page.contains(">f (frontend)<"),
        "{page}"
    );
    let (code, csv) = curl(&["-u", "admin:s3cret", &format!("{base}/stats;csv")]);
    assert_eq!(code, 200);
    assert!(csv.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout"), "{csv}");
    // `UP`, or `UP 1/3` before its first check (as HAProxy shows it).
    assert!(
        csv.lines()
            .any(|l| l.starts_with("b,s1,") && l.split(',').nth(17).is_some_and(|s| s.starts_with("UP"))),
        "{csv}"
    );
    // Prometheus: parsed by the reference parser, HAProxy's names.
    let (code, metrics) = curl(&[&format!("{base}/metrics")]);
    assert_eq!(code, 200);
    // The admin form: put s1 in maintenance from the page, then back.
    let (code, _) = curl(&["-u", "admin:s3cret", "-d", "b=b&s=s1&action=maint", &format!("{base}/stats")]);
    assert_eq!(code, 303);
    let (_, csv) = curl(&["-u", "admin:s3cret", &format!("{base}/stats;csv")]);
    assert!(csv.lines().any(|l| l.starts_with("b,s1,") && l.contains(",MAINT,")), "{csv}");
    assert!(
        curl(&["-u", "admin:s3cret", &format!("{base}/stats")]).1.contains("name=action"),
        "admin controls shown"
    );
    curl(&["-u", "admin:s3cret", "-d", "b=b&s=s1&action=ready", &format!("{base}/stats")]);
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def val(name, **labels):
    for s in fams[name].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise SystemExit(f"missing {name} {labels}")
assert val("haproxy_frontend_sessions", proxy="f") >= 1, "frontend sessions"
assert val("haproxy_backend_active_servers", proxy="b") == 1
assert val("haproxy_server_status", proxy="b", server="s1", state="UP") == 1
assert val("haproxy_server_sessions", proxy="b", server="s1") >= 1
assert fams["haproxy_server_bytes_out"].type == "counter"
print(len(fams), "metric families")
"#;
    let mut py = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    if let Some(mut i) = py.stdin.take() {
        let _ = i.write_all(metrics.as_bytes());
    }
    let out = py.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "{}\n{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_new_process_takes_over_with_sf_and_the_old_one_drains() {
    let s = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!("{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{}\n", s.port());
    let mut old = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let mut held = connect(&addr);
    assert_eq!(read_name(&held), "s");
    // HAProxy's `-sf PID`: the new process binds beside the old one, then tells it to drain.
    let _new = Lbd::start_with(&cfg, &["-sf", &old.pid().to_string()]);
    old.wait_for_log("graceful stop", Duration::from_secs(5));
    for _ in 0..20 {
        assert_eq!(ask(&addr), "s", "new connections are served throughout");
    }
    // The old process still carries the connection it had.
    held.write_all(b"abc").ok();
    let mut buf = [0u8; 3];
    held.read_exact(&mut buf).expect("the held connection still works");
    assert_eq!(&buf, b"abc");
    assert!(
        old.child.try_wait().ok().flatten().is_none(),
        "the old process waits for its connection"
    );
    drop(held);
    let exited = wait_until(Duration::from_secs(5), || old.child.try_wait().ok().flatten().is_some());
    assert!(exited.is_some(), "the old process exits once its last connection ends");
}

#[test]
fn sigterm_stops_at_once() {
    let s = NamedServer::start("s", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!("{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server s 127.0.0.1:{}\n", s.port());
    let mut lbd = Lbd::start(&cfg);
    let held = connect(&format!("127.0.0.1:{port}"));
    assert_eq!(read_name(&held), "s");
    let _ = Command::new("kill").arg("-TERM").arg(lbd.pid().to_string()).status();
    let exited = wait_until(Duration::from_secs(2), || lbd.child.try_wait().ok().flatten().is_some());
    assert!(exited.is_some(), "SIGTERM does not wait for connections");
}

#[test]
fn with_two_threads_plain_http_connections_are_spread_evenly_over_the_workers() {
    // Each worker thread has its own listening socket (SO_REUSEPORT), and the
    // kernel picks one by a hash of the client's address. lbd then hands a plain
    // HTTP connection to the worker serving the fewest connections, as HAProxy
    // hands accepted connections to its least loaded thread, so held
    // connections split evenly whatever the hash did.
    use e2e::web::{free_ports_on, private_loopback, HttpConn, Nginx};
    let dir = Scratch::new("spread");
    let admin = dir.path.join("admin.sock");
    let ip = private_loopback();
    let ports = free_ports_on(&ip, 2);
    let _ngx = Nginx::start("NGX", &[&format!("{ip}:{}", ports[0])]);
    let fe = format!("{ip}:{}", ports[1]);
    let cfg = format!(
        "global\n  nbthread 2\n  stats socket {} level admin\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 20s\n  timeout server 10s\n  timeout http-keep-alive 20s\nfrontend fe\n  bind {fe}\n  default_backend bk\nbackend bk\n  server ngx {ip}:{}\n",
        admin.display(),
        ports[0]
    );
    let lbd = Lbd::start(&cfg);
    assert!(wait_until(Duration::from_secs(5), || admin.exists()).is_some(), "{}", lbd.log());
    let before = accepted(&cmd(&admin, "show activity"));
    assert_eq!(before, vec![0, 0], "nothing accepted yet");
    const HELD: u64 = 100;
    let mut held: Vec<HttpConn> = (0..HELD).map(|_| HttpConn::connect(&fe)).collect();
    // Each connection answers twice: it works wherever it went.
    for round in 0..2 {
        for (i, c) in held.iter_mut().enumerate() {
            let r = c.get(&format!("/{round}/{i}"));
            assert_eq!(r.status, 200, "connection {i}, request {round}: {r:?}");
        }
    }
    let got = accepted(&cmd(&admin, "show activity"));
    assert_eq!(got.iter().sum::<u64>(), HELD, "{got:?}");
    assert!(got[0].abs_diff(got[1]) <= 1, "{HELD} connections over two workers: {got:?}");
    drop(held);
}

/// The per-thread `accepted: [ a b ]` figures of `show activity`.
fn accepted(activity: &str) -> Vec<u64> {
    activity
        .lines()
        .find_map(|l| l.strip_prefix("accepted:"))
        .map(|l| {
            l.trim()
                .trim_matches(['[', ']'])
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
