//! `NETLINK_ROUTE` sockets: the host's interfaces and addresses as the kernel would list them.
//!
//! glibc's `getifaddrs`, Go's `net.Interfaces`, libuv's `uv_interface_addresses` (Node's
//! `os.networkInterfaces()`) and rust-libp2p's interface watcher (a node listening on
//! `0.0.0.0`) all ask the kernel over netlink which interfaces and addresses exist. A simulated
//! host has two: `lo` (127.0.0.1/8) and `eth0` (its 10.a.b.c/8 address), and the mirror
//! interfaces of its `[[mirrors]]` entries (without addresses; see [`crate::packet`]). A request is answered
//! at once with the messages a Linux kernel sends for a dump (`RTM_GETLINK`, `RTM_GETADDR`,
//! `RTM_GETROUTE`), ending in `NLMSG_DONE`; anything else gets an `NLMSG_ERROR` with
//! `EOPNOTSUPP`. Nothing ever changes, so subscribers to multicast groups never hear more.
//!
//! [`answer`] decodes bytes a program wrote: it never panics (property-tested and fuzzed).

use crate::packet::MirrorRule;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// `AF_NETLINK`.
pub(crate) const NL_FAMILY: u16 = 16;
/// Message types.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_GETROUTE: u16 = 26;
/// Header flags.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
/// Largest request the supervisor reads from a program.
pub(crate) const MAX_REQUEST: usize = 1 << 16;

/// One emulated netlink socket.
#[derive(Debug)]
pub struct NetlinkSocket {
    /// `SOCK_RAW` or `SOCK_DGRAM`, as created.
    pub(crate) ty: i32,
    /// Its port id (`nl_pid`), once bound.
    pub(crate) port: Option<u32>,
    /// Multicast groups it joined (never written to: nothing changes).
    pub(crate) groups: u32,
    /// Answers not read yet, one datagram each.
    pub(crate) queue: VecDeque<Vec<u8>>,
    /// Datagrams ever queued, for edge-triggered epoll.
    pub changes: u64,
}

