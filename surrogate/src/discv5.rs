//! Surrogate discv5: Node Discovery v5 among identities at message level, beside gossip on the
//! same identities. Built in parts, each sans-IO and tested alone:
//!
//! - [`table`]: one identity's Kademlia table (log-distance buckets of k = 16, replacement
//!   candidates, least recently verified first), stored so that only filled buckets take room.
//! - [`packet`]: packets at message level, their bus encoding and their wire sizes.
//! - [`protocol`]: the protocol of a shard's identities (joining, lookups, liveness checks,
//!   sessions and their handshake, NAT, churn), packets and timers in, packets and timers out.
//! - [`engine`]: the bus engine: the protocol on the network model.
//! - [`boundary`]: identities that real clients speak discv5 to, over UDP.
//! - [`config`]: the `[discv5]` section.
//!
//! Codecs and cryptography for the boundary, where a real client speaks discv5 to an identity,
//! are in `thermocline_wire::discv5`.

pub mod boundary;
pub mod config;
pub mod engine;
pub mod packet;
pub mod protocol;
pub mod table;

pub use config::Discv5Spec;
pub use engine::{DiscoveryEngine, DiscoverySetup};
