//! Rules and persistence: `redirect`, `http-request` and friends, `tcp-request`,
//! `stick-table`, `stick`, `cookie`, `http-check`, `tcp-check`.

use std::collections::BTreeMap;

use super::super::acl::{self, first_line, Condition};
use super::super::model::*;
use super::super::syntax::{Line, SectionKind};
use super::super::units;
use super::proxy::parse_time;
use super::Ctx;

fn regex(ctx: &mut Ctx, line: &Line, what: &str, text: &str, icase: bool) -> Option<regex::Regex> {
    match regex::RegexBuilder::new(text).case_insensitive(icase).build() {
        Ok(r) => Some(r),
        Err(e) => {
            ctx.alert(
                line,
                format!("'{what}' : regex '{text}' is invalid ({}).", first_line(&e.to_string())),
            );
            None
        }
    }
}

/// `location|prefix|scheme TARGET [options] [if|unless COND]` starting at word `at`.
pub(super) fn redirect(line: &Line, at: usize, acls: &BTreeMap<String, AclDef>, ctx: &mut Ctx) -> Option<(Redirect, Option<Condition>)> {
    let what = if at == 1 { "redirect" } else { "http-request redirect" };
    let kind = match line.arg(at) {
        Some("location") => RedirectKind::Location,
        Some("prefix") => RedirectKind::Prefix,
        Some("scheme") => RedirectKind::Scheme,
        other => {
            ctx.alert(line, format!("'{what}' expects 'code', 'prefix', 'location', 'scheme', 'set-cookie', 'clear-cookie', 'drop-query' or 'append-slash' (got '{}').", other.unwrap_or("")));
            return None;
        }
    };
    let Some(target) = line.arg(at + 1) else {
        ctx.alert(line, format!("'{what} {}' expects a target.", line.arg(at).unwrap_or("")));
        return None;
    };
    let mut r = Redirect {
        kind,
        target: target.to_owned(),
        code: 302,
        drop_query: false,
        append_slash: false,
        set_cookie: None,
        clear_cookie: None,
    };
    let mut i = at + 2;
    while let Some(w) = line.arg(i) {
        match w {
            "code" => {
                let code = line.arg(i + 1).and_then(|c| c.parse::<u16>().ok());
                match code {
                    Some(c @ (301 | 302 | 303 | 307 | 308)) => r.code = c,
                    _ => {
                        ctx.alert(
                            line,
                            format!(
                                "'{what}': unsupported HTTP code '{}' (must be one of 301, 302, 303, 307 or 308).",
                                line.arg(i + 1).unwrap_or("")
                            ),
                        );
                        return None;
                    }
                }
                i += 2;
            }
            "set-cookie" | "clear-cookie" => {
                let Some(c) = line.arg(i + 1) else {
                    ctx.alert(line, format!("'{what}' : '{w}' expects a cookie."));
                    return None;
                };
                if w == "set-cookie" {
                    r.set_cookie = Some(c.to_owned());
                } else {
                    r.clear_cookie = Some(c.to_owned());
                }
                i += 2;
            }
            "drop-query" => {
                r.drop_query = true;
                i += 1;
            }
            "append-slash" => {
                r.append_slash = true;
                i += 1;
            }
            "ignore-empty" => i += 1,
            "if" | "unless" => break,
            other => {
                ctx.alert(line, format!("'{what}' expects 'code', 'prefix', 'location', 'scheme', 'set-cookie', 'clear-cookie', 'drop-query' or 'append-slash' (got '{other}')."));
                return None;
            }
        }
    }
    let cond = ctx.condition(line, i, what, acls).ok()?;
    Some((r, cond))
}

fn status_arg(ctx: &mut Ctx, line: &Line, idx: usize, what: &str) -> Option<u16> {
    match line.arg(idx).and_then(|s| s.parse::<u16>().ok()) {
        Some(s) if (100..=599).contains(&s) => Some(s),
        _ => {
            ctx.alert(line, format!("'{what}' : invalid status code '{}'.", line.arg(idx).unwrap_or("")));
            None
        }
    }
}

/// The index of `if`/`unless` or the end of the line, from `from` on.
fn cond_start(line: &Line, from: usize) -> usize {
    (from..line.words.len())
        .find(|&i| matches!(line.words[i].as_str(), "if" | "unless"))
        .unwrap_or(line.words.len())
}

