//! Bounded TCP load generator for `scripts/bench`.
//!
//! ```text
//! tcpload connrate ADDR --conns C --secs S   C threads loop {connect, write 64 B, read 64 B back, close}
//!                                             (against an `echo` backend); prints `connrate <conn/s>`
//! tcpload download ADDR --conns C --secs S   C connections read from a `source` backend; prints `download <MB/s>`
//! tcpload upload   ADDR --conns C --secs S   C connections write to a `sink` backend; prints `upload <MB/s>`
//! tcpload idle     ADDR --conns N [--hold-secs H]
//!                                             opens N connections, one 64-byte echo round trip on each
//!                                             (so the proxy has connected the server side), prints
//!                                             `idle-open N`, then holds them until a line arrives on
//!                                             stdin, or H seconds pass when --hold-secs is given
//!                                             (without it, end of stdin also ends the hold)
//! ```
//!
//! Every loop is bounded: `--secs` <= 60, `--conns` <= 5000, `--hold-secs` <= 600, and sockets have
//! read/write timeouts. MB are 10^6 bytes. Failed connections are counted and reported on stderr.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_SECS: u64 = 60;
const MAX_CONNS: usize = 5000;
const MAX_HOLD_SECS: u64 = 600;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 256 * 1024;
const REQ: usize = 64;

struct Args {
    mode: String,
    addr: SocketAddr,
    conns: usize,
    secs: u64,
    hold_secs: Option<u64>,
}

fn usage() -> ! {
    eprintln!(
        "usage: tcpload connrate|download|upload ADDR --conns C --secs S\n       tcpload idle ADDR --conns N [--hold-secs H]\n\
         limits: C, N <= {MAX_CONNS}; S <= {MAX_SECS}; H <= {MAX_HOLD_SECS}"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() < 2 {
        usage();
    }
    let mode = argv[0].clone();
    if !matches!(mode.as_str(), "connrate" | "download" | "upload" | "idle") {
        usage();
    }
    let Some(addr) = argv[1].to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        eprintln!("tcpload: bad address {:?}", argv[1]);
        usage();
    };
    let mut a = Args {
        mode,
        addr,
        conns: 1,
        secs: 5,
        hold_secs: None,
    };
    let mut rest = argv[2..].iter();
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next().and_then(|v| v.parse::<u64>().ok()) else {
            usage();
        };
        match flag.as_str() {
            "--conns" => a.conns = value as usize,
            "--secs" => a.secs = value,
            "--hold-secs" => a.hold_secs = Some(value),
            _ => usage(),
        }
    }
    if a.conns == 0 || a.conns > MAX_CONNS || a.secs == 0 || a.secs > MAX_SECS || a.hold_secs.is_some_and(|h| h > MAX_HOLD_SECS) {
        usage();
    }
    a
}

fn main() {
    let args = parse_args();
    // Each connection is one descriptor here; leave room for the rest.
    e2e::raise_fd_limit(args.conns as u64 + 100);
    let code = match args.mode.as_str() {
        "connrate" => connrate(&args),
        "download" => stream(&args, false),
        "upload" => stream(&args, true),
        _ => idle(&args),
    };
    std::process::exit(code);
}

fn open(addr: &SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// One 64-byte request and its echo.
fn round_trip(s: &mut TcpStream, req: &[u8; REQ], resp: &mut [u8; REQ]) -> std::io::Result<()> {
    s.write_all(req)?;
    s.read_exact(resp)?;
    if resp != req {
        return Err(std::io::Error::other("echo differs from request"));
    }
    Ok(())
}

/// Runs `conns` threads of `work(deadline) -> (units, errors)` and returns the sums and the wall time.
fn run_threads<F>(conns: usize, secs: u64, work: F) -> (u64, u64, Duration)
where
    F: Fn(Instant) -> (u64, u64) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let units = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let (w, u, e) = (Arc::clone(&work), Arc::clone(&units), Arc::clone(&errors));
            std::thread::spawn(move || {
                let (n, err) = w(deadline);
                u.fetch_add(n, Ordering::Relaxed);
                e.fetch_add(err, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed();
    (units.load(Ordering::Relaxed), errors.load(Ordering::Relaxed), elapsed)
}

fn connrate(a: &Args) -> i32 {
    let addr = a.addr;
    let (done, errors, elapsed) = run_threads(a.conns, a.secs, move |deadline| {
        let req = [b'q'; REQ];
        let mut resp = [0u8; REQ];
        let (mut done, mut errors) = (0u64, 0u64);
        while Instant::now() < deadline {
            match open(&addr).and_then(|mut s| round_trip(&mut s, &req, &mut resp)) {
                Ok(()) => done += 1,
                Err(_) => {
                    errors += 1;
                    // Port exhaustion or a refusing proxy: do not spin.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        (done, errors)
    });
    if errors > 0 {
        eprintln!("tcpload connrate: {errors} failed connections");
    }
    println!("connrate {:.0}", done as f64 / elapsed.as_secs_f64());
    i32::from(done == 0)
}

fn stream(a: &Args, upload: bool) -> i32 {
    let addr = a.addr;
    let (bytes, errors, elapsed) = run_threads(a.conns, a.secs, move |deadline| {
        let mut s = match open(&addr) {
            Ok(s) => s,
            Err(_) => return (0, 1),
        };
        let mut buf = vec![b'u'; CHUNK];
        let mut bytes = 0u64;
        while Instant::now() < deadline {
            let r = if upload { s.write(&buf) } else { s.read(&mut buf) };
            match r {
                Ok(0) | Err(_) => return (bytes, 1),
                Ok(n) => bytes += n as u64,
            }
        }
        (bytes, 0)
    });
    let name = if upload { "upload" } else { "download" };
    if errors > 0 {
        eprintln!("tcpload {name}: {errors} connections failed or ended early");
    }
    println!("{name} {:.1}", bytes as f64 / 1e6 / elapsed.as_secs_f64());
    i32::from(bytes == 0)
}

fn idle(a: &Args) -> i32 {
    let req = [b'i'; REQ];
    let mut resp = [0u8; REQ];
    let mut held = Vec::with_capacity(a.conns);
    let mut errors = 0usize;
    let limit = Instant::now() + Duration::from_secs(MAX_SECS);
    // Up to three tries per connection, within one minute overall.
    while held.len() < a.conns && errors < 3 * a.conns && Instant::now() < limit {
        match open(&a.addr).and_then(|mut s| round_trip(&mut s, &req, &mut resp).map(|()| s)) {
            Ok(s) => held.push(s),
            Err(_) => {
                errors += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    if errors > 0 {
        eprintln!("tcpload idle: {errors} failed connections");
    }
    println!("idle-open {}", held.len());
    let _ = std::io::stdout().flush();
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    std::thread::spawn(move || {
        let mut line = String::new();
        // true: a line; false: end of input or an error.
        let got_line = matches!(std::io::stdin().lock().read_line(&mut line), Ok(1..));
        let _ = tx.send(got_line);
    });
    let end = Instant::now() + Duration::from_secs(a.hold_secs.unwrap_or(MAX_HOLD_SECS));
    let got_line = rx.recv_timeout(end.saturating_duration_since(Instant::now())).unwrap_or(false);
    // End of stdin: with --hold-secs, wait out the timer; without, stop now.
    if !got_line && a.hold_secs.is_some() {
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
    }
    let complete = held.len() == a.conns;
    drop(held);
    i32::from(!complete)
}
