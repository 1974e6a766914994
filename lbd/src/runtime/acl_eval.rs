//! Evaluating conditions at run time. The ACLs were compiled when the
//! configuration was checked; here samples are fetched and matched.

use std::net::{IpAddr, SocketAddr};

use super::snapshot::{BackendRt, FrontendRt, Snapshot};
use crate::config::acl::{AclExpr, AclRef, Condition, MatchMethod, Pattern, SampleExpr};

/// What an HTTP request (and, once it came, its response) offers to fetches.
pub struct HttpView<'a> {
    pub method: &'a str,
    /// The request target as sent (`/path?query`, or an absolute URI).
    pub uri: &'a str,
    pub version: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The response status and headers, for `http-response` rules.
    pub status: Option<u16>,
    pub res_headers: Option<&'a http::HeaderMap>,
    /// Variables set by `set-var` (`txn.NAME`, `req.NAME`, ...), in order of setting.
    pub vars: &'a [(String, Sample)],
}

/// The values of every line of header `name` in `map`, split on commas as
/// HAProxy's `hdr()` does (`fhdr()` keeps each line whole).
pub fn header_values<'m>(map: &'m http::HeaderMap, name: &str, split: bool) -> Vec<&'m str> {
    let mut out = Vec::new();
    for v in map.get_all(name) {
        let Ok(text) = v.to_str() else { continue };
        if split {
            out.extend(text.split(',').map(str::trim));
        } else {
            out.push(text.trim());
        }
    }
    out
}

/// The occurrence `occ` (1 = first, -1 = last, as HAProxy counts) of a list.
fn occurrence<'v>(values: &[&'v str], occ: i64) -> Option<&'v str> {
    match occ {
        0 => None,
        n if n > 0 => values.get(usize::try_from(n - 1).ok()?).copied(),
        n => {
            let back = usize::try_from(-n).ok()?;
            values.len().checked_sub(back).and_then(|i| values.get(i)).copied()
        }
    }
}

impl HttpView<'_> {
    pub fn path(&self) -> &str {
        let p = self.uri.split('?').next().unwrap_or("");
        // An absolute URI's path starts after the authority; an origin-form target
        // (starting with `/`) is a path even when it contains `://`.
        if p.starts_with('/') {
            return p;
        }
        match p.find("://") {
            Some(i) => p[i + 3..].find('/').map_or("/", |j| &p[i + 3 + j..]),
            None => p,
        }
    }

    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }

    /// The last line of a request header, whole.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_all(name).iter().next_back().and_then(|v| v.to_str().ok())
    }
}

/// Everything fetches may look at.
pub struct SampleCtx<'a> {
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// What the client's TLS connection negotiated, when it came over TLS.
    pub tls: Option<&'a crate::tls::TlsInfo>,
    pub snapshot: &'a Snapshot,
    pub frontend: &'a FrontendRt,
    pub backend: Option<&'a BackendRt>,
    pub http: Option<&'a HttpView<'a>>,
}

impl<'a> SampleCtx<'a> {
    /// The context of a client connection as the listener accepted it.
    pub fn for_client(
        acc: &'a super::session::Accepted,
        snapshot: &'a Snapshot,
        frontend: &'a FrontendRt,
        backend: Option<&'a BackendRt>,
        http: Option<&'a HttpView<'a>>,
    ) -> Self {
        SampleCtx {
            src: acc.src,
            dst: acc.dst,
            tls: acc.tls.as_deref(),
            snapshot,
            frontend,
            backend,
            http,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(String),
}

impl Sample {
    /// The bytes a stick table keys on.
    pub fn key_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Sample::Ip(IpAddr::V4(v4)) => v4.octets().to_vec().into(),
            Sample::Ip(IpAddr::V6(v6)) => v6.octets().to_vec().into(),
            Sample::Int(i) => i.to_be_bytes().to_vec().into(),
            Sample::Bool(b) => vec![u8::from(*b)].into(),
            Sample::Str(s) => s.as_bytes().into(),
        }
    }

    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Sample::Bool(b) => u8::from(*b).to_string().into(),
            Sample::Int(i) => i.to_string().into(),
            Sample::Ip(ip) => ip.to_string().into(),
            Sample::Str(s) => s.as_str().into(),
        }
    }
}

