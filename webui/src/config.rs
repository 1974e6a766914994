//! The two tabs' texts: validated with lbd's own parser (the library `lbd -c`
//! uses), applied by writing the file atomically and asking lbd to reload on
//! its runtime socket, confirmed by the configuration hash lbd reports; on any
//! failure the previous file is put back and lbd keeps (or returns to) the
//! previous configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::files::{read_optional, write_atomic};
use crate::store::{Pending, Revision, Store, StoreError, Tab, TabChange};

/// Where the files live and how to reach lbd.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Files lbd reads before the LB Layer7 file (`-f` each, in order): the
    /// box's own `global` section, for instance. Never written by the GUI.
    pub base: Vec<PathBuf>,
    /// The LB Layer7 file lbd reads (`-f`), default `/config/lb7.cfg`.
    pub lb7: PathBuf,
    /// The SSL tab's file (`-s`), default `/config/ssl.cfg`.
    pub ssl: PathBuf,
    /// lbd's runtime socket, default `/run/lbd/lbd.sock`.
    pub socket: PathBuf,
    /// The SSL tab's certificate store, default `/etc/ssl/frontends`.
    pub cert_store: PathBuf,
}

impl Paths {
    pub fn of(&self, tab: Tab) -> &Path {
        match tab {
            Tab::Lb7 => &self.lb7,
            Tab::Ssl => &self.ssl,
        }
    }

    /// A tab's text on disk (empty when the file is missing or unreadable).
    pub fn text(&self, tab: Tab) -> String {
        read_optional(self.of(tab)).ok().flatten().unwrap_or_default()
    }

    /// Both tabs' texts (LB Layer7, SSL) as on disk, `tab`'s replaced by `text` when given.
    pub fn texts_with(&self, edit: Option<(Tab, &str)>) -> (String, String) {
        let pick = |t: Tab| match edit {
            Some((e, text)) if e == t => text.to_owned(),
            _ => self.text(t),
        };
        (pick(Tab::Lb7), pick(Tab::Ssl))
    }
}

/// One finding of the parser, for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub alert: bool,
    /// Which tab's text it is about (a generated SSL-tab line names its service block).
    pub tab: Tab,
    /// 1-based; 0 when the finding has no line.
    pub line: usize,
    pub keyword: String,
    pub message: String,
}

/// What lbd's parser says about the two texts together.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub valid: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn alerts(&self) -> usize {
        self.findings.iter().filter(|f| f.alert).count()
    }

    /// Lines of `tab` with an alert, for highlighting.
    pub fn alert_lines(&self, tab: Tab) -> Vec<usize> {
        self.findings
            .iter()
            .filter(|f| f.alert && f.tab == tab && f.line > 0)
            .map(|f| f.line)
            .collect()
    }
}

/// lbd's parser on an LB Layer7 text with an SSL tab text (after the box's
/// base files), as lbd would load them. The names are the files' paths, so
/// messages match what lbd itself prints.
fn check(paths: &Paths, lb7: &str, ssl: &str) -> lbd::config::Checked {
    let lb7_name = paths.lb7.display().to_string();
    let ssl_name = paths.ssl.display().to_string();
    let mut sources: Vec<lbd::config::Source> = paths
        .base
        .iter()
        .map(|b| lbd::config::Source {
            name: b.display().to_string(),
            text: std::fs::read_to_string(b).unwrap_or_default(),
        })
        .collect();
    sources.push(lbd::config::Source {
        name: lb7_name,
        text: lb7.to_owned(),
    });
    let checked = lbd::config::check_sources(&sources, &lbd::config::lexer::ProcessEnv);
    lbd::config::ssl_tab_text(checked, sources, &ssl_name, ssl)
}

