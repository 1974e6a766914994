//! The cases, in the order they run. Each returns what it observed (a short
//! text for the table) or why it failed. Cases that share state (a stopped
//! service, held sessions) follow each other and the last of a group restores
//! what the first changed; each case takes fresh client addresses, so no stick
//! table entry of an earlier case decides where it goes.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clients::*;
use crate::world::{lock, lowered, Cas, Source, Variant, World, NS_APP};

pub struct Outcome {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    pub secs: f64,
}

/// What the cases share besides the world: sessions held across cases and
/// results of the timeout probes started in the background.
pub struct Ctx<'a> {
    w: &'a World,
    held: Mutex<Vec<TcpStream>>,
    held_client: Mutex<String>,
    probes: Mutex<BTreeMap<&'static str, Result<Raw, String>>>,
}

type CaseFn = fn(&Ctx) -> Result<String, String>;

struct Case {
    name: &'static str,
    /// Only for this variant (None: both).
    only: Option<Variant>,
    /// Only for this configuration's source (None: both): the guide's traps
    /// as the fixtures keep them, and as the Templates page's wizard fixes them.
    source: Option<Source>,
    run: CaseFn,
}

const fn case(name: &'static str, run: CaseFn) -> Case {
    Case {
        name,
        only: None,
        source: None,
        run,
    }
}

const fn ssl_case(name: &'static str, run: CaseFn) -> Case {
    Case {
        name,
        only: Some(Variant::Ssl),
        source: None,
        run,
    }
}

const fn from(source: Source, c: Case) -> Case {
    Case { source: Some(source), ..c }
}

const CASES: &[Case] = &[
    case("netcfg put the VIP 10.0.0.17 on the appliance", netcfg_vip),
    case("chk_CAS1 and chk_CAS2 answer 200 on /check", monitors_up),
    case("RPC endpoint mapper (135) through the VIP", |c| rpc_port(c, 135)),
    case("RPC Client Access (60000) through the VIP", |c| rpc_port(c, 60000)),
    case("Address Book (60001) through the VIP", |c| rpc_port(c, 60001)),
    case("IMAP (143) login with imaplib", |c| imap(c, 143, false)),
    case("POP3 (110) login with poplib", |c| pop3(c, 110, false)),
    case("IMAPS (993) login with imaplib over TLS", |c| imap(c, 993, true)),
    case("POP3S (995) login with poplib over TLS", |c| pop3(c, 995, true)),
    case("HTTPS (443) with openssl s_client: chain verified, OWA answers", s_client_owa),
    case("OWA /owa/ over HTTPS", |c| https_get(c, "/owa/")),
    case("ECP /ecp/ over HTTPS", |c| https_get(c, "/ecp/")),
    case("EWS /EWS/Exchange.asmx over HTTPS", |c| https_get(c, "/EWS/Exchange.asmx")),
    case("OAB /OAB/ over HTTPS", |c| https_get(c, "/OAB/")),
    case("Autodiscover POST /autodiscover/autodiscover.xml", autodiscover),
    case("ActiveSync: 401 without Authorization, 200 with", activesync_auth),
    case("Outlook Anywhere RPC_IN_DATA (1 MiB) and RPC_OUT_DATA", outlook_anywhere),
    case("port 80 redirects to https://mail.xlc.local", port80_redirect),
    case("/ redirects to /owa", root_redirect),
    ssl_case("routing: /Microsoft-Server-ActiveSync (any case) to bk_activesync", |c| {
        route_case(
            c,
            "bk_activesync",
            &[
                "/Microsoft-Server-ActiveSync?Cmd=Sync",
                "/MICROSOFT-SERVER-ACTIVESYNC",
                "/microsoft-server-activesync/x",
            ],
        )
    }),
    ssl_case("routing: /rpc/rpcproxy.dll (any case) to bk_oa", |c| {
        route_case(
            c,
            "bk_oa",
            &["/rpc/rpcproxy.dll?mail.xlc.local:6001", "/RPC/RpcProxy.dll?x", "/Rpc/rpcproxy.DLL"],
        )
    }),
    ssl_case("routing: /autodiscover (any case) to bk_autodiscover", |c| {
        route_case(
            c,
            "bk_autodiscover",
            &["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml", "/AUTODISCOVER/"],
        )
    }),
    ssl_case("routing: /ews (any case) to bk_ews", |c| {
        route_case(c, "bk_ews", &["/ews/exchange.asmx", "/EWS/Exchange.asmx", "/Ews/"])
    }),
    ssl_case("routing: /oab (any case) to bk_oab", |c| {
        route_case(c, "bk_oab", &["/oab/", "/OAB/x.lzx", "/Oab"])
    }),
    ssl_case("routing: /owa, /ecp and anything else to bk_owa_ecp", |c| {
        route_case(c, "bk_owa_ecp", &["/owa/", "/ECP/", "/OWA/auth/logon.aspx", "/other"])
    }),
    case(
        "sourceaddr: RPC, Address Book and HTTPS/Outlook Anywhere keep a client on one CAS",
        shared_stickiness,
    ),
    case("leastconn spreads new clients over both CAS", leastconn_spread),
    ssl_case("ActiveSync: one user stays on one CAS from any address", activesync_pinned),
    ssl_case("ActiveSync: different users spread over both CAS", activesync_spread),
    ssl_case("OWA: SERVERID cookie inserted and honoured (indirect, nocache)", owa_cookie),
    ssl_case("X-Forwarded-For carries the client through the SSL offload and PROXY protocol", xff),
    case("an RPC port failing on CAS1 turns chk_CAS1's /check into 503", rpc_port_fails),
    case("CAS1 leaves every RPC backend, CAS2 stays", cas1_leaves_rpc),
    case("open RPC and Address Book sessions on CAS1 are cut", rpc_sessions_cut),
    case("the client that was on CAS1 moves to CAS2", rpc_client_moves),
    case("CAS1 returns to the RPC backends once its port is back", rpc_returns),
    case("nginx stopping on CAS1: HTTP clients see no error", nginx_stop_no_error),
    case("with nginx down on CAS1, all HTTP goes to CAS2", nginx_all_on_cas2),
    case("nginx back on CAS1: CAS1 returns after rise checks", nginx_returns),
    case(
        "dovecot stopping cuts its IMAP sessions (on-marked-down shutdown-sessions)",
        dovecot_stop_cuts,
    ),
    case("new IMAP and POP3 logins land on the other CAS", dovecot_others),
    case("dovecot back: its CAS returns to IMAP and POP3", dovecot_returns),
    from(
        Source::Fixtures,
        ssl_case("quirk: rstatus (2|3|401) keeps a CAS answering 503 in rotation", rstatus_quirk),
    ),
    from(
        Source::Fixtures,
        case(
            "quirk: the IMAP backend's `option httpchk` against 143 marks both down",
            imap_httpchk_quirk,
        ),
    ),
    from(
        Source::Wizard,
        ssl_case(
            "fixed: the anchored status check takes a CAS answering 503 out of rotation",
            rstatus_fixed,
        ),
    ),
    from(
        Source::Wizard,
        case(
            "fixed: the IMAP backend checks 143 with a plain connection: both CAS stay up",
            imap_fixed,
        ),
    ),
    from(
        Source::Wizard,
        ssl_case(
            "fixed: Authorization values alike in their first 32 bytes are told apart (len 512)",
            authorization_len_fixed,
        ),
    ),
    case("an incomplete request gets 408 after timeout http-request", |c| probe(c, "408")),
    case("a client that sends nothing is closed at timeout http-request", |c| {
        probe(c, "silent")
    }),
    case("an idle keep-alive client is closed after timeout http-keep-alive", |c| {
        probe(c, "idle")
    }),
];

