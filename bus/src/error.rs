//! Errors of the shard runtime. Every error names the shard it happened on, so a failed run says
//! who failed and why.

use crate::binary::DecodeError;
use crate::event::EventKey;
use crate::ids::ShardId;
use crate::time::SimTime;

/// An error returned by an engine; boxed so engines keep their own error types.
pub type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a shard, or the whole run, stopped.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The engine returned an error.
    #[error("{shard}: engine error: {source}")]
    Engine {
        /// Where.
        shard: ShardId,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// The engine panicked.
    #[error("{shard} panicked: {message}")]
    Panicked {
        /// Where.
        shard: ShardId,
        /// The panic message.
        message: String,
    },
    /// A batch from another shard could not be decoded.
    #[error("{shard}: undecodable batch from {from}: {source}")]
    Decode {
        /// The receiving shard.
        shard: ShardId,
        /// The sending shard.
        from: ShardId,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
    /// A batch arrived in the wrong slot (its header names another sender or receiver).
    #[error("{shard}: batch in the slot of {from} claims to be from {claimed_src} to {claimed_dst}")]
    Misaddressed {
        /// The receiving shard.
        shard: ShardId,
        /// The slot it arrived in.
        from: ShardId,
        /// The sender its header names.
        claimed_src: ShardId,
        /// The receiver its header names.
        claimed_dst: ShardId,
    },
    /// An event was sent for a time inside the window that produced it: the conservative
    /// protocol could not deliver it in time (the runahead is longer than the smallest latency
    /// that crosses a shard boundary, or the engine computed a wrong delivery time).
    #[error(
        "{shard}: causality violation: event {key:?} sent to {to} is due before the end of its window ({window_end}); the runahead must not exceed the smallest cross-shard latency"
    )]
    Causality {
        /// The sending shard.
        shard: ShardId,
        /// The destination shard.
        to: ShardId,
        /// The offending event.
        key: EventKey,
        /// The end of the window it was produced in.
        window_end: SimTime,
    },
    /// The engine broke the engine contract (events for its own shard in the outbox, events left
    /// before the end of the window it was asked to run, …), or the schedule cannot advance.
    #[error("{shard}: {detail}")]
    Contract {
        /// Where.
        shard: ShardId,
        /// What was wrong.
        detail: String,
    },
    /// The transport between shards failed.
    #[error("{shard}: transport failure: {detail}")]
    Transport {
        /// Where it was noticed.
        shard: ShardId,
        /// What happened.
        detail: String,
    },
    /// Another shard failed, and this one stopped because of it. `cause` is that shard's report.
    #[error("{shard} failed: {cause}")]
    ShardFailed {
        /// The shard that failed first.
        shard: ShardId,
        /// Its error, as text (it may come from another process or machine).
        cause: String,
    },
    /// A shard's final report could not be decoded.
    #[error("undecodable report from {shard}: {source}")]
    Report {
        /// Whose report.
        shard: ShardId,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
}

impl BusError {
    /// The shard this error names as its origin.
    pub fn shard(&self) -> ShardId {
        match self {
            BusError::Engine { shard, .. }
            | BusError::Panicked { shard, .. }
            | BusError::Decode { shard, .. }
            | BusError::Misaddressed { shard, .. }
            | BusError::Causality { shard, .. }
            | BusError::Contract { shard, .. }
            | BusError::Transport { shard, .. }
            | BusError::ShardFailed { shard, .. }
            | BusError::Report { shard, .. } => *shard,
        }
    }

    /// The cause as one line of text without the shard's name, for sending to other shards.
    pub fn cause_text(&self) -> String {
        match self {
            BusError::ShardFailed { cause, .. } => cause.clone(),
            BusError::Panicked { message, .. } => format!("panicked: {message}"),
            other => {
                let text = other.to_string();
                let prefix = format!("{}: ", other.shard());
                text.strip_prefix(&prefix).map(str::to_string).unwrap_or(text)
            }
        }
    }

    /// This error as seen by the rest of the run: "shard N failed: cause".
    pub fn as_failure(&self) -> BusError {
        BusError::ShardFailed { shard: self.shard(), cause: self.cause_text() }
    }
}

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
