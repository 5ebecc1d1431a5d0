//! Ethereum's consensus domain at the boundary (`[gossip.eth2]`): what an identity tells a
//! real client about the chain and serves it. The shard keeps every block clients published
//! (their exact bytes, from the gossip that crossed the tail); an identity's view of the chain
//! is the blocks it has received itself. From that it answers the req/resp methods clients call
//! on a peer: Status (its head, the finalized checkpoint clients told it), Ping and MetaData
//! (its attestation subnets), Goodbye, and blocks by range (along its head's ancestry) and by
//! root. It sends a Status to the clients it dials, as the spec asks of a dialer.

use super::GossipEngine;
use crate::config::Eth2Domain;
use crate::rpc::{MsgKey, Rpc, RpcKind};
use crate::topics::{TOPIC_COUNT, attnets, topic_family, topic_name};
use arrow_schema::{ArrowError, DataType, Field};
use std::collections::{BTreeMap, BTreeSet};
use thermocline_bus::Table;
use thermocline_models::metrics::{str_col, table, u64_col};
use thermocline_wire::eth2::reqresp::{self, INVALID_REQUEST, Method};
use thermocline_wire::eth2::types::{
    BlocksByRange, MAX_REQUEST_BLOCKS, MetaData, Status, aggregate_slot, attestation_slot, decode_roots,
    read_signed_block,
};
use thermocline_wire::eth2::{self, GOSSIP_MAX_SIZE, snappy};
use thermocline_wire::gossipsub::Message;
use thermocline_wire::mux::StreamId;

/// A block a client published, as the shard keeps it.
struct Block {
    slot: u64,
    parent: [u8; 32],
    /// The `SignedBeaconBlock`'s SSZ bytes.
    ssz: Vec<u8>,
    /// Its router key.
    key: MsgKey,
}

/// What the shard knows of the consensus chain and of what clients said.
pub(super) struct Eth2State {
    pub domain: Eth2Domain,
    blocks: BTreeMap<[u8; 32], Block>,
    by_slot: BTreeSet<(u64, [u8; 32])>,
    /// Per identity (global id): the latest Status a client gave it.
    heard: BTreeMap<u32, Status>,
    /// Per client message: its slot, read from its content.
    slots: BTreeMap<MsgKey, u64>,
    /// What the identities did in the domain, by counter name (the `eth2_boundary` table):
    /// requests answered per protocol, blocks served, client messages that did not read as
    /// what their topic carries under the configured fork.
    counters: BTreeMap<String, u64>,
}

impl Eth2State {
    /// Nothing known yet.
    pub fn new(domain: Eth2Domain) -> Eth2State {
        Eth2State {
            domain,
            blocks: BTreeMap::new(),
            by_slot: BTreeSet::new(),
            heard: BTreeMap::new(),
            slots: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }
}

impl Eth2State {
    /// Adds `n` to counter `name`.
    fn count(&mut self, name: &str, n: u64) {
        *self.counters.entry(name.to_string()).or_default() += n;
    }

    /// The `eth2_boundary` table: one row per counter (`counter`, `count`); sum rows of one
    /// name over shards.
    pub fn table(&self) -> Result<Table, ArrowError> {
        table(
            "eth2_boundary",
            vec![Field::new("counter", DataType::Utf8, false), Field::new("count", DataType::UInt64, false)],
            vec![str_col(self.counters.keys()), u64_col(self.counters.values().copied())],
        )
    }
}

impl GossipEngine {
    /// Topic `t` as the wire names it.
    pub(super) fn wire_topic(&self, t: u8) -> String {
        match &self.eth2 {
            Some(e) => eth2::topic(e.domain.fork_digest, &topic_name(t)),
            None => topic_name(t),
        }
    }

    /// The topic index of a wire topic, if the tail models it (under the run's fork digest).
    pub(super) fn topic_index(&self, wire: &str) -> Option<u8> {
        let name = match &self.eth2 {
            Some(e) => match eth2::parse_topic(wire) {
                Some((digest, name)) if digest == e.domain.fork_digest => name,
                _ => return None,
            },
            None => wire,
        };
        (0..TOPIC_COUNT as u8).find(|&t| topic_name(t) == name)
    }

