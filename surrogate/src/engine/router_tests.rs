//! The router's protocol rules, one identity at a time, in quinn-proto's `Pair` manner: a shard
//! that holds one identity (`me`) of a small network, whose other identities live on the other
//! shard and are played by the test. The test hands `me` RPCs as bus events from its peers and
//! reads what `me` sends them from the outbox, so each rule is checked at the router's edge with
//! the real event codec and nothing else in the way.

use super::*;
use crate::config::GossipSpec;
use thermocline_bus::SimDuration;
use thermocline_models::directory::{HostGroupSpec, HostKind};
use thermocline_models::network::{NetworkSpec, TopologyKind};
use thermocline_models::partition::Range;

/// One identity under test and the peers the test plays.
struct Pair {
    e: GossipEngine,
    /// The identity under test.
    me: u32,
    /// The shard the test's identities are on.
    other: ShardId,
    seq: u64,
}

const MS: u64 = 1_000_000;

impl Pair {
    /// `n` identities, all connected to each other, on two shards; `me` is alone on its shard.
    fn new(n: u32) -> Pair {
        let hosts = [HostGroupSpec {
            name: "t".into(),
            kind: HostKind::Surrogate,
            count: n,
            location: None,
            locations: None,
            bandwidth: None,
            profile: None,
            load: None,
        }];
        let spec = NetworkSpec { topology: TopologyKind::SingleSwitch, ..Default::default() };
        let net = NetworkModel::build(&spec, None, &hosts).unwrap();
        // Identity 0 is `me`, alone on shard 0; the others are on shard 1.
        let ranges = vec![Range { first: 0, last: 0, shard: 0 }, Range { first: 1, last: n - 1, shard: 1 }];
        let partition = Partition { ranges, shards: 2 };
        let (shard, me) = (ShardId(0), 0);
        let graph = PeerGraph::build(n, n - 1, 20, 1);
        let subscriptions = Subscriptions::compute(n, &TrafficSpec::default(), 1, false);
        let traffic = TrafficSpec { start: SimDuration::from_secs(3600), ..TrafficSpec::default() };
        let setup = GossipSetup {
            profiles: vec![("ethereum".into(), GossipSpec::default().params_for("ethereum").unwrap())],
            traffic,
            net,
            partition,
            graph: &graph,
            subscriptions: &subscriptions,
            seed: 1,
            end: SimTime::from_nanos(600_000 * MS),
            max_peers: 20,
            px_slots: 0,
            client_slots: 0,
            start_unix_ns: 0,
            runahead_ns: 0,
            message_ids: GossipSpec::default().message_id_fns().unwrap(),
            client_dials: &[],
            lifetime: thermocline_bus::SimDuration::from_secs(60),
            keep_messages: false,
            eth2: None,
            rules: Default::default(),
            discovery: None,
            outbound_peers: n - 1,
            subnet_peers: 0,
        };
        let e = GossipEngine::new(setup, shard).unwrap();
        Pair { e, me, other: ShardId(1 - shard.0), seq: 0 }
    }

    /// Lets `me` run to `until` (ns); returns what it sent meanwhile, as (peer, RPC).
    fn run(&mut self, until: u64) -> Vec<(u32, Rpc)> {
        let mut outbox = Outbox::new(2);
        self.e.run_until(SimTime::from_nanos(until), &mut outbox).unwrap();
        let events = outbox.for_shard(self.other);
        events.iter().map(|ev| (ev.dst_host.0, Rpc::decode(&ev.payload).unwrap())).collect()
    }

    /// Peer `from` sends `me` an RPC that arrives at `at` (ns).
    fn hand(&mut self, from: u32, at: u64, rpc: Rpc) {
        self.seq += 1;
        let mut events = vec![Event {
            deliver_time: SimTime::from_nanos(at),
            src_host: HostId(from),
            src_seq: self.seq,
            dst_host: HostId(self.me),
            kind: GOSSIP_EVENT_KIND,
            payload: bytes::Bytes::from(rpc.encode()),
        }];
        self.e.deliver(&mut events).unwrap();
    }

    /// The peers the test plays.
    fn peers(&self, n: u32) -> Vec<u32> {
        (0..n).filter(|&h| h != self.me).collect()
    }

    /// `me`'s connection to `peer`.
    fn conn(&self, peer: u32) -> usize {
        self.e.slot_of(0, peer).unwrap()
    }
}

/// A block message from `publisher`, published at `published_ns`.
fn block(publisher: u32, seq: u32, size: u32, published_ns: u64) -> Rpc {
    Rpc {
        kind: RpcKind::Message,
        topic: TOPIC_BEACON_BLOCK,
        hops: 1,
        msg: MsgKey::new(publisher, seq),
        size,
        published_ns,
        backoff_ms: 0,
        hint: NO_HINT,
    }
}

fn of_kind(sent: &[(u32, Rpc)], to: u32, kind: RpcKind) -> Vec<Rpc> {
    sent.iter().filter(|(p, r)| *p == to && r.kind == kind).map(|(_, r)| *r).collect()
}

