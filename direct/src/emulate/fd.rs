//! Descriptors: open, read/write (emulated objects and native pipes, sockets and files), close,
//! dup, fcntl and ioctl.

use super::poll::forget_in_epolls;
use super::random::fill_random;
use super::socket::{gather, udp_recv, udp_send};
use super::{Call, errno, fd_entry};
use crate::engine::{Answer, DirectEngine};
use crate::host::{BlockKind, FdEntry, Obj};
use crate::seccomp::Notif;
use crate::{mem, tcp};
use std::os::fd::AsRawFd;

/// `open`.
#[allow(non_upper_case_globals)]
pub(super) fn open(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, nr, a, .. } = *c;
    use libc::*;
    let (path_addr, flags) = match nr {
        SYS_open => (a[0], a[1]),
        SYS_openat => (a[1], a[2]),
        _ => (a[1], mem::read(pid, a[2], 8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))),
    };
    let Ok(path) = mem::read_cstr(pid, path_addr, 4096) else { return Answer::Continue };
    if path == b"/dev/urandom" || path == b"/dev/random" {
        let obj = e.hosts[h].add_obj(Obj::Random, flags & O_NONBLOCK as u64 != 0);
        Answer::AddFd { src: e.devnull.as_raw_fd(), cloexec: flags & O_CLOEXEC as u64 != 0, obj }
    } else if path == b"/etc/hosts" && flags & O_ACCMODE as u64 == O_RDONLY as u64 {
        match e.hosts_file.open() {
            Ok(file) => Answer::AddFile { file, cloexec: flags & O_CLOEXEC as u64 != 0 },
            Err(err) => Answer::Errno(err.raw_os_error().unwrap_or(EIO)),
        }
    } else if let Some(answer) = crate::threads::cpu_list_file(&path, flags & O_CLOEXEC as u64 != 0) {
        answer
    } else {
        if flags & O_TRUNC as u64 != 0 {
            e.hosts[h].disk.freed();
        }
        Answer::Continue
    }
}

/// `frees_disk`.
pub(super) fn frees_disk(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, .. } = *c;

    e.hosts[h].disk.freed();
    Answer::Continue
}

/// `read`.
#[allow(non_upper_case_globals)]
pub(super) fn read(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, pid, nr, a, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
        None if bad_iovecs(nr, pid, a) => Answer::Continue, // the kernel refuses it at once
        None => counted_read(e, h, vid, a[0] as i32),
        Some(f) => {
            let bufs = match mem::call_buffers(pid, nr, &a) {
                Ok(v) => v,
                Err(err) => return Answer::Errno(err),
            };
            match &e.hosts[h].objs[f.obj] {
                Some(s) if matches!(s.obj, Obj::Random) => errno(fill_random(&mut e.hosts[h], vid, pid, &bufs)),
                Some(s) if matches!(s.obj, Obj::TimerFd(_)) => errno(crate::timerfd::read(e, h, pid, f.obj, &bufs)),
                Some(s) if matches!(s.obj, Obj::Netlink(_)) => errno(crate::netlink::read(e, h, pid, f.obj, &bufs)),
                Some(s) if matches!(s.obj, Obj::Epoll(_)) => Answer::Errno(EINVAL),
                _ if matches!(nr, SYS_pread64 | SYS_preadv | SYS_preadv2) => Answer::Errno(ESPIPE),
                Some(s) if matches!(s.obj, Obj::Tcp(_)) => errno(tcp::recv(e, h, vid, f.obj, 0, &bufs, None)),
                _ => errno(udp_recv(e, h, vid, f.obj, 0, &bufs, None)),
            }
        }
    }
}

/// `write`.
#[allow(non_upper_case_globals)]
pub(super) fn write(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, pid, nr, a, n, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
        None if bad_iovecs(nr, pid, a) => Answer::Continue, // the kernel refuses it at once
        None => {
            let answer = native_write(e, h, vid, n);
            counted_write(e, h, answer)
        }
        Some(f) => {
            let bufs = match mem::call_buffers(pid, nr, &a) {
                Ok(v) => v,
                Err(err) => return Answer::Errno(err),
            };
            let total: usize = bufs.iter().map(|b| b.1).sum();
            match &e.hosts[h].objs[f.obj] {
                Some(s) if matches!(s.obj, Obj::Random) => Answer::Value(total as i64),
                Some(s) if matches!(s.obj, Obj::TimerFd(_)) => Answer::Errno(EINVAL),
                Some(s) if matches!(s.obj, Obj::Netlink(_)) => errno(crate::netlink::request(e, h, pid, f.obj, &bufs)),
                Some(s) if matches!(s.obj, Obj::Epoll(_)) => Answer::Errno(EINVAL),
                _ if matches!(nr, SYS_pwrite64 | SYS_pwritev | SYS_pwritev2) => Answer::Errno(ESPIPE),
                Some(s) if matches!(s.obj, Obj::Tcp(_)) => {
                    errno(tcp::send(e, h, vid, f.obj, 0, total, &mut |o, l| tcp::gather_range(pid, &bufs, o, l)))
                }
                _ => errno(gather(pid, &bufs).and_then(|data| udp_send(e, h, vid, n, f.obj, None, &data))),
            }
        }
    }
}

