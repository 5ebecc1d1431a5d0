//! Two nodes wired back to back in memory (quinn's `Pair`): handshakes either way round, the
//! node's own answers, NODES split under the packet limit, and what a stranger's bytes do.

use super::*;
use std::net::Ipv4Addr;

struct Pair {
    a: Node,
    b: Node,
    events: Vec<(bool, NodeEvent)>,
    /// Datagrams delivered, with their sizes: (to b?, bytes).
    sent: Vec<(bool, usize)>,
}

const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9000);
const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9000);

fn node(secret: u8, addr: SocketAddrV4, seed: u64) -> Node {
    let key = SigningKey::from_slice(&[secret; 32]).unwrap();
    let enr =
        Enr::signed(&key, 1, &[(b"ip", addr.ip().octets().to_vec()), (b"udp", addr.port().to_be_bytes().to_vec())])
            .unwrap();
    Node::new(key, enr, seed)
}

impl Pair {
    fn new() -> Pair {
        let (a, b) = (node(1, A, 1), node(2, B, 2));
        Pair { a, b, events: Vec::new(), sent: Vec::new() }
    }

    /// Moves datagrams until none is left.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            while let Some((to, bytes)) = self.a.poll_transmit() {
                assert_eq!(to, B);
                self.sent.push((true, bytes.len()));
                self.b.handle_packet(A, &bytes);
                moved = true;
            }
            while let Some((to, bytes)) = self.b.poll_transmit() {
                assert_eq!(to, A);
                self.sent.push((false, bytes.len()));
                self.a.handle_packet(B, &bytes);
                moved = true;
            }
            while let Some(e) = self.a.poll_event() {
                self.events.push((false, e));
            }
            while let Some(e) = self.b.poll_event() {
                self.events.push((true, e));
            }
            if !moved {
                break;
            }
        }
    }

    fn peer_b(&self) -> Peer {
        (self.b.id(), B)
    }
}

#[test]
fn a_ping_to_a_new_peer_completes_the_handshake_and_gets_a_pong_with_our_address() {
    let mut p = Pair::new();
    p.a.learn(p.b.enr().clone());
    assert!(p.a.send(p.peer_b(), Message::Ping { req_id: vec![7], enr_seq: 1 }));
    p.run();
    // random packet → WHOAREYOU → handshake with the PING → PONG in the session.
    assert_eq!(p.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [true, false, true, false]);
    assert_eq!((p.a.sessions(), p.b.sessions()), (1, 1));
    let pong = Message::Pong { req_id: vec![7], enr_seq: 1, ip: IpAddr::V4(*A.ip()), port: A.port() };
    assert!(p.events.contains(&(false, NodeEvent::Response { from: p.peer_b(), message: pong })));
    let record = p.events.iter().find_map(|(to_b, e)| match e {
        NodeEvent::Established { record, .. } if *to_b => Some(record.clone()),
        _ => None,
    });
    assert_eq!(record.flatten().map(|r| r.node_id()), Some(p.a.id()), "B did not know A: A sent its record");

    p.sent.clear();
    p.b.send((p.a.id(), A), Message::TalkReq { req_id: vec![1], protocol: b"x".to_vec(), request: vec![] });
    p.run();
    assert_eq!(p.sent.len(), 2, "the session works the other way round too, with no new handshake");
    let resp = Message::TalkResp { req_id: vec![1], response: vec![] };
    assert!(p.events.contains(&(true, NodeEvent::Response { from: (p.a.id(), A), message: resp })));
}

#[test]
fn a_findnode_is_the_callers_and_its_nodes_are_split_under_the_packet_limit() {
    let mut p = Pair::new();
    p.a.learn(p.b.enr().clone());
    p.a.send(p.peer_b(), Message::FindNode { req_id: vec![3], distances: vec![256] });
    p.run();
    let asked = p
        .events
        .iter()
        .any(|(to_b, e)| *to_b && matches!(e, NodeEvent::Request { message: Message::FindNode { .. }, .. }));
    assert!(asked);
    let records: Vec<Enr> = (10..26).map(|k| node(k, B, 0).enr().clone()).collect();
    p.sent.clear();
    p.b.answer_findnode((p.a.id(), A), &[3], &records);
    p.run();
    assert!(p.sent.iter().all(|&(_, len)| len <= MAX_PACKET), "{:?}", p.sent);
    assert!(p.sent.len() > 1, "16 records do not fit one packet");
    let got: Vec<(u64, usize)> = p
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            NodeEvent::Response { message: Message::Nodes { total, records, .. }, .. } => Some((*total, records.len())),
            _ => None,
        })
        .collect();
    assert_eq!(got.iter().map(|g| g.1).sum::<usize>(), 16);
    assert!(got.iter().all(|g| g.0 == got.len() as u64), "every NODES names the total: {got:?}");
}

#[test]
fn a_node_that_lost_its_session_is_challenged_again_and_strangers_bytes_do_nothing() {
    let mut p = Pair::new();
    p.a.learn(p.b.enr().clone());
    p.a.send(p.peer_b(), Message::Ping { req_id: vec![1], enr_seq: 1 });
    p.run();
    p.b = node(2, B, 9);
    p.sent.clear();
    p.a.send(p.peer_b(), Message::Ping { req_id: vec![2], enr_seq: 1 });
    p.run();
    // B cannot open it and challenges; A holds a session, so it has no request waiting for a
    // WHOAREYOU and ignores it (a real client would start over on its request timeout).
    assert_eq!(p.sent.iter().map(|s| s.0).collect::<Vec<_>>(), [true, false]);
    for junk in [vec![0u8; 10], vec![0xff; 100], vec![7u8; 1300]] {
        p.b.handle_packet(A, &junk);
    }
    assert!(p.b.poll_transmit().is_none() && p.b.poll_event().is_none());
}