#[test]
fn the_first_heartbeat_grafts_every_subscribed_peer_below_d_low() {
    let mut p = Pair::new(3);
    let sent = p.run(2_000 * MS);
    for peer in p.peers(3) {
        assert_eq!(of_kind(&sent, peer, RpcKind::Graft).len(), 1, "{sent:?}");
        assert!(p.e.in_mesh(0, 0, p.conn(peer)));
    }
}

#[test]
fn a_graft_within_our_backoff_is_refused_with_a_prune_and_penalised() {
    let mut p = Pair::new(2);
    let b = p.peers(2)[0];
    p.run(2_000 * MS);
    let mut prune = Rpc::control(RpcKind::Prune, TOPIC_BEACON_BLOCK);
    prune.backoff_ms = 60_000;
    p.hand(b, 2_000 * MS, prune);
    p.hand(b, 2_100 * MS, Rpc::control(RpcKind::Graft, TOPIC_BEACON_BLOCK));
    let sent = p.run(2_200 * MS);
    let refusals = of_kind(&sent, b, RpcKind::Prune);
    assert_eq!(refusals.len(), 1, "{sent:?}");
    assert_eq!(refusals[0].backoff_ms, 59_900, "the backoff left");
    assert_eq!(p.e.graft_in_backoff[0], 1);
    assert_eq!(p.e.score[p.conn(b)].behaviour, 1.0, "one behaviour penalty (P7)");
    assert!(!p.e.in_mesh(0, 0, p.conn(b)));
    // `me` itself waits out the backoff before grafting `b` again.
    let during = p.run(61_900 * MS);
    assert!(of_kind(&during, b, RpcKind::Graft).is_empty(), "{during:?}");
    let after = p.run(64_000 * MS);
    assert_eq!(of_kind(&after, b, RpcKind::Graft).len(), 1, "{after:?}");
}

#[test]
fn an_ihave_of_an_unseen_message_gets_one_iwant_per_followup_period() {
    let mut p = Pair::new(3);
    let (b, c) = (p.peers(3)[0], p.peers(3)[1]);
    p.run(2_000 * MS);
    let m = block(b, 0, 1_000, 1_990 * MS);
    p.hand(b, 2_000 * MS, Rpc::about(RpcKind::IHave, &m));
    p.hand(c, 2_010 * MS, Rpc::about(RpcKind::IHave, &m));
    let sent = p.run(2_100 * MS);
    let asked = of_kind(&sent, b, RpcKind::IWant);
    assert_eq!(asked.len(), 1, "{sent:?}");
    assert_eq!(asked[0].msg, m.msg);
    assert!(of_kind(&sent, c, RpcKind::IWant).is_empty(), "asked once within the follow-up period");
    // A message `me` has is not asked for.
    p.hand(b, 2_100 * MS, m);
    p.run(2_500 * MS);
    p.hand(c, 2_600 * MS, Rpc::about(RpcKind::IHave, &m));
    let later = p.run(3_000 * MS);
    assert!(of_kind(&later, c, RpcKind::IWant).is_empty(), "{later:?}");
}

#[test]
fn an_idontwant_cancels_a_copy_still_queued_for_that_peer() {
    let mut p = Pair::new(4);
    let (b, c, d) = (p.peers(4)[0], p.peers(4)[1], p.peers(4)[2]);
    p.run(2_000 * MS);
    // A large block from `b`: once downloaded and validated, `me` uploads it to its other mesh
    // peers one copy at a time, so one copy waits in the queue while the other is on the link.
    let m = block(b, 0, 1_000_000, 1_990 * MS);
    p.hand(b, 2_000 * MS, m);
    let mut now = 2_000 * MS;
    let mut sent = Vec::new();
    while p.e.txq[0].is_empty() && now < 3_000 * MS {
        now += MS;
        sent.extend(p.run(now));
    }
    let (queued, _) = p.e.txq[0][0];
    let waiting = p.e.conn[queued as usize].peer;
    let first = if waiting == c { d } else { c };
    assert!(waiting == c || waiting == d, "a copy for {waiting} queued");
    // The waiting peer says IDONTWANT (it got the block elsewhere) before its copy's turn.
    p.hand(waiting, now + MS, Rpc::about(RpcKind::IDontWant, &m));
    sent.extend(p.run(5_000 * MS));
    assert_eq!(of_kind(&sent, first, RpcKind::Message).len(), 1, "{sent:?}");
    assert!(of_kind(&sent, waiting, RpcKind::Message).is_empty(), "{sent:?}");
    assert_eq!(p.e.cancelled[0], 1);
    // `me` told its mesh peers IDONTWANT for the large block, but not the peer it came from.
    assert_eq!(of_kind(&sent, first, RpcKind::IDontWant).len(), 1, "{sent:?}");
    assert!(of_kind(&sent, b, RpcKind::IDontWant).is_empty(), "{sent:?}");
}
