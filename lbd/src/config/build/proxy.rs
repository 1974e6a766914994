//! Keywords of `defaults`, `frontend`, `backend` and `listen`.

use super::super::acl;
use super::super::addr;
use super::super::keywords::{self, Verdict};
use super::super::model::*;
use super::super::syntax::{Line, SectionKind};
use super::super::units;
use super::{global, rules, server, Ctx};

fn section_label(kind: SectionKind) -> &'static str {
    kind.keyword()
}

fn cap_name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Frontend => "backend",
        _ => "frontend",
    }
}

/// Applies one line to a proxy (or to a `defaults` section being built).
pub(super) fn line(p: &mut Proxy, kind: SectionKind, line: &Line, global: &Global, ctx: &mut Ctx) {
    let Some(kw) = line.arg(0) else { return };
    let Some(entry) = keywords::find(keywords::PROXY, kw) else {
        ctx.alert(line, format!("unknown keyword '{kw}' in '{}' section", section_label(kind)));
        return;
    };
    match entry.verdict(kind) {
        Verdict::Yes => {}
        Verdict::Ignored => {
            let what = if kw == "timeout" || kw == "stick" || kw == "http-check" || kw == "monitor" {
                format!("{kw} {}", line.arg(1).unwrap_or(""))
            } else {
                kw.to_owned()
            };
            // Sub-keywords may still be wrong: check them before ignoring the line.
            if kw == "timeout" && timeout_field(line.arg(1).unwrap_or("")).is_none() {
                timeout(p, line, ctx);
                return;
            }
            ctx.warn(
                line,
                format!(
                    "'{}' ignored because {} '{}' has no {} capability.",
                    what.trim_end(),
                    section_label(kind),
                    p.name,
                    cap_name(kind)
                ),
            );
            return;
        }
        Verdict::No => {
            ctx.alert(line, format!("'{kw}' not allowed in '{}' section.", section_label(kind)));
            return;
        }
    }
    // Keywords whose sub-keyword decides the capability.
    if let Some(v) = sub_verdict(kw, line.arg(1), kind) {
        match v {
            Verdict::Yes => {}
            Verdict::Ignored => {
                ctx.warn(
                    line,
                    format!(
                        "'{kw} {}' ignored because {} '{}' has no {} capability.",
                        line.arg(1).unwrap_or(""),
                        section_label(kind),
                        p.name,
                        cap_name(kind)
                    ),
                );
                return;
            }
            Verdict::No => {
                ctx.alert(
                    line,
                    format!(
                        "'{kw} {}' not allowed in '{}' section.",
                        line.arg(1).unwrap_or(""),
                        section_label(kind)
                    ),
                );
                return;
            }
        }
    }
    let words = &line.words;
    let arg1 = line.arg(1);
    match kw {
        "mode" => match arg1 {
            Some("tcp") => p.mode = Mode::Tcp,
            Some("http") => p.mode = Mode::Http,
            Some("health") => ctx.alert(line, "'mode health' is no longer supported; use 'monitor-uri' in mode http."),
            Some(other) => ctx.alert(line, format!("unknown proxy mode '{other}'.")),
            None => ctx.alert(line, "'mode' expects 'tcp' or 'http'."),
        },
        "log" => match arg1 {
            Some("global") => p.log_global = true,
            Some(_) => {
                if let Some(t) = global::parse_log(line, ctx) {
                    p.logs.push(t);
                }
            }
            None => ctx.alert(
                line,
                "'log' expects either <address[:port]> and <facility> or 'global' as arguments.",
            ),
        },
        "option" => option(p, kind, line, 1, false, ctx),
        "no" => {
            if arg1 != Some("option") {
                ctx.alert(line, format!("'no' expects 'option', not '{}'.", arg1.unwrap_or("")));
                return;
            }
            option(p, kind, line, 2, true, ctx);
        }
        "timeout" => timeout(p, line, ctx),
        "maxconn" => {
            if let Some(v) = ctx.lenient_uint(line, 1, "maxconn") {
                p.maxconn = Some(v);
            }
        }
        "backlog" => {
            if let Some(v) = ctx.uint(line, 1, "backlog", 0, i32::MAX as u64) {
                p.backlog = Some(v as u32);
            }
        }
        "retries" => {
            if let Some(v) = ctx.lenient_uint(line, 1, "retries") {
                p.retries = v;
            }
        }
        "retry-on" => {
            if words.len() < 2 {
                ctx.alert(line, "'retry-on' expects at least one keyword.");
                return;
            }
            let mut out = Vec::new();
            for w in &words[1..] {
                match w.as_str() {
                    "none" => out.clear(),
                    "conn-failure" | "0rtt-rejected" => {}
                    "empty-response" => out.push(RetryOn::EmptyResponse),
                    "junk-response" => out.push(RetryOn::JunkResponse),
                    "response-timeout" => out.push(RetryOn::ResponseTimeout),
                    "all-retryable-errors" => out.extend([
                        RetryOn::EmptyResponse,
                        RetryOn::JunkResponse,
                        RetryOn::ResponseTimeout,
                        RetryOn::Status(500),
                        RetryOn::Status(502),
                        RetryOn::Status(503),
                        RetryOn::Status(504),
                    ]),
                    code => match code.parse::<u16>() {
                        Ok(c) if [401, 403, 404, 408, 425, 500, 501, 502, 503, 504].contains(&c) => out.push(RetryOn::Status(c)),
                        _ => {
                            ctx.alert(line, format!("'retry-on': unknown keyword '{code}'."));
                            return;
                        }
                    },
                }
            }
            p.retry_on = out;
        }
        "fullconn" => {
            if let Some(v) = ctx.uint(line, 1, "fullconn", 0, i32::MAX as u64) {
                p.fullconn = Some(v as u32);
            }
        }
        "balance" => balance(p, line, ctx),
        "hash-type" => match arg1 {
            Some("map-based") => p.hash_type = HashType::MapBased,
            Some("consistent") => p.hash_type = HashType::Consistent,
            other => ctx.alert(
                line,
                format!("'hash-type' expects 'map-based' or 'consistent', not '{}'.", other.unwrap_or("")),
            ),
        },
        "http-reuse" => {
            p.http_reuse = match arg1 {
                Some("never") => HttpReuse::Never,
                Some("safe") => HttpReuse::Safe,
                Some("aggressive") => HttpReuse::Aggressive,
                Some("always") => HttpReuse::Always,
                other => {
                    ctx.alert(
                        line,
                        format!(
                            "'http-reuse' only supports 'never', 'safe', 'aggressive', 'always', not '{}'.",
                            other.unwrap_or("")
                        ),
                    );
                    return;
                }
            }
        }
        "bind" => server::bind(p, line, global, ctx),
        "server" => server::server(p, line, ctx),
        "default-server" => server::default_server(p, line, ctx),
        "default_backend" => match arg1 {
            Some(b) if words.len() == 2 => p.default_backend = Some(ProxyName(b.to_owned())),
            Some(_) => ctx.alert(line, "'default_backend' expects a single backend name."),
            None => ctx.alert(line, "'default_backend' expects a backend name."),
        },
        "use_backend" => {
            let Some(b) = arg1 else {
                ctx.alert(line, "'use_backend' expects a backend name.");
                return;
            };
            if let Ok(cond) = ctx.condition(line, 2, "use_backend", &p.acls) {
                p.switching_rules.push(SwitchRule {
                    backend: ProxyName(b.to_owned()),
                    cond,
                    loc: line.loc.clone(),
                });
            }
        }
        "acl" => acl_line(p, line, ctx),
        "redirect" => {
            if !p.switching_rules.is_empty() {
                ctx.warn(line, "this 'redirect' rule follows a 'use_backend' rule, yet it runs before it.");
            }
            if let Some((r, cond)) = rules::redirect(line, 1, &p.acls, ctx) {
                p.redirects.push((r, cond, line.loc.clone()));
            }
        }
        "monitor-uri" => match arg1 {
            Some(u) => p.monitor_uri = Some(u.to_owned()),
            None => ctx.alert(line, "'monitor-uri' expects an URI."),
        },
        "monitor" => {
            if arg1 != Some("fail") {
                ctx.alert(line, format!("'monitor' expects 'fail', not '{}'.", arg1.unwrap_or("")));
                return;
            }
            if !matches!(line.arg(2), Some("if") | Some("unless")) {
                ctx.alert(line, "'monitor fail' requires either 'if' or 'unless' followed by a condition.");
                return;
            }
            if let Ok(Some(c)) = ctx.condition(line, 2, "monitor fail", &p.acls) {
                p.monitor_fail.push(c);
            }
        }
        "stick-table" => rules::stick_table(p, line, ctx),
        "stick" => rules::stick(p, line, ctx),
        "cookie" => rules::cookie(p, line, ctx),
        "errorfile" => {
            let (Some(code), Some(file)) = (arg1, line.arg(2)) else {
                ctx.alert(line, "'errorfile' expects <code> and <file> as arguments.");
                return;
            };
            let Ok(code) = code.parse::<u16>() else {
                ctx.alert(line, format!("'errorfile' : invalid status code '{code}'."));
                return;
            };
            if ![200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504].contains(&code) {
                ctx.alert(line, format!("'errorfile' : status code {code} not handled."));
                return;
            }
            if let Err(e) = std::fs::metadata(file) {
                ctx.alert(line, format!("'errorfile' : error opening file '{file}' : {e}."));
                return;
            }
            p.errorfiles.insert(code, file.into());
        }
        "http-request" | "http-response" | "http-after-response" => {
            if kw == "http-request" {
                let later = if !p.redirects.is_empty() {
                    Some("redirect")
                } else if !p.switching_rules.is_empty() {
                    Some("use_backend")
                } else {
                    None
                };
                if let Some(other) = later {
                    ctx.warn(
                        line,
                        format!("this 'http-request' rule follows a '{other}' rule, yet it runs before it."),
                    );
                }
            }
            rules::http_rule(p, line, ctx)
        }
        "tcp-request" | "tcp-response" => rules::tcp_rule(p, kind, line, ctx),
        "http-check" => rules::http_check(p, line, ctx),
        "tcp-check" => rules::tcp_check(p, line, ctx),
        "description" => p.description = Some(words[1..].join(" ")),
        "disabled" => p.disabled = true,
        "enabled" => p.disabled = false,
        "id" => {
            if let Some(v) = ctx.uint(line, 1, "id", 1, i32::MAX as u64) {
                p.id = Some(v as u32);
            }
        }
        "capture" => {
            let ok = matches!(arg1, Some("request") | Some("response")) && line.arg(2) == Some("header") && line.arg(4) == Some("len");
            if !ok || line.arg(3).is_none() {
                ctx.alert(
                    line,
                    "'capture' expects 'request header <name> len <length>' or 'response header <name> len <length>'.",
                );
                return;
            }
            if let Some(len) = ctx.uint(line, 5, "capture len", 1, 65535) {
                let list = if arg1 == Some("response") {
                    &mut p.res_captures
                } else {
                    &mut p.captures
                };
                list.push((words[3].clone(), len as u32));
            }
        }
        "unique-id-format" => p.unique_id_format = arg1.map(str::to_owned),
        "unique-id-header" => p.unique_id_header = arg1.map(str::to_owned),
        "log-format" => match arg1 {
            Some(f) => p.log_format = Some(f.to_owned()),
            None => ctx.alert(line, "'log-format' expects a format string."),
        },
        "log-tag" => {}
        "stats" => match arg1 {
            Some("enable") => p.stats_enabled = true,
            Some("uri") => {
                p.stats_enabled = true;
                p.stats_uri = line.arg(2).map(str::to_owned);
            }
            Some("auth") => match line.arg(2).and_then(|a| a.split_once(':')) {
                Some((u, pw)) => {
                    p.stats_enabled = true;
                    p.stats_auth.push((u.to_owned(), pw.to_owned()));
                }
                None => ctx.alert(line, "'stats auth' expects <user>:<password>."),
            },
            Some("realm") => match line.arg(2) {
                Some(r) => p.stats_realm = Some(words[2..].join(" ")).filter(|_| !r.is_empty()),
                None => ctx.alert(line, "'stats realm' expects a realm."),
            },
            Some("refresh") => {
                if let Some(d) = ctx.time(line, 2, "stats refresh") {
                    p.stats_refresh = Some(d);
                }
            }
            Some("admin") => {
                if let Ok(Some(c)) = ctx.condition(line, 2, "stats admin", &p.acls) {
                    p.stats_admin.push(c);
                }
            }
            Some("show-legends" | "show-node" | "hide-version" | "scope" | "show-desc" | "http-request") => {}
            other => ctx.alert(line, format!("unknown stats parameter '{}'.", other.unwrap_or(""))),
        },
        "max-keep-alive-queue" => {
            if let Some(t) = arg1.and_then(|v| v.parse::<i64>().ok()) {
                p.max_keep_alive_queue = Some(t);
            } else {
                ctx.alert(line, "'max-keep-alive-queue' expects an integer argument.");
            }
        }
        "rate-limit" => {
            if arg1 != Some("sessions") {
                ctx.alert(line, "'rate-limit' expects 'sessions'.");
                return;
            }
            ctx.uint(line, 2, "rate-limit sessions", 0, u32::MAX as u64);
        }
        "source" => {
            if let Some(a) = arg1 {
                if addr::parse_host(a.rsplit_once(':').map_or(a, |(h, _)| h)).is_err() {
                    ctx.alert(line, format!("'source' : invalid address '{a}'."));
                }
            } else {
                ctx.alert(line, "'source' expects an address.");
            }
        }
        "force-persist" | "ignore-persist" => {
            let _ = ctx.condition(line, 1, kw, &p.acls);
        }
        "use-server" => {
            if arg1.is_none() {
                ctx.alert(line, "'use-server' expects a server name.");
                return;
            }
            let _ = ctx.condition(line, 2, "use-server", &p.acls);
        }
        "compression" | "http-error" => {}
        _ => ctx.alert(line, format!("'{kw}' is not supported yet.")),
    }
}

