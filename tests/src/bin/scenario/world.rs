//! The scenario's world: the namespaces and their wiring, the CAS servers, the
//! appliance's network (by netcfg) and the proxy under test.
//!
//! Namespaces (all `xch-*`): `xch-sw` holds the bridge every other namespace is
//! wired to by a veth (`eth0`); `xch-app` is the appliance (10.0.0.2 and the VIP
//! 10.0.0.17, both set by netcfg), `xch-client` the clients (10.0.0.20 to
//! 10.0.0.249), `xch-cas1` (10.0.0.15) and `xch-cas2` (10.0.0.16) the Client
//! Access servers. Nothing routes out of them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::harness::{runtime_cmd, NamedServer, Scratch};
use e2e::mail::{Dovecot, MailTls};
use e2e::pki::{Kind, Leaf, Pki};
use e2e::web::{run_in_netns, Nginx};

pub const NS_SW: &str = "xch-sw";
pub const NS_APP: &str = "xch-app";
pub const NS_CLIENT: &str = "xch-client";
pub const VIP: &str = "10.0.0.17";
pub const FQDN: &str = "mail.xlc.local";

const NOSSL_CFG: &str = include_str!("../../../fixtures/exchange-nossl.cfg");
const SSL_CFG: &str = include_str!("../../../fixtures/exchange-ssl.cfg");
const SSL_TAB: &str = include_str!("../../../fixtures/exchange-ssl-tab.conf");

/// The RPC endpoint mapper, RPC Client Access and Address Book ports.
pub const RPC_PORTS: [u16; 3] = [135, 60000, 60001];

/// Where the pasted configuration comes from: the reconstructed fixture
/// files, or the Templates page's Exchange 2010 wizard for the seed's values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    Fixtures,
    Wizard,
}

/// The wizard's LB Layer7 text and SSL tab for the seed's values (its
/// defaults: VIP 10.0.0.17, CAS1 and CAS2, mail.xlc.local, ports 60000 and
/// 60001, every service but SMTP), with the certificate in `/etc/ssl/frontends`.
pub fn wizard_config(variant: Variant) -> (String, Option<String>) {
    let (all, errors) = webui::deploy::load(None);
    assert!(errors.is_empty(), "{errors:?}");
    let t = all.iter().find(|t| t.name == "exchange-2010").expect("the exchange-2010 template");
    let mut form = webui::deploy::defaults(t);
    form.insert("variant".into(), if variant == Variant::Ssl { "ssl" } else { "nossl" }.into());
    let vars = webui::deploy::values(t, &form, &[FQDN.to_owned()]).unwrap_or_else(|p| panic!("{p:?}"));
    let r = webui::deploy::render(t, &vars, Path::new("/etc/ssl/frontends")).expect("render");
    (r.lb7, r.ssl)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    NoSsl,
    Ssl,
}

impl Variant {
    pub fn word(self) -> &'static str {
        match self {
            Variant::NoSsl => "without SSL offloading (exchange-nossl.cfg)",
            Variant::Ssl => "with SSL offloading (exchange-ssl.cfg + exchange-ssl-tab.conf)",
        }
    }

    pub fn word_wizard(self) -> &'static str {
        match self {
            Variant::NoSsl => "without SSL offloading",
            Variant::Ssl => "with SSL offloading",
        }
    }
}

/// The proxy under test, with its binary (None: this workspace's lbd, or
/// Debian's haproxy from PATH).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Flavor {
    Lbd(Option<PathBuf>),
    Haproxy(Option<PathBuf>),
}

impl Flavor {
    pub fn word(&self) -> String {
        match self {
            Flavor::Lbd(None) => "lbd".into(),
            Flavor::Haproxy(None) => "haproxy 2.6 + stunnel".into(),
            Flavor::Lbd(Some(p)) => format!("lbd ({})", p.display()),
            Flavor::Haproxy(Some(p)) => format!("haproxy ({}) + stunnel", p.display()),
        }
    }

