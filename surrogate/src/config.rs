//! Configuration of the cold tail: gossipsub parameters (with named client profiles), the peer
//! manager, and the slot-based traffic model. Everything has a default; `[gossip]` overrides
//! single parameters of the chosen profile.

use crate::score::ScoreParams;
use crate::topics::{ATTESTATION_SUBNETS, COLUMN_SUBNETS, TOPIC_COUNT, topic_family, topic_name};
use std::collections::BTreeMap;
use thermocline_bus::SimDuration;
use thermocline_models::units::Size;
use thermocline_wire::eth2::types::{Fork, Preset, fork_digest};
use thermocline_wire::gossipsub::MessageIdFn;

/// Gossipsub router parameters (names as in the libp2p specification).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipParams {
    /// Target mesh degree.
    pub d: u32,
    /// Graft below this degree.
    pub d_low: u32,
    /// Prune above this degree.
    pub d_high: u32,
    /// Peers to send IHAVE gossip to per heartbeat.
    pub d_lazy: u32,
    /// Outbound quota: mesh maintenance keeps at least this many peers this identity dialled
    /// in each mesh (v1.1's `D_out`, against eclipse by inbound connections).
    pub d_out: u32,
    /// Heartbeat interval.
    pub heartbeat: SimDuration,
    /// History windows kept in the message cache (answers IWANT).
    pub mcache_len: u32,
    /// History windows advertised in IHAVE gossip.
    pub mcache_gossip: u32,
    /// How long message ids are remembered as seen.
    pub seen_ttl: SimDuration,
    /// Backoff after a PRUNE before grafting again.
    pub prune_backoff: SimDuration,
    /// Publish to every peer subscribed to the topic (not only the mesh, or the fanout).
    pub flood_publish: bool,
    /// How long an identity keeps the fanout peers of a topic it publishes to without
    /// subscribing.
    pub fanout_ttl: SimDuration,
    /// Peer exchange (v1.1): a PRUNE for an oversubscribed mesh carries up to `prune_peers` other
    /// peers of the topic, which the pruned peer may connect to (go-libp2p's
    /// `WithPeerExchange`, which Prysm turns on; rust-libp2p and Lighthouse leave it off).
    pub peer_exchange: bool,
    /// Peers offered in a PRUNE with peer exchange (go-libp2p's `GossipSubPrunePeers`).
    pub prune_peers: u32,
    /// Send IDONTWANT (v1.2) for messages at least this large; `None`: never.
    pub idontwant_threshold: Option<Size>,
    /// Validation time before a received message is forwarded.
    pub validation_delay: SimDuration,
    /// Forward a message to its publisher too (when the publisher is a mesh peer that did not
    /// send it). Ethereum's messages are anonymous (`StrictNoSign`), so a router cannot tell
    /// their source; with signed messages, as libp2p's default and `gossip-node` have them,
    /// rust-libp2p never forwards to the source: `false`.
    pub forward_to_source: bool,
    /// Peer scoring on or off.
    pub scoring: bool,
    /// Times a peer's IWANT for one message is answered (rust-libp2p's and go-libp2p's
    /// `gossip_retransmission`); more are ignored.
    pub gossip_retransmission: u32,
    /// How full-message copies share the upload link.
    pub upload: LinkQueue,
    /// How full messages arriving together share the download link.
    pub download: LinkQueue,
    /// TCP's slow start on connections that are new or have been idle (needs `upload =
    /// "fair"`): a copy starts at the initial window of 10 segments, which doubles each round
    /// trip, so it cannot have left before `rounds − 1` round trips of the path.
    pub slow_start: bool,
    /// With `slow_start`: the copies under way share each round trip's windows. A copy's round
    /// `r` cannot leave before `r − 1` round trips from its start, and what is left of it from
    /// that round on then shares the uplink with the other copies under way when it started,
    /// so a burst of copies on idle connections leaves the link idle between its first round
    /// trips and finishes in the order it was handed over, as ACK-clocked TCP connections do.
    pub slow_start_rounds: bool,
    /// With `slow_start`, instead of a floor on when a copy may leave: a copy on a new or idle
    /// connection enters the fair uplink one congestion window at a time (10 segments, then
    /// twice the last), each window a round trip after the one before started or once it is
    /// through, whichever is later. Between its windows a copy takes no share of the link, so
    /// copies on short round trips take the bandwidth that copies on long ones cannot use yet,
    /// as TCP connections sharing one uplink do.
    pub slow_start_windows: bool,
    /// Score function and thresholds (Ethereum's `beacon_block` parameters for this `d`).
    pub score: ScoreParams,
}

/// How an identity's full messages share one direction of its link (`[gossip.params] upload`
/// and `download`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkQueue {
    /// One message at a time, in order, each at the whole bandwidth. Uploading, a copy not yet
    /// started is dropped when its peer sends IDONTWANT first; the first copy of a burst leaves
    /// after one serialisation time.
    #[default]
    Fifo,
    /// Every message under way at once, sharing the bandwidth equally, as TCP connections share
    /// a host's link (`FairLink`): a burst of `k` copies leaves together after `k` serialisation
    /// times, and `k` copies arriving together are all downloaded after `k`. Uploading, every
    /// copy is handed to its connection at once, so IDONTWANT cancels only copies whose peer
    /// sent it before. Measured against real clients by `thermocline calibrate`
    /// (docs/calibration.md).
    Fair,
    /// Downloading only: a copy's bytes pass the link while its sender is still sending them, as
    /// TCP's segments do, so the link queues only what exceeds its bandwidth. A copy whose sender
    /// took `U` to send it ([`crate::rpc::Rpc::upload_us`]) is handled at its last byte plus one
    /// segment's serialisation, or once the link has worked off every byte that reached it
    /// before, from `U` before the last byte on, whichever is later
    /// ([`thermocline_net::FifoLink::stream`]). Store-and-forward links (`fifo`, `fair`) instead
    /// start the download at the last byte, one extra serialisation per hop.
    Pipelined,
}