fn backend_for<'a>(ctx: &'a SampleCtx, arg: Option<&str>) -> Option<&'a BackendRt> {
    match arg {
        Some(name) => ctx.snapshot.backends.get(name).map(|b| &**b),
        None => ctx.backend.or_else(|| ctx.snapshot.backends.get(ctx.frontend.name()).map(|b| &**b)),
    }
}

/// Fetches a sample; `None` when it does not exist here (no such header, no HTTP).
pub fn fetch(expr: &SampleExpr, ctx: &SampleCtx) -> Option<Sample> {
    let arg = expr.arg.as_deref();
    let http = ctx.http;
    let raw = match expr.fetch {
        "always_true" => Sample::Bool(true),
        "always_false" => Sample::Bool(false),
        "src" => Sample::Ip(ctx.src?.ip()),
        "dst" => Sample::Ip(ctx.dst?.ip()),
        "src_port" => Sample::Int(i64::from(ctx.src?.port())),
        "dst_port" => Sample::Int(i64::from(ctx.dst?.port())),
        "fe_name" => Sample::Str(ctx.frontend.name().to_owned()),
        "be_name" => Sample::Str(ctx.backend?.name().to_owned()),
        "nbsrv" => Sample::Int(backend_for(ctx, arg)?.usable_servers() as i64),
        "be_conn" => Sample::Int(i64::from(
            backend_for(ctx, arg)?.cur_conns.load(std::sync::atomic::Ordering::Relaxed),
        )),
        "fe_conn" => Sample::Int(i64::from(ctx.frontend.cur_conns.load(std::sync::atomic::Ordering::Relaxed))),
        "ssl_fc" => Sample::Bool(ctx.tls.is_some()),
        "ssl_fc_sni" => Sample::Str(ctx.tls?.sni.clone()?),
        "ssl_fc_protocol" => Sample::Str(ctx.tls?.protocol.to_owned()),
        "ssl_fc_cipher" => Sample::Str(ctx.tls?.cipher.clone()),
        "ssl_fc_alpn" => Sample::Str(ctx.tls?.alpn.clone()?),
        "method" => Sample::Str(http?.method.to_owned()),
        "path" => Sample::Str(http?.path().to_owned()),
        "pathq" | "url" => Sample::Str(http?.uri.to_owned()),
        "path_len" => Sample::Int(http?.path().len() as i64),
        "query" => Sample::Str(http?.query()?.to_owned()),
        "base" => {
            let h = http?;
            Sample::Str(format!("{}{}", h.header("host").unwrap_or(""), h.path()))
        }
        "req.ver" | "req_ver" => Sample::Str(http?.version.trim_start_matches("HTTP/").to_owned()),
        "hdr" | "req.hdr" | "req.fhdr" | "res.hdr" | "shdr" | "res.fhdr" => {
            let h = http?;
            let map = if expr.fetch.starts_with("res") || expr.fetch == "shdr" {
                h.res_headers?
            } else {
                h.headers
            };
            let split = !expr.fetch.ends_with("fhdr");
            match arg {
                Some(a) => {
                    let (name, occ) = match a.split_once(',') {
                        Some((n, o)) => (n.trim(), o.trim().parse::<i64>().unwrap_or(-1)),
                        None => (a, -1),
                    };
                    Sample::Str(occurrence(&header_values(map, name, split), occ)?.to_owned())
                }
                None => Sample::Str(map.values().last()?.to_str().ok()?.to_owned()),
            }
        }
        "hdr_cnt" | "req.hdr_cnt" => {
            let h = http?;
            let n = match arg {
                Some(name) => header_values(h.headers, name, true).len(),
                None => h.headers.len(),
            };
            Sample::Int(n as i64)
        }
        "status" => Sample::Int(i64::from(http?.status?)),
        "hdr_val" => Sample::Int(http?.header(arg?)?.trim().parse().ok()?),
        "hdr_ip" | "req.hdr_ip" => Sample::Ip(http?.header(arg?)?.split(',').next()?.trim().parse().ok()?),
        "url_param" | "urlp" => {
            let q = http?.query()?;
            let name = arg?;
            let v = q
                .split('&')
                .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))?;
            Sample::Str(v.to_owned())
        }
        "cook" | "req.cook" => {
            let name = arg?;
            let v = http?
                .headers
                .get_all("cookie")
                .iter()
                .filter_map(|c| c.to_str().ok())
                .flat_map(|c| c.split(';'))
                .find_map(|kv| kv.trim().split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))?;
            Sample::Str(v.to_owned())
        }
        "req.proto_http" => Sample::Bool(http.is_some()),
        "var" => {
            let name = arg?;
            http?.vars.iter().rev().find(|(n, _)| n == name)?.1.clone()
        }
        "str" => Sample::Str(arg?.to_owned()),
        "int" => Sample::Int(arg?.parse().ok()?),
        "env" => Sample::Str(std::env::var(arg?).ok()?),
        "hostname" => Sample::Str(std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_owned()),
        _ => return None,
    };
    Some(convert(raw, &expr.converters))
}

