//! Thermocline's models: the shared, replicated view of the simulated world that every shard
//! holds, plus synthetic workloads and the Arrow form of metrics.
//!
//! - [`rng`]: deterministic random streams per (seed, purpose, host).
//! - [`phold`]: the PHOLD benchmark engine; [`idle`]: a workload that measures window overhead.
//! - [`metrics`]: Arrow tables of bus statistics and engine results.
//! - The network: [`topology`] (measured country table, Shadow GML via [`gml`], built-ins),
//!   [`routing`] (paths and per-message latency, jitter and loss; the link queues and the one
//!   path decision every engine uses are in the `thermocline-net` crate), [`directory`] (hosts, ids, addresses), [`partition`] (hosts onto shards), [`network`]
//!   (all of it together), [`units`] (sizes and bandwidths).

pub mod directory;
pub mod gml;
pub mod idle;
pub mod metrics;
pub mod network;
pub mod partition;
pub mod phold;
pub mod rng;
pub mod routing;
pub mod topology;
pub mod units;
