//! Writes to regular files against the host's disk quota ([`crate::disk`]): what fits runs in
//! the kernel; a write that would cross the quota is cut short, and the next one fails with
//! `ENOSPC`.

use crate::cx::{Answer, Cx};
use crate::disk::*;
use crate::mem;
use crate::seccomp::Notif;
use std::os::fd::RawFd;

/// What a write call of task `vid` to a regular file (`copy`: the supervisor's copy of the
/// descriptor, `st`: its `fstat`) may do under the host's quota: run in the kernel, be cut short
/// (performed here), or fail with `ENOSPC`.
#[allow(non_upper_case_globals)]
pub(crate) fn file_write(cx: &mut Cx, vid: u32, n: &Notif, copy: RawFd, st: &libc::stat) -> Answer {
    use libc::{SYS_pwrite64, SYS_pwritev, SYS_pwritev2};
    let (nr, a) = (n.data.nr as i64, n.data.args);
    let pid = cx.host.tasks[&vid].pid;
    let size = st.st_size.max(0) as u64;
    let Ok(bufs) = mem::call_buffers(pid, nr, &a) else {
        return Answer::Continue; // the kernel gives the right error
    };
    let len = bufs.iter().map(|b| b.1 as u64).sum::<u64>();
    // SAFETY: fcntl on our copy.
    let append = unsafe { libc::fcntl(copy, libc::F_GETFL) } & libc::O_APPEND != 0
        || (nr == SYS_pwritev2 && a[5] & RWF_APPEND != 0);
    let positional = matches!(nr, SYS_pwrite64 | SYS_pwritev) || (nr == SYS_pwritev2 && a[3] as i64 != -1);
    let pos = if append {
        size
    } else if positional {
        a[3]
    } else {
        // SAFETY: lseek on our copy, which shares the task's file position.
        (unsafe { libc::lseek(copy, 0, libc::SEEK_CUR) }) as u64
    };
    if (pos as i64) < 0 {
        return Answer::Continue;
    }
    let growth = pos.saturating_add(len).saturating_sub(size);
    let disk = &mut cx.host.disk;
    let place = if growth == 0 { Place::Pseudo } else { disk.place(copy, (st.st_dev, st.st_ino)) };
    if place == Place::Pseudo {
        return Answer::Continue;
    }
    let inside = place == Place::Inside;
    let room = disk.room(growth);
    if room == growth {
        disk.record(growth, inside);
        return Answer::Continue;
    }
    let allowed = len.saturating_sub(growth - room);
    if allowed == 0 {
        return Answer::Errno(libc::ENOSPC);
    }
    let answer = short_write(pid, &bufs, allowed as usize, copy, positional.then_some(pos));
    if let Answer::Value(w) = answer {
        cx.host.disk.record(pos.saturating_add(w as u64).saturating_sub(size), inside);
    }
    answer
}

/// Write the first `allowed` bytes of the task's buffers through `copy`, at `at` or at the file
/// position: the short write of a disk about to be full.
fn short_write(pid: i32, bufs: &[(u64, usize)], allowed: usize, copy: RawFd, at: Option<u64>) -> Answer {
    let mut data = Vec::with_capacity(allowed);
    for &(addr, len) in bufs {
        let take = len.min(allowed - data.len());
        match mem::read(pid, addr, take) {
            Ok(d) => data.extend_from_slice(&d),
            Err(_) => return Answer::Errno(libc::EFAULT),
        }
        if data.len() == allowed {
            break;
        }
    }
    let ptr = data.as_ptr() as *const libc::c_void;
    // SAFETY: writing our own buffer through our copy of the descriptor.
    let w = unsafe {
        match at {
            Some(off) => libc::pwrite(copy, ptr, data.len(), off as i64),
            None => libc::write(copy, ptr, data.len()),
        }
    };
    if w < 0 {
        Answer::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Answer::Value(w as i64)
    }
}
