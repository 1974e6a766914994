//! Stage two: the syntax tree becomes the validated model. Each line is checked
//! in file order (so errors come out in the order HAProxy reports them), then
//! cross-references (backends, tables, modes) are resolved once every proxy is
//! known. All errors are collected; the model is returned only when there are none.

mod global;
mod post;
mod proxy;
mod rules;
mod server;

use std::collections::BTreeMap;
use std::collections::HashMap;

use super::acl::{self, AclError, Condition};
use super::diag::{Diagnostics, Loc};
use super::model::*;
use super::syntax::{Line, Section, SectionKind, SyntaxTree};
use super::units::{self, UnitError};

/// Shared state while building: where diagnostics go.
pub(crate) struct Ctx<'a> {
    pub diags: &'a mut Diagnostics,
}

impl Ctx<'_> {
    pub fn alert(&mut self, line: &Line, msg: impl Into<String>) {
        let kw = line.arg(0);
        self.diags.alert(&line.loc, kw, msg);
    }

    pub fn warn(&mut self, line: &Line, msg: impl Into<String>) {
        let kw = line.arg(0);
        self.diags.warn(&line.loc, kw, msg);
    }

    /// Parses argument `idx` as a time in milliseconds, reporting errors against `what`.
    pub fn time(&mut self, line: &Line, idx: usize, what: &str) -> Option<std::time::Duration> {
        let Some(text) = line.arg(idx) else {
            self.alert(line, format!("'{what}' expects a time value (for example 5s)."));
            return None;
        };
        match units::parse_time_ms(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.alert(line, time_error(what, text, &e));
                None
            }
        }
    }

    /// Parses argument `idx` as an integer in `[min, max]`.
    pub fn uint(&mut self, line: &Line, idx: usize, what: &str, min: u64, max: u64) -> Option<u64> {
        let Some(text) = line.arg(idx) else {
            self.alert(line, format!("'{what}' expects an integer argument."));
            return None;
        };
        match units::parse_uint(text, min, max) {
            Ok(v) => Some(v),
            Err(_) => {
                self.alert(line, format!("'{what}' expects an integer between {min} and {max}, not '{text}'."));
                None
            }
        }
    }

    /// HAProxy reads some numbers with C's `atoi`: text becomes 0. lbd accepts the
    /// same inputs so configs keep their meaning, but says so.
    pub fn lenient_uint(&mut self, line: &Line, idx: usize, what: &str) -> Option<u32> {
        let Some(text) = line.arg(idx) else {
            self.alert(line, format!("'{what}' expects an integer argument."));
            return None;
        };
        let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.len() != text.len() {
            self.warn(
                line,
                format!(
                    "'{what}' expects an integer; '{text}' is read as {} as HAProxy does.",
                    digits.parse::<u32>().unwrap_or(0)
                ),
            );
        }
        Some(digits.parse::<u32>().unwrap_or(if digits.is_empty() { 0 } else { u32::MAX }))
    }

    /// The condition that follows a rule at `words[idx..]`: nothing, or
    /// `if|unless` and terms. Reports an error mentioning `what` when malformed.
    pub fn condition(&mut self, line: &Line, idx: usize, what: &str, acls: &BTreeMap<String, AclDef>) -> Result<Option<Condition>, ()> {
        let rest = line.words.get(idx..).unwrap_or_default();
        let Some(first) = rest.first() else { return Ok(None) };
        let unless = match first.as_str() {
            "if" => false,
            "unless" => true,
            other => {
                self.alert(
                    line,
                    format!("'{what}' expects either 'if' or 'unless' followed by a condition but found '{other}'."),
                );
                return Err(());
            }
        };
        let lookup = |name: &str| acls.get(name).map(|d| d.exprs.clone());
        match acl::parse_condition(unless, &rest[1..], &lookup) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                self.alert(line, format!("error detected while parsing a '{what}' condition : {e}."));
                Err(())
            }
        }
    }
}

pub(crate) fn time_error(what: &str, text: &str, e: &UnitError) -> String {
    match e {
        UnitError::Empty => format!("'{what}' expects a time value (for example 5s)."),
        UnitError::Overflow => format!("timer overflow in argument '{text}' to '{what}' (maximum value is 2147483647 ms or ~24.8 days)"),
        other => format!("'{what}' : {other} in '{text}' (valid units are us, ms, s, m, h, d)."),
    }
}

