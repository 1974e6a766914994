//! Sample fetches, ACLs and conditions (`if`/`unless`), compiled when the
//! configuration is checked so nothing is parsed per request.

use std::net::IpAddr;

use regex::Regex;

use super::addr;

/// What a fetch returns; decides the default match method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    Bool,
    Int,
    Ip,
    Str,
    Bin,
}

/// How far into the connection a fetch needs to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// Addresses and ports, known at accept time.
    L4,
    /// The TLS handshake or the first bytes of the request.
    Content,
    /// The parsed HTTP request: only in `mode http`.
    Http,
    /// Internal state (server counts).
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgSpec {
    None,
    /// A backend name, optional (defaults to the current proxy).
    OptBackend,
    /// A string argument, optional (`hdr` without a name means every header).
    OptString,
    /// A string argument that must be given.
    String,
}

struct FetchDef {
    name: &'static str,
    arg: ArgSpec,
    out: SampleType,
    layer: Layer,
}

const fn f(name: &'static str, arg: ArgSpec, out: SampleType, layer: Layer) -> FetchDef {
    FetchDef { name, arg, out, layer }
}

use ArgSpec as A;
use Layer as L;
use SampleType as T;

/// The sample fetches lbd knows. See docs/keywords.md for their meaning.
const FETCHES: &[FetchDef] = &[
    f("always_true", A::None, T::Bool, L::L4),
    f("always_false", A::None, T::Bool, L::L4),
    f("src", A::None, T::Ip, L::L4),
    f("dst", A::None, T::Ip, L::L4),
    f("src_port", A::None, T::Int, L::L4),
    f("dst_port", A::None, T::Int, L::L4),
    f("so_id", A::None, T::Int, L::L4),
    f("fe_id", A::None, T::Int, L::L4),
    f("fe_name", A::None, T::Str, L::L4),
    f("be_id", A::None, T::Int, L::L4),
    f("be_name", A::None, T::Str, L::L4),
    f("nbsrv", A::OptBackend, T::Int, L::Internal),
    f("be_conn", A::OptBackend, T::Int, L::Internal),
    f("connslots", A::OptBackend, T::Int, L::Internal),
    f("queue", A::OptBackend, T::Int, L::Internal),
    f("fe_conn", A::OptBackend, T::Int, L::Internal),
    f("srv_is_up", A::String, T::Bool, L::Internal),
    f("ssl_fc", A::None, T::Bool, L::L4),
    f("ssl_fc_sni", A::None, T::Str, L::L4),
    f("ssl_fc_protocol", A::None, T::Str, L::L4),
    f("ssl_c_used", A::None, T::Bool, L::L4),
    f("req.ssl_sni", A::None, T::Str, L::Content),
    f("req_ssl_sni", A::None, T::Str, L::Content),
    f("req.ssl_hello_type", A::None, T::Int, L::Content),
    f("req_ssl_hello_type", A::None, T::Int, L::Content),
    f("req.len", A::None, T::Int, L::Content),
    f("req_len", A::None, T::Int, L::Content),
    f("req.payload", A::String, T::Bin, L::Content),
    f("req.proto_http", A::None, T::Bool, L::Content),
    f("method", A::None, T::Str, L::Http),
    f("path", A::None, T::Str, L::Http),
    f("pathq", A::None, T::Str, L::Http),
    f("query", A::None, T::Str, L::Http),
    f("url", A::None, T::Str, L::Http),
    f("base", A::None, T::Str, L::Http),
    f("url_param", A::OptString, T::Str, L::Http),
    f("urlp", A::OptString, T::Str, L::Http),
    f("req_ver", A::None, T::Str, L::Http),
    f("req.ver", A::None, T::Str, L::Http),
    f("hdr", A::OptString, T::Str, L::Http),
    f("req.hdr", A::OptString, T::Str, L::Http),
    f("req.fhdr", A::OptString, T::Str, L::Http),
    f("hdr_cnt", A::OptString, T::Int, L::Http),
    f("req.hdr_cnt", A::OptString, T::Int, L::Http),
    f("hdr_ip", A::OptString, T::Ip, L::Http),
    f("req.hdr_ip", A::OptString, T::Ip, L::Http),
    f("hdr_val", A::OptString, T::Int, L::Http),
    f("cook", A::OptString, T::Str, L::Http),
    f("req.cook", A::OptString, T::Str, L::Http),
    f("cook_cnt", A::OptString, T::Int, L::Http),
    f("http_auth_type", A::None, T::Str, L::Http),
    f("http_auth_user", A::None, T::Str, L::Http),
    f("status", A::None, T::Int, L::Http),
    f("res.hdr", A::OptString, T::Str, L::Http),
    f("shdr", A::OptString, T::Str, L::Http),
    f("res.cook", A::OptString, T::Str, L::Http),
    f("scook", A::OptString, T::Str, L::Http),
    f("var", A::String, T::Str, L::L4),
    f("str", A::String, T::Str, L::L4),
    f("int", A::String, T::Int, L::L4),
    f("bool", A::String, T::Bool, L::L4),
    f("ipv4", A::String, T::Ip, L::L4),
    f("ipv6", A::String, T::Ip, L::L4),
    f("env", A::String, T::Str, L::L4),
    f("hostname", A::None, T::Str, L::L4),
    f("rand", A::OptString, T::Int, L::L4),
    f("date", A::OptString, T::Int, L::L4),
    f("sc0_conn_rate", A::OptString, T::Int, L::L4),
    f("sc0_http_req_rate", A::OptString, T::Int, L::L4),
    f("src_conn_rate", A::OptString, T::Int, L::L4),
    f("src_http_req_rate", A::OptString, T::Int, L::L4),
    f("wait_end", A::None, T::Bool, L::Content),
];

