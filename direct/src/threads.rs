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

use crate::cx::{Answer, Cx};
use crate::host::{BlockKind, Host, TaskState};
use crate::mem;
use crate::seccomp::Notif;
use std::io::{Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// Simulated time a `sched_yield` takes when no other task of the host is runnable, so that a
/// loop yielding while it waits for a sleeping thread lets time move (at a rate that depends
/// only on simulated time, hence deterministically).
pub const SCHED_YIELD_NS: u64 = 100_000;

const CLONE_VM: u64 = 0x100;
const CLONE_FILES: u64 = 0x400;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
/// `CLONE_ARGS_SIZE_VER0`: the smallest `struct clone_args`.
const CLONE_ARGS_SIZE_VER0: u64 = 64;

/// `clone`, `clone3`, `fork` and `vfork`: the kernel creates the task (the call runs natively);
/// the supervisor notes that the caller will have a new child or thread at its next stop, and
/// refuses the sharing it does not model: memory shared between processes (`CLONE_VM` without
/// `CLONE_THREAD` or `CLONE_VFORK`) and descriptor tables shared between processes
/// (`CLONE_FILES` without `CLONE_THREAD`).
#[allow(non_upper_case_globals)]
pub(crate) fn spawn(cx: &mut Cx, vid: u32, n: &Notif) -> Answer {
    use libc::{SYS_clone, SYS_clone3, SYS_vfork};
    let nr = n.data.nr as i64;
    let a = n.data.args;
    let pid = cx.host.tasks[&vid].pid;
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
        cx.host.unsupported(vid, nr, " (CLONE_VM without CLONE_THREAD: a process sharing memory)", libc::EINVAL);
        return Answer::Errno(libc::EINVAL);
    }
    if !thread && flags & CLONE_FILES != 0 {
        cx.host.unsupported(
            vid,
            nr,
            " (CLONE_FILES without CLONE_THREAD: processes sharing descriptors)",
            libc::EINVAL,
        );
        return Answer::Errno(libc::EINVAL);
    }
    let host = &mut *cx.host;
    if !thread {
        let (tree, fds) = (host.tasks[&vid].tree, host.fds(vid).clone());
        host.fork_fds.insert(tree, fds);
    }
    if thread && flags & CLONE_CHILD_CLEARTID != 0 {
        let tgid = host.tasks[&vid].tgid;
        host.pending_clear_tid = child_tid(pid, nr, a).map(|addr| (tgid, addr));
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
pub(crate) fn yield_now(cx: &Cx, vid: u32, quantum: u64) -> Answer {
    if cx.host.tasks[&vid].retry { Answer::Value(0) } else { Answer::Block(BlockKind::Io { since: 0 }, Some(quantum)) }
}

/// The CPUs task `vid` is told its host has: its process's `cpus` ([`ProcessSpec::cpus`]), a
/// fixed number rather than the machine's, since programs size thread pools from it.
///
/// [`ProcessSpec::cpus`]: crate::ProcessSpec::cpus
pub(crate) fn cpus_of(host: &Host, vid: u32) -> u32 {
    let proc = host.tasks.get(&vid).map(|t| t.proc);
    proc.and_then(|p| host.procs.get(p)).map_or(crate::config::DEFAULT_CPUS, |p| p.spec.cpu_count())
}

/// `sched_getaffinity` (the first [`cpus_of`] CPUs) and `sched_setaffinity` (accepted if the
/// mask names one of them; nothing is pinned, as every task runs in turn anyway).
pub(crate) fn affinity(cx: &Cx, vid: u32, n: &Notif) -> Answer {
    let a = n.data.args;
    let pid = cx.host.tasks[&vid].pid;
    let len = a[1] as usize;
    let ours = u64::MAX >> (64 - cpus_of(cx.host, vid).clamp(1, 64));
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

/// For an `open` of `/sys/devices/system/cpu/{online,possible,present}`: a file that lists
/// `cpus` CPUs (a memfd installed in the task, read natively).
pub(crate) fn cpu_list_file(path: &[u8], cloexec: bool, cpus: u32) -> Option<Answer> {
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
    let text = if cpus <= 1 { "0\n".to_string() } else { format!("0-{}\n", cpus - 1) };
    if file.write_all(text.as_bytes()).and_then(|_| file.rewind()).is_err() {
        return Some(Answer::Errno(libc::EIO));
    }
    Some(Answer::AddFile { file: file.into(), cloexec })
}

/// `clone`'s or `clone3`'s `CLONE_CHILD_CLEARTID` address (`ctid`, or `clone_args.child_tid`).
fn child_tid(pid: i32, nr: i64, a: [u64; 6]) -> Option<u64> {
    match nr {
        libc::SYS_clone => Some(a[3]),
        _ => mem::read(pid, a[0] + 16, 8).ok().map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]))),
    }
}

