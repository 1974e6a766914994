//! The seed's `exchange-ssl.cfg`, unchanged but for its health-check interval,
//! served by lbd inside a network namespace that holds the VIP 10.0.0.17, with
//! CAS1 (10.0.0.15) and CAS2 (10.0.0.16) in their own namespaces: nginx on :80
//! and TCP services on the ports the monitors and IMAP/POP checks use.
//!
//! The test plays the SSL tab: it connects to ft_web's UNIX socket, sends the
//! PROXY header stunnel would send, then HTTP. Every CAS answers through the
//! same port 80, so the backend lbd chose is told by what only that backend
//! does: bk_owa_ecp inserts `SERVERID`; bk_activesync sticks on the
//! Authorization header; bk_oa and bk_ews stick on the source, sharing the
//! `sourceaddr` table; bk_autodiscover and bk_oab keep no persistence.
//!
//! `bind /ssl:web` lands under the implicit global's `unix-bind prefix /run/lbd`:
//! a fixed path, so only one lbd may run this configuration at a time (this
//! file holds one test).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use e2e::harness::*;
use e2e::netns::Lan;
use e2e::web::*;

const SEED: &str = include_str!("../fixtures/exchange-ssl.cfg");
/// TCP services of each CAS: RPC endpoint mapper, CA and Address Book (the
/// chk_CAS monitors need all three), IMAP and POP (their backends check them).
const TCP_PORTS: [u16; 5] = [135, 60000, 60001, 143, 110];
/// `bind /ssl:web` under the implicit `unix-bind prefix /run/lbd`.
const SSL_WEB: &str = "/run/lbd/ssl:web";

/// A connection as the SSL tab opens it: a PROXY v1 header naming the client
/// `src` and the VIP's port 443, then HTTP.
fn tab(src: &str) -> HttpConn {
    let mut c = HttpConn::unix(Path::new(SSL_WEB));
    c.send_raw(format!("PROXY TCP4 {src} 10.0.0.17 40000 443\r\n").as_bytes())
        .expect("PROXY header");
    c
}

/// One request on a new SSL-tab connection from `src`; a 2xx answer expected,
/// its XFF the relayed client, and no `SERVERID` unless `owa`.
fn ask_cas(src: &str, method: &str, path: &str, headers: &[(&str, &str)], owa: bool) -> Answer {
    let r = tab(src).request(
        method,
        path,
        headers,
        if method.starts_with("RPC") { b"0123456789abcdef" } else { b"" },
    );
    assert_eq!(r.status, 200, "{method} {path}: {r:?}");
    let a = r.answer();
    assert_eq!((a.method.as_str(), a.uri.as_str()), (method, path));
    assert_eq!(a.xff, src, "X-Forwarded-For is the client the SSL tab relayed");
    let cookie = r.set_cookie("SERVERID");
    if owa {
        assert_eq!(
            cookie,
            Some(format!("SERVERID={}", a.server)),
            "bk_owa_ecp inserts its cookie: {path}"
        );
    } else {
        assert_eq!(cookie, None, "{path} went to bk_owa_ecp");
    }
    a
}

fn basic(user: &str) -> String {
    format!("Basic {}", base64(format!("{user}:secret").as_bytes()))
}

