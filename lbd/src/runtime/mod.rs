//! The running load balancer: the snapshot, listeners, sessions, health checks,
//! stick tables and logs. `run` is what `lbd -f CONFIG` calls.

pub mod acl_eval;
pub mod api;
pub mod balance;
pub mod check;
mod give_way;
mod handoff;
pub mod http;
mod lazy_tcp;
pub mod listener;
pub mod log;
pub mod proxy_proto;
pub mod relay;
pub mod session;
pub mod snapshot;
mod splice;
pub mod stats_page;
pub mod stick;
pub mod tls_io;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{watch, Semaphore};

use crate::config::addr::ListenAddr;
use crate::config::Config;
use snapshot::Snapshot;

/// Connections currently open through the process (`actconn` in logs).
pub static ACTIVE_CONNS: AtomicU32 = AtomicU32::new(0);

/// File descriptors kept aside for logs, checks, the runtime socket and files.
const FD_RESERVE: u64 = 200;

/// Raises the open-file limit as far as allowed and returns the soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(lim.rlim_max);
        let want = libc::rlimit {
            rlim_cur: nr_open,
            rlim_max: nr_open.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return want.rlim_cur;
        }
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
            return soft.rlim_cur;
        }
        lim.rlim_cur
    }
}

/// The process-wide connection limit: `maxconn` in `global`, or what the file
/// limit allows (a proxied connection needs two descriptors).
fn global_maxconn(config: &Config, fd_limit: u64) -> usize {
    let derived = (fd_limit.saturating_sub(FD_RESERVE) / 2).max(1);
    match config.global.maxconn {
        0 => derived as usize,
        m => {
            if u64::from(m) > derived {
                eprintln!(
                    "[WARNING] global maxconn {m} needs up to {} file descriptors but the limit is {fd_limit}; connections beyond it wait in the accept queue.",
                    u64::from(m) * 2 + FD_RESERVE
                );
            }
            m as usize
        }
    }
}

/// An open listener: the switch that stops its accept loop, and the loop's task.
/// The switch that stops an address's accept loops, and the loops (one per socket).
type OpenListener = (watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>);

/// The running load balancer: the current snapshot and the open listeners.
pub struct Runtime {
    current: ArcSwap<Snapshot>,
    /// The configuration files, re-read on reload.
    files: Vec<PathBuf>,
    /// The SSL tab (`-s`), read again on every reload.
    ssl: Option<PathBuf>,
    /// Open listeners by address, with the switch that stops each accept loop
    /// and the loop's task (which owns, and finally closes, the socket).
    listeners: Mutex<HashMap<ListenAddr, OpenListener>>,
    /// Process-wide connection slots (`maxconn` in `global`).
    pub slots: Arc<Semaphore>,
    /// Bumped at each reload; check tasks of older generations stop.
    generation: watch::Sender<u64>,
    checks: tokio::runtime::Handle,
    /// Serialises reloads.
    reloading: tokio::sync::Mutex<()>,
    pub started: Instant,
    pub reloads: AtomicU64,
}

