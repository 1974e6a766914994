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
use crate::config::model::RedirectKind;

/// Most headers a request head may carry.
const MAX_HEADERS: usize = 100;

enum Head {
    Complete(Vec<(String, String)>, String, String, String),
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
                Ok(httparse::Status::Complete(_)) => {
                    let hs = req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    let method = req.method.unwrap_or("").to_owned();
                    let uri = req.path.unwrap_or("").to_owned();
                    let version = format!("HTTP/1.{}", req.version.unwrap_or(1));
                    return Head::Complete(hs, method, uri, version);
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
        408 => "Request Time-out",
        503 => "Service Unavailable",
        _ => "",
    }
}

async fn respond<C: AsyncWrite + Unpin>(client: &mut C, code: u16, extra: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {code} {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n{extra}connection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    let _ = client.write_all(head.as_bytes()).await;
    let _ = client.write_all(body.as_bytes()).await;
    let _ = client.shutdown().await;
}

fn page(code: u16, text: &str) -> String {
    format!("<html><body><h1>{code} {}</h1>\n{text}\n</body></html>\n", reason(code))
}

pub async fn run<C: ClientStream>(snapshot: Arc<Snapshot>, fe: Arc<FrontendRt>, mut client: C, acc: Accepted) {
    let limit = snapshot.global.tune_bufsize as usize;
    let timeout = fe
        .conf
        .timeouts
        .http_request
        .or(fe.conf.timeouts.client)
        .unwrap_or(Duration::from_secs(30));
    let mut buf = Vec::new();
    let (hs, method, uri, version) = match read_head(&mut client, &mut buf, limit, timeout).await {
        Head::Complete(hs, m, u, v) => (hs, m, u, v),
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
    for (r, cond, _) in &fe.conf.redirects {
        if !acl_eval::holds(cond.as_ref(), &ctx) {
            continue;
        }
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
        respond(&mut client, r.code, &extra, "").await;
        return;
    }
    let backend = session::choose_backend(&snapshot, &fe, &acc, Some(&view));
    // Boxed so a client still sending its request head holds only the head's state.
    Box::pin(session::run(snapshot, fe, client, acc, buf, backend)).await;
}
