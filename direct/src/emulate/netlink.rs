//! Netlink sockets' calls (`socket(AF_NETLINK, …)`, `bind`, `getsockname`, sends, receives
//! and options) and the interface `ioctl`s (`SIOCGIFCONF`, `SIOCGIFADDR`, …): the messages and
//! the interfaces are [`crate::netlink`]'s.

use super::sockaddr::{gather_max, read_msghdr, write_addr_bytes as write_addr, write_int_option};
use crate::cx::{Answer, Cx};
use crate::host::{BlockKind, Obj};
use crate::mem;
use crate::netlink::*;
use crate::seccomp::Notif;
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// `struct sockaddr_in` bytes of `ip` (port 0).
fn sockaddr_in(ip: Ipv4Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    b[4..8].copy_from_slice(&ip.octets());
    b
}

/// The `SIOCGIF*` ioctls on any socket of a host: the same interfaces as the netlink dumps
/// (glibc's `if_nametoindex`, `if_indextoname` and older code ask this way).
pub(crate) fn interface_ioctl(cx: &Cx, pid: i32, request: u64, arg: u64) -> Result<Answer, i32> {
    let ip = cx.host.ip;
    let links = links(ip, &cx.host.mirrors);
    if request == 0x8912 {
        // SIOCGIFCONF: struct ifconf { int ifc_len; char *ifc_buf; }
        let conf = mem::read(pid, arg, 16).map_err(|_| libc::EFAULT)?;
        let len = i32::from_ne_bytes(conf[0..4].try_into().expect("4 bytes")).max(0) as usize;
        let buf = u64::from_ne_bytes(conf[8..16].try_into().expect("8 bytes"));
        let mut out = Vec::new();
        for l in links.iter().filter(|l| l.addr.is_some()) {
            if buf != 0 && out.len() + 40 > len {
                break;
            }
            let mut r = [0u8; 40];
            r[..l.name.len()].copy_from_slice(l.name.as_bytes());
            r[16..32].copy_from_slice(&sockaddr_in(l.addr.unwrap_or(Ipv4Addr::UNSPECIFIED)));
            out.extend_from_slice(&r);
        }
        if buf != 0 {
            mem::write(pid, buf, &out).map_err(|_| libc::EFAULT)?;
        }
        mem::write(pid, arg, &(out.len() as i32).to_ne_bytes()).map_err(|_| libc::EFAULT)?;
        return Ok(Answer::Value(0));
    }
    let mut req = mem::read(pid, arg, 40).map_err(|_| libc::EFAULT)?;
    let link = if request == 0x8910 {
        let index = i32::from_ne_bytes(req[16..20].try_into().expect("4 bytes"));
        links.iter().find(|l| l.index == index)
    } else {
        let name = req[..16].split(|&c| c == 0).next().unwrap_or(&[]);
        links.iter().find(|l| l.name.as_bytes() == name)
    }
    .ok_or(libc::ENODEV)?;
    match request {
        0x8910 => {
            req[..16].fill(0);
            req[..link.name.len()].copy_from_slice(link.name.as_bytes());
        }
        0x8913 => req[16..18].copy_from_slice(&(link.flags as u16).to_ne_bytes()),
        0x8915 => req[16..32].copy_from_slice(&sockaddr_in(link.addr.ok_or(libc::EADDRNOTAVAIL)?)),
        0x8919 => req[16..32].copy_from_slice(&sockaddr_in(link.broadcast.unwrap_or(Ipv4Addr::UNSPECIFIED))),
        0x891b => req[16..32].copy_from_slice(&sockaddr_in(Ipv4Addr::new(255, 0, 0, 0))),
        0x8921 => req[16..20].copy_from_slice(&(link.mtu as i32).to_ne_bytes()),
        0x8927 => {
            req[16..18].copy_from_slice(&link.arp_type.to_ne_bytes());
            req[18..24].copy_from_slice(&link.mac);
        }
        _ => req[16..20].copy_from_slice(&link.index.to_ne_bytes()), // SIOCGIFINDEX
    }
    mem::write(pid, arg, &req).map_err(|_| libc::EFAULT)?;
    Ok(Answer::Value(0))
}

