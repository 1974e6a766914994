//! Checks that need every proxy: backends and tables named by rules, modes of
//! switched-to backends, servers that cannot be checked, server ids, and the
//! warnings HAProxy prints after parsing.

use super::super::acl::{Condition, SampleExpr};
use super::super::addr::{ServerAddr, ServerPort};
use super::super::diag::Loc;
use super::super::model::*;
use super::Ctx;

fn find_backend<'a>(proxies: &'a [Proxy], name: &str) -> Option<&'a Proxy> {
    proxies.iter().find(|p| p.caps.backend && p.name.0 == name)
}

/// Every condition of a proxy with the line it sits on.
fn conditions(p: &Proxy) -> Vec<(&Condition, &Loc)> {
    let mut out = Vec::new();
    out.extend(p.switching_rules.iter().filter_map(|r| r.cond.as_ref().map(|c| (c, &r.loc))));
    out.extend(p.redirects.iter().filter_map(|(_, c, l)| c.as_ref().map(|c| (c, l))));
    for rules in [&p.http_request, &p.http_response, &p.http_after_response] {
        out.extend(rules.iter().filter_map(|r| r.cond.as_ref().map(|c| (c, &r.loc))));
    }
    out.extend(p.tcp_rules.iter().filter_map(|r| r.cond.as_ref().map(|c| (c, &r.loc))));
    out.extend(p.stick_rules.iter().filter_map(|r| r.cond.as_ref().map(|c| (c, &r.loc))));
    out.extend(p.monitor_fail.iter().map(|c| (c, &p.loc)));
    out
}

pub(super) fn check(global: &Global, proxies: &mut [Proxy], ctx: &mut Ctx) {
    // Backends named by default_backend / use_backend, and their modes.
    for p in proxies.iter() {
        if !p.caps.frontend {
            continue;
        }
        let mut targets: Vec<(&ProxyName, &Loc, &str)> = Vec::new();
        if let Some(b) = &p.default_backend {
            targets.push((b, &p.loc, "default_backend"));
        }
        for r in &p.switching_rules {
            targets.push((&r.backend, &r.loc, "use_backend"));
        }
        for (name, loc, what) in targets {
            // A name with a log-format expression is resolved per request.
            if name.0.contains("%[") {
                continue;
            }
            match find_backend(proxies, &name.0) {
                None => ctx.diags.alert(
                    loc,
                    Some(what),
                    format!("Proxy '{}': unable to find required {what}: '{name}'.", p.name),
                ),
                Some(b) if b.name == p.name && !p.caps.backend => {}
                Some(b) => {
                    if p.mode == Mode::Http && b.mode == Mode::Tcp {
                        ctx.diags.alert(
                            &p.loc,
                            Some(what),
                            format!(
                                "http {} '{}' ({}) tries to use incompatible tcp backend '{}' ({}) as its {what} (see 'mode').",
                                if p.caps.backend { "proxy" } else { "frontend" },
                                p.name,
                                p.loc,
                                b.name,
                                b.loc
                            ),
                        );
                    }
                }
            }
        }
    }

    // Stick tables named by stick rules and track-sc actions; backends named by fetches.
    for p in proxies.iter() {
        for r in &p.stick_rules {
            if !p.caps.backend {
                continue;
            }
            let has_table = proxies.iter().any(|t| t.name == r.table && t.stick_table.is_some());
            if !has_table {
                ctx.diags.alert(
                    &r.loc,
                    Some("stick"),
                    format!("Proxy '{}': unable to find stick-table '{}'.", p.name, r.table),
                );
            }
        }
        let mut tracks: Vec<(&ProxyName, &Loc)> = Vec::new();
        for r in p.http_request.iter().chain(&p.http_response) {
            if let HttpAction::TrackSc { table: Some(t), .. } = &r.action {
                tracks.push((t, &r.loc));
            }
        }
        for r in &p.tcp_rules {
            if let TcpAction::TrackSc { table: Some(t), .. } = &r.action {
                tracks.push((t, &r.loc));
            }
        }
        for (t, loc) in tracks {
            if !proxies.iter().any(|x| &x.name == t && x.stick_table.is_some()) {
                ctx.diags.alert(
                    loc,
                    Some("track-sc"),
                    format!("Proxy '{}': unable to find table '{t}' referenced by track-sc.", p.name),
                );
            }
        }
        // Named ACLs are checked where a rule uses them, as HAProxy does.
        for (cond, loc) in conditions(p) {
            for s in cond.samples() {
                check_backend_ref(s, p, proxies, loc, ctx);
            }
        }
    }

    // Servers without a port need a check port when checked.
    for p in proxies.iter() {
        for s in &p.servers {
            let no_port = matches!(
                &s.addr,
                ServerAddr::Inet {
                    port: ServerPort::ClientPort | ServerPort::Offset(_),
                    ..
                }
            );
            if s.params.check && no_port && s.params.check_port.is_none() {
                ctx.diags.alert(
                    &s.loc,
                    Some("server"),
                    format!(
                        "config : {} '{}': server '{}' has neither service port nor check port. Check has been disabled.",
                        kind_word(p),
                        p.name,
                        s.name.0
                    ),
                );
            }
            if let (Some(_), None) = (&s.cookie, &p.cookie) {
                ctx.diags.warn(
                    &s.loc,
                    Some("server"),
                    format!(
                        "server '{}/{}' has a cookie but the backend has no 'cookie' directive: it is ignored.",
                        p.name, s.name.0
                    ),
                );
            }
        }
    }

    if global.tune_bufsize < 1024 {
        let loc = Loc {
            file: "<global>".into(),
            line: 0,
        };
        ctx.diags.alert(
            &loc,
            Some("tune.bufsize"),
            format!(
                "tune.bufsize {} is too small: at least 1024 bytes are needed for lbd's own error pages.",
                global.tune_bufsize
            ),
        );
    }

    assign_server_ids(proxies);
    warnings(global, proxies, ctx);
}

