//! The SSL tab: stunnel-style service blocks (`lbd -s FILE`).
//!
//! ```text
//! ; comment
//! [ssl_exchange_https]
//! client = no
//! accept = 10.0.0.17:443
//! connect = /ssl:web
//! cert = /etc/ssl/frontends/mail.xlc.local/crt.pem
//! key = /etc/ssl/frontends/mail.xlc.local/key.pem
//! sendproxy = yes
//! ```
//!
//! Each block is checked here, with the SSL file's own lines in every message
//! (certificates and keys are read and matched), then becomes a TCP frontend
//! and backend in lbd's own language, appended to the LB Layer7 configuration:
//! `bind ACCEPT ssl crt CERT key KEY` toward `server NAME CONNECT [send-proxy]`
//! for `client = no`, a plain bind toward `server ... ssl` for `client = yes`.
//! The generated proxies are named `ssl:<service>`; they show in the stats
//! and logs like any other.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::diag::{Diagnostics, Loc};

/// One `key = value` line.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
    loc: Loc,
}

/// A service block after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub line: usize,
    /// `client = yes`: plain in, TLS toward the server.
    pub client: bool,
    /// `[host:]port` as written, or `None` for an SNI child (`sni = parent:pattern`).
    pub accept: Option<String>,
    /// The line of `accept` (of the block when there is none).
    pub accept_line: usize,
    pub connect: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Verify the peer's certificate chain (`verify >= 2`, `verifyChain`, `verifyPeer`).
    pub verify: bool,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    pub curves: Option<String>,
    /// Server side: `(parent service, server-name pattern)`; client side: the SNI to send.
    pub sni: Option<String>,
    /// The PROXY protocol version sent toward the server (1 or 2), if any.
    pub proxy: Option<u8>,
    pub timeout_idle: Duration,
    pub timeout_connect: Duration,
    pub timeout_busy: Duration,
    pub timeout_close: Duration,
}

/// The whole SSL tab.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslTab {
    pub services: Vec<Service>,
}

/// Keys stunnel accepts in the global part that have no meaning inside lbd
/// (process control, logging, FIPS); accepted so a pasted stunnel file loads.
const PROCESS_KEYS: &[&str] = &[
    "chroot",
    "compression",
    "debug",
    "engine",
    "enginectrl",
    "enginedefault",
    "fips",
    "foreground",
    "iconactive",
    "iconerror",
    "iconidle",
    "log",
    "output",
    "pid",
    "rndbytes",
    "rndfile",
    "rndoverwrite",
    "service",
    "setgid",
    "setuid",
    "socket",
    "syslog",
    "taskbar",
];

/// Per-service keys accepted without effect: lbd's TLS stack decides these.
const IGNORED_SERVICE_KEYS: &[&str] = &[
    "capath",
    "crlfile",
    "crlpath",
    "delay",
    "engineid",
    "enginenum",
    "local",
    "ocspaia",
    "ocspflag",
    "ocspnonce",
    "options",
    "renegotiation",
    "reset",
    "retry",
    "session",
    "sessioncachesize",
    "sessioncachetimeout",
    "sessionresume",
    "sslversion",
    "ticketkeysecret",
    "ticketmacsecret",
    "transparent",
];

const SERVICE_KEYS: &[&str] = &[
    "accept",
    "cafile",
    "cert",
    "checkhost",
    "checkip",
    "ciphers",
    "ciphersuites",
    "client",
    "connect",
    "curves",
    "key",
    "protocol",
    "sendproxy",
    "sni",
    "sslversionmax",
    "sslversionmin",
    "timeoutbusy",
    "timeoutclose",
    "timeoutconnect",
    "timeoutidle",
    "verify",
    "verifychain",
    "verifypeer",
];

fn yes_no(e: &Entry, diags: &mut Diagnostics) -> Option<bool> {
    match e.value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => {
            diags.alert(
                &e.loc,
                Some(&e.key),
                format!("'{}' expects 'yes' or 'no', not '{}'.", e.key, e.value),
            );
            None
        }
    }
}

