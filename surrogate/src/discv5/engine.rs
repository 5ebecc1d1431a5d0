//! The discv5 engine of one shard: the [`Discovery`] protocol of its identities, their packets on
//! the network model (each packet's wire size serialised at the sender's upload rate, then the
//! path's latency, jitter and loss and the scenario's rules), and the queue of their events in
//! the bus's canonical order. In a run with direct hosts, datagrams from real clients reach the
//! identities' [`Boundary`] and its answers leave as IPv4 packets on the same model.

use super::boundary::{Boundary, DISCV5_PORT, Eth2Records};
use super::config::Discv5Spec;
use super::packet::{Kind, MAX_RECORDS, Packet, Seal};
use super::protocol::{Discovery, LookupRow, Output, Setup, Timer};
use super::table::NodeId;
use arrow_array::{ArrayRef, BooleanArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use thermocline_bus::queue::CalendarQueue;
use thermocline_bus::{
    Digest, Engine, EngineError, EngineOutput, Event, HostId, Outbox, ShardId, SimTime, Table, kinds,
};
use thermocline_models::directory::HostDirectory;
use thermocline_models::metrics::table;
use thermocline_models::network::NetworkModel;
use thermocline_models::partition::Partition;
use thermocline_models::rng::{CompactRng, StreamFamily};
use thermocline_models::units::Bandwidth;
use thermocline_net::{Rules, decide, express};

/// How many events ahead [`DiscoveryEngine::prefetch_ahead`] starts loading an event's identity
/// record (and the node ids it compares), then what the record points to and the ids of the
/// records a NODES answer carries.
const PREFETCH_RECORD: usize = 8;
const PREFETCH_POINTED: usize = 4;

/// The top bits of the sequence numbers of packets to clients (see `client_datagram`).
const CLIENT_SEQ: u64 = 1 << 62;

/// Lookup rows handed out in one batch during a run.
const ROWS_PER_BATCH: usize = 1 << 16;

/// Where each identity is: every range of the partition with its owner and, for this shard's
/// ranges, the local index of its first identity (a few hundred entries that stay in cache,
/// where a vector over all identities would miss it on every packet).
struct Placement {
    /// (first, last, shard, local index of `first` on its shard).
    ranges: Vec<(u32, u32, ShardId, u32)>,
}

impl Placement {
    fn new(partition: &Partition) -> Self {
        let mut next = vec![0u32; partition.shards as usize];
        let ranges = partition
            .ranges
            .iter()
            .map(|r| {
                let local = next[r.shard as usize];
                next[r.shard as usize] += r.last - r.first + 1;
                (r.first, r.last, ShardId(r.shard), local)
            })
            .collect();
        Placement { ranges }
    }

    /// The shard that owns `host`, and its local index there.
    fn of(&self, host: u32) -> (ShardId, u32) {
        let at = self.ranges.partition_point(|r| r.1 < host).min(self.ranges.len().saturating_sub(1));
        let (first, _, shard, local) = self.ranges[at];
        (shard, local + host.saturating_sub(first))
    }
}

/// The engine's side of one identity: its transmissions' sequence numbers and random stream,
/// its upload rate, and what it lost.
struct Sender {
    seq: u64,
    rng: CompactRng,
    up: Bandwidth,
    /// Its location (topology node), for the path of what it sends.
    node: u32,
    lost: u32,
}

/// What a shard's discovery engine is built from.
pub struct DiscoverySetup<'a> {
    /// The `[discv5]` section (checked).
    pub spec: &'a Discv5Spec,
    /// The network model; its surrogate identities are the discv5 nodes.
    pub net: &'a NetworkModel,
    /// Who owns which host.
    pub partition: &'a Partition,
    /// The scenario's rules, applied at the sender.
    pub rules: Rules,
    /// Every identity's node id (see [`super::protocol::node_ids`]).
    pub ids: Arc<[NodeId]>,
    /// The run's seed.
    pub seed: u64,
    /// The end of the simulation (no sample is taken at or after it).
    pub end: SimTime,
    /// Keep what each query for peers found, for a peer manager ([`DiscoveryEngine::take_found`]).
    pub report_found: bool,
    /// With `report_found`: every identity's topics and the peers it wants on each subnet, for
    /// subnet queries.
    pub subnets: Option<(Arc<crate::traffic::Subscriptions>, u32)>,
    /// In an Ethereum network, what the records handed to real clients carry (unused in a run
    /// without them).
    pub eth2_records: Option<Eth2Records>,
}

