//! `bind`, `server` and `default-server` lines.

use super::super::addr;
use super::super::model::*;
use super::super::syntax::Line;
use super::proxy::parse_time;
use super::Ctx;

pub(super) fn bind(p: &mut Proxy, line: &Line, global: &Global, ctx: &mut Ctx) {
    let Some(text) = line.arg(1) else {
        ctx.alert(
            line,
            "'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments.",
        );
        return;
    };
    let addrs = match addr::parse_listen(text, global.unix_bind_prefix.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            ctx.alert(line, format!("'bind' : {e}"));
            return;
        }
    };
    let mut params = BindParams::default();
    let words = &line.words;
    let mut i = 2;
    while i < words.len() {
        let kw = words[i].as_str();
        let value = words.get(i + 1).map(String::as_str);
        let need = |ctx: &mut Ctx| -> Option<String> {
            match value {
                Some(v) => Some(v.to_owned()),
                None => {
                    ctx.alert(line, format!("'bind {text}' : '{kw}' expects an argument."));
                    None
                }
            }
        };
        let mut takes_value = true;
        match kw {
            "name" => params.name = need(ctx),
            "accept-proxy" => {
                params.accept_proxy = true;
                takes_value = false;
            }
            "backlog" | "maxconn" | "id" | "uid" | "gid" => {
                let Some(v) = need(ctx) else { return };
                let Ok(n) = v.parse::<u32>() else {
                    ctx.alert(line, format!("'bind {text}' : '{kw}' expects a positive integer, not '{v}'."));
                    return;
                };
                match kw {
                    "backlog" => params.backlog = Some(n),
                    "maxconn" => params.maxconn = Some(n),
                    "id" => params.id = Some(n),
                    "uid" => params.uid = Some(n),
                    _ => params.gid = Some(n),
                }
            }
            "mode" => {
                let Some(v) = need(ctx) else { return };
                match u32::from_str_radix(&v, 8) {
                    Ok(m) => params.mode = Some(m),
                    Err(_) => {
                        ctx.alert(line, format!("'bind {text}' : 'mode' expects an octal mode, not '{v}'."));
                        return;
                    }
                }
            }
            "user" => params.user = need(ctx),
            "group" => params.group = need(ctx),
            "interface" => params.interface = need(ctx),
            "v4v6"
            | "v6only"
            | "transparent"
            | "defer-accept"
            | "tfo"
            | "ssl"
            | "strict-sni"
            | "prefer-client-ciphers"
            | "no-sslv3"
            | "no-tlsv10"
            | "no-tlsv11"
            | "no-tlsv12"
            | "no-tlsv13"
            | "allow-0rtt"
            | "generate-certificates" => {
                takes_value = false;
                match kw {
                    "v4v6" => params.v4v6 = true,
                    "v6only" => params.v6only = true,
                    "transparent" => params.transparent = true,
                    "defer-accept" => params.defer_accept = true,
                    "tfo" => params.tfo = true,
                    "ssl" => params.ssl = true,
                    "no-tlsv12" => params.no_tls12 = true,
                    "no-tlsv13" => params.no_tls13 = true,
                    "strict-sni" => params.strict_sni = true,
                    _ => {}
                }
            }
            "crt" => {
                if let Some(v) = need(ctx) {
                    params.crt.push(v);
                } else {
                    return;
                }
            }
            "key" => {
                let Some(v) = need(ctx) else { return };
                if params.crt.is_empty() {
                    ctx.alert(line, format!("'bind {text}' : 'key' gives the key of the 'crt' before it."));
                    return;
                }
                params.keys.push((params.crt.len() - 1, v));
            }
            "alpn" => params.alpn = need(ctx),
            "ca-file" => params.ca_file = need(ctx),
            "verify" => {
                let Some(v) = need(ctx) else { return };
                if !matches!(v.as_str(), "none" | "optional" | "required") {
                    ctx.alert(
                        line,
                        format!("'bind {text}' : 'verify' expects 'none', 'optional' or 'required', not '{v}'."),
                    );
                    return;
                }
                params.verify = Some(v);
            }
            "ssl-min-ver" => params.ssl_min_ver = need(ctx),
            "ssl-max-ver" => params.ssl_max_ver = need(ctx),
            "ciphers" => params.ciphers = need(ctx),
            "ciphersuites" => params.ciphersuites = need(ctx),
            "curves" => params.curves = need(ctx),
            "crt-list" | "crl-file" => {
                // Security settings that would be silently missing: refused until supported.
                ctx.alert(
                    line,
                    format!("'bind {text}' : '{kw}' is not supported yet (list the certificates with 'crt')."),
                );
                return;
            }
            "process" | "thread" | "nice" | "level" | "severity-output" | "npn" | "ecdhe" | "tcp-ut" | "mss" | "namespace" => {
                if need(ctx).is_none() {
                    return;
                }
            }
            other => {
                ctx.alert(line, format!("'bind {text}' unknown keyword '{other}'."));
                return;
            }
        }
        i += if takes_value { 2 } else { 1 };
        if takes_value && value.is_none() {
            return;
        }
    }
    if params.ssl && p.mode == Mode::Http {
        // lbd's HTTP mode speaks HTTP/1.x: offering h2 would break every client that picks it.
        if let Some(alpn) = &params.alpn {
            let kept: Vec<&str> = alpn.split(',').filter(|a| *a != "h2").collect();
            if kept.len() != alpn.split(',').count() {
                ctx.warn(
                    line,
                    format!("'bind {text}' : HTTP/2 is not supported in HTTP mode; 'h2' is left out of 'alpn'."),
                );
                params.alpn = (!kept.is_empty()).then(|| kept.join(","));
            }
        }
    }
    if params.ssl && addrs.iter().any(|a| matches!(a, addr::ListenAddr::Unix { .. })) {
        ctx.alert(line, format!("'bind {text}' : 'ssl' on a UNIX socket is not supported."));
        return;
    }
    if params.ssl && !load_bind_tls(&mut params, text, line, global, ctx) {
        return;
    }
    p.binds.push(Bind {
        addrs,
        params,
        loc: line.loc.clone(),
    });
}