/// `close`.
pub(super) fn close(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, a, .. } = *c;

    let host = &mut e.hosts[h];
    if let Some(f) = host.fds_mut(vid).and_then(|fds| fds.remove(&(a[0] as i32))) {
        host.release(f.obj);
    } else {
        host.native_edges.both(); // a pipe's or socket's end may have closed
    }
    // A closed descriptor leaves the task's epoll interest lists (approximating the
    // kernel, which drops it when the last reference to the file goes).
    forget_in_epolls(host, vid, a[0] as i32);
    Answer::Continue
}

/// `close_range`.
pub(super) fn close_range(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, a, .. } = *c;

    let (first, last, flags) = (a[0] as u32 as i32, a[1] as u32, a[2]);
    let host = &mut e.hosts[h];
    let mut released = Vec::new();
    if let Some(fds) = host.fds_mut(vid) {
        let inside: Vec<i32> = fds.keys().copied().filter(|&fd| fd >= first && (fd as u32) <= last).collect();
        for fd in inside {
            if flags & 4 != 0 {
                // CLOSE_RANGE_CLOEXEC
                if let Some(f) = fds.get_mut(&fd) {
                    f.cloexec = true;
                }
            } else if let Some(f) = fds.remove(&fd) {
                released.push(f.obj);
            }
        }
    }
    for o in released {
        host.release(o);
    }
    Answer::Continue
}

/// `dup`.
pub(super) fn dup(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, .. } = *c;

    match fd_entry(e, c) {
        None => Answer::Continue,
        Some(f) => dup_emulated(e, h, f.obj, false),
    }
}

/// `dup2`.
pub(super) fn dup2(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, nr, a, .. } = *c;
    use libc::*;
    let (old, new) = (a[0] as i32, a[1] as i32);
    let cloexec = nr == SYS_dup3 && a[2] & O_CLOEXEC as u64 != 0;
    if old == new {
        return Answer::Continue;
    }
    let host = &mut e.hosts[h];
    let src = host.fds(vid).get(&old).copied();
    if let Some(f) = src {
        host.retain(f.obj);
    }
    let replaced = host.fds_mut(vid).and_then(|fds| match src {
        Some(f) => fds.insert(new, FdEntry { obj: f.obj, cloexec }),
        None => fds.remove(&new),
    });
    if let Some(r) = replaced {
        host.release(r.obj);
    }
    Answer::Continue
}

/// `fcntl`.
pub(super) fn fcntl(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, a, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
        None => Answer::Continue,
        Some(f) => match a[1] as i32 {
            F_DUPFD => dup_emulated(e, h, f.obj, false),
            F_DUPFD_CLOEXEC => dup_emulated(e, h, f.obj, true),
            F_GETFD => Answer::Value(i64::from(f.cloexec)),
            F_SETFD => {
                if let Some(x) = e.hosts[h].fds_mut(vid).and_then(|fds| fds.get_mut(&(a[0] as i32))) {
                    x.cloexec = a[2] & FD_CLOEXEC as u64 != 0;
                }
                Answer::Continue
            }
            F_GETFL => {
                let nb = e.hosts[h].objs[f.obj].as_ref().is_some_and(|s| s.nonblock);
                Answer::Value((O_RDWR | if nb { O_NONBLOCK } else { 0 }) as i64)
            }
            F_SETFL => {
                if let Some(Some(s)) = e.hosts[h].objs.get_mut(f.obj) {
                    s.nonblock = a[2] & O_NONBLOCK as u64 != 0;
                }
                Answer::Value(0)
            }
            _ => Answer::Continue,
        },
    }
}

/// `ioctl`.
pub(super) fn ioctl(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, a, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
        None => Answer::Continue,
        Some(f) => errno((|| match a[1] {
            FIONBIO => {
                let b = mem::read(pid, a[2], 4).map_err(|_| EFAULT)?;
                if let Some(Some(s)) = e.hosts[h].objs.get_mut(f.obj) {
                    s.nonblock = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) != 0;
                }
                Ok(Answer::Value(0))
            }
            _ if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::Tcp(_))) => {
                let n = tcp::ioctl(&mut e.hosts[h], f.obj, a[1]).ok_or(ENOTTY)?;
                mem::write(pid, a[2], &n.to_ne_bytes()).map_err(|_| EFAULT)?;
                Ok(Answer::Value(0))
            }
            FIONREAD => {
                let n = match &e.hosts[h].objs[f.obj] {
                    Some(s) => match &s.obj {
                        Obj::Udp(u) => u.queue.front().map_or(0, |d| d.data.len()),
                        Obj::Random | Obj::Epoll(_) | Obj::Tcp(_) | Obj::TimerFd(_) | Obj::Netlink(_) => 0,
                    },
                    None => 0,
                };
                mem::write(pid, a[2], &(n as i32).to_ne_bytes()).map_err(|_| EFAULT)?;
                Ok(Answer::Value(0))
            }
            _ => Err(ENOTTY),
        })()),
    }
}

