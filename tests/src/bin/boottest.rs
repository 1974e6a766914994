//! `scripts/boot-test`: boots the appliance's disk images (scripts/build-image)
//! under qemu, the way an operator would use each, and drives each through
//! the GUI: the raw image under BIOS and under UEFI, and the qcow2, VMDK and
//! VHDX conversions, each on a different disk controller and network card
//! (virtio, virtio-scsi, VMware's PVSCSI and VMXNET3, AHCI and E1000), so the
//! box's driver loading is exercised too.
//!
//! For each: wait for the console banner and read the first password off it,
//! log into the GUI through qemu's forwarded port and set a new password,
//! apply a configuration whose server is a test server on this machine
//! (10.0.2.2 in qemu's user network is this machine's loopback), get a reply
//! through lbd and see its log line in the Logs tab, then cut the power (a
//! hard reset), and check that the box comes back with the applied
//! configuration and the new password, serving.
//! Also checks the OVA's structure and the raw image's size.
//!
//! `boottest [--images DIR] [--only NAME] [--jobs N] [--out FILE]`

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::gui::Browser;
use e2e::harness::{connect, free_port, wait_until, NamedServer};

/// The raw image must stay under this size (the target).
const MAX_IMAGE_BYTES: u64 = 120_000_000;
/// How long a boot may take under TCG before the test gives up.
const BOOT_LIMIT: Duration = Duration::from_secs(150);
const FIRST_BANNER: &str = "first login: user admin, password: ";
const CHANGED_BANNER: &str = "the admin password has been changed";
const FALLBACK_BANNER: &str = "GUI: https://192.168.1.254:4444/";

#[derive(Clone, Copy, PartialEq)]
enum Firmware {
    Bios,
    Uefi,
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    file: &'static str,
    format: &'static str,
    firmware: Firmware,
    /// qemu's disk controller: virtio-blk, virtio-scsi, pvscsi or ahci.
    disk: &'static str,
    nic: &'static str,
    /// Whether qemu's DHCP server answers; without it the box must take its
    /// documented fallback address (and this boot checks only that).
    dhcp: bool,
}

const VARIANTS: [Variant; 6] = [
    Variant {
        name: "raw-bios",
        file: "lbd-appliance.img",
        format: "raw",
        firmware: Firmware::Bios,
        disk: "virtio-blk",
        nic: "virtio-net-pci",
        dhcp: true,
    },
    Variant {
        name: "raw-uefi",
        file: "lbd-appliance.img",
        format: "raw",
        firmware: Firmware::Uefi,
        disk: "ahci",
        nic: "e1000e",
        dhcp: true,
    },
    Variant {
        name: "qcow2-uefi",
        file: "lbd-appliance.qcow2",
        format: "qcow2",
        firmware: Firmware::Uefi,
        disk: "virtio-scsi",
        nic: "virtio-net-pci",
        dhcp: true,
    },
    Variant {
        name: "vmdk-bios",
        file: "lbd-appliance.vmdk",
        format: "vmdk",
        firmware: Firmware::Bios,
        disk: "pvscsi",
        nic: "vmxnet3",
        dhcp: true,
    },
    Variant {
        name: "vhdx-bios",
        file: "lbd-appliance.vhdx",
        format: "vhdx",
        firmware: Firmware::Bios,
        disk: "ahci",
        nic: "e1000",
        dhcp: true,
    },
    Variant {
        name: "raw-no-dhcp",
        file: "lbd-appliance.img",
        format: "raw",
        firmware: Firmware::Bios,
        disk: "virtio-blk",
        nic: "virtio-net-pci",
        dhcp: false,
    },
];

/// What one boot measured, from power-on.
struct Timings {
    banner: Duration,
    gui: Duration,
    reboot_gui: Duration,
}

