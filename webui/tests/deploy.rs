//! The Templates page's templates: every built-in one parses; the Exchange
//! 2010 wizard's output for 2, 3 and 5 Client Access servers, with and
//! without SSL offloading, passes lbd's validation (both tabs together) and
//! Debian's `haproxy -c`, holds every per-CAS part once per CAS and fixes
//! the deployment guide's known traps; bad inputs are refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use webui::config::{validate, Paths};
use webui::deploy::{self, Template};

fn template(name: &str) -> Template {
    let (all, errors) = deploy::load(None);
    assert!(errors.is_empty(), "{errors:?}");
    all.into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no template {name}"))
}

/// A box's files in a scratch folder, with a certificate named `cert` in its store.
fn scratch(cert: &str) -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("frontends");
    let c = rcgen::generate_simple_self_signed(vec![cert.to_owned()]).unwrap();
    std::fs::create_dir_all(store.join(cert)).unwrap();
    std::fs::write(store.join(cert).join("crt.pem"), c.cert.pem()).unwrap();
    std::fs::write(store.join(cert).join("key.pem"), c.key_pair.serialize_pem()).unwrap();
    let paths = Paths {
        base: Vec::new(),
        lb7: dir.path().join("lb7.cfg"),
        ssl: dir.path().join("ssl.cfg"),
        socket: dir.path().join("none.sock"),
        cert_store: store,
    };
    (dir, paths)
}

/// CAS1 and CAS2 where the seed has them, the others past the VIP (10.0.0.17).
fn cas_addr(i: usize) -> String {
    format!("10.0.0.{}", if i <= 2 { 14 + i } else { 20 + i })
}

fn cas_list(n: usize) -> String {
    (1..=n).map(|i| format!("CAS{i} {}\n", cas_addr(i))).collect()
}

fn form(t: &Template, set: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut f = deploy::defaults(t);
    for (k, v) in set {
        f.insert((*k).to_owned(), (*v).to_owned());
    }
    f
}

fn render(t: &Template, f: &BTreeMap<String, String>, paths: &Paths, certs: &[&str]) -> deploy::Rendered {
    let certs: Vec<String> = certs.iter().map(|c| (*c).to_owned()).collect();
    let vars = deploy::values(t, f, &certs).unwrap_or_else(|p| panic!("{p:?}"));
    deploy::render(t, &vars, &paths.cert_store).unwrap()
}

