//! The discv5 boundary: surrogate identities that real clients (direct hosts) speak discv5 v5.1
//! to, over UDP. Only these identities pay for real discovery: each gets, on the first datagram
//! a client sends it, a [`Node`] of `thermocline_wire::discv5` (masking, the WHOAREYOU
//! handshake, session keys, PING/PONG and TALKREQ answered by the node itself) and answers
//! FINDNODE from its own Kademlia table, as real records of the identities it holds. Every other
//! identity keeps its compact rows.
//!
//! A client verifies each record it gets (its signature, and that its node id lies at the
//! distance it asked for), so in a run with direct hosts every identity's node id is the one
//! its secp256k1 key gives ([`keyed_node_ids`]); the tail's tables are built on those ids, and
//! the records handed out here are consistent with them. Keys derive from the run's seed and
//! the identity, so records are the same on every run, shard count and backend.

use super::table::{K, NodeId};
use crate::topics::attnets;
use crate::traffic::Subscriptions;
use k256::ecdsa::SigningKey;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use thermocline_models::directory::HostDirectory;
use thermocline_wire::discv5::enr::{Enr, node_id};
use thermocline_wire::discv5::message::Message;
use thermocline_wire::discv5::node::{Node, NodeEvent};

/// The UDP port identities take discv5 datagrams on, and the one their records give.
pub const DISCV5_PORT: u16 = 9000;

/// The secp256k1 key of identity `id` in a run with `seed`: a hash of both (rehashed in the
/// negligible case that it is not a valid scalar).
pub fn identity_key(seed: u64, id: u32) -> SigningKey {
    (0u32..)
        .find_map(|attempt| {
            let digest = Sha256::new()
                .chain_update(b"thermocline discv5 key")
                .chain_update(seed.to_be_bytes())
                .chain_update(id.to_be_bytes())
                .chain_update(attempt.to_be_bytes())
                .finalize();
            SigningKey::from_slice(&digest).ok()
        })
        .expect("some hash is a valid scalar")
}

/// Identity `id`'s record: sequence 1, its address and the UDP port of discv5, signed with
/// [`identity_key`] (deterministic ECDSA, so every shard makes the same). It gives no `tcp`: the
/// libp2p boundary authenticates with an ed25519 key, not this one, so a client that derived the
/// peer id from the record would fail the Noise handshake.
pub fn record(seed: u64, id: u32) -> Enr {
    let ip = HostDirectory::ip_of(id);
    let pairs: [(&[u8], Vec<u8>); 2] = [(b"ip", ip.octets().to_vec()), (b"udp", DISCV5_PORT.to_be_bytes().to_vec())];
    Enr::signed(&identity_key(seed, id), 1, &pairs).expect("a record of four fields fits 300 bytes")
}

/// Identity `id`'s record in an Ethereum consensus network (`[gossip.eth2]`), as a client's
/// bootnode list takes it: beside [`record`]'s fields, its libp2p `tcp` port (there its libp2p
/// key is this one, see [`crate::boundary::libp2p_key`], so the peer id matches), `eth2` (the
/// network's `ENRForkID`) and `attnets` (its attestation subnets, as its MetaData gives them).
pub fn eth2_record(seed: u64, id: u32, eth2: &[u8], attnets: u64) -> Enr {
    let ip = HostDirectory::ip_of(id);
    let pairs: [(&[u8], Vec<u8>); 5] = [
        (b"attnets", attnets.to_le_bytes().to_vec()),
        (b"eth2", eth2.to_vec()),
        (b"ip", ip.octets().to_vec()),
        (b"tcp", crate::boundary::GOSSIP_PORT.to_be_bytes().to_vec()),
        (b"udp", DISCV5_PORT.to_be_bytes().to_vec()),
    ];
    Enr::signed(&identity_key(seed, id), 1, &pairs).expect("a record of seven fields fits 300 bytes")
}

/// Every identity's node id from its key (keccak256 of the public key), for runs in which
/// real clients check them; the two cores of a shard process share the work.
pub fn keyed_node_ids(seed: u64, identities: u32) -> Vec<NodeId> {
    let one = |g: u32| node_id(identity_key(seed, g).verifying_key());
    let half = identities / 2;
    std::thread::scope(|s| {
        let low = s.spawn(|| (0..half).map(one).collect::<Vec<_>>());
        let high: Vec<NodeId> = (half..identities).map(one).collect();
        let mut ids = low.join().expect("key derivation does not panic");
        ids.extend(high);
        ids
    })
}