fn seconds(e: &Entry, diags: &mut Diagnostics) -> Option<Duration> {
    // Up to a year: what lbd's own timeouts accept.
    match e.value.parse::<u64>() {
        Ok(n) if n <= 366 * 86_400 => Some(Duration::from_secs(n)),
        _ => {
            diags.alert(
                &e.loc,
                Some(&e.key),
                format!("'{}' expects a number of seconds up to a year, not '{}'.", e.key, e.value),
            );
            None
        }
    }
}

/// A `[name]` block: its name, where it starts, its lines.
type Block = (String, Loc, Vec<Entry>);

/// Splits the text into the global part and the `[name]` blocks.
fn sections(file: &Arc<str>, text: &str, diags: &mut Diagnostics) -> (Vec<Entry>, Vec<Block>) {
    let mut global = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let loc = Loc::new(file, i + 1);
        let line = raw.trim();
        // stunnel: a comment is a line that starts with ';' or '#'.
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                diags.alert(&loc, None, format!("'{line}': a service name is written [name]."));
                continue;
            };
            let name = name.trim();
            if name.is_empty() || name.contains(':') || super::build::invalid_name_char(name).is_some() {
                diags.alert(
                    &loc,
                    None,
                    format!("service name '{name}': use letters, digits, '-', '_' and '.' only."),
                );
                continue;
            }
            if let Some((_, first, _)) = blocks.iter().find(|(n, _, _)| n == name) {
                diags.alert(&loc, None, format!("service [{name}] is already defined at line {}.", first.line));
                continue;
            }
            blocks.push((name.to_owned(), loc, Vec::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            diags.alert(&loc, None, format!("'{line}': expected 'key = value'."));
            continue;
        };
        let entry = Entry {
            key: k.trim().to_owned(),
            value: v.trim().to_owned(),
            loc,
        };
        match blocks.last_mut() {
            Some((_, _, entries)) => entries.push(entry),
            None => global.push(entry),
        }
    }
    (global, blocks)
}

/// Parses and checks an SSL tab; `None` when it holds errors (all reported).
pub fn parse(name: &str, text: &str, diags: &mut Diagnostics) -> Option<SslTab> {
    let file: Arc<str> = Arc::from(name);
    let before = diags.errors().count();
    let (global, blocks) = sections(&file, text, diags);
    // Service options given before the first block are every service's defaults.
    let mut defaults = Vec::new();
    for e in global {
        let k = e.key.to_ascii_lowercase();
        if PROCESS_KEYS.contains(&k.as_str()) || IGNORED_SERVICE_KEYS.contains(&k.as_str()) {
            continue;
        }
        if SERVICE_KEYS.contains(&k.as_str()) {
            if matches!(k.as_str(), "accept" | "connect" | "sni") {
                diags.alert(&e.loc, Some(&e.key), format!("'{}' belongs in a [service] block.", e.key));
                continue;
            }
            defaults.push(e);
            continue;
        }
        diags.alert(&e.loc, Some(&e.key), format!("unknown global option '{}'.", e.key));
    }
    let mut services = Vec::new();
    for (name, loc, entries) in blocks {
        if let Some(s) = service(&name, &loc, defaults.iter().chain(entries.iter()), diags) {
            services.push(s);
        }
    }
    check_accepts(&services, &file, diags);
    (diags.errors().count() == before).then_some(SslTab { services })
}

