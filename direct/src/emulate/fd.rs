//! Descriptors: open, read/write (emulated objects and native pipes, sockets and files), close,
//! dup, fcntl and ioctl.

use super::call::{Call, errno, fd_entry};
use super::native::*;
use super::poll::forget_in_epolls;
use super::random::fill_random;
use super::sockaddr::gather;
use super::socket::{udp_recv, udp_send};
use super::tcp;
use crate::cx::{Answer, Cx};
use crate::host::{FdEntry, Obj};
use crate::mem;
use std::os::fd::AsRawFd;

/// `open`.
#[allow(non_upper_case_globals)]
pub(super) fn open(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, nr, a, .. } = *c;
    use libc::*;
    let (path_addr, flags) = match nr {
        SYS_open => (a[0], a[1]),
        SYS_openat => (a[1], a[2]),
        _ => (a[1], mem::read(pid, a[2], 8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))),
    };
    let Ok(path) = mem::read_cstr(pid, path_addr, 4096) else { return Answer::Continue };
    if path == b"/dev/urandom" || path == b"/dev/random" {
        let obj = cx.host.add_obj(Obj::Random, flags & O_NONBLOCK as u64 != 0);
        Answer::AddFd { src: cx.shared.devnull.as_raw_fd(), cloexec: flags & O_CLOEXEC as u64 != 0, obj }
    } else if path == b"/etc/hosts" && flags & O_ACCMODE as u64 == O_RDONLY as u64 {
        match cx.shared.hosts_file.open() {
            Ok(file) => Answer::AddFile { file, cloexec: flags & O_CLOEXEC as u64 != 0 },
            Err(err) => Answer::Errno(err.raw_os_error().unwrap_or(EIO)),
        }
    } else if let Some(answer) =
        crate::threads::cpu_list_file(&path, flags & O_CLOEXEC as u64 != 0, crate::threads::cpus_of(cx.host, c.vid))
    {
        answer
    } else {
        if flags & O_TRUNC as u64 != 0 {
            cx.host.disk.freed();
        }
        Answer::Continue
    }
}

/// `frees_disk`.
pub(super) fn frees_disk(cx: &mut Cx, c: &Call) -> Answer {
    let Call { .. } = *c;

    cx.host.disk.freed();
    Answer::Continue
}

/// `read`.
#[allow(non_upper_case_globals)]
pub(super) fn read(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, pid, nr, a, .. } = *c;
    use libc::*;
    match fd_entry(cx, c) {
        None if bad_iovecs(nr, pid, a) => Answer::Continue, // the kernel refuses it at once
        None => counted_read(cx, vid, a[0] as i32),
        Some(f) => {
            let bufs = match mem::call_buffers(pid, nr, &a) {
                Ok(v) => v,
                Err(err) => return Answer::Errno(err),
            };
            match &cx.host.objs[f.obj] {
                Some(s) if matches!(s.obj, Obj::Random) => errno(fill_random(&mut *cx.host, vid, pid, &bufs)),
                Some(s) if matches!(s.obj, Obj::TimerFd(_)) => errno(super::timerfd::read(cx, pid, f.obj, &bufs)),
                Some(s) if matches!(s.obj, Obj::Netlink(_)) => errno(super::netlink::read(cx, pid, f.obj, &bufs)),
                Some(s) if matches!(s.obj, Obj::Epoll(_)) => Answer::Errno(EINVAL),
                _ if matches!(nr, SYS_pread64 | SYS_preadv | SYS_preadv2) => Answer::Errno(ESPIPE),
                Some(s) if matches!(s.obj, Obj::Packet(_)) => {
                    errno(super::packet::receive(cx, vid, f.obj, 0, &bufs, super::packet::Name::Nowhere))
                }
                Some(s) if matches!(s.obj, Obj::Tcp(_)) => errno(tcp::recv(cx, vid, f.obj, 0, &bufs, None)),
                _ => errno(udp_recv(cx, vid, f.obj, 0, &bufs, None)),
            }
        }
    }
}

/// `write`.
#[allow(non_upper_case_globals)]
pub(super) fn write(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, pid, nr, a, n, .. } = *c;
    use libc::*;
    match fd_entry(cx, c) {
        None if bad_iovecs(nr, pid, a) => Answer::Continue, // the kernel refuses it at once
        None => {
            let answer = native_write(cx, vid, n);
            counted_write(cx, answer)
        }
        Some(f) => {
            let bufs = match mem::call_buffers(pid, nr, &a) {
                Ok(v) => v,
                Err(err) => return Answer::Errno(err),
            };
            let total: usize = bufs.iter().map(|b| b.1).sum();
            match &cx.host.objs[f.obj] {
                Some(s) if matches!(s.obj, Obj::Random) => Answer::Value(total as i64),
                Some(s) if matches!(s.obj, Obj::TimerFd(_)) => Answer::Errno(EINVAL),
                Some(s) if matches!(s.obj, Obj::Netlink(_)) => errno(super::netlink::request(cx, pid, f.obj, &bufs)),
                Some(s) if matches!(s.obj, Obj::Epoll(_)) => Answer::Errno(EINVAL),
                _ if matches!(nr, SYS_pwrite64 | SYS_pwritev | SYS_pwritev2) => Answer::Errno(ESPIPE),
                Some(s) if matches!(s.obj, Obj::Packet(_)) => {
                    cx.host.unsupported(vid, nr, " (on a packet socket: only receiving is emulated)", EOPNOTSUPP);
                    Answer::Errno(EOPNOTSUPP)
                }
                Some(s) if matches!(s.obj, Obj::Tcp(_)) => {
                    errno(tcp::send(cx, vid, f.obj, 0, total, &mut |o, l| tcp::gather_range(pid, &bufs, o, l)))
                }
                _ => errno(gather(pid, &bufs).and_then(|data| udp_send(cx, vid, n, f.obj, None, &data))),
            }
        }
    }
}

