//! The gossipsub RPC as it travels on a `/meshsub/1.x.0` stream: one protobuf `RPC` per
//! varint-length-prefixed frame (see [`crate::frame`]).
//!
//! Field numbers are those of the pubsub spec's `rpc.proto` and of rust-libp2p's
//! `protocols/gossipsub/src/generated/rpc.proto`: v1.0's subscriptions, messages and
//! IHAVE/IWANT/GRAFT/PRUNE; v1.1's peer exchange and backoff in PRUNE; v1.2's IDONTWANT (control
//! field 5). Newer extensions (partial messages: `SubOpts` fields 3–4, control field 6, RPC field
//! 10) are not modelled and are skipped like any unknown field.
//!
//! Decoding is bounded twice: the frame decoder refuses a frame above the configured maximum
//! before reading it, and [`Rpc::decode_limited`] caps how many list items (subscriptions,
//! messages, control entries, message ids, PX peers) one frame may carry, so that a frame of
//! tiny items cannot expand into many times its size in structures. Unknown fields are skipped;
//! decoding never panics.

use sha2::{Digest, Sha256};

use crate::frame::encode_frame;
pub use crate::protobuf::ProtoError;
use crate::protobuf::{ItemBudget, Reader, Value, bytes, put_bytes, put_message, put_uint, string, uint};

/// Gossipsub v1.0.
pub const PROTOCOL_V1_0: &str = "/meshsub/1.0.0";
/// Gossipsub v1.1: peer exchange and backoff in PRUNE, peer scoring.
pub const PROTOCOL_V1_1: &str = "/meshsub/1.1.0";
/// Gossipsub v1.2: IDONTWANT.
pub const PROTOCOL_V1_2: &str = "/meshsub/1.2.0";

/// What message signatures are computed over: this prefix, then the message's protobuf.
pub const SIGNING_PREFIX: &[u8] = b"libp2p-pubsub:";

/// rust-libp2p's default largest RPC frame (`max_transmit_size`); Ethereum clients raise it.
pub const DEFAULT_MAX_TRANSMIT_SIZE: usize = 65536;

/// The default cap on list items in one RPC for [`Rpc::decode`]: far above what an honest
/// peer sends in a frame, and at most about ten megabytes of decoded structures (a `Message`
/// is some 150 bytes before its contents, which are copies of the frame's bytes).
pub const DEFAULT_MAX_ITEMS: usize = 1 << 16;

/// One gossipsub RPC: subscription changes, published messages and control messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rpc {
    /// Topics the sender joins or leaves (field 1).
    pub subscriptions: Vec<SubOpts>,
    /// Messages forwarded or published (field 2).
    pub publish: Vec<Message>,
    /// Mesh maintenance and gossip (field 3).
    pub control: Option<Control>,
}

/// A subscription change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubOpts {
    /// True to subscribe, false to unsubscribe (field 1).
    pub subscribe: bool,
    /// The topic id (field 2).
    pub topic: String,
}

/// A published message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The author's peer id bytes (field 1); absent under `StrictNoSign`.
    pub from: Option<Vec<u8>>,
    /// The payload (field 2); always encoded, even empty, as rust-libp2p publishes it.
    pub data: Vec<u8>,
    /// The author's sequence number, 8 bytes big-endian by convention (field 3).
    pub seqno: Option<Vec<u8>>,
    /// The topic id (field 4, `required`).
    pub topic: String,
    /// The author's signature over [`signing_bytes`] (field 5).
    pub signature: Option<Vec<u8>>,
    /// The author's protobuf-encoded public key, when the peer id does not inline it (field 6).
    pub key: Option<Vec<u8>>,
}

/// Control messages, carried with any RPC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// Gossip: ids of messages the sender has seen (field 1).
    pub ihave: Vec<IHave>,
    /// Requests for messages announced by IHAVE (field 2).
    pub iwant: Vec<IWant>,
    /// The sender added the receiver to its mesh of a topic (field 3).
    pub graft: Vec<Graft>,
    /// The sender removed the receiver from its mesh of a topic (field 4).
    pub prune: Vec<Prune>,
    /// v1.2: messages the sender already has and does not want forwarded (field 5).
    pub idontwant: Vec<IDontWant>,
}

