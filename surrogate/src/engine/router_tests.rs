//! The router's protocol rules, one identity at a time, in quinn-proto's `Pair` manner: a shard
//! that holds one identity (`me`) of a small network, whose other identities live on the other
//! shard and are played by the test. The test hands `me` RPCs as bus events from its peers and
//! reads what `me` sends them from the outbox, so each rule is checked at the router's edge with
//! the real event codec and nothing else in the way.

use super::*;
use crate::config::{GossipSpec, LinkQueue};
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
        Pair::with_upload(n, LinkQueue::Fifo)
    }

    /// [`Pair::new`] with the profile's upload queue set to `upload`.
    fn with_upload(n: u32, upload: LinkQueue) -> Pair {
        Pair::with_links(n, upload, LinkQueue::Fifo)
    }

    /// [`Pair::new`] with the profile's upload and download queues set.
    fn with_links(n: u32, upload: LinkQueue, download: LinkQueue) -> Pair {
        Pair::with_params(n, |p| {
            p.upload = upload;
            p.download = download;
        })
    }

    /// [`Pair::new`] with the profile's parameters changed by `change`.
    fn with_params(n: u32, change: impl FnOnce(&mut GossipParams)) -> Pair {
        Pair::with_attackers(n, change, Vec::new())
    }

    /// [`Pair::with_params`] with `attackers` (global id ranges, each with its attack).
    fn with_attackers(
        n: u32,
        change: impl FnOnce(&mut GossipParams),
        attackers: Vec<(std::ops::Range<u32>, Attack)>,
    ) -> Pair {
        let mut params = GossipSpec::default().params_for("ethereum").unwrap();
        change(&mut params);
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
            profiles: vec![("ethereum".into(), params)],
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
            attackers,
        };
        let e = GossipEngine::new(setup, shard).unwrap();
        Pair { e, me, other: ShardId(1 - shard.0), seq: 0 }
    }

    /// Lets `me` run to `until` (ns); returns what it sent meanwhile, as (peer, RPC).
    fn run(&mut self, until: u64) -> Vec<(u32, Rpc)> {
        self.run_timed(until).into_iter().map(|(peer, rpc, _)| (peer, rpc)).collect()
    }

    /// [`Pair::run`] with each RPC's arrival time at its peer (ns).
    fn run_timed(&mut self, until: u64) -> Vec<(u32, Rpc, u64)> {
        let mut outbox = Outbox::new(2);
        self.e.run_until(SimTime::from_nanos(until), &mut outbox).unwrap();
        let events = outbox.for_shard(self.other);
        events.iter().map(|ev| (ev.dst_host.0, Rpc::decode(&ev.payload).unwrap(), ev.deliver_time.as_nanos())).collect()
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
        upload_us: 0,
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

/// The times the copies of a 1 MB block `me` forwards to its two other peers arrive, with the
/// upload queue `upload`.
fn forwarded_arrivals(upload: LinkQueue) -> Vec<u64> {
    let mut p = Pair::with_upload(4, upload);
    let b = p.peers(4)[0];
    p.run(2_000 * MS);
    p.hand(b, 2_000 * MS, block(b, 0, 1_000_000, 1_990 * MS));
    let mut arrivals: Vec<u64> =
        p.run_timed(5_000 * MS).into_iter().filter(|(_, r, _)| r.kind == RpcKind::Message).map(|x| x.2).collect();
    arrivals.sort_unstable();
    arrivals
}

#[test]
fn a_fair_upload_sends_copies_side_by_side_where_a_fifo_sends_them_in_turn() {
    // 1 MB at the default 100 Mbit/s: 80 ms per copy (plus framing).
    let fifo = forwarded_arrivals(LinkQueue::Fifo);
    let fair = forwarded_arrivals(LinkQueue::Fair);
    assert_eq!((fifo.len(), fair.len()), (2, 2), "{fifo:?} {fair:?}");
    let serialisation = fifo[1] - fifo[0];
    assert!((79 * MS..82 * MS).contains(&serialisation), "{fifo:?}");
    // Both fair copies leave together, when the second FIFO copy does; the first FIFO copy
    // leaves one serialisation earlier.
    assert_eq!(fair[0], fair[1]);
    assert_eq!(fair[1], fifo[1]);
}

/// When `me`'s copy of a 1 MB block reaches its third peer, after two peers sent it the block at
/// the same instant, with the download queue `download`.
fn relayed_after_two_arrivals(download: LinkQueue) -> u64 {
    let mut p = Pair::with_links(4, LinkQueue::Fifo, download);
    let (b, c, d) = (p.peers(4)[0], p.peers(4)[1], p.peers(4)[2]);
    p.run(2_000 * MS);
    let m = block(b, 0, 1_000_000, 1_990 * MS);
    p.hand(b, 2_000 * MS, m);
    p.hand(c, 2_000 * MS, m);
    let to_d: Vec<u64> = p
        .run_timed(5_000 * MS)
        .into_iter()
        .filter(|(to, r, _)| *to == d && r.kind == RpcKind::Message)
        .map(|x| x.2)
        .collect();
    assert_eq!(to_d.len(), 1, "{to_d:?}");
    to_d[0]
}

#[test]
fn a_fair_download_shares_the_link_between_copies_arriving_together() {
    // With a FIFO download the first copy is whole after one serialisation (80 ms at the default
    // 100 Mbit/s); shared, both are whole only after two.
    let fifo = relayed_after_two_arrivals(LinkQueue::Fifo);
    let fair = relayed_after_two_arrivals(LinkQueue::Fair);
    assert!((79 * MS..82 * MS).contains(&(fair - fifo)), "{fifo} {fair}");
}

/// The times `me`'s copies of a 100 KB block reach its 4 other peers (the first to be handed
/// over first), with fair upload, slow start, and `rounds` (`slow_start_rounds`); and the
/// path's one-way latency.
fn burst_on_idle_connections(rounds: bool) -> (Vec<(u32, u64)>, u64) {
    let mut p = Pair::with_params(6, |p| {
        p.upload = LinkQueue::Fair;
        p.slow_start = true;
        p.slow_start_rounds = rounds;
    });
    let b = p.peers(6)[0];
    let latency = p.e.net.routes.by_index(p.e.conn[p.conn(b)].path).latency_ns;
    p.run(2_000 * MS);
    p.hand(b, 2_000 * MS, block(b, 0, 100_000, 1_990 * MS));
    let sent = p.run_timed(5_000 * MS).into_iter().filter(|(_, r, _)| r.kind == RpcKind::Message);
    (sent.map(|(to, _, t)| (to, t)).collect(), latency)
}

#[test]
fn slow_start_rounds_idle_the_link_between_round_trips_and_finish_a_burst_in_order() {
    let (plain, latency) = burst_on_idle_connections(false);
    let (rounds, _) = burst_on_idle_connections(true);
    assert_eq!((plain.len(), rounds.len()), (4, 4), "{plain:?} {rounds:?}");
    // Without rounds the four copies leave together, after their shared serialisation or their
    // three round trips, whichever is later.
    assert!(plain.iter().all(|&(_, t)| t == plain[0].1), "{plain:?}");
    // With rounds each copy also waits for its round trips with the copies handed over before
    // it still sharing the link: the k-th handed over leaves no earlier than the (k−1)-th, and
    // the last, sharing with all four, after round 2's start (one round trip) plus four times
    // the 60 segments left from it (100,054 − 14,600 bytes at 100 Mbit/s: 6.84 ms each).
    let mut times: Vec<u64> = rounds.iter().map(|x| x.1).collect();
    times.sort_unstable();
    assert!(times.iter().zip(&plain).all(|(r, p)| *r >= p.1), "{plain:?} {rounds:?}");
    let rtt = 2 * latency;
    let left = 4 * (100_054 - 14_600) * 8 * 1_000_000_000 / 100_000_000;
    assert!(times[3] >= 2_000 * MS + rtt + left + latency, "{rounds:?} rtt {rtt}");
    assert!(times[3] > times[0], "a burst finishes in the order it was handed over: {rounds:?}");
}

/// When `me`'s copy of a 1 MB block reaches its third peer, after two peers sent it the block
/// at the same instant, each having taken `upload_ms` to send it, with the download queue
/// `download`; and the copy's own recorded upload time, µs.
fn relayed_after_spread_arrivals(download: LinkQueue, upload_ms: u32) -> (u64, u32) {
    let mut p = Pair::with_links(4, LinkQueue::Fifo, download);
    let (b, c, d) = (p.peers(4)[0], p.peers(4)[1], p.peers(4)[2]);
    p.run(2_000 * MS);
    let m = Rpc { upload_us: upload_ms * 1000, ..block(b, 0, 1_000_000, 1_990 * MS) };
    p.hand(b, 2_000 * MS, m);
    p.hand(c, 2_000 * MS, m);
    let to_d: Vec<(u64, u32)> = p
        .run_timed(5_000 * MS)
        .into_iter()
        .filter(|(to, r, _)| *to == d && r.kind == RpcKind::Message)
        .map(|(_, r, t)| (t, r.upload_us))
        .collect();
    assert_eq!(to_d.len(), 1, "{to_d:?}");
    to_d[0]
}

#[test]
fn a_pipelined_download_has_taken_a_slow_senders_bytes_by_its_last_one() {
    // Two copies that took 300 ms each to send (at a third of the 100-Mbit downlink each): their
    // bytes were taken as they came, so `me` has the block one segment after the last byte,
    // not one serialisation (80 ms) later as a store-and-forward FIFO has it.
    let (fifo, _) = relayed_after_spread_arrivals(LinkQueue::Fifo, 300);
    let (piped, sent_us) = relayed_after_spread_arrivals(LinkQueue::Pipelined, 300);
    let segment = Bandwidth(100_000_000).transmit_ns(1460).unwrap();
    let serialisation = Bandwidth(100_000_000).transmit_ns(Rpc::wire_bytes(&block(0, 0, 1_000_000, 0))).unwrap();
    assert_eq!(fifo - piped, serialisation - segment, "{fifo} {piped}");
    // `me`'s own FIFO upload sent the 1 MB copy in one serialisation, and says so.
    assert_eq!(sent_us as u64, serialisation / 1000);
    // Without a recorded upload time a pipelined download is store-and-forward, as the FIFO.
    let (unknown, _) = relayed_after_spread_arrivals(LinkQueue::Pipelined, 0);
    assert_eq!(unknown, fifo);
}

/// When the copies of two 100 KB blocks (received 100 ms apart) that `me` forwards to one peer
/// arrive there, and the path's one-way latency, with fair upload and `slow_start`.
fn forwarded_blocks(slow_start: bool) -> (Vec<u64>, u64) {
    let mut p = Pair::with_params(3, |p| {
        p.upload = LinkQueue::Fair;
        p.slow_start = slow_start;
    });
    let (b, c) = (p.peers(3)[0], p.peers(3)[1]);
    let latency = p.e.net.routes.by_index(p.e.conn[p.conn(c)].path).latency_ns;
    p.run(2_000 * MS);
    p.hand(b, 2_000 * MS, block(b, 0, 100_000, 1_990 * MS));
    p.hand(b, 2_100 * MS, block(b, 1, 100_000, 2_090 * MS));
    let to_c =
        p.run_timed(5_000 * MS).into_iter().filter(|(to, r, _)| *to == c && r.kind == RpcKind::Message).map(|x| x.2);
    (to_c.collect(), latency)
}

#[test]
fn slow_start_holds_a_copy_on_an_idle_connection_for_its_round_trips_only() {
    let (open, _) = forwarded_blocks(false);
    let (slow, latency) = forwarded_blocks(true);
    assert_eq!((open.len(), slow.len()), (2, 2), "{open:?} {slow:?}");
    // 100,054 bytes on the wire: 69 segments, windows of 10, 20, 40: the last leaves after two
    // round trips from the copy's start instead of one serialisation (8 ms at 100 Mbit/s).
    let serialisation = 100_054 * 8 * 1_000_000_000 / 100_000_000;
    assert_eq!(slow[0] - open[0], 4 * latency - serialisation, "{open:?} {slow:?}");
    // The second copy follows 100 ms later on a connection still warm: no slow start.
    assert_eq!(slow[1], open[1]);
}

/// When `me`'s copies of a 100 KB block from `b` (at 2,100 ms) reach `c`, whose connection a
/// block from `d` warmed 100 ms before, and `d`, whose connection is idle; and the paths'
/// one-way latency. Fair upload with slow start, as `windows` (`slow_start_windows`) or not.
fn warm_and_cold_copies(windows: bool) -> ((u64, u64), u64) {
    let mut p = Pair::with_params(4, |p| {
        p.upload = LinkQueue::Fair;
        p.slow_start = true;
        p.slow_start_windows = windows;
    });
    let (b, c, d) = (p.peers(4)[0], p.peers(4)[1], p.peers(4)[2]);
    let latency = p.e.net.routes.by_index(p.e.conn[p.conn(c)].path).latency_ns;
    p.run(2_000 * MS);
    p.hand(d, 2_000 * MS, block(d, 0, 100_000, 1_990 * MS));
    p.run(2_100 * MS);
    p.hand(b, 2_100 * MS, block(b, 1, 100_000, 2_090 * MS));
    let sent = p.run_timed(5_000 * MS);
    let at = |to: u32| sent.iter().find(|(t, r, _)| *t == to && r.kind == RpcKind::Message).map(|x| x.2).unwrap();
    ((at(c), at(d)), latency)
}

#[test]
fn slow_start_windows_leave_the_link_to_warm_copies_between_round_trips() {
    let ((c_floor, d_floor), latency) = warm_and_cold_copies(false);
    let ((c_windows, d_windows), _) = warm_and_cold_copies(true);
    let ser = |bytes: u64| bytes * 8 * 1_000_000_000 / 100_000_000;
    let copy = 100_054;
    // `me` forwards the block once it has downloaded it and validated it (10 ms).
    let t0 = 2_100 * MS + ser(copy) + 10 * MS;
    // As a floor, the cold copy takes half the link for the whole of the warm copy's
    // serialisation: the warm one is through after two serialisations.
    assert!(c_floor.abs_diff(t0 + 2 * ser(copy) + latency) < 2_000, "{c_floor}");
    // As windows, the cold copy's first window (10 segments) shares the link, then leaves it
    // to the warm copy until the cold one's round trip is over.
    assert!(c_windows.abs_diff(t0 + ser(copy) + ser(14_600) + latency) < 2_000, "{c_windows}");
    // The cold copy goes in windows of 10, 20 and then its last 38.5 segments, a round trip
    // apart, and is through one serialisation of that last window after the second round trip.
    let rtt = 2 * latency;
    assert!(d_windows.abs_diff(t0 + 2 * rtt + ser(copy - 14_600 - 29_200) + latency) < 2_000, "{d_windows}");
    assert!(d_floor.abs_diff(t0 + 2 * rtt + latency) < 2_000, "{d_floor}");
}

/// An invalid block message from attacker `from`.
fn invalid(from: u32, seq: u32, at: u64) -> Rpc {
    Rpc { msg: MsgKey::invalid(from, seq), ..block(from, 0, 1_000, at) }
}

#[test]
fn invalid_messages_are_rejected_after_validation_charged_to_the_sender_who_is_then_cut_off() {
    let mut p = Pair::new(3);
    let (b, c) = (p.peers(3)[0], p.peers(3)[1]);
    p.run(2_000 * MS);
    let cb = p.conn(b);
    p.hand(b, 2_000 * MS, invalid(b, 0, 1_995 * MS));
    // Still validating (10 ms): no penalty yet.
    p.run(2_005 * MS);
    assert_eq!(p.e.attack.invalid_of(cb), 0.0);
    let sent = p.run(2_050 * MS);
    assert!(of_kind(&sent, c, RpcKind::Message).is_empty(), "never forwarded: {sent:?}");
    assert!(of_kind(&sent, c, RpcKind::IDontWant).is_empty(), "{sent:?}");
    assert_eq!(p.e.attack.invalid_of(cb), 1.0, "P4 counts one invalid message");
    assert!(p.e.msg_slot.is_empty(), "an invalid message leaves no state");
    let now_ms = 2_050;
    assert!((p.e.score_of(0, cb, now_ms) - -145.0).abs() < 1.0, "{}", p.e.score_of(0, cb, now_ms));
    // Ten more take the sender below the disconnect threshold: it is told and cut off.
    for k in 1..11u32 {
        p.hand(b, (2_100 + 20 * k as u64) * MS, invalid(b, k, 2_095 * MS));
    }
    let sent = p.run(3_000 * MS);
    assert_eq!(of_kind(&sent, b, RpcKind::Disconnect).len(), 1, "{sent:?}");
    assert!(!p.e.up(cb) && !p.e.in_mesh(0, 0, cb));
    assert_eq!((p.e.attack.invalid_in[0], p.e.attack.disconnects[0]), (11, 1));
    // Its score is kept: a reconnection is refused.
    p.hand(b, 3_100 * MS, Rpc::control(RpcKind::Connect, 0));
    let sent = p.run(3_200 * MS);
    assert_eq!(of_kind(&sent, b, RpcKind::Disconnect).len(), 1, "{sent:?}");
    assert!(!p.e.up(cb));
    // The honest peer is untouched.
    assert!(p.e.up(p.conn(c)) && p.e.score_of(0, p.conn(c), 3_200) >= 0.0);
}

#[test]
fn without_scoring_invalid_messages_are_dropped_but_cost_the_sender_nothing() {
    let mut p = Pair::with_params(3, |p| p.scoring = false);
    let (b, c) = (p.peers(3)[0], p.peers(3)[1]);
    p.run(2_000 * MS);
    for k in 0..20u32 {
        p.hand(b, (2_000 + 10 * k as u64) * MS, invalid(b, k, 1_995 * MS));
    }
    let sent = p.run(3_000 * MS);
    assert!(of_kind(&sent, c, RpcKind::Message).is_empty() && of_kind(&sent, b, RpcKind::Disconnect).is_empty());
    assert_eq!((p.e.attack.invalid_in[0], p.e.attack.disconnects[0]), (20, 0));
    assert!(p.e.up(p.conn(b)) && p.e.in_mesh(0, 0, p.conn(b)));
}

#[test]
fn an_iwant_for_one_message_is_answered_gossip_retransmission_times_per_peer() {
    let mut p = Pair::new(4);
    let (b, c, d) = (p.peers(4)[0], p.peers(4)[1], p.peers(4)[2]);
    p.run(2_000 * MS);
    let m = block(b, 0, 1_000, 1_990 * MS);
    p.hand(b, 2_000 * MS, m);
    p.run(2_500 * MS);
    for k in 0..5 {
        p.hand(c, (2_500 + k) * MS, Rpc::about(RpcKind::IWant, &m));
    }
    p.hand(d, 2_510 * MS, Rpc::about(RpcKind::IWant, &m));
    let sent = p.run(3_000 * MS);
    assert_eq!(of_kind(&sent, c, RpcKind::Message).len(), 3, "{sent:?}");
    assert_eq!(of_kind(&sent, d, RpcKind::Message).len(), 1, "another peer has its own count: {sent:?}");
}

/// `me` as an attacker doing `attack` from the start, among `n` identities.
fn attacker(n: u32, attack: Attack) -> Pair {
    Pair::with_attackers(n, |_| {}, vec![(0..1, attack)])
}

fn attack() -> Attack {
    Attack { start_ns: 0, invalid_every_ns: 0, invalid_size: 1_000, graft_spam: false, iwant_spam: 0, withhold: false }
}

#[test]
fn an_attacker_publishes_invalid_messages_at_its_rate_to_every_peer() {
    let mut p = attacker(3, Attack { invalid_every_ns: 100 * MS, ..attack() });
    let sent = p.run(1_000 * MS);
    for peer in p.peers(3) {
        let copies = of_kind(&sent, peer, RpcKind::Message);
        assert!((9..=10).contains(&copies.len()), "{sent:?}");
        assert!(copies.iter().all(|r| r.msg.is_invalid() && r.msg.publisher() == 0 && r.size == 1_000));
    }
}

#[test]
fn a_graft_spammer_grafts_again_inside_the_backoff_and_a_withholder_forwards_and_answers_nothing() {
    let mut p = attacker(3, Attack { graft_spam: true, withhold: true, ..attack() });
    let (b, c) = (p.peers(3)[0], p.peers(3)[1]);
    p.run(2_000 * MS);
    let mut prune = Rpc::control(RpcKind::Prune, TOPIC_BEACON_BLOCK);
    prune.backoff_ms = 60_000;
    p.hand(b, 2_000 * MS, prune);
    let sent = p.run(3_000 * MS);
    assert!(!of_kind(&sent, b, RpcKind::Graft).is_empty(), "backoff ignored: {sent:?}");
    let m = block(b, 0, 1_000, 2_990 * MS);
    p.hand(b, 3_000 * MS, m);
    p.hand(c, 3_100 * MS, Rpc::about(RpcKind::IWant, &m));
    let sent = p.run(4_000 * MS);
    assert!(of_kind(&sent, c, RpcKind::Message).is_empty(), "{sent:?}");
}

#[test]
fn an_iwant_spammer_asks_every_peer_for_what_it_holds_at_each_heartbeat() {
    let mut p = attacker(3, Attack { iwant_spam: 4, ..attack() });
    let (b, c) = (p.peers(3)[0], p.peers(3)[1]);
    p.run(2_000 * MS);
    p.hand(b, 2_000 * MS, block(b, 0, 1_000, 1_990 * MS));
    let heartbeat = p.e.params[0].heartbeat.as_nanos();
    let sent = p.run(2_000 * MS + heartbeat);
    assert_eq!(of_kind(&sent, c, RpcKind::IWant).len(), 4, "{sent:?}");
    assert_eq!(of_kind(&sent, b, RpcKind::IWant).len(), 4, "{sent:?}");
}

/// The peers `me` forwards a block of `b`'s to, when it arrives from `c`.
fn forwarded_to(forward_to_source: bool) -> Vec<u32> {
    let mut p = Pair::with_params(4, |p| p.forward_to_source = forward_to_source);
    let (b, c) = (p.peers(4)[0], p.peers(4)[1]);
    p.run(2_000 * MS);
    assert!(p.e.in_mesh(0, 0, p.conn(b)), "the publisher is a mesh peer");
    p.hand(c, 2_000 * MS, block(b, 0, 1_000, 1_990 * MS));
    let mut to: Vec<u32> =
        p.run(3_000 * MS).into_iter().filter(|(_, r)| r.kind == RpcKind::Message).map(|x| x.0).collect();
    to.sort_unstable();
    to
}

#[test]
fn a_message_goes_back_to_its_publisher_only_where_sources_are_unknown() {
    // Anonymous messages (Ethereum's): the publisher gets a copy like any other mesh peer but the
    // sender; signed ones (libp2p's default): never to the source.
    assert_eq!(forwarded_to(true), [1, 3]);
    assert_eq!(forwarded_to(false), [3]);
}
