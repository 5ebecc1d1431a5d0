//! `timerfd_create`, `timerfd_settime`, `timerfd_gettime` and reads of a timerfd, in simulated
//! time; the timer object is [`crate::timerfd`]'s, and the engine's event at each expiry fires it.

use super::time::clock_ns;
use crate::cx::{Answer, Cx};
use crate::host::{BlockKind, Obj};
use crate::mem;
use crate::timerfd::*;
use crate::timers::TimerKey;
use libc::{EAGAIN, EBADF, EFAULT, EINVAL};
use std::os::fd::AsRawFd;

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
fn timer<'a>(cx: &'a mut Cx<'_>, obj: usize) -> Option<&'a mut TimerFd> {
    match cx.host.obj_mut(obj) {
        Some(Obj::TimerFd(t)) => Some(t),
        _ => None,
    }
}

/// `timerfd_create(clockid, flags)`.
pub(crate) fn create(cx: &mut Cx, clock: u64, flags: u64) -> Answer {
    let known = [libc::CLOCK_REALTIME, libc::CLOCK_MONOTONIC, libc::CLOCK_BOOTTIME, 8, 9]; // 8, 9: *_ALARM
    let allowed = (libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) as u64;
    if !known.contains(&(clock as i32)) || flags & !allowed != 0 {
        return Answer::Errno(EINVAL);
    }
    let obj =
        cx.host.add_obj(Obj::TimerFd(Box::new(TimerFd::new(clock as i32))), flags & libc::TFD_NONBLOCK as u64 != 0);
    Answer::AddFd { src: cx.shared.devnull.as_raw_fd(), cloexec: flags & libc::TFD_CLOEXEC as u64 != 0, obj }
}

/// `timerfd_settime(fd, flags, new, old)` on emulated object `obj`.
pub(crate) fn settime(cx: &mut Cx, pid: i32, obj: usize, a: [u64; 6]) -> Result<Answer, i32> {
    let (interval, value) = read_itimerspec(pid, a[2])?;
    let abs = a[1] & libc::TFD_TIMER_ABSTIME as u64 != 0;
    let now = cx.host.now;
    let clock = timer(cx, obj).ok_or(EBADF)?.clock;
    let offset = clock_ns(cx.host.now, cx.shared.opts.start_date.0, clock as i64).ok_or(EINVAL)? - now;
    let old = timer(cx, obj).ok_or(EBADF)?.current(now);
    if a[3] != 0 {
        mem::write(pid, a[3], &itimerspec_bytes(old.0, old.1)).map_err(|_| EFAULT)?;
    }
    let deadline = match (value, abs) {
        (0, _) => None,
        (v, true) => Some(v.saturating_sub(offset).max(now)),
        (v, false) => Some(now.saturating_add(v)),
    };
    let t = timer(cx, obj).ok_or(EBADF)?;
    t.deadline = deadline;
    t.interval = if deadline.is_some() { interval } else { 0 };
    t.expirations = 0;
    match deadline {
        Some(at) => cx.sched.arm(cx.host, TimerKey::TimerFd(obj), at),
        None => cx.host.timers.cancel(TimerKey::TimerFd(obj)),
    }
    Ok(Answer::Value(0))
}

/// `timerfd_gettime(fd, curr)` on emulated object `obj`.
pub(crate) fn gettime(cx: &mut Cx, pid: i32, obj: usize, addr: u64) -> Result<Answer, i32> {
    let now = cx.host.now;
    let (interval, left) = timer(cx, obj).ok_or(EBADF)?.current(now);
    mem::write(pid, addr, &itimerspec_bytes(interval, left)).map_err(|_| EFAULT)?;
    Ok(Answer::Value(0))
}

/// `read` of a timer: 8 bytes of expiration count, or wait for one.
pub(crate) fn read(cx: &mut Cx, pid: i32, obj: usize, bufs: &[(u64, usize)]) -> Result<Answer, i32> {
    let Some(&(addr, len)) = bufs.iter().find(|b| b.1 > 0) else { return Err(EINVAL) };
    if len < 8 {
        return Err(EINVAL);
    }
    let nonblock = cx.host.objs[obj].as_ref().is_some_and(|s| s.nonblock);
    let t = timer(cx, obj).ok_or(EBADF)?;
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
    fn itimerspecs_round_trip() {
        let b = itimerspec_bytes(1_500_000_000, 2_000_000_001);
        let f = |i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        assert_eq!([f(0), f(1), f(2), f(3)], [1, 500_000_000, 2, 1]);
    }
}
