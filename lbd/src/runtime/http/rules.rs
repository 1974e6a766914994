//! `http-request` and `http-response` rules: each rule's condition is checked
//! against the message as the earlier rules left it, then its action is
//! planned (values expanded) and applied. Conditions and regexes were compiled
//! with the configuration.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::body::LbBody;
use super::local;
use crate::config::acl::parse_sample;
use crate::config::model::{HttpAction, HttpRule};
use crate::runtime::acl_eval::{self, fetch, HttpView, Sample, SampleCtx};

/// What a rule decided.
pub enum Plan {
    /// The rule did not apply.
    Nothing,
    /// `allow`: stop evaluating this rule list.
    Stop,
    /// lbd answers the request itself; `close` when the connection must end after it.
    Answer(http::Response<LbBody>, bool),
    /// A deny rule refused the message: answered, then the connection ends.
    Blocked(http::Response<LbBody>),
    /// `reject`, `silent-drop` (`true`): the connection is closed without an answer.
    Drop(bool),
    /// `tarpit`: the refusal is answered only after `timeout tarpit`, to slow an attacker.
    Tarpit(http::Response<LbBody>),
    Add(HeaderName, HeaderValue),
    Set(HeaderName, HeaderValue),
    Del(HeaderName),
    /// Every line of a header, rewritten.
    Rewrite(HeaderName, Vec<HeaderValue>),
    Uri(String),
    Method(Method),
    SetVar(String, Sample),
    UnsetVar(String),
    Status(u16),
}

/// Expands a log-format string: `%[fetch,conv]` samples, a few `%x` aliases, `%%`.
pub fn expand(fmt: &str, ctx: &SampleCtx) -> String {
    if !fmt.contains('%') {
        return fmt.to_owned();
    }
    let mut out = String::with_capacity(fmt.len());
    let mut rest = fmt;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        if let Some(inner) = tail.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                out.push_str(&rest[i..]);
                return out;
            };
            if let Some(s) = parse_sample(&inner[..end]).ok().and_then(|e| fetch(&e, ctx)) {
                out.push_str(&s.as_text());
            } else {
                out.push('-');
            }
            rest = &inner[end + 1..];
            continue;
        }
        let alias_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count().min(2);
        let (alias, after) = tail.split_at(alias_len);
        let ip = |a: Option<std::net::SocketAddr>| a.map(|a| a.ip().to_canonical().to_string()).unwrap_or_default();
        let port = |a: Option<std::net::SocketAddr>| a.map(|a| a.port().to_string()).unwrap_or_default();
        match alias {
            "ci" => out.push_str(&ip(ctx.src)),
            "cp" => out.push_str(&port(ctx.src)),
            "fi" => out.push_str(&ip(ctx.dst)),
            "fp" => out.push_str(&port(ctx.dst)),
            "ft" | "f" => out.push_str(ctx.frontend.name()),
            "b" => out.push_str(ctx.backend.map_or("", |b| b.name())),
            _ if tail.starts_with('%') => {
                out.push('%');
                rest = &tail[1..];
                continue;
            }
            _ => {
                out.push('%');
                rest = tail;
                continue;
            }
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// HAProxy writes back-references as `\1`; the regex crate as `${1}`.
fn replacement(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.as_bytes()).ok()
}

fn header_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

