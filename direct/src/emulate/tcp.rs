//! TCP socket calls of direct hosts: `bind`, `listen`, `accept`, `connect`, `send`/`recv` and
//! their vector forms, options, `sendfile` and `ioctl` on `AF_INET`/`SOCK_STREAM` descriptors, with
//! Linux's semantics, on the host's smoltcp stack (the objects are [`crate::tcp`]'s, the stack is
//! driven by [`crate::nic`]). Where Linux and smoltcp differ, Linux wins: a connection that
//! receives an RST reports `ECONNREFUSED` (while connecting), `EPIPE` (after the peer's FIN) or
//! `ECONNRESET`; data arriving for a closed descriptor, or a close with unread data, sends an
//! RST; writes after the end give `EPIPE` and `SIGPIPE`.

use super::call::NS;
use super::sockaddr::{Msghdr, Use, bind_with, inet6_of, read_msghdr, read_sockaddr, resolve, write_sockaddr};
use crate::cx::{Answer, Cx};
use crate::host::{BlockKind, Host, Obj};
use crate::mem;
use crate::seccomp::Notif;
use crate::tcp::*;
use smoltcp::socket::tcp::State;
use smoltcp::time::Duration;
use std::net::Ipv4Addr;
use thermocline_net::host::TcpId;
use thermocline_net::stack::{FlowInfo, MTU, TcpStack};

/// The handle of TCP object `obj` (the caller has checked it is one).
fn id(host: &Host, obj: usize) -> TcpId {
    match host.objs.get(obj).and_then(Option::as_ref).map(|s| &s.obj) {
        Some(&Obj::Tcp(id)) => id,
        _ => unreachable!("checked to be a TCP socket"),
    }
}

fn tcp_of(host: &mut Host, obj: usize) -> &mut TcpSocket {
    let id = id(host, obj);
    host.net.tcp_mut(id)
}

/// Split borrows of a host: the TCP object `obj` and the stack.
fn parts(host: &mut Host, obj: usize) -> (&mut TcpSocket, &mut TcpStack) {
    let (id, now) = (id(host, obj), host.now);
    host.net.tcp_parts(id, now)
}

/// Readiness of TCP object `obj` of `host` (see [`thermocline_net::host::HostNet::tcp_ready`]).
pub(crate) fn ready(host: &mut Host, obj: usize) -> i16 {
    let (id, now) = (id(host, obj), host.now);
    host.net.tcp_ready(id, now)
}

fn tcp_bind(host: &mut Host, obj: usize, ip: Ipv4Addr, port: u16) -> Result<(), i32> {
    let (id, now) = (id(host, obj), host.now);
    host.net.tcp_bind(id, ip, port, now)
}

/// Send `SIGPIPE` to the task unless the caller asked not to, and fail with `EPIPE`.
fn epipe(pid: i32, flags: u64) -> i32 {
    if flags & libc::MSG_NOSIGNAL as u64 == 0 {
        // SAFETY: signalling the managed task that made the call; the kernel delivers it when
        // the call returns, as it would for its own EPIPE.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGPIPE) };
    }
    libc::EPIPE
}

fn nonblocking(host: &Host, obj: usize, flags: u64) -> bool {
    host.objs[obj].as_ref().is_some_and(|s| s.nonblock) || flags & libc::MSG_DONTWAIT as u64 != 0
}

/// A task's syscall that cannot complete yet: block (until something happens on the host, or the
/// socket's timeout), or — when the timeout has passed — return what was done or `EAGAIN`.
fn wait(cx: &mut Cx, vid: u32, done: usize, timeout: u64) -> Result<Answer, i32> {
    let t = cx.host.tasks.get_mut(&vid).expect("task exists");
    if t.timed_out {
        return if done > 0 { Ok(Answer::Value(done as i64)) } else { Err(libc::EAGAIN) };
    }
    t.partial = done;
    Ok(Answer::Block(BlockKind::Io { since: 0 }, (timeout > 0).then_some(timeout)))
}

