//! Real clients as peers of surrogate identities: the engine's side of the [`Boundary`]. Packets
//! from direct hosts pass the identity's download queue, then its TCP endpoint and libp2p stack;
//! what a client says is turned into the router's RPCs (so meshes, scores, backoffs and
//! IDONTWANTs treat it as any peer), and what the router says to a client is encoded to the wire
//! and leaves as TCP segments over the identity's upload link and the network path.
//!
//! Messages keep their identity across the boundary. A message a client publishes keeps its
//! exact bytes: its router key is derived from its message id, and its content is kept (once per
//! shard) for the clients it is forwarded to. A message a surrogate publishes is given real bytes
//! when it first crosses to a client: a block header (slot, publisher, publication time in Unix
//! ns, as `gossip-node` reads it) padded to the message's size, signed with the publisher's key.

use super::{Action, Conn, DOWN, Down, GossipEngine, NONE, Pending, Up};
use crate::boundary::{Output, identity_key};
use crate::config::LinkQueue;
use crate::rpc::{CLIENT_KEY, MsgKey, NO_HINT, Rpc, RpcKind};
use crate::topics::topic_name;
use crate::traffic::Publication;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use thermocline_bus::kinds::{HOT_MARK, HOT_MESSAGE, PACKET};
use thermocline_bus::{Event, HostId, ShardId, SimTime};
use thermocline_models::directory::HostDirectory;
use thermocline_models::partition::Partition;
use thermocline_net::{MarkNote, StreamMark, decide};
use thermocline_wire::gossipsub::{
    self, Control, Graft, IDontWant, IHave, IWant, Message, MessageIdFn, Prune, SubOpts,
};

/// The wire form of a message known to this shard, with its id.
pub(super) struct Content {
    pub message: Message,
    pub id: Vec<u8>,
    /// The host of the client that published it (`NONE` for the tail's own).
    pub origin: u32,
}

/// For every shard but `me`, the first surrogate it holds (of the `n` surrogates).
pub(super) fn shard_hosts(partition: &Partition, n: u32, me: ShardId) -> Vec<(ShardId, u32)> {
    let mut found: Vec<(ShardId, u32)> = Vec::new();
    for h in 0..n {
        let s = partition.shard_of(h);
        if s != me && !found.iter().any(|&(t, _)| t == s) {
            found.push((s, h));
        }
    }
    found.sort();
    found
}

/// Every scheduled surrogate publication, in time order, and how far
/// [`GossipEngine::learn_schedule`] has registered their ids.
#[derive(Default)]
pub(super) struct Schedule {
    publications: Vec<Publication>,
    next: usize,
    /// Publications registered per publisher (the next one's sequence number).
    count: BTreeMap<u32, u32>,
    /// Publishers' peer ids, as the `from` of their messages.
    from: BTreeMap<u32, Vec<u8>>,
    /// Topic and publication time of each registered message.
    by_key: BTreeMap<MsgKey, (u8, u64)>,
}

impl Schedule {
    /// The schedule of `publications` (every shard's, as [`crate::traffic::publications`]
    /// gives them).
    pub(super) fn new(mut publications: Vec<Publication>) -> Self {
        publications.sort_by_key(|p| p.at_ns);
        Schedule { publications, ..Schedule::default() }
    }
}

/// The router key of a client's message with id `id`: a hash of it, so every shard derives the
/// same key without coordination.
fn hot_key(id: &[u8]) -> MsgKey {
    let h = Sha256::digest(id);
    MsgKey(CLIENT_KEY | (u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) >> 1))
}

impl GossipEngine {
    /// Whether connection `c` is to a client (a direct host), not an identity.
    pub(super) fn is_client(&self, c: usize) -> bool {
        let p = self.conn[c].peer;
        p != NONE && p as usize >= self.local.len()
    }

    /// A packet from a direct host reached local identity `i`: it is downloaded first.
    pub(super) fn packet_arrives(&mut self, i: usize, now: u64, token: u32) {
        let len = self.packets.get(&token).map_or(0, |p| p.len() as u64);
        let bw = self.down_bw(i, now);
        if prm!(self, i).download == LinkQueue::Fair {
            // Beside the copies its peer identities send, sharing the link with them.
            self.fair_down[i].push(now, len, bw, Down::Packet(token));
            self.fair_rx_wake(i, now);
            return;
        }
        let done = self.downlink[i].transmit(now, len, bw);
        self.self_event(i, done, Action::PacketIn { token });
    }

