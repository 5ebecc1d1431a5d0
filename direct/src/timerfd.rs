//! `timerfd`: timers read through a descriptor, in simulated time.
//!
//! A timer is an emulated object. Arming it arms the host's [`TimerKey::TimerFd`] timer
//! (`crate::timers`) at the expiry; when that fires it adds an expiration (and re-arms a periodic timer), so blocked readers, `poll`, `select` and
//! `epoll` (level- and edge-triggered) see it at exactly the simulated instant. A read returns the
//! expirations since the last read as a native-endian `u64` and resets them, as on Linux.

/// One timer.
#[derive(Debug)]
pub struct TimerFd {
    /// The clock its absolute times are read on.
    pub(crate) clock: i32,
    /// Next expiry, host simulated ns (`None`: disarmed).
    pub(crate) deadline: Option<u64>,
    /// Period, ns (0: one shot).
    pub(crate) interval: u64,
    /// Expirations not read yet.
    pub(crate) expirations: u64,
    /// Count of expirations ever, for edge-triggered epoll.
    pub changes: u64,
}

impl TimerFd {
    /// A disarmed timer on `clock`.
    pub(crate) fn new(clock: i32) -> Self {
        Self { clock, deadline: None, interval: 0, expirations: 0, changes: 0 }
    }

    /// Readable: it has expired since the last read.
    pub fn readable(&self) -> bool {
        self.expirations > 0
    }

    /// Its expiry came at `now`: count the expiration and re-arm a periodic timer. False if it is
    /// not armed or not due.
    pub(crate) fn fire(&mut self, now: u64) -> bool {
        let Some(due) = self.deadline.filter(|&d| d <= now) else { return false };
        self.expirations += 1;
        self.changes += 1;
        self.deadline = (self.interval > 0).then(|| due + self.interval);
        true
    }

    /// The next expiry to schedule, if armed.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// (interval, time left) at `now`, as `timerfd_gettime` reports them.
    pub(crate) fn current(&self, now: u64) -> (u64, u64) {
        (self.interval, self.deadline.map_or(0, |d| d.saturating_sub(now).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_timer_counts_expirations_and_is_not_early() {
        let mut t = TimerFd::new(libc::CLOCK_MONOTONIC);
        t.deadline = Some(100);
        t.interval = 50;
        assert!(!t.fire(99), "not due yet");
        assert!(!t.readable());
        assert!(t.fire(100));
        assert_eq!(t.next_deadline(), Some(150));
        assert!(t.fire(150));
        assert_eq!(t.next_deadline(), Some(200));
        assert_eq!((t.expirations, t.changes), (2, 2));
        assert_eq!(t.current(160), (50, 40));
    }

    #[test]
    fn a_one_shot_timer_disarms_after_expiring() {
        let mut t = TimerFd::new(libc::CLOCK_REALTIME);
        t.deadline = Some(10);
        assert!(t.fire(10));
        assert_eq!(t.next_deadline(), None);
        assert!(t.readable());
        assert_eq!(t.current(20), (0, 0));
        assert!(!t.fire(30), "no second expiry");
        assert_eq!(t.expirations, 1);
    }
}
