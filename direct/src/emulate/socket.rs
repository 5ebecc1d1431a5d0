//! Sockets: `socket`, the socket calls on emulated UDP sockets (TCP is [`super::tcp`], netlink
//! [`super::netlink`]) and on native ones. Arriving packets never come here: the host's card
//! ([`crate::nic`]) puts them on the sockets, and the handlers only read what waits.

use super::call::{Call, NS, errno, fd_entry};
use super::native::{counted_read, counted_write, native_io};
use super::sockaddr::*;
use super::tcp;
use crate::cx::{Answer, Cx};
use crate::host::{BlockKind, Host, Obj};
use crate::inet6;
use crate::seccomp::Notif;
use crate::{mem, nic};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use thermocline_net::udp::{self as net, MAX_UDP_PAYLOAD};

/// `socket`. An `AF_INET6` UDP or TCP socket is the same emulated socket as an `AF_INET` one,
/// with an IPv6 side ([`Inet6`]) that translates its addresses (see [`crate::inet6`]).
pub(super) fn socket(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, nr, a, .. } = *c;
    use libc::*;
    let (domain, ty, proto) = (a[0] as i32, a[1] as i32, a[2] as i32);
    let inet = domain == AF_INET || domain == AF_INET6;
    match domain {
        AF_UNIX => Answer::Continue,
        AF_NETLINK => super::netlink::socket(cx, vid, nr, ty, proto),
        AF_PACKET => super::packet::socket(cx, vid, nr, ty, proto),
        _ if inet && ty & 0xf == SOCK_DGRAM && (proto == 0 || proto == IPPROTO_UDP) => {
            let id = cx.host.net.udp_socket(domain == AF_INET6);
            let obj = cx.host.add_obj(Obj::Udp(id), ty & SOCK_NONBLOCK != 0);
            Answer::AddFd { src: cx.shared.udp_placeholder.as_raw_fd(), cloexec: ty & SOCK_CLOEXEC != 0, obj }
        }
        _ if inet && ty & 0xf == SOCK_STREAM && (proto == 0 || proto == IPPROTO_TCP) => {
            let id = cx.host.net.tcp_socket(domain == AF_INET6);
            let obj = cx.host.add_obj(Obj::Tcp(id), ty & SOCK_NONBLOCK != 0);
            Answer::AddFd { src: cx.shared.tcp_placeholder_fd(), cloexec: ty & SOCK_CLOEXEC != 0, obj }
        }
        _ if inet => {
            cx.host.unsupported(
                vid,
                nr,
                &format!(
                    " ({} type {} protocol {proto}; only UDP and TCP are emulated)",
                    if domain == AF_INET6 { "AF_INET6" } else { "AF_INET" },
                    ty & 0xf
                ),
                ESOCKTNOSUPPORT,
            );
            Answer::Errno(ESOCKTNOSUPPORT)
        }
        _ => {
            cx.host.unsupported(vid, nr, &format!(" (address family {domain})"), EAFNOSUPPORT);
            Answer::Errno(EAFNOSUPPORT)
        }
    }
}

/// `socketpair`.
pub(super) fn socketpair(c: &Call) -> Answer {
    let Call { a, .. } = *c;
    use libc::*;
    if a[0] as i32 == AF_UNIX { Answer::Continue } else { Answer::Errno(EOPNOTSUPP) }
}

