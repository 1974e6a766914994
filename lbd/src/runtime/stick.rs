//! Stick tables: a bounded map from a key (an address, a number, a string) to a
//! server id. When full, the least recently used entry goes (unless `nopurge`,
//! which refuses new entries instead); entries idle longer than `expire` go.
//! Entries name servers by id, so backends sharing a table share stickiness.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::model::{StickTable, TableType};

struct Entry {
    server_id: u32,
    touched: Instant,
    tick: u64,
}

struct Inner {
    map: HashMap<Box<[u8]>, Entry>,
    /// Entries by last use, oldest first.
    lru: BTreeMap<u64, Box<[u8]>>,
    tick: u64,
}

pub struct Table {
    key: TableType,
    size: usize,
    expire: Option<Duration>,
    nopurge: bool,
    inner: Mutex<Inner>,
}

impl Table {
    pub fn new(conf: &StickTable) -> Self {
        Table {
            key: conf.key,
            size: usize::try_from(conf.size).unwrap_or(usize::MAX),
            expire: conf.expire,
            nopurge: conf.nopurge,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                lru: BTreeMap::new(),
                tick: 0,
            }),
        }
    }

    /// Whether a reloaded `stick-table` line describes this same table (then its
    /// entries carry over).
    pub fn same_shape(&self, conf: &StickTable) -> bool {
        self.key == conf.key
            && self.size == usize::try_from(conf.size).unwrap_or(usize::MAX)
            && self.expire == conf.expire
            && self.nopurge == conf.nopurge
    }

    /// Shapes a sample into this table's key: strings are cut to `len`.
    pub fn key_for(&self, sample: &[u8]) -> Box<[u8]> {
        match self.key {
            TableType::String(len) | TableType::Binary(len) => sample[..sample.len().min(len as usize)].into(),
            _ => sample.into(),
        }
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        self.expire.is_some_and(|x| now.duration_since(e.touched) >= x)
    }

    /// The server stored for `key`, refreshing the entry.
    pub fn lookup(&self, key: &[u8]) -> Option<u32> {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else { return None };
        let inner = &mut *inner;
        let expired = match inner.map.get(key) {
            None => return None,
            Some(e) => self.expired(e, now),
        };
        if expired {
            if let Some(e) = inner.map.remove(key) {
                inner.lru.remove(&e.tick);
            }
            return None;
        }
        inner.tick += 1;
        let tick = inner.tick;
        let e = inner.map.get_mut(key)?;
        inner.lru.remove(&e.tick);
        e.tick = tick;
        e.touched = now;
        let id = e.server_id;
        inner.lru.insert(tick, key.into());
        Some(id)
    }

    /// Stores `key → server_id`. Returns false when the table is full and `nopurge`.
    pub fn store(&self, key: &[u8], server_id: u32) -> bool {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else { return false };
        let inner = &mut *inner;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(e) = inner.map.get_mut(key) {
            inner.lru.remove(&e.tick);
            e.tick = tick;
            e.touched = now;
            e.server_id = server_id;
            inner.lru.insert(tick, key.into());
            return true;
        }
        // Expired entries go first, oldest first.
        while inner.map.len() >= self.size {
            let Some((&oldest_tick, oldest_key)) = inner.lru.iter().next() else {
                break;
            };
            let oldest_key = oldest_key.clone();
            let expired = inner.map.get(&oldest_key).is_some_and(|e| self.expired(e, now));
            if !expired && self.nopurge {
                return false;
            }
            inner.lru.remove(&oldest_tick);
            inner.map.remove(&oldest_key);
        }
        inner.map.insert(
            key.into(),
            Entry {
                server_id,
                touched: now,
                tick,
            },
        );
        inner.lru.insert(tick, key.into());
        true
    }

    pub fn key_type(&self) -> TableType {
        self.key
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn expire(&self) -> Option<Duration> {
        self.expire
    }

    /// Removes one entry (`clear table NAME key K`).
    pub fn remove(&self, key: &[u8]) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(e) = inner.map.remove(key) {
                inner.lru.remove(&e.tick);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.map.clear();
            i.lru.clear();
        }
    }

    /// A copy of the live entries: key bytes, server id, idle time.
    pub fn entries(&self) -> Vec<(Box<[u8]>, u32, Duration)> {
        let now = Instant::now();
        let Ok(inner) = self.inner.lock() else { return Vec::new() };
        inner
            .map
            .iter()
            .filter(|(_, e)| !self.expired(e, now))
            .map(|(k, e)| (k.clone(), e.server_id, now.duration_since(e.touched)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Loc;

    fn table(size: u64, expire: Option<Duration>, nopurge: bool) -> Table {
        Table::new(&StickTable {
            key: TableType::Ip,
            size,
            expire,
            nopurge,
            store: vec![],
            loc: Loc { file: "t".into(), line: 1 },
        })
    }

    #[test]
    fn least_recently_used_entry_goes_when_full() {
        let t = table(2, None, false);
        assert!(t.store(b"a", 1));
        assert!(t.store(b"b", 2));
        assert_eq!(t.lookup(b"a"), Some(1)); // a is now the most recent
        assert!(t.store(b"c", 3));
        assert_eq!(t.lookup(b"b"), None);
        assert_eq!(t.lookup(b"a"), Some(1));
        assert_eq!(t.lookup(b"c"), Some(3));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn nopurge_refuses_new_entries() {
        let t = table(1, None, true);
        assert!(t.store(b"a", 1));
        assert!(!t.store(b"b", 2));
        assert_eq!(t.lookup(b"a"), Some(1));
    }

    #[test]
    fn expired_entries_go() {
        let t = table(10, Some(Duration::from_millis(20)), true);
        assert!(t.store(b"a", 1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(t.lookup(b"a"), None);
        assert!(t.is_empty());
    }
}
