//! HAProxy's configuration language, in three stages (STYLE.md point 2):
//! text → [`syntax::SyntaxTree`] (file and line on every node) → [`model::Config`]
//! (validated, all errors collected) → the runtime snapshot (built by the proxy).
//! Stages one and two never touch the network, so `lbd -c` and the GUI share them.

pub mod acl;
pub mod addr;
mod build;
pub mod diag;
pub mod generate;
pub mod keywords;
pub mod lexer;
pub mod model;
pub mod ssltab;
pub mod syntax;
pub mod units;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use diag::{Diagnostic, Diagnostics, Loc, Severity};
pub use model::Config;

use lexer::{Env, ProcessEnv};

/// The result of checking a configuration: the model when it is valid, and every
/// warning and error found.
#[derive(Debug)]
pub struct Checked {
    pub config: Option<Config>,
    pub diags: Diagnostics,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        self.config.is_some()
    }
}

/// One configuration source: a file name (for messages) and its text.
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Expands `-f` arguments as HAProxy does: a directory contributes its `*.cfg`
/// files in lexical order; files are kept in the order given.
pub fn expand_paths(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|e| e.extension().is_some_and(|x| x == "cfg") && e.is_file())
                .collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Checks sources already in memory (the GUI's editor, tests, the fuzzer).
pub fn check_sources(sources: &[Source], env: &dyn Env) -> Checked {
    let mut diags = Diagnostics::default();
    let mut tree = syntax::SyntaxTree::default();
    for src in sources {
        let name: Arc<str> = Arc::from(src.name.as_str());
        syntax::parse_text(&name, &src.text, env, &mut tree, &mut diags);
    }
    let config = build::build(&tree, &mut diags);
    let config = if diags.has_errors() { None } else { config };
    Checked {
        config,
        diags,
        files: Vec::new(),
    }
}

/// Checks one text, naming it `name` in messages.
pub fn check_str(name: &str, text: &str) -> Checked {
    check_sources(
        &[Source {
            name: name.to_owned(),
            text: text.to_owned(),
        }],
        &ProcessEnv,
    )
}

/// Reads files (and directories) in order: their sources, the files read, and
/// what could not be read.
fn read_sources(paths: &[PathBuf]) -> (Vec<Source>, Vec<PathBuf>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let files = match expand_paths(paths) {
        Ok(f) => f,
        Err(e) => {
            let loc = Loc {
                file: Arc::from("<command line>"),
                line: 0,
            };
            diags.alert(&loc, None, format!("cannot list configuration directory: {e}"));
            return (Vec::new(), Vec::new(), diags);
        }
    };
    let mut sources = Vec::new();
    for f in &files {
        match read_text(f) {
            Ok(text) => sources.push(Source {
                name: f.display().to_string(),
                text,
            }),
            Err(e) => unreadable(&mut diags, f, "configuration file", &e),
        }
    }
    (sources, files, diags)
}

/// The error for a file that cannot be read.
fn unreadable(diags: &mut Diagnostics, path: &Path, what: &str, e: &std::io::Error) {
    let loc = Loc {
        file: Arc::from(path.display().to_string()),
        line: 0,
    };
    diags.alert(&loc, None, format!("Could not open {what} {} : {e}", path.display()));
}

/// Checks sources read from `files`, or reports what could not be read.
fn check_read(sources: &[Source], files: Vec<PathBuf>, diags: Diagnostics) -> Checked {
    if diags.has_errors() {
        return Checked {
            config: None,
            diags,
            files,
        };
    }
    let mut checked = check_sources(sources, &ProcessEnv);
    checked.files = files;
    checked
}

/// Reads and checks files (and directories) in order.
pub fn check_files(paths: &[PathBuf]) -> Checked {
    let (sources, files, diags) = read_sources(paths);
    check_read(&sources, files, diags)
}

/// Adds the SSL tab (`lbd -s FILE`) to a configuration checked from `sources`:
/// its blocks are checked against the SSL file's own lines, then read as TCP
/// frontends and backends after the configuration (see [`ssltab`]).
pub fn with_ssl_tab(mut checked: Checked, sources: Vec<Source>, ssl: &Path) -> Checked {
    match read_text(ssl) {
        Ok(text) => ssl_tab_text(checked, sources, &ssl.display().to_string(), &text),
        Err(e) => {
            unreadable(&mut checked.diags, ssl, "SSL tab file", &e);
            checked.config = None;
            checked
        }
    }
}

/// [`with_ssl_tab`] for an SSL tab already in memory (the GUI's editor, tests).
pub fn ssl_tab_text(mut checked: Checked, sources: Vec<Source>, name: &str, text: &str) -> Checked {
    let Some(tab) = ssltab::parse(name, text, &mut checked.diags) else {
        checked.config = None;
        return checked;
    };
    let Some(config) = &checked.config else { return checked };
    let file: Arc<str> = Arc::from(name);
    // An SSL-tab service on an address a frontend of the LB Layer7 file binds too:
    // one of them would never see a connection.
    let mut clash = false;
    for svc in &tab.services {
        let Some(text) = svc.accept.as_deref().and_then(|a| ssltab::listen_text(a).ok()) else {
            continue;
        };
        let Ok(addrs) = addr::parse_listen(&text, None) else { continue };
        for p in config.proxies.iter().filter(|p| p.caps.frontend) {
            if let Some(b) = p.binds.iter().find(|b| b.addrs.iter().any(|x| addrs.contains(x))) {
                checked.diags.alert(
                    &Loc::new(&file, svc.accept_line),
                    Some("accept"),
                    format!(
                        "[{}]: accept {text} is also bound by frontend '{}' ({}:{}); one address serves one of them",
                        svc.name, p.name.0, b.loc.file, b.loc.line
                    ),
                );
                clash = true;
            }
        }
    }
    if clash {
        checked.config = None;
        return checked;
    }
    let generated = ssltab::generate(&tab, config.global.unix_bind_prefix.as_deref());
    // Which service each generated line comes from: its section header names it.
    let mut owner: Vec<Option<&ssltab::Service>> = Vec::new();
    let mut current = None;
    for l in generated.lines() {
        if let Some(svc) = l
            .strip_prefix("frontend ssl:")
            .or_else(|| l.strip_prefix("backend ssl:"))
            .and_then(|n| tab.services.iter().find(|s| s.name == n))
        {
            current = Some(svc);
        }
        owner.push(current);
    }
    let generated_name = format!("{name} (as configuration)");
    let mut all = sources;
    all.push(Source {
        name: generated_name.clone(),
        text: generated,
    });
    // The first pass's messages are the same as the second's: keep only the SSL tab's own.
    let own: Vec<Diagnostic> = checked.diags.items.drain(..).filter(|d| &*d.loc.file == name).collect();
    let mut again = check_sources(&all, &ProcessEnv);
    // A message about the generated text is told at the service's own block.
    for d in again.diags.items.iter_mut().filter(|d| *d.loc.file == *generated_name) {
        if let Some(Some(svc)) = d.loc.line.checked_sub(1).and_then(|i| owner.get(i)) {
            d.message = format!("[{}]: {}", svc.name, d.message);
            d.loc = Loc::new(&file, svc.line);
        }
    }
    again.diags.items.extend(own);
    again.files = std::mem::take(&mut checked.files);
    if again.diags.has_errors() {
        again.config = None;
    }
    again
}

/// Reads the configuration files and, when given, the SSL tab; each file is read once.
pub fn check_all(paths: &[PathBuf], ssl: Option<&Path>) -> Checked {
    let (sources, files, diags) = if paths.is_empty() {
        let embedded = Source {
            name: "<embedded default config>".into(),
            text: crate::cli::EMBEDDED_CONFIG.into(),
        };
        (vec![embedded], Vec::new(), Diagnostics::default())
    } else {
        read_sources(paths)
    };
    let checked = check_read(&sources, files, diags);
    let Some(ssl) = ssl else { return checked };
    if !checked.is_valid() {
        // Still report the SSL tab's own mistakes: all errors at once.
        let mut checked = checked;
        match read_text(ssl) {
            Ok(text) => {
                let _ = ssltab::parse(&ssl.display().to_string(), &text, &mut checked.diags);
            }
            Err(e) => unreadable(&mut checked.diags, ssl, "SSL tab file", &e),
        }
        return checked;
    }
    with_ssl_tab(checked, sources, ssl)
}

fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    // Configuration files are text; bytes that are not UTF-8 are kept visible.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