/// `call`.
#[allow(non_upper_case_globals)]
pub(super) fn call(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, nr, a, n, .. } = *c;
    use libc::*;
    match fd_entry(cx, c) {
        // Sockets the supervisor does not emulate (AF_UNIX): wait here rather than in the
        // kernel when a receive or accept would block.
        None => {
            let flags = match nr {
                SYS_recvmsg | SYS_sendmsg => a[2],
                SYS_accept | SYS_accept4 => 0,
                _ => a[3],
            };
            let receives = matches!(nr, SYS_recvfrom | SYS_recvmsg | SYS_recvmmsg);
            let sends = matches!(nr, SYS_sendto | SYS_sendmsg | SYS_sendmmsg);
            let dontwait = flags & MSG_DONTWAIT as u64 != 0;
            match nr {
                _ if receives => counted_read(cx, vid, if dontwait { -1 } else { a[0] as i32 }),
                _ if sends && !dontwait => {
                    let answer = native_io(cx, vid, a[0] as i32, POLLOUT);
                    counted_write(cx, answer)
                }
                _ if sends || nr == SYS_connect => counted_write(cx, Answer::Continue),
                SYS_accept | SYS_accept4 => native_io(cx, vid, a[0] as i32, POLLIN),
                SYS_shutdown => {
                    cx.host.native_edges.both();
                    Answer::Continue
                }
                _ => Answer::Continue,
            }
        }
        Some(f) => {
            if let Some(r) = inet6_option(cx, vid, n, f.obj) {
                return errno(r);
            }
            match cx.host.objs[f.obj].as_ref().map(|s| &s.obj) {
                Some(Obj::Udp(_)) => errno(socket_call(cx, vid, n, f.obj)),
                Some(Obj::Tcp(_)) => errno(tcp::call(cx, vid, n, f.obj)),
                Some(Obj::Netlink(_)) => errno(super::netlink::call(cx, vid, n, f.obj)),
                Some(Obj::Packet(_)) => errno(super::packet::call(cx, vid, n, f.obj)),
                _ => Answer::Errno(ENOTSOCK),
            }
        }
    }
}

/// `sendfile`.
pub(super) fn sendfile(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, a, n, .. } = *c;
    use libc::*;
    match fd_entry(cx, c) {
        Some(f) if matches!(cx.host.objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::Tcp(_))) => {
            errno(tcp::sendfile(cx, vid, n, f.obj))
        }
        Some(_) => Answer::Errno(EINVAL),
        None => {
            let answer = native_io(cx, vid, a[0] as i32, POLLOUT);
            counted_write(cx, answer)
        }
    }
}

/// `recv` flag: read without consuming.
pub(super) const MSG_PEEK: u64 = 0x2;
/// `recv` flag: return the datagram's real length even when the buffer is shorter.
pub(super) const MSG_TRUNC: u64 = 0x20;
/// `send`/`recv` flag: never block for this call.
pub(super) const MSG_DONTWAIT: u64 = 0x40;