/// Runs every case of the world's variant (or those whose name holds `only`).
pub fn run_all(w: &World, only: Option<&str>) -> Vec<Outcome> {
    let ctx = Ctx {
        w,
        held: Mutex::new(Vec::new()),
        held_client: Mutex::new(String::new()),
        probes: Mutex::new(BTreeMap::new()),
    };
    let selected: Vec<&Case> = CASES
        .iter()
        .filter(|c| c.only.is_none_or(|v| v == w.variant))
        .filter(|c| c.source.is_none_or(|s| s == w.source))
        .filter(|c| only.is_none_or(|o| c.name.contains(o)))
        .collect();
    let mut out = Vec::new();
    std::thread::scope(|s| {
        // The timeout probes take 15 s and more: they run beside the others.
        if selected.iter().any(|c| c.name.contains("timeout")) {
            start_probes(&ctx, s);
        }
        for (i, c) in selected.iter().enumerate() {
            let t = Instant::now();
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| (c.run)(&ctx)));
            let (passed, detail) = match r {
                Ok(Ok(d)) => (true, d),
                Ok(Err(e)) => (false, e),
                Err(p) => (false, format!("panic: {}", panic_text(&p))),
            };
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{:>3} {} {} ({secs:.1} s): {detail}",
                i + 1,
                if passed { "PASS" } else { "FAIL" },
                c.name
            );
            out.push(Outcome {
                name: c.name,
                passed,
                detail,
                secs,
            });
        }
    });
    if out.iter().any(|o| !o.passed) {
        eprintln!("--- proxy log (last 60 lines)");
        let log = w.proxy_log();
        let lines: Vec<&str> = log.lines().collect();
        for l in &lines[lines.len().saturating_sub(60)..] {
            eprintln!("{l}");
        }
    }
    out
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// The outcome table, Markdown.
pub fn table(title: &str, results: &[Outcome], took: Duration) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    let mut t = format!(
        "### {title}: {passed}/{} passed in {:.0} s\n\n| # | case | outcome | s | observed |\n|---|---|---|---|---|\n",
        results.len(),
        took.as_secs_f64()
    );
    for (i, r) in results.iter().enumerate() {
        let detail = r.detail.replace('|', "\\|").replace('\n', " ");
        t.push_str(&format!(
            "| {} | {} | {} | {:.1} | {} |\n",
            i + 1,
            r.name.replace('|', "\\|"),
            if r.passed { "pass" } else { "FAIL" },
            r.secs,
            detail
        ));
    }
    t
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

/// Polls `f` every 100 ms until it holds or `limit` passes; the time it took.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<f64> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return Some(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn url(path: &str) -> String {
    format!("https://mail.xlc.local{path}")
}

fn other(cas: &str) -> &'static str {
    if cas == "CAS1" {
        "CAS2"
    } else {
        "CAS1"
    }
}

/// The HTTP backends that reach the CAS's nginx.
fn http_backends(c: &Ctx) -> &'static [&'static str] {
    match c.w.variant {
        Variant::NoSsl => &["bk_exchange_https"],
        Variant::Ssl => &["bk_activesync", "bk_oa", "bk_autodiscover", "bk_ews", "bk_oab", "bk_owa_ecp"],
    }
}

// ---- reachability -------------------------------------------------------

