//! Wall-clock reads for the supervisor that never execute `rdtsc`.
//!
//! The supervisor thread turns `rdtsc` faulting on while it answers tasks that have it (see
//! `DirectEngine::match_tsc`); the vDSO's clocks read the TSC and would fault, so watchdogs and
//! launch timeouts read the clock with the real syscall instead.

/// Monotonic wall time in ns (`CLOCK_MONOTONIC` through the syscall, not the vDSO).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_syscall_clock_is_monotonic_and_counts_a_sleep() {
        let a = super::now_ns();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = super::now_ns();
        assert!(b >= a + 5_000_000, "{a} → {b}");
        assert!(super::now_ns() >= b);
    }
}