/// A task has registered: note what its exit releases (`clear_tid`, from its creating `clone`;
/// its id in its PID namespace, for a first thread).
pub(crate) fn note_exit_words(host: &mut Host, vid: u32, clear_tid: Option<u64>) {
    if let Some(t) = host.tasks.get_mut(&vid) {
        let ns_tid = crate::pidns::ns_pid(t.pid).unwrap_or(t.pid);
        t.exit_words = crate::host::ExitWords { clear_tid, ns_tid, robust_list: 0 };
    }
}

/// Task `vid` has exited, its process living on. The kernel has set its `CLONE_CHILD_CLEARTID`
/// word to 0 and marked the robust mutexes it held `FUTEX_OWNER_DIED`, and woken one waiter of
/// each in the kernel — where there are none, every waiter waits in the supervisor. So one
/// waiter of each of those words is woken here, and no other: a waiter whose word merely changed
/// stays queued, as on Linux. A process's first thread set its word with `set_tid_address`,
/// which is not notified: its waiters are those that waited for its id and now read 0 (what
/// `pthread_join` does).
pub(crate) fn wake_at_exit(cx: &mut Cx, vid: u32) {
    let host = &mut *cx.host;
    let Some(t) = host.tasks.get(&vid) else { return };
    let (tgid, words) = (t.tgid, t.exit_words);
    let Some(reader) = host.tasks.values().find(|o| o.tgid == tgid && !matches!(o.state, TaskState::Exited)) else {
        return; // the whole process is gone: nobody waits
    };
    let reader = reader.pid;
    let mut released: Vec<u64> = robust_words(reader, words.robust_list);
    match words.clear_tid {
        Some(addr) if addr != 0 => released.push(addr),
        Some(_) => {}
        None => released.extend(
            host.futexes
                .waiters_in(tgid)
                .into_iter()
                .filter(|(k, w)| w.val == words.ns_tid as u32 && read_word(reader, k.addr) == Some(0))
                .map(|(k, _)| k.addr),
        ),
    }
    let epoch = host.epoch;
    for addr in released {
        for w in host.futexes.wake(crate::futex::FutexKey { space: tgid, addr }, 1, crate::futex::MATCH_ANY) {
            wake_task(host, w, epoch);
        }
    }
}

fn read_word(pid: i32, addr: u64) -> Option<u32> {
    mem::read(pid, addr, 4).ok().map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(pid: i32, addr: u64) -> Option<u64> {
    mem::read(pid, addr, 8).ok().map(|b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))
}

