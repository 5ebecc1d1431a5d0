//! Syscall emulation: what the supervisor answers for each notified syscall.
//!
//! Every handler either answers at once, lets the kernel run the call (`Continue`, for
//! descriptors and paths that are not emulated), or blocks the task until a simulated event
//! (a timer, a datagram, a child's exit) lets the call complete. Handlers are re-run from scratch
//! when a blocked task is retried, so they only change state when they complete.
//!
//! [`syscall`] is a table: one arm per syscall (or group), dispatching to the file of its family
//! — [`time`] (clocks, sleeps, itimers, CPU accounting), [`random`], [`fd`] (reads, writes,
//! descriptors, native pipes and files), [`native`] (waits on descriptors the kernel runs),
//! [`disk`] (writes against the quota), [`stamps`] (the `stat` family), [`poll`] (poll, select,
//! epoll), [`socket`] (sockets and UDP), [`tcp`], [`netlink`], [`process`] (the shim's hello,
//! exec, wait, uname), [`signal`], [`futex`] and [`timerfd`] — or to [`crate::threads`]. Each
//! takes a [`Cx`] or only the host; the objects they act on (TCP sockets, futex queues, timers,
//! netlink messages) live in the crate's own modules, apart from the handlers.

pub(crate) mod call;
pub(crate) mod disk;
pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod native;
pub(crate) mod netlink;
pub(crate) mod packet;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod random;
pub(crate) mod signal;
pub(crate) mod sockaddr;
pub(crate) mod socket;
pub(crate) mod stamps;
pub(crate) mod tcp;
pub(crate) mod time;
pub(crate) mod timerfd;

use crate::DirectError;
use crate::cx::{Answer, Cx};
use crate::seccomp::{AUDIT_ARCH_X86_64, Notif};
pub(crate) use call::is_latency_bookkeeping;
use call::{Call, errno, fd_entry};
use std::os::fd::AsRawFd;
use thermocline_shim::abi::HELLO_SYSCALL;

pub(crate) use signal::interrupted;

/// Calls refused outright (`ENOSYS`, logged once): POSIX timers, io_uring, inotify.
fn unsupported(cx: &mut Cx, c: &Call) -> Answer {
    cx.host.unsupported(c.vid, c.nr, "", libc::ENOSYS);
    Answer::Errno(libc::ENOSYS)
}

/// `timerfd_settime`/`timerfd_gettime`: on a timerfd, to [`crate::timerfd`]; `EINVAL` on anything else.
fn timerfd_time(cx: &mut Cx, c: &Call) -> Answer {
    let Call { pid, nr, a, .. } = *c;
    use libc::{EINVAL, SYS_timerfd_settime};
    match fd_entry(cx, c) {
        Some(f) if matches!(cx.host.objs[f.obj].as_ref().map(|s| &s.obj), Some(crate::host::Obj::TimerFd(_))) => {
            if nr == SYS_timerfd_settime {
                errno(timerfd::settime(cx, pid, f.obj, a))
            } else {
                errno(timerfd::gettime(cx, pid, f.obj, a[1]))
            }
        }
        _ => Answer::Errno(EINVAL),
    }
}

/// Whether syscall `nr` with arguments `a` asks for signal-driven I/O on a descriptor: `fcntl`
/// setting `O_ASYNC` or an owner or signal for `SIGIO`, or the `ioctl`s that do the same
/// (`FIOASYNC`, `FIOSETOWN`, `SIOCSPGRP`). These are the only ways a native read or write can
/// signal another task, so the host looks for such signals only once one was made.
#[allow(non_upper_case_globals)]
pub(crate) fn sets_async_io(nr: i64, a: [u64; 6]) -> bool {
    use libc::*;
    const F_SETOWN_EX: i32 = 15;
    const F_SETSIG: i32 = 10;
    const FIOSETOWN: u64 = 0x8901;
    const SIOCSPGRP: u64 = 0x8902;
    match nr {
        SYS_fcntl => match a[1] as i32 {
            F_SETFL => a[2] & O_ASYNC as u64 != 0,
            F_SETOWN | F_SETOWN_EX | F_SETSIG => true,
            _ => false,
        },
        SYS_ioctl => matches!(a[1], FIOASYNC | FIOSETOWN | SIOCSPGRP),
        _ => false,
    }
}

