//! Who is logged in: argon2id password hashes, random session and CSRF tokens,
//! sessions that end after inactivity, the per-source login rate limit, and the
//! first admin account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::store::{Store, StoreError, User};

/// The argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// True when `password` matches the PHC string `hash` (false for a damaged hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// `n` random bytes from the OS, hex-encoded.
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A password for people to type: letters and digits without look-alikes.
pub fn random_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = vec![0u8; len];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

/// The rules a new password must pass; the reason when it does not.
pub fn password_problem(user: &str, password: &str) -> Option<&'static str> {
    if password.chars().count() < 10 {
        Some("a password has at least 10 characters")
    } else if password.len() > 256 {
        Some("a password has at most 256 bytes")
    } else if password.eq_ignore_ascii_case(user) {
        Some("a password must not be the user name")
    } else {
        None
    }
}

/// Creates the first admin when there is no user: a random password, shown on
/// the console and written to `password_file` (mode 0600), that must be
/// changed at first login. Returns the password when it made one.
pub fn bootstrap_admin(store: &dyn Store, password_file: &Path) -> Result<Option<String>, BootstrapError> {
    if !store.users()?.is_empty() {
        return Ok(None);
    }
    let password = random_password(16);
    crate::files::write_atomic(
        password_file,
        format!("user: admin\npassword: {password}\n(change it at first login)\n").as_bytes(),
        0o600,
    )
    .map_err(|e| BootstrapError::File(password_file.display().to_string(), e))?;
    store.put_user(&User {
        name: "admin".into(),
        hash: hash_password(&password),
        must_change: true,
    })?;
    Ok(Some(password))
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the first password to {0}: {1}")]
    File(String, std::io::Error),
}

/// A browser's session: anonymous until login (it still carries the CSRF token
/// of the login form).
#[derive(Debug, Clone)]
pub struct Session {
    pub user: Option<String>,
    pub csrf: String,
    pub must_change: bool,
    last_seen: Instant,
}

/// Sessions in memory, by token: a restart logs everyone out.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// A session unused this long is gone (default 15 minutes).
    pub idle: Duration,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most sessions kept at once (anonymous ones included).
    pub const MAX: usize = 10_000;

    /// A new anonymous session; returns its token, or None when the table is
    /// full of sessions still in use.
    pub fn start(&self) -> Option<(String, Session)> {
        let token = random_token(32);
        let s = Session {
            user: None,
            csrf: random_token(32),
            must_change: false,
            last_seen: Instant::now(),
        };
        let mut map = self.lock();
        // Expired sessions go when new ones come: the map stays bounded by the
        // sessions used within `idle`.
        if map.len() >= Self::MAX {
            let idle = self.idle;
            map.retain(|_, s| s.last_seen.elapsed() < idle);
            if map.len() >= Self::MAX {
                return None;
            }
        }
        map.insert(token.clone(), s.clone());
        Some((token, s))
    }

    /// The live session behind `token`; None if unknown or idle too long.
    /// `touch`: the request counts as activity (an automatic refresh does not).
    pub fn get(&self, token: &str, touch: bool) -> Option<Session> {
        let mut map = self.lock();
        let s = map.get_mut(token)?;
        if s.last_seen.elapsed() >= self.idle {
            map.remove(token);
            return None;
        }
        if touch {
            s.last_seen = Instant::now();
        }
        Some(s.clone())
    }

    /// Logs `user` in: the old token is dropped and a new one returned (no
    /// session fixation), with a new CSRF token.
    pub fn login(&self, old: Option<&str>, user: &str, must_change: bool) -> String {
        let token = random_token(32);
        let mut map = self.lock();
        if let Some(o) = old {
            map.remove(o);
        }
        map.insert(
            token.clone(),
            Session {
                user: Some(user.to_owned()),
                csrf: random_token(32),
                must_change,
                last_seen: Instant::now(),
            },
        );
        token
    }

    pub fn set_must_change(&self, token: &str, v: bool) {
        if let Some(s) = self.lock().get_mut(token) {
            s.must_change = v;
        }
    }

    pub fn end(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Ends every session of `user` (a deleted user).
    pub fn end_user(&self, user: &str) {
        self.lock().retain(|_, s| s.user.as_deref() != Some(user));
    }

    /// Ends every session of `user` but `keep` (after a password change).
    pub fn end_others(&self, user: &str, keep: &str) {
        self.lock().retain(|t, s| t == keep || s.user.as_deref() != Some(user));
    }

    /// For tests: ages a session as if unused for `by`.
    pub fn age(&self, token: &str, by: Duration) {
        if let Some(s) = self.lock().get_mut(token) {
            s.last_seen = s.last_seen.checked_sub(by).unwrap_or(s.last_seen);
        }
    }
}