fn main() {
    let mut images = e2e::workspace_root().join("target/image/images");
    let mut only: Option<String> = None;
    let mut jobs = 2usize;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--images" => images = PathBuf::from(args.next().expect("--images DIR")),
            "--only" => only = args.next(),
            "--jobs" => jobs = args.next().and_then(|n| n.parse().ok()).unwrap_or(2).max(1),
            "--out" => out = args.next().map(PathBuf::from),
            other => {
                eprintln!("boottest: unknown argument {other}\nusage: boottest [--images DIR] [--only NAME] [--jobs N] [--out FILE]");
                std::process::exit(2);
            }
        }
    }
    let mut report = String::from("# Boot test\n\n");
    let mut failed = false;
    match check_outputs(&images) {
        Ok(text) => report.push_str(&text),
        Err(e) => {
            report.push_str(&format!("- outputs: FAILED: {e}\n"));
            failed = true;
        }
    }
    let variants: Vec<Variant> = VARIANTS
        .iter()
        .copied()
        .filter(|v| only.as_deref().is_none_or(|o| v.name.contains(o)))
        .collect();
    // A few boots at a time: each qemu under TCG keeps a core busy.
    let mut results: Vec<(Variant, Result<Timings, String>)> = Vec::new();
    for chunk in variants.chunks(jobs) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|v| {
                let (v, images) = (*v, images.clone());
                std::thread::spawn(move || {
                    let r = boot(&v, &images);
                    match &r {
                        Ok(t) => eprintln!(
                            "boottest: {}: ok (banner {:.1} s, GUI {:.1} s, after the reset {:.1} s)",
                            v.name,
                            t.banner.as_secs_f64(),
                            t.gui.as_secs_f64(),
                            t.reboot_gui.as_secs_f64()
                        ),
                        Err(e) => eprintln!("boottest: {}: FAILED: {e}", v.name),
                    }
                    (v, r)
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => results.push(r),
                Err(_) => {
                    failed = true;
                    report.push_str("- a boot thread panicked\n");
                }
            }
        }
    }
    report.push_str("\n| image | firmware | disk | network card | console banner | GUI answers | GUI after a power cut | result |\n|---|---|---|---|---|---|---|---|\n");
    for (v, r) in &results {
        let fw = if v.firmware == Firmware::Bios { "BIOS" } else { "UEFI" };
        match r {
            Ok(t) if !v.dhcp => report.push_str(&format!(
                "| {} | {fw} | {} | {} (no DHCP server) | {:.1} s: the fallback address 192.168.1.254 | | | ok |\n",
                v.file,
                v.disk,
                v.nic,
                t.banner.as_secs_f64()
            )),
            Ok(t) => report.push_str(&format!(
                "| {} | {fw} | {} | {} | {:.1} s | {:.1} s | {:.1} s | ok |\n",
                v.file,
                v.disk,
                v.nic,
                t.banner.as_secs_f64(),
                t.gui.as_secs_f64(),
                t.reboot_gui.as_secs_f64()
            )),
            Err(e) => {
                failed = true;
                report.push_str(&format!(
                    "| {} | {fw} | {} | {} | | | | FAILED: {} |\n",
                    v.file,
                    v.disk,
                    v.nic,
                    e.replace('|', "/").replace('\n', " ")
                ));
            }
        }
    }
    if results.is_empty() {
        failed = true;
        report.push_str("\nno image matched --only\n");
    }
    print!("{report}");
    if let Some(out) = out {
        if let Err(e) = std::fs::write(&out, &report) {
            eprintln!("boottest: {}: {e}", out.display());
        }
    }
    std::process::exit(i32::from(failed));
}