/// A stable hash of the configuration text, to tell which one is live.
pub fn config_hash(files: &[PathBuf], ssl: Option<&std::path::Path>) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if files.is_empty() {
        crate::cli::EMBEDDED_CONFIG.hash(&mut h);
    }
    for f in files.iter().map(PathBuf::as_path).chain(ssl) {
        f.hash(&mut h);
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

impl Runtime {
    /// The snapshot new connections use.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn start_checks(&self, snapshot: &Arc<Snapshot>) {
        let generation = *self.generation.borrow();
        check::spawn_for(&self.checks, snapshot, generation, self.generation.subscribe());
    }

    /// Opens the listeners `snapshot` needs that are not open yet. Returns them
    /// unstarted, so a failure leaves everything as it was.
    fn bind_missing(&self, snapshot: &Snapshot) -> Result<Vec<(ListenAddr, listener::Bound)>, String> {
        let open = self.listeners.lock().map_err(|_| "listener table poisoned".to_owned())?;
        let mut fresh: Vec<(ListenAddr, listener::Bound)> = Vec::new();
        for fe in &snapshot.frontends {
            for bind in &fe.conf.binds {
                for addr in &bind.addrs {
                    if open.contains_key(addr) || fresh.iter().any(|(a, _)| a == addr) {
                        continue;
                    }
                    fresh.push((
                        addr.clone(),
                        listener::bind(fe, bind, addr, &snapshot.global, worker_handles().len())?,
                    ));
                }
            }
        }
        Ok(fresh)
    }

    fn start_listeners(self: &Arc<Self>, fresh: Vec<(ListenAddr, listener::Bound)>) {
        let Ok(mut open) = self.listeners.lock() else { return };
        for (addr, bound) in fresh {
            let (tx, rx) = watch::channel(false);
            eprintln!("[NOTICE] listening on {addr}");
            let tasks = match bound {
                listener::Bound::One(socket) => vec![tokio::spawn(listener::accept_loop(Arc::clone(self), addr.clone(), socket, rx))],
                listener::Bound::Sharded(sockets) => sockets
                    .into_iter()
                    .zip(worker_handles())
                    .map(|(sock, shard)| {
                        let (rt, addr, rx) = (Arc::clone(self), addr.clone(), rx.clone());
                        // Registered with the worker's own reactor, from inside it.
                        shard.spawn(async move {
                            match listener::register(sock) {
                                Ok(l) => listener::accept_loop(rt, addr, listener::BoundSocket::Tcp(l), rx).await,
                                Err(e) => eprintln!("[ALERT] {addr}: {e}"),
                            }
                        })
                    })
                    .collect(),
            };
            open.insert(addr, (tx, tasks));
        }
    }

    /// Closes listeners that `snapshot` no longer binds, and waits until their
    /// sockets are closed (so a caller of `reload` sees the final state).
    async fn close_unused(&self, snapshot: &Snapshot) {
        let closing: Vec<(ListenAddr, Vec<tokio::task::JoinHandle<()>>)> = {
            let Ok(mut open) = self.listeners.lock() else { return };
            let wanted: std::collections::HashSet<&ListenAddr> = snapshot
                .frontends
                .iter()
                .flat_map(|f| f.conf.binds.iter().flat_map(|b| b.addrs.iter()))
                .collect();
            let gone: Vec<ListenAddr> = open.keys().filter(|a| !wanted.contains(a)).cloned().collect();
            gone.into_iter()
                .filter_map(|addr| {
                    let (tx, task) = open.remove(&addr)?;
                    let _ = tx.send(true);
                    Some((addr, task))
                })
                .collect()
        };
        for (addr, tasks) in closing {
            for task in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
            if let ListenAddr::Unix { path, .. } = &addr {
                let _ = std::fs::remove_file(path);
            }
            eprintln!("[NOTICE] closed {addr}");
        }
    }

    /// Re-reads the configuration files. On any error nothing changes and the
    /// error text is returned. On success new listeners are bound before the
    /// switch, removed ones closed after it; servers and stick tables with the
    /// same names keep their state; connections in flight finish on the old
    /// snapshot, at most `hard-stop-after` longer. Returns the new config hash.
    pub async fn reload(self: &Arc<Self>) -> Result<String, String> {
        let _one_at_a_time = self.reloading.lock().await;
        // Without files (`lbd` on its embedded configuration) the embedded text is re-read.
        let checked = crate::config::check_all(&self.files, self.ssl.as_deref());
        let Some(config) = checked.config else {
            let text: Vec<String> = checked.diags.errors().map(|d| d.haproxy_line(std::process::id())).collect();
            return Err(text.join("\n"));
        };
        let hash = config_hash(&self.files, self.ssl.as_deref());
        let old = self.current();
        let new = Arc::new(Snapshot::build(&config, &hash, Some(&old)));
        let fresh = self.bind_missing(&new)?;
        self.current.store(Arc::clone(&new));
        old.retire(false);
        self.start_listeners(fresh);
        self.close_unused(&new).await;
        self.generation.send_modify(|g| *g += 1);
        self.start_checks(&new);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        if let Some(limit) = old.global.hard_stop_after.or(new.global.hard_stop_after) {
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                old.hard_stop();
            });
        }
        new.logger.log(log::Level::Notice, &format!("configuration reloaded, hash {hash}"));
        Ok(hash)
    }
}

/// Older processes to stop once this one listens (`-sf` / `-st`).
#[derive(Debug, Default, Clone)]
pub struct Takeover {
    /// Finish their connections, then exit (SIGUSR1).
    pub soft: Vec<i32>,
    /// Exit now (SIGTERM).
    pub hard: Vec<i32>,
}

