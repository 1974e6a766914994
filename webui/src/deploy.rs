//! Deployment templates: an application's whole configuration written from a
//! few values, as the Templates page offers it. A template is data, one TOML
//! file: its inputs (kind, default, limits) and its texts (the LB Layer7 tab,
//! optionally the SSL tab, and a checklist of what to do outside the
//! appliance) as minijinja templates whose variables are the inputs. The
//! shipped ones (`webui/deploy/*.toml`) are built in; a folder given with
//! `--templates` adds more, one file each.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

/// The templates built into webui.
const BUILT_IN: [(&str, &str); 2] = [
    ("exchange-2010.toml", include_str!("../deploy/exchange-2010.toml")),
    ("http-website.toml", include_str!("../deploy/http-website.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Groups of inputs that must all differ (two ports, say).
    #[serde(default)]
    pub distinct: Vec<Vec<String>>,
    #[serde(rename = "input")]
    pub inputs: Vec<Input>,
    lb7: String,
    #[serde(default)]
    ssl: Option<String>,
    #[serde(default)]
    checklist: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One of `choices`.
    Choice,
    Ipv4,
    Hostname,
    /// An integer within `min`..=`max`.
    Port,
    /// Lines of `NAME ADDRESS`, at least `min`.
    Servers,
    /// Any of `choices` (checkboxes); the default lists the keys ticked.
    Services,
    /// A certificate name of the store.
    Cert,
    /// An identifier: letters, digits, `_` and `-`.
    Name,
    /// A URL path.
    Path,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub help: String,
    pub kind: Kind,
    #[serde(default)]
    pub choices: Vec<(String, String)>,
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
    #[serde(default)]
    pub default: String,
    /// `OTHER=VALUE`: the input counts only when input OTHER has that value.
    #[serde(default)]
    pub when: Option<String>,
}

impl Template {
    /// Whether the template writes the SSL tab (some of its variants may
    /// leave it without a service).
    pub fn writes_ssl(&self) -> bool {
        self.ssl.is_some()
    }
}

impl Input {
    /// Whether the input counts with these form values (see `when`).
    pub fn applies(&self, form: &BTreeMap<String, String>) -> bool {
        match self.when.as_deref().and_then(|w| w.split_once('=')) {
            Some((other, value)) => form.get(other).map(|v| v.trim()) == Some(value),
            None => true,
        }
    }
}

/// A template's output for one set of values.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub lb7: String,
    /// The SSL tab's text, when the template writes one.
    pub ssl: Option<String>,
    /// The checklist: headings (`## `) and steps, one per line.
    pub checklist: Vec<String>,
}

/// An input the operator must correct: its key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// Loads the built-in templates and those of `dir` (every `*.toml`, by file
/// name; a file that does not parse is reported, not fatal). A file with the
/// name of a built-in one replaces it.
pub fn load(dir: Option<&Path>) -> (Vec<Template>, Vec<String>) {
    let mut found: BTreeMap<String, Template> = BTreeMap::new();
    let mut errors = Vec::new();
    for (file, text) in BUILT_IN {
        match parse(text) {
            Ok(t) => {
                found.insert(t.name.clone(), t);
            }
            Err(e) => errors.push(format!("{file} (built in): {e}")),
        }
    }
    if let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) {
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            match std::fs::read_to_string(&p).map_err(|e| e.to_string()).and_then(|t| parse(&t)) {
                Ok(t) => {
                    found.insert(t.name.clone(), t);
                }
                Err(e) => errors.push(format!("{}: {e}", p.display())),
            }
        }
    }
    (found.into_values().collect(), errors)
}

/// Parses one template file and checks that its texts compile.
pub fn parse(text: &str) -> Result<Template, String> {
    let t: Template = toml::from_str(text).map_err(|e| e.to_string())?;
    if t.name.is_empty() || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("name {:?}: letters, digits, '-' and '_' only", t.name));
    }
    let env = environment();
    for (what, src) in [("lb7", Some(&t.lb7)), ("ssl", t.ssl.as_ref()), ("checklist", t.checklist.as_ref())] {
        if let Some(src) = src {
            env.template_from_str(src).map_err(|e| format!("{what}: {e}"))?;
        }
    }
    check_inputs(&t)?;
    Ok(t)
}

