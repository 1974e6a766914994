//! Measures the memory of a full stick table: bytes per entry, counted by a
//! global allocator that tracks live bytes. Prints the figure and bounds it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use lbd::config::diag::Loc;
use lbd::config::model::{StickTable, TableType};
use lbd::runtime::stick::Table;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn a_full_ip_table_stays_bounded_and_costs_about_a_hundred_bytes_an_entry() {
    const SIZE: u64 = 100_000;
    let conf = StickTable {
        key: TableType::Ip,
        size: SIZE,
        expire: None,
        nopurge: false,
        store: vec![],
        loc: Loc { file: "t".into(), line: 1 },
    };
    let before = LIVE.load(Ordering::Relaxed);
    let t = Table::new(&conf);
    // Twice the size: the table must stay at SIZE entries (LRU eviction).
    for i in 0..(2 * SIZE as u32) {
        t.store(&i.to_be_bytes(), i % 7);
    }
    assert_eq!(t.len(), SIZE as usize);
    let used = LIVE.load(Ordering::Relaxed) - before;
    let per_entry = used as f64 / SIZE as f64;
    println!("stick table type ip, {SIZE} entries: {used} bytes, {per_entry:.0} bytes per entry");
    assert!(per_entry < 200.0, "{per_entry} bytes per entry");
}
