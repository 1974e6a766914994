//! The router and its layers: security headers on every answer, the session
//! (anonymous until login, forced to the password page while the password must
//! change), and the CSRF check (same origin, and the session's token in every
//! form) on every POST. Request bodies are capped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{RateLimit, Session, Sessions};
use crate::config::Paths;
use crate::store::{AuditEntry, Store};
use crate::views;

/// The largest request body (configuration texts, certificate uploads).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The session cookie's name.
pub const COOKIE: &str = "webui_session";

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub sessions: Sessions,
    pub limiter: RateLimit,
    pub paths: Paths,
    /// The box's name in the header.
    pub box_name: String,
    /// What the start found (an interrupted apply), shown once to the next page.
    pub notice: std::sync::Mutex<Option<String>>,
    /// One apply at a time.
    pub apply_lock: tokio::sync::Mutex<()>,
    /// The syslog file holding lbd's log lines (default `/var/log/messages`).
    pub log_file: std::path::PathBuf,
    /// The Logs tab shows only lines holding this (lbd's syslog tag, `lbd`; empty: all).
    pub log_match: String,
    /// netcfg's file and program.
    pub network: NetworkPaths,
    /// The GUI's own certificate, replaceable while serving (None in handler tests).
    pub gui_cert: Option<Arc<crate::server::CertSwap>>,
    /// lbd's state for the header (`lbd up 3h · 12 sessions · config 1a2b3c4d`),
    /// refreshed every few seconds by the server; empty until known.
    pub lbd_state: std::sync::Mutex<String>,
    /// The file holding the generated first password, removed once changed.
    pub first_password_file: Option<std::path::PathBuf>,
    /// The Templates page's templates, and the files that did not load.
    pub templates: Vec<crate::deploy::Template>,
    pub template_errors: Vec<String>,
}

/// Where the network file is and how it is applied.
#[derive(Debug, Clone)]
pub struct NetworkPaths {
    /// netcfg's file, default `/config/network.toml`.
    pub file: std::path::PathBuf,
    /// The netcfg program, default `netcfg` (from PATH).
    pub netcfg: std::path::PathBuf,
    /// A folder of the GUI's own for candidate files (the state directory).
    pub scratch: std::path::PathBuf,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, paths: Paths, box_name: String) -> AppState {
        AppState {
            store,
            sessions: Sessions::new(Duration::from_secs(15 * 60)),
            limiter: RateLimit::new(5, Duration::from_secs(300)),
            paths,
            box_name,
            notice: std::sync::Mutex::new(None),
            apply_lock: tokio::sync::Mutex::new(()),
            log_file: "/var/log/messages".into(),
            log_match: String::new(),
            network: NetworkPaths {
                file: "/config/network.toml".into(),
                netcfg: "netcfg".into(),
                scratch: std::env::temp_dir(),
            },
            gui_cert: None,
            lbd_state: std::sync::Mutex::new(String::new()),
            first_password_file: None,
            templates: crate::deploy::load(None).0,
            template_errors: Vec::new(),
        }
    }

    pub fn audit(&self, user: &str, source: IpAddr, action: impl Into<String>) {
        let entry = AuditEntry {
            time: now(),
            user: user.to_owned(),
            source: source.to_string(),
            action: action.into(),
        };
        if let Err(e) = self.store.audit(&entry) {
            eprintln!("webui: audit log: {e}");
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The client's address, put in each request by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The request's session and its token, put in by the session layer.
#[derive(Debug, Clone)]
pub struct Current {
    pub token: String,
    pub session: Session,
    pub source: IpAddr,
}

impl Current {
    pub fn user(&self) -> &str {
        self.session.user.as_deref().unwrap_or("")
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/lb7") }))
        .route("/login", get(views::login::page).post(views::login::submit))
        .route("/logout", post(views::login::logout))
        .route("/password", get(views::login::password_page).post(views::login::password_submit))
        .route("/setup", get(views::setup::show))
        .route("/setup/users", post(views::setup::user_set))
        .route("/setup/users/delete", post(views::setup::user_delete))
        .route("/setup/network/plan", post(views::setup::network_plan))
        .route("/setup/network/apply", post(views::setup::network_apply))
        .route("/setup/cert", post(views::setup::gui_cert))
        .route("/setup/backup", post(views::setup::backup))
        .route("/setup/restore", post(views::setup::restore))
        .route("/stats", get(views::stats::page))
        .route("/stats/server", post(views::stats::server))
        .route("/logs", get(views::logs::page))
        .route("/templates", get(views::wizard::list))
        .route("/templates/{name}", get(views::wizard::show))
        .route("/templates/{name}/preview", post(views::wizard::preview))
        .route("/templates/{name}/apply", post(views::wizard::apply))
        .route("/ssl/certs", post(views::certs::upload))
        .route("/ssl/certs/delete", post(views::certs::delete))
        .route("/{tab}", get(views::editor::page))
        .route("/{tab}/validate", post(views::editor::validate))
        .route("/{tab}/apply", post(views::editor::apply))
        .route("/{tab}/history", get(views::editor::history))
        .route("/{tab}/diff", get(views::editor::diff))
        .route("/{tab}/rollback", post(views::editor::rollback))
        .route("/static/app.css", get(views::static_css))
        .route("/static/app.js", get(views::static_js))
        .layer(middleware::from_fn_with_state(state.clone(), csrf_layer))
        .layer(middleware::from_fn_with_state(state.clone(), session_layer))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(time_limit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A request (its body read included) gets this long: a client trickling a
/// body cannot hold a connection and its handler forever. An apply's reload
/// waits at most 30 s on lbd, well within it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn time_limit(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request took too long").into_response(),
    }
}

/// CSP and the other headers that keep the pages from being framed, sniffed or cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "cross-origin-opener-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    res
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
}

pub fn session_cookie(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"))
        .unwrap_or_else(|_| HeaderValue::from_static("webui_session=; Path=/"))
}

/// Pages anyone may see.
fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

async fn session_layer(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let source = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let path = req.uri().path().to_owned();
    // An automatic refresh (`?live=1`) is not activity: an open Stats tab
    // must not keep a session alive forever.
    let touch = !req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "live=1"));
    let existing = cookie_token(req.headers()).and_then(|t| state.sessions.get(&t, touch).map(|s| (t, s)));
    let stale = existing.is_none() && cookie_token(req.headers()).is_some();
    if req.method() == Method::POST && existing.is_none() {
        // A form from a session that ended (or never was): refuse, the page
        // holding it is stale. The login form too: its token belonged to a session.
        let msg = if stale {
            "Your session has expired. Log in again."
        } else {
            "This form needs a session: open the page again."
        };
        return (StatusCode::FORBIDDEN, views::message_page(&state, "Session expired", msg)).into_response();
    }
    // Sessions are made only for the login page (its form's CSRF token):
    // requests that do not log in cost no memory.
    let (token, session, new) = match existing {
        Some((t, s)) => (t, s, false),
        None if path == "/login" => match state.sessions.start() {
            Some((t, s)) => (t, s, true),
            None => return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions; try again later").into_response(),
        },
        None if is_public(&path) => return next.run(req).await,
        None => return Redirect::to("/login").into_response(),
    };
    if !is_public(&path) {
        if session.user.is_none() {
            return Redirect::to("/login").into_response();
        }
        if session.must_change && path != "/password" && path != "/logout" {
            return Redirect::to("/password").into_response();
        }
    }
    req.extensions_mut().insert(Current {
        token: token.clone(),
        session,
        source,
    });
    let mut res = next.run(req).await;
    if new && !res.headers().contains_key(header::SET_COOKIE) {
        res.headers_mut().append(header::SET_COOKIE, session_cookie(&token));
    }
    res
}

