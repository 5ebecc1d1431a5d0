//! Time: clocks, `gettimeofday`/`time`, sleeps, `alarm` and `ITIMER_REAL`, and CPU accounting
//! (`getrusage`, `times`), all read from the host's simulated clock.

use super::{Call, NS, errno, fd_entry};
use crate::engine::{Answer, BOOT_OFFSET_NS, DirectEngine};
use crate::host::{BlockKind, Obj};
use crate::mem;

/// `clock_gettime`.
pub(super) fn clock_gettime(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let ns = clock_ns(e, h, a[0] as i64).ok_or(EINVAL)?;
        mem::write(pid, a[1], &timespec_bytes(ns)).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}

/// `gettimeofday`.
pub(super) fn gettimeofday(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let ns = clock_ns(e, h, 0).ok_or(EINVAL)?;
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
pub(super) fn time(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let s = (clock_ns(e, h, 0).ok_or(EINVAL)? / NS) as i64;
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
pub(super) fn getrusage(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let cpu = match a[0] as i32 {
            RUSAGE_SELF | RUSAGE_THREAD => e.now(h),
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
pub(super) fn times(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let tick = NS / 100;
        if a[0] != 0 {
            let mut b = [0u8; std::mem::size_of::<tms>()];
            b[..8].copy_from_slice(&((e.now(h) / tick) as i64).to_ne_bytes());
            mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
        }
        Ok(Answer::Value(((e.now(h) + BOOT_OFFSET_NS) / tick) as i64))
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
pub(super) fn clock_nanosleep(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, timed_out, a, .. } = *c;
    use libc::*;
    errno((|| {
        let clock = a[0] as i64;
        let req = read_time(pid, a[2], false)?;
        let now = e.now(h);
        let wait = if a[1] & TIMER_ABSTIME as u64 != 0 {
            let now_clock = clock_ns(e, h, clock).ok_or(EINVAL)?;
            req.saturating_sub(now_clock)
        } else {
            clock_ns(e, h, clock).ok_or(EINVAL)?;
            req
        };
        let _ = now;
        Ok(if timed_out || wait == 0 { Answer::Value(0) } else { Answer::Block(BlockKind::Timer, Some(wait)) })
    })())
}

/// `alarm`.
pub(super) fn alarm(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, a, .. } = *c;

    let old = alarm_left(e, h, vid);
    let host = &mut e.hosts[h];
    host.tasks.get_mut(&vid).expect("task exists").alarm = None;
    if a[0] as u32 > 0 {
        let at = host.now + (a[0] as u32) as u64 * NS;
        e.set_alarm(h, vid, at, 0);
    }
    // Seconds left on the previous alarm, rounded to nearest (at least 1 if any).
    let (left, _) = old;
    Answer::Value(if left == 0 { 0 } else { ((left + NS / 2) / NS).max(1) as i64 })
}

/// `getitimer`.
pub(super) fn getitimer(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let (left, interval) = alarm_left(e, h, vid);
        mem::write(pid, a[1], &itimerval_bytes(interval, left)).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}

/// `setitimer`.
pub(super) fn setitimer(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let (left, interval) = alarm_left(e, h, vid);
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
            e.hosts[h].tasks.get_mut(&vid).expect("task exists").alarm = None;
            if value > 0 {
                let at = e.now(h) + value;
                e.set_alarm(h, vid, at, interval);
            }
        }
        Ok(Answer::Value(0))
    })())
}

/// `timerfd_time`.
pub(super) fn timerfd_time(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, nr, a, .. } = *c;
    use libc::*;
    match fd_entry(e, c) {
        Some(f) if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::TimerFd(_))) => {
            if nr == SYS_timerfd_settime {
                errno(crate::timerfd::settime(e, h, pid, f.obj, a))
            } else {
                errno(crate::timerfd::gettime(e, h, pid, f.obj, a[1]))
            }
        }
        _ => Answer::Errno(EINVAL),
    }
}

/// Simulated time of `clock` on host `h`, ns, or `None` for an invalid clock.
/// The reading of `clock` on host `h` now, ns.
pub(crate) fn clock_ns(e: &DirectEngine, h: usize, clock: i64) -> Option<u64> {
    let now = e.now(h);
    match clock as i32 {
        0 | 5 | 8 | 11 => Some(now + e.opts.start_date.0),
        1 | 4 | 6 | 7 | 9 => Some(now + BOOT_OFFSET_NS),
        2 | 3 => Some(now),
        c if c < 0 => Some(now), // CPU-time clocks of other processes and threads
        _ => None,
    }
}

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
pub(super) fn alarm_left(e: &DirectEngine, h: usize, vid: u32) -> (u64, u64) {
    match e.hosts[h].tasks[&vid].alarm {
        Some((at, interval, _)) => (at.saturating_sub(e.now(h)), interval),
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
pub(super) fn itimer_unsupported(e: &mut DirectEngine, c: &Call) -> Answer {
    e.unsupported(c.h, c.vid, c.nr, " (only ITIMER_REAL: CPU time is not modelled)", libc::EINVAL);
    Answer::Errno(libc::EINVAL)
}
