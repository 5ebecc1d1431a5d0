//! Syscall emulation: what the supervisor answers for each notified syscall.
//!
//! Every handler either answers at once, lets the kernel run the call (`Continue`, for
//! descriptors and paths that are not emulated), or blocks the task until a simulated event
//! (a timer, a datagram, a child's exit) lets the call complete. Handlers are re-run from scratch
//! when a blocked task is retried, so they only change state when they complete.
//!
//! [`syscall`] is a table: one arm per syscall (or group), dispatching to the file of its family
//! — [`time`] (clocks, sleeps, itimers, CPU accounting), [`random`], [`fd`] (reads, writes,
//! descriptors, native pipes and files), [`poll`] (poll, select, epoll), [`socket`] (sockets and
//! UDP; TCP is [`crate::tcp`], netlink [`crate::netlink`]), [`process`] (the shim's hello, exec,
//! wait, uname) and [`signal`] — or to [`crate::threads`], [`crate::futex`] and [`crate::timerfd`].

pub(crate) mod fd;
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod random;
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod time;

use crate::DirectError;
use crate::engine::{Answer, DirectEngine, Sched};
use crate::host::{FdEntry, Host};
use crate::seccomp::{AUDIT_ARCH_X86_64, Notif};
use std::os::fd::AsRawFd;
use thermocline_shim::abi::{HELLO_OP_LATENCY_COST, HELLO_OP_LATENCY_HANDOVER, HELLO_SYSCALL};

pub(crate) use signal::interrupted;
pub(crate) use socket::{deliver_held, deliver_packet};

/// What the handlers that need only one host take instead of the engine: the host, the run's
/// start date (for the real-time clocks) and the host's handle on the event queue.
pub(crate) struct Cx<'a> {
    /// The host the call is on.
    pub host: &'a mut Host,
    /// The host's timers.
    pub sched: Sched<'a>,
    /// The run's start date, ns since the epoch.
    pub start_date: u64,
}

/// Nanoseconds in a second.
pub(super) const NS: u64 = 1_000_000_000;

/// The notified call being answered: its task and arguments, read once for every handler.
#[derive(Clone, Copy)]
pub(crate) struct Call<'n> {
    /// The host's index.
    pub h: usize,
    /// The task's virtual id.
    pub vid: u32,
    /// The task's pid (in the supervisor's namespace).
    pub pid: i32,
    /// Whether the task's wait has timed out (a retried blocking call must complete now).
    pub timed_out: bool,
    /// The syscall number.
    pub nr: i64,
    /// The syscall's arguments.
    pub a: [u64; 6],
    /// The notification itself.
    pub n: &'n Notif,
}

/// Whether `n` is one of the shim's latency calls ([`HELLO_OP_LATENCY_COST`],
/// [`HELLO_OP_LATENCY_HANDOVER`]): bookkeeping for calls answered in the process, not a call of
/// the program, so it is not charged syscall latency itself.
pub(crate) fn is_latency_bookkeeping(n: &Notif) -> bool {
    n.data.nr as i64 == HELLO_SYSCALL
        && (n.data.args[0] == HELLO_OP_LATENCY_COST || n.data.args[0] == HELLO_OP_LATENCY_HANDOVER)
}

/// A handler's result as an answer: an error number becomes `Errno`.
pub(super) fn errno(r: Result<Answer, i32>) -> Answer {
    r.unwrap_or_else(Answer::Errno)
}

/// The emulated descriptor the call's first argument names, if it is one.
pub(super) fn fd_entry(e: &DirectEngine, c: &Call) -> Option<FdEntry> {
    e.hosts[c.h].fds(c.vid).get(&(c.a[0] as i32)).copied()
}

/// Calls refused outright (`ENOSYS`, logged once): POSIX timers, io_uring, inotify.
fn unsupported(e: &mut DirectEngine, c: &Call) -> Answer {
    e.unsupported(c.h, c.vid, c.nr, "", libc::ENOSYS);
    Answer::Errno(libc::ENOSYS)
}

/// `timerfd_settime`/`timerfd_gettime`: on a timerfd, to [`crate::timerfd`]; `EINVAL` on anything else.
fn timerfd_time(e: &mut DirectEngine, c: &Call) -> Answer {
    let Call { h, pid, nr, a, .. } = *c;
    use libc::{EINVAL, SYS_timerfd_settime};
    match fd_entry(e, c) {
        Some(f) if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(crate::host::Obj::TimerFd(_))) => {
            if nr == SYS_timerfd_settime {
                errno(crate::timerfd::settime(e, h, pid, f.obj, a))
            } else {
                errno(crate::timerfd::gettime(e, h, pid, f.obj, a[1]))
            }
        }
        _ => Answer::Errno(EINVAL),
    }
}