/// Every output exists, the raw image is whole MiB and under the size
/// target, and the OVA is a descriptor, a manifest whose digests match and
/// the VMDK, in that order.
fn check_outputs(images: &Path) -> Result<String, String> {
    let mut text = String::new();
    let raw = images.join("lbd-appliance.img");
    let raw_size = std::fs::metadata(&raw).map_err(|e| format!("{}: {e}", raw.display()))?.len();
    if raw_size % (1 << 20) != 0 {
        return Err(format!("the raw image is {raw_size} bytes, not whole MiB"));
    }
    if raw_size >= MAX_IMAGE_BYTES {
        return Err(format!("the raw image is {raw_size} bytes, over the {MAX_IMAGE_BYTES} target"));
    }
    for ext in ["img", "qcow2", "vmdk", "vhdx", "ova"] {
        let p = images.join(format!("lbd-appliance.{ext}"));
        let len = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?.len();
        text.push_str(&format!("- `lbd-appliance.{ext}`: {:.1} MiB\n", len as f64 / 1048576.0));
    }
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(images.join("lbd-appliance.vmdk"))
        .output()
        .map_err(|e| format!("qemu-img: {e}"))?;
    let info = String::from_utf8_lossy(&info.stdout);
    if !info.contains("streamOptimized") {
        return Err(format!("the VMDK is not streamOptimized: {info}"));
    }
    // The OVA: a tar whose members come in the order OVF asks for.
    let scratch = images.join("ova-check");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let list = Command::new("tar")
        .arg("-tf")
        .arg(images.join("lbd-appliance.ova"))
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    let members: Vec<String> = String::from_utf8_lossy(&list.stdout).lines().map(str::to_owned).collect();
    let want = ["lbd-appliance.ovf", "lbd-appliance.mf", "lbd-appliance-disk1.vmdk"];
    if members != want {
        return Err(format!("the OVA holds {members:?}, not {want:?}"));
    }
    let status = Command::new("tar")
        .arg("-xf")
        .arg(images.join("lbd-appliance.ova"))
        .arg("-C")
        .arg(&scratch)
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err("the OVA does not unpack".into());
    }
    let manifest = std::fs::read_to_string(scratch.join("lbd-appliance.mf")).map_err(|e| e.to_string())?;
    for file in ["lbd-appliance.ovf", "lbd-appliance-disk1.vmdk"] {
        let sum = Command::new("sha256sum")
            .arg(scratch.join(file))
            .output()
            .map_err(|e| e.to_string())?;
        let sum = String::from_utf8_lossy(&sum.stdout)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !manifest.contains(&format!("SHA256({file})= {sum}")) {
            return Err(format!("the OVA's manifest does not match {file}: {manifest}"));
        }
    }
    let ovf = std::fs::read_to_string(scratch.join("lbd-appliance.ovf")).map_err(|e| e.to_string())?;
    if !ovf.contains(&format!("ovf:capacity=\"{raw_size}\"")) {
        return Err("the OVF descriptor's disk capacity is not the raw image's size".into());
    }
    let _ = std::fs::remove_dir_all(&scratch);
    text.push_str(&format!(
        "- raw image {raw_size} bytes (whole MiB, under {MAX_IMAGE_BYTES}); VMDK streamOptimized; OVA: descriptor, manifest (digests checked), disk\n"
    ));
    Ok(text)
}