/// Converters that may follow a fetch (`src,ipmask(24)`), and whether they take an argument.
const CONVERTERS: &[(&str, bool)] = &[
    ("lower", false),
    ("upper", false),
    ("ipmask", true),
    ("hex", false),
    ("base64", false),
    ("crc32", false),
    ("djb2", false),
    ("sdbm", false),
    ("wt6", false),
    ("length", false),
    ("bool", false),
    ("not", false),
    ("field", true),
    ("word", true),
    ("regsub", true),
    ("map", true),
    ("map_str", true),
    ("map_beg", true),
    ("map_ip", true),
    ("table_conn_rate", true),
    ("table_http_req_rate", true),
    ("url_dec", false),
    ("bytes", true),
    ("json", false),
];

/// How an ACL compares a sample with its patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMethod {
    Found,
    Bool,
    Int,
    Ip,
    Bin,
    Len,
    Str,
    Sub,
    Reg,
    Beg,
    End,
    Dir,
    Dom,
}

impl MatchMethod {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "found" => Self::Found,
            "bool" => Self::Bool,
            "int" => Self::Int,
            "ip" => Self::Ip,
            "bin" => Self::Bin,
            "len" => Self::Len,
            "str" => Self::Str,
            "sub" => Self::Sub,
            "reg" => Self::Reg,
            "beg" => Self::Beg,
            "end" => Self::End,
            "dir" => Self::Dir,
            "dom" => Self::Dom,
            _ => return None,
        })
    }

    fn default_for(t: SampleType) -> Self {
        match t {
            SampleType::Bool => Self::Bool,
            SampleType::Int => Self::Int,
            SampleType::Ip => Self::Ip,
            SampleType::Str => Self::Str,
            SampleType::Bin => Self::Bin,
        }
    }
}

/// A fetch with its argument and converters, e.g. `hdr(host),lower`.
#[derive(Debug, Clone)]
pub struct SampleExpr {
    pub fetch: &'static str,
    pub arg: Option<String>,
    pub converters: Vec<(String, Option<String>)>,
    pub out: SampleType,
    pub layer: Layer,
    /// A backend the fetch refers to (`nbsrv(bk)`), checked once all proxies are known.
    pub backend_ref: Option<String>,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Inclusive integer range; `None` is unbounded.
    Int(Option<i64>, Option<i64>),
    Net(IpAddr, u8),
    Str(String),
    Reg(Regex),
}