fn convert(mut s: Sample, converters: &[(String, Option<String>)]) -> Sample {
    for (name, arg) in converters {
        s = match (name.as_str(), s) {
            ("lower", v) => Sample::Str(v.as_text().to_lowercase()),
            ("upper", v) => Sample::Str(v.as_text().to_uppercase()),
            ("length", v) => Sample::Int(v.as_text().len() as i64),
            ("ipmask", Sample::Ip(IpAddr::V4(v4))) => {
                let bits: u32 = arg
                    .as_deref()
                    .and_then(|a| a.split(',').next())
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(32)
                    .min(32);
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                Sample::Ip(IpAddr::V4((u32::from(v4) & mask).into()))
            }
            ("not", Sample::Bool(b)) => Sample::Bool(!b),
            ("bool", Sample::Int(i)) => Sample::Bool(i != 0),
            (_, v) => v,
        };
    }
    s
}

/// Whether `ip` is in `net`/`bits` (an IPv4-mapped IPv6 address counts as IPv4).
pub(crate) fn ip_in(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits.min(32))) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(n)) => a.to_ipv4_mapped().is_some_and(|a4| ip_in(IpAddr::V4(a4), IpAddr::V4(n), bits)),
        (IpAddr::V4(a), IpAddr::V6(n)) => ip_in(IpAddr::V6(a.to_ipv6_mapped()), IpAddr::V6(n), bits),
    }
}

/// `-i` folds ASCII letters only, as HAProxy's matching does (C locale).
fn str_match(method: MatchMethod, icase: bool, text: &str, pat: &str) -> bool {
    let same = |a: &str, b: &str| if icase { a.eq_ignore_ascii_case(b) } else { a == b };
    let (t, p) = (text.as_bytes(), pat.as_bytes());
    let same_bytes = |a: &[u8]| if icase { a.eq_ignore_ascii_case(p) } else { a == p };
    match method {
        MatchMethod::Str | MatchMethod::Bin => same(text, pat),
        MatchMethod::Beg => t.len() >= p.len() && same_bytes(&t[..p.len()]),
        MatchMethod::End => t.len() >= p.len() && same_bytes(&t[t.len() - p.len()..]),
        MatchMethod::Sub => p.is_empty() || t.windows(p.len()).any(same_bytes),
        MatchMethod::Dir => text.split('/').any(|seg| same(seg, pat)),
        MatchMethod::Dom => text.split(['/', '.', '?']).any(|seg| same(seg, pat)) || same(text, pat),
        _ => false,
    }
}

/// Whether one ACL expression matches.
pub fn eval_expr(e: &AclExpr, ctx: &SampleCtx) -> bool {
    if let Some(text) = borrowed_text(e, ctx.http) {
        return text.is_some_and(|t| e.patterns.iter().any(|p| text_match(e, p, t)));
    }
    let sample = fetch(&e.sample, ctx);
    match e.method {
        MatchMethod::Found => return sample.is_some(),
        MatchMethod::Bool => {
            return match sample {
                Some(Sample::Bool(b)) => b,
                Some(Sample::Int(i)) => i != 0,
                Some(Sample::Str(s)) => !s.is_empty(),
                Some(Sample::Ip(_)) => true,
                None => false,
            }
        }
        _ => {}
    }
    let Some(sample) = sample else { return false };
    let text = match e.method {
        MatchMethod::Int | MatchMethod::Len | MatchMethod::Ip => None,
        _ => Some(sample.as_text()),
    };
    e.patterns.iter().any(|p| match (e.method, p) {
        (MatchMethod::Int, Pattern::Int(lo, hi)) | (MatchMethod::Len, Pattern::Int(lo, hi)) => {
            let v = match (&sample, e.method) {
                (_, MatchMethod::Len) => sample.as_text().len() as i64,
                (Sample::Int(i), _) => *i,
                (Sample::Bool(b), _) => i64::from(*b),
                (other, _) => match other.as_text().trim().parse() {
                    Ok(v) => v,
                    Err(_) => return false,
                },
            };
            lo.is_none_or(|l| v >= l) && hi.is_none_or(|h| v <= h)
        }
        (MatchMethod::Ip, Pattern::Net(net, bits)) => match &sample {
            Sample::Ip(ip) => ip_in(*ip, *net, *bits),
            other => other.as_text().parse::<IpAddr>().is_ok_and(|ip| ip_in(ip, *net, *bits)),
        },
        _ => text.as_deref().is_some_and(|t| text_match(e, p, t)),
    })
}

