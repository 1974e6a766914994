//! DHCP for `dhcp = true` interfaces: netcfg keeps one busybox `udhcpc` per
//! interface running, with a script of its own that adds the leased address
//! (and the default route, when the file gives none) and remembers the lease,
//! so a renewal with another address replaces the old one. Static addresses
//! of the same interface are left alone.

use std::path::{Path, PathBuf};

/// The files of the DHCP client of `dev` under `run_dir`.
fn pid_file(run_dir: &Path, dev: &str) -> PathBuf {
    run_dir.join(format!("dhcp-{dev}.pid"))
}

pub fn lease_file(run_dir: &Path, dev: &str) -> PathBuf {
    run_dir.join(format!("dhcp-{dev}.lease"))
}

/// The pid in `file` when that process is alive and is `name` (its
/// `/proc/PID/comm`): a stale pid file whose number went to another process
/// is never signalled.
pub fn live_pid(file: &Path, name: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    // A pid of 0 or below would name a process group.
    if pid <= 0 {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == name).then_some(pid)
}

/// The pid of the running client of `dev`, if any (busybox's udhcpc runs as `udhcpc` or `busybox`).
pub fn running(run_dir: &Path, dev: &str) -> Option<i32> {
    let f = pid_file(run_dir, dev);
    live_pid(&f, "udhcpc").or_else(|| live_pid(&f, "busybox"))
}

fn script(run_dir: &Path, default_route: bool) -> String {
    let run = run_dir.display();
    let route = if default_route {
        "    if [ -n \"$router\" ]; then ip route replace default via \"${router%% *}\" dev \"$interface\" proto dhcp; fi\n"
    } else {
        ""
    };
    format!(
        "#!/bin/sh\n# written by netcfg: udhcpc events for one interface\nlease=\"{run}/dhcp-$interface.lease\"\ncase \"$1\" in\n  deconfig)\n    ;;\n  bound|renew)\n    old=$(cat \"$lease\" 2>/dev/null)\n    if [ -n \"$old\" ] && [ \"$old\" != \"$ip/$mask\" ]; then ip addr del \"$old\" dev \"$interface\" 2>/dev/null; fi\n    ip addr replace \"$ip/$mask\" dev \"$interface\"\n{route}    echo \"$ip/$mask\" > \"$lease\"\n    ;;\nesac\nexit 0\n"
    )
}

/// Starts the client of `dev`; returns once it has a lease or has gone to the
/// background to keep asking.
pub fn start(run_dir: &Path, dev: &str, default_route: bool) -> Result<(), String> {
    std::fs::create_dir_all(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let script_path = run_dir.join(format!("udhcpc-{}.script", if default_route { "route" } else { "noroute" }));
    std::fs::write(&script_path, script(run_dir, default_route)).map_err(|e| format!("{}: {e}", script_path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    let status = std::process::Command::new("busybox")
        .args(["udhcpc", "-b", "-t", "4", "-T", "1", "-i", dev, "-p"])
        .arg(pid_file(run_dir, dev))
        .arg("-s")
        .arg(&script_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run busybox udhcpc: {e}"))?;
    if !status.success() {
        return Err(format!("udhcpc on {dev} failed ({status})"));
    }
    Ok(())
}

/// Stops the client of `dev` and removes the address it leased.
pub fn stop(run_dir: &Path, dev: &str) -> Result<(), String> {
    if let Some(pid) = running(run_dir, dev) {
        // SAFETY: a signal to the DHCP client netcfg started (a positive pid).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if let Ok(lease) = std::fs::read_to_string(lease_file(run_dir, dev)) {
        // Keep the other addresses of the lease's subnet when it was the primary one.
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/promote_secondaries"), "1");
        let _ = std::process::Command::new("ip")
            .args(["addr", "del", lease.trim(), "dev", dev])
            .output();
        let _ = std::fs::remove_file(lease_file(run_dir, dev));
    }
    Ok(())
}
