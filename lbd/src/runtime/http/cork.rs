//! Small writes to plain-TCP clients held until the worker thread's pass over
//! its ready tasks ends, then sent together.
//!
//! A worker reads the answers of many servers in one pass and hands each to
//! its client connection's task. Written at once, the answers would leave one
//! by one over the whole pass, and a client (a browser, a load generator)
//! would be woken for each. Held to the end of the pass (the runtime is about
//! to wait for events, or has polled [`PASS`] tasks), they leave in one burst,
//! as the answers of one turn of HAProxy's loop do.
//!
//! At most [`HOLD_MAX`] bytes are held per connection; a larger write goes out
//! at once, after what is held. When the end-of-pass send cannot take
//! everything (the client does not read), the rest stays with the connection,
//! whose task is woken to send it the usual way: through the event loop, which
//! waits for the socket to become writable.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

/// The most bytes held per connection.
pub const HOLD_MAX: usize = 16 * 1024;
/// Task polls after which what is held goes out though the pass goes on
/// (tokio's own interval between two looks at the sockets).
const PASS: u32 = 61;

/// What one connection holds. It lives on one worker thread; the lock is never
/// contended.
pub struct Slot {
    state: Mutex<State>,
}

struct State {
    fd: RawFd,
    buf: Vec<u8>,
    /// In this thread's list of connections to send at the end of the pass.
    listed: bool,
    /// The end-of-pass send could not take everything: the connection's own
    /// writes send the rest before anything new.
    blocked: bool,
    /// The socket is closing: `fd` is never used again.
    closed: bool,
    /// An error of the end-of-pass send, for the connection's next write.
    failed: Option<std::io::ErrorKind>,
    /// The connection's task, woken when the end-of-pass send blocks or fails.
    waker: Option<Waker>,
}

thread_local! {
    /// Whether this thread holds writes: the worker threads do.
    static ON: Cell<bool> = const { Cell::new(false) };
    static LISTED: RefCell<Vec<Arc<Slot>>> = const { RefCell::new(Vec::new()) };
    static POLLS: Cell<u32> = const { Cell::new(0) };
    /// Held answers went out during this pass before its end (a connection
    /// that closes sends what it holds at once).
    static SENT_EARLY: Cell<bool> = const { Cell::new(false) };
}

/// Makes the calling thread (a worker runtime's, whose hooks call [`flush`]
/// and [`after_poll`]) hold writes.
pub fn enable_here() {
    ON.with(|on| on.set(true));
}

/// A slot for a plain-TCP client socket served on this thread, when this
/// thread holds writes.
pub fn slot(fd: Option<RawFd>) -> Option<Arc<Slot>> {
    let fd = fd?;
    ON.with(Cell::get).then(|| {
        Arc::new(Slot {
            state: Mutex::new(State {
                fd,
                buf: Vec::new(),
                listed: false,
                blocked: false,
                closed: false,
                failed: None,
                waker: None,
            }),
        })
    })
}

/// One non-blocking `send` of `bytes` on `fd`, an open socket the caller owns
/// (a slot's `fd` is used only while the slot is not closed).
pub fn send_now(fd: RawFd, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `fd` is an open socket (see above), and `bytes` is valid for its length.
    let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The end of a pass: sends what every connection of this thread holds. True
/// when held answers went out in this pass, now or earlier (clients were woken).
pub fn flush() -> bool {
    let mut sent = SENT_EARLY.replace(false);
    POLLS.with(|p| p.set(0));
    let mut list = LISTED.with(|l| std::mem::take(&mut *l.borrow_mut()));
    for slot in &list {
        let mut st = slot.lock();
        st.listed = false;
        if st.closed || st.blocked || st.buf.is_empty() {
            continue;
        }
        match send_now(st.fd, &st.buf) {
            Ok(n) if n == st.buf.len() => {
                st.buf.clear();
                sent = true;
                continue;
            }
            Ok(n) => {
                sent |= n > 0;
                st.buf.drain(..n);
                st.blocked = true;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => st.blocked = true,
            Err(e) => {
                st.failed = Some(e.kind());
                st.buf.clear();
            }
        }
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
    // The list's allocation serves the next pass.
    list.clear();
    LISTED.with(|l| {
        let mut l = l.borrow_mut();
        if l.is_empty() {
            *l = list;
        }
    });
    sent
}

/// After each task poll on a worker: the pass ends when it has run long
/// enough. `Some` when it ended here, with [`flush`]'s answer.
pub fn after_poll() -> Option<bool> {
    let n = POLLS.with(|p| {
        let n = p.get().saturating_add(1);
        p.set(n);
        n
    });
    (n >= PASS).then(flush)
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `bufs` (with `swap`'s bytes, of the same length, in place of
    /// buffer `swap.0`) when they fit: `Some` with what the write returns.
    /// `None` when they must be written now, after [`Slot::drain`].
    pub fn hold(
        self: &Arc<Self>,
        cx: &Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
        swap: Option<(usize, &[u8])>,
    ) -> Option<std::io::Result<usize>> {
        let mut st = self.lock();
        if let Some(kind) = st.failed {
            return Some(Err(kind.into()));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if st.blocked || st.closed || total == 0 || st.buf.len() + total > HOLD_MAX {
            return None;
        }
        for b in super::parts(bufs, swap) {
            st.buf.extend_from_slice(b);
        }
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        if !st.listed {
            st.listed = true;
            drop(st);
            LISTED.with(|l| l.borrow_mut().push(Arc::clone(self)));
        }
        Some(Ok(total))
    }

    /// Sends what is held through `io`, the connection's own socket (waiting
    /// for it to become writable as any write does). With `all` false, only
    /// after an end-of-pass send that blocked; otherwise the end of the pass
    /// sends it. `moved` is set when some bytes went out (the client is
    /// reading: its slow-reader clock starts again).
    pub fn drain<W: AsyncWrite + Unpin>(&self, io: &mut W, cx: &mut Context<'_>, all: bool, moved: &mut bool) -> Poll<std::io::Result<()>> {
        let mut st = self.lock();
        if let Some(kind) = st.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if !all && !st.blocked {
            return Poll::Ready(Ok(()));
        }
        while !st.buf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, &st.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    st.buf.drain(..n);
                    *moved = true;
                    SENT_EARLY.set(true);
                }
                Poll::Ready(Err(e)) => {
                    st.buf.clear();
                    st.failed = Some(e.kind());
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    st.blocked = true;
                    return Poll::Pending;
                }
            }
        }
        st.blocked = false;
        Poll::Ready(Ok(()))
    }

    /// The socket is about to close: one last non-blocking try to send what is
    /// held, then the slot never touches it again.
    pub fn close(&self) {
        let mut st = self.lock();
        if !st.closed && st.failed.is_none() && !st.buf.is_empty() {
            let _ = send_now(st.fd, &st.buf);
        }
        st.closed = true;
        st.buf = Vec::new();
        st.waker = None;
    }
}
