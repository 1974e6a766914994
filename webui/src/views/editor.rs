//! The LB Layer7 and SSL tabs' text: the live file in an editor, Validate
//! (lbd's parser: findings by line, the lines highlighted), Apply (validated,
//! written atomically, reloaded and confirmed, or put back), the history of
//! applied revisions, a diff between any two, and rollback.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{format_time, render, Chrome, UiError};
use crate::app::{now, AppState, Current};
use crate::config::{self, Report};
use crate::files::read_optional;
use crate::store::Tab;

pub(super) fn tab_of(name: &str) -> Result<Tab, UiError> {
    match name {
        "lb7" => Ok(Tab::Lb7),
        "ssl" => Ok(Tab::Ssl),
        _ => Err(UiError::new(StatusCode::NOT_FOUND, "No such page.")),
    }
}

/// One line of the numbered listing under the editor.
pub(super) struct Listed {
    number: usize,
    text: String,
    bad: bool,
}

pub(super) struct Shown {
    alert: bool,
    line: usize,
    keyword: String,
    message: String,
}

#[derive(Template)]
#[template(path = "editor.html")]
pub(super) struct EditorPage {
    chrome: Chrome,
    tab: &'static str,
    title: &'static str,
    text: String,
    comment: String,
    /// Set once validated or applied.
    checked: bool,
    valid: bool,
    findings: Vec<Shown>,
    listing: Vec<Listed>,
    /// The outcome of an apply.
    result: String,
    result_ok: bool,
    /// The SSL tab's certificate store (empty on the LB Layer7 tab).
    certs: Vec<crate::certs::CertView>,
    /// The outcome of a certificate upload or deletion.
    pub(super) cert_result: String,
    pub(super) cert_ok: bool,
}

impl EditorPage {
    pub(super) fn new(state: &AppState, current: &Current, tab: Tab, text: String) -> EditorPage {
        let certs = if tab == Tab::Ssl {
            let (lb7, ssl) = state.paths.texts_with(None);
            crate::certs::list(&state.paths, &lb7, &ssl, now() as i64)
        } else {
            Vec::new()
        };
        EditorPage {
            certs,
            cert_result: String::new(),
            cert_ok: false,
            chrome: Chrome::new(state, Some(current), tab.key()),
            tab: tab.key(),
            title: tab.title(),
            text,
            comment: String::new(),
            checked: false,
            valid: false,
            findings: Vec::new(),
            listing: Vec::new(),
            result: String::new(),
            result_ok: false,
        }
    }

    fn with_report(mut self, tab: Tab, report: &Report) -> EditorPage {
        let bad = report.alert_lines(tab);
        self.checked = true;
        self.valid = report.valid;
        let mut sorted: Vec<&config::Finding> = report.findings.iter().collect();
        // Errors first, then warnings, each by line.
        sorted.sort_by_key(|f| (!f.alert, f.tab != tab, f.line));
        self.findings = sorted
            .into_iter()
            .filter(|f| f.tab == tab || f.alert)
            .map(|f| Shown {
                alert: f.alert,
                line: if f.tab == tab { f.line } else { 0 },
                keyword: f.keyword.clone(),
                message: if f.tab == tab {
                    f.message.clone()
                } else {
                    format!("(in the {} tab) {}", f.tab.title(), f.message)
                },
            })
            .collect();
        self.listing = self
            .text
            .lines()
            .enumerate()
            .map(|(i, l)| Listed {
                number: i + 1,
                text: l.to_owned(),
                bad: bad.contains(&(i + 1)),
            })
            .collect();
        self
    }
}

/// The editor showing `text` as lbd's parser judges it with the other tab on disk.
fn checked_page(state: &AppState, current: &Current, tab: Tab, text: String, comment: String) -> (EditorPage, bool) {
    let (lb7, ssl) = state.paths.texts_with(Some((tab, &text)));
    let report = config::validate(&state.paths, &lb7, &ssl);
    let mut page = EditorPage::new(state, current, tab, text).with_report(tab, &report);
    page.comment = comment;
    (page, report.valid)
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(tab): Path<String>,
) -> Result<Response, UiError> {
    let tab = tab_of(&tab)?;
    let text = read_optional(state.paths.of(tab))
        .map_err(|e| UiError::internal(format!("{}: {e}", state.paths.of(tab).display())))?
        .unwrap_or_default();
    Ok(render(&EditorPage::new(&state, &current, tab, text)))
}

