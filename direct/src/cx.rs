//! What a syscall handler sees: the host the call is on, the shard's [`Scheduler`] (to arm the
//! host's timers and send its packets) and what every host of the shard shares read-only
//! ([`Shared`]). Handlers take a [`Cx`], never the engine, so the engine calls down into them and
//! nothing calls back up.

use crate::config::DirectOptions;
use crate::host::{BlockKind, Host};
use crate::sched::Scheduler;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Uptime the monotonic clock shows at the start of a run (a fixed, plausible value).
pub const BOOT_OFFSET_NS: u64 = 3_600_000_000_000;
/// Delay of a datagram sent to the host itself (loopback or its own address).
pub const LOOPBACK_DELAY_NS: u64 = 1_000;

/// How the supervisor answers one notified syscall.
#[derive(Debug)]
pub enum Answer {
    /// Return this value.
    Value(i64),
    /// Fail with this errno.
    Errno(i32),
    /// Let the kernel run it.
    Continue,
    /// Install a descriptor for emulated object `obj` and return its number.
    AddFd {
        /// Placeholder descriptor (supervisor side).
        src: RawFd,
        /// `O_CLOEXEC`.
        cloexec: bool,
        /// The emulated object it stands for.
        obj: usize,
    },
    /// Install the host's time page and return its descriptor (the shim's hello).
    TimePage,
    /// Install a copy of this file of the supervisor's (not an emulated object: the program
    /// reads it natively) and return its number: files the simulation provides, such as
    /// `/etc/hosts` and the CPU lists.
    AddFile {
        /// The file.
        file: OwnedFd,
        /// `O_CLOEXEC`.
        cloexec: bool,
    },
    /// Not yet: keep the task stopped, with a timeout relative to now.
    Block(BlockKind, Option<u64>),
}

/// What every direct host of a shard shares and no handler changes: the run's settings, the
/// placeholder descriptors installed for emulated objects, and the simulated `/etc/hosts`.
pub(crate) struct Shared {
    /// Run-wide settings.
    pub opts: DirectOptions,
    /// Placeholder installed for emulated objects that are not sockets (`/dev/null`).
    pub devnull: OwnedFd,
    /// Placeholder installed for emulated UDP sockets.
    pub udp_placeholder: OwnedFd,
    /// Placeholder installed for emulated TCP sockets.
    pub tcp_placeholder: OwnedFd,
    /// The simulated `/etc/hosts`.
    pub hosts_file: crate::names::HostsFile,
}

impl Shared {
    /// The placeholder descriptor installed for emulated TCP sockets.
    pub fn tcp_placeholder_fd(&self) -> RawFd {
        self.tcp_placeholder.as_raw_fd()
    }
}

/// The narrow context of a syscall handler: one host, the shard's timeline, the shared settings.
pub(crate) struct Cx<'a> {
    /// The host the call is on.
    pub host: &'a mut Host,
    /// The shard's event queue and routing.
    pub sched: &'a mut Scheduler,
    /// What the shard's hosts share.
    pub shared: &'a Shared,
}

impl Cx<'_> {
    /// The run's start date, ns since the epoch (for the real-time clocks).
    pub fn start_date(&self) -> u64 {
        self.shared.opts.start_date.0
    }
}
