//! Thermocline's direct hosts: real, unmodified Linux binaries run as managed processes under a
//! seccomp user-notification supervisor, with emulated time, randomness, processes, UDP and TCP,
//! deterministically, as a bus engine ([`DirectEngine`]).
//!
//! - [`launch`]: fork, make the child deterministic (no ASLR, faulting `rdtsc`), install the
//!   seccomp filter, hand its listener to the supervisor, exec.
//! - [`seccomp`]: the filter program and the notification ioctls.
//! - [`engine`]: hosts, tasks and the scheduling that makes runs repeatable; [`emulate`]: the
//!   syscalls; [`nic`]: where a host's packets leave and enter (its TCP/IP stack, from
//!   `thermocline_net::stack`, driven in simulated time; UDP sockets and packets are
//!   `thermocline_net::udp`); [`tcp`]: TCP sockets; [`pcap`]: packet captures; [`host`]:
//!   per-host state.
//! - [`pin`]: each shard and its processes on one CPU.
//! - [`latency`]: simulated CPU time for syscalls answered at once; [`disk`]: each host's disk
//!   quota; [`stamps`]: file timestamps in simulated time; [`pidns`]: a PID namespace per host
//!   (and its programs' view of the host folders), so that nothing outlives the run;
//!   [`teardown`]: killing every managed process when `thermocline` is told to stop.
//! - The preloaded shim (crate `thermocline-shim`) answers vDSO time reads from the host's
//!   simulated-time page without leaving the process.
//!
//! See `docs/direct.md` for the design and what is not supported yet.

pub mod config;
pub mod disk;
mod emulate;
pub mod engine;
pub mod futex;
pub mod host;
pub mod inet6;
pub mod latency;
pub mod launch;
pub mod marks;
pub mod mem;
pub mod names;
pub mod netlink;
pub mod nic;
pub mod pcap;
pub mod peers;
pub mod pidns;
pub mod pin;
pub mod seccomp;
mod shared_page;
pub mod stamps;
pub mod sysnames;
mod tables;
pub mod tcp;
pub mod teardown;
mod threads;
mod timerfd;
pub mod vdso;
pub mod waits;
mod wall;

pub use config::{ExitStatus, ExpectedExit, ProcessSpec, Signal, StartDate};
pub use engine::{DirectEngine, DirectOptions, DirectSetup};
pub use teardown::kill_managed_processes;

use std::path::PathBuf;

/// Why a direct engine could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The spec does not make a runnable direct experiment.
    #[error("direct: {0}")]
    Config(String),
    /// An operating-system call of the supervisor failed.
    #[error("direct: {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// Something went wrong with one host.
    #[error("direct: host {host}: {message}")]
    Host {
        /// Host name.
        host: String,
        /// What happened.
        message: String,
    },
    /// A bus event that is not a packet for one of this shard's hosts.
    #[error("direct: bad event: {0}")]
    BadEvent(String),
    /// Processes ended otherwise than the spec expects.
    #[error("direct: {0}")]
    ExitStatus(String),
    /// A result table could not be built.
    #[error("direct: building a table: {0}")]
    Table(String),
}

/// The shim's file name.
pub const SHIM_FILE: &str = "libthermocline_shim.so";

/// Where the shim is: `$THERMOCLINE_SHIM` if set, else next to `exe` or in its `deps/` folder or
/// its parent (where cargo puts it for binaries and for test executables).
pub fn locate_shim(exe: &std::path::Path) -> PathBuf {
    if let Some(p) = std::env::var_os("THERMOCLINE_SHIM") {
        return PathBuf::from(p);
    }
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    let candidates = [dir.join(SHIM_FILE), dir.join("deps").join(SHIM_FILE), dir.join("..").join(SHIM_FILE)];
    candidates.iter().find(|p| p.is_file()).cloned().unwrap_or_else(|| candidates[0].clone())
}