/// `IPPROTO_IPV6` options and `SO_DOMAIN` of an `AF_INET6` socket `obj` (UDP or TCP), or `None`
/// when the call is not one of these (the socket's own handler answers it).
#[allow(non_upper_case_globals)]
fn inet6_option(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Option<Result<Answer, i32>> {
    use libc::*;
    let a = n.data.args;
    let nr = n.data.nr as i64;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let host = &mut *cx.host;
    let pid = host.tasks[&vid].pid;
    inet6_of(host, obj)?;
    let bound = match host.objs[obj].as_ref().map(|s| &s.obj) {
        Some(&Obj::Udp(id)) => host.net.udp_mut(id).local.is_some(),
        Some(&Obj::Tcp(id)) => host.net.tcp_mut(id).local.is_some(),
        _ => return None,
    };
    let six = inet6_mut(host, obj)?;
    match (nr, level, name) {
        (SYS_getsockopt, SOL_SOCKET, SO_DOMAIN) => Some(write_int_option(pid, a[3], a[4], AF_INET6)),
        (SYS_getsockopt, IPPROTO_IPV6, IPV6_V6ONLY) => Some(write_int_option(pid, a[3], a[4], i32::from(six.v6only))),
        (SYS_getsockopt, IPPROTO_IPV6, _) if inet6::is_stored_option(name) => {
            let v = six.options.iter().find(|(k, _)| *k == name).map_or(inet6::option_default(name), |(_, v)| *v);
            Some(write_int_option(pid, a[3], a[4], v))
        }
        (SYS_setsockopt, IPPROTO_IPV6, _) if name == IPV6_V6ONLY || inet6::is_stored_option(name) => {
            let v = match mem::read(pid, a[3], 4) {
                Ok(b) if a[4] >= 4 => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                Ok(_) => return Some(Err(EINVAL)),
                Err(_) => return Some(Err(EFAULT)),
            };
            if name == IPV6_V6ONLY {
                if bound {
                    return Some(Err(EINVAL));
                }
                six.v6only = v != 0;
            } else {
                six.options.retain(|(k, _)| *k != name);
                six.options.push((name, v));
            }
            Some(Ok(Answer::Value(0)))
        }
        (SYS_setsockopt | SYS_getsockopt, IPPROTO_IPV6, _) => {
            cx.host.unsupported(vid, nr, &format!(" (IPv6 option {name})"), ENOPROTOOPT);
            Some(Err(ENOPROTOOPT))
        }
        _ => None,
    }
}

/// The UDP socket object `obj` (the caller has checked it is one).
pub(super) fn udp(host: &mut Host, obj: usize) -> &mut net::UdpSocket {
    match host.objs.get(obj).and_then(Option::as_ref).map(|s| &s.obj) {
        Some(&Obj::Udp(id)) => host.net.udp_mut(id),
        _ => unreachable!("checked to be a live UDP socket"),
    }
}

/// Binds UDP socket `obj` to `ip:port` (port 0: an ephemeral one), with Linux's address and sharing rules.
pub(super) fn udp_bind(host: &mut Host, obj: usize, ip: Ipv4Addr, port: u16) -> Result<(), i32> {
    match host.objs.get(obj).and_then(Option::as_ref).map(|s| &s.obj) {
        Some(&Obj::Udp(id)) => host.net.udp_bind(id, ip, port),
        _ => unreachable!("checked to be a live UDP socket"),
    }
}

/// The socket family of calls (`bind`, `connect`, `sendto`, `recvmsg`, `setsockopt`, …) on emulated
/// UDP socket `obj` (TCP sockets go to `emulate::tcp::call` instead).
#[allow(non_upper_case_globals)]
pub(super) fn socket_call(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let a = n.data.args;
    let nr = n.data.nr as i64;
    let pid = cx.host.tasks[&vid].pid;
    match nr {
        SYS_bind => bind_with(&mut *cx.host, obj, read_sockaddr(pid, a[1], a[2])?, udp_bind),
        SYS_connect => {
            let sa = read_sockaddr(pid, a[1], a[2])?;
            let host = &mut *cx.host;
            match resolve(sa, inet6_of(host, obj), Use::Datagram)? {
                None => udp(host, obj).peer = None,
                Some(p) => {
                    if udp(host, obj).local.is_none() {
                        udp_bind(host, obj, Ipv4Addr::UNSPECIFIED, 0)?;
                    }
                    let ip = if p.ip.is_unspecified() { Ipv4Addr::LOCALHOST } else { p.ip };
                    udp(host, obj).peer = Some((ip, p.port));
                    if let Some(six) = inet6_mut(host, obj) {
                        six.native_peer = p.native;
                    }
                }
            }
            Ok(Answer::Value(0))
        }
        SYS_getsockname => {
            let host = &mut *cx.host;
            let host_ip = host.ip;
            let s = udp(host, obj);
            let (mut local, connected) = (s.local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0)), s.peer.is_some());
            // A connected socket reports the source address its datagrams leave from, as Linux
            // does (glibc's getaddrinfo learns each answer's source address this way).
            if let Some((peer, _)) = s.peer
                && local.0.is_unspecified()
            {
                local.0 = if peer.is_loopback() { Ipv4Addr::LOCALHOST } else { host_ip };
            }
            let v6 = inet6_of(host, obj).map(|six| six.local_native(connected));
            write_sockaddr(pid, a[1], a[2], local, v6)?;
            Ok(Answer::Value(0))
        }
        SYS_getpeername => {
            let host = &mut *cx.host;
            let peer = udp(host, obj).peer.ok_or(ENOTCONN)?;
            let v6 = inet6_of(host, obj).map(|six| six.native_peer);
            write_sockaddr(pid, a[1], a[2], peer, v6)?;
            Ok(Answer::Value(0))
        }
        SYS_setsockopt => {
            let (level, name) = (a[1] as i32, a[2] as i32);
            let len = (a[4] as usize).min(64);
            let val = mem::read(pid, a[3], len).map_err(|_| EFAULT)?;
            let int = if val.len() >= 4 { i32::from_ne_bytes([val[0], val[1], val[2], val[3]]) } else { 0 };
            let s = udp(&mut *cx.host, obj);
            match (level, name) {
                (SOL_SOCKET, SO_RCVBUF) => s.rcvbuf = (int.max(1152) as usize) * 2,
                (SOL_SOCKET, SO_SNDBUF) => s.sndbuf = (int.max(2304) as usize) * 2,
                (SOL_SOCKET, SO_RCVTIMEO_NEW | SO_RCVTIMEO) if val.len() >= 16 => {
                    let sec = i64::from_ne_bytes(val[..8].try_into().unwrap_or([0; 8]));
                    let usec = i64::from_ne_bytes(val[8..16].try_into().unwrap_or([0; 8]));
                    if sec < 0 || !(0..1_000_000).contains(&usec) {
                        return Err(EDOM);
                    }
                    let ns = sec as u64 * NS + usec as u64 * 1000;
                    s.options.retain(|(k, _)| *k != (level, SO_RCVTIMEO));
                    s.options.push(((level, SO_RCVTIMEO), (ns / 1000).min(i32::MAX as u64) as i32));
                }
                // Options with no effect on an emulated datagram socket: stored and reported back.
                (
                    SOL_SOCKET,
                    SO_REUSEADDR | SO_REUSEPORT | SO_BROADCAST | SO_PRIORITY | SO_KEEPALIVE | SO_SNDTIMEO
                    | SO_SNDTIMEO_NEW | SO_DONTROUTE,
                )
                | (IPPROTO_IP, IP_TOS | IP_TTL | IP_MTU_DISCOVER) => {
                    s.options.retain(|(k, _)| *k != (level, name));
                    s.options.push(((level, name), int));
                }
                // Anything else (control-message options such as IP_PKTINFO or IP_RECVERR, UDP
                // segmentation offload, multicast) would be silently wrong: refuse it, loudly.
                _ => {
                    cx.host.unsupported(vid, nr, &format!(" (option level {level} name {name})"), ENOPROTOOPT);
                    return Err(ENOPROTOOPT);
                }
            }
            Ok(Answer::Value(0))
        }
        SYS_getsockopt => {
            let (level, name) = (a[1] as i32, a[2] as i32);
            let s = udp(&mut *cx.host, obj);
            let v: i32 = match (level, name) {
                (SOL_SOCKET, SO_TYPE) => SOCK_DGRAM,
                (SOL_SOCKET, SO_ERROR) => 0,
                (SOL_SOCKET, SO_DOMAIN) => AF_INET,
                (SOL_SOCKET, SO_PROTOCOL) => IPPROTO_UDP,
                (SOL_SOCKET, SO_RCVBUF) => s.rcvbuf as i32,
                (SOL_SOCKET, SO_SNDBUF) => s.sndbuf as i32,
                (SOL_SOCKET | IPPROTO_IP | IPPROTO_UDP, _) => {
                    s.options.iter().find(|(k, _)| *k == (level, name)).map_or(0, |(_, v)| *v)
                }
                _ => return Err(ENOPROTOOPT),
            };
            write_int_option(pid, a[3], a[4], v)
        }
        SYS_shutdown => {
            let s = udp(&mut *cx.host, obj);
            if s.peer.is_none() {
                return Err(ENOTCONN);
            }
            match a[1] as i32 {
                SHUT_RD => s.shut_rd = true,
                SHUT_WR => s.shut_wr = true,
                SHUT_RDWR => {
                    s.shut_rd = true;
                    s.shut_wr = true;
                }
                _ => return Err(EINVAL),
            }
            cx.host.progress += 1;
            Ok(Answer::Value(0))
        }
        SYS_sendto => {
            let data = gather(pid, &[(a[1], a[2] as usize)])?;
            let dst = if a[4] == 0 {
                None
            } else {
                let sa = read_sockaddr(pid, a[4], a[5])?;
                Some(resolve(sa, inet6_of(&*cx.host, obj), Use::Datagram)?.ok_or(EAFNOSUPPORT)?)
            };
            udp_send(cx, vid, n, obj, dst, &data)
        }
        SYS_sendmsg => send_msghdr(cx, vid, n, obj, a[1]),
        SYS_recvfrom => udp_recv(cx, vid, obj, a[3], &[(a[1], a[2] as usize)], Some(Addr::Ptr(a[4], a[5]))),
        SYS_recvmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            udp_recv(cx, vid, obj, a[2], &bufs, Some(Addr::Msghdr(a[1], m)))
        }
        SYS_listen | SYS_accept | SYS_accept4 => Err(EOPNOTSUPP),
        // struct mmsghdr: a msghdr (56 bytes) and the byte count of that message (+ padding).
        SYS_sendmmsg => {
            let count = (a[2] as usize).min(1024);
            let mut sent = 0;
            for i in 0..count {
                let at = a[1] + i as u64 * 64;
                match send_msghdr(cx, vid, n, obj, at) {
                    Ok(Answer::Value(len)) => {
                        mem::write(pid, at + 56, &(len as u32).to_ne_bytes()).map_err(|_| EFAULT)?;
                        sent += 1;
                    }
                    Ok(other) => return Ok(other),
                    Err(x) if sent == 0 => return Err(x),
                    Err(_) => break,
                }
            }
            Ok(Answer::Value(sent))
        }
        // Like recvmsg for the first datagram (blocking if the socket is); then whatever else is
        // queued, up to vlen (the MSG_WAITFORONE behaviour).
        SYS_recvmmsg => {
            let count = (a[2] as usize).min(1024);
            if count == 0 {
                return Ok(Answer::Value(0));
            }
            let mut got = 0;
            for i in 0..count {
                let at = a[1] + i as u64 * 64;
                let flags = if i == 0 { a[3] } else { a[3] | MSG_DONTWAIT as u64 };
                let m = read_msghdr(pid, at)?;
                let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
                match udp_recv(cx, vid, obj, flags, &bufs, Some(Addr::Msghdr(at, m))) {
                    Ok(Answer::Value(len)) => {
                        mem::write(pid, at + 56, &(len as u32).to_ne_bytes()).map_err(|_| EFAULT)?;
                        got += 1;
                    }
                    Ok(other) => return Ok(other), // the first one blocks
                    Err(x) if got == 0 => return Err(x),
                    Err(_) => break,
                }
            }
            Ok(Answer::Value(got))
        }
        _ => {
            cx.host.unsupported(vid, nr, " (on a UDP socket)", ENOSYS);
            Err(ENOSYS)
        }
    }
}