fn netcfg_vip(c: &Ctx) -> Result<String, String> {
    let out = std::process::Command::new("ip")
        .args(["-n", NS_APP, "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .map_err(|e| e.to_string())?;
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    ensure(shown.contains("10.0.0.17/24") && shown.contains("10.0.0.2/24"), || {
        format!("eth0: {shown}")
    })?;
    let plan = std::process::Command::new("ip")
        .args(["netns", "exec", NS_APP])
        .arg(e2e::netcfg_bin())
        .arg("-c")
        .arg(c.w.dir.path.join("network.toml"))
        .arg("plan")
        .output()
        .map_err(|e| e.to_string())?;
    let plan = String::from_utf8_lossy(&plan.stdout).trim().to_owned();
    ensure(plan.contains("no change"), || format!("plan after apply: {plan}"))?;
    Ok(format!("eth0 holds 10.0.0.2/24 and VIP 10.0.0.17/24; netcfg plan: {plan}"))
}

fn monitors_up(_: &Ctx) -> Result<String, String> {
    let a = curl_app("http://127.0.0.1:1001/check")?;
    let b = curl_app("http://127.0.0.1:1002/check")?;
    ensure(a == 200 && b == 200, || format!("/check: {a} {b}"))?;
    Ok("200, 200".into())
}

fn rpc_port(c: &Ctx, port: u16) -> Result<String, String> {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let name = tcp_name(&c.w.fresh_client(), port)?;
        ensure(name == format!("{}:{port}", cas_of(&name)), || format!("greeting {name}"))?;
        seen.push(name);
    }
    Ok(seen.join(", "))
}

fn imap(c: &Ctx, port: u16, tls: bool) -> Result<String, String> {
    let g = imap_login(&c.w.fresh_client(), &c.w.ca(), port, tls, "alice")?;
    ensure(!cas_of(&g).is_empty(), || format!("greeting {g}"))?;
    Ok(format!("{g}; LOGIN and SELECT OK"))
}

fn pop3(c: &Ctx, port: u16, tls: bool) -> Result<String, String> {
    let g = pop3_login(&c.w.fresh_client(), &c.w.ca(), port, tls, "bob")?;
    ensure(!cas_of(&g).is_empty(), || format!("greeting {g}"))?;
    Ok(format!("{g}; USER/PASS and STAT OK"))
}

fn s_client_owa(c: &Ctx) -> Result<String, String> {
    let out = s_client(
        &c.w.fresh_client(),
        &c.w.ca(),
        443,
        "GET /owa/ HTTP/1.0\r\nHost: mail.xlc.local\r\n\r\n",
    )?;
    ensure(out.contains("Verify return code: 0 (ok)"), || format!("not verified: {out}"))?;
    ensure(out.contains("CN = mail.xlc.local"), || "subject is not mail.xlc.local".into())?;
    let status = out.lines().find(|l| l.starts_with("HTTP/1.")).unwrap_or_default().to_owned();
    ensure(status.contains(" 200"), || format!("answer: {status}"))?;
    let cas = out.lines().map(cas_of).find(|s| !s.is_empty()).unwrap_or_default();
    ensure(!cas.is_empty(), || "no CAS named".into())?;
    let proto = out
        .lines()
        .find(|l| l.contains("Protocol  :"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(format!("chain verified for mail.xlc.local, {proto}; {status} from {cas}"))
}

fn https_get(c: &Ctx, path: &str) -> Result<String, String> {
    let r = curl(&c.w.fresh_client(), &c.w.ca(), &url(path), &[])?;
    ensure(r.status == 200 && !r.cas().is_empty(), || format!("{} {}", r.status, r.body))?;
    ensure(r.body.contains(&format!("GET {path} ")), || format!("the CAS saw: {}", r.body))?;
    Ok(format!("200 from {}", r.cas()))
}

fn autodiscover(c: &Ctx) -> Result<String, String> {
    let body = "<?xml version=\"1.0\"?><Autodiscover><Request><EMailAddress>alice@xlc.local</EMailAddress></Request></Autodiscover>";
    let r = curl(
        &c.w.fresh_client(),
        &c.w.ca(),
        &url("/autodiscover/autodiscover.xml"),
        &["-X", "POST", "-H", "Content-Type: text/xml", "--data-binary", body],
    )?;
    ensure(r.status == 200 && r.body.contains("POST /autodiscover/autodiscover.xml"), || {
        format!("{} {}", r.status, r.body)
    })?;
    Ok(format!("200 from {}", r.cas()))
}

fn activesync_auth(c: &Ctx) -> Result<String, String> {
    let p = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=d1&DeviceType=phone";
    let r = curl(&c.w.fresh_client(), &c.w.ca(), &url(p), &["-X", "POST"])?;
    ensure(r.status == 401 && r.header("WWW-Authenticate").is_some(), || {
        format!("without auth: {} {:?}", r.status, r.headers)
    })?;
    let r2 = curl(&c.w.fresh_client(), &c.w.ca(), &url(p), &["-X", "POST", "-u", "alice:secret"])?;
    ensure(r2.status == 200 && r2.field("auth").starts_with("Basic"), || {
        format!("with auth: {} {}", r2.status, r2.body)
    })?;
    Ok(format!(
        "401 from {} with WWW-Authenticate; 200 from {} with Basic",
        r.cas(),
        r2.cas()
    ))
}

fn outlook_anywhere(c: &Ctx) -> Result<String, String> {
    let f = c.w.dir.path.join("rpc-body");
    std::fs::write(&f, vec![b'r'; 1 << 20]).map_err(|e| e.to_string())?;
    let data = format!("@{}", f.display());
    let p = "/rpc/rpcproxy.dll?mail.xlc.local:6001";
    let src = c.w.fresh_client();
    let r = curl(
        &src,
        &c.w.ca(),
        &url(p),
        &[
            "-X",
            "RPC_IN_DATA",
            "-H",
            "User-Agent: MSRPC",
            "-H",
            "Expect:",
            "--data-binary",
            &data,
        ],
    )?;
    ensure(r.status == 200 && r.body.contains("RPC_IN_DATA /rpc/rpcproxy.dll"), || {
        format!("{} {}", r.status, r.body)
    })?;
    let r2 = curl(&src, &c.w.ca(), &url(p), &["-X", "RPC_OUT_DATA", "-H", "User-Agent: MSRPC"])?;
    ensure(r2.status == 200 && r2.body.contains("RPC_OUT_DATA /rpc/rpcproxy.dll"), || {
        format!("{} {}", r2.status, r2.body)
    })?;
    ensure(r.cas() == r2.cas(), || format!("IN on {}, OUT on {}", r.cas(), r2.cas()))?;
    Ok(format!("RPC_IN_DATA (1 MiB) and RPC_OUT_DATA 200, both on {}", r.cas()))
}

fn port80_redirect(c: &Ctx) -> Result<String, String> {
    let r = curl(&c.w.fresh_client(), &c.w.ca(), "http://mail.xlc.local/ews/exchange.asmx?x=1", &[])?;
    let loc = r.header("Location").unwrap_or_default();
    ensure(r.status == 302 && loc == "https://mail.xlc.local/ews/exchange.asmx?x=1", || {
        format!("{} {loc}", r.status)
    })?;
    Ok(format!("302 Location: {loc}"))
}

fn root_redirect(c: &Ctx) -> Result<String, String> {
    let (u, want) = match c.w.variant {
        Variant::NoSsl => ("http://mail.xlc.local/", "/owa/"),
        Variant::Ssl => ("https://mail.xlc.local/", "/owa"),
    };
    let r = curl(&c.w.fresh_client(), &c.w.ca(), u, &[])?;
    let loc = r.header("Location").unwrap_or_default();
    ensure(r.status == 302 && loc == want, || format!("{} {loc}", r.status))?;
    Ok(format!("{u} gives 302 Location: {loc}"))
}

// ---- routing ------------------------------------------------------------

/// Each backend's `stot` (the pasted configuration's: not lbd's own
/// `ssl:SERVICE` proxies for the SSL tab).
fn backend_totals(c: &Ctx) -> BTreeMap<String, u64> {
    c.w.stat()
        .into_iter()
        .filter(|s| s.sv == "BACKEND" && !s.px.starts_with("ssl:"))
        .map(|s| (s.px, s.stot))
        .collect()
}

fn route_case(c: &Ctx, backend: &str, paths: &[&str]) -> Result<String, String> {
    let mut seen = Vec::new();
    for p in paths {
        let before = backend_totals(c);
        let mut extra = vec!["-u", "alice:secret"];
        if p.to_ascii_lowercase().starts_with("/rpc/") {
            extra.extend(["-X", "RPC_IN_DATA", "--data-binary", "0123456789"]);
        }
        let r = curl(&c.w.fresh_client(), &c.w.ca(), &url(p), &extra)?;
        ensure(r.status == 200, || format!("{p}: {} {}", r.status, r.body))?;
        let after = backend_totals(c);
        let went: Vec<&String> = after
            .iter()
            .filter(|(b, n)| before.get(*b).is_none_or(|m| *n > m))
            .map(|(b, _)| b)
            .collect();
        ensure(went.len() == 1 && went[0] == backend, || format!("{p} went to {went:?}"))?;
        seen.push(format!("{p} -> {} ({})", went[0], r.cas()));
    }
    Ok(seen.join("; "))
}

// ---- persistence --------------------------------------------------------

/// The CAS a request over HTTPS lands on (Outlook Anywhere with SSL
/// offloading, OWA through the TCP forward without).
fn https_cas(c: &Ctx, src: &str) -> Result<String, String> {
    let r = match c.w.variant {
        Variant::Ssl => curl(
            src,
            &c.w.ca(),
            &url("/rpc/rpcproxy.dll?mail.xlc.local:6001"),
            &["-X", "RPC_IN_DATA", "--data-binary", "0123456789"],
        )?,
        Variant::NoSsl => curl(src, &c.w.ca(), &url("/owa/"), &[])?,
    };
    ensure(r.status == 200, || format!("{} {}", r.status, r.body))?;
    Ok(r.cas())
}

/// Holds a new client's session on `port` and tells which CAS `backend` gave
/// it (from `scur` in `show stat`): leastconn then sends the next new client
/// to the other CAS.
fn tcp_ballast(c: &Ctx, port: u16, backend: &str) -> Result<(TcpStream, String), String> {
    let before = scur(c, backend);
    let s = tcp_connect(&c.w.fresh_client(), port)?;
    let mut got = String::new();
    wait_for(Duration::from_secs(3), || {
        let now = scur(c, backend);
        got = now
            .iter()
            .find(|(sv, n)| before.get(*sv).is_none_or(|b| *n > b))
            .map(|(sv, _)| sv.clone())
            .unwrap_or_default();
        !got.is_empty()
    })
    .ok_or_else(|| format!("no server of {backend} took the held session"))?;
    Ok((s, got))
}

/// Current sessions per server of `backend`.
fn scur(c: &Ctx, backend: &str) -> BTreeMap<String, u64> {
    c.w.stat()
        .into_iter()
        .filter(|s| s.px == backend && s.is_server())
        .map(|s| (s.sv, s.scur))
        .collect()
}

/// A session held on `cas` in `backend` (through `port`) and none elsewhere:
/// new clients' sessions that land elsewhere are kept while trying (so
/// leastconn sends the next one to `cas`), then closed.
fn hold_on(c: &Ctx, port: u16, backend: &str, cas: &str) -> Result<TcpStream, String> {
    let mut elsewhere = Vec::new();
    for _ in 0..4 {
        let (s, on) = tcp_ballast(c, port, backend)?;
        if on == cas {
            drop(elsewhere);
            // The closed ones leave the backend before the case goes on.
            wait_for(Duration::from_secs(3), || {
                scur(c, backend).iter().all(|(sv, n)| sv == cas || *n == 0)
            });
            return Ok(s);
        }
        elsewhere.push(s);
    }
    Err(format!("no session of {backend} landed on {cas}"))
}

fn shared_stickiness(c: &Ctx) -> Result<String, String> {
    let https_backend = match c.w.variant {
        Variant::NoSsl => "bk_exchange_https",
        Variant::Ssl => "bk_oa",
    };
    let mut seen = Vec::new();
    for round in 0..4 {
        // The client first: its endpoint-mapper session puts it on CAS B in `sourceaddr`.
        let src = c.w.fresh_client();
        let b = cas_of(&tcp_name(&src, 135)?);
        // Then a session held on B in the Address Book backend, none on the
        // other: leastconn alone would send a new client to the other CAS.
        let _ab = hold_on(c, 60001, "bk_exchange_ab", &b)?;
        for port in [60000, 60001, 135] {
            let got = cas_of(&tcp_name(&src, port)?);
            ensure(got == b, || {
                format!("round {round}: {src} on {b} by 135, on {got} by {port} (Address Book held on {b})")
            })?;
        }
        // The same in the HTTPS backend: a held TCP session (TCP forward), or with
        // SSL offloading, a request from another new client on B just before
        // (leastconn hands the next new client to the other CAS).
        let _https = match c.w.variant {
            Variant::NoSsl => Some(hold_on(c, 443, https_backend, &b)?),
            Variant::Ssl => {
                for _ in 0..4 {
                    if https_cas(c, &c.w.fresh_client())? == b {
                        break;
                    }
                }
                None
            }
        };
        let h = https_cas(c, &src)?;
        ensure(h == b, || {
            format!("round {round}: {src} on {b} for RPC, on {h} for {https_backend}")
        })?;
        seen.push(format!("{src}:{b}"));
    }
    Ok(format!(
        "each client on one CAS for 135/60000/60001/{https_backend}, against leastconn's choice: {}",
        seen.join(", ")
    ))
}

fn leastconn_spread(c: &Ctx) -> Result<String, String> {
    // Three sessions held on one CAS (X), none on the other...
    let mut held: Vec<(TcpStream, String)> = Vec::new();
    let x = loop {
        let s = tcp_connect(&c.w.fresh_client(), 60001)?;
        let cas = cas_of(&greeting(&s));
        held.push((s, cas.clone()));
        if held.iter().filter(|(_, k)| *k == cas).count() == 3 {
            break cas;
        }
        ensure(held.len() < 8, || "no three sessions on one CAS".into())?;
    };
    held.retain(|(_, k)| *k == x);
    // ...so the next three new clients all go to the other (round robin would alternate).
    let mut next = Vec::new();
    for _ in 0..3 {
        let s = tcp_connect(&c.w.fresh_client(), 60001)?;
        next.push(cas_of(&greeting(&s)));
        held.push((s, String::new()));
    }
    ensure(next.iter().all(|n| n == other(&x)), || {
        format!("3 held on {x}, then new clients on {next:?}")
    })?;
    Ok(format!("3 sessions held on {x}: the next 3 new clients all on {}", other(&x)))
}

fn activesync_pinned(c: &Ctx) -> Result<String, String> {
    let p = url("/Microsoft-Server-ActiveSync?Cmd=Ping");
    let mut cas = Vec::new();
    for _ in 0..5 {
        let r = curl(&c.w.fresh_client(), &c.w.ca(), &p, &["-X", "POST", "-u", "alice:secret"])?;
        ensure(r.status == 200, || format!("{} {}", r.status, r.body))?;
        cas.push(r.cas());
    }
    ensure(cas.iter().all(|x| *x == cas[0]), || format!("alice moved: {cas:?}"))?;
    Ok(format!("alice from 5 addresses: all on {}", cas[0]))
}

fn activesync_spread(c: &Ctx) -> Result<String, String> {
    let p = url("/Microsoft-Server-ActiveSync?Cmd=Sync");
    let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..8 {
        let user = format!("user{i}:secret");
        let src = c.w.fresh_client();
        let r = curl(&src, &c.w.ca(), &p, &["-X", "POST", "-u", &user])?;
        let r2 = curl(&src, &c.w.ca(), &p, &["-X", "POST", "-u", &user])?;
        ensure(r.cas() == r2.cas() && r.status == 200 && r2.status == 200, || {
            format!("user{i}: {} then {}", r.cas(), r2.cas())
        })?;
        per.entry(r.cas()).or_default().push(format!("user{i}"));
    }
    ensure(per.len() == 2, || format!("users on one CAS: {per:?}"))?;
    Ok(format!("{per:?}"))
}

fn owa_cookie(c: &Ctx) -> Result<String, String> {
    let r = curl(&c.w.fresh_client(), &c.w.ca(), &url("/owa/"), &[])?;
    let set = r.header("Set-Cookie").unwrap_or_default();
    let cas = r.cas();
    ensure(set.starts_with(&format!("SERVERID={cas}")), || {
        format!("Set-Cookie {set:?} from {cas}")
    })?;
    // `nocache` marks only what a shared cache could keep: not this answer
    // (no freshness), but a static file nginx sends with Expires and max-age.
    ensure(r.header("Cache-Control").is_none(), || {
        format!("{:?} on an uncacheable answer", r.header("Cache-Control"))
    })?;
    let st = curl(&c.w.fresh_client(), &c.w.ca(), &url("/owa/static/logo.png"), &[])?;
    let cc: Vec<String> = st
        .headers
        .iter()
        .filter(|h| h.to_ascii_lowercase().starts_with("cache-control:"))
        .cloned()
        .collect();
    ensure(
        st.header("Set-Cookie").is_some() && cc.iter().any(|h| h.to_ascii_lowercase().contains("private")),
        || format!("static file: Set-Cookie {:?}, {cc:?}", st.header("Set-Cookie")),
    )?;
    let cookie = format!("SERVERID={cas}; other=1");
    for _ in 0..6 {
        let r2 = curl(&c.w.fresh_client(), &c.w.ca(), &url("/ecp/"), &["-H", &format!("Cookie: {cookie}")])?;
        ensure(r2.cas() == cas, || format!("cookie {cas} but answered by {}", r2.cas()))?;
        ensure(!r2.field("cookie").contains("SERVERID"), || {
            format!("the CAS saw SERVERID: {}", r2.body)
        })?;
        ensure(r2.header("Set-Cookie").is_none(), || "cookie set again".into())?;
    }
    Ok(format!(
        "{set}; a cacheable static file also gets {}; 6 requests with the cookie from other addresses all on {cas}, the cookie removed before the CAS",
        cc.join(" + ")
    ))
}

fn xff(c: &Ctx) -> Result<String, String> {
    let mut seen = Vec::new();
    for p in ["/owa/", "/ews/exchange.asmx", "/oab/"] {
        let src = c.w.fresh_client();
        let r = curl(&src, &c.w.ca(), &url(p), &[])?;
        ensure(r.field("xff") == src, || format!("{p} from {src}: CAS saw xff={}", r.field("xff")))?;
        seen.push(format!("{src}->{}", r.field("xff")));
    }
    Ok(format!("X-Forwarded-For as the CAS saw it: {}", seen.join(", ")))
}

// ---- health: RPC --------------------------------------------------------

fn rpc_port_fails(c: &Ctx) -> Result<String, String> {
    // First a client on CAS1, its RPC and Address Book sessions held open.
    let mut found = None;
    for _ in 0..6 {
        let src = c.w.fresh_client();
        let s = tcp_connect(&src, 135)?;
        if cas_of(&greeting(&s)) == "CAS1" {
            found = Some((src, s));
            break;
        }
    }
    let (src, s) = found.ok_or("no new client landed on CAS1")?;
    let mut held = vec![s];
    for port in [60000, 60001] {
        let s = tcp_connect(&src, port)?;
        let g = greeting(&s);
        ensure(cas_of(&g) == "CAS1", || format!("{src} on {port}: {g}"))?;
        held.push(s);
    }
    *lock(&c.held) = held;
    *lock(&c.held_client) = src.clone();
    c.w.cas("CAS1").stop_rpc(60001);
    let t = wait_for(Duration::from_secs(10), || curl_app("http://127.0.0.1:1001/check") == Ok(503))
        .ok_or("chk_CAS1 still not 503 after 10 s")?;
    let other = curl_app("http://127.0.0.1:1002/check")?;
    ensure(other == 200, || format!("chk_CAS2 {other}"))?;
    Ok(format!(
        "CAS1:60001 stopped; /check on 1001 gave 503 after {t:.1} s, 1002 still 200"
    ))
}

fn cas1_leaves_rpc(c: &Ctx) -> Result<String, String> {
    let t = wait_for(Duration::from_secs(10), || {
        ["bk_exchange_rpc", "bk_exchange_ab"]
            .iter()
            .all(|b| c.w.status(b, "CAS1").starts_with("DOWN"))
    })
    .ok_or_else(|| {
        format!(
            "rpc {}, ab {}",
            c.w.status("bk_exchange_rpc", "CAS1"),
            c.w.status("bk_exchange_ab", "CAS1")
        )
    })?;
    let up = ["bk_exchange_rpc", "bk_exchange_ab"]
        .iter()
        .all(|b| c.w.status(b, "CAS2").starts_with("UP"));
    ensure(up, || "CAS2 not UP".into())?;
    Ok(format!("CAS1 DOWN in bk_exchange_rpc and bk_exchange_ab {t:.1} s later; CAS2 UP"))
}

fn rpc_sessions_cut(c: &Ctx) -> Result<String, String> {
    let held = std::mem::take(&mut *lock(&c.held));
    ensure(held.len() == 3, || format!("{} sessions held", held.len()))?;
    let cut = held.iter().filter(|s| closed_within(s, Duration::from_secs(5))).count();
    ensure(cut == 3, || format!("{cut} of 3 sessions cut"))?;
    Ok("the held 135, 60000 and 60001 sessions on CAS1 were closed".into())
}

fn rpc_client_moves(c: &Ctx) -> Result<String, String> {
    let src = lock(&c.held_client).clone();
    ensure(!src.is_empty(), || "no client from the case before".into())?;
    let mut got = Vec::new();
    for port in [135, 60000, 60001] {
        let n = tcp_name(&src, port)?;
        ensure(n == format!("CAS2:{port}"), || format!("{src} on {port}: {n}"))?;
        got.push(n);
    }
    Ok(format!("{src} now on {}", got.join(", ")))
}

fn rpc_returns(c: &Ctx) -> Result<String, String> {
    c.w.cas("CAS1").start_rpc(60001);
    let t1 = wait_for(Duration::from_secs(10), || curl_app("http://127.0.0.1:1001/check") == Ok(200))
        .ok_or("chk_CAS1 not 200 again within 10 s")?;
    let t2 = wait_rise(c, &["bk_exchange_rpc", "bk_exchange_ab"], "CAS1", Duration::from_secs(10))?;
    Ok(format!(
        "/check 200 after {t1:.1} s; CAS1 rising (DOWN 1/2) then UP {t2:.1} s later"
    ))
}

/// Waits until `server` is UP in every backend of `backends`, watching for the
/// rising state (`DOWN 1/2`) on the way; returns the seconds it took.
fn wait_rise(c: &Ctx, backends: &[&str], server: &str, limit: Duration) -> Result<f64, String> {
    let mut rising = false;
    let t = wait_for(limit, || {
        let st: Vec<String> = backends.iter().map(|b| c.w.status(b, server)).collect();
        rising |= st.iter().any(|s| s.starts_with("DOWN 1/"));
        st.iter().all(|s| s == "UP")
    })
    .ok_or_else(|| format!("{server} not UP within {limit:?}"))?;
    ensure(rising, || format!("{server} came UP without a rising state (DOWN 1/2) seen"))?;
    ensure(t >= 0.9, || {
        format!("{server} UP after {t:.1} s: fewer than rise (2) checks at 1 s")
    })?;
    Ok(t)
}

// ---- health: nginx ------------------------------------------------------

/// One HTTPS request as a client of the HTTP services would make it.
fn http_probe(c: &Ctx, src: &str, i: usize) -> Result<Curl, String> {
    match c.w.variant {
        Variant::NoSsl => curl(src, &c.w.ca(), &url("/owa/"), &[]),
        Variant::Ssl => match i % 3 {
            0 => curl(src, &c.w.ca(), &url("/owa/"), &["-H", "Cookie: SERVERID=CAS1"]),
            1 => curl(src, &c.w.ca(), &url("/ews/exchange.asmx"), &[]),
            _ => curl(src, &c.w.ca(), &url("/oab/"), &[]),
        },
    }
}

fn nginx_stop_no_error(c: &Ctx) -> Result<String, String> {
    // Clients that were on CAS1 (by stick table or cookie) keep asking.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let src = c.w.fresh_client();
        if http_probe(c, &src, 0)?.cas() == "CAS1" {
            clients.push(src);
        }
        if clients.len() == 2 {
            break;
        }
    }
    ensure(!clients.is_empty(), || "no client on CAS1".into())?;
    lock(&c.w.cas("CAS1").nginx).kill();
    let t = Instant::now();
    let mut n = 0;
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    let mut down_at = None;
    while t.elapsed() < Duration::from_secs(20) {
        let src = &clients[n % clients.len()];
        let r = http_probe(c, src, n)?;
        ensure(r.status == 200, || {
            format!(
                "request {n} ({:.1} s after the stop): {} {}",
                t.elapsed().as_secs_f64(),
                r.status,
                r.body
            )
        })?;
        *per.entry(r.cas()).or_insert(0) += 1;
        n += 1;
        let all_down = http_backends(c).iter().all(|b| c.w.status(b, "CAS1").starts_with("DOWN"));
        if all_down && down_at.is_none() {
            down_at = Some(t.elapsed().as_secs_f64());
        }
        if down_at.is_some_and(|d| t.elapsed().as_secs_f64() > d + 1.0) && n >= 6 {
            break;
        }
    }
    let d = down_at.ok_or("CAS1 never marked down")?;
    Ok(format!(
        "{n} requests during and after the stop all 200 ({per:?}); CAS1 DOWN everywhere after {d:.1} s"
    ))
}

fn nginx_all_on_cas2(c: &Ctx) -> Result<String, String> {
    for b in http_backends(c) {
        let s = c.w.status(b, "CAS1");
        ensure(s.starts_with("DOWN"), || format!("{b}/CAS1 {s}"))?;
    }
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let r = http_probe(c, &c.w.fresh_client(), i)?;
        ensure(r.status == 200, || format!("{} {}", r.status, r.body))?;
        *per.entry(r.cas()).or_insert(0) += 1;
    }
    ensure(per.len() == 1 && per.contains_key("CAS2"), || format!("{per:?}"))?;
    Ok(format!("CAS1 DOWN in {}; 6 new clients: {per:?}", http_backends(c).join(", ")))
}

fn nginx_returns(c: &Ctx) -> Result<String, String> {
    lock(&c.w.cas("CAS1").nginx).restart();
    let t = wait_rise(c, http_backends(c), "CAS1", Duration::from_secs(15))?;
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        let r = match c.w.variant {
            Variant::Ssl => curl(&c.w.fresh_client(), &c.w.ca(), &url(["/owa/", "/oab/"][i % 2]), &[])?,
            Variant::NoSsl => http_probe(c, &c.w.fresh_client(), i)?,
        };
        ensure(r.status == 200, || format!("{} {}", r.status, r.body))?;
        *per.entry(r.cas()).or_insert(0) += 1;
    }
    ensure(per.contains_key("CAS1"), || format!("new clients: {per:?}"))?;
    Ok(format!(
        "CAS1 rising (DOWN 1/2), then UP in every HTTP backend {t:.1} s after nginx restarted; new clients {per:?}"
    ))
}

