//! Helpers for the end-to-end tests: finding the real binaries and running them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `lbd` binary built for this test run (`target/<profile>/lbd`), or `$LBD_BIN`.
pub fn lbd_bin() -> PathBuf {
    built_bin("lbd", "LBD_BIN")
}

/// The `netcfg` binary built for this test run (`target/<profile>/netcfg`), or `$NETCFG_BIN`.
pub fn netcfg_bin() -> PathBuf {
    built_bin("netcfg", "NETCFG_BIN")
}

/// The `webui` binary built for this test run, or `$WEBUI_BIN`.
pub fn webui_bin() -> PathBuf {
    built_bin("webui", "WEBUI_BIN")
}

/// A workspace binary: `$VAR` when set, else `target/<profile>/NAME` beside the test executables.
fn built_bin(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps, binaries one level up;
    // the tests crate's own binaries (the scenario) beside them.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("target/<profile>");
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    };
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p {name}`, as scripts/test does)",
        bin.display()
    );
    bin
}

/// The test corpus folder.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Runs a command with the environment the corpus assumes: `HOME` set and
/// `LBD_UNSET_XYZ` unset.
pub fn run(cmd: &mut Command) -> Output {
    cmd.env("HOME", "/root").env_remove("LBD_UNSET_XYZ");
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The line number cited by the first `[ALERT]` line of a checker's output
/// (`[FILE:N]` or `(FILE:N)`), if any.
pub fn first_alert_line(output: &str) -> Option<usize> {
    let alert = output.lines().find(|l| l.starts_with("[ALERT]"))?;
    let bytes = alert.as_bytes();
    for (i, c) in alert.char_indices() {
        if c != ':' {
            continue;
        }
        let digits: String = alert[i + 1..].chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            continue;
        }
        let after = bytes.get(i + 1 + digits.len()).copied();
        if matches!(after, Some(b']') | Some(b')')) {
            return digits.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_alert_line;

    #[test]
    fn alert_lines_are_found_in_both_shapes() {
        let h = "[NOTICE] x\n[ALERT]    (1) : config : parsing [a.cfg:12] : unknown keyword 'x'\n";
        assert_eq!(first_alert_line(h), Some(12));
        let m = "[ALERT]    (1) : config : http frontend 'f' (a.cfg:3) tries to use incompatible tcp backend 'b' (a.cfg:5)";
        assert_eq!(first_alert_line(m), Some(3));
        assert_eq!(
            first_alert_line("[ALERT] (1) : config : Proxy 'b': unable to find stick-table 'x'."),
            None
        );
        assert_eq!(first_alert_line("Configuration file is valid"), None);
    }
}

pub mod harness {
    //! Real processes and real sockets on loopback for the end-to-end tests.

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use super::lbd_bin;

    /// A fresh scratch folder under the system temp dir, removed on drop.
    pub struct Scratch {
        pub path: PathBuf,
    }

    impl Scratch {
        pub fn new(tag: &str) -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "lbd-e2e-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("scratch dir");
            Scratch { path }
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    /// A port nobody listens on right now at 127.0.0.1, reserved for this test process.
    pub fn free_port() -> u16 {
        reserve_port("127.0.0.1")
    }

    /// Ports handed to tests come from below the kernel's ephemeral range (32768 and up by
    /// default), so no `bind(0)` or outgoing connection of another test can take one between
    /// the moment it is chosen and the moment lbd binds it. Tests run as parallel processes:
    /// each port is claimed with an exclusive `flock` on a file named after it, held until
    /// the process exits, so two tests never get the same port.
    const RESERVED: std::ops::Range<u16> = 12_000..32_000;

    /// The lock files of the ports this process holds; closing them would free the ports.
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

    /// One port from `RESERVED`, locked for this process and bindable at `ip` right now.
    pub fn reserve_port(ip: &str) -> u16 {
        use std::os::fd::AsRawFd;
        static TRIED: AtomicUsize = AtomicUsize::new(0);
        static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let dir = std::env::temp_dir().join("lbd-e2e-ports");
            std::fs::create_dir_all(&dir).expect("port lock dir");
            dir
        });
        let span = usize::from(RESERVED.end - RESERVED.start);
        // Each process starts at its own place in the range, to meet few locks on the way.
        let start = std::process::id() as usize * 97;
        for _ in 0..span {
            let n = (start + TRIED.fetch_add(1, Ordering::Relaxed)) % span;
            let port = RESERVED.start + u16::try_from(n).expect("span fits u16");
            let Ok(file) = std::fs::File::create(dir.join(port.to_string())) else {
                continue;
            };
            // SAFETY: flock on a descriptor this function owns; it only sets a lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            if TcpListener::bind((ip, port)).is_err() {
                continue; // in use outside the tests: skip it
            }
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(file);
            return port;
        }
        panic!("no free port left in {RESERVED:?} at {ip}");
    }

    /// Debian's haproxy running `config` in the foreground (`-db`), as the
    /// reference beside lbd; killed on drop.
    pub struct Haproxy {
        child: Child,
        _dir: Scratch,
    }

    impl Haproxy {
        pub fn start(config: &str) -> Haproxy {
            let dir = Scratch::new("haproxy");
            let cfg = dir.path.join("haproxy.cfg");
            std::fs::write(&cfg, config).expect("write haproxy config");
            let child = Command::new("haproxy")
                .arg("-f")
                .arg(&cfg)
                .arg("-db")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start haproxy");
            Haproxy { child, _dir: dir }
        }
    }

    impl Drop for Haproxy {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts `which` ("haproxy", else lbd) on `config`, for a test that runs
    /// the two side by side, once it listens on HTTP port `http`; the log line
    /// of the probe that found it listening is let go by. Stops on drop.
    pub fn start_beside(which: &str, config: &str, http: u16, log: &Syslog) -> Box<dyn std::any::Any> {
        let proxy: Box<dyn std::any::Any> = if which == "haproxy" {
            Box::new(Haproxy::start(config))
        } else {
            Box::new(Lbd::start(config))
        };
        assert!(
            wait_until(Duration::from_secs(5), || TcpStream::connect(("127.0.0.1", http)).is_ok()).is_some(),
            "{which} did not listen"
        );
        std::thread::sleep(Duration::from_millis(200));
        let _ = log.lines(Duration::from_millis(300));
        proxy
    }

    /// A server on a free loopback port that runs `handle` on a thread of its
    /// own for each connection; the port is returned.
    pub fn serve_each<F>(handle: F) -> u16
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let handle = Arc::new(handle);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let h = Arc::clone(&handle);
                std::thread::spawn(move || h(s));
            }
        });
        port
    }

    /// Reads an HTTP head (up to its blank line) from `s`; `None` when the
    /// peer closes or the read times out first.
    pub fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(k) => head.extend_from_slice(&buf[..k]),
            }
        }
        Some(head)
    }

    /// A running lbd; killed on drop.
    pub struct Lbd {
        pub child: Child,
        pub stderr: PathBuf,
        pub config: PathBuf,
        _dir: Scratch,
    }

    impl Lbd {
        /// Starts `lbd -f CONFIG` and waits until it says it started.
        pub fn start(config: &str) -> Lbd {
            Self::start_with(config, &[])
        }

        pub fn start_with(config: &str, extra_args: &[&str]) -> Lbd {
            let mut cmd = Command::new(lbd_bin());
            cmd.args(extra_args);
            Self::spawn(cmd, config)
        }

        /// Starts lbd inside a network namespace (`ip netns exec NS lbd -f CONFIG`).
        pub fn start_in_netns(ns: &str, config: &str) -> Lbd {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(lbd_bin());
            Self::spawn(cmd, config)
        }

        /// Writes the config, appends `-f CONFIG` to `cmd`, runs it and waits until lbd says it started.
        fn spawn(mut cmd: Command, config: &str) -> Lbd {
            let dir = Scratch::new("lbd");
            let cfg = dir.path.join("lbd.cfg");
            std::fs::write(&cfg, config).expect("write config");
            let stderr = dir.path.join("stderr.log");
            let err = std::fs::File::create(&stderr).expect("stderr file");
            let child = cmd
                .arg("-f")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("spawn lbd");
            let lbd = Lbd {
                child,
                stderr,
                config: cfg,
                _dir: dir,
            };
            lbd.wait_for_log("started", Duration::from_secs(10));
            lbd
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        }

        /// Waits until lbd's stderr contains `needle`; panics with the log otherwise.
        pub fn wait_for_log(&self, needle: &str, limit: Duration) {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if self.log().contains(needle) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("lbd did not log {needle:?} within {limit:?}; log:\n{}", self.log());
        }

        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Open file descriptors of the lbd process.
        pub fn open_fds(&self) -> usize {
            std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
                .map(|d| d.count())
                .unwrap_or(0)
        }

        /// Resident memory in KiB.
        pub fn rss_kib(&self) -> u64 {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }
    }

    impl Drop for Lbd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A TCP server that greets each connection with its name and a newline,
    /// then echoes what it receives until the client half-closes.
    pub struct NamedServer {
        pub name: String,
        pub addr: SocketAddr,
        stop: Arc<AtomicBool>,
        pub accepted: Arc<AtomicUsize>,
        /// Connections open right now.
        pub open: Arc<AtomicUsize>,
        thread: Option<JoinHandle<()>>,
        streams: Arc<Mutex<Vec<TcpStream>>>,
    }

    impl NamedServer {
        pub fn start(name: &str, addr: &str) -> NamedServer {
            let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            let addr = listener.local_addr().expect("addr");
            listener.set_nonblocking(true).expect("nonblocking");
            let stop = Arc::new(AtomicBool::new(false));
            let accepted = Arc::new(AtomicUsize::new(0));
            let open = Arc::new(AtomicUsize::new(0));
            let streams = Arc::new(Mutex::new(Vec::new()));
            let (s2, a2, o2, n2, st2) = (stop.clone(), accepted.clone(), open.clone(), name.to_owned(), streams.clone());
            let thread = std::thread::spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            a2.fetch_add(1, Ordering::Relaxed);
                            o2.fetch_add(1, Ordering::Relaxed);
                            let _ = s.set_nonblocking(false);
                            if let Ok(c) = s.try_clone() {
                                st2.lock().map(|mut v| v.push(c)).ok();
                            }
                            let (o3, n3) = (o2.clone(), n2.clone());
                            std::thread::spawn(move || {
                                let _ = s.write_all(format!("{n3}\n").as_bytes());
                                let mut buf = [0u8; 16384];
                                loop {
                                    match s.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => {
                                            if s.write_all(&buf[..n]).is_err() {
                                                break;
                                            }
                                        }
                                    }
                                }
                                let _ = s.shutdown(Shutdown::Write);
                                o3.fetch_sub(1, Ordering::Relaxed);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
            NamedServer {
                name: name.to_owned(),
                addr,
                stop,
                accepted,
                open,
                thread: Some(thread),
                streams,
            }
        }

        pub fn port(&self) -> u16 {
            self.addr.port()
        }

        /// Stops listening; connections already open go on (a service whose
        /// listener died, or a restart that keeps its sessions).
        pub fn close_listener(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }

        /// Stops listening and cuts every open connection (a crashed server).
        pub fn kill(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            if let Ok(mut v) = self.streams.lock() {
                for s in v.drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }

    impl Drop for NamedServer {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// Connects, reads the greeting line (the server's name) and closes.
    pub fn ask(addr: &str) -> String {
        let s = connect(addr);
        read_name(&s)
    }

    pub fn connect(addr: &str) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s
    }

    /// Connects from a chosen source address on loopback (127.0.0.0/8).
    pub fn connect_from(src: &str, addr: &str) -> TcpStream {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        let src: SocketAddr = format!("{src}:0").parse().expect("src");
        sock.bind(&src.into()).expect("bind src");
        let dst: SocketAddr = addr.parse().expect("dst");
        sock.connect(&dst.into())
            .unwrap_or_else(|e| panic!("connect {addr} from {src}: {e}"));
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        s
    }

    /// Reads one line (a server's greeting); empty when the connection closed first.
    pub fn read_name(s: &TcpStream) -> String {
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        line.trim_end().to_owned()
    }

    /// Counts answers per server name over `n` connections.
    pub fn tally(addr: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for _ in 0..n {
            *m.entry(ask(addr)).or_insert(0) += 1;
        }
        m
    }

    /// A syslog receiver on a UDP port of loopback.
    pub struct Syslog {
        pub sock: UdpSocket,
    }

    impl Syslog {
        pub fn start() -> Syslog {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
            sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
            Syslog { sock }
        }

        pub fn port(&self) -> u16 {
            self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
        }

        /// Every line received within `wait`.
        pub fn lines(&self, wait: Duration) -> Vec<String> {
            let deadline = Instant::now() + wait;
            let mut out = Vec::new();
            while Instant::now() < deadline {
                out.extend(self.recv_one());
            }
            out
        }

        /// The next line received within `limit`, if any.
        pub fn next_line(&self, limit: Duration) -> Option<String> {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if let Some(l) = self.recv_one() {
                    return Some(l);
                }
            }
            None
        }

        /// One datagram, or `None` after the socket's read timeout (200 ms).
        fn recv_one(&self) -> Option<String> {
            let mut buf = [0u8; 8192];
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            Some(String::from_utf8_lossy(&buf[..n]).into_owned())
        }
    }

    /// Sends one command to lbd's runtime socket and returns the answer.
    pub fn runtime_cmd(sock: &std::path::Path, cmd: &str) -> String {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
            return String::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let _ = s.write_all(format!("{cmd}\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Current sessions (`scur`) of every server of `backend`, from `show stat`.
    pub fn server_sessions(sock: &std::path::Path, backend: &str) -> Vec<u64> {
        runtime_cmd(sock, "show stat")
            .lines()
            .filter(|l| l.starts_with(&format!("{backend},")) && !l.contains(",BACKEND,") && !l.contains(",FRONTEND,"))
            .filter_map(|l| l.split(',').nth(4).and_then(|v| v.parse().ok()))
            .collect()
    }

    /// Polls `f` until it holds or `limit` passes; returns the time it took.
    pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Splits the output of `curl -o - -w '\n%{http_code}'`: the status and the body.
    pub fn curl_output(stdout: &[u8]) -> (u16, String) {
        let text = String::from_utf8_lossy(stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Sends one HTTP/1.0 GET and returns the status code and body.
    pub fn http_get(addr: &str, path: &str) -> (u16, String) {
        let mut s = connect(addr);
        let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let code = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (code, body)
    }
}

/// Raises this process's open-file limit to at least `want` (tests that hold
/// thousands of sockets).
pub fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            let new = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max.max(want),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
                let capped = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
            }
        }
    }
}

pub mod gui;
pub mod mail;
pub mod pki;
pub mod web;

pub mod netns {
    //! Network namespaces the tests create and remove, so addresses such as the
    //! seed's 10.0.0.15 exist only inside them and no traffic leaves the machine.

    use std::process::Command;

    fn ip(args: &[&str]) {
        let out = Command::new("ip")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A namespace with its loopback up and the given addresses on it; deleted on drop.
    pub struct Netns {
        pub name: String,
    }

    impl Netns {
        pub fn new(tag: &str, addrs: &[&str]) -> Netns {
            let name = format!("lbd-{tag}-{}", std::process::id());
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            ip(&["netns", "add", &name]);
            let ns = Netns { name };
            ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
            for a in addrs {
                ip(&["-n", &ns.name, "addr", "add", a, "dev", "lo"]);
            }
            ns
        }

        /// Runs `f` on a thread that has entered the namespace: sockets it opens live there.
        pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
            let path = format!("/run/netns/{}", self.name);
            std::thread::spawn(move || {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                use std::os::fd::AsRawFd;
                // SAFETY: setns on this thread only, with a valid namespace descriptor.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        }
    }

    /// A small LAN: an appliance namespace holding a bridge (`br0`) with
    /// `app_addrs`, and one namespace per host, each wired to the bridge by a veth
    /// (`eth0`) with its address. Everything goes away on drop.
    pub struct Lan {
        pub hosts: Vec<Netns>,
        pub app: Netns,
    }

    impl Lan {
        pub fn new(tag: &str, app_addrs: &[&str], hosts: &[(&str, &str)]) -> Lan {
            let app = Netns::new(&format!("{tag}-app"), &[]);
            ip(&["-n", &app.name, "link", "add", "br0", "type", "bridge"]);
            ip(&["-n", &app.name, "link", "set", "br0", "up"]);
            for a in app_addrs {
                ip(&["-n", &app.name, "addr", "add", a, "dev", "br0"]);
            }
            let mut out = Vec::new();
            for (i, (name, cidr)) in hosts.iter().enumerate() {
                let host = Netns::new(&format!("{tag}-{name}"), &[]);
                let port = format!("v{i}");
                ip(&[
                    "-n", &app.name, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host.name,
                ]);
                ip(&["-n", &app.name, "link", "set", &port, "master", "br0", "up"]);
                ip(&["-n", &host.name, "addr", "add", cidr, "dev", "eth0"]);
                ip(&["-n", &host.name, "link", "set", "eth0", "up"]);
                out.push(host);
            }
            Lan { hosts: out, app }
        }
    }
}