    /// The command line up to its `-f` options.
    fn argv(&self) -> Vec<String> {
        match self {
            Flavor::Lbd(p) => vec![p.clone().unwrap_or_else(e2e::lbd_bin).display().to_string()],
            Flavor::Haproxy(p) => vec![
                p.as_ref().map_or_else(|| "haproxy".to_owned(), |p| p.display().to_string()),
                "-db".into(),
            ],
        }
    }
}

/// Locks `m` even if a case panicked while holding it: the state behind it
/// (a server to restart, a flag to clear) must still be reachable.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `ip ARGS`, panicking with its message when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Kills every process left in the `xch-*` namespaces and deletes them.
pub fn cleanup_leftovers() {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    for line in String::from_utf8_lossy(&list).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        if !name.starts_with("xch-") {
            continue;
        }
        let pids = Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        for pid in String::from_utf8_lossy(&pids)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if pid > 1 {
                // SAFETY: a plain signal to one positive pid found in the namespace.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", name]).output();
    }
}

/// One Client Access server: nginx on 80 and 443, dovecot on 143/993 and
/// 110/995, and small TCP services on the RPC ports, each naming `name`.
pub struct Cas {
    pub name: &'static str,
    pub ip: &'static str,
    pub ns: &'static str,
    pub nginx: Mutex<Nginx>,
    pub dovecot: Mutex<Dovecot>,
    /// One per `RPC_PORTS`, greeting `CAS1:135` and so on.
    pub tcp: Mutex<Vec<NamedServer>>,
}

impl Cas {
    fn start(name: &'static str, ip: &'static str, ns: &'static str, crt: &Path, key: &Path) -> Cas {
        let nginx = Nginx::start_tls_in_netns(ns, name, &[&format!("{ip}:80"), &format!("{ip}:443 ssl")], crt, key);
        let tls = MailTls {
            imaps: 993,
            pop3s: 995,
            crt: crt.to_owned(),
            key: key.to_owned(),
        };
        // Logged-in sessions outlive the dovecot master, so a session that ends
        // when dovecot stops was cut by the proxy (on-marked-down shutdown-sessions).
        let dovecot = Dovecot::start_tls_in_netns(ns, name, ip, 143, 110, tls, false);
        let tcp = RPC_PORTS.iter().map(|p| Self::rpc_service(name, ip, ns, *p)).collect();
        Cas {
            name,
            ip,
            ns,
            nginx: Mutex::new(nginx),
            dovecot: Mutex::new(dovecot),
            tcp: Mutex::new(tcp),
        }
    }

    fn rpc_service(name: &str, ip: &str, ns: &str, port: u16) -> NamedServer {
        let (n, a) = (format!("{name}:{port}"), format!("{ip}:{port}"));
        run_in_netns(ns, move || NamedServer::start(&n, &a))
    }

    /// Stops the RPC service on `port` from listening; its open sessions go on,
    /// so a session that ends was cut by the proxy.
    pub fn stop_rpc(&self, port: u16) {
        if let Some(i) = RPC_PORTS.iter().position(|p| *p == port) {
            lock(&self.tcp)[i].close_listener();
        }
    }

    pub fn start_rpc(&self, port: u16) {
        if let Some(i) = RPC_PORTS.iter().position(|p| *p == port) {
            lock(&self.tcp)[i] = Self::rpc_service(self.name, self.ip, self.ns, port);
        }
    }
}

/// The proxy under test: lbd with the SSL tab, or haproxy and stunnel.
pub struct Proxy {
    children: Vec<(String, Child)>,
    logs: Vec<PathBuf>,
    /// The runtime (stats) socket.
    pub sock: PathBuf,
}

