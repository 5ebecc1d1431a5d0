//! Gossipsub RPCs between identities, at message level: what was sent, about which message, and
//! how many bytes it would take on the wire (for bandwidth queues and byte counts). Payload bytes
//! are never materialised: a 100 KiB block is a size, not an allocation.
//!
//! Between shards an RPC travels as a bus event payload with an explicit big-endian encoding
//! (version 1): `kind u8, topic u8, hops u8, hint u8, msg u64, size u32, published u64,
//! backoff_ms u32` = 28 bytes. Decoding untrusted bytes returns an error, never panics.

use thermocline_bus::binary::{DecodeError, Reader};

/// Identifies a message globally: the publishing identity and its publish sequence number,
/// packed as `publisher << 32 | seq`. Every shard derives the same key without coordination.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgKey(pub u64);

/// Keys of messages real clients published have this bit set; their other bits are a hash of the
/// message id (see the engine's boundary), never a (publisher, sequence) pair.
pub const CLIENT_KEY: u64 = 1 << 63;

impl MsgKey {
    /// Whether a real client published the message.
    pub fn is_client(self) -> bool {
        self.0 & CLIENT_KEY != 0
    }

    /// The key of the `seq`-th message published by `publisher`.
    pub fn new(publisher: u32, seq: u32) -> Self {
        MsgKey((publisher as u64) << 32 | seq as u64)
    }
    /// The publishing identity.
    pub fn publisher(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The key of the `seq`-th invalid message `publisher` (an attacker) publishes: its
    /// validity is part of its content, as a bad signature is, so every receiver's validation
    /// finds it the same. Numbered apart from its valid messages.
    pub fn invalid(publisher: u32, seq: u32) -> Self {
        MsgKey::new(publisher, seq | INVALID_SEQ)
    }

    /// Whether the message fails validation (see [`MsgKey::invalid`]).
    pub fn is_invalid(self) -> bool {
        !self.is_client() && self.0 as u32 & INVALID_SEQ != 0
    }
}

/// The sequence-number bit of an invalid message's key.
const INVALID_SEQ: u32 = 1 << 31;

/// What an RPC does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RpcKind {
    /// A full message (publish or forward).
    Message = 0,
    /// IHAVE: the sender has this message in its cache.
    IHave = 1,
    /// IWANT: please send this message.
    IWant = 2,
    /// GRAFT: add me to your mesh for the topic.
    Graft = 3,
    /// PRUNE: you are out of my mesh; do not graft back before the backoff.
    Prune = 4,
    /// IDONTWANT (v1.2): I have this message; do not send it to me.
    IDontWant = 5,
    /// One peer record of a PRUNE's peer exchange: the peer's id travels in the `msg` field.
    PeerExchange = 6,
    /// Connection management, not gossipsub: an identity (re)connects.
    Connect = 7,
    /// Connection management: the peer accepts a `Connect`; the connection is up on both sides.
    Accept = 8,
    /// Connection management: the identity leaves, or refuses a `Connect`; the connection is
    /// closed.
    Disconnect = 9,
}

/// Number of gossipsub RPC kinds (for per-kind byte counters); connection management comes
/// after them.
pub const RPC_KINDS: usize = 7;

impl RpcKind {
    /// From the wire.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => RpcKind::Message,
            1 => RpcKind::IHave,
            2 => RpcKind::IWant,
            3 => RpcKind::Graft,
            4 => RpcKind::Prune,
            5 => RpcKind::IDontWant,
            6 => RpcKind::PeerExchange,
            7 => RpcKind::Connect,
            8 => RpcKind::Accept,
            9 => RpcKind::Disconnect,
            _ => return None,
        })
    }

    /// Lower-case name, for metrics.
    pub fn name(self) -> &'static str {
        match self {
            RpcKind::Message => "message",
            RpcKind::IHave => "ihave",
            RpcKind::IWant => "iwant",
            RpcKind::Graft => "graft",
            RpcKind::Prune => "prune",
            RpcKind::IDontWant => "idontwant",
            RpcKind::PeerExchange => "px",
            RpcKind::Connect => "connect",
            RpcKind::Accept => "accept",
            RpcKind::Disconnect => "disconnect",
        }
    }

    /// Whether this RPC is about one message (a copy, IHAVE, IWANT or IDONTWANT).
    pub fn is_about_a_message(self) -> bool {
        matches!(self, RpcKind::Message | RpcKind::IHave | RpcKind::IWant | RpcKind::IDontWant)
    }

    /// Whether this is connection management rather than a gossipsub RPC.
    pub fn is_connection(self) -> bool {
        self as usize >= RPC_KINDS
    }
}

/// One RPC.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rpc {
    /// What it is.
    pub kind: RpcKind,
    /// Topic index.
    pub topic: u8,
    /// Hops the message has travelled (messages only): 1 from the publisher.
    pub hops: u8,
    /// The message it is about (messages, IHAVE, IWANT, IDONTWANT).
    pub msg: MsgKey,
    /// Payload size of the message, bytes (messages only).
    pub size: u32,
    /// Publish time of the message, ns (messages only).
    pub published_ns: u64,
    /// PRUNE backoff, ms.
    pub backoff_ms: u32,
    /// How long the sender's link took to send this copy, µs (messages only; saturating): its
    /// bytes reach the receiver spread over that time, which a pipelined download link
    /// (`download = "pipelined"`) takes into account. Not on the wire.
    pub upload_us: u32,
    /// Where the sender sits in the receiver's connection row, so the receiver need not search
    /// for it ([`NO_HINT`] when the sender does not know). Only a shortcut: the receiver checks it.
    pub hint: u8,
}

/// [`Rpc::hint`] when the sender does not know its place in the receiver's row.
pub const NO_HINT: u8 = u8::MAX;

