//! The runtime API: HAProxy's text protocol on the `stats socket`, so `socat`,
//! `hatop` and existing scripts work. One command per connection (several may
//! be joined with `;`), or the interactive `prompt` mode. Each socket has a
//! level: `user` may only look, `operator` may also clear tables, `admin` may
//! change servers and reload.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::snapshot::{BackendRt, ServerRt, Snapshot};
use super::{Runtime, ACTIVE_CONNS};
use crate::config::model::{Balance, SocketLevel, StatsSocket, TableType};

/// Longest command line accepted; a longer one closes the connection.
const MAX_LINE: usize = 64 * 1024;

/// HAProxy 2.6's `show stat` columns, in order (the CSV interface scripts parse).
pub const STAT_COLUMNS: &[&str] = &[
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
    "cache_lookups",
    "cache_hits",
    "srv_icur",
    "src_ilim",
    "qtime_max",
    "ctime_max",
    "rtime_max",
    "ttime_max",
    "eint",
    "idle_conn_cur",
    "safe_conn_cur",
    "used_conn_cur",
    "need_conn_est",
    "uweight",
    "agg_server_status",
    "agg_server_check_status",
    "agg_check_status",
];

const HELP: &str = "\
The following commands are valid at this level:
  help                                    : this message
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect
  show info                               : report information about the running process
  show activity                           : per-thread counters (connections accepted by each worker)
  show config-hash                        : the hash of the running configuration
  show stat                               : report counters for each proxy and server (CSV)
  show servers state [<backend>]          : dump volatile server information
  show backend                            : list backends
  show table [<table>]                    : report table usage stats or dump this table's contents
  clear table <table> [key <k>]           : remove an entry from a table (operator)
  disable server <bk>/<srv>               : put a server in maintenance (admin)
  enable server <bk>/<srv>                : take a server out of maintenance (admin)
  set server <bk>/<srv> state ready|drain|maint : change a server's state (admin)
  set server <bk>/<srv> weight <w>        : change a server's weight (admin)
  set weight <bk>/<srv> <w>               : change a server's weight (admin)
  disable health <bk>/<srv>               : pause health checks (admin)
  enable health <bk>/<srv>                : resume health checks (admin)
  shutdown sessions server <bk>/<srv>     : kill all sessions of a server (admin)
  reload                                  : re-read the configuration files (admin)
";

/// HAProxy's per-thread counters, as far as lbd keeps them: `accepted` has one
/// figure per worker thread (the connections it served), in brackets.
fn show_activity() -> String {
    let threads = super::accepted_per_worker();
    let accepted = if threads.is_empty() {
        // No worker runtime (not serving): every connection counts once.
        vec![super::listener::accepted_total()]
    } else {
        threads
    };
    let list: Vec<String> = accepted.iter().map(u64::to_string).collect();
    format!("thread_id: 1 (1..{})\naccepted: [ {} ]\n", accepted.len(), list.join(" "))
}

/// Serves one `stats socket` until the process ends.
pub async fn serve(rt: Arc<Runtime>, sock: StatsSocket) {
    let path = sock.path.display().to_string();
    // `ipv4@host:port` or `host:port` is a TCP socket; anything else a UNIX path.
    let tcp = path
        .strip_prefix("ipv4@")
        .or_else(|| path.strip_prefix("ipv6@"))
        .map(str::to_owned)
        .or_else(|| (!path.starts_with('/') && path.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())).then(|| path.clone()));
    if let Some(addr) = tcp {
        let l = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("[ALERT] stats socket {addr}: {e}");
                return;
            }
        };
        loop {
            if let Ok((s, _)) = l.accept().await {
                tokio::spawn(session(Arc::clone(&rt), s, sock.level));
            }
        }
    }
    if let Some(dir) = sock.path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::remove_file(&sock.path);
    let l = match tokio::net::UnixListener::bind(&sock.path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("[ALERT] stats socket {path}: {e}");
            return;
        }
    };
    if let Some(m) = sock.mode {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&sock.path, std::fs::Permissions::from_mode(m));
    }
    loop {
        if let Ok((s, _)) = l.accept().await {
            tokio::spawn(session(Arc::clone(&rt), s, sock.level));
        }
    }
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(rt: Arc<Runtime>, stream: S, level: SocketLevel) {
    let (r, mut w) = tokio::io::split(stream);
    let mut reader = BufReader::new(r);
    let mut prompt = false;
    let timeout = rt.current().global.stats_timeout;
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(timeout, (&mut reader).take(MAX_LINE as u64).read_line(&mut line)).await;
        match read {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let mut out = String::new();
        let mut quit = false;
        for cmd in line.trim_end_matches(['\n', '\r']).split(';') {
            let cmd = cmd.trim();
            match cmd {
                "" => {}
                "prompt" => prompt = !prompt,
                "quit" => quit = true,
                _ => out.push_str(&execute(&rt, cmd, level).await),
            }
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        if prompt && !quit {
            out.push_str("> ");
        }
        if w.write_all(out.as_bytes()).await.is_err() || quit || !prompt {
            let _ = w.shutdown().await;
            return;
        }
    }
}

fn find_server<'a>(snap: &'a Snapshot, spec: &str) -> Result<(&'a Arc<BackendRt>, &'a Arc<ServerRt>), String> {
    let Some((b, s)) = spec.split_once('/') else {
        return Err("Require 'backend/server'.\n".into());
    };
    let be = snap.backends.get(b).ok_or_else(|| "No such backend.\n".to_owned())?;
    let srv = be
        .servers
        .iter()
        .find(|x| x.name() == s)
        .ok_or_else(|| "No such server.\n".to_owned())?;
    Ok((be, srv))
}

