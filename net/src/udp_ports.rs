//! Who holds a host's UDP ports, with Linux's rules for sharing a port and for choosing which
//! socket a datagram goes to.
//!
//! Binding (`udp_lib_lport_inuse`): two sockets clash on a port when their families overlap,
//! their bound addresses overlap (equal, or either is the wildcard), and not both set
//! `SO_REUSEADDR` (nor both `SO_REUSEPORT`). Delivery (`__udp4_lib_lookup`): the sockets bound
//! to the datagram's address are looked at first, the wildcard ones only when none of those
//! takes it; a socket connected elsewhere does not take it; among the rest the best score wins
//! (an `AF_INET` socket 2, a dual-stack one 1, a connected address +4, a connected port +4), and
//! on a tie the socket bound last (the kernel adds sockets at the head of the port's chain). A
//! `SO_REUSEPORT` group tied at the top shares datagrams by a hash of the sender.
//!
//! `socat UDP-LISTEN:…,fork` depends on all of it: each child keeps the socket, connected to its
//! client, and the parent binds the port again for the next client.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// One socket's hold on a port.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpHolder {
    /// The socket (its owner's index).
    pub obj: usize,
    /// The bound address (unspecified: every address of the host).
    pub ip: Ipv4Addr,
    /// Peers of each family it takes: (IPv4, IPv6), as for TCP's [`crate::stack::PortUse`].
    pub families: (bool, bool),
    /// `SO_REUSEADDR` when it was bound.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT` when it was bound.
    pub reuseport: bool,
}

/// A datagram to deliver, as the lookup sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Sender address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// An IPv6 flow (the engine's translated IPv6): only sockets that take IPv6 peers see it.
    pub v6: bool,
}

/// The UDP ports of one host and their holders, in bind order.
#[derive(Clone, Debug, Default)]
pub struct UdpPorts {
    ports: BTreeMap<u16, Vec<UdpHolder>>,
}

impl UdpPorts {
    /// No socket holds `port`.
    pub fn is_free(&self, port: u16) -> bool {
        !self.ports.contains_key(&port)
    }

    /// `holder` binds `port`; `false` (nothing changed) when a holder clashes with it (`EADDRINUSE`).
    pub fn bind(&mut self, port: u16, holder: UdpHolder) -> bool {
        if self.ports.get(&port).is_some_and(|holders| holders.iter().any(|h| clash(h, &holder))) {
            return false;
        }
        self.ports.entry(port).or_default().push(holder);
        true
    }

    /// Socket `obj` lets go of `port`.
    pub fn release(&mut self, port: u16, obj: usize) {
        if let Some(holders) = self.ports.get_mut(&port) {
            holders.retain(|h| h.obj != obj);
            if holders.is_empty() {
                self.ports.remove(&port);
            }
        }
    }

    /// The socket `d` goes to, if any; `peer_of(obj)` is a socket's connected peer.
    pub fn lookup(&self, d: Arrival, peer_of: impl Fn(usize) -> Option<(Ipv4Addr, u16)>) -> Option<usize> {
        let holders = self.ports.get(&d.dst.1)?;
        let exact = best(holders.iter().filter(|h| h.ip == d.dst.0), d, &peer_of);
        exact.or_else(|| best(holders.iter().filter(|h| h.ip.is_unspecified()), d, &peer_of))
    }
}

/// Two holders of one port clash.
fn clash(a: &UdpHolder, b: &UdpHolder) -> bool {
    let families = (a.families.0 && b.families.0) || (a.families.1 && b.families.1);
    let addresses = a.ip.is_unspecified() || b.ip.is_unspecified() || a.ip == b.ip;
    let shared = (a.reuseaddr && b.reuseaddr) || (a.reuseport && b.reuseport);
    families && addresses && !shared
}

/// The best-scoring of `candidates` for `d` (ties: the last bound; a tied `SO_REUSEPORT` group
/// shares by the sender).
fn best<'a>(
    candidates: impl Iterator<Item = &'a UdpHolder>,
    d: Arrival,
    peer_of: &impl Fn(usize) -> Option<(Ipv4Addr, u16)>,
) -> Option<usize> {
    let scored: Vec<(u32, &UdpHolder)> = candidates.filter_map(|h| Some((score(h, d, peer_of(h.obj))?, h))).collect();
    let top = scored.iter().map(|(s, _)| *s).max()?;
    let tied: Vec<&UdpHolder> = scored.iter().filter(|(s, _)| *s == top).map(|(_, h)| *h).collect();
    let newest = tied.last()?;
    if !newest.reuseport {
        return Some(newest.obj);
    }
    let group: Vec<&&UdpHolder> = tied.iter().filter(|h| h.reuseport).collect();
    let hash = u32::from(d.src.0).wrapping_mul(0x9E37_79B1) ^ u32::from(d.src.1).wrapping_mul(0x85EB_CA77);
    Some(group[hash as usize % group.len()].obj)
}

