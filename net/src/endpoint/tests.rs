//! The endpoint's events and calls between two endpoints wired back to back ([`crate::pair`]).

use super::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DELAY: u64 = 5_000_000;

type Pair = crate::pair::Pair<Endpoint>;

fn pair() -> Pair {
    Pair::new(Endpoint::new(A, 1, 0), Endpoint::new(B, 2, 0), DELAY)
}

#[test]
fn a_dial_is_accepted_and_bytes_cross_both_ways() {
    let mut p = pair();
    p.b.listen(9000).unwrap();
    let c = p.a.connect(0, SocketAddrV4::new(B, 9000)).unwrap();
    p.run(100_000_000);
    assert!(p.took(false, |e| *e == NetEvent::Connected(c)));
    let (s, remote) = match p.events.iter().find(|(b, _)| *b) {
        Some((_, NetEvent::Accepted { conn, remote })) => (*conn, *remote),
        other => panic!("no accept: {other:?}"),
    };
    assert_eq!(*remote.ip(), A);
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    while got.len() < big.len() {
        if sent < big.len() {
            sent += p.a.send(p.now, c, &big[sent..]).unwrap();
        }
        p.run(p.now + DELAY);
        got.extend(p.b.recv(p.now, s).unwrap());
    }
    assert_eq!(got, big, "300 kB arrive intact, in order, through window updates");
    p.b.send(p.now, s, b"pong").unwrap();
    p.run(p.now + 50_000_000);
    assert_eq!(p.a.recv(p.now, c).unwrap(), b"pong");
}

/// Losses leave bytes out of order in the receiver's ring while it is drained (and its pages
/// returned) as data arrives: 2 MB still arrive intact through many laps of the ring.
#[test]
fn bytes_cross_intact_through_losses_while_the_receive_ring_is_drained() {
    let mut p = pair();
    p.b.listen(9000).unwrap();
    let c = p.a.connect(0, SocketAddrV4::new(B, 9000)).unwrap();
    p.run(100_000_000);
    let s = match p.events.iter().find(|(b, _)| *b) {
        Some((_, NetEvent::Accepted { conn, .. })) => *conn,
        other => panic!("no accept: {other:?}"),
    };
    p.lose_every = 37;
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    while got.len() < big.len() && p.now < 600_000_000_000 {
        if sent < big.len() {
            sent += p.a.send(p.now, c, &big[sent..]).unwrap();
        }
        p.run(p.now + DELAY / 5);
        got.extend(p.b.recv(p.now, s).unwrap());
    }
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the bytes arrive intact and in order");
}

#[test]
fn a_dial_to_a_closed_port_is_refused_and_reported_closed() {
    let mut p = pair();
    let c = p.a.connect(0, SocketAddrV4::new(B, 9001)).unwrap();
    p.run(100_000_000);
    assert!(p.took(false, |e| *e == NetEvent::Closed(c)), "{:?}", p.events);
    assert!(!p.events.iter().any(|(_, e)| matches!(e, NetEvent::Connected(_) | NetEvent::Accepted { .. })));
    assert_eq!(p.a.connections(), 0);
    assert_eq!(p.a.send(p.now, c, b"x"), Err(EndpointError::NoConnection));
}