/// Bytes of an encoded RPC.
pub const RPC_BYTES: usize = 32;
const FIELD_BYTES_ID: u32 = 20; // message ids on the wire: 20 bytes (Ethereum message-id)

impl Rpc {
    /// A control RPC about no message (GRAFT, PRUNE).
    pub fn control(kind: RpcKind, topic: u8) -> Self {
        Rpc {
            kind,
            topic,
            hops: 0,
            msg: MsgKey(0),
            size: 0,
            published_ns: 0,
            backoff_ms: 0,
            upload_us: 0,
            hint: NO_HINT,
        }
    }

    /// An RPC of `kind` about the message `about` describes. Every RPC about a message carries its
    /// size and publish time: measurement metadata, so that whichever RPC reaches an identity
    /// first, its record of the message is complete (the wire size counts only what the protocol
    /// sends).
    pub fn about(kind: RpcKind, about: &Rpc) -> Self {
        Rpc { kind, hops: 0, backoff_ms: 0, upload_us: 0, hint: NO_HINT, ..*about }
    }

    /// This RPC as it leaves a link that started sending it at `start_ns` and finished at
    /// `done_ns`: [`Rpc::upload_us`] records how long that took.
    pub fn sent_over(self, start_ns: u64, done_ns: u64) -> Self {
        let us = done_ns.saturating_sub(start_ns) / 1000;
        Rpc { upload_us: us.min(u32::MAX as u64) as u32, ..self }
    }

    /// Bytes this RPC takes on the wire, approximating gossipsub's protobuf framing: a length
    /// prefix and RPC envelope, the topic string (`/eth2/<fork>/beacon_block/ssz_snappy`, ~40
    /// bytes), and 20-byte message ids.
    pub fn wire_bytes(&self) -> u64 {
        const ENVELOPE: u64 = 8;
        const TOPIC: u64 = 42;
        const ID: u64 = FIELD_BYTES_ID as u64;
        match self.kind {
            RpcKind::Message => ENVELOPE + TOPIC + 4 + self.size as u64,
            RpcKind::IHave | RpcKind::IWant => ENVELOPE + TOPIC + 2 + ID,
            RpcKind::IDontWant => ENVELOPE + 2 + ID,
            RpcKind::Graft => ENVELOPE + TOPIC + 2,
            RpcKind::Prune => ENVELOPE + TOPIC + 2 + 3,
            // A peer id (38 bytes) and a signed peer record (about 100 more).
            RpcKind::PeerExchange => 140,
            // Connection management is the transport's (TCP and its handshakes), not gossip's.
            RpcKind::Connect | RpcKind::Accept | RpcKind::Disconnect => 0,
        }
    }

    /// Explicit encoding for the bus.
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes().to_vec()
    }

    /// The encoding as an array (no allocation).
    pub fn to_bytes(&self) -> [u8; RPC_BYTES] {
        let mut b = [0u8; RPC_BYTES];
        b[0] = self.kind as u8;
        b[1] = self.topic;
        b[2] = self.hops;
        b[3] = self.hint;
        b[4..12].copy_from_slice(&self.msg.0.to_be_bytes());
        b[12..16].copy_from_slice(&self.size.to_be_bytes());
        b[16..24].copy_from_slice(&self.published_ns.to_be_bytes());
        b[24..28].copy_from_slice(&self.backoff_ms.to_be_bytes());
        b[28..32].copy_from_slice(&self.upload_us.to_be_bytes());
        b
    }

    /// Decode; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let at = r.offset();
        let kind = r.u8("rpc kind")?;
        let kind = RpcKind::from_u8(kind).ok_or_else(|| DecodeError::Invalid {
            what: "rpc kind",
            offset: at,
            detail: format!("unknown kind {kind}"),
        })?;
        let topic = r.u8("topic")?;
        let hops = r.u8("hops")?;
        let hint = r.u8("hint")?;
        let rpc = Rpc {
            kind,
            topic,
            hops,
            msg: MsgKey(r.u64("message key")?),
            size: r.u32("size")?,
            published_ns: r.u64("publish time")?,
            backoff_ms: r.u32("backoff")?,
            upload_us: r.u32("upload time")?,
            hint,
        };
        r.finish("rpc")?;
        Ok(rpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(kind in 0u8..10, topic: u8, hops: u8, msg: u64, size: u32, published: u64, backoff: u32, upload: u32, hint: u8) {
            let rpc = Rpc { kind: RpcKind::from_u8(kind).unwrap(), topic, hops, msg: MsgKey(msg), size, published_ns: published, backoff_ms: backoff, upload_us: upload, hint };
            let bytes = rpc.encode();
            prop_assert_eq!(bytes.len(), RPC_BYTES);
            prop_assert_eq!(Rpc::decode(&bytes).unwrap(), rpc);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Rpc::decode(&bytes);
        }
    }

    #[test]
    fn a_block_costs_its_size_plus_framing() {
        let m = Rpc {
            kind: RpcKind::Message,
            topic: 0,
            hops: 1,
            msg: MsgKey::new(3, 1),
            size: 100 * 1024,
            published_ns: 5,
            backoff_ms: 0,
            upload_us: 0,
            hint: 3,
        };
        assert_eq!(m.wire_bytes(), 100 * 1024 + 54);
        assert_eq!(Rpc::decode(&m.encode()).unwrap(), m);
        let dont = Rpc::about(RpcKind::IDontWant, &m);
        assert!(dont.wire_bytes() < 40);
        assert_eq!((dont.msg, dont.size, dont.published_ns), (m.msg, m.size, m.published_ns));
        assert_eq!(MsgKey::new(7, 9).publisher(), 7);
    }
}
