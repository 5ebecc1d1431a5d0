//! Packet sockets' calls (`socket(AF_PACKET, …)`, `bind`, `getsockname`, receives and options):
//! the sockets and what they capture are [`crate::packet`]'s; the host's card copies packets to
//! them ([`crate::nic::capture`]).

use super::sockaddr::{Msghdr, read_msghdr, write_addr_bytes, write_int_option};
use crate::cx::{Answer, Cx};
use crate::host::{BlockKind, Host, Obj};
use crate::mem;
use crate::packet::*;
use crate::seccomp::Notif;
use std::os::fd::AsRawFd;

/// The packet socket behind emulated object `obj`.
fn sock(host: &mut Host, obj: usize) -> Option<&mut PacketSocket> {
    match host.obj_mut(obj) {
        Some(Obj::Packet(s)) => Some(s),
        _ => None,
    }
}

/// `socket(AF_PACKET, type, protocol)`: `SOCK_DGRAM` or `SOCK_RAW`; `protocol` in network order.
pub(crate) fn socket(cx: &mut Cx, vid: u32, nr: i64, ty: i32, proto: i32) -> Answer {
    let kind = ty & 0xf;
    if kind != libc::SOCK_DGRAM && kind != libc::SOCK_RAW {
        cx.host.unsupported(
            vid,
            nr,
            &format!(" (AF_PACKET type {kind}; only SOCK_DGRAM and SOCK_RAW)"),
            libc::ESOCKTNOSUPPORT,
        );
        return Answer::Errno(libc::ESOCKTNOSUPPORT);
    }
    let s = PacketSocket::new(kind == libc::SOCK_DGRAM, u16::from_be(proto as u16));
    cx.host.packet_sockets += 1;
    let obj = cx.host.add_obj(Obj::Packet(Box::new(s)), ty & libc::SOCK_NONBLOCK != 0);
    Answer::AddFd { src: cx.shared.devnull.as_raw_fd(), cloexec: ty & libc::SOCK_CLOEXEC != 0, obj }
}

/// The link address of interface `ifindex` of `host`.
fn mac(host: &Host, ifindex: i32) -> [u8; 6] {
    crate::netlink::links(host.ip, &host.mirrors).iter().find(|l| l.index == ifindex).map_or([0; 6], |l| l.mac)
}