/// qemu, killed when dropped.
struct Vm {
    child: Child,
    console: PathBuf,
    monitor: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Vm {
    fn console(&self) -> String {
        std::fs::read(&self.console)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits for `needle` on the console after byte `from`; returns the rest
    /// of the line after it.
    fn wait_console(&mut self, needle: &str, from: usize, limit: Duration) -> Result<String, String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let text = self.console();
            if let Some(at) = text.get(from..).and_then(|t| t.find(needle)) {
                let rest = &text[from + at + needle.len()..];
                if let Some(line) = rest.split(['\r', '\n']).next().filter(|_| rest.contains('\n')) {
                    return Ok(line.trim().to_owned());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("qemu exited ({status}) before {needle:?}: {}", tail(&text)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("no {needle:?} on the console within {limit:?}: {}", tail(&self.console())))
    }

    fn monitor(&self, cmd: &str) -> Result<(), String> {
        let mut s = UnixStream::connect(&self.monitor).map_err(|e| format!("qemu monitor: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(200))).ok();
        s.write_all(format!("{cmd}\n").as_bytes())
            .map_err(|e| format!("qemu monitor: {e}"))?;
        // The monitor has run the command once it prompts a second time
        // (closing the socket sooner may drop the command unread).
        let mut seen = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < Duration::from_secs(10) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if String::from_utf8_lossy(&seen).matches("(qemu)").count() >= 2 {
                return Ok(());
            }
        }
        if cmd == "quit" {
            return Ok(());
        }
        Err(format!("the qemu monitor did not run {cmd:?}: {}", String::from_utf8_lossy(&seen)))
    }
}

fn tail(text: &str) -> String {
    let cut = text.len().saturating_sub(1500);
    let cut = (cut..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    text[cut..].to_owned()
}

fn boot(v: &Variant, images: &Path) -> Result<Timings, String> {
    let dir = images.join("..").join("boot").join(v.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let source = images.join(v.file);
    let (disk, format) = if v.format == "vmdk" {
        // qemu cannot write into a streamOptimized VMDK (VMware converts it
        // on import too): the VM reads the VMDK through a qcow2 overlay
        // that takes its writes, and keeps them across the reset.
        let overlay = dir.join("disk.qcow2");
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "vmdk", "-b"])
            .arg(std::fs::canonicalize(&source).map_err(|e| format!("{}: {e}", source.display()))?)
            .arg(&overlay)
            .status()
            .map_err(|e| format!("qemu-img: {e}"))?;
        if !st.success() {
            return Err("qemu-img create failed".into());
        }
        (overlay, "qcow2")
    } else {
        let copy = dir.join(v.file);
        std::fs::copy(&source, &copy).map_err(|e| format!("{}: {e}", source.display()))?;
        (copy, v.format)
    };
    let server = NamedServer::start(&format!("host-of-{}", v.name), "127.0.0.1:0");
    let gui_port = free_port();
    let lb_port = free_port();
    let console = dir.join("console.log");
    let monitor = dir.join("monitor.sock");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-m", "1024", "-smp", "1", "-display", "none", "-no-user-config", "-nodefaults"]);
    if std::env::var("BOOT_TEST_ACCEL").as_deref() == Ok("kvm") {
        cmd.args(["-accel", "kvm"]);
    } else {
        cmd.args(["-accel", "tcg"]);
    }
    cmd.arg("-serial").arg(format!("file:{}", console.display()));
    cmd.arg("-monitor").arg(format!("unix:{},server=on,wait=off", monitor.display()));
    cmd.args(["-vga", "std"]);
    if v.firmware == Firmware::Uefi {
        let vars = dir.join("OVMF_VARS.fd");
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars).map_err(|e| format!("OVMF (package ovmf): {e}"))?;
        cmd.args(["-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"]);
        cmd.arg("-drive").arg(format!("if=pflash,format=raw,file={}", vars.display()));
    }
    cmd.arg("-drive")
        .arg(format!("file={},format={format},if=none,id=d0", disk.display()));
    match v.disk {
        "virtio-blk" => cmd.args(["-device", "virtio-blk-pci,drive=d0,bootindex=0"]),
        "virtio-scsi" => cmd.args([
            "-device",
            "virtio-scsi-pci,id=s0",
            "-device",
            "scsi-hd,drive=d0,bus=s0.0,bootindex=0",
        ]),
        "pvscsi" => cmd.args(["-device", "pvscsi,id=s0", "-device", "scsi-hd,drive=d0,bus=s0.0,bootindex=0"]),
        _ => cmd.args(["-device", "ahci,id=a0", "-device", "ide-hd,drive=d0,bus=a0.0,bootindex=0"]),
    };
    if v.dhcp {
        cmd.args(["-netdev"]).arg(format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{gui_port}-:4444,hostfwd=tcp:127.0.0.1:{lb_port}-:8080"
        ));
    } else {
        // A network with nobody on it: no DHCP server answers.
        cmd.args(["-netdev"]).arg(format!("socket,id=n0,listen=127.0.0.1:{}", free_port()));
    }
    cmd.arg("-device").arg(format!("{},netdev=n0", v.nic));
    cmd.args(["-device", "virtio-rng-pci"]);
    let log = std::fs::File::create(dir.join("qemu.log")).map_err(|e| e.to_string())?;
    let power_on = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let mut vm = Vm { child, console, monitor };
    if !v.dhcp {
        // No lease: after 20 s the first card takes the documented fallback
        // address, and the banner says where the GUI is.
        vm.wait_console(FALLBACK_BANNER, 0, BOOT_LIMIT)?;
        let t = power_on.elapsed();
        let _ = vm.monitor("quit");
        return Ok(Timings {
            banner: t,
            gui: t,
            reboot_gui: Duration::ZERO,
        });
    }

    // The console's banner gives the first password.
    let password = vm.wait_console(FIRST_BANNER, 0, BOOT_LIMIT)?;
    let password = password.split_whitespace().next().unwrap_or_default().to_owned();
    let banner = power_on.elapsed();
    let base = format!("https://127.0.0.1:{gui_port}");
    let gui = wait_gui(&base, power_on, BOOT_LIMIT)?;
    let br = Browser::new(&base, &dir.join("jar"));
    if !br.login("admin", &password) {
        return Err(format!("the GUI refused the console's first password {password:?}"));
    }
    let new_password = format!("boot-test-{}", v.name);
    br.change_password(&password, &new_password);
    // A configuration whose server is this machine, through qemu's user network.
    let config = format!(
        "defaults\n  mode tcp\n  log global\n  option tcplog\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n\
         frontend ft_boot\n  bind :8080\n  default_backend bk_host\n\n\
         backend bk_host\n  server host 10.0.2.2:{} check inter 1s\n",
        server.port()
    );
    let csrf = br.csrf("/lb7");
    let (code, html) = br.post("/lb7/apply", &[("csrf", &csrf), ("text", &config), ("comment", "boot test")]);
    if code != 200 || !html.contains("Applied as revision") {
        return Err(format!("Apply through the GUI: {code}: {}", tail(&html)));
    }
    let front = format!("127.0.0.1:{lb_port}");
    expect_reply(&front, &server.name)?;
    // lbd's traffic log reaches the box's syslog, which the Logs tab shows.
    let logged = wait_until(Duration::from_secs(20), || br.get("/logs").1.contains("ft_boot bk_host/host"));
    if logged.is_none() {
        return Err(format!(
            "the Logs tab shows no log line of the connection: {}",
            tail(&br.get("/logs").1)
        ));
    }
    // The first boot's network file (DHCP on the first card) is the Setup tab's.
    let (_, setup) = br.get("/setup");
    if !setup.contains("dhcp = true") {
        return Err(format!(
            "the Setup tab does not show the first boot's network file: {}",
            tail(&setup)
        ));
    }

    // Power cut: a hard reset, then everything must come back from /config.
    let from = vm.console().len();
    vm.monitor("system_reset")?;
    let reset_at = Instant::now();
    vm.wait_console(CHANGED_BANNER, from, BOOT_LIMIT)?;
    let reboot_gui = wait_gui(&base, reset_at, BOOT_LIMIT)?;
    let br = Browser::new(&base, &dir.join("jar2"));
    if br.login("admin", &password) {
        return Err("after the reset the first password still works".into());
    }
    if !br.login("admin", &new_password) {
        return Err("after the reset the new password does not work".into());
    }
    let (code, html) = br.get("/lb7");
    if code != 200 || !html.contains(&format!("server host 10.0.2.2:{}", server.port())) {
        return Err(format!(
            "after the reset the LB Layer7 tab lost the applied configuration: {code}: {}",
            tail(&html)
        ));
    }
    expect_reply(&front, &server.name)?;
    // The power button (a hypervisor's guest shutdown): a clean power-off.
    let from = vm.console().len();
    vm.monitor("system_powerdown")?;
    vm.wait_console("lbd: /config is clean", from, Duration::from_secs(60))?;
    let off = wait_until(Duration::from_secs(60), || matches!(vm.child.try_wait(), Ok(Some(_))));
    if off.is_none() {
        return Err("the box did not power off after the power button".into());
    }
    Ok(Timings { banner, gui, reboot_gui })
}

/// Waits until the GUI's login page answers; returns the time since `since`.
fn wait_gui(base: &str, since: Instant, limit: Duration) -> Result<Duration, String> {
    while since.elapsed() < limit {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{base}/login"))
            .output()
            .map_err(|e| format!("curl: {e}"))?;
        if out.stdout == b"200" {
            return Ok(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("the GUI did not answer on {base} within {limit:?}"))
}

/// lbd in the VM forwards a connection to the test server, which answers
/// with its name (retried while lbd's check brings the server up).
fn expect_reply(front: &str, name: &str) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        let mut s = connect(front);
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        last = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
        if last == name {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("no reply from the test server through lbd at {front} (last: {last:?})"))
}
