//! The surrogate engine: one shard's gossipsub identities as a bus engine.
//!
//! State is struct-of-arrays over the shard's identities (no per-identity heap objects): rows of
//! 16-byte connection records (peer, its local index if on this shard, path, shared topics,
//! flags) with per-topic backoffs, a 64-bit mesh mask per (identity, subscribed topic), random
//! stream, upload and download queues, per-kind byte counters, and a small ring of IDONTWANTs
//! received. Messages are shard-local tables with one slot per local subscriber of their topic
//! (arrival, sender, hops, duplicates). Every action — an RPC arriving, the end of a validation,
//! a publish — is an event in one calendar queue ordered by the bus's canonical key (heartbeats
//! come from per-profile wheels merged with it by the same key), and every random draw comes
//! from the acting identity's own stream, so results do not depend on how identities are cut
//! into shards.

mod discovery;
mod eth2;
mod messages;
#[cfg(test)]
mod router_tests;
mod tables;

use crate::boundary::{Boundary, ClientDial};
use crate::config::{ChurnSpec, GossipParams, LinkQueue, TrafficSpec};
use crate::peers::PeerGraph;
use crate::prefetch::prefetch;
use crate::rpc::{MsgKey, NO_HINT, RPC_BYTES, RPC_KINDS, Rpc, RpcKind};
use crate::score::EdgeScore;
pub(crate) use crate::topics::FAMILIES;
use crate::topics::{TOPIC_BEACON_BLOCK, TOPIC_COUNT, family_index};
use crate::traffic::{Subscriptions, publications};
pub use attack::Attack;
use bytes::Bytes;
use clients::Content;
use messages::{Messages, expired};
use std::collections::{BTreeMap, VecDeque};
use thermocline_bus::queue::CalendarQueue;
use thermocline_bus::{
    Digest, Engine, EngineError, EngineOutput, Event, HostId, Outbox, ShardId, SimDuration, SimTime, Table,
};
use thermocline_models::network::NetworkModel;
use thermocline_models::partition::Partition;
use thermocline_models::rng::{CompactRng, StreamFamily, below};
use thermocline_models::units::Bandwidth;
use thermocline_net::{FairLink, FifoLink, Rules, Shaping, decide, express};
use thermocline_wire::gossipsub::MessageIdFn;

/// `k` idle fair links when `wanted`, none otherwise (no profile uses them: no memory).
fn fair_links<T>(k: usize, wanted: bool) -> Vec<FairLink<T>> {
    if wanted { (0..k).map(|_| FairLink::default()).collect() } else { Vec::new() }
}

/// The positions of the set bits of `mask`, ascending, offset by `base`.
fn bits(base: usize, mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let b = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            base + b
        })
    })
}

/// How many events ahead in the queue [`GossipEngine::prefetch_ahead`] starts loading each
/// stage of an event's lookups: the identity's per-identity state, then the connection the RPC
/// arrives on (queued events name their identity by local index, so no stage looks it up).
const PREFETCH_IDENTITY: usize = 8;
const PREFETCH_CONN: usize = 4;

/// An exponentially distributed duration of mean `mean_ns`, from `rng`. `libm`'s logarithm is
/// portable Rust, so the draw is the same on every platform.
fn exponential_ns(rng: &mut CompactRng, mean_ns: u64) -> u64 {
    use rand_core::Rng;
    let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    (-libm::log(1.0 - u) * mean_ns as f64) as u64
}

/// The parameters of local identity `$i`'s profile, as a place expression (so that borrowing
/// them leaves the engine's other fields free).
macro_rules! prm {
    ($e:ident, $i:expr) => {
        $e.params[if $e.params.len() == 1 { 0 } else { $e.profile_of[$i] as usize }]
    };
}

// After `prm!`, which they use.
mod attack;
mod clients;

/// Event kind of gossip RPCs on the bus.
pub const GOSSIP_EVENT_KIND: u16 = thermocline_bus::kinds::GOSSIP_RPC;
use thermocline_bus::kinds::{HOT_MESSAGE, PACKET};

/// Connection flag: the peer may have negative score terms (P₃b or P₇ counters above zero).
/// Without it the score's lower bound is a constant, so most threshold checks never touch the
/// score counters.
const PENALISED: u8 = 2;
/// Connection flag: the connection is closed (the peer left, or this identity is offline, or it
/// has asked to reconnect and awaits the answer).
const DOWN: u8 = 4;
/// Connection flag: this identity dialled the connection.
const OUTBOUND: u8 = 8;
/// Received messages this large or larger pass through the receiver's download queue first.
const DOWNLOAD_QUEUE_MIN_BYTES: u64 = 1024;
/// TCP's segment payload (Ethernet MTU less IP and TCP headers), for slow start.
const MSS: u64 = 1460;
/// TCP's initial congestion window, segments (RFC 6928; Linux's default).
const INITIAL_WINDOW: u64 = 10;
/// Linux's floor of the retransmission timeout: a connection idle for longer (plus a round
/// trip) starts slow start again (`tcp_slow_start_after_idle`).
const RTO_FLOOR_NS: u64 = 200_000_000;
/// IDONTWANTs remembered per identity.
const DONTWANT_RING: usize = 16;
pub(crate) const NONE: u32 = u32::MAX;
/// How long an IWANT is awaited before the message may be requested again (rust-libp2p's
/// `iwant_followup_time`).
const IWANT_FOLLOWUP_NS: u64 = 3_000_000_000;
/// Mesh degrees sampled: 0..=64.
const DEGREES: usize = 65;

/// One profile's heartbeat wheel: its identities are `start..end` in local order (by phase), and
/// the next heartbeat is identity `at`'s in cycle `cycle`, at its phase plus a period per cycle,
/// with the sequence number it was given when scheduled — the same canonical key it would have
/// in the queue, so wheels and queue merge exactly.
struct Wheel {
    start: usize,
    end: usize,
    at: usize,
    cycle: u64,
    period: u64,
}

/// One connection as its identity sees it: everything an RPC sent or received over it reads,
/// in one place (16 bytes, four to a cache line) so that handling an RPC touches one cache line
/// for it.
#[derive(Copy, Clone, Debug)]
struct Conn {
    /// The peer (`NONE` for a free peer-exchange slot).
    peer: u32,
    /// The peer's local index when it is on this shard (`NONE` otherwise): what is sent to it
    /// goes straight into this engine's queue, addressed by that index, with no lookup in the
    /// global-to-local table on either side.
    at: u32,
    /// The network path to the peer (index into the routes).
    path: u32,
    /// Bit `s` is set when the peer subscribes to this identity's `s`-th topic.
    shared: u16,
    /// [`PENALISED`], [`DOWN`], [`OUTBOUND`].
    flags: u8,
    /// This identity's position in the peer's row (sent as the RPC hint).
    rev: u8,
}

/// A free peer-exchange slot.
const FREE_SLOT: Conn = Conn { peer: NONE, at: NONE, path: 0, shared: 0, flags: DOWN, rev: NO_HINT };

/// Bit `s` set when `theirs` includes `mine[s]` (both ascending).
fn shared_topics(mine: &[u8], theirs: &[u8]) -> u16 {
    mine.iter().enumerate().filter(|(_, t)| theirs.binary_search(t).is_ok()).fold(0u16, |m, (s, _)| m | 1 << s)
}

/// What a fair upload link carries: a message copy for a peer identity, or a packet for a real
/// client's host (kept in `packets` by its token), so that both share the link.
#[derive(Copy, Clone, Debug)]
enum Up {
    Copy(Sending),
    Packet(u32),
}

/// What a fair download link carries: a message copy from a peer identity, or a packet from a
/// real client's host (kept in `packets` by its token), so that both share the link as copies
/// arriving together share a real one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Down {
    Rpc(Rpc, u32),
    Packet(u32),
}

/// What an event does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Action {
    /// An RPC from `src` reaches `dst` (before any download queueing).
    Arrive(Rpc),
    /// An RPC from `from` has been downloaded by `dst` and is handled (`src` is `dst` itself,
    /// which scheduled the event).
    Handle { rpc: Rpc, from: u32 },
    /// `dst` runs its heartbeat of cycle `cycle` (its `cycle`-th heartbeat period since the
    /// start, as its phase is below one period).
    Heartbeat { cycle: u64 },
    /// `dst` finished validating message slot `0` and forwards it.
    Validated(u32),
    /// `dst` publishes a message on `topic`.
    Publish { topic: u8 },
    /// `dst` finished serialising a queued message copy on its upload link: it leaves now.
    TxDone { rpc: Rpc, conn: u32 },
    /// `dst`'s fair upload link (`upload = "fair"`) may have finished copies (ignored unless
    /// it is the wake-up the link waits for).
    FairTx,
    /// `dst`'s fair download link (`download = "fair"`) may have finished messages.
    FairRx,
    /// The next congestion window of a copy on `dst`'s fair upload link (parked under `slot`)
    /// may enter the link (`slow_start_windows`).
    FairWindow { slot: u32 },
    /// `dst` goes offline (churn).
    GoOffline,
    /// `dst` comes back online (churn).
    GoOnline,
    /// An IPv4 packet from a direct host (kept under `token`) reaches `dst`, before its
    /// download queue.
    PacketArrive { token: u32 },
    /// The packet under `token` has been downloaded: it goes to `dst`'s TCP endpoint.
    PacketIn { token: u32 },
    /// `dst`'s TCP endpoint or libp2p connections are due a timeout.
    ClientTimer,
    /// `dst` dials the client of its dial number `k` (see [`GossipSetup::client_dials`]).
    DialClient { k: u32 },
    /// `dst`'s discv5 lookup ended: it dials what it found (kept under `token`).
    Discovered { token: u32 },
    /// `dst`, an attacker, publishes an invalid message.
    PublishInvalid,
    /// `dst` has validated an invalid message from `from` and rejects it.
    Rejected { from: u32 },
}

/// A message copy on a fair upload link (`upload = "fair"`): its connection, the earliest time
/// slow start lets it leave, and when it started (so the receiver knows over how long its bytes
/// came). With `slow_start_windows` it is one congestion window of the copy: its bytes, what is
/// left of the copy after it, and when the window was let into the link.
#[derive(Copy, Clone, Debug)]
struct Sending {
    conn: u32,
    rpc: Rpc,
    floor: u64,
    start: u64,
    window: u64,
    left: u64,
    released: u64,
}

/// A pending event: ordered by the canonical key `(time, src, seq)`, which is unique (each
/// identity numbers what it schedules), so the bus's fourth key field, the destination, never
/// decides and the queue holds its local index instead.
#[derive(Copy, Clone, Debug)]
struct Pending {
    time: u64,
    src: u32,
    seq: u64,
    /// The destination: its local index in the queue; its global id in `remote`.
    dst: u32,
    action: Action,
}

impl Pending {
    fn key(&self) -> (u64, u32, u64) {
        (self.time, self.src, self.seq)
    }
}
thermocline_bus::order_by_key!(Pending);

/// The boundary of a shard: Ethereum's identities have secp256k1 keys and answer its req/resp
/// methods.
fn boundary(seed: u64, eth2: Option<crate::config::Eth2Domain>) -> Boundary {
    if eth2.is_none() {
        return Boundary::new(seed, Default::default());
    }
    let config = thermocline_wire::connection::ConnConfig {
        request_protocols: thermocline_wire::eth2::reqresp::METHODS.iter().map(|m| m.protocol()).collect(),
        agent_version: concat!("thermocline/", env!("CARGO_PKG_VERSION")).into(),
        ..Default::default()
    };
    Boundary::new(seed, config).with_secp256k1_keys()
}

/// One message as seen by this shard's identities. Per-identity columns have one entry per local
/// subscriber of the topic (see `GossipEngine::members`).
pub(crate) struct MsgState {
    pub key: MsgKey,
    pub topic: u8,
    pub size: u32,
    pub published_ns: u64,
    pub slot: u64,
    /// The local identity that published it, if it is on this shard.
    pub publisher: u32,
    /// Connections of the publisher subscribed to the topic when it published.
    pub publisher_peers: u16,
    /// Per subscriber: ns since publish of the first arrival (`u64::MAX`: not yet).
    pub arrival: Vec<u64>,
    /// Per subscriber: who it first came from (`NONE` for the publisher).
    pub from: Vec<u32>,
    /// Per subscriber: hops at first arrival.
    pub hops: Vec<u8>,
    /// Per subscriber: copies received after the first.
    pub dups: Vec<u16>,
    /// Per subscriber: when an IWANT was last sent for it (`u64::MAX`: never).
    pub requested: Vec<u64>,
    /// The latest first arrival at any local subscriber, ns: once a gossip window has passed
    /// after it, no local identity advertises the message any more.
    last_arrival_ns: u64,
    /// Listed in `recent` (may still be advertised).
    pub in_recent: bool,
    /// Due for retirement: nothing can change it any more, and its rows are next out.
    pub retiring: bool,
    /// Retired: its rows are out and its state is freed (see `messages`).
    pub retired: bool,
}

/// Why the engine could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// Bad configuration.
    #[error("gossip: {0}")]
    Config(String),
    /// A bus event that is not a gossip RPC for one of this shard's identities.
    #[error("gossip: bad event for {host} from {src}: {detail}")]
    BadEvent {
        /// Destination.
        host: u32,
        /// Source.
        src: u32,
        /// What was wrong.
        detail: String,
    },
}

/// Everything a shard's engine is built from; every shard receives the same.
pub struct GossipSetup<'a> {
    /// Client profiles by name, with their parameters: the first is the default, which serves
    /// every host group that names none.
    pub profiles: Vec<(String, GossipParams)>,
    /// Slot traffic.
    pub traffic: TrafficSpec,
    /// The network model.
    pub net: NetworkModel,
    /// Who owns which identity.
    pub partition: Partition,
    /// The initial connections.
    pub graph: &'a PeerGraph,
    /// Every identity's topics.
    pub subscriptions: &'a Subscriptions,
    /// The run's seed.
    pub seed: u64,
    /// The end of the simulation.
    pub end: SimTime,
    /// The peer manager's connection target: an identity takes peers learnt by peer exchange,
    /// or accepts them, only below it.
    pub max_peers: u32,
    /// Free connection slots per identity for peer exchange (with `params.peer_exchange`).
    pub px_slots: u32,
    /// Free connection slots per identity for real clients (direct hosts), in a run that has
    /// any.
    pub client_slots: u32,
    /// Every topic's message-id function, by topic index (what clients at the boundary agree
    /// on; see [`crate::config::GossipSpec::message_id_fns`]).
    pub message_ids: Vec<MessageIdFn>,
    /// Surrogates that dial real clients (each shard takes its own identities' dials).
    pub client_dials: &'a [ClientDial],
    /// The simulated calendar time at time zero, Unix ns: what surrogate blocks carry as their
    /// publication time when they cross to a client.
    pub start_unix_ns: u64,
    /// The run's runahead (the least latency between hosts on different shards), ns: a client's
    /// message reaches the other shards this much after a boundary identity received it.
    pub runahead_ns: u64,
    /// How long after publication a surrogate's message expires (`[gossip] message_lifetime`).
    pub lifetime: SimDuration,
    /// Keep expired messages' state to the end instead of retiring it (`[gossip] keep_messages`).
    pub keep_messages: bool,
    /// The Ethereum consensus domain clients at the boundary speak (`[gossip.eth2]`), if any.
    pub eth2: Option<crate::config::Eth2Domain>,
    /// The scenario's rules, applied to every RPC and packet at departure.
    pub rules: Rules,
    /// With `[gossip] discovery = "discv5"`: the shard's discv5 engine on the same identities,
    /// whose lookups give the peers to dial, up to `outbound_peers` outbound connections.
    pub discovery: Option<Box<crate::discv5::DiscoveryEngine>>,
    /// Outbound connections an identity dials found peers for (with `discovery`).
    pub outbound_peers: u32,
    /// Peers an identity wants on each subnet it subscribes to: with `discovery`, it dials
    /// subscribers its subnet queries found until it has them.
    pub subnet_peers: u32,
    /// The attackers (`[[gossip.attackers]]`): ranges of global ids, each with its attack.
    pub attackers: Vec<(std::ops::Range<u32>, Attack)>,
}

