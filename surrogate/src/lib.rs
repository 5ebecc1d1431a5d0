//! Thermocline's cold tail: many lightweight gossipsub identities per process, as one bus engine
//! per shard. Identities are compact struct-of-arrays records; traffic between them is
//! message-level (an RPC and its wire size) through the network model's latency, loss and
//! bandwidth queues.
//!
//! - [`config`]: gossipsub parameters and client profiles, peer manager, slot traffic.
//! - [`rpc`]: the RPCs, their wire sizes and their bus encoding.
//! - [`peers`]: the initial connection graph.
//! - [`score`]: gossipsub v1.1 peer scoring.
//! - [`topics`]: topic indices and every identity's subscriptions.
//! - [`engine`]: the engine.
//! - [`discv5`]: discovery among identities (Kademlia tables so far).

pub mod boundary;
pub mod config;
pub mod discv5;
pub mod engine;
pub mod peers;
mod prefetch;
pub mod rpc;
pub mod score;
pub mod topics;
pub mod traffic;

pub use engine::{GossipEngine, GossipSetup};