/// What one identity's finished query for peers (a random lookup) found, for the gossip peer
/// manager beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The identity (global id).
    pub identity: u32,
    /// When the lookup ended, in ns.
    pub at: u64,
    /// A number the identity gave it, unique among its events: with `(at, identity)` it is the
    /// canonical key of the dial it leads to.
    pub seq: u64,
    /// The subnet topic of a subnet query (its nodes all subscribe to it); `None` for a query
    /// for peers of any kind.
    pub subnet: Option<u8>,
    /// The identities the query found, closest to its target first.
    pub nodes: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Arrive(Queued),
    Timer(Timer),
    /// A datagram from a client, by its token in [`DiscoveryEngine::datagrams`].
    Client(u32),
}

/// A packet waiting in the queue: its head, with the records of a NODES answer kept aside in
/// [`Records`], so that queue items stay small (most are timers and packets without records).
#[derive(Debug, Clone, Copy)]
struct Queued {
    kind: Kind,
    seal: Seal,
    count: u8,
    packets: u8,
    req: u32,
    value: u32,
    /// Its slot in [`Records`] (unused without records).
    records: u32,
}

/// The records of NODES answers in flight, in reusable slots.
#[derive(Default)]
struct Records {
    slots: Vec<[u32; MAX_RECORDS]>,
    free: Vec<u32>,
}

impl Records {
    /// Keep `packet`'s records aside; the head that refers to them.
    fn stow(&mut self, packet: &Packet) -> Queued {
        let mut records = 0;
        if packet.count > 0 {
            records = match self.free.pop() {
                Some(slot) => slot,
                None => {
                    self.slots.push([0; MAX_RECORDS]);
                    (self.slots.len() - 1) as u32
                }
            };
            self.slots[records as usize] = packet.nodes;
        }
        let Packet { kind, seal, req, value, count, packets, .. } = *packet;
        Queued { kind, seal, count, packets, req, value, records }
    }

    /// The packet of `q`, its slot given back.
    fn unstow(&mut self, q: Queued) -> Packet {
        let mut p = Packet { count: q.count, packets: q.packets, ..Packet::new(q.kind, q.seal, q.req, q.value) };
        if q.count > 0 {
            p.nodes = self.slots[q.records as usize];
            self.free.push(q.records);
        }
        p
    }

    /// The records of `q`, still in the queue.
    fn of(&self, q: &Queued) -> &[u32] {
        if q.count == 0 { &[] } else { &self.slots[q.records as usize][..usize::from(q.count)] }
    }
}

/// A pending event. Ordered by the canonical key (time, source, sequence, destination) alone,
/// which is unique: each identity numbers what it schedules.
#[derive(Debug, Clone, Copy)]
struct Pending {
    time: u64,
    src: u32,
    seq: u64,
    dst: u32,
    action: Action,
}

impl Pending {
    fn key(&self) -> (u64, u32, u64, u32) {
        (self.time, self.src, self.seq, self.dst)
    }
}

thermocline_bus::order_by_key!(Pending);