/// The socket calls on a packet socket.
#[allow(non_upper_case_globals)]
pub(crate) fn call(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let nr = n.data.nr as i64;
    let a = n.data.args;
    let pid = cx.host.tasks[&vid].pid;
    match nr {
        SYS_bind => {
            if a[2] < 20 {
                return Err(EINVAL); // shorter than a sockaddr_ll, as packet_bind refuses
            }
            let b = mem::read(pid, a[1], 20).map_err(|_| EFAULT)?;
            if u16::from_ne_bytes([b[0], b[1]]) != AF_PACKET as u16 {
                return Err(EINVAL);
            }
            let protocol = u16::from_be_bytes([b[2], b[3]]);
            let ifindex = i32::from_ne_bytes(b[4..8].try_into().expect("4 bytes"));
            let host = &mut *cx.host;
            if ifindex != 0 && !crate::netlink::links(host.ip, &host.mirrors).iter().any(|l| l.index == ifindex) {
                return Err(ENODEV);
            }
            let s = sock(host, obj).ok_or(EBADF)?;
            s.ifindex = ifindex;
            if protocol != 0 {
                s.protocol = protocol;
            }
            Ok(Answer::Value(0))
        }
        SYS_getsockname => {
            let host = &mut *cx.host;
            let (protocol, ifindex) = sock(host, obj).map(|s| (s.protocol, s.ifindex)).ok_or(EBADF)?;
            // As packet_getname: the link address only for a bound socket (12 bytes without).
            let mut b = sockaddr_ll(protocol, ifindex, PACKET_HOST, mac(host, ifindex));
            let len = if ifindex == 0 {
                b[8..12].fill(0);
                12
            } else {
                18
            };
            write_addr_bytes(pid, a[1], a[2], &b[..len])?;
            Ok(Answer::Value(0))
        }
        SYS_setsockopt => {
            let (level, name) = (a[1] as i32, a[2] as i32);
            let val = mem::read(pid, a[3], (a[4] as usize).min(16)).map_err(|_| EFAULT)?;
            let int = if val.len() >= 4 { i32::from_ne_bytes([val[0], val[1], val[2], val[3]]) } else { 0 };
            match (level, name) {
                // Promiscuous mode and multicast groups: a simulated link carries only the host's
                // own packets, which the socket sees anyway.
                (SOL_PACKET, PACKET_ADD_MEMBERSHIP | PACKET_DROP_MEMBERSHIP) => Ok(Answer::Value(0)),
                (SOL_PACKET, PACKET_IGNORE_OUTGOING) => {
                    sock(&mut *cx.host, obj).ok_or(EBADF)?.ignore_outgoing = int != 0;
                    Ok(Answer::Value(0))
                }
                (SOL_SOCKET, SO_RCVBUF) => {
                    sock(&mut *cx.host, obj).ok_or(EBADF)?.rcvbuf = (int.max(1152) as usize) * 2;
                    Ok(Answer::Value(0))
                }
                _ => {
                    cx.host.unsupported(
                        vid,
                        nr,
                        &format!(" (packet socket option level {level} name {name})"),
                        ENOPROTOOPT,
                    );
                    Err(ENOPROTOOPT)
                }
            }
        }
        SYS_getsockopt => {
            let s = sock(&mut *cx.host, obj).ok_or(EBADF)?;
            let v: i32 = match (a[1] as i32, a[2] as i32) {
                (SOL_SOCKET, SO_TYPE) => {
                    if s.cooked {
                        SOCK_DGRAM
                    } else {
                        SOCK_RAW
                    }
                }
                (SOL_SOCKET, SO_DOMAIN) => AF_PACKET,
                (SOL_SOCKET, SO_PROTOCOL) => i32::from(s.protocol.to_be()),
                (SOL_SOCKET, SO_RCVBUF) => s.rcvbuf as i32,
                (SOL_SOCKET, SO_ERROR) => 0,
                _ => return Err(ENOPROTOOPT),
            };
            write_int_option(pid, a[3], a[4], v)
        }
        SYS_recvfrom => receive(cx, vid, obj, a[3], &[(a[1], a[2] as usize)], Name::Ptr(a[4], a[5])),
        SYS_recvmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            receive(cx, vid, obj, a[2], &bufs, Name::Msghdr(a[1], m))
        }
        // As Linux's packet sockets: no connections.
        SYS_connect | SYS_listen | SYS_accept | SYS_accept4 | SYS_shutdown | SYS_getpeername => Err(EOPNOTSUPP),
        _ => {
            cx.host.unsupported(vid, nr, " (on a packet socket: only receiving is emulated)", EOPNOTSUPP);
            Err(EOPNOTSUPP)
        }
    }
}

/// Where a receive reports the packet's `sockaddr_ll`.
pub(crate) enum Name {
    /// None (`read`).
    Nowhere,
    /// `recvfrom`'s `(addr, addrlen*)`.
    Ptr(u64, u64),
    /// `recvmsg`'s header at this address.
    Msghdr(u64, Msghdr),
}

/// `read`/`recvfrom`/`recvmsg`: the next captured packet into `bufs` (its address to `name`), or a
/// block until one is captured unless the socket or `flags` say not to wait. With `MSG_TRUNC`
/// the whole packet's length is returned, as the kernel does.
pub(crate) fn receive(
    cx: &mut Cx,
    vid: u32,
    obj: usize,
    flags: u64,
    bufs: &[(u64, usize)],
    name: Name,
) -> Result<Answer, i32> {
    let (pid, timed_out) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.timed_out)
    };
    let host = &mut *cx.host;
    if flags & libc::MSG_ERRQUEUE as u64 != 0 {
        return Err(libc::EAGAIN); // no error queue: nothing is ever sent
    }
    let nonblock = host.objs[obj].as_ref().is_some_and(|s| s.nonblock) || flags & libc::MSG_DONTWAIT as u64 != 0;
    let s = sock(host, obj).ok_or(libc::EBADF)?;
    let Some(c) = s.dequeue(flags & libc::MSG_PEEK as u64 != 0) else {
        if nonblock || timed_out {
            return Err(libc::EAGAIN);
        }
        return Ok(Answer::Block(BlockKind::Io { since: 0 }, None));
    };
    let copied = super::sockaddr::scatter(pid, bufs, &c.frame)?;
    let addr = sockaddr_ll(ETH_P_IP, c.ifindex, c.pkttype, c.src_mac);
    match name {
        Name::Nowhere => {}
        Name::Ptr(a, l) => write_addr_bytes(pid, a, l, &addr)?,
        Name::Msghdr(at, m) => super::sockaddr::finish_msghdr(pid, at, &m, &addr, copied < c.frame.len())?,
    }
    Ok(Answer::Value(if flags & libc::MSG_TRUNC as u64 != 0 { c.frame.len() } else { copied } as i64))
}
