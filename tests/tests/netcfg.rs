//! netcfg end to end, in network namespaces the tests create (veth pairs and a
//! bridge inside them; the host's own interfaces are never touched): apply
//! from a bare namespace, idempotence, `show` round trip, minimal changes
//! (watched with `ip monitor`), validation errors that change nothing, and a
//! failure midway rolled back.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use e2e::harness::Scratch;
use e2e::netcfg_bin;
use e2e::netns::Netns;

fn ip(ns: &Netns, args: &[&str]) -> String {
    let out = Command::new("ip").arg("-n").arg(&ns.name).args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace with three veth pairs (veth0..veth5) and a bridge, nothing configured.
fn bare(tag: &str) -> Netns {
    let ns = Netns::new(tag, &[]);
    for (a, b) in [("veth0", "veth1"), ("veth2", "veth3"), ("veth4", "veth5")] {
        ip(&ns, &["link", "add", a, "type", "veth", "peer", "name", b]);
    }
    ip(&ns, &["link", "add", "br0", "type", "bridge"]);
    ns
}

fn netcfg(ns: &Netns, file: &Path, cmd: &str, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name]).arg(netcfg_bin()).arg("-c").arg(file).arg(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run netcfg")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// What the kernel holds: addresses, routes, links (without counters), and the sysctls netcfg sets.
fn state(ns: &Netns) -> String {
    let sys = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-c"])
        .arg("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_nonlocal_bind /proc/sys/net/core/somaxconn")
        .output()
        .expect("sysctl");
    format!(
        "{}{}{}{}",
        ip(ns, &["-br", "addr"]),
        ip(ns, &["route"]),
        ip(ns, &["-br", "link"]),
        String::from_utf8_lossy(&sys.stdout)
    )
}

/// The sender addresses of the gratuitous ARPs (sender = target) seen on `dev` for 2 s.
fn garp_senders(dev: &str, ready: std::sync::mpsc::Sender<()>) -> Vec<[u8; 4]> {
    let mut seen = Vec::new();
    // SAFETY: a packet socket this function owns, bound to `dev`, read with a timeout.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(0x0806u16.to_be()));
        assert!(fd >= 0, "packet socket: {}", std::io::Error::last_os_error());
        // This thread's network namespace (sysfs would show the mount's).
        let cname = std::ffi::CString::new(dev).expect("name");
        let ifindex = libc::if_nametoindex(cname.as_ptr()) as i32;
        assert!(ifindex > 0, "no {dev} here");
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = 0x0806u16.to_be();
        addr.sll_ifindex = ifindex;
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let _ = ready.send(());
        let end = std::time::Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 128];
        while std::time::Instant::now() < end {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n >= 42 && buf[12..14] == [0x08, 0x06] && buf[28..32] == buf[38..42] {
                seen.push([buf[28], buf[29], buf[30], buf[31]]);
            }
        }
        libc::close(fd);
    }
    seen
}

const FULL: &str = r#"# the appliance's network
[[interface]]
name = "veth0"
mtu = 1400
addresses = ["10.9.0.2/24", "fd00:9::2/64"]

[[interface]]
name = "veth2"
addresses = ["10.9.1.2/24"]

[[interface]]
name = "br0"
addresses = ["10.9.2.2/24"]

[[route]]
to = "default"
via = "10.9.0.1"

[[route]]
to = "192.168.50.0/24"
via = "10.9.1.1"
metric = 50

[[vip]]
address = "10.9.0.17/24"
interface = "veth0"

[[vip]]
address = "fd00:9::17/64"
interface = "veth0"

[sysctl]
ip_forward = true
ip_nonlocal_bind = true
somaxconn = 4096
"#;

/// `ip netns exec` shows `/etc/netns/NAME/resolv.conf` as `/etc/resolv.conf`:
/// netcfg's DNS settings land there, never in the host's own file.
struct NetnsEtc(std::path::PathBuf);