#[test]
fn seed_exchange_ssl_web_frontend_routes_persists_and_redirects() {
    let lan = Lan::new(
        "sslseed",
        &["10.0.0.17/24", "10.0.0.101/24"],
        &[("cas1", "10.0.0.15/24"), ("cas2", "10.0.0.16/24")],
    );
    let mut tcp = Vec::new();
    let mut web = Vec::new();
    for ((cas, ip), ns) in [("CAS1", "10.0.0.15"), ("CAS2", "10.0.0.16")].into_iter().zip(&lan.hosts) {
        tcp.extend(ns.run(move || {
            TCP_PORTS
                .iter()
                .map(|p| NamedServer::start(&format!("{cas}:{p}"), &format!("{ip}:{p}")))
                .collect::<Vec<_>>()
        }));
        web.push(Nginx::start_in_netns(&ns.name, cas, &[&format!("{ip}:80")]));
    }
    // Only the interval changes, as the seed allows ("tests may lower it").
    let cfg = SEED.replace("inter 15s", "inter 1s");
    assert_eq!(cfg.lines().count(), SEED.lines().count());
    assert_ne!(cfg, SEED);
    let lbd = Lbd::start_in_netns(&lan.app.name, &cfg);
    assert!(
        wait_until(Duration::from_secs(5), || Path::new(SSL_WEB).exists()).is_some(),
        "{SSL_WEB} missing; lbd log:\n{}",
        lbd.log()
    );
    let client = "10.0.0.101";

    // `/` alone goes to OWA (the SSL tab says port 443, so no HTTPS redirect).
    let r = tab(client).get("/");
    assert_eq!((r.status, r.header("location")), (302, Some("/owa")), "{r:?}");

    // bk_owa_ecp, the default: OWA, ECP and anything else, any case.
    for path in [
        "/owa/",
        "/OWA/auth/logon.aspx?replaceCurrent=1",
        "/ecp/",
        "/Ecp/default.aspx",
        "/public/x",
    ] {
        ask_cas(client, "GET", path, &[], true);
    }
    // Its cookie pins a client to a CAS and never reaches the CAS.
    for cas in ["CAS1", "CAS2"] {
        let mut c = tab(client);
        for i in 0..10 {
            let cookie = format!("SERVERID={cas}; session=s{i}");
            let r = c.request("GET", "/owa/", &[("Cookie", &cookie)], b"");
            let a = r.answer();
            assert_eq!(a.server, cas, "request {i} with {cookie}");
            assert_eq!(a.cookie.trim(), format!("session=s{i}"), "SERVERID is removed: {a:?}");
            assert_eq!(r.set_cookie("SERVERID"), None);
        }
    }

    // bk_activesync: each user stays on one CAS, users spread over both.
    let mut per_user = BTreeMap::new();
    for round in 0..3 {
        for user in 0..10 {
            let auth = basic(&format!("user-{user}"));
            let path = if round % 2 == 0 {
                "/Microsoft-Server-ActiveSync?Cmd=Ping"
            } else {
                "/MICROSOFT-SERVER-ACTIVESYNC/default.eas"
            };
            let a = ask_cas(client, "GET", path, &[("Authorization", &auth)], false);
            assert_eq!(a.auth, auth);
            let first = per_user.entry(user).or_insert_with(|| a.server.clone());
            assert_eq!(*first, a.server, "user-{user} moved in round {round}");
        }
    }
    assert_eq!(per_user.values().collect::<BTreeSet<_>>().len(), 2, "{per_user:?}");
    let r = tab(client).get("/Microsoft-Server-ActiveSync");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"x\""));

    // bk_oa and bk_ews: one CAS per client source for both (one `sourceaddr`
    // table), whatever the credentials; sources spread over both CAS.
    let mut per_source = BTreeMap::new();
    for i in 111..=120 {
        let src = format!("10.0.0.{i}");
        let auth = basic(&format!("user-{i}"));
        let auth2 = basic(&format!("other-{i}"));
        let seen: BTreeSet<String> = [
            ("RPC_IN_DATA", "/Rpc/RpcProxy.dll?mail.xlc.local:6001", auth.as_str()),
            ("RPC_OUT_DATA", "/rpc/rpcproxy.dll?mail.xlc.local:6001", auth2.as_str()),
            ("GET", "/EWS/Exchange.asmx", auth.as_str()),
            ("POST", "/ews/exchange.asmx", auth2.as_str()),
            ("RPC_IN_DATA", "/RPC/RPCPROXY.DLL?mail.xlc.local:6002", auth2.as_str()),
        ]
        .into_iter()
        .map(|(method, path, auth)| ask_cas(&src, method, path, &[("Authorization", auth)], false).server)
        .collect();
        assert_eq!(seen.len(), 1, "source {src} moved: {seen:?}");
        per_source.insert(src, seen.into_iter().next().unwrap_or_default());
    }
    assert_eq!(per_source.values().collect::<BTreeSet<_>>().len(), 2, "{per_source:?}");

    // bk_autodiscover and bk_oab: no persistence, one client reaches both CAS.
    for paths in [
        ["/AutoDiscover/AutoDiscover.xml", "/autodiscover/autodiscover.xml"],
        ["/OAB/", "/oab/1234/oab.xml"],
    ] {
        let seen: BTreeSet<String> = (0..6).map(|i| ask_cas(client, "GET", paths[i % 2], &[], false).server).collect();
        assert_eq!(seen.len(), 2, "{paths:?}: {seen:?}");
    }

    // Plain port 80 on the VIP: everything goes to HTTPS first (the seed's own rule).
    lan.app.run(move || {
        for (path, want) in [
            ("/owa/?a=1", "https://mail.xlc.local/owa/?a=1"),
            ("/", "https://mail.xlc.local/"),
            ("/Microsoft-Server-ActiveSync", "https://mail.xlc.local/Microsoft-Server-ActiveSync"),
        ] {
            let r = HttpConn::connect_from(client, "10.0.0.17:80").get(path);
            assert_eq!((r.status, r.header("location")), (302, Some(want)), "{path}: {r:?}");
        }
        // The per-CAS monitors see every TCP service.
        assert_eq!(http_get("127.0.0.1:1001", "/check").0, 200);
        assert_eq!(http_get("127.0.0.1:1002", "/check").0, 200);
    });
    drop(lbd);
    drop(web);
    drop(tcp);
    // lbd was killed, so its socket is left behind; the next lbd would replace it anyway.
    let _ = std::fs::remove_file(SSL_WEB);
}
