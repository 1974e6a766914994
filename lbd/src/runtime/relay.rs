//! Moving bytes between a client and a server, one direction at a time.
//!
//! Between two TCP sockets, a direction waits for readiness holding no buffer:
//! bytes are read into the worker thread's scratch buffer and written straight
//! on; only what the receiver cannot take at once is copied to the heap until
//! it drains. An idle session therefore costs no buffer memory at all. Streams
//! that are not plain TCP (UNIX clients) use a small buffer that grows while
//! data flows.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
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
///
/// A read that does not fill the buffer took everything the socket held, so the
/// socket's readiness is cleared with it: the next read waits for the event
/// loop instead of finding nothing (one `recvfrom` less per burst, as HAProxy
/// stops reading at a short read). tokio clears it only as of the event that
/// made the socket readable, so bytes that arrive after the read still wake the
/// direction, and it keeps a received FIN, so an end of stream queued behind the
/// bytes is still read.
fn step(src: &TcpStream, dst: &TcpStream) -> io::Result<Step> {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let cap = buf.len();
        let mut short = None;
        let read = src.try_io(Interest::READABLE, || {
            let n = (&*socket2::SockRef::from(src)).read(&mut buf[..])?;
            if n > 0 && n < cap {
                // Reported as "would block" so that try_io clears the readiness.
                short = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let n = match (short, read) {
            (Some(n), _) => n,
            (None, Ok(0)) => return Ok(Step::Eof),
            (None, Ok(n)) => n,
            (None, Err(e)) if is_would_block(&e) => return Ok(Step::NotReady),
            (None, Err(e)) => return Err(e),
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

/// TCP to TCP until EOF, then half-closes `dst` unless the other direction has
/// already ended. `ended` counts the session's directions that have read their
/// end of stream; both directions share it. (The generic [`copy`] always
/// half-closes its writer: a TLS writer's close_notify must go out.)
pub async fn tcp(src: &TcpStream, dst: &TcpStream, tally: Tally<'_>, ended: &AtomicU8) -> io::Result<()> {
    loop {
        src.readable().await?;
        match step(src, dst)? {
            Step::NotReady => continue,
            Step::Eof => {
                // The direction that ends second leaves the FIN to the close that
                // follows at once: the other way's end of stream has been read, so
                // nothing unread makes that close a reset.
                if ended.fetch_add(1, Ordering::AcqRel) == 0 {
                    let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpListener;

    /// Two ends of a loopback connection.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr")).await.expect("connect");
        let (b, _) = l.accept().await.expect("accept");
        (a, b)
    }

    async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await.expect("read");
        buf
    }

    /// Bytes that come after a short read still move, an end of stream that
    /// arrives with the last bytes is still seen, and each side gets a FIN.
    #[tokio::test]
    async fn the_tcp_relay_moves_late_bytes_and_an_end_behind_bytes() {
        let (mut client, near) = pair().await;
        let (far, mut server) = pair().await;
        let activity = AtomicU64::new(0);
        let (bytes_up, bytes_down) = (AtomicU64::new(0), AtomicU64::new(0));
        let ended = AtomicU8::new(0);
        let started = Instant::now();
        let tally = |bytes| Tally {
            activity: &activity,
            started,
            bytes,
        };
        let relay = async {
            let up = tcp(&near, &far, tally(&bytes_up), &ended);
            let down = tcp(&far, &near, tally(&bytes_down), &ended);
            tokio::try_join!(up, down)
        };
        let peers = async {
            client.write_all(b"one").await.expect("send");
            assert_eq!(read_n(&mut server, 3).await, b"one");
            // The relay's last read was short: the next bytes come later.
            tokio::time::sleep(Duration::from_millis(30)).await;
            client.write_all(b"two").await.expect("send");
            assert_eq!(read_n(&mut server, 3).await, b"two");
            server.write_all(b"back").await.expect("send");
            assert_eq!(read_n(&mut client, 4).await, b"back");
            // Bytes and the end of stream in one go.
            client.write_all(b"last").await.expect("send");
            client.shutdown().await.expect("shutdown");
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.expect("server reads to the end");
            assert_eq!(rest, b"last");
            // Half-closed: the other way still flows, then ends too.
            server.write_all(b"bye").await.expect("send");
            server.shutdown().await.expect("shutdown");
        };
        let (moved, ()) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(relay, peers) })
            .await
            .expect("the relay finished");
        moved.expect("relayed");
        // The relay has ended; its sockets close as a session's do.
        drop((near, far));
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("the client sees its end of stream")
            .expect("client reads to the end");
        assert_eq!(rest, b"bye");
        assert_eq!(ended.load(Ordering::Acquire), 2);
        assert_eq!(bytes_up.load(Ordering::Relaxed), 10);
        assert_eq!(bytes_down.load(Ordering::Relaxed), 7);
    }
}
