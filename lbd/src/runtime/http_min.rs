//! The small HTTP front of `mode http` frontends until the full HTTP path lands:
//! it reads one request head (bounded by `tune.bufsize` and `timeout
//! http-request`), answers `monitor-uri` and `redirect` rules itself, and
//! otherwise hands the connection, with the bytes already read, to the TCP relay.
//! Parsing is httparse's, never hand-written.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::acl_eval::{self, HttpView, SampleCtx};
use super::session::{self, Accepted, ClientStream};
use super::snapshot::{FrontendRt, Snapshot};
use crate::config::model::{HttpAction, RedirectKind};

/// Most headers a request head may carry.
const MAX_HEADERS: usize = 100;

enum Head {
    Complete(usize, Vec<(String, String)>, String, String, String),
    TooLarge,
    Bad,
    Closed,
    Timeout,
}

async fn read_head<C: AsyncRead + Unpin>(client: &mut C, buf: &mut Vec<u8>, limit: usize, timeout: Duration) -> Head {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 1024];
    loop {
        {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let hs = req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    let method = req.method.unwrap_or("").to_owned();
                    let uri = req.path.unwrap_or("").to_owned();
                    let version = format!("HTTP/1.{}", req.version.unwrap_or(1));
                    return Head::Complete(head_len, hs, method, uri, version);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Head::Bad,
            }
        }
        if buf.len() >= limit {
            return Head::TooLarge;
        }
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Err(_) => return Head::Timeout,
            Ok(Err(_)) | Ok(Ok(0)) => return Head::Closed,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n.min(limit.saturating_sub(buf.len()).max(1))]),
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Time-out",
        503 => "Service Unavailable",
        _ => "",
    }
}

async fn respond<C: AsyncWrite + Unpin>(client: &mut C, code: u16, extra: &str, body: &str) {
    respond_typed(client, code, "text/html", extra, body).await;
}

async fn respond_typed<C: AsyncWrite + Unpin>(client: &mut C, code: u16, content_type: &str, extra: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {code} {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: {content_type}\r\n{extra}connection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    let _ = client.write_all(head.as_bytes()).await;
    let _ = client.write_all(body.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// Largest form body the stats page accepts.
const MAX_FORM: usize = 64 * 1024;

/// Reads a small request body of `length` bytes, `already` of which came with the head.
async fn read_body<C: AsyncRead + Unpin>(client: &mut C, already: &[u8], length: usize, timeout: Duration) -> Option<Vec<u8>> {
    if length > MAX_FORM {
        return None;
    }
    let mut body = already[..already.len().min(length)].to_vec();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 1024];
    while body.len() < length {
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n.min(length - body.len())]),
            _ => return None,
        }
    }
    Some(body)
}

/// The status and the `location` (and cookie) headers of a redirect.
fn redirect_response(r: &crate::config::model::Redirect, view: &HttpView) -> (u16, String) {
    let query = if r.drop_query {
        String::new()
    } else {
        view.query().map(|q| format!("?{q}")).unwrap_or_default()
    };
    let mut path = view.path().to_owned();
    if r.append_slash && !path.ends_with('/') {
        path.push('/');
    }
    let location = match r.kind {
        RedirectKind::Location => r.target.clone(),
        RedirectKind::Prefix => {
            let prefix = if r.target == "/" { "" } else { r.target.as_str() };
            format!("{prefix}{path}{query}")
        }
        RedirectKind::Scheme => format!("{}://{}{path}{query}", r.target, view.header("host").unwrap_or("")),
    };
    let mut extra = format!("location: {location}\r\n");
    if let Some(c) = &r.set_cookie {
        extra.push_str(&format!("set-cookie: {c}; path=/\r\n"));
    }
    if let Some(c) = &r.clear_cookie {
        extra.push_str(&format!("set-cookie: {c}; path=/; max-age=0\r\n"));
    }
    (r.code, extra)
}

/// `stats auth`: no pairs means open; otherwise HTTP Basic credentials must match one.
fn stats_authorized(pairs: &[(String, String)], header: Option<&str>) -> bool {
    if pairs.is_empty() {
        return true;
    }
    use base64::Engine;
    let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))) else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&raw);
    let Some((u, p)) = text.split_once(':') else { return false };
    pairs.iter().any(|(pu, pp)| pu == u && pp == p)
}

fn page(code: u16, text: &str) -> String {
    format!("<html><body><h1>{code} {}</h1>\n{text}\n</body></html>\n", reason(code))
}

