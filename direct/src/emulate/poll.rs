//! Readiness: `poll`, `select` and the emulated epoll. Handlers take only the host (and, to create
//! an epoll instance, the placeholder descriptor it hides behind).

use super::call::{Call, errno};
use super::native::native_ready;
use super::tcp;
use super::time::read_time;
use crate::cx::Answer;
use crate::host::{BlockKind, EpollInterest, Host, Obj, ObjSlot};
use crate::mem;
use std::os::fd::{AsRawFd, RawFd};

/// `poll`.
pub(super) fn poll(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, pid, nr, a, .. } = *c;
    use libc::*;
    let timeout = if nr == SYS_poll {
        let ms = a[2] as i32;
        if ms < 0 { None } else { Some(ms as u64 * 1_000_000) }
    } else if a[2] == 0 {
        None
    } else {
        match read_time(pid, a[2], false) {
            Ok(t) => Some(t),
            Err(x) => return Answer::Errno(x),
        }
    };
    errno(do_poll(host, vid, a[0], a[1] as usize, timeout))
}

/// `select`.
pub(super) fn select(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, pid, nr, a, .. } = *c;
    use libc::*;
    let timeout = if a[4] == 0 {
        None
    } else {
        match read_time(pid, a[4], nr == SYS_select) {
            Ok(t) => Some(t),
            Err(x) => return Answer::Errno(x),
        }
    };
    errno(do_select(host, vid, a[0] as usize, [a[1], a[2], a[3]], timeout))
}

/// `epoll_create`.
pub(super) fn epoll_create(host: &mut Host, devnull: RawFd, c: &Call) -> Answer {
    let Call { nr, a, .. } = *c;
    use libc::*;
    let cloexec = nr == SYS_epoll_create1 && a[0] & EPOLL_CLOEXEC as u64 != 0;
    let obj = host.add_obj(Obj::Epoll(Default::default()), false);
    Answer::AddFd { src: devnull, cloexec, obj }
}

/// `epoll_ctl`.
pub(super) fn epoll_ctl(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;

    errno(emu_epoll_ctl(host, vid, a[0] as i32, a[1] as i32, a[2] as i32, a[3]))
}

/// `epoll_wait`.
pub(super) fn epoll_wait(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, pid, nr, a, .. } = *c;
    use libc::*;
    let timeout = if nr == SYS_epoll_pwait2 {
        if a[3] == 0 {
            None
        } else {
            match read_time(pid, a[3], false) {
                Ok(t) => Some(t),
                Err(x) => return Answer::Errno(x),
            }
        }
    } else {
        let ms = a[3] as i32;
        if ms < 0 { None } else { Some(ms as u64 * 1_000_000) }
    };
    errno(emu_epoll_wait(host, vid, a[0] as i32, a[1], a[2] as i32, timeout))
}

/// The readiness-change count of descriptor `fd` of task `vid` for an epoll interest in
/// `events`, for edge-triggered epoll: for emulated sockets, their own count of arrivals and
/// state changes; for native descriptors, the host's [`crate::host::NativeEdges`].
pub(super) fn fd_gen(host: &Host, vid: u32, fd: i32, events: u32) -> u64 {
    match host.fds(vid).get(&fd) {
        Some(f) => match host.objs.get(f.obj).and_then(|s| s.as_ref()).map(|s| &s.obj) {
            Some(&Obj::Udp(u)) => host.net.udp_ref(u).arrivals,
            Some(&Obj::Tcp(t)) => host.net.tcp_ref(t).wakeups.watched(events),
            Some(Obj::TimerFd(t)) => t.changes,
            Some(Obj::Netlink(s)) => s.changes,
            Some(Obj::Packet(s)) => s.arrivals,
            _ => 0,
        },
        None => host.native_edges.watched(events),
    }
}

