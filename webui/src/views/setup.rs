//! Setup: the network (netcfg's file, as a short form for the host name and
//! DNS and as raw TOML, with `netcfg plan` shown before Apply), the users and
//! their passwords, and the GUI's own certificate.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Form, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{render, Chrome, UiError};
use crate::app::{AppState, Current};
use crate::auth::{hash_password, password_problem};
use crate::files::{read_optional, write_atomic};
use crate::store::User;

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    users: Vec<String>,
    me: String,
    network: String,
    hostname: String,
    dns_servers: String,
    dns_search: String,
    /// `netcfg plan` or `check` output for the text shown.
    plan: String,
    message: String,
    ok: bool,
    /// The GUI certificate's subject and expiry.
    gui_cert: String,
    /// The newest audit entries: time, user, source, action.
    audit: Vec<(String, String, String, String)>,
    /// The network file's lists as form rows.
    sets: Vec<super::netform::RowSet>,
}

/// The network file's text, its host name and DNS lists (for the form).
fn network_fields(text: &str) -> (String, String, String) {
    let doc: toml_edit::DocumentMut = text.parse().unwrap_or_default();
    let hostname = doc.get("hostname").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let list = |key: &str| {
        doc.get("dns")
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    (hostname, list("servers"), list("search"))
}

fn page(state: &AppState, current: &Current, network: Option<String>, plan: String, message: String, ok: bool) -> SetupPage {
    let network = network.unwrap_or_else(|| read_optional(&state.network.file).ok().flatten().unwrap_or_default());
    let (hostname, dns_servers, dns_search) = network_fields(&network);
    let users = state
        .store
        .users()
        .map(|u| u.into_iter().map(|u| u.name).collect())
        .unwrap_or_default();
    let gui_cert = state
        .gui_cert
        .as_ref()
        .and_then(|c| c.describe())
        .unwrap_or_else(|| "self-signed at first start".into());
    let audit = state
        .store
        .audit_log(50)
        .unwrap_or_default()
        .into_iter()
        .map(|a| (crate::views::format_time(a.time), a.user, a.source, a.action))
        .collect();
    SetupPage {
        sets: super::netform::rows(&network),
        audit,
        chrome: Chrome::new(state, Some(current), "setup"),
        users,
        me: current.user().to_owned(),
        network,
        hostname,
        dns_servers,
        dns_search,
        plan,
        message,
        ok,
        gui_cert,
    }
}

/// The page with a success line.
fn done(state: &AppState, current: &Current, message: String) -> Response {
    answer(StatusCode::OK, page(state, current, None, String::new(), message, true))
}

fn answer(status: StatusCode, p: SetupPage) -> Response {
    (status, render(&p)).into_response()
}

pub async fn show(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>) -> Response {
    render(&page(&state, &current, None, String::new(), String::new(), false))
}

// ---- users ----------------------------------------------------------------

#[derive(Deserialize)]
pub struct UserForm {
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

/// A user name: letters, digits, `.`, `-`, `_`, 1 to 32.
fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err("a user name has 1 to 32 letters, digits, '.', '-' or '_'".into())
    }
}

