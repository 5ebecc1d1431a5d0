//! Sockets: `socket`, the socket calls on emulated UDP sockets (TCP is [`crate::tcp`], netlink
//! [`crate::netlink`]) and on native ones, socket-address helpers, and packet delivery.

use super::fd::{counted_read, counted_write, native_io};
use super::{Call, NS, errno, fd_entry};
use crate::engine::{Answer, DirectEngine, new_udp};
use crate::host::{BlockKind, Host, Obj};
use crate::inet6::{self, Bound, Inet6, SOCKADDR_IN6_LEN, SOCKADDR_IN6_MIN, Target};
use crate::seccomp::Notif;
use crate::{mem, nic, tcp};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use thermocline_net::udp::{self as net, Datagram, MAX_UDP_PAYLOAD};

/// `socket`. An `AF_INET6` UDP or TCP socket is the same emulated socket as an `AF_INET` one,
/// with an IPv6 side ([`Inet6`]) that translates its addresses (see [`crate::inet6`]).
pub(super) fn socket(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, nr, a, .. } = *c;
    use libc::*;
    let (domain, ty, proto) = (a[0] as i32, a[1] as i32, a[2] as i32);
    let inet = domain == AF_INET || domain == AF_INET6;
    match domain {
        AF_UNIX => Answer::Continue,
        AF_NETLINK => crate::netlink::socket(e, h, vid, nr, ty, proto),
        _ if inet && ty & 0xf == SOCK_DGRAM && (proto == 0 || proto == IPPROTO_UDP) => {
            let obj = add_inet(&mut e.hosts[h], new_udp(), ty, domain);
            Answer::AddFd { src: e.udp_placeholder.as_raw_fd(), cloexec: ty & SOCK_CLOEXEC != 0, obj }
        }
        _ if inet && ty & 0xf == SOCK_STREAM && (proto == 0 || proto == IPPROTO_TCP) => {
            let obj = add_inet(&mut e.hosts[h], Obj::Tcp(Box::default()), ty, domain);
            Answer::AddFd { src: e.tcp_placeholder_fd(), cloexec: ty & SOCK_CLOEXEC != 0, obj }
        }
        _ if inet => {
            e.unsupported(
                h,
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
            e.unsupported(h, vid, nr, &format!(" (address family {domain})"), EAFNOSUPPORT);
            Answer::Errno(EAFNOSUPPORT)
        }
    }
}

/// Add socket object `obj` of family `domain` (`AF_INET` or `AF_INET6`) to `host`.
fn add_inet(host: &mut Host, obj: Obj, ty: i32, domain: i32) -> usize {
    let i = host.add_obj(obj, ty & libc::SOCK_NONBLOCK != 0);
    if domain == libc::AF_INET6 {
        host.has_inet6 = true;
        if let Some(slot) = host.objs[i].as_mut() {
            slot.inet6 = Some(Inet6::default());
        }
    }
    i
}

/// The IPv6 side of socket object `obj`, if it is an `AF_INET6` socket.
pub(crate) fn inet6_of(host: &Host, obj: usize) -> Option<&Inet6> {
    host.objs.get(obj)?.as_ref()?.inet6.as_ref()
}

/// The IPv6 side of socket object `obj`, mutably.
pub(crate) fn inet6_mut(host: &mut Host, obj: usize) -> Option<&mut Inet6> {
    host.objs.get_mut(obj)?.as_mut()?.inet6.as_mut()
}

/// `socketpair`.
pub(super) fn socketpair(c: &Call) -> Answer {
    let Call { a, .. } = *c;
    use libc::*;
    if a[0] as i32 == AF_UNIX { Answer::Continue } else { Answer::Errno(EOPNOTSUPP) }
}

