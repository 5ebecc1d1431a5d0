//! `timerfd`: timers read through a descriptor, in simulated time.
//!
//! A timer is an emulated object. Arming it schedules an engine event at the expiry; the event
//! adds an expiration (and re-arms a periodic timer), so blocked readers, `poll`, `select` and
//! `epoll` (level- and edge-triggered) see it at exactly the simulated instant. A read returns the
//! expirations since the last read as a native-endian `u64` and resets them, as on Linux.

use crate::emulate::time::clock_ns;
use crate::engine::{Answer, DirectEngine};
use crate::host::{BlockKind, Obj};
use crate::mem;
use libc::{EAGAIN, EBADF, EFAULT, EINVAL};
use std::os::fd::AsRawFd;

/// One timer.
#[derive(Debug)]
pub struct TimerFd {
    /// The clock its absolute times are read on.
    clock: i32,
    /// Next expiry, host simulated ns (`None`: disarmed).
    deadline: Option<u64>,
    /// Period, ns (0: one shot).
    interval: u64,
    /// Expirations not read yet.
    expirations: u64,
    /// Token of the pending expiry event: an event with another token is stale.
    pub(crate) token: u64,
    /// Count of expirations ever, for edge-triggered epoll.
    pub changes: u64,
}

impl TimerFd {
    /// A disarmed timer on `clock`.
    fn new(clock: i32) -> Self {
        Self { clock, deadline: None, interval: 0, expirations: 0, token: 0, changes: 0 }
    }

    /// Readable: it has expired since the last read.
    pub fn readable(&self) -> bool {
        self.expirations > 0
    }

    /// The expiry event with `token` fired at `now`: count the expiration and re-arm a periodic
    /// timer. False for a stale event (the timer was re-armed or disarmed since).
    pub(crate) fn fire(&mut self, token: u64, now: u64) -> bool {
        let Some(due) = self.deadline.filter(|&d| token == self.token && d <= now) else { return false };
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
    fn current(&self, now: u64) -> (u64, u64) {
        (self.interval, self.deadline.map_or(0, |d| d.saturating_sub(now).max(1)))
    }
}

/// `struct itimerspec` bytes: interval, then value.
fn itimerspec_bytes(interval: u64, value: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, value].into_iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_ne_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&((ns % 1_000_000_000) as i64).to_ne_bytes());
    }
    b
}

/// Read a `struct itimerspec`: (interval, value) in ns; `EINVAL` for out-of-range fields.
fn read_itimerspec(pid: i32, addr: u64) -> Result<(u64, u64), i32> {
    let b = mem::read(pid, addr, 32).map_err(|_| EFAULT)?;
    let field = |i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let ns = |s: i64, n: i64| {
        if s < 0 || !(0..1_000_000_000).contains(&n) {
            return Err(EINVAL);
        }
        (s as u64).checked_mul(1_000_000_000).and_then(|x| x.checked_add(n as u64)).ok_or(EINVAL)
    };
    Ok((ns(field(0), field(1))?, ns(field(2), field(3))?))
}

/// The timer behind emulated object `obj`.
fn timer(e: &mut DirectEngine, h: usize, obj: usize) -> Option<&mut TimerFd> {
    match e.hosts[h].obj_mut(obj) {
        Some(Obj::TimerFd(t)) => Some(t),
        _ => None,
    }
}

/// `timerfd_create(clockid, flags)`.
pub(crate) fn create(e: &mut DirectEngine, h: usize, clock: u64, flags: u64) -> Answer {
    let known = [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC, libc::CLOCK_BOOTTIME, 8, 9]; // 8, 9: *_ALARM
    let allowed = (libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) as u64;
    if !known.contains(&(clock as i32)) || flags & !allowed != 0 {
        return Answer::Errno(EINVAL);
    }
    let obj =
        e.hosts[h].add_obj(Obj::TimerFd(Box::new(TimerFd::new(clock as i32))), flags & libc::TFD_NONBLOCK as u64 != 0);
    Answer::AddFd { src: e.devnull.as_raw_fd(), cloexec: flags & libc::TFD_CLOEXEC as u64 != 0, obj }
}

