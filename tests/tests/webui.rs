//! webui and lbd, both real, over HTTPS with curl as the browser: the first
//! login with the generated password and the forced change, Apply (traffic
//! moves to the new server), a broken config refused at its line while the old
//! one keeps serving, history and rollback, and the start after an apply that
//! was cut short (webui killed between writing the file and recording it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::gui::Browser;
use e2e::harness::*;
use webui::store::{Pending, SledStore, Store, Tab};

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(cmd: &mut Command, log: PathBuf, ready: &str) -> Proc {
        let err = std::fs::File::create(&log).expect("log");
        let child = cmd.stdout(Stdio::null()).stderr(err).spawn().expect("spawn");
        let p = Proc { child, log };
        p.wait_for(ready);
        p
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("did not see {needle:?}:\n{}", self.text());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The box: lbd reading `global.cfg`, `lb7.cfg` and `ssl.cfg` from one folder.
struct Box_ {
    dir: Scratch,
    lbd: Proc,
    front: u16,
}

impl Box_ {
    fn start(first_server: u16) -> Box_ {
        let dir = Scratch::new("webui");
        let front = free_port();
        let sock = dir.path.join("lbd.sock");
        std::fs::write(
            dir.path.join("global.cfg"),
            format!(
                "global\n  stats socket {} level admin\n  unix-bind prefix {}\n",
                sock.display(),
                dir.path.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path.join("lb7.cfg"), lb7(front, first_server)).unwrap();
        std::fs::write(dir.path.join("ssl.cfg"), "").unwrap();
        let lbd = Proc::start(
            Command::new(e2e::lbd_bin())
                .arg("-f")
                .arg(dir.path.join("global.cfg"))
                .arg("-f")
                .arg(dir.path.join("lb7.cfg"))
                .arg("-s")
                .arg(dir.path.join("ssl.cfg")),
            dir.path.join("lbd.log"),
            "started",
        );
        Box_ { dir, lbd, front }
    }

    fn webui(&self, port: u16) -> Proc {
        let d = &self.dir.path;
        Proc::start(
            Command::new(e2e::webui_bin())
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--state-dir")
                .arg(d.join("state"))
                .arg("--base")
                .arg(d.join("global.cfg"))
                .arg("--lb7")
                .arg(d.join("lb7.cfg"))
                .arg("--ssl")
                .arg(d.join("ssl.cfg"))
                .arg("--socket")
                .arg(d.join("lbd.sock"))
                .arg("--log-file")
                .arg(d.join("lbd.log"))
                .arg("--cert-store")
                .arg(d.join("frontends"))
                .arg("--network")
                .arg(d.join("network.toml"))
                .args(["--name", "lb-e2e"]),
            d.join(format!("webui-{port}.log")),
            "webui: serving",
        )
    }

    fn ask(&self) -> String {
        ask(&format!("127.0.0.1:{}", self.front))
    }
}

fn lb7(front: u16, server: u16) -> String {
    format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend ft\n  bind 127.0.0.1:{front}\n  default_backend bk\n\
         backend bk\n  server app 127.0.0.1:{server}\n"
    )
}

/// curl as the browser: a cookie jar, the GUI's own Origin, the self-signed
/// certificate accepted. Returns the status and the body.
#[test]
fn apply_through_the_gui_moves_traffic_and_a_broken_config_keeps_the_old_one() {
    let a = NamedServer::start("A", "127.0.0.1:0");
    let b = NamedServer::start("B", "127.0.0.1:0");
    let bx = Box_::start(a.port());
    assert_eq!(bx.ask(), "A");
    let port = free_port();
    let ui = bx.webui(port);
    // The first password: on the console and in a root-only file.
    let pw_file = bx.dir.path.join("state/initial-admin-password");
    let pw_text = std::fs::read_to_string(&pw_file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777, 0o600);
    let password = pw_text.lines().find_map(|l| l.strip_prefix("password: ")).unwrap().to_owned();
    assert!(ui.text().contains(&password), "the console shows it too");
    let br = logged_in(&bx, port);
    // The editor holds the live file; the header says lbd is up.
    let (code, html) = br.get("/lb7");
    assert_eq!(code, 200);
    assert!(html.contains("id=\"box-state\">lbd up"), "{html}");
    assert!(html.contains(&format!("server app 127.0.0.1:{}", a.port())), "{html}");
    // Apply: lbd reloads and traffic goes to B.
    let csrf = br.csrf("/lb7");
    let to_b = lb7(bx.front, b.port());
    let (code, html) = br.post("/lb7/apply", &[("csrf", &csrf), ("text", &to_b), ("comment", "to B")]);
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("Applied as revision"), "{html}");
    assert_eq!(bx.ask(), "B");
    assert_eq!(std::fs::read_to_string(bx.dir.path.join("lb7.cfg")).unwrap(), to_b);
    // A broken config: refused with its line; B still serves.
    let broken = to_b.replace("  default_backend bk\n", "  default_backend bk\n  bnd nowhere\n");
    let (code, html) = br.post("/lb7/apply", &[("csrf", &csrf), ("text", &broken)]);
    assert_eq!(code, 422);
    assert!(
        html.contains("line 9</a>") && html.contains("bnd") && html.contains("Not applied"),
        "{html}"
    );
    assert_eq!(bx.ask(), "B");
    // A valid config lbd cannot load (the port is taken): lbd refuses, the file is put back.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let clash = to_b.replace(
        &format!("bind 127.0.0.1:{}", bx.front),
        &format!("bind 127.0.0.1:{}", taken.local_addr().unwrap().port()),
    );
    let (code, html) = br.post("/lb7/apply", &[("csrf", &csrf), ("text", &clash)]);
    assert_eq!(code, 422, "{html}");
    assert!(html.contains("put back"), "{html}");
    assert_eq!(std::fs::read_to_string(bx.dir.path.join("lb7.cfg")).unwrap(), to_b);
    assert_eq!(bx.ask(), "B");
    // Back to A, then roll back to the revision that sent traffic to B.
    let (code, _) = br.post(
        "/lb7/apply",
        &[("csrf", &csrf), ("text", &lb7(bx.front, a.port())), ("comment", "to A")],
    );
    assert_eq!(code, 200);
    assert_eq!(bx.ask(), "A");
    let (_, hist) = br.get("/lb7/history");
    assert!(hist.contains("to B") && hist.contains("to A"), "{hist}");
    let first = hist
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let (code, html) = br.post("/lb7/rollback", &[("csrf", &csrf), ("id", &first)]);
    assert_eq!(code, 200, "{html}");
    assert_eq!(bx.ask(), "B");
    let (_, hist) = br.get("/lb7/history");
    assert!(hist.contains(&format!("rollback to revision {first}")), "{hist}");
    drop(ui);
    drop(bx.lbd);
}

