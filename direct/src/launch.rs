//! Starting a managed process: fork, make the child deterministic and supervised, exec.
//!
//! With a host namespace (see [`crate::pidns`]) the fork happens with the calling thread's
//! children going into the host's PID namespace. The child, before exec and using raw syscalls
//! only (the parent may be multi-threaded): `PR_SET_PDEATHSIG`, joining the host's mount
//! namespace (its `/proc`), no core dumps (`RLIMIT_CORE` 0: a crashing program must not write an
//! unaccounted file), `personality(ADDR_NO_RANDOMIZE)`, `PR_SET_NO_NEW_PRIVS`, then the seccomp
//! filter with a new listener. (`rdtsc` faulting is turned on by the shim, not here:
//! glibc's dynamic loader reads the TSC before any preloaded code can install a handler.) It publishes the
//! listener's number in a shared page and waits on a futex; the parent takes a copy of the
//! listener with `pidfd_getfd` and releases it. From then on every notified syscall of the child
//! — the `close`, `chdir`, `dup2` and `execve` that follow — goes through the supervisor, which
//! lets them run. (Passing the listener over a socket would not work: `sendmsg` is itself
//! notified, and nobody would be listening yet.)

use crate::pidns::HostNamespace;
use crate::seccomp::{FLAG_NEW_LISTENER, FLAG_WAIT_KILLABLE_RECV, Listener, SockFilter};
use crate::shared_page::SharedPage;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// What to start.
pub struct LaunchSpec<'a> {
    /// Executable path (absolute or relative to the working directory).
    pub path: &'a Path,
    /// `argv`, including `argv[0]`.
    pub argv: &'a [String],
    /// The whole environment, `KEY=value`.
    pub env: &'a [String],
    /// Working directory.
    pub dir: &'a Path,
    /// Where stdout and stderr go.
    pub stdout: File,
    /// Where stderr goes.
    pub stderr: File,
    /// The seccomp program.
    pub filter: &'a [SockFilter],
    /// The host's PID and mount namespaces, if it has them.
    pub namespace: Option<&'a HostNamespace>,
}

/// A started process: its pid, a pidfd and the listener of its filter.
pub struct Launched {
    /// Process id.
    pub pid: i32,
    /// A pidfd of the process (readable when it exits).
    pub pidfd: OwnedFd,
    /// The supervisor's end of the process tree's seccomp filter.
    pub listener: Listener,
}

#[repr(C)]
struct Handshake {
    listener: AtomicU32,
    ready: AtomicU32,
    ack: AtomicU32,
    error: AtomicU32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a string contains a NUL byte"))
}

unsafe fn futex(word: &AtomicU32, op: i32, val: u32, timeout: *const libc::timespec) -> libc::c_long {
    // SAFETY: a futex call on a live shared word.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, timeout, 0usize, 0u32) }
}

/// Fork and exec `spec` under a new seccomp filter.
pub fn launch(spec: &LaunchSpec<'_>) -> io::Result<Launched> {
    let path = cstring(spec.path.as_os_str().as_bytes())?;
    let dir = cstring(spec.dir.as_os_str().as_bytes())?;
    let argv: Vec<CString> = spec.argv.iter().map(|a| cstring(a.as_bytes())).collect::<io::Result<_>>()?;
    let envp: Vec<CString> = spec.env.iter().map(|a| cstring(a.as_bytes())).collect::<io::Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let devnull = File::open("/dev/null")?;
    let prog = SockFprog { len: spec.filter.len() as u16, filter: spec.filter.as_ptr() };
    let shared = SharedPage::new()?;
    // SAFETY: a handshake is a few atomics, valid when zero, far smaller than a page.
    let hs = unsafe { shared.as_ref::<Handshake>() };
    let fds = ChildFds {
        null: devnull.as_raw_fd(),
        out: spec.stdout.as_raw_fd(),
        err: spec.stderr.as_raw_fd(),
        mount_ns: spec.namespace.map(HostNamespace::mount_ns),
    };
    let into_namespace = match spec.namespace.map(HostNamespace::children_here).transpose() {
        Ok(guard) => guard,
        Err(e) => return Err(io::Error::other(format!("entering the host's PID namespace: {e}"))),
    };
    // SAFETY: fork; the child only makes raw syscalls on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the child: async-signal-safe raw syscalls only, then exec or _exit.
        unsafe { child(hs, &prog, &path, &dir, &argv_p, &envp_p, fds) }
    }
    let fork_error = (pid < 0).then(io::Error::last_os_error);
    drop(into_namespace);
    if let Some(e) = fork_error {
        return Err(e);
    }
    // The child has its own copy of the page: ours is unmapped when `shared` drops.
    parent(pid, hs)
}

/// The descriptors the child sets up: stdin from `null`, stdout and stderr, and the host's mount
/// namespace to join.
#[derive(Copy, Clone)]
struct ChildFds {
    null: i32,
    out: i32,
    err: i32,
    mount_ns: Option<i32>,
}

