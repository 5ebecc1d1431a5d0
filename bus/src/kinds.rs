//! Every event kind of every engine, in one place, so that no two engines share a number and a
//! shard hosting several engines can tell whose event it holds. Kinds travel in batches (see
//! the batch codec); a number once used is never reused for another meaning.

/// PHOLD's jobs (`models::phold`).
pub const PHOLD: u16 = 1;
/// Idle ticks (`models::idle`), for measuring window overhead.
pub const IDLE: u16 = 2;
/// A surrogate gossip RPC between identities (`surrogate`).
pub const GOSSIP_RPC: u16 = 3;
/// An IPv4 packet from a direct host (`direct`): to another direct host, or to a surrogate
/// identity, which counts it.
pub const PACKET: u16 = 4;
/// A gossipsub message a real client published, as its wire bytes (`surrogate`): sent by the
/// shard whose boundary identity first received it to every other shard, so identities there can
/// forward it to their own clients byte for byte.
pub const HOT_MESSAGE: u16 = 5;
/// Where a gossipsub message ends on a TCP stream from a boundary identity to a real client
/// (`surrogate` to `direct`; a `thermocline_net::StreamMark`): the client's host times the
/// message's arrival when its stack has delivered the stream up to there.
pub const HOT_MARK: u16 = 6;
/// A discv5 packet between surrogate identities (`surrogate::discv5`).
pub const DISCV5: u16 = 7;
