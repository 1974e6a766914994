//! Every route through `Router::oneshot`, with the session, CSRF and header
//! layers in place: login and the forced password change, refusals (another
//! origin, a missing token, a stale session, too many failed logins), the
//! editor's Validate, Apply without a reachable lbd, history, diff, rollback.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use webui::app::{router, AppState, ClientAddr};
use webui::auth::hash_password;
use webui::config::Paths;
use webui::store::{SledStore, Store, Tab, User};

const HOST: &str = "lb.test:4444";
const GOOD: &str = "frontend f\n  bind 127.0.0.1:18080\n  default_backend b\nbackend b\n  server s 127.0.0.1:1\n";
const BROKEN: &str = "frontend f\n  bind 127.0.0.1:18080\n  bnd oops\n  default_backend b\nbackend b\n  server s 127.0.0.1:1\n";

struct Gui {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
    app: Router,
    cookie: String,
}

impl Gui {
    fn new(from: &str) -> Gui {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("db")).unwrap());
        store
            .put_user(&User {
                name: "admin".into(),
                hash: hash_password("first-password"),
                must_change: true,
            })
            .unwrap();
        let paths = Paths {
            base: Vec::new(),
            lb7: dir.path().join("lb7.cfg"),
            ssl: dir.path().join("ssl.cfg"),
            socket: dir.path().join("absent.sock"),
            cert_store: dir.path().join("frontends"),
        };
        std::fs::write(&paths.lb7, GOOD).unwrap();
        std::fs::write(&paths.ssl, "").unwrap();
        let state = Arc::new(AppState::new(store, paths, "lb-test".into()));
        let peer: SocketAddr = format!("{from}:50000").parse().unwrap();
        let app = router(state.clone()).layer(axum::Extension(ClientAddr(peer)));
        Gui {
            dir,
            state,
            app,
            cookie: String::new(),
        }
    }

    async fn send(&mut self, req: Request<Body>) -> (StatusCode, Response<Body>, String) {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        if let Some(c) = res.headers().get(header::SET_COOKIE).and_then(|v| v.to_str().ok()) {
            self.cookie = c.split(';').next().unwrap_or_default().to_owned();
        }
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (status, Response::from_parts(parts, Body::empty()), text)
    }

    async fn get(&mut self, path: &str) -> (StatusCode, Response<Body>, String) {
        let req = Request::get(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, self.cookie.clone())
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    async fn post_from(&mut self, origin: Option<&str>, path: &str, form: &[(&str, &str)]) -> (StatusCode, Response<Body>, String) {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::COOKIE, self.cookie.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Response<Body>, String) {
        self.post_from(Some(&format!("https://{HOST}")), path, form).await
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let (_, _, html) = self.get(path).await;
        let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        html[at..].split('"').next().unwrap().to_owned()
    }

    async fn login(&mut self, password: &str) -> (StatusCode, Response<Body>, String) {
        let csrf = self.csrf("/login").await;
        self.post("/login", &[("csrf", &csrf), ("user", "admin"), ("password", password)])
            .await
    }

    /// Logs in and sets a new password, as the first login must.
    async fn ready(&mut self) {
        let (st, res, _) = self.login("first-password").await;
        assert_eq!(st, StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/password");
        let csrf = self.csrf("/password").await;
        let (st, res, body) = self
            .post(
                "/password",
                &[
                    ("csrf", &csrf),
                    ("current", "first-password"),
                    ("new", "a-better-one-42"),
                    ("again", "a-better-one-42"),
                ],
            )
            .await;
        assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(location(&res), "/lb7");
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn location(res: &Response<Body>) -> String {
    res.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn pages_need_a_login_and_carry_the_security_headers() {
    let mut g = Gui::new("10.1.0.1");
    let (st, res, _) = g.get("/lb7").await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    assert!(g.cookie.is_empty(), "no session for a request that does not log in");
    let (st, res, html) = g.get("/login").await;
    assert_eq!(st, StatusCode::OK);
    assert!(g.cookie.starts_with("webui_session="), "the login page's form needs one");
    assert!(html.contains("<form method=\"post\" action=\"/login\">"), "{html}");
    let h = res.headers();
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    let (st, res, _) = g.get("/static/app.css").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/css");
    // The cookie's attributes.
    let req = Request::get("/login").header(header::HOST, HOST).body(Body::empty()).unwrap();
    let res = g.app.clone().oneshot(req).await.unwrap();
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
}

#[tokio::test]
async fn the_first_login_must_change_the_password_before_anything_else() {
    let mut g = Gui::new("10.1.0.2");
    let before = g.cookie.clone();
    let (st, res, _) = g.login("first-password").await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/password");
    assert_ne!(g.cookie, before, "a new session token at login");
    let (st, res, _) = g.get("/lb7").await;
    assert_eq!(
        (st, location(&res).as_str()),
        (StatusCode::SEE_OTHER, "/password"),
        "forced to the password page"
    );
    let csrf = g.csrf("/password").await;
    let (st, _, html) = g
        .post(
            "/password",
            &[("csrf", &csrf), ("current", "first-password"), ("new", "short"), ("again", "short")],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(html.contains("at least 10 characters"), "{html}");
    let (st, _, html) = g
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", "wrong"),
                ("new", "a-better-one-42"),
                ("again", "a-better-one-42"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(html.contains("current password is wrong"), "{html}");
    let (st, _, _) = g
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", "first-password"),
                ("new", "a-better-one-42"),
                ("again", "a-better-one-42"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, _, html) = g.get("/lb7").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("<textarea name=\"text\""), "{html}");
    assert!(!g.state.store.user("admin").unwrap().unwrap().must_change);
    let audit: Vec<String> = g.state.store.audit_log(10).unwrap().into_iter().map(|a| a.action).collect();
    assert!(
        audit.contains(&"password changed".to_owned()) && audit.contains(&"login".to_owned()),
        "{audit:?}"
    );
}

#[tokio::test]
async fn cross_site_posts_missing_tokens_and_stale_sessions_are_refused() {
    let mut g = Gui::new("10.1.0.3");
    g.ready().await;
    let csrf = g.csrf("/lb7").await;
    // Another site's form, with the right token even: refused by origin.
    let (st, _, html) = g
        .post_from(Some("https://evil.example"), "/lb7/validate", &[("csrf", &csrf), ("text", GOOD)])
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(html.contains("another site"), "{html}");
    let (st, _, _) = g.post_from(None, "/lb7/validate", &[("csrf", &csrf), ("text", GOOD)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no Origin at all");
    let (st, _, _) = g.post("/lb7/validate", &[("text", GOOD)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no token");
    let (st, _, _) = g.post("/lb7/validate", &[("csrf", "0000"), ("text", GOOD)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "wrong token");
    let (st, _, _) = g.post("/lb7/validate", &[("csrf", &csrf), ("text", GOOD)]).await;
    assert_eq!(st, StatusCode::OK, "the same form from the GUI itself");
    // The session idles out: its forms are refused and pages go to the login.
    let token = g.cookie.trim_start_matches("webui_session=").to_owned();
    g.state.sessions.age(&token, std::time::Duration::from_secs(16 * 60));
    let (st, _, html) = g.post("/lb7/validate", &[("csrf", &csrf), ("text", GOOD)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(html.contains("session has expired"), "{html}");
    let (st, res, _) = g.get("/lb7").await;
    assert_eq!((st, location(&res).as_str()), (StatusCode::SEE_OTHER, "/login"));
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_source() {
    let mut g = Gui::new("10.1.0.4");
    for i in 0..5 {
        let (st, _, html) = g.login("wrong").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "attempt {i}");
        assert!(html.contains("Wrong user name or password"), "{html}");
    }
    let (st, _, html) = g.login("first-password").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "even the right password, from this source");
    assert!(html.contains("Too many failed logins"), "{html}");
    // Another source is not affected.
    let mut other = Gui::new("10.1.0.5");
    other.state = g.state.clone();
    let (st, _, _) = other.login("wrong").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let failed = g
        .state
        .store
        .audit_log(20)
        .unwrap()
        .iter()
        .filter(|a| a.action == "failed login")
        .count();
    assert!(failed >= 5, "failed logins are logged");
}

#[tokio::test]
async fn validate_lists_errors_by_line_and_highlights_them() {
    let mut g = Gui::new("10.1.0.6");
    g.ready().await;
    let csrf = g.csrf("/lb7").await;
    let (st, _, html) = g.post("/lb7/validate", &[("csrf", &csrf), ("text", BROKEN)]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Not valid"), "{html}");
    assert!(html.contains("<a href=\"#l3\">line 3</a>"), "{html}");
    assert!(html.contains("<tr id=\"l3\" class=\"bad\">"), "{html}");
    assert!(html.contains("bnd"), "{html}");
    let (st, _, html) = g
        .post("/lb7/validate", &[("csrf", &csrf), ("text", &GOOD.replace('\n', "\r\n"))])
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("id=\"verdict\">Valid"), "{html}");
    // Unknown tabs are not pages.
    let (st, _, _) = g.get("/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn apply_refuses_a_broken_config_and_puts_the_old_file_back_without_lbd() {
    let mut g = Gui::new("10.1.0.7");
    g.ready().await;
    let csrf = g.csrf("/lb7").await;
    let lb7 = g.dir.path().join("lb7.cfg");
    let (st, _, html) = g
        .post("/lb7/apply", &[("csrf", &csrf), ("text", BROKEN), ("comment", "typo")])
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Not applied") && html.contains("nothing was changed"), "{html}");
    assert_eq!(std::fs::read_to_string(&lb7).unwrap(), GOOD);
    // Valid, but lbd's socket is not there: the file is put back.
    let changed = GOOD.replace("127.0.0.1:1", "127.0.0.1:2");
    let (st, _, html) = g.post("/lb7/apply", &[("csrf", &csrf), ("text", &changed)]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("put back"), "{html}");
    assert_eq!(std::fs::read_to_string(&lb7).unwrap(), GOOD);
    assert!(g.state.store.revisions(Tab::Lb7).unwrap().is_empty());
    assert!(g.state.store.pending().unwrap().is_some(), "without lbd, settled at the next start");
}

#[tokio::test]
async fn history_diff_and_rollback() {
    let mut g = Gui::new("10.1.0.8");
    g.ready().await;
    let store = g.state.store.clone();
    let a = store.add_revision(Tab::Lb7, 1_795_651_200, "admin", "first", GOOD).unwrap();
    let b = store
        .add_revision(
            Tab::Lb7,
            1_795_737_700,
            "admin",
            "second <b>",
            &GOOD.replace("127.0.0.1:1", "127.0.0.1:2"),
        )
        .unwrap();
    let (st, _, html) = g.get("/lb7/history").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("2026-11-26 00:00:00") && html.contains("first"), "{html}");
    assert!(
        html.contains("second &#60;b&#62;") || html.contains("second &lt;b&gt;"),
        "escaped: {html}"
    );
    assert!(
        html.contains(&format!("id=\"rollback-{}\"", a.id)),
        "older revisions can be rolled back to: {html}"
    );
    let (st, _, html) = g.get(&format!("/lb7/diff?a={}&b={}", a.id, b.id)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        html.contains("<tr class=\"del\"><td class=\"n\">-</td><td><pre>  server s 127.0.0.1:1</pre>"),
        "{html}"
    );
    assert!(
        html.contains("<tr class=\"add\"><td class=\"n\">+</td><td><pre>  server s 127.0.0.1:2</pre>"),
        "{html}"
    );
    let (st, _, _) = g.get(&format!("/lb7/diff?a={}&b=999999", a.id)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Rollback is an apply: without lbd it is refused and nothing changes.
    let csrf = g.csrf("/lb7/history").await;
    let (st, _, html) = g.post("/lb7/rollback", &[("csrf", &csrf), ("id", &a.id.to_string())]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Not applied"), "{html}");
    assert_eq!(store.revisions(Tab::Lb7).unwrap().len(), 2);
}

/// A multipart body with text fields.
fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = "XBOUNDARYx42".to_owned();
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Gui {
    async fn upload(&mut self, csrf: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        self.post_multipart(&format!("/ssl/certs?csrf={csrf}"), fields).await
    }

    async fn post_multipart(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let (ct, body) = multipart(fields);
        let req = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, format!("https://{HOST}"))
            .header(header::COOKIE, self.cookie.clone())
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap();
        let (st, _, html) = self.send(req).await;
        (st, html)
    }
}

fn pair(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

#[tokio::test]
async fn the_certificate_store_checks_pairs_lists_them_and_refuses_to_delete_one_in_use() {
    let mut g = Gui::new("10.1.0.9");
    g.ready().await;
    let csrf = g.csrf("/ssl").await;
    let (crt, key) = pair("mail.xlc.local");
    let (_, other_key) = pair("other.example");
    // A key that is not the certificate's: refused, nothing written.
    let (st, html) = g
        .upload(&csrf, &[("name", "mail.xlc.local"), ("key_text", &other_key), ("crt_text", &crt)])
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("does not match"), "{html}");
    let store = g.dir.path().join("frontends");
    assert!(!store.join("mail.xlc.local").exists());
    // A name that would be a path: refused.
    let (st, html) = g.upload(&csrf, &[("name", "../etc"), ("key_text", &key), ("crt_text", &crt)]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{html}");
    // The token travels in the action URL: without it, refused.
    let (st, _) = g.upload("nope", &[("name", "x"), ("key_text", &key), ("crt_text", &crt)]).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // The pair: saved, listed with its names and expiry; the key 0600 and never shown.
    let (st, html) = g
        .upload(&csrf, &[("name", "mail.xlc.local"), ("key_text", &key), ("crt_text", &crt)])
        .await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("Certificate mail.xlc.local saved"), "{html}");
    assert!(html.contains("<title>SSL · lb-test</title>"), "{html}");
    assert_eq!(html.matches("id=\"certificates\"").count(), 1, "{html}");
    assert!(html.contains("id=\"cert-mail.xlc.local\""), "{html}");
    assert!(html.contains("days)"), "{html}");
    let key_line = key.lines().nth(1).unwrap();
    assert!(!html.contains(key_line), "the key is never shown");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(store.join("mail.xlc.local/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // In use by the SSL tab: not deleted.
    std::fs::write(
        g.dir.path().join("ssl.cfg"),
        format!(
            "[web]\naccept = 127.0.0.1:18443\nconnect = 127.0.0.1:18080\ncert = {}/mail.xlc.local/crt.pem\n",
            store.display()
        ),
    )
    .unwrap();
    let (st, _, html) = g.post("/ssl/certs/delete", &[("csrf", &csrf), ("name", "mail.xlc.local")]).await;
    assert_eq!(st, StatusCode::CONFLICT, "{html}");
    assert!(html.contains("in use"), "{html}");
    assert!(store.join("mail.xlc.local/crt.pem").exists());
    // No longer used: deleted.
    std::fs::write(g.dir.path().join("ssl.cfg"), "").unwrap();
    let (st, _, html) = g.post("/ssl/certs/delete", &[("csrf", &csrf), ("name", "mail.xlc.local")]).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(!store.join("mail.xlc.local").exists());
}

/// The workspace's netcfg binary (built before the tests by scripts/test).
fn netcfg_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_owned();
    let bin = dir.join("netcfg");
    assert!(bin.exists(), "{} is missing: cargo build --workspace --bins first", bin.display());
    bin
}

#[tokio::test]
async fn setup_adds_and_deletes_users_and_shows_netcfg_verdicts() {
    let mut g = Gui::new("10.1.0.10");
    g.ready().await;
    // The state needs netcfg's paths; the router reads them from the state.
    let state = {
        let mut s = webui::app::AppState::new(g.state.store.clone(), g.state.paths.clone(), "lb-test".into());
        s.network = webui::app::NetworkPaths {
            file: g.dir.path().join("network.toml"),
            netcfg: netcfg_bin(),
            scratch: g.dir.path().to_owned(),
        };
        Arc::new(s)
    };
    // Same sessions: log in again on the new state.
    g.state = state.clone();
    g.app = router(state.clone()).layer(axum::Extension(ClientAddr("10.1.0.10:50000".parse().unwrap())));
    g.cookie.clear();
    let (st, _, _) = g.login("a-better-one-42").await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let csrf = g.csrf("/setup").await;
    let (st, _, html) = g
        .post(
            "/setup/users",
            &[
                ("csrf", &csrf),
                ("name", "ops"),
                ("password", "ops-password-1"),
                ("again", "ops-password-1"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("Added user ops"), "{html}");
    assert!(
        state.store.user("ops").unwrap().unwrap().must_change,
        "chooses their own at next login"
    );
    let (st, _, _) = g
        .post(
            "/setup/users",
            &[
                ("csrf", &csrf),
                ("name", "bad name"),
                ("password", "ops-password-1"),
                ("again", "ops-password-1"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, html) = g.post("/setup/users/delete", &[("csrf", &csrf), ("name", "admin")]).await;
    assert_eq!(st, StatusCode::CONFLICT, "not yourself: {html}");
    let (st, _, _) = g.post("/setup/users/delete", &[("csrf", &csrf), ("name", "ops")]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(state.store.user("ops").unwrap().is_none());
    // netcfg judges the file: an interface this machine does not have is refused, nothing written.
    let text = "[[interface]]\nname = \"nosuchif9\"\naddresses = [\"10.9.9.9/24\"]\n";
    let (st, _, html) = g.post("/setup/network/apply", &[("csrf", &csrf), ("text", text)]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("nosuchif9") && html.contains("nothing was changed"), "{html}");
    assert!(!g.dir.path().join("network.toml").exists());
    let (st, _, html) = g.post("/setup/network/plan", &[("csrf", &csrf), ("text", "hostname = [")]).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    // The GUI certificate cannot be replaced without a running server's listener.
    let (st, html) = g
        .post_multipart(&format!("/setup/cert?csrf={csrf}"), &[("key_text", "x"), ("crt_text", "y")])
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
}

#[tokio::test]
async fn stats_logs_backup_and_logout_routes() {
    let mut g = Gui::new("10.1.0.11");
    // The Logs tab reads this file.
    let log = g.dir.path().join("messages");
    std::fs::write(&log, "Nov 26 lbd[1]: first\nNov 26 other: x\nNov 26 lbd[1]: second <b>\n").unwrap();
    let state = {
        let mut s = webui::app::AppState::new(g.state.store.clone(), g.state.paths.clone(), "lb-test".into());
        s.log_file = log.clone();
        Arc::new(s)
    };
    g.state = state.clone();
    g.app = router(state.clone()).layer(axum::Extension(ClientAddr("10.1.0.11:50000".parse().unwrap())));
    g.ready().await;
    let (st, _, html) = g.get("/logs?q=lbd").await;
    assert_eq!(st, StatusCode::OK);
    let second = html
        .find("second &#60;b&#62;")
        .or_else(|| html.find("second &lt;b&gt;"))
        .expect("escaped, shown");
    assert!(second < html.find("lbd[1]: first").unwrap(), "newest first: {html}");
    assert!(!html.contains("other: x"), "filtered: {html}");
    let (_, _, html) = g.get("/logs?live=1").await;
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    // Stats without a reachable lbd says so.
    let (st, _, html) = g.get("/stats").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("does not answer"), "{html}");
    let csrf = g.csrf("/stats").await;
    let (st, _, _) = g
        .post(
            "/stats/server",
            &[("csrf", &csrf), ("backend", "bk"), ("server", "s"), ("action", "disable")],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "a server lbd does not list");
    // A backup needs a passphrase of some length; then it is a sealed file.
    let (st, _, _) = g
        .post("/setup/backup", &[("csrf", &csrf), ("passphrase", "short"), ("again", "short")])
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, res, body) = g
        .post(
            "/setup/backup",
            &[("csrf", &csrf), ("passphrase", "a long passphrase"), ("again", "a long passphrase")],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(res.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().contains(".lbdbak"));
    assert!(body.starts_with("LBDBAK1") && !body.contains("frontend f"), "sealed");
    // A restore of something that is not a backup changes nothing.
    let (st, html) = g
        .post_multipart(
            &format!("/setup/restore?csrf={csrf}"),
            &[("archive", "junk"), ("passphrase", "whatever-pass")],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("not a backup"), "{html}");
    let (st, res, _) = g.get("/").await;
    assert_eq!((st, location(&res).as_str()), (StatusCode::SEE_OTHER, "/lb7"));
    let (st, _, js) = g.get("/static/app.js").await;
    assert_eq!(st, StatusCode::OK);
    assert!(js.contains("gutter"));
    // Logout ends the session: the next page is the login.
    let (st, res, _) = g.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((st, location(&res).as_str()), (StatusCode::SEE_OTHER, "/login"));
    let (st, res, _) = g.get("/lb7").await;
    assert_eq!((st, location(&res).as_str()), (StatusCode::SEE_OTHER, "/login"));
}

#[tokio::test]
async fn templates_list_check_values_preview_with_a_diff_and_apply_through_the_normal_apply() {
    let mut g = Gui::new("10.1.0.30");
    g.ready().await;
    let (st, _, html) = g.get("/templates").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        html.contains("/templates/exchange-2010") && html.contains("/templates/http-website"),
        "{html}"
    );
    let (st, _, html) = g.get("/templates/exchange-2010").await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("name=\"rpc_port\" id=\"rpc_port\" value=\"60000\""), "{html}");
    assert!(html.contains("CAS1 10.0.0.15\nCAS2 10.0.0.16"), "{html}");
    let (st, _, _) = g.get("/templates/nothing-such").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let csrf = g.csrf("/templates/exchange-2010").await;
    let base = [
        ("csrf", csrf.as_str()),
        ("variant", "nossl"),
        ("vip", "10.0.0.17"),
        ("servers", "CAS1 10.0.0.15\r\nCAS2 10.0.0.16\r\nCAS3 10.0.0.19"),
        ("fqdn", "mail.xlc.local"),
        ("ab_port", "60001"),
        ("services", "owa"),
        ("services", "rpc"),
        ("services", "imap"),
        ("cert", ""),
    ];
    // A port outside Microsoft's range: refused at its field, nothing written.
    let mut bad = base.to_vec();
    bad.push(("rpc_port", "1234"));
    let (st, _, html) = g.post("/templates/exchange-2010/preview", &bad).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"error-rpc_port\"") && html.contains("59531"), "{html}");
    // Good values: the texts, lbd's verdict, the diff with the live tab, the checklist.
    let mut good = base.to_vec();
    good.push(("rpc_port", "60100"));
    let (st, _, html) = g.post("/templates/exchange-2010/preview", &good).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(
        html.contains("lbd&#x27;s check: valid") || html.contains("lbd's check: valid"),
        "{html}"
    );
    assert!(html.contains("listen chk_CAS3"), "{html}");
    assert!(html.contains("id=\"diff-lb7\"") && html.contains("class=\"add\""), "{html}");
    assert!(html.contains("the decimal value 60100"), "{html}");
    assert!(html.contains("id=\"apply-form\""), "{html}");
    // Apply goes through the editor's apply: no lbd here, so the reload fails
    // and both tabs are put back as they were.
    let before = std::fs::read_to_string(g.dir.path().join("lb7.cfg")).unwrap();
    let (st, _, html) = g.post("/templates/exchange-2010/apply", &good).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("Not applied"), "{html}");
    assert_eq!(std::fs::read_to_string(g.dir.path().join("lb7.cfg")).unwrap(), before);
}
