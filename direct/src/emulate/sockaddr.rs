//! What socket calls read from and write to the program's memory: socket addresses (IPv4, and
//! IPv6 translated to the simulated IPv4 network), message headers and buffers, option values,
//! and which family an address is taken in. Shared by the UDP, TCP and netlink calls.

use crate::cx::Answer;
use crate::host::{Host, Obj};
use crate::inet6::{self, Bound, Inet6, SOCKADDR_IN6_LEN, SOCKADDR_IN6_MIN, Target};
use crate::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use thermocline_net::udp::MAX_UDP_PAYLOAD;

/// The IPv6 side of socket object `obj`, if it is an `AF_INET6` socket.
pub(crate) fn inet6_of(host: &Host, obj: usize) -> Option<&Inet6> {
    match host.objs.get(obj)?.as_ref()?.obj {
        Obj::Tcp(id) => host.net.tcp.get(id.0 as usize)?.inet6.as_ref(),
        Obj::Udp(id) => host.net.udp.get(id.0 as usize)?.inet6.as_ref(),
        _ => None,
    }
}

/// The IPv6 side of socket object `obj`, mutably.
pub(crate) fn inet6_mut(host: &mut Host, obj: usize) -> Option<&mut Inet6> {
    match host.objs.get(obj)?.as_ref()?.obj {
        Obj::Tcp(id) => host.net.tcp.get_mut(id.0 as usize)?.inet6.as_mut(),
        Obj::Udp(id) => host.net.udp.get_mut(id.0 as usize)?.inet6.as_mut(),
        _ => None,
    }
}

fn sockaddr_bytes(addr: (Ipv4Addr, u16)) -> [u8; 16] {
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
fn bound_kind(p: &Peer) -> Bound {
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

/// The bytes of the task's buffers `bufs`, at most one UDP payload (`EMSGSIZE` beyond).
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

/// Copy `data` into the task's buffers `bufs` in order, as far as they reach; returns the byte
/// count copied (less than `data.len()` when the datagram is truncated).
pub(crate) fn scatter(pid: i32, bufs: &[(u64, usize)], data: &[u8]) -> Result<usize, i32> {
    let mut copied = 0usize;
    for &(base, len) in bufs {
        if copied >= data.len() {
            break;
        }
        let take = len.min(data.len() - copied);
        mem::write(pid, base, &data[copied..copied + take]).map_err(|_| libc::EFAULT)?;
        copied += take;
    }
    Ok(copied)
}

/// Complete the `struct msghdr` `m` at `at` after a datagram receive: the sender's address
/// `name` (cut to `msg_namelen`, the full length written back), no control messages, and
/// `MSG_TRUNC` in `msg_flags` when the datagram was `truncated`.
pub(crate) fn finish_msghdr(pid: i32, at: u64, m: &Msghdr, name: &[u8], truncated: bool) -> Result<(), i32> {
    if m.name != 0 {
        let room = (m.namelen as usize).min(name.len());
        mem::write(pid, m.name, &name[..room]).map_err(|_| libc::EFAULT)?;
        mem::write(pid, at + 8, &(name.len() as u32).to_ne_bytes()).map_err(|_| libc::EFAULT)?;
    }
    mem::write(pid, at + 40, &0u64.to_ne_bytes()).map_err(|_| libc::EFAULT)?; // msg_controllen
    let mflags: i32 = if truncated { libc::MSG_TRUNC } else { 0 };
    mem::write(pid, at + 48, &mflags.to_ne_bytes()).map_err(|_| libc::EFAULT)
}

/// Read the `struct msghdr` at `addr` of task `pid`.
pub(crate) fn read_msghdr(pid: i32, addr: u64) -> Result<Msghdr, i32> {
    let b = mem::read(pid, addr, 56).map_err(|_| libc::EFAULT)?;
    let u = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    Ok(Msghdr { name: u(0), namelen: u(8) & 0xffff_ffff, iov: u(16), iovlen: u(24) as usize, controllen: u(40) })
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