/// The engine of one shard.
pub struct GossipEngine {
    me: ShardId,
    /// Parameters of each profile, and its name (see [`GossipSetup::profiles`]).
    params: Vec<GossipParams>,
    profile_names: Vec<String>,
    /// Per identity: its profile.
    profile_of: Vec<u8>,
    /// Heartbeat wheels, one per profile (each profile has its own period).
    wheels: Vec<Wheel>,
    partition: Partition,
    net: NetworkModel,
    subs: Subscriptions,
    /// Topics per identity.
    per: usize,
    /// Global ids of local identities, in heartbeat order: by (phase, id).
    ids: Vec<u32>,
    /// Global id → local index (`NONE` if not local).
    local: Vec<u32>,
    row: Vec<u32>,
    /// Per identity: connections from the initial graph, sorted by peer at the start of its row;
    /// peer-exchange slots follow them.
    nmain: Vec<u8>,
    /// The peer manager's connection target (see [`GossipSetup::max_peers`]).
    max_peers: usize,
    /// Per connection: peer, path, shared topics, flags, and place in the peer's row.
    conn: Vec<Conn>,
    /// RPCs for identities on other shards, sent during the current `run_until`: they become bus
    /// events together at its end (see [`GossipEngine::flush_remote`]).
    remote: Vec<Pending>,
    /// Per (identity, topic slot): the connections (bit = position in the row) in its mesh.
    mesh: Vec<u64>,
    /// Per (identity, topic slot): its position among the topic's local subscribers.
    sub_pos: Vec<u32>,
    /// Per topic: local subscribers, in local order.
    members: Vec<Vec<u32>>,
    /// Per (connection, topic slot): end of the PRUNE backoff, ms since the start (0: none).
    backoff_until_ms: Vec<u32>,
    /// Per connection: score counters (of the scored topic, `beacon_block`, and behaviour).
    score: Vec<EdgeScore>,
    /// Per identity: when its counters next decay, ms.
    next_decay_ms: Vec<u32>,
    /// Per identity: heartbeats run (paces opportunistic grafting).
    ticks: Vec<u32>,
    /// The end of the simulation, ns: end-of-run scores are taken then, the same on every shard.
    end_ns: u64,
    /// Per identity: upload and download bandwidth.
    up: Vec<Bandwidth>,
    down: Vec<Bandwidth>,
    /// Per profile: the score's lower bound for a connection without [`PENALISED`], out of and
    /// in the mesh.
    clean_floor: Vec<[f64; 2]>,
    /// Scratch space for choosing connections (reused; never observable).
    scratch: Vec<usize>,
    /// The last message looked up: (key, slot), the common case of a burst of RPCs.
    last_msg: Option<(MsgKey, u32)>,
    rng: Vec<CompactRng>,
    /// Per identity: full-message copies waiting for the upload link, in order.
    txq: Vec<VecDeque<(u32, Rpc)>>,
    /// Per identity: a copy is being serialised.
    tx_busy: Vec<bool>,
    /// Per identity, when a profile has `upload = "fair"` (empty otherwise): copies being sent,
    /// and packets for real clients, sharing the upload link.
    fair: Vec<FairLink<Up>>,
    /// Scratch space for what a fair link finished (reused; never observable).
    fair_done: Vec<Up>,
    /// Windows of copies waiting for their round trip (`slow_start_windows`), by slot (`None`:
    /// the copy was lost with its sender), and the free slots, last freed first. A slot is
    /// freed when its event comes, so no two events name one slot.
    parked: Vec<Option<Sending>>,
    parked_free: Vec<u32>,
    /// Per connection, when a profile has `slow_start` (empty otherwise): the latest time a
    /// message copy on it has left or may leave, ns (`u64::MAX`: never): copies on one
    /// connection leave in order, and its idle time counts from there.
    last_copy_ns: Vec<u64>,
    /// Per identity, when a profile has `download = "fair"` (empty otherwise): messages being
    /// downloaded, with their senders, and packets from real clients, sharing the download link.
    fair_down: Vec<FairLink<Down>>,
    /// Scratch space for what a fair download link finished.
    fair_arrived: Vec<Down>,
    /// Per identity: queued copies dropped because the peer sent IDONTWANT first.
    cancelled: Vec<u32>,
    downlink: Vec<FifoLink>,
    seq: Vec<u64>,
    published: Vec<u32>,
    dontwant: Vec<(u32, u32)>,
    dontwant_head: Vec<u8>,
    sent: Vec<[u64; RPC_KINDS]>,
    recv: Vec<[u64; RPC_KINDS]>,
    lost: Vec<u64>,
    /// GRAFTs received from a peer this identity had pruned, within the backoff.
    graft_in_backoff: Vec<u32>,
    /// The attackers, and the honest identities' counters of what they did about them.
    attack: attack::AttackState,
    /// Churn, if any: its parameters and each identity's "churn" stream.
    churn: Option<ChurnSpec>,
    churn_rng: Vec<CompactRng>,
    /// Per identity: online, when it last left, time spent offline, RPCs dropped while offline.
    online: Vec<bool>,
    left_at: Vec<u64>,
    offline_ns: Vec<u64>,
    dropped_offline: Vec<u32>,
    /// Rules on top of the network model (partitions, extra delay or loss), applied at departure.
    rules: Rules,
    /// The identities' queues for the rules' path limits.
    shaping: Shaping,
    /// Packets from direct hosts, per local identity that got any: (packets, bytes).
    packets_in: BTreeMap<u32, (u64, u64)>,
    /// Fanout of identities publishing to topics they do not subscribe to: (identity, topic) →
    /// (peers as a row mask, last publish ns). Only publishers have entries.
    fanout: BTreeMap<(u32, u8), (u64, u64)>,
    /// The identities real clients connect to (`None` in a run without direct hosts).
    boundary: Option<Box<Boundary>>,
    /// What the boundary knows of the consensus chain (`[gossip.eth2]`).
    eth2: Option<Box<eth2::Eth2State>>,
    /// The peers' discovery, when identities find their peers (see [`discovery`]).
    discovery: Option<discovery::Peering>,
    /// Packets from direct hosts waiting for their events, by token.
    packets: BTreeMap<u32, Bytes>,
    next_token: u32,
    /// Per local identity with clients: the endpoint timer armed (earliest), its upload link.
    client_timers: BTreeMap<u32, u64>,
    client_uplink: BTreeMap<u32, FifoLink>,
    /// Packets for direct hosts sent during the current `run_until`.
    client_out: Vec<(ShardId, Event)>,
    /// Wire form of messages that crossed the boundary on this shard, and the first time a
    /// client's message was seen here.
    content: BTreeMap<MsgKey, Content>,
    key_by_id: BTreeMap<Vec<u8>, MsgKey>,
    /// With clients: every scheduled surrogate publication (the same on every shard), so that
    /// an id a client sends resolves to the same key on any shard, whether or not the message
    /// crossed to a client here ([`GossipEngine::learn_schedule`]).
    schedule: clients::Schedule,
    /// Every topic's message-id function, by topic index.
    message_ids: Vec<MessageIdFn>,
    /// The dials of this shard's identities to real clients: (client host, port).
    dials: Vec<(u32, u16)>,
    /// Per other shard, a surrogate it holds (where a client's message is sent), and how long
    /// after its receipt.
    shard_hosts: Vec<(ShardId, u32)>,
    runahead_ns: u64,
    seed: u64,
    start_unix_ns: u64,
    pub(crate) msgs: Messages,
    /// How long after publication a surrogate's message expires (see `messages`), ns.
    lifetime_ns: u64,
    /// Keep expired messages to the end instead of retiring them (for checking that both agree).
    keep_messages: bool,
    /// With real clients: the publication time of each retired message, which clients' control
    /// messages about it are looked up by.
    retired_published: BTreeMap<MsgKey, u64>,
    /// The digest records of retired messages' arrivals.
    retired_digest: Digest,
    /// Slots due for retirement, in order: each one's rows are made when the runtime asks
    /// ([`Engine::take_tables`]), one message at a time, so they never pile up in memory.
    retiring: VecDeque<usize>,
    /// Why a retiring message's tables could not be made (reported by the next `run_until`).
    table_error: Option<String>,
    /// Per local identity: RPCs ignored because their message had expired.
    expired_rpcs: Vec<u32>,
    /// Message key → local slot; iterated in key order, never in slot (arrival) order, which
    /// depends on the partition.
    msg_slot: BTreeMap<MsgKey, u32>,
    /// Per topic: messages some local subscriber may still advertise, in key order.
    recent: Vec<Vec<u32>>,
    queue: CalendarQueue<Pending>,
    phase: Vec<u64>,
    hb_seq: Vec<u64>,
    /// `degree_samples[period][family * DEGREES + degree]`: (identity, topic) meshes sampled at
    /// that degree in that heartbeat period.
    degree_samples: Vec<Vec<u64>>,
    traffic: TrafficSpec,
}