/// Adds a user, or sets another user's password; either way the user must
/// choose their own password at their next login.
pub async fn user_set(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Form(f): Form<UserForm>,
) -> Result<Response, UiError> {
    let fail = |m: String| answer(StatusCode::BAD_REQUEST, page(&state, &current, None, String::new(), m, false));
    if let Err(e) = check_user_name(&f.name) {
        return Ok(fail(e));
    }
    if f.name == current.user() {
        return Ok(fail(
            "Change your own password on the password page (it asks for the current one).".into(),
        ));
    }
    if f.password != f.again {
        return Ok(fail("The two passwords differ.".into()));
    }
    if let Some(why) = password_problem(&f.name, &f.password) {
        return Ok(fail(format!("Not a usable password: {why}.")));
    }
    let existed = state.store.user(&f.name)?.is_some();
    state.store.put_user(&User {
        name: f.name.clone(),
        hash: hash_password(&f.password),
        must_change: true,
    })?;
    // Whoever was logged in as that user logs in again, with the new password.
    state.sessions.end_user(&f.name);
    let what = if existed { "password set for" } else { "added user" };
    state.audit(current.user(), current.source, format!("{what} {}", f.name));
    Ok(done(&state, &current, format!("{} {}.", capital(what), f.name)))
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

pub async fn user_delete(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Form(f): Form<UserForm>,
) -> Result<Response, UiError> {
    let fail = |m: &str| {
        answer(
            StatusCode::CONFLICT,
            page(&state, &current, None, String::new(), m.to_owned(), false),
        )
    };
    if f.name == current.user() {
        return Ok(fail("You cannot delete yourself."));
    }
    let users = state.store.users()?;
    if !users.iter().any(|u| u.name == f.name) {
        return Ok(fail("No such user."));
    }
    if users.len() <= 1 {
        return Ok(fail("The last user stays."));
    }
    state.store.delete_user(&f.name)?;
    state.sessions.end_user(&f.name);
    state.audit(current.user(), current.source, format!("deleted user {}", f.name));
    Ok(answer(
        StatusCode::OK,
        page(&state, &current, None, String::new(), format!("Deleted user {}.", f.name), true),
    ))
}

// ---- network --------------------------------------------------------------

#[derive(Deserialize)]
pub struct NetworkForm {
    #[serde(default)]
    text: String,
    /// Which part was submitted: `form` (the fields and rows, written into
    /// the text) or `toml` (the text as it is).
    #[serde(default)]
    from: Option<String>,
    /// The rows of the interfaces, VIPs and VRRP instances (`vrrp_priority_0`...).
    #[serde(flatten)]
    rows: std::collections::HashMap<String, String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    dns_servers: Option<String>,
    #[serde(default)]
    dns_search: Option<String>,
}

/// The TOML to act on: the raw text, with the form's host name and DNS
/// fields written into it when the form sent them.
fn network_text(f: &NetworkForm) -> Result<String, String> {
    let text = f.text.replace("\r\n", "\n");
    let form = f.from.as_deref() == Some("form");
    if !form || (f.hostname.is_none() && f.dns_servers.is_none() && f.dns_search.is_none() && f.rows.is_empty()) {
        return Ok(text);
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("the network file is not TOML: {e}"))?;
    if let Some(h) = &f.hostname {
        let h = h.trim();
        if h.is_empty() {
            doc.remove("hostname");
        } else {
            doc["hostname"] = toml_edit::value(h);
        }
    }
    let words = |s: &str| {
        let mut a = toml_edit::Array::new();
        for w in s.split([' ', ',', '\n']).map(str::trim).filter(|w| !w.is_empty()) {
            a.push(w);
        }
        a
    };
    // An empty field leaves the file's DNS as it is unless the file has a
    // [dns] table to edit: writing an empty one would make netcfg clear
    // /etc/resolv.conf.
    for (key, val) in [("servers", &f.dns_servers), ("search", &f.dns_search)] {
        let Some(v) = val else { continue };
        if v.trim().is_empty() {
            if let Some(t) = doc.get_mut("dns").and_then(|d| d.as_table_mut()) {
                t.remove(key);
            }
        } else {
            if !doc.contains_table("dns") {
                doc["dns"] = toml_edit::table();
            }
            doc["dns"][key] = toml_edit::value(words(v));
        }
    }
    super::netform::apply(&mut doc, &f.rows)?;
    Ok(doc.to_string())
}

/// Runs `netcfg -c FILE VERB`; its output and whether it succeeded.
async fn netcfg(state: &AppState, file: &std::path::Path, verb: &str) -> (bool, String) {
    let out = tokio::process::Command::new(&state.network.netcfg)
        .arg("-c")
        .arg(file)
        .arg(verb)
        .output()
        .await;
    match out {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
                .trim()
                .to_owned(),
        ),
        Err(e) => (false, format!("cannot run {}: {e}", state.network.netcfg.display())),
    }
}

