//! Simulated CPU time for syscalls answered at once, so that a task that never blocks still
//! lets simulated time move.
//!
//! Time does not move while a task runs, so a program that busy-waits on the clock while making
//! syscalls (`while time.monotonic() < t: os.urandom(16)`, spin-waits on `getrandom`,
//! `clock_gettime` through the syscall in a static binary, a loop of `poll` calls that return at
//! once) would see the same instant for ever. The rule, after Shadow's
//! `model_unblocked_syscall_latency` (its `unblocked_syscall_latency` and
//! `max_unapplied_cpu_latency`):
//!
//! - every notified syscall the supervisor answers without blocking adds the process's
//!   `syscall_latency` (default [`DEFAULT_SYSCALL_LATENCY_NS`], 1 µs) to its task's *unapplied
//!   latency*;
//! - when that reaches [`MAX_UNAPPLIED_LATENCY_NS`] (1 ms), the task's next syscall waits that
//!   long in simulated time (a timer, like a sleep) before it is handled, and the account is
//!   emptied;
//! - a call that blocks (a sleep, a receive that waits, a `futex` wait, a yield) empties it too.
//!
//! Shadow applies the latency at every call (its threshold is 1 µs); here the threshold is high
//! enough that a program that blocks at least once every thousand calls — which is what ordinary
//! programs do between network round trips — is never delayed, so exact figures such as a round
//! trip of exactly twice the link latency are kept, while a task that makes a thousand calls in a
//! row without blocking spends a millisecond of simulated time per thousand. It counts syscalls,
//! not wall time, so it is deterministic.

/// Simulated time charged by default for each notified syscall answered without blocking (a
/// process's `syscall_latency`): Shadow's default `unblocked_syscall_latency`.
pub const DEFAULT_SYSCALL_LATENCY_NS: u64 = 1_000;

/// Unapplied latency at which a task's next syscall first waits it off in simulated time (shared
/// with the shim, which follows the same rule for the calls it answers in the process).
pub const MAX_UNAPPLIED_LATENCY_NS: u64 = thermocline_shim::abi::MAX_UNAPPLIED_LATENCY_NS;

/// A task's simulated CPU time spent in syscalls answered at once and not yet applied to the
/// clock.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    unapplied: u64,
}

impl Latency {
    /// Before a syscall is handled: how long the task must first wait, if its unapplied latency
    /// has reached [`MAX_UNAPPLIED_LATENCY_NS`]. The account is then emptied (the wait applies it).
    pub fn take_due(&mut self) -> Option<u64> {
        (self.unapplied >= MAX_UNAPPLIED_LATENCY_NS).then(|| std::mem::take(&mut self.unapplied))
    }

    /// After a syscall is answered: one that blocked, or that completes a call that had blocked,
    /// empties the account; one answered at once adds `cost`.
    pub fn answered(&mut self, blocked: bool, cost: u64) {
        self.unapplied = if blocked { 0 } else { self.unapplied.saturating_add(cost) };
    }

    /// Add `ns` charged elsewhere (by the shim, for calls it answered in the process); the next
    /// syscall waits if the account has reached the threshold.
    pub fn hand_over(&mut self, ns: u64) {
        self.unapplied = self.unapplied.saturating_add(ns);
    }

    /// The latency not yet applied, ns.
    pub fn unapplied(&self) -> u64 {
        self.unapplied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated time a task that only makes calls answered at once has spent after `calls`
    /// calls, under the rule (each wait happens before the call that finds the account full).
    fn spin(calls: u64, cost: u64) -> u64 {
        let mut l = Latency::default();
        let mut now = 0;
        for _ in 0..calls {
            if let Some(d) = l.take_due() {
                now += d;
            }
            l.answered(false, cost);
        }
        now
    }

    #[test]
    fn a_thousand_calls_at_one_microsecond_cost_one_millisecond_applied_at_the_next_call() {
        let mut l = Latency::default();
        for _ in 0..999 {
            assert_eq!(l.take_due(), None);
            l.answered(false, DEFAULT_SYSCALL_LATENCY_NS);
        }
        assert_eq!(l.take_due(), None, "999 µs is below the threshold");
        l.answered(false, DEFAULT_SYSCALL_LATENCY_NS);
        assert_eq!(l.take_due(), Some(1_000_000));
        assert_eq!(l.unapplied(), 0, "the wait applies it");
        assert_eq!(l.take_due(), None);
    }

    #[test]
    fn blocking_forgives_what_is_below_the_threshold() {
        let mut l = Latency::default();
        for _ in 0..900 {
            l.answered(false, DEFAULT_SYSCALL_LATENCY_NS);
        }
        l.answered(true, DEFAULT_SYSCALL_LATENCY_NS);
        assert_eq!(l.unapplied(), 0);
        for _ in 0..999 {
            l.answered(false, DEFAULT_SYSCALL_LATENCY_NS);
        }
        assert_eq!(l.take_due(), None, "a task that blocks every 999 calls is never delayed");
    }

    #[test]
    fn latency_handed_over_by_the_shim_is_waited_off_at_the_next_call() {
        let mut l = Latency::default();
        l.answered(false, DEFAULT_SYSCALL_LATENCY_NS);
        l.hand_over(999_000);
        assert_eq!(l.unapplied(), MAX_UNAPPLIED_LATENCY_NS);
        assert_eq!(l.take_due(), Some(MAX_UNAPPLIED_LATENCY_NS));
        l.hand_over(0);
        assert_eq!(l.take_due(), None, "an empty hand-over changes nothing");
    }

    #[test]
    fn a_busy_wait_of_half_a_second_takes_half_a_million_calls_and_a_zero_cost_never_waits() {
        assert_eq!(spin(500_000, 1_000), 499_000_000, "the 500,000th call's millisecond is applied at the next");
        assert_eq!(spin(500_001, 1_000), 500_000_000);
        assert_eq!(spin(1_000_001, 2_000), 2_000_000_000, "a 2-µs cost: 500 calls per wait");
        assert_eq!(spin(1_000_000, 0), 0, "syscall_latency = 0 turns the rule off");
        assert_eq!(spin(3, 600_000), 1_200_000, "a cost above half the threshold is applied every other call");
    }
}
