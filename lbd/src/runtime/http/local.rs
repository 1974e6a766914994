//! Answers lbd makes itself: error pages (or the operator's `errorfile`),
//! redirects, `monitor-uri`, `http-request return`, and the stats page.

use std::collections::BTreeMap;
use std::path::PathBuf;

use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::body::LbBody;
use crate::config::model::{Redirect, RedirectKind};
use crate::runtime::acl_eval::HttpView;

pub fn reason(code: u16) -> &'static str {
    StatusCode::from_u16(code).ok().and_then(|s| s.canonical_reason()).unwrap_or("")
}

fn explanation(code: u16) -> &'static str {
    match code {
        200 => "Service ready.",
        400 => "The request could not be understood.",
        401 => "Credentials are required to see this content.",
        403 => "This request is not allowed.",
        404 => "Nothing was found at this address.",
        405 => "This method is not allowed here.",
        408 => "The request did not arrive in time.",
        410 => "This resource is gone for good.",
        413 => "The request is larger than allowed.",
        425 => "The request came too early.",
        429 => "Too many requests; try again later.",
        500 => "Something failed inside the load balancer.",
        501 => "This is not supported.",
        502 => "The server sent an invalid or incomplete response.",
        503 => "No server is available to answer this request.",
        504 => "The server did not answer in time.",
        _ => "",
    }
}

/// lbd's own HTML page for a status.
pub fn page(code: u16) -> String {
    format!(
        "<html><body><h1>{code} {}</h1>\n{}\n</body></html>\n",
        reason(code),
        explanation(code)
    )
}

/// Status, headers (with the length) and body of an answer.
type Parts = (StatusCode, HeaderMap, bytes::Bytes);

/// The parts of an answer lbd makes itself: its length, `no-cache`, its type.
fn own_parts(code: u16, content_type: &str, body: bytes::Bytes) -> Parts {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), h, body)
}

fn response((status, headers, body): Parts) -> Response<LbBody> {
    let mut r = Response::new(LbBody::full(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A response with a body lbd made.
pub fn simple(code: u16, content_type: &str, body: impl Into<bytes::Bytes>) -> Response<LbBody> {
    response(own_parts(code, content_type, body.into()))
}

/// An error response: the proxy's `errorfile` for the code if it has one, else lbd's page.
pub fn error(code: u16, errorfiles: &BTreeMap<u16, PathBuf>) -> Response<LbBody> {
    response(error_parts(code, errorfiles))
}

/// The same answer as bytes for the wire, saying the connection closes: for
/// answers written outside hyper's framing (a request hyper could not parse,
/// a request head that did not arrive in time).
pub fn error_raw(code: u16, errorfiles: &BTreeMap<u16, PathBuf>) -> Vec<u8> {
    let (status, headers, body) = error_parts(code, errorfiles);
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), reason(status.as_u16())).into_bytes();
    for (name, value) in &headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&body);
    out
}

/// The parts of an error answer: the errorfile's, else lbd's page.
fn error_parts(code: u16, errorfiles: &BTreeMap<u16, PathBuf>) -> Parts {
    errorfiles
        .get(&code)
        .and_then(|p| from_errorfile(p))
        .unwrap_or_else(|| own_parts(code, "text/html", page(code).into()))
}

/// Most headers an errorfile may hold.
const ERRORFILE_HEADERS: usize = 64;

/// An errorfile is a whole HTTP response as it goes on the wire; it is parsed,
/// so hyper frames it like any other answer. A broken file falls back to lbd's page.
fn from_errorfile(path: &std::path::Path) -> Option<Parts> {
    let raw = std::fs::read(path).ok()?;
    let mut headers = [httparse::EMPTY_HEADER; ERRORFILE_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let body = bytes::Bytes::copy_from_slice(&raw[head_len..]);
    let status = StatusCode::from_u16(parsed.code?).ok()?;
    let mut h = HeaderMap::new();
    for line in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(line.name.as_bytes()).ok()?;
        if name == http::header::CONTENT_LENGTH || name == http::header::CONNECTION {
            continue;
        }
        h.append(name, HeaderValue::from_bytes(line.value).ok()?);
    }
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Some((status, h, body))
}

/// A redirect as `redirect` and `http-request redirect` describe it.
pub fn redirect(r: &Redirect, view: &HttpView) -> Response<LbBody> {
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
        RedirectKind::Scheme => {
            let host = view.header("host").unwrap_or("");
            format!("{}://{host}{path}{query}", r.target)
        }
    };
    let mut resp = simple(r.code, "text/html", bytes::Bytes::new());
    let h = resp.headers_mut();
    h.remove(http::header::CONTENT_TYPE);
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(http::header::LOCATION, v);
    }
    if let Some(c) = &r.set_cookie {
        if let Ok(v) = HeaderValue::from_str(&format!("{c}; path=/")) {
            h.append(http::header::SET_COOKIE, v);
        }
    }
    if let Some(c) = &r.clear_cookie {
        if let Ok(v) = HeaderValue::from_str(&format!("{c}; path=/; max-age=0")) {
            h.append(http::header::SET_COOKIE, v);
        }
    }
    resp
}

/// `stats auth`: no pairs means open; otherwise HTTP Basic credentials must match one.
pub fn stats_authorized(pairs: &[(String, String)], header: Option<&str>) -> bool {
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

/// A `401` asking for Basic credentials in `realm`.
pub fn auth_required(realm: &str) -> Response<LbBody> {
    let mut r = simple(401, "text/html", page(401));
    let realm = realm.replace('"', "");
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    r
}