impl NetlinkSocket {
    /// Readable: an answer is waiting.
    pub fn readable(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// One interface of a simulated host.
pub(crate) struct Link {
    pub(crate) index: i32,
    pub(crate) name: String,
    pub(crate) arp_type: u16,
    pub(crate) flags: u32,
    pub(crate) mtu: u32,
    pub(crate) mac: [u8; 6],
    /// Its IPv4 address (none on a mirror interface).
    pub(crate) addr: Option<Ipv4Addr>,
    scope: u8,
    pub(crate) broadcast: Option<Ipv4Addr>,
}

/// `lo` and `eth0` of the host with address `ip`, then its `mirrors`' interfaces.
pub(crate) fn links(ip: Ipv4Addr, mirrors: &[MirrorRule]) -> Vec<Link> {
    let o = ip.octets();
    let mut links = vec![
        Link {
            index: 1,
            name: "lo".into(),
            arp_type: 772,                     // ARPHRD_LOOPBACK
            flags: 0x1 | 0x8 | 0x40 | 0x10000, // UP, LOOPBACK, RUNNING, LOWER_UP
            mtu: 65536,
            mac: [0; 6],
            addr: Some(Ipv4Addr::LOCALHOST),
            scope: 254, // RT_SCOPE_HOST
            broadcast: None,
        },
        Link {
            index: 2,
            name: "eth0".into(),
            arp_type: 1,                                // ARPHRD_ETHER
            flags: 0x1 | 0x2 | 0x40 | 0x1000 | 0x10000, // UP, BROADCAST, RUNNING, MULTICAST, LOWER_UP
            mtu: 1500,
            mac: crate::packet::mac_of(ip),
            addr: Some(ip),
            scope: 0, // RT_SCOPE_UNIVERSE
            broadcast: Some(Ipv4Addr::new(o[0], 255, 255, 255)),
        },
    ];
    for (k, m) in mirrors.iter().enumerate() {
        links.push(Link {
            index: crate::packet::FIRST_MIRROR_INDEX + k as i32,
            name: m.interface.clone(),
            arp_type: 1,                              // ARPHRD_ETHER
            flags: 0x1 | 0x2 | 0x40 | 0x80 | 0x10000, // UP, BROADCAST, RUNNING, NOARP, LOWER_UP
            mtu: 1500,
            mac: [0x02, 0x01, o[1], o[2], o[3], k as u8],
            addr: None,
            scope: 0,
            broadcast: None,
        });
    }
    links
}

/// Pad to the 4-byte netlink alignment.
fn pad(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// An attribute (`struct rtattr` and its data).
fn rta(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    pad(out);
}

/// A message: header and payload.
pub(crate) fn message(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, port: u32, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&port.to_ne_bytes());
    out.extend_from_slice(payload);
    pad(out);
    debug_assert!(out.len() - start >= 16);
}

/// `RTM_NEWLINK` payload of `l`.
fn link_payload(l: &Link) -> Vec<u8> {
    let mut p = Vec::new();
    p.push(0); // ifi_family: AF_UNSPEC
    p.push(0);
    p.extend_from_slice(&l.arp_type.to_ne_bytes());
    p.extend_from_slice(&l.index.to_ne_bytes());
    p.extend_from_slice(&l.flags.to_ne_bytes());
    p.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change
    let mut name = l.name.as_bytes().to_vec();
    name.push(0);
    rta(&mut p, 3, &name); // IFLA_IFNAME
    rta(&mut p, 4, &l.mtu.to_ne_bytes()); // IFLA_MTU
    rta(&mut p, 13, &1000u32.to_ne_bytes()); // IFLA_TXQLEN
    rta(&mut p, 16, &[if l.index == 1 { 0 } else { 6 }]); // IFLA_OPERSTATE: unknown / up
    rta(&mut p, 1, &l.mac); // IFLA_ADDRESS
    rta(&mut p, 2, &if l.index == 1 { [0; 6] } else { [0xff; 6] }); // IFLA_BROADCAST
    p
}

/// `RTM_NEWADDR` payload of `l`'s IPv4 address (`l` has one).
fn addr_payload(l: &Link) -> Vec<u8> {
    let addr = l.addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut p = vec![libc::AF_INET as u8, 8, 0x80, l.scope]; // family, prefix /8, IFA_F_PERMANENT
    p.extend_from_slice(&(l.index as u32).to_ne_bytes());
    rta(&mut p, 1, &addr.octets()); // IFA_ADDRESS
    rta(&mut p, 2, &addr.octets()); // IFA_LOCAL
    if let Some(b) = l.broadcast {
        rta(&mut p, 4, &b.octets()); // IFA_BROADCAST
    }
    let mut name = l.name.as_bytes().to_vec();
    name.push(0);
    rta(&mut p, 3, &name); // IFA_LABEL
    p
}

/// `RTM_NEWADDR` payload of `l`'s IPv6 address ([`crate::inet6::v6_of`] of its IPv4 one): `::1/128`
/// on `lo`, `fd00:7468::a.b.c.d/96` on `eth0` (`l` has one).
fn addr6_payload(l: &Link) -> Vec<u8> {
    let addr = l.addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let prefix = if l.index == 1 { 128 } else { crate::inet6::PREFIX_LEN };
    let mut p = vec![libc::AF_INET6 as u8, prefix, 0x80, l.scope]; // family, prefix, IFA_F_PERMANENT
    p.extend_from_slice(&(l.index as u32).to_ne_bytes());
    rta(&mut p, 1, &crate::inet6::v6_of(addr).octets()); // IFA_ADDRESS
    rta(&mut p, 8, &0x80u32.to_ne_bytes()); // IFA_FLAGS: IFA_F_PERMANENT
    p
}

/// The answer to the request messages in `req` from port `port` of the host with address `ip`
/// and mirror interfaces `mirrors`: one datagram per request that gets an answer. Malformed
/// messages end the parse, as in the kernel; messages without `NLM_F_REQUEST` are ignored.
pub fn answer(req: &[u8], port: u32, ip: Ipv4Addr, mirrors: &[MirrorRule]) -> Vec<Vec<u8>> {
    let links = links(ip, mirrors);
    let mut out = Vec::new();
    let mut off = 0usize;
    while let Some(hdr) = req.get(off..off + 16) {
        let len = u32::from_ne_bytes(hdr[0..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > req.len() - off {
            break;
        }
        let ty = u16::from_ne_bytes(hdr[4..6].try_into().expect("2 bytes"));
        let flags = u16::from_ne_bytes(hdr[6..8].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(hdr[8..12].try_into().expect("4 bytes"));
        let body = &req[off + 16..off + len];
        off += (len + 3) & !3;
        if flags & NLM_F_REQUEST == 0 {
            continue;
        }
        let family = body.first().copied().unwrap_or(0) as i32;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut d = Vec::new();
        let error = |d: &mut Vec<u8>, errno: i32| {
            let mut p = (-errno).to_ne_bytes().to_vec();
            p.extend_from_slice(hdr);
            message(d, NLMSG_ERROR, 0, seq, port, &p);
        };
        match ty {
            RTM_GETLINK | RTM_GETADDR | RTM_GETROUTE if dump => {
                let v4 = family == libc::AF_UNSPEC || family == libc::AF_INET;
                let v6 = family == libc::AF_UNSPEC || family == libc::AF_INET6;
                if ty == RTM_GETLINK {
                    for l in &links {
                        message(&mut d, RTM_NEWLINK, NLM_F_MULTI, seq, port, &link_payload(l));
                    }
                }
                // Addresses as Linux dumps them: every IPv4 address, then every IPv6 one.
                if ty == RTM_GETADDR {
                    let with_addr = || links.iter().filter(|l| l.addr.is_some());
                    let v4 = with_addr().filter(|_| v4).map(addr_payload).collect::<Vec<_>>();
                    let v6 = with_addr().filter(|_| v6).map(addr6_payload).collect::<Vec<_>>();
                    for p in v4.iter().chain(&v6) {
                        message(&mut d, RTM_NEWADDR, NLM_F_MULTI, seq, port, p);
                    }
                }
                message(&mut d, NLMSG_DONE, NLM_F_MULTI, seq, port, &0i32.to_ne_bytes());
            }
            RTM_GETLINK => {
                let index = body.get(4..8).map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                match links.iter().find(|l| l.index == index) {
                    Some(l) => {
                        message(&mut d, RTM_NEWLINK, 0, seq, port, &link_payload(l));
                        if flags & NLM_F_ACK != 0 {
                            error(&mut d, 0);
                        }
                    }
                    None => error(&mut d, libc::ENODEV),
                }
            }
            _ => error(&mut d, libc::EOPNOTSUPP),
        }
        out.push(d);
    }
    out
}

/// Whether `request` is one of the `SIOCGIF*` ioctls that read an interface's configuration.
pub(crate) fn is_interface_ioctl(request: u64) -> bool {
    matches!(request, 0x8910 | 0x8912 | 0x8913 | 0x8915 | 0x8919 | 0x891b | 0x8921 | 0x8927 | 0x8933)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (type, flags, seq, port, payload) of each message in a datagram.
    fn messages(d: &[u8]) -> Vec<(u16, u16, u32, u32, Vec<u8>)> {
        let mut v = Vec::new();
        let mut off = 0;
        while off + 16 <= d.len() {
            let len = u32::from_ne_bytes(d[off..off + 4].try_into().unwrap()) as usize;
            let f = |i: usize| u16::from_ne_bytes(d[off + i..off + i + 2].try_into().unwrap());
            let w = |i: usize| u32::from_ne_bytes(d[off + i..off + i + 4].try_into().unwrap());
            v.push((f(4), f(6), w(8), w(12), d[off + 16..off + len].to_vec()));
            off += (len + 3) & !3;
        }
        assert_eq!(off, d.len(), "messages fill the datagram exactly");
        v
    }

    fn request(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        message(&mut r, ty, flags, seq, 0, body);
        r
    }

    #[test]
    fn a_link_dump_lists_lo_and_eth0_then_done() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let d = answer(&request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 9, &[0; 16]), 77, ip, &[]);
        assert_eq!(d.len(), 1);
        let m = messages(&d[0]);
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), [RTM_NEWLINK, RTM_NEWLINK, NLMSG_DONE]);
        assert!(m.iter().all(|x| x.2 == 9 && x.3 == 77 && x.1 == NLM_F_MULTI));
        assert!(m[1].4.windows(5).any(|w| w == b"eth0\0"));
        assert!(m[1].4.windows(6).any(|w| w == [0x02, 0x00, 10, 0, 0, 7]), "the MAC comes from the address");
    }

    #[test]
    fn a_mirror_interface_is_listed_after_eth0_without_an_address() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let mirror = MirrorRule {
            interface: "mirror0".into(),
            direction: crate::packet::Direction::In,
            protocol: crate::packet::Protocol::Udp,
            port: Some(20000),
        };
        let d = answer(
            &request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 9, &[0; 16]),
            77,
            ip,
            std::slice::from_ref(&mirror),
        );
        let m = messages(&d[0]);
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), [RTM_NEWLINK, RTM_NEWLINK, RTM_NEWLINK, NLMSG_DONE]);
        assert!(m[2].4.windows(8).any(|w| w == b"mirror0\0"));
        assert_eq!(i32::from_ne_bytes(m[2].4[4..8].try_into().unwrap()), 3, "index 3");
        let a = answer(&request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, &[0; 8]), 5, ip, &[mirror]);
        assert_eq!(messages(&a[0]).len(), 5, "two IPv4 and two IPv6 addresses, as without the mirror, then done");
    }

    #[test]
    fn an_address_dump_gives_both_ipv4_addresses_then_both_ipv6_ones() {
        let ip = Ipv4Addr::new(10, 0, 1, 2);
        let d = answer(
            &request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, &[libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0]),
            5,
            ip,
            &[],
        );
        let m = messages(&d[0]);
        assert_eq!(m.iter().map(|x| x.0).collect::<Vec<_>>(), [RTM_NEWADDR, RTM_NEWADDR, NLMSG_DONE]);
        assert!(m[0].4.windows(4).any(|w| w == [127, 0, 0, 1]));
        assert!(m[1].4.windows(4).any(|w| w == [10, 0, 1, 2]));
        assert_eq!(&m[1].4[..4], &[libc::AF_INET as u8, 8, 0x80, 0]);
        let v6 = answer(&request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 2, &[libc::AF_INET6 as u8; 8]), 5, ip, &[]);
        let m6 = messages(&v6[0]);
        assert_eq!(m6.iter().map(|x| x.0).collect::<Vec<_>>(), [RTM_NEWADDR, RTM_NEWADDR, NLMSG_DONE]);
        assert_eq!(&m6[0].4[..4], &[libc::AF_INET6 as u8, 128, 0x80, 254], "::1/128 on lo, host scope");
        assert!(m6[0].4.windows(16).any(|w| w == std::net::Ipv6Addr::LOCALHOST.octets()));
        assert_eq!(&m6[1].4[..4], &[libc::AF_INET6 as u8, 96, 0x80, 0]);
        let own: std::net::Ipv6Addr = "fd00:7468::a00:102".parse().unwrap();
        assert!(m6[1].4.windows(16).any(|w| w == own.octets()));
        let all = answer(&request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 3, &[0; 8]), 5, ip, &[]);
        let families: Vec<u8> = messages(&all[0]).iter().filter(|x| x.0 == RTM_NEWADDR).map(|x| x.4[0]).collect();
        assert_eq!(families, [2, 2, 10, 10], "AF_UNSPEC: IPv4 addresses, then IPv6");
    }

    #[test]
    fn other_requests_get_an_error_and_non_requests_nothing() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let d = answer(&request(24, NLM_F_REQUEST | NLM_F_ACK, 3, &[0; 12]), 5, ip, &[]); // RTM_NEWROUTE
        let m = messages(&d[0]);
        assert_eq!(m[0].0, NLMSG_ERROR);
        assert_eq!(i32::from_ne_bytes(m[0].4[..4].try_into().unwrap()), -libc::EOPNOTSUPP);
        assert!(answer(&request(RTM_GETLINK, 0, 3, &[0; 16]), 5, ip, &[]).is_empty());
        let two = [
            request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, &[0; 16]),
            request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 2, &[0; 8]),
        ]
        .concat();
        assert_eq!(answer(&two, 5, ip, &[]).len(), 2, "one datagram per request");
    }

    proptest! {
        #[test]
        fn any_bytes_are_answered_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for d in answer(&bytes, 1, Ipv4Addr::new(10, 0, 0, 1), &[]) {
                messages(&d);
            }
        }
    }
}