/// The certificate files and folders a valid configuration reads (its binds'
/// `crt` and `key`, resolved under `crt-base` as lbd does); None when the texts
/// are not valid.
pub fn cert_paths(paths: &Paths, lb7: &str, ssl: &str) -> Option<Vec<PathBuf>> {
    let config = check(paths, lb7, ssl).config?;
    let base = PathBuf::from(config.global.crt_base.clone().unwrap_or_else(|| lbd::tls::CERT_STORE.to_owned()));
    let resolve = |s: &str| if s.starts_with('/') { PathBuf::from(s) } else { base.join(s) };
    Some(
        config
            .proxies
            .iter()
            .flat_map(|p| p.binds.iter())
            .flat_map(|b| {
                b.params
                    .crt
                    .iter()
                    .map(|c| resolve(c))
                    .chain(b.params.keys.iter().map(|(_, k)| resolve(k)))
            })
            .collect(),
    )
}

/// Checks an LB Layer7 text with an SSL tab text, as lbd would load them.
pub fn validate(paths: &Paths, lb7: &str, ssl: &str) -> Report {
    let ssl_name = paths.ssl.display().to_string();
    let checked = check(paths, lb7, ssl);
    let findings = checked
        .diags
        .items
        .iter()
        .map(|d| Finding {
            alert: d.severity == lbd::config::Severity::Alert,
            tab: if *d.loc.file == *ssl_name { Tab::Ssl } else { Tab::Lb7 },
            line: d.loc.line,
            keyword: d.keyword.clone().unwrap_or_default(),
            message: d.message.clone(),
        })
        .collect();
    Report {
        valid: checked.is_valid(),
        findings,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the configuration has {0} error(s); nothing was changed")]
    Invalid(usize),
    #[error("cannot write {0}: {1}; nothing was changed")]
    Write(String, std::io::Error),
    #[error("lbd refused the new configuration ({0}); the previous one was put back and is running")]
    Refused(String),
    #[error("lbd did not confirm the new configuration ({0}); the previous one was put back")]
    Unconfirmed(String),
    #[error("{0}; the previous files could not all be put back: {1}")]
    RestoreFailed(Box<ApplyError>, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends one command to lbd's runtime socket and returns its answer.
pub async fn lbd_command(socket: &Path, cmd: &str) -> std::io::Result<String> {
    let talk = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        s.write_all(format!("{cmd}\n").as_bytes()).await?;
        s.shutdown().await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    // A reload of a large configuration takes well under this; a stuck lbd
    // must not hold the page (or the apply lock) forever.
    match tokio::time::timeout(Duration::from_secs(30), talk).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "lbd did not answer within 30 s")),
    }
}

/// The hash lbd reports for the files as they are now on disk.
fn expected_hash(paths: &Paths) -> String {
    let mut files = paths.base.clone();
    files.push(paths.lb7.clone());
    lbd::runtime::config_hash(&files, Some(&paths.ssl))
}

/// Asks lbd to reload; Ok when it says the configuration now live is the one
/// on disk.
pub async fn reload_and_confirm(paths: &Paths) -> Result<(), ApplyError> {
    let answer = lbd_command(&paths.socket, "reload")
        .await
        .map_err(|e| ApplyError::Unconfirmed(format!("runtime socket {}: {e}", paths.socket.display())))?;
    if !answer.starts_with("Success=1") {
        let why = answer.lines().skip(1).collect::<Vec<_>>().join(" ");
        return Err(ApplyError::Refused(why.trim().to_owned()));
    }
    let live = answer
        .lines()
        .find_map(|l| l.strip_prefix("Config hash: "))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let want = expected_hash(paths);
    if live != want {
        return Err(ApplyError::Unconfirmed(format!("live hash {live}, files {want}")));
    }
    Ok(())
}

/// Validates, writes, reloads and confirms; records the revision. On failure
/// after the write, the previous file is restored and lbd reloaded onto it.
pub async fn apply(
    store: &dyn Store,
    paths: &Paths,
    tab: Tab,
    text: &str,
    user: &str,
    comment: &str,
    now: u64,
) -> Result<Revision, ApplyError> {
    let mut revs = apply_many(store, paths, &[(tab, text.to_owned())], user, comment, now).await?;
    revs.pop().ok_or(ApplyError::Invalid(0))
}