/// One shard's discv5 engine; see the module documentation.
pub struct DiscoveryEngine {
    shard: ShardId,
    proto: Discovery,
    placement: Placement,
    /// Identities in the run.
    identities: u32,
    net: NetworkModel,
    rules: Rules,
    /// The identities' queues for the rules' path limits.
    shaping: thermocline_net::Shaping,
    senders: Vec<Sender>,
    queue: CalendarQueue<Pending>,
    remote: Vec<Pending>,
    records: Records,
    /// The protocol's outputs being applied (kept for its buffer).
    outputs: Vec<Output>,
    rows: Vec<LookupRow>,
    /// Finished lookups' digest records, added as they finish (their rows may leave early).
    digest: Digest,
    /// Online identities by table size at each sample time: (time, entries) → identities.
    fill: BTreeMap<(u64, u32), u64>,
    /// The next sample time, and the interval.
    next_sample: u64,
    sample_every: u64,
    /// The end of the simulation.
    end: u64,
    exact: bool,
    /// Who owns which host (direct hosts included).
    partition: Partition,
    /// Identities that met a real client; `None` in a run without direct hosts.
    boundary: Option<Box<Boundary>>,
    /// Client datagrams waiting in the queue (IPv4 packets), by token.
    datagrams: BTreeMap<u32, Bytes>,
    next_token: u32,
    /// Packets to clients, for the outbox at the end of the window.
    client_out: Vec<(ShardId, Event)>,
    /// What queries for peers found since the last [`DiscoveryEngine::take_found`].
    found: Vec<Found>,
}

/// Why a discovery engine cannot run.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The spec.
    #[error("{0}")]
    Spec(String),
}

impl DiscoveryEngine {
    /// The engine of `shard`.
    pub fn new(setup: DiscoverySetup<'_>, shard: ShardId) -> Result<Self, DiscoveryError> {
        let n = setup.net.directory.surrogates();
        setup.spec.check(n).map_err(DiscoveryError::Spec)?;
        if setup.ids.len() != n as usize {
            return Err(DiscoveryError::Spec(format!("{} node ids for {n} identities", setup.ids.len())));
        }
        let owned: Vec<u32> = (0..n).filter(|&h| setup.partition.shard_of(h) == shard).collect();
        let family = StreamFamily::new(setup.seed, "discv5-net");
        let senders = owned
            .iter()
            .map(|&g| Sender {
                seq: 0,
                rng: family.compact(g),
                up: setup.net.directory.block_of(g).bandwidth.up,
                node: setup.net.directory.node_of(g),
                lost: 0,
            })
            .collect();
        let k = owned.len();
        // Identities make about three events per simulated second while they join and look up,
        // two after; buckets of several hundred events (a fifth of that rate at 128 per bucket)
        // ran fastest in `bench discv5`. The ring covers requests' expiry (1 s) and liveness
        // checks (10 s).
        let rate = k as f64 * 0.6;
        let queue = CalendarQueue::new(CalendarQueue::<Pending>::shift_for(rate.max(1.0), 128.0), 1 << 16);
        let proto = Discovery::new(Setup {
            spec: setup.spec,
            ids: setup.ids,
            owned,
            seed: setup.seed,
            report_found: setup.report_found,
            subnets: setup.subnets,
        });
        let mut e = DiscoveryEngine {
            shard,
            proto,
            placement: Placement::new(setup.partition),
            identities: n,
            net: setup.net.clone(),
            rules: setup.rules,
            shaping: Default::default(),
            senders,
            queue,
            remote: Vec::new(),
            records: Records::default(),
            outputs: Vec::new(),
            rows: Vec::new(),
            digest: Digest::EMPTY,
            fill: BTreeMap::new(),
            next_sample: setup.spec.sample.as_nanos(),
            sample_every: setup.spec.sample.as_nanos(),
            end: setup.end.as_nanos(),
            exact: setup.spec.exact,
            partition: setup.partition.clone(),
            boundary: (n < setup.net.directory.len()).then(|| Box::new(Boundary::new(setup.seed, setup.eth2_records))),
            datagrams: BTreeMap::new(),
            next_token: 0,
            client_out: Vec::new(),
            found: Vec::new(),
        };
        e.apply_outputs(0);
        Ok(e)
    }