// ---- health: dovecot ----------------------------------------------------

fn imap_sessions_alive(ns: &str) -> usize {
    let out = std::process::Command::new("ip").args(["netns", "pids", ns]).output();
    let pids = out.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
    pids.split_whitespace()
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "imap"))
        .count()
}

fn dovecot_stop_cuts(c: &Ctx) -> Result<String, String> {
    let src = c.w.fresh_client();
    let (s, g) = imap_hold(&src, 143, "carol")?;
    let cas = cas_of(&g);
    ensure(!cas.is_empty(), || format!("greeting {g}"))?;
    *lock(&c.held_client) = cas.clone();
    let target = c.w.cas(&cas);
    lock(&target.dovecot).kill();
    let alive = imap_sessions_alive(target.ns);
    let t = wait_for(Duration::from_secs(10), || c.w.status("bk_exchange_imap", &cas).starts_with("DOWN"))
        .ok_or("not marked down in bk_exchange_imap")?;
    ensure(closed_within(&s, Duration::from_secs(5)), || "the IMAP session stayed open".into())?;
    ensure(alive >= 1, || "dovecot ended the session itself (no imap process left)".into())?;
    Ok(format!(
        "session on {cas} (its imap process alive after dovecot stopped): {cas} DOWN after {t:.1} s and the session cut"
    ))
}