/// [`apply`] for one or both tabs at once (a restore changes both): the texts
/// are validated together, written, and confirmed by one reload; on failure
/// every file goes back.
pub async fn apply_many(
    store: &dyn Store,
    paths: &Paths,
    changes: &[(Tab, String)],
    user: &str,
    comment: &str,
    now: u64,
) -> Result<Vec<Revision>, ApplyError> {
    let Some(first) = changes.first() else { return Ok(Vec::new()) };
    let text_of = |t: Tab| {
        changes
            .iter()
            .find(|(c, _)| *c == t)
            .map_or_else(|| paths.text(t), |(_, x)| x.clone())
    };
    let report = validate(paths, &text_of(Tab::Lb7), &text_of(Tab::Ssl));
    if !report.valid {
        return Err(ApplyError::Invalid(report.alerts().max(1)));
    }
    let mut olds: Vec<(Tab, Option<String>)> = Vec::new();
    for (t, _) in changes {
        let path = paths.of(*t);
        olds.push((
            *t,
            read_optional(path).map_err(|e| ApplyError::Write(path.display().to_string(), e))?,
        ));
    }
    // The marker first: an apply cut short is noticed at the next start.
    store.set_pending(Some(&Pending {
        tab: first.0,
        user: user.to_owned(),
        comment: comment.to_owned(),
        old: olds[0].1.clone(),
        new: first.1.clone(),
        more: changes[1..]
            .iter()
            .zip(&olds[1..])
            .map(|((t, new), (_, old))| TabChange {
                tab: *t,
                old: old.clone(),
                new: new.clone(),
            })
            .collect(),
    }))?;
    for (i, (t, text)) in changes.iter().enumerate() {
        let path = paths.of(*t);
        if let Err(e) = write_atomic(path, text.as_bytes(), 0o644) {
            let _ = put_back(paths, &olds[..i]);
            store.set_pending(None)?;
            return Err(ApplyError::Write(path.display().to_string(), e));
        }
    }
    match reload_and_confirm(paths).await {
        Ok(()) => {
            let mut revs = Vec::new();
            for (t, text) in changes {
                revs.push(store.add_revision(*t, now, user, comment, text)?);
            }
            store.set_pending(None)?;
            Ok(revs)
        }
        Err(e) => match restore(paths, &olds).await {
            Ok(()) => {
                store.set_pending(None)?;
                Err(e)
            }
            // The record stays: the next start settles files and lbd again.
            Err(why) => Err(ApplyError::RestoreFailed(Box::new(e), why)),
        },
    }
}

/// Writes the tabs' previous texts back (removing a file that did not exist).
fn put_back(paths: &Paths, olds: &[(Tab, Option<String>)]) -> Result<(), String> {
    for (tab, old) in olds {
        let path = paths.of(*tab);
        let put = match old {
            Some(t) => write_atomic(path, t.as_bytes(), 0o644),
            None => std::fs::remove_file(path).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }),
        };
        put.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Puts the tabs' previous texts back and reloads lbd onto them.
async fn restore(paths: &Paths, olds: &[(Tab, Option<String>)]) -> Result<(), String> {
    put_back(paths, olds)?;
    // lbd may still run the old configuration (a refused reload changes
    // nothing); reloading onto the restored files is harmless then.
    reload_and_confirm(paths).await.map_err(|e| e.to_string())
}