unsafe fn child(
    hs: &Handshake,
    prog: &SockFprog,
    path: &CString,
    dir: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    fds: ChildFds,
) -> ! {
    // SAFETY: raw syscalls with valid arguments; every failure ends in _exit.
    unsafe {
        let fail = |step: u32| -> ! {
            let e = *libc::__errno_location() as u32;
            hs.error.store(step << 16 | e, Ordering::SeqCst);
            hs.ready.store(2, Ordering::SeqCst);
            futex(&hs.ready, libc::FUTEX_WAKE, 1, std::ptr::null());
            libc::_exit(127)
        };
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if let Some(ns) = fds.mount_ns
            && libc::setns(ns, libc::CLONE_NEWNS) != 0
        {
            fail(5);
        }
        let mut core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_CORE, &mut core);
        core.rlim_cur = 0;
        libc::setrlimit(libc::RLIMIT_CORE, &core);
        // The supervisor ignores SIGPIPE (as Rust programs do) and may block signals, and
        // `thermocline` itself may have been started with signals ignored (`nohup` ignores
        // SIGHUP; a shell's background job, SIGINT and SIGQUIT), which exec would pass on: a
        // managed program starts with every disposition at its default and an empty mask, as
        // from a login shell, however the run was started.
        // The raw call: glibc's wrappers refuse the signals it reserves for itself (32, 33).
        let default = [0u64; 4]; // the kernel's `struct sigaction`: SIG_DFL, no flags, empty mask
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(libc::SYS_rt_sigaction, sig, default.as_ptr(), std::ptr::null_mut::<u64>(), 8);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) < 0 {
            fail(1);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(2);
        }
        // The supervisor thread may have `rdtsc` faulting on (it matches the task it answers),
        // and fork copies that; the program's loader reads the TSC before the shim's handler is
        // in place, so the child starts with it off (the shim turns it on).
        if libc::prctl(libc::PR_SET_TSC, libc::PR_TSC_ENABLE, 0, 0, 0) != 0 {
            fail(3);
        }
        let lfd = libc::syscall(
            libc::SYS_seccomp,
            1, // SECCOMP_SET_MODE_FILTER
            FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV,
            prog as *const SockFprog,
        );
        if lfd < 0 {
            fail(4);
        }
        hs.listener.store(lfd as u32, Ordering::SeqCst);
        hs.ready.store(1, Ordering::SeqCst);
        futex(&hs.ready, libc::FUTEX_WAKE, 1, std::ptr::null());
        while hs.ack.load(Ordering::SeqCst) == 0 {
            futex(&hs.ack, libc::FUTEX_WAIT, 0, std::ptr::null());
        }
        // From here on, notified syscalls wait for the supervisor, which lets these run.
        libc::close(lfd as i32);
        if libc::chdir(dir.as_ptr()) != 0 {
            libc::_exit(126);
        }
        libc::dup2(fds.null, 0);
        libc::dup2(fds.out, 1);
        libc::dup2(fds.err, 2);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        // exec failed: report on stderr (the process's own file) and exit 127 like a shell.
        let msg = b"thermocline: exec failed\n";
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::_exit(127)
    }
}

fn parent(pid: i32, hs: &Handshake) -> io::Result<Launched> {
    // SAFETY: pidfd_open of our own child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let started = crate::wall::now_ns();
    while hs.ready.load(Ordering::SeqCst) == 0 {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        // SAFETY: futex wait with a timeout on the shared word.
        unsafe { futex(&hs.ready, libc::FUTEX_WAIT, 0, &ts) };
        if crate::wall::now_ns().saturating_sub(started) > 30_000_000_000 {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(io::Error::other("the launched child did not install its seccomp filter within 30 s"));
        }
    }
    if hs.ready.load(Ordering::SeqCst) == 2 {
        let e = hs.error.load(Ordering::SeqCst);
        // SAFETY: reaping our own child, which has exited.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        let steps =
            ["", "personality", "PR_SET_NO_NEW_PRIVS", "PR_SET_TSC", "seccomp", "joining the host's mount namespace"];
        let step = steps[((e >> 16) as usize).min(steps.len() - 1)];
        return Err(io::Error::other(format!(
            "setting up the child failed at {step}: {}",
            io::Error::from_raw_os_error((e & 0xffff) as i32)
        )));
    }
    let remote = hs.listener.load(Ordering::SeqCst);
    // SAFETY: pidfd_getfd of the child's listener.
    let lfd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), remote, 0) };
    let result = if lfd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(lfd as i32) })
    };
    hs.ack.store(1, Ordering::SeqCst);
    // SAFETY: wake the child.
    unsafe { futex(&hs.ack, libc::FUTEX_WAKE, 1, std::ptr::null()) };
    match result {
        Ok(fd) => Ok(Launched { pid, pidfd, listener: Listener::new(fd) }),
        Err(e) => {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            Err(io::Error::other(format!("taking the child's seccomp listener: {e}")))
        }
    }
}