/// Debian's haproxy checks the LB Layer7 text (with the global section the
/// appliance gives lbd, and no binding).
fn haproxy_check(dir: &Path, lb7: &str) {
    let file: PathBuf = dir.join("haproxy.cfg");
    std::fs::write(&file, format!("global\n  unix-bind prefix {}\n\n{lb7}", dir.display())).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .expect("haproxy (Debian's package; scripts/test installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "haproxy -c refused:\n{text}\n{lb7}");
    assert!(!text.contains("[ALERT]"), "haproxy -c:\n{text}");
}

fn lbd_check(paths: &Paths, r: &deploy::Rendered) {
    let report = validate(paths, &r.lb7, r.ssl.as_deref().unwrap_or(""));
    let alerts: Vec<_> = report.findings.iter().filter(|f| f.alert).collect();
    assert!(report.valid && alerts.is_empty(), "lbd refused: {alerts:?}\n{}\n{:?}", r.lb7, r.ssl);
    let warnings: Vec<_> = report.findings.iter().filter(|f| !f.alert).collect();
    assert!(warnings.is_empty(), "lbd warns: {warnings:?}\n{}", r.lb7);
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn the_built_in_templates_parse() {
    let (all, errors) = deploy::load(None);
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["exchange-2010", "http-website"]);
}

#[test]
fn exchange_for_2_3_and_5_cas_with_and_without_ssl_passes_lbd_and_haproxy() {
    let t = template("exchange-2010");
    for n in [2, 3, 5] {
        for variant in ["nossl", "ssl"] {
            let (dir, paths) = scratch("mail.xlc.local");
            let f = form(&t, &[("servers", &cas_list(n)), ("variant", variant)]);
            let r = render(&t, &f, &paths, &["mail.xlc.local"]);
            lbd_check(&paths, &r);
            haproxy_check(dir.path(), &r.lb7);
            // The backends that hold every CAS: RPC, Address Book, IMAP and POP3,
            // and HTTPS as one TCP backend or six HTTP ones.
            let per_cas_backends = if variant == "ssl" { 10 } else { 5 };
            for i in 1..=n {
                let name = format!("CAS{i}");
                let addr = cas_addr(i);
                assert_eq!(count(&r.lb7, &format!("\nlisten chk_{name}\n")), 1, "{n} {variant}");
                assert_eq!(count(&r.lb7, &format!("  bind 127.0.0.1:{}\n", 1000 + i)), 1);
                for svc in ["epm", "ca", "ab"] {
                    assert_eq!(count(&r.lb7, &format!("  server {name}_{svc} {addr}:")), 1);
                }
                assert_eq!(
                    count(&r.lb7, &format!("  server {name} {addr}")),
                    per_cas_backends,
                    "{n} CAS, {variant}: {name}\n{}",
                    r.lb7
                );
                // The same id for the same CAS in every backend (the shared sourceaddr table).
                assert_eq!(count(&r.lb7, &format!("  server {name} {addr} id {i} ")), 4);
            }
            if variant == "ssl" {
                let ssl = r.ssl.as_deref().unwrap();
                assert_eq!(count(ssl, "\n["), 3, "{ssl}");
                assert!(ssl.contains("accept = 10.0.0.17:993\nconnect = 127.0.0.1:143"), "{ssl}");
                assert!(r.lb7.contains("  bind /ssl:web accept-proxy name https\n"));
            } else {
                assert!(r.ssl.is_none(), "{:?}", r.ssl);
                assert!(r.lb7.contains("  bind 10.0.0.17:443 name https\n"));
            }
        }
    }
}

#[test]
fn exchange_fixes_the_guides_traps_and_says_so() {
    let t = template("exchange-2010");
    let (_dir, paths) = scratch("mail.xlc.local");
    let r = render(&t, &deploy::defaults(&t), &paths, &["mail.xlc.local"]);
    let lb7 = &r.lb7;
    let config: String = lb7
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    // An anchored status check: 503 does not match.
    assert!(!config.contains("rstatus (2|3|401)"));
    assert_eq!(count(lb7, "  http-check expect rstatus ^([23][0-9][0-9]|401)$\n"), 6);
    let re = regex::Regex::new("^([23][0-9][0-9]|401)$").unwrap();
    assert!(re.is_match("200") && re.is_match("302") && re.is_match("401"));
    assert!(!re.is_match("503") && !re.is_match("403"));
    // Headers as http-check send, not in the version string.
    assert!(!config.contains("\\r\\n"), "{lb7}");
    assert!(lb7.contains(
        "  http-check send meth RPC_IN_DATA uri /rpc/rpcproxy.dll?mail.xlc.local:6001 ver HTTP/1.1 hdr Host mail.xlc.local hdr User-Agent MSRPC\n"
    ));
    // No HTTP check in the IMAP backend.
    let imap = lb7
        .split("\nbackend bk_exchange_imap\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    assert!(!imap.contains("httpchk") && imap.contains("check port 143"), "{imap}");
    // A string table long enough for real Authorization headers.
    assert!(lb7.contains("stick-table size 10k expire 1h type string len 512\n"));
    // No 993/995 binds beside the SSL tab's services.
    assert!(!config.contains(":993") && !config.contains(":995"), "{lb7}");
    // And the comments say why.
    for why in [
        "rstatus (2|3|401)",
        "len 512",
        "explicit \"id\"",
        "no 993 bind",
        "no 995 bind",
        "http-check send",
    ] {
        assert!(lb7.contains(why), "no comment about {why}");
    }
    assert!(lb7.lines().filter(|l| l.contains("fixed:")).count() >= 5);
}

#[test]
fn exchange_publishes_only_the_chosen_services() {
    let t = template("exchange-2010");
    let (dir, paths) = scratch("mail.xlc.local");
    let f = form(&t, &[("services", "ews imap")]);
    let r = render(&t, &f, &paths, &["mail.xlc.local"]);
    lbd_check(&paths, &r);
    haproxy_check(dir.path(), &r.lb7);
    assert!(r.lb7.contains("backend bk_ews\n") && r.lb7.contains("backend bk_exchange_imap\n"));
    for gone in [
        "bk_owa_ecp",
        "bk_activesync",
        "chk_CAS1",
        "bk_exchange_pop",
        "bk_exchange_smtp",
        "backend authorization",
    ] {
        assert!(!r.lb7.contains(gone), "{gone} in\n{}", r.lb7);
    }
    assert!(r.lb7.contains("http-request deny deny_status 404 if { path_beg -i /oab }"));
    let ssl = r.ssl.unwrap();
    assert!(ssl.contains("[ssl_exchange_https]") && ssl.contains("[ssl_exchange_imap]") && !ssl.contains("pop"));
    // The checklist has the Exchange side only when RPC is published.
    assert!(!r.checklist.iter().any(|l| l.contains("RpcTcpPort")));
    let f = form(
        &t,
        &[
            ("services", "smtp rpc"),
            ("variant", "nossl"),
            ("rpc_port", "59531"),
            ("ab_port", "60554"),
        ],
    );
    let r = render(&t, &f, &paths, &[]);
    lbd_check(&paths, &r);
    haproxy_check(dir.path(), &r.lb7);
    assert!(r.lb7.contains("  bind 10.0.0.17:25 name smtp\n") && r.lb7.contains("  bind 10.0.0.17:59531 name ca\n"));
    let steps = r.checklist.join("\n");
    assert!(steps.contains("\"TCP/IP Port\" with the decimal value 59531"), "{steps}");
    assert!(steps.contains("RpcTcpPort with the value 60554"), "{steps}");
    // Without offloading, a part of the HTTP services cannot be published alone: the checklist says so.
    let f = form(&t, &[("services", "ews imap"), ("variant", "nossl")]);
    let r = render(&t, &f, &paths, &[]);
    lbd_check(&paths, &r);
    assert!(
        r.checklist.iter().any(|l| l.contains("port 443 is forwarded whole")),
        "{:?}",
        r.checklist
    );
}

#[test]
fn exchange_refuses_bad_inputs_by_name() {
    let t = template("exchange-2010");
    let certs = vec!["mail.xlc.local".to_owned()];
    let problems = |set: &[(&str, &str)]| -> Vec<(String, String)> {
        match deploy::values(&t, &form(&t, set), &certs) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| (p.key, p.message)).collect(),
        }
    };
    let key_of = |set: &[(&str, &str)]| problems(set).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(key_of(&[]), Vec::<String>::new());
    assert_eq!(key_of(&[("rpc_port", "59530")]), ["rpc_port"]);
    assert_eq!(key_of(&[("ab_port", "60555")]), ["ab_port"]);
    assert_eq!(key_of(&[("ab_port", "60000")]), ["ab_port"], "equal ports");
    assert!(problems(&[("ab_port", "60000")])[0].1.contains("must differ"));
    assert_eq!(key_of(&[("servers", "CAS1 10.0.0.15")]), ["servers"], "one CAS");
    assert_eq!(key_of(&[("servers", "CAS1 10.0.0.15\nCAS2 10.0.0.300")]), ["servers"]);
    assert_eq!(key_of(&[("servers", "CAS1 10.0.0.15\nCAS1 10.0.0.16")]), ["servers"]);
    assert_eq!(key_of(&[("servers", "CAS1 10.0.0.15\nCAS 2 10.0.0.16")]), ["servers"]);
    assert_eq!(key_of(&[("servers", "CAS1 10.0.0.15\nCAS2 10.0.0.17")]), ["servers"], "the VIP");
    assert_eq!(key_of(&[("servers", "CAS1 10.0.0.15\nCAS2 127.0.0.1")]), ["servers"], "loopback");
    assert_eq!(key_of(&[("vip", "10.0.0")]), ["vip"]);
    assert_eq!(key_of(&[("fqdn", "mail..local")]), ["fqdn"]);
    assert_eq!(key_of(&[("services", "")]), ["services"]);
    assert_eq!(key_of(&[("services", "owa telnet")]), ["services"]);
    assert_eq!(key_of(&[("variant", "maybe")]), ["variant"]);
    assert_eq!(key_of(&[("cert", "other.example")]), ["cert"]);
    // The certificate counts only with SSL offloading.
    assert_eq!(key_of(&[("cert", ""), ("variant", "nossl")]), Vec::<String>::new());
}

