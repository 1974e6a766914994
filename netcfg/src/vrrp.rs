//! VRRP through keepalived (Debian's package; netcfg does not speak VRRP
//! itself): the file's `[[vrrp]]` instances become a keepalived
//! configuration, written when it changes; keepalived is started when it is
//! not running and told to reload (SIGHUP) otherwise. A notify script keeps
//! each instance's state (MASTER, BACKUP, FAULT) in a file `netcfg show` reads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where keepalived's files go; the defaults are the appliance's.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Keepalived {
    #[serde(default = "default_config")]
    pub config: PathBuf,
    /// The directory of keepalived's pid files and of the instances' state files.
    #[serde(default = "default_run")]
    pub run_dir: PathBuf,
}

impl Default for Keepalived {
    fn default() -> Self {
        Keepalived {
            config: default_config(),
            run_dir: default_run(),
        }
    }
}

fn default_config() -> PathBuf {
    PathBuf::from("/etc/keepalived/keepalived.conf")
}

fn default_run() -> PathBuf {
    PathBuf::from("/run/netcfg")
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: u8,
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default = "yes")]
    pub preempt: bool,
    /// Seconds between advertisements.
    #[serde(default = "one")]
    pub advert_int: u32,
    /// VRRP's simple password authentication (up to 8 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<String>,
    pub vips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unicast_src: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<String>,
    /// A command that succeeds while lbd is alive; failing, it takes the
    /// instance to FAULT so the backup takes the VIPs. Default: lbd's runtime socket answers.
    #[serde(default = "default_track")]
    pub track_script: String,
}

fn default_priority() -> u8 {
    100
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn default_track() -> String {
    "/usr/bin/socat -u OPEN:/dev/null UNIX-CONNECT:/run/lbd/lbd.sock".into()
}

/// Checks the instances; messages name the instance and the key.
pub fn check(list: &[Instance]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for i in list {
        let e = |key: &str, m: String| (key.to_owned(), format!("vrrp '{}': {m}", i.name));
        if i.name.is_empty() || !i.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            errors.push(e("name", "use letters, digits, '_' and '-'".into()));
        }
        if i.virtual_router_id == 0 {
            errors.push(e("virtual_router_id", "must be 1 to 255".into()));
        }
        if !ids.insert((i.interface.clone(), i.virtual_router_id)) {
            errors.push(e(
                "virtual_router_id",
                format!("{} is used twice on {}", i.virtual_router_id, i.interface),
            ));
        }
        if i.priority == 0 || i.priority == 255 && !i.preempt {
            errors.push(e("priority", "must be 1 to 254 (255 means owner, which always preempts)".into()));
        }
        if i.auth_pass
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > 8 || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-+=@%".contains(c)))
        {
            errors.push(e("auth_pass", "VRRP passwords are 1 to 8 letters, digits or ._-+=@%".into()));
        }
        if i.track_script.is_empty() || i.track_script.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            errors.push(e(
                "track_script",
                "one command line, without quotes, backslashes or control characters".into(),
            ));
        }
        if !crate::model::valid_ifname(&i.interface) {
            errors.push(e("interface", format!("'{}' is not an interface name", i.interface)));
        }
        if i.vips.is_empty() {
            errors.push(e("vips", "an instance needs at least one VIP".into()));
        }
        for v in &i.vips {
            if let Err(m) = crate::model::cidr(v) {
                errors.push(e("vips", m));
            }
        }
        for p in i.unicast_peers.iter().chain(i.unicast_src.iter()) {
            if p.parse::<std::net::IpAddr>().is_err() {
                errors.push(e("unicast_peers", format!("'{p}' is not an IP address")));
            }
        }
        if i.advert_int == 0 {
            errors.push(e("advert_int", "must be at least 1 second".into()));
        }
    }
    errors
}

/// A path netcfg writes as root and puts into shell scripts: absolute, plain characters only.
fn plain_path(p: &Path) -> bool {
    let t = p.display().to_string();
    t.starts_with('/') && !t.contains("..") && t.chars().all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
}

/// Checks where keepalived's files go.
pub fn check_paths(k: &Keepalived) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for (key, p) in [("config", &k.config), ("run_dir", &k.run_dir)] {
        if !plain_path(p) {
            errors.push((
                key.to_owned(),
                format!("keepalived {key} '{}': an absolute path of letters, digits and /._-", p.display()),
            ));
        }
    }
    // Never overwrite a file netcfg did not write.
    if let Ok(text) = std::fs::read_to_string(&k.config) {
        if !text.starts_with(HEADER) {
            errors.push((
                "config".to_owned(),
                format!("{} exists and was not written by netcfg: move it away first", k.config.display()),
            ));
        }
    }
    errors
}

const HEADER: &str = "# written by netcfg";

