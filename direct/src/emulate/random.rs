//! Randomness: `getrandom` and reads of `/dev/urandom`, from the task's seeded generator.

use super::{Call, errno};
use crate::engine::{Answer, DirectEngine};
use crate::mem;
use rand_core::Rng;

/// `getrandom`.
pub(super) fn getrandom(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, vid, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let len = (a[1] as usize).min(32 << 20);
        let mut buf = vec![0u8; len];
        e.hosts[h].random_of(vid).ok_or(ESRCH)?.fill_bytes(&mut buf);
        mem::write(pid, a[0], &buf).map_err(|_| EFAULT)?;
        Ok(Answer::Value(len as i64))
    })())
}

pub(super) fn fill_random(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    pid: i32,
    bufs: &[(u64, usize)],
) -> Result<Answer, i32> {
    let mut total = 0usize;
    for &(addr, len) in bufs {
        let len = len.min(32 << 20);
        let mut buf = vec![0u8; len];
        e.hosts[h].random_of(vid).ok_or(libc::ESRCH)?.fill_bytes(&mut buf);
        mem::write(pid, addr, &buf).map_err(|_| libc::EFAULT)?;
        total += len;
    }
    Ok(Answer::Value(total as i64))
}