/// `call`.
#[allow(non_upper_case_globals)]
pub(super) fn call(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, nr, a, n, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
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
                _ if receives => counted_read(e, h, vid, if dontwait { -1 } else { a[0] as i32 }),
                _ if sends && !dontwait => {
                    let answer = native_io(e, h, vid, a[0] as i32, POLLOUT);
                    counted_write(e, h, answer)
                }
                _ if sends || nr == SYS_connect => counted_write(e, h, Answer::Continue),
                SYS_accept | SYS_accept4 => native_io(e, h, vid, a[0] as i32, POLLIN),
                SYS_shutdown => {
                    e.hosts[h].native_edges.both();
                    Answer::Continue
                }
                _ => Answer::Continue,
            }
        }
        Some(f) => {
            if let Some(r) = inet6_option(e, h, vid, n, f.obj) {
                return errno(r);
            }
            match e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj) {
                Some(Obj::Udp(_)) => errno(socket_call(e, h, vid, n, f.obj)),
                Some(Obj::Tcp(_)) => errno(tcp::call(e, h, vid, n, f.obj)),
                Some(Obj::Netlink(_)) => errno(crate::netlink::call(e, h, vid, n, f.obj)),
                _ => Answer::Errno(ENOTSOCK),
            }
        }
    }
}

/// `sendfile`.
pub(super) fn sendfile(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, a, n, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
        Some(f) if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::Tcp(_))) => {
            errno(tcp::sendfile(e, h, vid, n, f.obj))
        }
        Some(_) => Answer::Errno(EINVAL),
        None => {
            let answer = native_io(e, h, vid, a[0] as i32, POLLOUT);
            counted_write(e, h, answer)
        }
    }
}

pub(super) const MSG_PEEK: u64 = 0x2;
pub(super) const MSG_TRUNC: u64 = 0x20;
pub(super) const MSG_DONTWAIT: u64 = 0x40;

pub(super) fn sockaddr_bytes(addr: (Ipv4Addr, u16)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&addr.1.to_be_bytes());
    b[4..8].copy_from_slice(&addr.0.octets());
    b
}

/// A socket address read from a task.
pub(crate) enum SockAddr {
    /// An IPv4 address and port.
    Inet(Ipv4Addr, u16),
    /// An IPv6 address (what it stands for) and port.
    Inet6(Target, u16),
    /// `AF_UNSPEC`.
    Unspec,
}

/// Read the socket address of `len` bytes at `addr` of task `pid`.
pub(crate) fn read_sockaddr(pid: i32, addr: u64, len: u64) -> Result<SockAddr, i32> {
    if len < 2 {
        return Err(libc::EINVAL);
    }
    let b = mem::read(pid, addr, (len as usize).min(SOCKADDR_IN6_LEN)).map_err(|_| libc::EFAULT)?;
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    let port = || u16::from_be_bytes([b[2], b[3]]);
    match family {
        libc::AF_INET if b.len() >= 8 => Ok(SockAddr::Inet(Ipv4Addr::new(b[4], b[5], b[6], b[7]), port())),
        libc::AF_INET6 if b.len() >= SOCKADDR_IN6_MIN => {
            let ip: [u8; 16] = b[8..24].try_into().map_err(|_| libc::EINVAL)?;
            Ok(SockAddr::Inet6(inet6::classify(Ipv6Addr::from(ip)), port()))
        }
        libc::AF_INET | libc::AF_INET6 => Err(libc::EINVAL),
        libc::AF_UNSPEC => Ok(SockAddr::Unspec),
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// An address of the simulated (IPv4) network that a program named, and whether it named it as
/// a native IPv6 address (an IPv6 flow) rather than an IPv4 or IPv4-mapped one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// The IPv4 address.
    pub ip: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// Native IPv6.
    pub native: bool,
}

/// What a socket address is given for: the errors for a wrong family differ, as in Linux.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// `bind`.
    Bind,
    /// `connect` of a TCP socket.
    TcpConnect,
    /// `connect`, `sendto` or `sendmsg` of a UDP socket.
    Datagram,
}

