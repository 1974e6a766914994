//! Backup and restore of the box's configuration as one `.tar.gz`: the LB
//! Layer7 and SSL files, the network file, the certificate store with its
//! keys, and the GUI's users exported from the store (the database itself is
//! never copied while open). The archive is sealed with a passphrase the
//! operator chooses (AES-256-GCM, the key derived with argon2id), so the keys
//! it holds are never downloadable in clear.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::certs::check_name;
use crate::store::{Store, User};

/// The GUI's part of an archive.
#[derive(Serialize, Deserialize, Default)]
pub struct GuiState {
    pub users: Vec<User>,
}

/// The sealed file starts with this; then the salt, the nonce, the sealed tar.gz.
const MAGIC: &[u8; 8] = b"LBDBAK1\n";
const SALT: usize = 16;

fn derive(passphrase: &str, salt: &[u8]) -> Result<aws_lc_rs::aead::LessSafeKey, BackupError> {
    let mut key = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| BackupError::Bad(format!("key derivation: {e}")))?;
    let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key).map_err(|_| BackupError::Bad("key".into()))?;
    Ok(aws_lc_rs::aead::LessSafeKey::new(unbound))
}

/// Seals `plain` with `passphrase`.
pub fn seal(plain: Vec<u8>, passphrase: &str) -> Result<Vec<u8>, BackupError> {
    use aws_lc_rs::rand::SecureRandom;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; aws_lc_rs::aead::NONCE_LEN];
    rng.fill(&mut salt).map_err(|_| BackupError::Bad("random".into()))?;
    rng.fill(&mut nonce).map_err(|_| BackupError::Bad("random".into()))?;
    let key = derive(passphrase, &salt)?;
    let mut data = plain;
    key.seal_in_place_append_tag(
        aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
        aws_lc_rs::aead::Aad::from(MAGIC),
        &mut data,
    )
    .map_err(|_| BackupError::Bad("sealing failed".into()))?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&data);
    Ok(out)
}

/// Opens a sealed archive; a wrong passphrase or a damaged file is an error.
pub fn open(sealed: &[u8], passphrase: &str) -> Result<Vec<u8>, BackupError> {
    let head = MAGIC.len() + SALT + aws_lc_rs::aead::NONCE_LEN;
    if sealed.len() < head || &sealed[..MAGIC.len()] != MAGIC {
        return Err(BackupError::Bad("not a backup of this GUI".into()));
    }
    let salt = &sealed[MAGIC.len()..MAGIC.len() + SALT];
    let mut nonce = [0u8; aws_lc_rs::aead::NONCE_LEN];
    nonce.copy_from_slice(&sealed[MAGIC.len() + SALT..head]);
    let key = derive(passphrase, salt)?;
    let mut data = sealed[head..].to_vec();
    let plain = key
        .open_in_place(
            aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
            aws_lc_rs::aead::Aad::from(MAGIC),
            &mut data,
        )
        .map_err(|_| BackupError::Bad("wrong passphrase, or the file is damaged".into()))?;
    Ok(plain.to_vec())
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
    let gui = GuiState { users: store.users()? };
    let json = serde_json::to_vec_pretty(&gui).map_err(|e| BackupError::Bad(e.to_string()))?;
    add(&mut tar, "webui.json", &json, 0o600)?;
    let gz = tar.into_inner()?;
    Ok(gz.finish()?)
}

/// A certificate's `crt.pem` and `key.pem` as they are found in an archive.
type HalfPair = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The largest file an archive may hold, the most entries, and the most bytes
/// all entries may unpack to (a small gzip can hold a huge file).
const MAX_ENTRY: u64 = 4 * 1024 * 1024;
const MAX_ENTRIES: usize = 2000;
const MAX_TOTAL: u64 = 32 * 1024 * 1024;

/// Reads an archive made by [`make`]; anything else in it is an error (no
/// path from the archive is ever used as a path).
pub fn read(archive: &[u8]) -> Result<Contents, BackupError> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut out = Contents::default();
    let mut total = 0u64;
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
        total += e.size();
        if total > MAX_TOTAL {
            return Err(BackupError::Bad("the archive unpacks to too much".into()));
        }
        let name = e
            .path()
            .map_err(|e| BackupError::Bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        (&mut e).take(MAX_ENTRY).read_to_end(&mut data)?;
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
    use crate::store::SledStore;

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
        assert_eq!(c.gui.unwrap().users.len(), 1);
        // Sealed with a passphrase: only that passphrase opens it.
        let sealed = seal(a.clone(), "correct horse battery").unwrap();
        assert!(!sealed.windows(2).any(|w| w == b"K\0"), "not in clear");
        assert_eq!(open(&sealed, "correct horse battery").unwrap(), a);
        assert!(open(&sealed, "wrong passphrase").is_err());
        assert!(open(b"LBDBAK1\nshort", "x").is_err());
        // An entry outside the layout (a path to write elsewhere) is refused.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut t = tar::Builder::new(gz);
        add(&mut t, "etc/passwd", b"x", 0o644).unwrap();
        let bad = t.into_inner().unwrap().finish().unwrap();
        assert!(read(&bad).is_err());
        assert!(read(b"not an archive").is_err());
    }
}
