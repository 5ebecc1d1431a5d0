//! Port mirrors and packet sockets (`AF_PACKET`): what a capture or relay tool reads off a
//! host's interfaces.
//!
//! A `[[mirrors]]` entry gives hosts an interface (`mirror0`) that carries a copy of the IPv4
//! packets crossing `eth0` that match its rule (direction, protocol, port), as a switch's port
//! mirror (SPAN) feeds a monitoring port. Packet sockets bound to an interface, or to all of
//! them, read each packet as it crosses: cooked (`SOCK_DGRAM`, the IPv4 packet) or raw
//! (`SOCK_RAW`, behind an Ethernet header). Copies cost nothing on hosts without packet sockets.
//! Sending on a packet socket is not emulated.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::ops::Range;

/// `ETH_P_ALL`: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// `ETH_P_IP`: IPv4, the only protocol on a simulated link.
pub const ETH_P_IP: u16 = 0x0800;
/// `PACKET_HOST`: a packet addressed to this host.
pub const PACKET_HOST: u8 = 0;
/// `PACKET_OUTGOING`: a packet this host sent.
pub const PACKET_OUTGOING: u8 = 4;
/// The index of the first mirror interface (after `lo` and `eth0`).
pub const FIRST_MIRROR_INDEX: i32 = 3;
/// Default receive buffer of a packet socket, as for UDP.
const DEFAULT_RCVBUF: usize = 212_992;

/// Which packets a mirror copies, by direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Packets the host receives.
    #[default]
    In,
    /// Packets the host sends.
    Out,
    /// Both.
    Both,
}

/// Which packets a mirror copies, by transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// UDP datagrams.
    Udp,
    /// TCP segments.
    Tcp,
    /// Every IPv4 packet.
    #[default]
    Any,
}

/// One `[[mirrors]]` entry as the spec gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// The direct hosts that get the interface: a group or `group[a..b]`.
    pub hosts: String,
    /// The interface's name (`mirror0`).
    pub interface: String,
    /// The packets' direction (default: received).
    #[serde(default)]
    pub direction: Direction,
    /// Their protocol (default: any).
    #[serde(default)]
    pub protocol: Protocol,
    /// Their port: the destination port of received packets, the source port of sent ones (or
    /// either, for `both`); absent: every port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// A mirror resolved against the host directory.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorPlan {
    /// Global ids of the hosts that have it.
    pub hosts: Range<u32>,
    /// What it copies.
    pub rule: MirrorRule,
}

/// One mirror interface of a host and what it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorRule {
    /// The interface's name.
    pub interface: String,
    /// Direction copied.
    pub direction: Direction,
    /// Protocol copied.
    pub protocol: Protocol,
    /// Port copied (see [`MirrorSpec::port`]).
    pub port: Option<u16>,
}

/// The longest interface name Linux takes (`IFNAMSIZ` less the terminating zero).
pub const MAX_NAME: usize = 15;

impl MirrorRule {
    /// Whether IPv4 packet `bytes`, crossing `eth0` outward (`outgoing`) or inward, is copied.
    pub fn copies(&self, bytes: &[u8], outgoing: bool) -> bool {
        let direction = match self.direction {
            Direction::In => !outgoing,
            Direction::Out => outgoing,
            Direction::Both => true,
        };
        let Some((proto, src, dst)) = transport(bytes) else { return false };
        let protocol = match self.protocol {
            Protocol::Udp => proto == 17,
            Protocol::Tcp => proto == 6,
            Protocol::Any => true,
        };
        let port = match self.port {
            None => true,
            Some(p) if outgoing => src == Some(p),
            Some(p) => dst == Some(p),
        };
        direction && protocol && port
    }
}

/// An IPv4 packet's protocol and, for TCP and UDP, its source and destination ports.
fn transport(bytes: &[u8]) -> Option<(u8, Option<u16>, Option<u16>)> {
    let ihl = usize::from(*bytes.first()? & 0x0f) * 4;
    if bytes[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let proto = *bytes.get(9)?;
    let ports = bytes.get(ihl..ihl + 4).filter(|_| proto == 6 || proto == 17);
    let port = |at: usize| ports.map(|p| u16::from_be_bytes([p[at], p[at + 1]]));
    Some((proto, port(0), port(2)))
}

/// A packet a socket has captured, waiting to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The interface it crossed.
    pub ifindex: i32,
    /// `PACKET_HOST` or `PACKET_OUTGOING`.
    pub pkttype: u8,
    /// The link address of the packet's sender, as Linux reports it (`h_source`): the other
    /// host's for a received packet, the host's own for a sent one (a simulated host's MAC is
    /// `02:00` and its IPv4 address).
    pub src_mac: [u8; 6],
    /// What the socket reads: the IPv4 packet, behind an Ethernet header for a raw socket.
    pub frame: Vec<u8>,
}