/// One `acl` line, or the body of an anonymous `{ }` ACL.
#[derive(Debug, Clone)]
pub struct AclExpr {
    pub sample: SampleExpr,
    pub method: MatchMethod,
    pub ignore_case: bool,
    pub patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
pub enum AclRef {
    /// A named ACL of the proxy; the expressions are the ORed `acl` lines.
    Named(String, Vec<AclExpr>),
    Anonymous(AclExpr),
}

#[derive(Debug, Clone)]
pub struct Term {
    pub negate: bool,
    pub acl: AclRef,
}

/// `if`/`unless` followed by terms: an OR of ANDs.
#[derive(Debug, Clone)]
pub struct Condition {
    pub unless: bool,
    pub any_of: Vec<Vec<Term>>,
}

impl Condition {
    /// Every sample expression the condition uses.
    pub fn samples(&self) -> impl Iterator<Item = &SampleExpr> {
        self.any_of.iter().flatten().flat_map(|t| match &t.acl {
            AclRef::Named(_, exprs) => exprs.iter().map(|e| &e.sample).collect::<Vec<_>>(),
            AclRef::Anonymous(e) => vec![&e.sample],
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("unknown fetch method '{0}' in ACL expression '{0}'")]
    UnknownFetch(String),
    #[error("unknown converter '{0}'")]
    UnknownConverter(String),
    #[error("missing closing ')' after arguments to '{0}'")]
    UnclosedArgs(String),
    #[error("fetch method '{0}' expects an argument")]
    MissingArg(String),
    #[error("fetch method '{0}' takes no argument")]
    UnexpectedArg(String),
    #[error("unknown matching method '{0}' when parsing ACL expression")]
    UnknownMethod(String),
    #[error("'-m' expects a matching method")]
    MissingMethod,
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("'{0}' is not a valid IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("regex '{0}' is invalid ({1})")]
    BadRegex(String, String),
    #[error("failed to open pattern file '{0}'")]
    PatternFile(String),
    #[error("'-M' (patterns from a map file) is not supported ('{0}')")]
    MapFile(String),
    #[error("no such ACL : '{0}'")]
    NoSuchAcl(String),
    #[error("missing closing '}}' in condition")]
    UnclosedBrace,
    #[error("unexpected '{0}' in condition")]
    Unexpected(String),
    #[error("missing ACL expression")]
    Empty,
    #[error("character '{0}' is not permitted in acl name '{1}'")]
    BadName(char, String),
}

fn find_fetch(name: &str) -> Option<&'static FetchDef> {
    FETCHES.iter().find(|d| d.name == name)
}

/// Splits `name(args)` into the name and the text between the parentheses.
fn split_call(text: &str) -> Result<(&str, Option<&str>), AclError> {
    match text.find('(') {
        None => Ok((text, None)),
        Some(open) => {
            let inner = text[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| AclError::UnclosedArgs(text[..open].to_owned()))?;
            Ok((&text[..open], Some(inner)))
        }
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Parses a sample expression: `fetch[(args)][,converter[(args)]]...`.
pub fn parse_sample(text: &str) -> Result<SampleExpr, AclError> {
    let mut parts = split_top_level(text).into_iter();
    let head = parts.next().unwrap_or_default();
    let (name, arg) = split_call(head)?;
    let def = find_fetch(name).ok_or_else(|| AclError::UnknownFetch(name.to_owned()))?;
    let arg = arg.filter(|a| !a.is_empty()).map(str::to_owned);
    match (def.arg, &arg) {
        (ArgSpec::None, Some(_)) => return Err(AclError::UnexpectedArg(name.to_owned())),
        (ArgSpec::String, None) => return Err(AclError::MissingArg(name.to_owned())),
        _ => {}
    }
    let backend_ref = match def.arg {
        ArgSpec::OptBackend => arg.clone(),
        _ => None,
    };
    let mut converters = Vec::new();
    let mut out = def.out;
    for conv in parts {
        let (cname, carg) = split_call(conv)?;
        let Some((_, takes_arg)) = CONVERTERS.iter().find(|(n, _)| *n == cname) else {
            return Err(AclError::UnknownConverter(cname.to_owned()));
        };
        if *takes_arg && carg.is_none() {
            return Err(AclError::MissingArg(cname.to_owned()));
        }
        out = match cname {
            "length" | "crc32" | "djb2" | "sdbm" | "wt6" | "table_conn_rate" | "table_http_req_rate" => SampleType::Int,
            "bool" | "not" => SampleType::Bool,
            "ipmask" => SampleType::Ip,
            "lower" | "upper" | "hex" | "base64" | "field" | "word" | "regsub" | "url_dec" | "json" => SampleType::Str,
            _ => out,
        };
        converters.push((cname.to_owned(), carg.map(str::to_owned)));
    }
    Ok(SampleExpr {
        fetch: def.name,
        arg,
        converters,
        out,
        layer: def.layer,
        backend_ref,
    })
}

/// ACL keywords that are a fetch plus a match method (`path_beg` = `path -m beg`).
fn acl_keyword(name: &str) -> Option<(String, MatchMethod)> {
    const SUFFIXES: &[(&str, MatchMethod)] = &[
        ("_beg", MatchMethod::Beg),
        ("_end", MatchMethod::End),
        ("_sub", MatchMethod::Sub),
        ("_reg", MatchMethod::Reg),
        ("_dir", MatchMethod::Dir),
        ("_dom", MatchMethod::Dom),
        ("_len", MatchMethod::Len),
        ("_found", MatchMethod::Found),
    ];
    let (head, args) = match name.find('(') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    for (suffix, method) in SUFFIXES {
        if let Some(base) = head.strip_suffix(suffix) {
            let base = match base {
                "req_ssl_sni" | "req.ssl_sni" => base,
                "hdr" | "path" | "url" | "base" | "cook" | "urlp" | "url_param" | "shdr" | "scook" | "ssl_fc_sni" => base,
                "req.hdr" | "req.cook" | "res.hdr" | "res.cook" | "query" | "pathq" | "method" => base,
                _ => continue,
            };
            // Rebuild "base(args)"; the caller re-parses it as a sample.
            return Some((format!("{base}{args}"), *method));
        }
    }
    None
}

fn valid_acl_name(name: &str) -> Result<(), AclError> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(AclError::BadName(c, name.to_owned()));
    }
    Ok(())
}

/// Checks an `acl` line's name.
pub fn check_acl_name(name: &str) -> Result<(), AclError> {
    valid_acl_name(name)
}

fn parse_int(text: &str) -> Result<i64, AclError> {
    text.parse::<i64>().map_err(|_| AclError::NotANumber(text.to_owned()))
}

fn parse_net(text: &str) -> Result<(IpAddr, u8), AclError> {
    let bad = || AclError::BadAddress(text.to_owned());
    let (host, mask) = match text.split_once('/') {
        Some((h, m)) => (h, Some(m)),
        None => (text, None),
    };
    let ip = addr::parse_host(host).map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match mask {
        None => max,
        Some(m) => {
            if let Ok(n) = m.parse::<u8>() {
                if n > max {
                    return Err(bad());
                }
                n
            } else if let (true, Ok(std::net::IpAddr::V4(m4))) = (ip.is_ipv4(), m.parse::<IpAddr>()) {
                let v = u32::from(m4);
                if v.leading_ones() + v.trailing_zeros() != 32 {
                    return Err(bad());
                }
                v.leading_ones() as u8
            } else {
                return Err(bad());
            }
        }
    };
    Ok((ip, bits))
}

/// Parses an ACL expression: `fetch [flags] [values...]`.
pub fn parse_acl_expr(words: &[String]) -> Result<AclExpr, AclError> {
    let Some(first) = words.first() else { return Err(AclError::Empty) };
    let (sample, mut method) = match parse_sample(first) {
        Ok(s) => {
            let m = MatchMethod::default_for(s.out);
            (s, m)
        }
        Err(AclError::UnknownFetch(_)) => match acl_keyword(first) {
            Some((base, m)) => (parse_sample(&base)?, m),
            None => {
                return Err(AclError::UnknownFetch(
                    split_call(first).map(|(n, _)| n).unwrap_or(first).to_owned(),
                ))
            }
        },
        Err(e) => return Err(e),
    };
    // A bare `hdr` or `cook` in an ACL with `_cnt` style int output keeps int matching.
    let mut ignore_case = false;
    let mut from_files: Vec<String> = Vec::new();
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-i" => ignore_case = true,
            "-n" | "-u" => {}
            "-m" => {
                i += 1;
                let name = words.get(i).ok_or(AclError::MissingMethod)?;
                method = MatchMethod::from_name(name).ok_or_else(|| AclError::UnknownMethod(name.clone()))?;
            }
            "-f" => {
                i += 1;
                let path = words.get(i).ok_or_else(|| AclError::PatternFile(String::new()))?;
                // One pattern per line; blank lines and `#` comments are skipped, as HAProxy does.
                let text = std::fs::read_to_string(path).map_err(|_| AclError::PatternFile(path.clone()))?;
                from_files.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
            "-M" => {
                return Err(AclError::MapFile(words.get(i + 1).cloned().unwrap_or_default()));
            }
            "--" => {
                i += 1;
                break;
            }
            _ => break,
        }
        i += 1;
    }
    let mut patterns = Vec::new();
    let mut all: Vec<String> = words[i.min(words.len())..].to_vec();
    all.extend(from_files);
    let values = &all[..];
    let mut j = 0;
    while j < values.len() {
        let v = values[j].as_str();
        match method {
            MatchMethod::Int | MatchMethod::Len => {
                let op = matches!(v, "eq" | "ge" | "gt" | "le" | "lt");
                if op {
                    let Some(n) = values.get(j + 1) else {
                        // A trailing operator with no value is accepted and ignored, as HAProxy does.
                        break;
                    };
                    let n = parse_int(n)?;
                    patterns.push(match v {
                        "eq" => Pattern::Int(Some(n), Some(n)),
                        "ge" => Pattern::Int(Some(n), None),
                        "gt" => Pattern::Int(Some(n.saturating_add(1)), None),
                        "le" => Pattern::Int(None, Some(n)),
                        _ => Pattern::Int(None, Some(n.saturating_sub(1))),
                    });
                    j += 2;
                    continue;
                }
                match v.split_once(':') {
                    Some((a, b)) => {
                        let lo = if a.is_empty() { None } else { Some(parse_int(a)?) };
                        let hi = if b.is_empty() { None } else { Some(parse_int(b)?) };
                        patterns.push(Pattern::Int(lo, hi));
                    }
                    None => {
                        let n = parse_int(v)?;
                        patterns.push(Pattern::Int(Some(n), Some(n)));
                    }
                }
            }
            MatchMethod::Ip => {
                let (ip, bits) = parse_net(v)?;
                patterns.push(Pattern::Net(ip, bits));
            }
            MatchMethod::Reg => {
                let re = regex::RegexBuilder::new(v)
                    .case_insensitive(ignore_case)
                    .build()
                    .map_err(|e| AclError::BadRegex(v.to_owned(), first_line(&e.to_string())))?;
                patterns.push(Pattern::Reg(re));
            }
            MatchMethod::Bool | MatchMethod::Found => {}
            _ => patterns.push(Pattern::Str(v.to_owned())),
        }
        j += 1;
    }
    Ok(AclExpr {
        sample,
        method,
        ignore_case,
        patterns,
    })
}

/// The last line of a regex error, which says what is wrong.
pub fn first_line(msg: &str) -> String {
    msg.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(msg).trim().to_owned()
}

/// ACLs every proxy has without declaring them.
const PREDEFINED: &[(&str, &str)] = &[
    ("TRUE", "always_true"),
    ("FALSE", "always_false"),
    ("LOCALHOST", "src 127.0.0.1/8 ::1"),
    ("HTTP", "req.proto_http"),
    ("HTTP_1.0", "req.ver 1.0"),
    ("HTTP_1.1", "req.ver 1.1"),
    ("HTTP_CONTENT", "hdr_val(content-length) gt 0"),
    ("HTTP_URL_ABS", "url_reg ^[^/:]*://"),
    ("HTTP_URL_SLASH", "url_beg /"),
    ("HTTP_URL_STAR", "url *"),
    ("METH_CONNECT", "method CONNECT"),
    ("METH_DELETE", "method DELETE"),
    ("METH_GET", "method GET HEAD"),
    ("METH_HEAD", "method HEAD"),
    ("METH_OPTIONS", "method OPTIONS"),
    ("METH_POST", "method POST"),
    ("METH_PUT", "method PUT"),
    ("METH_TRACE", "method TRACE"),
    ("REQ_CONTENT", "req.len gt 0"),
    ("WAIT_END", "wait_end"),
];

fn predefined(name: &str) -> Option<AclExpr> {
    let (_, body) = PREDEFINED.iter().find(|(n, _)| *n == name)?;
    let words: Vec<String> = body.split(' ').map(str::to_owned).collect();
    parse_acl_expr(&words).ok()
}

/// Parses the words after `if`/`unless`. `lookup` finds the proxy's named ACLs.
pub fn parse_condition(unless: bool, words: &[String], lookup: &dyn Fn(&str) -> Option<Vec<AclExpr>>) -> Result<Condition, AclError> {
    let mut any_of: Vec<Vec<Term>> = vec![Vec::new()];
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        if w == "or" || w == "||" {
            any_of.push(Vec::new());
            i += 1;
            continue;
        }
        let mut negate = false;
        let mut name = w;
        while let Some(rest) = name.strip_prefix('!') {
            negate = !negate;
            name = rest;
        }
        if name.is_empty() {
            // A lone "!" applies to the next word.
            i += 1;
            let Some(next) = words.get(i) else { return Err(AclError::Empty) };
            name = next.as_str();
            while let Some(rest) = name.strip_prefix('!') {
                negate = !negate;
                name = rest;
            }
        }
        let acl = if name == "{" {
            let start = i + 1;
            let end = words[start..]
                .iter()
                .position(|w| w == "}")
                .map(|p| start + p)
                .ok_or(AclError::UnclosedBrace)?;
            let expr = parse_acl_expr(&words[start..end])?;
            i = end;
            AclRef::Anonymous(expr)
        } else if name == "}" {
            return Err(AclError::Unexpected("}".into()));
        } else if let Some(exprs) = lookup(name) {
            AclRef::Named(name.to_owned(), exprs)
        } else if let Some(expr) = predefined(name) {
            AclRef::Named(name.to_owned(), vec![expr])
        } else {
            return Err(AclError::NoSuchAcl(name.to_owned()));
        };
        if let Some(last) = any_of.last_mut() {
            last.push(Term { negate, acl });
        }
        i += 1;
    }
    Ok(Condition { unless, any_of })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    fn none(_: &str) -> Option<Vec<AclExpr>> {
        None
    }

