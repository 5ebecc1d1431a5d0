//! The discv5 protocol of one shard's identities, sans-IO: packets and timers in
//! ([`Discovery::handle_packet`], [`Discovery::handle_timer`]), packets to send and timers to
//! set out, in the order made ([`Discovery::drain_outputs`]). Time comes from the caller; the engine owns the clock,
//! the network and the queue.
//!
//! What an identity does (devp2p `discv5-theory.md`):
//! - it joins with the bootnodes' records in its table and looks up its own id, then looks up a
//!   random target at `lookup_interval`, α FINDNODE requests in flight, until the k closest
//!   nodes it has seen have answered or failed;
//! - a node enters its table on contact: when it answers, or when it asks something and can be
//!   reached (identities behind NAT never enter a table);
//! - every `revalidate` it pings the least recently verified entry of one bucket; an entry that
//!   does not answer gives its place to a replacement candidate;
//! - a request to a peer without a session goes out with random content; the peer answers
//!   WHOAREYOU, and the request follows in a handshake packet. A recipient that lost the
//!   session (it keeps `sessions` of them) answers WHOAREYOU to an ordinary packet too.
//!
//! Every identity's state changes only in its own events (its packets and timers), and its
//! random draws come from its own stream, so a run is the same on any shard count.

use super::config::Discv5Spec;
use super::packet::{Kind, Packet, Seal, Sizes};
use super::table::{Inserted, K, NodeId, Table, log_distance};
use crate::prefetch::{prefetch, prefetch_all};
use crate::traffic::Subscriptions;
use libm::log;
use rand_core::Rng;
use std::sync::Arc;
use thermocline_models::rng::{CompactRng, StreamFamily, below};

/// Lookup candidates kept beyond the k closest, so that failed ones have successors.
const CANDIDATES: usize = 3 * K;

/// The record sequence number every identity advertises (records do not change in a run).
const ENR_SEQ: u32 = 1;

/// A timer an identity sets; one that fires after its identity went offline and came back (a
/// newer `epoch`) is stale and does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    /// What to do.
    pub kind: TimerKind,
    /// The identity's epoch when set.
    pub epoch: u16,
}

/// What a timer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// Join the network.
    Join,
    /// Ping one table entry.
    Revalidate,
    /// Start a random lookup.
    Lookup,
    /// The earliest pending request's time is up: every request past its deadline fails (one
    /// timer per identity, set for the earliest deadline, rather than one per request).
    Expire,
    /// Go offline (churn).
    Offline,
    /// Come back online (churn).
    Online,
}

/// What the protocol asks of its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Send `packet` from local identity `from` to identity `to` (a global index).
    Send {
        /// Local index of the sender.
        from: u32,
        /// Global index of the recipient.
        to: u32,
        /// The packet.
        packet: Packet,
        /// Its size on the network.
        bytes: u32,
    },
    /// Fire `timer` at local identity `who` at time `at` (ns).
    Timer {
        /// Local index.
        who: u32,
        /// When.
        at: u64,
        /// The timer.
        timer: Timer,
    },
}

/// A request waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct Request {
    req: u32,
    peer: u32,
    /// When it fails if not fully answered.
    deadline: u64,
    kind: Kind,
    value: u32,
    /// NODES packets received, and how many the answer has.
    got: u8,
    total: u8,
    /// Sent again in a handshake packet after a WHOAREYOU.
    handshaken: bool,
    /// Part of the running lookup.
    lookup: bool,
}

/// Where a lookup stands with one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Not,
    Asking,
    Answered,
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// The first 8 bytes of its distance to the target (XOR, big-endian): the sort key, ties
    /// broken by the whole distance (see [`insert_candidate`]). 16 bytes a candidate rather
    /// than 40, for the 48 of each running lookup.
    prefix: u64,
    node: u32,
    hop: u8,
    asked: Asked,
}

/// A running lookup.
#[derive(Debug, Clone)]
struct Lookup {
    target: NodeId,
    random: bool,
    started: u64,
    messages: u32,
    seen: u32,
    /// The closest nodes seen, by distance to the target.
    candidates: Vec<Candidate>,
    /// A subnet query: the topic, and the subscribers to it heard of, in the order heard.
    subnet: Option<(u8, Vec<u32>)>,
}