/// The candidate text in a file of its own beside the state (netcfg reads files).
/// A candidate file of this request's own (removed once netcfg has read it).
fn candidate_path(state: &AppState) -> std::path::PathBuf {
    state
        .network
        .scratch
        .join(format!("network.candidate-{}.toml", crate::auth::random_token(6)))
}

/// The text to act on, written to a candidate file beside the state (netcfg
/// reads files); or the page refusing a form whose text is not TOML.
#[allow(clippy::type_complexity)]
fn prepare(state: &AppState, current: &Current, f: NetworkForm) -> Result<Result<(String, std::path::PathBuf), Response>, UiError> {
    let text = match network_text(&f) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Err(answer(
                StatusCode::BAD_REQUEST,
                page(state, current, Some(f.text), String::new(), e, false),
            )))
        }
    };
    let path = candidate_path(state);
    write_atomic(&path, text.as_bytes(), 0o600).map_err(|e| UiError::internal(format!("{}: {e}", path.display())))?;
    Ok(Ok((text, path)))
}

pub async fn network_plan(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Form(f): Form<NetworkForm>,
) -> Result<Response, UiError> {
    let (text, file) = match prepare(&state, &current, f)? {
        Ok(x) => x,
        Err(refused) => return Ok(refused),
    };
    let (ok, out) = netcfg(&state, &file, "plan").await;
    let _ = std::fs::remove_file(&file);
    let status = if ok { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let msg = if ok {
        "The plan: what Apply would change."
    } else {
        "netcfg refuses this file; nothing was changed."
    };
    Ok(answer(status, page(&state, &current, Some(text), out, msg.into(), ok)))
}

pub async fn network_apply(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Form(f): Form<NetworkForm>,
) -> Result<Response, UiError> {
    let _one_at_a_time = state.apply_lock.lock().await;
    let (text, file) = match prepare(&state, &current, f)? {
        Ok(x) => x,
        Err(refused) => return Ok(refused),
    };
    let (ok, out) = netcfg(&state, &file, "check").await;
    let _ = std::fs::remove_file(&file);
    if !ok {
        return Ok(answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                &state,
                &current,
                Some(text),
                out,
                "netcfg refuses this file; nothing was changed.".into(),
                false,
            ),
        ));
    }
    let live = &state.network.file;
    let old = read_optional(live).map_err(|e| UiError::internal(format!("{}: {e}", live.display())))?;
    write_atomic(live, text.as_bytes(), 0o644).map_err(|e| UiError::internal(format!("{}: {e}", live.display())))?;
    let (ok, out) = netcfg(&state, live, "apply").await;
    if ok {
        state.audit(current.user(), current.source, "applied the network file");
        return Ok(answer(
            StatusCode::OK,
            page(&state, &current, Some(text), out, "Network applied.".into(), true),
        ));
    }
    // netcfg undid its own steps; the file goes back too.
    let restored = match &old {
        Some(t) => write_atomic(live, t.as_bytes(), 0o644),
        None => crate::files::remove_durably(live),
    };
    let msg = match restored {
        Ok(()) => "netcfg could not apply the file; it undid its steps and the previous file is back.".to_owned(),
        Err(e) => format!("netcfg could not apply the file, and putting the previous file back failed: {e}"),
    };
    state.audit(current.user(), current.source, format!("network apply failed: {out}"));
    Ok(answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        page(&state, &current, Some(text), out, msg, false),
    ))
}

// ---- backup and restore ---------------------------------------------------

#[derive(Deserialize)]
pub struct BackupForm {
    passphrase: String,
    again: String,
}