/// Send up to `total` bytes that `fill(offset, len)` reads from the task (send, write, sendfile):
/// what fits in the send buffer; a blocking socket waits for room until everything is queued.
pub(crate) fn send(
    cx: &mut Cx,
    vid: u32,
    obj: usize,
    flags: u64,
    total: usize,
    fill: &mut dyn FnMut(usize, usize) -> Result<Vec<u8>, i32>,
) -> Result<Answer, i32> {
    let (pid, done, proc) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.partial, t.proc)
    };
    let host = &mut *cx.host;
    let nonblock = nonblocking(host, obj, flags);
    host.net.dirty = true;
    let now = host.now;
    let (s, st) = parts(host, obj);
    let hd = match s.phase {
        Phase::Open(hd) => hd,
        _ => return Err(epipe(pid, flags)),
    };
    if let Some(err) = s.error.take() {
        if done > 0 {
            s.error = Some(err);
            return Ok(Answer::Value(done as i64));
        }
        return Err(if err == libc::EPIPE { epipe(pid, flags) } else { err });
    }
    let t = st.socket(hd);
    let state = t.state();
    if matches!(state, State::SynSent | State::SynReceived) {
        let timeout = s.sndtimeo;
        return if nonblock { Err(libc::EAGAIN) } else { wait(cx, vid, done, timeout) };
    }
    if s.shut_wr || !t.may_send() {
        return if done > 0 { Ok(Answer::Value(done as i64)) } else { Err(epipe(pid, flags)) };
    }
    let take = st.send_room(hd).min(total - done);
    let mut sent = 0;
    let mut short = false;
    if take > 0 {
        let data = fill(done, take)?;
        short = data.len() < take; // sendfile reached the end of the file
        sent = st.send_slice(hd, &data, now).map_err(|_| libc::EPIPE)?;
    }
    if let Some(p) = host_proc(cx, proc) {
        p.tcp_sent += sent as u64;
    }
    let done = done + sent;
    if done < total && !short {
        tcp_of(&mut *cx.host, obj).nospace = true; // tcp_sendmsg's wait_for_space
    }
    if done == total || short || (nonblock && done > 0) {
        return Ok(Answer::Value(done as i64));
    }
    if nonblock {
        return Err(libc::EAGAIN);
    }
    let timeout = tcp_of(&mut *cx.host, obj).sndtimeo;
    wait(cx, vid, done, timeout)
}

fn host_proc<'a>(cx: &'a mut Cx<'_>, proc: usize) -> Option<&'a mut crate::host::ProcState> {
    cx.host.procs.get_mut(proc)
}

/// Where a receive reports the sender: TCP reports none (length 0), as Linux does.
pub(crate) enum RecvAddr {
    /// `recvfrom`'s `addrlen*`.
    Len(u64),
    /// `recvmsg`'s header at this address.
    Msghdr(u64, Msghdr),
}

