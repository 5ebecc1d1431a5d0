//! UDP: a host's datagram sockets, and datagrams as real IPv4 + UDP packets (`smoltcp::wire`),
//! which is what crosses the simulated network as a bus event's payload.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// Largest UDP payload in one IPv4 packet (65535 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Default receive buffer: datagrams beyond it are dropped, as the kernel does.
pub const DEFAULT_RCVBUF: usize = 212_992;

/// One received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Sender address.
    pub src: (Ipv4Addr, u16),
    /// Payload.
    pub data: Vec<u8>,
    /// It came from an IPv6 socket to an IPv6 address (the direct engine's translated IPv6,
    /// which crosses the network as IPv4): the receiver sees its sender as an IPv6 address.
    pub v6: bool,
}

/// An emulated UDP socket.
#[derive(Debug, Default)]
pub struct UdpSocket {
    /// Local address once bound (explicitly, or implicitly by the first send or connect).
    pub local: Option<(Ipv4Addr, u16)>,
    /// Connected peer.
    pub peer: Option<(Ipv4Addr, u16)>,
    /// Received datagrams, oldest first.
    pub queue: VecDeque<Datagram>,
    /// Bytes queued.
    pub queued_bytes: usize,
    /// `SO_RCVBUF`.
    pub rcvbuf: usize,
    /// `SO_SNDBUF` (reported only).
    pub sndbuf: usize,
    /// `SO_REUSEADDR`, `SO_BROADCAST` and other boolean options, stored and reported back.
    pub options: Vec<((i32, i32), i32)>,
    /// Shut down for reading / writing.
    pub shut_rd: bool,
    /// Shut down for writing.
    pub shut_wr: bool,
    /// Datagrams queued so far: what an edge-triggered epoll sees as new data.
    pub arrivals: u64,
    /// For an `AF_INET6` socket: its IPv6 side (see [`crate::inet6`]).
    pub inet6: Option<crate::inet6::Inet6>,
}

impl UdpSocket {
    /// A new unbound socket.
    pub fn new() -> Self {
        UdpSocket { rcvbuf: DEFAULT_RCVBUF, sndbuf: DEFAULT_RCVBUF, ..Default::default() }
    }

    /// The families of peers it takes: (IPv4, IPv6).
    pub fn families(&self) -> (bool, bool) {
        self.inet6.as_ref().map_or((true, false), crate::inet6::Inet6::families)
    }

    /// The bound port, if any.
    pub fn local_port(&self) -> Option<u16> {
        self.local.map(|(_, p)| p)
    }

    /// Queue a datagram if the receive buffer has room (else it is dropped, as by the kernel).
    /// Returns whether it was queued.
    pub fn enqueue(&mut self, d: Datagram) -> bool {
        if self.shut_rd || self.queued_bytes + d.data.len() > self.rcvbuf.max(2048) {
            return false;
        }
        if let Some(peer) = self.peer
            && peer != d.src
        {
            return false; // a connected socket only takes its peer's datagrams
        }
        self.queued_bytes += d.data.len();
        self.arrivals += 1;
        self.queue.push_back(d);
        true
    }

    /// Take the oldest datagram (or look at it, with `peek`).
    pub fn dequeue(&mut self, peek: bool) -> Option<Datagram> {
        if peek {
            return self.queue.front().cloned();
        }
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.data.len();
        Some(d)
    }
}

/// A decoded UDP/IPv4 packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpPacketInfo {
    /// Source address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// Payload.
    pub payload: Vec<u8>,
}

/// Build an IPv4 + UDP packet with correct checksums.
pub fn encode(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let udp = UdpRepr { src_port: src.1, dst_port: dst.1 };
    let ip = Ipv4Repr {
        src_addr: src.0,
        dst_addr: dst.0,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut buf = vec![0u8; ip.buffer_len() + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut packet, &caps);
    let mut u = UdpPacket::new_unchecked(packet.payload_mut());
    udp.emit(
        &mut u,
        &IpAddress::Ipv4(src.0),
        &IpAddress::Ipv4(dst.0),
        payload.len(),
        |p| p.copy_from_slice(payload),
        &caps,
    );
    buf
}

/// Decode an IPv4 + UDP packet, checking lengths and checksums. Never panics on any input.
pub fn decode(bytes: &[u8]) -> Result<UdpPacketInfo, String> {
    let caps = ChecksumCapabilities::default();
    let ip = Ipv4Packet::new_checked(bytes).map_err(|e| format!("bad IPv4 packet: {e}"))?;
    let ip_repr = Ipv4Repr::parse(&ip, &caps).map_err(|e| format!("bad IPv4 header: {e}"))?;
    if ip_repr.next_header != IpProtocol::Udp {
        return Err(format!("not UDP: protocol {}", ip_repr.next_header));
    }
    let udp = UdpPacket::new_checked(ip.payload()).map_err(|e| format!("bad UDP packet: {e}"))?;
    let src_ip = IpAddress::Ipv4(ip_repr.src_addr);
    let dst_ip = IpAddress::Ipv4(ip_repr.dst_addr);
    let repr = UdpRepr::parse(&udp, &src_ip, &dst_ip, &caps).map_err(|e| format!("bad UDP header: {e}"))?;
    Ok(UdpPacketInfo {
        src: (ip_repr.src_addr, repr.src_port),
        dst: (ip_repr.dst_addr, repr.dst_port),
        payload: udp.payload().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packets_round_trip() {
        let a = (Ipv4Addr::new(10, 0, 0, 1), 5000);
        let b = (Ipv4Addr::new(10, 0, 0, 2), 53);
        let p = encode(a, b, b"hello");
        assert_eq!(p.len(), 20 + 8 + 5);
        let d = decode(&p).unwrap();
        assert_eq!((d.src, d.dst, d.payload.as_slice()), (a, b, &b"hello"[..]));
        let mut bad = p.clone();
        bad[30] ^= 1;
        assert!(decode(&bad).is_err(), "checksum must catch a flipped payload bit");
    }

    #[test]
    fn connected_sockets_filter_and_buffers_bound() {
        let mut s = UdpSocket::new();
        s.peer = Some((Ipv4Addr::new(10, 0, 0, 9), 1));
        assert!(!s.enqueue(Datagram { src: (Ipv4Addr::new(10, 0, 0, 8), 1), data: vec![1], v6: false }));
        assert!(s.enqueue(Datagram { src: (Ipv4Addr::new(10, 0, 0, 9), 1), data: vec![1], v6: false }));
        s.rcvbuf = 0;
        assert!(!s.enqueue(Datagram { src: (Ipv4Addr::new(10, 0, 0, 9), 1), data: vec![0; 4096], v6: false }));
        assert_eq!(s.dequeue(true).unwrap().data, vec![1]);
        assert_eq!(s.dequeue(false).unwrap().data, vec![1]);
        assert!(s.dequeue(false).is_none());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