/// Whether `text` matches pattern `p` of a string or regex match.
fn text_match(e: &AclExpr, p: &Pattern, text: &str) -> bool {
    match (e.method, p) {
        (MatchMethod::Reg, Pattern::Reg(re)) => re.is_match(text),
        (m, Pattern::Str(s)) => str_match(m, e.ignore_case, text, s),
        _ => false,
    }
}

/// The request's path, target or method, read in place for a string or regex
/// match without converters (the seed's `path_beg` ACLs): no copy per ACL.
/// `None` when the fetch is another one; `Some(None)` when it has no value here.
fn borrowed_text<'v>(e: &AclExpr, http: Option<&'v HttpView>) -> Option<Option<&'v str>> {
    if !e.sample.converters.is_empty()
        || matches!(
            e.method,
            MatchMethod::Found | MatchMethod::Bool | MatchMethod::Int | MatchMethod::Len | MatchMethod::Ip
        )
    {
        return None;
    }
    Some(match e.sample.fetch {
        "path" => http.map(HttpView::path),
        "pathq" | "url" => http.map(|h| h.uri),
        "method" => http.map(|h| h.method),
        _ => return None,
    })
}

fn eval_ref(r: &AclRef, ctx: &SampleCtx) -> bool {
    match r {
        AclRef::Named(_, exprs) => exprs.iter().any(|e| eval_expr(e, ctx)),
        AclRef::Anonymous(e) => eval_expr(e, ctx),
    }
}

/// Evaluates `if`/`unless` conditions: an OR of ANDed terms.
pub fn eval(cond: &Condition, ctx: &SampleCtx) -> bool {
    let holds = cond
        .any_of
        .iter()
        .any(|terms| terms.iter().all(|t| eval_ref(&t.acl, ctx) != t.negate));
    holds != cond.unless
}

/// `None` (no condition) holds.
pub fn holds(cond: Option<&Condition>, ctx: &SampleCtx) -> bool {
    cond.is_none_or(|c| eval(c, ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matching_methods_with_and_without_case_folding() {
        use MatchMethod::*;
        let yes = |m, i, t, p| assert!(str_match(m, i, t, p), "{m:?} -i={i} {t:?} {p:?}");
        let no = |m, i, t, p| assert!(!str_match(m, i, t, p), "{m:?} -i={i} {t:?} {p:?}");
        yes(Beg, true, "/Microsoft-Server-ActiveSync?x", "/microsoft-server-activesync");
        no(Beg, false, "/Microsoft-Server-ActiveSync", "/microsoft-server-activesync");
        no(Beg, true, "/ews", "/ews/exchange.asmx");
        yes(End, true, "/owa/LOGON.ASPX", ".aspx");
        no(End, true, "x", ".aspx");
        yes(Str, true, "OWA", "owa");
        no(Str, false, "OWA", "owa");
        yes(Sub, true, "/a/RpcProxy.dll", "rpcproxy");
        yes(Sub, false, "/anything", "");
        no(Sub, false, "/a", "/ab");
        yes(Dir, true, "/owa/Auth/x", "auth");
        no(Dir, true, "/owa/authx", "auth");
        yes(Dom, true, "Mail.XLC.local", "xlc");
        yes(Dom, false, "mail.xlc.local", "mail.xlc.local");
        // Only ASCII letters fold, as in HAProxy (C locale).
        yes(Str, true, "CAFÉ", "cafÉ");
        no(Str, true, "CAFÉ", "café");
    }
}