/// Receive into the task's buffers (recv, read, recvmsg): what is queued, 0 at the end of the
/// stream, or wait; `MSG_PEEK` leaves the data queued, `MSG_WAITALL` waits for all of it.
pub(crate) fn recv(
    cx: &mut Cx,
    vid: u32,
    obj: usize,
    flags: u64,
    bufs: &[(u64, usize)],
    addr: Option<RecvAddr>,
) -> Result<Answer, i32> {
    let (pid, done, proc) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.partial, t.proc)
    };
    let total: usize = bufs.iter().map(|b| b.1).sum();
    let peek = flags & libc::MSG_PEEK as u64 != 0;
    let waitall = flags & libc::MSG_WAITALL as u64 != 0 && !peek;
    let host = &mut *cx.host;
    let nonblock = nonblocking(host, obj, flags);
    host.net.dirty = true;
    let (s, st) = parts(host, obj);
    let hd = match s.phase {
        Phase::Open(hd) => hd,
        _ => return Err(libc::ENOTCONN),
    };
    let queued = st.socket(hd).recv_queue();
    let want = total - done;
    if queued > 0 && want > 0 && !s.shut_rd {
        let mut data = vec![0u8; queued.min(want)];
        let n = if peek { st.socket(hd).peek_slice(&mut data).unwrap_or(0) } else { st.recv_slice(hd, &mut data) };
        data.truncate(n);
        scatter(pid, bufs, done, &data)?;
        if !peek && let Some(p) = host_proc(cx, proc) {
            p.tcp_recv += n as u64;
        }
        let got = done + n;
        let (s, st) = parts(&mut *cx.host, obj);
        // What is left is what the next arrival adds to: a read is no wake-up, the next
        // segment is one.
        s.seen.rx = st.socket(hd).recv_queue();
        let eof = !st.socket(hd).may_recv();
        if waitall && got < total && !eof && s.error.is_none() {
            let timeout = s.rcvtimeo;
            return wait(cx, vid, got, timeout);
        }
        finish_recv(pid, addr)?;
        return Ok(Answer::Value(got as i64));
    }
    if want == 0 {
        finish_recv(pid, addr)?;
        return Ok(Answer::Value(done as i64));
    }
    if done > 0 && (s.error.is_some() || !st.socket(hd).may_recv()) {
        finish_recv(pid, addr)?;
        return Ok(Answer::Value(done as i64));
    }
    if let Some(err) = s.error.take() {
        return Err(err);
    }
    let state = st.socket(hd).state();
    if thermocline_net::tcp::read_ended(s, state) {
        finish_recv(pid, addr)?;
        return Ok(Answer::Value(0));
    }
    if state == State::Closed {
        return Err(libc::ENOTCONN);
    }
    if nonblock {
        return Err(libc::EAGAIN);
    }
    let timeout = s.rcvtimeo;
    wait(cx, vid, done, timeout)
}

/// Copy `data` into the task's buffers, starting `skip` bytes in.
fn scatter(pid: i32, bufs: &[(u64, usize)], skip: usize, data: &[u8]) -> Result<(), i32> {
    let mut at = 0usize; // offset of the current buffer within the whole
    let mut copied = 0usize;
    for &(base, len) in bufs {
        if copied == data.len() {
            break;
        }
        let end = at + len;
        if end > skip + copied {
            let off = skip + copied - at;
            let n = (len - off).min(data.len() - copied);
            mem::write(pid, base + off as u64, &data[copied..copied + n]).map_err(|_| libc::EFAULT)?;
            copied += n;
        }
        at = end;
    }
    Ok(())
}

fn finish_recv(pid: i32, addr: Option<RecvAddr>) -> Result<(), i32> {
    match addr {
        Some(RecvAddr::Len(l)) if l != 0 => mem::write(pid, l, &0u32.to_ne_bytes()).map_err(|_| libc::EFAULT),
        Some(RecvAddr::Msghdr(at, m)) => super::sockaddr::finish_msghdr(pid, at, &m, &[], false),
        _ => Ok(()),
    }
}

/// Read `len` bytes at `offset` of the iovecs `bufs` of task `pid`.
pub(crate) fn gather_range(pid: i32, bufs: &[(u64, usize)], offset: usize, len: usize) -> Result<Vec<u8>, i32> {
    let mut out = Vec::with_capacity(len);
    let mut at = 0usize;
    for &(base, blen) in bufs {
        if out.len() == len {
            break;
        }
        let end = at + blen;
        if end > offset + out.len() {
            let off = offset + out.len() - at;
            let n = (blen - off).min(len - out.len());
            out.extend_from_slice(&mem::read(pid, base + off as u64, n).map_err(|_| libc::EFAULT)?);
        }
        at = end;
    }
    Ok(out)
}

/// `ioctl` request for the bytes of a socket not yet acknowledged (Linux's `SIOCOUTQ`).
const SIOCOUTQ: u64 = 0x5411;

/// `ioctl` on a TCP socket: `FIONREAD`/`SIOCINQ` (bytes queued to read), `SIOCOUTQ` (bytes not yet
/// acknowledged).
pub(crate) fn ioctl(host: &mut Host, obj: usize, req: u64) -> Option<i32> {
    let (s, st) = parts(host, obj);
    let hd = s.handle();
    match req {
        libc::FIONREAD => Some(hd.map_or(0, |hd| st.socket(hd).recv_queue()) as i32),
        SIOCOUTQ => Some(hd.map_or(0, |hd| st.send_queue(hd)) as i32),
        _ => None,
    }
}