fn allowed(level: SocketLevel, need: SocketLevel) -> bool {
    let rank = |l: SocketLevel| match l {
        SocketLevel::User => 0,
        SocketLevel::Operator => 1,
        SocketLevel::Admin => 2,
    };
    rank(level) >= rank(need)
}

/// Runs one command and returns its answer.
pub async fn execute(rt: &Arc<Runtime>, cmd: &str, level: SocketLevel) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let snap = rt.current();
    let need = match words.as_slice() {
        ["clear", "table", ..] => SocketLevel::Operator,
        ["disable" | "enable" | "set" | "shutdown" | "reload", ..] => SocketLevel::Admin,
        _ => SocketLevel::User,
    };
    if !allowed(level, need) {
        return "Permission denied\n".into();
    }
    match words.as_slice() {
        ["help"] => HELP.into(),
        ["show", "info"] => show_info(rt, &snap),
        ["show", "activity"] => show_activity(),
        ["show", "config-hash"] => format!("{}\n", snap.config_hash),
        ["show", "stat", ..] => show_stat(&snap),
        ["show", "servers", "state"] => show_servers_state(&snap, None),
        ["show", "servers", "state", b] => show_servers_state(&snap, Some(b)),
        ["show", "backend"] => {
            let mut names: Vec<(&String, &Arc<BackendRt>)> = snap.backends.iter().collect();
            names.sort_by_key(|(_, b)| b.conf.loc.line);
            let mut out = String::from("# name\n");
            for (n, _) in names {
                let _ = writeln!(out, "{n}");
            }
            out
        }
        ["show", "table"] => {
            let mut out = String::new();
            let mut names: Vec<&String> = snap.tables.keys().collect();
            names.sort();
            for n in names {
                if let Some(t) = snap.tables.get(n) {
                    let _ = writeln!(
                        out,
                        "# table: {n}, type: {}, size:{}, used:{}",
                        type_name(t.key_type()),
                        t.size(),
                        t.len()
                    );
                }
            }
            out
        }
        ["show", "table", name, ..] => show_table(&snap, name),
        ["clear", "table", name] => match snap.tables.get(*name) {
            Some(t) => {
                t.clear();
                String::new()
            }
            None => "No such table.\n".into(),
        },
        ["clear", "table", name, "key", key] => match snap.tables.get(*name) {
            Some(t) => match key_bytes(t.key_type(), key) {
                Some(k) => {
                    t.remove(&k);
                    String::new()
                }
                None => "Invalid key.\n".into(),
            },
            None => "No such table.\n".into(),
        },
        ["disable", "server", spec] | ["set", "server", spec, "state", "maint"] => with_server(&snap, spec, |_, s| {
            s.maint.store(true, Ordering::Release);
            s.drain.store(false, Ordering::Release);
        }),
        ["enable", "server", spec] | ["set", "server", spec, "state", "ready"] => with_server(&snap, spec, |_, s| {
            s.maint.store(false, Ordering::Release);
            s.drain.store(false, Ordering::Release);
        }),
        ["set", "server", spec, "state", "drain"] => with_server(&snap, spec, |_, s| {
            s.maint.store(false, Ordering::Release);
            s.drain.store(true, Ordering::Release);
        }),
        ["set", "server", spec, "weight", w] | ["set", "weight", spec, w] => match parse_weight(w) {
            Some(w) => with_server(&snap, spec, |_, s| s.weight.store(w, Ordering::Release)),
            None => "Integer value between 0 and 256 expected, or a percentage.\n".into(),
        },
        ["disable", "health", spec] => with_server(&snap, spec, |_, s| s.checks_paused.store(true, Ordering::Release)),
        ["enable", "health", spec] => with_server(&snap, spec, |_, s| s.checks_paused.store(false, Ordering::Release)),
        ["shutdown", "sessions", "server", spec] => with_server(&snap, spec, |_, s| s.shutdown_sessions()),
        ["reload"] => match rt.reload().await {
            Ok(hash) => format!("Success=1\nConfig hash: {hash}\n"),
            Err(e) => format!("Success=0\n{e}\n"),
        },
        _ => format!("Unknown command: '{cmd}'\n{HELP}"),
    }
}