/// The kind of descriptor `fd` of task `vid`, for the wake-up counts (see [`crate::waits`]).
fn fd_kind(host: &Host, vid: u32, fd: i32) -> &'static str {
    match host.fds(vid).get(&fd) {
        Some(f) => match host.objs.get(f.obj).and_then(|s| s.as_ref()).map(|s| &s.obj) {
            Some(&Obj::Tcp(t)) if matches!(host.net.tcp_ref(t).phase, crate::tcp::Phase::Listening(_)) => {
                "tcp listener"
            }
            Some(Obj::Tcp(_)) => "tcp",
            Some(Obj::Udp(_)) => "udp",
            Some(Obj::TimerFd(_)) => "timerfd",
            Some(Obj::Netlink(_)) => "netlink",
            Some(Obj::Packet(_)) => "packet",
            Some(Obj::Random) => "random",
            Some(Obj::Epoll(_)) => "epoll",
            None => "closed",
        },
        None => {
            let pid = host.tasks[&vid].pid;
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok();
            crate::waits::native_kind(link.as_ref().and_then(|l| l.to_str()))
        }
    }
}

/// Note for the wake-up counts what a readiness call of task `vid` reports: `(fd, bits)`.
fn note_report(host: &mut Host, vid: u32, zero_timeout: bool, report: &[(i32, u32)]) {
    if host.waits.is_none() {
        return;
    }
    let events: Vec<(&'static str, u32)> = report.iter().map(|&(fd, m)| (fd_kind(host, vid, fd), m)).collect();
    crate::waits::WaitStats::note(&mut host.waits, zero_timeout, || events);
}

/// The `poll` revents of `fd` for thread `vid`: the asked-for `events` that hold now, plus errors and hang-up.
pub(super) fn fd_ready(host: &mut Host, vid: u32, fd: i32, events: i16) -> i16 {
    let t = &host.tasks[&vid];
    let want = events | libc::POLLERR | libc::POLLHUP; // as the kernel: asked-for bits and errors
    if let Some(f) = host.fds(vid).get(&fd)
        && let Some(Some(ObjSlot { obj: Obj::Tcp(_), .. })) = host.objs.get(f.obj)
    {
        let obj = f.obj;
        return tcp::ready(host, obj) & want;
    }
    match host.fds(vid).get(&fd) {
        Some(f) => match host.objs.get(f.obj).and_then(|s| s.as_ref()).map(|s| &s.obj) {
            Some(Obj::Random) => (libc::POLLIN | libc::POLLOUT) & want,
            Some(Obj::TimerFd(t)) => {
                if t.readable() {
                    (libc::POLLIN | libc::POLLRDNORM) & want
                } else {
                    0
                }
            }
            Some(Obj::Netlink(s)) => {
                let r = if s.readable() { libc::POLLIN | libc::POLLRDNORM | libc::POLLOUT } else { libc::POLLOUT };
                r & want
            }
            Some(Obj::Packet(s)) => {
                // Writable as Linux's datagram_poll says, though sends are refused.
                let mut r = libc::POLLOUT | libc::POLLWRNORM;
                if !s.queue.is_empty() {
                    r |= libc::POLLIN | libc::POLLRDNORM;
                }
                r & want
            }
            Some(Obj::Epoll(_)) | Some(Obj::Tcp(_)) => 0, // nested epoll sets are never reported ready
            Some(&Obj::Udp(u)) => {
                let u = host.net.udp_ref(u);
                let mut r = libc::POLLOUT;
                if !u.queue.is_empty() || u.shut_rd {
                    r |= libc::POLLIN | libc::POLLRDNORM;
                }
                r & want
            }
            None => libc::POLLNVAL,
        },
        None => native_ready(t.pidfd.as_raw_fd(), fd, events).unwrap_or(libc::POLLNVAL),
    }
}

/// `poll`/`ppoll` over the task's `pollfd` array at `addr`: answers with the ready count, or blocks until
/// something is ready or `timeout` (ns) passes.
pub(super) fn do_poll(host: &mut Host, vid: u32, addr: u64, nfds: usize, timeout: Option<u64>) -> Result<Answer, i32> {
    if nfds > 65536 {
        return Err(libc::EINVAL);
    }
    let (pid, timed_out) = {
        let t = &host.tasks[&vid];
        (t.pid, t.timed_out)
    };
    let mut raw = mem::read(pid, addr, nfds * 8).map_err(|_| libc::EFAULT)?;
    let mut ready = 0;
    let mut report = Vec::new();
    for c in raw.chunks_exact_mut(8) {
        let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        let events = i16::from_ne_bytes([c[4], c[5]]);
        let r = if fd < 0 { 0 } else { fd_ready(host, vid, fd, events) };
        c[6..8].copy_from_slice(&r.to_ne_bytes());
        if r != 0 {
            ready += 1;
            report.push((fd, r as u16 as u32));
        }
    }
    if ready > 0 || timed_out || timeout == Some(0) {
        note_report(host, vid, timeout == Some(0), &report);
        mem::write(pid, addr, &raw).map_err(|_| libc::EFAULT)?;
        return Ok(Answer::Value(ready));
    }
    Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout))
}

