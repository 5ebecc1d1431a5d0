//! The library Thermocline preloads (`LD_PRELOAD`) into the managed processes of direct hosts.
//!
//! It is deliberately small and does three things when the process starts (an `.init_array`
//! constructor), all without allocating:
//!
//! 1. **Hello.** It makes the private syscall [`abi::HELLO_SYSCALL`]. The launcher's seccomp filter
//!    hands that call to the supervisor, which answers with a file descriptor of the host's
//!    simulated-time page ([`abi::TimePage`]); the shim maps it read-only. Outside a supervisor the
//!    call fails with `ENOSYS` and the shim does nothing else, so loading it by accident is
//!    harmless.
//! 2. **vDSO patch.** It finds `__vdso_clock_gettime`, `__vdso_gettimeofday`, `__vdso_time`,
//!    `__vdso_clock_getres`, `__vdso_getcpu` and `__vdso_getrandom` in the vDSO image and
//!    overwrites each entry with an absolute jump into this library, where time is read from the
//!    page (a few nanoseconds, no syscall).
//! 3. **rdtsc and cpuid.** The launcher made `rdtsc` fault (`PR_SET_TSC`); the shim turns on CPUID
//!    faulting and installs a `SIGSEGV` handler that emulates `rdtsc`, `rdtscp` (a 1 GHz counter of
//!    simulated monotonic time) and `cpuid` (with RDRAND and RDSEED hidden). `sigaction`,
//!    `signal`, `sigprocmask` and `pthread_sigmask` are interposed so that the program's own
//!    `SIGSEGV` handling cannot remove or block that handler (`segv.rs`).
//!
//! It also interposes libc's `syscall()` and `uname()`: time reads, `getcpu` and `uname` made
//! through them are answered in the process (see `local.rs`), everything else is passed on.
//!
//! Everything here must be safe to run before `main`, in any program: no allocation, no panics
//! (the code paths use no indexing that can fail and no `unwrap`), only raw syscalls and reads.

#![allow(clippy::missing_safety_doc)]

pub mod abi;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod local;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod segv;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub use imp::patched_symbols;