/// A finished lookup, one row of `discv5_lookups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupRow {
    /// The identity (global index).
    pub identity: u32,
    /// A random target (else its own id).
    pub random: bool,
    /// Start and end, ns.
    pub start_ns: u64,
    /// End, ns.
    pub end_ns: u64,
    /// The longest chain of answers that led to a node of the result.
    pub hops: u8,
    /// FINDNODE requests sent.
    pub messages: u32,
    /// Distinct nodes heard of.
    pub seen: u32,
    /// Nodes in the result: the closest that answered, at most k.
    pub found: u32,
    /// Log2 distance from the target to the closest found (257: none found).
    pub target_distance: u16,
    /// How many of the exact k closest identities the result holds (with `exact`).
    pub exact_overlap: Option<u8>,
}

/// Per-identity counters, for the digest and the `discv5_identities` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sent.
    pub sent: u32,
    /// Packets received while online.
    pub received: u32,
    /// Bytes sent, by packet kind ([`Kind`] order).
    pub bytes: [u64; 5],
    /// Requests that timed out.
    pub timeouts: u32,
    /// Lookups finished.
    pub lookups: u32,
    /// When it first joined, ns.
    pub joined_ns: u64,
}

const ONLINE: u8 = 1;
const CHURNS: u8 = 2;

/// Which identities sit behind NAT: a function of the seed and the index, so that every shard
/// knows it of every identity without storing it.
fn behind_nat(seed: u64, node: u32, threshold: u64) -> bool {
    let mut z = seed ^ (u64::from(node) << 1 | 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) < threshold
}

/// Every identity's node id: SHA-256 of the seed and the index (the tail needs the 256-bit id
/// only; identities that meet real clients get real keys at the boundary).
pub fn node_ids(seed: u64, identities: u32) -> Vec<NodeId> {
    use sha2::{Digest as _, Sha256};
    (0..identities)
        .map(|i| {
            let mut h = Sha256::new();
            h.update(b"thermocline-discv5-id\0");
            h.update(seed.to_be_bytes());
            h.update(i.to_be_bytes());
            h.finalize().into()
        })
        .collect()
}

/// One identity's state, kept together so that an event touches few cache lines.
#[derive(Debug)]
struct Node {
    /// Its global index.
    global: u32,
    /// [`ONLINE`], [`CHURNS`].
    flags: u8,
    /// Subnets queried for (with subnet queries on): the next is for its topic after these.
    subnets_queried: u8,
    /// Queries made so far for the current subnet.
    subnet_attempts: u8,
    /// Bumped when it goes offline: timers set before are stale.
    epoch: u16,
    next_req: u32,
    /// When its expiry timer fires (0: none set; `u64::MAX`: expiring now).
    expire_at: u64,
    rng: CompactRng,
    counters: Counters,
    table: Table,
    /// Peers with a session, least recently used first.
    sessions: Vec<u32>,
    pending: Vec<Request>,
    lookup: Option<Box<Lookup>>,
}

/// What the protocol of a shard needs to start.
pub struct Setup<'a> {
    /// The `[discv5]` section (checked).
    pub spec: &'a Discv5Spec,
    /// Every identity's node id, by global index.
    pub ids: Arc<[NodeId]>,
    /// The identities this shard owns (global indices, ascending).
    pub owned: Vec<u32>,
    /// The run's seed.
    pub seed: u64,
    /// Keep the identities each finished lookup found (see [`Discovery::take_found`]), for a
    /// peer manager that dials them.
    pub report_found: bool,
    /// With `report_found`: every identity's topics and the peers it wants on each subnet; each
    /// identity then queries for peers of each subnet it subscribes to after its first query for
    /// peers, again (up to [`SUBNET_QUERIES`] times) while a query finds fewer than it wants.
    pub subnets: Option<(Arc<Subscriptions>, u32)>,
}

/// Queries an identity makes at most for one subnet.
pub const SUBNET_QUERIES: u8 = 4;

