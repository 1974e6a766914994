//! The GUI's persistent state: users, applied revisions of each tab, the
//! audit log, and the marker of an apply in progress. A small trait, so the
//! views never see sled; [`SledStore`] keeps it in `/config/webui/webui.db`.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Db(#[from] sled::Error),
    #[error("state database holds a record it cannot read: {0}")]
    Decode(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An operator account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// argon2id PHC string.
    pub hash: String,
    /// Set for the first admin's random password: the next login must change it.
    pub must_change: bool,
}

/// The text a tab holds: the LB Layer7 configuration or the SSL tab's services.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Tab {
    Lb7,
    Ssl,
}

impl Tab {
    pub fn key(self) -> &'static str {
        match self {
            Tab::Lb7 => "lb7",
            Tab::Ssl => "ssl",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Tab::Lb7 => "LB Layer7",
            Tab::Ssl => "SSL",
        }
    }
}

/// One applied version of a tab's text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revision {
    pub id: u64,
    pub tab: Tab,
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub user: String,
    pub comment: String,
    pub text: String,
}

/// Who did what, when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: u64,
    pub user: String,
    /// The client's address as the GUI saw it.
    pub source: String,
    pub action: String,
}

/// Written before an apply touches a file and removed when it is done either
/// way: found at start, it says an apply was interrupted and what to restore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    pub tab: Tab,
    pub user: String,
    pub comment: String,
    /// The file's text before the apply (None: there was no file).
    pub old: Option<String>,
    pub new: String,
    /// The other tab, when one apply changed both (a restore).
    #[serde(default)]
    pub more: Vec<TabChange>,
}

/// One more tab changed by the same apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TabChange {
    pub tab: Tab,
    pub old: Option<String>,
    pub new: String,
}

pub trait Store: Send + Sync {
    fn user(&self, name: &str) -> Result<Option<User>>;
    fn put_user(&self, user: &User) -> Result<()>;
    fn users(&self) -> Result<Vec<User>>;
    fn delete_user(&self, name: &str) -> Result<()>;
    /// Records an applied revision and returns it with its id.
    fn add_revision(&self, tab: Tab, time: u64, user: &str, comment: &str, text: &str) -> Result<Revision>;
    /// A tab's revisions, newest first.
    fn revisions(&self, tab: Tab) -> Result<Vec<Revision>>;
    fn revision(&self, tab: Tab, id: u64) -> Result<Option<Revision>>;
    fn audit(&self, entry: &AuditEntry) -> Result<()>;
    /// The newest `limit` audit entries, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>>;
    fn pending(&self) -> Result<Option<Pending>>;
    fn set_pending(&self, pending: Option<&Pending>) -> Result<()>;
}

/// [`Store`] in a sled database, flushed after every change.
pub struct SledStore {
    db: sled::Db,
    users: sled::Tree,
    revisions: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
}

impl SledStore {
    pub fn open(path: &std::path::Path) -> Result<SledStore> {
        // sled's file lock outlives a closed database for a moment (its
        // flusher thread); a quick restart waits for it rather than fail.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match sled::open(path) {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(SledStore {
            users: db.open_tree("users")?,
            revisions: db.open_tree("revisions")?,
            audit: db.open_tree("audit")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Revision keys: the tab, then the id big-endian, so a prefix scan is in order.
    fn revision_key(tab: Tab, id: u64) -> Vec<u8> {
        let mut k = tab.key().as_bytes().to_vec();
        k.push(b'/');
        k.extend_from_slice(&id.to_be_bytes());
        k
    }
}

impl Store for SledStore {
    fn user(&self, name: &str) -> Result<Option<User>> {
        match self.users.get(name.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    fn put_user(&self, user: &User) -> Result<()> {
        self.users.insert(user.name.as_bytes(), serde_json::to_vec(user)?)?;
        self.flush()
    }

    fn users(&self) -> Result<Vec<User>> {
        self.users.iter().map(|kv| Ok(serde_json::from_slice(&kv?.1)?)).collect()
    }

    fn delete_user(&self, name: &str) -> Result<()> {
        self.users.remove(name.as_bytes())?;
        self.flush()
    }

    fn add_revision(&self, tab: Tab, time: u64, user: &str, comment: &str, text: &str) -> Result<Revision> {
        let id = self.db.generate_id()? + 1;
        let rev = Revision {
            id,
            tab,
            time,
            user: user.to_owned(),
            comment: comment.to_owned(),
            text: text.to_owned(),
        };
        self.revisions.insert(Self::revision_key(tab, id), serde_json::to_vec(&rev)?)?;
        self.flush()?;
        Ok(rev)
    }

    fn revisions(&self, tab: Tab) -> Result<Vec<Revision>> {
        let mut prefix = tab.key().as_bytes().to_vec();
        prefix.push(b'/');
        let mut out: Vec<Revision> = self
            .revisions
            .scan_prefix(prefix)
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    fn revision(&self, tab: Tab, id: u64) -> Result<Option<Revision>> {
        match self.revisions.get(Self::revision_key(tab, id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let id = self.db.generate_id()?;
        self.audit.insert(id.to_be_bytes(), serde_json::to_vec(entry)?)?;
        self.flush()
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.audit
            .iter()
            .rev()
            .take(limit)
            .map(|kv| Ok(serde_json::from_slice(&kv?.1)?))
            .collect()
    }

    fn pending(&self) -> Result<Option<Pending>> {
        match self.meta.get("pending")? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    fn set_pending(&self, pending: Option<&Pending>) -> Result<()> {
        match pending {
            Some(p) => {
                self.meta.insert("pending", serde_json::to_vec(p)?)?;
            }
            None => {
                self.meta.remove("pending")?;
            }
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_revisions_audit_and_pending_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webui.db");
        {
            let s = SledStore::open(&path).unwrap();
            let u = User {
                name: "admin".into(),
                hash: "h".into(),
                must_change: true,
            };
            s.put_user(&u).unwrap();
            assert_eq!(s.user("admin").unwrap(), Some(u));
            let a = s.add_revision(Tab::Lb7, 10, "admin", "first", "one").unwrap();
            let b = s.add_revision(Tab::Lb7, 11, "admin", "", "two").unwrap();
            s.add_revision(Tab::Ssl, 12, "admin", "", "tls").unwrap();
            assert!(b.id > a.id);
            let texts: Vec<String> = s.revisions(Tab::Lb7).unwrap().into_iter().map(|r| r.text).collect();
            assert_eq!(texts, ["two", "one"], "newest first, one tab only");
            assert_eq!(s.revision(Tab::Lb7, a.id).unwrap().map(|r| r.comment), Some("first".into()));
            assert_eq!(s.revision(Tab::Ssl, a.id).unwrap(), None);
            s.audit(&AuditEntry {
                time: 1,
                user: "admin".into(),
                source: "127.0.0.1".into(),
                action: "login".into(),
            })
            .unwrap();
            let p = Pending {
                tab: Tab::Lb7,
                user: "admin".into(),
                comment: String::new(),
                old: Some("two".into()),
                new: "three".into(),
                more: Vec::new(),
            };
            s.set_pending(Some(&p)).unwrap();
        }
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.users().unwrap().len(), 1);
        assert_eq!(s.revisions(Tab::Lb7).unwrap().len(), 2);
        assert_eq!(s.audit_log(10).unwrap()[0].action, "login");
        assert_eq!(s.pending().unwrap().map(|p| p.new), Some("three".into()));
        s.set_pending(None).unwrap();
        assert_eq!(s.pending().unwrap(), None);
    }
}