    /// Whether `rpc`, about a message of the tail's own, must not reach a client: on Ethereum
    /// topics clients would reject it (see `Eth2Spec::surrogate_messages`).
    pub(super) fn eth2_withholds(&self, rpc: &Rpc) -> bool {
        let about_message = matches!(rpc.kind, RpcKind::Message | RpcKind::IHave | RpcKind::IDontWant);
        self.eth2.as_ref().is_some_and(|e| !e.domain.surrogate_messages) && about_message && !rpc.msg.is_client()
    }

    /// A client's message reached this shard: its slot is read (blocks, attestations and
    /// aggregates), and a block is kept to be served.
    pub(super) fn eth2_learn(&mut self, message: &Message, key: MsgKey) {
        let topic = self.topic_index(&message.topic);
        let Some(e) = self.eth2.as_mut() else { return };
        let Ok(ssz) = snappy::decompress_block(&message.data, GOSSIP_MAX_SIZE) else {
            e.count("unreadable_messages", 1);
            return;
        };
        let slot = match topic.map(topic_family) {
            Some("beacon_block") => match read_signed_block(e.domain.fork, e.domain.preset, &ssz) {
                Ok(b) => {
                    e.by_slot.insert((b.slot, b.root));
                    e.blocks.entry(b.root).or_insert(Block { slot: b.slot, parent: b.parent, ssz, key });
                    Ok(b.slot)
                }
                Err(err) => Err(err),
            },
            Some("beacon_attestation") => attestation_slot(&ssz),
            Some("beacon_aggregate_and_proof") => aggregate_slot(&ssz),
            _ => return,
        };
        match slot {
            Ok(slot) => {
                e.slots.insert(key, slot);
            }
            Err(_) => e.count("unreadable_messages", 1),
        }
    }

    /// The start of the slot of client message `key`, if it is an Ethereum message whose slot
    /// this shard read.
    pub(super) fn eth2_slot_start(&self, key: MsgKey) -> Option<u64> {
        let e = self.eth2.as_ref()?;
        e.slots.get(&key).map(|&s| e.domain.slot_start_ns(s))
    }

    /// Whether local identity `i` has received the client message `key`.
    fn has_message(&self, i: usize, key: MsgKey) -> bool {
        let Some(st) = self.msg_slot.get(&key).map(|&m| &self.msgs[m as usize]) else { return false };
        let pos = self.topic_slot(i, st.topic).map(|s| self.position(i, s));
        pos.and_then(|p| st.arrival.get(p)).is_some_and(|&a| a != u64::MAX)
    }

    /// Identity `i`'s head: the latest block it has received, with its root.
    fn head(&self, i: usize) -> Option<([u8; 32], &Block)> {
        let e = self.eth2.as_ref()?;
        e.by_slot.iter().rev().map(|(_, r)| (*r, &e.blocks[r])).find(|(_, b)| self.has_message(i, b.key))
    }

    /// Identity `i`'s Status: its head (before it has any block, the head a client told it),
    /// and the finalized checkpoint a client last told it (genesis's before).
    fn status_of(&self, i: usize) -> Status {
        let Some(e) = self.eth2.as_ref() else { return Status::default() };
        let heard = e.heard.get(&self.ids[i]).copied().unwrap_or_default();
        let (head_root, head_slot) = match self.head(i) {
            Some((root, b)) if b.slot >= heard.head_slot || heard.head_root == [0; 32] => (root, b.slot),
            _ => (heard.head_root, heard.head_slot),
        };
        Status {
            fork_digest: e.domain.fork_digest,
            finalized_root: heard.finalized_root,
            finalized_epoch: heard.finalized_epoch,
            head_root,
            head_slot,
        }
    }

    /// Identity `i`'s MetaData: its attestation subnets.
    fn metadata_of(&self, i: usize) -> MetaData {
        MetaData { seq_number: 0, attnets: attnets(self.subs.of(self.ids[i])), syncnets: 0 }
    }

