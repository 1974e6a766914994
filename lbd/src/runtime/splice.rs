//! Zero-copy relay with splice(2): socket → pipe → socket, the bytes never
//! entering user space. Used when a proxy sets `option splice-auto`,
//! `splice-request` or `splice-response`, as in HAProxy. The pipe is created at
//! the first readable event, so an idle session holds no pipe.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes moved per splice call (the default pipe holds 64 KiB).
const CHUNK: usize = 64 * 1024;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// Moves bytes from `src` to `dst` until EOF, then half-closes `dst`.
pub async fn relay(src: &TcpStream, dst: &TcpStream, activity: &AtomicU64, started: Instant, count: &AtomicU64) -> io::Result<()> {
    let mut pipe_fds: Option<(OwnedFd, OwnedFd)> = None;
    let mut in_pipe = 0usize;
    loop {
        if in_pipe == 0 {
            src.readable().await?;
            if pipe_fds.is_none() {
                pipe_fds = Some(pipe()?);
            }
            let Some((_, w)) = pipe_fds.as_ref() else { continue };
            match src.try_io(Interest::READABLE, || {
                splice(src.as_fd(), None, w.as_fd(), None, CHUNK, flags()).map_err(io::Error::from)
            }) {
                Ok(0) => {
                    let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                    return Ok(());
                }
                Ok(n) => in_pipe = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        while in_pipe > 0 {
            dst.writable().await?;
            let Some((r, _)) = pipe_fds.as_ref() else { break };
            match dst.try_io(Interest::WRITABLE, || {
                splice(r.as_fd(), None, dst.as_fd(), None, in_pipe, flags()).map_err(io::Error::from)
            }) {
                Ok(n) => {
                    in_pipe -= n;
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    activity.store(started.elapsed().as_millis() as u64, Ordering::Release);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
