//! Stage zero of the configuration: one line of text becomes a list of words.
//!
//! The rules are HAProxy's (configuration manual, "Quoting and escaping" and
//! "Environment variables"):
//! - words are separated by unquoted, unescaped spaces and tabs;
//! - an unquoted, unescaped `#` ends the line (the rest is a comment);
//! - `"..."` is weak quoting: escapes and `$VAR` / `${VAR}` / `${VAR-default}` are
//!   still interpreted inside; `'...'` is strong quoting: nothing is interpreted;
//! - outside strong quotes, `\` escapes: `\ ` `\#` `\\` `\'` `\"` are the character
//!   itself, `\r` `\n` `\t` are CR, LF and TAB, `\xNN` is the byte NN; any other
//!   escaped character keeps its backslash (so regexes like `\d` or `\.` survive);
//! - `$` is only special inside double quotes; `\$` there is a literal dollar.

use std::fmt;

/// Why a line could not be split into words, and where (1-based byte column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub kind: LexErrorKind,
    pub position: usize,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.kind, self.position)
    }
}

impl std::error::Error for LexError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A `"` or `'` was opened and never closed on the same line.
    UnmatchedQuote(char),
    /// `\x` was not followed by two hexadecimal digits.
    BadHexEscape,
    /// `${` without the closing `}`.
    UnterminatedVariable,
    /// `${}` or a name that does not start with a letter or `_`.
    BadVariableName,
}

impl fmt::Display for LexErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LexErrorKind::UnmatchedQuote(q) => write!(f, "unmatched quote ({q})"),
            LexErrorKind::BadHexEscape => write!(f, "truncated or invalid hexadecimal sequence"),
            LexErrorKind::UnterminatedVariable => write!(f, "unmatched brace in environment variable name"),
            LexErrorKind::BadVariableName => write!(f, "forbidden first char in environment variable name"),
        }
    }
}

/// Looks up environment variables; a trait so tests and the GUI can supply their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