/// The template's own inputs make sense: unique keys that the texts can use,
/// choices with their defaults among them, `when` naming another input's
/// choice, `distinct` naming inputs.
fn check_inputs(t: &Template) -> Result<(), String> {
    const RESERVED: [&str; 3] = ["csrf", "comment", "cert_dir"];
    let mut seen = std::collections::BTreeSet::new();
    for i in &t.inputs {
        if !is_identifier(&i.key) || i.key.contains('-') || i.key.ends_with("_dir") || RESERVED.contains(&i.key.as_str()) {
            return Err(format!(
                "input {:?}: a key of letters, digits and '_', not ending in _dir nor {RESERVED:?}",
                i.key
            ));
        }
        if !seen.insert(i.key.as_str()) {
            return Err(format!("input {}: the key comes twice", i.key));
        }
        if matches!(i.kind, Kind::Choice | Kind::Services) && i.choices.is_empty() {
            return Err(format!("input {}: no choices", i.key));
        }
        if i.kind == Kind::Choice && !i.choices.iter().any(|(k, _)| *k == i.default) {
            return Err(format!("input {}: the default {:?} is not one of the choices", i.key, i.default));
        }
        if i.min.unwrap_or(0) > i.max.unwrap_or(u32::MAX) {
            return Err(format!("input {}: min is above max", i.key));
        }
    }
    for i in &t.inputs {
        if let Some(w) = &i.when {
            let ok = w.split_once('=').is_some_and(|(other, value)| {
                t.inputs
                    .iter()
                    .any(|o| o.key == other && o.kind == Kind::Choice && o.choices.iter().any(|(k, _)| k == value))
            });
            if !ok {
                return Err(format!(
                    "input {}: when = {w:?} must be OTHER=VALUE, a choice of another input",
                    i.key
                ));
            }
        }
    }
    for group in &t.distinct {
        if let Some(k) = group.iter().find(|k| !seen.contains(k.as_str())) {
            return Err(format!("distinct: no input {k}"));
        }
    }
    Ok(())
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // A variable the template names but the inputs lack is an error, not "".
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

/// The form's values for a template's inputs: the defaults.
pub fn defaults(t: &Template) -> BTreeMap<String, String> {
    t.inputs.iter().map(|i| (i.key.clone(), i.default.clone())).collect()
}

/// One server of a `servers` input.
#[derive(Debug, Clone, serde::Serialize)]
struct Server {
    name: String,
    addr: String,
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks the form's values against the template's inputs and makes the
/// variables of its texts; `certs` are the store's certificate names.
pub fn values(t: &Template, form: &BTreeMap<String, String>, certs: &[String]) -> Result<BTreeMap<String, minijinja::Value>, Vec<Problem>> {
    let mut vars = BTreeMap::new();
    let mut problems = Vec::new();
    let mut bad = |key: &str, message: String| {
        problems.push(Problem {
            key: key.to_owned(),
            message,
        })
    };
    for i in &t.inputs {
        let raw = form.get(&i.key).map(|v| v.trim()).unwrap_or_default();
        if !i.applies(form) {
            vars.insert(i.key.clone(), minijinja::Value::from(""));
            continue;
        }
        let value = match i.kind {
            Kind::Choice => {
                if i.choices.iter().any(|(k, _)| k == raw) {
                    minijinja::Value::from(raw)
                } else {
                    bad(&i.key, format!("choose one of: {}", keys(&i.choices)));
                    continue;
                }
            }
            Kind::Ipv4 => match raw.parse::<Ipv4Addr>() {
                Ok(a) if !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast() => minijinja::Value::from(raw),
                _ => {
                    bad(&i.key, format!("{raw:?} is not a usable IPv4 address"));
                    continue;
                }
            },
            Kind::Hostname => {
                if is_hostname(raw) {
                    minijinja::Value::from(raw.to_ascii_lowercase())
                } else {
                    bad(&i.key, format!("{raw:?} is not a host name"));
                    continue;
                }
            }
            Kind::Name => {
                if is_identifier(raw) {
                    minijinja::Value::from(raw)
                } else {
                    bad(&i.key, "letters, digits, '_' and '-' only (at most 32)".into());
                    continue;
                }
            }
            Kind::Path => {
                // RFC 3986's path and query characters, less what the
                // configuration language reads as a comment, quote or escape.
                let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&()*+,;=:@/%?".contains(c);
                if raw.starts_with('/') && raw.len() < 256 && raw.chars().all(allowed) && !raw.contains("${") {
                    minijinja::Value::from(raw)
                } else {
                    bad(
                        &i.key,
                        format!("{raw:?} is not a URL path (it starts with '/'; no spaces, '#', quotes or '\\')"),
                    );
                    continue;
                }
            }
            Kind::Port => {
                let (lo, hi) = (i.min.unwrap_or(1), i.max.unwrap_or(65535));
                match raw.parse::<u32>() {
                    Ok(p) if (lo..=hi).contains(&p) && p <= 65535 => minijinja::Value::from(p),
                    _ => {
                        bad(&i.key, format!("{raw:?}: a port from {lo} to {hi}"));
                        continue;
                    }
                }
            }
            Kind::Servers => match servers(raw, i.min.unwrap_or(1) as usize, &own_addresses(t, form)) {
                Ok(list) => minijinja::Value::from_serialize(&list),
                Err(e) => {
                    bad(&i.key, e);
                    continue;
                }
            },
            Kind::Services => {
                let ticked: Vec<&str> = raw.split([' ', ',']).filter(|s| !s.is_empty()).collect();
                if let Some(u) = ticked.iter().find(|k| !i.choices.iter().any(|(c, _)| c == *k)) {
                    bad(&i.key, format!("unknown service {u:?}"));
                    continue;
                }
                if ticked.is_empty() {
                    bad(&i.key, "choose at least one".into());
                    continue;
                }
                let map: BTreeMap<String, bool> = i.choices.iter().map(|(k, _)| (k.clone(), ticked.contains(&k.as_str()))).collect();
                minijinja::Value::from_serialize(&map)
            }
            Kind::Cert => {
                if certs.iter().any(|c| c == raw) {
                    minijinja::Value::from(raw)
                } else if raw.is_empty() {
                    bad(&i.key, "choose a certificate (upload one in the SSL tab first)".into());
                    continue;
                } else {
                    bad(&i.key, format!("the store has no certificate {raw:?}"));
                    continue;
                }
            }
        };
        vars.insert(i.key.clone(), value);
    }
    for group in &t.distinct {
        let applying = |k: &&String| t.inputs.iter().any(|i| &i.key == *k && i.applies(form));
        let group: Vec<&String> = group.iter().filter(applying).collect();
        let vals: Vec<String> = group.iter().filter_map(|k| vars.get(*k).map(|v| v.to_string())).collect();
        let mut seen = std::collections::BTreeSet::new();
        if vals.len() == group.len() && !vals.iter().all(|v| seen.insert(v.clone())) {
            let labels: Vec<&str> = group
                .iter()
                .filter_map(|k| t.inputs.iter().find(|i| &i.key == *k).map(|i| i.label.as_str()))
                .collect();
            bad(group[group.len() - 1], format!("{} must differ", labels.join(" and ")));
        }
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(problems)
    }
}

/// The values of the template's IPv4 inputs (a VIP): no server may have one.
fn own_addresses(t: &Template, form: &BTreeMap<String, String>) -> Vec<String> {
    t.inputs
        .iter()
        .filter(|i| i.kind == Kind::Ipv4)
        .filter_map(|i| form.get(&i.key).map(|v| v.trim().to_owned()))
        .collect()
}

fn keys(choices: &[(String, String)]) -> String {
    choices.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
}

/// `NAME ADDRESS` lines: names are identifiers, both unique, no address
/// loopback, multicast or one of `own` (the appliance's VIP).
fn servers(text: &str, min: usize, own: &[String]) -> Result<Vec<Server>, String> {
    let mut out: Vec<Server> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let (Some(name), Some(addr), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("line {}: write a name and an address", n + 1));
        };
        if !is_identifier(name) {
            return Err(format!("line {}: the name {name:?}: letters, digits, '_' and '-' only", n + 1));
        }
        if addr.parse::<Ipv4Addr>().map_or(true, |a| {
            a.is_unspecified() || a.is_broadcast() || a.is_loopback() || a.is_multicast()
        }) {
            return Err(format!("line {}: {addr:?} is not a usable IPv4 address", n + 1));
        }
        if own.iter().any(|o| o == addr) {
            return Err(format!("line {}: {addr} is the appliance's own address", n + 1));
        }
        if out.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
            return Err(format!("line {}: the name {name} comes twice", n + 1));
        }
        if out.iter().any(|s| s.addr == addr) {
            return Err(format!("line {}: the address {addr} comes twice", n + 1));
        }
        out.push(Server {
            name: name.to_owned(),
            addr: addr.to_owned(),
        });
    }
    if out.len() < min {
        return Err(format!("at least {min} server(s)"));
    }
    Ok(out)
}