pub(crate) fn acl_error(e: &AclError) -> String {
    e.to_string()
}

/// The characters HAProxy allows in proxy, server and ACL names.
pub(crate) fn invalid_name_char(name: &str) -> Option<char> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
}

impl Proxy {
    /// The built-in values a `defaults` section starts from.
    pub fn builtin_defaults() -> Self {
        Proxy {
            name: ProxyName(String::new()),
            caps: Caps {
                frontend: true,
                backend: true,
            },
            mode: Mode::Tcp,
            loc: Loc {
                file: "<builtin>".into(),
                line: 0,
            },
            id: None,
            disabled: false,
            description: None,
            logs: Vec::new(),
            log_global: false,
            log_format: None,
            options: Options::default(),
            timeouts: Timeouts::default(),
            maxconn: None,
            backlog: None,
            retries: 3,
            retry_on: Vec::new(),
            fullconn: None,
            balance: Balance::RoundRobin,
            hash_type: HashType::MapBased,
            http_reuse: HttpReuse::Safe,
            binds: Vec::new(),
            default_server: ServerParams::default(),
            servers: Vec::new(),
            acls: BTreeMap::new(),
            default_backend: None,
            switching_rules: Vec::new(),
            redirects: Vec::new(),
            monitor_uri: None,
            monitor_fail: Vec::new(),
            stick_table: None,
            stick_rules: Vec::new(),
            cookie: None,
            errorfiles: BTreeMap::new(),
            http_request: Vec::new(),
            http_response: Vec::new(),
            http_after_response: Vec::new(),
            tcp_rules: Vec::new(),
            inspect_delay: None,
            check: CheckKind::Tcp,
            http_check_send: None,
            http_expects: Vec::new(),
            tcp_checks: Vec::new(),
            captures: Vec::new(),
            res_captures: Vec::new(),
            unique_id_format: None,
            unique_id_header: None,
            stats_uri: None,
            stats_enabled: false,
            stats_auth: Vec::new(),
            stats_realm: None,
            stats_refresh: None,
            stats_admin: Vec::new(),
            max_keep_alive_queue: None,
        }
    }

    /// A new proxy inheriting `defaults`.
    fn from_defaults(defaults: &Proxy, name: &str, kind: SectionKind, loc: Loc) -> Self {
        let mut p = defaults.clone();
        p.name = ProxyName(name.to_owned());
        p.caps = match kind {
            SectionKind::Frontend => Caps {
                frontend: true,
                backend: false,
            },
            SectionKind::Backend => Caps {
                frontend: false,
                backend: true,
            },
            _ => Caps {
                frontend: true,
                backend: true,
            },
        };
        p.loc = loc;
        p
    }
}

/// Remembers where each proxy name was declared, to report duplicates as HAProxy does:
/// a frontend and a backend may share a name; a listen conflicts with both.
#[derive(Default)]
struct Names {
    frontends: HashMap<String, (SectionKind, Loc)>,
    backends: HashMap<String, (SectionKind, Loc)>,
}

impl Names {
    fn claim(&mut self, name: &str, kind: SectionKind, loc: &Loc) -> Option<(SectionKind, Loc)> {
        let fe = matches!(kind, SectionKind::Frontend | SectionKind::Listen);
        let be = matches!(kind, SectionKind::Backend | SectionKind::Listen);
        if fe {
            if let Some(prev) = self.frontends.get(name) {
                return Some(prev.clone());
            }
        }
        if be {
            if let Some(prev) = self.backends.get(name) {
                return Some(prev.clone());
            }
        }
        if fe {
            self.frontends.insert(name.to_owned(), (kind, loc.clone()));
        }
        if be {
            self.backends.insert(name.to_owned(), (kind, loc.clone()));
        }
        None
    }
}