/// A value of `ssl-default-bind-options` / `ssl-default-server-options` such as `ssl-min-ver TLSv1.2`.
fn default_option(options: &[String], name: &str) -> Option<String> {
    options.iter().position(|o| o == name).and_then(|i| options.get(i + 1)).cloned()
}

/// Reads the certificates of a `bind ... ssl` line and builds its TLS settings.
fn load_bind_tls(params: &mut BindParams, text: &str, line: &Line, global: &Global, ctx: &mut Ctx) -> bool {
    if params.crt.is_empty() {
        ctx.alert(line, format!("'bind {text}' : no SSL certificate specified (use 'crt')."));
        return false;
    }
    let mut certs = Vec::new();
    for (i, c) in params.crt.iter().enumerate() {
        let key = params
            .keys
            .iter()
            .rev()
            .find(|(at, _)| *at == i)
            .map(|(_, k)| std::path::Path::new(k.as_str()));
        match crate::tls::load_crt(c, key, global.crt_base.as_deref()) {
            Ok(mut l) => certs.append(&mut l),
            Err(e) => {
                ctx.alert(line, format!("'bind {text}' : 'crt' : {e}."));
                return false;
            }
        }
    }
    for c in certs.iter().filter(|c| c.expired()) {
        ctx.warn(
            line,
            format!(
                "'bind {text}' : certificate '{}' expired on {}.",
                c.file.display(),
                c.not_after_text()
            ),
        );
    }
    let no = |flag: bool, opt: &str| flag || global.ssl_default_bind_options.iter().any(|o| o == opt);
    let choices = crate::tls::TlsChoices {
        min_version: if no(params.no_tls12, "no-tlsv12") {
            Some("TLSv1.3".into())
        } else {
            params
                .ssl_min_ver
                .clone()
                .or_else(|| default_option(&global.ssl_default_bind_options, "ssl-min-ver"))
        },
        max_version: if no(params.no_tls13, "no-tlsv13") {
            Some("TLSv1.2".into())
        } else {
            params
                .ssl_max_ver
                .clone()
                .or_else(|| default_option(&global.ssl_default_bind_options, "ssl-max-ver"))
        },
        ciphers: params.ciphers.clone().or_else(|| global.ssl_default_bind_ciphers.clone()),
        ciphersuites: params.ciphersuites.clone().or_else(|| global.ssl_default_bind_ciphersuites.clone()),
        curves: params.curves.clone(),
        alpn: params.alpn.clone(),
    };
    let client_ca = match (params.verify.as_deref(), params.ca_file.as_deref()) {
        (Some("required"), Some(ca)) => Some((std::path::Path::new(ca), true)),
        (Some("optional"), Some(ca)) => Some((std::path::Path::new(ca), false)),
        (Some("required" | "optional"), None) => {
            ctx.alert(line, format!("'bind {text}' : verifying client certificates needs 'ca-file'."));
            return false;
        }
        _ => None,
    };
    match crate::tls::server_config(&certs, &choices, client_ca, params.strict_sni) {
        Ok(cfg) => {
            params.tls = crate::tls::Shared(Some(cfg));
            true
        }
        Err(e) => {
            ctx.alert(line, format!("'bind {text}' : {e}."));
            false
        }
    }
}

