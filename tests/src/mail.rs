//! A real dovecot (Debian's dovecot-imapd and dovecot-pop3d) for the tests:
//! IMAP and POP3 in clear on given ports of one address, users with the
//! password `secret`, and a greeting that names the server.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Scratch;

pub struct Dovecot {
    pub name: String,
    pub ip: String,
    pub imap: u16,
    pub pop3: u16,
    child: Option<Child>,
    netns: Option<String>,
    /// IMAPS and POP3S ports with the certificate and key they serve.
    tls: Option<MailTls>,
    /// False: stopping dovecot leaves logged-in sessions running (dovecot's
    /// `shutdown_clients = no`), as a mail server whose login service dies.
    pub shutdown_clients: bool,
    dir: Scratch,
}

/// Implicit-TLS ports and the certificate (chain) and key they serve.
#[derive(Clone)]
pub struct MailTls {
    pub imaps: u16,
    pub pop3s: u16,
    pub crt: PathBuf,
    pub key: PathBuf,
}

/// The users every dovecot knows, all with the password `secret`.
pub const USERS: &[&str] = &["alice", "bob", "carol"];

impl Dovecot {
    /// Starts dovecot named `name` on `ip`, IMAP on `imap` and POP3 on `pop3`.
    pub fn start(name: &str, ip: &str, imap: u16, pop3: u16) -> Dovecot {
        Self::launch(None, name, ip, imap, pop3, None, true)
    }

    /// The same inside the network namespace `ns`.
    pub fn start_in_netns(ns: &str, name: &str, ip: &str, imap: u16, pop3: u16) -> Dovecot {
        Self::launch(Some(ns.to_owned()), name, ip, imap, pop3, None, true)
    }

    /// In `ns`, with IMAPS and POP3S too; `shutdown_clients` as dovecot's option.
    pub fn start_tls_in_netns(ns: &str, name: &str, ip: &str, imap: u16, pop3: u16, tls: MailTls, shutdown_clients: bool) -> Dovecot {
        Self::launch(Some(ns.to_owned()), name, ip, imap, pop3, Some(tls), shutdown_clients)
    }

    fn launch(netns: Option<String>, name: &str, ip: &str, imap: u16, pop3: u16, tls: Option<MailTls>, shutdown_clients: bool) -> Dovecot {
        let dir = Scratch::new("dovecot");
        let mut d = Dovecot {
            name: name.to_owned(),
            ip: ip.to_owned(),
            imap,
            pop3,
            child: None,
            netns,
            tls,
            shutdown_clients,
            dir,
        };
        d.write_config();
        d.spawn();
        d
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path.join("dovecot.conf")
    }

    fn write_config(&self) {
        let d = self.dir.path.display();
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(self.dir.path.join(sub)).expect("dovecot dir");
        }
        // Mail is stored as the unprivileged `nobody`.
        let _ = Command::new("chmod").arg("777").arg(self.dir.path.join("mail")).status();
        let (ssl, imaps, pop3s) = match &self.tls {
            Some(t) => (
                format!("ssl = yes\nssl_cert = <{}\nssl_key = <{}\n", t.crt.display(), t.key.display()),
                t.imaps,
                t.pop3s,
            ),
            None => ("ssl = no\n".to_owned(), 0, 0),
        };
        let shutdown = if self.shutdown_clients { "yes" } else { "no" };
        let passwd: String = USERS.iter().map(|u| format!("{u}:{{PLAIN}}secret\n")).collect();
        std::fs::write(self.dir.path.join("passwd"), passwd).expect("passwd");
        let conf = format!(
            "base_dir = {d}/run
state_dir = {d}/state
instance_name = lbd-test-{name}-{imap}
listen = {ip}
protocols = imap pop3
{ssl}shutdown_clients = {shutdown}
disable_plaintext_auth = no
auth_mechanisms = plain login
login_greeting = {name} ready
log_path = {d}/dovecot.log
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
  }}
}}
",
            name = self.name,
            imap = self.imap,
            pop3 = self.pop3,
            ip = self.ip,
        );
        std::fs::write(self.conf_path(), conf).expect("dovecot.conf");
    }

    fn spawn(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/dovecot"]);
                c
            }
            None => Command::new("/usr/sbin/dovecot"),
        };
        let stderr = std::fs::File::create(self.dir.path.join("stderr.log")).expect("dovecot stderr");
        let child = cmd
            .arg("-F")
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dovecot (Debian packages dovecot-imapd, dovecot-pop3d): {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let up = match &self.netns {
                None => [self.imap, self.pop3].iter().all(|p| {
                    let addr = format!("{}:{p}", self.ip);
                    addr.parse()
                        .ok()
                        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).ok())
                        .is_some()
                }),
                Some(ns) => {
                    let ns = ns.clone();
                    let addrs: Vec<String> = [self.imap, self.pop3].iter().map(|p| format!("{}:{p}", self.ip)).collect();
                    crate::web::run_in_netns(&ns, move || {
                        addrs.iter().all(|a| {
                            a.parse()
                                .ok()
                                .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).ok())
                                .is_some()
                        })
                    })
                }
            };
            if up {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("dovecot exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "dovecot not listening:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// dovecot's own messages, for failure reports.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path.join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("dovecot.log"))
    }

    /// Stops dovecot (its sessions end with it, unless `shutdown_clients` is false).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: the master stops its login and mail processes before it exits.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill();
    }
}
