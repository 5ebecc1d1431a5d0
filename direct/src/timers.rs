//! A host's timers: one table, keyed by what each timer is for.
//!
//! Every timer of a direct host — a blocked call's timeout or syscall-latency pause, a task's
//! `ITIMER_REAL`, the TCP/IP stack's next poll, each `timerfd` — is one entry of its host's
//! [`Timers`], named by a [`TimerKey`]. Arming an entry gives it a fresh generation, and the
//! caller queues one event carrying the key and that generation; re-arming or cancelling the
//! entry makes every earlier event of it stale, and [`Timers::current`] tells the two apart
//! when an event comes. What the timer does when it fires stays with its owner (the task, the
//! stack, the timer object); the table only says when, and whether an event still counts.
//!
//! Generations never order events (the bus's key does), so they do not reach a digest.

use std::collections::BTreeMap;

/// Which of a host's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    /// Task `0`'s blocked call: its timeout, or the syscall latency it waits off first.
    Deadline(u32),
    /// Task `0`'s `ITIMER_REAL` timer (`alarm`, `setitimer`).
    Alarm(u32),
    /// The host's TCP/IP stack is due a poll.
    TcpPoll,
    /// The `timerfd` behind emulated object `0`.
    TimerFd(usize),
}

/// An armed timer: when it is due, and which of its events counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Armed {
    at: u64,
    generation: u64,
}

/// The armed timers of one host.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    armed: BTreeMap<TimerKey, Armed>,
    generation: u64,
}

impl Timers {
    /// Arm `key` to fire at `at`, replacing any earlier arming; returns the generation the event
    /// queued for it must carry.
    pub(crate) fn arm(&mut self, key: TimerKey, at: u64) -> u64 {
        self.generation += 1;
        self.armed.insert(key, Armed { at, generation: self.generation });
        self.generation
    }

    /// Disarm `key`: its queued event, if any, is stale from now on.
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.armed.remove(&key);
    }

    /// When `key` is due, if armed.
    pub(crate) fn due(&self, key: TimerKey) -> Option<u64> {
        self.armed.get(&key).map(|a| a.at)
    }

    /// When `key` was due, if an event of it with `generation` is the one its current arming
    /// queued; `None` for a stale event. The timer stays armed until its owner cancels it (a
    /// blocked call that timed out keeps its deadline until it is answered).
    pub(crate) fn current(&self, key: TimerKey, generation: u64) -> Option<u64> {
        self.armed.get(&key).filter(|a| a.generation == generation).map(|a| a.at)
    }

    /// Forget task `vid`'s timers (it exited).
    pub(crate) fn forget_task(&mut self, vid: u32) {
        self.armed.remove(&TimerKey::Deadline(vid));
        self.armed.remove(&TimerKey::Alarm(vid));
    }

    /// Timers armed now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_arming_makes_the_earlier_event_stale() {
        let mut t = Timers::default();
        let first = t.arm(TimerKey::TcpPoll, 100);
        let second = t.arm(TimerKey::TcpPoll, 50);
        assert_eq!(t.due(TimerKey::TcpPoll), Some(50));
        assert_eq!(t.current(TimerKey::TcpPoll, first), None, "the replaced arming's event is stale");
        assert_eq!(t.current(TimerKey::TcpPoll, second), Some(50));
        t.cancel(TimerKey::TcpPoll);
        assert_eq!(t.due(TimerKey::TcpPoll), None);
        assert_eq!(t.current(TimerKey::TcpPoll, second), None, "a cancelled timer's event is stale");
    }

    #[test]
    fn keys_are_independent_and_cancel_is_per_key() {
        let mut t = Timers::default();
        let d = t.arm(TimerKey::Deadline(7), 10);
        let a = t.arm(TimerKey::Alarm(7), 20);
        let f = t.arm(TimerKey::TimerFd(3), 30);
        t.cancel(TimerKey::Alarm(7));
        assert_eq!(t.current(TimerKey::Alarm(7), a), None);
        assert_eq!(t.current(TimerKey::Deadline(7), d), Some(10));
        assert_eq!(t.current(TimerKey::TimerFd(3), f), Some(30));
        assert_eq!(t.current(TimerKey::TimerFd(4), f), None, "a generation belongs to its key");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn an_exited_task_leaves_nothing_armed() {
        let mut t = Timers::default();
        t.arm(TimerKey::Deadline(1), 10);
        t.arm(TimerKey::Alarm(1), 20);
        t.arm(TimerKey::Alarm(2), 20);
        t.forget_task(1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.due(TimerKey::Alarm(2)), Some(20));
    }
}