#[test]
fn a_restart_after_a_cut_apply_puts_files_store_and_lbd_back_in_agreement() {
    let a = NamedServer::start("A", "127.0.0.1:0");
    let b = NamedServer::start("B", "127.0.0.1:0");
    let bx = Box_::start(a.port());
    let db = bx.dir.path.join("state/webui.db");
    let lb7_path = bx.dir.path.join("lb7.cfg");
    let old = std::fs::read_to_string(&lb7_path).unwrap();
    let new = lb7(bx.front, b.port());
    // Cut after the write, before the reload: the file says B, lbd still runs A.
    {
        std::fs::create_dir_all(bx.dir.path.join("state")).unwrap();
        let store = SledStore::open(&db).unwrap();
        store
            .set_pending(Some(&Pending {
                tab: Tab::Lb7,
                user: "admin".into(),
                comment: String::new(),
                old: Some(old.clone()),
                new: new.clone(),
                more: Vec::new(),
            }))
            .unwrap();
        std::fs::write(&lb7_path, &new).unwrap();
    }
    let ui = bx.webui(free_port());
    ui.wait_for("was interrupted; the previous configuration was put back");
    assert_eq!(std::fs::read_to_string(&lb7_path).unwrap(), old);
    assert_eq!(bx.ask(), "A");
    drop(ui);
    // Cut after lbd took it, before the record: kept and recorded.
    {
        let store = SledStore::open(&db).unwrap();
        store
            .set_pending(Some(&Pending {
                tab: Tab::Lb7,
                user: "admin".into(),
                comment: "cut".into(),
                old: Some(old.clone()),
                new: new.clone(),
                more: Vec::new(),
            }))
            .unwrap();
        std::fs::write(&lb7_path, &new).unwrap();
        let answer = runtime_cmd(&bx.dir.path.join("lbd.sock"), "reload");
        assert!(answer.starts_with("Success=1"), "{answer}");
    }
    assert_eq!(bx.ask(), "B");
    let ui = bx.webui(free_port());
    ui.wait_for("it is recorded now");
    drop(ui);
    let store = SledStore::open(&db).unwrap();
    let revs = store.revisions(Tab::Lb7).unwrap();
    assert_eq!(revs.len(), 1);
    assert_eq!((revs[0].text.as_str(), revs[0].comment.as_str()), (new.as_str(), "cut"));
    assert!(store.pending().unwrap().is_none());
    assert_eq!(bx.ask(), "B");
}