/// Checks that exactly `n` arguments sit between `from` and the condition.
fn exact_args(ctx: &mut Ctx, line: &Line, from: usize, n: usize, what: &str) -> Option<Vec<String>> {
    let end = cond_start(line, from);
    if end - from != n {
        // A word after the arguments that is not `if`/`unless`.
        if end - from > n {
            let extra = &line.words[from + n];
            ctx.alert(
                line,
                format!("'{what}' expects either 'if' or 'unless' followed by a condition but found '{extra}'."),
            );
        } else {
            ctx.alert(
                line,
                format!("'{what}' expects exactly {n} argument{}.", if n == 1 { "" } else { "s" }),
            );
        }
        return None;
    }
    Some(line.words[from..end].to_vec())
}

pub(super) fn http_rule(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let which = line.arg(0).unwrap_or("http-request");
    let Some(action) = line.arg(1) else {
        ctx.alert(line, format!("'{which}' expects an action."));
        return;
    };
    let what = format!("{which} {action}");
    let is_response = which != "http-request";
    let mut cond_from = 2;
    let act = match action {
        "allow" => HttpAction::Allow,
        "reject" if !is_response => HttpAction::Reject,
        "silent-drop" => HttpAction::SilentDrop,
        "deny" | "tarpit" => {
            // A refused response is the server's failure: 502, as HAProxy answers.
            let mut status = if is_response { 502 } else { 403 };
            let mut i = 2;
            while let Some(w) = line.arg(i) {
                match w {
                    "deny_status" | "status" => {
                        let Some(s) = status_arg(ctx, line, i + 1, &what) else { return };
                        status = s;
                        i += 2;
                    }
                    "content-type" | "string" | "lf-string" | "file" | "lf-file" | "errorfile" | "errorfiles" | "hdr" => {
                        i += if w == "hdr" { 3 } else { 2 };
                    }
                    "default-errorfiles" => i += 1,
                    _ => break,
                }
            }
            if action == "tarpit" && is_response {
                ctx.alert(line, format!("'{which}' does not support 'tarpit'."));
                return;
            }
            cond_from = i;
            if action == "deny" {
                HttpAction::Deny { status }
            } else {
                HttpAction::Tarpit {
                    status: if status == 403 { 500 } else { status },
                }
            }
        }
        "auth" if !is_response => {
            let mut realm = None;
            if line.arg(2) == Some("realm") {
                realm = line.arg(3).map(str::to_owned);
                cond_from = 4;
            }
            HttpAction::Auth { realm }
        }
        "redirect" => {
            let Some((r, cond)) = redirect(line, 2, &p.acls, ctx) else { return };
            p_rules(p, which).push(HttpRule {
                action: HttpAction::Redirect(r),
                cond,
                loc: line.loc.clone(),
            });
            return;
        }
        "add-header" | "set-header" => {
            let Some(a) = exact_args(ctx, line, 2, 2, &what) else { return };
            cond_from = 4;
            if action == "add-header" {
                HttpAction::AddHeader {
                    name: a[0].clone(),
                    value: a[1].clone(),
                }
            } else {
                HttpAction::SetHeader {
                    name: a[0].clone(),
                    value: a[1].clone(),
                }
            }
        }
        "del-header" => {
            let Some(name) = line.arg(2) else {
                ctx.alert(line, format!("'{what}' expects a header name."));
                return;
            };
            cond_from = 3;
            if line.arg(3) == Some("-m") {
                cond_from = 5;
            }
            HttpAction::DelHeader { name: name.to_owned() }
        }
        "replace-header" | "replace-value" => {
            let Some(a) = exact_args(ctx, line, 2, 3, &what) else { return };
            let Some(re) = regex(ctx, line, &what, &a[1], false) else { return };
            cond_from = 5;
            if action == "replace-header" {
                HttpAction::ReplaceHeader {
                    name: a[0].clone(),
                    regex: re,
                    replace: a[2].clone(),
                }
            } else {
                HttpAction::ReplaceValue {
                    name: a[0].clone(),
                    regex: re,
                    replace: a[2].clone(),
                }
            }
        }
        "set-path" | "set-query" | "set-uri" | "set-method" | "set-pathq" if !is_response => {
            let Some(a) = exact_args(ctx, line, 2, 1, &what) else { return };
            cond_from = 3;
            match action {
                "set-path" | "set-pathq" => HttpAction::SetPath(a[0].clone()),
                "set-query" => HttpAction::SetQuery(a[0].clone()),
                "set-uri" => HttpAction::SetUri(a[0].clone()),
                _ => HttpAction::SetMethod(a[0].clone()),
            }
        }
        "replace-path" | "replace-pathq" | "replace-uri" if !is_response => {
            let Some(a) = exact_args(ctx, line, 2, 2, &what) else { return };
            let Some(re) = regex(ctx, line, &what, &a[0], false) else { return };
            cond_from = 4;
            HttpAction::ReplacePath {
                regex: re,
                replace: a[1].clone(),
            }
        }
        "set-status" if is_response => {
            let Some(status) = status_arg(ctx, line, 2, &what) else { return };
            let mut reason = None;
            cond_from = 3;
            if line.arg(3) == Some("reason") {
                reason = line.arg(4).map(str::to_owned);
                cond_from = 5;
            }
            HttpAction::SetStatus { status, reason }
        }
        "return" => {
            let mut status = 200;
            let mut content_type = None;
            let mut body = None;
            let mut i = 2;
            while let Some(w) = line.arg(i) {
                match w {
                    "status" => {
                        let Some(s) = status_arg(ctx, line, i + 1, &what) else { return };
                        status = s;
                        i += 2;
                    }
                    "content-type" => {
                        content_type = line.arg(i + 1).map(str::to_owned);
                        i += 2;
                    }
                    "string" | "lf-string" | "file" | "lf-file" | "errorfile" | "errorfiles" => {
                        body = line.arg(i + 1).map(str::to_owned);
                        i += 2;
                    }
                    "hdr" => i += 3,
                    "default-errorfiles" => i += 1,
                    _ => break,
                }
            }
            cond_from = i;
            HttpAction::Return {
                status,
                content_type,
                body,
            }
        }
        "set-log-level" => {
            let Some(l) = line.arg(2) else {
                ctx.alert(line, format!("'{what}' expects a level."));
                return;
            };
            if l != "silent" && !LEVELS.contains(&l) {
                ctx.alert(line, format!("'{what}' : unknown level '{l}'."));
                return;
            }
            cond_from = 3;
            HttpAction::SetLogLevel(l.to_owned())
        }
        "capture" => {
            let (Some(expr), Some("len")) = (line.arg(2), line.arg(3)) else {
                ctx.alert(line, format!("'{what}' expects <sample> 'len' <length> or <sample> 'id' <id>."));
                return;
            };
            let sample = match acl::parse_sample(expr) {
                Ok(s) => s,
                Err(e) => {
                    ctx.alert(line, format!("'{what}' : {e}."));
                    return;
                }
            };
            let Some(len) = ctx.uint(line, 4, &what, 1, 65535) else { return };
            cond_from = 5;
            HttpAction::Capture {
                expr: sample,
                len: len as u32,
            }
        }
        a if a.starts_with("set-var(") || a.starts_with("unset-var(") => {
            let Some(name) = var_name(a) else {
                ctx.alert(
                    line,
                    format!("'{what}' : invalid variable name; expected a scope among 'proc', 'sess', 'txn', 'req', 'res' then a name."),
                );
                return;
            };
            if a.starts_with("unset-var(") {
                HttpAction::UnsetVar { name }
            } else {
                let Some(expr) = line.arg(2) else {
                    ctx.alert(line, format!("'{what}' expects a sample expression."));
                    return;
                };
                let sample = match acl::parse_sample(expr) {
                    Ok(s) => s,
                    Err(e) => {
                        ctx.alert(line, format!("'{what}' : {e}."));
                        return;
                    }
                };
                cond_from = 3;
                HttpAction::SetVar { name, expr: sample }
            }
        }
        a if a.starts_with("track-sc") => {
            let Some((index, expr, table, next)) = track_sc(ctx, line, a, &what) else {
                return;
            };
            cond_from = next;
            HttpAction::TrackSc { index, expr, table }
        }
        "use-service" if !is_response => match line.arg(2) {
            Some(svc @ "prometheus-exporter") => {
                cond_from = 3;
                HttpAction::UseService(svc.to_owned())
            }
            Some(other) => {
                ctx.alert(
                    line,
                    format!("'{what}' : unknown service '{other}' (lbd provides 'prometheus-exporter')."),
                );
                return;
            }
            None => {
                ctx.alert(line, format!("'{what}' expects a service name."));
                return;
            }
        },
        other => {
            ctx.alert(line, format!("'{which}' expects 'allow', 'deny', 'tarpit', 'reject', 'auth', 'redirect', 'add-header', 'set-header', 'del-header', 'replace-header', 'replace-value', 'set-path', 'set-query', 'set-uri', 'set-method', 'replace-path', 'set-var(*)', 'unset-var(*)', 'return', 'set-log-level', 'capture', 'track-sc(*)', 'silent-drop', 'use-service', but got '{other}'."));
            return;
        }
    };
    let Ok(cond) = ctx.condition(line, cond_from, &what, &p.acls) else {
        return;
    };
    p_rules(p, which).push(HttpRule {
        action: act,
        cond,
        loc: line.loc.clone(),
    });
}

