//! One module per page. Pages render on the server (askama) and work without
//! JavaScript; `app.js` only adds line numbers beside the editors.

pub mod certs;
pub mod editor;
pub mod login;
pub mod logs;
pub mod netform;
pub mod setup;
pub mod stats;
pub mod wizard;

use std::sync::Arc;

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;

/// What every page's header shows.
pub struct Chrome {
    pub box_name: String,
    pub user: String,
    /// The CSRF token for the forms of the page (the logout button among them).
    pub csrf: String,
    /// The tab shown, for the tab bar.
    pub active: &'static str,
    /// A line from the start (an interrupted apply), shown once.
    pub notice: Option<String>,
    /// lbd's state, and whether it is up.
    pub state: String,
    pub up: bool,
}

impl Chrome {
    pub fn new(state: &AppState, current: Option<&crate::app::Current>, active: &'static str) -> Chrome {
        // The start's notice waits for someone logged in (a restart logs
        // everyone out, so the first page after it is often the login).
        let logged_in = current.is_some_and(|c| c.session.user.is_some());
        let notice = if logged_in {
            state.notice.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        } else {
            None
        };
        let lbd = state.lbd_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Chrome {
            up: lbd.starts_with("lbd up"),
            state: lbd,
            box_name: state.box_name.clone(),
            user: current.map(|c| c.user().to_owned()).unwrap_or_default(),
            csrf: current.map(|c| c.session.csrf.clone()).unwrap_or_default(),
            active,
            notice: if current.is_some_and(|c| c.session.user.is_some()) {
                notice
            } else {
                None
            },
        }
    }
}

/// The GUI's one error type: a message page with a status code.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
        }
    }

    pub fn internal(what: impl std::fmt::Display) -> UiError {
        eprintln!("webui: {what}");
        UiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("Internal error: {what}"))
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        UiError::internal(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let page = MessagePage {
            box_name: String::new(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

/// Renders a template; a template that fails to render becomes a plain 500.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            eprintln!("webui: template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub box_name: String,
    pub title: String,
    pub message: String,
}

/// A page with one message (refusals, expired sessions).
pub fn message_page(state: &Arc<AppState>, title: &str, message: &str) -> Response {
    render(&MessagePage {
        box_name: state.box_name.clone(),
        title: title.to_owned(),
        message: message.to_owned(),
    })
}

const CSS: &str = include_str!("../../static/app.css");
const JS: &str = include_str!("../../static/app.js");

pub async fn static_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "max-age=3600")], CSS).into_response()
}

pub async fn static_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "max-age=3600")],
        JS,
    )
        .into_response()
}

/// `YYYY-MM-DD HH:MM:SS` UTC for a Unix time.
pub fn format_time(secs: u64) -> String {
    let rem = secs % 86400;
    let (y, m, d) = lbd::runtime::log::civil((secs / 86400) as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_dates() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_795_651_200), "2026-11-26 00:00:00");
        assert_eq!(super::format_time(951_782_400 + 3661), "2000-02-29 01:01:01");
    }
}