pub(super) fn server(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let (Some(name), Some(address)) = (line.arg(1), line.arg(2)) else {
        ctx.alert(line, "'server' expects <name> and <addr>[:<port>] as arguments.");
        return;
    };
    if let Some(c) = super::invalid_name_char(name) {
        ctx.alert(line, format!("character '{c}' is not permitted in server name '{name}'."));
        return;
    }
    let label = format!("server {}/{name}", p.name);
    let addr = match addr::parse_server(address) {
        Ok(a) => a,
        Err(addr::AddrError::BadHost { host, .. }) => {
            ctx.alert(line, format!("'{label}' : could not resolve address '{host}'."));
            return;
        }
        Err(e) => {
            ctx.alert(line, format!("'{label}' : {e}"));
            return;
        }
    };
    let mut params = p.default_server.clone();
    let mut cookie = None;
    let mut id = None;
    if !apply_params(&mut params, Some((&mut cookie, &mut id)), line, 3, &label, ctx) {
        return;
    }
    if let Some(prev) = p.servers.iter().find(|s| s.name.0 == name) {
        ctx.alert(
            line,
            format!(
                "backend '{}', another server named '{name}' was already defined at line {}, please use distinct names.",
                p.name, prev.loc.line
            ),
        );
        return;
    }
    if params.crt.is_some() {
        ctx.alert(
            line,
            format!("'{label}' : client certificates toward servers ('crt') are not supported yet."),
        );
        return;
    }
    if params.ssl || params.check_ssl {
        let verify = params.verify_required.unwrap_or(true);
        if verify && params.ca_file.is_none() {
            ctx.alert(
                line,
                format!(
                    "'{label}' : verify is enabled by default but no CA file is given: set 'ca-file', or 'verify none' \
                     when the server's certificate is trusted without checking."
                ),
            );
            return;
        }
        let choices = crate::tls::TlsChoices {
            alpn: params.alpn.clone(),
            min_version: params.tls_choices.min_version.clone(),
            max_version: params.tls_choices.max_version.clone(),
            ciphers: params.tls_choices.ciphers.clone(),
            ciphersuites: params.tls_choices.ciphersuites.clone(),
            curves: params.tls_choices.curves.clone(),
        };
        let name_given = params.sni.is_some();
        match crate::tls::client_config(verify, params.ca_file.as_deref(), &choices, name_given) {
            Ok(c) => params.tls = crate::tls::Shared(Some(c)),
            Err(e) => {
                ctx.alert(line, format!("'{label}' : {e}."));
                return;
            }
        }
    }
    p.servers.push(Server {
        name: ServerName(name.to_owned()),
        addr,
        id: id.unwrap_or(0),
        cookie,
        params,
        loc: line.loc.clone(),
    });
}