    /// Carry out what the protocol asked for: packets onto the network, timers into the queue.
    fn apply_outputs(&mut self, now: u64) {
        let mut outputs = std::mem::take(&mut self.outputs);
        outputs.extend(self.proto.drain_outputs());
        for o in outputs.drain(..) {
            match o {
                Output::Timer { who, at, timer } => {
                    let g = self.proto.global(who);
                    let seq = self.next_seq(who);
                    self.queue.push(Pending { time: at, src: g, seq, dst: g, action: Action::Timer(timer) });
                }
                Output::Send { from, to, packet, bytes } => self.transmit(now, from, to, packet, bytes),
            }
        }
        self.outputs = outputs;
    }

    fn next_seq(&mut self, i: u32) -> u64 {
        let s = &mut self.senders[i as usize].seq;
        *s += 1;
        *s - 1
    }

    /// A packet leaves local identity `from` once serialised at its upload rate; the path and
    /// rules decide when it arrives, with `from`'s stream. The NODES packets of one answer are
    /// decided one by one; the records of those that survive arrive with the last of them.
    fn transmit(&mut self, now: u64, from: u32, to: u32, packet: Packet, bytes: u32) {
        let src = self.proto.global(from);
        let sender = &mut self.senders[from as usize];
        let depart = express(now, u64::from(bytes), Bandwidth(self.rules.up_bps(src, now, sender.up.0)));
        let depart = self.shaping.depart(&self.rules, (src, to), depart, u64::from(bytes));
        // The destination's location from its block (a search of a few hundred blocks that stay
        // in cache) rather than the per-host vector, which misses it at a million identities.
        let path = self.net.routes.path(sender.node, self.net.directory.block_of(to).node);
        let mut arrived = Packet { count: 0, packets: 0, ..packet };
        let mut time = 0;
        for k in 0..packet.packets {
            let Some(t) = decide(&self.net, path, &self.rules, (src, to), depart, false, &mut sender.rng) else {
                sender.lost += 1;
                continue;
            };
            time = time.max(t);
            if packet.kind == Kind::Nodes {
                let sizes = self.proto.sizes();
                let first = usize::from(k) * sizes.records_per_packet();
                let records = &packet.nodes[first..first + sizes.records_in(&packet, k)];
                let at = usize::from(arrived.count);
                arrived.nodes[at..at + records.len()].copy_from_slice(records);
                arrived.count += records.len() as u8;
            }
            arrived.packets += 1;
        }
        if arrived.packets == 0 {
            return;
        }
        let packet = if packet.kind == Kind::Nodes { arrived } else { packet };
        let seq = self.next_seq(from);
        let p = Pending { time, src, seq, dst: to, action: Action::Arrive(self.records.stow(&packet)) };
        if self.placement.of(to).0 == self.shard {
            self.queue.push(p);
        } else {
            self.remote.push(p);
        }
    }

    /// Turn the packets for other shards' identities into bus events, every payload a slice of
    /// one buffer (one allocation per window, not per packet).
    fn flush_remote(&mut self, outbox: &mut Outbox) {
        if self.remote.is_empty() {
            return;
        }
        let mut buf = Vec::with_capacity(self.remote.len() * 16);
        let mut ends = Vec::with_capacity(self.remote.len());
        for p in &self.remote {
            let Action::Arrive(q) = p.action else { unreachable!("only packets cross shards") };
            self.records.unstow(q).encode(&mut buf);
            ends.push(buf.len());
        }
        let buf = Bytes::from(buf);
        let mut start = 0;
        for (p, end) in self.remote.drain(..).zip(ends) {
            let event = Event {
                deliver_time: SimTime::from_nanos(p.time),
                src_host: HostId(p.src),
                src_seq: p.seq,
                dst_host: HostId(p.dst),
                kind: kinds::DISCV5,
                payload: buf.slice(start..end),
            };
            start = end;
            outbox.push(self.placement.of(p.dst).0, event);
        }
    }