fn kind_word(p: &Proxy) -> &'static str {
    match (p.caps.frontend, p.caps.backend) {
        (true, true) => "proxy",
        (false, _) => "backend",
        _ => "frontend",
    }
}

fn check_backend_ref(s: &SampleExpr, p: &Proxy, proxies: &[Proxy], loc: &Loc, ctx: &mut Ctx) {
    if let Some(b) = &s.backend_ref {
        if find_backend(proxies, b).is_none() {
            ctx.diags.alert(
                loc,
                Some(s.fetch),
                format!(
                    "unable to find backend '{b}' referenced in arg 1 of ACL keyword '{}' in proxy '{}'.",
                    s.fetch, p.name
                ),
            );
        }
    }
}

/// Servers without an explicit `id` take the lowest free number, in order.
fn assign_server_ids(proxies: &mut [Proxy]) {
    for p in proxies.iter_mut() {
        let mut used: std::collections::BTreeSet<u32> = p.servers.iter().filter(|s| s.id != 0).map(|s| s.id).collect();
        let mut next = 1;
        for s in p.servers.iter_mut().filter(|s| s.id == 0) {
            while used.contains(&next) {
                next += 1;
            }
            s.id = next;
            used.insert(next);
        }
    }
}

fn warnings(global: &Global, proxies: &[Proxy], ctx: &mut Ctx) {
    // One address, two frontends: HAProxy lets the kernel share the connections
    // between them; lbd gives the address to the first.
    let mut bound: Vec<(&crate::config::addr::ListenAddr, &Proxy, &Loc)> = Vec::new();
    for p in proxies.iter().filter(|p| p.caps.frontend && !p.disabled) {
        for b in &p.binds {
            for a in &b.addrs {
                match bound.iter().find(|(x, owner, _)| *x == a && owner.name != p.name) {
                    Some((_, owner, loc)) => ctx.diags.warn(
                        &b.loc,
                        Some("bind"),
                        format!(
                            "{a} is already bound by '{}' ({}:{}): lbd gives its connections to that one only, where HAProxy shares them",
                            owner.name, loc.file, loc.line
                        ),
                    ),
                    None => bound.push((a, p, &b.loc)),
                }
            }
        }
    }
    for p in proxies {
        if p.disabled {
            continue;
        }
        let t = &p.timeouts;
        let fe_missing = p.caps.frontend && t.client.is_none();
        let be_missing = p.caps.backend && (t.connect.is_none() || t.server.is_none());
        if fe_missing || be_missing {
            ctx.diags.warn(
                &p.loc,
                None,
                format!("missing timeouts for {} '{}': set 'timeout client', 'timeout connect' and 'timeout server' to non-zero values, or connections may hang forever.", kind_word(p), p.name),
            );
        }
        let logs = !p.logs.is_empty() || (p.log_global && !global.logs.is_empty());
        if (p.options.tcplog || p.options.httplog || p.log_format.is_some()) && !logs && p.caps.frontend {
            ctx.diags.warn(
                &p.loc,
                None,
                format!("log format ignored for {} '{}' since it has no log address.", kind_word(p), p.name),
            );
        }
        if p.mode == Mode::Tcp && p.caps.frontend && (!p.http_request.is_empty() || !p.http_response.is_empty()) {
            ctx.diags.warn(
                &p.loc,
                None,
                format!(
                    "'http-request' and 'http-response' rules are ignored for {} '{}' as they require HTTP mode.",
                    kind_word(p),
                    p.name
                ),
            );
        }
        for e in &p.http_expects {
            if let ExpectMatch::RStatus(re) = &e.matcher {
                let anchored = regex::Regex::new(&format!("^(?:{})$", re.as_str())).ok();
                let surprising: Vec<u16> = (100u16..600)
                    .filter(|code| {
                        let text = code.to_string();
                        re.is_match(&text) && anchored.as_ref().is_some_and(|a| !a.is_match(&text))
                    })
                    .filter(|c| *c >= 500)
                    .take(3)
                    .collect();
                if !surprising.is_empty() {
                    ctx.diags.warn(
                        &e.loc,
                        Some("http-check"),
                        format!(
                            "'http-check expect rstatus {}' is an unanchored regex: it also accepts {} (as in HAProxy); write '^({})$' to accept only whole codes.",
                            re.as_str(),
                            surprising.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
                            re.as_str().trim_start_matches('(').trim_end_matches(')')
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_address_in_two_frontends_is_a_warning() {
        let c = crate::config::check_str(
            "t.cfg",
            "defaults\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\nfrontend a\n  bind 127.0.0.1:8443\nfrontend b\n  bind 127.0.0.1:8443\n",
        );
        assert!(c.is_valid());
        assert!(c
            .diags
            .warnings()
            .any(|d| d.loc.line == 8 && d.message.contains("already bound by 'a' (t.cfg:6)")));
    }
}
