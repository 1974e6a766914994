//! lbd in TCP mode with real servers on loopback: balancing, health checks,
//! monitor-uri, stickiness, retries, queues, timeouts and logs.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use e2e::harness::*;

fn global_log(syslog: &Syslog) -> String {
    format!("global\n  log 127.0.0.1:{} local0\n", syslog.port())
}

const DEFAULTS: &str = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n";

fn servers(names: &[(&str, u32)], srvs: &[NamedServer], params: &str) -> String {
    names
        .iter()
        .zip(srvs)
        .map(|((n, w), s)| format!("  server {n} 127.0.0.1:{} weight {w} {params}\n", s.port()))
        .collect()
}

fn start_servers(names: &[&str]) -> Vec<NamedServer> {
    names.iter().map(|n| NamedServer::start(n, "127.0.0.1:0")).collect()
}

#[test]
fn roundrobin_follows_weights() {
    let srvs = start_servers(&["a", "b", "c"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance roundrobin\n{}",
        servers(&[("a", 1), ("b", 2), ("c", 3)], &srvs, "")
    );
    let _lbd = Lbd::start(&cfg);
    let t = tally(&format!("127.0.0.1:{port}"), 60);
    assert_eq!(t.get("a"), Some(&10), "{t:?}");
    assert_eq!(t.get("b"), Some(&20), "{t:?}");
    assert_eq!(t.get("c"), Some(&30), "{t:?}");
}

#[test]
fn static_rr_and_random_use_every_server() {
    let srvs = start_servers(&["a", "b"]);
    for algo in ["static-rr", "random", "random(2)"] {
        let port = free_port();
        let cfg = format!(
            "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance {algo}\n{}",
            servers(&[("a", 1), ("b", 1)], &srvs, "")
        );
        let _lbd = Lbd::start(&cfg);
        let t = tally(&format!("127.0.0.1:{port}"), 40);
        assert!(
            t.get("a").copied().unwrap_or(0) >= 5 && t.get("b").copied().unwrap_or(0) >= 5,
            "{algo}: {t:?}"
        );
    }
}

#[test]
fn leastconn_spreads_over_equally_loaded_servers() {
    let srvs = start_servers(&["a", "b", "c"]);
    let port = free_port();
    let dir = Scratch::new("leastconn");
    let sock = dir.path.join("lbd.sock");
    let cfg = format!(
        "global\n  stats socket {}\n{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance leastconn\n{}",
        sock.display(),
        servers(&[("a", 1), ("b", 1), ("c", 1)], &srvs, "")
    );
    let _lbd = Lbd::start(&cfg);
    assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
    let addr = format!("127.0.0.1:{port}");
    // Sequential short connections, each finished (as lbd counts it) before the
    // next: the loads are equal at every pick, and equal loads must rotate.
    let mut t = std::collections::BTreeMap::new();
    for _ in 0..30 {
        *t.entry(ask(&addr)).or_insert(0) += 1;
        let idle = wait_until(Duration::from_secs(5), || server_sessions(&sock, "l").iter().all(|n| *n == 0));
        assert!(idle.is_some());
    }
    assert!(t.values().all(|&n| n == 10), "{t:?}");
    // Held connections: each new one goes to the least loaded server.
    let held: Vec<_> = (0..6).map(|_| connect(&addr)).collect();
    let names: Vec<String> = held.iter().map(read_name).collect();
    for n in ["a", "b", "c"] {
        assert_eq!(names.iter().filter(|x| *x == n).count(), 2, "{names:?}");
    }
}

/// A client that resets its connection (it closes with the server's greeting
/// unread) ends the session at once, both sides, as HAProxy does: the server
/// sees its connection close and the session leaves the counts.
#[test]
fn a_client_reset_ends_the_session_at_once() {
    let srvs = start_servers(&["a"]);
    let port = free_port();
    let dir = Scratch::new("reset");
    let sock = dir.path.join("lbd.sock");
    let cfg = format!(
        "global\n  stats socket {}\n{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n{}",
        sock.display(),
        servers(&[("a", 1)], &srvs, "")
    );
    let _lbd = Lbd::start(&cfg);
    assert!(wait_until(Duration::from_secs(5), || sock.exists()).is_some());
    let s = connect(&format!("127.0.0.1:{port}"));
    assert!(
        wait_until(Duration::from_secs(2), || srvs[0].open.load(std::sync::atomic::Ordering::Relaxed)
            == 1)
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    let gone = wait_until(Duration::from_secs(1), || {
        server_sessions(&sock, "l").iter().all(|n| *n == 0) && srvs[0].open.load(std::sync::atomic::Ordering::Relaxed) == 0
    });
    assert!(gone.is_some(), "the session outlived the client's reset");
}

#[test]
fn source_hash_keeps_a_client_on_one_server_and_spreads_clients() {
    let srvs = start_servers(&["a", "b", "c"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance source\n{}",
        servers(&[("a", 1), ("b", 1), ("c", 1)], &srvs, "")
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let mut seen = std::collections::BTreeSet::new();
    for i in 1..=30 {
        let src = format!("127.0.1.{i}");
        let first = read_name(&connect_from(&src, &addr));
        for _ in 0..3 {
            assert_eq!(read_name(&connect_from(&src, &addr)), first, "client {src} moved");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 3, "30 clients should reach all 3 servers: {seen:?}");
}

/// `hash-type consistent`: when a server goes down only its own clients move,
/// and they come back to it when it returns (with `map-based`, most clients
/// move whenever the set of servers changes).
#[test]
fn consistent_source_hashing_moves_only_the_clients_of_a_server_that_goes_down() {
    let mut srvs = start_servers(&["a", "b", "c", "d"]);
    let d_port = srvs[3].port();
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance source\n  hash-type consistent\n{}",
        servers(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)], &srvs, "check inter 100ms rise 1 fall 1")
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let clients: Vec<String> = (1..=40).map(|i| format!("127.0.2.{i}")).collect();
    let places = || -> Vec<String> { clients.iter().map(|src| read_name(&connect_from(src, &addr))).collect() };
    let before = places();
    for name in ["a", "b", "c", "d"] {
        assert!(before.iter().any(|n| n == name), "40 clients should reach {name}: {before:?}");
    }
    srvs[3].kill();
    lbd.wait_for_log("Server l/d is DOWN", Duration::from_secs(5));
    for ((src, was), now) in clients.iter().zip(&before).zip(places()) {
        if was == "d" {
            assert_ne!(now, "d", "client {src} still on the dead server");
        } else {
            assert_eq!(&now, was, "client {src} moved although {was} stayed up");
        }
    }
    let _revived = NamedServer::start("d", &format!("127.0.0.1:{d_port}"));
    lbd.wait_for_log("Server l/d is UP", Duration::from_secs(5));
    assert_eq!(places(), before, "d's clients come back to it, the others stay");
}

/// `tcp-request connection silent-drop`: the refused client hears nothing at all
/// (no reset as with `reject`); the others are served.
#[test]
fn tcp_silent_drop_tells_the_client_nothing() {
    let srvs = start_servers(&["a"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  tcp-request connection silent-drop if {{ src 127.0.3.7 }}\n  tcp-request connection reject if {{ src 127.0.3.8 }}\n{}",
        servers(&[("a", 1)], &srvs, "")
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let silent = connect_from("127.0.3.7", &addr);
    silent.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    let mut buf = [0u8; 16];
    match (&silent).read(&mut buf) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("the silently dropped client heard from lbd: {other:?}"),
    }
    // `reject` resets the connection: the client knows at once.
    let rejected = connect_from("127.0.3.8", &addr);
    rejected.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    match (&rejected).read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a rejected client should see the connection end: {other:?}"),
    }
    assert_eq!(read_name(&connect_from("127.0.3.9", &addr)), "a");
}

/// A server that greets like an IMAP server (`GREETING`), then answers each
/// line with `* BYE` and closes.
fn imap_like(greeting: &'static str) -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let accept = l.try_clone().expect("clone");
    std::thread::spawn(move || {
        for mut s in accept.incoming().flatten() {
            let _ = s.write_all(greeting.as_bytes());
            let mut buf = [0u8; 256];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                let _ = s.write_all(b"* BYE see you\r\n");
            }
        }
    });
    (l, port)
}

/// `option tcp-check` runs its script: a server whose greeting does not match
/// goes down with HAProxy's reason, the other stays up and takes the traffic.
#[test]
fn tcp_check_script_marks_down_a_server_that_does_not_answer_as_expected() {
    let (_good, good) = imap_like("* OK IMAP4rev1 ready\r\n");
    let (_bad, bad) = imap_like("* NO go away\r\n");
    let srvs = start_servers(&["good", "bad"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  option tcp-check\n  tcp-check expect string *\\ OK\n  tcp-check send a1\\ LOGOUT\\r\\n\n  tcp-check expect rstring ^\\* BYE\n  default-server inter 200ms rise 1 fall 1\n  server good 127.0.0.1:{} check port {good}\n  server bad 127.0.0.1:{} check port {bad}\n",
        srvs[0].port(),
        srvs[1].port()
    );
    let lbd = Lbd::start(&cfg);
    lbd.wait_for_log("Server l/bad is DOWN", Duration::from_secs(5));
    assert!(
        lbd.log().contains("TCPCHK did not match content at step 1"),
        "the reason names the step:\n{}",
        lbd.log()
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(!lbd.log().contains("Server l/good is DOWN"), "{}", lbd.log());
    let t = tally(&format!("127.0.0.1:{port}"), 6);
    assert_eq!(t.get("good"), Some(&6), "{t:?}");
}

#[test]
fn first_fills_servers_in_order_and_backup_waits() {
    let srvs = start_servers(&["a", "b", "bk"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  balance first\n  server a 127.0.0.1:{} maxconn 2\n  server b 127.0.0.1:{} maxconn 2\n  server bk 127.0.0.1:{} backup\n",
        srvs[0].port(),
        srvs[1].port(),
        srvs[2].port()
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    // One after the other, each held open: `first` fills a, then b.
    let mut held = Vec::new();
    let mut names = Vec::new();
    for _ in 0..4 {
        let s = connect(&addr);
        names.push(read_name(&s));
        held.push(s);
    }
    assert_eq!(names, ["a", "a", "b", "b"]);
}

#[test]
fn backup_serves_only_when_actives_are_down() {
    let mut srvs = start_servers(&["a", "bk1", "bk2"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server a 127.0.0.1:{} check inter 100ms rise 1 fall 1\n  server bk1 127.0.0.1:{} backup check inter 100ms\n  server bk2 127.0.0.1:{} backup check inter 100ms\n",
        srvs[0].port(),
        srvs[1].port(),
        srvs[2].port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    assert!(tally(&addr, 6).keys().all(|k| k == "a"));
    srvs[0].kill();
    lbd.wait_for_log("Server l/a is DOWN", Duration::from_secs(5));
    // Without `option allbackups`, only the first backup serves.
    let t = tally(&addr, 6);
    assert_eq!(t.get("bk1"), Some(&6), "{t:?}");
}

#[test]
fn failover_follows_inter_and_fall_and_recovery_follows_rise() {
    let mut srvs = start_servers(&["a", "b"]);
    let b_port = srvs[1].port();
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  default-server check inter 300ms rise 3 fall 2\n  server a 127.0.0.1:{}\n  server b 127.0.0.1:{b_port}\n",
        srvs[0].port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    std::thread::sleep(Duration::from_millis(700));
    srvs[1].kill();
    let killed = Instant::now();
    lbd.wait_for_log("Server l/b is DOWN", Duration::from_secs(5));
    let down_after = killed.elapsed();
    // A server that starts up goes down on its first failed check (HAProxy's rule):
    // within one interval after the kill, and never before the next check.
    assert!(down_after <= Duration::from_millis(900), "down after {down_after:?}");
    let t = tally(&addr, 10);
    assert_eq!(t.get("a"), Some(&10), "{t:?}");
    // Recovery needs `rise` (3) good checks at `inter`.
    let revived = NamedServer::start("b", &format!("127.0.0.1:{b_port}"));
    let back = Instant::now();
    lbd.wait_for_log("Server l/b is UP", Duration::from_secs(5));
    let up_after = back.elapsed();
    assert!(up_after >= Duration::from_millis(550), "up too early: {up_after:?}");
    assert!(up_after <= Duration::from_millis(1600), "up too late: {up_after:?}");
    let t = tally(&addr, 10);
    assert_eq!(t.get("b"), Some(&5), "{t:?}");
    drop(revived);
}

#[test]
fn monitor_uri_turns_503_when_one_of_three_servers_falls() {
    let mut srvs = start_servers(&["epm", "ca", "ab"]);
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen chk\n  bind 127.0.0.1:{port}\n  mode http\n  monitor-uri /check\n  monitor fail if {{ nbsrv lt 3 }}\n  server epm 127.0.0.1:{} check inter 100ms\n  server ca 127.0.0.1:{} check inter 100ms\n  server ab 127.0.0.1:{} check inter 100ms\n",
        srvs[0].port(),
        srvs[1].port(),
        srvs[2].port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(http_get(&addr, "/check").0, 200);
    srvs[1].kill();
    lbd.wait_for_log("Server chk/ca is DOWN", Duration::from_secs(5));
    assert_eq!(http_get(&addr, "/check").0, 503);
}

#[test]
fn rpc_backend_drops_a_server_when_its_monitor_fails_and_cuts_its_sessions() {
    // The seed's design: a chk listener per CAS, and the RPC backend checks it.
    let mut cas1 = start_servers(&["cas1-epm", "cas1-ca"]);
    let cas2 = start_servers(&["cas2-epm", "cas2-ca"]);
    let (chk1, chk2, rpc) = (free_port(), free_port(), free_port());
    let rpc_srv1 = NamedServer::start("CAS1", "127.0.0.1:0");
    let rpc_srv2 = NamedServer::start("CAS2", "127.0.0.1:0");
    let cfg = format!(
        "{DEFAULTS}\
listen chk_CAS1\n  bind 127.0.0.1:{chk1}\n  mode http\n  monitor-uri /check\n  monitor fail if {{ nbsrv lt 2 }}\n  server e 127.0.0.1:{} check inter 100ms\n  server c 127.0.0.1:{} check inter 100ms\n\
listen chk_CAS2\n  bind 127.0.0.1:{chk2}\n  mode http\n  monitor-uri /check\n  monitor fail if {{ nbsrv lt 2 }}\n  server e 127.0.0.1:{} check inter 100ms\n  server c 127.0.0.1:{} check inter 100ms\n\
backend bk_rpc\n  balance leastconn\n  option httpchk HEAD /check HTTP/1.0\n  default-server inter 100ms rise 2 fall 2 on-marked-down shutdown-sessions\n  server CAS1 127.0.0.1:{} check addr 127.0.0.1 port {chk1}\n  server CAS2 127.0.0.1:{} check addr 127.0.0.1 port {chk2}\n\
frontend ft_rpc\n  bind 127.0.0.1:{rpc}\n  default_backend bk_rpc\n",
        cas1[0].port(),
        cas1[1].port(),
        cas2[0].port(),
        cas2[1].port(),
        rpc_srv1.port(),
        rpc_srv2.port()
    );
    let lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{rpc}");
    std::thread::sleep(Duration::from_millis(500));
    // Open sessions until one lands on CAS1.
    let mut on_cas1 = None;
    let mut others = Vec::new();
    for _ in 0..4 {
        let s = connect(&addr);
        if read_name(&s) == "CAS1" {
            on_cas1 = Some(s);
            break;
        }
        others.push(s);
    }
    let mut s = on_cas1.expect("a session on CAS1");
    // CAS1's endpoint mapper dies: its monitor says 503, bk_rpc marks CAS1 down
    // after `fall` checks and cuts the session at once.
    cas1[0].kill();
    lbd.wait_for_log("Server bk_rpc/CAS1 is DOWN", Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the CAS1 session must be closed");
    assert_eq!(ask(&addr), "CAS2");
}

#[test]
fn stickiness_by_source_is_shared_by_two_backends_through_one_table() {
    // Same server ids in both backends: a client stuck to id 2 in one is on id 2 in the other.
    let rpc = start_servers(&["rpc1", "rpc2"]);
    let ab = start_servers(&["ab1", "ab2"]);
    let (p1, p2) = (free_port(), free_port());
    let cfg = format!(
        "{DEFAULTS}backend sourceaddr\n  stick-table type ip size 10k\n\
backend bk_rpc\n  balance roundrobin\n  stick on src table sourceaddr\n  server CAS1 127.0.0.1:{}\n  server CAS2 127.0.0.1:{}\n\
backend bk_ab\n  balance roundrobin\n  stick on src table sourceaddr\n  server CAS1 127.0.0.1:{}\n  server CAS2 127.0.0.1:{}\n\
frontend f1\n  bind 127.0.0.1:{p1}\n  default_backend bk_rpc\nfrontend f2\n  bind 127.0.0.1:{p2}\n  default_backend bk_ab\n",
        rpc[0].port(),
        rpc[1].port(),
        ab[0].port(),
        ab[1].port()
    );
    let _lbd = Lbd::start(&cfg);
    let mut by_server = std::collections::BTreeMap::new();
    for i in 1..=8 {
        let src = format!("127.0.2.{i}");
        let first = read_name(&connect_from(&src, &format!("127.0.0.1:{p1}")));
        for _ in 0..3 {
            assert_eq!(read_name(&connect_from(&src, &format!("127.0.0.1:{p1}"))), first);
        }
        let other = read_name(&connect_from(&src, &format!("127.0.0.1:{p2}")));
        assert_eq!(&first[3..], &other[2..], "client {src}: {first} in bk_rpc but {other} in bk_ab");
        *by_server.entry(first).or_insert(0) += 1;
    }
    assert_eq!(by_server.len(), 2, "clients spread over both servers first: {by_server:?}");
}

#[test]
fn retries_then_redispatch_to_another_server_and_restick() {
    let syslog = Syslog::start();
    let good = NamedServer::start("good", "127.0.0.1:0");
    let dead_port = free_port();
    let port = free_port();
    let cfg = format!(
        "{}{DEFAULTS}  log global\n  option tcplog\nbackend t\n  stick-table type ip size 10\nlisten l\n  bind 127.0.0.1:{port}\n  balance first\n  retries 2\n  option redispatch\n  stick on src table t\n  server dead 127.0.0.1:{dead_port}\n  server good 127.0.0.1:{}\n",
        global_log(&syslog),
        good.port()
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    // `first` always picks `dead`: 1 try + retries, the last one redispatched to `good`.
    let started = Instant::now();
    assert_eq!(ask(&addr), "good");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "two turn-arounds expected, took {took:?}");
    // The client is now stuck to `good`: no more retries.
    let again = Instant::now();
    assert_eq!(ask(&addr), "good");
    assert!(again.elapsed() < Duration::from_millis(500));
    let lines = syslog.lines(Duration::from_millis(500));
    assert!(
        lines.iter().any(|l| l.contains(" l/good ") && l.contains("/+2 ")),
        "retries field: {lines:#?}"
    );
}

#[test]
fn retries_are_counted_and_end_in_a_connect_error() {
    let syslog = Syslog::start();
    let dead_port = free_port();
    let port = free_port();
    let cfg = format!(
        "{}{DEFAULTS}  log global\n  option tcplog\n  timeout connect 200ms\nlisten l\n  bind 127.0.0.1:{port}\n  retries 1\n  server dead 127.0.0.1:{dead_port}\n",
        global_log(&syslog)
    );
    let _lbd = Lbd::start(&cfg);
    let s = connect(&format!("127.0.0.1:{port}"));
    assert_eq!(read_name(&s), "", "the client is closed after the retries");
    let lines = syslog.lines(Duration::from_millis(500));
    let line = lines
        .iter()
        .find(|l| l.contains(" l/dead "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(line.contains(" SC ") && line.contains("/1 "), "{line}");
}

#[test]
fn queue_waits_for_a_slot_and_times_out() {
    let syslog = Syslog::start();
    let srv = NamedServer::start("one", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{}{DEFAULTS}  log global\n  option tcplog\n  timeout queue 500ms\nlisten l\n  bind 127.0.0.1:{port}\n  server one 127.0.0.1:{} maxconn 1\n",
        global_log(&syslog),
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    let holder = connect(&addr);
    assert_eq!(read_name(&holder), "one");
    // A second client queues; it gets the slot if the first leaves in time...
    let waiter = std::thread::spawn({
        let addr = addr.clone();
        move || {
            let s = connect(&addr);
            read_name(&s)
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    holder.shutdown(Shutdown::Both).ok();
    drop(holder);
    assert_eq!(waiter.join().ok(), Some("one".to_owned()));
    // ...and is dropped after `timeout queue` otherwise.
    let holder = connect(&addr);
    assert_eq!(read_name(&holder), "one");
    let started = Instant::now();
    let late = connect(&addr);
    assert_eq!(read_name(&late), "");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let lines = syslog.lines(Duration::from_millis(300));
    assert!(lines.iter().any(|l| l.contains(" sQ ")), "{lines:#?}");
}

#[test]
fn half_close_delivers_everything_both_ways() {
    let srv = NamedServer::start("echo", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  server echo 127.0.0.1:{}\n",
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let mut s = connect(&format!("127.0.0.1:{port}"));
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = s.try_clone().expect("clone");
        let p = payload.clone();
        std::thread::spawn(move || {
            w.write_all(&p).expect("write");
            // Half-close: the echo server still sends everything back.
            w.shutdown(Shutdown::Write).expect("shutdown");
        })
    };
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    writer.join().ok();
    assert_eq!(&got[..5], b"echo\n");
    assert_eq!(got.len() - 5, payload.len());
    assert!(got[5..] == payload[..]);
}

#[test]
fn client_and_server_timeouts_close_idle_sessions() {
    let syslog = Syslog::start();
    let srv = NamedServer::start("s", "127.0.0.1:0");
    let (pc, ps) = (free_port(), free_port());
    let cfg = format!(
        "{}defaults\n  mode tcp\n  log global\n  option tcplog\n  timeout connect 1s\n\
listen client_short\n  bind 127.0.0.1:{pc}\n  timeout client 300ms\n  timeout server 5s\n  server s 127.0.0.1:{}\n\
listen server_short\n  bind 127.0.0.1:{ps}\n  timeout client 5s\n  timeout server 300ms\n  server s 127.0.0.1:{}\n",
        global_log(&syslog),
        srv.port(),
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    for (port, flag) in [(pc, " cD "), (ps, " sD ")] {
        let mut s = connect(&format!("127.0.0.1:{port}"));
        assert_eq!(read_name(&s), "s");
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let n = s.read(&mut buf).unwrap_or(0);
        let took = started.elapsed();
        assert_eq!(n, 0);
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");
        let lines = syslog.lines(Duration::from_millis(300));
        assert!(lines.iter().any(|l| l.contains(flag)), "{flag}: {lines:#?}");
    }
}

#[test]
fn dontlognull_skips_empty_connections_and_tcplog_fields_parse_back() {
    let syslog = Syslog::start();
    let srv = NamedServer::start("s1", "127.0.0.1:0");
    let port = free_port();
    let cfg = format!(
        "{}{DEFAULTS}  log global\n  option tcplog\n  option dontlognull\nfrontend ft\n  bind 127.0.0.1:{port}\n  default_backend bk\nbackend bk\n  server s1 127.0.0.1:{}\n",
        global_log(&syslog),
        srv.port()
    );
    let _lbd = Lbd::start(&cfg);
    let addr = format!("127.0.0.1:{port}");
    // No data from the client: not logged.
    drop(connect(&addr));
    std::thread::sleep(Duration::from_millis(200));
    // With data: logged.
    let mut s = connect(&addr);
    let local = s.local_addr().expect("local");
    s.write_all(b"ping").ok();
    s.shutdown(Shutdown::Write).ok();
    let mut all = Vec::new();
    s.read_to_end(&mut all).ok();
    let lines = syslog.lines(Duration::from_millis(500));
    assert_eq!(lines.len(), 1, "only the connection with data is logged: {lines:#?}");
    // <134>Nov 26 14:50:00 lbd[123]: 127.0.0.1:40000 [26/Nov/2026:14:50:00.123] ft bk/s1 0/0/5 7 -- 1/1/1/1/0 0/0
    let line = &lines[0];
    assert!(line.starts_with("<134>"), "facility local0, level info: {line}");
    let msg = line.split_once("]: ").map(|(_, m)| m).expect("syslog header");
    let f: Vec<&str> = msg.split(' ').collect();
    assert_eq!(f.len(), 9, "{msg}");
    assert_eq!(f[0], format!("127.0.0.1:{}", local.port()));
    assert!(
        f[1].starts_with('[') && f[1].ends_with(']') && f[1].len() == 26,
        "accept date: {}",
        f[1]
    );
    assert_eq!(f[2], "ft");
    assert_eq!(f[3], "bk/s1");
    let times: Vec<i64> = f[4].split('/').map(|t| t.parse().expect("time")).collect();
    assert_eq!(times.len(), 3);
    assert!(times.iter().all(|t| *t >= 0) && times[2] >= times[1]);
    assert_eq!(f[5], (all.len()).to_string(), "bytes to the client");
    assert_eq!(f[6], "--");
    assert_eq!(f[7].split('/').count(), 5);
    assert_eq!(f[8], "0/0");
}

#[test]
fn a_server_without_port_uses_the_port_the_client_connected_to() {
    let (p1, p2) = (free_port(), free_port());
    // The servers listen on 127.0.0.2 at the same ports lbd listens on 127.0.0.1.
    let s1 = NamedServer::start("on-p1", &format!("127.0.0.2:{p1}"));
    let s2 = NamedServer::start("on-p2", &format!("127.0.0.2:{p2}"));
    let cfg = format!(
        "{DEFAULTS}frontend f\n  bind 127.0.0.1:{p1}\n  bind 127.0.0.1:{p2}\n  default_backend b\nbackend b\n  server cas 127.0.0.2\n"
    );
    let _lbd = Lbd::start(&cfg);
    assert_eq!(ask(&format!("127.0.0.1:{p1}")), "on-p1");
    assert_eq!(ask(&format!("127.0.0.1:{p2}")), "on-p2");
    drop((s1, s2));
}

/// A backend that accepts and holds connections, with a deep accept queue so no
/// SYN is dropped while thousands arrive.
fn holding_backend() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    sock.bind(&any.into()).expect("bind");
    sock.listen(16_384).expect("listen");
    let backend: std::net::TcpListener = sock.into();
    let port = backend.local_addr().expect("addr").port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for s in backend.incoming().flatten() {
            if let Ok(mut v) = h2.lock() {
                v.push(s);
            }
        }
    });
    (port, held)
}

// This machine's hard limit is 20,000 descriptors per process and cannot be
// raised without CAP_SYS_RESOURCE. 10,000 idle clients that have not sent a
// request yet need 10,000 descriptors in lbd (HTTP mode connects to a server
// only once a request arrives); proxied TCP connections need two each, so that
// case holds 9,000 (18,000 descriptors in lbd).
#[test]
fn ten_thousand_idle_connections_then_fds_return_to_start() {
    e2e::raise_fd_limit(20_000);
    let (bport, _held) = holding_backend();
    let port = free_port();
    let cfg = format!(
        "global\n  maxconn 12000\n{DEFAULTS}  timeout http-request 60s\nlisten l\n  bind 127.0.0.1:{port}\n  mode http\n  backlog 4096\n  server s 127.0.0.1:{bport}\n"
    );
    let lbd = Lbd::start(&cfg);
    std::thread::sleep(Duration::from_millis(200));
    let start_fds = lbd.open_fds();
    let addr = format!("127.0.0.1:{port}");
    let mut clients = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        clients.push(connect(&addr));
    }
    let peak = wait_until(Duration::from_secs(30), || lbd.open_fds() >= start_fds + 10_000).map(|_| lbd.open_fds());
    assert!(peak.is_some(), "lbd holds {} fds, {start_fds} at start", lbd.open_fds());
    let rss = lbd.rss_kib();
    drop(clients);
    let back = wait_until(Duration::from_secs(30), || lbd.open_fds() <= start_fds);
    assert!(back.is_some(), "open fds {} after close, {start_fds} at start", lbd.open_fds());
    println!(
        "10,000 idle connections: lbd fds {start_fds} -> {peak:?} -> {}, RSS {rss} KiB",
        lbd.open_fds()
    );
}

#[test]
fn nine_thousand_proxied_idle_connections_then_fds_return_to_start() {
    e2e::raise_fd_limit(20_000);
    let (bport, held) = holding_backend();
    let port = free_port();
    let cfg =
        format!("global\n  maxconn 9500\n{DEFAULTS}listen l\n  bind 127.0.0.1:{port}\n  backlog 4096\n  server s 127.0.0.1:{bport}\n");
    let lbd = Lbd::start(&cfg);
    std::thread::sleep(Duration::from_millis(200));
    let start_fds = lbd.open_fds();
    let addr = format!("127.0.0.1:{port}");
    let mut clients = Vec::with_capacity(9_000);
    for _ in 0..9_000 {
        clients.push(connect(&addr));
    }
    let reached = wait_until(Duration::from_secs(30), || held.lock().map(|v| v.len()).unwrap_or(0) >= 9_000);
    assert!(
        reached.is_some(),
        "backend saw {} connections; lbd log:\n{}",
        held.lock().map(|v| v.len()).unwrap_or(0),
        lbd.log()
    );
    let peak = lbd.open_fds();
    assert!(peak >= start_fds + 18_000, "lbd holds both sides: {start_fds} -> {peak}");
    let rss = lbd.rss_kib();
    drop(clients);
    // The servers close their side too, as servers do when their client leaves.
    held.lock().map(|mut v| v.clear()).ok();
    let back = wait_until(Duration::from_secs(30), || lbd.open_fds() <= start_fds);
    assert!(back.is_some(), "open fds {} after close, {start_fds} at start", lbd.open_fds());
    println!(
        "9,000 proxied idle connections: lbd fds {start_fds} -> {peak} -> {}, RSS {rss} KiB",
        lbd.open_fds()
    );
}

#[test]
fn two_thousand_checked_servers_do_not_starve_the_data_path() {
    // 2,000 checked servers on ports where nothing listens (refused at once,
    // every 500 ms: 4,000 checks a second), and one real backend: its
    // connections must stay fast.
    let srv = NamedServer::start("live", "127.0.0.1:0");
    let port = free_port();
    let mut cfg = format!("global\n  nbthread 2\n{DEFAULTS}backend dead\n  default-server check inter 500ms\n");
    for i in 0..2000 {
        cfg.push_str(&format!("  server d{i} 127.0.0.{}:{}\n", 2 + i / 200, 20_000 + i % 200));
    }
    cfg.push_str(&format!(
        "listen l\n  bind 127.0.0.1:{port}\n  server live 127.0.0.1:{}\n",
        srv.port()
    ));
    let lbd = Lbd::start(&cfg);
    lbd.wait_for_log("Server dead/d1999 is DOWN", Duration::from_secs(10));
    let addr = format!("127.0.0.1:{port}");
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(ask(&addr), "live");
        worst = worst.max(t.elapsed());
    }
    assert!(worst < Duration::from_millis(200), "slowest of 50 requests took {worst:?}");
}
