//! Calibration: how far the cheap answer is from the real one.
//!
//! One scenario runs at several resolutions — every node a real client on a direct host
//! (`all-direct`), or every node a surrogate identity (`all-surrogate`) — over several seeds.
//! [`matched`] makes the resolutions differ only in engine: one peer graph and one proposer
//! sequence per seed, generated once, given to surrogates and real clients alike. [`stats`] has
//! the distances between two samples (two-sample Kolmogorov–Smirnov, Wasserstein-1, quantile
//! errors) and bootstrap confidence intervals over seeds; [`compare`] turns the runs' arrival
//! delays into the error table a calibration reports; [`fit`] searches the surrogate's free
//! parameters for the values that bring it closest to the reference.
//!
//! The crate is sans-IO: the `thermocline calibrate` command runs the simulations and hands the
//! samples here.

pub mod compare;
pub mod config;
pub mod fit;
pub mod matched;
pub mod stats;