/// Capability of sub-keywords: `tcp-request connection` only in frontends, and so on.
fn sub_verdict(kw: &str, sub: Option<&str>, kind: SectionKind) -> Option<Verdict> {
    let backend_only = kind == SectionKind::Backend;
    match (kw, sub) {
        ("tcp-request", Some("connection")) | ("tcp-request", Some("session")) if backend_only => Some(Verdict::No),
        _ => None,
    }
}

fn timeout_field(name: &str) -> Option<(bool, bool)> {
    // (frontend side, backend side)
    Some(match name {
        "client" | "client-fin" => (true, false),
        "server" | "connect" | "queue" | "check" | "tunnel" | "server-fin" => (false, true),
        "http-request" | "http-keep-alive" | "tarpit" => (true, true),
        // Old spellings HAProxy still reads.
        "clitimeout" => (true, false),
        "srvtimeout" | "contimeout" => (false, true),
        _ => return None,
    })
}

fn timeout(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let Some(name) = line.arg(1) else {
        ctx.alert(line, "'timeout' expects 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' or 'server-fin'.");
        return;
    };
    if timeout_field(name).is_none() {
        ctx.alert(line, format!("'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got '{name}')."));
        return;
    }
    let what = format!("timeout {name}");
    let Some(d) = ctx.time(line, 2, &what) else { return };
    if line.words.len() > 3 {
        ctx.alert(line, format!("'{what}' : unexpected extra argument '{}'.", line.words[3]));
        return;
    }
    let t = &mut p.timeouts;
    let slot = match name {
        "client" | "clitimeout" => &mut t.client,
        "server" | "srvtimeout" => &mut t.server,
        "connect" | "contimeout" => &mut t.connect,
        "queue" => &mut t.queue,
        "http-request" => &mut t.http_request,
        "http-keep-alive" => &mut t.http_keep_alive,
        "check" => &mut t.check,
        "tunnel" => &mut t.tunnel,
        "tarpit" => &mut t.tarpit,
        "client-fin" => &mut t.client_fin,
        _ => &mut t.server_fin,
    };
    // 0 means "no timeout", as in HAProxy (which warns about it; so does the checker elsewhere).
    *slot = (!d.is_zero()).then_some(d);
}

