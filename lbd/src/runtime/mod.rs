//! The running load balancer: the snapshot, listeners, sessions, health checks,
//! stick tables and logs. `run` is what `lbd -f CONFIG` calls.

pub mod acl_eval;
pub mod balance;
pub mod check;
mod http_min;
pub mod listener;
pub mod log;
pub mod session;
pub mod snapshot;
mod splice;
pub mod stick;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

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

/// Builds the snapshot, binds every listener, starts checks and serves until a
/// stop signal. Returns an error (before serving anything) when a bind fails.
pub fn run(config: Config) -> anyhow::Result<()> {
    let fd_limit = raise_fd_limit();
    let threads = config
        .global
        .nbthread
        .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |n| n as usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .thread_name("lbd-worker")
        .build()?;
    rt.block_on(serve(config, fd_limit))
}

async fn serve(config: Config, fd_limit: u64) -> anyhow::Result<()> {
    let snapshot = Arc::new(Snapshot::build(&config));
    let mut bound = Vec::new();
    for fe in &snapshot.frontends {
        let sockets = listener::bind_frontend(fe, &snapshot).map_err(|e| anyhow::anyhow!(e))?;
        bound.push((Arc::clone(fe), sockets));
    }
    let global = Arc::new(Semaphore::new(global_maxconn(&config, fd_limit)));
    let (stop_tx, stop_rx) = watch::channel(false);
    for (fe, sockets) in bound {
        for b in sockets {
            eprintln!("[NOTICE] frontend {} listening on {}", fe.name(), b.addr);
            tokio::spawn(listener::accept_loop(
                Arc::clone(&snapshot),
                Arc::clone(&fe),
                b,
                Arc::clone(&global),
                stop_rx.clone(),
            ));
        }
    }
    check::start_all(&snapshot)?;
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
            _ = hup.recv() => eprintln!("[WARNING] SIGHUP: reload is not available in this build; the running configuration stays."),
        }
    };
    let _ = stop_tx.send(true);
    if graceful {
        // Stop accepting, let connections in flight finish (bounded by hard-stop-after).
        let limit = config.global.hard_stop_after.unwrap_or(Duration::MAX);
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