fn service<'a>(name: &str, loc: &Loc, entries: impl Iterator<Item = &'a Entry>, diags: &mut Diagnostics) -> Option<Service> {
    let before = diags.errors().count();
    let mut s = Service {
        name: name.to_owned(),
        line: loc.line,
        client: false,
        accept: None,
        accept_line: loc.line,
        connect: String::new(),
        cert: None,
        key: None,
        ca_file: None,
        verify: false,
        min_version: None,
        max_version: None,
        ciphers: None,
        ciphersuites: None,
        curves: None,
        sni: None,
        proxy: None,
        timeout_idle: Duration::from_secs(43_200),
        timeout_connect: Duration::from_secs(10),
        timeout_busy: Duration::from_secs(300),
        timeout_close: Duration::from_secs(60),
    };
    let mut cert_loc = loc.clone();
    let mut key_loc = loc.clone();
    let mut connect_loc = loc.clone();
    for e in entries {
        let k = e.key.to_ascii_lowercase();
        let v = e.value.clone();
        match k.as_str() {
            "client" => s.client = yes_no(e, diags).unwrap_or(false),
            "accept" => {
                s.accept = Some(v);
                s.accept_line = e.loc.line;
            }
            "connect" => {
                s.connect = v;
                connect_loc = e.loc.clone();
            }
            "cert" => {
                // A path, or a certificate name of the store (`NAME/crt.pem`, its key beside it).
                let p = if v.contains('/') {
                    PathBuf::from(&v)
                } else {
                    Path::new(crate::tls::CERT_STORE).join(&v).join("crt.pem")
                };
                plain_path_or_alert(e, &p.display().to_string(), "cert", ", or a certificate name", diags);
                s.cert = Some(p);
                cert_loc = e.loc.clone();
            }
            "key" => {
                plain_path_or_alert(e, &v, "key", "", diags);
                s.key = Some(v.into());
                key_loc = e.loc.clone();
            }
            "cafile" => {
                if plain_path_or_alert(e, &v, "CAfile", "", diags) {
                    if let Err(m) = crate::tls::check_ca(Path::new(&v)) {
                        diags.alert(&e.loc, Some(&e.key), format!("CAfile {m}"));
                    }
                }
                s.ca_file = Some(PathBuf::from(v));
            }
            "verify" => match v.parse::<u8>() {
                Ok(0 | 1) => s.verify = false,
                Ok(2..=4) => s.verify = true,
                _ => diags.alert(&e.loc, Some(&e.key), format!("'verify' expects a level from 0 to 4, not '{v}'.")),
            },
            "verifychain" | "verifypeer" => {
                if yes_no(e, diags) == Some(true) {
                    s.verify = true;
                }
            }
            "sslversionmin" | "sslversionmax" => {
                if let Err(m) = crate::tls::TlsChoices::check_version(&v) {
                    diags.alert(&e.loc, Some(&e.key), m);
                }
                if k == "sslversionmin" {
                    s.min_version = Some(v);
                } else {
                    s.max_version = Some(v);
                }
            }
            "ciphers" => s.ciphers = Some(v),
            "ciphersuites" => s.ciphersuites = Some(v),
            "curves" => s.curves = Some(v),
            "sni" => {
                // Server side: PARENT:PATTERN; client side: the name to send.
                let ok = match v.split_once(':') {
                    Some((parent, pattern)) => {
                        super::build::invalid_name_char(parent).is_none() && !parent.is_empty() && is_host_name(pattern, true)
                    }
                    None => is_host_name(&v, false),
                };
                if !ok {
                    diags.alert(
                        &e.loc,
                        Some(&e.key),
                        format!("'sni = {v}': expected a host name, or SERVICE:NAME (NAME may start with '*.')"),
                    );
                }
                s.sni = Some(v)
            }
            "protocol" => {
                if v.eq_ignore_ascii_case("proxy") {
                    s.proxy = Some(1);
                } else {
                    diags.alert(
                        &e.loc,
                        Some(&e.key),
                        format!("protocol '{v}' is not supported (lbd speaks 'proxy', the PROXY protocol)."),
                    );
                }
            }
            // The vendor's switch; `v2` asks for the binary version.
            "sendproxy" => match v.to_ascii_lowercase().as_str() {
                "v1" => s.proxy = Some(1),
                "v2" => s.proxy = Some(2),
                _ => s.proxy = yes_no(e, diags).unwrap_or(false).then_some(1),
            },
            "timeoutidle" => s.timeout_idle = seconds(e, diags).unwrap_or(s.timeout_idle),
            "timeoutconnect" => s.timeout_connect = seconds(e, diags).unwrap_or(s.timeout_connect),
            "timeoutbusy" => s.timeout_busy = seconds(e, diags).unwrap_or(s.timeout_busy),
            "timeoutclose" => s.timeout_close = seconds(e, diags).unwrap_or(s.timeout_close),
            "checkhost" | "checkip" => {}
            other if IGNORED_SERVICE_KEYS.contains(&other) => {}
            _ => diags.alert(&e.loc, Some(&e.key), format!("[{name}]: unknown option '{}'.", e.key)),
        }
    }
    if s.connect.is_empty() {
        diags.alert(loc, Some("connect"), format!("[{name}]: 'connect' is missing."));
    } else if let Err(m) = check_connect(&s.connect) {
        diags.alert(&connect_loc, Some("connect"), format!("[{name}]: {m}"));
    }
    let sni_child = !s.client && s.sni.as_deref().is_some_and(|v| v.contains(':'));
    match (&s.accept, sni_child) {
        (None, false) => diags.alert(loc, Some("accept"), format!("[{name}]: 'accept' is missing.")),
        (Some(a), _) => {
            if let Err(m) = accept_addr(a) {
                diags.alert(&Loc::new(&loc.file, s.accept_line), Some("accept"), format!("[{name}]: {m}"));
            }
        }
        (None, true) => {}
    }
    if s.client {
        if s.verify && s.ca_file.is_none() {
            diags.alert(loc, Some("verify"), format!("[{name}]: verifying the server needs 'CAfile'."));
        }
    } else {
        match &s.cert {
            None => diags.alert(loc, Some("cert"), format!("[{name}]: a server-side service needs 'cert'.")),
            Some(c) => check_pair(name, c, s.key.as_deref(), &cert_loc, &key_loc, diags),
        }
        if s.verify && s.ca_file.is_none() {
            diags.alert(loc, Some("verify"), format!("[{name}]: verifying clients needs 'CAfile'."));
        }
    }
    let choices = crate::tls::TlsChoices {
        min_version: s.min_version.clone(),
        max_version: s.max_version.clone(),
        ciphers: s.ciphers.clone(),
        ciphersuites: s.ciphersuites.clone(),
        curves: s.curves.clone(),
        alpn: None,
    };
    if let Err(m) = crate::tls::TlsChoices::check(&choices) {
        diags.alert(loc, None, format!("[{name}]: {m}."));
    }
    (diags.errors().count() == before).then_some(s)
}

