//! A worker that has held its core for a long stretch gives way for a moment.
//!
//! Under load a worker never runs out of ready tasks: it reads, forwards and
//! answers in passes that follow each other without a sleep, and the kernel
//! takes the core back only at a scheduler tick (every 4 ms at 250 Hz) unless a
//! task it wakes wins the core at once. A client or a server that shares the
//! core and is woken by the worker's own writes may not win it, and then waits
//! out the whole stretch: measured with `perf sched`, those waits behind runs
//! of 1 to 5 ms were what made lbd's 99th percentile about twice HAProxy's when
//! the proxy shares two cores with wrk and nginx. HAProxy's loop is cut short
//! far more often, by the server it wakes for each request; lbd sends the
//! requests of a pass together, which saves CPU on every side but leaves the
//! worker's stretches long.
//!
//! So at the end of a pass that sent held answers ([`super::http::cork`]), a
//! worker that has run for [`STRETCH`] ([`STRETCH_SHARED`] beside other
//! workers) without a single context switch (the thread's own counters,
//! `getrusage`) lowers its priority by [`STEP`] nice levels and puts it back
//! at once. Lowering it makes the kernel reschedule on the way out of the
//! system call: a task waiting on that core runs now
//! instead of at the next tick, and the worker's second call restores its
//! priority when it runs again. When nothing waits, the worker simply goes on.
//! A plain `sched_yield` does not do this: the scheduler (EEVDF) hands the core
//! only to a task it deems owed time, and a load generator that has run a lot
//! is often not. The cost is a `getrusage` at the end of each pass and two
//! `setpriority` per stretch, at most one stretch per [`STRETCH`] (or
//! [`STRETCH_SHARED`]) under full load.
//!
//! Only after a pass that sent held answers, at its end or before (a
//! connection that closes sends what it holds at once): those wake the clients
//! that would wait. A stretch of TLS handshakes, whose answers are never held,
//! gained nothing from giving way and lost: the handshake rate fell by 4 to 9 %
//! and its 99th percentile rose by a third to a half.
//!
//! Putting the priority back needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` that
//! allows it): a thread that could lower its priority but not restore it would
//! stay lowered. A throwaway thread checks this once, and without it workers
//! never give way.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a worker runs without a break before it gives way, when it is the
/// only worker thread: 500 µs. 250 and 350 µs measured the same; at 1 ms the
/// 99th percentile stayed above HAProxy's; at 150 µs the one-thread request
/// rate fell to 0.91 to 0.94 of HAProxy's (alternating rounds,
/// `docs/performance.md`).
pub const STRETCH: Duration = Duration::from_micros(500);
/// The same with two worker threads or more: 150 µs. There each worker has
/// about half its core's time to spare, and giving way sooner brought the
/// two-thread 99th percentiles from 1.01 to 1.07 times HAProxy's down to 0.88
/// to 0.99, at the same request rate.
pub const STRETCH_SHARED: Duration = Duration::from_micros(150);

/// The stretch of a worker among `workers` worker threads.
fn stretch_for(workers: usize) -> Duration {
    if workers >= 2 {
        STRETCH_SHARED
    } else {
        STRETCH
    }
}

/// How many nice levels a worker drops for a moment when it gives way: 5, a
/// third of its weight (19, 10 and 5 measured the same).
pub const STEP: i32 = 5;

/// A stretch of running without a context switch, as of its start.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stretch {
    since: Instant,
    /// The thread's voluntary plus involuntary context switches at `since`.
    switches: i64,
}

/// What the end of a pass does.
#[derive(Debug, PartialEq)]
enum Step {
    /// The thread was switched out since the stretch began (or none began):
    /// a new stretch starts now.
    Restart,
    /// Still running since `since`, not long enough yet.
    GoOn,
    /// Running since `since` for at least the stretch.
    GiveWay,
}

/// `woke`: the pass ending now sent held answers, waking their clients.
fn decide(stretch: Option<Stretch>, limit: Duration, switches: i64, woke: bool, now: Instant) -> Step {
    match stretch {
        Some(s) if s.switches == switches => {
            if now.saturating_duration_since(s.since) < limit {
                Step::GoOn
            } else if woke {
                Step::GiveWay
            } else {
                Step::Restart
            }
        }
        _ => Step::Restart,
    }
}

thread_local! {
    static STRETCH_NOW: Cell<Option<Stretch>> = const { Cell::new(None) };
    /// Set only when putting the priority back failed: the nice value that the
    /// next pass tries to restore.
    static LOWERED_FROM: Cell<Option<i32>> = const { Cell::new(None) };
}

fn switches() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut ru) != 0 {
            return -1;
        }
        ru
    };
    ru.ru_nvcsw.saturating_add(ru.ru_nivcsw)
}

