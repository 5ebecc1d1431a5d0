//! Peers found, not assigned (`[gossip] discovery = "discv5"`): the shard's discv5 engine runs
//! on the same identities, and when an identity's query for peers (a lookup of a random target)
//! ends, its peer manager dials what the query found, closest to the target first, until it has
//! `outbound_peers` outbound connections; it keeps the rest and dials the next whenever a dial
//! is refused or a peer leaves, until its next query replaces them. It accepts dials from others
//! up to `max_peers`, as with peer exchange. After its first query for peers an identity
//! queries once for each subnet it subscribes to (a lookup that keeps the subscribers it hears
//! of, the predicate a client applies to records' `attnets` or custody), and dials those until it
//! has `subnet_peers` peers on the subnet, beyond `max_peers` if need be.
//!
//! Discovery does not depend on gossip, so each window runs discovery first, over the whole
//! window, and the lookups that ended in it become dial events in the gossip queue at the times
//! they ended. Their canonical keys are the identity, that time and a number from discovery's
//! own sequence (in a space of its own: the top bit set), so they are the same whatever the
//! window boundaries, and the run keeps one digest on any shard count.

use super::{Action, DOWN, GossipEngine, OUTBOUND, Pending};
use crate::discv5::DiscoveryEngine;
use crate::rpc::{Rpc, RpcKind};
use arrow_array::{ArrayRef, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use thermocline_bus::{Engine, EngineError, EngineOutput, Event, Outbox, SimTime, Table, kinds};
use thermocline_models::metrics::table;

/// What [`GossipEngine::dial`] did.
enum Dial {
    Dialled,
    /// The node is the identity itself or a peer already.
    Skipped,
    /// No free slot: nothing more can be dialled.
    NoSlot,
}

/// The sequence numbers of dials from discovery: apart from the identity's own.
const FOUND_SEQ: u64 = 1 << 63;

/// A gossip engine's discovery side.
pub(super) struct Peering {
    engine: Box<DiscoveryEngine>,
    /// Outbound connections an identity dials for.
    outbound: u32,
    /// Peers an identity dials for on each subnet it subscribes to.
    subnet_peers: u32,
    /// What queries found (and the subnet of a subnet query), waiting for their dial events,
    /// by token.
    found: BTreeMap<u32, (Option<u8>, Vec<u32>)>,
    next_token: u32,
    /// Per local identity: when it first had a connection up, and when it first had
    /// `outbound` outbound connections up (`u64::MAX`: not yet).
    first_peer_ns: Vec<u64>,
    target_ns: Vec<u64>,
    /// Dials made, per local identity.
    dials: Vec<u32>,
    /// Per local identity: the identities its last query found that it has not dialled yet,
    /// next first.
    known: BTreeMap<u32, VecDeque<u32>>,
    /// When each (local identity, subnet topic) first had `subnet_peers` peers up.
    subnet_reached: BTreeMap<(u32, u8), u64>,
}

impl Peering {
    /// Discovery for `identities` local identities.
    pub(super) fn new(engine: Box<DiscoveryEngine>, outbound: u32, subnet_peers: u32, identities: usize) -> Self {
        Peering {
            engine,
            outbound,
            subnet_peers,
            found: BTreeMap::new(),
            next_token: 0,
            first_peer_ns: vec![u64::MAX; identities],
            target_ns: vec![u64::MAX; identities],
            dials: vec![0; identities],
            known: BTreeMap::new(),
            subnet_reached: BTreeMap::new(),
        }
    }

    /// Forget what identity `dst`'s lookup found (it was offline when it should have dialled).
    pub(super) fn drop_found(&mut self, token: u32) {
        self.found.remove(&token);
    }
}

impl GossipEngine {
    /// Run discovery to `end` (the window's end), then turn the queries that ended into dial
    /// events.
    pub(super) fn run_discovery(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let Some(p) = self.discovery.as_mut() else { return Ok(0) };
        let ran = p.engine.run_until(end, outbox)?;
        for f in p.engine.take_found() {
            let Some(&i) = self.local.get(f.identity as usize) else { continue };
            let token = p.next_token;
            p.next_token = p.next_token.wrapping_add(1);
            p.found.insert(token, (f.subnet, f.nodes));
            let action = Action::Discovered { token };
            self.queue.push(Pending { time: f.at, src: f.identity, seq: FOUND_SEQ | f.seq, dst: i, action });
        }
        Ok(ran)
    }

    /// Identity `i`'s query ended: what it found (under `token`) replaces what it knew, and it
    /// dials.
    pub(super) fn dial_found(&mut self, i: usize, now: u64, token: u32) {
        let Some(p) = self.discovery.as_mut() else { return };
        let Some((subnet, nodes)) = p.found.remove(&token) else { return };
        match subnet {
            Some(t) => self.dial_subnet(i, now, t, nodes),
            None => {
                p.known.insert(i as u32, nodes.into());
                self.dial_discovered(i, now);
            }
        }
    }

    /// Identity `i` dials subscribers of subnet topic `t` its subnet query found, in order, until
    /// it has `subnet_peers` peers (open or opening) on it.
    fn dial_subnet(&mut self, i: usize, now: u64, t: u8, nodes: Vec<u32>) {
        let Some(target) = self.discovery.as_ref().map(|p| p.subnet_peers as usize) else { return };
        let mut have = self.peers(i).filter(|&c| self.on_subnet(c, t)).count();
        for node in nodes {
            if have >= target {
                return;
            }
            match self.dial(i, now, node) {
                Dial::Dialled => have += 1,
                Dial::Skipped => {}
                Dial::NoSlot => return,
            }
        }
    }

    /// Identity `i` dials the identities it knows of, in order, while it has fewer than its
    /// target of outbound connections (open or opening) and fewer than `max_peers` connections
    /// up; those it skips (itself, peers already) are forgotten.
    pub(super) fn dial_discovered(&mut self, i: usize, now: u64) {
        let Some(p) = self.discovery.as_ref() else { return };
        let target = p.outbound as usize;
        let mut outbound = self.peers(i).filter(|&c| self.conn[c].flags & OUTBOUND != 0).count();
        while outbound < target && self.connected(i) < self.max_peers {
            let Some(p) = self.discovery.as_mut() else { return };
            let Some(node) = p.known.get_mut(&(i as u32)).and_then(VecDeque::pop_front) else { return };
            match self.dial(i, now, node) {
                Dial::Dialled => outbound += 1,
                Dial::Skipped => {}
                Dial::NoSlot => return,
            }
        }
    }

    /// Identity `i` dials `node` in a free slot, counting the dial; itself and peers it has are
    /// skipped.
    fn dial(&mut self, i: usize, now: u64, node: u32) -> Dial {
        if node == self.ids[i] || self.slot_of(i, node).is_some() {
            return Dial::Skipped;
        }
        let Some(c) = self.take_slot(i, node) else { return Dial::NoSlot };
        self.conn[c].flags |= OUTBOUND;
        self.send_on(i, c, now, Rpc::control(RpcKind::Connect, 0));
        if let Some(p) = self.discovery.as_mut() {
            p.dials[i] += 1;
        }
        Dial::Dialled
    }

    /// Identity `i`'s outbound connections that are up.
    fn outbound_up(&self, i: usize) -> usize {
        self.peers(i).filter(|&c| self.conn[c].flags & (OUTBOUND | DOWN) == OUTBOUND).count()
    }

    /// Identity `i`'s connections that are up in the slots for found peers and that others
    /// dialled: what discovery brought it without its asking.
    fn found_inbound(&self, i: usize) -> usize {
        let found = self.row[i] as usize + self.nmain[i] as usize..self.row[i + 1] as usize;
        // Identities only: real clients take these slots too.
        found
            .filter(|&c| (self.conn[c].peer as usize) < self.local.len() && self.conn[c].flags & (OUTBOUND | DOWN) == 0)
            .count()
    }

    /// Whether connection `c` is to an identity that subscribes to topic `t`.
    fn on_subnet(&self, c: usize, t: u8) -> bool {
        let p = self.conn[c].peer;
        (p as usize) < self.local.len() && self.subs.has(p, t)
    }

    /// A connection of identity `i` came up at `now`: the peering times it.
    pub(super) fn peer_up(&mut self, i: usize, now: u64) {
        let Some(p) = self.discovery.as_ref() else { return };
        let target = p.outbound as usize;
        let outbound_up = self.outbound_up(i);
        let subnet_peers = p.subnet_peers as usize;
        let reached: Vec<u8> = self.subs.of(self.ids[i])[1..]
            .iter()
            .copied()
            .filter(|&t| !p.subnet_reached.contains_key(&(i as u32, t)))
            .filter(|&t| self.peers(i).filter(|&c| self.up(c) && self.on_subnet(c, t)).count() >= subnet_peers)
            .collect();
        let Some(p) = self.discovery.as_mut() else { return };
        p.first_peer_ns[i] = p.first_peer_ns[i].min(now);
        if outbound_up >= target {
            p.target_ns[i] = p.target_ns[i].min(now);
        }
        for t in reached {
            p.subnet_reached.insert((i as u32, t), now);
        }
    }

    /// The earliest event of discovery (`u64::MAX`: none).
    pub(super) fn discovery_next(&self) -> u64 {
        self.discovery.as_ref().map_or(u64::MAX, |p| p.engine.next_event_time().as_nanos())
    }

    /// Hand discovery's events (its packets between identities, and UDP packets from clients
    /// when it has a boundary) to it; the rest stay in `events`.
    pub(super) fn deliver_discovery(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        let Some(p) = self.discovery.as_mut() else { return Ok(()) };
        let ours = |e: &Event| e.kind == kinds::DISCV5 || (e.kind == kinds::PACKET && is_udp(&e.payload));
        if !events.iter().any(ours) {
            return Ok(());
        }
        let mut mine = Vec::new();
        events.retain(|e| {
            if ours(e) {
                mine.push(e.clone());
                false
            } else {
                true
            }
        });
        p.engine.deliver(&mut mine)
    }

    /// Discovery's tables handed out during the run.
    pub(super) fn discovery_tables(&mut self) -> Vec<Table> {
        self.discovery.as_mut().map(|p| p.engine.take_tables()).unwrap_or_default()
    }

    /// Discovery's results at the end, with the `gossip_peering` table (by identity, `by_id`).
    pub(super) fn finish_discovery(&mut self, by_id: &[usize]) -> Result<Option<EngineOutput>, EngineError> {
        let Some(p) = self.discovery.as_mut() else { return Ok(None) };
        let mut out = p.engine.finish()?;
        let p = self.discovery.as_ref().expect("checked above");
        let mut record = Vec::new();
        for &i in by_id {
            record.clear();
            record.extend_from_slice(b"peering");
            record.extend_from_slice(&self.ids[i].to_be_bytes());
            record.extend_from_slice(&p.first_peer_ns[i].to_be_bytes());
            record.extend_from_slice(&p.target_ns[i].to_be_bytes());
            record.extend_from_slice(&p.dials[i].to_be_bytes());
            for &t in &self.subs.of(self.ids[i])[1..] {
                let reached = p.subnet_reached.get(&(i as u32, t)).copied().unwrap_or(u64::MAX);
                record.push(t);
                record.extend_from_slice(&reached.to_be_bytes());
            }
            out.digest.add_record(&record);
        }
        let time = |v: &[u64]| -> ArrayRef {
            Arc::new(by_id.iter().map(|&i| (v[i] != u64::MAX).then_some(v[i])).collect::<UInt64Array>())
        };
        out.tables.push(table(
            "gossip_peering",
            vec![
                Field::new("node", DataType::UInt32, false),
                Field::new("first_peer_ns", DataType::UInt64, true),
                Field::new("target_peers_ns", DataType::UInt64, true),
                Field::new("dials", DataType::UInt32, false),
                Field::new("connections", DataType::UInt32, false),
                Field::new("outbound", DataType::UInt32, false),
                Field::new("found_inbound", DataType::UInt32, false),
            ],
            vec![
                Arc::new(by_id.iter().map(|&i| self.ids[i]).collect::<UInt32Array>()),
                time(&p.first_peer_ns),
                time(&p.target_ns),
                Arc::new(by_id.iter().map(|&i| p.dials[i]).collect::<UInt32Array>()),
                Arc::new(by_id.iter().map(|&i| self.connected(i) as u32).collect::<UInt32Array>()),
                Arc::new(by_id.iter().map(|&i| self.outbound_up(i) as u32).collect::<UInt32Array>()),
                Arc::new(by_id.iter().map(|&i| self.found_inbound(i) as u32).collect::<UInt32Array>()),
            ],
        )?);
        out.tables.push(self.subnet_peering_table(by_id)?);
        Ok(Some(out))
    }

    /// `gossip_subnet_peering`: per identity and subnet it subscribes to, when it first had
    /// `subnet_peers` peers on it (null: never), each row also a digest record.
    fn subnet_peering_table(&self, by_id: &[usize]) -> Result<Table, EngineError> {
        let p = self.discovery.as_ref().expect("called with discovery");
        let rows: Vec<(u32, u8, Option<u64>)> = by_id
            .iter()
            .flat_map(|&i| {
                self.subs.of(self.ids[i])[1..]
                    .iter()
                    .map(move |&t| (self.ids[i], t, p.subnet_reached.get(&(i as u32, t)).copied()))
            })
            .collect();
        Ok(table(
            "gossip_subnet_peering",
            vec![
                Field::new("node", DataType::UInt32, false),
                Field::new("topic", DataType::Utf8, false),
                Field::new("reached_ns", DataType::UInt64, true),
            ],
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<UInt32Array>()),
                Arc::new(rows.iter().map(|r| Some(crate::topics::topic_name(r.1))).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| r.2).collect::<UInt64Array>()),
            ],
        )?)
    }
}

/// Whether an IPv4 packet carries UDP (protocol 17): discv5 datagrams from a client, where TCP
/// goes to the libp2p boundary.
fn is_udp(packet: &[u8]) -> bool {
    packet.get(9) == Some(&17)
}