impl GossipParams {
    /// The Ethereum consensus p2p specification's values (phase0 p2p-interface): D=8, D_low=6,
    /// D_high=12, D_lazy=6, heartbeat 0.7 s, mcache 6/3, seen TTL 2 epochs (768 s, since the
    /// 2024 change for Deneb); prune backoff 60 s, flood publishing and IDONTWANT from 1000
    /// bytes as rust-libp2p's defaults (the spec leaves them to implementations).
    pub fn ethereum() -> Self {
        GossipParams {
            d: 8,
            d_low: 6,
            d_high: 12,
            d_lazy: 6,
            d_out: 2,
            heartbeat: SimDuration::from_millis(700),
            mcache_len: 6,
            mcache_gossip: 3,
            seen_ttl: SimDuration::from_secs(768),
            prune_backoff: SimDuration::from_secs(60),
            flood_publish: true,
            fanout_ttl: SimDuration::from_secs(60),
            peer_exchange: false,
            prune_peers: 16,
            idontwant_threshold: Some(Size(1000 * 8)),
            validation_delay: SimDuration::from_millis(10),
            forward_to_source: true,
            scoring: true,
            gossip_retransmission: 3,
            upload: LinkQueue::Fifo,
            download: LinkQueue::Fifo,
            slow_start: false,
            slow_start_rounds: false,
            slow_start_windows: false,
            score: ScoreParams::ethereum(8),
        }
    }

    /// Lighthouse's mainnet configuration (its default `--network-load 3`): mesh 5 within 3..10,
    /// gossip to 3 peers, 1 s heartbeat, message cache of 12 windows, no flood publishing,
    /// IDONTWANT from 1000 bytes.
    pub fn lighthouse() -> Self {
        GossipParams {
            d: 5,
            d_low: 3,
            d_high: 10,
            d_lazy: 3,
            heartbeat: SimDuration::from_secs(1),
            mcache_len: 12,
            flood_publish: false,
            score: ScoreParams::ethereum(5),
            ..Self::ethereum()
        }
    }

    /// Parameters of a named profile: a client's configuration, or a profile `thermocline
    /// calibrate` fitted to a real client ([`CALIBRATED`]).
    pub fn profile(name: &str) -> Option<Self> {
        match name {
            "ethereum" => Some(Self::ethereum()),
            "lighthouse" => Some(Self::lighthouse()),
            _ => {
                let (_, text) = CALIBRATED.iter().find(|(n, _)| *n == name)?;
                // Shipped files, parsed and checked by this module's tests.
                let file: ProfileFile = toml::from_str(text).ok()?;
                let mut p = Self::profile(&file.base)?;
                file.params.apply(&mut p);
                Some(p)
            }
        }
    }

    /// Every profile name [`GossipParams::profile`] knows.
    pub fn profile_names() -> Vec<&'static str> {
        ["ethereum", "lighthouse"].into_iter().chain(CALIBRATED.iter().map(|(n, _)| *n)).collect()
    }
}

/// The calibrated profiles shipped with Thermocline: each file is what `thermocline calibrate`
/// wrote for a `[calibration.fit]` (its base profile, the fitted `[params]`, and the error table
/// it reached), copied to `surrogate/profiles/`.
pub const CALIBRATED: &[(&str, &str)] =
    &[("calibrated/gossip-node", include_str!("../profiles/calibrated/gossip-node.toml"))];

/// A calibrated profile file: the profile it starts from and the parameters laid over it; the
/// `[fit]` table (how it was fitted and how close it came) is for readers.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// The profile the parameters are laid over (`ethereum` or `lighthouse`).
    pub base: String,
    /// The fitted parameters, as `[gossip.params]` takes them.
    pub params: GossipOverrides,
    /// How the profile was fitted and its error table.
    pub fit: Option<toml::Table>,
}

impl GossipParams {
    /// Check the parameters hang together.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.d_low <= self.d && self.d <= self.d_high) || self.d == 0 {
            return Err(format!(
                "need 0 < d_low <= d <= d_high, got d_low={} d={} d_high={}",
                self.d_low, self.d, self.d_high
            ));
        }
        if self.d_out >= self.d_low || 2 * self.d_out > self.d {
            return Err(format!(
                "need d_out < d_low and d_out <= d / 2, got d_out={} d_low={} d={}",
                self.d_out, self.d_low, self.d
            ));
        }
        if self.heartbeat == SimDuration::ZERO {
            return Err("heartbeat must be positive".into());
        }
        if self.slow_start && self.upload != LinkQueue::Fair {
            return Err("gossip.params.slow_start models TCP connections, which share the uplink: it needs \
                        upload = \"fair\""
                .into());
        }
        if self.upload == LinkQueue::Pipelined {
            return Err("gossip.params.upload = \"pipelined\": pipelining is how a download link receives a copy \
                        still being sent; an upload link is \"fifo\" or \"fair\""
                .into());
        }
        if self.slow_start_rounds && !self.slow_start {
            return Err("gossip.params.slow_start_rounds refines slow start: it needs slow_start = true".into());
        }
        if self.slow_start_windows && (!self.slow_start || self.slow_start_rounds) {
            return Err(
                "gossip.params.slow_start_windows is a way of modelling slow start: it needs slow_start = true \
                        and slow_start_rounds = false"
                    .into(),
            );
        }
        if self.mcache_gossip > self.mcache_len {
            return Err(format!(
                "mcache_gossip ({}) must not exceed mcache_len ({})",
                self.mcache_gossip, self.mcache_len
            ));
        }
        Ok(())
    }
}