/// `close`.
pub(super) fn close(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;

    let host = &mut *cx.host;
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
pub(super) fn close_range(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;

    let (first, last, flags) = (a[0] as u32 as i32, a[1] as u32, a[2]);
    let host = &mut *cx.host;
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
pub(super) fn dup(cx: &mut Cx, c: &Call) -> Answer {
    let Call { .. } = *c;

    match fd_entry(cx, c) {
        None => Answer::Continue,
        Some(f) => dup_emulated(cx, f.obj, false),
    }
}

/// `dup2`.
pub(super) fn dup2(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, nr, a, .. } = *c;
    use libc::*;
    let (old, new) = (a[0] as i32, a[1] as i32);
    let cloexec = nr == SYS_dup3 && a[2] & O_CLOEXEC as u64 != 0;
    if old == new {
        return Answer::Continue;
    }
    let host = &mut *cx.host;
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
pub(super) fn fcntl(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;
    use libc::*;
    match fd_entry(cx, c) {
        None => Answer::Continue,
        Some(f) => match a[1] as i32 {
            F_DUPFD => dup_emulated(cx, f.obj, false),
            F_DUPFD_CLOEXEC => dup_emulated(cx, f.obj, true),
            F_GETFD => Answer::Value(i64::from(f.cloexec)),
            F_SETFD => {
                if let Some(x) = cx.host.fds_mut(vid).and_then(|fds| fds.get_mut(&(a[0] as i32))) {
                    x.cloexec = a[2] & FD_CLOEXEC as u64 != 0;
                }
                Answer::Continue
            }
            F_GETFL => {
                let nb = cx.host.objs[f.obj].as_ref().is_some_and(|s| s.nonblock);
                Answer::Value((O_RDWR | if nb { O_NONBLOCK } else { 0 }) as i64)
            }
            F_SETFL => {
                if let Some(Some(s)) = cx.host.objs.get_mut(f.obj) {
                    s.nonblock = a[2] & O_NONBLOCK as u64 != 0;
                }
                Answer::Value(0)
            }
            _ => Answer::Continue,
        },
    }
}

/// `ioctl`.
pub(super) fn ioctl(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    match fd_entry(cx, c) {
        None => Answer::Continue,
        Some(f) => errno((|| match a[1] {
            FIONBIO => {
                let b = mem::read(pid, a[2], 4).map_err(|_| EFAULT)?;
                if let Some(Some(s)) = cx.host.objs.get_mut(f.obj) {
                    s.nonblock = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) != 0;
                }
                Ok(Answer::Value(0))
            }
            _ if matches!(cx.host.objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::Tcp(_))) => {
                let n = tcp::ioctl(&mut *cx.host, f.obj, a[1]).ok_or(ENOTTY)?;
                mem::write(pid, a[2], &n.to_ne_bytes()).map_err(|_| EFAULT)?;
                Ok(Answer::Value(0))
            }
            FIONREAD => {
                let n = match &cx.host.objs[f.obj] {
                    Some(s) => match &s.obj {
                        &Obj::Udp(u) => cx.host.net.udp_ref(u).queue.front().map_or(0, |d| d.data.len()),
                        Obj::Packet(p) => p.queue.front().map_or(0, |c| c.frame.len()),
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

/// Duplicates emulated object `obj` into a new descriptor: a placeholder fd is installed in the
/// task so the number is the kernel's, and the new number names the same object.
pub(super) fn dup_emulated(cx: &mut Cx, obj: usize, cloexec: bool) -> Answer {
    let src = match cx.host.objs[obj].as_ref().map(|s| &s.obj) {
        Some(Obj::Udp(_)) => cx.shared.udp_placeholder.as_raw_fd(),
        Some(Obj::Tcp(_)) => cx.shared.tcp_placeholder_fd(),
        _ => cx.shared.devnull.as_raw_fd(),
    };
    cx.host.retain(obj);
    Answer::AddFd { src, cloexec, obj }
}

/// `ioctl` of a network interface (`SIOCGIF…`), answered from the host's address.
pub(super) fn interface_ioctl(cx: &mut Cx, c: &Call) -> Answer {
    errno(super::netlink::interface_ioctl(cx, c.pid, c.a[1], c.a[2]))
}