    /// The `discv5_lookups` table of `rows`.
    fn lookups_table(&self, rows: &[LookupRow]) -> Result<Table, EngineError> {
        let col32 = |f: fn(&LookupRow) -> u32| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<UInt32Array>()) };
        let col64 = |f: fn(&LookupRow) -> u64| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<UInt64Array>()) };
        let mut fields = vec![
            Field::new("identity", DataType::UInt32, false),
            Field::new("random_target", DataType::Boolean, false),
            Field::new("start_ns", DataType::UInt64, false),
            Field::new("end_ns", DataType::UInt64, false),
            Field::new("hops", DataType::UInt8, false),
            Field::new("messages", DataType::UInt32, false),
            Field::new("nodes_seen", DataType::UInt32, false),
            Field::new("found", DataType::UInt32, false),
            Field::new("target_distance", DataType::UInt16, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            col32(|r| r.identity),
            Arc::new(rows.iter().map(|r| Some(r.random)).collect::<BooleanArray>()),
            col64(|r| r.start_ns),
            col64(|r| r.end_ns),
            Arc::new(rows.iter().map(|r| r.hops).collect::<UInt8Array>()),
            col32(|r| r.messages),
            col32(|r| r.seen),
            col32(|r| r.found),
            Arc::new(rows.iter().map(|r| r.target_distance).collect::<UInt16Array>()),
        ];
        if self.exact {
            fields.push(Field::new("exact_overlap", DataType::UInt8, false));
            columns.push(Arc::new(rows.iter().map(|r| r.exact_overlap.unwrap_or(0)).collect::<UInt8Array>()));
        }
        Ok(table("discv5_lookups", fields, columns)?)
    }

    /// The `discv5_identities` table: one row per identity at the end; `sizes` holds each
    /// identity's table entries and filled buckets (see [`Discovery::release`]).
    fn identities_table(&self, sizes: &[(u32, u32)]) -> Result<Table, EngineError> {
        let k = self.proto.len() as u32;
        let c = |i: u32| self.proto.counters(i);
        let mut fields = vec![
            Field::new("identity", DataType::UInt32, false),
            Field::new("online", DataType::Boolean, false),
            Field::new("behind_nat", DataType::Boolean, false),
            Field::new("joined_ns", DataType::UInt64, false),
            Field::new("table_entries", DataType::UInt32, false),
            Field::new("filled_buckets", DataType::UInt32, false),
            Field::new("packets_sent", DataType::UInt32, false),
            Field::new("packets_received", DataType::UInt32, false),
            Field::new("packets_lost", DataType::UInt32, false),
            Field::new("timeouts", DataType::UInt32, false),
            Field::new("lookups", DataType::UInt32, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new((0..k).map(|i| self.proto.global(i)).collect::<UInt32Array>()),
            Arc::new((0..k).map(|i| Some(self.proto.online(i))).collect::<BooleanArray>()),
            Arc::new((0..k).map(|i| Some(self.proto.behind_nat(self.proto.global(i)))).collect::<BooleanArray>()),
            Arc::new((0..k).map(|i| c(i).joined_ns).collect::<UInt64Array>()),
            Arc::new(sizes.iter().map(|s| s.0).collect::<UInt32Array>()),
            Arc::new(sizes.iter().map(|s| s.1).collect::<UInt32Array>()),
            Arc::new((0..k).map(|i| c(i).sent).collect::<UInt32Array>()),
            Arc::new((0..k).map(|i| c(i).received).collect::<UInt32Array>()),
            Arc::new(self.senders.iter().map(|s| s.lost).collect::<UInt32Array>()),
            Arc::new((0..k).map(|i| c(i).timeouts).collect::<UInt32Array>()),
            Arc::new((0..k).map(|i| c(i).lookups).collect::<UInt32Array>()),
        ];
        for kind in Kind::ALL {
            fields.push(Field::new(format!("{}_bytes", kind.name()), DataType::UInt64, false));
            columns.push(Arc::new((0..k).map(|i| c(i).bytes[kind as usize]).collect::<UInt64Array>()));
        }
        Ok(table("discv5_identities", fields, columns)?)
    }

    /// Start loading the state of the events a few places ahead: an identity's record 8 events
    /// ahead, what it points to 4 ahead (by then the record is in cache).
    fn prefetch_ahead(&self) {
        for (k, stage) in [(PREFETCH_RECORD, 0), (PREFETCH_POINTED, 1)] {
            let Some(p) = self.queue.ahead(k) else { continue };
            let (shard, i) = self.placement.of(p.dst);
            if shard != self.shard {
                continue;
            }
            self.proto.prefetch(i, stage);
            match (stage, p.action) {
                (0, Action::Arrive(_)) => {
                    crate::prefetch::prefetch(&self.senders[i as usize]);
                    self.proto.prefetch_ids(&[p.src, p.dst]);
                }
                (0, Action::Timer(_)) => crate::prefetch::prefetch(&self.senders[i as usize]),
                (_, Action::Arrive(q)) => self.proto.prefetch_ids(self.records.of(&q)),
                _ => {}
            }
        }
    }

    /// Count the online identities by table size, as they are at the sample time (every event
    /// before it has run, none after).
    fn sample(&mut self) {
        let at = self.next_sample;
        for i in 0..self.proto.len() as u32 {
            if self.proto.online(i) {
                *self.fill.entry((at, self.proto.table(i).len() as u32)).or_default() += 1;
            }
        }
        self.next_sample += self.sample_every;
    }

    /// The `discv5_table_fill` table: one row per sample time and table size on this shard (sum
    /// the shards' rows by key).
    fn fill_table(&self) -> Result<Table, EngineError> {
        let rows = &self.fill;
        Ok(table(
            "discv5_table_fill",
            vec![
                Field::new("time_ns", DataType::UInt64, false),
                Field::new("table_entries", DataType::UInt32, false),
                Field::new("identities", DataType::UInt64, false),
            ],
            vec![
                Arc::new(rows.keys().map(|k| k.0).collect::<UInt64Array>()),
                Arc::new(rows.keys().map(|k| k.1).collect::<UInt32Array>()),
                Arc::new(rows.values().copied().collect::<UInt64Array>()),
            ],
        )?)
    }

    /// Take the lookups the protocol finished, adding each to the digest.
    fn take_rows(&mut self) {
        let mut record = Vec::new();
        for r in self.proto.take_rows() {
            record.clear();
            record.extend_from_slice(b"discv5-lookup");
            record.extend_from_slice(&r.identity.to_be_bytes());
            record.extend_from_slice(&r.start_ns.to_be_bytes());
            record.extend_from_slice(&r.end_ns.to_be_bytes());
            record.extend_from_slice(&[r.hops, u8::from(r.random), r.exact_overlap.unwrap_or(u8::MAX)]);
            for v in [r.messages, r.seen, r.found, u32::from(r.target_distance)] {
                record.extend_from_slice(&v.to_be_bytes());
            }
            self.digest.add_record(&record);
            self.rows.push(r);
        }
    }

    /// A client's datagram reached local identity `i` (an IPv4 packet): one for its discv5
    /// port goes to the identity's boundary node, unless the identity is offline; what the node
    /// answers leaves at the identity's upload rate over the path, as IPv4 packets.
    fn client_datagram(&mut self, now: u64, i: u32, token: u32) {
        let Some(bytes) = self.datagrams.remove(&token) else { return };
        let Ok(udp) = thermocline_net::udp::decode(&bytes) else { return };
        if udp.dst.1 != DISCV5_PORT || !self.proto.online(i) {
            return;
        }
        let id = self.proto.global(i);
        let from = std::net::SocketAddrV4::new(udp.src.0, udp.src.1);
        let table = self.proto.table(i);
        let Some(b) = self.boundary.as_mut() else { return };
        let answers = b.handle_datagram(id, from, &udp.payload, |d, limit| table.at_distances(d, limit));
        let ip = HostDirectory::ip_of(id);
        for (to, datagram) in answers {
            let Some(host) = self.net.directory.host_of_ip(*to.ip()) else { continue };
            let packet = thermocline_net::udp::encode((ip, DISCV5_PORT), (*to.ip(), to.port()), &datagram);
            let sender = &mut self.senders[i as usize];
            let depart = express(now, packet.len() as u64, Bandwidth(self.rules.up_bps(id, now, sender.up.0)));
            let depart = self.shaping.depart(&self.rules, (id, host), depart, packet.len() as u64);
            let path = self.net.routes.path(sender.node, self.net.directory.node_of(host));
            let Some(time) = decide(&self.net, path, &self.rules, (id, host), depart, false, &mut sender.rng) else {
                sender.lost += 1;
                continue;
            };
            // A sequence space of their own: the gossip engine beside may send the same client
            // packets from this identity, numbered by its own counter.
            let event = Event {
                deliver_time: SimTime::from_nanos(time),
                src_host: HostId(id),
                src_seq: CLIENT_SEQ | self.next_seq(i),
                dst_host: HostId(host),
                kind: kinds::PACKET,
                payload: Bytes::from(packet),
            };
            self.client_out.push((self.partition.shard_of(host), event));
        }
    }

    /// What the queries for peers that ended since the last call found, in the order they
    /// ended (empty unless the setup asked for it).
    pub fn take_found(&mut self) -> Vec<Found> {
        std::mem::take(&mut self.found)
    }

    /// The `discv5_boundary` table: one row per identity that met a real client.
    fn boundary_table(&self, b: &Boundary) -> Result<Table, EngineError> {
        let t = b.traffic();
        let col32 = |f: fn(&super::boundary::Traffic) -> u32| -> ArrayRef {
            Arc::new(t.values().map(f).collect::<UInt32Array>())
        };
        let col64 = |f: fn(&super::boundary::Traffic) -> u64| -> ArrayRef {
            Arc::new(t.values().map(f).collect::<UInt64Array>())
        };
        Ok(table(
            "discv5_boundary",
            vec![
                Field::new("identity", DataType::UInt32, false),
                Field::new("datagrams_in", DataType::UInt32, false),
                Field::new("datagrams_out", DataType::UInt32, false),
                Field::new("bytes_in", DataType::UInt64, false),
                Field::new("bytes_out", DataType::UInt64, false),
                Field::new("findnodes", DataType::UInt32, false),
                Field::new("records", DataType::UInt32, false),
                Field::new("sessions", DataType::UInt32, false),
            ],
            vec![
                Arc::new(t.keys().copied().collect::<UInt32Array>()),
                col32(|t| t.datagrams_in),
                col32(|t| t.datagrams_out),
                col64(|t| t.bytes_in),
                col64(|t| t.bytes_out),
                col32(|t| t.findnodes),
                col32(|t| t.records),
                col32(|t| t.sessions),
            ],
        )?)
    }

    /// Local identity `i`'s digest record: its table in order, its counters, what it lost.
    fn digest_record(&self, i: u32, out: &mut Vec<u8>) {
        let c = self.proto.counters(i);
        out.clear();
        out.extend_from_slice(b"discv5");
        out.extend_from_slice(&self.proto.global(i).to_be_bytes());
        out.push(u8::from(self.proto.online(i)));
        let table = self.proto.table(i);
        out.extend_from_slice(&(table.len() as u32).to_be_bytes());
        table.entries().iter().for_each(|e| out.extend_from_slice(&e.to_be_bytes()));
        for v in [c.sent, c.received, c.timeouts, c.lookups, self.senders[i as usize].lost] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        c.bytes.iter().for_each(|b| out.extend_from_slice(&b.to_be_bytes()));
        out.extend_from_slice(&c.joined_ns.to_be_bytes());
    }
}