impl GossipEngine {
    /// The engine for `shard`: every surrogate of the setup's network that its partition puts
    /// on this shard.
    pub fn new(setup: GossipSetup<'_>, shard: ShardId) -> Result<Self, GossipError> {
        let GossipSetup {
            profiles,
            traffic,
            net,
            partition,
            graph,
            subscriptions,
            seed,
            end,
            max_peers,
            px_slots,
            client_slots,
            start_unix_ns,
            runahead_ns,
            message_ids,
            client_dials,
            lifetime,
            keep_messages,
            rules,
            discovery,
            outbound_peers,
            subnet_peers,
            eth2: eth2_domain,
            attackers,
        } = setup;
        if profiles.is_empty() || profiles.len() > u8::MAX as usize {
            return Err(GossipError::Config(format!("need 1 to 255 profiles, got {}", profiles.len())));
        }
        let (profile_names, params): (Vec<String>, Vec<GossipParams>) = profiles.into_iter().unzip();
        // Surrogate identities hold the ids below `surrogates()`; direct hosts follow them.
        let n = net.directory.surrogates();
        let hybrid = n < net.directory.len();
        // Free slots for peers found during the run: by discv5 (which peer exchange shares), or
        // by peer exchange alone.
        let found = match &discovery {
            Some(_) => max_peers as usize + (subscriptions.per_identity() - 1) * subnet_peers as usize,
            None if params.iter().any(|p| p.peer_exchange) => px_slots as usize,
            None => 0,
        };
        let extra = found + if hybrid { client_slots as usize } else { 0 };
        // Each host group's profile, by index.
        let group_profile: Vec<u8> = net
            .directory
            .groups
            .iter()
            .map(|g| match &g.spec.profile {
                None => Ok(0),
                Some(name) => profile_names.iter().position(|p| p == name).map(|k| k as u8).ok_or_else(|| {
                    GossipError::Config(format!("hosts group {:?}: profile {name:?} was not set up", g.spec.name))
                }),
            })
            .collect::<Result<_, _>>()?;
        let gossip = StreamFamily::new(seed, "gossip");
        // Each identity's stream first draws its heartbeat phase. Local identities are stored in
        // heartbeat order, (profile, phase, id), so that each profile's heartbeat wheel walks
        // every per-identity array (and the connection rows) front to back instead of at random.
        let mut order: Vec<(u8, u64, u32, CompactRng)> = (0..n)
            .filter(|&h| partition.shard_of(h) == shard)
            .map(|h| {
                let p = group_profile[net.directory.block_of(h).group as usize];
                let mut rng = gossip.compact(h);
                (p, below(&mut rng, params[p as usize].heartbeat.as_nanos()), h, rng)
            })
            .collect();
        order.sort_by_key(|&(p, phase, h, _)| (p, phase, h));
        let ids: Vec<u32> = order.iter().map(|&(_, _, h, _)| h).collect();
        let profile_of: Vec<u8> = order.iter().map(|&(p, _, _, _)| p).collect();
        let wheels: Vec<Wheel> = (0..params.len())
            .map(|p| {
                let start = profile_of.partition_point(|&x| (x as usize) < p);
                let end = profile_of.partition_point(|&x| (x as usize) <= p);
                Wheel { start, end, at: start, cycle: 0, period: params[p].heartbeat.as_nanos() }
            })
            .collect();
        let min_heartbeat = params.iter().map(|p| p.heartbeat.as_secs_f64()).fold(f64::INFINITY, f64::min);
        let mut local = vec![NONE; n as usize];
        for (i, &h) in ids.iter().enumerate() {
            local[h as usize] = i as u32;
        }
        let per = subscriptions.per_identity();
        let mut row = Vec::with_capacity(ids.len() + 1);
        let mut conns: Vec<Conn> = Vec::new();
        let mut nmain = Vec::with_capacity(ids.len());
        row.push(0);
        for &h in &ids {
            let peers = graph.of(h);
            if peers.len() + extra > 64 {
                return Err(GossipError::Config(format!(
                    "identity {h} has {} peers and {extra} peer-exchange and client slots; at most 64 in all",
                    peers.len()
                )));
            }
            nmain.push(peers.len() as u8);
            let first = graph.start[h as usize] as usize;
            let mine = subscriptions.of(h);
            for (k, &p) in peers.iter().enumerate() {
                conns.push(Conn {
                    peer: p,
                    at: local[p as usize],
                    path: net.path_index(h, p),
                    shared: shared_topics(mine, subscriptions.of(p)),
                    flags: if graph.outbound[first + k] { OUTBOUND } else { 0 },
                    rev: graph.of(p).binary_search(&h).map_or(NO_HINT, |k| k as u8),
                });
            }
            // Free peer-exchange slots: no peer, closed.
            conns.extend(std::iter::repeat_n(FREE_SLOT, extra));
            row.push(conns.len() as u32);
        }
        let k = ids.len();
        let connections = conns.len();
        let mut members = vec![Vec::new(); TOPIC_COUNT];
        let mut sub_pos = Vec::with_capacity(k * per);
        for (i, &h) in ids.iter().enumerate() {
            for &t in subscriptions.of(h) {
                sub_pos.push(members[t as usize].len() as u32);
                members[t as usize].push(i as u32);
            }
        }
        // Everyone subscribes to the block topic, in local order: see `position`.
        debug_assert!(members[TOPIC_BEACON_BLOCK as usize].iter().enumerate().all(|(k, &i)| k == i as usize));
        let shard_hosts = if hybrid { clients::shard_hosts(&partition, n, shard) } else { Vec::new() };
        let mut e = GossipEngine {
            me: shard,
            profile_names,
            profile_of,
            wheels,
            partition,
            subs: subscriptions.clone(),
            per,
            ids,
            local,
            nmain,
            remote: Vec::new(),
            max_peers: max_peers as usize,
            mesh: vec![0; k * per],
            sub_pos,
            members,
            backoff_until_ms: vec![0; conns.len() * per],
            score: vec![EdgeScore::default(); conns.len()],
            next_decay_ms: Vec::with_capacity(k),
            ticks: vec![0; k],
            end_ns: end.as_nanos(),
            up: Vec::new(),
            down: Vec::new(),
            clean_floor: params.iter().map(|p| [p.score.clean_floor(false), p.score.clean_floor(true)]).collect(),
            scratch: Vec::new(),
            last_msg: None,
            row,
            conn: conns,
            rng: Vec::with_capacity(k),
            txq: (0..k).map(|_| VecDeque::new()).collect(),
            tx_busy: vec![false; k],
            fair: fair_links(k, params.iter().any(|p| p.upload == LinkQueue::Fair)),
            fair_done: Vec::new(),
            parked: Vec::new(),
            parked_free: Vec::new(),
            last_copy_ns: if params.iter().any(|p| p.slow_start) { vec![u64::MAX; connections] } else { Vec::new() },
            fair_down: fair_links(k, params.iter().any(|p| p.download == LinkQueue::Fair)),
            fair_arrived: Vec::new(),
            cancelled: vec![0; k],
            downlink: vec![FifoLink::default(); k],
            seq: vec![0; k],
            published: vec![0; k],
            dontwant: vec![(NONE, NONE); k * DONTWANT_RING],
            dontwant_head: vec![0; k],
            sent: vec![[0; RPC_KINDS]; k],
            recv: vec![[0; RPC_KINDS]; k],
            lost: vec![0; k],
            graft_in_backoff: vec![0; k],
            attack: attack::AttackState::default(),
            churn: traffic.churn.clone(),
            churn_rng: Vec::new(),
            online: vec![true; k],
            left_at: vec![0; k],
            offline_ns: vec![0; k],
            dropped_offline: vec![0; k],
            packets_in: BTreeMap::new(),
            rules,
            shaping: Shaping::default(),
            fanout: BTreeMap::new(),
            boundary: hybrid.then(|| Box::new(boundary(seed, eth2_domain))),
            eth2: eth2_domain.map(|d| Box::new(eth2::Eth2State::new(d))),
            discovery: discovery.map(|d| discovery::Peering::new(d, outbound_peers, subnet_peers, k)),
            packets: BTreeMap::new(),
            next_token: 0,
            client_timers: BTreeMap::new(),
            client_uplink: BTreeMap::new(),
            client_out: Vec::new(),
            content: BTreeMap::new(),
            key_by_id: BTreeMap::new(),
            schedule: clients::Schedule::default(),
            message_ids,
            dials: Vec::new(),
            shard_hosts,
            runahead_ns,
            seed,
            start_unix_ns,
            msgs: Messages::default(),
            lifetime_ns: lifetime.as_nanos(),
            keep_messages,
            retired_published: BTreeMap::new(),
            retired_digest: Digest::EMPTY,
            retiring: VecDeque::new(),
            table_error: None,
            expired_rpcs: vec![0; k],
            msg_slot: BTreeMap::new(),
            recent: vec![Vec::new(); TOPIC_COUNT],
            phase: Vec::with_capacity(k),
            hb_seq: vec![0; k],
            queue: CalendarQueue::new(CalendarQueue::<Pending>::shift_for(k as f64 / min_heartbeat * 4.0, 256.0), 4096),
            degree_samples: Vec::new(),
            traffic,
            params,
            net,
        };
        for i in 0..k {
            let h = e.ids[i];
            let bw = e.net.directory.block_of(h).bandwidth;
            e.up.push(bw.up);
            e.down.push(bw.down);
            e.hb_seq[i] = e.seq[i];
            e.seq[i] += 1;
        }
        for (p, phase, _, rng) in order {
            e.phase.push(phase);
            e.rng.push(rng);
            e.next_decay_ms.push((e.params[p as usize].score.decay_interval.as_nanos() / 1_000_000) as u32);
        }
        e.schedule_publications(n, seed);
        e.attack = attack::AttackState::new(attackers, &e.ids);
        e.schedule_attacks(seed);
        if let Some(churn) = e.churn.clone() {
            let family = StreamFamily::new(seed, "churn");
            let start = churn.start.unwrap_or(e.traffic.start).as_nanos();
            for i in 0..k {
                let mut rng = family.compact(e.ids[i]);
                let at = start + exponential_ns(&mut rng, churn.session.as_nanos());
                e.churn_rng.push(rng);
                if at < e.end_ns {
                    e.self_event(i, at, Action::GoOffline);
                }
            }
        }
        let end = e.end_ns;
        for d in client_dials.iter().filter(|d| d.at_ns < end) {
            let i = e.local.get(d.surrogate as usize).copied().unwrap_or(NONE);
            if i != NONE && e.boundary.is_some() {
                e.self_event(i as usize, d.at_ns, Action::DialClient { k: e.dials.len() as u32 });
                e.dials.push((d.client, d.port));
            }
        }
        Ok(e)
    }

    /// Schedule every publication of the run (see [`publications`]) whose publisher is local.
    fn schedule_publications(&mut self, n: u32, seed: u64) {
        let all = publications(n, &self.traffic, seed, self.end_ns);
        for p in &all {
            let i = self.local[p.publisher as usize];
            if i != NONE {
                self.self_event(i as usize, p.at_ns, Action::Publish { topic: p.topic });
            }
        }
        if self.boundary.is_some() {
            self.schedule = clients::Schedule::new(all);
        }
    }

    /// Identity `i`'s upload rate at `now`: its own, or a scenario's bandwidth limit if lower.
    pub(super) fn up_bw(&self, i: usize, now: u64) -> Bandwidth {
        Bandwidth(self.rules.up_bps(self.ids[i], now, self.up[i].0))
    }

    /// Identity `i`'s download rate at `now`, as [`GossipEngine::up_bw`].
    pub(super) fn down_bw(&self, i: usize, now: u64) -> Bandwidth {
        Bandwidth(self.rules.down_bps(self.ids[i], now, self.down[i].0))
    }

    fn self_event(&mut self, i: usize, time: u64, action: Action) {
        let h = self.ids[i];
        let seq = self.seq[i];
        self.seq[i] += 1;
        self.queue.push(Pending { time, src: h, seq, dst: i as u32, action });
    }

    fn peers(&self, i: usize) -> std::ops::Range<usize> {
        self.row[i] as usize..self.row[i + 1] as usize
    }

    /// Whether connection `c` is up.
    fn up(&self, c: usize) -> bool {
        self.conn[c].flags & DOWN == 0
    }

    /// `i` goes offline: it tells every connected peer, closes its connections and meshes, and
    /// drops its queued copies; it comes back after an exponential downtime.
    fn go_offline(&mut self, i: usize, now: u64) {
        let now_ms = (now / 1_000_000) as u32;
        for c in self.peers(i) {
            if self.up(c) {
                self.send_on(i, c, now, Rpc::control(RpcKind::Disconnect, 0));
            }
            for s in 0..self.per {
                self.leave_mesh(i, s, c, now_ms);
            }
            self.conn[c].flags |= DOWN;
        }
        self.txq[i].clear();
        if let Some(link) = self.fair.get_mut(i) {
            link.clear();
        }
        // Copies waiting for their next window are lost too.
        let conns = self.peers(i);
        for parked in &mut self.parked {
            if parked.is_some_and(|s| conns.contains(&(s.conn as usize))) {
                *parked = None;
            }
        }
        if let Some(link) = self.fair_down.get_mut(i) {
            // Messages and packets being downloaded are lost with the identity, as the FIFO's are.
            let mut lost = Vec::new();
            link.drain_into(&mut lost);
            for item in lost {
                match item {
                    Down::Rpc(..) => self.dropped_offline[i] += 1,
                    Down::Packet(token) => drop(self.packets.remove(&token)),
                }
            }
        }
        self.online[i] = false;
        self.left_at[i] = now;
        if let Some(churn) = &self.churn {
            let at = now + exponential_ns(&mut self.churn_rng[i], churn.downtime.as_nanos()).max(1);
            if at < self.end_ns {
                self.self_event(i, at, Action::GoOnline);
            }
        }
    }

    /// `i` comes back: it asks every peer to reconnect (a connection is up again once the peer
    /// accepts) and stays for another exponential session.
    fn go_online(&mut self, i: usize, now: u64) {
        self.online[i] = true;
        self.offline_ns[i] += now - self.left_at[i];
        for c in self.peers(i) {
            if self.conn[c].peer != NONE {
                self.send_on(i, c, now, Rpc::control(RpcKind::Connect, 0));
            }
        }
        if let Some(churn) = &self.churn {
            let at = now + exponential_ns(&mut self.churn_rng[i], churn.session.as_nanos()).max(1);
            if at < self.end_ns {
                self.self_event(i, at, Action::GoOffline);
            }
        }
    }

    /// The topic slot of `t` among `i`'s subscriptions.
    fn topic_slot(&self, i: usize, t: u8) -> Option<usize> {
        if self.per == 1 {
            // Only the block topic: no need to look at the identity's subscriptions.
            return (t == TOPIC_BEACON_BLOCK).then_some(0);
        }
        self.subs.of(self.ids[i]).binary_search(&t).ok()
    }

    /// `i`'s position among the local subscribers of its topic slot `s` (its column in message
    /// tables). Every identity subscribes to the block topic (slot 0), so there it is `i`.
    fn position(&self, i: usize, s: usize) -> usize {
        if s == 0 { i } else { self.sub_pos[i * self.per + s] as usize }
    }

    /// The topic of `i`'s topic slot `s`.
    fn topic_of(&self, i: usize, s: usize) -> u8 {
        if self.per == 1 {
            // Only the block topic: no need to look at the identity's subscriptions.
            return TOPIC_BEACON_BLOCK;
        }
        self.subs.of(self.ids[i])[s]
    }

    /// Whether connection `c` of `i` is in `i`'s mesh of topic slot `s`.
    fn in_mesh(&self, i: usize, s: usize, c: usize) -> bool {
        self.mesh[i * self.per + s] >> (c - self.row[i] as usize) & 1 != 0
    }

    /// The connections in `i`'s mesh of topic slot `s`, ascending. The iterator holds a copy of
    /// the mask, so the engine may change meanwhile.
    fn mesh_conns(&self, i: usize, s: usize) -> impl Iterator<Item = usize> + use<> {
        bits(self.row[i] as usize, self.mesh[i * self.per + s])
    }

    /// The mesh degree of `i`'s topic slot `s`.
    fn degree(&self, i: usize, s: usize) -> usize {
        self.mesh[i * self.per + s].count_ones() as usize
    }

    /// The score of connection `c` of `i` at `now_ms` (0 with scoring off). The scored topic is
    /// `beacon_block`, topic slot 0 of every identity.
    fn score_of(&self, i: usize, c: usize, now_ms: u32) -> f64 {
        if !prm!(self, i).scoring {
            return 0.0;
        }
        self.score[c].score(&prm!(self, i).score, self.in_mesh(i, 0, c), now_ms, self.attack.invalid_of(c))
    }

    /// Whether connection `c`'s score is at least `threshold` (always, with scoring off). Checks
    /// the cheap lower bound first.
    #[inline]
    fn passes(&self, i: usize, c: usize, threshold: f64, now_ms: u32) -> bool {
        if !prm!(self, i).scoring {
            return true;
        }
        let clean = self.conn[c].flags & PENALISED == 0;
        let floors = self.clean_floor[if self.params.len() == 1 { 0 } else { self.profile_of[i] as usize }];
        if clean && floors[0].min(floors[1]) >= threshold {
            // In the mesh or not, a clean connection passes: no need to read the mesh.
            return true;
        }
        let in_mesh = self.in_mesh(i, 0, c);
        let floor = if clean {
            floors[in_mesh as usize]
        } else {
            self.score[c].floor(&prm!(self, i).score, in_mesh, self.attack.invalid_of(c))
        };
        floor >= threshold || self.score_of(i, c, now_ms) >= threshold
    }

    /// Connection `c` joins `i`'s mesh of topic slot `s` at `now_ms`.
    fn join_mesh(&mut self, i: usize, s: usize, c: usize, now_ms: u32) {
        self.mesh[i * self.per + s] |= 1 << (c - self.row[i] as usize);
        if s == 0 {
            self.score[c].grafted_ms = now_ms;
        }
    }

    /// Remove connection `c` from `i`'s mesh of topic slot `s`, charging any mesh-delivery
    /// deficit of the scored topic (P₃b); nothing if it is not in the mesh.
    fn leave_mesh(&mut self, i: usize, s: usize, c: usize, now_ms: u32) {
        if !self.in_mesh(i, s, c) {
            return;
        }
        if s == 0 {
            let d = self.score[c].mesh_deficit(&prm!(self, i).score, true, now_ms);
            if d > 0.0 {
                self.score[c].mesh_failure += (d * d) as f32;
                self.conn[c].flags |= PENALISED;
            }
        }
        self.mesh[i * self.per + s] &= !(1 << (c - self.row[i] as usize));
    }

    /// Graft connection `c` on topic slot `s`: it joins the mesh and the peer is told.
    fn graft(&mut self, i: usize, s: usize, c: usize, now: u64) {
        self.join_mesh(i, s, c, (now / 1_000_000) as u32);
        let t = self.topic_of(i, s);
        self.send(i, c, now, Rpc::control(RpcKind::Graft, t));
    }

    /// Prune connection `c` from topic slot `s`: it leaves the mesh (if in it) and is kept out
    /// for the prune backoff, which the PRUNE tells the peer.
    fn prune(&mut self, i: usize, s: usize, c: usize, now: u64) {
        let now_ms = (now / 1_000_000) as u32;
        let backoff_ms = (prm!(self, i).prune_backoff.as_nanos() / 1_000_000) as u32;
        self.leave_mesh(i, s, c, now_ms);
        self.backoff_until_ms[c * self.per + s] = now_ms.saturating_add(backoff_ms);
        let mut rpc = Rpc::control(RpcKind::Prune, self.topic_of(i, s));
        rpc.backoff_ms = backoff_ms;
        self.send(i, c, now, rpc);
    }