/// `timerfd_settime(fd, flags, new, old)` on emulated object `obj`.
pub(crate) fn settime(e: &mut DirectEngine, h: usize, pid: i32, obj: usize, a: [u64; 6]) -> Result<Answer, i32> {
    let (interval, value) = read_itimerspec(pid, a[2])?;
    let abs = a[1] & libc::TFD_TIMER_ABSTIME as u64 != 0;
    let now = e.now(h);
    let clock = timer(e, h, obj).ok_or(EBADF)?.clock;
    let offset = clock_ns(e.now(h), e.opts.start_date.0, clock as i64).ok_or(EINVAL)? - now;
    let old = timer(e, h, obj).ok_or(EBADF)?.current(now);
    if a[3] != 0 {
        mem::write(pid, a[3], &itimerspec_bytes(old.0, old.1)).map_err(|_| EFAULT)?;
    }
    let deadline = match (value, abs) {
        (0, _) => None,
        (v, true) => Some(v.saturating_sub(offset).max(now)),
        (v, false) => Some(now.saturating_add(v)),
    };
    let token = e.next_token();
    let t = timer(e, h, obj).ok_or(EBADF)?;
    t.deadline = deadline;
    t.interval = if deadline.is_some() { interval } else { 0 };
    t.expirations = 0;
    t.token = token;
    if let Some(at) = deadline {
        e.schedule_timerfd(h, obj, at, token);
    }
    Ok(Answer::Value(0))
}

/// `timerfd_gettime(fd, curr)` on emulated object `obj`.
pub(crate) fn gettime(e: &mut DirectEngine, h: usize, pid: i32, obj: usize, addr: u64) -> Result<Answer, i32> {
    let now = e.now(h);
    let (interval, left) = timer(e, h, obj).ok_or(EBADF)?.current(now);
    mem::write(pid, addr, &itimerspec_bytes(interval, left)).map_err(|_| EFAULT)?;
    Ok(Answer::Value(0))
}

/// `read` of a timer: 8 bytes of expiration count, or wait for one.
pub(crate) fn read(e: &mut DirectEngine, h: usize, pid: i32, obj: usize, bufs: &[(u64, usize)]) -> Result<Answer, i32> {
    let Some(&(addr, len)) = bufs.iter().find(|b| b.1 > 0) else { return Err(EINVAL) };
    if len < 8 {
        return Err(EINVAL);
    }
    let nonblock = e.hosts[h].objs[obj].as_ref().is_some_and(|s| s.nonblock);
    let t = timer(e, h, obj).ok_or(EBADF)?;
    if t.expirations == 0 {
        return if nonblock { Err(EAGAIN) } else { Ok(Answer::Block(BlockKind::Io { since: 0 }, None)) };
    }
    let n = std::mem::take(&mut t.expirations);
    mem::write(pid, addr, &n.to_ne_bytes()).map_err(|_| EFAULT)?;
    Ok(Answer::Value(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_timer_counts_expirations_and_ignores_stale_events() {
        let mut t = TimerFd::new(libc::CLOCK_MONOTONIC);
        t.deadline = Some(100);
        t.interval = 50;
        t.token = 7;
        assert!(!t.fire(6, 100), "a stale token is ignored");
        assert!(!t.readable());
        assert!(t.fire(7, 100));
        assert_eq!(t.next_deadline(), Some(150));
        assert!(t.fire(7, 150));
        assert_eq!(t.next_deadline(), Some(200));
        assert_eq!((t.expirations, t.changes), (2, 2));
        assert_eq!(t.current(160), (50, 40));
    }

    #[test]
    fn a_one_shot_timer_disarms_after_expiring() {
        let mut t = TimerFd::new(libc::CLOCK_REALTIME);
        t.deadline = Some(10);
        t.token = 1;
        assert!(t.fire(1, 10));
        assert_eq!(t.next_deadline(), None);
        assert!(t.readable());
        assert_eq!(t.current(20), (0, 0));
        assert!(!t.fire(1, 30), "no second expiry");
        assert_eq!(t.expirations, 1);
    }

    #[test]
    fn itimerspecs_round_trip() {
        let b = itimerspec_bytes(1_500_000_000, 2_000_000_001);
        let f = |i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!([f(0), f(1), f(2), f(3)], [1, 500_000_000, 2, 1]);
    }
}