impl Engine for DiscoveryEngine {
    fn next_event_time(&self) -> SimTime {
        self.queue.min_time().map_or(SimTime::NEVER, SimTime::from_nanos)
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let end = end.as_nanos();
        let mut ran = 0;
        while let Some(&p) = self.queue.peek_until(end) {
            if p.time >= end {
                break;
            }
            while self.next_sample <= p.time && self.next_sample < self.end {
                self.sample();
            }
            self.queue.pop();
            ran += 1;
            self.prefetch_ahead();
            let i = self.placement.of(p.dst).1;
            match p.action {
                Action::Arrive(q) => {
                    let packet = self.records.unstow(q);
                    self.proto.handle_packet(p.time, i, p.src, packet)
                }
                Action::Timer(timer) => self.proto.handle_timer(p.time, i, timer),
                Action::Client(token) => self.client_datagram(p.time, i, token),
            }
            self.apply_outputs(p.time);
            for (who, subnet, nodes) in self.proto.take_found() {
                let seq = self.next_seq(who);
                self.found.push(Found { identity: self.proto.global(who), at: p.time, seq, subnet, nodes });
            }
        }
        // No event is left before `end`: the state holds until then.
        while self.next_sample < end.min(self.end) {
            self.sample();
        }
        self.flush_remote(outbox);
        for (shard, event) in self.client_out.drain(..) {
            outbox.push(shard, event);
        }
        self.take_rows();
        Ok(ran)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        for e in events.drain(..) {
            let owned = e.dst_host.0 < self.identities && self.placement.of(e.dst_host.0).0 == self.shard;
            if e.kind == kinds::PACKET && owned && self.boundary.is_some() {
                let token = self.next_token;
                self.next_token = self.next_token.wrapping_add(1);
                self.datagrams.insert(token, e.payload);
                self.queue.push(Pending {
                    time: e.deliver_time.as_nanos(),
                    src: e.src_host.0,
                    seq: e.src_seq,
                    dst: e.dst_host.0,
                    action: Action::Client(token),
                });
                continue;
            }
            if e.kind != kinds::DISCV5 || !owned {
                return Err(format!(
                    "{} got an event of kind {} for {}, not one of its identities",
                    self.shard, e.kind, e.dst_host
                )
                .into());
            }
            let packet =
                Packet::decode(&e.payload).map_err(|err| format!("discv5 packet from {}: {err}", e.src_host))?;
            self.queue.push(Pending {
                time: e.deliver_time.as_nanos(),
                src: e.src_host.0,
                seq: e.src_seq,
                dst: e.dst_host.0,
                action: Action::Arrive(self.records.stow(&packet)),
            });
        }
        Ok(())
    }