/// Builds the snapshot, binds every listener, starts checks and serves until a
/// stop signal. Returns an error (before serving anything) when a bind fails.
pub fn run(config: Config, files: Vec<PathBuf>, ssl: Option<PathBuf>, takeover: Takeover) -> anyhow::Result<()> {
    // No transparent huge pages: thousands of small per-connection allocations
    // would otherwise pin memory in 2 MiB steps.
    // SAFETY: prctl(PR_SET_THP_DISABLE) only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let fd_limit = raise_fd_limit();
    let threads = config
        .global
        .nbthread
        .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |n| n as usize);
    // Each worker thread, one included, runs a single-threaded runtime of its
    // own that serves its own listening sockets; the main runtime (one worker)
    // keeps the rest: signals, reloads, the runtime API, UNIX listeners. (At
    // nbthread 1 a multi-threaded runtime's lone worker served everything
    // before: the same request rate, but p99 1.6-1.8 ms against 1.0-1.1 ms.)
    worker_runtimes(threads.max(1))?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_all().thread_name("lbd-worker");
    // A woken task waits its turn instead of running next: the requests read in
    // one pass over the ready sockets then go out to the servers together, so a
    // server (and the client) is woken once per burst instead of once per request.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let rt = builder.build()?;
    rt.block_on(serve(config, files, ssl, fd_limit, takeover))
}

