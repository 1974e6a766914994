//! The `global` section. It starts from the appliance's implicit global; the
//! first `log` or `stats socket` line of a pasted global replaces the implicit
//! ones, and every other key simply overrides.

use std::path::PathBuf;

use super::super::keywords;
use super::super::model::{Global, LogTarget, SocketLevel, StatsSocket, FACILITIES, LEVELS};
use super::super::syntax::{Line, SectionKind};
use super::super::units;
use super::Ctx;

/// Which implicit lists a pasted global has already replaced.
#[derive(Default)]
pub(super) struct Overrides {
    logs: bool,
    stats_sockets: bool,
}

/// Smallest `tune.bufsize`: the built-in error responses must fit in one buffer.
const MIN_BUFSIZE: u64 = 1024;

/// Largest `nbthread` accepted.
const MAX_THREADS: u64 = 64;

/// Parses `log ADDR [len N] [format F] FACILITY [LEVEL [MINLEVEL]]` from word 1 on.
pub(crate) fn parse_log(line: &Line, ctx: &mut Ctx) -> Option<LogTarget> {
    let words = &line.words;
    let Some(address) = words.get(1) else {
        ctx.alert(
            line,
            "'log' expects either <address[:port]> and <facility> or 'global' as arguments.",
        );
        return None;
    };
    let mut i = 2;
    let mut len = None;
    let mut format = None;
    loop {
        match words.get(i).map(String::as_str) {
            Some("len") => {
                len = Some(ctx.uint(line, i + 1, "log len", 80, 65535)? as u32);
                i += 2;
            }
            Some("format") => {
                let Some(f) = words.get(i + 1) else {
                    ctx.alert(line, "'log format' expects a format name.");
                    return None;
                };
                if !["rfc3164", "rfc5424", "short", "raw", "priority", "timed", "iso", "local"].contains(&f.as_str()) {
                    ctx.alert(line, format!("'log' : unknown log format '{f}'."));
                    return None;
                }
                format = Some(f.clone());
                i += 2;
            }
            Some("sample") => {
                i += 2;
            }
            _ => break,
        }
    }
    let Some(facility) = words.get(i) else {
        ctx.alert(line, "'log' expects <address> and <facility> as arguments.");
        return None;
    };
    if !FACILITIES.contains(&facility.as_str()) {
        ctx.alert(line, format!("unknown log facility '{facility}'"));
        return None;
    }
    let level = words.get(i + 1).cloned();
    let min_level = words.get(i + 2).cloned();
    for l in level.iter().chain(min_level.iter()) {
        if !LEVELS.contains(&l.as_str()) {
            ctx.alert(line, format!("unknown optional log level '{l}'"));
            return None;
        }
    }
    if words.len() > i + 3 {
        ctx.alert(line, format!("'log' : unexpected argument '{}'.", words[i + 3]));
        return None;
    }
    let addr_ok = address.starts_with('/')
        || address == "stdout"
        || address == "stderr"
        || address.starts_with("fd@")
        || address.starts_with("ring@")
        || super::super::addr::parse_listen(address.strip_prefix("udp@").unwrap_or(address).trim_end_matches(':'), None)
            .or_else(|_| super::super::addr::parse_listen(&format!("{address}:514"), None))
            .is_ok();
    if !addr_ok {
        ctx.alert(line, format!("'log' : invalid address '{address}'."));
        return None;
    }
    Some(LogTarget {
        address: address.clone(),
        facility: facility.clone(),
        level,
        min_level,
        format,
        len,
    })
}

