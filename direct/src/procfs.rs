//! What the supervisor reads of its managed tasks in `/proc`: states, signals, parents and
//! children, executables, descriptors and auxiliary vectors, and the pidfds it waits on. Plain
//! readers with no simulation state, used by the engine and the process and thread handlers.

use crate::seccomp::Listener;
use std::os::fd::{FromRawFd, OwnedFd};

/// Whether a thread held stopped in notification `id` of `listener` (received, not answered) is
/// gone or going, `status` being what its `/proc` status said just before (`None`: no entry). The
/// answer must not depend on how far its death has got when the supervisor looks, or a dying
/// thread would sometimes be left blocked for ever (and its process count as running at the end
/// of the run):
///
/// 1. SIGKILL is queued for it (how the kernel ends every thread of a group exit or fatal
///    signal, all of them before the first thread's exit can be seen) and it has not run since;
/// 2. it has run: a received notification is waited for killably
///    (`SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`), so only a fatal signal woke it, and the kernel
///    withdrew the notification before the thread went back towards user space, where it
///    dequeues its SIGKILL (`get_signal`) and exits: `SECCOMP_IOCTL_NOTIF_ID_VALID` fails;
/// 3. it is a zombie, or gone.
///
/// The status must be read before the notification is checked: a thread that dequeues its
/// SIGKILL after the read had withdrawn its notification before it, so the check sees that. The
/// status alone (as before) missed threads between dequeuing the SIGKILL and becoming zombies —
/// state `R`, nothing pending — which is the whole of `do_exit`: the address space's teardown for
/// the last thread out, and as long as the machine's load keeps the thread off a CPU.
pub(crate) fn stopped_thread_dying(status: Option<&TaskStatus>, listener: &Listener, id: u64) -> bool {
    status.is_none_or(TaskStatus::killed) || !listener.id_valid(id)
}

/// What `/proc/<tgid>/task/<tid>/status` says of a thread's state and signals.
pub(crate) struct TaskStatus {
    /// State letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// Signals pending for the thread itself (`SigPnd`).
    pub pending: u64,
    /// Signals pending for its process (`ShdPnd`).
    pub shared_pending: u64,
    /// Blocked signals (`SigBlk`).
    pub blocked: u64,
}

impl TaskStatus {
    /// Whether the thread is a zombie or has SIGKILL queued (see [`stopped_thread_dying`]).
    pub(crate) fn killed(&self) -> bool {
        self.state == 'Z'
            || self.state == 'X'
            || (self.pending | self.shared_pending) & (1u64 << (libc::SIGKILL - 1)) != 0
    }

    /// Read thread `tid` of `tgid` (a process's first thread: `tgid == tid`); `None` if it is gone.
    pub(crate) fn read(tgid: i32, tid: i32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/status")).ok()?;
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let mask = |name: &str| field(name).and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0);
        Some(Self {
            state: field("State:").and_then(|s| s.chars().next()).unwrap_or('?'),
            pending: mask("SigPnd:"),
            shared_pending: mask("ShdPnd:"),
            blocked: mask("SigBlk:"),
        })
    }
}

/// Whether the shim is mapped in the image of `pid`.
pub(crate) fn shim_mapped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains(crate::SHIM_FILE))
}

/// Kernel state letter of `pid` (`R`, `S`, `D`, `Z`, …), or `None` if it is gone.
pub(crate) fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rfind(')')?;
    s[after + 1..].trim_start().chars().next()
}

/// Parent process id of `pid`, or `None` if it is gone.
pub(crate) fn proc_ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rfind(')')?;
    s[after + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// Children (live or zombie) of `pid`.
pub(crate) fn proc_children(pid: i32) -> Vec<i32> {
    proc_children_of(pid, pid)
}

/// Children (live or zombie) that thread `tid` of process `tgid` forked.
pub(crate) fn proc_children_of(tgid: i32, tid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/children"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// The thread-group id (process id) of thread `tid`.
pub(crate) fn proc_tgid(tid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// `PIDFD_THREAD` (`O_EXCL`): a pidfd of one thread, readable when that thread exits.
const PIDFD_THREAD: libc::c_int = libc::O_EXCL;

/// A thread pidfd of `tid` (Linux 6.9+), or `None` if it is gone.
pub(crate) fn thread_pidfd(tid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open of a thread we were told about; failure means it is gone.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    // SAFETY: a fresh descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What descriptor `fd` of `pid` names (a path, `socket:[…]`, `pipe:[…]`), or `None` if it is closed.
pub(crate) fn fd_link(pid: i32, fd: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok().map(|p| p.to_string_lossy().into_owned())
}

/// The file name of the executable task `pid` runs.
pub(crate) fn binary_name(pid: i32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(exe.file_name().map_or("?".into(), |f| f.to_string_lossy().into_owned()))
}

/// Address of the 16 AT_RANDOM bytes of `pid`'s current image.
pub(crate) fn auxv_random(pid: i32) -> Option<u64> {
    let raw = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    raw.chunks_exact(16).find_map(|c| {
        let key = u64::from_ne_bytes(c[..8].try_into().ok()?);
        (key == libc::AT_RANDOM).then(|| u64::from_ne_bytes(c[8..].try_into().unwrap_or([0; 8])))
    })
}

/// Thread ids of process `tgid`.
pub(crate) fn proc_threads(tgid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{tgid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Children (live or zombie) forked by any thread of process `tgid`: whom `wait4` waits for.
pub(crate) fn group_children(tgid: i32) -> Vec<i32> {
    let mut all: Vec<i32> = proc_threads(tgid).into_iter().flat_map(|tid| proc_children_of(tgid, tid)).collect();
    all.sort_unstable();
    all
}