fn dovecot_others(c: &Ctx) -> Result<String, String> {
    let down = lock(&c.held_client).clone();
    let want = other(&down);
    wait_for(Duration::from_secs(10), || c.w.status("bk_exchange_pop", &down).starts_with("DOWN"))
        .ok_or("POP3 backend did not mark it down")?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let g = imap_login(&c.w.fresh_client(), &c.w.ca(), 143, false, "alice")?;
        ensure(cas_of(&g) == want, || format!("IMAP login on {g}"))?;
        seen.push(cas_of(&g));
    }
    let g = pop3_login(&c.w.fresh_client(), &c.w.ca(), 110, false, "bob")?;
    ensure(cas_of(&g) == want, || format!("POP3 login on {g}"))?;
    Ok(format!("3 IMAP logins and 1 POP3 login all on {want}"))
}

fn dovecot_returns(c: &Ctx) -> Result<String, String> {
    let down = lock(&c.held_client).clone();
    ensure(!down.is_empty(), || "no CAS from the case before".into())?;
    lock(&c.w.cas(&down).dovecot).restart();
    let t = wait_rise(c, &["bk_exchange_imap", "bk_exchange_pop"], &down, Duration::from_secs(10))?;
    Ok(format!(
        "{down} rising (DOWN 1/2), then UP in bk_exchange_imap and bk_exchange_pop {t:.1} s after dovecot restarted"
    ))
}

