//! Thermocline's models: the shared, replicated view of the simulated world that every shard
//! holds, plus synthetic workloads and the Arrow form of metrics.
//!
//! - [`rng`]: deterministic random streams per (seed, purpose, host).
//! - [`phold`]: the PHOLD benchmark engine; [`idle`]: a workload that measures window overhead.
//! - [`metrics`]: Arrow tables of bus statistics and engine results.

pub mod idle;
pub mod metrics;
pub mod phold;
pub mod rng;