    /// Peer exchange with a PRUNE of `c` on topic slot `s`: up to `prune_peers` other connected
    /// peers of the topic with a non-negative score, chosen with `i`'s stream, one record each.
    fn offer_peers(&mut self, i: usize, s: usize, c: usize, now: u64) {
        let now_ms = (now / 1_000_000) as u32;
        let want = prm!(self, i).prune_peers as usize;
        let chosen = self
            .choose(i, want, |e, k| k != c && e.up(k) && e.conn[k].shared >> s & 1 != 0 && e.passes(i, k, 0.0, now_ms));
        let t = self.topic_of(i, s);
        for &k in &chosen {
            let mut rpc = Rpc::control(RpcKind::PeerExchange, t);
            rpc.msg = MsgKey(self.conn[k].peer as u64);
            self.send(i, c, now, rpc);
        }
        self.scratch = chosen;
    }

    /// Whether the peer of `i`'s connection `c` subscribes to topic `t`: from the run's
    /// subscriptions for an identity, from what it said for a client (known only for `i`'s own
    /// topics).
    fn peer_subscribes(&self, i: usize, c: usize, t: u8) -> bool {
        if self.is_client(c) {
            return self.topic_slot(i, t).is_some_and(|s| self.conn[c].shared & (1 << s) != 0);
        }
        self.subs.has(self.conn[c].peer, t)
    }

    /// Connection index of `peer` in `i`'s row.
    fn slot_of(&self, i: usize, peer: u32) -> Option<usize> {
        let (start, end) = (self.row[i] as usize, self.row[i + 1] as usize);
        let main = start + self.nmain[i] as usize;
        match self.conn[start..main].binary_search_by_key(&peer, |k| k.peer) {
            Ok(k) => Some(start + k),
            Err(_) => (main..end).find(|&c| self.conn[c].peer == peer),
        }
    }

    /// Connections of `i` that are up.
    fn connected(&self, i: usize) -> usize {
        self.peers(i).filter(|&c| self.up(c)).count()
    }

    /// Take a free peer-exchange slot of `i` for `p` (closed until the handshake completes).
    fn take_slot(&mut self, i: usize, p: u32) -> Option<usize> {
        let start = self.row[i] as usize + self.nmain[i] as usize;
        let c = (start..self.row[i + 1] as usize).find(|&c| self.conn[c].peer == NONE)?;
        self.conn[c] = Conn {
            peer: p,
            at: self.local[p as usize],
            path: self.net.path_index(self.ids[i], p),
            shared: shared_topics(self.subs.of(self.ids[i]), self.subs.of(p)),
            flags: DOWN,
            rev: NO_HINT,
        };
        self.score[c] = EdgeScore::default();
        for s in 0..self.per {
            self.backoff_until_ms[c * self.per + s] = 0;
        }
        Some(c)
    }

    /// Give a peer-exchange slot back (its connection is closed and out of every mesh).
    fn free_slot(&mut self, i: usize, c: usize) {
        if c >= self.row[i] as usize + self.nmain[i] as usize {
            self.conn[c] = FREE_SLOT;
        }
    }

    /// Send `rpc` from local identity `i` over its connection `c` at `now`: upload queue, path,
    /// loss.
    fn send(&mut self, i: usize, c: usize, now: u64, rpc: Rpc) {
        if !self.up(c) {
            return;
        }
        if self.is_client(c) {
            // TCP does the queueing, at the identity's endpoint.
            self.client_send(i, c, now, rpc);
            return;
        }
        if rpc.kind == RpcKind::Message && prm!(self, i).upload == LinkQueue::Fair {
            self.fair_send(i, c, now, rpc);
            return;
        }
        if rpc.kind == RpcKind::Message {
            // Full messages wait their turn on the upload link (one copy at a time, in order).
            self.txq[i].push_back((c as u32, rpc));
            if !self.tx_busy[i] {
                self.start_tx(i, now);
            }
            return;
        }
        // Control RPCs go first (a priority queue, as rust-libp2p does), serialised on their own.
        let bytes = rpc.wire_bytes();
        self.sent[i][rpc.kind as usize] += bytes;
        let depart = express(now, bytes, self.up_bw(i, now));
        self.send_on(i, c, depart, rpc);
    }

    /// Whether a message copy for connection `c` is still worth sending at `now`: not when its
    /// message has expired, nor when the peer has told `i` it does not want it (each counted).
    fn still_wanted(&mut self, i: usize, c: usize, rpc: &Rpc, now: u64) -> bool {
        if self.has_expired(rpc.msg, rpc.published_ns, now) {
            self.expired_rpcs[i] = self.expired_rpcs[i].saturating_add(1);
            return false;
        }
        let peer = self.conn[c].peer;
        let m = self.msg_slot.get(&rpc.msg).copied().unwrap_or(NONE);
        if self.dontwant[i * DONTWANT_RING..(i + 1) * DONTWANT_RING].contains(&(peer, m)) {
            self.cancelled[i] += 1;
            return false;
        }
        true
    }

    /// Hand a message copy to connection `c` at once, to share `i`'s fair upload link with the
    /// copies already under way (unless the peer has already declined the message).
    fn fair_send(&mut self, i: usize, c: usize, now: u64, rpc: Rpc) {
        if !self.still_wanted(i, c, &rpc, now) {
            return;
        }
        let bytes = rpc.wire_bytes();
        self.sent[i][RpcKind::Message as usize] += bytes;
        let bw = self.up_bw(i, now);
        let mut sending = Sending { conn: c as u32, rpc, floor: now, start: now, window: 0, left: 0, released: now };
        if prm!(self, i).slow_start_windows && self.is_cold(c, now) {
            // Slow start in the link itself: the initial window now, the rest window by window.
            self.last_copy_ns[c] = now;
            sending.window = bytes.min(INITIAL_WINDOW * MSS);
            sending.left = bytes - sending.window;
        } else {
            let sharing =
                if prm!(self, i).slow_start_rounds { Some((self.fair[i].len() as u64 + 1, bw)) } else { None };
            if prm!(self, i).slow_start {
                sending.floor = self.slow_start_floor(c, now, bytes, sharing);
            }
            sending.window = bytes;
        }
        self.fair[i].push(now, sending.window, bw, Up::Copy(sending));
        self.fair_wake(i, now);
    }

    /// A round trip on connection `c`'s path, ns.
    fn rtt(&self, c: usize) -> u64 {
        2 * self.net.routes.by_index(self.conn[c].path).latency_ns
    }

    /// Whether connection `c` is new, or has been idle for longer than a retransmission
    /// timeout (Linux's 200-ms floor plus a round trip) since its last copy left: TCP starts
    /// it again from the initial window.
    fn is_cold(&self, c: usize, now: u64) -> bool {
        let last = self.last_copy_ns[c];
        last == u64::MAX || now > last.saturating_add(RTO_FLOOR_NS + self.rtt(c))
    }

    /// The next window of a copy whose window `done` is through at `now`: let into the link now
    /// if a round trip has passed since `done` was, else parked until then.
    fn next_window(&mut self, i: usize, now: u64, done: Sending) {
        let c = done.conn as usize;
        // The connection is busy: its idle time counts from here.
        self.last_copy_ns[c] = self.last_copy_ns[c].max(now);
        let window = done.left.min(done.window.saturating_mul(2));
        let released = (done.released + self.rtt(c)).max(now);
        let next = Sending { window, left: done.left - window, released, ..done };
        if released == now {
            let bw = self.up_bw(i, now);
            self.fair[i].push(now, window, bw, Up::Copy(next));
            return;
        }
        let slot = match self.parked_free.pop() {
            Some(slot) => {
                self.parked[slot as usize] = Some(next);
                slot
            }
            None => {
                self.parked.push(Some(next));
                self.parked.len() as u32 - 1
            }
        };
        self.self_event(i, released, Action::FairWindow { slot });
    }

    /// A parked window's round trip has passed: it enters `i`'s fair upload link, unless the
    /// copy was lost when `i` went offline.
    fn fair_window(&mut self, i: usize, now: u64, slot: u32) {
        let parked = self.parked[slot as usize].take();
        self.parked_free.push(slot);
        let Some(next) = parked else { return };
        let c = next.conn as usize;
        self.last_copy_ns[c] = self.last_copy_ns[c].max(now);
        let bw = self.up_bw(i, now);
        self.fair[i].push(now, next.window, bw, Up::Copy(next));
        self.fair_wake(i, now);
    }

    /// The earliest a copy of `bytes` starting at `now` on connection `c` can have left, under
    /// TCP's slow start: on a new connection, or one idle for longer than a retransmission
    /// timeout (Linux's 200-ms floor plus a round trip) since its last copy left, the window
    /// starts at 10 segments and doubles each round trip, so `rounds` windows take `rounds − 1`
    /// round trips before the last is sent; a busy connection's window is open. Never before the
    /// connection's previous copy (one TCP stream delivers in order). With `sharing` (`k` copies
    /// under way, this one included, on a link of that bandwidth: `slow_start_rounds`), also no
    /// earlier than any round's start plus what is left from that round on, sent `k` times.
    fn slow_start_floor(&mut self, c: usize, now: u64, bytes: u64, sharing: Option<(u64, Bandwidth)>) -> u64 {
        let rtt = self.rtt(c);
        let last = self.last_copy_ns[c];
        let floor = if self.is_cold(c, now) {
            let (mut left, mut window, mut round, mut floor) = (bytes, INITIAL_WINDOW * MSS, 0u64, now);
            while left > 0 {
                let start = now + round * rtt;
                floor = floor.max(start);
                if let Some((k, bw)) = sharing {
                    floor = floor.max(express(start, k * left, bw));
                }
                left = left.saturating_sub(window);
                window *= 2;
                round += 1;
            }
            floor
        } else {
            now.max(last)
        };
        self.last_copy_ns[c] = floor;
        floor
    }

    /// Schedule `i`'s next look at its fair upload link, when its next copy will be done.
    fn fair_wake(&mut self, i: usize, now: u64) {
        let bw = self.up_bw(i, now);
        if let Some(at) = self.fair[i].wake(bw) {
            self.self_event(i, at, Action::FairTx);
        }
    }

    /// A wake-up of `i`'s fair upload link: the copies done leave now.
    fn fair_tx(&mut self, i: usize, now: u64) {
        if !self.fair[i].is_wake(now) {
            return;
        }
        let mut done = std::mem::take(&mut self.fair_done);
        let bw = self.up_bw(i, now);
        self.fair[i].complete(now, bw, &mut done);
        for item in done.drain(..) {
            let sending = match item {
                Up::Copy(sending) => sending,
                Up::Packet(token) => {
                    self.packet_leaves(i, now, token);
                    continue;
                }
            };
            if sending.left > 0 {
                self.next_window(i, now, sending);
                continue;
            }
            let Sending { conn: c, rpc, floor, start, .. } = sending;
            if let Some(last) = self.last_copy_ns.get_mut(c as usize) {
                *last = (*last).max(now);
            }
            let rpc = rpc.sent_over(start, floor.max(now));
            if floor > now {
                // Its share of the link is done, but its window has not opened yet: it leaves
                // when slow start lets it (the FIFO's event; its queue is empty here).
                self.self_event(i, floor, Action::TxDone { rpc, conn: c });
            } else {
                self.send_on(i, c as usize, now, rpc);
            }
        }
        self.fair_done = done;
        self.fair_wake(i, now);
    }

    /// A message from `from` starts arriving at `i` at `now`, to share its fair download link.
    fn fair_receive(&mut self, i: usize, now: u64, from: u32, rpc: Rpc) {
        let bw = self.down_bw(i, now);
        self.fair_down[i].push(now, rpc.wire_bytes(), bw, Down::Rpc(rpc, from));
        self.fair_rx_wake(i, now);
    }

    /// Schedule `i`'s next look at its fair download link.
    fn fair_rx_wake(&mut self, i: usize, now: u64) {
        let bw = self.down_bw(i, now);
        if let Some(at) = self.fair_down[i].wake(bw) {
            self.self_event(i, at, Action::FairRx);
        }
    }

    /// A wake-up of `i`'s fair download link: the messages done are handled now.
    fn fair_rx(&mut self, i: usize, now: u64) -> Result<(), GossipError> {
        if !self.fair_down[i].is_wake(now) {
            return Ok(());
        }
        let mut done = std::mem::take(&mut self.fair_arrived);
        let bw = self.down_bw(i, now);
        self.fair_down[i].complete(now, bw, &mut done);
        let mut result = Ok(());
        for item in done.drain(..) {
            match item {
                Down::Rpc(rpc, from) if result.is_ok() => result = self.handle(i, now, from, rpc),
                Down::Rpc(..) => {}
                Down::Packet(token) => self.packet_in(i, now, token),
            }
        }
        self.fair_arrived = done;
        self.fair_rx_wake(i, now);
        result
    }

    /// Start serialising the next queued copy that is still wanted: a copy whose peer has sent
    /// IDONTWANT for the message meanwhile is dropped without using the link.
    fn start_tx(&mut self, i: usize, now: u64) {
        while let Some((c, rpc)) = self.txq[i].pop_front() {
            if !self.still_wanted(i, c as usize, &rpc, now) {
                continue;
            }
            let bytes = rpc.wire_bytes();
            self.sent[i][RpcKind::Message as usize] += bytes;
            let done = express(now, bytes, self.up_bw(i, now));
            self.tx_busy[i] = true;
            self.self_event(i, done, Action::TxDone { rpc: rpc.sent_over(now, done), conn: c });
            return;
        }
        self.tx_busy[i] = false;
    }

    /// An RPC leaves identity `i` over connection `c` at `depart`: the path decides its delay and
    /// whether it is lost, with `i`'s stream. Connection management travels reliably at the
    /// path's base latency and draws nothing. A copy whose connection closed meanwhile is
    /// dropped.
    fn send_on(&mut self, i: usize, c: usize, depart: u64, rpc: Rpc) {
        if !rpc.kind.is_connection() && !self.up(c) {
            return;
        }
        if self.is_client(c) {
            if !rpc.kind.is_connection() {
                self.client_send(i, c, depart, rpc);
            }
            return;
        }
        let rpc = Rpc { hint: self.conn[c].rev, ..rpc };
        self.send_over(i, self.conn[c], depart, rpc);
    }

    /// An RPC leaves identity `i` at `depart` for the peer of connection record `to`, over its
    /// network path.
    fn send_over(&mut self, i: usize, to: Conn, depart: u64, rpc: Rpc) {
        let src = self.ids[i];
        let path = self.net.routes.by_index(to.path);
        let reliable = rpc.kind.is_connection();
        let depart = self.shaping.depart(&self.rules, (src, to.peer), depart, rpc.wire_bytes());
        let Some(time) = decide(&self.net, path, &self.rules, (src, to.peer), depart, reliable, &mut self.rng[i])
        else {
            self.lost[i] += 1;
            return;
        };
        let seq = self.seq[i];
        self.seq[i] += 1;
        if to.at != NONE {
            self.queue.push(Pending { time, src, seq, dst: to.at, action: Action::Arrive(rpc) });
        } else {
            self.remote.push(Pending { time, src, seq, dst: to.peer, action: Action::Arrive(rpc) });
        }
    }

