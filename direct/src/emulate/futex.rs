//! `futex`, `futex_waitv` and the futex2 calls (`futex_wake`, `futex_wait`, `futex_requeue`):
//! waits and wakes on the host's futex table ([`crate::futex`]), in simulated time.

use super::time::read_time;
use crate::cx::{Answer, BOOT_OFFSET_NS, Cx};
use crate::futex::*;
use crate::host::BlockKind;
use crate::mem;
use crate::seccomp::Notif;

fn read_word(pid: i32, addr: u64) -> Result<u32, i32> {
    let b = mem::read(pid, addr, 4).map_err(|_| libc::EFAULT)?;
    Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Make the woken tasks runnable (their waits return 0).
fn wake_all(cx: &mut Cx, vids: &[u32]) {
    let host = &mut *cx.host;
    let epoch = host.epoch;
    for &v in vids {
        crate::threads::wake_task(host, v, epoch);
    }
}

/// Answer a `futex` call of task `vid` (and refuse `futex_waitv` and the Linux 6.7 `futex_wake`,
/// `futex_wait`, `futex_requeue` syscalls, which glibc 2.36 does not use).
pub(crate) fn syscall(cx: &mut Cx, vid: u32, n: &Notif) -> Answer {
    let nr = n.data.nr as i64;
    if nr != libc::SYS_futex {
        cx.host.unsupported(vid, nr, " (only futex(2) is emulated)", libc::ENOSYS);
        return Answer::Errno(libc::ENOSYS);
    }
    let a = n.data.args;
    let (op, _private) = match decode(a[1] as u32) {
        Ok(x) => x,
        Err(x) => return Answer::Errno(x),
    };
    match futex(cx, vid, op, a) {
        Ok(answer) => answer,
        Err(x) => Answer::Errno(x),
    }
}

fn futex(cx: &mut Cx, vid: u32, op: FutexOp, a: [u64; 6]) -> Result<Answer, i32> {
    let (pid, tgid, timed_out, woken) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.tgid, t.timed_out, t.futex_woken)
    };
    let key = |addr: u64| -> Result<FutexKey, i32> {
        if !addr.is_multiple_of(4) {
            return Err(libc::EINVAL);
        }
        Ok(FutexKey { space: tgid, addr })
    };
    let count = |v: u64| -> usize { (v as i32).max(1) as usize };
    match op {
        FutexOp::Wait { bitset, realtime } => {
            if woken {
                return Ok(Answer::Value(0));
            }
            if timed_out {
                return Err(libc::ETIMEDOUT);
            }
            let k = key(a[0])?;
            let bits = if bitset { a[5] as u32 } else { MATCH_ANY };
            if bits == 0 {
                return Err(libc::EINVAL);
            }
            let timeout = if a[3] == 0 {
                None
            } else {
                let t = read_time(pid, a[3], false)?;
                if bitset {
                    let now = cx.host.now + if realtime { cx.shared.opts.start_date.0 } else { BOOT_OFFSET_NS };
                    Some(t.saturating_sub(now))
                } else {
                    Some(t)
                }
            };
            let val = a[2] as u32;
            if read_word(pid, k.addr)? != val {
                return Err(libc::EAGAIN);
            }
            if timeout == Some(0) {
                return Err(libc::ETIMEDOUT);
            }
            cx.host.futexes.wait(k, Waiter { vid, bitset: bits, val });
            Ok(Answer::Block(BlockKind::Futex, timeout))
        }
        FutexOp::Wake { bitset } => {
            let k = key(a[0])?;
            let bits = if bitset { a[5] as u32 } else { MATCH_ANY };
            if bits == 0 {
                return Err(libc::EINVAL);
            }
            let woken = cx.host.futexes.wake(k, count(a[2]), bits);
            wake_all(cx, &woken);
            Ok(Answer::Value(woken.len() as i64))
        }
        FutexOp::Requeue { compare } => {
            let (from, to) = (key(a[0])?, key(a[4])?);
            let (n_wake, n_requeue) = (a[2] as i32, a[3] as i32);
            if n_wake < 0 || n_requeue < 0 {
                return Err(libc::EINVAL);
            }
            if compare && read_word(pid, from.addr)? != a[5] as u32 {
                return Err(libc::EAGAIN);
            }
            let (woken, moved) = cx.host.futexes.requeue(from, n_wake as usize, to, n_requeue as usize);
            wake_all(cx, &woken);
            Ok(Answer::Value((woken.len() + moved) as i64))
        }
        FutexOp::WakeOp => {
            let (k1, k2) = (key(a[0])?, key(a[4])?);
            let old = read_word(pid, k2.addr)?;
            let (new, holds) = wake_op(a[5] as u32, old)?;
            mem::write(pid, k2.addr, &new.to_ne_bytes()).map_err(|_| libc::EFAULT)?;
            let mut woken = cx.host.futexes.wake(k1, count(a[2]), MATCH_ANY);
            if holds {
                woken.extend(cx.host.futexes.wake(k2, count(a[3]), MATCH_ANY));
            }
            wake_all(cx, &woken);
            Ok(Answer::Value(woken.len() as i64))
        }
        FutexOp::Unsupported(name) => {
            let what = format!(" ({name}: priority-inheritance futexes are not emulated)");
            cx.host.unsupported(vid, libc::SYS_futex, &what, libc::ENOSYS);
            Err(libc::ENOSYS)
        }
    }
}
