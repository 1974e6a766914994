//! Stage one: text becomes a syntax tree of sections and lines, each line with its
//! file and line number. Nothing here knows what a keyword means.

use std::sync::Arc;

use super::diag::{Diagnostics, Loc};
use super::lexer::{split_line, Env};

/// The sections lbd understands. Others that HAProxy has (`userlist`, `peers`,
/// `resolvers`, ...) are reported as not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl SectionKind {
    pub fn keyword(self) -> &'static str {
        match self {
            SectionKind::Global => "global",
            SectionKind::Defaults => "defaults",
            SectionKind::Frontend => "frontend",
            SectionKind::Backend => "backend",
            SectionKind::Listen => "listen",
        }
    }

    pub fn from_keyword(word: &str) -> Option<Self> {
        Some(match word {
            "global" => SectionKind::Global,
            "defaults" => SectionKind::Defaults,
            "frontend" => SectionKind::Frontend,
            "backend" => SectionKind::Backend,
            "listen" => SectionKind::Listen,
            _ => return None,
        })
    }
}

/// HAProxy sections lbd does not implement yet; naming them gives a clear error.
pub const UNSUPPORTED_SECTIONS: &[&str] = &[
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "dynamic-update",
];

/// One configuration line, split into words.
#[derive(Debug, Clone)]
pub struct Line {
    pub loc: Loc,
    pub words: Vec<String>,
}

impl Line {
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
}

/// A section header and the lines under it.
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionKind,
    /// The header line (`backend bk_web`).
    pub header: Line,
    pub lines: Vec<Line>,
}

impl Section {
    pub fn name(&self) -> Option<&str> {
        self.header.arg(1)
    }
}

/// Everything read from one or more files, in order.
#[derive(Debug, Clone, Default)]
pub struct SyntaxTree {
    pub sections: Vec<Section>,
}

/// Parses one file's text and appends its sections to `tree`. Lines after an
/// unsupported section header are skipped until the next known section.
pub fn parse_text(file: &Arc<str>, text: &str, env: &dyn Env, tree: &mut SyntaxTree, diags: &mut Diagnostics) {
    let mut in_unsupported = false;
    // A section opened in a previous file does not continue into the next one.
    let mut current: Option<Section> = None;
    for (idx, raw) in text.split('\n').enumerate() {
        let loc = Loc::new(file, idx + 1);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let words = match split_line(raw, env) {
            Ok(w) => w,
            Err(e) => {
                diags.alert(&loc, None, format!("{e}:\n  {raw}\n  {:>width$}", "^", width = e.position));
                continue;
            }
        };
        let Some(first) = words.first() else { continue };
        if let Some(kind) = SectionKind::from_keyword(first) {
            if let Some(done) = current.take() {
                tree.sections.push(done);
            }
            in_unsupported = false;
            current = Some(Section {
                kind,
                header: Line { loc, words },
                lines: Vec::new(),
            });
            continue;
        }
        if UNSUPPORTED_SECTIONS.contains(&first.as_str()) {
            if let Some(done) = current.take() {
                tree.sections.push(done);
            }
            in_unsupported = true;
            diags.alert(&loc, Some(first), format!("section '{first}' is not supported by lbd yet"));
            continue;
        }
        if in_unsupported {
            continue;
        }
        match current.as_mut() {
            Some(section) => section.lines.push(Line { loc, words }),
            None => diags.alert(&loc, Some(first), format!("unknown keyword '{first}' out of section.")),
        }
    }
    if let Some(done) = current.take() {
        tree.sections.push(done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (SyntaxTree, Diagnostics) {
        let mut tree = SyntaxTree::default();
        let mut diags = Diagnostics::default();
        let env = |_: &str| None;
        parse_text(&Arc::from("t.cfg"), text, &env, &mut tree, &mut diags);
        (tree, diags)
    }

    #[test]
    fn sections_and_lines_keep_their_place() {
        let (tree, diags) = parse("# hi\nglobal\n  maxconn 10\n\nfrontend f\r\n  bind :80 # web\n");
        assert!(!diags.has_errors());
        assert_eq!(tree.sections.len(), 2);
        assert_eq!(tree.sections[0].kind, SectionKind::Global);
        assert_eq!(tree.sections[0].lines[0].loc.line, 3);
        assert_eq!(tree.sections[1].name(), Some("f"));
        assert_eq!(tree.sections[1].lines[0].words, ["bind", ":80"]);
        assert_eq!(tree.sections[1].lines[0].loc.line, 6);
    }

    #[test]
    fn keyword_out_of_section_and_bad_quotes_are_errors() {
        let (_, diags) = parse("maxconn 10\nfrontend f\n  bind \"oops\n");
        let lines: Vec<usize> = diags.errors().map(|d| d.loc.line).collect();
        assert_eq!(lines, [1, 3]);
    }

    #[test]
    fn unsupported_sections_are_named() {
        let (tree, diags) = parse("userlist u\n  user a password x\nbackend b\n");
        assert_eq!(diags.errors().count(), 1);
        assert!(diags.items[0].message.contains("userlist"));
        assert_eq!(tree.sections.len(), 1);
    }
}
