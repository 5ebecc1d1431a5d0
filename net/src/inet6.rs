//! IPv6 at the socket edge: the simulated network stays IPv4 inside, and an `AF_INET6` socket is
//! an emulated IPv4 socket whose addresses are translated at every call that takes or returns a
//! socket address — a stateless translation in the manner of SIIT (RFC 7915).
//!
//! Every host's IPv6 address is its IPv4 address in the low 32 bits of the unique-local prefix
//! [`PREFIX`] (`fd00:7468::/96`, "th"): 10.0.0.2 is `fd00:7468::a00:2`. `::1` is the loopback
//! 127.0.0.1, `::` the unspecified address, and `::ffff:a.b.c.d` (IPv4-mapped) an IPv4 peer of
//! a dual-stack socket. Any other IPv6 address is unreachable.
//!
//! A packet of an IPv6 flow (both ends use IPv6 addresses, not IPv4-mapped ones) crosses the
//! simulated network as IPv4 with a 20-byte IPv4 option, [`OPTION`]: it marks the flow as IPv6 for
//! the receiver (which must report its peer as `fd00:7468::…` rather than `::ffff:…`, and which a
//! `IPV6_V6ONLY` listener must refuse otherwise), and it makes the packet as long as the IPv6
//! packet would be (a 40-byte IPv6 header is 20 bytes more than IPv4's), so the link charges the
//! same serialisation time. The option is removed before the receiving host's stack sees the
//! packet.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpSeqNumber};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The first 96 bits of every simulated host's IPv6 address (`fd00:7468::/96`).
pub const PREFIX: [u8; 12] = [0xfd, 0x00, 0x74, 0x68, 0, 0, 0, 0, 0, 0, 0, 0];
/// Length of [`PREFIX`] in bits, as reported by netlink.
pub const PREFIX_LEN: u8 = 96;
/// The IPv4 option that marks a packet of an IPv6 flow: type 158 (copied, class 0, number 30 —
/// RFC 4727's experimental value), length 20, then "T6" and zeros. 20 bytes: the difference
/// between an IPv6 and an IPv4 header.
pub const OPTION: [u8; 20] = [158, 20, b'T', b'6', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// A TCP connection of a host as its (local, remote) IPv4 endpoints.
pub type FlowKey = ((Ipv4Addr, u16), (Ipv4Addr, u16));

/// Size of `struct sockaddr_in6`.
pub const SOCKADDR_IN6_LEN: usize = 28;
/// The shortest `sockaddr_in6` Linux takes (`SIN6_LEN_RFC2133`, without the scope id).
pub const SOCKADDR_IN6_MIN: usize = 24;

/// The IPv6 address of the host (or loopback) with IPv4 address `ip`: `::` for the unspecified
/// address, `::1` for 127.0.0.1, otherwise [`PREFIX`] with `ip` in the low 32 bits.
pub fn v6_of(ip: Ipv4Addr) -> Ipv6Addr {
    if ip.is_unspecified() {
        Ipv6Addr::UNSPECIFIED
    } else if ip.is_loopback() {
        Ipv6Addr::LOCALHOST
    } else {
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(&PREFIX);
        b[12..].copy_from_slice(&ip.octets());
        Ipv6Addr::from(b)
    }
}

/// What an IPv6 address given by a program stands for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A native IPv6 address of the simulation (`::`, `::1`, or under [`PREFIX`]): the IPv4
    /// address it translates to.
    Native(Ipv4Addr),
    /// An IPv4-mapped address `::ffff:a.b.c.d`: an IPv4 peer.
    Mapped(Ipv4Addr),
    /// No address of the simulation.
    Unreachable,
}

/// Classify IPv6 address `a`.
pub fn classify(a: Ipv6Addr) -> Target {
    let b = a.octets();
    let low = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    if a.is_unspecified() {
        Target::Native(Ipv4Addr::UNSPECIFIED)
    } else if a.is_loopback() {
        Target::Native(Ipv4Addr::LOCALHOST)
    } else if b[..12] == PREFIX && !low.is_unspecified() && !low.is_loopback() {
        Target::Native(low)
    } else if let Some(v4) = a.to_ipv4_mapped() {
        Target::Mapped(v4)
    } else {
        Target::Unreachable
    }
}

/// How an address is shown to an `AF_INET6` socket: `native` addresses in their IPv6 form
/// ([`v6_of`]), the others IPv4-mapped.
pub fn shown(ip: Ipv4Addr, native: bool) -> Ipv6Addr {
    if native { v6_of(ip) } else { ip.to_ipv6_mapped() }
}

/// `struct sockaddr_in6` for `ip` and `port` (flow information and scope id 0).
pub fn sockaddr_in6(ip: Ipv6Addr, port: u16) -> [u8; SOCKADDR_IN6_LEN] {
    let mut b = [0u8; SOCKADDR_IN6_LEN];
    b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&port.to_be_bytes());
    b[8..24].copy_from_slice(&ip.octets());
    b
}

