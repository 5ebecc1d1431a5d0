//! Threads: creating them (`clone`, `clone3`), what a thread's exit does to futex waiters,
//! signals to blocked threads, yielding, the CPUs a host reports, and the preemption of threads
//! that spin without making syscalls.
//!
//! A new thread must not run application code unscheduled. Its first syscalls — glibc's
//! `start_thread` makes `rseq`, then `set_robust_list`, then `rt_sigprocmask`; musl's starts with
//! `rt_sigprocmask`; Go's `runtime.clone` child with `gettid` — are notified, so it stops before
//! it reaches the thread's start routine, and it is registered and awaited like a forked child
//! (see `engine.rs`: the creator's next stop looks for it in `/proc/PID/task`, or its own first
//! notification names it) before anything else is scheduled.

use crate::engine::{Answer, DirectEngine};
use crate::host::{BlockKind, Host, TaskState};
use crate::mem;
use crate::seccomp::Notif;
use std::io::{Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// CPUs a simulated host has, as `sched_getaffinity`, `/sys/devices/system/cpu/online` (glibc's
/// `get_nprocs`, `sysconf(_SC_NPROCESSORS_ONLN)`) report: programs size thread pools from it, so
/// it is fixed rather than the machine's. Every thread still runs one at a time.
pub const EMULATED_CPUS: usize = 2;

/// Simulated time a `sched_yield` takes when no other task of the host is runnable, so that a
/// loop yielding while it waits for a sleeping thread lets time move (at a rate that depends
/// only on simulated time, hence deterministically).
pub const SCHED_YIELD_NS: u64 = 100_000;

const CLONE_VM: u64 = 0x100;
const CLONE_FILES: u64 = 0x400;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
/// `CLONE_ARGS_SIZE_VER0`: the smallest `struct clone_args`.
const CLONE_ARGS_SIZE_VER0: u64 = 64;

/// Thread ids of process `tgid`.
pub(crate) fn proc_threads(tgid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{tgid}/task"))
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Children (live or zombie) forked by any thread of process `tgid`: whom `wait4` waits for.
pub(crate) fn group_children(tgid: i32) -> Vec<i32> {
    let mut all: Vec<i32> =
        proc_threads(tgid).into_iter().flat_map(|tid| crate::engine::proc_children_of(tgid, tid)).collect();
    all.sort_unstable();
    all
}

/// `clone`, `clone3`, `fork` and `vfork`: the kernel creates the task (the call runs natively);
/// the supervisor notes that the caller will have a new child or thread at its next stop, and
/// refuses the sharing it does not model: memory shared between processes (`CLONE_VM` without
/// `CLONE_THREAD` or `CLONE_VFORK`) and descriptor tables shared between processes
/// (`CLONE_FILES` without `CLONE_THREAD`).
#[allow(non_upper_case_globals)]
pub(crate) fn spawn(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif) -> Answer {
    use libc::{SYS_clone, SYS_clone3, SYS_vfork};
    let nr = n.data.nr as i64;
    let a = n.data.args;
    let pid = e.hosts[h].tasks[&vid].pid;
    let flags: u64 = match nr {
        SYS_clone => a[0],
        SYS_clone3 => {
            if a[1] < CLONE_ARGS_SIZE_VER0 {
                return Answer::Errno(libc::EINVAL);
            }
            match mem::read(pid, a[0], 8) {
                Ok(b) => u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
                Err(_) => return Answer::Errno(libc::EFAULT),
            }
        }
        SYS_vfork => CLONE_VFORK | CLONE_VM,
        _ => 0,
    };
    let thread = flags & CLONE_THREAD != 0;
    if !thread && flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
        e.unsupported(h, vid, nr, " (CLONE_VM without CLONE_THREAD: a process sharing memory)", libc::EINVAL);
        return Answer::Errno(libc::EINVAL);
    }
    if !thread && flags & CLONE_FILES != 0 {
        e.unsupported(h, vid, nr, " (CLONE_FILES without CLONE_THREAD: processes sharing descriptors)", libc::EINVAL);
        return Answer::Errno(libc::EINVAL);
    }
    let host = &mut e.hosts[h];
    if !thread {
        let (tree, fds) = (host.tasks[&vid].tree, host.fds(vid).clone());
        host.fork_fds.insert(tree, fds);
    }
    let t = host.tasks.get_mut(&vid).expect("task exists");
    t.forked = true;
    if flags & CLONE_VFORK != 0 {
        t.state = TaskState::Vforked;
        t.vfork_pending = true;
    }
    Answer::Continue
}

/// `sched_yield` (and the shim's preemption yield, charged `quantum`): the caller goes behind
/// every other runnable task of the host; with none, `quantum` of simulated time passes (or less,
/// if something else happens first).
pub(crate) fn yield_now(e: &DirectEngine, h: usize, vid: u32, quantum: u64) -> Answer {
    if e.hosts[h].tasks[&vid].retry {
        Answer::Value(0)
    } else {
        Answer::Block(BlockKind::Io { since: 0 }, Some(quantum))
    }
}

/// `sched_getaffinity` (the first [`EMULATED_CPUS`] CPUs) and `sched_setaffinity` (accepted if
/// the mask names one of them; nothing is pinned, as every task runs in turn anyway).
pub(crate) fn affinity(e: &DirectEngine, h: usize, vid: u32, n: &Notif) -> Answer {
    let a = n.data.args;
    let pid = e.hosts[h].tasks[&vid].pid;
    let len = a[1] as usize;
    let ours = (1u64 << EMULATED_CPUS) - 1;
    if n.data.nr as i64 == libc::SYS_sched_getaffinity {
        if len < 8 || !len.is_multiple_of(8) {
            return Answer::Errno(libc::EINVAL);
        }
        match mem::write(pid, a[2], &ours.to_ne_bytes()) {
            Ok(()) => Answer::Value(8),
            Err(_) => Answer::Errno(libc::EFAULT),
        }
    } else {
        let mask = match mem::read(pid, a[2], len.min(8)) {
            Ok(b) => b.iter().rev().fold(0u64, |m, &x| (m << 8) | x as u64),
            Err(_) => return Answer::Errno(libc::EFAULT),
        };
        if mask & ours == 0 { Answer::Errno(libc::EINVAL) } else { Answer::Value(0) }
    }
}

/// For an `open` of `/sys/devices/system/cpu/{online,possible,present}`: a file that lists the
/// host's [`EMULATED_CPUS`] (a memfd installed in the task, read natively).
pub(crate) fn cpu_list_file(path: &[u8], cloexec: bool) -> Option<Answer> {
    let name = path.strip_prefix(b"/sys/devices/system/cpu/")?;
    if !matches!(name, b"online" | b"possible" | b"present") {
        return None;
    }
    // SAFETY: memfd_create with a static name; the descriptor is owned below.
    let fd = unsafe { libc::memfd_create(c"thermocline-cpus".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Some(Answer::Errno(libc::EMFILE));
    }
    // SAFETY: a fresh descriptor we own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let text = if EMULATED_CPUS == 1 { "0\n".to_string() } else { format!("0-{}\n", EMULATED_CPUS - 1) };
    if file.write_all(text.as_bytes()).and_then(|_| file.rewind()).is_err() {
        return Some(Answer::Errno(libc::EIO));
    }
    Some(Answer::AddFile { file: file.into(), cloexec })
}

/// A thread of process `tgid` has exited: the kernel cleared its `CLONE_CHILD_CLEARTID` word and
/// released its robust mutexes (setting `FUTEX_OWNER_DIED`), and woke waiters in the kernel —
/// where there are none, since every waiter waits in the supervisor. So every waiter of that
/// process whose word no longer holds the value it waited on is woken now (a joiner's word is
/// then 0). A waiter whose word did not change stays queued; a spurious wake-up would be allowed
/// too, but is not needed.
pub(crate) fn recheck_futexes(e: &mut DirectEngine, h: usize, tgid: i32) {
    let host = &mut e.hosts[h];
    let epoch = host.epoch;
    for (key, w) in host.futexes.waiters_in(tgid) {
        let Some(t) = host.tasks.get(&w.vid) else { continue };
        let word = mem::read(t.pid, key.addr, 4).ok().map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        if word == Some(w.val) {
            continue;
        }
        host.futexes.cancel(w.vid);
        wake_task(host, w.vid, epoch);
    }
}

/// Task `vid`, blocked in a `futex` wait that a wake ended: runnable again, its call answered 0.
pub(crate) fn wake_task(host: &mut Host, vid: u32, epoch: u64) {
    if let Some(t) = host.tasks.get_mut(&vid) {
        t.futex_woken = true;
        if let TaskState::Blocked(n, _) = t.state {
            t.state = TaskState::Parked(n);
            t.retry = true;
            t.ready_since = epoch;
        }
    }
}

/// Interrupt blocked tasks that have a signal to take, as the kernel would: a thread with a
/// signal sent to it (`tgkill`, Go's `SIGURG` preemption), and for a signal sent to a process,
/// one thread only — its lowest-id blocked thread that does not block the signal. A blocked
/// task that is dying (its process was killed: SIGKILL queued, or already on its way out, see
/// [`crate::engine::stopped_thread_dying`]) is not answered but awaited like a running task,
/// until its exit is seen. Returns whether any task became runnable or is awaited.
pub(crate) fn interrupt_signalled(host: &mut Host) -> bool {
    let mut chosen: Vec<u32> = Vec::new();
    let mut dying: Vec<u32> = Vec::new();
    let mut groups_done: Vec<i32> = Vec::new();
    for t in host.tasks.values() {
        let TaskState::Blocked(n, kind) = t.state else { continue };
        let status = crate::engine::TaskStatus::read(t.tgid, t.pid);
        if crate::engine::stopped_thread_dying(status.as_ref(), &host.trees[t.tree], n.id) {
            dying.push(t.vid);
            continue;
        }
        // A task waiting off its syscall latency is not in a call yet: the signal comes after it.
        if kind == BlockKind::Latency {
            continue;
        }
        let (own, shared, blocked) = status.map_or((0, 0, 0), |s| (s.pending, s.shared_pending, s.blocked));
        if own & !blocked != 0 {
            chosen.push(t.vid);
        } else if shared & !blocked != 0 && !groups_done.contains(&t.tgid) {
            groups_done.push(t.tgid);
            chosen.push(t.vid);
        }
    }
    for vid in &dying {
        if let Some(t) = host.tasks.get_mut(vid) {
            t.state = TaskState::Running;
        }
    }
    let epoch = host.epoch;
    for vid in &chosen {
        if let Some(t) = host.tasks.get_mut(vid)
            && let TaskState::Blocked(n, _) = t.state
        {
            t.state = TaskState::Parked(n);
            t.retry = true;
            t.interrupted = true;
            t.ready_since = epoch;
        }
    }
    !chosen.is_empty() || !dying.is_empty()
}

/// CPU time of thread `tid` of `tgid`, ns (`/proc/…/schedstat`).
fn cpu_ns(tgid: i32, tid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/schedstat")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// How long `collect` waits for a stop before looking at running tasks again, ms: a fraction of
/// the smallest preemption budget among running tasks, or a second.
pub(crate) fn poll_tick_ms(e: &DirectEngine, h: usize) -> i32 {
    let host = &e.hosts[h];
    host.tasks
        .values()
        .filter(|t| matches!(t.state, TaskState::Running))
        .filter_map(|t| host.procs.get(t.proc)?.spec.preempt)
        .map(|b| (b.as_nanos() / 2_000_000).clamp(1, 1000) as i32)
        .min()
        .unwrap_or(1000)
}

/// Preemption: a running task of a process with a `preempt` budget that has used that much CPU
/// time without stopping gets the shim's preemption signal, whose handler makes a yield call
/// (`HELLO_OP_YIELD`). Its CPU time is first read at the first look after it resumed, so it may
/// run up to one look longer. Tasks without the shim (static programs) are not signalled: the
/// signal's default action would kill them.
pub(crate) fn preempt_spinners(e: &mut DirectEngine, h: usize) {
    let host = &mut e.hosts[h];
    let budgets: Vec<Option<u64>> = host.procs.iter().map(|p| p.spec.preempt.map(|d| d.as_nanos())).collect();
    for t in host.tasks.values_mut() {
        let Some(budget) = budgets.get(t.proc).copied().flatten() else { continue };
        if !matches!(t.state, TaskState::Running) || !t.shim || t.preempted {
            continue;
        }
        let Some(cpu) = cpu_ns(t.tgid, t.pid) else { continue };
        match t.cpu_mark {
            None => t.cpu_mark = Some(cpu),
            Some(mark) if cpu.saturating_sub(mark) >= budget => {
                // SAFETY: tgkill to a managed thread; its handler makes one notified syscall.
                unsafe {
                    libc::syscall(libc::SYS_tgkill, t.tgid, t.pid, thermocline_shim::abi::PREEMPT_SIGNAL);
                }
                t.preempted = true;
            }
            Some(_) => {}
        }
    }
}
