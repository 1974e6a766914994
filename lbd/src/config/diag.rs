//! Diagnostics: every error and warning names a file and a line, and the checker
//! collects them all instead of stopping at the first.

use std::fmt;
use std::sync::Arc;

/// A place in a configuration file. Line 0 means "the file as a whole".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
}

impl Loc {
    pub fn new(file: &Arc<str>, line: usize) -> Self {
        Loc { file: file.clone(), line }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Alert,
}

/// One finding about the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub loc: Loc,
    /// The keyword the finding is about, when there is one (`bind`, `option httpchk`).
    pub keyword: Option<String>,
    pub message: String,
}

impl Diagnostic {
    /// HAProxy's shape: `[ALERT]    (PID) : config : parsing [FILE:LINE] : message`.
    pub fn haproxy_line(&self, pid: u32) -> String {
        let tag = match self.severity {
            Severity::Alert => "[ALERT]   ",
            Severity::Warning => "[WARNING] ",
        };
        if self.loc.line == 0 {
            format!("{tag} ({pid}) : config : {} : {}", self.loc.file, self.message)
        } else {
            format!("{tag} ({pid}) : config : parsing [{}] : {}", self.loc, self.message)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Alert => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {sev}: {}", self.loc, self.message)
    }
}

/// Collects diagnostics in the order they are found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn alert(&mut self, loc: &Loc, keyword: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Alert, loc, keyword, message.into());
    }

    pub fn warn(&mut self, loc: &Loc, keyword: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Warning, loc, keyword, message.into());
    }

    fn push(&mut self, severity: Severity, loc: &Loc, keyword: Option<&str>, message: String) {
        self.items.push(Diagnostic {
            severity,
            loc: loc.clone(),
            keyword: keyword.map(str::to_owned),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Alert)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Alert)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Warning)
    }
}
