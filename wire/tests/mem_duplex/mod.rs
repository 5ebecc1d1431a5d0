//! An in-memory duplex to run an async libp2p implementation (over `futures`' `AsyncRead` and
//! `AsyncWrite`) against one of our sans-IO state machines, on a single-threaded
//! `futures::executor::LocalPool`: the test moves bytes between the two by hand.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::{AsyncRead, AsyncWrite};

#[derive(Default)]
struct Shared {
    to_them: VecDeque<u8>,
    to_us: Vec<u8>,
    reader: Option<Waker>,
    closed_by_us: bool,
    closed_by_them: bool,
}

/// Their end of the pipe: an async byte stream.
pub struct Theirs(Rc<RefCell<Shared>>);

/// Our end of the pipe, used synchronously by the test.
pub struct Ours(Rc<RefCell<Shared>>);

/// A connected pair of ends.
pub fn pair() -> (Ours, Theirs) {
    let shared = Rc::new(RefCell::new(Shared::default()));
    (Ours(shared.clone()), Theirs(shared))
}

impl Ours {
    /// Queues bytes for them to read.
    pub fn push(&self, bytes: &[u8]) {
        let mut s = self.0.borrow_mut();
        s.to_them.extend(bytes);
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// Takes what they wrote since the last call.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.borrow_mut().to_us)
    }

    /// Ends our direction: they read end-of-file once the queued bytes are gone.
    #[allow(dead_code)]
    pub fn close(&self) {
        let mut s = self.0.borrow_mut();
        s.closed_by_us = true;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// Whether they closed their direction.
    #[allow(dead_code)]
    pub fn they_closed(&self) -> bool {
        self.0.borrow().closed_by_them
    }
}

impl AsyncRead for Theirs {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        if s.to_them.is_empty() {
            if s.closed_by_us {
                return Poll::Ready(Ok(0));
            }
            s.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(s.to_them.len());
        for (dst, src) in buf.iter_mut().zip(s.to_them.drain(..n)) {
            *dst = src;
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Theirs {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        if s.closed_by_them {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        s.to_us.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.borrow_mut().closed_by_them = true;
        Poll::Ready(Ok(()))
    }
}

/// Runs their future `fut` to completion on a `LocalPool`, calling `pump` (which moves bytes
/// between the pipe and our state machine and says whether anything moved) whenever their side
/// stalls. Panics if neither side can make progress.
pub fn run<T: 'static>(fut: impl Future<Output = T> + 'static, mut pump: impl FnMut() -> bool) -> T {
    let mut pool = LocalPool::new();
    let slot = Rc::new(RefCell::new(None));
    let out = slot.clone();
    pool.spawner().spawn_local(async move { *out.borrow_mut() = Some(fut.await) }).expect("spawn");
    loop {
        pool.run_until_stalled();
        let moved = pump();
        if let Some(v) = slot.borrow_mut().take() {
            return v;
        }
        assert!(moved, "stalled: neither side can make progress");
    }
}
