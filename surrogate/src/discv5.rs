//! Surrogate discv5: Node Discovery v5 among identities at message level, beside gossip on the
//! same identities. Built in parts, each sans-IO and tested alone:
//!
//! - [`table`]: one identity's Kademlia table (log-distance buckets of k = 16, replacement
//!   candidates, least recently verified first), stored so that only filled buckets take room.
//!
//! Codecs and cryptography for the boundary, where a real client speaks discv5 to an identity,
//! are in `thermocline_wire::discv5`.

pub mod table;
