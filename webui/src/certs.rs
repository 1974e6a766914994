//! The SSL tab's certificate store: one folder per name under the store
//! (`/etc/ssl/frontends/<name>/`), the private key in `key.pem` (mode 0600,
//! never shown or served again) and the chain in `crt.pem`. A pair is checked
//! (both parse, the key is the certificate's) before anything is written.

use std::path::{Path, PathBuf};

/// What the store's page shows of a certificate.
#[derive(Debug, Clone)]
pub struct CertView {
    pub name: String,
    pub subject: String,
    /// DNS names: subject alternative names and the CN.
    pub names: String,
    pub issuer: String,
    /// End of validity (Unix seconds), 0 when unreadable.
    pub not_after: i64,
    /// `not_after` as a UTC date.
    pub expires: String,
    pub days_left: i64,
    /// Fewer than 30 days left (or expired).
    pub soon: bool,
    /// Why it could not be read, if it could not.
    pub error: String,
    /// Named by a service of the SSL tab or a `crt` of the LB Layer7 tab.
    pub in_use: bool,
}

/// A store name: letters, digits, `.`, `-`, `_`, up to 253, not starting with
/// a dot (so never `.` or `..`): it becomes a folder name and a path in
/// configurations, and nothing else from the browser ever does.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a certificate name: use letters, digits, '.', '-' and '_' (usually the FQDN), not starting with '.'",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// Whether a configuration names the certificate `name`: its folder's path
/// (the SSL tab's `cert =`/`key =`, an LB Layer7 `crt` path) or `crt NAME`.
pub fn in_use(store: &Path, name: &str, lb7: &str, ssl: &str) -> bool {
    let folder = format!("{}/{name}/", store.display().to_string().trim_end_matches('/'));
    let folder_bare = folder.trim_end_matches('/');
    let names_path = |text: &str| {
        text.lines().any(|l| {
            let l = l.split('#').next().unwrap_or_default();
            l.contains(&folder) || l.split_whitespace().any(|w| w.trim_end_matches('/') == folder_bare)
        })
    };
    let crt_name = lb7.lines().any(|l| {
        let words: Vec<&str> = l.split('#').next().unwrap_or_default().split_whitespace().collect();
        words.windows(2).any(|w| w[0] == "crt" && w[1] == name)
    });
    names_path(lb7) || names_path(ssl) || crt_name
}

/// Whether the configuration uses the certificate `name`: by what lbd's
/// parser resolves (a `crt` naming the folder, a file in it, or a folder
/// holding it, `crt-base` applied), or else by the text (`in_use`).
pub fn used(paths: &crate::config::Paths, name: &str, lb7: &str, ssl: &str) -> bool {
    let f = folder(&paths.cert_store, name);
    let by_model =
        crate::config::cert_paths(paths, lb7, ssl).is_some_and(|ps| ps.iter().any(|p| *p == f || p.starts_with(&f) || f.starts_with(p)));
    by_model || in_use(&paths.cert_store, name, lb7, ssl)
}

fn folder(store: &Path, name: &str) -> PathBuf {
    store.join(name)
}

/// The names of the certificates in the store, sorted (no file is parsed).
pub fn names(store: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(store) else { return Vec::new() };
    let mut out: Vec<String> = dir
        .flatten()
        .filter(|e| e.path().join("crt.pem").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| check_name(n).is_ok())
        .collect();
    out.sort();
    out
}

/// Every certificate in the store, sorted by name.
pub fn list(paths: &crate::config::Paths, lb7: &str, ssl: &str, now: i64) -> Vec<CertView> {
    let store = &paths.cert_store;
    names(store)
        .into_iter()
        .map(|name| {
            let f = folder(store, &name);
            let used = used(paths, &name, lb7, ssl);
            match lbd::tls::load_pair(&f.join("crt.pem"), Some(&f.join("key.pem"))) {
                Ok(c) => {
                    let days_left = (c.not_after - now).div_euclid(86_400);
                    CertView {
                        name,
                        subject: c.subject.clone(),
                        names: c.names.join(", "),
                        issuer: c.issuer.clone(),
                        not_after: c.not_after,
                        expires: crate::views::format_time(c.not_after.max(0) as u64),
                        days_left,
                        soon: days_left < 30,
                        error: String::new(),
                        in_use: used,
                    }
                }
                Err(e) => CertView {
                    name,
                    subject: String::new(),
                    names: String::new(),
                    issuer: String::new(),
                    not_after: 0,
                    expires: String::new(),
                    days_left: 0,
                    soon: true,
                    error: e,
                    in_use: used,
                },
            }
        })
        .collect()
}