/// One emulated packet socket.
#[derive(Debug)]
pub struct PacketSocket {
    /// `SOCK_DGRAM` (cooked: no link header) rather than `SOCK_RAW`.
    pub cooked: bool,
    /// The protocol it takes, host order (`ETH_P_ALL`, `ETH_P_IP`; 0 takes nothing until bound).
    pub protocol: u16,
    /// The interface it is bound to (0: every interface).
    pub ifindex: i32,
    /// Captured packets, oldest first.
    pub queue: VecDeque<Captured>,
    queued_bytes: usize,
    /// `SO_RCVBUF`.
    pub rcvbuf: usize,
    /// Packets queued so far: what an edge-triggered epoll sees as new data.
    pub arrivals: u64,
    /// Packets dropped for want of room.
    pub drops: u64,
    /// `PACKET_IGNORE_OUTGOING`: the host's own transmissions are not copied to it.
    pub ignore_outgoing: bool,
}

impl PacketSocket {
    /// A new socket of `protocol` (host order).
    pub fn new(cooked: bool, protocol: u16) -> Self {
        PacketSocket {
            cooked,
            protocol,
            ifindex: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            rcvbuf: DEFAULT_RCVBUF,
            arrivals: 0,
            drops: 0,
            ignore_outgoing: false,
        }
    }

    /// Whether it takes IPv4 packets crossing interface `ifindex`, received or (`outgoing`) sent:
    /// as on Linux, only `ETH_P_ALL` sockets see a host's own transmissions (`dev_queue_xmit_nit`
    /// walks `ptype_all` alone), and not with `PACKET_IGNORE_OUTGOING`.
    pub fn takes(&self, ifindex: i32, outgoing: bool) -> bool {
        let protocol = match outgoing {
            true => self.protocol == ETH_P_ALL && !self.ignore_outgoing,
            false => self.protocol == ETH_P_ALL || self.protocol == ETH_P_IP,
        };
        protocol && (self.ifindex == 0 || self.ifindex == ifindex)
    }

    /// Queue a copy of IPv4 packet `bytes` crossing `ifindex` in the direction `pkttype` (with
    /// `peer_mac` the other end's link address, `own_mac` this interface's), if the buffer has
    /// room (else it is dropped and counted, as the kernel does).
    pub fn capture(&mut self, ifindex: i32, pkttype: u8, (own_mac, peer_mac): ([u8; 6], [u8; 6]), bytes: &[u8]) {
        let frame = if self.cooked {
            bytes.to_vec()
        } else {
            let (dst, src) = if pkttype == PACKET_OUTGOING { (peer_mac, own_mac) } else { (own_mac, peer_mac) };
            let mut f = Vec::with_capacity(14 + bytes.len());
            f.extend_from_slice(&dst);
            f.extend_from_slice(&src);
            f.extend_from_slice(&ETH_P_IP.to_be_bytes());
            f.extend_from_slice(bytes);
            f
        };
        if self.queued_bytes + frame.len() > self.rcvbuf.max(2048) {
            self.drops += 1;
            return;
        }
        self.queued_bytes += frame.len();
        self.arrivals += 1;
        let src_mac = if pkttype == PACKET_OUTGOING { own_mac } else { peer_mac };
        self.queue.push_back(Captured { ifindex, pkttype, src_mac, frame });
    }

    /// Take the oldest captured packet (or look at it, with `peek`).
    pub fn dequeue(&mut self, peek: bool) -> Option<Captured> {
        if peek {
            return self.queue.front().cloned();
        }
        let c = self.queue.pop_front()?;
        self.queued_bytes -= c.frame.len();
        Some(c)
    }
}

