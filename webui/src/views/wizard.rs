//! The Templates page: an application's whole configuration from a few
//! values (see [`crate::deploy`]). The form checks each value; Preview shows
//! the texts the template writes, lbd's verdict on them, a diff against the
//! live tabs and the checklist of what to do outside the appliance; Apply
//! goes through the editor's validated apply (both tabs at once, one reload,
//! put back on failure) and lands in the history like any other apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, RawForm, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::editor::DiffLine;
use super::{render, Chrome, UiError};
use crate::app::{now, AppState, Current};
use crate::config;
use crate::deploy::{self, Kind, Problem, Template};
use crate::store::Tab;

#[derive(askama::Template)]
#[template(path = "templates.html")]
struct ListPage {
    chrome: Chrome,
    templates: Vec<(String, String, String)>,
    errors: Vec<String>,
}

/// One input of the form, ready for the page.
struct Field {
    key: String,
    label: String,
    help: String,
    /// choice, text, textarea, services or cert.
    widget: &'static str,
    value: String,
    /// (key, label, selected)
    choices: Vec<(String, String, bool)>,
    error: String,
    /// "only when …", for inputs that count only with another's value.
    when: String,
}

struct Output {
    title: &'static str,
    id: &'static str,
    text: String,
    diff: Vec<DiffLine>,
    changed: bool,
}

#[derive(askama::Template)]
#[template(path = "wizard.html")]
struct WizardPage {
    chrome: Chrome,
    name: String,
    title: String,
    description: String,
    fields: Vec<Field>,
    /// The form's values, for the Apply form's hidden fields.
    hidden: Vec<(String, String)>,
    previewed: bool,
    outputs: Vec<Output>,
    findings: Vec<String>,
    valid: bool,
    /// (is heading, text)
    checklist: Vec<(bool, String)>,
    result: String,
    result_ok: bool,
}

pub async fn list(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>) -> Response {
    render(&ListPage {
        chrome: Chrome::new(&state, Some(&current), "templates"),
        templates: state
            .templates
            .iter()
            .map(|t| (t.name.clone(), t.title.clone(), t.description.clone()))
            .collect(),
        errors: state.template_errors.clone(),
    })
}

fn find<'a>(state: &'a AppState, name: &str) -> Result<&'a Template, UiError> {
    state
        .templates
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("No template {name:?}.")))
}

/// The posted form: every input's value; the services' ticked boxes (one
/// field each) joined by spaces.
fn form_values(t: &Template, body: &[u8]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        let Some(input) = t.inputs.iter().find(|i| i.key == k) else {
            continue;
        };
        let v = v.replace("\r\n", "\n");
        match input.kind {
            Kind::Services => {
                let e = out.entry(k.into_owned()).or_default();
                if !e.is_empty() {
                    e.push(' ');
                }
                e.push_str(v.trim());
            }
            _ => {
                out.insert(k.into_owned(), v);
            }
        }
    }
    // An unticked set of boxes sends nothing: it is empty, not the default.
    for i in &t.inputs {
        out.entry(i.key.clone()).or_default();
    }
    out
}

fn fields(t: &Template, values: &BTreeMap<String, String>, problems: &[Problem], certs: &[String]) -> Vec<Field> {
    t.inputs
        .iter()
        .map(|i| {
            let value = values.get(&i.key).cloned().unwrap_or_default();
            let (widget, choices) = match i.kind {
                Kind::Choice => (
                    "choice",
                    i.choices.iter().map(|(k, l)| (k.clone(), l.clone(), *k == value)).collect(),
                ),
                Kind::Services => {
                    let ticked: Vec<&str> = value.split_whitespace().collect();
                    (
                        "services",
                        i.choices
                            .iter()
                            .map(|(k, l)| (k.clone(), l.clone(), ticked.contains(&k.as_str())))
                            .collect(),
                    )
                }
                Kind::Cert => ("cert", certs.iter().map(|c| (c.clone(), c.clone(), *c == value)).collect()),
                Kind::Servers => ("textarea", Vec::new()),
                _ => ("text", Vec::new()),
            };
            let when = match i.when.as_deref().and_then(|w| w.split_once('=')) {
                Some((other, v)) => {
                    let label = t
                        .inputs
                        .iter()
                        .find(|o| o.key == other)
                        .and_then(|o| o.choices.iter().find(|(k, _)| k == v))
                        .map_or(v, |(_, l)| l.as_str());
                    format!("only with: {label}")
                }
                None => String::new(),
            };
            Field {
                key: i.key.clone(),
                label: i.label.clone(),
                help: i.help.clone(),
                widget,
                value,
                choices,
                error: problems
                    .iter()
                    .filter(|p| p.key == i.key)
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
                when,
            }
        })
        .collect()
}

fn page(
    state: &AppState,
    current: &Current,
    t: &Template,
    values: BTreeMap<String, String>,
    problems: &[Problem],
    certs: &[String],
) -> WizardPage {
    WizardPage {
        chrome: Chrome::new(state, Some(current), "templates"),
        name: t.name.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        fields: fields(t, &values, problems, certs),
        hidden: values.into_iter().collect(),
        previewed: false,
        outputs: Vec::new(),
        findings: Vec::new(),
        valid: false,
        checklist: Vec::new(),
        result: String::new(),
        result_ok: false,
    }
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    let t = find(&state, &name)?;
    let mut values = deploy::defaults(t);
    // A certificate input starts on the store's first certificate when its
    // default is not there.
    let certs = crate::certs::names(&state.paths.cert_store);
    for i in t.inputs.iter().filter(|i| i.kind == Kind::Cert) {
        if !certs.contains(&i.default) {
            values.insert(i.key.clone(), certs.first().cloned().unwrap_or_default());
        }
    }
    Ok(render(&page(&state, &current, t, values, &[], &certs)))
}

