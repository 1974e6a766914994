//! The SSL tab's certificate store: New (or replace) a name with a key and a
//! certificate chain, uploaded or pasted, checked as a pair before anything is
//! saved; delete a name no configuration uses. Keys are never shown again.

use std::sync::Arc;

use axum::extract::{Extension, Form, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::editor::EditorPage;
use super::render;
use crate::app::{AppState, Current};
use crate::certs;
use crate::store::Tab;

/// The SSL tab's page with a line about the store.
fn page(state: &AppState, current: &Current, status: StatusCode, ok: bool, message: String) -> Response {
    let mut p = EditorPage::new(state, current, Tab::Ssl, state.paths.text(Tab::Ssl));
    p.cert_result = message;
    p.cert_ok = ok;
    (status, render(&p)).into_response()
}

/// Reads the upload form: `name`, and `key`/`crt` each as a file or pasted text.
async fn fields(mut mp: Multipart) -> Result<(String, Vec<u8>, Vec<u8>), String> {
    let (mut name, mut key, mut crt) = (String::new(), Vec::new(), Vec::new());
    let (mut key_text, mut crt_text) = (Vec::new(), Vec::new());
    while let Some(field) = mp.next_field().await.map_err(|e| format!("bad upload: {e}"))? {
        let which = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map_err(|e| format!("bad upload: {e}"))?.to_vec();
        match which.as_str() {
            "name" => name = String::from_utf8_lossy(&data).trim().to_owned(),
            "key_file" => key = data,
            "crt_file" => crt = data,
            "key_text" => key_text = data,
            "crt_text" => crt_text = data,
            _ => {}
        }
    }
    // A file chosen wins over pasted text.
    if key.iter().all(u8::is_ascii_whitespace) {
        key = key_text;
    }
    if crt.iter().all(u8::is_ascii_whitespace) {
        crt = crt_text;
    }
    Ok((name, key, crt))
}

pub async fn upload(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>, mp: Multipart) -> Response {
    let (name, key, crt) = match fields(mp).await {
        Ok(f) => f,
        Err(e) => return page(&state, &current, StatusCode::BAD_REQUEST, false, e),
    };
    if let Err(e) = certs::check_name(&name) {
        return page(&state, &current, StatusCode::BAD_REQUEST, false, e);
    }
    if key.is_empty() || crt.is_empty() {
        return page(
            &state,
            &current,
            StatusCode::BAD_REQUEST,
            false,
            "Give both the private key and the certificate (a file or pasted PEM).".into(),
        );
    }
    let _one_at_a_time = state.apply_lock.lock().await;
    let (loaded, previous) = match certs::save(&state.paths.cert_store, &name, &crt, &key) {
        Ok(x) => x,
        Err(e) => {
            state.audit(current.user(), current.source, format!("certificate {name} refused: {e}"));
            return page(&state, &current, StatusCode::UNPROCESSABLE_ENTITY, false, format!("Not saved: {e}"));
        }
    };
    let replaced = previous.crt.is_some();
    let (lb7, ssl) = state.paths.texts_with(None);
    // A certificate in use is live only once lbd reloads; if lbd refuses it,
    // the previous pair goes back.
    if replaced && certs::used(&state.paths, &name, &lb7, &ssl) {
        if let Err(e) = crate::config::reload_and_confirm(&state.paths).await {
            let undo = certs::restore(&state.paths.cert_store, &name, &previous);
            let _ = crate::config::reload_and_confirm(&state.paths).await;
            let msg = match undo {
                Ok(()) => format!("Not replaced: {e}; the previous certificate is back."),
                Err(u) => format!("Not replaced: {e}; putting the previous certificate back failed too: {u}"),
            };
            state.audit(current.user(), current.source, format!("certificate {name}: {msg}"));
            return page(&state, &current, StatusCode::UNPROCESSABLE_ENTITY, false, msg);
        }
    }
    let verb = if replaced { "replaced" } else { "saved" };
    state.audit(current.user(), current.source, format!("certificate {name} {verb}"));
    let mut msg = format!("Certificate {name} {verb} ({}).", loaded.names.join(", "));
    if loaded.expired() {
        msg.push_str(" Warning: it has expired.");
    }
    page(&state, &current, StatusCode::OK, true, msg)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    name: String,
}

pub async fn delete(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>, Form(form): Form<DeleteForm>) -> Response {
    if let Err(e) = certs::check_name(&form.name) {
        return page(&state, &current, StatusCode::BAD_REQUEST, false, e);
    }
    let _one_at_a_time = state.apply_lock.lock().await;
    let (lb7, ssl) = state.paths.texts_with(None);
    if certs::used(&state.paths, &form.name, &lb7, &ssl) {
        return page(
            &state,
            &current,
            StatusCode::CONFLICT,
            false,
            format!(
                "Certificate {} is in use by the configuration: remove it from there first.",
                form.name
            ),
        );
    }
    match certs::remove(&state.paths.cert_store, &form.name) {
        Ok(()) => {
            state.audit(current.user(), current.source, format!("certificate {} deleted", form.name));
            page(
                &state,
                &current,
                StatusCode::OK,
                true,
                format!("Certificate {} deleted.", form.name),
            )
        }
        Err(e) => page(
            &state,
            &current,
            StatusCode::INTERNAL_SERVER_ERROR,
            false,
            format!("Not deleted: {e}"),
        ),
    }
}
