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

/// `HELLO_SYSCALL` operation: "what does a syscall cost here" — answered at once with the
/// process's simulated syscall latency in ns (its `syscall_latency`), and not itself charged. The
/// shim charges that much for each call it answers in the process (see [`HELLO_OP_LATENCY_HANDOVER`]).
pub const HELLO_OP_LATENCY_COST: u64 = 4;

/// `HELLO_SYSCALL` operation: "add argument 2 ns to my unapplied syscall latency" — the latency
/// the shim charged for the calls it answered in the process, handed to the supervisor's account
/// of the calling task once it reaches [`MAX_UNAPPLIED_LATENCY_NS`]. Answered at once, not itself
/// charged, with the task's unapplied latency after the addition.
pub const HELLO_OP_LATENCY_HANDOVER: u64 = 5;

/// Unapplied syscall latency at which a task's next syscall first waits it off in simulated time
/// (the supervisor's rule, which the shim follows for the calls it answers itself).
pub const MAX_UNAPPLIED_LATENCY_NS: u64 = 1_000_000;

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
