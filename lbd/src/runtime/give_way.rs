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
//! So at the end of each pass, a worker that has run for [`STRETCH`] without a
//! single context switch (the thread's own counters, `getrusage`) lowers its
//! priority by [`STEP`] nice levels. The kernel reschedules at once: a task
//! waiting on that core runs now instead of at the next tick; when none is
//! waiting, the worker simply goes on. Its next pass puts its priority back.
//! The cost is three system calls per stretch, about one every 500 µs under
//! full load and none when the worker sleeps between passes.
//!
//! Putting the priority back needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` that
//! allows it): a thread that could lower its priority but not restore it would
//! stay lowered. A throwaway thread checks this once, and without it workers
//! never give way.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a worker runs without a break before it gives way: 500 µs. At 250
/// µs the request rate fell by about 5 %, at 1 ms the 99th percentile stayed
/// above HAProxy's (alternating rounds, `docs/performance.md`).
pub const STRETCH: Duration = Duration::from_micros(500);
/// How many nice levels a worker drops while it gives way: 5, a third of its
/// weight. Even if a CPU-bound task shares the core, the worker still gets a
/// quarter of it until its next pass restores its priority.
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
    /// Running since `since` for at least [`STRETCH`].
    GiveWay,
}

fn decide(stretch: Option<Stretch>, switches: i64, now: Instant) -> Step {
    match stretch {
        Some(s) if s.switches == switches => {
            if now.saturating_duration_since(s.since) >= STRETCH {
                Step::GiveWay
            } else {
                Step::GoOn
            }
        }
        _ => Step::Restart,
    }
}

thread_local! {
    static STRETCH_NOW: Cell<Option<Stretch>> = const { Cell::new(None) };
    /// The nice value to restore at the next pass, while the worker gives way.
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

/// The end of a worker's pass over its ready tasks.
pub fn end_of_pass() {
    if let Some(base) = LOWERED_FROM.get() {
        // If this fails (the capability was dropped since), the next pass tries again.
        if set_nice(base) {
            LOWERED_FROM.set(None);
            STRETCH_NOW.set(Some(Stretch {
                since: Instant::now(),
                switches: switches(),
            }));
        }
        return;
    }
    let now = Instant::now();
    let count = switches();
    match decide(STRETCH_NOW.get(), count, now) {
        Step::GoOn => {}
        Step::Restart => STRETCH_NOW.set(Some(Stretch {
            since: now,
            switches: count,
        })),
        Step::GiveWay => {
            STRETCH_NOW.set(None);
            if !allowed() {
                return;
            }
            if let Some(base) = nice() {
                if base + STEP <= 19 && set_nice(base + STEP) {
                    LOWERED_FROM.set(Some(base));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretch_gives_way_only_when_long_and_unbroken() {
        let t0 = Instant::now();
        let s = Some(Stretch { since: t0, switches: 7 });
        assert_eq!(decide(None, 7, t0), Step::Restart);
        assert_eq!(decide(s, 7, t0 + STRETCH / 2), Step::GoOn);
        assert_eq!(decide(s, 7, t0 + STRETCH), Step::GiveWay);
        assert_eq!(decide(s, 7, t0 + STRETCH * 8), Step::GiveWay);
        // Switched out in between: the stretch was broken, however long ago it began.
        assert_eq!(decide(s, 8, t0 + STRETCH * 8), Step::Restart);
        assert_eq!(decide(s, 9, t0 + STRETCH / 2), Step::Restart);
    }

    #[test]
    fn giving_way_lowers_the_priority_and_the_next_pass_restores_it() {
        // In a thread of its own: nice values are per thread.
        std::thread::spawn(|| {
            let base = nice().expect("nice");
            if !allowed() {
                // Without CAP_SYS_NICE the worker must never lower its priority.
                let t0 = Instant::now();
                STRETCH_NOW.set(Some(Stretch {
                    since: t0 - STRETCH * 2,
                    switches: switches(),
                }));
                end_of_pass();
                assert_eq!(nice(), Some(base));
                return;
            }
            // A stretch that began long ago with the switch count of now (again if
            // this thread happens to be switched out between the two).
            for _ in 0..1000 {
                STRETCH_NOW.set(Some(Stretch {
                    since: Instant::now() - STRETCH * 2,
                    switches: switches(),
                }));
                end_of_pass();
                if LOWERED_FROM.get().is_some() {
                    break;
                }
            }
            // The reschedule it asks for may switch this thread out; the lowered
            // priority stays until the next pass either way.
            assert_eq!(nice(), Some(base + STEP));
            end_of_pass();
            assert_eq!(nice(), Some(base));
            assert_eq!(LOWERED_FROM.get(), None);
        })
        .join()
        .expect("test thread");
    }
}
