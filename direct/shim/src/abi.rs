//! The contract between the shim (inside managed processes) and the supervisor (in the shard):
//! the private syscall number and the layout of the simulated-time page.

/// The private syscall number the shim uses to talk to the supervisor. It is far above any real
/// x86-64 syscall, so without a supervisor the kernel answers `ENOSYS`.
pub const HELLO_SYSCALL: i64 = 0x2000_5448;

/// `HELLO_SYSCALL` operation: "map me the time page". Returns a file descriptor of the page.
pub const HELLO_OP_TIME_PAGE: u64 = 1;

/// `HELLO_SYSCALL` operation: "CPUID faulting is not available here" (argument 2: the errno),
/// so the supervisor can say that RDRAND and RDSEED stay visible.
pub const HELLO_OP_NO_CPUID_FAULTING: u64 = 2;

/// `HELLO_SYSCALL` operation: "yield" — made by the shim's handler of [`PREEMPT_SIGNAL`], which
/// the supervisor sends to a thread that has run too long without a syscall.
pub const HELLO_OP_YIELD: u64 = 3;

/// The signal the supervisor sends to preempt a spinning thread (`SIGRTMAX`; glibc reserves the
/// first real-time signals for itself).
pub const PREEMPT_SIGNAL: i32 = 64;

/// Version of this layout; the shim passes it in the hello call and the supervisor refuses others.
pub const ABI_VERSION: u64 = 1;

/// Frequency of the emulated time-stamp counter: one tick per simulated nanosecond.
pub const TSC_HZ: u64 = 1_000_000_000;

/// The simulated-time page of one host, shared by the supervisor (writer) and every managed
/// process of the host (readers). Only one task of a host runs at a time and the supervisor
/// writes only while none runs, so no sequence lock is needed.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct TimePage {
    /// Layout version ([`ABI_VERSION`]).
    pub version: u64,
    /// Simulated time since the start of the run, ns.
    pub now_ns: u64,
    /// Added to `now_ns` for `CLOCK_REALTIME`: the simulated start date, ns since the Unix epoch.
    pub realtime_offset_ns: u64,
    /// Added to `now_ns` for `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` (and the TSC): a fixed
    /// "uptime at the start of the run".
    pub monotonic_offset_ns: u64,
}

/// Size of the mapping that holds a [`TimePage`].
pub const TIME_PAGE_BYTES: usize = 4096;

/// Environment variable: `native` leaves `rdtsc` untrapped in this process tree (the spec's
/// `trap_rdtsc = false`).
pub const RDTSC_ENV: &str = "THERMOCLINE_RDTSC";