fn p_rules<'a>(p: &'a mut Proxy, which: &str) -> &'a mut Vec<HttpRule> {
    match which {
        "http-response" => &mut p.http_response,
        "http-after-response" => &mut p.http_after_response,
        _ => &mut p.http_request,
    }
}

fn var_name(action: &str) -> Option<String> {
    let inner = action.split_once('(')?.1.strip_suffix(')')?;
    let (scope, name) = inner.split_once('.')?;
    if !matches!(scope, "proc" | "sess" | "txn" | "req" | "res" | "check") || name.is_empty() {
        return None;
    }
    Some(inner.to_owned())
}

type Track = (u8, acl::SampleExpr, Option<ProxyName>, usize);

fn track_sc(ctx: &mut Ctx, line: &Line, action: &str, what: &str) -> Option<Track> {
    let index = match action.strip_prefix("track-sc").and_then(|n| n.parse::<u8>().ok()) {
        Some(n) if n <= 2 => n,
        _ => {
            ctx.alert(line, format!("'{what}' : only track-sc0, track-sc1 and track-sc2 exist."));
            return None;
        }
    };
    let Some(expr) = line.arg(2) else {
        ctx.alert(line, format!("'{what}' expects a sample expression."));
        return None;
    };
    let sample = match acl::parse_sample(expr) {
        Ok(s) => s,
        Err(e) => {
            ctx.alert(line, format!("'{what}' : {e}."));
            return None;
        }
    };
    let (table, next) = if line.arg(3) == Some("table") {
        match line.arg(4) {
            Some(t) => (Some(ProxyName(t.to_owned())), 5),
            None => {
                ctx.alert(line, format!("'{what}' : 'table' expects a table name."));
                return None;
            }
        }
    } else {
        (None, 3)
    };
    Some((index, sample, table, next))
}