    #[test]
    fn acl_keywords_expand_to_fetch_and_method() {
        let e = parse_acl_expr(&w("path_beg -i /owa")).unwrap();
        assert_eq!(e.sample.fetch, "path");
        assert_eq!(e.method, MatchMethod::Beg);
        assert!(e.ignore_case);
        let e = parse_acl_expr(&w("hdr_dom(host) -i example.com")).unwrap();
        assert_eq!(e.sample.fetch, "hdr");
        assert_eq!(e.sample.arg.as_deref(), Some("host"));
        assert_eq!(e.method, MatchMethod::Dom);
    }

    #[test]
    fn int_operators_and_ranges() {
        let e = parse_acl_expr(&w("nbsrv lt 3")).unwrap();
        assert!(matches!(e.patterns[..], [Pattern::Int(None, Some(2))]));
        let e = parse_acl_expr(&w("dst_port 80:90 443")).unwrap();
        assert_eq!(e.patterns.len(), 2);
        assert_eq!(parse_acl_expr(&w("dst_port abc")).unwrap_err(), AclError::NotANumber("abc".into()));
    }

    #[test]
    fn addresses_and_regexes_are_checked() {
        assert!(parse_acl_expr(&w("src 10.0.0.0/8 192.168.1.1 255.255.255.0/255.255.255.0")).is_ok());
        assert!(parse_acl_expr(&w("src 1.1.1.1/33")).is_err());
        assert!(matches!(parse_acl_expr(&w("path_reg ^/(x")), Err(AclError::BadRegex(..))));
        assert!(matches!(parse_acl_expr(&w("nosuch 1")), Err(AclError::UnknownFetch(_))));
        assert!(matches!(parse_acl_expr(&w("path -m nope /x")), Err(AclError::UnknownMethod(_))));
    }

    #[test]
    fn conditions() {
        let c = parse_condition(false, &w("{ src 1.1.1.1 } || { src 2.2.2.2 } or !TRUE"), &none).unwrap();
        assert_eq!(c.any_of.len(), 3);
        assert!(c.any_of[2][0].negate);
        assert_eq!(
            parse_condition(false, &w("nope"), &none).unwrap_err(),
            AclError::NoSuchAcl("nope".into())
        );
        assert_eq!(
            parse_condition(false, &w("{ src 1.1.1.1"), &none).unwrap_err(),
            AclError::UnclosedBrace
        );
        assert!(parse_condition(false, &[], &none).unwrap().any_of[0].is_empty());
    }

    #[test]
    fn samples_with_converters() {
        let s = parse_sample("hdr(Authorization),lower").unwrap();
        assert_eq!(s.converters.len(), 1);
        assert!(parse_sample("src,nosuch").is_err());
        assert_eq!(parse_sample("nbsrv(bk)").unwrap().backend_ref.as_deref(), Some("bk"));
        assert!(parse_sample("src(x)").is_err());
    }
}