fn parse_weight(w: &str) -> Option<u32> {
    match w.strip_suffix('%') {
        Some(p) => p.parse::<u32>().ok().filter(|v| *v <= 100).map(|v| v * 256 / 100),
        None => w.parse::<u32>().ok().filter(|v| *v <= 256),
    }
}

fn with_server(snap: &Snapshot, spec: &str, f: impl FnOnce(&BackendRt, &ServerRt)) -> String {
    match find_server(snap, spec) {
        Ok((b, s)) => {
            f(b, s);
            String::new()
        }
        Err(e) => e,
    }
}

fn type_name(t: TableType) -> &'static str {
    match t {
        TableType::Ip => "ip",
        TableType::Ipv6 => "ipv6",
        TableType::Integer => "integer",
        TableType::String(_) => "string",
        TableType::Binary(_) => "binary",
    }
}

fn key_text(t: TableType, k: &[u8]) -> String {
    match (t, k.len()) {
        (TableType::Ip, 4) => std::net::Ipv4Addr::new(k[0], k[1], k[2], k[3]).to_string(),
        (TableType::Ip | TableType::Ipv6, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(k);
            let v6 = std::net::Ipv6Addr::from(a);
            v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string())
        }
        (TableType::Integer, 8) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(k);
            i64::from_be_bytes(a).to_string()
        }
        (TableType::Binary(_), _) => crate::config::lexer::hex_upper(k),
        _ => String::from_utf8_lossy(k).into_owned(),
    }
}

fn key_bytes(t: TableType, text: &str) -> Option<Vec<u8>> {
    Some(match t {
        TableType::Ip | TableType::Ipv6 => match text.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        },
        TableType::Integer => text.parse::<i64>().ok()?.to_be_bytes().to_vec(),
        _ => text.as_bytes().to_vec(),
    })
}

fn show_table(snap: &Snapshot, name: &str) -> String {
    let Some(t) = snap.tables.get(name) else {
        return "No such table.\n".into();
    };
    let mut out = format!(
        "# table: {name}, type: {}, size:{}, used:{}\n",
        type_name(t.key_type()),
        t.size(),
        t.len()
    );
    for (i, (key, server_id, idle)) in t.entries().into_iter().enumerate() {
        let exp = t.expire().map_or(0, |e| e.saturating_sub(idle).as_millis());
        let _ = writeln!(
            out,
            "0x{:x}: key={} use=0 exp={exp} server_id={server_id}",
            0x1000 + i * 0x40,
            key_text(t.key_type(), &key)
        );
    }
    out.push('\n');
    out
}

