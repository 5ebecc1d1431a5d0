//! Randomness: `getrandom` and reads of `/dev/urandom`, from the task's seeded generator. Needs
//! only the host: the generators are the host's.

use super::call::{Call, errno};
use crate::cx::Answer;
use crate::host::Host;
use crate::mem;
use rand_core::Rng;

/// `getrandom`: up to 32 MiB from task `c.vid`'s generator on `host`.
pub(super) fn getrandom(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let len = (a[1] as usize).min(32 << 20);
        let mut buf = vec![0u8; len];
        host.random_of(vid).ok_or(ESRCH)?.fill_bytes(&mut buf);
        mem::write(pid, a[0], &buf).map_err(|_| EFAULT)?;
        Ok(Answer::Value(len as i64))
    })())
}

/// A read of `/dev/urandom` into task `pid`'s buffers `bufs` (each cut to 32 MiB), from task
/// `vid`'s generator on `host`.
pub(super) fn fill_random(host: &mut Host, vid: u32, pid: i32, bufs: &[(u64, usize)]) -> Result<Answer, i32> {
    let mut total = 0usize;
    for &(addr, len) in bufs {
        let len = len.min(32 << 20);
        let mut buf = vec![0u8; len];
        host.random_of(vid).ok_or(libc::ESRCH)?.fill_bytes(&mut buf);
        mem::write(pid, addr, &buf).map_err(|_| libc::EFAULT)?;
        total += len;
    }
    Ok(Answer::Value(total as i64))
}