/// Per-parameter overrides of a profile (every field optional).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipOverrides {
    /// See [`GossipParams::d`].
    pub d: Option<u32>,
    /// See [`GossipParams::d_low`].
    pub d_low: Option<u32>,
    /// See [`GossipParams::d_high`].
    pub d_high: Option<u32>,
    /// See [`GossipParams::d_lazy`].
    pub d_lazy: Option<u32>,
    /// See [`GossipParams::heartbeat`].
    pub heartbeat: Option<SimDuration>,
    /// See [`GossipParams::mcache_len`].
    pub mcache_len: Option<u32>,
    /// See [`GossipParams::mcache_gossip`].
    pub mcache_gossip: Option<u32>,
    /// See [`GossipParams::seen_ttl`].
    pub seen_ttl: Option<SimDuration>,
    /// See [`GossipParams::prune_backoff`].
    pub prune_backoff: Option<SimDuration>,
    /// See [`GossipParams::flood_publish`].
    pub flood_publish: Option<bool>,
    /// See [`GossipParams::d_out`].
    pub d_out: Option<u32>,
    /// See [`GossipParams::fanout_ttl`].
    pub fanout_ttl: Option<SimDuration>,
    /// See [`GossipParams::peer_exchange`].
    pub peer_exchange: Option<bool>,
    /// See [`GossipParams::prune_peers`].
    pub prune_peers: Option<u32>,
    /// See [`GossipParams::idontwant_threshold`]; `"0 B"` turns IDONTWANT off.
    pub idontwant_threshold: Option<Size>,
    /// See [`GossipParams::validation_delay`].
    pub validation_delay: Option<SimDuration>,
    /// See [`GossipParams::forward_to_source`].
    pub forward_to_source: Option<bool>,
    /// See [`GossipParams::scoring`].
    pub scoring: Option<bool>,
    /// See [`GossipParams::gossip_retransmission`].
    pub gossip_retransmission: Option<u32>,
    /// See [`GossipParams::upload`].
    pub upload: Option<LinkQueue>,
    /// See [`GossipParams::download`].
    pub download: Option<LinkQueue>,
    /// See [`GossipParams::slow_start`].
    pub slow_start: Option<bool>,
    /// See [`GossipParams::slow_start_rounds`].
    pub slow_start_rounds: Option<bool>,
    /// See [`GossipParams::slow_start_windows`].
    pub slow_start_windows: Option<bool>,
}

impl GossipOverrides {
    /// Lay these overrides over a profile's parameters `p` (the score follows `d`).
    pub fn apply(&self, p: &mut GossipParams) {
        let o = self;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { p.$f = v; } )* };
        }
        set!(
            d,
            d_low,
            d_high,
            d_lazy,
            d_out,
            heartbeat,
            mcache_len,
            mcache_gossip,
            seen_ttl,
            prune_backoff,
            flood_publish,
            fanout_ttl,
            peer_exchange,
            prune_peers,
            validation_delay,
            forward_to_source,
            scoring,
            gossip_retransmission,
            upload,
            download,
            slow_start,
            slow_start_rounds,
            slow_start_windows
        );
        if o.d_out.is_none() {
            // A profile's quota follows an overridden mesh band down; one given explicitly must fit.
            p.d_out = p.d_out.min(p.d / 2).min(p.d_low.saturating_sub(1));
        }
        p.score = ScoreParams::ethereum(p.d);
        if let Some(t) = o.idontwant_threshold {
            p.idontwant_threshold = (t.0 > 0).then_some(t);
        }
    }
}

/// Most connections an identity may have: mesh membership per topic is a 64-bit mask over an
/// identity's connections.
pub const MAX_PEERS: u32 = 64;

/// The `[gossip]` section: profile, overrides and peer manager.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipSpec {
    /// Profile of every identity that names none in its host group (`ethereum`, `lighthouse`).
    pub profile: String,
    /// Parameter overrides on top of the profile.
    pub params: GossipOverrides,
    /// Connections each identity opens at start (to identities chosen uniformly at random).
    pub outbound_peers: u32,
    /// Dial until `outbound_peers` connections in all, counting those an identity was dialled
    /// on, instead of making `outbound_peers` dials (a peer manager with a target peer count;
    /// the libp2p test plans' random mesh, in which every node has at least that many peers).
    pub count_inbound: bool,
    /// Most connections an identity accepts (inbound and outbound together).
    pub max_peers: u32,
    /// Most dials an identity accepts from others (default: no limit below `max_peers`).
    pub max_inbound: Option<u32>,
    /// Share of outbound connections made to identities at the same location (0: uniform).
    pub local_share: f64,
    /// Peers the peer manager keeps on each subscribed subnet (attestation and column topics),
    /// and finds on a subnet before publishing there: below it an identity dials more of the
    /// subnet's subscribers, as discovery would find them. These dials may exceed `max_peers`,
    /// up to 64 connections on both sides.
    pub subnet_peers: u32,
    /// Peers an identity makes sure to have on a topic before publishing there without
    /// subscribing (an attester's subnet, a proposer's column subnets), within 64 connections.
    pub duty_peers: u32,
    /// Connection slots each identity keeps free for peers learnt by peer exchange (used only
    /// with `peer_exchange`; they count towards the 64).
    pub px_slots: u32,
    /// How message ids are computed on the wire, per topic or topic family
    /// (`beacon_block = "content-sha256"`, `beacon_attestation = "from-seqno"`): what real clients
    /// at the boundary must agree on. Topics not named use libp2p's default, `from-seqno`.
    pub message_id: BTreeMap<String, MessageIdName>,
    /// Surrogates that dial real clients, as a peer manager dials what discovery found
    /// (`dial_clients = { group = "hot", peers = 4 }`); none by default.
    pub dial_clients: Option<ClientDials>,
    /// The connections, given rather than drawn: entry `i` lists the identities identity `i`
    /// dials (`dials = [[1, 2], [2], []]`). Exactly these connections are made at the start (no
    /// subnet or duty peers are added), with `discovery = "assigned"`. Calibration gives the
    /// surrogates of a hybrid run the scenario's graph this way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dials: Option<Vec<Vec<u32>>>,
    /// Connection slots each surrogate keeps free for real clients in a run with direct hosts
    /// (default [`CLIENT_SLOTS`](crate::boundary::CLIENT_SLOTS)); a client that dials a
    /// surrogate with none free is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_slots: Option<u32>,
    /// How long after its publication a surrogate's message expires: later copies, IHAVEs,
    /// IWANTs and IDONTWANTs about it are ignored (as Ethereum clients ignore messages of past
    /// slots), and its state is retired, so memory does not grow with the run.
    pub message_lifetime: SimDuration,
    /// Keep every message's state to the end instead of retiring expired ones: the results are
    /// the same, only memory grows (for checking exactly that).
    pub keep_messages: bool,
    /// How identities find the peers they dial (subnet and duty peers are assigned either way).
    pub discovery: PeerDiscovery,
    /// Speak Ethereum's consensus domain to real clients (`[gossip.eth2]`): their topics, message
    /// ids and req/resp methods; none by default.
    pub eth2: Option<Eth2Spec>,
    /// Identities that misbehave (`[[gossip.attackers]]`); none by default.
    pub attackers: Vec<AttackSpec>,
}