/// Builds the model. Returns `None` when any error was found.
pub fn build(tree: &SyntaxTree, diags: &mut Diagnostics) -> Option<Config> {
    let mut ctx = Ctx { diags };
    let mut global = Global::appliance_default();
    let mut global_seen = global::Overrides::default();
    let mut current_defaults = Proxy::builtin_defaults();
    let mut named_defaults: HashMap<String, Proxy> = HashMap::new();
    let mut names = Names::default();
    let mut proxies: Vec<Proxy> = Vec::new();

    // `bind /path` depends on `unix-bind prefix`, which HAProxy applies from the
    // global section wherever it appears; read the global sections first.
    for section in tree.sections.iter().filter(|s| s.kind == SectionKind::Global) {
        if section.header.words.len() > 1 {
            ctx.warn(&section.header, "'global' takes no argument; the rest of the line is ignored.");
        }
        for line in &section.lines {
            global::line(&mut global, &mut global_seen, line, &mut ctx);
        }
    }

    for section in &tree.sections {
        match section.kind {
            SectionKind::Global => {}
            SectionKind::Defaults => {
                let Some(mut d) = defaults_header(section, &named_defaults, &mut ctx) else {
                    continue;
                };
                for line in &section.lines {
                    proxy::line(&mut d, SectionKind::Defaults, line, &global, &mut ctx);
                }
                if let Some(name) = section.name().filter(|n| *n != "from") {
                    named_defaults.insert(name.to_owned(), d.clone());
                }
                current_defaults = d;
            }
            kind => {
                let Some(mut p) = proxy_header(section, kind, &current_defaults, &named_defaults, &mut names, &mut ctx) else {
                    continue;
                };
                for line in &section.lines {
                    proxy::line(&mut p, kind, line, &global, &mut ctx);
                }
                proxies.push(p);
            }
        }
    }

    post::check(&global, &mut proxies, &mut ctx);
    if ctx.diags.has_errors() {
        return None;
    }
    Some(Config { global, proxies })
}

/// `defaults [NAME] [from OTHER]`: a fresh set of defaults, or a copy of OTHER.
fn defaults_header(section: &Section, named: &HashMap<String, Proxy>, ctx: &mut Ctx) -> Option<Proxy> {
    let words = &section.header.words;
    let (name, from) = match words.get(1..).unwrap_or_default() {
        [] => (None, None),
        [n] if n == "from" => {
            ctx.alert(&section.header, "'defaults from' expects the name of a defaults section.");
            return None;
        }
        [n] => (Some(n.as_str()), None),
        [f, o] if f == "from" => (None, Some(o.as_str())),
        [n, f, o] if f == "from" => (Some(n.as_str()), Some(o.as_str())),
        _ => {
            ctx.alert(&section.header, "'defaults' expects at most a name and 'from <defaults>'.");
            return None;
        }
    };
    if let Some(n) = name {
        if let Some(c) = invalid_name_char(n) {
            ctx.alert(
                &section.header,
                format!("character '{c}' is not permitted in 'defaults' name '{n}'."),
            );
            return None;
        }
    }
    let mut d = match from {
        None => Proxy::builtin_defaults(),
        Some(o) => match named.get(o) {
            Some(d) => d.clone(),
            None => {
                ctx.alert(
                    &section.header,
                    format!("defaults section '{o}' not found for defaults '{}'.", name.unwrap_or("")),
                );
                return None;
            }
        },
    };
    d.loc = section.header.loc.clone();
    Some(d)
}

fn proxy_header(
    section: &Section,
    kind: SectionKind,
    current: &Proxy,
    named: &HashMap<String, Proxy>,
    names: &mut Names,
    ctx: &mut Ctx,
) -> Option<Proxy> {
    let header = &section.header;
    let kw = kind.keyword();
    let Some(name) = header.arg(1) else {
        ctx.alert(header, format!("'{kw}' expects an <id> argument"));
        return None;
    };
    if let Some(c) = invalid_name_char(name) {
        ctx.alert(header, format!("character '{c}' is not permitted in '{kw}' name '{name}'."));
        return None;
    }
    let defaults = match header.words.get(2..).unwrap_or_default() {
        [] => current,
        [f, d] if f == "from" => match named.get(d.as_str()) {
            Some(d) => d,
            None => {
                ctx.alert(header, format!("defaults section '{d}' not found for {kw} '{name}'."));
                return None;
            }
        },
        _ => {
            ctx.alert(
                header,
                format!("'{kw} {name}' takes no address; please use the 'bind' keyword for listening addresses."),
            );
            return None;
        }
    };
    if let Some((prev_kind, prev_loc)) = names.claim(name, kind, &header.loc) {
        ctx.alert(
            header,
            format!(
                "{} '{name}' has the same name as {} '{name}' declared at {prev_loc}.",
                kw_label(kind),
                kw_label(prev_kind)
            ),
        );
    }
    Some(Proxy::from_defaults(defaults, name, kind, header.loc.clone()))
}

fn kw_label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Listen => "proxy",
        other => other.keyword(),
    }
}