/// Failed logins per source address: more than `max` within `window` and the
/// source is refused until the oldest failure leaves the window.
pub struct RateLimit {
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
    pub max: usize,
    pub window: Duration,
}

impl RateLimit {
    pub fn new(max: usize, window: Duration) -> RateLimit {
        RateLimit {
            failures: Mutex::new(HashMap::new()),
            max,
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Vec<Instant>>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bucket a source counts in: an IPv4 address, or an IPv6 /64 (one
    /// host usually holds a whole /64).
    fn bucket(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
        }
    }

    /// How long `ip` must wait before trying again (None: it may try now).
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let ip = Self::bucket(ip);
        let mut map = self.lock();
        let window = self.window;
        let list = map.entry(ip).or_default();
        list.retain(|t| t.elapsed() < window);
        if list.len() >= self.max {
            let oldest = list.iter().min().copied()?;
            Some(window.saturating_sub(oldest.elapsed()))
        } else {
            None
        }
    }

    /// Records a failure. A success does not clear them: one good login (or a
    /// colleague's behind the same address) must not reset a guesser's count.
    pub fn failed(&self, ip: IpAddr) {
        let ip = Self::bucket(ip);
        let mut map = self.lock();
        // Bounded: sources with no failure in the window are forgotten.
        let window = self.window;
        map.retain(|_, v| v.iter().any(|t| t.elapsed() < window));
        map.entry(ip).or_default().push(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse");
        let b = hash_password("correct horse");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong", &a));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn sessions_expire_after_inactivity_and_login_changes_the_token() {
        let s = Sessions::new(Duration::from_secs(60));
        let (anon, _) = s.start().unwrap();
        let t = s.login(Some(&anon), "admin", false);
        assert!(s.get(&anon, true).is_none(), "the anonymous token is gone");
        assert_eq!(s.get(&t, true).and_then(|x| x.user), Some("admin".into()));
        s.age(&t, Duration::from_secs(50));
        assert!(s.get(&t, false).is_some());
        s.age(&t, Duration::from_secs(11));
        assert!(s.get(&t, false).is_none(), "a refresh that is not activity does not keep it alive");
    }

    #[test]
    fn rate_limit_blocks_after_max_failures_per_source() {
        let r = RateLimit::new(5, Duration::from_secs(300));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..5 {
            assert!(r.blocked(a).is_none());
            r.failed(a);
        }
        assert!(r.blocked(a).is_some_and(|d| d > Duration::from_secs(290)));
        assert!(r.blocked(b).is_none(), "per source");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff".parse().unwrap();
        for _ in 0..5 {
            r.failed(v6a);
        }
        assert!(r.blocked(v6b).is_some(), "one IPv6 /64 is one source");
    }

    #[test]
    fn passwords_need_some_length_and_not_the_user_name() {
        assert!(password_problem("admin", "short").is_some());
        assert!(password_problem("administrator", "Administrator").is_some());
        assert!(password_problem("admin", "a long enough one").is_none());
        let p = random_password(16);
        assert_eq!(p.len(), 16);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