    /// Turn the RPCs sent to other shards' identities since the last call into bus events: one
    /// buffer holds every payload, and each event's payload is a slice of it. Done once per
    /// `run_until` rather than per RPC, because taking a slice is an atomic reference-count
    /// update, and an atomic update waits for the processor's pending stores — during a run,
    /// the queue insertions that miss cache.
    fn flush_remote(&mut self, outbox: &mut Outbox) {
        if self.remote.is_empty() {
            return;
        }
        let mut buf = Vec::with_capacity(self.remote.len() * RPC_BYTES);
        for p in &self.remote {
            let Action::Arrive(rpc) = p.action else { unreachable!("only arrivals are sent") };
            buf.extend_from_slice(&rpc.to_bytes());
        }
        let buf = bytes::Bytes::from(buf);
        for (k, p) in self.remote.drain(..).enumerate() {
            let event = Event {
                deliver_time: SimTime::from_nanos(p.time),
                src_host: HostId(p.src),
                src_seq: p.seq,
                dst_host: HostId(p.dst),
                kind: GOSSIP_EVENT_KIND,
                payload: buf.slice(k * RPC_BYTES..(k + 1) * RPC_BYTES),
            };
            outbox.push(self.partition.shard_of(p.dst), event);
        }
    }

    /// The local message slot of `rpc`'s message, creating it on first sight.
    fn msg_slot(&mut self, rpc: &Rpc) -> u32 {
        if let Some((k, s)) = self.last_msg
            && k == rpc.msg
        {
            return s;
        }
        if let Some(&s) = self.msg_slot.get(&rpc.msg) {
            self.last_msg = Some((rpc.msg, s));
            // A client's message first heard of in a control message (an IDONTWANT from
            // another client) has its size when it comes.
            let st = &mut self.msgs[s as usize];
            if st.size == 0 && rpc.kind == RpcKind::Message {
                st.size = rpc.size;
            }
            return s;
        }
        let k = self.members[rpc.topic as usize].len();
        let slot = self.slot_at(rpc.published_ns);
        let s = self.msgs.next_slot() as u32;
        self.msgs.push(MsgState {
            key: rpc.msg,
            topic: rpc.topic,
            size: rpc.size,
            published_ns: rpc.published_ns,
            slot,
            publisher: NONE,
            publisher_peers: 0,
            arrival: vec![u64::MAX; k],
            from: vec![NONE; k],
            hops: vec![0; k],
            dups: vec![0; k],
            requested: vec![u64::MAX; k],
            last_arrival_ns: 0,
            in_recent: false,
            retiring: false,
            retired: false,
        });
        self.msg_slot.insert(rpc.msg, s);
        s
    }

    /// Record that subscriber position `pos` of message `m` first received it at `now`, and keep
    /// the message among those that may be advertised.
    fn first_arrival(&mut self, m: u32, pos: usize, now: u64) {
        let st = &mut self.msgs[m as usize];
        st.arrival[pos] = now - st.published_ns;
        st.last_arrival_ns = st.last_arrival_ns.max(now);
        if !st.in_recent {
            st.in_recent = true;
            let (t, key) = (st.topic as usize, st.key);
            let list = &self.recent[t];
            let at = list.partition_point(|&x| self.msgs[x as usize].key < key);
            self.recent[t].insert(at, m);
        }
    }

    /// Whether message `key`, published at `published_ns`, has expired at `now`: RPCs about it
    /// are then ignored (see `messages`). A client's message does not expire.
    fn has_expired(&self, key: MsgKey, published_ns: u64, now: u64) -> bool {
        !key.is_client() && expired(published_ns, now, self.lifetime_ns)
    }

    /// Queue for retirement the messages expired at `now` (or, at the end of the run, every
    /// surrogate message: nothing can change them any more). They stop being advertised or
    /// looked up at once; their rows are made and their state freed as the runtime takes them.
    fn retire(&mut self, now: u64) {
        let mut due = if now >= self.end_ns {
            self.msgs.slots().filter(|&m| !self.msgs[m].retiring && !self.msgs[m].key.is_client()).collect()
        } else {
            self.msgs.expired(now, self.lifetime_ns)
        };
        if due.is_empty() {
            return;
        }
        due.sort_by_key(|&m| self.msgs[m].key);
        let gone: std::collections::BTreeSet<u32> = due.iter().map(|&m| m as u32).collect();
        for list in &mut self.recent {
            list.retain(|m| !gone.contains(m));
        }
        for &m in &due {
            let st = &mut self.msgs[m];
            st.retiring = true;
            st.in_recent = false;
            let (key, published) = (st.key, st.published_ns);
            self.msg_slot.remove(&key);
            self.attack.forget_message(m as u32);
            if self.boundary.is_some() {
                self.retired_published.insert(key, published);
            }
        }
        self.retiring.extend(due);
        self.last_msg = None;
    }

    /// The rows of the next retiring message, whose digest records are then kept and whose
    /// state is freed; `None` when none is due.
    fn retire_next(&mut self) -> Option<Vec<Table>> {
        let m = self.retiring.pop_front()?;
        match tables::messages(self, &[m]) {
            Ok(tables) => {
                let d = self.arrival_digest(m);
                self.retired_digest.add(&d);
                self.msgs.retire(m);
                Some(tables)
            }
            Err(e) => {
                self.table_error = Some(e.to_string());
                self.retiring.clear();
                None
            }
        }
    }

    /// Drop from `recent` the messages no local identity may advertise any more at `now`.
    fn expire_recent(&mut self, now: u64) {
        let window = self.params.iter().map(|p| p.heartbeat.as_nanos() * p.mcache_gossip as u64).max().unwrap_or(0);
        for t in 0..TOPIC_COUNT {
            if self.recent[t].is_empty() {
                continue;
            }
            let mut list = std::mem::take(&mut self.recent[t]);
            list.retain(|&m| {
                let st = &mut self.msgs[m as usize];
                st.in_recent = st.last_arrival_ns + window >= now;
                st.in_recent
            });
            self.recent[t] = list;
        }
    }

    fn message_rpc(&self, m: u32, hops: u8) -> Rpc {
        let st = &self.msgs[m as usize];
        Rpc {
            kind: RpcKind::Message,
            topic: st.topic,
            hops,
            msg: st.key,
            size: st.size,
            published_ns: st.published_ns,
            backoff_ms: 0,
            upload_us: 0,
            hint: NO_HINT,
        }
    }

    /// Pick up to `want` distinct connection indices of `i` satisfying `ok`, uniformly, with
    /// `i`'s stream (a partial Fisher–Yates over the candidates in row order). The result lives
    /// in `self.scratch`; take it with `std::mem::take` and give it back.
    fn choose(&mut self, i: usize, want: usize, ok: impl Fn(&Self, usize) -> bool) -> Vec<usize> {
        self.choose_of_eligible(i, |_| want, ok)
    }

    /// [`GossipEngine::choose`] with the number wanted a function of how many are eligible.
    fn choose_of_eligible(
        &mut self,
        i: usize,
        want: impl Fn(usize) -> usize,
        ok: impl Fn(&Self, usize) -> bool,
    ) -> Vec<usize> {
        let mut cand = std::mem::take(&mut self.scratch);
        cand.clear();
        cand.extend(self.peers(i).filter(|&c| ok(self, c)));
        let take = want(cand.len()).min(cand.len());
        for k in 0..take {
            let r = k + below(&mut self.rng[i], (cand.len() - k) as u64) as usize;
            cand.swap(k, r);
        }
        cand.truncate(take);
        cand
    }

    fn heartbeat(&mut self, i: usize, now: u64, cycle: u64) {
        let now_ms = (now / 1_000_000) as u32;
        self.ticks[i] += 1;
        let interval_ms = (prm!(self, i).score.decay_interval.as_nanos() / 1_000_000).max(1) as u32;
        while now_ms >= self.next_decay_ms[i] {
            for c in self.peers(i) {
                let s = &mut self.score[c];
                s.decay(&prm!(self, i).score);
                if s.mesh_failure == 0.0 && s.behaviour == 0.0 {
                    self.conn[c].flags &= !PENALISED;
                }
            }
            self.decay_invalid(i);
            self.next_decay_ms[i] += interval_ms;
        }
        let attack = self.attack_at(i, now).filter(|a| a.graft_spam || a.iwant_spam > 0).cloned();
        for s in 0..self.per {
            let t = self.topic_of(i, s);
            self.sample_degree(cycle, family_index(t), self.degree(i, s));
            // A GRAFT spammer keeps every peer it can in its mesh instead.
            if !attack.as_ref().is_some_and(|a| a.graft_spam) {
                self.maintain_mesh(i, s, now);
            }
        }
        if let Some(a) = &attack {
            self.attack_heartbeat(i, now, a);
        }
        self.emit_gossip(i, now);
        // The next heartbeat (its time follows from the wheel); its key's sequence number is
        // taken now, as scheduling it would.
        self.hb_seq[i] = self.seq[i];
        self.seq[i] += 1;
    }

    /// Graft up to `want` random peers of topic slot `s` that may join the mesh: connected, of
    /// the topic, not in the mesh or its PRUNE backoff, with a non-negative score (and, with
    /// `outbound_only`, dialled by `i`).
    fn graft_some(&mut self, i: usize, s: usize, want: usize, outbound_only: bool, now: u64) {
        let now_ms = (now / 1_000_000) as u32;
        let per = self.per;
        let chosen = self.choose(i, want, |e, c| {
            (!outbound_only || e.conn[c].flags & OUTBOUND != 0)
                && e.conn[c].shared >> s & 1 != 0
                && e.up(c)
                && !e.in_mesh(i, s, c)
                && e.backoff_until_ms[c * per + s] <= now_ms
                && e.passes(i, c, 0.0, now_ms)
        });
        for &c in &chosen {
            self.graft(i, s, c, now);
        }
        self.scratch = chosen;
    }

    /// v1.1 mesh maintenance of `i`'s topic slot `s`.
    fn maintain_mesh(&mut self, i: usize, s: usize, now: u64) {
        let p = &prm!(self, i);
        let (d, d_low, d_high) = (p.d as usize, p.d_low as usize, p.d_high as usize);
        let now_ms = (now / 1_000_000) as u32;
        let per = self.per;
        // Mesh peers with a negative score leave first, with a backoff.
        if prm!(self, i).scoring {
            let mut negative = std::mem::take(&mut self.scratch);
            negative.clear();
            negative.extend(self.mesh_conns(i, s).filter(|&c| !self.passes(i, c, 0.0, now_ms)));
            for &c in &negative {
                self.prune(i, s, c, now);
            }
            self.scratch = negative;
        }
        let degree = self.degree(i, s);
        if degree < d_low {
            self.graft_some(i, s, d - degree, false, now);
        } else if degree > d_high {
            // Keep the best `retain_scores` by score, then fill up to D at random; prune the rest.
            let mut mesh: Vec<usize> = self.mesh_conns(i, s).collect();
            mesh.sort_by(|&a, &b| self.score_of(i, b, now_ms).total_cmp(&self.score_of(i, a, now_ms)).then(a.cmp(&b)));
            let keep_best = (prm!(self, i).score.retain_scores as usize).min(d);
            let fill = d - keep_best;
            let rest = &mut mesh[keep_best..];
            for k in 0..fill.min(rest.len()) {
                let r = k + below(&mut self.rng[i], (rest.len() - k) as u64) as usize;
                rest.swap(k, r);
            }
            // D_out: if the kept peers have too few outbound ones, outbound peers from the pruned
            // part take the places of the last kept inbound ones.
            let outbound = |c: usize| self.conn[c].flags & OUTBOUND != 0;
            let keep = d.min(mesh.len());
            let mut short =
                (prm!(self, i).d_out as usize).saturating_sub(mesh[..keep].iter().filter(|&&c| outbound(c)).count());
            let mut slot = keep;
            for k in keep..mesh.len() {
                if short == 0 {
                    break;
                }
                if outbound(mesh[k]) {
                    while slot > 0 && outbound(mesh[slot - 1]) {
                        slot -= 1;
                    }
                    if slot == 0 {
                        break;
                    }
                    mesh.swap(slot - 1, k);
                    slot -= 1;
                    short -= 1;
                }
            }
            let pruned: Vec<usize> = mesh[keep..].to_vec();
            for c in pruned {
                self.prune(i, s, c, now);
                if prm!(self, i).peer_exchange {
                    self.offer_peers(i, s, c, now);
                }
            }
        }
        // D_out: a mesh at or above D_low with too few outbound peers grafts outbound ones.
        let degree = self.degree(i, s);
        let outbound = self.mesh_conns(i, s).filter(|&c| self.conn[c].flags & OUTBOUND != 0).count();
        let d_out = prm!(self, i).d_out as usize;
        if degree >= d_low && outbound < d_out {
            self.graft_some(i, s, d_out - outbound, true, now);
        }
        // Opportunistic grafting: if the median mesh score is low, graft peers scoring above it.
        let ticks = prm!(self, i).score.opportunistic_graft_ticks.max(1);
        if prm!(self, i).scoring && self.ticks[i].is_multiple_of(ticks) && self.degree(i, s) > 0 {
            let mut scores: Vec<f64> = self.mesh_conns(i, s).map(|c| self.score_of(i, c, now_ms)).collect();
            scores.sort_by(f64::total_cmp);
            let median = scores[scores.len() / 2];
            if median < prm!(self, i).score.opportunistic_graft_threshold {
                let n = prm!(self, i).score.opportunistic_graft_peers as usize;
                let chosen = self.choose(i, n, |e, c| {
                    e.conn[c].shared >> s & 1 != 0
                        && e.up(c)
                        && !e.in_mesh(i, s, c)
                        && e.backoff_until_ms[c * per + s] <= now_ms
                        && e.score_of(i, c, now_ms) > median
                });
                for &c in &chosen {
                    self.graft(i, s, c, now);
                }
                self.scratch = chosen;
            }
        }
    }

    /// Gossip: IHAVE for messages of `i`'s topics first received within the last
    /// `mcache_gossip` heartbeats, to peers of the topic outside the mesh.
    fn emit_gossip(&mut self, i: usize, now: u64) {
        let d_lazy = prm!(self, i).d_lazy as usize;
        if d_lazy == 0 {
            return; // D_lazy = 0 turns gossip off altogether.
        }
        let now_ms = (now / 1_000_000) as u32;
        let window = prm!(self, i).heartbeat.as_nanos() * prm!(self, i).mcache_gossip as u64;
        for s in 0..self.per {
            let t = self.topic_of(i, s) as usize;
            let pos = self.position(i, s);
            for k in 0..self.recent[t].len() {
                let m = self.recent[t][k] as usize;
                let st = &self.msgs[m];
                let got = st.arrival[pos];
                if got == u64::MAX
                    || st.published_ns + got + window < now
                    || self.has_expired(st.key, st.published_ns, now)
                {
                    continue;
                }
                let from = st.from[pos];
                let ihave = Rpc::about(RpcKind::IHave, &self.message_rpc(m as u32, 0));
                let gossip_ok = |e: &Self, c: usize| {
                    e.conn[c].shared >> s & 1 != 0
                        && e.up(c)
                        && !e.in_mesh(i, s, c)
                        && e.conn[c].peer != from
                        && e.passes(i, c, prm!(e, i).score.gossip_threshold, now_ms)
                };
                // Adaptive gossip (v1.1): max(D_lazy, gossip_factor × eligible).
                let factor = prm!(self, i).score.gossip_factor;
                let chosen =
                    self.choose_of_eligible(i, |eligible| d_lazy.max((factor * eligible as f64) as usize), gossip_ok);
                for &c in &chosen {
                    self.send(i, c, now, ihave);
                }
                self.scratch = chosen;
            }
        }
    }