/// Resolve socket address `sa` given to a socket with IPv6 side `six` (`None`: `AF_INET`) for
/// `what`: the address in the simulated network, or `None` for `AF_UNSPEC`. Errors as Linux's:
/// an IPv6 address to an `AF_INET` socket is `EAFNOSUPPORT`; an IPv4-mapped one to an
/// `IPV6_V6ONLY` socket `EINVAL` (bind) or `ENETUNREACH`; an IPv6 address outside the simulation
/// `EADDRNOTAVAIL` (bind) or `ENETUNREACH`. A dual-stack datagram socket takes `sockaddr_in`
/// too (Linux passes it to IPv4).
pub(crate) fn resolve(sa: SockAddr, six: Option<&Inet6>, what: Use) -> Result<Option<Peer>, i32> {
    use libc::{EADDRNOTAVAIL, EAFNOSUPPORT, EINVAL, ENETUNREACH};
    let Some(six) = six else {
        return match sa {
            SockAddr::Inet(ip, port) => Ok(Some(Peer { ip, port, native: false })),
            SockAddr::Inet6(..) => Err(EAFNOSUPPORT),
            SockAddr::Unspec => Ok(None),
        };
    };
    let unreachable = if what == Use::Bind { EADDRNOTAVAIL } else { ENETUNREACH };
    match sa {
        SockAddr::Unspec => Ok(None),
        SockAddr::Inet(..) if what != Use::Datagram => Err(EINVAL),
        SockAddr::Inet(..) if six.v6only => Err(EAFNOSUPPORT),
        SockAddr::Inet(ip, port) => Ok(Some(Peer { ip, port, native: false })),
        SockAddr::Inet6(Target::Unreachable, _) => Err(unreachable),
        SockAddr::Inet6(Target::Mapped(_), _) if six.v6only => {
            Err(if what == Use::Bind { EINVAL } else { ENETUNREACH })
        }
        SockAddr::Inet6(Target::Mapped(_), _) if what != Use::Bind && six.bound == Bound::Native => Err(ENETUNREACH),
        SockAddr::Inet6(Target::Native(_), _) if what != Use::Bind && six.bound == Bound::Mapped => Err(ENETUNREACH),
        SockAddr::Inet6(Target::Mapped(ip), port) => Ok(Some(Peer { ip, port, native: false })),
        SockAddr::Inet6(Target::Native(ip), port) => Ok(Some(Peer { ip, port, native: true })),
    }
}

/// `bind` of socket `obj` (UDP or TCP) to `sa`: the address resolved for the socket's family,
/// its IPv6 binding noted, and `bind` (the protocol's own) run, the note undone if that fails.
pub(crate) fn bind_with(
    host: &mut Host,
    obj: usize,
    sa: SockAddr,
    bind: fn(&mut Host, usize, Ipv4Addr, u16) -> Result<(), i32>,
) -> Result<Answer, i32> {
    let p = resolve(sa, inet6_of(host, obj), Use::Bind)?.ok_or(libc::EAFNOSUPPORT)?;
    let kind = bound_kind(&p);
    let before = inet6_mut(host, obj).map(|six| std::mem::replace(&mut six.bound, kind));
    let bound = bind(host, obj, p.ip, p.port);
    if let (Err(_), Some(before), Some(six)) = (bound, before, inet6_mut(host, obj)) {
        six.bound = before;
    }
    bound.map(|_| Answer::Value(0))
}

/// What binding an `AF_INET6` socket to `p` makes it.
pub(crate) fn bound_kind(p: &Peer) -> Bound {
    match (p.native, p.ip.is_unspecified()) {
        (true, true) => Bound::Any,
        (true, false) => Bound::Native,
        (false, _) => Bound::Mapped,
    }
}

/// The bytes of socket address `sa` as a socket of this kind sees it: `sockaddr_in` for an
/// `AF_INET` socket (`v6` `None`), else `sockaddr_in6` with the address in its native IPv6 form
/// (`Some(true)`) or IPv4-mapped (`Some(false)`).
pub(crate) fn addr_bytes(sa: (Ipv4Addr, u16), v6: Option<bool>) -> Vec<u8> {
    match v6 {
        None => sockaddr_bytes(sa).to_vec(),
        Some(native) => inet6::sockaddr_in6(inet6::shown(sa.0, native), sa.1).to_vec(),
    }
}

