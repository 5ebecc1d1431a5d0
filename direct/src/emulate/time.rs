//! Time: clocks, `gettimeofday`/`time`, sleeps, `alarm` and `ITIMER_REAL`, and CPU accounting
//! (`getrusage`, `times`), all read from the host's simulated clock. Handlers take a [`Cx`]
//! (the host and its timers), not the engine.

use super::call::{Call, NS, errno};
use crate::cx::Cx;
use crate::cx::{Answer, BOOT_OFFSET_NS};
use crate::host::{BlockKind, Host};
use crate::mem;
use crate::timers::TimerKey;

/// `clock_gettime`.
pub(super) fn clock_gettime(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let ns = clock_ns(cx.host.now, cx.start_date(), a[0] as i64).ok_or(EINVAL)?;
        mem::write(pid, a[1], &timespec_bytes(ns)).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}

/// `gettimeofday`.
pub(super) fn gettimeofday(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let ns = clock_ns(cx.host.now, cx.start_date(), 0).ok_or(EINVAL)?;
        if a[0] != 0 {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
            b[8..].copy_from_slice(&(((ns % NS) / 1000) as i64).to_ne_bytes());
            mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
        }
        if a[1] != 0 {
            mem::write(pid, a[1], &[0u8; 8]).map_err(|_| EFAULT)?;
        }
        Ok(Answer::Value(0))
    })())
}

/// `time`.
pub(super) fn time(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let s = (clock_ns(cx.host.now, cx.start_date(), 0).ok_or(EINVAL)? / NS) as i64;
        if a[0] != 0 {
            mem::write(pid, a[0], &s.to_ne_bytes()).map_err(|_| EFAULT)?;
        }
        Ok(Answer::Value(s))
    })())
}

/// CPU accounting: CPU time is not modelled, and simulated time stands in for it as it does
/// for the CPU-time clocks, so `clock()` and `getrusage` agree. Everything else in the
/// struct (peak RSS, faults, context switches) is the machine's and would leak into the
/// run, so it reads 0.
pub(super) fn getrusage(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let cpu = match a[0] as i32 {
            RUSAGE_SELF | RUSAGE_THREAD => cx.host.now,
            RUSAGE_CHILDREN => 0,
            _ => return Err(EINVAL),
        };
        let mut b = [0u8; std::mem::size_of::<rusage>()];
        b[..8].copy_from_slice(&((cpu / NS) as i64).to_ne_bytes());
        b[8..16].copy_from_slice(&(((cpu % NS) / 1000) as i64).to_ne_bytes());
        mem::write(pid, a[1], &b).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}

/// `times`: the return value counts clock ticks (100 per second) of the monotonic clock,
/// the user time is the CPU-time stand-in, the rest 0 (as `getrusage`).
pub(super) fn times(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let tick = NS / 100;
        if a[0] != 0 {
            let mut b = [0u8; std::mem::size_of::<tms>()];
            b[..8].copy_from_slice(&((cx.host.now / tick) as i64).to_ne_bytes());
            mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
        }
        Ok(Answer::Value(((cx.host.now + BOOT_OFFSET_NS) / tick) as i64))
    })())
}

/// `nanosleep`.
pub(super) fn nanosleep(c: &Call) -> Answer {
    let Call { pid, timed_out, a, .. } = *c;

    errno((|| {
        let d = read_time(pid, a[0], false)?;
        Ok(if timed_out || d == 0 { Answer::Value(0) } else { Answer::Block(BlockKind::Timer, Some(d)) })
    })())
}

/// `clock_nanosleep`.
pub(super) fn clock_nanosleep(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, timed_out, a, .. } = *c;
    use libc::*;
    errno((|| {
        let clock = a[0] as i64;
        let req = read_time(pid, a[2], false)?;
        let wait = if a[1] & TIMER_ABSTIME as u64 != 0 {
            let now_clock = clock_ns(cx.host.now, cx.start_date(), clock).ok_or(EINVAL)?;
            req.saturating_sub(now_clock)
        } else {
            clock_ns(cx.host.now, cx.start_date(), clock).ok_or(EINVAL)?;
            req
        };
        Ok(if timed_out || wait == 0 { Answer::Value(0) } else { Answer::Block(BlockKind::Timer, Some(wait)) })
    })())
}