/// `[[gossip.attackers]]`: the identities of surrogate host groups misbehave at the gossip
/// layer from `start` on (before it they are honest), in the ways given.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    /// The surrogate host group, or groups, of the attackers.
    pub group: GroupNames,
    /// When the attack begins.
    #[serde(default)]
    pub start: SimDuration,
    /// Invalid `beacon_block` messages each attacker publishes per second, to every connected
    /// peer of the topic (0: none). Receivers download and validate each, never forward it, and
    /// charge the sender with P₄.
    #[serde(default)]
    pub invalid_rate: f64,
    /// Size of an invalid message (default: the block size).
    #[serde(default)]
    pub invalid_size: Option<Size>,
    /// At every heartbeat, GRAFT every peer on every topic that is not in the attacker's mesh,
    /// whatever the peer's PRUNE backoff (each GRAFT within it costs the attacker a P₇ point).
    #[serde(default)]
    pub graft_spam: bool,
    /// At every heartbeat, this many IWANTs to every peer for each message the attacker holds
    /// (making honest peers upload copies, up to their `gossip_retransmission`).
    #[serde(default)]
    pub iwant_spam: u32,
    /// Forward nothing and answer no IWANT (a black hole in its peers' meshes).
    #[serde(default)]
    pub withhold: bool,
}

impl AttackSpec {
    /// Check the values, naming the key (`gossip.attackers[k].invalid_rate`) that is wrong.
    pub fn check(&self, k: usize) -> Result<(), String> {
        let key = |name: &str| format!("gossip.attackers[{k}].{name}");
        if !(self.invalid_rate.is_finite() && (0.0..=10_000.0).contains(&self.invalid_rate)) {
            return Err(format!(
                "{} must be within 0 and 10000 per second, not {}",
                key("invalid_rate"),
                self.invalid_rate
            ));
        }
        if self.invalid_size.is_some_and(|s| s.bytes() == 0 || s.bytes() > 10 << 20) {
            return Err(format!("{} must be within 1 B and 10 MiB", key("invalid_size")));
        }
        if self.iwant_spam > 64 {
            return Err(format!("{} must be at most 64, not {}", key("iwant_spam"), self.iwant_spam));
        }
        if self.invalid_rate == 0.0 && !self.graft_spam && self.iwant_spam == 0 && !self.withhold {
            return Err(format!(
                "gossip.attackers[{k}] does nothing: give invalid_rate, graft_spam, iwant_spam or withhold"
            ));
        }
        Ok(())
    }
}

/// `[gossip.eth2]`: the consensus network real clients at the boundary run, so identities speak
/// its domain: topics `/eth2/{fork_digest}/{name}/ssz_snappy`, the spec's message ids,
/// secp256k1 identities, and Status, Goodbye, Ping, MetaData and block requests answered from
/// the blocks each identity has relayed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eth2Spec {
    /// The network's genesis validators root (hex, as a client's REST API
    /// `/eth/v1/beacon/genesis` reports it).
    pub genesis_validators_root: String,
    /// The current fork's version (hex, 4 bytes; `genesis_fork_version` before any fork).
    pub fork_version: String,
    /// The current fork: `phase0`, `altair`, `bellatrix` or `capella` (what blocks hold).
    #[serde(default = "phase0")]
    pub fork: String,
    /// The preset: `mainnet` or `minimal` (what sizes a block's lists).
    #[serde(default = "mainnet")]
    pub preset: String,
    /// Whether the tail's own messages cross to clients (off: clients would reject them as
    /// invalid and down-score the identities; on, to study exactly that).
    #[serde(default)]
    pub surrogate_messages: bool,
    /// The chain's genesis, Unix seconds (what clients take as `--genesisTime`); slots start
    /// from it. Default: the run's `start_date`.
    #[serde(default)]
    pub genesis_time: Option<u64>,
    /// Slot length, seconds. Default: the preset's (12 mainnet, 6 minimal).
    #[serde(default)]
    pub seconds_per_slot: Option<u64>,
}

fn phase0() -> String {
    "phase0".into()
}

fn mainnet() -> String {
    "mainnet".into()
}

/// `[gossip.eth2]` resolved: what the engine and the boundary use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eth2Domain {
    /// The current fork's digest.
    pub fork_digest: [u8; 4],
    /// The current fork's version.
    pub fork_version: [u8; 4],
    /// The current fork.
    pub fork: Fork,
    /// The preset.
    pub preset: Preset,
    /// Whether surrogate messages cross to clients.
    pub surrogate_messages: bool,
    /// Simulated time of genesis (slot 0's start), ns.
    pub genesis_ns: u64,
    /// Slot length, ns.
    pub slot_ns: u64,
}

impl Eth2Domain {
    /// The slot under way at simulated time `t` (slot 0 before genesis).
    pub fn slot_at(&self, t: u64) -> u64 {
        t.saturating_sub(self.genesis_ns) / self.slot_ns.max(1)
    }

    /// The simulated time `slot` starts.
    pub fn slot_start_ns(&self, slot: u64) -> u64 {
        self.genesis_ns.saturating_add(slot.saturating_mul(self.slot_ns))
    }
}