/// At start: an apply that was cut short (webui killed between writing the
/// files and recording the revisions) is finished or undone, so the store, the
/// files and lbd agree again. Returns what was found, for the log and the page.
pub async fn recover(store: &dyn Store, paths: &Paths, now: u64) -> Result<Option<String>, StoreError> {
    let Some(p) = store.pending()? else { return Ok(None) };
    let mut changes = vec![TabChange {
        tab: p.tab,
        old: p.old.clone(),
        new: p.new.clone(),
    }];
    changes.extend(p.more.iter().cloned());
    let tabs = changes.iter().map(|c| c.tab.title()).collect::<Vec<_>>().join(" and ");
    let written = changes
        .iter()
        .all(|c| read_optional(paths.of(c.tab)).unwrap_or_default().as_deref() == Some(c.new.as_str()));
    // lbd may be starting too (at boot): wait for it before judging what it runs.
    let mut live = None;
    for _ in 0..60 {
        if let Ok(h) = lbd_command(&paths.socket, "show config-hash").await {
            live = Some(h);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let Some(live) = live else {
        return Ok(Some(format!(
            "an apply of the {tabs} tab by {} was interrupted, and lbd does not answer on {}: nothing was changed; it is settled at the next start",
            p.user,
            paths.socket.display()
        )));
    };
    let msg = if written && live.trim() == expected_hash(paths) {
        // Written and live: only the record was missing.
        for c in &changes {
            store.add_revision(c.tab, now, &p.user, &p.comment, &c.new)?;
        }
        format!(
            "an apply of the {tabs} tab by {} was interrupted after lbd took it; it is recorded now",
            p.user
        )
    } else {
        let olds: Vec<(Tab, Option<String>)> = changes.iter().map(|c| (c.tab, c.old.clone())).collect();
        match restore(paths, &olds).await {
            Ok(()) => format!(
                "an apply of the {tabs} tab by {} was interrupted; the previous configuration was put back",
                p.user
            ),
            Err(e) => {
                // The record stays for the next start.
                return Ok(Some(format!(
                    "an apply of the {tabs} tab by {} was interrupted; putting the previous configuration back failed: {e}",
                    p.user
                )));
            }
        }
    };
    store.set_pending(None)?;
    Ok(Some(msg))
}

/// A unified diff of two revisions' texts, line by line.
pub fn diff(old: &str, new: &str) -> Vec<(char, String)> {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|c| {
            let tag = match c.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            (tag, c.value().trim_end_matches('\n').to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths {
            base: Vec::new(),
            lb7: dir.join("lb7.cfg"),
            ssl: dir.join("ssl.cfg"),
            socket: dir.join("none.sock"),
            cert_store: dir.join("frontends"),
        }
    }

    #[test]
    fn validation_names_the_line_and_keyword_of_each_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let r = validate(
            &p,
            "frontend f\n  bind 127.0.0.1:8080\n  bnd x\n  default_backend b\nbackend b\n  server s 127.0.0.1:1\n",
            "",
        );
        assert!(!r.valid);
        assert_eq!(r.alert_lines(Tab::Lb7), vec![3]);
        assert!(r.findings.iter().any(|f| f.message.contains("bnd")), "{r:?}");
        let ok = validate(
            &p,
            "frontend f\n  bind 127.0.0.1:8080\n  default_backend b\nbackend b\n  server s 127.0.0.1:1\n",
            "",
        );
        assert!(ok.valid, "{ok:?}");
    }

    #[test]
    fn ssl_tab_mistakes_are_found_in_the_ssl_text() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let r = validate(&p, "", "[svc]\naccept = 10.0.0.17:443\nwhatever = 1\n");
        assert!(!r.valid);
        assert!(r.findings.iter().any(|f| f.alert && f.tab == Tab::Ssl && f.line > 0), "{r:?}");
    }

    #[tokio::test]
    async fn an_invalid_text_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::write(&p.lb7, "# good\n").unwrap();
        let store = crate::store::SledStore::open(&dir.path().join("db")).unwrap();
        let e = apply(&store, &p, Tab::Lb7, "frontend\n", "admin", "", 1).await.unwrap_err();
        assert!(matches!(e, ApplyError::Invalid(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&p.lb7).unwrap(), "# good\n");
        assert!(store.pending().unwrap().is_none());
    }

    #[tokio::test]
    async fn without_lbd_the_old_file_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::write(&p.lb7, "# good\n").unwrap();
        let store = crate::store::SledStore::open(&dir.path().join("db")).unwrap();
        let e = apply(&store, &p, Tab::Lb7, "# new\n", "admin", "", 1).await.unwrap_err();
        assert!(
            e.to_string().contains("could not all be put back") || e.to_string().contains("put back"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&p.lb7).unwrap(), "# good\n");
        assert!(store.revisions(Tab::Lb7).unwrap().is_empty());
        // lbd could not be reloaded onto the old file: the record stays for the next start.
        assert!(store.pending().unwrap().is_some());
    }

    #[test]
    fn diff_marks_removed_and_added_lines() {
        let d = diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, vec![(' ', "a".into()), ('-', "b".into()), ('+', "B".into()), (' ', "c".into())]);
    }
}
