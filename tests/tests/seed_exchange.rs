//! The seed's `exchange-nossl.cfg`, unchanged but for its health-check interval,
//! served by lbd inside a network namespace that holds the seed's addresses
//! (VIP 10.0.0.17, CAS1 10.0.0.15, CAS2 10.0.0.16) with real TCP servers on
//! every port the configuration uses. (The full multi-namespace Exchange
//! scenario with nginx and dovecot is its own test suite.)

use std::time::Duration;

use e2e::harness::*;
use e2e::netns::Lan;

const SEED: &str = include_str!("../fixtures/exchange-nossl.cfg");
const PORTS: [u16; 8] = [135, 60000, 60001, 143, 993, 110, 995, 443];

#[test]
fn seed_exchange_nossl_serves_every_service_through_the_vip() {
    // The appliance holds the VIP and, for the test, several client addresses.
    let clients: Vec<String> = (101..=108).map(|i| format!("10.0.0.{i}")).collect();
    let mut app_addrs = vec!["10.0.0.17/24".to_owned()];
    app_addrs.extend(clients.iter().map(|c| format!("{c}/24")));
    let app_refs: Vec<&str> = app_addrs.iter().map(String::as_str).collect();
    let lan = Lan::new("seed", &app_refs, &[("cas1", "10.0.0.15/24"), ("cas2", "10.0.0.16/24")]);
    let mut servers = Vec::new();
    for ((cas, ip), ns) in [("CAS1", "10.0.0.15"), ("CAS2", "10.0.0.16")].into_iter().zip(&lan.hosts) {
        servers.extend(ns.run(move || {
            PORTS
                .iter()
                .map(|p| NamedServer::start(&format!("{cas}:{p}"), &format!("{ip}:{p}")))
                .collect::<Vec<_>>()
        }));
    }
    let ns = &lan.app;
    // Only the interval changes, as the seed allows ("tests may lower it").
    let cfg = SEED.replace("inter 15s", "inter 1s");
    assert_eq!(cfg.lines().count(), SEED.lines().count());
    let lbd = Lbd::start_in_netns(&ns.name, &cfg);

    let c2 = clients.clone();
    ns.run(move || {
        // Every TCP service reaches a CAS on the same port; RPC, Address Book and
        // HTTPS share the `sourceaddr` table, so a client stays on one CAS for all.
        let mut per_cas = std::collections::BTreeMap::new();
        for c in &c2 {
            let rpc = read_name(&connect_from(c, "10.0.0.17:135"));
            let cas = rpc.split(':').next().unwrap_or("").to_owned();
            assert!(rpc == format!("{cas}:135") && !cas.is_empty(), "epm: {rpc}");
            for port in [60000, 60001, 443, 135] {
                let got = read_name(&connect_from(c, &format!("10.0.0.17:{port}")));
                assert_eq!(got, format!("{cas}:{port}"), "client {c} port {port}");
            }
            for port in [143, 993, 110, 995] {
                let got = read_name(&connect_from(c, &format!("10.0.0.17:{port}")));
                assert!(got.ends_with(&format!(":{port}")), "client {c} port {port}: {got}");
            }
            *per_cas.entry(cas).or_insert(0) += 1;
        }
        assert_eq!(per_cas.len(), 2, "clients spread over both CAS: {per_cas:?}");
        // Port 80 redirects, as the seed's ft_exchange_http says.
        let mut s = connect("10.0.0.17:80");
        use std::io::{Read, Write};
        s.write_all(b"GET / HTTP/1.1\r\nHost: mail.xlc.local\r\n\r\n").ok();
        let mut r = String::new();
        s.read_to_string(&mut r).ok();
        assert!(
            r.starts_with("HTTP/1.1 302") && r.to_lowercase().contains("location: /owa/\r\n"),
            "{r}"
        );
        let mut s = connect("10.0.0.17:80");
        s.write_all(b"GET /owa/?a=1 HTTP/1.1\r\nHost: mail.xlc.local\r\n\r\n").ok();
        let mut r = String::new();
        s.read_to_string(&mut r).ok();
        assert!(r.to_lowercase().contains("location: https://mail.xlc.local/owa/?a=1\r\n"), "{r}");
        // The per-CAS monitors answer.
        assert_eq!(http_get("127.0.0.1:1001", "/check").0, 200);
        assert_eq!(http_get("127.0.0.1:1002", "/check").0, 200);
    });

    // CAS1's Address Book service dies: chk_CAS1 fails (nbsrv lt 3), the RPC
    // backends mark CAS1 down and cut its sessions; clients move to CAS2.
    let (held, c1) = ns.run({
        let clients = clients.clone();
        move || {
            for c in &clients {
                let s = connect_from(c, "10.0.0.17:60000");
                if read_name(&s) == "CAS1:60000" {
                    return (s, c.clone());
                }
            }
            panic!("no client on CAS1");
        }
    });
    let idx = PORTS.iter().position(|p| *p == 60001).unwrap_or(2);
    servers[idx].kill();
    lbd.wait_for_log("Server chk_CAS1/CAS1_ab is DOWN", Duration::from_secs(10));
    lbd.wait_for_log("Server bk_exchange_rpc/CAS1 is DOWN", Duration::from_secs(10));
    ns.run(move || {
        use std::io::Read;
        let mut held = held;
        held.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut buf = [0u8; 8];
        assert_eq!(
            held.read(&mut buf).unwrap_or(0),
            0,
            "the RPC session on CAS1 is cut (on-marked-down shutdown-sessions)"
        );
        assert_eq!(http_get("127.0.0.1:1001", "/check").0, 503);
        assert_eq!(
            read_name(&connect_from(&c1, "10.0.0.17:135")),
            "CAS2:135",
            "the client moves to CAS2"
        );
    });
    drop(lbd);
    drop(servers);
}