fn user_exists(name: &str, file: &str) -> bool {
    std::fs::read_to_string(file)
        .map(|text| text.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

fn octal(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok()
}

pub(super) fn line(g: &mut Global, seen: &mut Overrides, line: &Line, ctx: &mut Ctx) {
    let Some(kw) = line.arg(0) else { return };
    let Some(entry) = keywords::find(keywords::GLOBAL, kw) else {
        ctx.alert(line, format!("unknown keyword '{kw}' in 'global' section"));
        return;
    };
    debug_assert_eq!(entry.verdict(SectionKind::Global), keywords::Verdict::Yes);
    let words = &line.words;
    let arg1 = line.arg(1);
    match kw {
        "log" => {
            if arg1 == Some("global") {
                ctx.alert(line, "'log global' is not allowed in the 'global' section.");
                return;
            }
            if let Some(t) = parse_log(line, ctx) {
                if !seen.logs {
                    g.logs.clear();
                    seen.logs = true;
                }
                g.logs.push(t);
            }
        }
        "maxconn" => {
            if let Some(v) = ctx.uint(line, 1, "maxconn", 0, u32::MAX as u64) {
                g.maxconn = v as u32;
            }
        }
        "nbthread" => {
            if let Some(v) = ctx.uint(line, 1, "nbthread", 1, MAX_THREADS) {
                g.nbthread = Some(v as u32);
            }
        }
        "stats" => stats(g, seen, line, ctx),
        "unix-bind" => {
            let mut i = 1;
            if words.len() < 2 {
                ctx.alert(
                    line,
                    "'unix-bind' expects one or more of 'prefix', 'mode', 'user', 'uid', 'group', 'gid'.",
                );
                return;
            }
            while i < words.len() {
                let Some(value) = words.get(i + 1) else {
                    ctx.alert(line, format!("'unix-bind {}' expects an argument.", words[i]));
                    return;
                };
                match words[i].as_str() {
                    "prefix" => g.unix_bind_prefix = Some(value.clone()),
                    "mode" => match octal(value) {
                        Some(m) => g.unix_bind_mode = Some(m),
                        None => {
                            ctx.alert(line, format!("'unix-bind mode' expects an octal mode, not '{value}'."));
                            return;
                        }
                    },
                    "user" | "uid" => g.unix_bind_user = Some(value.clone()),
                    "group" | "gid" => g.unix_bind_group = Some(value.clone()),
                    other => {
                        ctx.alert(
                            line,
                            format!("'unix-bind' only supports 'prefix', 'mode', 'uid', 'gid', 'user' and 'group', not '{other}'."),
                        );
                        return;
                    }
                }
                i += 2;
            }
        }
        "user" | "group" => {
            let Some(name) = arg1 else {
                ctx.alert(line, format!("'{kw}' expects a name."));
                return;
            };
            let file = if kw == "user" { "/etc/passwd" } else { "/etc/group" };
            if !user_exists(name, file) {
                ctx.alert(line, format!("'{kw}' : unknown {kw} '{name}'."));
                return;
            }
            if kw == "user" {
                g.user = Some(name.to_owned());
            } else {
                g.group = Some(name.to_owned());
            }
        }
        "uid" | "gid" => {
            if let Some(v) = ctx.uint(line, 1, kw, 0, u32::MAX as u64) {
                let s = v.to_string();
                if kw == "uid" {
                    g.user = Some(s);
                } else {
                    g.group = Some(s);
                }
            }
        }
        "chroot" => match arg1 {
            Some(p) => g.chroot = Some(PathBuf::from(p)),
            None => ctx.alert(line, "'chroot' expects a directory as an argument."),
        },
        "daemon" | "master-worker" => g.daemon |= kw == "daemon",
        "pidfile" => match arg1 {
            Some(p) => g.pidfile = Some(PathBuf::from(p)),
            None => ctx.alert(line, "'pidfile' expects a file name as an argument."),
        },
        "hard-stop-after" => {
            if let Some(d) = ctx.time(line, 1, "hard-stop-after") {
                g.hard_stop_after = Some(d);
            }
        }
        "tune.bufsize" | "tune.maxrewrite" => {
            let Some(text) = arg1 else {
                ctx.alert(line, format!("'{kw}' expects an integer argument."));
                return;
            };
            match units::parse_size(text) {
                Ok(v) if kw == "tune.bufsize" && v < MIN_BUFSIZE => ctx.alert(
                    line,
                    format!("'tune.bufsize {v}' is too small: lbd's own error pages need at least {MIN_BUFSIZE} bytes."),
                ),
                Ok(v) if v <= i32::MAX as u64 => {
                    if kw == "tune.bufsize" {
                        g.tune_bufsize = v as u32;
                    } else {
                        g.tune_maxrewrite = v as u32;
                    }
                }
                _ => ctx.alert(line, format!("'{kw}' expects a positive integer argument, not '{text}'.")),
            }
        }
        "crt-base" | "ca-base" => {
            let Some(v) = arg1 else {
                ctx.alert(line, format!("'{kw}' expects a directory path as an argument."));
                return;
            };
            if kw == "crt-base" {
                g.crt_base = Some(v.to_owned());
            } else {
                g.ca_base = Some(v.to_owned());
            }
        }
        "ssl-default-bind-ciphers" | "ssl-default-bind-ciphersuites" | "ssl-default-server-ciphers" => {
            let Some(v) = arg1 else {
                ctx.alert(line, format!("'{kw}' expects a cipher suite as an argument."));
                return;
            };
            let v = Some(v.to_owned());
            match kw {
                "ssl-default-bind-ciphers" => g.ssl_default_bind_ciphers = v,
                "ssl-default-bind-ciphersuites" => g.ssl_default_bind_ciphersuites = v,
                _ => g.ssl_default_server_ciphers = v,
            }
        }
        "ssl-default-bind-options" | "ssl-default-server-options" => {
            let opts: Vec<String> = words[1..].to_vec();
            if kw == "ssl-default-bind-options" {
                g.ssl_default_bind_options = opts;
            } else {
                g.ssl_default_server_options = opts;
            }
        }
        "spread-checks" => {
            if let Some(v) = ctx.uint(line, 1, "spread-checks", 0, 50) {
                g.spread_checks = v as u32;
            }
        }
        "log-tag" => g.log_tag = arg1.map(str::to_owned),
        "description" | "node" => g.description = Some(words[1..].join(" ")),
        _ => ctx.alert(line, format!("'{kw}' is not supported in the 'global' section yet.")),
    }
}

fn stats(g: &mut Global, seen: &mut Overrides, line: &Line, ctx: &mut Ctx) {
    let words = &line.words;
    match line.arg(1) {
        Some("socket") => {
            let Some(path) = words.get(2) else {
                ctx.alert(line, "'stats socket' expects a path or address.");
                return;
            };
            let mut sock = StatsSocket {
                path: PathBuf::from(path),
                mode: None,
                level: SocketLevel::Admin,
                loc: line.loc.clone(),
            };
            let mut i = 3;
            while i < words.len() {
                let Some(value) = words.get(i + 1) else {
                    match words[i].as_str() {
                        "expose-fd" | "accept-proxy" => {
                            i += 1;
                            continue;
                        }
                        other => {
                            ctx.alert(line, format!("'stats socket' : '{other}' expects an argument."));
                            return;
                        }
                    }
                };
                match words[i].as_str() {
                    "mode" => match octal(value) {
                        Some(m) => sock.mode = Some(m),
                        None => {
                            ctx.alert(line, format!("'stats socket' : 'mode' expects an octal mode, not '{value}'."));
                            return;
                        }
                    },
                    "level" => {
                        sock.level = match value.as_str() {
                            "user" => SocketLevel::User,
                            "operator" => SocketLevel::Operator,
                            "admin" => SocketLevel::Admin,
                            other => {
                                ctx.alert(
                                    line,
                                    format!("'stats socket' : 'level' only supports 'user', 'operator' and 'admin', not '{other}'."),
                                );
                                return;
                            }
                        }
                    }
                    "user" | "group" | "uid" | "gid" | "name" | "process" | "thread" => {}
                    "expose-fd" => {}
                    other => {
                        ctx.alert(line, format!("'stats socket' : unknown parameter '{other}'."));
                        return;
                    }
                }
                i += 2;
            }
            if !seen.stats_sockets {
                g.stats_sockets.clear();
                seen.stats_sockets = true;
            }
            g.stats_sockets.push(sock);
        }
        Some("timeout") => {
            if let Some(d) = ctx.time(line, 2, "stats timeout") {
                if d.is_zero() {
                    ctx.alert(line, "'stats timeout' expects a positive value.");
                } else {
                    g.stats_timeout = d;
                }
            }
        }
        Some("maxconn") => {
            ctx.uint(line, 2, "stats maxconn", 1, u32::MAX as u64);
        }
        Some(other) => ctx.alert(
            line,
            format!("'stats' in 'global' supports 'socket', 'timeout' and 'maxconn', not '{other}'."),
        ),
        None => ctx.alert(line, "'stats' in 'global' expects 'socket', 'timeout' or 'maxconn'."),
    }
}
