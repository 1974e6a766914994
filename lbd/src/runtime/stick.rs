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
    /// When it was last used, in ms since the table's `epoch`.
    touched: u64,
    /// When it was last used, in the table's ticks.
    tick: u64,
    /// Where it stands in `lru`: its `tick` as of the last time the order was
    /// fixed (earlier than `tick` when it was used since).
    placed: u64,
}

/// The order of use is kept lazily: a use only sets the entry's `tick`, and
/// making room moves an entry whose place is out of date to the back instead
/// of taking it. So a lookup costs no reordering, and the entry that goes is
/// still exactly the least recently used one.
struct Inner {
    map: HashMap<Box<[u8]>, Entry>,
    /// Every entry once, by `placed`.
    lru: BTreeMap<u64, Box<[u8]>>,
    tick: u64,
}

pub struct Table {
    key: TableType,
    size: usize,
    expire: Option<Duration>,
    nopurge: bool,
    /// The origin of the entries' times.
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl Table {
    pub fn new(conf: &StickTable) -> Self {
        Table {
            key: conf.key,
            size: usize::try_from(conf.size).unwrap_or(usize::MAX),
            expire: conf.expire,
            nopurge: conf.nopurge,
            epoch: Instant::now(),
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

    /// Now, in ms since the table's epoch.
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        self.expire
            .is_some_and(|x| u128::from(now.saturating_sub(e.touched)) >= x.as_millis())
    }

    /// The server stored for `key`, refreshing the entry.
    pub fn lookup(&self, key: &[u8]) -> Option<u32> {
        let now = self.now();
        let Ok(mut inner) = self.inner.lock() else { return None };
        let Inner { map, lru, tick } = &mut *inner;
        let e = map.get_mut(key)?;
        if self.expired(e, now) {
            let placed = e.placed;
            map.remove(key);
            lru.remove(&placed);
            return None;
        }
        *tick += 1;
        e.tick = *tick;
        e.touched = now;
        Some(e.server_id)
    }

    /// Stores `key → server_id`. Returns false when the table is full and `nopurge`.
    pub fn store(&self, key: &[u8], server_id: u32) -> bool {
        let now = self.now();
        let Ok(mut inner) = self.inner.lock() else { return false };
        let Inner { map, lru, tick } = &mut *inner;
        *tick += 1;
        if let Some(e) = map.get_mut(key) {
            e.tick = *tick;
            e.touched = now;
            e.server_id = server_id;
            return true;
        }
        // Make room: the least recently used entry goes (an expired one is always
        // among the oldest); with `nopurge`, only an expired one may.
        while map.len() >= self.size {
            let Some((placed, oldest)) = lru.pop_first() else { break };
            let Some(e) = map.get_mut(&oldest) else { continue };
            if e.tick != placed {
                // Used since it was placed: to its true place, and look again.
                e.placed = e.tick;
                lru.insert(e.tick, oldest);
                continue;
            }
            if self.nopurge && !self.expired(e, now) {
                lru.insert(placed, oldest);
                return false;
            }
            map.remove(&oldest);
        }
        map.insert(
            key.into(),
            Entry {
                server_id,
                touched: now,
                tick: *tick,
                placed: *tick,
            },
        );
        lru.insert(*tick, key.into());
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
                inner.lru.remove(&e.placed);
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
        let now = self.now();
        let Ok(inner) = self.inner.lock() else { return Vec::new() };
        inner
            .map
            .iter()
            .filter(|(_, e)| !self.expired(e, now))
            .map(|(k, e)| (k.clone(), e.server_id, Duration::from_millis(now.saturating_sub(e.touched))))
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
    fn the_entry_that_goes_is_the_least_recently_used_whatever_the_order_of_uses() {
        let t = table(3, None, false);
        for (k, id) in [(b"a", 1), (b"b", 2), (b"c", 3)] {
            assert!(t.store(k, id));
        }
        // Use order now: b, a, c (oldest first) after these two.
        assert_eq!(t.lookup(b"a"), Some(1));
        assert!(t.store(b"c", 3));
        assert!(t.store(b"d", 4)); // b goes
        assert_eq!(t.lookup(b"b"), None);
        // Order: a, c, d; use a then c: d is the oldest.
        assert_eq!(t.lookup(b"a"), Some(1));
        assert_eq!(t.lookup(b"c"), Some(3));
        assert!(t.store(b"e", 5)); // d goes
        assert_eq!(t.lookup(b"d"), None);
        for (k, id) in [(b"a", 1), (b"c", 3), (b"e", 5)] {
            assert_eq!(t.lookup(k), Some(id));
        }
        assert_eq!(t.len(), 3);
        // A removed entry leaves no trace in the order of use.
        t.remove(b"a");
        assert!(t.store(b"f", 6));
        assert_eq!(t.len(), 3);
        assert!(t.store(b"g", 7)); // c goes: used before e
        assert_eq!(t.lookup(b"c"), None);
        assert_eq!(t.lookup(b"e"), Some(5));
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