/// Where a receive reports the sender.
pub(super) enum Addr {
    /// `recvfrom`'s `(addr, addrlen*)`.
    Ptr(u64, u64),
    /// `recvmsg`'s header at this address.
    Msghdr(u64, Msghdr),
}

/// `recvfrom`/`recvmsg` on UDP socket `obj`: the next queued datagram into `bufs` (with its sender
/// at `addr`), or a block until one arrives unless the socket or `flags` say not to wait.
pub(super) fn udp_recv(
    cx: &mut Cx,
    vid: u32,
    obj: usize,
    flags: u64,
    bufs: &[(u64, usize)],
    addr: Option<Addr>,
) -> Result<Answer, i32> {
    let (pid, timed_out, proc) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.timed_out, t.proc)
    };
    let host = &mut *cx.host;
    let nonblock = host.objs[obj].as_ref().is_some_and(|s| s.nonblock) || flags & MSG_DONTWAIT != 0;
    let six = inet6_of(host, obj).is_some();
    let s = udp(host, obj);
    if s.queue.is_empty() {
        if s.shut_rd {
            return Ok(Answer::Value(0));
        }
        if nonblock || timed_out {
            return Err(libc::EAGAIN);
        }
        let timeout = s.options.iter().find(|(k, _)| *k == (libc::SOL_SOCKET, libc::SO_RCVTIMEO)).map(|(_, v)| *v);
        let timeout = timeout.filter(|&us| us > 0).map(|us| us as u64 * 1000);
        return Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout));
    }
    let d = s.dequeue(flags & MSG_PEEK != 0).ok_or(libc::EAGAIN)?;
    let copied = scatter(pid, bufs, &d.data)?;
    let v6 = six.then_some(d.v6);
    match addr {
        Some(Addr::Ptr(a, l)) => write_sockaddr(pid, a, l, d.src, v6)?,
        Some(Addr::Msghdr(at, m)) => finish_msghdr(pid, at, &m, &addr_bytes(d.src, v6), copied < d.data.len())?,
        None => {}
    }
    if let Some(p) = host.procs.get_mut(proc) {
        p.udp_recv += d.data.len() as u64;
    }
    Ok(Answer::Value(if flags & MSG_TRUNC != 0 { d.data.len() } else { copied } as i64))
}