#[test]
fn a_port_is_listened_on_once_and_closing_ends_both_sides() {
    let mut p = pair();
    p.b.listen(9000).unwrap();
    assert_eq!(p.b.listen(9000), Err(EndpointError::AddrInUse));
    let c = p.a.connect(0, SocketAddrV4::new(B, 9000)).unwrap();
    p.run(100_000_000);
    let s = p
        .events
        .iter()
        .find_map(|(_, e)| match e {
            NetEvent::Accepted { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap();
    p.a.close(p.now, c);
    p.run(p.now + 100_000_000);
    p.b.close(p.now, s);
    p.run(p.now + 200_000_000_000);
    assert!(p.took(true, |e| *e == NetEvent::Closed(s)));
    assert!(p.took(false, |e| *e == NetEvent::Closed(c)));
    assert_eq!((p.a.connections(), p.b.connections()), (0, 0));
}

#[test]
fn two_dials_get_distinct_ports_and_both_are_accepted() {
    let mut p = pair();
    p.b.listen(9000).unwrap();
    let c1 = p.a.connect(0, SocketAddrV4::new(B, 9000)).unwrap();
    let c2 = p.a.connect(0, SocketAddrV4::new(B, 9000)).unwrap();
    p.run(100_000_000);
    let remotes: Vec<u16> = p
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            NetEvent::Accepted { remote, .. } => Some(remote.port()),
            _ => None,
        })
        .collect();
    assert_eq!(remotes.len(), 2);
    assert_ne!(remotes[0], remotes[1]);
    assert!(p.took(false, |e| *e == NetEvent::Connected(c1)) && p.took(false, |e| *e == NetEvent::Connected(c2)));
}

#[test]
fn more_dials_at_once_than_the_listen_pool_are_all_accepted() {
    let mut p = pair();
    p.b.listen(9000).unwrap();
    let dials: Vec<ConnId> =
        (0..3 * crate::tcp::LISTEN_POOL).map(|_| p.a.connect(0, SocketAddrV4::new(B, 9000)).unwrap()).collect();
    p.run(100_000_000);
    let accepted = p.events.iter().filter(|(b, e)| *b && matches!(e, NetEvent::Accepted { .. })).count();
    assert_eq!(accepted, dials.len(), "the pool refills between SYNs: {:?}", p.events);
    for c in dials {
        assert!(p.took(false, |e| *e == NetEvent::Connected(c)));
    }
}

#[test]
fn a_datagram_crosses_both_ways_between_bound_sockets() {
    let mut p = pair();
    let server = p.b.bind_udp(9000).unwrap();
    let client = p.a.bind_udp(0).unwrap();
    assert!(client.0 >= crate::host::EPHEMERAL, "an ephemeral port: {client:?}");
    assert_eq!(p.a.send_to(client, SocketAddrV4::new(B, 9000), b"ping"), Ok(4));
    p.run(100_000_000);
    assert!(p.took(true, |e| *e == NetEvent::Datagram(server)));
    let (from, data) = p.b.recv_from(server).unwrap().unwrap();
    assert_eq!((from, data.as_slice()), (SocketAddrV4::new(A, client.0), &b"ping"[..]));
    assert_eq!(p.b.recv_from(server), Ok(None), "one datagram, taken once");
    p.b.send_to(server, from, b"pong").unwrap();
    p.run(p.now + 100_000_000);
    assert!(p.took(false, |e| *e == NetEvent::Datagram(client)));
    assert_eq!(p.a.recv_from(client).unwrap().map(|(_, d)| d), Some(b"pong".to_vec()));
}

#[test]
fn datagram_ports_are_held_once_and_apart_from_tcp() {
    let mut p = pair();
    p.b.listen(9000).unwrap();
    let u = p.b.bind_udp(9000).expect("UDP and TCP ports are separate spaces");
    assert_eq!(p.b.bind_udp(9000), Err(EndpointError::AddrInUse));
    assert_eq!(p.b.send_to(UdpPort(9001), SocketAddrV4::new(A, 1), b"x"), Err(EndpointError::NoSocket));
    assert_eq!(p.b.send_to(u, SocketAddrV4::new(A, 1), &vec![0; MAX_UDP_PAYLOAD + 1]), Err(EndpointError::TooLarge));
    p.b.close_udp(u);
    assert_eq!(p.b.recv_from(u), Err(EndpointError::NoSocket));
    assert_eq!(p.b.bind_udp(9000), Ok(u), "free again once closed");
}

#[test]
fn a_datagram_to_an_unbound_port_is_dropped_without_an_event() {
    let mut p = pair();
    let a = p.a.bind_udp(0).unwrap();
    p.a.send_to(a, SocketAddrV4::new(B, 7), b"nobody").unwrap();
    p.run(100_000_000);
    assert!(p.events.is_empty(), "{:?}", p.events);
    assert_eq!(p.b.udp_sockets(), 0);
}