/// The other socket calls on TCP object `obj`.
#[allow(non_upper_case_globals)]
pub(crate) fn call(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let a = n.data.args;
    let nr = n.data.nr as i64;
    let (pid, retry) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.retry)
    };
    cx.host.net.dirty = true;
    match nr {
        SYS_bind => bind_with(&mut *cx.host, obj, read_sockaddr(pid, a[1], a[2])?, tcp_bind),
        SYS_listen => tcp_listen(&mut *cx.host, obj, a[1] as i32).map(|_| Answer::Value(0)),
        SYS_accept | SYS_accept4 => {
            let flags = if nr == SYS_accept4 { a[3] as i32 } else { 0 };
            tcp_accept(cx, vid, obj, a[1], a[2], flags)
        }
        SYS_connect => tcp_connect(cx, vid, obj, n, retry),
        SYS_getsockname => {
            let (s, st) = parts(&mut *cx.host, obj);
            let connected = s.peer.is_some();
            let local = match s.handle().and_then(|hd| st.socket(hd).local_endpoint()) {
                Some(l) => (v4(l.addr), l.port),
                None => s.local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0)),
            };
            let v6 = inet6_of(&*cx.host, obj).map(|six| six.local_native(connected));
            write_sockaddr(pid, a[1], a[2], local, v6)?;
            Ok(Answer::Value(0))
        }
        SYS_getpeername => {
            let (s, st) = parts(&mut *cx.host, obj);
            let hd = s.handle().ok_or(ENOTCONN)?;
            if !synchronised(st.socket(hd).state()) {
                return Err(ENOTCONN);
            }
            let peer = s.peer.ok_or(ENOTCONN)?;
            let v6 = inet6_of(&*cx.host, obj).map(|six| six.native_peer);
            write_sockaddr(pid, a[1], a[2], peer, v6)?;
            Ok(Answer::Value(0))
        }
        SYS_setsockopt => self::setsockopt(cx, vid, n, obj),
        SYS_getsockopt => self::getsockopt(cx, vid, n, obj),
        SYS_shutdown => {
            let now = cx.host.now;
            cx.host.net.tcp_shutdown(id(&*cx.host, obj), a[1] as i32, now)?;
            cx.host.progress += 1;
            Ok(Answer::Value(0))
        }
        SYS_sendto => {
            let bufs = [(a[1], a[2] as usize)];
            self::send(cx, vid, obj, a[3], a[2] as usize, &mut |o, l| gather_range(pid, &bufs, o, l))
        }
        SYS_sendmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            let total = bufs.iter().map(|b| b.1).sum();
            self::send(cx, vid, obj, a[2], total, &mut |o, l| gather_range(pid, &bufs, o, l))
        }
        SYS_recvfrom => self::recv(cx, vid, obj, a[3], &[(a[1], a[2] as usize)], Some(RecvAddr::Len(a[5]))),
        SYS_recvmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            self::recv(cx, vid, obj, a[2], &bufs, Some(RecvAddr::Msghdr(a[1], m)))
        }
        // One message per call on a stream: the first as sendmsg/recvmsg (blocking if the socket
        // is), which is what Linux's loop does until a message would block.
        SYS_sendmmsg | SYS_recvmmsg => {
            if a[2] == 0 {
                return Ok(Answer::Value(0));
            }
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            let flags = a[3];
            let r = if nr == SYS_sendmmsg {
                let total = bufs.iter().map(|b| b.1).sum();
                self::send(cx, vid, obj, flags, total, &mut |o, l| gather_range(pid, &bufs, o, l))?
            } else {
                self::recv(cx, vid, obj, flags, &bufs, Some(RecvAddr::Msghdr(a[1], m)))?
            };
            match r {
                Answer::Value(len) => {
                    mem::write(pid, a[1] + 56, &(len as u32).to_ne_bytes()).map_err(|_| EFAULT)?;
                    Ok(Answer::Value(1))
                }
                other => Ok(other),
            }
        }
        _ => {
            cx.host.unsupported(vid, nr, " (on a TCP socket)", ENOSYS);
            Err(ENOSYS)
        }
    }
}