/// The discv5 state of one shard's identities; see the module documentation.
pub struct Discovery {
    spec: Discv5Spec,
    sizes: Sizes,
    ids: Arc<[NodeId]>,
    seed: u64,
    nat_threshold: u64,
    bootnodes: Vec<u32>,
    /// The identities, by local index.
    nodes: Vec<Node>,
    out: Vec<Output>,
    rows: Vec<LookupRow>,
    /// Queries finished since the last [`Discovery::take_found`], when the setup asks for them.
    found: Option<Vec<Found>>,
    /// Every identity's topics and the peers wanted per subnet, for subnet queries (with
    /// `report_found`).
    subnets: Option<(Arc<Subscriptions>, u32)>,
}

/// What a finished query for peers found: (local identity, the subnet topic it looked for, if
/// any, the identities found).
pub type Found = (u32, Option<u8>, Vec<u32>);

impl Discovery {
    /// The identities of `setup.owned`, each with its join timer set.
    pub fn new(setup: Setup<'_>) -> Discovery {
        let Setup { spec, ids, owned, seed, report_found, subnets } = setup;
        let n = owned.len();
        let nat_threshold = thermocline_models::rng::probability_threshold(spec.nat_share);
        let bootnodes: Vec<u32> = (0..ids.len() as u32)
            .filter(|&g| !behind_nat(seed, g, nat_threshold))
            .take(spec.bootnodes as usize)
            .collect();
        let family = StreamFamily::new(seed, "discv5");
        let churn_threshold =
            spec.churn.as_ref().map_or(0, |c| thermocline_models::rng::probability_threshold(c.share));
        let mut d = Discovery {
            spec: spec.clone(),
            sizes: Sizes::measure(),
            ids,
            seed,
            nat_threshold,
            bootnodes,
            nodes: Vec::with_capacity(n),
            out: Vec::new(),
            rows: Vec::new(),
            found: report_found.then(Vec::new),
            subnets: subnets.filter(|_| report_found),
        };
        for (i, g) in owned.into_iter().enumerate() {
            let mut rng = family.compact(g);
            let boot = d.bootnodes.contains(&g);
            let at = if boot { 0 } else { below(&mut rng, spec.join_over.as_nanos().max(1)) };
            let churns = rng.next_u64() < churn_threshold && !boot;
            d.nodes.push(Node {
                global: g,
                flags: if churns { CHURNS } else { 0 },
                subnets_queried: 0,
                subnet_attempts: 0,
                epoch: 0,
                next_req: 0,
                expire_at: 0,
                rng,
                counters: Counters::default(),
                table: Table::new(),
                sessions: Vec::new(),
                pending: Vec::new(),
                lookup: None,
            });
            d.timer(i, at, TimerKind::Join);
        }
        d
    }