#[derive(Deserialize)]
pub struct TextForm {
    text: String,
    #[serde(default)]
    comment: String,
}

/// Browsers send CRLF line ends from a textarea; the files keep LF.
fn normalise(text: &str) -> String {
    let mut t = text.replace("\r\n", "\n");
    if !t.is_empty() && !t.ends_with('\n') {
        t.push('\n');
    }
    t
}

pub async fn validate(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(tab): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, UiError> {
    let tab = tab_of(&tab)?;
    let (page, valid) = checked_page(&state, &current, tab, normalise(&form.text), form.comment);
    let status = if valid { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, render(&page)).into_response())
}

/// Applies `text` to `tab` and renders the editor with the outcome.
async fn apply_text(state: &AppState, current: &Current, tab: Tab, text: String, comment: String) -> Response {
    let _one_at_a_time = state.apply_lock.lock().await;
    let outcome = config::apply(&*state.store, &state.paths, tab, &text, current.user(), &comment, now()).await;
    let (mut page, _) = checked_page(state, current, tab, text, comment);
    let status = match outcome {
        Ok(rev) => {
            state.audit(
                current.user(),
                current.source,
                format!("applied the {} tab (revision {})", tab.title(), rev.id),
            );
            page.result = format!("Applied as revision {}: lbd runs it now.", rev.id);
            page.result_ok = true;
            page.comment.clear();
            StatusCode::OK
        }
        Err(e) => {
            state.audit(
                current.user(),
                current.source,
                format!("apply of the {} tab failed: {e}", tab.title()),
            );
            page.result = format!("Not applied: {e}");
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    (status, render(&page)).into_response()
}

pub async fn apply(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(tab): Path<String>,
    Form(form): Form<TextForm>,
) -> Result<Response, UiError> {
    let tab = tab_of(&tab)?;
    let comment: String = form.comment.chars().take(200).collect();
    Ok(apply_text(&state, &current, tab, normalise(&form.text), comment).await)
}

struct Row {
    id: u64,
    time: String,
    user: String,
    comment: String,
    lines: usize,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    chrome: Chrome,
    tab: &'static str,
    title: &'static str,
    rows: Vec<Row>,
}

pub async fn history(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(tab): Path<String>,
) -> Result<Response, UiError> {
    let tab = tab_of(&tab)?;
    let rows = state
        .store
        .revisions(tab)?
        .into_iter()
        .map(|r| Row {
            id: r.id,
            time: format_time(r.time),
            user: r.user,
            comment: r.comment,
            lines: r.text.lines().count(),
        })
        .collect();
    Ok(render(&HistoryPage {
        chrome: Chrome::new(&state, Some(&current), tab.key()),
        tab: tab.key(),
        title: tab.title(),
        rows,
    }))
}

#[derive(Deserialize)]
pub struct DiffQuery {
    a: u64,
    b: u64,
}

pub(super) struct DiffLine {
    pub(super) tag: char,
    pub(super) text: String,
}

#[derive(Template)]
#[template(path = "diff.html")]
struct DiffPage {
    chrome: Chrome,
    tab: &'static str,
    title: &'static str,
    a: u64,
    b: u64,
    lines: Vec<DiffLine>,
}

pub async fn diff(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(tab): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, UiError> {
    let tab = tab_of(&tab)?;
    let get = |id: u64| -> Result<String, UiError> {
        state
            .store
            .revision(tab, id)?
            .map(|r| r.text)
            .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("No revision {id} in the {} tab.", tab.title())))
    };
    let (old, new) = (get(q.a)?, get(q.b)?);
    let lines = config::diff(&old, &new)
        .into_iter()
        .map(|(tag, text)| DiffLine { tag, text })
        .collect();
    Ok(render(&DiffPage {
        chrome: Chrome::new(&state, Some(&current), tab.key()),
        tab: tab.key(),
        title: tab.title(),
        a: q.a,
        b: q.b,
        lines,
    }))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    id: u64,
}

pub async fn rollback(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(tab): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Result<Response, UiError> {
    let tab = tab_of(&tab)?;
    let rev = state.store.revision(tab, form.id)?.ok_or_else(|| {
        UiError::new(
            StatusCode::NOT_FOUND,
            format!("No revision {} in the {} tab.", form.id, tab.title()),
        )
    })?;
    Ok(apply_text(&state, &current, tab, rev.text, format!("rollback to revision {}", rev.id)).await)
}
