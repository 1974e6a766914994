//! A client TCP connection that joins the event loop only once it has to wait.
//!
//! A short HTTP exchange often never waits: the request is already in the socket
//! when the connection is accepted, the response fits the send buffer, and the
//! client closes. Reading, writing and closing such a socket directly, as HAProxy
//! does, saves registering it with epoll and removing it again (two `epoll_ctl`
//! and tokio's bookkeeping per connection). The first read or write that would
//! block registers it, and from then on it is an ordinary tokio stream.

use std::io::{IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct LazyTcp(State);

enum State {
    /// Not registered; `drained` once a read came back short (the next one would block).
    Raw {
        sock: std::net::TcpStream,
        drained: bool,
    },
    Live(TcpStream),
    /// Registration failed: the socket is closed.
    Lost,
}

impl LazyTcp {
    /// `sock` must be non-blocking.
    pub fn new(sock: std::net::TcpStream) -> Self {
        LazyTcp(State::Raw { sock, drained: false })
    }

    /// The registered stream, registering it now if needed.
    fn live(&mut self) -> std::io::Result<&mut TcpStream> {
        if matches!(self.0, State::Raw { .. }) {
            if let State::Raw { sock, .. } = std::mem::replace(&mut self.0, State::Lost) {
                self.0 = State::Live(TcpStream::from_std(sock)?);
            }
        }
        match &mut self.0 {
            State::Live(s) => Ok(s),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotConnected)),
        }
    }

    /// A write: straight on the socket while it is not registered, through
    /// tokio once it is (or once the direct write would block).
    fn write_with(
        &mut self,
        raw: impl FnOnce(&mut std::net::TcpStream) -> std::io::Result<usize>,
        live: impl FnOnce(&mut TcpStream) -> Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if let State::Raw { sock, .. } = &mut self.0 {
            if let Some(r) = direct(raw(sock)) {
                return Poll::Ready(r);
            }
        }
        match self.live() {
            Ok(s) => live(s),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.0 {
            State::Raw { sock, .. } => Some(sock.as_fd()),
            State::Live(s) => Some(s.as_fd()),
            State::Lost => None,
        }
    }
}

/// The outcome of a direct system call: `None` when it would block.
fn direct<T>(r: std::io::Result<T>) -> Option<std::io::Result<T>> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        r => Some(r),
    }
}

fn recv(fd: RawFd, buf: &mut ReadBuf<'_>) -> std::io::Result<usize> {
    loop {
        // SAFETY: the kernel writes at most `unfilled.len()` bytes into memory
        // that `buf` owns; only the `n` bytes written are marked initialised.
        let n = unsafe {
            let unfilled = buf.unfilled_mut();
            libc::recv(fd, unfilled.as_mut_ptr().cast(), unfilled.len(), 0)
        };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: recv(2) just wrote these `n` bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            return Ok(n);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl AsyncRead for LazyTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let State::Raw {
            sock,
            drained: drained @ false,
        } = &mut this.0
        {
            let room = buf.remaining();
            match direct(recv(sock.as_raw_fd(), buf)) {
                Some(Ok(n)) => {
                    *drained = n < room;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => {}
            }
        }
        match this.live() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LazyTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.get_mut().write_with(|s| s.write(buf), |s| Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        self.get_mut()
            .write_with(|s| s.write_vectored(bufs), |s| Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().0 {
            State::Raw { sock, .. } => Poll::Ready(sock.shutdown(std::net::Shutdown::Write)),
            State::Live(s) => Pin::new(s).poll_shutdown(cx),
            State::Lost => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair over loopback: (lbd's side, unregistered; the peer's, blocking).
    fn pair() -> (LazyTcp, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (ours, _) = l.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (LazyTcp::new(ours), peer)
    }

    /// The peer sends `bytes` a little later, from another thread.
    fn send_later(mut peer: std::net::TcpStream, bytes: &'static [u8]) -> std::thread::JoinHandle<std::net::TcpStream> {
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            peer.write_all(bytes).expect("send");
            peer
        })
    }

    /// A read that must be woken by the event loop within a few seconds.
    async fn read_soon(s: &mut LazyTcp, buf: &mut [u8]) -> usize {
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read(buf))
            .await
            .expect("woken")
            .expect("read")
    }

    fn registered(s: &LazyTcp) -> bool {
        matches!(s.0, State::Live(_))
    }

    #[tokio::test]
    async fn an_exchange_that_never_waits_stays_off_the_event_loop() {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        // Give loopback a moment to deliver.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 64];
        let n = ours.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
        ours.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.expect("write");
        ours.shutdown().await.expect("shutdown");
        assert!(!registered(&ours));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut peer, &mut got).expect("peer reads");
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n");
    }

    #[tokio::test]
    async fn a_read_that_would_block_registers_and_wakes_when_data_comes() {
        let (mut ours, peer) = pair();
        let writer = send_later(peer, b"late");
        let mut buf = [0u8; 16];
        let n = read_soon(&mut ours, &mut buf).await;
        assert_eq!(&buf[..n], b"late");
        assert!(registered(&ours));
        drop(writer.join());
    }

    #[tokio::test]
    async fn a_short_read_means_the_next_one_waits_without_trying() {
        let (mut ours, mut peer) = pair();
        peer.write_all(b"one").expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 16];
        assert_eq!(ours.read(&mut buf).await.expect("read"), 3);
        assert!(!registered(&ours));
        let writer = send_later(peer, b"two");
        let n = read_soon(&mut ours, &mut buf).await;
        assert_eq!(&buf[..n], b"two");
        assert!(registered(&ours));
        drop(writer.join());
    }

    #[tokio::test]
    async fn a_write_into_a_full_buffer_registers_and_finishes_once_the_peer_reads() {
        let (mut ours, mut peer) = pair();
        let total = 8 * 1024 * 1024;
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let mut got = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            while got < total {
                match std::io::Read::read(&mut peer, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            got
        });
        let data = vec![7u8; total];
        tokio::time::timeout(std::time::Duration::from_secs(20), ours.write_all(&data))
            .await
            .expect("not stuck")
            .expect("write");
        assert!(registered(&ours));
        assert_eq!(reader.join().expect("reader"), total);
    }
}