/// Answer task `vid`'s notification `n` on host `h`.
#[allow(non_upper_case_globals)]
pub(crate) fn syscall(cx: &mut Cx, vid: u32, n: &Notif) -> Result<Answer, DirectError> {
    let nr = n.data.nr as i64;
    if n.data.arch != AUDIT_ARCH_X86_64 || nr & 0x4000_0000 != 0 {
        cx.host.unsupported(vid, nr, " (32-bit or x32 ABI)", libc::ENOSYS);
        return Ok(Answer::Errno(libc::ENOSYS));
    }
    let (pid, timed_out) = {
        let t = &cx.host.tasks[&vid];
        (t.pid, t.timed_out)
    };
    let c = Call { vid, pid, timed_out, nr, a: n.data.args, n };
    let a = c.a;
    if sets_async_io(nr, a) {
        cx.host.async_io = true;
    }
    use libc::*;
    Ok(match nr {
        HELLO_SYSCALL => process::hello(cx, &c),
        SYS_clock_gettime => time::clock_gettime(cx, &c),
        SYS_gettimeofday => time::gettimeofday(cx, &c),
        SYS_time => time::time(cx, &c),
        SYS_getrusage => time::getrusage(cx, &c),
        SYS_times => time::times(cx, &c),
        SYS_sysinfo => process::system_info(&mut *cx.host, &c),
        SYS_nanosleep => time::nanosleep(&c),
        SYS_clock_nanosleep => time::clock_nanosleep(cx, &c),
        SYS_getrandom => random::getrandom(&mut *cx.host, &c),
        SYS_open | SYS_openat | SYS_openat2 => fd::open(cx, &c),
        SYS_unlink | SYS_unlinkat | SYS_rename | SYS_renameat | SYS_renameat2 | SYS_truncate | SYS_ftruncate => {
            fd::frees_disk(cx, &c)
        }
        SYS_read | SYS_pread64 | SYS_readv | SYS_preadv | SYS_preadv2 => fd::read(cx, &c),
        SYS_write | SYS_pwrite64 | SYS_writev | SYS_pwritev | SYS_pwritev2 => fd::write(cx, &c),
        SYS_close => fd::close(cx, &c),
        SYS_close_range => fd::close_range(cx, &c),
        SYS_dup => fd::dup(cx, &c),
        SYS_dup2 | SYS_dup3 => fd::dup2(cx, &c),
        SYS_fcntl => fd::fcntl(cx, &c),
        SYS_ioctl if crate::netlink::is_interface_ioctl(a[1]) => fd::interface_ioctl(cx, &c),
        SYS_ioctl => fd::ioctl(cx, &c),
        SYS_poll | SYS_ppoll => poll::poll(&mut *cx.host, &c),
        SYS_select | SYS_pselect6 => poll::select(&mut *cx.host, &c),
        SYS_socket => socket::socket(cx, &c),
        SYS_socketpair => socket::socketpair(&c),
        SYS_bind | SYS_connect | SYS_getsockname | SYS_getpeername | SYS_setsockopt | SYS_getsockopt | SYS_shutdown
        | SYS_sendto | SYS_recvfrom | SYS_sendmsg | SYS_recvmsg | SYS_listen | SYS_accept | SYS_accept4
        | SYS_sendmmsg | SYS_recvmmsg => socket::call(cx, &c),
        SYS_sendfile => socket::sendfile(cx, &c),
        SYS_clone | SYS_clone3 | SYS_fork | SYS_vfork => crate::threads::spawn(cx, vid, n),
        SYS_futex
        | SYS_futex_waitv
        | crate::futex::SYS_FUTEX_WAKE
        | crate::futex::SYS_FUTEX_WAIT
        | crate::futex::SYS_FUTEX_REQUEUE => futex::syscall(cx, vid, n),
        SYS_sched_yield => crate::threads::yield_now(cx, vid, crate::threads::SCHED_YIELD_NS),
        SYS_sched_getaffinity | SYS_sched_setaffinity => crate::threads::affinity(cx, vid, n),
        SYS_set_robust_list => process::set_robust_list(&mut *cx.host, &c),
        SYS_rseq | SYS_rt_sigprocmask | SYS_gettid => Answer::Continue,
        SYS_getcpu => process::getcpu(&c),
        SYS_execve | SYS_execveat => process::execve(&mut *cx.host, &c),
        SYS_wait4 | SYS_waitid => process::wait(&mut *cx.host, &c),
        SYS_uname => process::uname(&mut *cx.host, &c),
        SYS_pause | SYS_rt_sigsuspend | SYS_rt_sigtimedwait => signal::wait_for_signal(&*cx.host, &c),
        SYS_epoll_create | SYS_epoll_create1 => poll::epoll_create(&mut *cx.host, cx.shared.devnull.as_raw_fd(), &c),
        SYS_epoll_ctl => poll::epoll_ctl(&mut *cx.host, &c),
        SYS_epoll_wait | SYS_epoll_pwait | SYS_epoll_pwait2 => poll::epoll_wait(&mut *cx.host, &c),
        SYS_alarm => time::alarm(cx, &c),
        SYS_setitimer | SYS_getitimer if a[0] as i32 != ITIMER_REAL => time::itimer_unsupported(cx, &c),
        SYS_getitimer => time::getitimer(cx, &c),
        SYS_setitimer => time::setitimer(cx, &c),
        SYS_timerfd_create => timerfd::create(cx, a[0], a[1]),
        SYS_timerfd_settime | SYS_timerfd_gettime => timerfd_time(cx, &c),
        SYS_timer_create | SYS_io_uring_setup | SYS_inotify_init | SYS_inotify_init1 => unsupported(cx, &c),
        // With --syscall-stats every syscall is notified; the rest run as they are.
        _ => Answer::Continue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_driven_io_is_recognised_in_fcntl_and_ioctl_only() {
        let call = |nr: i64, cmd: u64, arg: u64| sets_async_io(nr, [3, cmd, arg, 0, 0, 0]);
        use libc::*;
        assert!(call(SYS_fcntl, F_SETFL as u64, (O_ASYNC | O_NONBLOCK) as u64));
        assert!(!call(SYS_fcntl, F_SETFL as u64, O_NONBLOCK as u64), "non-blocking alone is not async");
        assert!(call(SYS_fcntl, F_SETOWN as u64, 42));
        assert!(call(SYS_fcntl, 15, 0), "F_SETOWN_EX");
        assert!(call(SYS_fcntl, 10, SIGUSR1 as u64), "F_SETSIG");
        assert!(!call(SYS_fcntl, F_GETFL as u64, 0));
        assert!(call(SYS_ioctl, FIOASYNC, 0));
        assert!(call(SYS_ioctl, 0x8901, 0), "FIOSETOWN");
        assert!(call(SYS_ioctl, 0x8902, 0), "SIOCSPGRP");
        assert!(!call(SYS_ioctl, FIONBIO, 0));
        assert!(!call(SYS_write, F_SETOWN as u64, 0), "other syscalls never");
    }
}