/// What one boundary identity exchanged with clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams received.
    pub datagrams_in: u32,
    /// Datagrams sent.
    pub datagrams_out: u32,
    /// UDP payload bytes received.
    pub bytes_in: u64,
    /// UDP payload bytes sent.
    pub bytes_out: u64,
    /// FINDNODE requests answered.
    pub findnodes: u32,
    /// Records sent in NODES answers.
    pub records: u32,
    /// Sessions established with clients.
    pub sessions: u32,
}

/// What the boundary's records carry in an Ethereum consensus network (`[gossip.eth2]`): the
/// network's `ENRForkID` and every identity's subscriptions, so that a client's discovery finds
/// records it accepts as peers (the right fork digest, a `tcp` port, `attnets`) and dials them
/// (see [`eth2_record`]).
#[derive(Clone)]
pub struct Eth2Records {
    /// The network's `ENRForkID` (SSZ).
    pub fork_id: Vec<u8>,
    /// Every surrogate's topics, for its `attnets`.
    pub subscriptions: Arc<Subscriptions>,
}

/// The boundary identities of one shard (see the module documentation).
pub struct Boundary {
    seed: u64,
    eth2: Option<Eth2Records>,
    nodes: BTreeMap<u32, Node>,
    records: BTreeMap<u32, Enr>,
    traffic: BTreeMap<u32, Traffic>,
}

impl Boundary {
    /// No identity has met a client yet; in an Ethereum network, records carry `tcp`, `eth2`
    /// and `attnets` as well (see [`Eth2Records`]).
    pub fn new(seed: u64, eth2: Option<Eth2Records>) -> Self {
        Boundary { seed, eth2, nodes: BTreeMap::new(), records: BTreeMap::new(), traffic: BTreeMap::new() }
    }

    /// Identity `id`'s record, made once per shard.
    fn record(&mut self, id: u32) -> &Enr {
        let (seed, eth2) = (self.seed, &self.eth2);
        self.records.entry(id).or_insert_with(|| match eth2 {
            Some(e) => eth2_record(seed, id, &e.fork_id, attnets(e.subscriptions.of(id))),
            None => record(seed, id),
        })
    }

    /// A datagram from a client at `from` reached identity `id`. FINDNODE is answered from
    /// `table` (the identity's entries at the distances asked, at most `limit`); distance 0 is
    /// the identity's own record. Returns the datagrams to send, in order.
    pub fn handle_datagram(
        &mut self,
        id: u32,
        from: SocketAddrV4,
        data: &[u8],
        table: impl Fn(&[u16], usize) -> Vec<u32>,
    ) -> Vec<(SocketAddrV4, Vec<u8>)> {
        let seed = self.seed;
        if !self.nodes.contains_key(&id) {
            let node_seed = u64::from_be_bytes(
                Sha256::new()
                    .chain_update(b"thermocline discv5 boundary")
                    .chain_update(seed.to_be_bytes())
                    .chain_update(id.to_be_bytes())
                    .finalize()[..8]
                    .try_into()
                    .expect("8 bytes"),
            );
            let own = self.record(id).clone();
            self.nodes.insert(id, Node::new(identity_key(seed, id), own, node_seed));
        }
        let traffic = self.traffic.entry(id).or_default();
        traffic.datagrams_in += 1;
        traffic.bytes_in += data.len() as u64;
        let node = self.nodes.get_mut(&id).expect("made above");
        node.handle_packet(from, data);
        let mut requests = Vec::new();
        while let Some(event) = node.poll_event() {
            match event {
                NodeEvent::Request { from, message: Message::FindNode { req_id, distances } } => {
                    requests.push((from, req_id, distances));
                }
                NodeEvent::Established { .. } => self.traffic.entry(id).or_default().sessions += 1,
                NodeEvent::Request { .. } | NodeEvent::Response { .. } => {}
            }
        }
        for (peer, req_id, distances) in requests {
            let records = self.findnode_answer(id, &distances, &table);
            let t = self.traffic.entry(id).or_default();
            t.findnodes += 1;
            t.records += records.len() as u32;
            self.nodes.get_mut(&id).expect("made above").answer_findnode(peer, &req_id, &records);
        }
        let node = self.nodes.get_mut(&id).expect("made above");
        let mut out = Vec::new();
        while let Some((to, datagram)) = node.poll_transmit() {
            out.push((to, datagram));
        }
        let t = self.traffic.entry(id).or_default();
        t.datagrams_out += out.len() as u32;
        t.bytes_out += out.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
        out
    }