fn tcp_listen(host: &mut Host, obj: usize, backlog: i32) -> Result<(), i32> {
    let (id, now) = (id(host, obj), host.now);
    host.net.tcp_listen(id, backlog, now)
}

fn tcp_accept(cx: &mut Cx, vid: u32, obj: usize, addr: u64, addrlen: u64, flags: i32) -> Result<Answer, i32> {
    let pid = cx.host.tasks[&vid].pid;
    let host = &mut *cx.host;
    let nonblock = nonblocking(host, obj, 0);
    let (id, now) = (id(host, obj), host.now);
    let Some(((_, peer), native)) = host.net.tcp_next_accept(id, now)? else {
        if nonblock {
            return Err(libc::EAGAIN);
        }
        let timeout = host.net.tcp_mut(id).rcvtimeo;
        return wait(cx, vid, 0, timeout);
    };
    let six = inet6_of(host, obj).is_some();
    write_sockaddr(pid, addr, addrlen, peer, six.then_some(native))?;
    let conn = host.net.tcp_accept(id, now)?;
    let obj = host.add_obj(Obj::Tcp(conn), flags & libc::SOCK_NONBLOCK != 0);
    Ok(Answer::AddFd { src: cx.shared.tcp_placeholder_fd(), cloexec: flags & libc::SOCK_CLOEXEC != 0, obj })
}

fn tcp_connect(cx: &mut Cx, vid: u32, obj: usize, n: &Notif, retry: bool) -> Result<Answer, i32> {
    let a = n.data.args;
    let (pid, timed_out) = (cx.host.tasks[&vid].pid, cx.host.tasks[&vid].timed_out);
    let host = &mut *cx.host;
    let nonblock = nonblocking(host, obj, 0);
    let six = inet6_of(host, obj).cloned();
    let (s, st) = parts(host, obj);
    match s.phase {
        Phase::Listening(_) => return Err(libc::EISCONN),
        Phase::Open(hd) => {
            let state = st.socket(hd).state();
            if let Some(err) = s.error.take() {
                s.connect_pending = false;
                return Err(err);
            }
            return match state {
                State::SynSent | State::SynReceived if nonblock || !retry => Err(libc::EALREADY),
                State::SynSent | State::SynReceived if timed_out => {
                    s.connect_pending = true;
                    Err(libc::EINPROGRESS)
                }
                State::SynSent | State::SynReceived => {
                    let timeout = s.sndtimeo;
                    Ok(Answer::Block(BlockKind::Io { since: 0 }, (timeout > 0).then_some(timeout)))
                }
                _ if retry && s.was_connected => Ok(Answer::Value(0)),
                State::Closed if !s.was_connected || s.connect_pending => {
                    s.connect_pending = false;
                    Err(libc::ECONNABORTED)
                }
                _ if s.connect_pending => {
                    s.connect_pending = false;
                    Ok(Answer::Value(0))
                }
                _ => Err(libc::EISCONN),
            };
        }
        Phase::Fresh => {}
    }
    let sa = read_sockaddr(pid, a[1], a[2])?;
    let p = resolve(sa, six.as_ref(), Use::TcpConnect)?.ok_or(libc::EAFNOSUPPORT)?;
    let dst = if p.ip.is_unspecified() { Ipv4Addr::LOCALHOST } else { p.ip };
    let (id, now) = (id(host, obj), host.now);
    host.net.tcp_connect(id, dst, p.port, p.native, now)?;
    let s = host.net.tcp_mut(id);
    if nonblock {
        s.connect_pending = true;
        return Err(libc::EINPROGRESS);
    }
    let timeout = s.sndtimeo;
    Ok(Answer::Block(BlockKind::Io { since: 0 }, (timeout > 0).then_some(timeout)))
}

fn timeval_ns(b: &[u8]) -> Result<u64, i32> {
    let sec = i64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let usec = i64::from_ne_bytes(b[8..16].try_into().unwrap_or([0; 8]));
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(libc::EDOM);
    }
    Ok((sec as u64).saturating_mul(NS).saturating_add(usec as u64 * 1000))
}