/// Write a socket address to `addr` with its length at `len_ptr` (value-result), as the kernel
/// does: truncated to the caller's buffer, full length reported. `v6` as for [`addr_bytes`].
pub(crate) fn write_sockaddr(
    pid: i32,
    addr: u64,
    len_ptr: u64,
    sa: (Ipv4Addr, u16),
    v6: Option<bool>,
) -> Result<(), i32> {
    write_addr_bytes(pid, addr, len_ptr, &addr_bytes(sa, v6))
}

/// `IPPROTO_IPV6` options and `SO_DOMAIN` of an `AF_INET6` socket `obj` (UDP or TCP), or `None`
/// when the call is not one of these (the socket's own handler answers it).
#[allow(non_upper_case_globals)]
fn inet6_option(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif, obj: usize) -> Option<Result<Answer, i32>> {
    use libc::*;
    let a = n.data.args;
    let nr = n.data.nr as i64;
    let (level, name) = (a[1] as i32, a[2] as i32);
    let host = &mut e.hosts[h];
    let pid = host.tasks[&vid].pid;
    inet6_of(host, obj)?;
    let bound = match host.objs[obj].as_ref().map(|s| &s.obj) {
        Some(Obj::Udp(u)) => u.local.is_some(),
        Some(Obj::Tcp(t)) => t.local.is_some(),
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
            e.unsupported(h, vid, nr, &format!(" (IPv6 option {name})"), ENOPROTOOPT);
            Some(Err(ENOPROTOOPT))
        }
        _ => None,
    }
}

/// Answer a `getsockopt` of an `int` option: `v` to `optval`, cut to the caller's `*optlen`,
/// and the length written back.
pub(crate) fn write_int_option(pid: i32, optval: u64, optlen: u64, v: i32) -> Result<Answer, i32> {
    let lb = mem::read(pid, optlen, 4).map_err(|_| libc::EFAULT)?;
    let cap = u32::from_ne_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize;
    mem::write(pid, optval, &v.to_ne_bytes()[..cap.min(4)]).map_err(|_| libc::EFAULT)?;
    mem::write(pid, optlen, &(cap.min(4) as u32).to_ne_bytes()).map_err(|_| libc::EFAULT)?;
    Ok(Answer::Value(0))
}

/// Write the socket address `bytes` to `(addr, *len_ptr)` of task `pid` (the `accept`,
/// `getsockname`, `recvfrom` convention): cut to the caller's room, the full length reported.
pub(crate) fn write_addr_bytes(pid: i32, addr: u64, len_ptr: u64, bytes: &[u8]) -> Result<(), i32> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let lb = mem::read(pid, len_ptr, 4).map_err(|_| libc::EFAULT)?;
    let cap = u32::from_ne_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize;
    mem::write(pid, addr, &bytes[..cap.min(bytes.len())]).map_err(|_| libc::EFAULT)?;
    mem::write(pid, len_ptr, &(bytes.len() as u32).to_ne_bytes()).map_err(|_| libc::EFAULT)
}

pub(super) fn gather(pid: i32, bufs: &[(u64, usize)]) -> Result<Vec<u8>, i32> {
    gather_max(pid, bufs, MAX_UDP_PAYLOAD)
}

/// The bytes of the task's buffers `bufs`, at most `max` in all (`EMSGSIZE` beyond).
pub(crate) fn gather_max(pid: i32, bufs: &[(u64, usize)], max: usize) -> Result<Vec<u8>, i32> {
    let total: usize = bufs.iter().map(|b| b.1).sum();
    if total > max {
        return Err(libc::EMSGSIZE);
    }
    let mut data = Vec::with_capacity(total);
    for &(addr, len) in bufs {
        data.extend_from_slice(&mem::read(pid, addr, len).map_err(|_| libc::EFAULT)?);
    }
    Ok(data)
}

