//! Signals: waiting for one (`pause`, `sigsuspend`, `sigtimedwait`) and interrupting a blocked
//! call. Both take only the host.

use super::call::Call;
use super::time::{read_time, timespec_bytes};
use crate::cx::Answer;
use crate::host::{BlockKind, Host};
use crate::mem;
use crate::procfs::proc_state;
use crate::seccomp::Notif;
use crate::timers::TimerKey;
use thermocline_shim::abi::HELLO_SYSCALL;

/// Waiting for a signal: signals come from the host's own tasks (a child's SIGCHLD, a
/// kill), so the task waits until one is pending, then the kernel delivers it at once.
#[allow(non_upper_case_globals)]
pub(super) fn wait_for_signal(host: &Host, c: &Call) -> Answer {
    let Call { vid, pid, timed_out, nr, a, .. } = *c;
    use libc::*;
    let (pending, blocked) = proc_signals(pid);
    let wanted = match nr {
        SYS_pause => !blocked,
        SYS_rt_sigsuspend => match mem::read(pid, a[0], 8) {
            Ok(b) => !u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
            Err(_) => return Answer::Errno(EFAULT),
        },
        _ => match mem::read(pid, a[0], 8) {
            Ok(b) => u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
            Err(_) => return Answer::Errno(EFAULT),
        },
    };
    // A child that has exited is about to raise SIGCHLD (the kernel may not have queued
    // it yet when its exit is seen).
    let sigchld = 1u64 << (SIGCHLD - 1);
    let child_gone = wanted & sigchld != 0
        && crate::procfs::group_children(host.tasks[&vid].tgid)
            .iter()
            .any(|&c| proc_state(c).is_none_or(|s| s == 'Z' || s == 'X'));
    if pending & wanted != 0 || child_gone {
        Answer::Continue
    } else if nr == SYS_rt_sigtimedwait && timed_out {
        Answer::Errno(EAGAIN)
    } else if nr == SYS_rt_sigtimedwait && a[2] != 0 {
        match read_time(pid, a[2], false) {
            Ok(0) => Answer::Errno(EAGAIN),
            Ok(t) => Answer::Block(BlockKind::Io { since: 0 }, Some(t)),
            Err(x) => Answer::Errno(x),
        }
    } else {
        Answer::Block(BlockKind::Io { since: 0 }, None)
    }
}

/// Pending (thread and process) and blocked signal sets of `pid`, from `/proc`.
pub(super) fn proc_signals(pid: i32) -> (u64, u64) {
    crate::procfs::TaskStatus::read(pid, pid).map_or((0, 0), |s| (s.pending | s.shared_pending, s.blocked))
}

/// `-ERESTARTSYS`: the kernel restarts the call after a `SA_RESTART` handler, else fails it with
/// `EINTR` — what a blocking call interrupted by a signal returns inside the kernel.
pub(super) const ERESTARTSYS: i32 = 512;
/// `-ERESTARTNOHAND`: restarted only if no handler ran (poll, select, epoll_wait).
pub(super) const ERESTARTNOHAND: i32 = 514;

/// The answer to a blocked syscall interrupted by a pending signal: sleeps fail with `EINTR` and
/// report the time left; waits the kernel would restart get the kernel's own restart codes, so
/// `SA_RESTART` behaves as on Linux (the signal is delivered when the call returns).
#[allow(non_upper_case_globals)]
pub(crate) fn interrupted(host: &Host, vid: u32, n: &Notif) -> Answer {
    use libc::*;
    let a = n.data.args;
    let pid = host.tasks[&vid].pid;
    let deadline = host.timers.due(TimerKey::Deadline(vid));
    let left = deadline.map_or(0, |d| d.saturating_sub(host.now));
    match n.data.nr as i64 {
        SYS_nanosleep => {
            if a[1] != 0 {
                let _ = mem::write(pid, a[1], &timespec_bytes(left));
            }
            Answer::Errno(EINTR)
        }
        SYS_clock_nanosleep => {
            if a[1] & TIMER_ABSTIME as u64 == 0 && a[3] != 0 {
                let _ = mem::write(pid, a[3], &timespec_bytes(left));
            }
            Answer::Errno(EINTR)
        }
        SYS_poll | SYS_ppoll | SYS_select | SYS_pselect6 | SYS_epoll_wait | SYS_epoll_pwait | SYS_epoll_pwait2 => {
            Answer::Errno(ERESTARTNOHAND)
        }
        // pause, sigsuspend and sigtimedwait see the signal themselves when run.
        SYS_pause | SYS_rt_sigsuspend | SYS_rt_sigtimedwait => Answer::Continue,
        // A timed futex wait would be restarted with the time left (ERESTART_RESTARTBLOCK, which
        // only the kernel can set up): it fails with EINTR, which futex(2) allows.
        SYS_futex if deadline.is_some() => Answer::Errno(EINTR),
        SYS_sched_yield | HELLO_SYSCALL => Answer::Value(0),
        _ => Answer::Errno(ERESTARTSYS),
    }
}
