//! Process calls: the shim's hello, `exec`, `wait`, `uname`, `sysinfo`, a new thread's first
//! calls. All but the hello take only the host; the hello takes the [`Cx`](crate::cx::Cx) (a
//! `HELLO_OP_YIELD` preempts the task through [`crate::threads::yield_now`], and `--verbose` is
//! the shard's option).

use super::call::{Call, NS, errno};
use crate::cx::{Answer, BOOT_OFFSET_NS, Cx};
use crate::host::{BlockKind, Host};
use crate::mem;
use crate::procfs::proc_state;
use thermocline_shim::abi::{
    ABI_VERSION, HELLO_OP_LATENCY_COST, HELLO_OP_LATENCY_HANDOVER, HELLO_OP_NO_CPUID_FAULTING, HELLO_OP_TIME_PAGE,
    HELLO_OP_YIELD,
};

/// `hello`.
pub(super) fn hello(cx: &mut Cx, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;
    use libc::*;
    if a[0] == HELLO_OP_TIME_PAGE && a[1] == ABI_VERSION {
        cx.host.tasks.get_mut(&vid).expect("task exists").shim = true;
        Answer::TimePage
    } else if a[0] == HELLO_OP_LATENCY_COST {
        Answer::Value(cx.host.syscall_latency(vid) as i64)
    } else if a[0] == HELLO_OP_LATENCY_HANDOVER {
        let t = cx.host.tasks.get_mut(&vid).expect("task exists");
        t.latency.hand_over(a[2]);
        Answer::Value(t.latency.unapplied() as i64)
    } else if a[0] == HELLO_OP_YIELD {
        let p = cx.host.tasks[&vid].proc;
        let budget = cx.host.procs[p].spec.preempt.map_or(0, |d| d.as_nanos());
        crate::threads::yield_now(cx, vid, budget.max(1))
    } else if a[0] == HELLO_OP_NO_CPUID_FAULTING {
        // A machine fact, the same for every shard and run (docs/direct.md, shim step 4):
        // said once per process, and only with `--verbose`.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if cx.shared.opts.verbose && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "thermocline: CPUID faulting is not available on this machine ({}): managed programs can see \
                 RDRAND and RDSEED (OpenSSL is told not to use them: OPENSSL_ia32cap)",
                std::io::Error::from_raw_os_error(a[2] as i32)
            );
        }
        Answer::Value(0)
    } else {
        Answer::Errno(EINVAL)
    }
}

/// `sysinfo`: uptime from the simulated boot clock (rounded up, as Linux does), no load,
/// the machine's memory and swap totals (constants of the machine, like `uname`'s
/// release) with everything free, and the host's task count: the machine's free memory
/// and load would leak into the run. `procs` counts the host's live threads.
pub(super) fn system_info(host: &mut Host, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let mut real: sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: sysinfo fills the struct.
        if unsafe { libc::sysinfo(&mut real) } != 0 {
            return Err(EFAULT);
        }
        let boot = host.now + BOOT_OFFSET_NS;
        let mut info: sysinfo = unsafe { std::mem::zeroed() };
        info.uptime = (boot / NS + u64::from(!boot.is_multiple_of(NS))) as i64;
        info.totalram = real.totalram;
        info.freeram = real.totalram;
        info.totalswap = real.totalswap;
        info.freeswap = real.totalswap;
        info.totalhigh = real.totalhigh;
        info.freehigh = real.totalhigh;
        info.mem_unit = real.mem_unit;
        let alive = host.tasks.values().filter(|t| !matches!(t.state, crate::host::TaskState::Exited)).count();
        info.procs = alive.min(u16::MAX as usize) as u16;
        // SAFETY: a plain C struct viewed as its bytes.
        let b = unsafe {
            std::slice::from_raw_parts((&info as *const sysinfo).cast::<u8>(), std::mem::size_of::<sysinfo>())
        };
        mem::write(pid, a[0], b).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}

/// A new thread's first syscalls (it stops there before running application code) and
/// the CPU a task runs on (always CPU 0, as the shim's vDSO getcpu says).
pub(super) fn set_robust_list(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, a, .. } = *c;

    if let Some(t) = host.tasks.get_mut(&vid) {
        t.exit_words.robust_list = a[0];
    }
    Answer::Continue
}

/// `getcpu`.
pub(super) fn getcpu(c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        for addr in [a[0], a[1]] {
            if addr != 0 {
                mem::write(pid, addr, &0u32.to_ne_bytes()).map_err(|_| EFAULT)?;
            }
        }
        Ok(Answer::Value(0))
    })())
}

/// `execve`.
pub(super) fn execve(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, .. } = *c;

    host.tasks.get_mut(&vid).expect("task exists").exec_pending = true;
    Answer::Continue
}

/// `wait`.
pub(super) fn wait(host: &mut Host, c: &Call) -> Answer {
    let Call { vid, nr, a, .. } = *c;
    use libc::*;
    let (target, options) = if nr == SYS_wait4 {
        let p = a[0] as i32;
        (if p > 0 { Some(p) } else { None }, a[2] as i32)
    } else {
        (if a[0] as u32 == P_PID { Some(a[1] as i32) } else { None }, a[3] as i32)
    };
    if options & WNOHANG != 0 {
        return Answer::Continue;
    }
    // The program names a child by its pid in the host's namespace.
    let tgid = host.tasks[&vid].tgid;
    let children: Vec<i32> = crate::procfs::group_children(tgid)
        .into_iter()
        .filter(|&c| target.is_none_or(|t| crate::pidns::ns_pid(c) == Some(t)))
        .collect();
    if children.is_empty() || children.iter().any(|&c| proc_state(c).is_none_or(|s| s == 'Z' || s == 'X')) {
        Answer::Continue
    } else {
        Answer::Block(BlockKind::Io { since: 0 }, None)
    }
}

/// `uname`.
pub(super) fn uname(host: &mut Host, c: &Call) -> Answer {
    let Call { pid, a, .. } = *c;
    use libc::*;
    errno((|| {
        let mut u: utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uname fills the struct.
        unsafe { libc::uname(&mut u) };
        let mut b = vec![0u8; std::mem::size_of::<utsname>()];
        let field = 65;
        let put = |b: &mut [u8], i: usize, s: &[u8]| {
            let n = s.len().min(field - 1);
            b[i * field..i * field + n].copy_from_slice(&s[..n]);
        };
        let cstr = |f: &[c_char]| f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect::<Vec<u8>>();
        put(&mut b, 0, b"Linux");
        put(&mut b, 1, host.name.as_bytes());
        put(&mut b, 2, &cstr(&u.release));
        put(&mut b, 3, &cstr(&u.version));
        put(&mut b, 4, b"x86_64");
        put(&mut b, 5, b"(none)");
        mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
        Ok(Answer::Value(0))
    })())
}
