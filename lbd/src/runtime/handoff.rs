//! Connections handed from the worker that accepted them to another worker.
//!
//! Handing a task over through the other runtime's handle (`Handle::spawn`)
//! writes to that runtime's eventfd every time, whether it sleeps or not. With
//! a connection per request, more than half of the connections change worker
//! ([`super::lightest_worker`]), so that was one system call per connection
//! more than HAProxy, which wakes the thread it hands a connection to only
//! when that thread sleeps. lbd now does the same: the connection waits in the
//! worker's [`Inbox`], which the worker empties after each task it polls and
//! before it sleeps, and only a worker that sleeps (or is about to) is woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Mutex;

/// A connection's task, as the accepting worker built it.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The connections handed to one worker that it has not started yet.
#[derive(Default)]
pub struct Inbox {
    queue: Mutex<Vec<Task>>,
    /// `queue` may hold tasks.
    pending: AtomicBool,
    /// The worker is about to wait for events, or waits: it must be woken.
    asleep: AtomicBool,
}

impl Inbox {
    /// Hands `task` to the worker that owns this inbox and runs `handle`.
    pub fn hand(&self, handle: &tokio::runtime::Handle, task: Task) {
        if self.asleep.load(SeqCst) {
            // Waking it is due anyway: the task goes with the wake.
            drop(handle.spawn(task));
            return;
        }
        self.lock().push(task);
        self.pending.store(true, SeqCst);
        // It may have gone to sleep since the first look, before it saw `pending`
        // (both sides store, then load the other's flag: one of them sees it).
        if self.asleep.load(SeqCst) {
            drop(handle.spawn(async {}));
        }
    }

    /// On the owning worker, after each task poll: starts what was handed over.
    pub fn poll(&self) {
        if self.pending.load(SeqCst) {
            self.start_all();
        }
    }

    /// On the owning worker, about to wait for events.
    pub fn before_park(&self) {
        self.asleep.store(true, SeqCst);
        if self.pending.load(SeqCst) {
            // The runtime sees the new tasks and does not wait.
            self.asleep.store(false, SeqCst);
            self.start_all();
        }
    }

    /// On the owning worker, back from waiting for events.
    pub fn after_unpark(&self) {
        self.asleep.store(false, SeqCst);
        self.poll();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Task>> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spawns the queued tasks on the calling worker's runtime (its hooks run
    /// with the runtime entered: the tasks go to its own run queue).
    fn start_all(&self) {
        self.pending.store(false, SeqCst);
        let tasks = std::mem::take(&mut *self.lock());
        for task in tasks {
            drop(tokio::spawn(task));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A worker runtime wired as lbd's (its hooks empty the inbox), its inbox
    /// and its handle.
    fn worker() -> (tokio::runtime::Runtime, Arc<Inbox>, tokio::runtime::Handle) {
        let inbox = Arc::new(Inbox::default());
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all();
        let (park, unpark) = (Arc::clone(&inbox), Arc::clone(&inbox));
        b.on_thread_park(move || park.before_park())
            .on_thread_unpark(move || unpark.after_unpark());
        #[cfg(tokio_unstable)]
        {
            let polled = Arc::clone(&inbox);
            b.on_after_task_poll(move |_| polled.poll());
        }
        let rt = b.build().expect("runtime");
        let handle = rt.handle().clone();
        (rt, inbox, handle)
    }

    #[test]
    fn handed_tasks_run_whether_the_worker_sleeps_or_is_busy() {
        let (rt, inbox, handle) = worker();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                // A busy task beside the handed ones: the worker is not always asleep.
                let busy = tokio::spawn(async {
                    loop {
                        std::thread::sleep(Duration::from_micros(50));
                        tokio::task::yield_now().await;
                    }
                });
                while stop_rx.try_recv().is_err() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                busy.abort();
            });
        });
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..2000 {
            let ran = Arc::clone(&ran);
            inbox.hand(
                &handle,
                Box::pin(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                }),
            );
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ran.load(Ordering::SeqCst) < 2000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 2000);
        stop_tx.send(()).expect("worker alive");
        thread.join().expect("worker thread");
    }

    #[test]
    fn a_sleeping_worker_is_woken_for_a_handed_task() {
        let (rt, inbox, handle) = worker();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        // The worker only waits: nothing else would wake it for an hour.
        let thread = std::thread::spawn(move || rt.block_on(async { tokio::time::sleep(Duration::from_secs(3600)).await }));
        std::thread::sleep(Duration::from_millis(50));
        inbox.hand(
            &handle,
            Box::pin(async move {
                let _ = done_tx.send(());
            }),
        );
        assert!(done_rx.recv_timeout(Duration::from_secs(5)).is_ok(), "the handed task never ran");
        drop(thread);
    }
}