thread_local! {
    /// 1 + the index of this worker thread's runtime; 0 on other threads.
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A worker runtime: its handle, the connections it serves now, and the
/// connections it has served.
struct WorkerShard {
    handle: tokio::runtime::Handle,
    load: std::sync::atomic::AtomicUsize,
    accepted: AtomicU64,
    /// Connections handed to it by other workers, not started yet.
    inbox: handoff::Inbox,
}

/// The worker runtimes, `nbthread` of them, set once at start: each serves the
/// connections of its own listening sockets.
static WORKER_SHARDS: std::sync::OnceLock<Box<[WorkerShard]>> = std::sync::OnceLock::new();

/// Among `workers` worker slots (slot `i + 1` serves `load(i)` connections),
/// the slot with the fewest, `here` on a tie; a thread that is not a worker
/// (`here` 0 or out of range) always picks one.
fn lightest(workers: usize, load: impl Fn(usize) -> Option<usize>, here: usize) -> usize {
    let of = |slot: usize| slot.checked_sub(1).and_then(&load).unwrap_or(usize::MAX);
    (1..=workers)
        .fold((here, of(here)), |(best, least), slot| {
            let n = of(slot);
            if n < least {
                (slot, n)
            } else {
                (best, least)
            }
        })
        .0
}

/// Where a new connection accepted on this thread should run: the worker
/// runtime serving the fewest connections, this one on a tie, as HAProxy hands
/// an accepted connection to its least loaded thread. Returns the slot to count
/// the connection in (see [`worker_index`]) and whether it is another worker's
/// (then [`start_on`] starts it there).
pub fn lightest_worker() -> (usize, bool) {
    let here = worker_index();
    let Some(shards) = WORKER_SHARDS.get() else { return (here, false) };
    let best = lightest(shards.len(), |i| shards.get(i).map(|w| w.load.load(Ordering::Relaxed)), here);
    (best, best != here && shards.get(best.wrapping_sub(1)).is_some())
}

/// Starts a connection's task on worker `slot` (from [`lightest_worker`]),
/// which another worker accepted; on this thread's runtime when there is no
/// such worker.
pub fn start_on(slot: usize, task: handoff::Task) {
    match WORKER_SHARDS.get().and_then(|s| s.get(slot.wrapping_sub(1))) {
        // Without the hook after each task poll, a busy worker would see its
        // inbox only when it next waits for events.
        #[cfg(tokio_unstable)]
        Some(w) => w.inbox.hand(&w.handle, task),
        #[cfg(not(tokio_unstable))]
        Some(w) => drop(w.handle.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

/// The calling worker thread's inbox (none on other threads).
fn own_inbox() -> Option<&'static handoff::Inbox> {
    WORKER_SHARDS.get()?.get(worker_index().checked_sub(1)?).map(|w| &w.inbox)
}

/// Counts a connection on worker `slot` (from [`lightest_worker`] or
/// [`worker_index`]) until the returned guard drops.
pub fn count_on_worker(slot: usize) -> WorkerLoad {
    if let Some(w) = WORKER_SHARDS.get().and_then(|s| s.get(slot.wrapping_sub(1))) {
        w.load.fetch_add(1, Ordering::Relaxed);
        w.accepted.fetch_add(1, Ordering::Relaxed);
    }
    WorkerLoad(slot)
}

/// The connections each worker thread has served (`show activity`).
pub fn accepted_per_worker() -> Vec<u64> {
    WORKER_SHARDS
        .get()
        .map(|s| s.iter().map(|w| w.accepted.load(Ordering::Relaxed)).collect())
        .unwrap_or_default()
}

pub struct WorkerLoad(usize);

impl Drop for WorkerLoad {
    fn drop(&mut self) {
        if let Some(w) = WORKER_SHARDS.get().and_then(|s| s.get(self.0.wrapping_sub(1))) {
            w.load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// This thread's slot among [`worker_count`] (0 outside the worker runtimes).
pub fn worker_index() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// How many per-thread lists a per-worker structure needs (worker threads + 1).
pub fn worker_count() -> usize {
    worker_handles().len() + 1
}

/// The worker threads' runtimes (none before they start).
fn worker_handles() -> impl ExactSizeIterator<Item = &'static tokio::runtime::Handle> {
    WORKER_SHARDS.get().map_or(&[][..], |s| &s[..]).iter().map(|w| &w.handle)
}

/// One single-threaded runtime per worker thread. A connection's tasks (the
/// client side, the server connections it opens) stay on the thread that
/// accepted it.
fn worker_runtimes(threads: usize) -> anyhow::Result<()> {
    // Checked once, here, rather than in the middle of a worker's first long pass.
    #[cfg(tokio_unstable)]
    give_way::allowed();
    let shards = (0..threads)
        .map(|i| {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            // The end of a pass over the ready tasks: the small writes held for
            // plain-TCP clients go out together (http::cork), and a worker that
            // has run too long without a break and has just woken clients gives
            // way to them (give_way).
            //
            // Connections handed over by the other workers start after each task
            // poll and before the worker waits (handoff).
            #[cfg(tokio_unstable)]
            builder
                .on_thread_park(|| {
                    let woke = http::cork::flush();
                    give_way::end_of_pass(woke);
                    if let Some(inbox) = own_inbox() {
                        inbox.before_park();
                    }
                })
                .on_thread_unpark(|| {
                    if let Some(inbox) = own_inbox() {
                        inbox.after_unpark();
                    }
                })
                .on_after_task_poll(|_| {
                    if let Some(woke) = http::cork::after_poll() {
                        give_way::end_of_pass(woke);
                    }
                    if let Some(inbox) = own_inbox() {
                        inbox.poll();
                    }
                });
            let rt = builder.build()?;
            let handle = rt.handle().clone();
            drop(rt.spawn(timer_floor()));
            std::thread::Builder::new().name(format!("lbd-worker-{i}")).spawn(move || {
                WORKER.with(|w| w.set(i + 1));
                #[cfg(tokio_unstable)]
                http::cork::enable_here();
                rt.block_on(std::future::pending::<()>())
            })?;
            Ok(WorkerShard {
                handle,
                load: std::sync::atomic::AtomicUsize::new(0),
                accepted: AtomicU64::new(0),
                inbox: handoff::Inbox::default(),
            })
        })
        .collect::<anyhow::Result<Box<[_]>>>()?;
    let _ = WORKER_SHARDS.set(shards);
    Ok(())
}

/// How far ahead a worker's timer floor keeps its next timer.
const TIMER_FLOOR: Duration = Duration::from_secs(1);

/// Keeps a timer due within [`TIMER_FLOOR`] on the worker, for ever.
///
/// tokio's timer wakes its runtime (a write to the runtime's eventfd, and the
/// next wait for events returns at once) whenever a timer is set to expire
/// before the earliest one the runtime last went to sleep with, even when the
/// runtime sets it itself while running. Each connection to a server arms
/// `timeout connect`; with a connection per request, that was one needless
/// write per request whenever every timer left was further away (`timeout
/// client`, `timeout server`). With this tick, timers at least a second away
/// never wake the worker they are set on. It costs one wake a second on an
/// idle worker.
async fn timer_floor() {
    let mut tick = tokio::time::interval(TIMER_FLOOR);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// The health checks' own runtime, on its own thread: however many servers are
/// checked, the workers that move traffic never wait behind a check.
fn check_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("lbd-checks".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

async fn serve(config: Config, files: Vec<PathBuf>, ssl: Option<PathBuf>, fd_limit: u64, takeover: Takeover) -> anyhow::Result<()> {
    let _ = stats_page::STARTED.set(Instant::now());
    let hash = config_hash(&files, ssl.as_deref());
    let snapshot = Arc::new(Snapshot::build(&config, &hash, None));
    let runtime = Arc::new(Runtime {
        current: ArcSwap::from(Arc::clone(&snapshot)),
        files,
        ssl,
        listeners: Mutex::new(HashMap::new()),
        slots: Arc::new(Semaphore::new(global_maxconn(&config, fd_limit))),
        generation: watch::channel(0).0,
        checks: check_runtime()?,
        reloading: tokio::sync::Mutex::new(()),
        started: Instant::now(),
        reloads: AtomicU64::new(0),
    });
    let fresh = runtime.bind_missing(&snapshot).map_err(|e| anyhow::anyhow!(e))?;
    runtime.start_listeners(fresh);
    runtime.start_checks(&snapshot);
    for sock in &snapshot.global.stats_sockets {
        tokio::spawn(api::serve(Arc::clone(&runtime), sock.clone()));
    }
    // Listening now (beside the old process, thanks to SO_REUSEPORT): the old one may go.
    for (pids, sig) in [(&takeover.soft, libc::SIGUSR1), (&takeover.hard, libc::SIGTERM)] {
        for pid in pids {
            // SAFETY: kill(2) with a pid and a signal number has no memory effects.
            if unsafe { libc::kill(*pid, sig) } != 0 {
                eprintln!("[WARNING] cannot signal process {pid}: {}", std::io::Error::last_os_error());
            }
        }
    }
    eprintln!(
        "[NOTICE] lbd {} started ({} frontends, {} backends)",
        env!("CARGO_PKG_VERSION"),
        snapshot.frontends.len(),
        snapshot.backends.len()
    );

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut hup = signal(SignalKind::hangup())?;
    let graceful = loop {
        tokio::select! {
            _ = term.recv() => break false,
            _ = int.recv() => break false,
            _ = usr1.recv() => break true,
            _ = hup.recv() => match runtime.reload().await {
                Ok(h) => eprintln!("[NOTICE] reloaded: config hash {h}"),
                Err(e) => eprintln!("[ALERT] reload refused, the running configuration stays:\n{e}"),
            },
        }
    };
    // Stop accepting everywhere.
    if let Ok(mut open) = runtime.listeners.lock() {
        for (_, (tx, _)) in open.drain() {
            let _ = tx.send(true);
        }
    }
    if graceful {
        runtime.current().retire(true);
        // Let connections in flight finish (bounded by hard-stop-after).
        let limit = runtime.current().global.hard_stop_after.unwrap_or(Duration::MAX);
        let deadline = tokio::time::Instant::now() + limit.min(Duration::from_secs(365 * 86_400));
        eprintln!(
            "[NOTICE] graceful stop: waiting for {} connections",
            ACTIVE_CONNS.load(Ordering::Relaxed)
        );
        while ACTIVE_CONNS.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = term.recv() => break,
            }
        }
    }
    eprintln!("[NOTICE] lbd stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_connection_goes_to_the_least_loaded_worker_and_stays_on_a_tie() {
        let lightest = |loads: &[usize], here| super::lightest(loads.len(), |i| loads.get(i).copied(), here);
        assert_eq!(lightest(&[3, 3], 1), 1);
        assert_eq!(lightest(&[3, 3], 2), 2);
        assert_eq!(lightest(&[4, 3], 1), 2);
        assert_eq!(lightest(&[2, 5, 1], 2), 3);
        assert_eq!(lightest(&[0, 0], 1), 1);
        // Not a worker thread (the main runtime): always one of the workers.
        assert_eq!(lightest(&[2, 1], 0), 2);
        assert_eq!(lightest(&[1, 1], 0), 1);
        // One thread: nowhere else to go.
        assert_eq!(lightest(&[], 0), 0);
    }
}