pub(super) fn default_server(p: &mut Proxy, line: &Line, ctx: &mut Ctx) {
    let mut params = p.default_server.clone();
    let label = format!("default-server of {}", if p.name.0.is_empty() { "defaults" } else { &p.name.0 });
    if apply_params(&mut params, None, line, 1, &label, ctx) {
        p.default_server = params;
    }
}

/// Applies server parameters from word `start` on. `per_server` receives the
/// settings that only a `server` line may carry (`cookie`, `id`). Returns false
/// after reporting an error.
fn apply_params(
    s: &mut ServerParams,
    mut per_server: Option<(&mut Option<String>, &mut Option<u32>)>,
    line: &Line,
    start: usize,
    label: &str,
    ctx: &mut Ctx,
) -> bool {
    let words = &line.words;
    let mut i = start;
    while i < words.len() {
        let kw = words[i].as_str();
        let value = words.get(i + 1).map(String::as_str);
        let missing = |ctx: &mut Ctx| {
            ctx.alert(line, format!("'{label}' : '{kw}' expects an argument."));
            false
        };
        // Flags first: they take no value.
        if apply_flag(s, kw) {
            i += 1;
            continue;
        }
        let Some(v) = value else {
            let known = KNOWN_VALUED.contains(&kw);
            if known {
                return missing(ctx);
            }
            ctx.alert(line, format!("'{label}' : unknown keyword '{kw}'."));
            return false;
        };
        let time = |ctx: &mut Ctx| parse_time(ctx, line, v, kw);
        let int = |ctx: &mut Ctx, min: u64, max: u64| -> Option<u64> {
            match v.parse::<u64>() {
                Ok(n) if n >= min && n <= max => Some(n),
                _ => {
                    ctx.alert(
                        line,
                        format!("'{label}' : '{kw}' expects an integer between {min} and {max}, not '{v}'."),
                    );
                    None
                }
            }
        };
        match kw {
            "weight" => match v.parse::<i64>() {
                Ok(n) if (0..=256).contains(&n) => s.weight = n as u32,
                _ => {
                    ctx.alert(line, format!("'{label}' : weight is not within 0 and 256 ({v})."));
                    return false;
                }
            },
            "port" => match v.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => s.check_port = Some(n as u16),
                _ => {
                    ctx.alert(line, format!("'{label}' : invalid 'port' value '{v}'."));
                    return false;
                }
            },
            "addr" => match addr::parse_host(v) {
                Ok(ip) => s.check_addr = Some(ip),
                Err(_) => {
                    ctx.alert(line, format!("'{label}' : could not resolve 'addr' value '{v}'."));
                    return false;
                }
            },
            "inter" | "fastinter" | "downinter" | "slowstart" | "pool-purge-delay" | "agent-inter" => {
                let Some(d) = time(ctx) else { return false };
                if d.is_zero() && kw != "slowstart" && kw != "pool-purge-delay" {
                    ctx.alert(line, format!("'{label}' : '{kw}' has to be > 0."));
                    return false;
                }
                match kw {
                    "inter" => s.inter = d,
                    "fastinter" => s.fastinter = Some(d),
                    "downinter" => s.downinter = Some(d),
                    "slowstart" => s.slowstart = Some(d),
                    "pool-purge-delay" => s.pool_purge_delay = Some(d),
                    _ => {}
                }
            }
            "rise" | "fall" => {
                let Ok(n) = v.parse::<i64>() else {
                    ctx.alert(line, format!("'{label}' : '{kw}' expects an integer argument, not '{v}'."));
                    return false;
                };
                if n <= 0 {
                    ctx.alert(line, format!("'{label}' : '{kw}' has to be > 0."));
                    return false;
                }
                let n = n.min(i32::MAX as i64) as u32;
                if kw == "rise" {
                    s.rise = n;
                } else {
                    s.fall = n;
                }
            }
            "observe" => {
                s.observe = match v {
                    "layer4" => Some(Observe::Layer4),
                    "layer7" => Some(Observe::Layer7),
                    "none" => None,
                    _ => {
                        ctx.alert(
                            line,
                            format!("'{label}' : 'observe' expects 'none', 'layer4' or 'layer7', not '{v}'."),
                        );
                        return false;
                    }
                }
            }
            "error-limit" => {
                let Some(n) = int(ctx, 1, i32::MAX as u64) else { return false };
                s.error_limit = n as u32;
            }
            "on-error" => {
                s.on_error = match v {
                    "fastinter" => OnError::FastInter,
                    "fail-check" => OnError::FailCheck,
                    "sudden-death" => OnError::SuddenDeath,
                    "mark-down" => OnError::MarkDown,
                    _ => {
                        ctx.alert(
                            line,
                            format!("'{label}' : 'on-error' expects 'fastinter', 'fail-check', 'sudden-death' or 'mark-down', not '{v}'."),
                        );
                        return false;
                    }
                }
            }
            "on-marked-down" => {
                if v != "shutdown-sessions" {
                    ctx.alert(
                        line,
                        format!("'{label}' : 'on-marked-down' expects 'shutdown-sessions', not '{v}'."),
                    );
                    return false;
                }
                s.on_marked_down_shutdown = true;
            }
            "on-marked-up" => {
                if v != "shutdown-backup-sessions" {
                    ctx.alert(
                        line,
                        format!("'{label}' : 'on-marked-up' expects 'shutdown-backup-sessions', not '{v}'."),
                    );
                    return false;
                }
                s.on_marked_up_shutdown_backup = true;
            }
            "maxconn" | "minconn" | "maxqueue" => {
                // HAProxy reads these with atoi: text is 0.
                let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
                if digits.len() != v.len() {
                    ctx.warn(
                        line,
                        format!(
                            "'{label}' : '{kw}' expects an integer; '{v}' is read as {} as HAProxy does.",
                            digits.parse::<u32>().unwrap_or(0)
                        ),
                    );
                }
                let n = digits.parse::<u32>().unwrap_or(0);
                match kw {
                    "maxconn" => s.maxconn = n,
                    "minconn" => s.minconn = n,
                    _ => s.maxqueue = n,
                }
            }
            "id" => {
                let Some(n) = int(ctx, 1, i32::MAX as u64) else { return false };
                match per_server.as_mut() {
                    Some((_, id)) => **id = Some(n as u32),
                    None => {
                        ctx.alert(line, format!("'{label}' : 'id' is not allowed on 'default-server'."));
                        return false;
                    }
                }
            }
            "cookie" => match per_server.as_mut() {
                Some((c, _)) => **c = Some(v.to_owned()),
                None => {
                    ctx.alert(line, format!("'{label}' : 'cookie' is not allowed on 'default-server'."));
                    return false;
                }
            },
            "verify" => {
                s.verify_required = match v {
                    "none" => Some(false),
                    "required" => Some(true),
                    _ => {
                        ctx.alert(line, format!("'{label}' : 'verify' expects 'none' or 'required', not '{v}'."));
                        return false;
                    }
                }
            }
            "ca-file" => s.ca_file = Some(v.into()),
            "crt" => s.crt = Some(v.into()),
            "sni" => {
                if let Err(e) = super::super::acl::parse_sample(v) {
                    ctx.alert(line, format!("'{label}' : 'sni' : {e}."));
                    return false;
                }
                s.sni = Some(v.to_owned());
            }
            "alpn" | "check-alpn" => s.alpn = Some(v.to_owned()),
            "init-addr" => {
                for m in v.split(',') {
                    let ok = matches!(m, "last" | "libc" | "none") || addr::parse_host(m).is_ok();
                    if !ok {
                        ctx.alert(line, format!("'{label}' : 'init-addr' : unknown method '{m}'."));
                        return false;
                    }
                }
                s.init_addr = Some(v.to_owned());
            }
            "resolve-prefer" => {
                if v != "ipv4" && v != "ipv6" {
                    ctx.alert(line, format!("'{label}' : 'resolve-prefer' expects 'ipv4' or 'ipv6', not '{v}'."));
                    return false;
                }
                s.resolve_prefer = Some(v.to_owned());
            }
            "redir" => s.redir = Some(v.to_owned()),
            "source" => s.source = Some(v.to_owned()),
            "track" => s.track = Some(v.to_owned()),
            "pool-max-conn" => match v.parse::<i64>() {
                Ok(n) if n >= -1 => s.pool_max_conn = Some(n),
                _ => {
                    ctx.alert(
                        line,
                        format!("'{label}' : 'pool-max-conn' expects -1 or a positive integer, not '{v}'."),
                    );
                    return false;
                }
            },
            "ciphers" => s.tls_choices.ciphers = Some(v.to_owned()),
            "ciphersuites" => s.tls_choices.ciphersuites = Some(v.to_owned()),
            "ssl-min-ver" => s.tls_choices.min_version = Some(v.to_owned()),
            "ssl-max-ver" => s.tls_choices.max_version = Some(v.to_owned()),
            "curves" => s.tls_choices.curves = Some(v.to_owned()),
            "crl-file" => {
                ctx.alert(line, format!("'{label}' : 'crl-file' is not supported yet."));
                return false;
            }
            "resolvers"
            | "agent-port"
            | "agent-send"
            | "agent-addr"
            | "check-sni"
            | "proto"
            | "namespace"
            | "resolve-opts"
            | "resolve-net"
            | "max-reuse"
            | "pool-low-conn"
            | "tcp-ut"
            | "usesrc"
            | "set-proxy-v2-tlv-fmt"
            | "proxy-v2-options"
            | "ws"
            | "log-proto"
            | "socks4"
            | "npn"
            | "sigalgs"
            | "client-sigalgs"
            | "allow-0rtt" => {}
            other => {
                ctx.alert(line, format!("'{label}' : unknown keyword '{other}'."));
                return false;
            }
        }
        i += 2;
    }
    true
}