/// Writes the template's texts for checked values; `cert_store` is where the
/// store keeps certificate NAME (as `NAME/crt.pem` and `NAME/key.pem`).
pub fn render(t: &Template, vars: &BTreeMap<String, minijinja::Value>, cert_store: &Path) -> Result<Rendered, String> {
    // Each certificate input KEY also gives KEY_dir: its folder in the store.
    let mut ctx = vars.clone();
    for i in t.inputs.iter().filter(|i| i.kind == Kind::Cert) {
        let name = vars.get(&i.key).map(|c| c.to_string()).unwrap_or_default();
        ctx.insert(
            format!("{}_dir", i.key),
            minijinja::Value::from(cert_store.join(&name).display().to_string()),
        );
    }
    let env = environment();
    let run = |src: &str| -> Result<String, String> {
        let text = env.render_str(src, &ctx).map_err(|e| format!("the template {}: {e}", t.name))?;
        Ok(tidy(&text))
    };
    let lb7 = run(&t.lb7)?;
    let ssl = match &t.ssl {
        Some(src) => Some(run(src)?).filter(|s| !s.trim().is_empty()),
        None => None,
    };
    let checklist = match &t.checklist {
        Some(src) => run(src)?.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    Ok(Rendered { lb7, ssl, checklist })
}

/// No leading blank lines, at most one blank line in a row, one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = true;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