/// `N` bytes from hex (an optional `0x` first), or what was wrong with them.
fn hex_bytes<const N: usize>(key: &str, s: &str) -> Result<[u8; N], String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    let bad = || format!("gossip.eth2.{key} must be {N} bytes of hex, got {s:?}");
    if h.len() != 2 * N || !h.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (k, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * k..2 * k + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl Eth2Spec {
    /// The domain this section names in a run that starts at `start_unix_ns` (`[run]
    /// start_date`), or what is wrong with it (naming the key).
    pub fn domain(&self, start_unix_ns: u64) -> Result<Eth2Domain, String> {
        let gvr = hex_bytes::<32>("genesis_validators_root", &self.genesis_validators_root)?;
        let fork_version = hex_bytes::<4>("fork_version", &self.fork_version)?;
        let fork = Fork::from_name(&self.fork).ok_or_else(|| {
            format!("gossip.eth2.fork must be phase0, altair, bellatrix or capella, got {:?}", self.fork)
        })?;
        let preset = Preset::from_name(&self.preset)
            .ok_or_else(|| format!("gossip.eth2.preset must be mainnet or minimal, got {:?}", self.preset))?;
        let genesis_ns = match self.genesis_time {
            None => 0,
            Some(t) => t
                .checked_mul(1_000_000_000)
                .and_then(|g| g.checked_sub(start_unix_ns))
                .ok_or_else(|| format!("gossip.eth2.genesis_time {t} is before the run's start_date"))?,
        };
        let seconds = self.seconds_per_slot.unwrap_or(match preset {
            Preset::Mainnet => 12,
            Preset::Minimal => 6,
        });
        if seconds == 0 {
            return Err("gossip.eth2.seconds_per_slot must be at least 1".into());
        }
        Ok(Eth2Domain {
            fork_digest: fork_digest(fork_version, gvr),
            fork_version,
            fork,
            preset,
            surrogate_messages: self.surrogate_messages,
            genesis_ns,
            slot_ns: seconds * 1_000_000_000,
        })
    }
}

/// `[gossip] discovery`: where an identity's outbound peers come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerDiscovery {
    /// `outbound_peers` dials drawn at the start, uniformly or by `local_share`, and made at once.
    #[default]
    Assigned,
    /// Each identity runs discv5 (the `[discv5]` section, or its defaults) and dials what its
    /// queries for peers (random lookups: one after each self-lookup, then every
    /// `lookup_interval`) find, until it has `outbound_peers` outbound connections; it accepts
    /// dials up to `max_peers`. Subnet peers are found by subnet queries.
    Discv5,
}

/// `[gossip] dial_clients`: every host of a direct group is dialled by `peers` surrogates.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDials {
    /// The direct host group whose hosts are dialled, or a list of them (`["a", "b"]`).
    pub group: GroupNames,
    /// Surrogates that dial each of its hosts.
    pub peers: u32,
    /// The port its programs listen on for libp2p.
    #[serde(default = "gossip_port")]
    pub port: u16,
    /// When the surrogates dial (the programs must be listening by then).
    #[serde(default = "dial_start")]
    pub start: SimDuration,
}

/// One host group's name or several.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum GroupNames {
    /// One group.
    One(String),
    /// Several groups.
    Many(Vec<String>),
}

impl GroupNames {
    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            GroupNames::One(g) => vec![g.as_str()],
            GroupNames::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

fn gossip_port() -> u16 {
    crate::boundary::GOSSIP_PORT
}

fn dial_start() -> SimDuration {
    SimDuration::from_secs(5)
}

/// A message-id function by name, as the `[gossip.message_id]` table gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageIdName {
    /// libp2p's default: the publisher's peer id (base58) followed by the sequence number.
    FromSeqno,
    /// Content addressing: SHA-256 of the message data (32 bytes).
    ContentSha256,
}

impl MessageIdName {
    /// The wire's function of this name.
    pub fn function(self) -> MessageIdFn {
        match self {
            MessageIdName::FromSeqno => MessageIdFn::FromAndSeqno,
            MessageIdName::ContentSha256 => MessageIdFn::ContentSha256 { prefix_len: 32 },
        }
    }
}

impl Default for GossipSpec {
    fn default() -> Self {
        GossipSpec {
            profile: "ethereum".into(),
            params: GossipOverrides::default(),
            outbound_peers: 12,
            count_inbound: false,
            max_peers: 48,
            max_inbound: None,
            local_share: 0.0,
            subnet_peers: 4,
            duty_peers: 2,
            px_slots: 4,
            message_id: BTreeMap::new(),
            dial_clients: None,
            dials: None,
            client_slots: None,
            message_lifetime: SimDuration::from_secs(60),
            keep_messages: false,
            discovery: PeerDiscovery::Assigned,
            eth2: None,
            attackers: Vec::new(),
        }
    }
}

impl GossipSpec {
    /// Every topic's message-id function, by topic index: its own entry in `message_id`, else its
    /// family's, else libp2p's default. An entry naming no modelled topic or family is an error.
    pub fn message_id_fns(&self) -> Result<Vec<MessageIdFn>, String> {
        if let Some(e) = &self.eth2 {
            if !self.message_id.is_empty() {
                return Err(
                    "gossip.message_id cannot be given with [gossip.eth2]: its topics use the spec's ids".into()
                );
            }
            let with_topic = e.domain(0)?.fork >= Fork::Altair;
            return Ok(vec![MessageIdFn::Eth2 { with_topic }; TOPIC_COUNT]);
        }
        let names: Vec<String> = (0..TOPIC_COUNT as u8).map(topic_name).collect();
        for key in self.message_id.keys() {
            if !names.contains(key) && !(0..TOPIC_COUNT as u8).any(|t| topic_family(t) == key) {
                return Err(format!(
                    "gossip.message_id names topic {key:?}, which is not modelled: name a topic \
                     (beacon_block, beacon_attestation_3) or a family (beacon_attestation, data_column_sidecar)"
                ));
            }
        }
        Ok((0..TOPIC_COUNT as u8)
            .map(|t| {
                let named = self.message_id.get(&topic_name(t)).or_else(|| self.message_id.get(topic_family(t)));
                named.map_or(MessageIdFn::FromAndSeqno, |n| n.function())
            })
            .collect())
    }

    /// Whether `dials` (if given) is a graph of `identities` identities: one entry each, every
    /// peer an identity other than the dialler, no connection named twice (from either end),
    /// at most [`MAX_PEERS`] connections each, and peers assigned rather than found.
    pub fn check_dials(&self, identities: u32) -> Result<(), String> {
        let Some(dials) = &self.dials else { return Ok(()) };
        if self.discovery != PeerDiscovery::Assigned {
            return Err("gossip.dials gives the connections: it needs discovery = \"assigned\"".into());
        }
        if dials.len() != identities as usize {
            return Err(format!(
                "gossip.dials has {} entries, one per surrogate identity expected ({identities})",
                dials.len()
            ));
        }
        let mut edges = std::collections::BTreeSet::new();
        let mut degree = vec![0u32; dials.len()];
        for (i, row) in dials.iter().enumerate() {
            for &j in row {
                if j >= identities || j as usize == i {
                    return Err(format!("gossip.dials[{i}] names {j}: expected another identity below {identities}"));
                }
                if !edges.insert((j.min(i as u32), j.max(i as u32))) {
                    return Err(format!("gossip.dials names the connection between {i} and {j} twice"));
                }
                degree[i] += 1;
                degree[j as usize] += 1;
            }
        }
        let clients = self.client_slots.unwrap_or(0);
        if let Some(i) = degree.iter().position(|&d| d + clients > MAX_PEERS) {
            return Err(format!(
                "gossip.dials gives identity {i} {} connections, and with gossip.client_slots ({clients}) more than {MAX_PEERS}",
                degree[i]
            ));
        }
        Ok(())
    }