/// Gossip about a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IHave {
    /// The topic (field 1).
    pub topic: String,
    /// Ids of messages seen recently on it (field 2).
    pub message_ids: Vec<Vec<u8>>,
}

/// A request for full messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IWant {
    /// The ids wanted (field 1).
    pub message_ids: Vec<Vec<u8>>,
}

/// Mesh join.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graft {
    /// The topic (field 1).
    pub topic: String,
}

/// Mesh leave, with v1.1's peer exchange and backoff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prune {
    /// The topic (field 1).
    pub topic: String,
    /// Other peers of the topic the receiver may connect to (field 2).
    pub peers: Vec<PeerInfo>,
    /// Seconds the receiver must wait before grafting again (field 3).
    pub backoff: Option<u64>,
}

/// A peer offered in PRUNE's peer exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its peer id bytes (field 1).
    pub peer_id: Option<Vec<u8>>,
    /// Its signed peer record envelope (field 2).
    pub signed_peer_record: Option<Vec<u8>>,
}

/// v1.2: message ids the sender does not want.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IDontWant {
    /// The ids (field 1).
    pub message_ids: Vec<Vec<u8>>,
}

impl Rpc {
    /// The protobuf encoding (fields in number order, as rust-libp2p's prost encoder writes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.subscriptions {
            put_message(&mut out, 1, |o| s.encode_into(o));
        }
        for m in &self.publish {
            put_message(&mut out, 2, |o| m.encode_into(o));
        }
        if let Some(c) = &self.control {
            put_message(&mut out, 3, |o| c.encode_into(o));
        }
        out
    }

    /// The encoding framed for the stream (varint length prefix).
    pub fn encode_frame(&self) -> Vec<u8> {
        encode_frame(&self.encode())
    }

    /// Decodes one RPC (a frame's payload) with the default item cap [`DEFAULT_MAX_ITEMS`].
    pub fn decode(buf: &[u8]) -> Result<Rpc, ProtoError> {
        Rpc::decode_limited(buf, DEFAULT_MAX_ITEMS)
    }

    /// Decodes one RPC, refusing it if it holds more than `max_items` list items in all.
    /// A repeated `control` field is merged into one, as protobuf requires.
    pub fn decode_limited(buf: &[u8], max_items: usize) -> Result<Rpc, ProtoError> {
        let mut budget = ItemBudget::new(max_items);
        let mut rpc = Rpc::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => {
                    budget.take()?;
                    rpc.subscriptions.push(SubOpts::decode(bytes(field, v)?)?);
                }
                2 => {
                    budget.take()?;
                    rpc.publish.push(Message::decode(bytes(field, v)?)?);
                }
                3 => rpc.control.get_or_insert_default().merge(bytes(field, v)?, &mut budget)?,
                _ => {}
            }
        }
        Ok(rpc)
    }
}

impl SubOpts {
    /// Appends the fields.
    fn encode_into(&self, out: &mut Vec<u8>) {
        put_uint(out, 1, u64::from(self.subscribe));
        put_bytes(out, 2, self.topic.as_bytes());
    }

    /// Decodes one `SubOpts`.
    fn decode(buf: &[u8]) -> Result<SubOpts, ProtoError> {
        let mut s = SubOpts::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => s.subscribe = uint(field, v)? != 0,
                2 => s.topic = string(field, v)?,
                _ => {}
            }
        }
        Ok(s)
    }
}

impl Message {
    /// Appends the fields: `data` and `topic` always, the optional ones when present.
    fn encode_into(&self, out: &mut Vec<u8>) {
        if let Some(from) = &self.from {
            put_bytes(out, 1, from);
        }
        put_bytes(out, 2, &self.data);
        if let Some(seqno) = &self.seqno {
            put_bytes(out, 3, seqno);
        }
        put_bytes(out, 4, self.topic.as_bytes());
        if let Some(sig) = &self.signature {
            put_bytes(out, 5, sig);
        }
        if let Some(key) = &self.key {
            put_bytes(out, 6, key);
        }
    }