fn show_info(rt: &Runtime, snap: &Snapshot) -> String {
    let up = rt.started.elapsed().as_secs();
    let mut out = String::new();
    let threads = snap
        .global
        .nbthread
        .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |n| n as usize);
    let cum: u64 = snap.frontends.iter().map(|f| f.total_conns.load(Ordering::Relaxed)).sum();
    let lines: Vec<(&str, String)> = vec![
        ("Name", "lbd".into()),
        ("Version", env!("CARGO_PKG_VERSION").into()),
        ("Nbthread", threads.to_string()),
        ("Nbproc", "1".into()),
        ("Process_num", "1".into()),
        ("Pid", std::process::id().to_string()),
        (
            "Uptime",
            format!("{}d {}h{:02}m{:02}s", up / 86_400, up / 3600 % 24, up / 60 % 60, up % 60),
        ),
        ("Uptime_sec", up.to_string()),
        (
            "Maxconn",
            rt.slots
                .available_permits()
                .saturating_add(ACTIVE_CONNS.load(Ordering::Relaxed) as usize)
                .to_string(),
        ),
        ("CurrConns", ACTIVE_CONNS.load(Ordering::Relaxed).to_string()),
        ("CumConns", cum.to_string()),
        ("Stopping", "0".into()),
        (
            "Listeners",
            snap.frontends
                .iter()
                .map(|f| f.conf.binds.iter().map(|b| b.addrs.len()).sum::<usize>())
                .sum::<usize>()
                .to_string(),
        ),
        ("DroppedLogs", snap.logger.dropped().to_string()),
        ("Reloads", rt.reloads.load(Ordering::Relaxed).to_string()),
        ("Config_hash", snap.config_hash.clone()),
    ];
    for (k, v) in lines {
        let _ = writeln!(out, "{k}: {v}");
    }
    out
}

fn algo_name(b: &Balance) -> &'static str {
    match b {
        Balance::RoundRobin => "roundrobin",
        Balance::StaticRr => "static-rr",
        Balance::LeastConn => "leastconn",
        Balance::First => "first",
        Balance::Source => "source",
        Balance::Random(_) => "random",
        Balance::Uri { .. } => "uri",
        Balance::UrlParam(_) => "url_param",
        Balance::Hdr { .. } => "hdr",
        Balance::RdpCookie(_) => "rdp-cookie",
    }
}

/// A server's state as `show stat` names it.
pub fn server_status(s: &ServerRt) -> &'static str {
    if s.maint.load(Ordering::Acquire) {
        "MAINT"
    } else if !s.conf.params.check {
        if s.drain.load(Ordering::Acquire) {
            "DRAIN (no check)"
        } else {
            "no check"
        }
    } else if s.drain.load(Ordering::Acquire) && s.is_up_by_checks() {
        "DRAIN"
    } else if s.is_up_by_checks() {
        "UP"
    } else {
        "DOWN"
    }
}

/// The state with a check counter while it changes, as `show stat` shows it:
/// `UP 2/3` (a checked server that failed a check: the second of `fall` before
/// going down) and `DOWN 1/2` (one of `rise` successes before coming up).
pub fn server_status_text(s: &ServerRt) -> String {
    let base = server_status(s);
    let p = &s.conf.params;
    let health = s.health.lock().map(|h| h.value).unwrap_or(0);
    let max = p.rise + p.fall - 1;
    match base {
        "UP" | "DRAIN" if health < max && health >= p.rise => format!("{base} {}/{}", health - p.rise + 1, p.fall),
        "DOWN" if health > 0 && health < p.rise => format!("DOWN {health}/{}", p.rise),
        _ => base.to_owned(),
    }
}

fn check_status_code(s: &ServerRt) -> (&'static str, String, String, String) {
    let Ok(h) = s.health.lock() else {
        return ("", String::new(), String::new(), String::new());
    };
    let st = &h.last_status;
    let code = if st.starts_with("Layer4 check passed") {
        "L4OK"
    } else if st.starts_with("Layer7 check passed") {
        "L7OK"
    } else if st.starts_with("Layer4 timeout") {
        "L4TOUT"
    } else if st.starts_with("Layer4") {
        "L4CON"
    } else if st.starts_with("Layer7 wrong status") {
        "L7STS"
    } else if st.starts_with("Layer7 timeout") {
        "L7TOUT"
    } else if st.starts_with("Layer7") {
        "L7RSP"
    } else {
        "INI"
    };
    let desc = st.split(": ").next().unwrap_or("").trim().to_owned();
    (
        code,
        h.last_code.map(|c| c.to_string()).unwrap_or_default(),
        h.last_duration_ms.to_string(),
        desc,
    )
}

fn csv_row(fields: &[(&str, String)]) -> String {
    let mut row = String::new();
    for col in STAT_COLUMNS {
        if let Some((_, v)) = fields.iter().find(|(k, _)| k == col) {
            row.push_str(&v.replace(',', " "));
        }
        row.push(',');
    }
    row.push('\n');
    row
}