/// One sealed `.tar.gz` of the box's configuration, to download.
pub async fn backup(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Form(f): Form<BackupForm>,
) -> Result<Response, UiError> {
    let fail = |m: &str| {
        answer(
            StatusCode::BAD_REQUEST,
            page(&state, &current, None, String::new(), m.to_owned(), false),
        )
    };
    if f.passphrase != f.again {
        return Ok(fail("The two passphrases differ."));
    }
    if f.passphrase.chars().count() < 10 {
        return Ok(fail("A backup passphrase has at least 10 characters."));
    }
    let p = &state.paths;
    let archive = crate::backup::make(&*state.store, &p.lb7, &p.ssl, &state.network.file, &p.cert_store).map_err(UiError::internal)?;
    let passphrase = f.passphrase.clone();
    let sealed = tokio::task::spawn_blocking(move || crate::backup::seal(archive, &passphrase))
        .await
        .map_err(UiError::internal)?
        .map_err(UiError::internal)?;
    state.audit(current.user(), current.source, "downloaded a backup");
    // The box's name goes into a header: letters, digits, '-', '_' only.
    let safe: String = state
        .box_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let stamp = crate::views::format_time(crate::app::now()).replace([' ', ':'], "-");
    let name = format!("{}-backup-{stamp}.lbdbak", if safe.is_empty() { "lbd" } else { &safe });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        sealed,
    )
        .into_response())
}

/// Restores an archive made by Backup: certificates, then both tabs in one
/// validated apply (everything put back if lbd refuses), then the network
/// file through netcfg, then the users.
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    mut mp: Multipart,
) -> Result<Response, UiError> {
    let (mut archive, mut passphrase) = (Vec::new(), String::new());
    while let Ok(Some(field)) = mp.next_field().await {
        match field.name() {
            Some("archive") => archive = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            Some("passphrase") => passphrase = field.text().await.unwrap_or_default(),
            _ => {}
        }
    }
    let fail = |m: String| {
        answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&state, &current, None, String::new(), m, false),
        )
    };
    let opened = tokio::task::spawn_blocking(move || crate::backup::open(&archive, &passphrase))
        .await
        .map_err(UiError::internal)?;
    let plain = match opened {
        Ok(p) => p,
        Err(e) => return Ok(fail(format!("Not restored: {e}"))),
    };
    let contents = match crate::backup::read(&plain) {
        Ok(c) => c,
        Err(e) => return Ok(fail(format!("Not restored: {e}"))),
    };
    let _one_at_a_time = state.apply_lock.lock().await;
    let store_dir = &state.paths.cert_store;
    let mut saved = Vec::new();
    for (name, crt, key) in &contents.certs {
        match crate::certs::save(store_dir, name, crt, key) {
            Ok((_, previous)) => saved.push((name.clone(), previous)),
            Err(e) => {
                for (n, prev) in saved.iter().rev() {
                    let _ = crate::certs::restore(store_dir, n, prev);
                }
                return Ok(fail(format!("Not restored: certificate {name}: {e}")));
            }
        }
    }
    let mut changes = Vec::new();
    if let Some(t) = &contents.lb7 {
        changes.push((crate::store::Tab::Lb7, t.clone()));
    }
    if let Some(t) = &contents.ssl {
        changes.push((crate::store::Tab::Ssl, t.clone()));
    }
    let applied = if changes.is_empty() {
        // No tab in the archive: the certificates alone changed; lbd re-reads them.
        crate::config::reload_and_confirm(&state.paths).await.map(|()| Vec::new())
    } else {
        let now = crate::app::now();
        crate::config::apply_many(&*state.store, &state.paths, &changes, current.user(), "restored from a backup", now).await
    };
    if let Err(e) = applied {
        for (n, prev) in saved.iter().rev() {
            let _ = crate::certs::restore(store_dir, n, prev);
        }
        if changes.is_empty() {
            let _ = crate::config::reload_and_confirm(&state.paths).await;
        }
        return Ok(fail(format!("Not restored: {e}")));
    }
    let mut notes = vec![format!("{} certificate(s) and the configuration restored", contents.certs.len())];
    if let Some(net) = &contents.network {
        let file = candidate_path(&state);
        write_atomic(&file, net.as_bytes(), 0o600).map_err(|e| UiError::internal(format!("{}: {e}", file.display())))?;
        let (ok, out) = netcfg(&state, &file, "check").await;
        let _ = std::fs::remove_file(&file);
        if ok {
            let live = &state.network.file;
            let old = read_optional(live).ok().flatten();
            write_atomic(live, net.as_bytes(), 0o644).map_err(|e| UiError::internal(format!("{}: {e}", live.display())))?;
            let (ok, out) = netcfg(&state, live, "apply").await;
            if ok {
                notes.push("the network applied".into());
            } else {
                // netcfg undid its steps; the previous file goes back too.
                let _ = match &old {
                    Some(t) => write_atomic(live, t.as_bytes(), 0o644),
                    None => crate::files::remove_durably(live),
                };
                notes.push(format!(
                    "the network file not restored (netcfg could not apply it; the previous one is back): {out}"
                ));
            }
        } else {
            notes.push(format!("the network file not restored (netcfg refuses it here: {out})"));
        }
    }
    if let Some(gui) = &contents.gui {
        let mut n = 0;
        for u in gui
            .users
            .iter()
            .filter(|u| u.name != current.user() && check_user_name(&u.name).is_ok())
        {
            state.store.put_user(u)?;
            state.sessions.end_user(&u.name);
            n += 1;
        }
        notes.push(format!("{n} user(s)"));
    }
    state.audit(current.user(), current.source, format!("restored a backup: {}", notes.join("; ")));
    Ok(done(&state, &current, format!("Restored: {}.", notes.join("; "))))
}

