//! Stats: every frontend, backend and server from lbd's `show stat`, with
//! status, last check, sessions, rates and bytes; a server can be enabled,
//! disabled (maintenance) or drained. `?live=1` refreshes the page every 5 s.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{render, Chrome};
use crate::app::{AppState, Current};
use crate::config::lbd_command;

/// One row of `show stat`.
pub struct Row {
    pub proxy: String,
    pub name: String,
    pub kind: &'static str,
    pub status: String,
    pub check: String,
    pub weight: String,
    pub cur: String,
    pub max: String,
    pub total: String,
    pub rate: String,
    pub bytes_in: String,
    pub bytes_out: String,
    /// CSS class from the status.
    pub class: &'static str,
}

pub struct Proxy {
    pub name: String,
    pub rows: Vec<Row>,
}

/// Parses `show stat` (a `# pxname,svname,...` header, then one CSV line per row).
pub fn parse(csv: &str) -> Vec<Proxy> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let cols: HashMap<&str, usize> = header.split(',').enumerate().map(|(i, c)| (c, i)).collect();
    let mut out: Vec<Proxy> = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: &str| cols.get(c).and_then(|i| f.get(*i)).copied().unwrap_or_default().to_owned();
        let (proxy, name) = (get("pxname"), get("svname"));
        let kind = match name.as_str() {
            "FRONTEND" => "frontend",
            "BACKEND" => "backend",
            _ => "server",
        };
        let status = get("status");
        let class = match status.split_whitespace().next().unwrap_or_default() {
            "UP" | "OPEN" | "no" => "up",
            "DOWN" => "down",
            "MAINT" => "maint",
            "DRAIN" => "drain",
            _ => "",
        };
        let check = {
            let (st, desc) = (get("check_status"), get("check_desc"));
            if st.is_empty() {
                String::new()
            } else if desc.is_empty() {
                st
            } else {
                format!("{st} ({desc})")
            }
        };
        let row = Row {
            proxy: proxy.clone(),
            name,
            kind,
            status,
            check,
            weight: get("weight"),
            cur: get("scur"),
            max: get("smax"),
            total: get("stot"),
            rate: get("rate"),
            bytes_in: get("bin"),
            bytes_out: get("bout"),
            class,
        };
        // lbd lists every frontend first, then the backends: a `listen`
        // section's rows come together under its name, in the order seen.
        match out.iter_mut().find(|p| p.name == proxy) {
            Some(p) => p.rows.push(row),
            None => out.push(Proxy {
                name: proxy,
                rows: vec![row],
            }),
        }
    }
    out
}

#[derive(Template)]
#[template(path = "stats.html")]
struct StatsPage {
    chrome: Chrome,
    proxies: Vec<Proxy>,
    error: String,
    live: bool,
    result: String,
    result_ok: bool,
}

#[derive(Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    live: Option<String>,
}

async fn show(state: &AppState, current: &Current, live: bool, result: String, result_ok: bool) -> StatsPage {
    let (proxies, error) = match lbd_command(&state.paths.socket, "show stat").await {
        Ok(csv) => (parse(&csv), String::new()),
        Err(e) => (
            Vec::new(),
            format!("lbd's runtime socket {} does not answer: {e}", state.paths.socket.display()),
        ),
    };
    StatsPage {
        chrome: Chrome::new(state, Some(current), "stats"),
        proxies,
        error,
        live,
        result,
        result_ok,
    }
}

pub async fn page(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>, Query(q): Query<StatsQuery>) -> Response {
    let live = q.live.is_some_and(|v| v == "1");
    render(&show(&state, &current, live, String::new(), false).await)
}

#[derive(Deserialize)]
pub struct ServerForm {
    backend: String,
    server: String,
    action: String,
}

pub async fn server(State(state): State<Arc<AppState>>, Extension(current): Extension<Current>, Form(f): Form<ServerForm>) -> Response {
    let cmd = match f.action.as_str() {
        "enable" => "state ready",
        "disable" => "state maint",
        "drain" => "state drain",
        _ => return (StatusCode::BAD_REQUEST, "unknown action").into_response(),
    };
    // Only a backend/server pair lbd itself lists goes into a command.
    let known = match lbd_command(&state.paths.socket, "show stat").await {
        Ok(csv) => parse(&csv)
            .iter()
            .any(|p| p.name == f.backend && p.rows.iter().any(|r| r.kind == "server" && r.name == f.server)),
        Err(_) => false,
    };
    let (status, ok, msg) = if !known {
        (
            StatusCode::NOT_FOUND,
            false,
            format!("No server {}/{} in the running configuration.", f.backend, f.server),
        )
    } else {
        let line = format!("set server {}/{} {cmd}", f.backend, f.server);
        match lbd_command(&state.paths.socket, &line).await {
            Ok(answer) if answer.trim().is_empty() => {
                state.audit(
                    current.user(),
                    current.source,
                    format!("{} server {}/{}", f.action, f.backend, f.server),
                );
                (StatusCode::OK, true, format!("Server {}/{}: {}.", f.backend, f.server, f.action))
            }
            Ok(answer) => (StatusCode::UNPROCESSABLE_ENTITY, false, format!("lbd says: {}", answer.trim())),
            Err(e) => (StatusCode::BAD_GATEWAY, false, format!("lbd's runtime socket: {e}")),
        }
    };
    (status, render(&show(&state, &current, false, msg, ok).await)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn show_stat_becomes_proxies_with_their_rows() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration\n\
ft,FRONTEND,,,1,2,0,3,10,20,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,4,,,,,\n\
bk,app,0,0,1,1,,3,10,20,,,,0,0,0,0,UP 1/3,1,1,0,0,0,1,0,,1,3,1,,3,,2,0,,,L4OK,,0\n\
bk,BACKEND,0,0,1,1,,3,10,20,0,0,,0,0,0,0,UP,1,1,0,,0,1,0,,1,3,0,,3,,1,0,,,,,\n";
        let p = super::parse(csv);
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].name.as_str(), p[1].rows.len()), ("bk", 2));
        let s = &p[1].rows[0];
        assert_eq!(
            (s.kind, s.status.as_str(), s.check.as_str(), s.class),
            ("server", "UP 1/3", "L4OK", "up")
        );
        assert_eq!(p[0].rows[0].rate, "4");
        let listen = super::parse(&format!(
            "{}\nchk,FRONTEND,,,0\nbk,BACKEND,,,0\nchk,BACKEND,,,0\n",
            csv.lines().next().unwrap()
        ));
        assert_eq!(
            listen.iter().map(|p| (p.name.as_str(), p.rows.len())).collect::<Vec<_>>(),
            [("chk", 2), ("bk", 1)]
        );
    }
}