/// The address an `AF_INET6` socket was bound to.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Bound {
    /// Not bound, or bound to `::`: both families (unless `IPV6_V6ONLY`).
    #[default]
    Any,
    /// An IPv4-mapped address: IPv4 peers only.
    Mapped,
    /// A native IPv6 address (`::1`, the host's own): IPv6 peers only.
    Native,
}

/// The IPv6 side of an `AF_INET6` socket (kept beside the emulated IPv4 socket it is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inet6 {
    /// `IPV6_V6ONLY`: IPv4 peers are refused (default 0, Linux's `net.ipv6.bindv6only`).
    pub v6only: bool,
    /// What it was bound to.
    pub bound: Bound,
    /// Its connection, or connected peer, is native IPv6 (not IPv4-mapped).
    pub native_peer: bool,
    /// IPv6 options with no effect here, stored and reported back: (name, value).
    pub options: Vec<(i32, i32)>,
}

impl Inet6 {
    /// Whether a listener or bound datagram socket with this state takes a peer that is native
    /// IPv6 (`native`) or IPv4.
    pub fn takes(&self, native: bool) -> bool {
        match self.bound {
            Bound::Any => native || !self.v6only,
            Bound::Mapped => !native,
            Bound::Native => native,
        }
    }

    /// Whether this socket's local address is shown in its native IPv6 form (else IPv4-mapped):
    /// by its connection's kind once it has a peer, else by what it was bound to.
    pub fn local_native(&self, connected: bool) -> bool {
        if connected { self.native_peer } else { self.bound != Bound::Mapped }
    }

    /// The families of the port this socket holds: whether IPv4 peers and IPv6 peers can reach it.
    pub fn families(&self) -> (bool, bool) {
        (self.takes(false), self.takes(true))
    }
}

/// Default value of IPv6 option `name` (`IPPROTO_IPV6` level) before any is set.
pub fn option_default(name: i32) -> i32 {
    match name {
        libc::IPV6_UNICAST_HOPS => 64,
        libc::IPV6_MULTICAST_HOPS | libc::IPV6_MULTICAST_LOOP => 1,
        _ => 0,
    }
}

/// Whether `name` is one of the `IPPROTO_IPV6` options stored and reported back with no effect.
pub fn is_stored_option(name: i32) -> bool {
    matches!(
        name,
        libc::IPV6_TCLASS
            | libc::IPV6_UNICAST_HOPS
            | libc::IPV6_MULTICAST_HOPS
            | libc::IPV6_MULTICAST_LOOP
            | libc::IPV6_MULTICAST_IF
            | libc::IPV6_MTU_DISCOVER
    )
}

/// Mark IPv4 packet `packet` (20-byte header, as this simulator's encoders and stack write them)
/// as a packet of an IPv6 flow: [`OPTION`] after the header, lengths and header checksum fixed.
/// A packet that already has options, or is not IPv4, is left as it is.
pub fn mark(packet: &mut Vec<u8>) {
    if packet.len() < 20 || packet[0] != 0x45 {
        return;
    }
    packet.splice(20..20, OPTION);
    packet[0] = 0x40 | ((20 + OPTION.len()) / 4) as u8;
    let total = u16::from_be_bytes([packet[2], packet[3]]).saturating_add(OPTION.len() as u16);
    packet[2..4].copy_from_slice(&total.to_be_bytes());
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.fill_checksum();
}

/// If `bytes` is a packet marked by [`mark`], the packet without the option (as it was before
/// [`mark`]); otherwise `None`. Never panics on any input.
pub fn unmark(bytes: &[u8]) -> Option<Vec<u8>> {
    let end = 20 + OPTION.len();
    if bytes.len() < end || bytes[0] != 0x40 | (end / 4) as u8 || bytes[20..end] != OPTION {
        return None;
    }
    let total = u16::from_be_bytes([bytes[2], bytes[3]]);
    let total = total.checked_sub(OPTION.len() as u16).filter(|&t| t >= 20)?;
    let mut out = Vec::with_capacity(bytes.len() - OPTION.len());
    out.extend_from_slice(&bytes[..20]);
    out.extend_from_slice(&bytes[end..]);
    out[0] = 0x45;
    out[2..4].copy_from_slice(&total.to_be_bytes());
    let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
    ip.fill_checksum();
    Some(out)
}

/// A TCP segment opening a connection (SYN without ACK), in an unmarked IPv4 packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Syn {
    /// Sender address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// Its sequence number.
    pub seq: u32,
}

/// The connection request in `bytes`, if it is one. Never panics on any input.
pub fn syn(bytes: &[u8]) -> Option<Syn> {
    let ip = Ipv4Packet::new_checked(bytes).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    (tcp.syn() && !tcp.ack() && !tcp.rst()).then(|| Syn {
        src: (ip.src_addr(), tcp.src_port()),
        dst: (ip.dst_addr(), tcp.dst_port()),
        seq: tcp.seq_number().0 as u32,
    })
}