// ---- the GUI's certificate ------------------------------------------------

pub async fn gui_cert(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    mut mp: Multipart,
) -> Result<Response, UiError> {
    let (mut key, mut crt) = (Vec::new(), Vec::new());
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        match name.as_str() {
            "key_file" | "key_text" if !data.iter().all(u8::is_ascii_whitespace) => key = data,
            "crt_file" | "crt_text" if !data.iter().all(u8::is_ascii_whitespace) => crt = data,
            _ => {}
        }
    }
    let fail = |m: String| {
        answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&state, &current, None, String::new(), m, false),
        )
    };
    let Some(swap) = state.gui_cert.clone() else {
        return Ok(fail("This GUI was started without a certificate it can replace.".into()));
    };
    match swap.replace(&crt, &key) {
        Ok(desc) => {
            state.audit(current.user(), current.source, format!("replaced the GUI certificate ({desc})"));
            Ok(answer(
                StatusCode::OK,
                page(&state, &current, None, String::new(), format!("The GUI now serves {desc}."), true),
            ))
        }
        Err(e) => Ok(fail(format!("Not replaced: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_rewrites_hostname_and_dns_and_keeps_the_rest() {
        let f = NetworkForm {
            text: "# the box\nhostname = \"old\"\n\n[[interface]]\nname = \"eth0\" # uplink\naddresses = [\"10.0.0.2/24\"]\n".into(),
            hostname: Some("lb1".into()),
            dns_servers: Some("10.0.0.53, 10.0.0.54".into()),
            dns_search: Some("".into()),
            from: Some("form".into()),
            rows: Default::default(),
        };
        let t = network_text(&f).unwrap();
        assert!(t.contains("hostname = \"lb1\""), "{t}");
        assert!(t.contains("servers = [\"10.0.0.53\", \"10.0.0.54\"]"), "{t}");
        assert!(
            t.contains("# the box") && t.contains("name = \"eth0\" # uplink"),
            "comments kept: {t}"
        );
        assert_eq!(network_fields(&t), ("lb1".into(), "10.0.0.53 10.0.0.54".into(), String::new()));
        let untouched = NetworkForm {
            text: "[[interface]]\nname = \"br0\"\naddresses = [\"10.0.0.17/24\"]\n".into(),
            hostname: Some(String::new()),
            dns_servers: Some(String::new()),
            dns_search: Some(String::new()),
            from: Some("form".into()),
            rows: Default::default(),
        };
        let t = network_text(&untouched).unwrap();
        assert!(!t.contains("dns") && !t.contains("hostname"), "empty fields add nothing: {t}");
        let raw = NetworkForm {
            text: "not = [toml".into(),
            hostname: None,
            dns_servers: None,
            dns_search: None,
            from: Some("form".into()),
            rows: Default::default(),
        };
        assert_eq!(network_text(&raw).unwrap(), "not = [toml", "raw text goes to netcfg as it is");
    }
}