#[test]
fn the_web_site_template_passes_lbd_in_both_variants_and_haproxy_for_plain_http() {
    let t = template("http-website");
    let (dir, paths) = scratch("www.example.com");
    let r = render(
        &t,
        &form(&t, &[("cert", "www.example.com"), ("persistence", "cookie")]),
        &paths,
        &["www.example.com"],
    );
    lbd_check(&paths, &r);
    assert!(r.lb7.contains("ssl crt ") && r.lb7.contains("redirect scheme https code 301 if !{ ssl_fc }"));
    assert!(r.lb7.contains("cookie SRV insert indirect nocache httponly secure\n"));
    assert_eq!(count(&r.lb7, " cookie web"), 2);
    let r = render(
        &t,
        &form(&t, &[("variant", "http"), ("servers", "a 10.0.0.21\nb 10.0.0.22\nc 10.0.0.23")]),
        &paths,
        &[],
    );
    lbd_check(&paths, &r);
    haproxy_check(dir.path(), &r.lb7);
    assert_eq!(count(&r.lb7, "\n  server "), 3);
    assert!(!r.lb7.contains("ssl"), "{}", r.lb7);
}

#[test]
fn a_template_file_whose_inputs_make_no_sense_is_refused() {
    let base = "name = \"x\"\ntitle = \"X\"\nlb7 = \"# {{ a }}\\n\"\n";
    let input = |extra: &str| {
        format!("{base}{extra}\n[[input]]\nkey = \"a\"\nlabel = \"A\"\nkind = \"choice\"\nchoices = [[\"p\", \"P\"]]\ndefault = \"p\"\n")
    };
    assert!(deploy::parse(&input("")).is_ok());
    let bad = [
        (
            format!("{base}[[input]]\nkey = \"a\"\nlabel = \"A\"\nkind = \"choice\"\nchoices = [[\"p\", \"P\"]]\ndefault = \"q\"\n"),
            "default",
        ),
        (input("distinct = [[\"a\", \"b\"]]"), "distinct"),
        (
            format!("{}[[input]]\nkey = \"a\"\nlabel = \"A2\"\nkind = \"ipv4\"\n", input("")),
            "twice",
        ),
        (
            format!(
                "{}[[input]]\nkey = \"b\"\nlabel = \"B\"\nkind = \"cert\"\nwhen = \"a=z\"\n",
                input("")
            ),
            "when",
        ),
        (
            format!("{}[[input]]\nkey = \"csrf\"\nlabel = \"C\"\nkind = \"name\"\n", input("")),
            "csrf",
        ),
    ];
    for (text, why) in bad {
        let e = deploy::parse(&text).expect_err(why);
        assert!(e.contains(why), "{why}: {e}");
    }
}

