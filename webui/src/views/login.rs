//! Login, logout and the password change (forced at first login).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Form, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{render, Chrome};
use crate::app::{session_cookie, AppState, Current};
use crate::auth::{hash_password, password_problem, verify_password};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    error: String,
    user: String,
}

pub async fn page(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>) -> Response {
    if current.session.user.is_some() {
        return Redirect::to("/lb7").into_response();
    }
    render(&LoginPage {
        chrome: Chrome::new(&state, Some(&current), "login"),
        error: String::new(),
        user: String::new(),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
}

pub async fn submit(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>, Form(form): Form<LoginForm>) -> Response {
    let again = |status: StatusCode, error: String| {
        (
            status,
            render(&LoginPage {
                chrome: Chrome::new(&state, Some(&current), "login"),
                error,
                user: form.user.chars().take(64).collect(),
            }),
        )
            .into_response()
    };
    if let Some(wait) = state.limiter.blocked(current.source) {
        eprintln!("webui: login from {} refused: too many failed logins", current.source);
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed logins from your address. Try again in {} s.", wait.as_secs() + 1),
        );
    }
    // Names go into logs: keep them short.
    let name: String = form.user.chars().take(64).collect();
    let user = match state.store.user(&name) {
        Ok(u) => u,
        Err(e) => return super::UiError::from(e).into_response(),
    };
    // The same work whether the user exists or not: no timing tells them
    // apart. argon2 runs off the async workers.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY.get_or_init(|| hash_password("no such user")).clone(), |u| u.hash.clone());
    let password = form.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
        && user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        state.limiter.failed(current.source);
        eprintln!("webui: failed login for {name:?} from {}", current.source);
        state.audit(&name, current.source, "failed login");
        return again(StatusCode::UNAUTHORIZED, "Wrong user name or password.".into());
    };
    let token = state.sessions.login(Some(&current.token), &user.name, user.must_change);
    state.audit(&user.name, current.source, "login");
    let to = if user.must_change { "/password" } else { "/lb7" };
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&token));
    res
}

pub async fn logout(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>) -> Response {
    state.sessions.end(&current.token);
    state.audit(current.user(), current.source, "logout");
    Redirect::to("/login").into_response()
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    forced: bool,
    error: String,
}

pub async fn password_page(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>) -> Response {
    render(&PasswordPage {
        forced: current.session.must_change,
        chrome: Chrome::new(&state, Some(&current), "password"),
        error: String::new(),
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    again: String,
}

pub async fn password_submit(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let fail = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            render(&PasswordPage {
                forced: current.session.must_change,
                chrome: Chrome::new(&state, Some(&current), "password"),
                error: error.to_owned(),
            }),
        )
            .into_response()
    };
    let name = current.user().to_owned();
    let user = match state.store.user(&name) {
        Ok(Some(u)) => u,
        Ok(None) => return fail("This user no longer exists."),
        Err(e) => return super::UiError::from(e).into_response(),
    };
    if !verify_password(&form.current, &user.hash) {
        state.audit(&name, current.source, "password change refused: wrong current password");
        return fail("The current password is wrong.");
    }
    if form.new != form.again {
        return fail("The two new passwords differ.");
    }
    if form.new == form.current {
        return fail("The new password must differ from the current one.");
    }
    if let Some(why) = password_problem(&name, &form.new) {
        return fail(&format!("Not a usable password: {why}."));
    }
    let updated = crate::store::User {
        hash: hash_password(&form.new),
        must_change: false,
        ..user
    };
    if let Err(e) = state.store.put_user(&updated) {
        return super::UiError::from(e).into_response();
    }
    state.sessions.set_must_change(&current.token, false);
    state.sessions.end_others(&name, &current.token);
    state.audit(&name, current.source, "password changed");
    // The generated first password is of no use any more.
    if let Some(f) = &state.first_password_file {
        let _ = crate::files::remove_durably(f);
    }
    Redirect::to("/lb7").into_response()
}
