//! The synchronisation-and-exchange step that every backend implements.
//!
//! One call per window does both jobs of the conservative protocol: it moves each shard's encoded
//! batches to their destination shards (all-to-all) and reduces every shard's next-event time to
//! the global minimum. Fusing the two halves the number of collective rounds per window: the
//! global minimum of "next local event or outbound delivery time" over all shards, taken before
//! the exchange, equals the minimum of next local events and inbound delivery times after it,
//! because every inbound event is some shard's outbound event. The MPI backend maps the step onto
//! one round of point-to-point messages, each a batch with the sender's next time attached.

use crate::error::BusError;
use crate::ids::ShardId;
use crate::time::SimTime;

/// The buffers of one exchange round, reused from window to window.
pub struct Round {
    /// Encoded batch for each destination shard (empty: nothing to send). Index = shard.
    pub outgoing: Vec<Vec<u8>>,
    /// Encoded batch from each source shard, filled by the exchange (empty: nothing received).
    pub incoming: Vec<Vec<u8>>,
    /// This shard's earliest pending time: next local event or earliest outbound delivery.
    pub local_next: SimTime,
    /// Events this shard executed in the window (for progress reporting by a coordinator).
    pub events: u64,
}

impl Round {
    /// Empty buffers for `shards` shards.
    pub fn new(shards: u32) -> Self {
        Round {
            outgoing: vec![Vec::new(); shards as usize],
            incoming: vec![Vec::new(); shards as usize],
            local_next: SimTime::NEVER,
            events: 0,
        }
    }
}

/// A backend's view from one shard: the collective operations of the window protocol.
///
/// Implementations must make every collective fail promptly (rather than block) once any shard
/// has failed, so that no shard hangs waiting for a dead peer.
pub trait Exchange {
    /// This shard.
    fn shard(&self) -> ShardId;

    /// Number of shards in the run.
    fn shard_count(&self) -> u32;

    /// Send `round.outgoing`, fill `round.incoming`, and return the global minimum of every
    /// shard's `round.local_next`. After the call `round.outgoing` holds empty (reusable) buffers.
    fn exchange(&mut self, round: &mut Round) -> Result<SimTime, BusError>;

    /// Hand this shard's encoded report to the coordinator. Returns every shard's report, indexed
    /// by shard, on the coordinator and `None` elsewhere.
    fn gather(&mut self, report: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, BusError>;

    /// Tell the other shards that this shard failed with `error`, so their next collective fails
    /// instead of waiting. Best effort: errors while telling are ignored.
    fn fail(&mut self, error: &BusError);
}
