//! Descriptors the kernel runs (pipes, files, sockets the simulation does not emulate): whether
//! a blocking read or write on one would block, so the task waits in simulated time instead,
//! and the readiness edges their reads and writes make for the host's waiters.

use crate::cx::{Answer, Cx};
use crate::host::BlockKind;
use crate::mem;
use crate::seccomp::Notif;
use std::os::fd::AsRawFd;

/// A read or write on a descriptor the supervisor does not emulate. Regular files and anything
/// ready, or non-blocking, run in the kernel at once; a blocking pipe, socket or terminal that is
/// not ready would stop the task inside the kernel, where the supervisor cannot see it wake, so
/// the task waits here instead and is retried when other tasks of the host have run.
pub(super) fn native_io(cx: &Cx, vid: u32, fd: i32, events: i16) -> Answer {
    native_access(cx, vid, fd, events).0
}

/// [`native_io`] for a read, and whether the read can wake writers: any read but that of a
/// regular file or of a pipe that is not full (Linux's `pipe_read` wakes writers only if the pipe
/// was full).
fn native_read(cx: &Cx, vid: u32, fd: i32) -> (Answer, bool) {
    native_access(cx, vid, fd, libc::POLLIN)
}

/// [`native_io`], and for a read (`POLLIN`) whether it can wake writers.
fn native_access(cx: &Cx, vid: u32, fd: i32, events: i16) -> (Answer, bool) {
    let t = &cx.host.tasks[&vid];
    // SAFETY: pidfd_getfd of a stopped task's descriptor; the copy is closed below.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, t.pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return (Answer::Continue, false); // EBADF and friends: the kernel gives the right error
    }
    let copy = copy as i32;
    // SAFETY: fstat, fcntl and poll on our copy, then close it.
    let (ready, wakes_writers) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let kind = if libc::fstat(copy, &mut st) == 0 { st.st_mode & libc::S_IFMT } else { 0 };
        let nonblock = libc::fcntl(copy, libc::F_GETFL) & libc::O_NONBLOCK != 0;
        let mut p = libc::pollfd { fd: copy, events, revents: 0 };
        let ready = kind == libc::S_IFREG || nonblock || (libc::poll(&mut p, 1, 0) == 1 && p.revents != 0);
        let wakes =
            events == libc::POLLIN && ready && kind != libc::S_IFREG && (kind != libc::S_IFIFO || pipe_full(copy));
        libc::close(copy);
        (ready, wakes)
    };
    let answer = if ready { Answer::Continue } else { Answer::Block(BlockKind::Io { since: 0 }, None) };
    (answer, wakes_writers)
}