/// The RST with which Linux refuses connection request `s` (no socket listens for it): from
/// the requested address, acknowledging the SYN.
pub fn refusal(s: &Syn) -> Vec<u8> {
    let ip =
        Ipv4Repr { src_addr: s.dst.0, dst_addr: s.src.0, next_header: IpProtocol::Tcp, payload_len: 20, hop_limit: 64 };
    let mut buf = vec![0u8; ip.buffer_len() + 20];
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &caps);
    let mut t = TcpPacket::new_unchecked(&mut buf[20..]);
    t.set_src_port(s.dst.1);
    t.set_dst_port(s.src.1);
    t.set_seq_number(TcpSeqNumber(0));
    t.set_ack_number(TcpSeqNumber(s.seq.wrapping_add(1) as i32));
    t.set_header_len(20);
    t.clear_flags();
    t.set_rst(true);
    t.set_ack(true);
    t.set_window_len(0);
    t.set_urgent_at(0);
    t.fill_checksum(&IpAddress::Ipv4(s.dst.0), &IpAddress::Ipv4(s.src.0));
    buf
}

/// The (source, destination) ports of TCP or UDP packet `bytes` (unmarked), with its addresses.
/// Never panics on any input.
pub fn tuple(bytes: &[u8]) -> Option<((Ipv4Addr, u16), (Ipv4Addr, u16))> {
    let ip = Ipv4Packet::new_checked(bytes).ok()?;
    let p = ip.payload();
    if p.len() < 4 {
        return None;
    }
    let port = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    Some(((ip.src_addr(), port(0)), (ip.dst_addr(), port(2))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_translate_both_ways() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(v6_of(ip).to_string(), "fd00:7468::a00:2");
        assert_eq!(classify(v6_of(ip)), Target::Native(ip));
        assert_eq!(classify(Ipv6Addr::LOCALHOST), Target::Native(Ipv4Addr::LOCALHOST));
        assert_eq!(classify(Ipv6Addr::UNSPECIFIED), Target::Native(Ipv4Addr::UNSPECIFIED));
        assert_eq!(classify(ip.to_ipv6_mapped()), Target::Mapped(ip));
        assert_eq!(classify("2001:db8::1".parse().unwrap()), Target::Unreachable);
        assert_eq!(classify("fd00:7468::7f00:1".parse().unwrap()), Target::Unreachable);
        assert_eq!(shown(ip, false).to_string(), "::ffff:10.0.0.2");
    }

    #[test]
    fn a_bound_socket_takes_the_families_linux_gives_it() {
        let dual = Inet6::default();
        assert!(dual.takes(true) && dual.takes(false));
        let only = Inet6 { v6only: true, ..Inet6::default() };
        assert!(only.takes(true) && !only.takes(false));
        let mapped = Inet6 { bound: Bound::Mapped, ..Inet6::default() };
        assert!(!mapped.takes(true) && mapped.takes(false));
        assert_eq!(shown(Ipv4Addr::UNSPECIFIED, dual.local_native(false)), Ipv6Addr::UNSPECIFIED);
    }

    #[test]
    fn a_marked_packet_is_20_bytes_longer_and_unmarks_to_the_original() {
        let p = crate::udp::encode((Ipv4Addr::new(10, 0, 0, 1), 5), (Ipv4Addr::new(10, 0, 0, 2), 6), b"hi");
        let mut m = p.clone();
        mark(&mut m);
        assert_eq!(m.len(), p.len() + 20);
        let ip = Ipv4Packet::new_checked(&m[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.header_len(), 40);
        assert_eq!(ip.total_len() as usize, m.len());
        assert_eq!(unmark(&m), Some(p.clone()));
        assert_eq!(unmark(&p), None);
        assert_eq!(crate::udp::decode(&m).unwrap().payload, b"hi", "still a valid IPv4 packet");
    }

    #[test]
    fn a_refusal_is_an_rst_acknowledging_the_syn() {
        let s = Syn { src: (Ipv4Addr::new(10, 0, 0, 1), 40000), dst: (Ipv4Addr::new(10, 0, 0, 2), 80), seq: 7 };
        let r = refusal(&s);
        let ip = Ipv4Packet::new_checked(&r[..]).unwrap();
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.rst() && t.ack() && !t.syn());
        assert_eq!(t.ack_number(), TcpSeqNumber(8));
        assert!(t.verify_checksum(&IpAddress::Ipv4(s.dst.0), &IpAddress::Ipv4(s.src.0)));
        assert_eq!(tuple(&r), Some((s.dst, s.src)));
        assert_eq!(syn(&r), None);
    }

    #[test]
    fn sockaddr_in6_layout() {
        let b = sockaddr_in6(Ipv6Addr::LOCALHOST, 8080);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), libc::AF_INET6 as u16);
        assert_eq!(&b[2..4], &8080u16.to_be_bytes());
        assert_eq!(b[23], 1);
        assert!(b[4..8].iter().chain(&b[24..]).all(|&x| x == 0), "flowinfo and scope id 0");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = unmark(&bytes);
            let _ = syn(&bytes);
            let _ = tuple(&bytes);
        }
    }
}