/// The netlink socket behind emulated object `obj`.
fn sock<'a>(cx: &'a mut Cx<'_>, obj: usize) -> Option<&'a mut NetlinkSocket> {
    match cx.host.obj_mut(obj) {
        Some(Obj::Netlink(s)) => Some(s),
        _ => None,
    }
}

/// `socket(AF_NETLINK, type, protocol)`: `NETLINK_ROUTE` only.
pub(crate) fn socket(cx: &mut Cx, vid: u32, nr: i64, ty: i32, proto: i32) -> Answer {
    let kind = ty & 0xf;
    if proto != libc::NETLINK_ROUTE || !(kind == libc::SOCK_RAW || kind == libc::SOCK_DGRAM) {
        cx.host.unsupported(
            vid,
            nr,
            &format!(" (netlink protocol {proto} type {kind}; only NETLINK_ROUTE)"),
            libc::EPROTONOSUPPORT,
        );
        return Answer::Errno(libc::EPROTONOSUPPORT);
    }
    let s = NetlinkSocket { ty: kind, port: None, groups: 0, queue: VecDeque::new(), changes: 0 };
    let obj = cx.host.add_obj(Obj::Netlink(Box::new(s)), ty & libc::SOCK_NONBLOCK != 0);
    Answer::AddFd { src: cx.shared.devnull.as_raw_fd(), cloexec: ty & libc::SOCK_CLOEXEC != 0, obj }
}

/// The port of `obj`, binding it automatically (ports are numbered per host from the object's
/// slot, so they are the same on every run).
fn port(cx: &mut Cx, obj: usize) -> Result<u32, i32> {
    let s = sock(cx, obj).ok_or(libc::EBADF)?;
    Ok(*s.port.get_or_insert(0x4000_0000 | obj as u32))
}

/// `struct sockaddr_nl` bytes.
fn sockaddr_nl(port: u32, groups: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0..2].copy_from_slice(&NL_FAMILY.to_ne_bytes());
    b[4..8].copy_from_slice(&port.to_ne_bytes());
    b[8..12].copy_from_slice(&groups.to_ne_bytes());
    b
}

/// Take the request bytes in `bufs` (`write`, `sendto`, `sendmsg`) and queue the answers.
pub(crate) fn request(cx: &mut Cx, pid: i32, obj: usize, bufs: &[(u64, usize)]) -> Result<Answer, i32> {
    let data = gather_max(pid, bufs, MAX_REQUEST)?;
    let total = data.len();
    let port = port(cx, obj)?;
    let ip = cx.host.ip;
    let answers = answer(&data, port, ip, &cx.host.mirrors);
    let s = sock(cx, obj).ok_or(libc::EBADF)?;
    for a in answers {
        s.queue.push_back(a);
        s.changes += 1;
    }
    cx.host.progress += 1;
    Ok(Answer::Value(total as i64))
}

/// Hand the next answer to `bufs`; `name` receives the kernel's address. Returns the byte count
/// (the whole datagram's with `MSG_TRUNC`) and whether it was truncated.
fn receive(
    cx: &mut Cx,
    pid: i32,
    obj: usize,
    flags: u64,
    bufs: &[(u64, usize)],
) -> Result<Result<(usize, bool), Answer>, i32> {
    let nonblock = cx.host.objs[obj].as_ref().is_some_and(|s| s.nonblock) || flags & libc::MSG_DONTWAIT as u64 != 0;
    let s = sock(cx, obj).ok_or(libc::EBADF)?;
    let Some(d) = (if flags & libc::MSG_PEEK as u64 != 0 { s.queue.front().cloned() } else { s.queue.pop_front() })
    else {
        return if nonblock { Err(libc::EAGAIN) } else { Ok(Err(Answer::Block(BlockKind::Io { since: 0 }, None))) };
    };
    let copied = super::sockaddr::scatter(pid, bufs, &d)?;
    let n = if flags & libc::MSG_TRUNC as u64 != 0 { d.len() } else { copied };
    Ok(Ok((n, copied < d.len())))
}