// ---- the seed's quirks --------------------------------------------------

/// Makes a CAS's nginx answer 503 while alive; back to normal on drop, also
/// when the case fails half-way.
struct Failing<'a>(&'a Cas);

impl Drop for Failing<'_> {
    fn drop(&mut self) {
        lock(&self.0.nginx).set_failing(false);
    }
}

fn rstatus_quirk(c: &Ctx) -> Result<String, String> {
    let cas1 = c.w.cas("CAS1");
    lock(&cas1.nginx).set_failing(true);
    let _restore = Failing(cas1);
    // Longer than fall (2) checks at 1 s: an anchored check would have taken CAS1 out.
    std::thread::sleep(Duration::from_millis(3500));
    let statuses: Vec<String> = http_backends(c).iter().map(|b| c.w.status(b, "CAS1")).collect();
    let mut per: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for _ in 0..6 {
        let r = curl(&c.w.fresh_client(), &c.w.ca(), &url("/oab/"), &[])?;
        *per.entry((r.cas(), r.status)).or_insert(0) += 1;
    }
    ensure(statuses.iter().all(|s| s == "UP"), || format!("CAS1: {statuses:?}"))?;
    ensure(per.contains_key(&("CAS1".to_owned(), 503)), || format!("answers: {per:?}"))?;
    Ok(format!("CAS1 answering 503 stays UP in every HTTP backend; /oab/ answers {per:?}"))
}