/// Rewrites each line of `name` (or each comma-separated value with `per_value`).
fn rewrite(map: &HeaderMap, name: &str, re: &regex::Regex, with: &str, per_value: bool) -> Option<Plan> {
    let hn = header_name(name)?;
    let rep = replacement(with);
    let mut out = Vec::new();
    for v in map.get_all(&hn) {
        let text = v.to_str().ok()?;
        let new = if per_value {
            text.split(',')
                .map(|part| {
                    let t = part.trim();
                    if re.is_match(t) {
                        re.replace(t, rep.as_str()).into_owned()
                    } else {
                        t.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else if re.is_match(text) {
            re.replace(text, rep.as_str()).into_owned()
        } else {
            text.to_owned()
        };
        out.push(header_value(&new)?);
    }
    Some(Plan::Rewrite(hn, out))
}

/// Decides what one rule does to a message. `response` selects the response's headers.
pub fn plan(rule: &HttpRule, ctx: &SampleCtx, view: &HttpView, response: bool, be_name: &str) -> Plan {
    if !acl_eval::holds(rule.cond.as_ref(), ctx) {
        return Plan::Nothing;
    }
    let errorfiles = ctx.backend.map_or(&ctx.frontend.conf.errorfiles, |b| &b.conf.errorfiles);
    let headers = if response {
        view.res_headers.unwrap_or(view.headers)
    } else {
        view.headers
    };
    let set_uri = |path: Option<String>, query: Option<String>| {
        let p = path.unwrap_or_else(|| view.path().to_owned());
        match query.or_else(|| view.query().map(str::to_owned)) {
            Some(q) if !q.is_empty() => Plan::Uri(format!("{p}?{q}")),
            _ => Plan::Uri(p),
        }
    };
    match &rule.action {
        HttpAction::Allow => Plan::Stop,
        HttpAction::Deny { status } => Plan::Blocked(local::error(*status, errorfiles)),
        HttpAction::Tarpit { status } => Plan::Tarpit(local::error(*status, errorfiles)),
        HttpAction::Reject => Plan::Drop(false),
        HttpAction::SilentDrop => Plan::Drop(true),
        HttpAction::Auth { realm } => Plan::Answer(local::auth_required(realm.as_deref().unwrap_or(be_name)), false),
        HttpAction::Redirect(r) => Plan::Answer(local::redirect(r, view), false),
        HttpAction::Return {
            status,
            content_type,
            body,
        } => {
            let body = body.as_deref().map(|b| expand(b, ctx)).unwrap_or_default();
            Plan::Answer(local::simple(*status, content_type.as_deref().unwrap_or("text/plain"), body), false)
        }
        HttpAction::UseService(_) => Plan::Answer(
            local::simple(
                200,
                "text/plain; version=0.0.4",
                crate::runtime::stats_page::prometheus(ctx.snapshot),
            ),
            false,
        ),
        HttpAction::AddHeader { name, value } => match (header_name(name), header_value(&expand(value, ctx))) {
            (Some(n), Some(v)) => Plan::Add(n, v),
            _ => Plan::Nothing,
        },
        HttpAction::SetHeader { name, value } => match (header_name(name), header_value(&expand(value, ctx))) {
            (Some(n), Some(v)) => Plan::Set(n, v),
            _ => Plan::Nothing,
        },
        HttpAction::DelHeader { name } => header_name(name).map_or(Plan::Nothing, Plan::Del),
        HttpAction::ReplaceHeader { name, regex, replace } => rewrite(headers, name, regex, replace, false).unwrap_or(Plan::Nothing),
        HttpAction::ReplaceValue { name, regex, replace } => rewrite(headers, name, regex, replace, true).unwrap_or(Plan::Nothing),
        HttpAction::SetPath(fmt) if !response => set_uri(Some(expand(fmt, ctx)), None),
        HttpAction::SetQuery(fmt) if !response => set_uri(None, Some(expand(fmt, ctx))),
        HttpAction::SetUri(fmt) if !response => Plan::Uri(expand(fmt, ctx)),
        HttpAction::ReplacePath { regex, replace } if !response => {
            let path = view.path();
            set_uri(Some(regex.replace(path, replacement(replace).as_str()).into_owned()), None)
        }
        HttpAction::SetMethod(fmt) if !response => Method::from_bytes(expand(fmt, ctx).as_bytes()).map_or(Plan::Nothing, Plan::Method),
        HttpAction::SetVar { name, expr } => fetch(expr, ctx).map_or(Plan::Nothing, |s| Plan::SetVar(name.clone(), s)),
        HttpAction::UnsetVar { name } => Plan::UnsetVar(name.clone()),
        HttpAction::SetStatus { status, .. } if response => Plan::Status(*status),
        _ => Plan::Nothing,
    }
}

/// Applies a header plan to a header map; returns false for plans that are not about headers.
pub fn apply_headers(plan: Plan, map: &mut HeaderMap, vars: &mut Vec<(String, Sample)>) -> Option<Plan> {
    match plan {
        Plan::Add(n, v) => {
            map.append(n, v);
        }
        Plan::Set(n, v) => {
            map.insert(n, v);
        }
        Plan::Del(n) => {
            map.remove(n);
        }
        Plan::Rewrite(n, values) => {
            map.remove(&n);
            for v in values {
                map.append(n.clone(), v);
            }
        }
        Plan::SetVar(n, s) => vars.push((n, s)),
        Plan::UnsetVar(n) => vars.retain(|(k, _)| *k != n),
        other => return Some(other),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backreferences_become_regex_crate_syntax() {
        assert_eq!(replacement(r"\1-x"), "${1}-x");
        assert_eq!(replacement("a$b"), "a$$b");
    }
}