/// How well holder `h` (connected to `peer`, if at all) matches `d`; `None` if it does not take it.
fn score(h: &UdpHolder, d: Arrival, peer: Option<(Ipv4Addr, u16)>) -> Option<u32> {
    let takes = if d.v6 { h.families.1 } else { h.families.0 };
    if !takes {
        return None;
    }
    let mut score = if h.families == (true, false) { 2 } else { 1 };
    if let Some((ip, port)) = peer {
        if ip != d.src.0 || port != d.src.1 {
            return None;
        }
        score += 8;
    }
    Some(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 2), 5000);
    const OTHER: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 3), 5000);

    fn holder(obj: usize, ip: Ipv4Addr, reuse: bool) -> UdpHolder {
        UdpHolder { obj, ip, families: (true, false), reuseaddr: reuse, reuseport: false }
    }

    fn to_port(src: (Ipv4Addr, u16)) -> Arrival {
        Arrival { src, dst: (ME, 7000), v6: false }
    }

    #[test]
    fn a_port_is_shared_only_when_both_sockets_set_reuseaddr() {
        let mut p = UdpPorts::default();
        assert!(p.bind(7000, holder(1, ANY, true)));
        assert!(!p.bind(7000, holder(2, ANY, false)), "the newcomer did not set it");
        assert!(p.bind(7000, holder(3, ANY, true)));
        assert!(
            p.bind(7001, holder(4, ME, false)) && p.bind(7001, holder(5, Ipv4Addr::LOCALHOST, false)),
            "apart addresses"
        );
        assert!(!p.bind(7001, holder(6, ANY, false)), "the wildcard overlaps both");
        let v6only = UdpHolder { families: (false, true), ..holder(7, ANY, false) };
        assert!(p.bind(7000, v6only), "an IPV6_V6ONLY socket beside AF_INET ones");
        p.release(7000, 1);
        p.release(7000, 3);
        p.release(7000, 7);
        assert!(p.is_free(7000));
    }

    #[test]
    fn a_connected_socket_takes_its_peer_and_the_last_bound_takes_the_rest() {
        let mut p = UdpPorts::default();
        p.bind(7000, holder(1, ANY, true));
        p.bind(7000, holder(2, ANY, true));
        let nobody = |_| None;
        assert_eq!(p.lookup(to_port(PEER), nobody), Some(2), "a tie goes to the socket bound last");
        let one_connected = |obj| (obj == 1).then_some(PEER);
        assert_eq!(p.lookup(to_port(PEER), one_connected), Some(1), "its connected peer");
        assert_eq!(p.lookup(to_port(OTHER), one_connected), Some(2));
        let both_connected = |obj| Some(if obj == 1 { PEER } else { (PEER.0, 1) });
        assert_eq!(p.lookup(to_port(OTHER), both_connected), None, "nobody takes a stranger");
    }

    #[test]
    fn a_socket_bound_to_the_address_comes_before_wildcard_ones() {
        let mut p = UdpPorts::default();
        p.bind(7000, holder(1, ME, true));
        p.bind(7000, holder(2, ANY, true));
        assert_eq!(p.lookup(to_port(PEER), |_| None), Some(1));
        let elsewhere = Arrival { dst: (Ipv4Addr::LOCALHOST, 7000), ..to_port(PEER) };
        assert_eq!(p.lookup(elsewhere, |_| None), Some(2), "the wildcard takes the host's other addresses");
        assert_eq!(p.lookup(Arrival { v6: true, ..to_port(PEER) }, |_| None), None, "no socket takes IPv6");
    }

    #[test]
    fn a_reuseport_group_shares_datagrams_by_sender_the_same_way_every_time() {
        let mut p = UdpPorts::default();
        for obj in 0..4 {
            assert!(p.bind(7000, UdpHolder { reuseport: true, ..holder(obj, ANY, false) }));
        }
        let chosen: Vec<usize> =
            (0..64).map(|i| p.lookup(to_port((Ipv4Addr::new(10, 0, 1, i), 4000)), |_| None).unwrap()).collect();
        let again: Vec<usize> =
            (0..64).map(|i| p.lookup(to_port((Ipv4Addr::new(10, 0, 1, i), 4000)), |_| None).unwrap()).collect();
        assert_eq!(chosen, again);
        assert!((0..4).all(|o| chosen.contains(&o)), "every member gets some senders: {chosen:?}");
    }
}