pub(super) fn tcp_rule(p: &mut Proxy, kind: SectionKind, line: &Line, ctx: &mut Ctx) {
    let which = line.arg(0).unwrap_or("tcp-request");
    let Some(stage_word) = line.arg(1) else {
        ctx.alert(
            line,
            format!("'{which}' expects 'connection', 'session', 'content' or 'inspect-delay'."),
        );
        return;
    };
    if stage_word == "inspect-delay" {
        let Some(text) = line.arg(2) else {
            ctx.alert(line, format!("'{which} inspect-delay' expects a time."));
            return;
        };
        if let Some(d) = parse_time(ctx, line, text, &format!("{which} inspect-delay")) {
            p.inspect_delay = Some(d);
        }
        return;
    }
    let stage = match (which, stage_word) {
        ("tcp-request", "connection") => TcpRuleStage::Connection,
        ("tcp-request", "session") => TcpRuleStage::Session,
        ("tcp-request", "content") => TcpRuleStage::Content,
        ("tcp-response", "content") => TcpRuleStage::Response,
        _ => {
            ctx.alert(
                line,
                format!("'{which}' expects 'connection', 'session', 'content' or 'inspect-delay', not '{stage_word}'."),
            );
            return;
        }
    };
    if stage == TcpRuleStage::Connection && kind == SectionKind::Backend {
        ctx.alert(line, format!("'{which} {stage_word}' is not allowed in a backend."));
        return;
    }
    let what = format!("{which} {stage_word}");
    let Some(action) = line.arg(2) else {
        ctx.alert(line, format!("'{what}' expects an action."));
        return;
    };
    let mut cond_from = 3;
    let act = match action {
        "accept" => TcpAction::Accept,
        "reject" => TcpAction::Reject,
        "silent-drop" => TcpAction::SilentDrop,
        "close" if stage == TcpRuleStage::Response => TcpAction::Close,
        "expect-proxy" if stage == TcpRuleStage::Connection => {
            if line.arg(3) != Some("layer4") {
                ctx.alert(line, format!("'{what} expect-proxy' expects 'layer4'."));
                return;
            }
            cond_from = 4;
            TcpAction::ExpectProxy
        }
        a if a.starts_with("track-sc") => {
            // track_sc reads the expression at word 2; shift by one for tcp rules.
            let shifted = Line {
                loc: line.loc.clone(),
                words: line.words[1..].to_vec(),
            };
            let Some((index, expr, table, next)) = track_sc(ctx, &shifted, a, &what) else {
                return;
            };
            cond_from = next + 1;
            TcpAction::TrackSc { index, expr, table }
        }
        a if a.starts_with("set-var(") => {
            let Some(name) = var_name(a) else {
                ctx.alert(line, format!("'{what}' : invalid variable name."));
                return;
            };
            let Some(expr) = line.arg(3) else {
                ctx.alert(line, format!("'{what}' expects a sample expression."));
                return;
            };
            let sample = match acl::parse_sample(expr) {
                Ok(s) => s,
                Err(e) => {
                    ctx.alert(line, format!("'{what}' : {e}."));
                    return;
                }
            };
            cond_from = 4;
            TcpAction::SetVar { name, expr: sample }
        }
        other => {
            ctx.alert(line, format!("'{what}' expects 'accept', 'reject', 'track-sc0', 'track-sc1', 'track-sc2', 'set-var(*)', 'expect-proxy', 'silent-drop', 'close' but got '{other}'."));
            return;
        }
    };
    let Ok(cond) = ctx.condition(line, cond_from, &what, &p.acls) else {
        return;
    };
    p.tcp_rules.push(TcpRule {
        stage,
        action: act,
        cond,
        loc: line.loc.clone(),
    });
}