/// `show stat`: HAProxy's CSV, frontends, then each backend's servers and the backend.
pub fn show_stat(snap: &Snapshot) -> String {
    let mut out = format!("# {},\n", STAT_COLUMNS.join(","));
    let pid = "1".to_string();
    let mut ids: Vec<(&str, usize)> = Vec::new();
    for (i, f) in snap.frontends.iter().enumerate() {
        ids.push((f.name(), i + 2));
    }
    for f in &snap.frontends {
        let iid = f
            .conf
            .id
            .map_or_else(|| ids.iter().find(|(n, _)| *n == f.name()).map_or(0, |x| x.1), |v| v as usize);
        out.push_str(&csv_row(&[
            ("pxname", f.name().into()),
            ("svname", "FRONTEND".into()),
            ("scur", f.cur_conns.load(Ordering::Relaxed).to_string()),
            ("smax", f.max_conns.load(Ordering::Relaxed).to_string()),
            ("slim", f.conf.maxconn.unwrap_or(0).to_string()),
            ("stot", f.total_conns.load(Ordering::Relaxed).to_string()),
            ("bin", f.bytes_in.load(Ordering::Relaxed).to_string()),
            ("bout", f.bytes_out.load(Ordering::Relaxed).to_string()),
            ("dreq", "0".into()),
            ("dresp", "0".into()),
            ("ereq", "0".into()),
            ("status", "OPEN".into()),
            ("pid", pid.clone()),
            ("iid", iid.to_string()),
            ("sid", "0".into()),
            ("type", "0".into()),
            ("mode", f.conf.mode.as_str().into()),
            ("conn_tot", f.total_conns.load(Ordering::Relaxed).to_string()),
        ]));
    }
    let mut backends: Vec<&Arc<BackendRt>> = snap.backends.values().collect();
    backends.sort_by(|a, b| (a.conf.loc.file.as_ref(), a.conf.loc.line).cmp(&(b.conf.loc.file.as_ref(), b.conf.loc.line)));
    for (bi, b) in backends.iter().enumerate() {
        let iid = b.conf.id.map_or(100 + bi, |v| v as usize);
        let (act, bck) = b.active_and_backup_up();
        let mut weight_sum = 0u32;
        for s in &b.servers {
            let (code, ccode, dur, desc) = check_status_code(s);
            let w = s.weight.load(Ordering::Relaxed);
            if s.is_up() {
                weight_sum += w;
            }
            let checked = s.conf.params.check;
            out.push_str(&csv_row(&[
                ("pxname", b.name().into()),
                ("svname", s.name().into()),
                ("qcur", "0".into()),
                ("qmax", "0".into()),
                ("scur", s.cur_conns.load(Ordering::Relaxed).to_string()),
                ("smax", s.max_conns.load(Ordering::Relaxed).to_string()),
                (
                    "slim",
                    if s.conf.params.maxconn > 0 {
                        s.conf.params.maxconn.to_string()
                    } else {
                        String::new()
                    },
                ),
                ("stot", s.total_conns.load(Ordering::Relaxed).to_string()),
                ("bin", s.bytes_in.load(Ordering::Relaxed).to_string()),
                ("bout", s.bytes_out.load(Ordering::Relaxed).to_string()),
                ("econ", s.connect_errors.load(Ordering::Relaxed).to_string()),
                ("eresp", "0".into()),
                ("wretr", "0".into()),
                ("wredis", "0".into()),
                ("status", server_status_text(s)),
                ("weight", w.to_string()),
                ("act", u8::from(!s.conf.params.backup).to_string()),
                ("bck", u8::from(s.conf.params.backup).to_string()),
                (
                    "chkfail",
                    if checked {
                        s.checks_failed.load(Ordering::Relaxed).to_string()
                    } else {
                        String::new()
                    },
                ),
                (
                    "chkdown",
                    if checked {
                        s.downs.load(Ordering::Relaxed).to_string()
                    } else {
                        String::new()
                    },
                ),
                ("lastchg", unix_age(s.last_change.load(Ordering::Relaxed)).to_string()),
                ("downtime", if checked { "0".into() } else { String::new() }),
                ("pid", pid.clone()),
                ("iid", iid.to_string()),
                ("sid", s.conf.id.to_string()),
                ("lbtot", s.total_conns.load(Ordering::Relaxed).to_string()),
                ("type", "2".into()),
                ("check_status", if checked { code.into() } else { String::new() }),
                ("check_code", if checked { ccode } else { String::new() }),
                ("check_duration", if checked { dur } else { String::new() }),
                ("check_desc", if checked { desc } else { String::new() }),
                ("check_rise", if checked { s.conf.params.rise.to_string() } else { String::new() }),
                ("check_fall", if checked { s.conf.params.fall.to_string() } else { String::new() }),
                (
                    "check_health",
                    if checked {
                        s.health.lock().map(|h| h.value.to_string()).unwrap_or_default()
                    } else {
                        String::new()
                    },
                ),
                ("addr", s.conf.addr.to_string()),
                ("cookie", s.conf.cookie.clone().unwrap_or_default()),
                ("mode", b.conf.mode.as_str().into()),
                ("conn_tot", s.total_conns.load(Ordering::Relaxed).to_string()),
                ("uweight", s.conf.params.weight.to_string()),
            ]));
        }
        let status = if act + bck > 0 || b.servers.is_empty() { "UP" } else { "DOWN" };
        out.push_str(&csv_row(&[
            ("pxname", b.name().into()),
            ("svname", "BACKEND".into()),
            ("qcur", "0".into()),
            ("qmax", "0".into()),
            ("scur", b.cur_conns.load(Ordering::Relaxed).to_string()),
            ("smax", b.max_conns.load(Ordering::Relaxed).to_string()),
            ("stot", b.total_conns.load(Ordering::Relaxed).to_string()),
            ("bin", b.bytes_in.load(Ordering::Relaxed).to_string()),
            ("bout", b.bytes_out.load(Ordering::Relaxed).to_string()),
            ("dreq", "0".into()),
            ("dresp", "0".into()),
            (
                "econ",
                b.servers
                    .iter()
                    .map(|s| s.connect_errors.load(Ordering::Relaxed))
                    .sum::<u64>()
                    .to_string(),
            ),
            ("eresp", "0".into()),
            ("wretr", "0".into()),
            ("wredis", "0".into()),
            ("status", status.into()),
            ("weight", weight_sum.to_string()),
            ("act", act.to_string()),
            ("bck", bck.to_string()),
            ("chkdown", "0".into()),
            ("lastchg", "0".into()),
            ("pid", pid.clone()),
            ("iid", iid.to_string()),
            ("sid", "0".into()),
            ("lbtot", b.total_conns.load(Ordering::Relaxed).to_string()),
            ("type", "1".into()),
            ("mode", b.conf.mode.as_str().into()),
            ("algo", algo_name(&b.conf.balance).into()),
            ("conn_tot", b.total_conns.load(Ordering::Relaxed).to_string()),
        ]));
    }
    out.push('\n');
    out
}

