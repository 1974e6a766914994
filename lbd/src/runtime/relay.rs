//! Moving bytes between a client and a server, one direction at a time.
//!
//! Between two TCP sockets, a direction waits for readiness holding no buffer:
//! bytes are read into the worker thread's scratch buffer and written straight
//! on; only what the receiver cannot take at once is copied to the heap until
//! it drains. An idle session therefore costs no buffer memory at all. Streams
//! that are not plain TCP (UNIX clients) use a small buffer that grows while
//! data flows.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The per-thread scratch buffer, and the large buffer of a busy generic direction.
const RELAY_BUF: usize = 16 * 1024;
/// Buffer an idle generic direction keeps.
const SMALL_BUF: usize = 512;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; RELAY_BUF].into_boxed_slice());
}

/// Counts bytes and stamps activity for the idle timeout.
pub struct Tally<'a> {
    pub activity: &'a AtomicU64,
    pub started: Instant,
    pub bytes: &'a AtomicU64,
}

impl Tally<'_> {
    fn moved(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.activity.store(self.started.elapsed().as_millis() as u64, Ordering::Release);
    }
}

enum Step {
    Eof,
    Moved(usize),
    /// Read `n` bytes, of which the receiver could not take `rest` yet.
    Partial(usize, Vec<u8>),
    NotReady,
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// One read through the scratch buffer and as much of a write as the receiver takes now.
fn step(src: &TcpStream, dst: &TcpStream) -> io::Result<Step> {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let n = match src.try_read(&mut buf) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(e) if is_would_block(&e) => return Ok(Step::NotReady),
            Err(e) => return Err(e),
        };
        let mut off = 0;
        while off < n {
            match dst.try_write(&buf[off..n]) {
                Ok(m) => off += m,
                Err(e) if is_would_block(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(if off == n {
            Step::Moved(n)
        } else {
            Step::Partial(n, buf[off..n].to_vec())
        })
    })
}

/// TCP to TCP until EOF, then half-closes `dst`.
pub async fn tcp(src: &TcpStream, dst: &TcpStream, tally: Tally<'_>) -> io::Result<()> {
    loop {
        src.readable().await?;
        match step(src, dst)? {
            Step::NotReady => continue,
            Step::Eof => {
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            Step::Moved(n) => tally.moved(n),
            Step::Partial(n, rest) => {
                let mut off = 0;
                while off < rest.len() {
                    dst.writable().await?;
                    match dst.try_write(&rest[off..]) {
                        Ok(m) => off += m,
                        Err(e) if is_would_block(&e) => continue,
                        Err(e) => return Err(e),
                    }
                }
                tally.moved(n);
            }
        }
    }
}

/// Any stream to any stream until EOF, then half-closes the writer. An idle
/// direction holds only a small buffer: the large one is allocated when a read
/// fills the small one, and given back when reads come small again.
pub async fn copy<R, W>(r: &mut R, w: &mut W, tally: Tally<'_>) -> io::Result<()>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut small = [0u8; SMALL_BUF];
    let mut big: Option<Box<[u8]>> = None;
    loop {
        let n = match big.as_mut() {
            Some(b) => r.read(b).await?,
            None => r.read(&mut small).await?,
        };
        if n == 0 {
            // Half-close: the peer may still send the other way.
            let _ = w.shutdown().await;
            return Ok(());
        }
        let data = match big.as_deref() {
            Some(b) => &b[..n],
            None => &small[..n],
        };
        w.write_all(data).await?;
        tally.moved(n);
        match big {
            None if n == SMALL_BUF => big = Some(vec![0u8; RELAY_BUF].into_boxed_slice()),
            Some(_) if n < SMALL_BUF => big = None,
            _ => {}
        }
    }
}