/// `select`/`pselect6` over the task's three fd sets at `sets`: answers with the ready count, or blocks.
pub(super) fn do_select(
    host: &mut Host,
    vid: u32,
    nfds: usize,
    sets: [u64; 3],
    timeout: Option<u64>,
) -> Result<Answer, i32> {
    if nfds > 1024 {
        return Err(libc::EINVAL);
    }
    let (pid, timed_out) = {
        let t = &host.tasks[&vid];
        (t.pid, t.timed_out)
    };
    let bytes = nfds.div_ceil(64) * 8;
    let mut input = [Vec::new(), Vec::new(), Vec::new()];
    for (i, &s) in sets.iter().enumerate() {
        if s != 0 {
            input[i] = mem::read(pid, s, bytes).map_err(|_| libc::EFAULT)?;
        }
    }
    let mut out = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut ready = 0;
    let mut report = Vec::new();
    for fd in 0..nfds {
        let bit = |v: &Vec<u8>| !v.is_empty() && v[fd / 8] & (1 << (fd % 8)) != 0;
        let (r, w, x) = (bit(&input[0]), bit(&input[1]), bit(&input[2]));
        if !(r || w || x) {
            continue;
        }
        let got = fd_ready(host, vid, fd as i32, libc::POLLIN | libc::POLLOUT | libc::POLLPRI);
        if got & libc::POLLNVAL != 0 {
            return Err(libc::EBADF);
        }
        let hits = [
            r && got & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
            w && got & (libc::POLLOUT | libc::POLLERR) != 0,
            x && got & libc::POLLPRI != 0,
        ];
        let mut reported = 0;
        for (i, &hit) in hits.iter().enumerate() {
            if hit {
                out[i][fd / 8] |= 1 << (fd % 8);
                ready += 1;
                reported |= [libc::POLLIN, libc::POLLOUT, libc::POLLPRI][i] as u32;
            }
        }
        if reported != 0 {
            report.push((fd as i32, reported));
        }
    }
    if ready > 0 || timed_out || timeout == Some(0) {
        note_report(host, vid, timeout == Some(0), &report);
        for (i, &s) in sets.iter().enumerate() {
            if s != 0 {
                mem::write(pid, s, &out[i]).map_err(|_| libc::EFAULT)?;
            }
        }
        return Ok(Answer::Value(ready));
    }
    Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout))
}

/// Drops `fd` from every epoll set of the thread's process, as closing the last reference does on Linux.
pub(super) fn forget_in_epolls(host: &mut Host, vid: u32, fd: i32) {
    let epolls: Vec<usize> = host.fds(vid).values().map(|f| f.obj).collect();
    for o in epolls {
        if let Some(Obj::Epoll(set)) = host.obj_mut(o) {
            set.remove(&fd);
        }
    }
}

/// The interest list of epoll descriptor `epfd` (`EINVAL` if it is not an epoll, `EBADF` if closed).
pub(super) fn epoll_set(
    host: &mut Host,
    vid: u32,
    epfd: i32,
) -> Result<&mut std::collections::BTreeMap<i32, EpollInterest>, i32> {
    let obj = host.fds(vid).get(&epfd).map(|f| f.obj).ok_or(libc::EINVAL)?;
    match host.obj_mut(obj) {
        Some(Obj::Epoll(set)) => Ok(set),
        Some(_) => Err(libc::EINVAL),
        None => Err(libc::EBADF),
    }
}