pub(super) fn stick_table(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    if let Some(prev) = &p.stick_table {
        ctx.alert(
            line,
            format!(
                "stick-table name '{}' conflicts with table declared in {} '{}' at {}.",
                p.name, "proxy", p.name, prev.loc
            ),
        );
        return;
    }
    let mut key = None;
    let mut size = None;
    let mut expire = None;
    let mut nopurge = false;
    let mut store = Vec::new();
    let mut i = 1;
    while let Some(w) = line.arg(i) {
        match w {
            "type" => {
                let t = line.arg(i + 1).unwrap_or("");
                let mut len = 32u32;
                let mut step = 2;
                if matches!(t, "string" | "binary") && line.arg(i + 2) == Some("len") {
                    let Some(l) = ctx.uint(line, i + 3, "stick-table len", 1, 65535) else {
                        return;
                    };
                    len = l as u32;
                    step = 4;
                }
                key = Some(match t {
                    "ip" => TableType::Ip,
                    "ipv6" => TableType::Ipv6,
                    "integer" => TableType::Integer,
                    "string" => TableType::String(len),
                    "binary" => TableType::Binary(len),
                    other => {
                        ctx.alert(line, format!("stick-table: unknown type '{other}'."));
                        return;
                    }
                });
                i += step;
            }
            "size" => {
                let Some(text) = line.arg(i + 1) else {
                    ctx.alert(line, "stick-table: 'size' expects a number.");
                    return;
                };
                match units::parse_size(text) {
                    Ok(n) if n > 0 && n <= u32::MAX as u64 => size = Some(n),
                    _ => {
                        ctx.alert(line, format!("stick-table: invalid size '{text}'."));
                        return;
                    }
                }
                i += 2;
            }
            "expire" => {
                let Some(text) = line.arg(i + 1) else {
                    ctx.alert(line, "stick-table: 'expire' expects a time.");
                    return;
                };
                let Some(d) = parse_time(ctx, line, text, "stick-table expire") else {
                    return;
                };
                expire = Some(d);
                i += 2;
            }
            "nopurge" => {
                nopurge = true;
                i += 1;
            }
            "store" => {
                let Some(list) = line.arg(i + 1) else {
                    ctx.alert(line, "stick-table: 'store' expects data types.");
                    return;
                };
                for item in list.split(',') {
                    let base = item.split('(').next().unwrap_or("");
                    if !STORE_TYPES.contains(&base) {
                        ctx.alert(line, format!("stick-table: unknown data type '{item}'."));
                        return;
                    }
                    store.push(item.to_owned());
                }
                i += 2;
            }
            "peers" | "srvkey" | "write-to" | "recv-only" => i += if w == "recv-only" { 1 } else { 2 },
            other => {
                ctx.alert(line, format!("stick-table: unknown argument '{other}'."));
                return;
            }
        }
    }
    let Some(key) = key else {
        ctx.alert(line, "stick-table: missing type.");
        return;
    };
    let Some(size) = size else {
        ctx.alert(line, "stick-table: missing size.");
        return;
    };
    p.stick_table = Some(StickTable {
        key,
        size,
        expire,
        nopurge,
        store,
        loc: line.loc.clone(),
    });
}

const STORE_TYPES: &[&str] = &[
    "server_id",
    "gpc0",
    "gpc0_rate",
    "gpc1",
    "gpc1_rate",
    "gpt0",
    "conn_cnt",
    "conn_cur",
    "conn_rate",
    "sess_cnt",
    "sess_rate",
    "http_req_cnt",
    "http_req_rate",
    "http_err_cnt",
    "http_err_rate",
    "http_fail_cnt",
    "http_fail_rate",
    "bytes_in_cnt",
    "bytes_in_rate",
    "bytes_out_cnt",
    "bytes_out_rate",
    "gpc",
    "gpc_rate",
    "gpt",
];