    /// The message's protobuf encoding on its own (as signed, and as sized against limits).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes one `Message`; a missing `data` or `topic` reads as empty.
    pub fn decode(buf: &[u8]) -> Result<Message, ProtoError> {
        let mut m = Message::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => m.from = Some(bytes(field, v)?.to_vec()),
                2 => m.data = bytes(field, v)?.to_vec(),
                3 => m.seqno = Some(bytes(field, v)?.to_vec()),
                4 => m.topic = string(field, v)?,
                5 => m.signature = Some(bytes(field, v)?.to_vec()),
                6 => m.key = Some(bytes(field, v)?.to_vec()),
                _ => {}
            }
        }
        Ok(m)
    }
}

/// Appends each id as a `bytes` field.
fn put_ids(out: &mut Vec<u8>, field: u32, ids: &[Vec<u8>]) {
    for id in ids {
        put_bytes(out, field, id);
    }
}

/// Pushes one id from a `bytes` field, counting it against the budget.
fn push_id(ids: &mut Vec<Vec<u8>>, field: u32, v: Value<'_>, budget: &mut ItemBudget) -> Result<(), ProtoError> {
    budget.take()?;
    ids.push(bytes(field, v)?.to_vec());
    Ok(())
}

impl Control {
    /// Appends the fields.
    fn encode_into(&self, out: &mut Vec<u8>) {
        for m in &self.ihave {
            put_message(out, 1, |o| {
                put_bytes(o, 1, m.topic.as_bytes());
                put_ids(o, 2, &m.message_ids);
            });
        }
        for m in &self.iwant {
            put_message(out, 2, |o| put_ids(o, 1, &m.message_ids));
        }
        for m in &self.graft {
            put_message(out, 3, |o| put_bytes(o, 1, m.topic.as_bytes()));
        }
        for m in &self.prune {
            put_message(out, 4, |o| m.encode_into(o));
        }
        for m in &self.idontwant {
            put_message(out, 5, |o| put_ids(o, 1, &m.message_ids));
        }
    }

    /// Merges one encoded `ControlMessage` into this one.
    fn merge(&mut self, buf: &[u8], budget: &mut ItemBudget) -> Result<(), ProtoError> {
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            if (1..=5).contains(&field) {
                budget.take()?;
            }
            match field {
                1 => self.ihave.push(IHave::decode(bytes(field, v)?, budget)?),
                2 => self.iwant.push(IWant { message_ids: decode_ids(bytes(field, v)?, budget)? }),
                3 => self.graft.push(Graft { topic: decode_topic(bytes(field, v)?)? }),
                4 => self.prune.push(Prune::decode(bytes(field, v)?, budget)?),
                5 => self.idontwant.push(IDontWant { message_ids: decode_ids(bytes(field, v)?, budget)? }),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Decodes a message whose only field is `repeated bytes message_ids = 1` (IWANT, IDONTWANT).
fn decode_ids(buf: &[u8], budget: &mut ItemBudget) -> Result<Vec<Vec<u8>>, ProtoError> {
    let mut ids = Vec::new();
    let mut r = Reader::new(buf);
    while let Some((field, v)) = r.next_field()? {
        if field == 1 {
            push_id(&mut ids, field, v, budget)?;
        }
    }
    Ok(ids)
}

/// Decodes a message whose only field is `optional string topic_id = 1` (GRAFT).
fn decode_topic(buf: &[u8]) -> Result<String, ProtoError> {
    let mut topic = String::new();
    let mut r = Reader::new(buf);
    while let Some((field, v)) = r.next_field()? {
        if field == 1 {
            topic = string(field, v)?;
        }
    }
    Ok(topic)
}

impl IHave {
    /// Decodes one `ControlIHave`.
    fn decode(buf: &[u8], budget: &mut ItemBudget) -> Result<IHave, ProtoError> {
        let mut m = IHave::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => m.topic = string(field, v)?,
                2 => push_id(&mut m.message_ids, field, v, budget)?,
                _ => {}
            }
        }
        Ok(m)
    }
}

impl Prune {
    /// Appends the fields.
    fn encode_into(&self, out: &mut Vec<u8>) {
        put_bytes(out, 1, self.topic.as_bytes());
        for p in &self.peers {
            put_message(out, 2, |o| {
                if let Some(id) = &p.peer_id {
                    put_bytes(o, 1, id);
                }
                if let Some(rec) = &p.signed_peer_record {
                    put_bytes(o, 2, rec);
                }
            });
        }
        if let Some(b) = self.backoff {
            put_uint(out, 3, b);
        }
    }