    /// A downloaded packet goes to identity `i`'s endpoint.
    pub(super) fn packet_in(&mut self, i: usize, now: u64, token: u32) {
        let Some(packet) = self.packets.remove(&token) else { return };
        let (id, dir) = (self.ids[i], &self.net.directory);
        let ip = HostDirectory::ip_of(id);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.handle_packet(id, ip, now, packet.to_vec(), &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// Identity `i`'s endpoint timer.
    pub(super) fn client_timer(&mut self, i: usize, now: u64) {
        if self.client_timers.get(&(i as u32)) == Some(&now) {
            self.client_timers.remove(&(i as u32));
        }
        let (id, dir) = (self.ids[i], &self.net.directory);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.handle_timeout(id, now, &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// Identity `i` dials the client of its dial `k`, unless it has it as a peer already.
    pub(super) fn dial_client(&mut self, i: usize, now: u64, k: u32) {
        let (client, port) = self.dials[k as usize];
        if self.slot_of(i, client).is_some() {
            return;
        }
        let (id, dir) = (self.ids[i], &self.net.directory);
        let to = std::net::SocketAddrV4::new(HostDirectory::ip_of(client), port);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.dial(id, HostDirectory::ip_of(id), now, (client, to), &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// Carries out what the boundary asked for, then arms identity `i`'s timer.
    pub(super) fn apply(&mut self, i: usize, now: u64, outs: Vec<Output>) {
        for out in outs {
            match out {
                Output::Packet(p) => self.packet_out(i, now, p),
                Output::Up { host, outbound, .. } => {
                    self.client_up(i, host);
                    self.announce(i, now, host);
                    if outbound {
                        self.eth2_greet(i, now, host);
                    }
                }
                Output::Request { host, stream, protocol, body } => {
                    self.eth2_request(i, now, host, stream, &protocol, &body)
                }
                Output::Response { body, .. } => self.eth2_response(i, body),
                Output::Down { host } => self.client_down(i, host, now),
                Output::Rpc { host, rpc } => self.client_rpc(i, now, host, rpc),
                Output::Mark { host, mark } => self.mark_out(i, now, host, mark),
            }
        }
        let id = self.ids[i];
        let Some(t) = self.boundary.as_mut().and_then(|b| b.poll_timeout(id, now)) else { return };
        if self.client_timers.get(&(i as u32)).is_none_or(|&armed| t < armed) {
            self.client_timers.insert(i as u32, t);
            self.self_event(i, t, Action::ClientTimer);
        }
    }

    /// An IPv4 packet leaves identity `i` for a direct host: its upload link, then the path.
    fn packet_out(&mut self, i: usize, now: u64, packet: Vec<u8>) {
        let up = self.up_bw(i, now);
        if prm!(self, i).upload == LinkQueue::Fair {
            // Beside the copies it sends its peer identities, sharing the link with them.
            let len = packet.len() as u64;
            let token = self.keep_packet(Bytes::from(packet));
            self.fair[i].push(now, len, up, Up::Packet(token));
            self.fair_wake(i, now);
            return;
        }
        let depart = self.client_uplink.entry(i as u32).or_default().transmit(now, packet.len() as u64, up);
        self.packet_departs(i, depart, packet.into());
    }

    /// A packet for a client that identity `i` kept on its fair upload link has been sent.
    pub(super) fn packet_leaves(&mut self, i: usize, now: u64, token: u32) {
        if let Some(packet) = self.packets.remove(&token) {
            self.packet_departs(i, now, packet);
        }
    }

    /// A packet for a client leaves identity `i` at `depart`, over the network path.
    fn packet_departs(&mut self, i: usize, depart: u64, packet: Bytes) {
        let Some(dst) = packet.get(16..20).and_then(|a| {
            let ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            self.net.directory.host_of_ip(ip)
        }) else {
            return;
        };
        let src = self.ids[i];
        let depart = self.shaping.depart(&self.rules, (src, dst), depart, packet.len() as u64);
        let path = self.net.path(src, dst);
        let Some(time) = decide(&self.net, path, &self.rules, (src, dst), depart, false, &mut self.rng[i]) else {
            return;
        };
        let seq = self.seq[i];
        self.seq[i] += 1;
        let event = Event {
            deliver_time: SimTime::from_nanos(time),
            src_host: HostId(src),
            src_seq: seq,
            dst_host: HostId(dst),
            kind: PACKET,
            payload: packet,
        };
        self.client_out.push((self.partition.shard_of(dst), event));
    }

    /// A message identity `i` sends a client has left whole: the client's host learns where it
    /// ends on the stream, as early as any of its bytes can arrive (the path's smallest delay
    /// after now), so it is there before the stream reaches that offset.
    fn mark_out(&mut self, i: usize, now: u64, host: u32, mark: StreamMark) {
        let src = self.ids[i];
        let seq = self.seq[i];
        self.seq[i] += 1;
        let event = Event {
            deliver_time: SimTime::from_nanos(now + self.net.path(src, host).min_latency_ns()),
            src_host: HostId(src),
            src_seq: seq,
            dst_host: HostId(host),
            kind: HOT_MARK,
            payload: Bytes::from(mark.encode()),
        };
        self.client_out.push((self.partition.shard_of(host), event));
    }

    /// A client is authenticated: it takes a free connection slot of identity `i` (or is
    /// ignored when there is none).
    fn client_up(&mut self, i: usize, host: u32) {
        if self.slot_of(i, host).is_some() {
            return;
        }
        let start = self.row[i] as usize + self.nmain[i] as usize;
        let Some(c) = (start..self.row[i + 1] as usize).find(|&c| self.conn[c].peer == NONE) else { return };
        let path = self.net.path_index(self.ids[i], host);
        self.conn[c] = Conn { peer: host, at: NONE, path, shared: 0, flags: 0, rev: NO_HINT };
        self.score[c] = Default::default();
        for s in 0..self.per {
            self.backoff_until_ms[c * self.per + s] = 0;
        }
    }

    /// Tells a new client the topics identity `i` subscribes to, as a peer's first RPC does.
    fn announce(&mut self, i: usize, now: u64, host: u32) {
        let subscriptions =
            self.subs.of(self.ids[i]).iter().map(|&t| SubOpts { subscribe: true, topic: self.wire_topic(t) }).collect();
        let rpc = gossipsub::Rpc { subscriptions, ..Default::default() };
        let (id, dir) = (self.ids[i], &self.net.directory);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.send_rpc(id, host, now, &rpc, None, &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// A client's connection ended.
    fn client_down(&mut self, i: usize, host: u32, now: u64) {
        let Some(c) = self.slot_of(i, host) else { return };
        let now_ms = (now / 1_000_000) as u32;
        for s in 0..self.per {
            self.leave_mesh(i, s, c, now_ms);
        }
        self.conn[c].flags |= DOWN;
        self.free_slot(i, c);
    }

    /// What a client sent, as the router's RPCs from it.
    fn client_rpc(&mut self, i: usize, now: u64, host: u32, rpc: gossipsub::Rpc) {
        let Some(c) = self.slot_of(i, host) else { return };
        for sub in &rpc.subscriptions {
            let Some(s) = self.topic_index(&sub.topic).and_then(|t| self.topic_slot(i, t)) else { continue };
            match sub.subscribe {
                true => self.conn[c].shared |= 1 << s,
                false => self.conn[c].shared &= !(1 << s),
            }
        }
        let mut rpcs = Vec::new();
        for m in rpc.publish {
            let Some(t) = self.topic_index(&m.topic) else { continue };
            let size = m.encode().len() as u32;
            let key = self.learn(i, m, now, host);
            rpcs.push(self.router_rpc(RpcKind::Message, t, key, size));
        }
        if let Some(control) = rpc.control {
            self.control_rpcs(control, now, &mut rpcs);
        }
        for r in rpcs {
            // A client's RPC that the router refuses (none is expected) is dropped.
            let _ = self.handle(i, now, host, r);
        }
    }

    /// The router's RPCs for a client's control messages.
    fn control_rpcs(&mut self, control: Control, now: u64, rpcs: &mut Vec<Rpc>) {
        for ihave in control.ihave {
            let Some(t) = self.topic_index(&ihave.topic) else { continue };
            for id in ihave.message_ids {
                let key = self.key_of_id(&id, now);
                rpcs.push(self.router_rpc(RpcKind::IHave, t, key, 0));
            }
        }
        for id in control.iwant.into_iter().flat_map(|w| w.message_ids) {
            let key = self.key_of_id(&id, now);
            let t = self.msg_slot.get(&key).map_or(0, |&m| self.msgs[m as usize].topic);
            rpcs.push(self.router_rpc(RpcKind::IWant, t, key, 0));
        }
        for id in control.idontwant.into_iter().flat_map(|w| w.message_ids) {
            let key = self.key_of_id(&id, now);
            rpcs.push(self.router_rpc(RpcKind::IDontWant, 0, key, 0));
        }
        for g in control.graft {
            if let Some(t) = self.topic_index(&g.topic) {
                rpcs.push(Rpc::control(RpcKind::Graft, t));
            }
        }
        for p in control.prune {
            if let Some(t) = self.topic_index(&p.topic) {
                let mut r = Rpc::control(RpcKind::Prune, t);
                r.backoff_ms = p.backoff.unwrap_or(60).saturating_mul(1000).min(u64::from(u32::MAX)) as u32;
                rpcs.push(r);
            }
        }
    }

    /// A router RPC about message `key` on topic `t` (of `size` bytes, for a client's
    /// message). A surrogate's message has its topic, size and publication time from the
    /// schedule, whatever the client said and whichever RPC this shard hears of it in first,
    /// so that its state is the same on any shard.
    fn router_rpc(&self, kind: RpcKind, t: u8, key: MsgKey, size: u32) -> Rpc {
        if let Some(&(topic, at_ns)) = self.schedule.by_key.get(&key) {
            let mut r = Rpc::control(kind, topic);
            r.msg = key;
            r.size = self.message_size(topic);
            r.published_ns = at_ns;
            r.hops = 1;
            return r;
        }
        // A client's message has no publication time the tail can know: its arrivals are
        // times since the start of the run, or in an Ethereum domain since the start of the
        // message's slot.
        let published_ns = match self.msg_slot.get(&key) {
            Some(&m) => self.msgs[m as usize].published_ns,
            None => self.retired_published.get(&key).copied().or_else(|| self.eth2_slot_start(key)).unwrap_or(0),
        };
        let mut r = Rpc::control(kind, t);
        r.msg = key;
        r.size = size;
        r.published_ns = published_ns;
        r.hops = 1;
        r
    }

    /// Remembers a message the client on `host` sent to identity `i` and returns its key. The
    /// first time this shard sees it, its bytes (after the host it came from, 4 bytes) go to
    /// every other shard, arriving one runahead later: no identity there can hear of it sooner,
    /// so it is there whenever one must forward it.
    fn learn(&mut self, i: usize, message: Message, now: u64, host: u32) -> MsgKey {
        let id = self.id_of(&message);
        let key = self.key_of_id(&id, now);
        // A surrogate's message is made alike on every shard when it crosses to a client.
        if !key.is_client() || self.content.contains_key(&key) {
            return key;
        }
        if !self.shard_hosts.is_empty() {
            let payload = Bytes::from([&host.to_be_bytes()[..], &message.encode()].concat());
            for k in 0..self.shard_hosts.len() {
                let (shard, host) = self.shard_hosts[k];
                let seq = self.seq[i];
                self.seq[i] += 1;
                let event = Event {
                    deliver_time: SimTime::from_nanos(now + self.runahead_ns),
                    src_host: HostId(self.ids[i]),
                    src_seq: seq,
                    dst_host: HostId(host),
                    kind: HOT_MESSAGE,
                    payload: payload.clone(),
                };
                self.client_out.push((shard, event));
            }
        }
        self.eth2_learn(&message, key);
        self.content.insert(key, Content { message, id, origin: host });
        key
    }

    /// A client's message another shard sent (see [`GossipEngine::learn`]).
    pub(super) fn store_hot(&mut self, bytes: &[u8], now: u64) -> Result<(), String> {
        let (origin, rest) = bytes.split_first_chunk::<4>().ok_or("shorter than its origin")?;
        let message = Message::decode(rest).map_err(|e| e.to_string())?;
        let id = self.id_of(&message);
        let key = self.key_of_id(&id, now);
        if !self.content.contains_key(&key) {
            self.eth2_learn(&message, key);
            self.content.insert(key, Content { message, id, origin: u32::from_be_bytes(*origin) });
        }
        Ok(())
    }

    /// The id of `message` under its topic's function (libp2p's default for topics the
    /// surrogates do not model).
    fn id_of(&self, message: &Message) -> Vec<u8> {
        let f = self.topic_index(&message.topic).map_or(MessageIdFn::FromAndSeqno, |t| self.message_ids[t as usize]);
        f.message_id(message)
    }

    /// The key of the message with id `id` a client sent at `now`: a surrogate message
    /// published by then, or a client's message's key.
    fn key_of_id(&mut self, id: &[u8], now: u64) -> MsgKey {
        if let Some(&k) = self.key_by_id.get(id) {
            return k;
        }
        self.learn_schedule(now);
        *self.key_by_id.entry(id.to_vec()).or_insert_with(|| hot_key(id))
    }

    /// Registers the ids of the surrogate messages scheduled up to `now`. Every shard knows
    /// the schedule, so it resolves an id to the same key whether or not the message crossed
    /// to a client on it; the `k`-th publication of an identity has its `k`-th key, as
    /// [`GossipEngine::publish`] numbers them.
    fn learn_schedule(&mut self, now: u64) {
        while let Some(&p) = self.schedule.publications.get(self.schedule.next).filter(|p| p.at_ns <= now) {
            self.schedule.next += 1;
            let seq = self.schedule.count.entry(p.publisher).or_insert(0);
            let key = MsgKey::new(p.publisher, *seq);
            *seq += 1;
            let (seed, eth2) = (self.seed, self.eth2.is_some());
            let from = match eth2 {
                // Ethereum's messages carry no author.
                true => Vec::new(),
                false => self
                    .schedule
                    .from
                    .entry(p.publisher)
                    .or_insert_with(|| identity_key(seed, p.publisher).peer_id().to_bytes())
                    .clone(),
            };
            let message = self.surrogate_bytes(key, p.topic, self.message_size(p.topic), p.at_ns, from);
            let id = self.message_ids[p.topic as usize].message_id(&message);
            self.key_by_id.entry(id).or_insert(key);
            self.schedule.by_key.insert(key, (p.topic, p.at_ns));
        }
    }

    /// The wire form of message `key` (a surrogate's is made and signed on first use); `None`
    /// for a client's message whose content is not on this shard.
    fn content_of(&mut self, key: MsgKey, topic: u8, size: u32, published_ns: u64) -> Option<&Content> {
        if !self.content.contains_key(&key) {
            if key.is_client() {
                return None;
            }
            let message = self.surrogate_message(key, topic, size, published_ns);
            let id = self.message_ids[topic as usize].message_id(&message);
            self.content.insert(key, Content { message, id, origin: NONE });
        }
        self.content.get(&key)
    }

    /// The bytes of surrogate message `key`: a block header as `gossip-node` reads it, padding to
    /// `size`, the publisher's signature. On Ethereum topics the same bytes, snappy-compressed,
    /// unsigned (the spec's `StrictNoSign`): no client would accept them as a block.
    fn surrogate_message(&self, key: MsgKey, topic: u8, size: u32, published_ns: u64) -> Message {
        if self.eth2.is_some() {
            return self.surrogate_bytes(key, topic, size, published_ns, Vec::new());
        }
        let signer = identity_key(self.seed, key.publisher());
        let mut m = self.surrogate_bytes(key, topic, size, published_ns, signer.peer_id().to_bytes());
        m.signature = Some(signer.sign(&gossipsub::signing_bytes(&m)));
        m
    }

    /// [`GossipEngine::surrogate_message`] before its signature (what its id depends on), `from`
    /// its publisher's peer id.
    fn surrogate_bytes(&self, key: MsgKey, topic: u8, size: u32, published_ns: u64, from: Vec<u8>) -> Message {
        let publisher = key.publisher();
        let slot = self.traffic_slot(published_ns);
        let mut data = Vec::with_capacity(size as usize);
        data.extend_from_slice(&slot.to_be_bytes());
        data.extend_from_slice(&publisher.to_be_bytes());
        data.extend_from_slice(&(self.start_unix_ns + published_ns).to_be_bytes());
        data.extend_from_slice(&key.0.to_be_bytes());
        data.resize((size as usize).max(data.len()), 0x5a);
        if self.eth2.is_some() {
            let data = thermocline_wire::eth2::snappy::compress_block(&data);
            return Message { data, topic: self.wire_topic(topic), ..Message::default() };
        }
        Message {
            from: Some(from),
            data,
            seqno: Some(u64::from(key.0 as u32).to_be_bytes().to_vec()),
            topic: self.wire_topic(topic),
            signature: None,
            key: None,
        }
    }

    /// The router sends `rpc` from identity `i` to the client of connection `c`: encoded to the
    /// wire and handed to the identity's libp2p connection at `now`.
    pub(super) fn client_send(&mut self, i: usize, c: usize, now: u64, rpc: Rpc) {
        let host = self.conn[c].peer;
        if self.eth2_withholds(&rpc) {
            return;
        }
        let Some(wire) = self.wire_rpc(&rpc) else { return };
        let note = if rpc.kind == RpcKind::Message { self.mark_note(i, host, &rpc) } else { None };
        let (id, dir) = (self.ids[i], &self.net.directory);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.send_rpc(id, host, now, &wire, note, &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// What the client on `host` is told of message `rpc` from identity `i`, to time its arrival
    /// there; `None` for the client's own message coming back. A client's message carries its
    /// publication time in its block header (as `gossip-node` writes it: slot, publisher, Unix
    /// ns), which the tail does not know otherwise; without one it counts from the start of the run.
    fn mark_note(&self, i: usize, host: u32, rpc: &Rpc) -> Option<MarkNote> {
        let content = self.content.get(&rpc.msg)?;
        let client = self.boundary.as_ref()?.client_peer(self.ids[i], host);
        // Ethereum's messages name no publisher: the client that first gave the tail the
        // message published it, where clients meet only surrogates.
        let from_it = client.is_some_and(|p| content.message.from.as_deref() == Some(&p.to_bytes()[..]));
        if from_it || (self.eth2.is_some() && content.origin == host) {
            return None;
        }
        let published_ns =
            match rpc.msg.is_client() {
                // Ethereum payloads carry no publication time: arrivals count from the start of
                // the message's slot (see `router_rpc`).
                true if self.eth2.is_some() => rpc.published_ns,
                true => content.message.data.get(12..20).map_or(0, |t| {
                    u64::from_be_bytes(t.try_into().expect("8 bytes")).saturating_sub(self.start_unix_ns)
                }),
                false => rpc.published_ns,
            };
        let slot = self.slot_at(published_ns);
        Some(MarkNote {
            message: rpc.msg.0,
            published_ns,
            slot,
            slot_start_ns: self.slot_start_ns(slot),
            sender: self.ids[i],
            hops: rpc.hops,
            topic: topic_name(rpc.topic),
        })
    }

    /// The wire form of a router RPC, if it has one.
    fn wire_rpc(&mut self, rpc: &Rpc) -> Option<gossipsub::Rpc> {
        let topic = self.wire_topic(rpc.topic);
        let mut control = Control::default();
        let mut out = gossipsub::Rpc::default();
        match rpc.kind {
            RpcKind::Message => {
                out.publish.push(self.content_of(rpc.msg, rpc.topic, rpc.size, rpc.published_ns)?.message.clone())
            }
            RpcKind::IHave => {
                let id = self.content_of(rpc.msg, rpc.topic, rpc.size, rpc.published_ns)?.id.clone();
                control.ihave.push(IHave { topic, message_ids: vec![id] });
            }
            RpcKind::IWant => {
                let id = self.content.get(&rpc.msg).map(|c| c.id.clone()).or_else(|| self.id_of_key(rpc.msg))?;
                control.iwant.push(IWant { message_ids: vec![id] });
            }
            RpcKind::IDontWant => {
                let id = self.content_of(rpc.msg, rpc.topic, rpc.size, rpc.published_ns)?.id.clone();
                control.idontwant.push(IDontWant { message_ids: vec![id] });
            }
            RpcKind::Graft => control.graft.push(Graft { topic }),
            RpcKind::Prune => {
                let backoff = Some(u64::from(rpc.backoff_ms).div_ceil(1000).max(1));
                control.prune.push(Prune { topic, peers: Vec::new(), backoff });
            }
            RpcKind::PeerExchange | RpcKind::Connect | RpcKind::Accept | RpcKind::Disconnect => return None,
        }
        if control != Control::default() {
            out.control = Some(control);
        }
        Some(out)
    }

    /// The id of message `key` when only its id is known (a client advertised it).
    fn id_of_key(&self, key: MsgKey) -> Option<Vec<u8>> {
        self.key_by_id.iter().find(|(_, k)| **k == key).map(|(id, _)| id.clone())
    }

    /// Keeps `packet` (one to or from a client) until its link is done with it: its token.
    fn keep_packet(&mut self, packet: Bytes) -> u32 {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        self.packets.insert(token, packet);
        token
    }

    /// A packet event from a direct host for local identity `dst`, kept until it is handled.
    pub(super) fn queue_packet(&mut self, e: &Event, dst: u32) {
        let token = self.keep_packet(e.payload.clone());
        self.queue.push(Pending {
            time: e.deliver_time.as_nanos(),
            src: e.src_host.0,
            seq: e.src_seq,
            dst,
            action: Action::PacketArrive { token },
        });
    }
}