pub(super) fn udp(host: &mut Host, obj: usize) -> &mut net::UdpSocket {
    match host.obj_mut(obj) {
        Some(Obj::Udp(u)) => u,
        _ => unreachable!("checked to be a live UDP socket"),
    }
}

pub(super) fn ephemeral_port(host: &mut Host) -> Result<u16, i32> {
    for _ in 0..16384 {
        let p = host.next_port;
        host.next_port = if p == 65535 { 49152 } else { p + 1 };
        if !host.ports.contains_key(&p) && !host.ports6.contains_key(&p) {
            return Ok(p);
        }
    }
    Err(libc::EADDRINUSE)
}

pub(super) fn udp_bind(host: &mut Host, obj: usize, ip: Ipv4Addr, port: u16) -> Result<(), i32> {
    if udp(host, obj).local.is_some() {
        return Err(libc::EINVAL);
    }
    if !(ip.is_unspecified() || ip.is_loopback() || ip == host.ip) {
        return Err(libc::EADDRNOTAVAIL);
    }
    let fams = families(host, obj);
    let port = if port == 0 { ephemeral_port(host)? } else { port };
    // Two sockets can hold a port only when they take different families (an `AF_INET` one and
    // an `IPV6_V6ONLY` one), as on Linux.
    let v4_holder = host.ports.get(&port).is_some_and(|&o| {
        let theirs = families(host, o);
        (fams.0 && theirs.0) || (fams.1 && theirs.1)
    });
    if v4_holder || (fams.1 && host.ports6.contains_key(&port)) {
        return Err(libc::EADDRINUSE);
    }
    if fams.0 {
        host.ports.insert(port, obj)
    } else {
        host.ports6.insert(port, obj)
    };
    udp(host, obj).local = Some((ip, port));
    Ok(())
}

/// The families of peers socket `obj` takes: (IPv4, IPv6).
fn families(host: &Host, obj: usize) -> (bool, bool) {
    inet6_of(host, obj).map_or((true, false), Inet6::families)
}

#[allow(non_upper_case_globals)]
pub(super) fn socket_call(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let a = n.data.args;
    let nr = n.data.nr as i64;
    let pid = e.hosts[h].tasks[&vid].pid;
    match nr {
        SYS_bind => bind_with(&mut e.hosts[h], obj, read_sockaddr(pid, a[1], a[2])?, udp_bind),
        SYS_connect => {
            let sa = read_sockaddr(pid, a[1], a[2])?;
            let host = &mut e.hosts[h];
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
            let host = &mut e.hosts[h];
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
            let host = &mut e.hosts[h];
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
            let s = udp(&mut e.hosts[h], obj);
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
                    e.unsupported(h, vid, nr, &format!(" (option level {level} name {name})"), ENOPROTOOPT);
                    return Err(ENOPROTOOPT);
                }
            }
            Ok(Answer::Value(0))
        }
        SYS_getsockopt => {
            let (level, name) = (a[1] as i32, a[2] as i32);
            let s = udp(&mut e.hosts[h], obj);
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
            let s = udp(&mut e.hosts[h], obj);
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
            e.hosts[h].progress += 1;
            Ok(Answer::Value(0))
        }
        SYS_sendto => {
            let data = gather(pid, &[(a[1], a[2] as usize)])?;
            let dst = if a[4] == 0 {
                None
            } else {
                let sa = read_sockaddr(pid, a[4], a[5])?;
                Some(resolve(sa, inet6_of(&e.hosts[h], obj), Use::Datagram)?.ok_or(EAFNOSUPPORT)?)
            };
            udp_send(e, h, vid, n, obj, dst, &data)
        }
        SYS_sendmsg => send_msghdr(e, h, vid, n, obj, a[1]),
        SYS_recvfrom => udp_recv(e, h, vid, obj, a[3], &[(a[1], a[2] as usize)], Some(Addr::Ptr(a[4], a[5]))),
        SYS_recvmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            udp_recv(e, h, vid, obj, a[2], &bufs, Some(Addr::Msghdr(a[1], m)))
        }
        SYS_listen | SYS_accept | SYS_accept4 => Err(EOPNOTSUPP),
        // struct mmsghdr: a msghdr (56 bytes) and the byte count of that message (+ padding).
        SYS_sendmmsg => {
            let count = (a[2] as usize).min(1024);
            let mut sent = 0;
            for i in 0..count {
                let at = a[1] + i as u64 * 64;
                match send_msghdr(e, h, vid, n, obj, at) {
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
                match udp_recv(e, h, vid, obj, flags, &bufs, Some(Addr::Msghdr(at, m))) {
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
            e.unsupported(h, vid, nr, " (on a UDP socket)", ENOSYS);
            Err(ENOSYS)
        }
    }
}

/// The fields of a `struct msghdr` the emulation uses.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Msghdr {
    /// `msg_name`.
    pub name: u64,
    /// `msg_namelen`.
    pub namelen: u64,
    /// `msg_iov`.
    pub iov: u64,
    /// `msg_iovlen`.
    pub iovlen: usize,
    /// `msg_controllen`.
    pub controllen: u64,
}