    /// Identity `i` dialled the client on `host`: it opens with its Status.
    pub(super) fn eth2_greet(&mut self, i: usize, now: u64, host: u32) {
        if self.eth2.is_none() {
            return;
        }
        let body = reqresp::encode_request(Method::Status, &self.status_of(i).encode());
        let (id, dir) = (self.ids[i], &self.net.directory);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.request((id, host), now, &Method::Status.protocol(), body, &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// The client on `host` answered identity `i`'s Status with its own.
    pub(super) fn eth2_response(&mut self, i: usize, body: Option<Vec<u8>>) {
        let chunk = body.and_then(|b| reqresp::decode_chunk(Method::Status, &b, Status::LEN).ok().flatten());
        if let Some((c, _)) = chunk.filter(|(c, _)| c.result == reqresp::SUCCESS) {
            self.heard_status(i, &c.ssz);
        }
    }

    /// Keeps a Status a client gave identity `i`.
    fn heard_status(&mut self, i: usize, ssz: &[u8]) {
        let id = self.ids[i];
        if let (Some(e), Ok(s)) = (self.eth2.as_mut(), Status::decode(ssz))
            && s.fork_digest == e.domain.fork_digest
        {
            e.heard.insert(id, s);
        }
    }

    /// The client on `host` sent identity `i` a request on `protocol`: answered at once.
    pub(super) fn eth2_request(
        &mut self,
        i: usize,
        now: u64,
        host: u32,
        stream: StreamId,
        protocol: &str,
        body: &[u8],
    ) {
        if let Some(e) = self.eth2.as_mut() {
            e.count(&format!("requests {protocol}"), 1);
        }
        let answer = match Method::from_protocol(protocol) {
            Some(m) => match reqresp::decode_request(m, body) {
                Ok(ssz) => self.answer(i, m, &ssz),
                Err(err) => reqresp::encode_error(INVALID_REQUEST, &err.to_string()),
            },
            None => reqresp::encode_error(INVALID_REQUEST, "unknown method"),
        };
        let (id, dir) = (self.ids[i], &self.net.directory);
        let Some(b) = self.boundary.as_mut() else { return };
        let outs = b.respond((id, host), now, stream, &answer, &|a| dir.host_of_ip(a));
        self.apply(i, now, outs);
    }

    /// The response chunks to method `m` with request `ssz` from identity `i`.
    fn answer(&mut self, i: usize, m: Method, ssz: &[u8]) -> Vec<u8> {
        let digest = self.eth2.as_ref().map_or([0; 4], |e| e.domain.fork_digest);
        match m {
            Method::Status => {
                self.heard_status(i, ssz);
                reqresp::encode_chunk(m, digest, &self.status_of(i).encode())
            }
            Method::Goodbye => Vec::new(),
            Method::Ping => reqresp::encode_chunk(m, digest, &self.metadata_of(i).seq_number.to_le_bytes()),
            Method::MetaData(v2) => reqresp::encode_chunk(m, digest, &self.metadata_of(i).encode(v2)),
            Method::BlocksByRange(_) => match BlocksByRange::decode(ssz) {
                Ok(r) if r.step >= 1 => {
                    let blocks = self.blocks_by_range(i, r);
                    let (out, n) = (chunks(m, digest, &blocks), blocks.len());
                    self.count_served(n);
                    out
                }
                _ => reqresp::encode_error(INVALID_REQUEST, "invalid range"),
            },
            Method::BlocksByRoot(_) => match decode_roots(ssz) {
                Ok(roots) => {
                    let blocks = roots
                        .iter()
                        .filter_map(|r| self.eth2.as_ref()?.blocks.get(r).filter(|b| self.has_message(i, b.key)))
                        .map(|b| b.ssz.as_slice())
                        .collect::<Vec<_>>();
                    let (out, n) = (chunks(m, digest, &blocks), blocks.len());
                    self.count_served(n);
                    out
                }
                Err(_) => reqresp::encode_error(INVALID_REQUEST, "invalid roots"),
            },
        }
    }

    /// Counts `n` blocks served.
    fn count_served(&mut self, n: usize) {
        if let Some(e) = self.eth2.as_mut() {
            e.count("blocks_served", n as u64);
        }
    }

    /// The blocks of `r` along identity `i`'s head's ancestry, by ascending slot.
    fn blocks_by_range(&self, i: usize, r: BlocksByRange) -> Vec<&[u8]> {
        let Some(e) = self.eth2.as_ref() else { return Vec::new() };
        range_on_chain(&e.blocks, self.head(i).map(|(root, _)| root), r)
    }
}

/// The response chunks of `blocks` for block method `m` (context: `digest`).
fn chunks(m: Method, digest: [u8; 4], blocks: &[&[u8]]) -> Vec<u8> {
    blocks.iter().map(|b| reqresp::encode_chunk(m, digest, b)).collect::<Vec<_>>().concat()
}

/// The blocks of `r` on the chain that ends at `head`, by ascending slot: parents are followed
/// back from the head, so blocks of other forks are never served. At most
/// `MAX_REQUEST_BLOCKS` slots are covered; `r.step` is at least 1.
fn range_on_chain(blocks: &BTreeMap<[u8; 32], Block>, head: Option<[u8; 32]>, r: BlocksByRange) -> Vec<&[u8]> {
    let count = r.count.min(MAX_REQUEST_BLOCKS as u64);
    let end = r.start_slot.saturating_add(count.saturating_mul(r.step));
    let mut out = Vec::new();
    let mut at = head;
    while let Some(b) = at.and_then(|root| blocks.get(&root)) {
        if b.slot < r.start_slot {
            break;
        }
        if b.slot < end && (b.slot - r.start_slot).is_multiple_of(r.step) {
            out.push(b.ssz.as_slice());
        }
        at = Some(b.parent);
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of blocks at `slots` (each the parent of the next; root = [slot; 32]), plus a
    /// side block at slot 4 off the block at slot 2.
    fn chain(slots: &[u64]) -> BTreeMap<[u8; 32], Block> {
        let mut blocks = BTreeMap::new();
        let mut parent = [0xee; 32];
        for &s in slots {
            let root = [s as u8; 32];
            blocks.insert(root, Block { slot: s, parent, ssz: vec![s as u8], key: MsgKey(s) });
            parent = root;
        }
        blocks.insert([0xf4; 32], Block { slot: 4, parent: [2; 32], ssz: vec![0xf4], key: MsgKey(99) });
        blocks
    }

    fn range(start_slot: u64, count: u64, step: u64) -> BlocksByRange {
        BlocksByRange { start_slot, count, step }
    }

    /// The one-byte blocks served, as bytes.
    fn served(blocks: Vec<&[u8]>) -> Vec<u8> {
        blocks.concat()
    }

    #[test]
    fn ranges_follow_the_heads_ancestry_only() {
        let blocks = chain(&[1, 2, 3, 5, 6]);
        let head = Some([6; 32]);
        assert_eq!(served(range_on_chain(&blocks, head, range(0, 10, 1))), [1, 2, 3, 5, 6]);
        // Slot 4 is empty on this chain: the side block there is never served.
        assert_eq!(served(range_on_chain(&blocks, head, range(3, 2, 1))), [3]);
        assert_eq!(served(range_on_chain(&blocks, head, range(2, 3, 2))), [2, 6]);
        assert!(range_on_chain(&blocks, head, range(7, 5, 1)).is_empty());
        assert!(range_on_chain(&blocks, None, range(0, 10, 1)).is_empty());
        // From the side block's view, its own fork.
        assert_eq!(served(range_on_chain(&blocks, Some([0xf4; 32]), range(0, 10, 1))), [1, 2, 0xf4]);
        // Huge counts are cut to what may be requested, without overflow.
        assert_eq!(range_on_chain(&blocks, head, range(u64::MAX - 1, u64::MAX, u64::MAX)).len(), 0);
    }
}