/// keepalived's configuration for `list`.
pub fn render(list: &[Instance], k: &Keepalived) -> String {
    let run = k.run_dir.display();
    let mut s = format!("{HEADER} from the network file; edit that file, not this one\n");
    let _ = writeln!(s, "global_defs {{\n    script_user root\n    enable_script_security\n}}\n");
    for (n, i) in list.iter().enumerate() {
        let _ = writeln!(
            s,
            "vrrp_script track_{n} {{\n    script \"{}\"\n    interval 1\n    timeout 2\n    fall 2\n    rise 2\n}}\n",
            i.track_script.replace('"', "\\\"")
        );
    }
    for (n, i) in list.iter().enumerate() {
        let _ = writeln!(s, "vrrp_instance {} {{", i.name);
        let _ = writeln!(s, "    state BACKUP");
        let _ = writeln!(s, "    interface {}", i.interface);
        let _ = writeln!(s, "    virtual_router_id {}", i.virtual_router_id);
        let _ = writeln!(s, "    priority {}", i.priority);
        let _ = writeln!(s, "    advert_int {}", i.advert_int);
        if !i.preempt {
            let _ = writeln!(s, "    nopreempt");
        }
        if let Some(p) = &i.auth_pass {
            let _ = writeln!(s, "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}");
        }
        if let Some(src) = &i.unicast_src {
            let _ = writeln!(s, "    unicast_src_ip {src}");
        }
        if !i.unicast_peers.is_empty() {
            let _ = writeln!(s, "    unicast_peer {{\n        {}\n    }}", i.unicast_peers.join("\n        "));
        }
        let _ = writeln!(s, "    virtual_ipaddress {{");
        for v in &i.vips {
            let _ = writeln!(s, "        {v} dev {}", i.interface);
        }
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "    track_script {{\n        track_{n}\n    }}");
        let _ = writeln!(s, "    notify \"{run}/vrrp-notify.sh\"");
        let _ = writeln!(s, "}}\n");
    }
    s
}

fn pid_file(k: &Keepalived) -> PathBuf {
    k.run_dir.join("keepalived.pid")
}

fn running(k: &Keepalived) -> Option<i32> {
    crate::dhcp::live_pid(&pid_file(k), "keepalived")
}

/// Stops the keepalived netcfg started (the file has no VRRP instance any more).
pub fn stop(k: &Keepalived) -> Option<String> {
    let pid = running(k)?;
    // SAFETY: a positive pid whose process is keepalived (checked by `running`).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = std::fs::remove_file(&k.config);
    Some(format!("keepalived stopped ({} removed)", k.config.display()))
}

/// Writes the configuration when it changed, then starts or reloads keepalived.
/// Returns what was done, for the report.
pub fn apply(list: &[Instance], k: &Keepalived) -> Result<Option<String>, String> {
    let text = render(list, k);
    std::fs::create_dir_all(&k.run_dir).map_err(|e| format!("{}: {e}", k.run_dir.display()))?;
    let notify = k.run_dir.join("vrrp-notify.sh");
    // keepalived calls it with: TYPE NAME STATE PRIORITY.
    let script = format!("#!/bin/sh\necho \"$3\" > \"{}/vrrp-$2.state\"\n", k.run_dir.display());
    if std::fs::read_to_string(&notify).ok().as_deref() != Some(script.as_str()) {
        std::fs::write(&notify, &script).map_err(|e| format!("{}: {e}", notify.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    }
    let changed = std::fs::read_to_string(&k.config).ok().as_deref() != Some(text.as_str());
    if changed {
        if let Some(dir) = k.config.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let tmp = k.config.with_extension("netcfg-new");
        std::fs::write(&tmp, &text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        check_with_keepalived(&tmp)?;
        std::fs::rename(&tmp, &k.config).map_err(|e| format!("{}: {e}", k.config.display()))?;
    }
    match running(k) {
        Some(pid) if changed => {
            // SAFETY: a signal to the keepalived this netcfg started.
            unsafe { libc::kill(pid, libc::SIGHUP) };
            Ok(Some(format!("keepalived reloaded ({})", k.config.display())))
        }
        Some(_) => Ok(None),
        None => {
            start(k)?;
            Ok(Some(format!("keepalived started ({})", k.config.display())))
        }
    }
}

/// `keepalived -t`: the configuration as keepalived itself reads it.
fn check_with_keepalived(file: &Path) -> Result<(), String> {
    let out = std::process::Command::new("keepalived")
        .arg("-t")
        .arg("-f")
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run keepalived (Debian package keepalived): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "keepalived refuses the generated configuration: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn start(k: &Keepalived) -> Result<(), String> {
    let status = std::process::Command::new("keepalived")
        .arg("-f")
        .arg(&k.config)
        .arg("-p")
        .arg(pid_file(k))
        .arg("-r")
        .arg(k.run_dir.join("vrrp.pid"))
        .arg("-c")
        .arg(k.run_dir.join("checkers.pid"))
        .status()
        .map_err(|e| format!("cannot run keepalived: {e}"))?;
    if !status.success() {
        return Err(format!("keepalived did not start ({status})"));
    }
    // It daemonises; its pid file appears shortly.
    for _ in 0..50 {
        if running(k).is_some() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err("keepalived did not write its pid file".into())
}

/// Each instance's state as keepalived last reported it.
pub fn states(list: &[Instance], k: &Keepalived) -> Vec<(String, String)> {
    list.iter()
        .map(|i| {
            let st = std::fs::read_to_string(k.run_dir.join(format!("vrrp-{}.state", i.name)))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "UNKNOWN".into());
            let st = if running(k).is_none() { "STOPPED".to_owned() } else { st };
            (i.name.clone(), st)
        })
        .collect()
}