/// Applies a server flag (a parameter without a value). Returns false when `kw` is not a flag.
fn apply_flag(s: &mut ServerParams, kw: &str) -> bool {
    match kw {
        "check" => s.check = true,
        "no-check" => s.check = false,
        "backup" => s.backup = true,
        "no-backup" => s.backup = false,
        "disabled" => s.disabled = true,
        "enabled" => s.disabled = false,
        "send-proxy" => s.send_proxy = Some(ProxyVersion::V1),
        "send-proxy-v2" => s.send_proxy = Some(ProxyVersion::V2),
        "no-send-proxy" | "no-send-proxy-v2" => s.send_proxy = None,
        "check-send-proxy" => s.check_send_proxy = true,
        "ssl" => s.ssl = true,
        "no-ssl" => s.ssl = false,
        "check-ssl" => s.check_ssl = true,
        "no-check-ssl" => s.check_ssl = false,
        "non-stick" => s.non_stick = true,
        "stick" => s.non_stick = false,
        "tfo" => s.tfo = true,
        "agent-check" => s.agent_check = true,
        "no-agent-check" => s.agent_check = false,
        "no-verifyhost" | "allow-0rtt" | "send-proxy-v2-ssl" | "send-proxy-v2-ssl-cn" => {}
        "no-sslv3" | "no-tlsv10" | "no-tlsv11" | "no-tlsv12" | "no-tlsv13" | "force-tlsv12" | "force-tlsv13" | "no-tls-tickets" => {}
        _ => return false,
    }
    true
}

/// Server keywords that take a value, so a missing value is reported as such.
const KNOWN_VALUED: &[&str] = &[
    "weight",
    "port",
    "addr",
    "inter",
    "fastinter",
    "downinter",
    "rise",
    "fall",
    "observe",
    "error-limit",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "maxconn",
    "minconn",
    "maxqueue",
    "id",
    "cookie",
    "verify",
    "ca-file",
    "crt",
    "sni",
    "alpn",
    "init-addr",
    "slowstart",
    "resolve-prefer",
    "resolvers",
    "redir",
    "source",
    "track",
    "pool-max-conn",
    "pool-purge-delay",
    "agent-port",
    "agent-inter",
];