/// Send the datagram described by the `struct msghdr` at `at` in the task's memory (sendmsg, and
/// each message of sendmmsg). Control messages are refused.
pub(super) fn send_msghdr(cx: &mut Cx, vid: u32, n: &Notif, obj: usize, at: u64) -> Result<Answer, i32> {
    use libc::{EAFNOSUPPORT, EOPNOTSUPP};
    let pid = cx.host.tasks[&vid].pid;
    let m = read_msghdr(pid, at)?;
    if m.controllen > 0 {
        cx.host.unsupported(vid, n.data.nr as i64, " (control messages on a UDP socket)", EOPNOTSUPP);
        return Err(EOPNOTSUPP);
    }
    let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
    let data = gather(pid, &bufs)?;
    let dst = if m.name == 0 || m.namelen == 0 {
        None
    } else {
        let sa = read_sockaddr(pid, m.name, m.namelen)?;
        Some(resolve(sa, inet6_of(&*cx.host, obj), Use::Datagram)?.ok_or(EAFNOSUPPORT)?)
    };
    udp_send(cx, vid, n, obj, dst, &data)
}

/// Sends `data` from UDP socket `obj` to `dst` (or its connected peer), binding an ephemeral port
/// first if needed, and hands the datagram to the host's interface (`nic::transmit`).
pub(super) fn udp_send(
    cx: &mut Cx,
    vid: u32,
    n: &Notif,
    obj: usize,
    dst: Option<Peer>,
    data: &[u8],
) -> Result<Answer, i32> {
    if data.len() > MAX_UDP_PAYLOAD {
        return Err(libc::EMSGSIZE);
    }
    // The payload was read from the task: make sure it is still the task that asked.
    let tree = cx.host.tasks[&vid].tree;
    if !cx.host.trees[tree].id_valid(n.id) {
        return Err(libc::EINTR);
    }
    let host = &mut *cx.host;
    let native_peer = inet6_of(host, obj).is_some_and(|six| six.native_peer);
    let s = udp(host, obj);
    if s.shut_wr {
        return Err(libc::EPIPE);
    }
    let (dst, native) = match (dst, s.peer) {
        // Linux's UDP sends to the address given, connected or not.
        (Some(d), _) => ((d.ip, d.port), d.native),
        (None, Some(d)) => (d, native_peer),
        (None, None) => return Err(libc::EDESTADDRREQ),
    };
    if dst.1 == 0 {
        return Err(libc::EINVAL);
    }
    if s.local.is_none() {
        udp_bind(host, obj, Ipv4Addr::UNSPECIFIED, 0)?;
    }
    let local = udp(host, obj).local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
    let dst_ip = if dst.0.is_unspecified() { Ipv4Addr::LOCALHOST } else { dst.0 };
    let src_ip = if !local.0.is_unspecified() {
        local.0
    } else if dst_ip.is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        host.ip
    };
    if dst_ip.is_loopback() && !src_ip.is_loopback() && src_ip != host.ip {
        return Err(libc::EINVAL);
    }
    let mut packet = net::encode((src_ip, local.1), (dst_ip, dst.1), data);
    if native {
        inet6::mark(&mut packet);
    }
    let proc = host.tasks[&vid].proc;
    if let Some(p) = host.procs.get_mut(proc) {
        p.udp_sent += data.len() as u64;
    }
    nic::transmit(cx, packet);
    Ok(Answer::Value(data.len() as i64))
}