/// The calling thread's nice value (Linux keeps one per thread).
fn nice() -> Option<i32> {
    // getpriority returns -1 both as a value and as an error: errno tells.
    // SAFETY: errno is this thread's; getpriority has no memory arguments.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        (n != -1 || *libc::__errno_location() == 0).then_some(n)
    }
}

fn set_nice(n: i32) -> bool {
    // SAFETY: who = 0 is the calling thread; no memory arguments.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) == 0 }
}

/// Whether workers may give way: a throwaway thread lowers its priority and
/// puts it back. Checked once.
pub fn allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        std::thread::spawn(|| {
            let Some(base) = nice() else { return false };
            base + STEP <= 19 && set_nice(base + STEP) && set_nice(base)
        })
        .join()
        .unwrap_or(false)
    })
}

fn restart(now: Instant, switches: i64) {
    STRETCH_NOW.set(Some(Stretch { since: now, switches }));
}

/// The end of a worker's pass over its ready tasks; `woke` when the pass sent
/// held answers to clients ([`super::http::cork::flush`]). True when the worker
/// gave way.
pub fn end_of_pass(woke: bool) -> bool {
    if let Some(base) = LOWERED_FROM.get() {
        // The priority could not be put back (the capability was dropped since the
        // check): this pass tries again.
        if set_nice(base) {
            LOWERED_FROM.set(None);
            restart(Instant::now(), switches());
        }
        return false;
    }
    let now = Instant::now();
    let count = switches();
    match decide(STRETCH_NOW.get(), stretch_for(super::worker_handles().len()), count, woke, now) {
        Step::GoOn => false,
        Step::Restart => {
            restart(now, count);
            false
        }
        Step::GiveWay => {
            STRETCH_NOW.set(None);
            let Some(base) = nice().filter(|b| b + STEP <= 19 && allowed()) else {
                return false;
            };
            // The kernel switches to a waiting task on the way back from the first
            // call; the second puts the priority back once this thread runs again.
            if !set_nice(base + STEP) {
                return false;
            }
            if !set_nice(base) {
                LOWERED_FROM.set(Some(base));
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_gives_way_only_when_long_unbroken_and_it_just_woke_clients() {
        let t0 = Instant::now();
        let s = Some(Stretch { since: t0, switches: 7 });
        assert_eq!(decide(None, STRETCH, 7, true, t0), Step::Restart);
        assert_eq!(decide(s, STRETCH, 7, true, t0 + STRETCH / 2), Step::GoOn);
        assert_eq!(decide(s, STRETCH, 7, true, t0 + STRETCH), Step::GiveWay);
        assert_eq!(decide(s, STRETCH, 7, true, t0 + STRETCH * 8), Step::GiveWay);
        // Switched out in between: the stretch was broken, however long ago it began.
        assert_eq!(decide(s, STRETCH, 8, true, t0 + STRETCH * 8), Step::Restart);
        assert_eq!(decide(s, STRETCH, 9, true, t0 + STRETCH / 2), Step::Restart);
        // Nothing sent at this pass end (TLS handshakes, answers written as they
        // came): no giving way, a new stretch.
        assert_eq!(decide(s, STRETCH, 7, false, t0 + STRETCH * 2), Step::Restart);
        assert_eq!(decide(s, STRETCH, 7, false, t0 + STRETCH / 2), Step::GoOn);
    }

    #[test]
    fn workers_beside_others_give_way_sooner() {
        assert_eq!(stretch_for(2), STRETCH_SHARED);
        assert_eq!(stretch_for(1), STRETCH);
    }

    #[test]
    fn giving_way_leaves_the_priority_as_it_was() {
        // In a thread of its own: nice values are per thread.
        std::thread::spawn(|| {
            let base = nice().expect("nice");
            // A long stretch with the switch count of now, ending in a pass that
            // woke clients (again if this thread happens to be switched out
            // between the two).
            let mut gave = false;
            for _ in 0..1000 {
                STRETCH_NOW.set(Some(Stretch {
                    since: Instant::now() - STRETCH * 2,
                    switches: switches(),
                }));
                gave = end_of_pass(true);
                if gave || STRETCH_NOW.get().is_none() {
                    break;
                }
            }
            // Without CAP_SYS_NICE the worker must never lower its priority.
            assert_eq!(gave, allowed());
            assert_eq!(nice(), Some(base));
            assert_eq!(LOWERED_FROM.get(), None);
            // The next pass starts a new stretch.
            assert!(!end_of_pass(true));
            assert!(STRETCH_NOW.get().is_some());
        })
        .join()
        .expect("test thread");
    }
}