    /// Decodes one `ControlPrune`.
    fn decode(buf: &[u8], budget: &mut ItemBudget) -> Result<Prune, ProtoError> {
        let mut m = Prune::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => m.topic = string(field, v)?,
                2 => {
                    budget.take()?;
                    m.peers.push(PeerInfo::decode(bytes(field, v)?)?);
                }
                3 => m.backoff = Some(uint(field, v)?),
                _ => {}
            }
        }
        Ok(m)
    }
}

impl PeerInfo {
    /// Decodes one `PeerInfo`.
    fn decode(buf: &[u8]) -> Result<PeerInfo, ProtoError> {
        let mut m = PeerInfo::default();
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => m.peer_id = Some(bytes(field, v)?.to_vec()),
                2 => m.signed_peer_record = Some(bytes(field, v)?.to_vec()),
                _ => {}
            }
        }
        Ok(m)
    }
}

/// What the author signs (and a verifier checks): `libp2p-pubsub:` followed by the message's
/// protobuf with `signature` and `key` left out, as rust-libp2p and go-libp2p compute it.
/// Fields this decoder did not know are not kept, so they are not covered (prost, which
/// rust-libp2p uses, drops them too).
pub fn signing_bytes(msg: &Message) -> Vec<u8> {
    let unsigned = Message { signature: None, key: None, ..msg.clone() };
    let mut out = SIGNING_PREFIX.to_vec();
    unsigned.encode_into(&mut out);
    out
}

/// How a message's id is computed: every peer of a topic must use the same function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageIdFn {
    /// libp2p's default: the base58btc text of the `from` peer id followed by the `seqno` as a
    /// decimal `u64`, as the bytes of that string (rust-libp2p's `Config::default`'s
    /// `message_id_fn`). A missing or empty `from` counts as the peer id bytes `00 01 00`
    /// (base58 `15R`); a `seqno` that is missing or not 8 bytes counts as 0, as rust-libp2p
    /// does where it does not validate sequence numbers.
    #[default]
    FromAndSeqno,
    /// Content addressing: the first `prefix_len` bytes (at most 32) of SHA-256 of `data`.
    ContentSha256 {
        /// How many bytes of the digest to keep.
        prefix_len: usize,
    },
    /// The consensus spec's: SHA-256 over a snappy-validity domain (from Altair on, the topic)
    /// and the decompressed data, 20 bytes (see [`crate::eth2::message_id`]).
    Eth2 {
        /// Whether the topic is hashed too (Altair and later).
        with_topic: bool,
    },
}

impl MessageIdFn {
    /// The id of `msg` under this function.
    pub fn message_id(&self, msg: &Message) -> Vec<u8> {
        match *self {
            MessageIdFn::FromAndSeqno => {
                let from = msg.from.as_deref().filter(|f| !f.is_empty()).unwrap_or(&[0, 1, 0]);
                let seqno =
                    msg.seqno.as_deref().and_then(|s| <[u8; 8]>::try_from(s).ok()).map_or(0, u64::from_be_bytes);
                let mut id = bs58::encode(from).into_string();
                id.push_str(&seqno.to_string());
                id.into_bytes()
            }
            MessageIdFn::ContentSha256 { prefix_len } => {
                let digest = Sha256::digest(&msg.data);
                digest[..prefix_len.min(digest.len())].to_vec()
            }
            MessageIdFn::Eth2 { with_topic } => crate::eth2::message_id(&msg.topic, &msg.data, with_topic),
        }
    }
}

#[cfg(test)]
mod tests;
