//! Backup and restore of the box's configuration as one `.tar.gz`: the LB
//! Layer7 and SSL files, the network file, the certificate store (keys
//! included: the archive is as secret as the box), and the GUI's users and
//! revisions exported from the store (the database itself is never copied
//! while open).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::certs::check_name;
use crate::store::{Revision, Store, User};

/// The GUI's part of an archive.
#[derive(Serialize, Deserialize, Default)]
pub struct GuiState {
    pub users: Vec<User>,
    pub revisions: Vec<Revision>,
}

/// What an archive holds, read and checked.
#[derive(Default)]
pub struct Contents {
    pub lb7: Option<String>,
    pub ssl: Option<String>,
    pub network: Option<String>,
    /// Certificate name, `crt.pem`, `key.pem`.
    pub certs: Vec<(String, Vec<u8>, Vec<u8>)>,
    pub gui: Option<GuiState>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the archive: {0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn add(tar: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>, name: &str, data: &[u8], mode: u32) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(crate::app::now());
    h.set_cksum();
    tar.append_data(&mut h, name, data)
}

/// The archive of the box's configuration now.
pub fn make(store: &dyn Store, lb7: &Path, ssl: &Path, network: &Path, cert_store: &Path) -> Result<Vec<u8>, BackupError> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, path) in [("lb7.cfg", lb7), ("ssl.cfg", ssl), ("network.toml", network)] {
        if let Some(t) = crate::files::read_optional(path)? {
            add(&mut tar, name, t.as_bytes(), 0o644)?;
        }
    }
    if let Ok(dir) = std::fs::read_dir(cert_store) {
        let mut names: Vec<String> = dir.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect();
        names.sort();
        for n in names.into_iter().filter(|n| check_name(n).is_ok()) {
            let f = cert_store.join(&n);
            if let (Ok(c), Ok(k)) = (std::fs::read(f.join("crt.pem")), std::fs::read(f.join("key.pem"))) {
                add(&mut tar, &format!("frontends/{n}/crt.pem"), &c, 0o644)?;
                add(&mut tar, &format!("frontends/{n}/key.pem"), &k, 0o600)?;
            }
        }
    }
    let mut revisions = store.revisions(crate::store::Tab::Lb7)?;
    revisions.extend(store.revisions(crate::store::Tab::Ssl)?);
    let gui = GuiState {
        users: store.users()?,
        revisions,
    };
    let json = serde_json::to_vec_pretty(&gui).map_err(|e| BackupError::Bad(e.to_string()))?;
    add(&mut tar, "webui.json", &json, 0o600)?;
    let gz = tar.into_inner()?;
    Ok(gz.finish()?)
}

/// A certificate's `crt.pem` and `key.pem` as they are found in an archive.
type HalfPair = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The largest file an archive may hold, and the most entries.
const MAX_ENTRY: u64 = 4 * 1024 * 1024;
const MAX_ENTRIES: usize = 2000;

/// Reads an archive made by [`make`]; anything else in it is an error (no
/// path from the archive is ever used as a path).
pub fn read(archive: &[u8]) -> Result<Contents, BackupError> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut out = Contents::default();
    let mut pending: std::collections::BTreeMap<String, HalfPair> = Default::default();
    let entries = tar.entries().map_err(|e| BackupError::Bad(format!("not a .tar.gz backup: {e}")))?;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(BackupError::Bad("too many entries".into()));
        }
        let mut e = entry.map_err(|e| BackupError::Bad(format!("not a .tar.gz backup: {e}")))?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        if e.size() > MAX_ENTRY {
            return Err(BackupError::Bad("an entry is too large".into()));
        }
        let name = e
            .path()
            .map_err(|e| BackupError::Bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        let text = || String::from_utf8(data.clone()).map_err(|_| BackupError::Bad(format!("{name} is not text")));
        match name.as_str() {
            "lb7.cfg" => out.lb7 = Some(text()?),
            "ssl.cfg" => out.ssl = Some(text()?),
            "network.toml" => out.network = Some(text()?),
            "webui.json" => out.gui = Some(serde_json::from_slice(&data).map_err(|e| BackupError::Bad(format!("webui.json: {e}")))?),
            other => {
                let parts: Vec<&str> = other.split('/').collect();
                match parts.as_slice() {
                    ["frontends", cert, file @ ("crt.pem" | "key.pem")] if check_name(cert).is_ok() => {
                        let slot = pending.entry((*cert).to_owned()).or_default();
                        if *file == "crt.pem" {
                            slot.0 = Some(data);
                        } else {
                            slot.1 = Some(data);
                        }
                    }
                    _ => return Err(BackupError::Bad(format!("unexpected entry {other:?}"))),
                }
            }
        }
    }
    for (name, (c, k)) in pending {
        match (c, k) {
            (Some(c), Some(k)) => out.certs.push((name, c, k)),
            _ => return Err(BackupError::Bad(format!("certificate {name} lacks its crt.pem or key.pem"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, Tab};

    #[test]
    fn an_archive_round_trips_and_foreign_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("lb7.cfg"), "frontend f\n").unwrap();
        std::fs::write(d.join("ssl.cfg"), "").unwrap();
        std::fs::create_dir_all(d.join("frontends/www")).unwrap();
        std::fs::write(d.join("frontends/www/crt.pem"), "C").unwrap();
        std::fs::write(d.join("frontends/www/key.pem"), "K").unwrap();
        let store = SledStore::open(&d.join("db")).unwrap();
        store
            .put_user(&User {
                name: "admin".into(),
                hash: "h".into(),
                must_change: false,
            })
            .unwrap();
        store.add_revision(Tab::Lb7, 1, "admin", "c", "frontend f\n").unwrap();
        let a = make(
            &store,
            &d.join("lb7.cfg"),
            &d.join("ssl.cfg"),
            &d.join("network.toml"),
            &d.join("frontends"),
        )
        .unwrap();
        let c = read(&a).unwrap();
        assert_eq!(c.lb7.as_deref(), Some("frontend f\n"));
        assert_eq!(c.network, None);
        assert_eq!(c.certs, vec![("www".to_owned(), b"C".to_vec(), b"K".to_vec())]);
        let gui = c.gui.unwrap();
        assert_eq!((gui.users.len(), gui.revisions.len()), (1, 1));
        // An entry outside the layout (a path to write elsewhere) is refused.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut t = tar::Builder::new(gz);
        add(&mut t, "etc/passwd", b"x", 0o644).unwrap();
        let bad = t.into_inner().unwrap().finish().unwrap();
        assert!(read(&bad).is_err());
        assert!(read(b"not an archive").is_err());
    }
}