pub(super) fn stick(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let kind = match line.arg(1) {
        Some("on") => StickKind::On,
        Some("match") => StickKind::Match,
        Some("store-request") => StickKind::StoreRequest,
        Some("store-response") => StickKind::StoreResponse,
        other => {
            ctx.alert(
                line,
                format!(
                    "'stick' expects 'on', 'match', 'store-request' or 'store-response', not '{}'.",
                    other.unwrap_or("")
                ),
            );
            return;
        }
    };
    let what = format!("stick {}", line.arg(1).unwrap_or(""));
    let Some(expr) = line.arg(2) else {
        ctx.alert(line, format!("'{what}' expects a fetch method."));
        return;
    };
    let sample = match acl::parse_sample(expr) {
        Ok(s) => s,
        Err(e) => {
            ctx.alert(line, format!("'{what}' : {e}."));
            return;
        }
    };
    let mut i = 3;
    let mut table = p.name.clone();
    if line.arg(3) == Some("table") {
        let Some(t) = line.arg(4) else {
            ctx.alert(line, format!("'{what}' : 'table' expects a table name."));
            return;
        };
        table = ProxyName(t.to_owned());
        i = 5;
    }
    let Ok(cond) = ctx.condition(line, i, &what, &p.acls) else { return };
    p.stick_rules.push(StickRule {
        kind,
        expr: sample,
        table,
        cond,
        loc: line.loc.clone(),
    });
}

pub(super) fn cookie(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let Some(name) = line.arg(1) else {
        ctx.alert(line, "'cookie' expects <cookie_name> as argument.");
        return;
    };
    let mut c = Cookie {
        name: name.to_owned(),
        mode: CookieMode::Rewrite,
        indirect: false,
        nocache: false,
        postonly: false,
        preserve: false,
        httponly: false,
        secure: false,
        domains: Vec::new(),
        maxidle: None,
        maxlife: None,
        dynamic: false,
        attrs: Vec::new(),
    };
    let mut i = 2;
    while let Some(w) = line.arg(i) {
        match w {
            "rewrite" => c.mode = CookieMode::Rewrite,
            "insert" => c.mode = CookieMode::Insert,
            "prefix" => c.mode = CookieMode::Prefix,
            "indirect" => c.indirect = true,
            "nocache" => c.nocache = true,
            "postonly" => c.postonly = true,
            "preserve" => c.preserve = true,
            "httponly" => c.httponly = true,
            "secure" => c.secure = true,
            "dynamic" => c.dynamic = true,
            "domain" | "maxidle" | "maxlife" | "attr" => {
                let Some(v) = line.arg(i + 1) else {
                    ctx.alert(line, format!("'cookie' : '{w}' expects an argument."));
                    return;
                };
                match w {
                    "domain" => c.domains.push(v.to_owned()),
                    "attr" => c.attrs.push(v.to_owned()),
                    _ => {
                        let Some(d) = parse_time(ctx, line, v, &format!("cookie {w}")) else {
                            return;
                        };
                        if w == "maxidle" {
                            c.maxidle = Some(d);
                        } else {
                            c.maxlife = Some(d);
                        }
                    }
                }
                i += 1;
            }
            other => {
                ctx.alert(line, format!("'cookie' supports 'rewrite', 'insert', 'prefix', 'indirect', 'nocache', 'postonly', 'domain', 'maxidle', 'maxlife', 'dynamic', 'attr', 'preserve', 'httponly' and 'secure' options, not '{other}'."));
                return;
            }
        }
        i += 1;
    }
    p.cookie = Some(c);
}

