//! Thermocline's bus: the conservative window protocol that every shard — surrogate, direct or
//! synthetic — takes part in.
//!
//! - [`time`], [`ids`], [`event`]: simulated time, global ids, the event envelope and its order.
//! - [`codec`]: the explicit, versioned batch format every backend moves.
//! - [`engine`]: the contract between the window loop and a simulation engine.
//! - [`window`]: the window loop; [`exchange`]: the collective step a backend provides.
//! - [`threads`], [`process`]: the local backends (the MPI backend implements the same trait).
//! - [`stats`], [`report`], [`digest`]: what a run measures and how results are fingerprinted.

pub mod binary;
pub mod codec;
pub mod composite;
pub mod digest;
pub mod engine;
pub mod error;
pub mod event;
pub mod exchange;
pub mod ids;
pub mod kinds;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod process;
pub mod queue;
pub mod report;
pub mod stats;
pub mod threads;
pub mod time;
pub mod window;

pub use composite::{Composite, Owner};
pub use digest::Digest;
pub use engine::{Engine, EngineOutput, Outbox, Table};
pub use error::{BusError, EngineError};
pub use event::{Event, EventKey};
pub use ids::{HostId, ShardId};
pub use report::ShardReport;
pub use stats::{PairStats, RunTotals, WINDOW_LOG_ROWS, WindowLog, WindowStats};
pub use time::{SimDuration, SimTime};
pub use window::{NoProgress, ProgressSink, WindowConfig};
