//! Files the GUI writes: always atomically (DESIGN.md): a temporary file in the
//! same folder, fsync, rename over the old one, fsync the folder. A crash at any
//! point leaves the old file or the new one, never half of either.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` atomically with the permission bits `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A fresh name each time, never an existing file (nor a link planted there).
    let tmp = dir.join(format!(".{name}.tmp-{}", crate::auth::random_token(8)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the file `path` and makes the removal durable (the folder synced),
/// so a power cut right after cannot bring the file back.
pub fn remove_durably(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Writes two files that belong together (a key and its certificate): both
/// written whole under temporary names first, then renamed, key last, so the
/// window where they disagree is two renames long.
pub fn write_pair(dir: &Path, crt: &str, crt_data: &[u8], key: &str, key_data: &[u8]) -> std::io::Result<()> {
    let staged = |name: &str, data: &[u8], mode: u32| -> std::io::Result<std::path::PathBuf> {
        let tmp = dir.join(format!(".{name}.tmp-{}", crate::auth::random_token(8)));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(tmp)
    };
    let c = staged(crt, crt_data, 0o644)?;
    let k = match staged(key, key_data, 0o600) {
        Ok(k) => k,
        Err(e) => {
            let _ = std::fs::remove_file(&c);
            return Err(e);
        }
    };
    let done = std::fs::rename(&c, dir.join(crt)).and_then(|()| std::fs::rename(&k, dir.join(key)));
    let _ = std::fs::remove_file(&c);
    let _ = std::fs::remove_file(&k);
    done?;
    std::fs::File::open(dir)?.sync_all()
}

/// Replaces the folder `dir` with one holding `files` (name, data, mode) in
/// one step: the new folder is built beside it, then the two are exchanged
/// (`renameat2(RENAME_EXCHANGE)`), so readers see the old folder or the new
/// one, never a mix.
pub fn replace_dir(dir: &Path, files: &[(&str, &[u8], u32)]) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::fs::create_dir_all(parent)?;
    let new = parent.join(format!(".{name}.new-{}", crate::auth::random_token(8)));
    std::fs::create_dir(&new)?;
    let built = (|| {
        for (f, data, mode) in files {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(new.join(f))?;
            out.write_all(data)?;
            out.sync_all()?;
        }
        std::fs::File::open(&new)?.sync_all()
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    if dir.exists() {
        use std::os::unix::ffi::OsStrExt;
        let (a, b) = (
            std::ffi::CString::new(new.as_os_str().as_bytes())?,
            std::ffi::CString::new(dir.as_os_str().as_bytes())?,
        );
        // SAFETY: two valid NUL-terminated paths; AT_FDCWD resolves them as given.
        let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_dir_all(&new);
            return Err(e);
        }
        // `new` now holds the old folder.
        let _ = std::fs::remove_dir_all(&new);
    } else {
        std::fs::rename(&new, dir)?;
    }
    std::fs::File::open(parent)?.sync_all()
}

/// The file's text, or None when it does not exist.
pub fn read_optional(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_file_whole_with_its_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"old", 0o600).unwrap();
        write_atomic(&p, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_optional(&dir.path().join("none")).unwrap(), None);
    }

    #[test]
    fn folders_and_pairs_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("www");
        replace_dir(&d, &[("crt.pem", b"c1", 0o644), ("key.pem", b"k1", 0o600)]).unwrap();
        replace_dir(&d, &[("crt.pem", b"c2", 0o644), ("key.pem", b"k2", 0o600)]).unwrap();
        assert_eq!(std::fs::read(d.join("key.pem")).unwrap(), b"k2");
        assert_eq!(std::fs::metadata(d.join("key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no folder left behind");
        write_pair(dir.path(), "a.crt", b"C", "a.key", b"K").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.key")).unwrap(), b"K");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lb7.cfg");
        write_atomic(&p, b"good", 0o644).unwrap();
        // A directory in the way of the rename: the write fails, the file stays.
        let blocked = dir.path().join("sub");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::create_dir(blocked.join("x")).unwrap();
        assert!(write_atomic(&blocked, b"bad", 0o644).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
    }
}