/// Servers A and B, the box on A, its GUI, and a browser logged in to it.
fn logged_in_box() -> (NamedServer, NamedServer, Box_, Proc, Browser) {
    let a = NamedServer::start("A", "127.0.0.1:0");
    let b = NamedServer::start("B", "127.0.0.1:0");
    let bx = Box_::start(a.port());
    let port = free_port();
    let ui = bx.webui(port);
    let br = logged_in(&bx, port);
    (a, b, bx, ui, br)
}

/// Logs in with the generated password and sets a new one.
fn logged_in(bx: &Box_, port: u16) -> Browser {
    let password = std::fs::read_to_string(bx.dir.path.join("state/initial-admin-password"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("password: ").map(str::to_owned))
        .unwrap();
    let br = Browser::new(&format!("https://127.0.0.1:{port}"), &bx.dir.path.join(format!("jar-{port}")));
    assert!(br.login("admin", &password));
    br.change_password(&password, "operator-pass-1");
    assert!(
        !bx.dir.path.join("state/initial-admin-password").exists(),
        "the first password's file goes once it is changed"
    );
    br
}

#[test]
fn stats_show_the_servers_and_disabling_one_moves_its_traffic_and_logs_show_lbd() {
    let (a, b, bx, _ui, br) = logged_in_box();
    let csrf = br.csrf("/lb7");
    let two = format!(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend ft\n  bind 127.0.0.1:{}\n  default_backend bk\n\
         backend bk\n  server app 127.0.0.1:{} check inter 1s\n  server other 127.0.0.1:{} check inter 1s\n",
        bx.front,
        a.port(),
        b.port()
    );
    let (code, html) = br.post("/lb7/apply", &[("csrf", &csrf), ("text", &two)]);
    assert_eq!(code, 200, "{html}");
    let seen: std::collections::BTreeSet<String> = (0..6).map(|_| bx.ask()).collect();
    assert_eq!(seen.len(), 2, "both servers serve: {seen:?}");
    let (code, html) = br.get("/stats");
    assert_eq!(code, 200);
    assert!(html.contains("id=\"row-bk-app\"") && html.contains("id=\"row-bk-other\""), "{html}");
    // Disable `app` on the Stats page: traffic stops reaching it.
    let csrf = br.csrf("/stats");
    let (code, html) = br.post(
        "/stats/server",
        &[("csrf", &csrf), ("backend", "bk"), ("server", "app"), ("action", "disable")],
    );
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("Server bk/app: disable."), "{html}");
    assert!(html.contains("MAINT"), "{html}");
    for _ in 0..6 {
        assert_eq!(bx.ask(), "B");
    }
    // A name lbd does not list never reaches the socket.
    let (code, _) = br.post(
        "/stats/server",
        &[
            ("csrf", &csrf),
            ("backend", "bk"),
            ("server", "app\nshutdown sessions server bk/other"),
            ("action", "disable"),
        ],
    );
    assert_eq!(code, 404);
    let (code, _) = br.post(
        "/stats/server",
        &[("csrf", &csrf), ("backend", "bk"), ("server", "app"), ("action", "enable")],
    );
    assert_eq!(code, 200);
    let seen: std::collections::BTreeSet<String> = (0..6).map(|_| bx.ask()).collect();
    assert_eq!(seen.len(), 2, "app is back: {seen:?}");
    // Logs: lbd's lines, newest first, filtered.
    let (code, html) = br.get("/logs?q=started");
    assert_eq!(code, 200);
    assert!(html.contains("lbd 0.1.0 started"), "{html}");
    assert!(!html.contains("listening on"), "filtered: {html}");
}