/// Whether the pipe whose read end is `copy` (the supervisor's copy) is full, as Linux counts it
/// (in buffers, not bytes): seen through a write end of the same pipe opened through
/// `/proc/self/fd` without blocking, whose `POLLOUT` is the kernel's own answer. Only asked while
/// the pipe has a writer (so the extra writer wakes nobody when it closes); a pipe that cannot be
/// reopened counts as full (a spurious edge rather than a lost one).
fn pipe_full(copy: i32) -> bool {
    let mut p = libc::pollfd { fd: copy, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll with a zero timeout on our copy.
    unsafe { libc::poll(&mut p, 1, 0) };
    if p.revents & libc::POLLHUP != 0 {
        return false; // no writer to wake
    }
    let path = std::ffi::CString::new(format!("/proc/self/fd/{copy}")).unwrap_or_default();
    // SAFETY: opening a path we built; the descriptor is closed below.
    let w = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if w < 0 {
        return true;
    }
    let mut p = libc::pollfd { fd: w, events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll with a zero timeout on our own descriptor, then close it.
    unsafe {
        libc::poll(&mut p, 1, 0);
        libc::close(w);
    }
    p.revents & libc::POLLOUT == 0
}

/// A write on a descriptor the supervisor does not emulate. A write to a regular file is checked
/// against the host's disk quota ([`crate::disk`]). A blocking write to a pipe with less room
/// than the data would stop the task in the kernel until a reader makes room; instead the
/// supervisor writes what fits (a short write, which callers loop on) or, with a full pipe,
/// blocks the task until a reader has run.
#[allow(non_upper_case_globals)]
pub(super) fn native_write(cx: &mut Cx, vid: u32, n: &Notif) -> Answer {
    use libc::*;
    let t = &cx.host.tasks[&vid];
    // SAFETY: pidfd_getfd of a stopped task's descriptor; closed below.
    let copy = unsafe { syscall(SYS_pidfd_getfd, t.pidfd.as_raw_fd(), n.data.args[0] as i32, 0) };
    if copy < 0 {
        return Answer::Continue; // EBADF and friends: the kernel gives the right error
    }
    let copy = copy as i32;
    // SAFETY: fstat and fcntl on our copy.
    let (st, nonblock) = unsafe {
        let mut st: stat = std::mem::zeroed();
        let ok = fstat(copy, &mut st) == 0;
        (ok.then_some(st), fcntl(copy, F_GETFL) & O_NONBLOCK != 0)
    };
    let kind = st.map_or(0, |s| s.st_mode & S_IFMT);
    let answer = match st {
        Some(s) if kind == S_IFREG => {
            let now = cx.host.now;
            cx.host.stamps.written((s.st_dev, s.st_ino), now);
            let answer = super::disk::file_write(cx, vid, n, copy, &s);
            if cx.host.logs.is_tapped((s.st_dev, s.st_ino)) {
                tap_write(cx, vid, n, &answer, (s.st_dev, s.st_ino));
            }
            answer
        }
        Some(_) if kind == S_IFIFO && !nonblock && matches!(n.data.nr as i64, SYS_write | SYS_writev) => {
            pipe_write(cx, vid, n, copy)
        }
        _ => {
            let mut p = pollfd { fd: copy, events: POLLOUT, revents: 0 };
            // SAFETY: poll with a zero timeout on our copy.
            let ready = nonblock || (unsafe { poll(&mut p, 1, 0) } == 1 && p.revents != 0);
            if ready { Answer::Continue } else { Answer::Block(BlockKind::Io { since: 0 }, None) }
        }
    };
    // SAFETY: closing our copy.
    unsafe { close(copy) };
    answer
}

/// A write of task `vid` to a process's stdout or stderr file `id`, answered `answer`: the bytes
/// it puts in the file go to the host's lines ([`crate::logs`]).
fn tap_write(cx: &mut Cx, vid: u32, n: &Notif, answer: &Answer, id: (u64, u64)) {
    let pid = cx.host.tasks[&vid].pid;
    let Ok(bufs) = mem::call_buffers(pid, n.data.nr as i64, &n.data.args) else { return };
    let mut left = match answer {
        Answer::Continue => bufs.iter().map(|b| b.1).sum(),
        Answer::Value(w) => (*w).max(0) as usize,
        _ => 0,
    };
    let mut bytes = Vec::with_capacity(left);
    for &(addr, len) in &bufs {
        let take = len.min(left);
        if take == 0 {
            break;
        }
        match mem::read(pid, addr, take) {
            Ok(d) => bytes.extend_from_slice(&d),
            Err(_) => break,
        }
        left -= take;
    }
    let now = cx.host.now;
    cx.host.logs.written(id, &bytes, now);
}

/// A blocking `write` or `writev` to a pipe (`copy`: the supervisor's copy of it): run in the
/// kernel if it fits, performed here up to the room if it does not, blocked if the pipe is full.
#[allow(non_upper_case_globals)]
fn pipe_write(cx: &Cx, vid: u32, n: &Notif, copy: i32) -> Answer {
    use libc::*;
    let (a, pid) = (n.data.args, cx.host.tasks[&vid].pid);
    // SAFETY: poll, fcntl, ioctl and write on our copy.
    unsafe {
        let mut p = pollfd { fd: copy, events: POLLOUT, revents: 0 };
        poll(&mut p, 1, 0);
        if p.revents & (POLLERR | POLLHUP) != 0 {
            return Answer::Continue; // no reader: the kernel raises SIGPIPE / EPIPE
        }
        let cap = fcntl(copy, F_GETPIPE_SZ).max(0) as usize;
        let mut queued: c_int = 0;
        ioctl(copy, FIONREAD, &mut queued);
        let free = cap.saturating_sub(queued.max(0) as usize);
        let bufs = match mem::call_buffers(pid, n.data.nr as i64, &a) {
            Ok(v) => v,
            Err(err) => return Answer::Errno(err),
        };
        let total: usize = bufs.iter().map(|b| b.1).sum();
        if total <= free {
            return Answer::Continue;
        }
        if free == 0 {
            return Answer::Block(BlockKind::Io { since: 0 }, None);
        }
        let mut data = Vec::with_capacity(free);
        for (base, len) in bufs {
            let take = len.min(free - data.len());
            match mem::read(pid, base, take) {
                Ok(d) => data.extend_from_slice(&d),
                Err(_) => return Answer::Errno(EFAULT),
            }
            if data.len() == free {
                break;
            }
        }
        let w = write(copy, data.as_ptr() as *const c_void, data.len());
        if w < 0 { Answer::Errno(*__errno_location()) } else { Answer::Value(w as i64) }
    }
}

/// Readiness of a descriptor the supervisor does not emulate: poll a copy of it, taken with
/// `pidfd_getfd`, without waiting. `None` if the task has no such descriptor.
pub(super) fn native_ready(pidfd: i32, fd: i32, events: i16) -> Option<i16> {
    // SAFETY: pidfd_getfd of a stopped task's descriptor; the copy is closed below.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if copy < 0 {
        return None;
    }
    let mut p = libc::pollfd { fd: copy as i32, events, revents: 0 };
    // SAFETY: poll with a zero timeout on our copy, then close it.
    unsafe {
        libc::poll(&mut p, 1, 0);
        libc::close(copy as i32);
    }
    Some(p.revents)
}

/// Whether a vectored read or write (`readv`, `preadv`, `writev`, …; arguments `a`) has an
/// iovec array the kernel refuses before anything else (see [`mem::read_iovecs`]): such a call
/// on a native descriptor must not wait for readiness first.
#[allow(non_upper_case_globals)]
pub(super) fn bad_iovecs(nr: i64, pid: i32, a: [u64; 6]) -> bool {
    use libc::{SYS_preadv, SYS_preadv2, SYS_pwritev, SYS_pwritev2, SYS_readv, SYS_writev};
    matches!(nr, SYS_readv | SYS_preadv | SYS_preadv2 | SYS_writev | SYS_pwritev | SYS_pwritev2)
        && mem::read_iovecs(pid, a[1], a[2] as usize).is_err()
}

/// A native write the kernel is about to perform (`Continue`) or the supervisor performed (a
/// short pipe write): a new edge for the readers of pipes, sockets and eventfds of the host.
pub(super) fn counted_write(cx: &mut Cx, answer: Answer) -> Answer {
    if matches!(answer, Answer::Continue | Answer::Value(1..)) {
        cx.host.native_edges.readable += 1;
        // A write to a socket or pipe with `O_ASYNC` sends SIGIO to the reader's owner.
        cx.host.signal_hint |= cx.host.async_io;
    }
    answer
}

/// A native read (or receive, or accept) of descriptor `fd` of task `vid` (`-1`: one that does
/// not wait, not looked at): run in the kernel at once if it can, and a new edge for the host's
/// writers when it can make room for one (see [`crate::host::NativeEdges`]).
pub(super) fn counted_read(cx: &mut Cx, vid: u32, fd: i32) -> Answer {
    let (answer, wakes_writers) = if fd < 0 { (Answer::Continue, true) } else { native_read(cx, vid, fd) };
    if wakes_writers && matches!(answer, Answer::Continue) {
        cx.host.native_edges.writable += 1;
        cx.host.signal_hint |= cx.host.async_io; // as a write: SIGIO to the other end's owner
    }
    answer
}
