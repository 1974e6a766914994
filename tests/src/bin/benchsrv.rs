//! Backend server for `scripts/bench`: `benchsrv MODE PORT`, listening on 127.0.0.1.
//!
//! - `echo`: answers each read with the same bytes, until the peer closes (connection rate, idle
//!   connections);
//! - `sink`: reads and discards everything (upload throughput);
//! - `source`: writes a constant buffer as fast as it can until the peer closes (download
//!   throughput).
//!
//! Blocking IO, one connection per thread: a pool of threads that all wait in `accept` on the same
//! socket and go back to it when their connection ends. The pool grows by one thread whenever the
//! last waiting one takes a connection, up to `MAX_THREADS`, so short connections reuse threads and
//! long idle ones get one each.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAX_THREADS: usize = 6000;
const START_THREADS: usize = 8;
const STACK: usize = 128 * 1024;
const BUF: usize = 64 * 1024;
/// A `sink` or `source` connection that makes no progress for this long is dropped (`echo` ones
/// are meant to sit idle, so they wait for the peer).
const STALL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Mode {
    Echo,
    Sink,
    Source,
}

struct Pool {
    listener: TcpListener,
    mode: Mode,
    /// Threads waiting in `accept`.
    waiting: AtomicUsize,
    /// Threads started.
    total: AtomicUsize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: benchsrv echo|sink|source PORT";
    if args.len() != 3 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let mode = match args[1].as_str() {
        "echo" => Mode::Echo,
        "sink" => Mode::Sink,
        "source" => Mode::Source,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Ok(port) = args[2].parse::<u16>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    e2e::raise_fd_limit(MAX_THREADS as u64 + 100);
    let listener = match bind(port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("benchsrv: bind 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let pool = Arc::new(Pool {
        listener,
        mode,
        waiting: AtomicUsize::new(0),
        total: AtomicUsize::new(0),
    });
    for _ in 0..START_THREADS {
        spawn_worker(&pool);
    }
    eprintln!("benchsrv {} listening on 127.0.0.1:{port}", args[1]);
    // The workers do everything; the main thread only has to stay alive.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn bind(port: u16) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    sock.bind(&addr.into())?;
    sock.listen(4096)?;
    Ok(sock.into())
}

/// Starts one more worker unless the pool is full; counts it as waiting before it runs so that two
/// busy workers do not both spawn a replacement for the same gap.
fn spawn_worker(pool: &Arc<Pool>) {
    if pool.total.fetch_add(1, Ordering::SeqCst) >= MAX_THREADS {
        pool.total.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    pool.waiting.fetch_add(1, Ordering::SeqCst);
    let p = Arc::clone(pool);
    let spawned = std::thread::Builder::new().stack_size(STACK).spawn(move || worker(&p));
    if spawned.is_err() {
        pool.total.fetch_sub(1, Ordering::SeqCst);
        pool.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worker(pool: &Arc<Pool>) {
    let mut buf = vec![0u8; BUF];
    loop {
        let stream = match pool.listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE and the like: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        if pool.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            spawn_worker(pool);
        }
        serve(stream, pool.mode, &mut buf);
        pool.waiting.fetch_add(1, Ordering::SeqCst);
    }
}

fn serve(mut s: TcpStream, mode: Mode, buf: &mut [u8]) {
    let _ = s.set_nodelay(true);
    match mode {
        Mode::Echo => loop {
            match s.read(buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        },
        Mode::Sink => {
            let _ = s.set_read_timeout(Some(STALL));
            while let Ok(1..) = s.read(buf) {}
        }
        Mode::Source => {
            let _ = s.set_write_timeout(Some(STALL));
            buf.fill(b'x');
            while s.write_all(buf).is_ok() {}
        }
    }
}