pub(super) fn http_check(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    match line.arg(1) {
        Some("expect") => {
            let mut i = 2;
            let mut negate = false;
            // Options that may precede the matcher.
            loop {
                match line.arg(i) {
                    Some("!") => {
                        negate = true;
                        i += 1;
                    }
                    Some("min-recv" | "ok-status" | "error-status" | "tout-status" | "on-success" | "on-error" | "status-code" | "comment") => i += 2,
                    _ => break,
                }
            }
            let (Some(kind), Some(pattern)) = (line.arg(i), line.arg(i + 1)) else {
                ctx.alert(line, "'http-check expect' expects 'status', 'rstatus', 'string', 'rstring', 'hdr' or 'fhdr' followed by a pattern.");
                return;
            };
            let matcher = match kind {
                "status" => {
                    let mut ranges = Vec::new();
                    for part in pattern.split(',') {
                        let (a, b) = part.split_once('-').unwrap_or((part, part));
                        let parse = |s: &str| s.parse::<u16>().ok();
                        match (parse(a), parse(b)) {
                            (Some(lo), Some(hi)) if lo <= hi => ranges.push((lo, hi)),
                            _ => {
                                let bad = part.chars().find(|c| !c.is_ascii_digit() && *c != '-').unwrap_or('-');
                                ctx.alert(line, format!("'http-check expect' : invalid character '{bad}' in the list of status codes."));
                                return;
                            }
                        }
                    }
                    ExpectMatch::Status(ranges)
                }
                "rstatus" => {
                    let Some(re) = regex(ctx, line, "http-check expect", pattern, false) else { return };
                    ExpectMatch::RStatus(re)
                }
                "string" => ExpectMatch::String(pattern.to_owned()),
                "rstring" => {
                    let Some(re) = regex(ctx, line, "http-check expect", pattern, false) else { return };
                    ExpectMatch::RString(re)
                }
                other => {
                    ctx.alert(line, format!("'http-check expect' : unknown pattern type '{other}'."));
                    return;
                }
            };
            p.http_expects.push(HttpExpect { negate, matcher, loc: line.loc.clone() });
        }
        Some("send") => {
            let mut send = HttpCheckSend::default();
            let mut i = 2;
            while let Some(w) = line.arg(i) {
                let Some(v) = line.arg(i + 1) else {
                    ctx.alert(line, format!("'http-check send' : '{w}' expects an argument."));
                    return;
                };
                match w {
                    "meth" => send.method = Some(v.to_owned()),
                    "uri" | "uri-lf" => send.uri = Some(v.to_owned()),
                    "ver" => send.version = Some(v.to_owned()),
                    "body" | "body-lf" => send.body = Some(v.to_owned()),
                    "hdr" => {
                        let Some(val) = line.arg(i + 2) else {
                            ctx.alert(line, "'http-check send hdr' expects a name and a value.");
                            return;
                        };
                        send.headers.push((v.to_owned(), val.to_owned()));
                        i += 1;
                    }
                    "comment" => {}
                    other => {
                        ctx.alert(line, format!("'http-check send' : unknown parameter '{other}'."));
                        return;
                    }
                }
                i += 2;
            }
            p.http_check_send = Some(send);
        }
        Some("connect" | "disable-on-404" | "send-state" | "comment" | "set-var" | "unset-var") => {}
        other => ctx.alert(line, format!("'http-check' expects 'comment', 'connect', 'disable-on-404', 'expect', 'send', 'send-state', 'set-var' or 'unset-var', not '{}'.", other.unwrap_or(""))),
    }
}

pub(super) fn tcp_check(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    use crate::config::model::{TcpCheckStep, TcpExpect};
    match line.arg(1) {
        Some("connect") => {
            let (mut port, mut addr) = (None, None);
            let mut i = 2;
            while let Some(word) = line.arg(i) {
                match word {
                    "port" => port = ctx.uint(line, i + 1, "tcp-check connect port", 1, 65535).map(|v| v as u16),
                    "addr" => match line.arg(i + 1).map(str::parse::<std::net::IpAddr>) {
                        Some(Ok(a)) => addr = Some(a),
                        _ => {
                            ctx.alert(line, "'tcp-check connect addr' expects an IPv4 or IPv6 address.");
                            return;
                        }
                    },
                    "comment" => {}
                    "default" | "linger" => {
                        i += 1;
                        continue;
                    }
                    other => {
                        ctx.alert(
                            line,
                            format!("'tcp-check connect {other}' is not supported (lbd knows 'port', 'addr', 'default', 'linger' and 'comment')."),
                        );
                        return;
                    }
                }
                i += 2;
            }
            p.tcp_checks.push(TcpCheckStep::Connect { port, addr });
        }
        Some("send") => match line.arg(2) {
            Some(data) => p.tcp_checks.push(TcpCheckStep::Send(data.as_bytes().to_vec())),
            None => ctx.alert(line, "'tcp-check send' expects the data to send."),
        },
        Some("send-binary") => match line.arg(2).and_then(hex_bytes) {
            Some(data) => p.tcp_checks.push(TcpCheckStep::Send(data)),
            None => ctx.alert(line, "'tcp-check send-binary' expects an even number of hexadecimal digits."),
        },
        Some("expect") => {
            let mut i = 2;
            let negate = line.arg(i) == Some("!");
            if negate {
                i += 1;
            }
            let matcher = match (line.arg(i), line.arg(i + 1)) {
                (Some("string"), Some(pat)) => Some(TcpExpect::Bytes(pat.as_bytes().to_vec())),
                (Some("binary"), Some(pat)) => match hex_bytes(pat) {
                    Some(b) => Some(TcpExpect::Bytes(b)),
                    None => {
                        ctx.alert(line, "'tcp-check expect binary' expects an even number of hexadecimal digits.");
                        return;
                    }
                },
                (Some("rstring"), Some(pat)) => regex(ctx, line, "tcp-check expect", pat, false).map(TcpExpect::Text),
                (Some("rbinary"), Some(pat)) => regex(ctx, line, "tcp-check expect", pat, false).map(TcpExpect::Hex),
                (Some(kind @ ("string-lf" | "binary-lf")), Some(_)) => {
                    ctx.alert(
                        line,
                        format!("'tcp-check expect {kind}' (a log-format pattern) is not supported yet."),
                    );
                    return;
                }
                _ => {
                    ctx.alert(
                        line,
                        "'tcp-check expect' expects 'string', 'rstring', 'binary' or 'rbinary' followed by a pattern.",
                    );
                    return;
                }
            };
            if let Some(matcher) = matcher {
                p.tcp_checks.push(TcpCheckStep::Expect { negate, matcher });
            }
        }
        Some(kind @ ("send-lf" | "send-binary-lf")) => {
            ctx.alert(line, format!("'tcp-check {kind}' (log-format data) is not supported yet."));
        }
        Some("comment" | "set-var" | "unset-var") => {}
        other => ctx.alert(
            line,
            format!(
                "'tcp-check' expects 'comment', 'connect', 'send', 'send-binary', 'expect', 'set-var' or 'unset-var', not '{}'.",
                other.unwrap_or("")
            ),
        ),
    }
}