/// The wizard's anchored check: a CAS answering 503 goes DOWN in every HTTP
/// backend, and clients get only the other CAS's answers.
fn rstatus_fixed(c: &Ctx) -> Result<String, String> {
    let cas1 = c.w.cas("CAS1");
    lock(&cas1.nginx).set_failing(true);
    let restore = Failing(cas1);
    let backends = http_backends(c);
    let statuses = || backends.iter().map(|b| c.w.status(b, "CAS1")).collect::<Vec<String>>();
    let t = wait_for(Duration::from_secs(10), || statuses().iter().all(|s| s.starts_with("DOWN")))
        .ok_or_else(|| format!("CAS1 answering 503: {:?}", statuses()))?;
    let mut per: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for _ in 0..6 {
        let r = curl(&c.w.fresh_client(), &c.w.ca(), &url("/oab/"), &[])?;
        *per.entry((r.cas(), r.status)).or_insert(0) += 1;
    }
    ensure(per.keys().all(|(cas, st)| cas == "CAS2" && *st == 200), || {
        format!("answers: {per:?}")
    })?;
    drop(restore);
    wait_for(Duration::from_secs(10), || statuses().iter().all(|s| s == "UP"))
        .ok_or_else(|| format!("CAS1 healthy again but not back: {:?}", statuses()))?;
    Ok(format!(
        "CAS1 answering 503 is DOWN in every HTTP backend after {t:.1} s; /oab/ answers {per:?}; back once healthy"
    ))
}

/// The wizard's IMAP backend has no HTTP check: a plain connection check on 143.
fn imap_fixed(c: &Ctx) -> Result<String, String> {
    let block =
        c.w.cfg
            .split("\nbackend bk_exchange_imap\n")
            .nth(1)
            .and_then(|b| b.split("\n\n").next())
            .ok_or("no bk_exchange_imap in the configuration")?;
    ensure(!block.contains("httpchk") && block.contains("check port 143"), || block.to_owned())?;
    let st: Vec<String> = ["CAS1", "CAS2"].iter().map(|s| c.w.status("bk_exchange_imap", s)).collect();
    ensure(st.iter().all(|s| s == "UP"), || format!("{st:?}"))?;
    Ok("bk_exchange_imap checks port 143 by connecting: CAS1 and CAS2 UP".into())
}

