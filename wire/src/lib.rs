//! The libp2p wire protocols, each a sans-IO state machine in quinn-proto's manner: bytes and
//! the caller's time go in through `handle_*`, bytes to send, events and the next deadline come
//! out through `poll_transmit`, `poll_event` and `poll_timeout`. Nothing here owns a socket, a
//! clock or a thread, so the same code runs inside a simulated shard, in a fuzz target and in a
//! test against a real libp2p node over a real TCP connection.
//!
//! A connection stacks the layers as libp2p does: multistream-select picks the security
//! protocol on the raw bytes, Noise XX authenticates the peers' identity keys and encrypts,
//! multistream-select inside Noise picks the muxer (yamux or mplex), and on every muxed stream
//! multistream-select picks the application protocol (gossipsub, identify, ping).
//!
//! Above libp2p, [`eth2`] is what Ethereum consensus clients require of a peer: their gossip
//! topics and message ids, and the req/resp methods with their `ssz_snappy` framing.
//!
//! Discovery is apart: [`discv5`] (Node Discovery v5.1 packets, messages, sessions and node
//! records over UDP) and [`rlp`], the encoding its messages and records use.
//!
//! [`tx`] is the signed transaction datagram that traffic sources send to ingress nodes.

pub mod connection;
pub mod discv5;
pub mod eth2;
pub mod frame;
pub mod gossipsub;
pub mod identify;
pub mod identity;
pub mod mplex;
pub mod multiaddr;
pub mod multistream;
pub mod mux;
pub mod noise;
pub mod ping;
pub mod protobuf;
pub mod rlp;
pub mod tx;
pub mod varint;
pub mod yamux;

/// Simulated (or real) time in nanoseconds, always given by the caller.
pub type Nanos = u64;