/// Reads the certificate and key now, so a bad file is reported at its line.
fn check_pair(name: &str, cert: &Path, key: Option<&Path>, cert_loc: &Loc, key_loc: &Loc, diags: &mut Diagnostics) {
    if let Some(k) = key {
        if let Err(e) = std::fs::File::open(k) {
            diags.alert(
                key_loc,
                Some("key"),
                format!("[{name}]: key '{}' cannot be read: {e}.", k.display()),
            );
            return;
        }
    }
    match crate::tls::load_pair(cert, key) {
        Ok(c) => {
            if c.expired() {
                diags.warn(
                    cert_loc,
                    Some("cert"),
                    format!("[{name}]: certificate '{}' expired on {}.", cert.display(), c.not_after_text()),
                );
            }
        }
        Err(e) => {
            let at = if e.contains("private key") && key.is_some() {
                key_loc
            } else {
                cert_loc
            };
            diags.alert(at, Some("cert"), format!("[{name}]: {e}."));
        }
    }
}

/// The `bind` text of an `accept` value (`:443`, `10.0.0.17:443`, `[::1]:443`).
pub fn listen_text(a: &str) -> Result<String, String> {
    accept_addr(a)
}

/// `[host:]port`, with `*` or nothing for every address.
fn accept_addr(a: &str) -> Result<String, String> {
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => ("", a),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("accept '{a}': the port must be a number from 1 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // Every IPv4 address, however written: one address for the clash checks.
    if host.is_empty() || host == "*" || host == "0.0.0.0" {
        return Ok(format!(":{port}"));
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => Ok(format!("[{ip}]:{port}")),
        Ok(ip) => Ok(format!("{ip}:{port}")),
        Err(_) => Err(format!("accept '{a}': '{host}' is not an IP address")),
    }
}

/// A host name as DNS writes it (letters, digits, `-`, `.`), optionally `*.` first.
fn is_host_name(h: &str, wildcard: bool) -> bool {
    let h = if wildcard { h.strip_prefix("*.").unwrap_or(h) } else { h };
    !h.is_empty() && h.len() <= 253 && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// A path the generated configuration can carry: absolute, with no blank,
/// quote, `#` or control character.
fn is_plain_path(p: &str) -> bool {
    p.starts_with('/')
        && !p
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '#' | '\\'))
}