/// The link (MAC) address of the simulated host at `ip`: `02:00` and the address.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// The `struct sockaddr_ll` of a captured packet (or, for `getsockname`, of a socket bound to
/// `ifindex`, with `mac` its address): family, protocol (network order), interface, hardware
/// type (`ARPHRD_LOOPBACK` on `lo`, else `ARPHRD_ETHER`), packet type and address.
pub fn sockaddr_ll(protocol: u16, ifindex: i32, pkttype: u8, mac: [u8; 6]) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[0..2].copy_from_slice(&(libc::AF_PACKET as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&protocol.to_be_bytes());
    b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    let hatype: u16 = if ifindex == 1 { 772 } else { 1 };
    b[8..10].copy_from_slice(&hatype.to_ne_bytes());
    b[10] = pkttype;
    b[11] = 6;
    b[12..18].copy_from_slice(&mac);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn udp(src_port: u16, dst_port: u16) -> Vec<u8> {
        thermocline_net::udp::encode(
            (Ipv4Addr::new(10, 0, 0, 1), src_port),
            (Ipv4Addr::new(10, 0, 0, 2), dst_port),
            b"shred",
        )
    }

    #[test]
    fn a_mirror_copies_its_direction_protocol_and_port_only() {
        let rule = |direction, protocol, port| MirrorRule { interface: "mirror0".into(), direction, protocol, port };
        let inbound_udp = rule(Direction::In, Protocol::Udp, Some(20000));
        assert!(inbound_udp.copies(&udp(9, 20000), false));
        assert!(!inbound_udp.copies(&udp(9, 20001), false), "another port");
        assert!(!inbound_udp.copies(&udp(9, 20000), true), "sent, not received");
        let mut tcp = udp(9, 20000);
        tcp[9] = 6;
        assert!(!inbound_udp.copies(&tcp, false), "TCP");
        assert!(rule(Direction::In, Protocol::Any, Some(20000)).copies(&tcp, false));
        let out = rule(Direction::Out, Protocol::Udp, Some(9));
        assert!(out.copies(&udp(9, 20000), true) && !out.copies(&udp(9, 20000), false), "a sent packet's source port");
        let all = rule(Direction::Both, Protocol::Any, None);
        assert!(all.copies(&udp(1, 2), true) && all.copies(&udp(1, 2), false));
        assert!(!all.copies(&[0x45, 0], false) && !all.copies(&[], true), "not a packet");
    }

    #[test]
    fn sockets_take_their_interface_and_protocol_and_frame_raw_packets() {
        let mut s = PacketSocket::new(true, 0);
        assert!(!s.takes(3, false), "protocol 0 takes nothing until bound with one");
        s.protocol = ETH_P_ALL;
        s.ifindex = 3;
        assert!(s.takes(3, false) && s.takes(3, true) && !s.takes(2, false));
        s.ignore_outgoing = true;
        assert!(s.takes(3, false) && !s.takes(3, true), "PACKET_IGNORE_OUTGOING");
        let ip_only = PacketSocket::new(true, ETH_P_IP);
        assert!(ip_only.takes(2, false) && !ip_only.takes(2, true), "ETH_P_IP sockets see no transmissions");
        let p = udp(1, 2);
        let macs = ([2, 0, 10, 0, 0, 2], [2, 0, 10, 0, 0, 1]);
        s.capture(3, PACKET_HOST, macs, &p);
        assert_eq!(s.dequeue(true).unwrap().frame, p, "cooked: the IPv4 packet");
        let mut raw = PacketSocket::new(false, ETH_P_IP);
        raw.capture(2, PACKET_OUTGOING, macs, &p);
        let sent = raw.dequeue(false).unwrap();
        let f = sent.frame;
        assert_eq!((&f[0..6], &f[6..12], &f[12..14], &f[14..]), (&macs.1[..], &macs.0[..], &[8u8, 0][..], &p[..]));
        assert_eq!(sent.src_mac, macs.0, "a sent packet's source is the host itself");
        raw.rcvbuf = 0;
        for _ in 0..100 {
            raw.capture(2, PACKET_HOST, macs, &p);
        }
        assert!(raw.drops > 0 && raw.queue.len() < 100, "a full buffer drops");
        assert!(s.dequeue(false).is_some() && s.dequeue(false).is_none());
    }

    #[test]
    fn the_address_of_a_captured_packet_is_a_sockaddr_ll() {
        let b = sockaddr_ll(ETH_P_IP, 3, PACKET_HOST, [2, 0, 10, 0, 0, 1]);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), libc::AF_PACKET as u16);
        assert_eq!(&b[2..4], &[8, 0]);
        assert_eq!(i32::from_ne_bytes(b[4..8].try_into().unwrap()), 3);
        assert_eq!((u16::from_ne_bytes([b[8], b[9]]), b[10], b[11]), (1, 0, 6));
        assert_eq!(u16::from_ne_bytes(sockaddr_ll(0, 1, 0, [0; 6])[8..10].try_into().unwrap()), 772, "lo");
    }

    proptest! {
        #[test]
        fn any_bytes_are_judged_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..80), out: bool) {
            let rule = MirrorRule { interface: "m".into(), direction: Direction::Both, protocol: Protocol::Udp, port: Some(7) };
            let _ = rule.copies(&bytes, out);
        }
    }
}