/// Answer task `vid`'s notification `n` on host `h`.
#[allow(non_upper_case_globals)]
pub(crate) fn syscall(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif) -> Result<Answer, DirectError> {
    let nr = n.data.nr as i64;
    if n.data.arch != AUDIT_ARCH_X86_64 || nr & 0x4000_0000 != 0 {
        e.unsupported(h, vid, nr, " (32-bit or x32 ABI)", libc::ENOSYS);
        return Ok(Answer::Errno(libc::ENOSYS));
    }
    let (pid, timed_out) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out)
    };
    let c = Call { h, vid, pid, timed_out, nr, a: n.data.args, n };
    let a = c.a;
    use libc::*;
    Ok(match nr {
        HELLO_SYSCALL => process::hello(e, &c),
        SYS_clock_gettime => time::clock_gettime(&mut e.cx(h), &c),
        SYS_gettimeofday => time::gettimeofday(&mut e.cx(h), &c),
        SYS_time => time::time(&mut e.cx(h), &c),
        SYS_getrusage => time::getrusage(&mut e.cx(h), &c),
        SYS_times => time::times(&mut e.cx(h), &c),
        SYS_sysinfo => process::system_info(&mut e.hosts[h], &c),
        SYS_nanosleep => time::nanosleep(&c),
        SYS_clock_nanosleep => time::clock_nanosleep(&mut e.cx(h), &c),
        SYS_getrandom => random::getrandom(&mut e.hosts[h], &c),
        SYS_open | SYS_openat | SYS_openat2 => fd::open(e, &c),
        SYS_unlink | SYS_unlinkat | SYS_rename | SYS_renameat | SYS_renameat2 | SYS_truncate | SYS_ftruncate => {
            fd::frees_disk(e, &c)
        }
        SYS_read | SYS_pread64 | SYS_readv | SYS_preadv | SYS_preadv2 => fd::read(e, &c),
        SYS_write | SYS_pwrite64 | SYS_writev | SYS_pwritev | SYS_pwritev2 => fd::write(e, &c),
        SYS_close => fd::close(e, &c),
        SYS_close_range => fd::close_range(e, &c),
        SYS_dup => fd::dup(e, &c),
        SYS_dup2 | SYS_dup3 => fd::dup2(e, &c),
        SYS_fcntl => fd::fcntl(e, &c),
        SYS_ioctl if crate::netlink::is_interface_ioctl(a[1]) => fd::interface_ioctl(e, &c),
        SYS_ioctl => fd::ioctl(e, &c),
        SYS_poll | SYS_ppoll => poll::poll(&mut e.hosts[h], &c),
        SYS_select | SYS_pselect6 => poll::select(&mut e.hosts[h], &c),
        SYS_socket => socket::socket(e, &c),
        SYS_socketpair => socket::socketpair(&c),
        SYS_bind | SYS_connect | SYS_getsockname | SYS_getpeername | SYS_setsockopt | SYS_getsockopt | SYS_shutdown
        | SYS_sendto | SYS_recvfrom | SYS_sendmsg | SYS_recvmsg | SYS_listen | SYS_accept | SYS_accept4
        | SYS_sendmmsg | SYS_recvmmsg => socket::call(e, &c),
        SYS_sendfile => socket::sendfile(e, &c),
        SYS_clone | SYS_clone3 | SYS_fork | SYS_vfork => crate::threads::spawn(e, h, vid, n),
        SYS_futex
        | SYS_futex_waitv
        | crate::futex::SYS_FUTEX_WAKE
        | crate::futex::SYS_FUTEX_WAIT
        | crate::futex::SYS_FUTEX_REQUEUE => crate::futex::syscall(e, h, vid, n),
        SYS_sched_yield => crate::threads::yield_now(e, h, vid, crate::threads::SCHED_YIELD_NS),
        SYS_sched_getaffinity | SYS_sched_setaffinity => crate::threads::affinity(e, h, vid, n),
        SYS_set_robust_list => process::set_robust_list(&mut e.hosts[h], &c),
        SYS_rseq | SYS_rt_sigprocmask | SYS_gettid => Answer::Continue,
        SYS_getcpu => process::getcpu(&c),
        SYS_execve | SYS_execveat => process::execve(&mut e.hosts[h], &c),
        SYS_wait4 | SYS_waitid => process::wait(&mut e.hosts[h], &c),
        SYS_uname => process::uname(&mut e.hosts[h], &c),
        SYS_pause | SYS_rt_sigsuspend | SYS_rt_sigtimedwait => signal::wait_for_signal(&e.hosts[h], &c),
        SYS_epoll_create | SYS_epoll_create1 => poll::epoll_create(&mut e.hosts[h], e.devnull.as_raw_fd(), &c),
        SYS_epoll_ctl => poll::epoll_ctl(&mut e.hosts[h], &c),
        SYS_epoll_wait | SYS_epoll_pwait | SYS_epoll_pwait2 => poll::epoll_wait(&mut e.hosts[h], &c),
        SYS_alarm => time::alarm(&mut e.cx(h), &c),
        SYS_setitimer | SYS_getitimer if a[0] as i32 != ITIMER_REAL => time::itimer_unsupported(&mut e.cx(h), &c),
        SYS_getitimer => time::getitimer(&mut e.cx(h), &c),
        SYS_setitimer => time::setitimer(&mut e.cx(h), &c),
        SYS_timerfd_create => crate::timerfd::create(e, h, a[0], a[1]),
        SYS_timerfd_settime | SYS_timerfd_gettime => timerfd_time(e, &c),
        SYS_timer_create | SYS_io_uring_setup | SYS_inotify_init | SYS_inotify_init1 => unsupported(e, &c),
        // With --syscall-stats every syscall is notified; the rest run as they are.
        _ => Answer::Continue,
    })
}