/// Two users whose Basic Authorization values share their first 50 bytes:
/// with the wizard's `len 512` they are two entries of the table (a 32-byte
/// key would have made them one, and pinned both users together).
fn authorization_len_fixed(c: &Ctx) -> Result<String, String> {
    let sock = lock(&c.w.proxy).sock.clone();
    let entries = || {
        e2e::harness::runtime_cmd(&sock, "show table authorization")
            .lines()
            .filter(|l| l.contains("key="))
            .count()
    };
    let before = entries();
    let p = url("/Microsoft-Server-ActiveSync?Cmd=Ping");
    for user in ["user-one", "user-two"] {
        let cred = format!("a-long-windows-domain-name.example\\{user}:secret");
        let r = curl(&c.w.fresh_client(), &c.w.ca(), &p, &["-X", "POST", "-u", &cred])?;
        ensure(r.status == 200, || format!("{user}: {} {}", r.status, r.body))?;
    }
    let after = entries();
    ensure(after == before + 2, || {
        format!("the authorization table went from {before} to {after} entries")
    })?;
    Ok(format!("two users alike for 50 bytes: two table entries ({before} → {after})"))
}

/// The seed's `defaults` and `bk_exchange_imap` blocks, with the
/// `option httpchk HEAD /check HTTP/1.0` line the seed prints in that backend,
/// and a frontend on port 10143 in front of it.
fn quirk_config(cfg: &str) -> String {
    let block = |head: &str| -> String {
        let mut out = String::new();
        let mut on = false;
        for l in cfg.lines() {
            if l.starts_with(head) {
                on = true;
            } else if on && (l.trim().is_empty() || !l.starts_with(' ')) {
                break;
            }
            if on {
                out.push_str(l);
                out.push('\n');
                if l.trim_start().starts_with("option tcplog") && head.starts_with("backend") {
                    out.push_str("  option httpchk HEAD /check HTTP/1.0\n");
                }
            }
        }
        out
    };
    format!(
        "{}\nfrontend ft_quirk_imap\n  bind 0.0.0.0:10143\n  default_backend bk_exchange_imap\n\n{}",
        block("defaults"),
        block("backend bk_exchange_imap")
    )
}

fn imap_httpchk_quirk(c: &Ctx) -> Result<String, String> {
    let cfg = lowered(&quirk_config(&c.w.cfg));
    ensure(
        cfg.contains("option httpchk HEAD /check HTTP/1.0") && cfg.contains("check port 143"),
        || cfg.clone(),
    )?;
    let mut p = c.w.extra_proxy("quirk", &cfg);
    let ready = wait_for(Duration::from_secs(10), || p.stat().iter().any(|s| s.px == "bk_exchange_imap"));
    if ready.is_none() {
        return Err(format!("the second proxy did not start: {:?}\n{}", p.exited(), p.log()));
    }
    let t = wait_for(Duration::from_secs(12), || {
        ["CAS1", "CAS2"].iter().all(|s| p.status("bk_exchange_imap", s).starts_with("DOWN"))
    })
    .ok_or_else(|| format!("not both DOWN: {:?}", p.stat()))?;
    let s = tcp_connect(&c.w.fresh_client(), 10143)?;
    closed_silently(&s, Duration::from_secs(2))?;
    Ok(format!(
        "dovecot answers HEAD with an IMAP greeting: both servers DOWN after {t:.1} s; clients get no server"
    ))
}

// ---- timeouts -----------------------------------------------------------

/// Starts the timeout probes on threads of `s`; `probe` collects them.
fn start_probes<'scope>(c: &'scope Ctx<'_>, s: &'scope std::thread::Scope<'scope, '_>) {
    let (port, tls) = match c.w.variant {
        Variant::NoSsl => (80, false),
        Variant::Ssl => (443, true),
    };
    let req_part = "GET /owa/ HTTP/1.1\\r\\nHost: mail.xlc.local\\r\\nUser-Agent: slow\\r\\n";
    let req_full = "GET /owa/ HTTP/1.1\\r\\nHost: mail.xlc.local\\r\\n\\r\\n";
    let probes: [(&'static str, &'static str); 3] = [("408", req_part), ("silent", ""), ("idle", req_full)];
    for (name, payload) in probes {
        let src = c.w.fresh_client();
        s.spawn(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| raw(&src, &c.w.ca(), port, tls, payload, 40.0)))
                .unwrap_or_else(|p| Err(format!("panic: {}", panic_text(&p))));
            lock(&c.probes).insert(name, r);
        });
    }
}

fn probe(c: &Ctx, name: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let r = loop {
        if let Some(r) = lock(&c.probes).remove(name) {
            break r?;
        }
        ensure(Instant::now() < deadline, || "the probe never finished".into())?;
        std::thread::sleep(Duration::from_millis(100));
    };
    let end = r.end.ok_or("never closed within 40 s of silence")?;
    let first_line = r.data.split("\\r\\n").next().unwrap_or_default().to_owned();
    match name {
        "408" => {
            ensure(first_line.contains(" 408"), || format!("answer {first_line:?}"))?;
            let at = r.first.unwrap_or(0.0);
            ensure((14.0..18.0).contains(&at), || format!("408 after {at:.1} s"))?;
            Ok(format!(
                "{first_line} after {at:.1} s (timeout http-request 15s), closed at {end:.1} s"
            ))
        }
        "silent" => {
            // HAProxy answers 408 here too unless `option http-ignore-probes`.
            ensure(first_line.contains(" 408"), || format!("answer {first_line:?}"))?;
            ensure((14.0..18.0).contains(&end), || format!("closed after {end:.1} s"))?;
            Ok(format!("{first_line}, closed after {end:.1} s"))
        }
        _ => {
            let first = r.first.unwrap_or(0.0);
            let idle = end - first;
            let want = match c.w.variant {
                Variant::NoSsl => 1.0,
                Variant::Ssl => 15.0,
            };
            ensure(first_line.starts_with("HTTP/1.1 "), || format!("answer {first_line:?}"))?;
            ensure(idle >= want * 0.8 && idle < want + 3.0, || {
                format!("closed {idle:.1} s after the answer")
            })?;
            Ok(format!(
                "{first_line}, then closed after {idle:.1} s idle (timeout http-keep-alive {want:.0}s)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quirk_config_holds_the_imap_backend_with_httpchk() {
        let cfg = super::quirk_config(include_str!("../../../fixtures/exchange-nossl.cfg"));
        assert!(cfg.starts_with("defaults"), "{cfg}");
        assert!(cfg.contains("backend bk_exchange_imap\n  balance leastconn"), "{cfg}");
        assert!(cfg.contains("  option tcplog\n  option httpchk HEAD /check HTTP/1.0\n"), "{cfg}");
        assert!(!cfg.contains("bk_exchange_pop"), "{cfg}");
    }
}