/// Read the `struct msghdr` at `addr` of task `pid`.
pub(crate) fn read_msghdr(pid: i32, addr: u64) -> Result<Msghdr, i32> {
    let b = mem::read(pid, addr, 56).map_err(|_| libc::EFAULT)?;
    let u = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    Ok(Msghdr { name: u(0), namelen: u(8) & 0xffff_ffff, iov: u(16), iovlen: u(24) as usize, controllen: u(40) })
}

/// Where a receive reports the sender.
pub(super) enum Addr {
    /// `recvfrom`'s `(addr, addrlen*)`.
    Ptr(u64, u64),
    /// `recvmsg`'s header at this address.
    Msghdr(u64, Msghdr),
}

pub(super) fn udp_recv(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    obj: usize,
    flags: u64,
    bufs: &[(u64, usize)],
    addr: Option<Addr>,
) -> Result<Answer, i32> {
    let (pid, timed_out, proc) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out, t.proc)
    };
    let host = &mut e.hosts[h];
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
    let mut copied = 0usize;
    for &(base, len) in bufs {
        if copied >= d.data.len() {
            break;
        }
        let take = len.min(d.data.len() - copied);
        mem::write(pid, base, &d.data[copied..copied + take]).map_err(|_| libc::EFAULT)?;
        copied += take;
    }
    let truncated = copied < d.data.len();
    let v6 = six.then_some(d.v6);
    match addr {
        Some(Addr::Ptr(a, l)) => write_sockaddr(pid, a, l, d.src, v6)?,
        Some(Addr::Msghdr(at, m)) => {
            if m.name != 0 {
                let bytes = addr_bytes(d.src, v6);
                let room = (m.namelen as usize).min(bytes.len());
                mem::write(pid, m.name, &bytes[..room]).map_err(|_| libc::EFAULT)?;
                mem::write(pid, at + 8, &(bytes.len() as u32).to_ne_bytes()).map_err(|_| libc::EFAULT)?;
            }
            mem::write(pid, at + 40, &0u64.to_ne_bytes()).map_err(|_| libc::EFAULT)?; // msg_controllen
            let mflags: i32 = if truncated { libc::MSG_TRUNC } else { 0 };
            mem::write(pid, at + 48, &mflags.to_ne_bytes()).map_err(|_| libc::EFAULT)?;
        }
        None => {}
    }
    if let Some(p) = host.procs.get_mut(proc) {
        p.udp_recv += d.data.len() as u64;
    }
    Ok(Answer::Value(if flags & MSG_TRUNC != 0 { d.data.len() } else { copied } as i64))
}

