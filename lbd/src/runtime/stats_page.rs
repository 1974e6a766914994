//! The statistics page (`stats enable`, `stats uri`) and the Prometheus
//! exporter (`http-request use-service prometheus-exporter`), with HAProxy's
//! metric names so existing dashboards work.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::api::{server_status, server_status_text};
use super::snapshot::{BackendRt, Snapshot};
use super::ACTIVE_CONNS;

/// When the process started serving.
pub static STARTED: OnceLock<Instant> = OnceLock::new();

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn sorted_backends(snap: &Snapshot) -> Vec<&Arc<BackendRt>> {
    let mut v: Vec<&Arc<BackendRt>> = snap.backends.values().collect();
    v.sort_by(|a, b| (a.conf.loc.file.as_ref(), a.conf.loc.line).cmp(&(b.conf.loc.file.as_ref(), b.conf.loc.line)));
    v
}

/// Decodes `application/x-www-form-urlencoded` text.
fn form_decode(text: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    // Bytes, not a str slice: a bad escape must never split a character.
                    let hex = b
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

/// Applies a form posted by the page's admin controls: `b` (backend name or
/// `#id`), `action` (`ready`, `drain`, `maint`, `dhlth`, `ehlth`, `shutdown`) and
/// one `s` per server.
pub fn admin_action(snap: &Snapshot, body: &str) -> Result<(), String> {
    let form = form_decode(body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let b = get("b").ok_or("no backend")?;
    let backend = snap
        .backends
        .values()
        .find(|x| {
            x.name() == b
                || b.strip_prefix('#')
                    .and_then(|id| id.parse::<u32>().ok())
                    .is_some_and(|id| x.conf.id == Some(id))
        })
        .ok_or("no such backend")?;
    let action = get("action").ok_or("no action")?;
    for (_, name) in form.iter().filter(|(k, _)| k == "s") {
        let Some(s) = backend.servers.iter().find(|x| x.name() == name) else {
            continue;
        };
        match action {
            "ready" => {
                s.maint.store(false, Ordering::Release);
                s.drain.store(false, Ordering::Release);
            }
            "drain" => {
                s.maint.store(false, Ordering::Release);
                s.drain.store(true, Ordering::Release);
            }
            "maint" => {
                s.maint.store(true, Ordering::Release);
                s.drain.store(false, Ordering::Release);
            }
            "dhlth" => s.checks_paused.store(true, Ordering::Release),
            "ehlth" => s.checks_paused.store(false, Ordering::Release),
            "shutdown" => s.shutdown_sessions(),
            other => return Err(format!("unknown action {other}")),
        }
    }
    Ok(())
}

/// The HTML statistics page; with `admin`, each backend gets a form to act on its servers.
pub fn html(snap: &Snapshot, admin: bool) -> String {
    let up = STARTED.get().map_or(0, |s| s.elapsed().as_secs());
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Statistics Report for lbd</title>\n");
    o.push_str("<style>body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #999;padding:2px 6px;text-align:right}th{background:#20a0ff;color:#fff}td.n{text-align:left}tr.up{background:#c0ffc0}tr.down{background:#ffa0a0}tr.maint{background:#c0c0ff}tr.drain{background:#ffe080}tr.px{background:#e8e8e8;font-weight:bold}</style></head><body>\n");
    let _ = writeln!(
        o,
        "<h1>lbd statistics</h1><p>pid {} &middot; uptime {}s &middot; current connections {} &middot; config {}</p>",
        std::process::id(),
        up,
        ACTIVE_CONNS.load(Ordering::Relaxed),
        esc(&snap.config_hash)
    );
    for f in &snap.frontends {
        let _ = writeln!(o, "<table><tr><th class=n colspan=8>{} (frontend)</th></tr>", esc(f.name()));
        o.push_str("<tr><th class=n>name</th><th>status</th><th>cur</th><th>max</th><th>limit</th><th>total</th><th>bytes in</th><th>bytes out</th></tr>\n");
        let _ = writeln!(
            o,
            "<tr class=\"px\"><td class=n>Frontend</td><td>OPEN</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            f.cur_conns.load(Ordering::Relaxed),
            f.max_conns.load(Ordering::Relaxed),
            f.conf.maxconn.map(|m| m.to_string()).unwrap_or_default(),
            f.total_conns.load(Ordering::Relaxed),
            f.bytes_in.load(Ordering::Relaxed),
            f.bytes_out.load(Ordering::Relaxed)
        );
    }
    for b in sorted_backends(snap) {
        if admin {
            let _ = writeln!(o, "<form method=\"post\"><input type=hidden name=b value=\"{}\">", esc(b.name()));
        }
        let _ = writeln!(o, "<table><tr><th class=n colspan=10>{} (backend)</th></tr>", esc(b.name()));
        o.push_str("<tr><th class=n>server</th><th>status</th><th>check</th><th>weight</th><th>cur</th><th>max</th><th>total</th><th>bytes in</th><th>bytes out</th><th>conn errors</th></tr>\n");
        for s in &b.servers {
            let class = match server_status(s) {
                "UP" | "no check" => "up",
                "DOWN" => "down",
                "MAINT" => "maint",
                _ => "drain",
            };
            let check = s.health.lock().map(|h| h.last_status.clone()).unwrap_or_default();
            let pick = if admin {
                format!("<input type=checkbox name=s value=\"{}\"> ", esc(s.name()))
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "<tr class=\"{class}\"><td class=n>{pick}{}</td><td>{}</td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(s.name()),
                server_status_text(s),
                if s.conf.params.check { esc(&check) } else { String::new() },
                s.weight.load(Ordering::Relaxed),
                s.cur_conns.load(Ordering::Relaxed),
                s.max_conns.load(Ordering::Relaxed),
                s.total_conns.load(Ordering::Relaxed),
                s.bytes_in.load(Ordering::Relaxed),
                s.bytes_out.load(Ordering::Relaxed),
                s.connect_errors.load(Ordering::Relaxed)
            );
        }
        let (act, bck) = b.active_and_backup_up();
        let _ = writeln!(
            o,
            "<tr class=\"px\"><td class=n>Backend</td><td>{}</td><td></td><td>{act}/{bck}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr></table>",
            if act + bck > 0 || b.servers.is_empty() { "UP" } else { "DOWN" },
            b.cur_conns.load(Ordering::Relaxed),
            b.max_conns.load(Ordering::Relaxed),
            b.total_conns.load(Ordering::Relaxed),
            b.bytes_in.load(Ordering::Relaxed),
            b.bytes_out.load(Ordering::Relaxed)
        );
        if admin {
            o.push_str("<p>Choose the action to perform on the checked servers: <select name=action><option value=ready>Set state to READY</option><option value=drain>Set state to DRAIN</option><option value=maint>Set state to MAINT</option><option value=dhlth>Health: disable checks</option><option value=ehlth>Health: enable checks</option><option value=shutdown>Kill sessions</option></select> <input type=submit value=Apply></p></form>\n");
        }
    }
    o.push_str("</body></html>\n");
    o
}

struct Metric<'a> {
    out: &'a mut String,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;
/// A metric family: name, type, help text, and how to read it from an item.
type Family<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

impl Metric<'_> {
    /// Each family of `defs` (name, type, help, getter), with one sample per labelled item.
    fn families<T>(&mut self, defs: &[Family<T>], items: &[(Labels<'_>, &T)]) {
        for (name, kind, help, get) in defs {
            self.family(name, kind, help);
            for (labels, item) in items {
                self.sample(name, labels, get(item));
            }
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        if l.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", l.join(","));
        }
    }
}

/// The Prometheus text exposition, HAProxy's metric names.
pub fn prometheus(snap: &Snapshot) -> String {
    let mut out = String::new();
    let mut m = Metric { out: &mut out };
    let up = STARTED.get().map_or(0, |s| s.elapsed().as_secs());
    m.family(
        "haproxy_process_uptime_seconds",
        "gauge",
        "How long ago this worker process was started (seconds).",
    );
    m.sample("haproxy_process_uptime_seconds", &[], up);
    m.family("haproxy_process_current_connections", "gauge", "Number of active sessions.");
    m.sample("haproxy_process_current_connections", &[], ACTIVE_CONNS.load(Ordering::Relaxed));
    m.family("haproxy_process_dropped_logs_total", "counter", "Total number of dropped logs.");
    m.sample("haproxy_process_dropped_logs_total", &[], snap.logger.dropped());

    let fe_metrics: [Family<super::snapshot::FrontendRt>; 5] = [
        ("haproxy_frontend_current_sessions", "gauge", "Number of current sessions.", |f| {
            u64::from(f.cur_conns.load(Ordering::Relaxed))
        }),
        (
            "haproxy_frontend_max_sessions",
            "gauge",
            "Maximum observed number of sessions.",
            |f| u64::from(f.max_conns.load(Ordering::Relaxed)),
        ),
        ("haproxy_frontend_sessions_total", "counter", "Total number of sessions.", |f| {
            f.total_conns.load(Ordering::Relaxed)
        }),
        (
            "haproxy_frontend_bytes_in_total",
            "counter",
            "Current total of incoming bytes.",
            |f| f.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "haproxy_frontend_bytes_out_total",
            "counter",
            "Current total of outgoing bytes.",
            |f| f.bytes_out.load(Ordering::Relaxed),
        ),
    ];
    m.family("haproxy_frontend_status", "gauge", "Current status of the service.");
    for f in &snap.frontends {
        m.sample("haproxy_frontend_status", &[("proxy", f.name())], 1);
    }
    m.family("haproxy_frontend_limit_sessions", "gauge", "Configured session limit.");
    for f in &snap.frontends {
        m.sample(
            "haproxy_frontend_limit_sessions",
            &[("proxy", f.name())],
            f.conf.maxconn.unwrap_or(0),
        );
    }
    let fe_items: Vec<(Labels, &super::snapshot::FrontendRt)> = snap.frontends.iter().map(|f| (vec![("proxy", f.name())], &**f)).collect();
    m.families(&fe_metrics, &fe_items);

    let backends = sorted_backends(snap);
    let be_metrics: [Family<BackendRt>; 8] = [
        ("haproxy_backend_status", "gauge", "Current status of the service.", |b| {
            let (a, k) = b.active_and_backup_up();
            u64::from(a + k > 0 || b.servers.is_empty())
        }),
        ("haproxy_backend_current_sessions", "gauge", "Number of current sessions.", |b| {
            u64::from(b.cur_conns.load(Ordering::Relaxed))
        }),
        (
            "haproxy_backend_max_sessions",
            "gauge",
            "Maximum observed number of sessions.",
            |b| u64::from(b.max_conns.load(Ordering::Relaxed)),
        ),
        ("haproxy_backend_sessions_total", "counter", "Total number of sessions.", |b| {
            b.total_conns.load(Ordering::Relaxed)
        }),
        (
            "haproxy_backend_bytes_in_total",
            "counter",
            "Current total of incoming bytes.",
            |b| b.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "haproxy_backend_bytes_out_total",
            "counter",
            "Current total of outgoing bytes.",
            |b| b.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "haproxy_backend_active_servers",
            "gauge",
            "Current number of active servers.",
            |b| b.active_and_backup_up().0 as u64,
        ),
        (
            "haproxy_backend_backup_servers",
            "gauge",
            "Current number of backup servers.",
            |b| b.active_and_backup_up().1 as u64,
        ),
    ];
    let be_items: Vec<(Labels, &BackendRt)> = backends.iter().map(|b| (vec![("proxy", b.name())], &***b)).collect();
    m.families(&be_metrics, &be_items);
    m.family(
        "haproxy_backend_connection_errors_total",
        "counter",
        "Total number of connection errors.",
    );
    for b in &backends {
        let e: u64 = b.servers.iter().map(|s| s.connect_errors.load(Ordering::Relaxed)).sum();
        m.sample("haproxy_backend_connection_errors_total", &[("proxy", b.name())], e);
    }

    m.family(
        "haproxy_server_status",
        "gauge",
        "Current status of the service, per state label value.",
    );
    for b in &backends {
        for s in &b.servers {
            let st = server_status(s);
            for state in ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"] {
                let on = match state {
                    "UP" => st == "UP" || st == "no check",
                    "DRAIN" => st.starts_with("DRAIN"),
                    other => st == other,
                };
                m.sample(
                    "haproxy_server_status",
                    &[("proxy", b.name()), ("server", s.name()), ("state", state)],
                    u8::from(on),
                );
            }
        }
    }
    let srv_metrics: [Family<super::snapshot::ServerRt>; 8] = [
        ("haproxy_server_current_sessions", "gauge", "Number of current sessions.", |s| {
            u64::from(s.cur_conns.load(Ordering::Relaxed))
        }),
        (
            "haproxy_server_max_sessions",
            "gauge",
            "Maximum observed number of sessions.",
            |s| u64::from(s.max_conns.load(Ordering::Relaxed)),
        ),
        ("haproxy_server_sessions_total", "counter", "Total number of sessions.", |s| {
            s.total_conns.load(Ordering::Relaxed)
        }),
        (
            "haproxy_server_bytes_in_total",
            "counter",
            "Current total of incoming bytes.",
            |s| s.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "haproxy_server_bytes_out_total",
            "counter",
            "Current total of outgoing bytes.",
            |s| s.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "haproxy_server_connection_errors_total",
            "counter",
            "Total number of connection errors.",
            |s| s.connect_errors.load(Ordering::Relaxed),
        ),
        (
            "haproxy_server_check_failures_total",
            "counter",
            "Total number of failed individual health checks.",
            |s| s.checks_failed.load(Ordering::Relaxed),
        ),
        ("haproxy_server_weight", "gauge", "Service weight.", |s| {
            u64::from(s.weight.load(Ordering::Relaxed))
        }),
    ];
    let srv_items: Vec<(Labels, &super::snapshot::ServerRt)> = backends
        .iter()
        .flat_map(|b| {
            b.servers
                .iter()
                .map(move |s| (vec![("proxy", b.name()), ("server", s.name())], &**s))
        })
        .collect();
    m.families(&srv_metrics, &srv_items);
    out
}

#[cfg(test)]
mod tests {
    use super::form_decode;

    #[test]
    fn forms_decode_without_panicking_on_bad_escapes() {
        assert_eq!(
            form_decode("b=bk&s=s%201&action=maint"),
            vec![
                ("b".into(), "bk".into()),
                ("s".into(), "s 1".into()),
                ("action".into(), "maint".into())
            ]
        );
        assert_eq!(
            form_decode("a=%zz&b=%e2%82%ac&c=%"),
            vec![("a".into(), "%zz".into()), ("b".into(), "€".into()), ("c".into(), "%".into())]
        );
        assert_eq!(form_decode("x=é%"), vec![("x".into(), "é%".into())]);
    }
}