    /// The parameters of profile `name` with this section's overrides applied.
    pub fn params_for(&self, name: &str) -> Result<GossipParams, String> {
        let mut p = GossipParams::profile(name).ok_or_else(|| {
            format!("unknown gossip profile {name:?}; known: {}", GossipParams::profile_names().join(", "))
        })?;
        self.params.apply(&mut p);
        p.validate()?;
        if !(0.0..=1.0).contains(&self.local_share) {
            return Err(format!("local_share must be within [0, 1], got {}", self.local_share));
        }
        let busy =
            p.heartbeat.as_nanos() * u64::from(p.mcache_len.max(p.mcache_gossip)) + p.validation_delay.as_nanos();
        if self.message_lifetime.as_nanos() <= busy {
            return Err(format!(
                "message_lifetime ({}) must exceed how long a message is served and validated: heartbeat × mcache_len + \
                 validation_delay = {} for profile {name:?}",
                self.message_lifetime,
                SimDuration::from_nanos(busy)
            ));
        }
        if let Some(c) = self.client_slots.filter(|&c| c > MAX_PEERS) {
            return Err(format!("gossip.client_slots must be at most {MAX_PEERS}, got {c}"));
        }
        if p.peer_exchange && self.max_peers + self.px_slots > MAX_PEERS {
            return Err(format!(
                "with peer exchange, max_peers + px_slots must be at most {MAX_PEERS}, got {} + {}",
                self.max_peers, self.px_slots
            ));
        }
        if self.discovery == PeerDiscovery::Discv5 && self.local_share > 0.0 {
            return Err("local_share applies to assigned peers; with discovery = \"discv5\" peers are found".into());
        }
        if self.outbound_peers == 0 || self.max_peers < self.outbound_peers || self.max_peers > MAX_PEERS {
            return Err(format!(
                "need 0 < outbound_peers <= max_peers <= {MAX_PEERS}, got {} and {}",
                self.outbound_peers, self.max_peers
            ));
        }
        Ok(p)
    }
}

/// The `[traffic]` section: slots and block publishing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficSpec {
    /// Time of the first slot's start (before it, meshes form).
    pub start: SimDuration,
    /// Slot length.
    pub slot: SimDuration,
    /// The `beacon_block` published each slot by a proposer chosen at random.
    pub beacon_block: BlockSpec,
    /// Attestations on the `beacon_attestation_{subnet}` topics (off unless given).
    pub attestations: Option<AttestationSpec>,
    /// Data column sidecars on the `data_column_sidecar_{subnet}` topics (off unless given).
    pub data_columns: Option<DataColumnSpec>,
    /// Identities leaving and rejoining (off unless given).
    pub churn: Option<ChurnSpec>,
}

/// Churn: from `start` on, every identity alternates online sessions and offline spells, both
/// exponentially distributed with the given means and drawn from the identity's own "churn"
/// stream. Leaving closes all its connections (peers learn it one path latency later); rejoining
/// reconnects to every peer that is online, which then answers. The long-run share of identities
/// online is `session / (session + downtime)`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnSpec {
    /// Mean length of an online session.
    pub session: SimDuration,
    /// Mean time offline before rejoining.
    pub downtime: SimDuration,
    /// When churn starts (default: at the first slot, once meshes have formed).
    pub start: Option<SimDuration>,
}

impl Default for ChurnSpec {
    fn default() -> Self {
        ChurnSpec { session: SimDuration::from_secs(3600), downtime: SimDuration::from_secs(300), start: None }
    }
}

/// Attestation subnets: every identity subscribes to `subnets_per_node` of the 64 subnets
/// (chosen from its own stream, like the spec's node-id-derived long-lived subscriptions), and
/// each slot `per_subnet` attestations are published on every subnet, each by an identity drawn
/// at random — usually not a subscriber, so it publishes by flood or fanout.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestationSpec {
    /// Subnets each identity subscribes to (the spec's `SUBNETS_PER_NODE`).
    pub subnets_per_node: u32,
    /// Attestations published per subnet per slot.
    pub per_subnet: u32,
    /// Size of one attestation.
    pub size: Size,
    /// Delay from slot start to publication (the spec's attestation due time, a third of a slot).
    pub delay: SimDuration,
    /// Each attestation is published at `delay` plus a uniform draw below `spread`.
    pub spread: SimDuration,
}

impl Default for AttestationSpec {
    fn default() -> Self {
        AttestationSpec {
            subnets_per_node: 2,
            per_subnet: 1,
            size: Size(256 * 8),
            delay: SimDuration::from_secs(4),
            spread: SimDuration::from_millis(500),
        }
    }
}

/// Data column sidecars (PeerDAS): every identity custodies `custody_per_node` of the 128 column
/// subnets (chosen from its own stream), and each slot the block's proposer publishes all 128
/// columns with the block, each on its subnet — mostly ones it does not subscribe to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataColumnSpec {
    /// Column subnets each identity subscribes to (the spec's `CUSTODY_REQUIREMENT`).
    pub custody_per_node: u32,
    /// Size of one column sidecar (about 2 KiB per blob plus proofs; 13 KiB is six blobs).
    pub size: Size,
}

impl Default for DataColumnSpec {
    fn default() -> Self {
        DataColumnSpec { custody_per_node: 4, size: Size(13 * 1024 * 8) }
    }
}

/// Topics an identity may subscribe to at once (the block topic included).
pub const MAX_SUBSCRIPTIONS: u32 = 16;