fn timeval_bytes(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
    b[8..].copy_from_slice(&(((ns % NS) / 1000) as i64).to_ne_bytes());
    b
}

#[allow(non_upper_case_globals)]
fn setsockopt(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let a = n.data.args;
    let pid = cx.host.tasks[&vid].pid;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let val = mem::read(pid, a[3], (a[4] as usize).min(64)).map_err(|_| EFAULT)?;
    let int = if val.len() >= 4 { i32::from_ne_bytes([val[0], val[1], val[2], val[3]]) } else { 0 };
    let (s, st) = parts(&mut *cx.host, obj);
    let hd = s.handle();
    match (level, name) {
        (SOL_SOCKET, SO_REUSEADDR) => s.reuseaddr = int != 0,
        (SOL_SOCKET, SO_REUSEPORT) => s.reuseport = int != 0,
        (SOL_SOCKET, SO_KEEPALIVE) => {
            s.keepalive = int != 0;
            if let Some(hd) = hd {
                let idle = (int != 0).then(|| Duration::from_secs(s.keepidle.max(1) as u64));
                st.socket(hd).set_keep_alive(idle);
            }
        }
        (SOL_SOCKET, SO_RCVBUF) => (s.rcvbuf, s.rcvbuf_set) = (int.max(1152).saturating_mul(2), true),
        (SOL_SOCKET, SO_SNDBUF) => {
            (s.sndbuf, s.sndbuf_set) = (int.max(2304).saturating_mul(2), true);
            if let Some(hd) = hd {
                st.set_send_buffer(hd, send_buffer(s));
            }
        }
        (SOL_SOCKET, SO_RCVTIMEO | SO_RCVTIMEO_NEW) if val.len() >= 16 => s.rcvtimeo = timeval_ns(&val)?,
        (SOL_SOCKET, SO_SNDTIMEO | SO_SNDTIMEO_NEW) if val.len() >= 16 => s.sndtimeo = timeval_ns(&val)?,
        (SOL_SOCKET, SO_LINGER) if val.len() >= 8 => {
            s.linger = (int, i32::from_ne_bytes([val[4], val[5], val[6], val[7]]));
        }
        (IPPROTO_TCP, TCP_NODELAY) => {
            s.nodelay = int != 0;
            if let Some(hd) = hd {
                st.socket(hd).set_nagle_enabled(int == 0);
            }
        }
        // smoltcp's congestion control is CUBIC, Linux's default; no other can be chosen.
        (IPPROTO_TCP, TCP_CONGESTION) => {
            let name: Vec<u8> = val.iter().copied().take_while(|&b| b != 0).collect();
            if name != b"cubic" {
                return Err(ENOENT);
            }
        }
        (IPPROTO_TCP, TCP_KEEPIDLE) => {
            if int < 1 {
                return Err(EINVAL);
            }
            s.keepidle = int;
            if let Some(hd) = hd
                && s.keepalive
            {
                st.socket(hd).set_keep_alive(Some(Duration::from_secs(int as u64)));
            }
        }
        // Accepted and reported back, with no effect on the simulated connection: keep-alive
        // probing details (smoltcp probes every TCP_KEEPIDLE and never gives up), corking and
        // quick ACKs (smoltcp's Nagle and 10-ms delayed ACK apply), segment size (fixed by the
        // 1500-byte MTU), deferred accept, the user timeout, the not-sent low-water mark (writable
        // still means room in the send buffer), socket priority and IP header fields.
        (IPPROTO_TCP, TCP_KEEPINTVL | TCP_KEEPCNT | TCP_CORK | TCP_QUICKACK | TCP_MAXSEG | TCP_DEFER_ACCEPT)
        | (IPPROTO_TCP, TCP_USER_TIMEOUT | TCP_NOTSENT_LOWAT)
        | (SOL_SOCKET, SO_BROADCAST | SO_PRIORITY | SO_DONTROUTE | SO_OOBINLINE | SO_RCVLOWAT | SO_SNDLOWAT)
        | (IPPROTO_IP, IP_TOS | IP_TTL | IP_MTU_DISCOVER) => {
            s.options.retain(|(k, _)| *k != (level, name));
            s.options.push(((level, name), int));
        }
        _ => {
            cx.host.unsupported(
                vid,
                n.data.nr as i64,
                &format!(" (TCP option level {level} name {name})"),
                ENOPROTOOPT,
            );
            return Err(ENOPROTOOPT);
        }
    }
    Ok(Answer::Value(0))
}