    /// The canonical key of the next heartbeat, and its wheel.
    fn next_heartbeat(&self) -> Option<((u64, u32, u64), usize)> {
        self.wheels
            .iter()
            .enumerate()
            .filter(|(_, w)| w.start < w.end)
            .map(|(k, w)| {
                let i = w.at;
                ((self.phase[i] + w.cycle * w.period, self.ids[i], self.hb_seq[i]), k)
            })
            .min()
    }

    /// Start loading what the events a few places ahead in the queue will touch, in stages
    /// that follow each event's chain of lookups (global id → local index → row and
    /// per-identity state → connection), so that the cache misses of several events overlap
    /// instead of stalling one after another. Only a hint: results do not depend on it.
    fn prefetch_ahead(&self) {
        if let Some(p) = self.queue.ahead(PREFETCH_IDENTITY)
            && let Some(row) = self.row.get(p.dst as usize)
        {
            let i = p.dst as usize;
            prefetch(row);
            // Only what the event will read: loading more costs memory bandwidth, the real limit
            // at a million identities. `sends`: it may send (and so draw from the identity's
            // stream and take a sequence number).
            let mut sends = true;
            match p.action {
                Action::Arrive(rpc) if rpc.wire_bytes() >= DOWNLOAD_QUEUE_MIN_BYTES => {
                    prefetch(&self.downlink[i]);
                    prefetch(&self.down[i]);
                    prefetch(&self.seq[i]);
                    prefetch(&self.ids[i]);
                    sends = false;
                }
                Action::Arrive(rpc) | Action::Handle { rpc, .. } => {
                    if let Some(counter) = self.recv[i].get(rpc.kind as usize) {
                        prefetch(counter);
                    }
                    let arrival = match rpc.kind {
                        RpcKind::IDontWant => {
                            prefetch(&self.dontwant_head[i]);
                            sends = false;
                            false
                        }
                        // An IHAVE sends an IWANT only for a message not yet received: rare.
                        RpcKind::IHave => {
                            sends = false;
                            true
                        }
                        RpcKind::Message => {
                            prefetch(&self.sent[i][RpcKind::IDontWant as usize]);
                            prefetch(&self.mesh[i * self.per]);
                            true
                        }
                        _ => {
                            prefetch(&self.mesh[i * self.per]);
                            false
                        }
                    };
                    if arrival
                        && rpc.topic == TOPIC_BEACON_BLOCK
                        && let Some((key, m)) = self.last_msg
                        && key == rpc.msg
                        && let Some(at) = self.msgs.get(m as usize).and_then(|st| st.arrival.get(i))
                    {
                        prefetch(at);
                    }
                }
                Action::TxDone { .. } => {
                    prefetch(&self.txq[i]);
                    prefetch(&self.sent[i][RpcKind::Message as usize]);
                }
                _ => prefetch(&self.mesh[i * self.per]),
            }
            if sends {
                prefetch(&self.seq[i]);
                prefetch(&self.rng[i]);
            }
        }
        if let Some(p) = self.queue.ahead(PREFETCH_CONN)
            && let Some(&start) = self.row.get(p.dst as usize)
        {
            let i = p.dst as usize;
            let ring = &self.dontwant[i * DONTWANT_RING..(i + 1) * DONTWANT_RING];
            let c = match p.action {
                Action::Arrive(rpc) | Action::Handle { rpc, .. } if rpc.hint != NO_HINT => {
                    if rpc.kind == RpcKind::IDontWant {
                        prefetch(&ring[self.dontwant_head[i] as usize]);
                    }
                    start as usize + rpc.hint as usize
                }
                Action::TxDone { conn, .. } => {
                    prefetch(&ring[0]);
                    prefetch(&ring[DONTWANT_RING - 1]);
                    if let Some(next) = self.txq[i].front() {
                        prefetch(next);
                    }
                    conn as usize
                }
                Action::Validated(_) => {
                    prefetch(&ring[0]);
                    prefetch(&ring[DONTWANT_RING - 1]);
                    return;
                }
                _ => return,
            };
            if let Some(conn) = self.conn.get(c) {
                prefetch(conn);
                // Messages update the sender's score; other RPCs read it only for a penalised
                // connection.
                if matches!(p.action, Action::Handle { rpc, .. } if rpc.kind == RpcKind::Message) {
                    prefetch(&self.score[c]);
                }
            }
        }
    }

    /// Size of a message on topic `t`.
    fn message_size(&self, t: u8) -> u32 {
        let size = match family_index(t) {
            0 => self.traffic.beacon_block.size,
            1 => self.traffic.attestations.as_ref().map(|a| a.size).unwrap_or_default(),
            2 => self.traffic.data_columns.as_ref().map(|c| c.size).unwrap_or_default(),
            // The tail publishes no aggregates of its own.
            _ => Default::default(),
        };
        size.bytes() as u32
    }

    /// `i` publishes a new message on `t`: to every peer of the topic above the publish
    /// threshold with flood publishing; otherwise to its mesh if it subscribes, or to its fanout
    /// (D peers of the topic, kept for `fanout_ttl` after the last publish) if it does not.
    fn publish(&mut self, i: usize, now: u64, t: u8) {
        let key = MsgKey::new(self.ids[i], self.published[i]);
        self.published[i] += 1;
        let rpc = Rpc {
            kind: RpcKind::Message,
            topic: t,
            hops: 1,
            msg: key,
            size: self.message_size(t),
            published_ns: now,
            backoff_ms: 0,
            upload_us: 0,
            hint: NO_HINT,
        };
        let m = self.msg_slot(&rpc);
        self.msgs[m as usize].publisher = i as u32;
        let now_ms = (now / 1_000_000) as u32;
        let threshold = prm!(self, i).score.publish_threshold;
        let slot = self.topic_slot(i, t);
        if let Some(s) = slot {
            let pos = self.position(i, s);
            self.first_arrival(m, pos, now);
        }
        let base = self.row[i] as usize;
        self.msgs[m as usize].publisher_peers =
            self.peers(i).filter(|&c| self.up(c) && self.peer_subscribes(i, c, t)).count() as u16;
        let targets: u64 = if prm!(self, i).flood_publish {
            self.peers(i)
                .filter(|&c| self.up(c) && self.peer_subscribes(i, c, t) && self.passes(i, c, threshold, now_ms))
                .fold(0, |mask, c| mask | 1 << (c - base))
        } else if let Some(s) = slot {
            self.mesh[i * self.per + s]
        } else {
            let ttl = prm!(self, i).fanout_ttl.as_nanos();
            let fresh = self.fanout.get(&(i as u32, t)).filter(|&&(_, last)| last + ttl >= now).map(|&(mask, _)| mask);
            let mask = match fresh {
                Some(mask) => mask,
                None => {
                    let d = prm!(self, i).d as usize;
                    let chosen = self.choose(i, d, |e, c| {
                        e.up(c) && e.peer_subscribes(i, c, t) && e.passes(i, c, threshold, now_ms)
                    });
                    let mask = chosen.iter().fold(0u64, |mask, &c| mask | 1 << (c - base));
                    self.scratch = chosen;
                    mask
                }
            };
            self.fanout.insert((i as u32, t), (mask, now));
            mask
        };
        for c in bits(base, targets) {
            self.send(i, c, now, rpc);
        }
    }

    fn forward(&mut self, i: usize, now: u64, m: u32) {
        if self.attack_at(i, now).is_some_and(|a| a.withhold) {
            return;
        }
        // Validated just as it expired: it goes no further.
        let Some(st) = self.msgs.get(m as usize).filter(|st| !self.has_expired(st.key, st.published_ns, now)) else {
            return;
        };
        let Some(s) = self.topic_slot(i, st.topic) else { return };
        let pos = self.position(i, s);
        let (from, hops) = (st.from[pos], st.hops[pos].saturating_add(1));
        let source = if prm!(self, i).forward_to_source || st.key.is_client() { NONE } else { st.key.publisher() };
        let rpc = self.message_rpc(m, hops);
        for c in self.mesh_conns(i, s) {
            let ring = &self.dontwant[i * DONTWANT_RING..(i + 1) * DONTWANT_RING];
            let peer = self.conn[c].peer;
            if peer != from && peer != source && !ring.contains(&(peer, m)) {
                self.send(i, c, now, rpc);
            }
        }
    }

    fn handle(&mut self, i: usize, now: u64, src: u32, rpc: Rpc) -> Result<(), GossipError> {
        let hinted = self.row[i] as usize + rpc.hint as usize;
        let found = if rpc.hint != NO_HINT && hinted < self.row[i + 1] as usize && self.conn[hinted].peer == src {
            Some(hinted)
        } else {
            self.slot_of(i, src)
        };
        let Some(conn) = found else {
            if prm!(self, i).peer_exchange || self.discovery.is_some() {
                // With peer exchange or discovery, connections come and go: a stranger may dial (learnt by
                // peer exchange), and RPCs may still be in flight on a connection closed since.
                if rpc.kind == RpcKind::Connect {
                    self.accept_stranger(i, src, now);
                }
                return Ok(());
            }
            return Err(GossipError::BadEvent {
                host: self.ids[i],
                src,
                detail: "an RPC from an identity that is not a peer".into(),
            });
        };
        let now_ms = (now / 1_000_000) as u32;
        match rpc.kind {
            RpcKind::Connect if self.refuses_peer(i, conn, now) => {
                self.send_on(i, conn, now, Rpc::control(RpcKind::Disconnect, 0));
                return Ok(());
            }
            RpcKind::Connect => {
                self.conn[conn].flags &= !DOWN;
                self.send_on(i, conn, now, Rpc::control(RpcKind::Accept, 0));
                self.peer_up(i, now);
                return Ok(());
            }
            RpcKind::PeerExchange if self.up(conn) => {
                self.recv[i][rpc.kind as usize] += rpc.wire_bytes();
                let p = rpc.msg.0 as u32;
                if prm!(self, i).peer_exchange
                    && p != self.ids[i]
                    && self.slot_of(i, p).is_none()
                    && self.connected(i) < self.max_peers
                    && let Some(c) = self.take_slot(i, p)
                {
                    self.conn[c].flags |= OUTBOUND;
                    self.send_on(i, c, now, Rpc::control(RpcKind::Connect, 0));
                }
                return Ok(());
            }
            RpcKind::Accept => {
                self.conn[conn].flags &= !DOWN;
                self.peer_up(i, now);
                return Ok(());
            }
            RpcKind::Disconnect => {
                for s in 0..self.per {
                    self.leave_mesh(i, s, conn, now_ms);
                }
                self.conn[conn].flags |= DOWN;
                self.free_slot(i, conn);
                // A dial refused or a peer gone: the peer manager dials the next it knows of.
                self.dial_discovered(i, now);
                return Ok(());
            }
            // Whatever was in flight on a closed connection is lost with it.
            _ if !self.up(conn) => return Ok(()),
            _ => {}
        }
        self.recv[i][rpc.kind as usize] += rpc.wire_bytes();
        if !self.passes(i, conn, prm!(self, i).score.graylist_threshold, now_ms) {
            return Ok(()); // graylisted: ignored
        }
        if rpc.kind.is_about_a_message() && self.has_expired(rpc.msg, rpc.published_ns, now) {
            self.expired_rpcs[i] = self.expired_rpcs[i].saturating_add(1);
            return Ok(());
        }
        let sp = &prm!(self, i).score;
        let (cap2, cap3, window) =
            (sp.first_deliveries_cap as f32, sp.mesh_deliveries_cap as f32, sp.mesh_deliveries_window.as_nanos());
        let slot = self.topic_slot(i, rpc.topic);
        match rpc.kind {
            RpcKind::Message if rpc.msg.is_invalid() => self.receive_invalid(i, now, src),
            RpcKind::Message => {
                // A message on a topic this identity does not subscribe to (its own fanout
                // publication coming back) is dropped.
                let Some(s) = slot else { return Ok(()) };
                let pos = self.position(i, s);
                let scored = s == 0;
                let in_mesh = self.in_mesh(i, s, conn);
                let m = self.msg_slot(&rpc);
                let st = &mut self.msgs[m as usize];
                if st.arrival[pos] != u64::MAX {
                    st.dups[pos] = st.dups[pos].saturating_add(1);
                    // A near-first copy from a mesh peer counts as a mesh delivery (P₃).
                    if scored && in_mesh && now <= st.published_ns + st.arrival[pos] + window {
                        let e = &mut self.score[conn];
                        e.mesh_deliveries = (e.mesh_deliveries + 1.0).min(cap3);
                    }
                    return Ok(());
                }
                st.from[pos] = src;
                st.hops[pos] = rpc.hops;
                self.first_arrival(m, pos, now);
                if scored {
                    let e = &mut self.score[conn];
                    e.first_deliveries = (e.first_deliveries + 1.0).min(cap2);
                    if in_mesh {
                        e.mesh_deliveries = (e.mesh_deliveries + 1.0).min(cap3);
                    }
                }
                if let Some(t) = prm!(self, i).idontwant_threshold
                    && rpc.size as u64 >= t.bytes()
                {
                    for c in self.mesh_conns(i, s) {
                        if c != conn {
                            self.send(i, c, now, Rpc::about(RpcKind::IDontWant, &rpc));
                        }
                    }
                }
                let at = now + prm!(self, i).validation_delay.as_nanos();
                self.self_event(i, at, Action::Validated(m));
            }
            RpcKind::IHave | RpcKind::IWant if !self.passes(i, conn, prm!(self, i).score.gossip_threshold, now_ms) => {
                // Gossip from a peer below the gossip threshold is ignored.
            }
            RpcKind::IHave => {
                let Some(s) = slot else { return Ok(()) };
                let pos = self.position(i, s);
                let m = self.msg_slot(&rpc) as usize;
                let st = &mut self.msgs[m];
                // Ask once per follow-up period: an unanswered IWANT may be retried with the next
                // peer that advertises the message.
                let followup = IWANT_FOLLOWUP_NS;
                if st.arrival[pos] == u64::MAX && (st.requested[pos] == u64::MAX || st.requested[pos] + followup <= now)
                {
                    st.requested[pos] = now;
                    self.send(i, conn, now, Rpc::about(RpcKind::IWant, &rpc));
                }
            }
            RpcKind::IWant if self.attack_at(i, now).is_some_and(|a| a.withhold) => {}
            RpcKind::IWant => {
                if let Some(&m) = self.msg_slot.get(&rpc.msg) {
                    let st = &self.msgs[m as usize];
                    let window = prm!(self, i).heartbeat.as_nanos() * prm!(self, i).mcache_len as u64;
                    let got = if st.publisher == i as u32 {
                        Some((0, 0))
                    } else {
                        slot.map(|s| self.position(i, s))
                            .filter(|&pos| st.arrival[pos] != u64::MAX)
                            .map(|pos| (st.arrival[pos], st.hops[pos]))
                    };
                    if let Some((arrival, hops)) = got
                        && st.published_ns + arrival + window >= now
                        && self.may_retransmit(i, conn, m)
                    {
                        let r = self.message_rpc(m, hops.saturating_add(1));
                        self.send(i, conn, now, r);
                    }
                }
            }
            RpcKind::IDontWant => {
                let m = self.msg_slot(&rpc);
                let h = self.dontwant_head[i] as usize;
                self.dontwant[i * DONTWANT_RING + h] = (src, m);
                self.dontwant_head[i] = ((h + 1) % DONTWANT_RING) as u8;
            }
            RpcKind::Graft => {
                let c = conn;
                let Some(s) = slot else {
                    // Not our topic: tell the peer, without a backoff of our own.
                    self.send(i, c, now, Rpc::control(RpcKind::Prune, rpc.topic));
                    return Ok(());
                };
                let backoff = self.backoff_until_ms[c * self.per + s];
                if self.in_mesh(i, s, c) {
                    // Already in our mesh: nothing to do.
                } else if backoff > now_ms {
                    // GRAFT within our backoff: refuse and penalise (P₇).
                    self.graft_in_backoff[i] += 1;
                    self.score[c].behaviour += 1.0;
                    self.conn[c].flags |= PENALISED;
                    let mut r = Rpc::control(RpcKind::Prune, rpc.topic);
                    r.backoff_ms = backoff - now_ms;
                    self.send(i, c, now, r);
                    if prm!(self, i).scoring {
                        self.disconnect_if_below(i, c, now);
                    }
                } else if !self.passes(i, c, 0.0, now_ms) {
                    // A negative peer is refused, and kept out for a backoff.
                    self.prune(i, s, c, now);
                } else if self.degree(i, s) >= prm!(self, i).d_high as usize && self.conn[c].flags & OUTBOUND == 0 {
                    // A full mesh takes no more inbound peers (only outbound ones, for D_out).
                    self.prune(i, s, c, now);
                } else {
                    self.join_mesh(i, s, c, now_ms);
                }
            }
            RpcKind::Prune => {
                let Some(s) = slot else { return Ok(()) };
                let c = conn;
                self.leave_mesh(i, s, c, now_ms);
                let until = now_ms.saturating_add(rpc.backoff_ms);
                let b = &mut self.backoff_until_ms[c * self.per + s];
                *b = (*b).max(until);
            }
            // Handled above.
            RpcKind::Connect | RpcKind::Accept | RpcKind::Disconnect | RpcKind::PeerExchange => {}
        }
        Ok(())
    }