fn is_var_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_var_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `bytes` written in upper-case hexadecimal, two digits each (as HAProxy
/// shows binary keys and matches `rbinary` patterns).
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The value of one hexadecimal digit.
pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One word being built, with whether it holds anything that makes it exist even
/// when empty (a quoted `""` is an empty argument; an unset variable alone is not).
#[derive(Default)]
struct WordBuf {
    bytes: Vec<u8>,
    started: bool,
    /// Something other than quotes and variable expansions was part of the word.
    literal: bool,
    /// A variable expansion was part of the word.
    has_var: bool,
}

/// Split one line (without its line terminator) into words.
pub fn split_line(line: &str, env: &dyn Env) -> Result<Vec<String>, LexError> {
    let input = line.as_bytes();
    // Most lines hold no quote, escape, variable or comment: split them directly.
    if !input.iter().any(|b| matches!(b, b'\\' | b'"' | b'\'' | b'#' | b'$')) {
        return Ok(line.split([' ', '\t']).filter(|w| !w.is_empty()).map(str::to_owned).collect());
    }
    let mut words: Vec<String> = Vec::new();
    let mut cur = WordBuf::default();
    let mut squote = false;
    let mut dquote = false;
    let mut i = 0;

    // An argument made only of variables that expanded to nothing is dropped, as
    // HAProxy does, so `"${OPTIONAL_ARG}"` can switch a parameter off.
    let finish = |cur: &mut WordBuf, words: &mut Vec<String>| {
        if cur.started && (cur.literal || !cur.bytes.is_empty() || !cur.has_var) {
            // `\xNN` may produce bytes that are not UTF-8; keep them visible rather than fail.
            let bytes = std::mem::take(&mut cur.bytes);
            words.push(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
        }
        *cur = WordBuf::default();
    };
    let err = |kind, at: usize| LexError { kind, position: at + 1 };
    let mut quote_at = 0;

    while i < input.len() {
        let c = input[i];
        if squote {
            if c == b'\'' {
                squote = false;
            } else {
                cur.bytes.push(c);
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' if !dquote => {
                squote = true;
                quote_at = i;
                cur.started = true;
                i += 1;
            }
            b'"' => {
                dquote = !dquote;
                quote_at = i;
                cur.started = true;
                i += 1;
            }
            b'\\' => {
                let Some(&n) = input.get(i + 1) else {
                    // A lone backslash at the end of the line stays literal.
                    cur.started = true;
                    cur.literal = true;
                    cur.bytes.push(b'\\');
                    i += 1;
                    continue;
                };
                cur.started = true;
                cur.literal = true;
                match n {
                    b' ' | b'#' | b'\\' | b'\'' | b'"' => {
                        cur.bytes.push(n);
                        i += 2;
                    }
                    b'$' if dquote => {
                        cur.bytes.push(b'$');
                        i += 2;
                    }
                    b'r' => {
                        cur.bytes.push(b'\r');
                        i += 2;
                    }
                    b'n' => {
                        cur.bytes.push(b'\n');
                        i += 2;
                    }
                    b't' => {
                        cur.bytes.push(b'\t');
                        i += 2;
                    }
                    b'x' => {
                        let hi = input.get(i + 2).copied().and_then(hex_val);
                        let lo = input.get(i + 3).copied().and_then(hex_val);
                        match (hi, lo) {
                            (Some(h), Some(l)) => {
                                cur.bytes.push(h << 4 | l);
                                i += 4;
                            }
                            _ => return Err(err(LexErrorKind::BadHexEscape, i)),
                        }
                    }
                    _ => {
                        // Unknown escapes keep their backslash: regexes rely on it.
                        cur.bytes.push(b'\\');
                        i += 1;
                    }
                }
            }
            b'$' if dquote => {
                cur.started = true;
                cur.has_var = true;
                i += 1;
                let (name, default, next) = read_variable(input, i).map_err(|(k, at)| err(k, at))?;
                i = next;
                match env.var(&name) {
                    Some(v) => cur.bytes.extend_from_slice(v.as_bytes()),
                    None => {
                        if let Some(d) = default {
                            cur.bytes.extend_from_slice(d.as_bytes());
                        }
                    }
                }
            }
            b'#' if !dquote => break,
            b' ' | b'\t' if !dquote => {
                finish(&mut cur, &mut words);
                i += 1;
            }
            _ => {
                cur.started = true;
                cur.literal = true;
                cur.bytes.push(c);
                i += 1;
            }
        }
    }
    if squote {
        return Err(err(LexErrorKind::UnmatchedQuote('\''), quote_at));
    }
    if dquote {
        return Err(err(LexErrorKind::UnmatchedQuote('"'), quote_at));
    }
    finish(&mut cur, &mut words);
    Ok(words)
}

/// Reads a variable reference starting just after `$`. Returns the name, the
/// optional default (`${NAME-default}`) and the index after the reference.
type Variable = (String, Option<String>, usize);

fn read_variable(input: &[u8], start: usize) -> Result<Variable, (LexErrorKind, usize)> {
    let braced = input.get(start) == Some(&b'{');
    let mut i = if braced { start + 1 } else { start };
    let name_start = i;
    if !input.get(i).is_some_and(|b| is_var_start(*b)) {
        return Err((LexErrorKind::BadVariableName, i));
    }
    while input.get(i).is_some_and(|b| is_var_char(*b)) {
        i += 1;
    }
    let name = String::from_utf8_lossy(&input[name_start..i]).into_owned();
    if !braced {
        return Ok((name, None, i));
    }
    let mut default = None;
    if input.get(i) == Some(&b'-') {
        let d_start = i + 1;
        let mut j = d_start;
        while j < input.len() && input[j] != b'}' {
            j += 1;
        }
        default = Some(String::from_utf8_lossy(&input[d_start..j]).into_owned());
        i = j;
    }
    if input.get(i) != Some(&b'}') {
        return Err((LexErrorKind::UnterminatedVariable, start - 1));
    }
    Ok((name, default, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a b".into()),
            _ => None,
        }
    }

    fn split(s: &str) -> Result<Vec<String>, LexError> {
        split_line(s, &env)
    }

    #[rstest]
    #[case("bind :80", &["bind", ":80"])]
    #[case("   server  s1\t10.0.0.1:80   check  ", &["server", "s1", "10.0.0.1:80", "check"])]
    #[case("mode http # comment", &["mode", "http"])]
    #[case("# only a comment", &[])]
    #[case("", &[])]
    #[case("a\\ b c", &["a b", "c"])]
    #[case("a\\#b", &["a#b"])]
    #[case("a\\\\b", &["a\\b"])]
    #[case("a\\'b", &["a'b"])]
    #[case("a\\\"b", &["a\"b"])]
    #[case("x\\r\\n\\t", &["x\r\n\t"])]
    #[case("\\x41\\x4a\\x6b", &["AJk"])]
    #[case("^/foo\\.html$", &["^/foo\\.html$"])]
    #[case("\\d+", &["\\d+"])]
    #[case("\"a b\" c", &["a b", "c"])]
    #[case("'a b' c", &["a b", "c"])]
    #[case("'a\\ b'", &["a\\ b"])]
    #[case("'$HOST'", &["$HOST"])]
    #[case("\"a\"'b'c", &["abc"])]
    #[case("\"\"", &[""])]
    #[case("''", &[""])]
    #[case("\"a#b\"", &["a#b"])]
    #[case("'a#b'", &["a#b"])]
    #[case("\"it's\"", &["it's"])]
    #[case("'say \"hi\"'", &["say \"hi\""])]
    #[case("\"\\x41 \\\\\"", &["A \\"])]
    fn escapes_and_quotes(#[case] line: &str, #[case] want: &[&str]) {
        assert_eq!(split(line).unwrap(), want);
    }

    #[rstest]
    #[case("\"${HOST}:80\"", &["10.0.0.1:80"])]
    #[case("\"$HOST:80\"", &["10.0.0.1:80"])]
    #[case("$HOST", &["$HOST"])]
    #[case("${HOST}", &["${HOST}"])]
    #[case("\"${UNSET-127.0.0.1}:80\"", &["127.0.0.1:80"])]
    #[case("\"${HOST-127.0.0.1}\"", &["10.0.0.1"])]
    #[case("\"${UNSET}\" x", &["x"])]
    #[case("\"${EMPTY}\" x", &["x"])]
    #[case("\"a${UNSET}b\"", &["ab"])]
    #[case("\"${SPACED}\"", &["a b"])]
    #[case("\"\\$HOST\"", &["$HOST"])]
    #[case("'${HOST}'", &["${HOST}"])]
    fn environment(#[case] line: &str, #[case] want: &[&str]) {
        assert_eq!(split(line).unwrap(), want);
    }

    #[rstest]
    #[case("x \"abc", LexErrorKind::UnmatchedQuote('"'), 3)]
    #[case("'abc", LexErrorKind::UnmatchedQuote('\''), 1)]
    #[case("a\\x4", LexErrorKind::BadHexEscape, 2)]
    #[case("a\\xzz", LexErrorKind::BadHexEscape, 2)]
    #[case("\"${HOST\"", LexErrorKind::UnterminatedVariable, 2)]
    #[case("\"${}\"", LexErrorKind::BadVariableName, 4)]
    #[case("\"$1\"", LexErrorKind::BadVariableName, 3)]
    fn errors(#[case] line: &str, #[case] kind: LexErrorKind, #[case] position: usize) {
        assert_eq!(split(line).unwrap_err(), LexError { kind, position });
    }

    #[test]
    fn odd_inputs_are_kept() {
        assert_eq!(split("abc\\").unwrap(), ["abc\\"]);
        assert_eq!(split("\\xff").unwrap(), ["\u{fffd}"]);
        assert_eq!(split("a#b c").unwrap(), ["a"]);
    }
}