    /// Outputs in the order they were made (the engine takes them all after each event).
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.out.drain(..)
    }

    /// The packet sizes in use.
    pub fn sizes(&self) -> &Sizes {
        &self.sizes
    }

    /// What the random lookups finished since the last call found, as a peer manager's queries
    /// return them; empty unless the setup asked. A query for peers gives the identities that
    /// answered, closest to the target first; a subnet query the subscribers it heard of, in
    /// the order heard; bootnodes never. With the setup asking, an identity's self-lookup (at
    /// joining, and again on each return from churn) is followed at once by a query for peers
    /// (not after `lookup_interval`); its subnet queries follow the first of these only.
    pub fn take_found(&mut self) -> Vec<Found> {
        self.found.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Lookups finished since the last call.
    pub fn take_rows(&mut self) -> Vec<LookupRow> {
        std::mem::take(&mut self.rows)
    }

    /// Global index of local identity `i`.
    pub fn global(&self, i: u32) -> u32 {
        self.nodes[i as usize].global
    }

    /// Local identities.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the shard owns no identity.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Frees what a finished run no longer needs, every identity's table, sessions, requests
    /// and lookup, keeping its counters and flags, so that the results are built without them
    /// in memory. Returns each identity's table entries and filled buckets as they were.
    pub fn release(&mut self) -> Vec<(u32, u32)> {
        self.nodes
            .iter_mut()
            .map(|n| {
                let sizes = (n.table.len() as u32, n.table.filled_buckets() as u32);
                n.table = Table::new();
                n.sessions = Vec::new();
                n.pending = Vec::new();
                n.lookup = None;
                sizes
            })
            .collect()
    }

    /// Local identity `i`'s table.
    pub fn table(&self, i: u32) -> &Table {
        &self.nodes[i as usize].table
    }

    /// Local identity `i`'s counters.
    pub fn counters(&self, i: u32) -> &Counters {
        &self.nodes[i as usize].counters
    }

    /// Whether local identity `i` is online.
    pub fn online(&self, i: u32) -> bool {
        self.nodes[i as usize].flags & ONLINE != 0
    }

    /// Whether identity `node` (global) sits behind NAT.
    pub fn behind_nat(&self, node: u32) -> bool {
        behind_nat(self.seed, node, self.nat_threshold)
    }

    /// Start loading what an event of local identity `i` will read: its record (`stage` 0),
    /// then what the record points to (`stage` 1, once the record is in cache). Only a hint.
    pub fn prefetch(&self, i: u32, stage: u8) {
        let Some(n) = self.nodes.get(i as usize) else { return };
        if stage == 0 {
            prefetch_all(n);
            return;
        }
        n.table.prefetch();
        if let Some(p) = n.pending.first() {
            prefetch(p);
        }
        if let Some(s) = n.sessions.first() {
            prefetch(s);
        }
        if let Some(l) = n.lookup.as_deref() {
            prefetch(l);
            if let Some(c) = l.candidates.first() {
                prefetch(c);
            }
        }
    }

    /// Start loading the node ids of `nodes` (global indices), which an event will compare.
    pub fn prefetch_ids(&self, nodes: &[u32]) {
        for &n in nodes {
            if let Some(id) = self.ids.get(n as usize) {
                prefetch(id);
            }
        }
    }

    /// A timer fired at local identity `i`.
    pub fn handle_timer(&mut self, now: u64, i: u32, timer: Timer) {
        let i = i as usize;
        if timer.epoch != self.nodes[i].epoch {
            return;
        }
        match timer.kind {
            TimerKind::Join => {
                self.nodes[i].counters.joined_ns = now;
                self.come_online(now, i);
            }
            TimerKind::Online => self.come_online(now, i),
            TimerKind::Offline => self.go_offline(now, i),
            TimerKind::Revalidate => self.revalidate(now, i),
            TimerKind::Lookup => {
                if self.nodes[i].lookup.is_none() {
                    let mut target = [0u8; 32];
                    self.nodes[i].rng.fill_bytes(&mut target);
                    self.start_lookup(now, i, target, true);
                }
                let next = now + self.jittered(i, self.spec.lookup_interval.as_nanos());
                self.timer(i, next, TimerKind::Lookup);
            }
            TimerKind::Expire => self.expire(now, i),
        }
    }

    /// A packet from identity `from` (global) reached local identity `i`.
    pub fn handle_packet(&mut self, now: u64, i: u32, from: u32, p: Packet) {
        let i = i as usize;
        if self.nodes[i].flags & ONLINE == 0 {
            return;
        }
        self.nodes[i].counters.received += 1;
        match p.kind {
            Kind::WhoAreYou => self.challenged(i, from, p.req),
            Kind::Ping | Kind::FindNode => self.request(i, from, p),
            Kind::Pong | Kind::Nodes => self.response(now, i, from, p),
        }
    }

    fn come_online(&mut self, now: u64, i: usize) {
        self.nodes[i].flags |= ONLINE;
        let g = self.nodes[i].global;
        for b in 0..self.bootnodes.len() {
            let node = self.bootnodes[b];
            if node != g {
                let d = self.distance(g, node);
                self.nodes[i].table.insert(node, d);
            }
        }
        self.start_lookup(now, i, self.ids[g as usize], false);
        let revalidate = now + self.jittered(i, self.spec.revalidate.as_nanos());
        self.timer(i, revalidate, TimerKind::Revalidate);
        let lookup = now + self.jittered(i, self.spec.lookup_interval.as_nanos());
        self.timer(i, lookup, TimerKind::Lookup);
        if let Some(c) = self.spec.churn.as_ref().filter(|_| self.nodes[i].flags & CHURNS != 0) {
            let at = now + self.exponential(i, c.mean_online.as_nanos());
            self.timer(i, at, TimerKind::Offline);
        }
    }

    fn go_offline(&mut self, now: u64, i: usize) {
        self.nodes[i].flags &= !ONLINE;
        self.nodes[i].epoch = self.nodes[i].epoch.wrapping_add(1);
        self.nodes[i].pending = Vec::new();
        self.nodes[i].expire_at = 0;
        self.nodes[i].sessions = Vec::new();
        self.nodes[i].lookup = None;
        if let Some(c) = &self.spec.churn {
            let at = now + self.exponential(i, c.mean_offline.as_nanos());
            self.timer(i, at, TimerKind::Online);
        }
    }

    fn revalidate(&mut self, now: u64, i: usize) {
        let pick = self.nodes[i].rng.next_u64();
        if let Some((node, _)) = self.nodes[i].table.least_recently_verified(pick) {
            self.send_request(now, i, node, Kind::Ping, ENR_SEQ, false);
        }
        let next = now + self.jittered(i, self.spec.revalidate.as_nanos());
        self.timer(i, next, TimerKind::Revalidate);
    }

    /// A request from `from`: answered if it came with a session (or in a handshake packet),
    /// challenged otherwise.
    fn request(&mut self, i: usize, from: u32, p: Packet) {
        let session = self.nodes[i].sessions.iter().position(|&s| s == from);
        match (p.seal, session) {
            (Seal::Random, _) | (Seal::Ordinary, None) => {
                let challenge = Packet::new(Kind::WhoAreYou, Seal::Ordinary, p.req, 0);
                self.send(i, from, challenge);
                return;
            }
            (Seal::Ordinary, Some(at)) => self.nodes[i].sessions[at..].rotate_left(1),
            (Seal::Handshake, _) => self.add_session(i, from),
        }
        self.contact(i, from);
        match p.kind {
            Kind::Ping => self.send(i, from, Packet::new(Kind::Pong, Seal::Ordinary, p.req, ENR_SEQ)),
            _ => self.answer_findnode(i, from, p),
        }
    }

    fn answer_findnode(&mut self, i: usize, from: u32, p: Packet) {
        let mut distances = [0u16; 3];
        let mut asked = 0;
        for d in Packet::distances(p.value) {
            distances[asked] = d;
            asked += 1;
        }
        let mut records = [0u32; K];
        let n = self.nodes[i].table.fill_at_distances(&distances[..asked], &mut records);
        let total = n.div_ceil(self.sizes.records_per_packet()).max(1);
        self.send(i, from, Packet::nodes(p.req, total as u32, total as u8, &records[..n]));
    }

    /// A WHOAREYOU: the request it answers goes again, sealed in a handshake packet.
    fn challenged(&mut self, i: usize, from: u32, req: u32) {
        let Some(r) = self.nodes[i].pending.iter_mut().find(|r| r.req == req && r.peer == from) else { return };
        if r.handshaken {
            return;
        }
        r.handshaken = true;
        let packet = Packet::new(r.kind, Seal::Handshake, r.req, r.value);
        self.add_session(i, from);
        self.send(i, from, packet);
    }

    /// An answer: accepted for a pending request of the same id from the same peer (a late
    /// answer to a request given up is ignored).
    fn response(&mut self, now: u64, i: usize, from: u32, p: Packet) {
        let Some(at) = self.nodes[i].pending.iter().position(|r| r.req == p.req && r.peer == from) else { return };
        self.contact(i, from);
        if p.kind == Kind::Pong {
            self.nodes[i].pending.swap_remove(at);
            self.free_idle_requests(i);
            return;
        }
        let r = &mut self.nodes[i].pending[at];
        r.got = r.got.saturating_add(p.packets);
        r.total = p.value.clamp(1, 255) as u8;
        let (done, lookup) = (r.got >= r.total, r.lookup);
        if lookup {
            self.learn(i, from, p.records());
        }
        if done {
            self.nodes[i].pending.swap_remove(at);
            self.free_idle_requests(i);
            if lookup {
                self.mark(i, from, Asked::Answered);
                self.advance(now, i);
            }
        }
    }

    /// Fail every request past its deadline, in the order they were sent; then set the timer
    /// for the earliest deadline left.
    fn expire(&mut self, now: u64, i: usize) {
        // Requests sent meanwhile (a lookup moving on) must not set a timer of their own.
        self.nodes[i].expire_at = u64::MAX;
        while let Some(at) = self.nodes[i].pending.iter().position(|r| r.deadline <= now) {
            let r = self.nodes[i].pending.remove(at);
            self.nodes[i].counters.timeouts += 1;
            let (ids, own) = (&self.ids, &self.ids[self.nodes[i].global as usize]);
            let distance = |n: u32| log_distance(own, &ids[n as usize]);
            self.nodes[i].table.remove(r.peer, distance(r.peer), distance);
            if r.lookup {
                self.mark(i, r.peer, if r.got > 0 { Asked::Answered } else { Asked::Failed });
                self.advance(now, i);
            }
        }
        self.nodes[i].expire_at = 0;
        self.free_idle_requests(i);
        if let Some(next) = self.nodes[i].pending.iter().map(|r| r.deadline).min() {
            self.nodes[i].expire_at = next;
            self.timer(i, next, TimerKind::Expire);
        }
    }

    /// `node` answered, or asked something and can be reached: it goes into the table.
    fn contact(&mut self, i: usize, node: u32) {
        if self.behind_nat(node) {
            return;
        }
        let d = self.distance(self.nodes[i].global, node);
        let _: Inserted = self.nodes[i].table.insert(node, d);
    }

    /// Give back the memory of identity `i`'s pending requests once none is left: most
    /// identities have none most of the time (a tenth of them at a million, on the bootstrap).
    fn free_idle_requests(&mut self, i: usize) {
        if self.nodes[i].pending.is_empty() {
            self.nodes[i].pending = Vec::new();
        }
    }

    fn add_session(&mut self, i: usize, peer: u32) {
        let s = &mut self.nodes[i].sessions;
        if let Some(at) = s.iter().position(|&x| x == peer) {
            s[at..].rotate_left(1);
            return;
        }
        if s.len() == self.spec.sessions as usize {
            s.remove(0);
        }
        s.push(peer);
    }

    fn send_request(&mut self, now: u64, i: usize, peer: u32, kind: Kind, value: u32, lookup: bool) {
        let req = self.nodes[i].next_req;
        self.nodes[i].next_req = req.wrapping_add(1);
        let seal = match self.nodes[i].sessions.iter().position(|&s| s == peer) {
            Some(at) => {
                self.nodes[i].sessions[at..].rotate_left(1);
                Seal::Ordinary
            }
            None => Seal::Random,
        };
        let deadline = now + self.spec.request_timeout.as_nanos();
        let r = Request { req, peer, deadline, kind, value, got: 0, total: 0, handshaken: false, lookup };
        self.nodes[i].pending.push(r);
        self.send(i, peer, Packet::new(kind, seal, req, value));
        if self.nodes[i].expire_at == 0 {
            self.nodes[i].expire_at = deadline;
            self.timer(i, deadline, TimerKind::Expire);
        }
    }

    fn send(&mut self, i: usize, to: u32, packet: Packet) {
        let bytes = self.sizes.bytes(&packet);
        let c = &mut self.nodes[i].counters;
        c.sent += 1;
        c.bytes[packet.kind as usize] += u64::from(bytes);
        self.out.push(Output::Send { from: i as u32, to, packet, bytes });
    }

    fn timer(&mut self, i: usize, at: u64, kind: TimerKind) {
        let timer = Timer { kind, epoch: self.nodes[i].epoch };
        self.out.push(Output::Timer { who: i as u32, at, timer });
    }

    /// `mean` ± 50 %, uniformly.
    fn jittered(&mut self, i: usize, mean: u64) -> u64 {
        mean / 2 + below(&mut self.nodes[i].rng, mean.max(1))
    }

    /// An exponential draw of mean `mean` (at least 1 ns).
    fn exponential(&mut self, i: usize, mean: u64) -> u64 {
        let u = (self.nodes[i].rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-log(1.0 - u) * mean as f64) as u64).max(1)
    }

    fn distance(&self, a: u32, b: u32) -> u16 {
        log_distance(&self.ids[a as usize], &self.ids[b as usize])
    }

    fn start_lookup(&mut self, now: u64, i: usize, target: NodeId, random: bool) {
        self.start_query(now, i, target, random, None);
    }

    /// A lookup; with `subnet`, a subnet query that also keeps the subscribers it hears of.
    fn start_query(&mut self, now: u64, i: usize, target: NodeId, random: bool, subnet: Option<u8>) {
        let subnet = subnet.map(|t| (t, Vec::new()));
        let candidates = Vec::with_capacity(CANDIDATES);
        let mut lookup = Box::new(Lookup { target, random, started: now, messages: 0, seen: 0, candidates, subnet });
        let own = self.nodes[i].global;
        self.prefetch_ids(self.nodes[i].table.entries());
        for &node in self.nodes[i].table.entries() {
            insert_candidate(&self.ids, &mut lookup, own, node, 0);
            self.match_subnet(&mut lookup, own, node);
        }
        self.nodes[i].lookup = Some(lookup);
        self.advance(now, i);
    }

    fn learn(&mut self, i: usize, from: u32, records: &[u32]) {
        let own = self.nodes[i].global;
        let Some(mut lookup) = self.nodes[i].lookup.take() else { return };
        let hop = lookup.candidates.iter().find(|c| c.node == from).map_or(0, |c| c.hop).saturating_add(1);
        for &node in records {
            insert_candidate(&self.ids, &mut lookup, own, node, hop);
            self.match_subnet(&mut lookup, own, node);
        }
        self.nodes[i].lookup = Some(lookup);
    }

    /// The subnet identity `i` queries for next (after its first query for peers, each subnet
    /// topic it subscribes to once), if any is left.
    fn next_subnet(&mut self, i: usize) -> Option<u8> {
        let (subs, _) = self.subnets.as_ref()?;
        let node = &mut self.nodes[i];
        // Its topics: the block topic first, then its subnets.
        let t = *subs.of(node.global).get(1 + usize::from(node.subnets_queried))?;
        node.subnets_queried += 1;
        node.subnet_attempts = 1;
        Some(t)
    }

    /// In a subnet query, keep `node` if it subscribes to the subnet (the predicate a client
    /// applies to a record's `attnets` or custody): once, never the querier or a bootnode.
    fn match_subnet(&self, lookup: &mut Lookup, own: u32, node: u32) {
        let (Some((t, matches)), Some((subs, _))) = (lookup.subnet.as_mut(), self.subnets.as_ref()) else { return };
        if node != own && subs.has(node, *t) && !self.bootnodes.contains(&node) && !matches.contains(&node) {
            matches.push(node);
        }
    }

    fn mark(&mut self, i: usize, node: u32, asked: Asked) {
        if let Some(c) =
            self.nodes[i].lookup.as_deref_mut().and_then(|l| l.candidates.iter_mut().find(|c| c.node == node))
        {
            c.asked = asked;
        }
    }

    /// Ask the closest candidates not asked yet, up to α in flight; finish when the k closest
    /// that have not failed have all answered.
    fn advance(&mut self, now: u64, i: usize) {
        let Some(lookup) = self.nodes[i].lookup.as_deref_mut() else { return };
        let alpha = self.spec.alpha as usize;
        let mut in_flight = lookup.candidates.iter().filter(|c| c.asked == Asked::Asking).count();
        let mut ask = Vec::new();
        let mut open = false;
        for c in lookup.candidates.iter_mut().filter(|c| c.asked != Asked::Failed).take(K) {
            if c.asked == Asked::Not && in_flight < alpha {
                c.asked = Asked::Asking;
                in_flight += 1;
                ask.push(c.node);
            }
            open |= c.asked != Asked::Answered;
        }
        let target = lookup.target;
        lookup.messages += ask.len() as u32;
        for node in ask {
            let d = log_distance(&target, &self.ids[node as usize]);
            self.send_request(now, i, node, Kind::FindNode, u32::from(d), true);
        }
        if !open {
            self.finish_lookup(now, i);
        }
    }

    fn finish_lookup(&mut self, now: u64, i: usize) {
        let Some(lookup) = self.nodes[i].lookup.take() else { return };
        let answered: Vec<&Candidate> =
            lookup.candidates.iter().filter(|c| c.asked == Asked::Answered).take(K).collect();
        let own = self.nodes[i].global;
        let exact_overlap = self.spec.exact.then(|| {
            let exact = self.exact_closest(&lookup.target, own);
            answered.iter().filter(|c| exact.contains(&c.node)).count() as u8
        });
        self.nodes[i].counters.lookups += 1;
        // Stale answers to this lookup's requests only refresh the table from now on.
        self.nodes[i].pending.iter_mut().for_each(|r| r.lookup = false);
        if let Some(found) = self.found.as_mut()
            && lookup.random
        {
            // Bootnodes serve discovery only, as Ethereum's do: nobody dials them for gossip.
            let found_item = match &lookup.subnet {
                Some((t, matches)) => (i as u32, Some(*t), matches.clone()),
                None => {
                    let nodes = answered.iter().map(|c| c.node).filter(|n| !self.bootnodes.contains(n)).collect();
                    (i as u32, None, nodes)
                }
            };
            found.push(found_item);
        }
        self.rows.push(LookupRow {
            identity: own,
            random: lookup.random,
            start_ns: lookup.started,
            end_ns: now,
            hops: answered.iter().map(|c| c.hop).max().unwrap_or(0),
            messages: lookup.messages,
            seen: lookup.seen,
            found: answered.len() as u32,
            target_distance: answered.first().map_or(257, |c| log_distance(&lookup.target, &self.ids[c.node as usize])),
            exact_overlap,
        });
        if self.found.is_some() {
            // The peer manager's first query for peers follows the self-lookup at once, then a
            // query for each subnet the identity subscribes to, one after another.
            let want = self.subnets.as_ref().map_or(0, |s| s.1 as usize);
            let next = match &lookup.subnet {
                _ if !lookup.random => Some(None),
                Some((t, matches)) if matches.len() < want && self.nodes[i].subnet_attempts < SUBNET_QUERIES => {
                    self.nodes[i].subnet_attempts += 1;
                    Some(Some(*t))
                }
                _ => self.next_subnet(i).map(Some),
            };
            if let Some(subnet) = next {
                let mut target = [0u8; 32];
                self.nodes[i].rng.fill_bytes(&mut target);
                self.start_query(now, i, target, true, subnet);
            }
        }
    }

    /// The k identities closest to `target` that a lookup could find: every other identity
    /// not behind NAT (a scan of all of them).
    fn exact_closest(&self, target: &NodeId, own: u32) -> Vec<u32> {
        let mut best: Vec<(NodeId, u32)> = Vec::with_capacity(K + 1);
        for (g, id) in self.ids.iter().enumerate() {
            let g = g as u32;
            if g == own || self.behind_nat(g) {
                continue;
            }
            let key = xor(target, id);
            if best.len() == K && key >= best[K - 1].0 {
                continue;
            }
            let at = best.partition_point(|(k, _)| *k < key);
            best.insert(at, (key, g));
            best.truncate(K);
        }
        best.into_iter().map(|(_, g)| g).collect()
    }
}