impl TrafficSpec {
    /// Check the optional topics against the protocol's constants.
    pub fn validate(&self) -> Result<(), String> {
        let mut subs = 1;
        if let Some(a) = &self.attestations {
            if a.subnets_per_node > ATTESTATION_SUBNETS || a.subnets_per_node == 0 {
                return Err(format!(
                    "traffic.attestations.subnets_per_node must be within 1..={ATTESTATION_SUBNETS}, got {}",
                    a.subnets_per_node
                ));
            }
            if a.delay.as_nanos().saturating_add(a.spread.as_nanos()) > self.slot.as_nanos() {
                return Err("traffic.attestations: delay + spread must fit in a slot".into());
            }
            if a.size.bytes() >= u32::MAX as u64 {
                return Err(format!("traffic.attestations.size {} is too large", a.size));
            }
            subs += a.subnets_per_node;
        }
        if let Some(c) = &self.data_columns {
            if c.custody_per_node > COLUMN_SUBNETS || c.custody_per_node == 0 {
                return Err(format!(
                    "traffic.data_columns.custody_per_node must be within 1..={COLUMN_SUBNETS}, got {}",
                    c.custody_per_node
                ));
            }
            if c.size.bytes() >= u32::MAX as u64 {
                return Err(format!("traffic.data_columns.size {} is too large", c.size));
            }
            subs += c.custody_per_node;
        }
        if let Some(c) = &self.churn
            && (c.session == SimDuration::ZERO || c.downtime == SimDuration::ZERO)
        {
            return Err("traffic.churn: session and downtime must be positive".into());
        }
        if subs > MAX_SUBSCRIPTIONS {
            return Err(format!(
                "traffic: an identity would subscribe to {subs} topics; at most {MAX_SUBSCRIPTIONS} are supported"
            ));
        }
        Ok(())
    }
}

/// One block per slot.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockSpec {
    /// Block size.
    pub size: Size,
    /// Delay from slot start to publication.
    pub proposer_delay: SimDuration,
    /// The proposers, given rather than drawn: entry `s` is the identity that publishes slot
    /// `s`'s block, or `"none"` for a slot in which no surrogate does (a real client proposes
    /// it); slots after the list have no block. Default: a proposer drawn at random each slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposers: Option<Vec<SlotProposer>>,
}

/// One slot's entry of `traffic.beacon_block.proposers`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SlotProposer {
    /// The identity that publishes the slot's block.
    Identity(u32),
    /// `"none"`: no surrogate publishes in the slot (any other word is refused by
    /// [`BlockSpec::check_proposers`]).
    Word(String),
}

impl SlotProposer {
    /// The publishing identity, if a surrogate publishes.
    pub fn identity(&self) -> Option<u32> {
        match self {
            SlotProposer::Identity(i) => Some(*i),
            SlotProposer::Word(_) => None,
        }
    }
}