#[allow(non_upper_case_globals)]
fn getsockopt(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let a = n.data.args;
    let pid = cx.host.tasks[&vid].pid;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let (s, st) = parts(&mut *cx.host, obj);
    let int = |v: i32| v.to_ne_bytes().to_vec();
    let bytes: Vec<u8> = match (level, name) {
        (SOL_SOCKET, SO_TYPE) => int(SOCK_STREAM),
        (SOL_SOCKET, SO_ERROR) => int(s.error.take().unwrap_or(0)),
        (SOL_SOCKET, SO_DOMAIN) => int(AF_INET),
        (SOL_SOCKET, SO_PROTOCOL) => int(IPPROTO_TCP),
        (SOL_SOCKET, SO_ACCEPTCONN) => int(i32::from(matches!(s.phase, Phase::Listening(_)))),
        (SOL_SOCKET, SO_REUSEADDR) => int(i32::from(s.reuseaddr)),
        (SOL_SOCKET, SO_REUSEPORT) => int(i32::from(s.reuseport)),
        (SOL_SOCKET, SO_KEEPALIVE) => int(i32::from(s.keepalive)),
        (SOL_SOCKET, SO_RCVBUF) => int(s.rcvbuf),
        (SOL_SOCKET, SO_SNDBUF) => int(s.sndbuf),
        (SOL_SOCKET, SO_RCVTIMEO | SO_RCVTIMEO_NEW) => timeval_bytes(s.rcvtimeo).to_vec(),
        (SOL_SOCKET, SO_SNDTIMEO | SO_SNDTIMEO_NEW) => timeval_bytes(s.sndtimeo).to_vec(),
        (SOL_SOCKET, SO_LINGER) => [s.linger.0.to_ne_bytes(), s.linger.1.to_ne_bytes()].concat(),
        (IPPROTO_TCP, TCP_NODELAY) => int(i32::from(s.nodelay)),
        (IPPROTO_TCP, TCP_KEEPIDLE) => int(s.keepidle),
        (IPPROTO_TCP, TCP_CONGESTION) => {
            let mut name = [0u8; 16];
            name[..5].copy_from_slice(b"cubic");
            name.to_vec()
        }
        (IPPROTO_TCP, TCP_MAXSEG) => {
            let connected = s.handle().is_some_and(|hd| synchronised(st.socket(hd).state()));
            int(if connected { MSS } else { 536 })
        }
        (SOL_SOCKET | IPPROTO_IP, _)
        | (IPPROTO_TCP, TCP_KEEPINTVL | TCP_KEEPCNT | TCP_CORK | TCP_QUICKACK)
        | (IPPROTO_TCP, TCP_DEFER_ACCEPT | TCP_USER_TIMEOUT | TCP_NOTSENT_LOWAT) => {
            let default = match (level, name) {
                (IPPROTO_TCP, TCP_KEEPINTVL) => 75,
                (IPPROTO_TCP, TCP_KEEPCNT) => 9,
                (IPPROTO_IP, IP_TTL) => 64,
                _ => 0,
            };
            int(s.options.iter().find(|(k, _)| *k == (level, name)).map_or(default, |(_, v)| *v))
        }
        (IPPROTO_TCP, TCP_INFO) => {
            let (state, flow) = match &s.phase {
                Phase::Fresh => (State::Closed, None),
                Phase::Listening(_) => (State::Listen, None),
                Phase::Open(hd) => (st.socket(*hd).state(), st.info(*hd)),
            };
            tcp_info(state, flow)
        }
        // The rest: not available (callers fall back).
        _ => return Err(ENOPROTOOPT),
    };
    let lb = mem::read(pid, a[4], 4).map_err(|_| EFAULT)?;
    let cap = (u32::from_ne_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize).min(bytes.len());
    mem::write(pid, a[3], &bytes[..cap]).map_err(|_| EFAULT)?;
    mem::write(pid, a[4], &(cap as u32).to_ne_bytes()).map_err(|_| EFAULT)?;
    Ok(Answer::Value(0))
}