/// `0a1B..`: the bytes an even number of hexadecimal digits spell.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() % 2 != 0 {
        return None;
    }
    use crate::config::lexer::hex_val;
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(hex_val(pair[0])? << 4 | hex_val(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::model::{TcpCheckStep, TcpExpect};

    const HEAD: &str = "defaults\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\nbackend bk\n  option tcp-check\n";

    #[test]
    fn a_tcp_check_script_is_kept_in_order_with_its_bytes() {
        let c = crate::config::check_str(
            "t.cfg",
            &format!(
                "{HEAD}  tcp-check connect port 6379\n  tcp-check send PING\\r\\n\n  tcp-check expect string +PONG\n  tcp-check send-binary 0a0B\n  tcp-check expect ! rstring ^-ERR\n  tcp-check expect rbinary ^2B\n  server s 127.0.0.1:1 check\n"
            ),
        );
        assert!(c.is_valid(), "{:?}", c.diags.errors().collect::<Vec<_>>());
        let steps = &c.config.as_ref().and_then(|c| c.backend("bk")).expect("bk").tcp_checks;
        assert_eq!(steps.len(), 6, "{steps:?}");
        assert!(matches!(
            steps[0],
            TcpCheckStep::Connect {
                port: Some(6379),
                addr: None
            }
        ));
        assert!(matches!(&steps[1], TcpCheckStep::Send(b) if b == b"PING\r\n"));
        assert!(matches!(&steps[2], TcpCheckStep::Expect { negate: false, matcher: TcpExpect::Bytes(b) } if b == b"+PONG"));
        assert!(matches!(&steps[3], TcpCheckStep::Send(b) if b == &[0x0a, 0x0b]));
        assert!(matches!(
            &steps[4],
            TcpCheckStep::Expect {
                negate: true,
                matcher: TcpExpect::Text(_)
            }
        ));
        assert!(matches!(
            &steps[5],
            TcpCheckStep::Expect {
                negate: false,
                matcher: TcpExpect::Hex(_)
            }
        ));
    }

    #[test]
    fn what_a_tcp_check_cannot_do_is_an_error_on_its_line() {
        for (line, says) in [
            ("tcp-check send-binary 0a0", "even number of hexadecimal digits"),
            ("tcp-check expect binary zz", "even number of hexadecimal digits"),
            ("tcp-check connect port 993 ssl", "'tcp-check connect ssl' is not supported"),
            ("tcp-check expect rstring (", "is invalid"),
            ("tcp-check send-lf %[date]", "not supported yet"),
        ] {
            let c = crate::config::check_str("t.cfg", &format!("{HEAD}  {line}\n  server s 127.0.0.1:1 check\n"));
            let errors: Vec<_> = c.diags.errors().collect();
            assert!(
                errors.iter().any(|d| d.loc.line == 7 && d.message.contains(says)),
                "{line}: {errors:?}"
            );
        }
    }
}