impl BlockSpec {
    /// Whether `proposers` names only identities among `identities` and the word `"none"`.
    pub fn check_proposers(&self, identities: u32) -> Result<(), String> {
        for (s, p) in self.proposers.iter().flatten().enumerate() {
            match p {
                SlotProposer::Identity(i) if *i >= identities => {
                    return Err(format!(
                        "traffic.beacon_block.proposers[{s}] is identity {i}, but the run has {identities} surrogate identities"
                    ));
                }
                SlotProposer::Word(w) if w != "none" => {
                    return Err(format!(
                        "traffic.beacon_block.proposers[{s}] is {w:?}: expected an identity number or \"none\""
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            start: SimDuration::from_secs(10),
            slot: SimDuration::from_secs(12),
            beacon_block: BlockSpec { size: Size(100 * 1024 * 8), proposer_delay: SimDuration::ZERO, proposers: None },
            attestations: None,
            data_columns: None,
            churn: None,
        }
    }
}

impl Default for BlockSpec {
    fn default() -> Self {
        TrafficSpec::default().beacon_block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_proposers_name_identities_or_none() {
        let block = |text: &str| toml::from_str::<BlockSpec>(text).unwrap();
        block("proposers = [4, \"none\", 0]").check_proposers(5).unwrap();
        let err = block("proposers = [5]").check_proposers(5).unwrap_err();
        assert!(err.contains("proposers[0]") && err.contains("5 surrogate identities"), "{err}");
        let err = block("proposers = [1, \"nobody\"]").check_proposers(5).unwrap_err();
        assert!(err.contains("proposers[1]") && err.contains("\"none\""), "{err}");
        assert_eq!(block("").proposers, None);
    }

    #[test]
    fn message_ids_by_topic_then_family_then_default() {
        let mut spec = GossipSpec::default();
        assert!(spec.message_id_fns().unwrap().iter().all(|f| *f == MessageIdFn::FromAndSeqno));
        spec.message_id.insert("beacon_attestation".into(), MessageIdName::ContentSha256);
        spec.message_id.insert("beacon_attestation_3".into(), MessageIdName::FromSeqno);
        let fns = spec.message_id_fns().unwrap();
        let content = MessageIdFn::ContentSha256 { prefix_len: 32 };
        assert_eq!(fns[crate::topics::TOPIC_BEACON_BLOCK as usize], MessageIdFn::FromAndSeqno);
        assert_eq!(fns[crate::topics::ATTESTATION_BASE as usize], content);
        assert_eq!(
            fns[crate::topics::ATTESTATION_BASE as usize + 3],
            MessageIdFn::FromAndSeqno,
            "a topic's own entry wins"
        );
        spec.message_id.insert("blob_sidecar".into(), MessageIdName::ContentSha256);
        assert!(spec.message_id_fns().unwrap_err().contains("\"blob_sidecar\""));
        let parsed: GossipSpec = toml::from_str("message_id = { beacon_block = \"content-sha256\" }").unwrap();
        assert_eq!(parsed.message_id_fns().unwrap()[0], content);
    }

    #[test]
    fn an_ethereum_domain_gives_digest_slots_and_message_ids() {
        let text = r#"
[eth2]
genesis_validators_root = "0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69"
fork_version = "0x00000001"
preset = "minimal"
genesis_time = 946684820
"#;
        let spec: GossipSpec = toml::from_str(text).unwrap();
        let start = 946_684_800 * 1_000_000_000;
        let d = spec.eth2.as_ref().unwrap().domain(start).unwrap();
        assert_eq!(d.fork_digest, [0x31, 0x68, 0x1a, 0xd1], "Lodestar's dev network");
        assert_eq!((d.fork, d.genesis_ns, d.slot_ns), (Fork::Phase0, 20_000_000_000, 6_000_000_000));
        assert_eq!((d.slot_at(0), d.slot_at(25_999_999_999), d.slot_at(26_000_000_000)), (0, 0, 1));
        assert_eq!(d.slot_start_ns(3), 38_000_000_000);
        // Phase 0's ids leave the topic out; the spec's ids are the only ones.
        assert!(spec.message_id_fns().unwrap().iter().all(|f| *f == MessageIdFn::Eth2 { with_topic: false }));
        let mut with_ids = spec.clone();
        with_ids.message_id.insert("beacon_block".into(), MessageIdName::ContentSha256);
        assert!(with_ids.message_id_fns().unwrap_err().contains("[gossip.eth2]"));
        let mainnet: GossipSpec = toml::from_str(&text.replace("preset = \"minimal\"\n", "")).unwrap();
        assert_eq!(mainnet.eth2.unwrap().domain(start).unwrap().slot_ns, 12_000_000_000);
        let bad = |from: &str, to: &str| {
            let s: GossipSpec = toml::from_str(&text.replace(from, to)).unwrap();
            s.eth2.unwrap().domain(start).unwrap_err()
        };
        assert!(bad("0x00000001", "0x0001").contains("fork_version"));
        assert!(bad("preset = \"minimal\"", "fork = \"deneb\"").contains("gossip.eth2.fork"));
        assert!(bad("946684820", "946684700").contains("before the run's start_date"));
        assert!(bad("genesis_time", "seconds_per_slot = 0\ngenesis_time").contains("seconds_per_slot"));
        assert!(toml::from_str::<GossipSpec>(&text.replace("preset", "presets")).is_err(), "unknown keys are refused");
    }

    #[test]
    fn profiles_and_overrides() {
        let spec = GossipSpec::default();
        assert_eq!(spec.params_for("ethereum").unwrap(), GossipParams::ethereum());
        let lh = spec.params_for("lighthouse").unwrap();
        assert_eq!((lh.d, lh.d_low, lh.d_high, lh.flood_publish), (5, 3, 10, false));
        let mut spec = GossipSpec::default();
        spec.params.d = Some(20);
        assert!(spec.params_for("ethereum").unwrap_err().contains("d_low <= d <= d_high"));
        spec.params.d = None;
        spec.params.idontwant_threshold = Some(Size(0));
        assert_eq!(spec.params_for("ethereum").unwrap().idontwant_threshold, None);
        assert!(spec.params_for("prysm").unwrap_err().contains("unknown gossip profile"));
        // D_out follows a narrowed mesh band unless given; given, it must fit.
        let mut narrow = GossipSpec::default();
        (narrow.params.d, narrow.params.d_low, narrow.params.d_high) = (Some(3), Some(2), Some(4));
        assert_eq!(narrow.params_for("ethereum").unwrap().d_out, 1);
        narrow.params.d_out = Some(2);
        assert!(narrow.params_for("ethereum").unwrap_err().contains("d_out < d_low"));
    }

    #[test]
    fn links_default_to_fifo_and_slow_start_needs_a_fair_uplink() {
        let p = GossipSpec::default().params_for("ethereum").unwrap();
        assert_eq!((p.upload, p.download, p.slow_start), (LinkQueue::Fifo, LinkQueue::Fifo, false));
        let spec: GossipSpec =
            toml::from_str("[params]\nupload = \"fair\"\ndownload = \"fair\"\nslow_start = true").unwrap();
        let p = spec.params_for("lighthouse").unwrap();
        assert_eq!((p.upload, p.download, p.slow_start), (LinkQueue::Fair, LinkQueue::Fair, true));
        let fifo: GossipSpec = toml::from_str("[params]\nslow_start = true").unwrap();
        assert!(fifo.params_for("ethereum").unwrap_err().contains("gossip.params.slow_start"));
        let rounds: GossipSpec = toml::from_str("[params]\nupload = \"fair\"\nslow_start_rounds = true").unwrap();
        assert!(rounds.params_for("ethereum").unwrap_err().contains("slow_start_rounds"));
        let both: GossipSpec = toml::from_str(
            "[params]\nupload = \"fair\"\nslow_start = true\nslow_start_rounds = true\nslow_start_windows = true",
        )
        .unwrap();
        assert!(both.params_for("ethereum").unwrap_err().contains("slow_start_windows"));
        assert!(toml::from_str::<GossipSpec>("[params]\nupload = \"lifo\"").is_err());
    }

    #[test]
    fn every_shipped_calibrated_profile_parses_over_its_base_and_validates() {
        for (name, text) in CALIBRATED {
            let file: ProfileFile = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let base = GossipParams::profile(&file.base).unwrap_or_else(|| panic!("{name}: base {}", file.base));
            let p = GossipSpec::default().params_for(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_ne!(p, base, "{name} changes nothing");
            let mut laid = base.clone();
            file.params.apply(&mut laid);
            assert_eq!(p, laid, "{name}");
            assert!(file.fit.is_some_and(|f| f.contains_key("errors")), "{name} carries its error table");
            assert!(GossipParams::profile_names().contains(name));
        }
        // A spec's own overrides still win over a calibrated profile's.
        let spec: GossipSpec = toml::from_str("[params]\nd = 6").unwrap();
        assert_eq!(spec.params_for("calibrated/gossip-node").unwrap().d, 6);
        assert!(spec.params_for("calibrated/nothing").unwrap_err().contains("calibrated/gossip-node"));
    }

    #[test]
    fn pipelining_is_a_download_link_only() {
        let down: GossipSpec = toml::from_str("[params]\ndownload = \"pipelined\"").unwrap();
        assert_eq!(down.params_for("ethereum").unwrap().download, LinkQueue::Pipelined);
        let up: GossipSpec = toml::from_str("[params]\nupload = \"pipelined\"").unwrap();
        assert!(up.params_for("ethereum").unwrap_err().contains("upload = \"pipelined\""));
    }
}