/// The tabs a template changes, with their texts, and its checklist.
type Planned = (Vec<(Tab, String)>, Vec<String>);

/// What the template writes for these values: the tabs it changes, with the
/// texts. A template with an SSL text writes the SSL tab even when this
/// variant has no TLS service (so an earlier variant's services go).
fn outputs(state: &AppState, t: &Template, values: &BTreeMap<String, String>, certs: &[String]) -> Result<Planned, Vec<Problem>> {
    let vars = deploy::values(t, values, certs)?;
    let r = deploy::render(t, &vars, &state.paths.cert_store).map_err(|e| {
        vec![Problem {
            key: String::new(),
            message: e,
        }]
    })?;
    let mut changes = vec![(Tab::Lb7, r.lb7)];
    if t.writes_ssl() {
        let ssl = r
            .ssl
            .unwrap_or_else(|| format!("; No TLS service: written by the Templates page ({}).\n", t.title));
        changes.push((Tab::Ssl, ssl));
    }
    Ok((changes, r.checklist))
}

pub async fn preview(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(name): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, UiError> {
    let t = find(&state, &name)?;
    let values = form_values(t, &body);
    let certs = crate::certs::names(&state.paths.cert_store);
    Ok(match outputs(&state, t, &values, &certs) {
        Err(problems) => {
            let mut p = page(&state, &current, t, values, &problems, &certs);
            p.result = problems
                .iter()
                .filter(|p| p.key.is_empty())
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            if p.result.is_empty() {
                p.result = "Some values need correcting: see the fields marked below.".into();
            }
            (StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response()
        }
        Ok((changes, checklist)) => {
            let mut p = page(&state, &current, t, values, &[], &certs);
            fill_preview(&state, &mut p, &changes, checklist);
            render(&p)
        }
    })
}

fn fill_preview(state: &AppState, p: &mut WizardPage, changes: &[(Tab, String)], checklist: Vec<String>) {
    let (live_lb7, live_ssl) = state.paths.texts_with(None);
    let live = |tab: Tab| if tab == Tab::Lb7 { &live_lb7 } else { &live_ssl };
    let text_of = |tab: Tab| changes.iter().find(|(t, _)| *t == tab).map_or(live(tab), |(_, x)| x);
    let report = config::validate(&state.paths, text_of(Tab::Lb7), text_of(Tab::Ssl));
    p.previewed = true;
    p.valid = report.valid;
    p.findings = report
        .findings
        .iter()
        .map(|f| {
            format!(
                "{} {} line {}: {}",
                if f.alert { "error" } else { "warning" },
                f.tab.title(),
                f.line,
                f.message
            )
        })
        .collect();
    p.outputs = changes
        .iter()
        .map(|(tab, text)| {
            let live = live(*tab);
            let diff: Vec<DiffLine> = config::diff(live, text)
                .into_iter()
                .map(|(tag, text)| DiffLine { tag, text })
                .collect();
            Output {
                title: tab.title(),
                id: tab.key(),
                changed: live != text,
                text: text.clone(),
                diff,
            }
        })
        .collect();
    p.checklist = checklist
        .into_iter()
        .map(|l| match l.strip_prefix("## ") {
            Some(h) => (true, h.to_owned()),
            None => (false, l),
        })
        .collect();
}

pub async fn apply(
    State(state): State<Arc<AppState>>,
    Extension(current): Extension<Current>,
    Path(name): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, UiError> {
    let t = find(&state, &name)?;
    let values = form_values(t, &body);
    let comment: String = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "comment")
        .map(|(_, v)| v.chars().take(160).collect())
        .unwrap_or_default();
    let certs = crate::certs::names(&state.paths.cert_store);
    let (changes, checklist) = match outputs(&state, t, &values, &certs) {
        Ok(x) => x,
        Err(problems) => {
            let mut p = page(&state, &current, t, values, &problems, &certs);
            p.result = "Not applied: some values need correcting.".into();
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response());
        }
    };
    let comment = if comment.trim().is_empty() {
        format!("template {}", t.name)
    } else {
        format!("template {}: {}", t.name, comment.trim())
    };
    let outcome = {
        let _one_at_a_time = state.apply_lock.lock().await;
        config::apply_many(&*state.store, &state.paths, &changes, current.user(), &comment, now()).await
    };
    // The page after the apply compares with the files as they are now.
    let mut p = page(&state, &current, t, values, &[], &certs);
    fill_preview(&state, &mut p, &changes, checklist);
    let status = match outcome {
        Ok(revs) => {
            let what: Vec<String> = revs.iter().map(|r| format!("{} revision {}", r.tab.title(), r.id)).collect();
            state.audit(
                current.user(),
                current.source,
                format!("applied the template {} ({})", t.name, what.join(", ")),
            );
            p.result = format!("Applied: {}. lbd runs it now.", what.join(", "));
            p.result_ok = true;
            StatusCode::OK
        }
        Err(e) => {
            state.audit(
                current.user(),
                current.source,
                format!("apply of the template {} failed: {e}", t.name),
            );
            p.result = format!("Not applied: {e}");
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    Ok((status, render(&p)).into_response())
}
