//! The `stat` family (`stat`, `fstat`, `lstat`, `newfstatat`, `statx`) answered by the
//! supervisor with simulated file times and identities ([`crate::stamps`]).

use crate::cx::Cx;
use crate::mem;
use crate::seccomp::Notif;
use crate::stamps::*;
use std::os::fd::AsRawFd;

/// How a stat call of the task is answered: its result, or `None` to let the kernel run it.
#[allow(non_upper_case_globals)]
pub(crate) fn answer(cx: &mut Cx, vid: u32, n: &Notif) -> Option<Result<i64, i32>> {
    use libc::*;
    let a = n.data.args;
    let (pid, pidfd) = {
        let t = cx.host.tasks.get(&vid)?;
        (t.pid, t.pidfd.as_raw_fd())
    };
    let nr = n.data.nr as i64;
    let (dirfd, path, flags, buf) = match nr {
        SYS_stat => (AT_FDCWD, Some(a[0]), 0, a[1]),
        SYS_lstat => (AT_FDCWD, Some(a[0]), AT_SYMLINK_NOFOLLOW, a[1]),
        SYS_fstat => (a[0] as i32, None, AT_EMPTY_PATH, a[1]),
        SYS_newfstatat => (a[0] as i32, Some(a[1]), a[3] as i32, a[2]),
        _ => (a[0] as i32, Some(a[1]), a[2] as i32, a[4]),
    };
    let path = match path {
        Some(0) if flags & AT_EMPTY_PATH != 0 => Vec::new(),
        Some(p) => mem::read_cstr(pid, p, 4096).ok()?,
        None => Vec::new(),
    };
    if path.is_empty() && flags & AT_EMPTY_PATH == 0 {
        return Some(Err(ENOENT));
    }
    let file = match target(pid, pidfd, dirfd, &path, flags & AT_SYMLINK_NOFOLLOW != 0)? {
        Ok(f) => f,
        Err(errno) => return Some(Err(errno)),
    };
    let now = cx.host.now;
    let start_date = cx.shared.opts.start_date.0;
    let host = &mut *cx.host;
    let fd = file.as_raw_fd();
    let path = || host_path(fd, &host.dir, &host.name);
    let stamps = &mut host.stamps;
    let bytes = if nr == SYS_statx {
        statx_bytes(stamps, fd, flags, a[3] as u32, now, start_date, path)
    } else {
        stat_bytes(stamps, fd, now, start_date, path)
    };
    Some(bytes.and_then(|b| mem::write(pid, buf, &b).map_err(|_| EFAULT)).map(|()| 0))
}
