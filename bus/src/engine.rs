//! The engine contract: what a shard's simulation engine (PHOLD, surrogates, direct hosts) offers
//! the window loop. Engines are sans-IO with respect to the bus: they never see transports,
//! threads or other shards, only the events they are given and the outbox they fill.

use crate::digest::Digest;
use crate::error::EngineError;
use crate::event::Event;
use crate::ids::ShardId;
use crate::time::SimTime;

/// Events produced during a window for hosts on other shards, grouped by destination shard.
pub struct Outbox {
    per_shard: Vec<Vec<Event>>,
}

impl Outbox {
    /// An empty outbox for a run of `shards` shards.
    pub fn new(shards: u32) -> Self {
        Outbox { per_shard: (0..shards).map(|_| Vec::new()).collect() }
    }

    /// Queue `event` for the shard that owns its destination host.
    ///
    /// Its `deliver_time` must be at or after the end of the current window; the window loop
    /// checks this and fails the run with a causality error otherwise.
    pub fn push(&mut self, to: ShardId, event: Event) {
        self.per_shard[to.index()].push(event);
    }

    /// The events queued for `to`.
    pub fn for_shard(&self, to: ShardId) -> &[Event] {
        &self.per_shard[to.index()]
    }

    /// Mutable access for the window loop, which drains the outbox after each window.
    pub(crate) fn shard_mut(&mut self, to: ShardId) -> &mut Vec<Event> {
        &mut self.per_shard[to.index()]
    }
}

/// A table of results produced by an engine, as an Arrow IPC stream. The bus carries it from the
/// shard to the coordinator without looking inside; the CLI concatenates tables of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// File stem, e.g. `phold_lps`.
    pub name: String,
    /// The Arrow IPC stream bytes.
    pub arrow_ipc: Vec<u8>,
}

/// What an engine hands back at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineOutput {
    /// The engine's contribution to the run digest: one record per host it owns (see
    /// [`Digest`]), so that the sum over shards is independent of the partition.
    pub digest: Digest,
    /// Result tables.
    pub tables: Vec<Table>,
}

/// A shard's simulation engine, driven by the window loop.
///
/// The loop calls [`Engine::next_event_time`], then [`Engine::run_until`] for each window,
/// then [`Engine::deliver`] with the events other shards sent during that window, and finally
/// [`Engine::finish`].
pub trait Engine {
    /// The time of the earliest pending local event, or [`SimTime::NEVER`] if there is none.
    fn next_event_time(&self) -> SimTime;

    /// Execute every local event with a time strictly before `end`, in canonical order, putting
    /// events for hosts on other shards into `outbox`. Returns the number of events executed.
    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError>;

    /// Accept events from other shards, already in canonical order and all due at or after the
    /// end of the window just run. The engine takes all of them (the vector is left empty).
    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError>;

    /// End the run: the engine's digest contribution and result tables. The engine is not used
    /// afterwards, so it may release its state here (the report is encoded and gathered next).
    fn finish(&mut self) -> Result<EngineOutput, EngineError>;

    /// Result rows the engine has finished with during the run (e.g. the arrivals of messages
    /// too old to change any more), handed out early so that a long run need not hold them: the
    /// window loop asks after every window, and again until the answer is empty, and the
    /// runtime keeps or stores them, in order, ahead of the tables [`Engine::finish`] returns.
    /// An engine may hand them out a few at a time, making each batch only when asked, so
    /// that they never pile up in memory. Most engines have none.
    fn take_tables(&mut self) -> Vec<Table> {
        Vec::new()
    }
}