/// Send the datagram described by the `struct msghdr` at `at` in the task's memory (sendmsg, and
/// each message of sendmmsg). Control messages are refused.
pub(super) fn send_msghdr(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    n: &Notif,
    obj: usize,
    at: u64,
) -> Result<Answer, i32> {
    use libc::{EAFNOSUPPORT, EOPNOTSUPP};
    let pid = e.hosts[h].tasks[&vid].pid;
    let m = read_msghdr(pid, at)?;
    if m.controllen > 0 {
        e.unsupported(h, vid, n.data.nr as i64, " (control messages on a UDP socket)", EOPNOTSUPP);
        return Err(EOPNOTSUPP);
    }
    let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
    let data = gather(pid, &bufs)?;
    let dst = if m.name == 0 || m.namelen == 0 {
        None
    } else {
        let sa = read_sockaddr(pid, m.name, m.namelen)?;
        Some(resolve(sa, inet6_of(&e.hosts[h], obj), Use::Datagram)?.ok_or(EAFNOSUPPORT)?)
    };
    udp_send(e, h, vid, n, obj, dst, &data)
}

pub(super) fn udp_send(
    e: &mut DirectEngine,
    h: usize,
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
    let tree = e.hosts[h].tasks[&vid].tree;
    if !e.hosts[h].trees[tree].id_valid(n.id) {
        return Err(libc::EINTR);
    }
    let host = &mut e.hosts[h];
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
    nic::transmit(e, h, packet);
    Ok(Answer::Value(data.len() as i64))
}

/// A packet has reached host `h` (from another host, `remote`, or from itself): a TCP segment
/// goes to the host's stack; a datagram's payload is queued on the UDP socket bound to its port,
/// if any, and if that socket takes its family (an IPv6 flow's packets are marked, see
/// [`crate::inet6`]). Bad packets are dropped (they cannot come from this simulator's own
/// encoders).
pub(crate) fn deliver_packet(e: &mut DirectEngine, h: usize, bytes: &[u8], remote: bool) {
    let host = &mut e.hosts[h];
    if remote && let Some(p) = host.pcap.as_mut() {
        p.record(host.now, bytes);
    }
    host.progress += 1;
    let unmarked = inet6::unmark(bytes);
    let native = unmarked.is_some();
    let bytes = unmarked.as_deref().unwrap_or(bytes);
    if is_tcp(bytes) {
        nic::receive(e, h, bytes, native);
        return;
    }
    deliver_datagram(&mut e.hosts[h], bytes, native);
}

/// Whether IPv4 packet `bytes` carries TCP.
fn is_tcp(bytes: &[u8]) -> bool {
    bytes.len() > 9 && bytes[9] == 6
}

/// Packets host `h`'s card held for its receive coalescing window (already captured), handed to
/// its sockets together: datagrams queued in order, TCP segments taken in by one poll of the
/// stack.
pub(crate) fn deliver_held(e: &mut DirectEngine, h: usize, packets: Vec<Vec<u8>>) {
    let mut segments = false;
    for bytes in packets {
        e.hosts[h].progress += 1;
        let (bytes, native) = match inet6::unmark(&bytes) {
            Some(unmarked) => (unmarked, true),
            None => (bytes, false),
        };
        if is_tcp(&bytes) {
            segments |= nic::take_segment(e, h, bytes, native);
        } else {
            deliver_datagram(&mut e.hosts[h], &bytes, native);
        }
    }
    if segments {
        nic::poll(e, h);
    }
}