pub(super) fn dup_emulated(e: &mut DirectEngine, h: usize, obj: usize, cloexec: bool) -> Answer {
    let src = match e.hosts[h].objs[obj].as_ref().map(|s| &s.obj) {
        Some(Obj::Udp(_)) => e.udp_placeholder.as_raw_fd(),
        Some(Obj::Tcp(_)) => e.tcp_placeholder_fd(),
        _ => e.devnull.as_raw_fd(),
    };
    e.hosts[h].retain(obj);
    Answer::AddFd { src, cloexec, obj }
}

/// A read or write on a descriptor the supervisor does not emulate. Regular files and anything
/// ready, or non-blocking, run in the kernel at once; a blocking pipe, socket or terminal that is
/// not ready would stop the task inside the kernel, where the supervisor cannot see it wake, so
/// the task waits here instead and is retried when other tasks of the host have run.
pub(super) fn native_io(e: &DirectEngine, h: usize, vid: u32, fd: i32, events: i16) -> Answer {
    native_access(e, h, vid, fd, events).0
}

/// [`native_io`] for a read, and whether the read can wake writers: any read but that of a
/// regular file or of a pipe that is not full (Linux's `pipe_read` wakes writers only if the pipe
/// was full).
pub(super) fn native_read(e: &DirectEngine, h: usize, vid: u32, fd: i32) -> (Answer, bool) {
    native_access(e, h, vid, fd, libc::POLLIN)
}

/// [`native_io`], and for a read (`POLLIN`) whether it can wake writers.
pub(super) fn native_access(e: &DirectEngine, h: usize, vid: u32, fd: i32, events: i16) -> (Answer, bool) {
    let t = &e.hosts[h].tasks[&vid];
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
pub(super) fn pipe_full(copy: i32) -> bool {
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
pub(super) fn native_write(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif) -> Answer {
    use libc::*;
    let t = &e.hosts[h].tasks[&vid];
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
            let now = e.now(h);
            e.hosts[h].stamps.written((s.st_dev, s.st_ino), now);
            crate::disk::file_write(e, h, vid, n, copy, &s)
        }
        Some(_) if kind == S_IFIFO && !nonblock && matches!(n.data.nr as i64, SYS_write | SYS_writev) => {
            pipe_write(e, h, vid, n, copy)
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

/// A blocking `write` or `writev` to a pipe (`copy`: the supervisor's copy of it): run in the
/// kernel if it fits, performed here up to the room if it does not, blocked if the pipe is full.
#[allow(non_upper_case_globals)]
pub(super) fn pipe_write(e: &DirectEngine, h: usize, vid: u32, n: &Notif, copy: i32) -> Answer {
    use libc::*;
    let (a, pid) = (n.data.args, e.hosts[h].tasks[&vid].pid);
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
pub(super) fn counted_write(e: &mut DirectEngine, h: usize, answer: Answer) -> Answer {
    if matches!(answer, Answer::Continue | Answer::Value(1..)) {
        e.hosts[h].native_edges.readable += 1;
        e.hosts[h].signal_hint = true; // a write to a socket or pipe with `O_ASYNC` sends SIGIO
    }
    answer
}

/// A native read (or receive, or accept) of descriptor `fd` of task `vid` (`-1`: one that does
/// not wait, not looked at): run in the kernel at once if it can, and a new edge for the host's
/// writers when it can make room for one (see [`crate::host::NativeEdges`]).
pub(super) fn counted_read(e: &mut DirectEngine, h: usize, vid: u32, fd: i32) -> Answer {
    let (answer, wakes_writers) = if fd < 0 { (Answer::Continue, true) } else { native_read(e, h, vid, fd) };
    if wakes_writers && matches!(answer, Answer::Continue) {
        e.hosts[h].native_edges.writable += 1;
        e.hosts[h].signal_hint = true; // as a write: SIGIO to the other end's owner
    }
    answer
}

/// `ioctl` of a network interface (`SIOCGIF…`), answered from the host's address.
pub(super) fn interface_ioctl(e: &mut DirectEngine, c: &Call) -> Answer {
    errno(crate::netlink::interface_ioctl(e, c.h, c.pid, c.a[1], c.a[2]))
}