fn balance(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let Some(algo) = line.arg(1) else {
        ctx.alert(line, "'balance' expects an algorithm.");
        return;
    };
    let unknown = "balance only supports 'roundrobin', 'static-rr', 'leastconn', 'first', 'source', 'random', 'uri', 'url_param', 'hdr(name)' and 'rdp-cookie(name)' options.";
    p.balance = match algo {
        "roundrobin" => Balance::RoundRobin,
        "static-rr" => Balance::StaticRr,
        "leastconn" => Balance::LeastConn,
        "first" => Balance::First,
        "source" => Balance::Source,
        "random" => Balance::Random(2),
        "uri" => {
            let mut whole = false;
            let mut len = None;
            let mut depth = None;
            let mut i = 2;
            while let Some(w) = line.arg(i) {
                match w {
                    "whole" => whole = true,
                    "len" | "depth" => {
                        let Some(v) = ctx.uint(line, i + 1, &format!("balance uri {w}"), 0, u32::MAX as u64) else {
                            return;
                        };
                        if w == "len" {
                            len = Some(v as u32)
                        } else {
                            depth = Some(v as u32)
                        }
                        i += 1;
                    }
                    "path-only" => {}
                    other => {
                        ctx.alert(
                            line,
                            format!("'balance uri' only accepts parameters 'whole', 'len', 'depth' and 'path-only', not '{other}'."),
                        );
                        return;
                    }
                }
                i += 1;
            }
            Balance::Uri { whole, len, depth }
        }
        "url_param" => match line.arg(2) {
            Some(n) => Balance::UrlParam(n.to_owned()),
            None => {
                ctx.alert(line, "'balance url_param' requires an URL parameter name.");
                return;
            }
        },
        a if a.starts_with("random(") => {
            let n = a
                .strip_prefix("random(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse::<u32>().ok());
            match n {
                Some(n) if n >= 1 => Balance::Random(n),
                _ => {
                    ctx.alert(line, format!("'balance random' : invalid number of draws in '{a}'."));
                    return;
                }
            }
        }
        a if a.starts_with("hdr(") => {
            let name = a.strip_prefix("hdr(").and_then(|r| r.strip_suffix(')')).unwrap_or("");
            if name.is_empty() {
                ctx.alert(line, "'balance hdr' requires an http header field name.");
                return;
            }
            Balance::Hdr {
                name: name.to_owned(),
                use_domain_only: line.arg(2) == Some("use_domain_only"),
            }
        }
        a if a.starts_with("rdp-cookie") => {
            let name = a.strip_prefix("rdp-cookie(").and_then(|r| r.strip_suffix(')')).map(str::to_owned);
            Balance::RdpCookie(name)
        }
        _ => {
            ctx.alert(line, unknown);
            return;
        }
    };
}

fn acl_line(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let Some(name) = line.arg(1) else {
        ctx.alert(line, "'acl' expects an ACL name and a fetch method.");
        return;
    };
    if let Err(e) = acl::check_acl_name(name) {
        ctx.alert(line, format!("{e}."));
        return;
    }
    if line.words.len() < 3 {
        ctx.alert(line, format!("'acl {name}' expects a fetch method."));
        return;
    }
    match acl::parse_acl_expr(&line.words[2..]) {
        Ok(expr) => {
            let bool_like = matches!(expr.method, acl::MatchMethod::Bool | acl::MatchMethod::Found);
            if expr.patterns.is_empty() && !bool_like && !line.words.iter().any(|w| w == "--") {
                ctx.warn(line, format!("acl '{name}' : no pattern to match against was provided, so this ACL will never match; add '--' if this is intended."));
            }
            p.acls
                .entry(name.to_owned())
                .or_insert_with(|| AclDef {
                    name: name.to_owned(),
                    exprs: Vec::new(),
                })
                .exprs
                .push(expr);
        }
        Err(e) => ctx.alert(
            line,
            format!("error detected while parsing ACL '{name}' : {}.", super::acl_error(&e)),
        ),
    }
}

/// `option NAME [args]` at word `at`; `negated` for `no option NAME`.
fn option(p: &mut Proxy, kind: SectionKind, line: &Line, at: usize, negated: bool, ctx: &mut Ctx) {
    let Some(name) = line.arg(at) else {
        ctx.alert(line, "'option' expects an option name.");
        return;
    };
    let Some(entry) = keywords::find(keywords::OPTIONS, name) else {
        ctx.alert(line, format!("unknown option '{name}'."));
        return;
    };
    // These options cannot be negated, as in HAProxy (which refuses the `no` before it looks at
    // the section): those with parameters, the log formats, `tcpka` and `http-use-htx`.
    if negated
        && matches!(
            name,
            "forwardfor"
                | "httpchk"
                | "originalto"
                | "ssl-hello-chk"
                | "smtpchk"
                | "mysql-check"
                | "ldap-check"
                | "redis-check"
                | "tcp-check"
                | "tcplog"
                | "httplog"
                | "tcpka"
                | "http-use-htx"
        )
    {
        ctx.alert(line, format!("negation is not supported for 'option {name}'."));
        return;
    }
    match entry.verdict(kind) {
        Verdict::Yes => {}
        Verdict::Ignored => {
            let msg = if name == "httplog" {
                format!(
                    "'option httplog' is ignored in {} '{}': logs are written by frontends.",
                    section_label(kind),
                    p.name
                )
            } else {
                format!(
                    "'option {name}' ignored because {} '{}' has no {} capability.",
                    section_label(kind),
                    p.name,
                    cap_name(kind)
                )
            };
            ctx.warn(line, msg);
            return;
        }
        Verdict::No => {
            ctx.alert(line, format!("'option {name}' not allowed in '{}' section.", section_label(kind)));
            return;
        }
    }
    let on = !negated;
    let args = line.words.get(at + 1..).unwrap_or_default();
    let takes_args = matches!(
        name,
        "forwardfor" | "httpchk" | "originalto" | "httplog" | "smtpchk" | "mysql-check" | "tcplog"
    );
    if !takes_args && !args.is_empty() {
        ctx.alert(line, format!("'option {name}' cannot handle unexpected argument '{}'.", args[0]));
        return;
    }
    let o = &mut p.options;
    match name {
        "tcplog" => {
            o.tcplog = on;
            if on {
                o.httplog = false;
            }
            if let Some(a) = args.first() {
                ctx.alert(line, format!("'option tcplog' cannot handle unexpected argument '{a}'."));
            }
        }
        "httplog" => {
            match args.first().map(String::as_str) {
                None => o.httplog_clf = false,
                Some("clf") => o.httplog_clf = true,
                Some(a) => {
                    ctx.alert(line, format!("'option httplog' only accepts 'clf', not '{a}'."));
                    return;
                }
            }
            o.httplog = on;
            if on {
                o.tcplog = false;
            }
        }
        "dontlognull" => o.dontlognull = on,
        "dontlog-normal" => o.dontlog_normal = on,
        "log-separate-errors" => o.log_separate_errors = on,
        "logasap" => o.logasap = on,
        "log-health-checks" => o.log_health_checks = on,
        "redispatch" => o.redispatch = on,
        "contstats" => o.contstats = on,
        "allbackups" => o.allbackups = on,
        "abortonclose" => o.abortonclose = on,
        "splice-auto" => o.splice_auto = on,
        "splice-request" => o.splice_request = on,
        "splice-response" => o.splice_response = on,
        "tcpka" => o.tcpka = on,
        "clitcpka" => o.clitcpka = on,
        "srvtcpka" => o.srvtcpka = on,
        "http-buffer-request" => o.http_buffer_request = on,
        "independent-streams" => o.independent_streams = on,
        "persist" => o.persist = on,
        "prefer-last-server" => o.prefer_last_server = on,
        "nolinger" => o.nolinger = on,
        "tcp-smart-accept" => o.tcp_smart_accept = Some(on),
        "tcp-smart-connect" => o.tcp_smart_connect = on,
        "checkcache" => o.checkcache = on,
        "http-ignore-probes" => o.http_ignore_probes = on,
        "http-no-delay" => o.http_no_delay = on,
        "http-pretend-keepalive" => o.http_pretend_keepalive = on,
        "accept-invalid-http-request" => o.accept_invalid_http_request = on,
        "accept-invalid-http-response" => o.accept_invalid_http_response = on,
        "socket-stats" => o.socket_stats = on,
        "transparent" => o.transparent = on,
        "http-use-htx" => {}
        "http-keep-alive" => o.http_conn_mode = if on { HttpConnMode::KeepAlive } else { o.http_conn_mode },
        "http-server-close" => o.http_conn_mode = if on { HttpConnMode::ServerClose } else { HttpConnMode::KeepAlive },
        "httpclose" => o.http_conn_mode = if on { HttpConnMode::Close } else { HttpConnMode::KeepAlive },
        "originalto" => {
            let mut i = 0;
            while i < args.len() {
                if !matches!(args[i].as_str(), "except" | "header") || args.get(i + 1).is_none() {
                    ctx.alert(
                        line,
                        format!(
                            "'option originalto' only supports optional values: 'except' and 'header', not '{}'.",
                            args[i]
                        ),
                    );
                    return;
                }
                i += 2;
            }
            o.originalto = true;
        }
        "forwardfor" => {
            let mut ff = ForwardFor {
                except: None,
                header: "X-Forwarded-For".into(),
                if_none: false,
            };
            let mut i = 0;
            while i < args.len() {
                match args[i].as_str() {
                    "if-none" => {
                        ff.if_none = true;
                        i += 1;
                        continue;
                    }
                    "except" | "header" => {
                        let Some(v) = args.get(i + 1) else {
                            ctx.alert(line, format!("'option forwardfor {}' expects a value.", args[i]));
                            return;
                        };
                        if args[i] == "except" {
                            if let Err(e) = acl::parse_acl_expr(&["src".to_owned(), v.clone()]) {
                                ctx.alert(line, format!("'option forwardfor except' : {e}."));
                                return;
                            }
                            ff.except = Some(v.clone());
                        } else {
                            ff.header = v.clone();
                        }
                        i += 2;
                    }
                    other => {
                        ctx.alert(
                            line,
                            format!("'option forwardfor' only supports optional values: 'except', 'header' and 'if-none', not '{other}'."),
                        );
                        return;
                    }
                }
            }
            o.forwardfor = Some(ff);
        }
        "httpchk" => {
            p.check = CheckKind::Http(httpchk(args, line, ctx));
        }
        "ssl-hello-chk" => p.check = CheckKind::SslHello,
        "tcp-check" => p.check = CheckKind::TcpCheck,
        "smtpchk" => p.check = CheckKind::Smtp,
        "mysql-check" => p.check = CheckKind::Mysql,
        "ldap-check" => p.check = CheckKind::Ldap,
        "redis-check" => p.check = CheckKind::Redis,
        other => ctx.alert(line, format!("'option {other}' is not supported yet.")),
    }
}

/// `option httpchk [METHOD] [URI] [VERSION]`. One argument is the URI. HAProxy
/// 2.6 still accepts headers hidden after the version (`HTTP/1.1\r\nHost:\ x`)
/// with a warning; lbd reads them the same way.
fn httpchk(args: &[String], line: &Line, ctx: &mut Ctx) -> HttpCheck {
    let mut chk = HttpCheck {
        method: "OPTIONS".into(),
        uri: "/".into(),
        version: "HTTP/1.0".into(),
        headers: Vec::new(),
        body: None,
    };
    match args {
        [] => {}
        [uri] => chk.uri = uri.clone(),
        [m, uri] => {
            chk.method = m.clone();
            chk.uri = uri.clone();
        }
        [m, uri, ver] => {
            chk.method = m.clone();
            chk.uri = uri.clone();
            chk.version = ver.clone();
        }
        [_, _, _, extra, ..] => {
            ctx.alert(line, format!("'option httpchk' cannot handle unexpected argument '{extra}'."));
            return chk;
        }
    }
    if let Some((ver, rest)) = chk.version.split_once("\r\n") {
        let ver = ver.to_owned();
        let mut body_started = false;
        let mut body = String::new();
        for part in rest.split("\r\n") {
            if body_started {
                body.push_str(part);
                continue;
            }
            if part.is_empty() {
                body_started = true;
                continue;
            }
            match part.split_once(':') {
                Some((n, v)) => chk.headers.push((n.trim().to_owned(), v.trim().to_owned())),
                None => {
                    ctx.alert(line, format!("'option httpchk' : malformed header '{part}' after the version."));
                    return chk;
                }
            }
        }
        if body_started && !body.is_empty() {
            chk.body = Some(body);
        }
        chk.version = ver;
        ctx.warn(
            line,
            "'option httpchk' : hiding headers or a body after the version string is deprecated; use 'http-check send' instead.",
        );
    }
    chk
}

/// Parses a time argument with units, for use by sibling modules.
pub(super) fn parse_time(ctx: &mut Ctx, line: &Line, text: &str, what: &str) -> Option<std::time::Duration> {
    match units::parse_time_ms(text) {
        Ok(d) => Some(d),
        Err(e) => {
            ctx.alert(line, super::time_error(what, text, &e));
            None
        }
    }
}
