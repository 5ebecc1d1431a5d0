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
//! - [`ops`]: the scenario timeline's operations on hosts (stop, start, restart, wipe, admin
//!   commands, waits); [`logs`]: the lines programs write, with simulated timestamps;
//!   [`sources`]: traffic sources, hosts that send datagrams at a rate without a program.
//! - [`latency`]: simulated CPU time for syscalls answered at once; [`disk`]: each host's disk
//!   quota; [`stamps`]: file timestamps in simulated time; [`pidns`]: a PID namespace per host
//!   (and its programs' view of the host folders), so that nothing outlives the run;
//!   [`teardown`]: killing every managed process when `thermocline` is told to stop.
//! - The preloaded shim (crate `thermocline-shim`) answers vDSO time reads from the host's
//!   simulated-time page without leaving the process.
//!
//! See `docs/direct.md` for the design and what is not supported yet.

pub mod coalesce;
pub mod config;
mod cx;
pub mod disk;
mod emulate;
pub mod engine;
pub mod futex;
pub mod host;
pub use thermocline_net::inet6;
pub mod latency;
pub mod launch;
pub mod logs;
pub mod marks;
pub mod mem;
pub mod names;
pub mod netlink;
pub mod nic;
pub mod ops;
pub mod packet;
pub mod pcap;
pub mod peers;
pub mod pidns;
pub mod pin;
mod procfs;
mod sched;
pub mod seccomp;
mod shared_page;
pub mod sources;
pub mod stamps;
pub mod sysnames;
mod tables;
pub use thermocline_net::tcp;
pub mod teardown;
mod threads;
mod timerfd;
mod timers;
pub mod vdso;
pub mod waits;
mod wall;

pub use config::DirectOptions;
pub use config::{ExitStatus, ExpectedExit, ProcessSpec, Signal, StartDate};
pub use engine::{DirectEngine, DirectSetup};
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

/// Where the shim is: `$THERMOCLINE_SHIM` if set, else the newest of the copies next to `exe`,
/// in its `deps/` folder or in its parent (where cargo puts it for binaries and for test
/// executables). The newest, because `cargo build` refreshes the copy next to the binary but
/// `cargo test` only the one in `deps/`, and a stale copy must not shadow a fresh one.
pub fn locate_shim(exe: &std::path::Path) -> PathBuf {
    if let Some(p) = std::env::var_os("THERMOCLINE_SHIM") {
        return PathBuf::from(p);
    }
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    let candidates = [dir.join(SHIM_FILE), dir.join("deps").join(SHIM_FILE), dir.join("..").join(SHIM_FILE)];
    let modified = |p: &PathBuf| std::fs::metadata(p).ok().filter(|m| m.is_file()).and_then(|m| m.modified().ok());
    candidates
        .iter()
        .filter_map(|p| modified(p).map(|t| (t, p)))
        .max_by_key(|&(t, _)| t)
        .map_or_else(|| candidates[0].clone(), |(_, p)| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_newest_copy_of_the_shim_wins() {
        let dir = std::env::temp_dir().join(format!("thermocline-locate-shim-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("deps")).unwrap();
        let exe = dir.join("thermocline");
        let (beside, deps) = (dir.join(SHIM_FILE), dir.join("deps").join(SHIM_FILE));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for (path, age) in [(&beside, 0), (&deps, 60)] {
            std::fs::File::create(path).unwrap().set_modified(t0 + Duration::from_secs(age)).unwrap();
        }
        assert_eq!(locate_shim(&exe), deps, "cargo test refreshed deps/ only");
        std::fs::File::options()
            .write(true)
            .open(&beside)
            .unwrap()
            .set_modified(t0 + Duration::from_secs(120))
            .unwrap();
        assert_eq!(locate_shim(&exe), beside, "cargo build refreshed the copy beside the binary");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(locate_shim(&exe), beside, "none exists: the place beside the binary");
    }
}