    /// A `Connect` from an identity that is not a peer: accepted into a free peer-exchange slot
    /// below the connection target, refused with `Disconnect` otherwise.
    fn accept_stranger(&mut self, i: usize, src: u32, now: u64) {
        if self.connected(i) < self.max_peers
            && let Some(c) = self.take_slot(i, src)
        {
            self.conn[c].flags &= !DOWN;
            self.send_on(i, c, now, Rpc::control(RpcKind::Accept, 0));
            self.peer_up(i, now);
        } else {
            self.refuse(i, src, now);
        }
    }

    /// `i` refuses a dial from `src` (it has no room, or it is offline and the refusal stands
    /// for the connection its host resets).
    fn refuse(&mut self, i: usize, src: u32, now: u64) {
        let path = self.net.path_index(self.ids[i], src);
        let to = Conn { peer: src, at: self.local[src as usize], path, shared: 0, flags: 0, rev: NO_HINT };
        self.send_over(i, to, now, Rpc::control(RpcKind::Disconnect, 0));
    }

    fn sample_degree(&mut self, period: u64, family: usize, degree: usize) {
        let p = period as usize;
        if self.degree_samples.len() <= p {
            self.degree_samples.resize(p + 1, Vec::new());
        }
        let row = &mut self.degree_samples[p];
        if row.is_empty() {
            row.resize(FAMILIES.len() * DEGREES, 0);
        }
        row[family * DEGREES + degree.min(DEGREES - 1)] += 1;
    }
}

impl Engine for GossipEngine {
    fn next_event_time(&self) -> SimTime {
        let q = self.queue.min_time().unwrap_or(u64::MAX);
        let h = self.next_heartbeat().map_or(u64::MAX, |(k, _)| k.0);
        SimTime::from_nanos(q.min(h).min(self.discovery_next()))
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        if let Some(e) = self.table_error.take() {
            return Err(format!("gossip tables: {e}").into());
        }
        let mut n = self.run_discovery(end, outbox)?;
        let end = end.as_nanos();
        // The next heartbeat changes only when a heartbeat runs (its wheel advances and its
        // identity takes the next cycle's sequence number).
        let mut hb = self.next_heartbeat();
        let mut hb_ran = false;
        loop {
            if hb_ran {
                hb = self.next_heartbeat();
                hb_ran = false;
            }
            // With a heartbeat due, look no further than its time: the queue then stays at or
            // before it, and what the heartbeat sends lands in the queue's ring.
            let next = match hb {
                Some(((time, ..), _)) => self.queue.peek_until(time).copied(),
                None => self.queue.peek().copied(),
            };
            let ev = match (next, hb) {
                (Some(ev), Some((h, _))) if ev.key() < h => ev,
                (Some(ev), None) => ev,
                (_, Some(((time, src, seq), k))) => {
                    if time >= end {
                        break;
                    }
                    hb_ran = true;
                    let w = &mut self.wheels[k];
                    let (i, cycle) = (w.at, w.cycle);
                    w.at += 1;
                    if w.at == w.end {
                        w.at = w.start;
                        w.cycle += 1;
                        self.expire_recent(time);
                        if !self.keep_messages {
                            self.retire(time);
                        }
                    }
                    Pending { time, src, seq, dst: i as u32, action: Action::Heartbeat { cycle } }
                }
                (None, None) => break,
            };
            if ev.time >= end {
                break;
            }
            if !matches!(ev.action, Action::Heartbeat { .. }) {
                self.queue.pop();
                self.prefetch_ahead();
            }
            n += 1;
            let i = ev.dst as usize;
            if self.churn.is_some() && !self.online[i] {
                // An offline identity does nothing; what reaches it is lost. Its heartbeat still
                // takes its sequence number, so the wheel keeps its keys.
                match ev.action {
                    Action::Heartbeat { .. } => {
                        self.hb_seq[i] = self.seq[i];
                        self.seq[i] += 1;
                    }
                    Action::GoOnline => self.go_online(i, ev.time),
                    // A dial from a peer that found it: refused, so the dialler tries the next.
                    Action::Arrive(rpc) if rpc.kind == RpcKind::Connect && self.discovery.is_some() => {
                        self.refuse(i, ev.src, ev.time);
                    }
                    Action::Arrive(rpc) | Action::Handle { rpc, .. } if !rpc.kind.is_connection() => {
                        self.dropped_offline[i] += 1;
                    }
                    Action::TxDone { .. } => self.start_tx(i, ev.time),
                    Action::FairTx => self.fair_tx(i, ev.time),
                    Action::FairWindow { slot } => self.fair_window(i, ev.time, slot),
                    Action::PacketArrive { token } | Action::PacketIn { token } => {
                        self.packets.remove(&token);
                    }
                    Action::Discovered { token } => {
                        if let Some(p) = self.discovery.as_mut() {
                            p.drop_found(token);
                        }
                    }
                    Action::PublishInvalid => self.publish_invalid(i, ev.time, false),
                    _ => {}
                }
                continue;
            }
            match ev.action {
                Action::GoOffline => self.go_offline(i, ev.time),
                Action::GoOnline => {}
                Action::Heartbeat { cycle } => self.heartbeat(i, ev.time, cycle),
                Action::Publish { topic } => self.publish(i, ev.time, topic),
                Action::Validated(m) => self.forward(i, ev.time, m),
                Action::TxDone { rpc, conn } => {
                    self.send_on(i, conn as usize, ev.time, rpc);
                    self.start_tx(i, ev.time);
                }
                Action::FairTx => self.fair_tx(i, ev.time),
                Action::FairWindow { slot } => self.fair_window(i, ev.time, slot),
                Action::FairRx => self.fair_rx(i, ev.time)?,
                Action::Arrive(rpc) => {
                    let bytes = rpc.wire_bytes();
                    let download = prm!(self, i).download;
                    if bytes >= DOWNLOAD_QUEUE_MIN_BYTES && download == LinkQueue::Fair {
                        self.fair_receive(i, ev.time, ev.src, rpc);
                    } else if bytes >= DOWNLOAD_QUEUE_MIN_BYTES {
                        let bw = self.down_bw(i, ev.time);
                        let spread = if download == LinkQueue::Pipelined { rpc.upload_us as u64 * 1000 } else { 0 };
                        let done = self.downlink[i].stream(ev.time, spread, bytes, bw);
                        let seq = self.seq[i];
                        self.seq[i] += 1;
                        self.queue.push(Pending {
                            time: done,
                            src: self.ids[i],
                            seq,
                            dst: ev.dst,
                            action: Action::Handle { rpc, from: ev.src },
                        });
                    } else {
                        self.handle(i, ev.time, ev.src, rpc)?;
                    }
                }
                Action::Handle { rpc, from } => self.handle(i, ev.time, from, rpc)?,
                Action::PacketArrive { token } => self.packet_arrives(i, ev.time, token),
                Action::PacketIn { token } => self.packet_in(i, ev.time, token),
                Action::ClientTimer => self.client_timer(i, ev.time),
                Action::DialClient { k } => self.dial_client(i, ev.time, k),
                Action::Discovered { token } => self.dial_found(i, ev.time, token),
                Action::PublishInvalid => self.publish_invalid(i, ev.time, true),
                Action::Rejected { from } => self.reject(i, ev.time, from),
            }
        }
        if end >= self.end_ns && !self.keep_messages {
            self.retire(end);
        }
        self.flush_remote(outbox);
        for (shard, event) in self.client_out.drain(..) {
            outbox.push(shard, event);
        }
        Ok(n)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        self.deliver_discovery(events)?;
        // By reference, dropping the events (atomic reference-count updates of their batch) in
        // one go at the end rather than between queue insertions: see `flush_remote`.
        for e in events.iter() {
            let (dst, src) = (e.dst_host.0, e.src_host.0);
            let bad = |detail: String| GossipError::BadEvent { host: dst, src, detail };
            if e.kind == HOT_MESSAGE {
                self.store_hot(&e.payload, e.deliver_time.as_nanos())
                    .map_err(|d| bad(format!("client message: {d}")))?;
                continue;
            }
            if e.kind != GOSSIP_EVENT_KIND && e.kind != PACKET {
                return Err(Box::new(bad(format!("event kind {}", e.kind))));
            }
            if dst as usize >= self.local.len() || self.local[dst as usize] == NONE {
                return Err(Box::new(bad(format!("not an identity of {}", self.me))));
            }
            if e.kind == PACKET {
                let i = self.local[dst as usize];
                let count = self.packets_in.entry(i).or_default();
                *count = (count.0 + 1, count.1 + e.payload.len() as u64);
                if self.boundary.is_some() {
                    self.queue_packet(e, i);
                }
                continue;
            }
            let rpc = Rpc::decode(&e.payload).map_err(|d| bad(d.to_string()))?;
            if rpc.topic as usize >= TOPIC_COUNT {
                return Err(Box::new(bad(format!("unknown topic {}", rpc.topic))));
            }
            if rpc.kind == RpcKind::PeerExchange && rpc.msg.0 >= self.local.len() as u64 {
                return Err(Box::new(bad(format!("peer exchange names unknown identity {}", rpc.msg.0))));
            }
            if rpc.kind != RpcKind::Graft && rpc.kind != RpcKind::Prune && rpc.published_ns > e.deliver_time.as_nanos()
            {
                return Err(Box::new(bad("a message published after it was delivered".into())));
            }
            self.queue.push(Pending {
                time: e.deliver_time.as_nanos(),
                src,
                seq: e.src_seq,
                dst: self.local[dst as usize],
                action: Action::Arrive(rpc),
            });
        }
        events.clear();
        Ok(())
    }

    fn take_tables(&mut self) -> Vec<Table> {
        let mut tables = self.retire_next().unwrap_or_default();
        tables.extend(self.discovery_tables());
        tables
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        if let Some(e) = self.table_error.take() {
            return Err(format!("gossip tables: {e}").into());
        }
        let mut order: Vec<usize> = self.msgs.slots().collect();
        order.sort_by_key(|&m| self.msgs[m].key);
        let mut digest = self.retired_digest;
        let mean_scores = self.mean_mesh_scores();
        let mut rec = Vec::new();
        for (i, &h) in self.ids.iter().enumerate() {
            rec.clear();
            rec.extend_from_slice(b"gossip");
            rec.extend_from_slice(&h.to_be_bytes());
            for s in 0..self.per {
                rec.extend_from_slice(&(self.degree(i, s) as u16).to_be_bytes());
            }
            for k in 0..RPC_KINDS {
                rec.extend_from_slice(&self.sent[i][k].to_be_bytes());
                rec.extend_from_slice(&self.recv[i][k].to_be_bytes());
            }
            rec.extend_from_slice(&self.lost[i].to_be_bytes());
            rec.extend_from_slice(&self.graft_in_backoff[i].to_be_bytes());
            rec.extend_from_slice(&mean_scores[i].to_bits().to_be_bytes());
            rec.extend_from_slice(&self.cancelled[i].to_be_bytes());
            rec.extend_from_slice(&self.offline_ns(i).to_be_bytes());
            rec.extend_from_slice(&self.dropped_offline[i].to_be_bytes());
            rec.extend_from_slice(&(self.connected(i) as u32).to_be_bytes());
            digest.add_record(&rec);
        }
        for (&i, &(packets, bytes)) in &self.packets_in {
            let record =
                [&b"packets"[..], &self.ids[i as usize].to_be_bytes(), &packets.to_be_bytes(), &bytes.to_be_bytes()];
            digest.add_record(&record.concat());
        }
        for (i, &n) in self.expired_rpcs.iter().enumerate().filter(|(_, n)| **n > 0) {
            digest.add_record(&[&b"expired"[..], &self.ids[i].to_be_bytes(), &n.to_be_bytes()].concat());
        }
        for (i, (&n, &d)) in self.attack.invalid_in.iter().zip(&self.attack.disconnects).enumerate() {
            if n + d > 0 {
                digest.add_record(
                    &[&b"attack"[..], &self.ids[i].to_be_bytes(), &n.to_be_bytes(), &d.to_be_bytes()].concat(),
                );
            }
        }
        let links = self.attacker_links();
        for l in &links {
            let ids = [l.node.to_be_bytes(), l.attacker.to_be_bytes()].concat();
            let flags = [l.connected as u8, l.in_mesh as u8];
            digest.add_record(&[&b"attack link"[..], &ids, &l.score.to_bits().to_be_bytes(), &flags].concat());
        }
        for &m in &order {
            digest.add(&self.arrival_digest(m));
        }
        let samples: Vec<((u64, u8, u16), u64)> = self
            .degree_samples
            .iter()
            .enumerate()
            .flat_map(|(p, row)| {
                row.iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(move |(k, c)| ((p as u64, (k / DEGREES) as u8, (k % DEGREES) as u16), *c))
            })
            .collect();
        let mut by_id: Vec<usize> = (0..self.ids.len()).collect();
        by_id.sort_by_key(|&i| self.ids[i]);
        let mut tables = tables::build(self, &order, &by_id, &samples, &mean_scores)?;
        if !links.is_empty() {
            tables.push(tables::attacker_links(&links)?);
        }
        if !self.packets_in.is_empty() {
            let accepted = |id: u32| self.boundary.as_ref().map_or(0, |b| b.accepted(id));
            let rows = self.packets_in.iter().map(|(&i, &c)| (self.ids[i as usize], c, accepted(self.ids[i as usize])));
            tables.push(tables::packets(rows)?);
        }
        if let Some(e) = &self.eth2 {
            tables.push(e.table()?);
        }
        if let Some(out) = self.finish_discovery(&by_id)? {
            digest.add(&out.digest);
            tables.extend(out.tables);
        }
        self.release();
        Ok(EngineOutput { digest, tables })
    }
}