/// `epoll_ctl` on an emulated epoll set: add, modify or delete `fd` with the `epoll_event` at `ev`.
pub(super) fn emu_epoll_ctl(host: &mut Host, vid: u32, epfd: i32, op: i32, fd: i32, ev: u64) -> Result<Answer, i32> {
    let pid = host.tasks[&vid].pid;
    if fd == epfd {
        return Err(libc::EINVAL);
    }
    // The target must be an open descriptor of the task.
    if !host.fds(vid).contains_key(&fd) {
        let pidfd = host.tasks[&vid].pidfd.as_raw_fd();
        if native_ready(pidfd, fd, 0).is_none() {
            return Err(libc::EBADF);
        }
    }
    let interest = if op == libc::EPOLL_CTL_DEL {
        None
    } else {
        let b = mem::read(pid, ev, 12).map_err(|_| libc::EFAULT)?;
        let events = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let data = u64::from_ne_bytes(b[4..12].try_into().unwrap_or([0; 8]));
        Some(EpollInterest { events, data, reported: None })
    };
    let set = epoll_set(host, vid, epfd)?;
    match (op, interest) {
        (libc::EPOLL_CTL_ADD, Some(i)) => {
            if set.contains_key(&fd) {
                return Err(libc::EEXIST);
            }
            set.insert(fd, i);
        }
        (libc::EPOLL_CTL_MOD, Some(i)) => {
            let slot = set.get_mut(&fd).ok_or(libc::ENOENT)?;
            *slot = i;
        }
        (libc::EPOLL_CTL_DEL, _) => {
            set.remove(&fd).ok_or(libc::ENOENT)?;
        }
        _ => return Err(libc::EINVAL),
    }
    Ok(Answer::Value(0))
}

/// `epoll_wait`: the readiness of the interest list, in descriptor order. Level-triggered
/// entries are reported while ready; `EPOLLET` entries only when the descriptor's readiness has
/// changed (new data, a new connection, room to write, a state change) since they were last
/// reported, or since `EPOLL_CTL_ADD`/`MOD`; `EPOLLONESHOT` entries are disarmed once reported
/// until `EPOLL_CTL_MOD`.
pub(super) fn emu_epoll_wait(
    host: &mut Host,
    vid: u32,
    epfd: i32,
    out: u64,
    max: i32,
    timeout: Option<u64>,
) -> Result<Answer, i32> {
    if max <= 0 || max > 1 << 20 {
        return Err(libc::EINVAL);
    }
    let (pid, timed_out) = {
        let t = &host.tasks[&vid];
        (t.pid, t.timed_out)
    };
    let interest: Vec<(i32, EpollInterest)> = epoll_set(host, vid, epfd)?.iter().map(|(k, v)| (*k, *v)).collect();
    let mut ready = Vec::new();
    let mut fired = Vec::new();
    let mut spent = Vec::new();
    for (fd, i) in interest {
        let asked = (i.events & 0xffff) as i16;
        if asked == 0 {
            continue; // disarmed one-shot
        }
        let edge = i.events & libc::EPOLLET as u32 != 0;
        let count = fd_gen(host, vid, fd, i.events);
        if edge && i.reported == Some(count) {
            continue; // nothing new since the last report
        }
        let got = fd_ready(host, vid, fd, asked);
        let got = if got & libc::POLLNVAL != 0 { 0 } else { got };
        if edge && got == 0 {
            spent.push((fd, count)); // as `ep_send_events`: an edge with nothing to report is dropped
        }
        if got != 0 {
            let mut rec = [0u8; 12];
            rec[..4].copy_from_slice(&(got as u16 as u32).to_ne_bytes());
            rec[4..].copy_from_slice(&i.data.to_ne_bytes());
            ready.extend_from_slice(&rec);
            fired.push((fd, count, got as u16 as u32));
            if ready.len() / 12 == max as usize {
                break;
            }
        }
    }
    let n = ready.len() / 12;
    if !spent.is_empty() {
        let set = epoll_set(host, vid, epfd)?;
        for (fd, count) in spent {
            if let Some(i) = set.get_mut(&fd) {
                i.reported = Some(count);
            }
        }
    }
    if n > 0 || timed_out || timeout == Some(0) {
        let report: Vec<(i32, u32)> = fired.iter().map(|&(fd, _, m)| (fd, m)).collect();
        note_report(host, vid, timeout == Some(0), &report);
        mem::write(pid, out, &ready).map_err(|_| libc::EFAULT)?;
        let set = epoll_set(host, vid, epfd)?;
        for (fd, count, _) in fired {
            if let Some(i) = set.get_mut(&fd) {
                i.reported = Some(count);
                if i.events & libc::EPOLLONESHOT as u32 != 0 {
                    i.events &= !0xffff;
                }
            }
        }
        return Ok(Answer::Value(n as i64));
    }
    Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout))
}