fn unix_age(t: u64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now.saturating_sub(t)
}

fn show_servers_state(snap: &Snapshot, only: Option<&str>) -> String {
    let mut out = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n");
    let mut backends: Vec<&Arc<BackendRt>> = snap.backends.values().filter(|b| only.is_none_or(|o| b.name() == o)).collect();
    backends.sort_by_key(|b| b.conf.loc.line);
    for (bi, b) in backends.iter().enumerate() {
        for s in &b.servers {
            let (ip, port) = match &s.conf.addr {
                crate::config::addr::ServerAddr::Inet { ip, port } => (
                    ip.to_string(),
                    match port {
                        crate::config::addr::ServerPort::Fixed(p) => p.to_string(),
                        _ => "0".into(),
                    },
                ),
                crate::config::addr::ServerAddr::Unix(p) => (p.display().to_string(), "0".into()),
            };
            let op = if s.is_up_by_checks() { 2 } else { 0 };
            let admin = if s.maint.load(Ordering::Relaxed) {
                1
            } else if s.drain.load(Ordering::Relaxed) {
                8
            } else {
                0
            };
            let health = s.health.lock().map(|h| h.value).unwrap_or(0);
            let _ = writeln!(
                out,
                "{} {} {} {} {ip} {op} {admin} {} {} {} 1 0 {health} {} 0 0 0 - {port} - {} {} - - - 0",
                b.conf.id.map_or(bi + 1, |v| v as usize),
                b.name(),
                s.conf.id,
                s.name(),
                s.weight.load(Ordering::Relaxed),
                s.conf.params.weight,
                unix_age(s.last_change.load(Ordering::Relaxed)),
                if s.conf.params.check { 6 } else { 0 },
                u8::from(s.conf.params.ssl),
                s.conf.params.check_port.unwrap_or(0),
            );
        }
    }
    out.push('\n');
    out
}