impl NetnsEtc {
    fn new(ns: &Netns) -> NetnsEtc {
        let dir = std::path::PathBuf::from(format!("/etc/netns/{}", ns.name));
        std::fs::create_dir_all(&dir).expect("/etc/netns dir");
        std::fs::write(dir.join("resolv.conf"), "# placeholder\n").expect("resolv.conf");
        NetnsEtc(dir)
    }
}

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn apply_from_bare_then_idempotent_show_round_trips_and_edits_touch_only_what_differs() {
    let ns = bare("ncfull");
    let etc = NetnsEtc::new(&ns);
    let host_resolv = std::fs::read("/etc/resolv.conf").ok();
    let dir = Scratch::new("netcfg");
    let file = dir.path.join("network.toml");
    // veth4 is named by its MAC address, as a NIC whose name is not known in advance.
    let link = ip(&ns, &["-br", "link", "show", "veth4"]);
    let mac = link.split_whitespace().nth(2).expect("mac").to_owned();
    let full = format!(
        "{FULL}\n[[interface]]\nmac = \"{mac}\"\naddresses = [\"10.9.4.2/24\"]\n\n[dns]\nservers = [\"10.9.0.53\", \"fd00:9::53\"]\nsearch = [\"xlc.local\"]\n"
    );
    std::fs::write(&file, &full).expect("write");
    // veth0's peer listens for ARP: adding the VIP must announce it (gratuitous ARP).
    ip(&ns, &["link", "set", "veth1", "up"]);
    let arp = {
        let (tx, rx) = std::sync::mpsc::channel();
        let name = ns.name.clone();
        let t = std::thread::spawn(move || e2e::web::run_in_netns(&name, move || garp_senders("veth1", tx)));
        rx.recv_timeout(Duration::from_secs(5)).expect("ARP listener ready");
        t
    };
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("applied"), "{}", text(&o));
    let senders = arp.join().expect("ARP listener");
    assert!(
        senders.contains(&[10, 9, 0, 17]),
        "no gratuitous ARP for the VIP 10.9.0.17: {senders:?}"
    );
    let addrs = ip(&ns, &["-br", "addr"]);
    for a in [
        "10.9.0.2/24",
        "10.9.0.17/24",
        "fd00:9::2/64",
        "fd00:9::17/64",
        "10.9.1.2/24",
        "10.9.2.2/24",
    ] {
        assert!(addrs.contains(a), "{a} missing:\n{addrs}");
    }
    let routes = ip(&ns, &["route"]);
    assert!(routes.contains("default via 10.9.0.1 dev veth0 proto static"), "{routes}");
    assert!(
        routes.contains("192.168.50.0/24 via 10.9.1.1 dev veth2 proto static metric 50"),
        "{routes}"
    );
    assert!(ip(&ns, &["link", "show", "veth0"]).contains("mtu 1400"));
    assert!(state(&ns).ends_with("1\n1\n4096\n"), "sysctls: {}", state(&ns));
    assert!(ip(&ns, &["-br", "addr", "show", "veth4"]).contains("10.9.4.2/24"), "matched by MAC");
    let resolv = std::fs::read_to_string(etc.0.join("resolv.conf")).expect("resolv.conf");
    assert_eq!(
        resolv,
        "# written by netcfg\nsearch xlc.local\nnameserver 10.9.0.53\nnameserver fd00:9::53\n"
    );
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        host_resolv,
        "the host's own resolv.conf is untouched"
    );

    // A second apply changes nothing and says so.
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(o.status.success() && text(&o).contains("no change"), "{}", text(&o));

    // show, fed back, plans nothing.
    let shown = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(netcfg_bin())
        .arg("show")
        .output()
        .expect("show");
    assert!(shown.status.success());
    let shown_file = dir.path.join("shown.toml");
    std::fs::write(&shown_file, &shown.stdout).expect("write");
    let o = netcfg(&ns, &shown_file, "plan", &[]);
    assert!(
        o.status.success() && text(&o).trim() == "no change",
        "show does not round-trip:\n{}\n---\n{}",
        String::from_utf8_lossy(&shown.stdout),
        text(&o)
    );

    // An edit: one address replaced on a managed interface, one route added. Watch
    // the kernel's events while it applies: only those changes happen.
    let edited = full
        .replace(
            "name = \"veth2\"\naddresses = [\"10.9.1.2/24\"]",
            "name = \"veth2\"\nmanaged = true\naddresses = [\"10.9.1.3/24\"]",
        )
        .replace(
            "[[vip]]\naddress = \"10.9.0.17/24\"",
            "[[route]]\nto = \"172.16.0.0/12\"\nvia = \"10.9.2.1\"\n\n[[vip]]\naddress = \"10.9.0.17/24\"",
        );
    std::fs::write(&file, &edited).expect("write");
    let mut monitor = Command::new("ip")
        .args(["-n", &ns.name, "monitor", "address", "route", "link"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    std::thread::sleep(Duration::from_millis(300));
    let o = netcfg(&ns, &file, "apply", &[]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = monitor.kill();
    let events = String::from_utf8_lossy(&monitor.wait_with_output().expect("monitor").stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    let applied = text(&o);
    let steps = applied.lines().filter(|l| l.contains(". ")).count();
    assert_eq!(steps, 3, "{applied}");
    for e in events.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(' ')) {
        let expected = e.contains("10.9.1.2")
            || e.contains("10.9.1.3")
            || e.contains("172.16.0.0/12")
            || e.contains("10.9.1.0/24")
            || e.contains("192.168.50.0/24");
        assert!(expected, "unexpected change: {e}\nall events:\n{events}");
    }
    assert!(events.contains("Deleted") && events.contains("10.9.1.2/24"), "{events}");
    assert!(events.contains("10.9.1.3/24"), "{events}");
    assert!(events.contains("172.16.0.0/12"), "{events}");
}

#[test]
fn each_mistake_names_line_and_key_and_changes_nothing() {
    let ns = bare("ncerr");
    let dir = Scratch::new("netcfg");
    let file = dir.path.join("network.toml");
    let before = state(&ns);
    let cases: &[(&str, usize, &str, &str)] = &[
        ("[[interface]]\nname = \"veth0\"\nmtuu = 1400\n", 3, "mtuu", "unknown field"),
        ("[[interface]]\nname = \"veth0\"\naddresses = [\"10.9.0.300/24\"]\n", 3, "addresses", "not an address"),
        ("[[interface]]\nname = \"veth0\"\naddresses = [\"10.9.0.2\"]\n", 3, "addresses", "prefix length"),
        ("[[vlan]]\nname = \"eth9.10\"\nparent = \"eth9\"\nid = 10\n", 3, "parent", "does not exist"),
        (
            "[[interface]]\nname = \"veth0\"\naddresses = [\"10.9.0.2/24\"]\n\n[[route]]\nto = \"default\"\nvia = \"10.77.0.1\"\n",
            5,
            "via",
            "cannot be reached",
        ),
        (
            "[[interface]]\nname = \"veth0\"\naddresses = [\"10.9.0.2/24\"]\n\n[[interface]]\nname = \"veth2\"\naddresses = [\"10.9.0.2/16\"]\n",
            7,
            "addresses",
            "already given at line 6",
        ),
        ("[[interface]]\nname = \"nope0\"\n", 1, "name", "no interface 'nope0'"),
    ];
    for (toml_text, line, key, needle) in cases {
        // A valid part first, so that a partial apply would show.
        let content = format!("[sysctl]\nip_forward = true\n\n{toml_text}");
        std::fs::write(&file, &content).expect("write");
        let o = netcfg(&ns, &file, "apply", &[]);
        let out = text(&o);
        assert!(!o.status.success(), "{content}\n{out}");
        let line = line + 3;
        let msg = out
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no message with {needle:?}:\n{out}"));
        assert!(
            msg.contains(&format!("line {line}: {key}:")),
            "expected line {line}, key {key}: {msg}"
        );
        assert!(out.contains("nothing was changed"), "{out}");
        assert_eq!(state(&ns), before, "the namespace changed after:\n{content}");
    }
}

#[test]
fn a_step_that_fails_midway_is_rolled_back() {
    let ns = bare("ncroll");
    let dir = Scratch::new("netcfg");
    let file = dir.path.join("network.toml");
    std::fs::write(&file, FULL).expect("write");
    let before = state(&ns);
    let plan = text(&netcfg(&ns, &file, "plan", &[]));
    let total = plan.lines().filter(|l| l.contains(". ")).count();
    assert!(total > 8, "{plan}");
    let o = netcfg(&ns, &file, "apply", &[("NETCFG_FAIL_AT", "9")]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("step 9 (") && out.contains("injected failure") && out.contains("the 8 step(s) before it were undone"),
        "{out}"
    );
    assert!(!out.contains("could not undo"), "{out}");
    assert_eq!(state(&ns), before, "{out}");
    // And the same file applies cleanly afterwards.
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(o.status.success(), "{}", text(&o));
}

mod vrrp {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use e2e::harness::{Lbd, Scratch};
    use e2e::netcfg_bin;
    use e2e::netns::{Lan, Netns};

    /// One appliance: its network file (VRRP on eth0 for the VIP), its
    /// keepalived files and its lbd answering with its own name on the VIP.
    struct Appliance {
        name: &'static str,
        dir: Scratch,
        file: PathBuf,
        lbd: Option<Lbd>,
    }

    impl Appliance {
        fn new(ns: &Netns, name: &'static str, priority: u8) -> Appliance {
            let dir = Scratch::new(name);
            let sock = dir.path.join("lbd.sock");
            let file = dir.path.join("network.toml");
            std::fs::write(
                &file,
                format!(
                    "[sysctl]\nip_nonlocal_bind = true\n\n[[vrrp]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\npriority = {priority}\nadvert_int = 1\nauth_pass = \"s3cret\"\nvips = [\"10.0.0.17/24\"]\ntrack_script = \"/usr/bin/socat -u OPEN:/dev/null UNIX-CONNECT:{sock}\"\n\n[keepalived]\nconfig = \"{conf}\"\nrun_dir = \"{run}\"\n",
                    sock = sock.display(),
                    conf = dir.path.join("keepalived.conf").display(),
                    run = dir.path.join("run").display()
                ),
            )
            .expect("network file");
            let mut a = Appliance {
                name,
                dir,
                file,
                lbd: None,
            };
            a.start_lbd(ns);
            a
        }

        fn start_lbd(&mut self, ns: &Netns) {
            let sock = self.dir.path.join("lbd.sock");
            let config = format!(
                "global\n    stats socket {sock}\ndefaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 2s\nfrontend vip\n    bind 10.0.0.17:80\n    http-request return status 200 content-type text/plain string {name}\n",
                sock = sock.display(),
                name = self.name
            );
            self.lbd = Some(Lbd::start_in_netns(&ns.name, &config));
        }

        fn netcfg(&self, ns: &Netns, cmd: &str) -> String {
            let o = Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(netcfg_bin())
                .arg("-c")
                .arg(&self.file)
                .arg(cmd)
                .output()
                .expect("netcfg");
            let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success(), "{} {cmd}: {t}", self.name);
            t
        }

        fn keepalived_pid(&self) -> i32 {
            std::fs::read_to_string(self.dir.path.join("run/keepalived.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0)
        }

        fn stop_keepalived(&self) {
            let pid = self.keepalived_pid();
            if pid <= 0 {
                return;
            }
            // SAFETY: a signal to the keepalived this test's netcfg started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Appliance {
        fn drop(&mut self) {
            let pid = self.keepalived_pid();
            if pid > 0 {
                self.stop_keepalived();
                // SAFETY: as above, a positive pid only; if it did not stop in time it goes now.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Who answers on the VIP, from the client namespace (`None`: no answer).
    fn ask(client: &Netns) -> Option<String> {
        client.run(|| {
            let mut s = TcpStream::connect_timeout(&"10.0.0.17:80".parse().ok()?, Duration::from_millis(500)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(800))).ok()?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            out.rsplit("\r\n\r\n").next().map(|b| b.trim().to_owned())
        })
    }

    fn holds_vip(ns: &Netns) -> bool {
        let o = Command::new("ip")
            .args(["-n", &ns.name, "-br", "addr", "show", "eth0"])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&o.stdout).contains("10.0.0.17/24")
    }

    /// Asks every 100 ms until `who` answers; the time it took and the failed asks.
    fn until(client: &Netns, who: &str, limit: Duration) -> (Duration, usize) {
        let start = Instant::now();
        let mut failed = 0;
        loop {
            match ask(client) {
                Some(w) if w == who => return (start.elapsed(), failed),
                Some(_) => {}
                None => failed += 1,
            }
            assert!(start.elapsed() < limit, "{who} did not answer on the VIP within {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn vrrp_moves_the_vip_to_the_backup_and_back() {
        let lan = Lan::new(
            "vrrp",
            &[],
            &[("app1", "10.0.0.2/24"), ("app2", "10.0.0.3/24"), ("client", "10.0.0.101/24")],
        );
        let (ns1, ns2, client) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
        let mut a1 = Appliance::new(ns1, "app1", 150);
        let a2 = Appliance::new(ns2, "app2", 100);
        assert!(a1.netcfg(ns1, "apply").contains("keepalived started"));
        assert!(a2.netcfg(ns2, "apply").contains("keepalived started"));
        // A second apply leaves keepalived alone.
        assert!(a1.netcfg(ns1, "apply").contains("no change"));
        let (t, _) = until(client, "app1", Duration::from_secs(10));
        eprintln!("app1 became master in {t:?}");
        assert!(holds_vip(ns1) && !holds_vip(ns2));
        assert!(a1.netcfg(ns1, "show").contains("# vrrp VI_1: MASTER"));
        assert!(a2.netcfg(ns2, "show").contains("# vrrp VI_1: BACKUP"));

        // The master's keepalived dies: the backup takes the VIP within 3 s.
        a1.stop_keepalived();
        let (t, failed) = until(client, "app2", Duration::from_secs(3));
        eprintln!("keepalived stopped: app2 answers after {t:?}, {failed} failed asks");
        assert!(failed <= 3, "{failed} asks failed during the switch");
        assert!(holds_vip(ns2) && !holds_vip(ns1));
        for _ in 0..5 {
            assert_eq!(ask(client).as_deref(), Some("app2"));
        }
        assert!(a1.netcfg(ns1, "show").contains("# vrrp VI_1: STOPPED"));

        // keepalived back on app1: with preemption the VIP comes back.
        assert!(a1.netcfg(ns1, "apply").contains("keepalived started"));
        let (t, _) = until(client, "app1", Duration::from_secs(10));
        eprintln!("preempted back to app1 in {t:?}");

        // app1's lbd stops: the track script fails and the backup takes over within 3 s.
        drop(a1.lbd.take());
        let (t, failed) = until(client, "app2", Duration::from_secs(3));
        eprintln!("lbd stopped: app2 answers after {t:?}, {failed} failed asks");
        assert!(a1.netcfg(ns1, "show").contains("# vrrp VI_1: FAULT"));
        // lbd back: app1 leaves FAULT and, with a higher priority, takes the VIP back.
        a1.start_lbd(ns1);
        let (t, _) = until(client, "app1", Duration::from_secs(10));
        eprintln!("lbd back: app1 again after {t:?}");
    }
}

/// `dhcp = true`: a real DHCP server (dnsmasq) in a namespace of its own, busybox's
/// udhcpc started by netcfg; the lease and its default route appear, `show`
/// says `dhcp = true`, and a file without it stops the client and removes the lease.
#[test]
fn dhcp_interfaces_get_a_lease_from_a_real_server() {
    let srv = Netns::new("ncdhcps", &[]);
    let boxns = Netns::new("ncdhcpc", &[]);
    ip(
        &srv,
        &[
            "link",
            "add",
            "veth1",
            "type",
            "veth",
            "peer",
            "name",
            "veth0",
            "netns",
            &boxns.name,
        ],
    );
    ip(&srv, &["addr", "add", "10.9.8.1/24", "dev", "veth1"]);
    ip(&srv, &["link", "set", "veth1", "up"]);
    let dir = Scratch::new("netcfg-dhcp");
    /// Stopped on drop, whether the test passes or fails.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _dnsmasq = Child(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &srv.name,
                "dnsmasq",
                "--no-daemon",
                "--port=0",
                "--conf-file=/dev/null",
            ])
            .args([
                "--interface=veth1",
                "--bind-interfaces",
                "--dhcp-range=10.9.8.100,10.9.8.150,255.255.255.0,1h",
            ])
            .arg("--dhcp-option=3,10.9.8.1")
            .arg(format!("--dhcp-leasefile={}", dir.path.join("leases").display()))
            .arg(format!("--pid-file={}", dir.path.join("dnsmasq.pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian package dnsmasq-base)"),
    );
    let run = dir.path.join("run");
    // Whatever happens, the DHCP client netcfg starts does not outlive the test.
    struct StopClient(std::path::PathBuf);
    impl Drop for StopClient {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(&self.0)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|p| *p > 0)
            {
                // SAFETY: a positive pid read from the client's own pid file.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
    let _client = StopClient(run.join("dhcp-veth0.pid"));
    let file = dir.path.join("network.toml");
    let keep = format!("\n[keepalived]\nrun_dir = \"{}\"\n", run.display());
    std::fs::write(&file, format!("[[interface]]\nname = \"veth0\"\ndhcp = true\n{keep}")).expect("write");
    let o = netcfg(&boxns, &file, "apply", &[]);
    assert!(o.status.success() && text(&o).contains("start DHCP on veth0"), "{}", text(&o));
    // About 3 s alone; under the full suite on two cores a client's first DISCOVER
    // can go unanswered and its retry comes seconds later (one CI run took over 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ip(&boxns, &["-br", "addr", "show", "veth0"]).contains("10.9.8.1") {
        assert!(std::time::Instant::now() < deadline, "no lease: {}", ip(&boxns, &["addr"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let addr = ip(&boxns, &["-br", "addr", "show", "veth0"]);
    assert!(addr.contains("10.9.8.1") && addr.contains("/24"), "{addr}");
    assert!(ip(&boxns, &["route"]).contains("default via 10.9.8.1 dev veth0 proto dhcp"));
    let o = netcfg(&boxns, &file, "apply", &[]);
    assert!(text(&o).contains("no change"), "{}", text(&o));
    let shown = Command::new("ip")
        .args(["netns", "exec", &boxns.name])
        .arg(netcfg_bin())
        .arg("-c")
        .arg(&file)
        .arg("show")
        .output()
        .expect("show");
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("name = \"veth0\"\nup = true\nmtu = 1500\ndhcp = true\n"), "{shown}");
    assert!(
        !shown.contains("10.9.8.1"),
        "the leased address is DHCP's, not configuration: {shown}"
    );
    // Static from now on: the client stops and its lease goes.
    std::fs::write(
        &file,
        format!("[[interface]]\nname = \"veth0\"\naddresses = [\"10.9.8.2/24\"]\n{keep}"),
    )
    .expect("write");
    let o = netcfg(&boxns, &file, "apply", &[]);
    assert!(text(&o).contains("stop DHCP on veth0"), "{}", text(&o));
    let addr = ip(&boxns, &["-br", "addr", "show", "veth0"]);
    assert!(addr.contains("10.9.8.2/24") && !addr.contains("10.9.8.1"), "{addr}");
}

/// VLANs and bonds on the appliance's kernel: Debian 12's stock kernel
/// (`scripts/vm-kernel`, which scripts/test runs first) boots under qemu with
/// an initramfs holding busybox, the 802.1Q and bonding drivers and this
/// build's netcfg; netcfg applies a bond with two members, a VLAN on the
/// bond and a VLAN on an interface, applies again (no change), and `show`,
/// fed back, plans nothing; the hostname and sysctls are set in the VM. About 5 to 30 s.
#[test]
fn vlans_and_bonds_on_the_appliance_kernel_in_a_vm() {
    let kernel_dir = e2e::workspace_root().join("target/vm-kernel");
    let vmlinuz = std::fs::read_dir(kernel_dir.join("boot"))
        .ok()
        .and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        })
        .unwrap_or_else(|| panic!("no kernel in {}: run scripts/vm-kernel (scripts/test does)", kernel_dir.display()));
    let modules = std::fs::read_dir(kernel_dir.join("lib/modules"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(Result::ok)
        .map(|e| e.path().join("kernel"))
        .expect("kernel modules");
    let dir = Scratch::new("netcfg-vm");
    let root = dir.path.join("root");
    for d in ["bin", "modules", "proc", "sys", "run", "tmp", "etc", "test"] {
        std::fs::create_dir_all(root.join(d)).expect("initramfs dir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox (busybox-static)");
    for m in ["llc", "stp", "garp", "mrp", "8021q", "tls", "bonding", "dummy"] {
        let found = Command::new("find")
            .arg(&modules)
            .args(["-name", &format!("{m}.ko")])
            .output()
            .expect("find");
        let path = String::from_utf8_lossy(&found.stdout)
            .lines()
            .next()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("module {m}"));
        std::fs::copy(path, root.join("modules").join(format!("{m}.ko"))).expect("copy module");
    }
    // netcfg and the shared libraries it needs.
    std::fs::copy(netcfg_bin(), root.join("netcfg")).expect("netcfg");
    let _ = Command::new("strip").arg(root.join("netcfg")).status();
    let ldd = Command::new("ldd").arg(netcfg_bin()).output().expect("ldd");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("lib dir");
        std::fs::copy(lib, dest).expect("copy lib");
    }
    std::fs::write(
        root.join("test/network.toml"),
        "hostname = \"lb-vm\"\n\n[sysctl]\ntcp_tw_reuse = true\nip_local_port_range = \"1024 65000\"\n\n[[interface]]\nname = \"d0\"\naddresses = [\"10.9.0.2/24\"]\n\n[[bond]]\nname = \"bond0\"\nmode = \"active-backup\"\nmembers = [\"d1\", \"d2\"]\naddresses = [\"10.9.1.2/24\"]\n\n[[vlan]]\nname = \"bond0.10\"\nparent = \"bond0\"\nid = 10\naddresses = [\"10.9.10.2/24\"]\n\n[[vlan]]\nname = \"d0.20\"\nparent = \"d0\"\nid = 20\nmtu = 1400\naddresses = [\"10.9.20.2/24\"]\n",
    )
    .expect("network.toml");
    // The appliance loads bonding with max_bonds=0: no default bond0 in a mode of the kernel's choosing.
    std::fs::write(
        root.join("init"),
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t tmpfs tmpfs /run\nfor m in llc stp garp mrp 8021q tls bonding dummy; do o=; [ $m = bonding ] && o=max_bonds=0; insmod /modules/$m.ko $o || echo \"insmod $m failed\"; done\nfor d in d0 d1 d2; do ip link add $d type dummy; done\necho '== apply'\n/netcfg -c /test/network.toml apply; echo \"RC=$?\"\necho '== again'\n/netcfg -c /test/network.toml apply; echo \"RC=$?\"\n/netcfg show > /tmp/shown.toml\necho '== plan of show'\n/netcfg -c /tmp/shown.toml plan\necho '== kernel'\ncat /sys/class/net/bond0/bonding/mode /sys/class/net/bond0/bonding/slaves /proc/net/vlan/config\necho \"host=$(hostname) tw=$(cat /proc/sys/net/ipv4/tcp_tw_reuse) range=$(cat /proc/sys/net/ipv4/ip_local_port_range)\"\nip addr show bond0.10\nip link show d0.20\necho NETCFG-VM-DONE\npoweroff -f\n",
    )
    .expect("init");
    let _ = Command::new("chmod").arg("755").arg(root.join("init")).status();
    let initrd = dir.path.join("initrd.gz");
    let packed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc 2>/dev/null | gzip -1 > {}",
            root.display(),
            initrd.display()
        ))
        .status()
        .expect("cpio");
    assert!(packed.success());
    let out = Command::new("timeout")
        .arg("180")
        .args(["qemu-system-x86_64", "-m", "512", "-nographic", "-no-reboot", "-kernel"])
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .output()
        .expect("qemu-system-x86_64 (scripts/vm-kernel installs it)");
    let log = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(log.contains("NETCFG-VM-DONE"), "the VM did not finish:\n{log}");
    let section = |from: &str, to: &str| -> String {
        let start = log.find(from).map_or(0, |i| i + from.len());
        let end = log[start..].find(to).map_or(log.len(), |i| start + i);
        log[start..end].to_owned()
    };
    let first = section("== apply", "== again");
    assert!(
        first.contains("RC=0") && first.contains("create bond bond0") && first.contains("create vlan bond0.10 on bond0 id 10"),
        "{log}"
    );
    assert!(section("== again", "== plan of show").contains("no change\nRC=0"), "{log}");
    assert!(
        section("== plan of show", "== kernel").trim() == "no change",
        "show does not round-trip:\n{log}"
    );
    let kernel = section("== kernel", "NETCFG-VM-DONE");
    assert!(kernel.contains("active-backup 1") && kernel.contains("d1 d2"), "{kernel}");
    assert!(
        kernel.contains("bond0.10       | 10  | bond0") && kernel.contains("d0.20          | 20  | d0"),
        "{kernel}"
    );
    assert!(kernel.contains("inet 10.9.10.2/24") && kernel.contains("mtu 1400"), "{kernel}");
    // The hostname and the sysctls, in the VM's own kernel (never the test machine's).
    assert!(kernel.contains("host=lb-vm tw=1 range=1024\t65000"), "{kernel}");
}

/// A default gateway that changes is replaced (not added beside the old one,
/// which the kernel refuses); an IPv6 default route without a metric (the
/// kernel says 1024) is not planned again; an address replaced on a managed
/// interface keeps the routes through it.
#[test]
fn gateways_are_replaced_and_ipv6_defaults_stay_idempotent() {
    let ns = bare("ncroute");
    let dir = Scratch::new("netcfg");
    let file = dir.path.join("network.toml");
    let base = "[[interface]]\nname = \"veth0\"\nmanaged = true\naddresses = [\"@A@\", \"fd00:9::2/64\"]\n\n[[route]]\nto = \"default\"\nvia = \"@GW@\"\n\n[[route]]\nto = \"default6\"\nvia = \"fd00:9::1\"\n";
    let write = |a: &str, gw: &str| std::fs::write(&file, base.replace("@A@", a).replace("@GW@", gw)).expect("write");
    write("10.9.0.2/24", "10.9.0.1");
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(text(&o).contains("no change"), "{}", text(&o));
    write("10.9.0.2/24", "10.9.0.254");
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(
        o.status.success() && text(&o).contains("replace route 0.0.0.0/0 via 10.9.0.1 with via 10.9.0.254"),
        "{}",
        text(&o)
    );
    let routes = ip(&ns, &["route"]);
    assert!(
        routes.contains("default via 10.9.0.254") && !routes.contains("via 10.9.0.1 "),
        "{routes}"
    );
    // The only IPv4 address changes: the new one comes first, the default route survives.
    write("10.9.0.3/24", "10.9.0.254");
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(ip(&ns, &["route"]).contains("default via 10.9.0.254"), "{}", ip(&ns, &["route"]));
    let o = netcfg(&ns, &file, "apply", &[]);
    assert!(text(&o).contains("no change"), "{}", text(&o));
}