/// `read` of a netlink socket.
pub(crate) fn read(cx: &mut Cx, pid: i32, obj: usize, bufs: &[(u64, usize)]) -> Result<Answer, i32> {
    Ok(match receive(cx, pid, obj, 0, bufs)? {
        Ok((n, _)) => Answer::Value(n as i64),
        Err(block) => block,
    })
}

/// The socket calls on a netlink socket.
#[allow(non_upper_case_globals)]
pub(crate) fn call(cx: &mut Cx, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let nr = n.data.nr as i64;
    let a = n.data.args;
    let pid = cx.host.tasks[&vid].pid;
    match nr {
        SYS_bind => {
            let b = mem::read(pid, a[1], (a[2] as usize).min(12)).map_err(|_| EFAULT)?;
            if b.len() < 12 || u16::from_ne_bytes([b[0], b[1]]) != NL_FAMILY {
                return Err(EINVAL);
            }
            let want = u32::from_ne_bytes(b[4..8].try_into().expect("4 bytes"));
            let groups = u32::from_ne_bytes(b[8..12].try_into().expect("4 bytes"));
            let s = sock(cx, obj).ok_or(EBADF)?;
            s.groups = groups;
            if want != 0 {
                s.port = Some(want);
            }
            port(cx, obj)?;
            Ok(Answer::Value(0))
        }
        SYS_connect | SYS_shutdown => Ok(Answer::Value(0)),
        SYS_getsockname => {
            let port = port(cx, obj)?;
            let groups = sock(cx, obj).ok_or(EBADF)?.groups;
            write_addr(pid, a[1], a[2], &sockaddr_nl(port, groups))?;
            Ok(Answer::Value(0))
        }
        SYS_getpeername => {
            write_addr(pid, a[1], a[2], &sockaddr_nl(0, 0))?;
            Ok(Answer::Value(0))
        }
        SYS_setsockopt => Ok(Answer::Value(0)),
        SYS_getsockopt => {
            let ty = sock(cx, obj).ok_or(EBADF)?.ty;
            let v: i32 = match (a[1] as i32, a[2] as i32) {
                (SOL_SOCKET, SO_TYPE) => ty,
                (SOL_SOCKET, SO_DOMAIN) => AF_NETLINK,
                (SOL_SOCKET, SO_PROTOCOL) => NETLINK_ROUTE,
                (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => 212_992,
                (SOL_SOCKET, _) | (SOL_NETLINK, _) => 0,
                _ => return Err(ENOPROTOOPT),
            };
            write_int_option(pid, a[3], a[4], v)
        }
        SYS_sendto => request(cx, pid, obj, &[(a[1], a[2] as usize)]),
        SYS_sendmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            request(cx, pid, obj, &bufs)
        }
        SYS_recvfrom => Ok(match receive(cx, pid, obj, a[3], &[(a[1], a[2] as usize)])? {
            Ok((n, _)) => {
                write_addr(pid, a[4], a[5], &sockaddr_nl(0, 0))?;
                Answer::Value(n as i64)
            }
            Err(block) => block,
        }),
        SYS_recvmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            Ok(match receive(cx, pid, obj, a[2], &bufs)? {
                Ok((n, truncated)) => {
                    super::sockaddr::finish_msghdr(pid, a[1], &m, &sockaddr_nl(0, 0), truncated)?;
                    Answer::Value(n as i64)
                }
                Err(block) => block,
            })
        }
        _ => Err(EOPNOTSUPP),
    }
}