/// A UDP datagram (IPv4 packet `bytes`, unmarked; of an IPv6 flow if `native`) reached host
/// `host`: queue it on the socket bound to its port, if that socket takes its family.
fn deliver_datagram(host: &mut Host, bytes: &[u8], native: bool) {
    let Ok(p) = net::decode(bytes) else { return };
    let holder = if native { host.ports6.get(&p.dst.1).or(host.ports.get(&p.dst.1)) } else { host.ports.get(&p.dst.1) };
    let Some(&obj) = holder else { return };
    if !inet6_of(host, obj).map_or(!native, |six| six.takes(native)) {
        return;
    }
    let s = udp(host, obj);
    if let Some((ip, _)) = s.local
        && !ip.is_unspecified()
        && ip != p.dst.0
    {
        return;
    }
    s.enqueue(Datagram { src: p.src, data: p.payload, v6: native });
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{EADDRNOTAVAIL, EAFNOSUPPORT, EINVAL, ENETUNREACH};

    const BOB: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn peer(ip: Ipv4Addr, native: bool) -> Result<Option<Peer>, i32> {
        Ok(Some(Peer { ip, port: 80, native }))
    }

    #[test]
    fn an_inet_socket_takes_ipv4_addresses_only() {
        assert_eq!(resolve(SockAddr::Inet(BOB, 80), None, Use::TcpConnect), peer(BOB, false));
        assert_eq!(resolve(SockAddr::Inet6(Target::Native(BOB), 80), None, Use::Bind), Err(EAFNOSUPPORT));
        assert_eq!(resolve(SockAddr::Unspec, None, Use::Datagram), Ok(None));
    }

    #[test]
    fn a_dual_stack_socket_reaches_native_and_mapped_addresses() {
        let dual = Inet6::default();
        let six = Some(&dual);
        assert_eq!(resolve(SockAddr::Inet6(Target::Native(BOB), 80), six, Use::TcpConnect), peer(BOB, true));
        assert_eq!(resolve(SockAddr::Inet6(Target::Mapped(BOB), 80), six, Use::TcpConnect), peer(BOB, false));
        assert_eq!(resolve(SockAddr::Inet(BOB, 80), six, Use::Datagram), peer(BOB, false), "as Linux's udpv6_sendmsg");
        assert_eq!(resolve(SockAddr::Inet(BOB, 80), six, Use::TcpConnect), Err(EINVAL), "a sockaddr_in is too short");
        assert_eq!(resolve(SockAddr::Inet6(Target::Unreachable, 80), six, Use::TcpConnect), Err(ENETUNREACH));
        assert_eq!(resolve(SockAddr::Inet6(Target::Unreachable, 80), six, Use::Bind), Err(EADDRNOTAVAIL));
    }

    #[test]
    fn a_v6only_socket_refuses_mapped_addresses_and_a_bound_kind_keeps_its_family() {
        let only = Inet6 { v6only: true, ..Inet6::default() };
        let m = || SockAddr::Inet6(Target::Mapped(BOB), 80);
        assert_eq!(resolve(m(), Some(&only), Use::Bind), Err(EINVAL));
        assert_eq!(resolve(m(), Some(&only), Use::TcpConnect), Err(ENETUNREACH));
        assert_eq!(resolve(SockAddr::Inet(BOB, 80), Some(&only), Use::Datagram), Err(EAFNOSUPPORT));
        let native = Inet6 { bound: Bound::Native, ..Inet6::default() };
        assert_eq!(resolve(m(), Some(&native), Use::Datagram), Err(ENETUNREACH));
        let mapped = Inet6 { bound: Bound::Mapped, ..Inet6::default() };
        let n = SockAddr::Inet6(Target::Native(BOB), 80);
        assert_eq!(resolve(n, Some(&mapped), Use::TcpConnect), Err(ENETUNREACH));
    }

    #[test]
    fn binding_decides_the_family_and_addresses_are_shown_in_it() {
        let any = Peer { ip: Ipv4Addr::UNSPECIFIED, port: 0, native: true };
        assert_eq!(bound_kind(&any), Bound::Any);
        assert_eq!(bound_kind(&Peer { ip: Ipv4Addr::LOCALHOST, ..any }), Bound::Native);
        assert_eq!(bound_kind(&Peer { native: false, ..any }), Bound::Mapped);
        assert_eq!(addr_bytes((BOB, 80), None).len(), 16);
        let mapped = addr_bytes((BOB, 80), Some(false));
        assert_eq!(mapped.len(), SOCKADDR_IN6_LEN);
        assert_eq!(&mapped[8..24], &BOB.to_ipv6_mapped().octets());
        assert_eq!(&addr_bytes((BOB, 80), Some(true))[8..24], &inet6::v6_of(BOB).octets());
    }
}