/// Serves one connection; `preread` holds bytes already read (after a PROXY header).
pub async fn run<C: ClientStream>(snapshot: Arc<Snapshot>, fe: Arc<FrontendRt>, mut client: C, acc: Accepted, preread: Vec<u8>) {
    let limit = snapshot.global.tune_bufsize as usize;
    let timeout = fe
        .conf
        .timeouts
        .http_request
        .or(fe.conf.timeouts.client)
        .unwrap_or(Duration::from_secs(30));
    let mut buf = preread;
    let (head_len, hs, method, uri, version) = match read_head(&mut client, &mut buf, limit, timeout).await {
        Head::Complete(n, hs, m, u, v) => (n, hs, m, u, v),
        Head::TooLarge | Head::Bad => {
            respond(&mut client, 400, "", &page(400, "Your browser sent an invalid request.")).await;
            return;
        }
        Head::Timeout => {
            respond(
                &mut client,
                408,
                "",
                &page(408, "Your browser didn't send a complete request in time."),
            )
            .await;
            return;
        }
        Head::Closed => return,
    };
    let view = HttpView {
        method: &method,
        uri: &uri,
        version: &version,
        headers: &hs,
    };
    let ctx = SampleCtx {
        src: acc.src,
        dst: acc.dst,
        snapshot: &snapshot,
        frontend: &fe,
        backend: None,
        http: Some(&view),
    };
    if let Some(m) = &fe.conf.monitor_uri {
        if view.path() == m {
            let failing = fe.conf.monitor_fail.iter().any(|c| acl_eval::eval(c, &ctx));
            if failing {
                respond(&mut client, 503, "", &page(503, "No server is available to handle this request.")).await;
            } else {
                respond(&mut client, 200, "", &page(200, "Service ready.")).await;
            }
            return;
        }
    }
    // http-request rules, in order: what lbd answers itself stops here.
    for rule in &fe.conf.http_request {
        if !acl_eval::holds(rule.cond.as_ref(), &ctx) {
            continue;
        }
        match &rule.action {
            HttpAction::Allow => break,
            HttpAction::UseService(_) => {
                let body = super::stats_page::prometheus(&snapshot);
                respond_typed(&mut client, 200, "text/plain; version=0.0.4", "", &body).await;
                return;
            }
            HttpAction::Deny { status } | HttpAction::Tarpit { status } => {
                respond(
                    &mut client,
                    *status,
                    "",
                    &page(*status, "Request forbidden by administrative rules."),
                )
                .await;
                return;
            }
            HttpAction::Return {
                status,
                content_type,
                body,
            } => {
                let ct = content_type.as_deref().unwrap_or("text/plain");
                respond_typed(&mut client, *status, ct, "", body.as_deref().unwrap_or("")).await;
                return;
            }
            HttpAction::Redirect(r) => {
                let (code, extra) = redirect_response(r, &view);
                respond(&mut client, code, &extra, "").await;
                return;
            }
            // The other actions act on proxied requests: the full HTTP path applies them.
            _ => {}
        }
    }
    if fe.conf.stats_enabled {
        let stats_uri = fe.conf.stats_uri.as_deref().unwrap_or("/haproxy?stats");
        if view.uri.starts_with(stats_uri) {
            if !stats_authorized(&fe.conf.stats_auth, view.header("authorization")) {
                let realm = fe.conf.stats_realm.as_deref().unwrap_or("HAProxy Statistics");
                let extra = format!("www-authenticate: Basic realm=\"{realm}\"\r\n");
                respond(
                    &mut client,
                    401,
                    &extra,
                    &page(401, "You need a valid user and password to access this content."),
                )
                .await;
                return;
            }
            let admin = fe.conf.stats_admin.iter().any(|c| acl_eval::eval(c, &ctx));
            if view.method == "POST" {
                if !admin {
                    respond(&mut client, 403, "", &page(403, "Request forbidden by administrative rules.")).await;
                    return;
                }
                let length = view
                    .header("content-length")
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let Some(body) = read_body(&mut client, &buf[head_len..], length, timeout).await else {
                    respond(&mut client, 400, "", &page(400, "Your browser sent an invalid request.")).await;
                    return;
                };
                let st = match super::stats_page::admin_action(&snapshot, &String::from_utf8_lossy(&body)) {
                    Ok(()) => "DONE",
                    Err(_) => "ERR",
                };
                respond(&mut client, 303, &format!("location: {stats_uri};st={st}\r\n"), "").await;
                return;
            }
            if view.uri[stats_uri.len()..].contains(";csv") {
                respond_typed(&mut client, 200, "text/plain", "", &super::api::show_stat(&snapshot)).await;
            } else {
                let refresh = fe
                    .conf
                    .stats_refresh
                    .map(|r| format!("refresh: {}\r\n", r.as_secs().max(1)))
                    .unwrap_or_default();
                respond_typed(&mut client, 200, "text/html", &refresh, &super::stats_page::html(&snapshot, admin)).await;
            }
            return;
        }
    }
    for (r, cond, _) in &fe.conf.redirects {
        if !acl_eval::holds(cond.as_ref(), &ctx) {
            continue;
        }
        let (code, extra) = redirect_response(r, &view);
        respond(&mut client, code, &extra, "").await;
        return;
    }
    let backend = session::choose_backend(&snapshot, &fe, &acc, Some(&view));
    // Boxed so a client still sending its request head holds only the head's state.
    Box::pin(session::run(snapshot, fe, client, acc, buf, backend)).await;
}