#[test]
fn a_url_path_cannot_carry_a_comment_or_a_quote() {
    let t = template("http-website");
    for path in ["/health#x", "/a b", "/\"q", "/x\\y", "health", "/${HOME}"] {
        let p = deploy::values(&t, &form(&t, &[("variant", "http"), ("check_uri", path)]), &[]).expect_err(path);
        assert_eq!(p[0].key, "check_uri", "{path}");
    }
    assert!(deploy::values(&t, &form(&t, &[("variant", "http"), ("check_uri", "/status?full=1&x=%20")]), &[]).is_ok());
}

#[test]
fn a_template_file_that_does_not_parse_is_reported_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "name = \"x\"\ntitle = \"X\"\nlb7 = \"{% if %}\"\ninput = []\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tiny.toml"),
        "name = \"tiny\"\ntitle = \"Tiny\"\nlb7 = \"# {{ vip }}\\n\"\n[[input]]\nkey = \"vip\"\nlabel = \"VIP\"\nkind = \"ipv4\"\ndefault = \"10.1.1.1\"\n",
    )
    .unwrap();
    let (all, errors) = deploy::load(Some(dir.path()));
    assert_eq!(all.len(), 3, "{errors:?}");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("broken.toml"), "{errors:?}");
    let tiny = all.iter().find(|t| t.name == "tiny").unwrap();
    let vars = deploy::values(tiny, &deploy::defaults(tiny), &[]).unwrap();
    assert_eq!(deploy::render(tiny, &vars, Path::new("/x")).unwrap().lb7, "# 10.1.1.1\n");
}