    /// The records of a FINDNODE answer, at the distances asked in their order: the identity's
    /// own for distance 0, its table's entries for 1 to 256; at most [`K`].
    fn findnode_answer(&mut self, id: u32, distances: &[u64], table: &impl Fn(&[u16], usize) -> Vec<u32>) -> Vec<Enr> {
        let mut records = Vec::new();
        for &d in distances {
            let room = K - records.len();
            if room == 0 {
                break;
            }
            if d == 0 {
                records.push(self.record(id).clone());
            } else if d <= 256 {
                for node in table(&[d as u16], room) {
                    records.push(self.record(node).clone());
                }
            }
        }
        records
    }

    /// Every identity that met a client, with what it exchanged, by identity.
    pub fn traffic(&self) -> &BTreeMap<u32, Traffic> {
        &self.traffic
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use std::net::Ipv4Addr;
    use thermocline_wire::discv5::enr::log_distance;

    fn client(seed: u8) -> Node {
        let key = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pairs: [(&[u8], Vec<u8>); 2] = [(b"ip", vec![10, 0, 9, 9]), (b"udp", 30303u16.to_be_bytes().to_vec())];
        let enr = Enr::signed(&key, 1, &pairs).unwrap();
        Node::new(key, enr, u64::from(seed))
    }

    /// Datagrams between a client node and the boundary until neither has more to say; the
    /// client's events in order.
    fn exchange(b: &mut Boundary, c: &mut Node, id: u32, table: &impl Fn(&[u16], usize) -> Vec<u32>) -> Vec<NodeEvent> {
        let me = SocketAddrV4::new(Ipv4Addr::new(10, 0, 9, 9), 30303);
        let mut events = Vec::new();
        for _ in 0..10 {
            let mut any = false;
            while let Some((_, d)) = c.poll_transmit() {
                any = true;
                for (to, back) in b.handle_datagram(id, me, &d, table) {
                    assert_eq!(to, me);
                    c.handle_packet(SocketAddrV4::new(HostDirectory::ip_of(id), DISCV5_PORT), &back);
                }
            }
            while let Some(e) = c.poll_event() {
                events.push(e);
            }
            if !any {
                break;
            }
        }
        events
    }

    /// The records of the NODES answers among a client's events, decoded (so verified).
    fn records_in(events: &[NodeEvent]) -> Vec<Enr> {
        events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::Response { message: Message::Nodes { records, .. }, .. } => Some(records.clone()),
                _ => None,
            })
            .flatten()
            .map(|r| Enr::decode(&r).unwrap())
            .collect()
    }

    #[test]
    fn keys_ids_and_records_agree_and_repeat() {
        let ids = keyed_node_ids(7, 5);
        for (g, id) in ids.iter().enumerate() {
            let r = record(7, g as u32);
            assert_eq!(r.node_id(), *id);
            assert_eq!(Enr::decode(r.encoded()).unwrap(), r, "records verify");
            assert_eq!(r.ip4(), Some(HostDirectory::ip_of(g as u32)));
            assert_eq!((r.udp(), r.tcp()), (Some(DISCV5_PORT), None));
            assert_eq!(record(7, g as u32).encoded(), r.encoded(), "signing is deterministic");
        }
        assert_ne!(keyed_node_ids(8, 5), ids, "the seed picks the keys");
    }

    #[test]
    fn ethereum_records_name_the_libp2p_peer_and_the_network() {
        let fork_id = [0x31, 0x68, 0x1a, 0xd1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let r = eth2_record(7, 3, &fork_id, 1 << 5 | 1 << 40);
        let read = Enr::from_text(&r.to_text()).unwrap();
        assert_eq!(read, r, "the text form verifies");
        assert_eq!(
            (read.tcp(), read.udp(), read.ip4()),
            (Some(9000), Some(DISCV5_PORT), Some(HostDirectory::ip_of(3)))
        );
        assert_eq!(read.get(b"eth2"), Some(&fork_id[..]));
        assert_eq!(read.get(b"attnets"), Some(&(1u64 << 5 | 1 << 40).to_le_bytes()[..]));
        assert_eq!(read.node_id(), record(7, 3).node_id(), "the same discovery key");
        // A client derives the peer id it dials from the record's key: the identity's libp2p key.
        let libp2p = crate::boundary::libp2p_key(7, 3, true);
        let compressed = read.public_key().to_sec1_point(true);
        assert_eq!(libp2p.public().to_raw(), compressed.as_bytes());
    }

    #[test]
    fn a_client_handshakes_and_gets_records_at_the_distances_it_asked() {
        let ids = keyed_node_ids(3, 40);
        let me = 0u32;
        // The identity's table: every other identity, bucketed by real distance.
        let table = |ds: &[u16], limit: usize| -> Vec<u32> {
            let mut out = Vec::new();
            for &d in ds {
                out.extend((1..40u32).filter(|&n| log_distance(&ids[me as usize], &ids[n as usize]) == d));
            }
            out.truncate(limit);
            out
        };
        let mut b = Boundary::new(3, None);
        let mut c = client(9);
        let own = record(3, me);
        c.learn(own.clone());
        let peer = (own.node_id(), SocketAddrV4::new(HostDirectory::ip_of(me), DISCV5_PORT));
        let far = log_distance(&ids[0], &ids[1]);
        assert!(c.send(peer, Message::FindNode { req_id: vec![1], distances: vec![u64::from(far), 0] }));
        let events = exchange(&mut b, &mut c, me, &table);
        let records = records_in(&events);
        let expected = table(&[far], K - 1).len() + 1;
        assert_eq!(records.len(), expected, "{events:?}");
        assert_eq!(records.last().unwrap().node_id(), ids[0], "distance 0 is the identity itself");
        for r in &records[..expected - 1] {
            assert_eq!(log_distance(&ids[0], &r.node_id()), far);
        }
        let t = b.traffic()[&me];
        assert_eq!((t.findnodes, t.records, t.sessions), (1, expected as u32, 1));
        assert!(t.datagrams_in >= 2 && t.datagrams_out >= 2, "{t:?}");
        // A PING in the session is answered by the node itself.
        assert!(c.send(peer, Message::Ping { req_id: vec![2], enr_seq: 1 }));
        let events = exchange(&mut b, &mut c, me, &table);
        assert!(events.iter().any(|e| matches!(e, NodeEvent::Response { message: Message::Pong { .. }, .. })));
    }

    #[test]
    fn in_an_ethereum_network_answers_carry_the_fork_the_tcp_port_and_each_identitys_subnets() {
        let traffic: crate::config::TrafficSpec =
            toml::from_str("attestations = { subnets_per_node = 2, per_subnet = 0 }").unwrap();
        let subscriptions = Arc::new(Subscriptions::compute(8, &traffic, 3, true));
        let fork_id = vec![0x31, 0x68, 0x1a, 0xd1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let eth2 = Eth2Records { fork_id: fork_id.clone(), subscriptions: Arc::clone(&subscriptions) };
        let mut b = Boundary::new(3, Some(eth2));
        let mut c = client(9);
        let own = eth2_record(3, 0, &fork_id, attnets(subscriptions.of(0)));
        c.learn(own.clone());
        let peer = (own.node_id(), SocketAddrV4::new(HostDirectory::ip_of(0), DISCV5_PORT));
        // A table that holds identities 1..8 at whatever distance is asked.
        let table = |_: &[u16], limit: usize| (1..8u32).take(limit).collect::<Vec<_>>();
        assert!(c.send(peer, Message::FindNode { req_id: vec![1], distances: vec![200, 0] }));
        let records = records_in(&exchange(&mut b, &mut c, 0, &table));
        assert_eq!(records.len(), 8);
        let mut distinct = std::collections::BTreeSet::new();
        for r in &records {
            let id = (0..8u32).find(|&g| HostDirectory::ip_of(g) == r.ip4().unwrap()).expect("an identity's address");
            assert_eq!(r.get(b"eth2"), Some(&fork_id[..]));
            assert_eq!(r.get(b"attnets"), Some(&attnets(subscriptions.of(id)).to_le_bytes()[..]));
            assert_eq!(r.tcp(), Some(crate::boundary::GOSSIP_PORT));
            assert_eq!(r.node_id(), record(3, id).node_id(), "the identity's discovery key");
            distinct.insert(attnets(subscriptions.of(id)));
        }
        assert!(distinct.len() > 1, "identities on different subnets say so");
    }

    #[test]
    fn garbage_is_dropped_without_an_answer_or_a_panic() {
        let mut b = Boundary::new(1, None);
        let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 9, 9), 1);
        for len in [0, 1, 20, 63, 200, 1500] {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            assert!(b.handle_datagram(2, from, &junk, |_, _| Vec::new()).is_empty());
        }
    }
}