/// The futex words of the robust list at `head` (read through task `pid` of the same process)
/// that the kernel released at its owner's exit, as `exit_robust_list` walks it: at most 2048
/// entries, PI entries skipped (PI futexes are refused), the word at `entry + futex_offset`
/// released when the kernel marked it `FUTEX_OWNER_DIED` and cleared its owner, and the pending
/// entry (`list_op_pending`) also when it reads 0.
fn robust_words(pid: i32, head: u64) -> Vec<u64> {
    const OWNER_DIED: u32 = 0x4000_0000;
    const TID_MASK: u32 = 0x3fff_ffff;
    let mut words = Vec::new();
    if head == 0 {
        return words;
    }
    let (Some(offset), Some(pending)) = (read_u64(pid, head + 8), read_u64(pid, head + 16)) else { return words };
    let released = |entry: u64, is_pending: bool| {
        let addr = (entry & !1).wrapping_add(offset);
        let word = read_word(pid, addr)?;
        let died = word & OWNER_DIED != 0 && word & TID_MASK == 0;
        (entry & 1 == 0 && (died || (is_pending && word == 0))).then_some(addr)
    };
    let mut entry = read_u64(pid, head).unwrap_or(head);
    for _ in 0..2048 {
        if entry == head || entry == 0 {
            break;
        }
        if entry != pending {
            words.extend(released(entry, false));
        }
        entry = read_u64(pid, entry & !1).unwrap_or(head);
    }
    if pending != 0 {
        words.extend(released(pending, true));
    }
    words
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
/// [`crate::procfs::stopped_thread_dying`]) is not answered but awaited like a running task,
/// until its exit is seen. Returns whether any task became runnable or is awaited.
pub(crate) fn interrupt_signalled(host: &mut Host) -> bool {
    let mut chosen: Vec<u32> = Vec::new();
    let mut dying: Vec<u32> = Vec::new();
    let mut groups_done: Vec<i32> = Vec::new();
    for t in host.tasks.values() {
        let TaskState::Blocked(n, kind) = t.state else { continue };
        let status = crate::procfs::TaskStatus::read(t.tgid, t.pid);
        if crate::procfs::stopped_thread_dying(status.as_ref(), &host.trees[t.tree], n.id) {
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
/// the smallest preemption budget among running tasks, or a second; [`LEADER_TICK_MS`] while a
/// running thread-group leader has live threads (see [`exited_leaders`]).
pub(crate) fn poll_tick_ms(cx: &Cx) -> i32 {
    let host = &*cx.host;
    let budget = host
        .tasks
        .values()
        .filter(|t| matches!(t.state, TaskState::Running))
        .filter_map(|t| host.procs.get(t.proc)?.spec.preempt)
        .map(|b| (b.as_nanos() / 2_000_000).clamp(1, 1000) as i32)
        .min()
        .unwrap_or(1000);
    if running_leaders(host).is_empty() { budget } else { budget.min(LEADER_TICK_MS) }
}

/// How often `collect` looks whether a running thread-group leader with live threads has exited.
pub const LEADER_TICK_MS: i32 = 2;

/// Running thread-group leaders whose process has other live threads: (id, kernel id).
fn running_leaders(host: &Host) -> Vec<(u32, i32)> {
    host.tasks
        .values()
        .filter(|t| t.pid == t.tgid && matches!(t.state, TaskState::Running))
        .filter(|t| {
            host.tasks.values().any(|o| o.tgid == t.tgid && o.pid != t.pid && !matches!(o.state, TaskState::Exited))
        })
        .map(|t| (t.vid, t.pid))
        .collect()
}

/// Running thread-group leaders that have exited (`SYS_exit`) while their process's other threads
/// live on. The kernel keeps such a leader a zombie until the last thread exits and (6.18 here)
/// does not report it on its pidfd, thread pidfd included, before then, so `collect` cannot see
/// the exit there: it looks at the leader's state in `/proc` instead, every [`LEADER_TICK_MS`] while
/// such a leader runs. Nothing else of the host runs meanwhile (the leader was the running task),
/// so when the exit is seen does not change what happens.
pub(crate) fn exited_leaders(cx: &Cx) -> Vec<u32> {
    running_leaders(&*cx.host)
        .into_iter()
        .filter(|&(_, pid)| matches!(crate::procfs::proc_state(pid), Some('Z') | Some('X')))
        .map(|(vid, _)| vid)
        .collect()
}

/// Preemption: a running task of a process with a `preempt` budget that has used that much CPU
/// time without stopping gets the shim's preemption signal, whose handler makes a yield call
/// (`HELLO_OP_YIELD`). Its CPU time is first read at the first look after it resumed, so it may
/// run up to one look longer. Tasks without the shim (static programs) are not signalled: the
/// signal's default action would kill them.
pub(crate) fn preempt_spinners(cx: &mut Cx) {
    let host = &mut *cx.host;
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