impl Proxy {
    /// Starts the proxy in the appliance's namespace. `tag` names its files in
    /// `dir`; `cfg` is the pasted LB Layer7 text; `tab` the SSL tab's.
    fn start(flavor: &Flavor, dir: &Path, etc_ssl: &Path, tag: &str, cfg: &str, tab: Option<&str>) -> Proxy {
        let run = dir.join("run");
        std::fs::create_dir_all(&run).expect("run dir");
        let sock = dir.join(format!("{tag}.sock"));
        // The appliance's own global section (the LB Layer7 tab has none): a
        // runtime socket for the test and the prefix of `bind /ssl:NAME`.
        let global = format!(
            "global\n  stats socket {} mode 600 level admin\n  unix-bind prefix {}\n",
            sock.display(),
            run.display()
        );
        let gpath = dir.join(format!("{tag}-global.cfg"));
        let cpath = dir.join(format!("{tag}.cfg"));
        std::fs::write(&gpath, global).expect("global");
        std::fs::write(&cpath, cfg).expect("config");
        let mut p = Proxy {
            children: Vec::new(),
            logs: Vec::new(),
            sock,
        };
        let mut argv = flavor.argv();
        argv.extend(["-f".into(), gpath.display().to_string(), "-f".into(), cpath.display().to_string()]);
        if let Some(tab) = tab {
            match flavor {
                Flavor::Lbd(_) => {
                    let tpath = dir.join(format!("{tag}-ssl-tab.conf"));
                    std::fs::write(&tpath, tab).expect("ssl tab");
                    argv.extend(["-s".into(), tpath.display().to_string()]);
                }
                Flavor::Haproxy(_) => {
                    // stunnel plays the SSL tab: the vendor's `sendproxy = yes` is
                    // stunnel's `protocol = proxy`, and `/ssl:NAME` is the socket
                    // haproxy binds under its `unix-bind prefix`.
                    let conf = stunnel_conf(tab, &run);
                    let tpath = dir.join(format!("{tag}-stunnel.conf"));
                    std::fs::write(&tpath, conf).expect("stunnel conf");
                    p.spawn(
                        dir,
                        etc_ssl,
                        &format!("{tag}-stunnel"),
                        &["stunnel".into(), tpath.display().to_string()],
                    );
                }
            }
        }
        p.spawn(dir, etc_ssl, tag, &argv);
        p
    }