    fn take_tables(&mut self) -> Vec<Table> {
        if self.rows.len() < ROWS_PER_BATCH {
            return Vec::new();
        }
        let rows = std::mem::take(&mut self.rows);
        match self.lookups_table(&rows) {
            Ok(t) => vec![t],
            Err(_) => {
                self.rows = rows;
                Vec::new()
            }
        }
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        self.take_rows();
        let mut digest = self.digest;
        let mut record = Vec::new();
        for i in 0..self.proto.len() as u32 {
            self.digest_record(i, &mut record);
            digest.add_record(&record);
        }
        // The results need no tables, sessions or pending events: free them first, so that
        // the result tables are not built on top of them (the run's peak memory).
        let sizes = self.proto.release();
        self.queue = CalendarQueue::new(0, 1);
        self.remote = Vec::new();
        let rows = std::mem::take(&mut self.rows);
        let lookups = self.lookups_table(&rows)?;
        drop(rows);
        let mut tables = vec![lookups, self.identities_table(&sizes)?, self.fill_table()?];
        if let Some(b) = &self.boundary {
            for (id, t) in b.traffic() {
                record.clear();
                record.extend_from_slice(b"discv5-boundary");
                record.extend_from_slice(&id.to_be_bytes());
                for v in [t.datagrams_in, t.datagrams_out, t.findnodes, t.records, t.sessions] {
                    record.extend_from_slice(&v.to_be_bytes());
                }
                record.extend_from_slice(&t.bytes_in.to_be_bytes());
                record.extend_from_slice(&t.bytes_out.to_be_bytes());
                digest.add_record(&record);
            }
            tables.push(self.boundary_table(b)?);
        }
        Ok(EngineOutput { digest, tables })
    }
}