#[test]
fn a_backup_restores_the_configuration_and_certificates() {
    let (a, b, bx, _ui, br) = logged_in_box();
    // A certificate in the store, and the configuration on A.
    let pki = e2e::pki::Pki::new(&[e2e::pki::Leaf {
        file: "www",
        kind: e2e::pki::Kind::Ecdsa,
        names: &["www.example"],
        expired: false,
        org: "X",
    }]);
    let (crt, key) = pki.pair("www");
    let csrf = br.csrf("/ssl");
    let (code, html) = br.curl(&[
        "-F",
        "name=www.example",
        "-F",
        &format!("key_file=@{}", key.display()),
        "-F",
        &format!("crt_file=@{}", crt.display()),
        &format!("{}/ssl/certs?csrf={csrf}", br.base),
    ]);
    assert_eq!(code, 200, "{html}");
    let csrf = br.csrf("/lb7");
    let on_a = lb7(bx.front, a.port());
    assert_eq!(br.post("/lb7/apply", &[("csrf", &csrf), ("text", &on_a)]).0, 200);
    // The backup, sealed with a passphrase: the key is not in it in clear.
    let archive = bx.dir.path.join("backup.lbdbak");
    let setup_csrf = br.csrf("/setup");
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-o"])
        .arg(&archive)
        .arg("-b")
        .arg(&br.jar)
        .args(["-H", &format!("Origin: {}", br.base)])
        .args(["--data-urlencode", &format!("csrf={setup_csrf}")])
        .args([
            "--data-urlencode",
            "passphrase=backup-pass-1",
            "--data-urlencode",
            "again=backup-pass-1",
        ])
        .arg(format!("{}/setup/backup", br.base))
        .status()
        .unwrap();
    assert!(out.success());
    let sealed = std::fs::read(&archive).unwrap();
    assert!(sealed.starts_with(b"LBDBAK1"), "{}", String::from_utf8_lossy(&sealed));
    let opened = webui::backup::open(&sealed, "backup-pass-1").expect("opens with its passphrase");
    let contents = webui::backup::read(&opened).unwrap();
    assert_eq!(contents.certs.len(), 1);
    assert!(contents.lb7.is_some() && contents.gui.is_some());
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains(key_line),
        "the key is not in the file in clear"
    );
    // Things change: traffic to B, the certificate deleted.
    assert_eq!(br.post("/lb7/apply", &[("csrf", &csrf), ("text", &lb7(bx.front, b.port()))]).0, 200);
    assert_eq!(bx.ask(), "B");
    let csrf = br.csrf("/ssl");
    assert_eq!(br.post("/ssl/certs/delete", &[("csrf", &csrf), ("name", "www.example")]).0, 200);
    // Restore: back to A, the certificate back.
    let csrf = br.csrf("/setup");
    let restore = |passphrase: &str, file: &std::path::Path| {
        br.curl(&[
            "-F",
            &format!("archive=@{}", file.display()),
            "-F",
            &format!("passphrase={passphrase}"),
            &format!("{}/setup/restore?csrf={csrf}", br.base),
        ])
    };
    let (code, html) = restore("wrong-passphrase", &archive);
    assert_eq!(code, 422, "a wrong passphrase: {html}");
    assert_eq!(bx.ask(), "B");
    let (code, html) = restore("backup-pass-1", &archive);
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("Restored: 1 certificate(s)"), "{html}");
    assert_eq!(bx.ask(), "A");
    assert_eq!(std::fs::read_to_string(bx.dir.path.join("lb7.cfg")).unwrap(), on_a);
    assert!(bx.dir.path.join("frontends/www.example/key.pem").exists());
    // A file that is not a backup changes nothing.
    std::fs::write(bx.dir.path.join("junk.tar.gz"), b"junk").unwrap();
    let (code, html) = restore("backup-pass-1", &bx.dir.path.join("junk.tar.gz"));
    assert_eq!(code, 422, "{html}");
    assert_eq!(bx.ask(), "A");
}