/// The origin the browser names (Origin, else Referer's scheme://host[:port]).
fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(o.to_owned());
    }
    let r = headers.get(header::REFERER).and_then(|v| v.to_str().ok())?;
    let rest = r.strip_prefix("https://")?;
    Some(format!("https://{}", rest.split('/').next().unwrap_or_default()))
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_decode(body).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
pub fn form_urlencoded_decode(body: &[u8]) -> Vec<(String, String)> {
    fn unescape(s: &[u8]) -> String {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.splitn(2, |b| *b == b'=');
            let k = unescape(it.next().unwrap_or_default());
            let v = unescape(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

async fn csrf_layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let refuse = |why: &str| {
        (
            StatusCode::FORBIDDEN,
            views::message_page(&state, "Refused", &format!("This request was refused: {why}.")),
        )
            .into_response()
    };
    // The browser says where the form came from: it must be this GUI.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match request_origin(req.headers()) {
        Some(o) if o == format!("https://{host}") => {}
        Some(o) => return refuse(&format!("it came from another site ({o})")),
        None => return refuse("the browser did not say where it came from (no Origin)"),
    }
    let Some(current) = req.extensions().get::<Current>().cloned() else {
        return refuse("no session");
    };
    // An upload (multipart) carries its token in the form's action URL; the
    // body then goes to the handler untouched.
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    if multipart {
        let token = req.uri().query().and_then(|q| form_field(q.as_bytes(), "csrf"));
        if !token.is_some_and(|t| crate::auth::same_token(&t, &current.session.csrf)) {
            eprintln!("webui: CSRF token missing or wrong from {} on {}", current.source, req.uri().path());
            return refuse("the form's security token is missing or out of date; open the page again");
        }
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let token = form_field(&bytes, "csrf");
    if !token.is_some_and(|t| crate::auth::same_token(&t, &current.session.csrf)) {
        eprintln!("webui: CSRF token missing or wrong from {} on {}", current.source, parts.uri.path());
        return refuse("the form's security token is missing or out of date; open the page again");
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_percent_and_bad_escapes() {
        let f = form_urlencoded_decode(b"a=1+2&b=%41%2Fz&c=%zz&d=&e");
        assert_eq!(
            f,
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "A/z".into()),
                ("c".into(), "%zz".into()),
                ("d".into(), "".into()),
                ("e".into(), "".into())
            ]
        );
        assert_eq!(form_field(b"x=1&csrf=abc", "csrf"), Some("abc".into()));
    }
}