    /// Runs `argv` in the appliance's namespace with `etc_ssl` mounted on
    /// `/etc/ssl` (the SSL tab's key and certificate paths), in a mount
    /// namespace of its own (`ip netns exec` makes one).
    fn spawn(&mut self, dir: &Path, etc_ssl: &Path, name: &str, argv: &[String]) {
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", NS_APP, "sh", "-c", "mount --bind \"$0\" /etc/ssl && exec \"$@\""])
            .arg(etc_ssl)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(err.try_clone().expect("log file"))
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
        self.children.push((name.to_owned(), child));
        self.logs.push(log);
    }

    /// What the proxy processes said.
    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|l| format!("--- {}\n{}", l.display(), std::fs::read_to_string(l).unwrap_or_default()))
            .collect()
    }

    /// `show stat`, one row per proxy/server.
    pub fn stat(&self) -> Vec<Stat> {
        runtime_cmd(&self.sock, "show stat").lines().filter_map(Stat::parse).collect()
    }

    /// The status (`UP`, `DOWN`, ...) of `backend/server`.
    pub fn status(&self, backend: &str, server: &str) -> String {
        self.stat()
            .into_iter()
            .find(|s| s.px == backend && s.sv == server)
            .map(|s| s.status)
            .unwrap_or_default()
    }

    /// A process that exited (name and status), if any.
    pub fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(n, c)| match c.try_wait() {
            Ok(Some(st)) => Some(format!("{n} exited ({st})")),
            _ => None,
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The SSL tab's text as stunnel's configuration.
fn stunnel_conf(tab: &str, run: &Path) -> String {
    let mut out = String::from("foreground = yes\npid =\n");
    for line in tab.lines() {
        let t = line.trim();
        let kv = t.split_once('=').map(|(k, v)| (k.trim(), v.trim()));
        match kv {
            Some(("sendproxy", "yes")) => out.push_str("protocol = proxy\n"),
            Some(("connect", v)) if v.starts_with('/') => out.push_str(&format!("connect = {}{v}\n", run.display())),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// One row of `show stat`.
#[derive(Debug, Clone)]
pub struct Stat {
    pub px: String,
    pub sv: String,
    pub scur: u64,
    pub stot: u64,
    pub status: String,
    /// The last check's result (`L4OK`, `L7STS`...), empty without checks.
    pub check: String,
}

impl Stat {
    fn parse(line: &str) -> Option<Stat> {
        if line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 18 {
            return None;
        }
        Some(Stat {
            px: f[0].to_owned(),
            sv: f[1].to_owned(),
            scur: f[4].parse().unwrap_or(0),
            stot: f[7].parse().unwrap_or(0),
            status: f[17].to_owned(),
            check: f.get(36).map(|c| (*c).to_owned()).unwrap_or_default(),
        })
    }

    /// A server row whose state health checks decide.
    pub fn is_server(&self) -> bool {
        self.sv != "FRONTEND" && self.sv != "BACKEND" && self.status != "no check"
    }
}

pub struct World {
    pub variant: Variant,
    pub source: Source,
    pub flavor: Flavor,
    pub dir: Scratch,
    pub pki: Pki,
    /// A copy of `/etc/ssl` holding `frontends/mail.xlc.local/{key,crt}.pem`.
    pub etc_ssl: PathBuf,
    pub cas: Vec<Cas>,
    pub proxy: Mutex<Proxy>,
    /// The pasted LB Layer7 text (interval lowered) and SSL tab.
    pub cfg: String,
    next_client: AtomicU32,
}

/// The seed's configuration with only the health-check intervals lowered to 1 s.
pub fn lowered(cfg: &str) -> String {
    cfg.replace("inter 15s", "inter 1s").replace("inter 3s", "inter 1s")
}

impl World {
    pub fn start(variant: Variant, flavor: Flavor, source: Source) -> World {
        cleanup_leftovers();
        let dir = Scratch::new("scenario");
        let pki = Pki::new(&[Leaf {
            file: "mail",
            kind: Kind::Rsa,
            names: &[FQDN],
            expired: false,
            org: "XLC",
        }]);
        let (crt, key) = pki.pair("mail");
        let etc_ssl = dir.path.join("etc-ssl");
        let cp = Command::new("cp").arg("-a").arg("/etc/ssl").arg(&etc_ssl).status();
        assert!(matches!(cp, Ok(s) if s.success()), "copy /etc/ssl");
        pki.store("mail", &etc_ssl.join("frontends"), FQDN);
        wire();
        configure_appliance(&dir.path);
        let cas = vec![
            Cas::start("CAS1", "10.0.0.15", "xch-cas1", &crt, &key),
            Cas::start("CAS2", "10.0.0.16", "xch-cas2", &crt, &key),
        ];
        let (cfg, tab) = match (source, variant) {
            (Source::Fixtures, Variant::NoSsl) => (lowered(NOSSL_CFG), None),
            (Source::Fixtures, Variant::Ssl) => (lowered(SSL_CFG), Some(SSL_TAB.to_owned())),
            (Source::Wizard, v) => {
                let (lb7, ssl) = wizard_config(v);
                (lowered(&lb7), ssl)
            }
        };
        let proxy = Proxy::start(&flavor, &dir.path, &etc_ssl, "proxy", &cfg, tab.as_deref());
        let w = World {
            variant,
            source,
            flavor,
            dir,
            pki,
            etc_ssl,
            cas,
            proxy: Mutex::new(proxy),
            cfg,
            next_client: AtomicU32::new(0),
        };
        w.wait_ready();
        w
    }

    /// Until the runtime socket answers, the VIP's ports accept, and every
    /// server has passed its first checks.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports = vec![80, 135, 60000, 60001, 143, 110, 443, 993, 995];
        loop {
            {
                let mut p = lock(&self.proxy);
                if let Some(e) = p.exited() {
                    panic!("{e}:\n{}", p.log());
                }
            }
            let ports2 = ports.clone();
            let accepting = run_in_netns(NS_APP, move || {
                ports2.iter().all(|p| {
                    let a: std::net::SocketAddr = format!("{VIP}:{p}").parse().expect("addr");
                    std::net::TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
                })
            });
            let stat = self.stat();
            let servers: Vec<&Stat> = stat.iter().filter(|s| s.is_server()).collect();
            // Every checked server has passed a check (not only started UP),
            // and the per-CAS monitors say so too.
            let checked = !servers.is_empty()
                && servers
                    .iter()
                    .all(|s| s.status == "UP" && ["L4OK", "L6OK", "L7OK"].contains(&s.check.as_str()));
            let monitors = || {
                ["1001", "1002"].iter().all(|p| {
                    let out = Command::new("ip")
                        .args(["netns", "exec", NS_APP, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
                        .arg(format!("http://127.0.0.1:{p}/check"))
                        .output();
                    out.is_ok_and(|o| o.stdout == b"200")
                })
            };
            if accepting && checked && monitors() {
                return;
            }
            if Instant::now() > deadline {
                let log = lock(&self.proxy).log();
                panic!("the proxy is not ready within 20 s; accepting={accepting}; stat={stat:?}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stat(&self) -> Vec<Stat> {
        lock(&self.proxy).stat()
    }

    pub fn status(&self, backend: &str, server: &str) -> String {
        lock(&self.proxy).status(backend, server)
    }

    pub fn proxy_log(&self) -> String {
        lock(&self.proxy).log()
    }

    /// A client address no earlier case used (so no stick table knows it).
    pub fn fresh_client(&self) -> String {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        assert!(n < 230, "out of client addresses");
        format!("10.0.0.{}", 20 + n)
    }

    pub fn cas(&self, name: &str) -> &Cas {
        self.cas.iter().find(|c| c.name == name).expect("CAS name")
    }

    pub fn ca(&self) -> PathBuf {
        self.pki.ca()
    }

    /// Starts a second proxy of the same flavor in the appliance (for the
    /// seed's quirks that the pasted configuration does not hold).
    pub fn extra_proxy(&self, tag: &str, cfg: &str) -> Proxy {
        Proxy::start(&self.flavor, &self.dir.path, &self.etc_ssl, tag, cfg, None)
    }
}

/// The switch, the four hosts and their veths; clients' addresses.
fn wire() {
    ip(&["netns", "add", NS_SW]);
    ip(&["-n", NS_SW, "link", "set", "lo", "up"]);
    ip(&["-n", NS_SW, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", NS_SW, "link", "set", "br0", "up"]);
    let hosts = [
        (NS_APP, None),
        (NS_CLIENT, Some("10.0.0.100/24")),
        ("xch-cas1", Some("10.0.0.15/24")),
        ("xch-cas2", Some("10.0.0.16/24")),
    ];
    for (i, (ns, addr)) in hosts.iter().enumerate() {
        ip(&["netns", "add", ns]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        let port = format!("p{i}");
        ip(&[
            "-n", NS_SW, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["-n", NS_SW, "link", "set", &port, "master", "br0", "up"]);
        if let Some(a) = addr {
            ip(&["-n", ns, "addr", "add", a, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
    }
    let batch: String = (20..250)
        .filter(|i| *i != 100)
        .map(|i| format!("addr add 10.0.0.{i}/24 dev eth0\n"))
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", NS_CLIENT, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(batch.as_bytes()).expect("ip -batch input");
    }
    assert!(matches!(child.wait(), Ok(s) if s.success()), "client addresses");
}

/// The appliance's network as the operator sets it: netcfg applies a TOML
/// file with the admin address and the VIP on eth0.
fn configure_appliance(dir: &Path) {
    let toml = format!(
        "[[interface]]\nname = \"eth0\"\naddresses = [\"10.0.0.2/24\"]\n\n\
         [[vip]]\naddress = \"{VIP}/24\"\ninterface = \"eth0\"\n"
    );
    let f = dir.join("network.toml");
    std::fs::write(&f, toml).expect("network.toml");
    let out = Command::new("ip")
        .args(["netns", "exec", NS_APP])
        .arg(e2e::netcfg_bin())
        .arg("-c")
        .arg(&f)
        .arg("apply")
        .output()
        .expect("run netcfg");
    assert!(
        out.status.success(),
        "netcfg apply: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