/// Size of `struct tcp_info` as Linux 5.5 to 6.1 define it (up to `tcpi_snd_wnd`).
const TCP_INFO_LEN: usize = 232;

/// `TCP_INFO` for a socket in `state`: the state in Linux's numbering, the segment sizes and
/// path MTU of the simulated path, and, for a connection, the stack's Linux timing state
/// (`flow`): timeouts, RTT, congestion window, slow-start threshold, retransmitted segments.
/// Other counters read 0 rather than something made up.
fn tcp_info(state: State, flow: Option<FlowInfo>) -> Vec<u8> {
    let mut b = vec![0u8; TCP_INFO_LEN];
    b[0] = match state {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    };
    let mss = if synchronised(state) { MSS as u32 } else { 536 };
    // tcpi_snd_mss, tcpi_rcv_mss, tcpi_pmtu, tcpi_advmss
    for (at, v) in [(16, mss), (20, mss), (60, MTU as u32), (84, MSS as u32)] {
        b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let Some(f) = flow else { return b };
    let us = |ns: u64| (ns / 1000).min(u32::MAX as u64) as u32;
    let segs = |n: usize| n.min(0x7fff_ffff) as u32;
    // tcpi_rto, tcpi_ato, tcpi_rtt (µs), tcpi_snd_ssthresh, tcpi_snd_cwnd, tcpi_total_retrans
    let fields = [
        (8, us(f.rto_ns)),
        (12, us(f.ato_ns)),
        (68, us(f.srtt_ns)),
        (76, segs(f.ssthresh)),
        (80, segs(f.cwnd)),
        (100, f.retransmits),
    ];
    for (at, v) in fields {
        b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    b
}

/// `sendfile(out, in, offset*, count)` with a TCP socket as `out`: the file's bytes (from
/// `*offset`, or from and advancing the file's position) go to the send buffer.
pub(crate) fn sendfile(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    let a = n.data.args;
    let (pid, pidfd) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, std::os::fd::AsRawFd::as_raw_fd(&t.pidfd))
    };
    // SAFETY: pidfd_getfd of a stopped task's descriptor; closed below.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, a[1] as i32, 0) };
    if copy < 0 {
        return Err(libc::EBADF);
    }
    let copy = copy as i32;
    let result = (|| {
        let base = if a[2] != 0 {
            let b = mem::read(pid, a[2], 8).map_err(|_| libc::EFAULT)?;
            i64::from_ne_bytes(b.try_into().unwrap_or([0; 8]))
        } else {
            // SAFETY: lseek on our copy (it shares the task's file position).
            unsafe { libc::lseek(copy, 0, libc::SEEK_CUR) }
        };
        if base < 0 {
            return Err(libc::EINVAL);
        }
        let count = (a[3] as usize).min(0x7fff_f000);
        let answer = self::send(cx, vid, obj, 0, count, &mut |off, len| {
            let mut buf = vec![0u8; len];
            // SAFETY: pread into our buffer from our copy.
            let r = unsafe { libc::pread(copy, buf.as_mut_ptr() as *mut libc::c_void, len, base + off as i64) };
            if r < 0 {
                return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
            }
            buf.truncate(r as usize);
            Ok(buf)
        })?;
        if let Answer::Value(sent) = answer {
            let end = base + sent;
            if a[2] != 0 {
                mem::write(pid, a[2], &end.to_ne_bytes()).map_err(|_| libc::EFAULT)?;
            } else {
                // SAFETY: moving our copy's (the task's) file position past what was sent.
                unsafe { libc::lseek(copy, end, libc::SEEK_SET) };
            }
        }
        Ok(answer)
    })();
    // SAFETY: closing our copy.
    unsafe { libc::close(copy) };
    result
}