fn xor(a: &NodeId, b: &NodeId) -> NodeId {
    std::array::from_fn(|k| a[k] ^ b[k])
}

/// Put `node` among a lookup's candidates by its distance to the target, keeping the closest
/// [`CANDIDATES`].
///
/// A node already among them sits where its distance puts it (distances of distinct ids
/// differ), so that is the one place to look for it; one dropped beyond the closest counts
/// as seen again, as before.
fn insert_candidate(ids: &[NodeId], lookup: &mut Lookup, own: u32, node: u32, hop: u8) {
    if node == own || node as usize >= ids.len() {
        return;
    }
    let target = lookup.target;
    let key = xor(&target, &ids[node as usize]);
    let prefix = distance_prefix(&key);
    let key_of = |c: &Candidate| xor(&target, &ids[c.node as usize]);
    let at = lookup.candidates.partition_point(|c| c.prefix < prefix || (c.prefix == prefix && key_of(c) < key));
    let mut same = lookup.candidates[at..].iter().take_while(|c| c.prefix == prefix && key_of(c) == key);
    if same.any(|c| c.node == node) {
        return;
    }
    lookup.seen += 1;
    if at >= CANDIDATES {
        return;
    }
    if lookup.candidates.len() == CANDIDATES {
        lookup.candidates.pop();
    }
    lookup.candidates.insert(at, Candidate { prefix, node, hop, asked: Asked::Not });
}

/// The first 8 bytes of a distance, big-endian: its order where they differ.
fn distance_prefix(key: &NodeId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&key[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