/// Whether a path value can go into the generated configuration; the error otherwise.
fn plain_path_or_alert(e: &Entry, path: &str, label: &str, or: &str, diags: &mut Diagnostics) -> bool {
    let ok = is_plain_path(path);
    if !ok {
        diags.alert(
            &e.loc,
            Some(&e.key),
            format!("{label} '{}': an absolute path without blanks, quotes or '#'{or}", e.value),
        );
    }
    ok
}

fn check_connect(c: &str) -> Result<(), String> {
    if c.starts_with('/') {
        return if is_plain_path(c) {
            Ok(())
        } else {
            Err(format!("connect '{c}': a socket path may not hold blanks, quotes or '#'"))
        };
    }
    let (host, port) = c
        .rsplit_once(':')
        .ok_or_else(|| format!("connect '{c}': expected host:port or a /path"))?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("connect '{c}': the port must be a number from 1 to 65535"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_err() && !is_host_name(bare, false) {
        return Err(format!("connect '{c}': '{host}' is neither an IP address nor a host name"));
    }
    // The name must resolve now, as lbd's own server lines must.
    crate::config::addr::parse_server(c).map_err(|e| format!("connect '{c}': {e}"))?;
    Ok(())
}

/// Two services on one address need `sni` to tell them apart.
fn check_accepts(services: &[Service], file: &Arc<str>, diags: &mut Diagnostics) {
    let mut seen: Vec<(String, &Service)> = Vec::new();
    for s in services {
        let Some(a) = s.accept.as_deref().and_then(|a| accept_addr(a).ok()) else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(b, _)| *b == a) {
            diags.alert(
                &Loc::new(file, s.accept_line),
                Some("accept"),
                format!(
                    "[{}]: accept {a} is already the address of [{}] (line {}); serve several certificates on one address with 'sni = {}:<server name>'.",
                    s.name, first.name, first.accept_line, first.name
                ),
            );
            continue;
        }
        seen.push((a, s));
    }
    for s in services.iter().filter(|s| s.accept.is_none()) {
        let parent = s.sni.as_deref().and_then(|v| v.split_once(':')).map(|(p, _)| p);
        match parent.and_then(|p| services.iter().find(|x| x.name == p)) {
            Some(p) if p.accept.is_some() && !p.client => {}
            _ => diags.alert(
                &Loc::new(file, s.line),
                Some("sni"),
                format!(
                    "[{}]: 'sni = {}' must name a server-side service with 'accept'.",
                    s.name,
                    s.sni.as_deref().unwrap_or("")
                ),
            ),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// The server address of `connect`: `/ssl:NAME` and other absolute paths are
/// UNIX sockets (`/ssl:...` under `unix_prefix`, where the frontend's `bind /ssl:NAME` is).
fn server_addr(connect: &str, unix_prefix: Option<&str>) -> String {
    if connect.starts_with("/ssl:") {
        format!("unix@{}{connect}", unix_prefix.unwrap_or(""))
    } else if connect.starts_with('/') {
        format!("unix@{connect}")
    } else {
        connect.to_owned()
    }
}

/// The service's TLS choices as `bind`/`server` parameters.
fn push_choices(line: &mut String, s: &Service) {
    for (kw, v) in [
        ("ssl-min-ver", &s.min_version),
        ("ssl-max-ver", &s.max_version),
        ("ciphers", &s.ciphers),
        ("ciphersuites", &s.ciphersuites),
        ("curves", &s.curves),
    ] {
        if let Some(v) = v {
            let _ = write!(line, " {kw} {}", quote(v));
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The SSL tab in lbd's own language, to be read after the LB Layer7
/// configuration. It starts with its own `defaults` so nothing of the
/// operator's defaults leaks into the TLS relays.
pub fn generate(tab: &SslTab, unix_prefix: Option<&str>) -> String {
    let mut out = String::from("# Generated from the SSL tab.\ndefaults\n    mode tcp\n    log global\n    option dontlognull\n\n");
    for s in tab.services.iter().filter(|s| s.accept.is_some()) {
        let Some(Ok(addr)) = s.accept.as_deref().map(accept_addr) else {
            continue;
        };
        let _ = writeln!(out, "frontend ssl:{}", s.name);
        let _ = writeln!(out, "    timeout client {}", secs(s.timeout_idle));
        let mut bind = format!("    bind {addr}");
        if !s.client {
            let children: Vec<&Service> = tab
                .services
                .iter()
                .filter(|c| c.accept.is_none() && c.sni.as_deref().and_then(|v| v.split_once(':')).is_some_and(|(p, _)| p == s.name))
                .collect();
            bind.push_str(" ssl");
            for svc in std::iter::once(s).chain(children.iter().copied()) {
                if let Some(c) = &svc.cert {
                    let _ = write!(bind, " crt {}", quote(&c.display().to_string()));
                    if let Some(k) = &svc.key {
                        let _ = write!(bind, " key {}", quote(&k.display().to_string()));
                    }
                }
            }
            push_choices(&mut bind, s);
            if s.verify {
                if let Some(ca) = &s.ca_file {
                    let _ = write!(bind, " verify required ca-file {}", quote(&ca.display().to_string()));
                }
            }
            out.push_str(&bind);
            out.push('\n');
            for c in &children {
                if let Some((_, pattern)) = c.sni.as_deref().and_then(|v| v.split_once(':')) {
                    let cond = match pattern.strip_prefix('*') {
                        Some(suffix) => format!("{{ ssl_fc_sni -i -m end {suffix} }}"),
                        None => format!("{{ ssl_fc_sni -i {pattern} }}"),
                    };
                    let _ = writeln!(out, "    use_backend ssl:{} if {cond}", c.name);
                }
            }
        } else {
            out.push_str(&bind);
            out.push('\n');
        }
        let _ = writeln!(out, "    default_backend ssl:{}\n", s.name);
    }
    for s in &tab.services {
        let _ = writeln!(out, "backend ssl:{}", s.name);
        let _ = writeln!(out, "    timeout connect {}", secs(s.timeout_connect));
        let _ = writeln!(out, "    timeout server {}", secs(s.timeout_idle));
        let mut server = format!("    server {} {}", s.name, server_addr(&s.connect, unix_prefix));
        match s.proxy {
            Some(2) => server.push_str(" send-proxy-v2"),
            Some(_) => server.push_str(" send-proxy"),
            None => {}
        }
        if s.client {
            server.push_str(" ssl");
            match (&s.ca_file, s.verify) {
                (Some(ca), true) => {
                    let _ = write!(server, " verify required ca-file {}", quote(&ca.display().to_string()));
                }
                _ => server.push_str(" verify none"),
            }
            if let Some(n) = &s.sni {
                let _ = write!(server, " sni str({n})");
            }
            push_choices(&mut server, s);
        }
        out.push_str(&server);
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_comments_and_errors() {
        let text =
            "; global\nforeground = yes\n[a]\nclient = yes\naccept = 127.0.0.1:8000\nconnect = 127.0.0.1:9000\n# c\n[b]\nbogus = 1\n";
        let mut d = Diagnostics::default();
        assert!(parse("ssl.cfg", text, &mut d).is_none());
        let e: Vec<_> = d.errors().collect();
        assert!(
            e.iter().any(|x| x.loc.line == 9 && x.message.contains("unknown option 'bogus'")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|x| x.loc.line == 8 && x.message.contains("'connect' is missing")),
            "{e:?}"
        );
    }

    #[test]
    fn same_accept_twice_needs_sni() {
        let text =
            "[a]\nclient = yes\naccept = 8000\nconnect = 127.0.0.1:9000\n[b]\nclient = yes\naccept = 0.0.0.0:8000\nconnect = 127.0.0.1:9001\n";
        let mut d = Diagnostics::default();
        assert!(parse("ssl.cfg", text, &mut d).is_none());
        assert!(d
            .errors()
            .any(|x| x.loc.line == 7 && x.message.contains("already the address of [a]")));
    }

    #[test]
    fn client_service_generates_a_tls_server_line() {
        let text = "[up]\nclient = yes\naccept = 127.0.0.1:8000\nconnect = 127.0.0.1:9443\nsni = backend.example\nsendproxy = yes\n";
        let mut d = Diagnostics::default();
        let tab = parse("ssl.cfg", text, &mut d).expect("valid");
        let g = generate(&tab, Some("/run/lbd"));
        assert!(g.contains("bind 127.0.0.1:8000\n"), "{g}");
        assert!(
            g.contains("server up 127.0.0.1:9443 send-proxy ssl verify none sni str(backend.example)"),
            "{g}"
        );
        let checked = crate::config::check_str("gen", &g);
        assert!(checked.is_valid(), "{:?}", checked.diags);
    }

    #[test]
    fn values_cannot_smuggle_configuration_into_the_generated_text() {
        for (bad, needle) in [
            ("connect = 10.0.0.1:443#:1", "neither an IP address nor a host name"),
            ("connect = 127.0.0.1:80 source 0.0.0.0:1", "neither an IP address"),
            ("connect = /tmp/a b.sock", "may not hold blanks"),
            ("sni = b.example) verify none", "expected a host name"),
        ] {
            let text = format!("[up]\nclient = yes\naccept = 127.0.0.1:8000\nconnect = 127.0.0.1:9443\n{bad}\n");
            let mut d = Diagnostics::default();
            assert!(parse("ssl.cfg", &text, &mut d).is_none(), "{bad} accepted");
            assert!(d.errors().any(|e| e.message.contains(needle)), "{bad}: {:?}", d.items);
        }
        let mut d = Diagnostics::default();
        assert!(parse("ssl.cfg", "[a:b]\nclient = yes\naccept = 8000\nconnect = 127.0.0.1:1\n", &mut d).is_none());
    }

    #[test]
    fn unix_connect_goes_under_the_prefix() {
        assert_eq!(server_addr("/ssl:web", Some("/run/lbd")), "unix@/run/lbd/ssl:web");
        assert_eq!(server_addr("/tmp/x.sock", Some("/run/lbd")), "unix@/tmp/x.sock");
        assert_eq!(accept_addr("443").as_deref(), Ok(":443"));
        assert_eq!(accept_addr("[::1]:443").as_deref(), Ok("[::1]:443"));
        assert!(accept_addr("host.name:443").is_err());
    }
}