/// The files a name had before a replacement, to put back if lbd refuses.
pub struct Previous {
    pub crt: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
}

/// Checks the pair, then writes it under `name` (key first, mode 0600).
/// Returns what the name held before.
pub fn save(store: &Path, name: &str, crt_pem: &[u8], key_pem: &[u8]) -> Result<(lbd::tls::LoadedCert, Previous), String> {
    check_name(name)?;
    let loaded = lbd::tls::check_pem_pair(&format!("'{name}'"), crt_pem, key_pem)?;
    let f = folder(store, name);
    let previous = Previous {
        crt: std::fs::read(f.join("crt.pem")).ok(),
        key: std::fs::read(f.join("key.pem")).ok(),
    };
    crate::files::replace_dir(&f, &[("crt.pem", crt_pem, 0o644), ("key.pem", key_pem, 0o600)])
        .map_err(|e| format!("{}: {e}", f.display()))?;
    Ok((loaded, previous))
}

/// Puts back what `save` replaced (or removes the name if it was new).
pub fn restore(store: &Path, name: &str, previous: &Previous) -> std::io::Result<()> {
    let f = folder(store, name);
    match (&previous.crt, &previous.key) {
        (Some(c), Some(k)) => crate::files::replace_dir(&f, &[("crt.pem", c, 0o644), ("key.pem", k, 0o600)]),
        _ => remove(store, name),
    }
}

/// Removes a name's folder.
pub fn remove(store: &Path, name: &str) -> std::io::Result<()> {
    check_name(name).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    match std::fs::remove_dir_all(folder(store, name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_a_safe_set_of_characters() {
        for ok in ["mail.xlc.local", "www-1_a", "a"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", ".hidden", "a b", "é", &"x".repeat(254)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn use_is_found_through_crt_base_and_whole_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("frontends");
        let paths = crate::config::Paths {
            base: Vec::new(),
            lb7: dir.path().join("lb7.cfg"),
            ssl: dir.path().join("ssl.cfg"),
            socket: dir.path().join("sock"),
            cert_store: store.clone(),
        };
        let c = rcgen::generate_simple_self_signed(vec!["www.example".to_owned()]).unwrap();
        save(&store, "www", c.cert.pem().as_bytes(), c.key_pair.serialize_pem().as_bytes()).unwrap();
        let fe = |crt: &str| {
            format!(
                "global\n  crt-base {}\nfrontend f\n  mode tcp\n  bind 127.0.0.1:18443 ssl crt {crt}\n  default_backend b\nbackend b\n  mode tcp\n  server s 127.0.0.1:1\n",
                store.display()
            )
        };
        assert!(used(&paths, "www", &fe("www/crt.pem"), ""), "relative to crt-base");
        assert!(
            used(&paths, "www", &fe(&format!("{}/www", store.display())), ""),
            "the folder by its path"
        );
        assert!(used(&paths, "www", &fe("www/"), ""), "the folder under crt-base");
        assert!(!used(&paths, "other", &fe("www/crt.pem"), ""));
    }

    #[test]
    fn use_is_found_by_path_or_crt_name() {
        let store = Path::new("/etc/ssl/frontends");
        let ssl = "[s]\ncert = /etc/ssl/frontends/mail.xlc.local/crt.pem\n";
        assert!(in_use(store, "mail.xlc.local", "", ssl));
        assert!(!in_use(store, "mail.xlc", "", ssl), "a prefix of another name");
        assert!(in_use(store, "www", "frontend f\n  bind :443 ssl crt www alpn http/1.1\n", ""));
        assert!(in_use(store, "www", "  bind :443 ssl crt /etc/ssl/frontends/www\n", ""));
        assert!(!in_use(store, "www", "  # bind :443 ssl crt www\n", ""), "comments do not count");
    }
}
