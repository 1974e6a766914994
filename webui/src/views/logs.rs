//! Logs: lbd's log lines as the box's syslog daemon wrote them, newest first,
//! filtered by a text, refreshed every 5 s with `?live=1`.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{render, Chrome};
use crate::app::{AppState, Current};

/// How much of the end of the log file is read for the page.
const TAIL_BYTES: u64 = 1024 * 1024;
/// The most lines shown.
const MAX_LINES: usize = 1000;

/// The last lines of `path` that hold `only` (lbd's syslog tag; empty: every
/// line) and `filter` (case-insensitive), newest first.
pub fn tail(path: &std::path::Path, only: &str, filter: &str) -> std::io::Result<Vec<String>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(TAIL_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line was cut by the seek.
        lines.remove(0);
    }
    let needle = filter.to_lowercase();
    Ok(lines
        .iter()
        .rev()
        .filter(|l| only.is_empty() || l.contains(only))
        .filter(|l| needle.is_empty() || l.to_lowercase().contains(&needle))
        .take(MAX_LINES)
        .map(|l| (*l).to_owned())
        .collect())
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    chrome: Chrome,
    file: String,
    filter: String,
    lines: Vec<String>,
    error: String,
    live: bool,
}

#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    live: Option<String>,
}

pub async fn page(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>, Query(q): Query<LogsQuery>) -> Response {
    let filter: String = q.q.chars().take(200).collect();
    let (lines, error) = match tail(&state.log_file, &state.log_match, &filter) {
        Ok(l) => (l, String::new()),
        Err(e) => (Vec::new(), format!("{}: {e}", state.log_file.display())),
    };
    render(&LogsPage {
        chrome: Chrome::new(&state, Some(&current), "logs"),
        file: state.log_file.display().to_string(),
        filter,
        lines,
        error,
        live: q.live.is_some_and(|v| v == "1"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn newest_first_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("messages");
        std::fs::write(&f, "one lbd a\ntwo other\nthree LBD b\n").unwrap();
        assert_eq!(super::tail(&f, "", "").unwrap(), ["three LBD b", "two other", "one lbd a"]);
        assert_eq!(super::tail(&f, "", "lbd").unwrap(), ["three LBD b", "one lbd a"]);
        assert_eq!(
            super::tail(&f, "lbd", "").unwrap(),
            ["one lbd a"],
            "only lbd's lines (its tag, as written)"
        );
    }
}