/// `alarm`.
pub(super) fn alarm(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;

    let old = alarm_left(cx.host, vid);
    cx.host.timers.cancel(TimerKey::Alarm(vid));
    if a[0] as u32 > 0 {
        let at = cx.host.now + (a[0] as u32) as u64 * NS;
        cx.sched.set_alarm(cx.host, vid, at, 0);
    }
    // Seconds left on the previous alarm, rounded to nearest (at least 1 if any).
    let (left, _) = old;
    Answer::Value(if left == 0 { 0 } else { ((left + NS / 2) / NS).max(1) as i64 })
}

/// `getitimer`.
pub(super) fn getitimer(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let (left, interval) = alarm_left(cx.host, vid);
        mem::write(pid, a[1], &itimerval_bytes(interval, left)).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}

/// `setitimer`.
pub(super) fn setitimer(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let (left, interval) = alarm_left(cx.host, vid);
        let new = if a[1] != 0 {
            let b = mem::read(pid, a[1], 32).map_err(|_| EFAULT)?;
            let tv = |o: usize| -> Result<u64, i32> {
                let sec = i64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
                let usec = i64::from_ne_bytes(b[o + 8..o + 16].try_into().unwrap_or([0; 8]));
                if sec < 0 || !(0..1_000_000).contains(&usec) {
                    return Err(EINVAL);
                }
                Ok(sec as u64 * NS + usec as u64 * 1000)
            };
            Some((tv(0)?, tv(16)?))
        } else {
            None
        };
        if a[2] != 0 {
            mem::write(pid, a[2], &itimerval_bytes(interval, left)).map_err(|_| EFAULT)?;
        }
        if let Some((interval, value)) = new {
            cx.host.timers.cancel(TimerKey::Alarm(vid));
            if value > 0 {
                let at = cx.host.now + value;
                cx.sched.set_alarm(cx.host, vid, at, interval);
            }
        }
        Ok(Answer::Value(0))
    })())
}

/// The reading of `clock` at simulated time `now` (ns since the run's start, which is
/// `start_date` ns after the epoch), ns, or `None` for an invalid clock.
pub(crate) fn clock_ns(now: u64, start_date: u64, clock: i64) -> Option<u64> {
    match clock as i32 {
        0 | 5 | 8 | 11 => Some(now + start_date),
        1 | 4 | 6 | 7 | 9 => Some(now + BOOT_OFFSET_NS),
        2 | 3 => Some(now),
        c if c < 0 => Some(now), // CPU-time clocks of other processes and threads
        _ => None,
    }
}

/// A `struct timespec` for `ns` nanoseconds, in the task's byte order.
pub(super) fn timespec_bytes(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
    b[8..].copy_from_slice(&((ns % NS) as i64).to_ne_bytes());
    b
}

/// Read a `struct timespec` (or `timeval` with `micro`) as ns; `Err(EINVAL)` when out of range.
pub(crate) fn read_time(pid: i32, addr: u64, micro: bool) -> Result<u64, i32> {
    let b = mem::read(pid, addr, 16).map_err(|_| libc::EFAULT)?;
    let sec = i64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let frac = i64::from_ne_bytes(b[8..].try_into().unwrap_or([0; 8]));
    let scale = if micro { 1000 } else { 1 };
    if sec < 0 || frac < 0 || frac * scale >= NS as i64 {
        return Err(libc::EINVAL);
    }
    Ok((sec as u64).saturating_mul(NS).saturating_add((frac * scale) as u64))
}

/// (ns left, interval ns) of task `vid`'s `ITIMER_REAL` timer.
pub(super) fn alarm_left(host: &Host, vid: u32) -> (u64, u64) {
    match host.timers.due(TimerKey::Alarm(vid)) {
        Some(at) => (at.saturating_sub(host.now), host.tasks[&vid].alarm_interval),
        None => (0, 0),
    }
}

/// A `struct itimerval` (interval, then value), microsecond precision.
pub(super) fn itimerval_bytes(interval: u64, value: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, value].into_iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&(((ns % NS) / 1000) as i64).to_ne_bytes());
    }
    b
}

/// `setitimer`/`getitimer` of a timer other than `ITIMER_REAL`: refused, logged once.
pub(super) fn itimer_unsupported(cx: &mut Cx, c: &Call) -> Answer {
    cx.host.unsupported(c.vid, c.nr, " (only ITIMER_REAL: CPU time is not modelled)", libc::EINVAL);
    Answer::Errno(libc::EINVAL)
}
