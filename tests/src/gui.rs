//! The GUI (webui) driven over HTTPS by curl, as a browser without
//! JavaScript would: a cookie jar, the Origin header webui checks, forms sent
//! url-encoded and the CSRF token read off each page.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::curl_output;

pub struct Browser {
    pub base: String,
    pub jar: PathBuf,
}

impl Browser {
    /// A browser for the GUI at `base` (`https://host:port`), keeping its
    /// cookies in the file `jar`.
    pub fn new(base: &str, jar: &Path) -> Browser {
        Browser {
            base: base.trim_end_matches('/').to_owned(),
            jar: jar.to_path_buf(),
        }
    }

    /// curl with this browser's cookies and Origin, and `args`.
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
            .arg("-c")
            .arg(&self.jar)
            .arg("-b")
            .arg(&self.jar)
            .args(["-H", &format!("Origin: {}", self.base)])
            .args(args)
            .output()
            .expect("curl");
        curl_output(&out.stdout)
    }

    /// GET `path`: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.curl(&[&format!("{}{path}", self.base)])
    }

    /// POST the form `form` to `path`: the status code and the body.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut args: Vec<String> = Vec::new();
        for (k, v) in form {
            args.push("--data-urlencode".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{}{path}", self.base));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&refs)
    }

    /// The CSRF token of the form on `path`.
    pub fn csrf(&self, path: &str) -> String {
        let (_, html) = self.get(path);
        let at = html
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF token on {path}: {html}"))
            + 19;
        html[at..].split('"').next().unwrap_or_default().to_owned()
    }

    /// Logs in as `user`; true when the GUI accepted the password.
    pub fn login(&self, user: &str, password: &str) -> bool {
        let csrf = self.csrf("/login");
        self.post("/login", &[("csrf", &csrf), ("user", user), ("password", password)]).0 == 303
    }

    /// Changes the logged-in user's password (the forced change of the first
    /// login); panics when the GUI refuses.
    pub fn change_password(&self, current: &str, new: &str) {
        let csrf = self.csrf("/password");
        let (code, body) = self.post("/password", &[("csrf", &csrf), ("current", current), ("new", new), ("again", new)]);
        assert_eq!(code, 303, "the password change was refused: {body}");
    }
}