impl GossipEngine {
    /// One digest record per (identity, message `m`) received: whether a shard has heard of a
    /// message at all depends on the partition, so messages nobody here received leave no
    /// trace.
    fn arrival_digest(&self, m: usize) -> Digest {
        let mut digest = Digest::EMPTY;
        let mut rec = Vec::new();
        let st = &self.msgs[m];
        for (pos, &i) in self.members[st.topic as usize].iter().enumerate() {
            if st.arrival[pos] == u64::MAX {
                continue;
            }
            rec.clear();
            rec.extend_from_slice(b"arrival");
            rec.extend_from_slice(&self.ids[i as usize].to_be_bytes());
            rec.extend_from_slice(&st.key.0.to_be_bytes());
            rec.extend_from_slice(&st.arrival[pos].to_be_bytes());
            rec.extend_from_slice(&st.from[pos].to_be_bytes());
            rec.push(st.hops[pos]);
            rec.extend_from_slice(&st.dups[pos].to_be_bytes());
            digest.add_record(&rec);
        }
        digest
    }

    /// Free the simulation state once the results are out: the shard's report is encoded and
    /// gathered next, and at a million identities the state is most of the process's memory.
    fn release(&mut self) {
        self.msgs = Messages::default();
        self.msg_slot = BTreeMap::new();
        self.recent = Vec::new();
        self.members = Vec::new();
        self.conn = Vec::new();
        self.score = Vec::new();
        self.backoff_until_ms = Vec::new();
        self.row = Vec::new();
        self.mesh = Vec::new();
        self.sub_pos = Vec::new();
        self.rng = Vec::new();
        self.txq = Vec::new();
        self.fair = Vec::new();
        self.parked = Vec::new();
        self.parked_free = Vec::new();
        self.last_copy_ns = Vec::new();
        self.fair_down = Vec::new();
        self.downlink = Vec::new();
        self.dontwant = Vec::new();
        self.sent = Vec::new();
        self.recv = Vec::new();
        self.queue = CalendarQueue::new(0, 1);
        self.local = Vec::new();
        self.fanout = BTreeMap::new();
    }
}

impl GossipEngine {
    /// Local identities' global ids.
    pub(crate) fn ids(&self) -> &[u32] {
        &self.ids
    }
    /// The name of identity `id` (a global host id): its group's name and index.
    pub(crate) fn host_name(&self, id: u32) -> String {
        self.net.directory.name_of(id)
    }
    /// The simulated calendar time at time zero, Unix ns.
    pub(crate) fn start_unix_ns(&self) -> u64 {
        self.start_unix_ns
    }
    /// The profile name of local identity `i`.
    pub(crate) fn profile(&self, i: usize) -> &str {
        &self.profile_names[self.profile_of[i] as usize]
    }
    pub(crate) fn sent(&self) -> &[[u64; RPC_KINDS]] {
        &self.sent
    }
    pub(crate) fn recv(&self) -> &[[u64; RPC_KINDS]] {
        &self.recv
    }
    /// Mesh degree of local identity `i` on `beacon_block`.
    pub(crate) fn block_mesh_degree(&self, i: usize) -> u16 {
        self.degree(i, 0) as u16
    }
    pub(crate) fn lost(&self) -> &[u64] {
        &self.lost
    }
    pub(crate) fn graft_in_backoff(&self) -> &[u32] {
        &self.graft_in_backoff
    }
    pub(crate) fn expired_rpcs(&self) -> &[u32] {
        &self.expired_rpcs
    }

    pub(crate) fn cancelled(&self) -> &[u32] {
        &self.cancelled
    }
    /// Time local identity `i` spent offline, up to the end of the run.
    pub(crate) fn offline_ns(&self, i: usize) -> u64 {
        self.offline_ns[i] + if self.online[i] { 0 } else { self.end_ns.saturating_sub(self.left_at[i]) }
    }
    pub(crate) fn dropped_offline(&self) -> &[u32] {
        &self.dropped_offline
    }
    /// Outbound peers in local identity `i`'s `beacon_block` mesh.
    pub(crate) fn block_mesh_outbound(&self, i: usize) -> u16 {
        self.mesh_conns(i, 0).filter(|&c| self.conn[c].flags & OUTBOUND != 0).count() as u16
    }
    /// Connections of local identity `i` that are up at the end.
    pub(crate) fn connections(&self, i: usize) -> u32 {
        self.connected(i) as u32
    }
    /// Local subscribers of topic `t`, in local order (the positions of message columns).
    pub(crate) fn members(&self, t: u8) -> &[u32] {
        &self.members[t as usize]
    }
    /// Identities subscribed to topic `t` in the whole network.
    pub(crate) fn subscribers(&self, t: u8) -> u32 {
        self.subs.subscribers(t)
    }
    /// Mean score of each identity's `beacon_block` mesh peers at the end of the simulation (0
    /// with an empty mesh).
    pub(crate) fn mean_mesh_scores(&self) -> Vec<f64> {
        let now_ms = (self.end_ns / 1_000_000) as u32;
        (0..self.ids.len())
            .map(|i| {
                let s: Vec<f64> = self.mesh_conns(i, 0).map(|c| self.score_of(i, c, now_ms)).collect();
                if s.is_empty() { 0.0 } else { s.iter().sum::<f64>() / s.len() as f64 }
            })
            .collect()
    }
    pub(crate) fn slot_start_ns(&self, slot: u64) -> u64 {
        match &self.eth2 {
            Some(e) => e.domain.slot_start_ns(slot),
            None => self.traffic.start.as_nanos() + slot * self.traffic.slot.as_nanos(),
        }
    }

    /// The slot under way at `t`: the chain's in an Ethereum domain, else the traffic's.
    pub(crate) fn slot_at(&self, t: u64) -> u64 {
        match &self.eth2 {
            Some(e) => e.domain.slot_at(t),
            None => self.traffic_slot(t),
        }
    }

    /// The traffic model's slot under way at `t` (`[traffic] start` and `slot`).
    pub(crate) fn traffic_slot(&self, t: u64) -> u64 {
        t.saturating_sub(self.traffic.start.as_nanos()) / self.traffic.slot.as_nanos().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GossipSpec;
    use thermocline_models::directory::{HostGroupSpec, HostKind};
    use thermocline_models::network::NetworkSpec;

    fn engine(shard: u32) -> GossipEngine {
        engine_for(2, shard, 60, false)
    }

    /// The engine of `shard` of `shards`, for a run of `end_s` seconds, keeping or retiring
    /// expired messages.
    fn engine_for(shards: u32, shard: u32, end_s: u64, keep_messages: bool) -> GossipEngine {
        let hosts = [HostGroupSpec {
            name: "t".into(),
            kind: HostKind::Surrogate,
            count: 40,
            location: None,
            locations: None,
            bandwidth: None,
            profile: None,
            load: None,
        }];
        let spec =
            NetworkSpec { topology: thermocline_models::network::TopologyKind::SingleSwitch, ..Default::default() };
        let net = NetworkModel::build(&spec, None, &hosts).unwrap();
        let partition = Partition::compute(&net.directory, &net.routes, shards).unwrap();
        let graph = PeerGraph::build(40, 6, 20, 1);
        let params = GossipSpec::default().params_for("ethereum").unwrap();
        let subscriptions = Subscriptions::compute(40, &TrafficSpec::default(), 1, false);
        let setup = GossipSetup {
            profiles: vec![("ethereum".into(), params)],
            traffic: TrafficSpec::default(),
            net,
            partition,
            graph: &graph,
            subscriptions: &subscriptions,
            seed: 1,
            end: SimTime::from_nanos(end_s * 1_000_000_000),
            max_peers: 20,
            px_slots: 0,
            client_slots: 0,
            start_unix_ns: 0,
            runahead_ns: 0,
            message_ids: GossipSpec::default().message_id_fns().unwrap(),
            client_dials: &[],
            lifetime: SimDuration::from_secs(60),
            keep_messages,
            eth2: None,
            rules: Rules::default(),
            discovery: None,
            outbound_peers: 8,
            subnet_peers: 0,
            attackers: Vec::new(),
        };
        GossipEngine::new(setup, ShardId(shard)).unwrap()
    }

    /// Run a one-shard engine to its end in 1-s windows, taking what it hands out as the window
    /// loop does: its digest, the tables it handed out, the messages it held one second before
    /// the end and at the end, and the arrival rows among its final tables.
    fn run_to_end(mut e: GossipEngine, end_s: u64) -> (Digest, Vec<Table>, usize, usize, usize) {
        let mut early = Vec::new();
        let mut held_before_end = 0;
        for t in 1..=end_s {
            e.run_until(SimTime::from_nanos(t * 1_000_000_000), &mut Outbox::new(1)).unwrap();
            loop {
                let tables = e.take_tables();
                if tables.is_empty() {
                    break;
                }
                early.extend(tables);
            }
            if t == end_s - 1 {
                held_before_end = e.msgs.slots().count();
            }
        }
        let held = e.msgs.slots().count();
        let out = e.finish().unwrap();
        let rows = out
            .tables
            .iter()
            .filter(|t| t.name == "gossip_arrivals")
            .map(|t| thermocline_models::metrics::concat_tables("a", &[t]).unwrap().1[0].num_rows())
            .sum();
        (out.digest, early, held_before_end, held, rows)
    }

    #[test]
    fn expired_messages_are_retired_during_the_run_with_the_same_results_as_kept_ones() {
        let end = 200;
        let (kept, kept_early, kept_before, _, kept_rows) = run_to_end(engine_for(1, 0, end, true), end);
        let (retired, early, before, held, rows) = run_to_end(engine_for(1, 0, end, false), end);
        assert_eq!(kept, retired, "retiring changes nothing but memory");
        assert!(kept_early.is_empty());
        // One block per 12-s slot from 10 s on; those published 60 s or more before the last
        // retirement are gone, and their rows were handed out, one message at a time.
        assert!(kept_before >= 15, "{kept_before} messages kept");
        assert!(before <= 7 && before > 0, "{before} messages still held before the end");
        // At the end nothing can change: every message goes out before the final tables.
        assert_eq!(held, 0);
        assert_eq!(rows, 0, "no arrival rows left for the end");
        assert!(kept_rows > 0);
        let arrivals = early.iter().filter(|t| t.name == "gossip_arrivals").count();
        assert_eq!(arrivals, kept_before, "one arrival table per message");
    }

    #[test]
    fn rpcs_about_an_expired_message_are_ignored_and_counted() {
        let mut e = engine_for(1, 0, 60, false);
        let rpc = Rpc {
            kind: RpcKind::Message,
            topic: 0,
            hops: 1,
            msg: MsgKey::new(e.ids[1], 0),
            size: 1000,
            published_ns: 1,
            backoff_ms: 0,
            upload_us: 0,
            hint: NO_HINT,
        };
        let peer = e.conn[e.row[0] as usize].peer;
        e.handle(0, 60_000_000_001, peer, rpc).unwrap();
        assert_eq!(e.expired_rpcs[0], 1);
        assert_eq!(e.msgs.slots().count(), 0, "an expired message leaves no state");
        e.handle(0, 60_000_000_000, peer, rpc).unwrap();
        assert_eq!(e.expired_rpcs[0], 1, "a copy within the lifetime is not expired");
        assert_eq!(e.msgs.slots().count(), 1);
    }

    fn event(dst: u32, src: u32, payload: Vec<u8>, at: u64) -> Event {
        Event {
            deliver_time: SimTime::from_nanos(at),
            src_host: HostId(src),
            src_seq: 0,
            dst_host: HostId(dst),
            kind: GOSSIP_EVENT_KIND,
            payload: bytes::Bytes::from(payload),
        }
    }

    #[test]
    fn exponential_durations_have_the_asked_mean_and_repeat() {
        let family = StreamFamily::new(5, "churn");
        let mut rng = family.compact(1);
        let draws: Vec<u64> = (0..100_000).map(|_| exponential_ns(&mut rng, 1_000_000)).collect();
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        assert!((mean / 1e6 - 1.0).abs() < 0.02, "{mean}");
        // Memorylessness, roughly: P(X > mean) = e⁻¹.
        let above = draws.iter().filter(|&&d| d > 1_000_000).count() as f64 / draws.len() as f64;
        assert!((above - (-1f64).exp()).abs() < 0.01, "{above}");
        let mut again = family.compact(1);
        assert_eq!(exponential_ns(&mut again, 1_000_000), draws[0]);
    }

    #[test]
    fn bad_events_from_other_shards_are_refused_with_a_reason() {
        let mut e = engine(0);
        let local = e.ids[0];
        let remote = (0..40).find(|h| e.local[*h as usize] == NONE).unwrap();
        let good = Rpc::about(
            RpcKind::IHave,
            &Rpc {
                kind: RpcKind::Message,
                topic: 0,
                hops: 1,
                msg: MsgKey::new(remote, 0),
                size: 10,
                published_ns: 5,
                backoff_ms: 0,
                upload_us: 0,
                hint: NO_HINT,
            },
        );
        let cases = [
            (event(local, remote, vec![1, 2, 3], 10), "truncated"),
            (event(remote, local, good.encode(), 10), "not an identity of shard 0"),
            (event(local, remote, Rpc { topic: 250, ..good }.encode(), 10), "unknown topic"),
            (event(local, remote, good.encode(), 1), "published after it was delivered"),
            (Event { kind: 77, ..event(local, remote, good.encode(), 10) }, "event kind 77"),
            (
                event(local, remote, Rpc { kind: RpcKind::PeerExchange, msg: MsgKey(40), ..good }.encode(), 10),
                "peer exchange names unknown identity 40",
            ),
        ];
        for (ev, why) in cases {
            let err = e.deliver(&mut vec![ev]).unwrap_err().to_string();
            assert!(err.contains(why), "{err} should mention {why:?}");
        }
        assert!(e.deliver(&mut vec![event(local, remote, good.encode(), 10)]).is_ok());
    }
}
