//! Syscall emulation: what the supervisor answers for each notified syscall.
//!
//! Every handler either answers at once, lets the kernel run the call (`Continue`, for
//! descriptors and paths that are not emulated), or blocks the task until a simulated event
//! (a timer, a datagram, a child's exit) lets the call complete. Handlers are re-run from scratch
//! when a blocked task is retried, so they only change state when they complete.

use crate::DirectError;
use crate::engine::{Answer, BOOT_OFFSET_NS, DirectEngine, new_udp, proc_state};
use crate::host::{BlockKind, EpollInterest, FdEntry, Host, Obj, ObjSlot};
use crate::seccomp::{AUDIT_ARCH_X86_64, Notif};
use crate::{mem, nic, tcp};
use rand_core::Rng;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use thermocline_net::udp::{self as net, Datagram, MAX_UDP_PAYLOAD};
use thermocline_shim::abi::{
    ABI_VERSION, HELLO_OP_LATENCY_COST, HELLO_OP_LATENCY_HANDOVER, HELLO_OP_NO_CPUID_FAULTING, HELLO_OP_TIME_PAGE,
    HELLO_OP_YIELD, HELLO_SYSCALL,
};

const NS: u64 = 1_000_000_000;
const MSG_PEEK: u64 = 0x2;
const MSG_TRUNC: u64 = 0x20;
const MSG_DONTWAIT: u64 = 0x40;

/// Simulated time of `clock` on host `h`, ns, or `None` for an invalid clock.
/// The reading of `clock` on host `h` now, ns.
pub(crate) fn clock_ns(e: &DirectEngine, h: usize, clock: i64) -> Option<u64> {
    let now = e.now(h);
    match clock as i32 {
        0 | 5 | 8 | 11 => Some(now + e.opts.start_date.0),
        1 | 4 | 6 | 7 | 9 => Some(now + BOOT_OFFSET_NS),
        2 | 3 => Some(now),
        c if c < 0 => Some(now), // CPU-time clocks of other processes and threads
        _ => None,
    }
}

fn timespec_bytes(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
    b[8..].copy_from_slice(&((ns % NS) as i64).to_ne_bytes());
    b
}

/// Read a `struct timespec` (or `timeval` with `micro`) as ns; `Err(EINVAL)` when out of range.
pub(crate) fn read_time(pid: i32, addr: u64, micro: bool) -> Result<u64, i32> {
    let b = mem::read(pid, addr, 16).map_err(|_| libc::EFAULT)?;
    let sec = i64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let frac = i64::from_ne_bytes(b[8..].try_into().unwrap_or([0; 8]));
    let scale = if micro { 1000 } else { 1 };
    if sec < 0 || frac < 0 || frac * scale >= NS as i64 {
        return Err(libc::EINVAL);
    }
    Ok((sec as u64).saturating_mul(NS).saturating_add((frac * scale) as u64))
}

fn sockaddr_bytes(addr: (Ipv4Addr, u16)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    b[2..4].copy_from_slice(&addr.1.to_be_bytes());
    b[4..8].copy_from_slice(&addr.0.octets());
    b
}

/// A socket address read from a task.
pub(crate) enum SockAddr {
    /// An IPv4 address and port.
    Inet(Ipv4Addr, u16),
    /// `AF_UNSPEC`.
    Unspec,
}

/// Read the socket address of `len` bytes at `addr` of task `pid`.
pub(crate) fn read_sockaddr(pid: i32, addr: u64, len: u64) -> Result<SockAddr, i32> {
    if len < 2 {
        return Err(libc::EINVAL);
    }
    let b = mem::read(pid, addr, (len as usize).min(16)).map_err(|_| libc::EFAULT)?;
    let family = u16::from_ne_bytes([b[0], b[1]]) as i32;
    match family {
        libc::AF_INET if b.len() >= 8 => {
            Ok(SockAddr::Inet(Ipv4Addr::new(b[4], b[5], b[6], b[7]), u16::from_be_bytes([b[2], b[3]])))
        }
        libc::AF_INET => Err(libc::EINVAL),
        libc::AF_UNSPEC => Ok(SockAddr::Unspec),
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// Write a socket address to `addr` with its length at `len_ptr` (value-result), as the kernel
/// does: truncated to the caller's buffer, full length reported.
pub(crate) fn write_sockaddr(pid: i32, addr: u64, len_ptr: u64, sa: (Ipv4Addr, u16)) -> Result<(), i32> {
    write_addr_bytes(pid, addr, len_ptr, &sockaddr_bytes(sa))
}

/// Answer a `getsockopt` of an `int` option: `v` to `optval`, cut to the caller's `*optlen`,
/// and the length written back.
pub(crate) fn write_int_option(pid: i32, optval: u64, optlen: u64, v: i32) -> Result<Answer, i32> {
    let lb = mem::read(pid, optlen, 4).map_err(|_| libc::EFAULT)?;
    let cap = u32::from_ne_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize;
    mem::write(pid, optval, &v.to_ne_bytes()[..cap.min(4)]).map_err(|_| libc::EFAULT)?;
    mem::write(pid, optlen, &(cap.min(4) as u32).to_ne_bytes()).map_err(|_| libc::EFAULT)?;
    Ok(Answer::Value(0))
}

/// Write the socket address `bytes` to `(addr, *len_ptr)` of task `pid` (the `accept`,
/// `getsockname`, `recvfrom` convention): cut to the caller's room, the full length reported.
pub(crate) fn write_addr_bytes(pid: i32, addr: u64, len_ptr: u64, bytes: &[u8]) -> Result<(), i32> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let lb = mem::read(pid, len_ptr, 4).map_err(|_| libc::EFAULT)?;
    let cap = u32::from_ne_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize;
    mem::write(pid, addr, &bytes[..cap.min(bytes.len())]).map_err(|_| libc::EFAULT)?;
    mem::write(pid, len_ptr, &(bytes.len() as u32).to_ne_bytes()).map_err(|_| libc::EFAULT)
}

/// Whether `n` is one of the shim's latency calls ([`HELLO_OP_LATENCY_COST`],
/// [`HELLO_OP_LATENCY_HANDOVER`]): bookkeeping for calls answered in the process, not a call of
/// the program, so it is not charged syscall latency itself.
pub(crate) fn is_latency_bookkeeping(n: &Notif) -> bool {
    n.data.nr as i64 == HELLO_SYSCALL
        && (n.data.args[0] == HELLO_OP_LATENCY_COST || n.data.args[0] == HELLO_OP_LATENCY_HANDOVER)
}

fn errno(r: Result<Answer, i32>) -> Answer {
    r.unwrap_or_else(Answer::Errno)
}

/// Answer task `vid`'s notification `n` on host `h`.
#[allow(non_upper_case_globals)]
pub(crate) fn syscall(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif) -> Result<Answer, DirectError> {
    let nr = n.data.nr as i64;
    let a = n.data.args;
    if n.data.arch != AUDIT_ARCH_X86_64 || nr & 0x4000_0000 != 0 {
        e.unsupported(h, vid, nr, " (32-bit or x32 ABI)", libc::ENOSYS);
        return Ok(Answer::Errno(libc::ENOSYS));
    }
    let (pid, timed_out) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out)
    };
    let fd_entry = |e: &DirectEngine, fd: u64| e.hosts[h].fds(vid).get(&(fd as i32)).copied();
    use libc::*;
    Ok(match nr {
        HELLO_SYSCALL => {
            if a[0] == HELLO_OP_TIME_PAGE && a[1] == ABI_VERSION {
                e.hosts[h].tasks.get_mut(&vid).expect("task exists").shim = true;
                Answer::TimePage
            } else if a[0] == HELLO_OP_LATENCY_COST {
                Answer::Value(e.syscall_latency(h, vid) as i64)
            } else if a[0] == HELLO_OP_LATENCY_HANDOVER {
                let t = e.hosts[h].tasks.get_mut(&vid).expect("task exists");
                t.latency.hand_over(a[2]);
                Answer::Value(t.latency.unapplied() as i64)
            } else if a[0] == HELLO_OP_YIELD {
                let p = e.hosts[h].tasks[&vid].proc;
                let budget = e.hosts[h].procs[p].spec.preempt.map_or(0, |d| d.as_nanos());
                crate::threads::yield_now(e, h, vid, budget.max(1))
            } else if a[0] == HELLO_OP_NO_CPUID_FAULTING {
                // A machine fact, the same for every shard and run (docs/direct.md, shim step 4):
                // said once per process, and only with `--verbose`.
                static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
                if e.opts.verbose && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
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
        SYS_clock_gettime => errno((|| {
            let ns = clock_ns(e, h, a[0] as i64).ok_or(EINVAL)?;
            mem::write(pid, a[1], &timespec_bytes(ns)).map_err(|_| EFAULT)?;
            Ok(Answer::Value(0))
        })()),
        SYS_gettimeofday => errno((|| {
            let ns = clock_ns(e, h, 0).ok_or(EINVAL)?;
            if a[0] != 0 {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
                b[8..].copy_from_slice(&(((ns % NS) / 1000) as i64).to_ne_bytes());
                mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
            }
            if a[1] != 0 {
                mem::write(pid, a[1], &[0u8; 8]).map_err(|_| EFAULT)?;
            }
            Ok(Answer::Value(0))
        })()),
        SYS_time => errno((|| {
            let s = (clock_ns(e, h, 0).ok_or(EINVAL)? / NS) as i64;
            if a[0] != 0 {
                mem::write(pid, a[0], &s.to_ne_bytes()).map_err(|_| EFAULT)?;
            }
            Ok(Answer::Value(s))
        })()),
        // CPU accounting: CPU time is not modelled, and simulated time stands in for it as it does
        // for the CPU-time clocks, so `clock()` and `getrusage` agree. Everything else in the
        // struct (peak RSS, faults, context switches) is the machine's and would leak into the
        // run, so it reads 0.
        SYS_getrusage => errno((|| {
            let cpu = match a[0] as i32 {
                RUSAGE_SELF | RUSAGE_THREAD => e.now(h),
                RUSAGE_CHILDREN => 0,
                _ => return Err(EINVAL),
            };
            let mut b = [0u8; std::mem::size_of::<rusage>()];
            b[..8].copy_from_slice(&((cpu / NS) as i64).to_ne_bytes());
            b[8..16].copy_from_slice(&(((cpu % NS) / 1000) as i64).to_ne_bytes());
            mem::write(pid, a[1], &b).map_err(|_| EFAULT)?;
            Ok(Answer::Value(0))
        })()),
        // `times`: the return value counts clock ticks (100 per second) of the monotonic clock,
        // the user time is the CPU-time stand-in, the rest 0 (as `getrusage`).
        SYS_times => errno((|| {
            let tick = NS / 100;
            if a[0] != 0 {
                let mut b = [0u8; std::mem::size_of::<tms>()];
                b[..8].copy_from_slice(&((e.now(h) / tick) as i64).to_ne_bytes());
                mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
            }
            Ok(Answer::Value(((e.now(h) + BOOT_OFFSET_NS) / tick) as i64))
        })()),
        // `sysinfo`: uptime from the simulated boot clock (rounded up, as Linux does), no load,
        // the machine's memory and swap totals (constants of the machine, like `uname`'s
        // release) with everything free, and the host's task count: the machine's free memory
        // and load would leak into the run. `procs` counts the host's live threads.
        SYS_sysinfo => errno((|| {
            let mut real: sysinfo = unsafe { std::mem::zeroed() };
            // SAFETY: sysinfo fills the struct.
            if unsafe { sysinfo(&mut real) } != 0 {
                return Err(EFAULT);
            }
            let boot = e.now(h) + BOOT_OFFSET_NS;
            let mut info: sysinfo = unsafe { std::mem::zeroed() };
            info.uptime = (boot / NS + u64::from(!boot.is_multiple_of(NS))) as i64;
            info.totalram = real.totalram;
            info.freeram = real.totalram;
            info.totalswap = real.totalswap;
            info.freeswap = real.totalswap;
            info.totalhigh = real.totalhigh;
            info.freehigh = real.totalhigh;
            info.mem_unit = real.mem_unit;
            let alive =
                e.hosts[h].tasks.values().filter(|t| !matches!(t.state, crate::host::TaskState::Exited)).count();
            info.procs = alive.min(u16::MAX as usize) as u16;
            // SAFETY: a plain C struct viewed as its bytes.
            let b = unsafe {
                std::slice::from_raw_parts((&info as *const sysinfo).cast::<u8>(), std::mem::size_of::<sysinfo>())
            };
            mem::write(pid, a[0], b).map_err(|_| EFAULT)?;
            Ok(Answer::Value(0))
        })()),
        SYS_nanosleep => errno((|| {
            let d = read_time(pid, a[0], false)?;
            Ok(if timed_out || d == 0 { Answer::Value(0) } else { Answer::Block(BlockKind::Timer, Some(d)) })
        })()),
        SYS_clock_nanosleep => errno((|| {
            let clock = a[0] as i64;
            let req = read_time(pid, a[2], false)?;
            let now = e.now(h);
            let wait = if a[1] & TIMER_ABSTIME as u64 != 0 {
                let now_clock = clock_ns(e, h, clock).ok_or(EINVAL)?;
                req.saturating_sub(now_clock)
            } else {
                clock_ns(e, h, clock).ok_or(EINVAL)?;
                req
            };
            let _ = now;
            Ok(if timed_out || wait == 0 { Answer::Value(0) } else { Answer::Block(BlockKind::Timer, Some(wait)) })
        })()),
        SYS_getrandom => errno((|| {
            let len = (a[1] as usize).min(32 << 20);
            let mut buf = vec![0u8; len];
            e.hosts[h].random_of(vid).ok_or(ESRCH)?.fill_bytes(&mut buf);
            mem::write(pid, a[0], &buf).map_err(|_| EFAULT)?;
            Ok(Answer::Value(len as i64))
        })()),
        SYS_open | SYS_openat | SYS_openat2 => {
            let (path_addr, flags) = match nr {
                SYS_open => (a[0], a[1]),
                SYS_openat => (a[1], a[2]),
                _ => (a[1], mem::read(pid, a[2], 8).map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])))),
            };
            let Ok(path) = mem::read_cstr(pid, path_addr, 4096) else { return Ok(Answer::Continue) };
            if path == b"/dev/urandom" || path == b"/dev/random" {
                let obj = e.hosts[h].add_obj(Obj::Random, flags & O_NONBLOCK as u64 != 0);
                Answer::AddFd { src: e.devnull.as_raw_fd(), cloexec: flags & O_CLOEXEC as u64 != 0, obj }
            } else if path == b"/etc/hosts" && flags & O_ACCMODE as u64 == O_RDONLY as u64 {
                match e.hosts_file.open() {
                    Ok(file) => Answer::AddFile { file, cloexec: flags & O_CLOEXEC as u64 != 0 },
                    Err(err) => Answer::Errno(err.raw_os_error().unwrap_or(EIO)),
                }
            } else if let Some(answer) = crate::threads::cpu_list_file(&path, flags & O_CLOEXEC as u64 != 0) {
                answer
            } else {
                if flags & O_TRUNC as u64 != 0 {
                    e.hosts[h].disk.freed();
                }
                Answer::Continue
            }
        }
        SYS_unlink | SYS_unlinkat | SYS_rename | SYS_renameat | SYS_renameat2 | SYS_truncate | SYS_ftruncate => {
            e.hosts[h].disk.freed();
            Answer::Continue
        }
        SYS_read | SYS_pread64 | SYS_readv | SYS_preadv | SYS_preadv2 => match fd_entry(e, a[0]) {
            None if bad_iovecs(nr, pid, a) => Answer::Continue, // the kernel refuses it at once
            None => counted_read(e, h, vid, a[0] as i32),
            Some(f) => {
                let bufs = if matches!(nr, SYS_read | SYS_pread64) {
                    vec![(a[1], a[2] as usize)]
                } else {
                    match mem::read_iovecs(pid, a[1], a[2] as usize) {
                        Ok(v) => v,
                        Err(err) => return Ok(Answer::Errno(err)),
                    }
                };
                match &e.hosts[h].objs[f.obj] {
                    Some(s) if matches!(s.obj, Obj::Random) => errno(fill_random(e, h, vid, pid, &bufs)),
                    Some(s) if matches!(s.obj, Obj::TimerFd(_)) => errno(crate::timerfd::read(e, h, pid, f.obj, &bufs)),
                    Some(s) if matches!(s.obj, Obj::Netlink(_)) => errno(crate::netlink::read(e, h, pid, f.obj, &bufs)),
                    Some(s) if matches!(s.obj, Obj::Epoll(_)) => Answer::Errno(EINVAL),
                    _ if matches!(nr, SYS_pread64 | SYS_preadv | SYS_preadv2) => Answer::Errno(ESPIPE),
                    Some(s) if matches!(s.obj, Obj::Tcp(_)) => errno(tcp::recv(e, h, vid, f.obj, 0, &bufs, None)),
                    _ => errno(udp_recv(e, h, vid, f.obj, 0, &bufs, None)),
                }
            }
        },
        SYS_write | SYS_pwrite64 | SYS_writev | SYS_pwritev | SYS_pwritev2 => match fd_entry(e, a[0]) {
            None if bad_iovecs(nr, pid, a) => Answer::Continue, // the kernel refuses it at once
            None => {
                let answer = native_write(e, h, vid, n);
                counted_write(e, h, answer)
            }
            Some(f) => {
                let bufs = if matches!(nr, SYS_write | SYS_pwrite64) {
                    vec![(a[1], a[2] as usize)]
                } else {
                    match mem::read_iovecs(pid, a[1], a[2] as usize) {
                        Ok(v) => v,
                        Err(err) => return Ok(Answer::Errno(err)),
                    }
                };
                let total: usize = bufs.iter().map(|b| b.1).sum();
                match &e.hosts[h].objs[f.obj] {
                    Some(s) if matches!(s.obj, Obj::Random) => Answer::Value(total as i64),
                    Some(s) if matches!(s.obj, Obj::TimerFd(_)) => Answer::Errno(EINVAL),
                    Some(s) if matches!(s.obj, Obj::Netlink(_)) => {
                        errno(crate::netlink::request(e, h, pid, f.obj, &bufs))
                    }
                    Some(s) if matches!(s.obj, Obj::Epoll(_)) => Answer::Errno(EINVAL),
                    _ if matches!(nr, SYS_pwrite64 | SYS_pwritev | SYS_pwritev2) => Answer::Errno(ESPIPE),
                    Some(s) if matches!(s.obj, Obj::Tcp(_)) => {
                        errno(tcp::send(e, h, vid, f.obj, 0, total, &mut |o, l| tcp::gather_range(pid, &bufs, o, l)))
                    }
                    _ => errno(gather(pid, &bufs).and_then(|data| udp_send(e, h, vid, n, f.obj, None, &data))),
                }
            }
        },
        SYS_close => {
            let host = &mut e.hosts[h];
            if let Some(f) = host.fds_mut(vid).and_then(|fds| fds.remove(&(a[0] as i32))) {
                host.release(f.obj);
            } else {
                host.native_edges.both(); // a pipe's or socket's end may have closed
            }
            // A closed descriptor leaves the task's epoll interest lists (approximating the
            // kernel, which drops it when the last reference to the file goes).
            forget_in_epolls(host, vid, a[0] as i32);
            Answer::Continue
        }
        SYS_close_range => {
            let (first, last, flags) = (a[0] as u32 as i32, a[1] as u32, a[2]);
            let host = &mut e.hosts[h];
            let mut released = Vec::new();
            if let Some(fds) = host.fds_mut(vid) {
                let inside: Vec<i32> = fds.keys().copied().filter(|&fd| fd >= first && (fd as u32) <= last).collect();
                for fd in inside {
                    if flags & 4 != 0 {
                        // CLOSE_RANGE_CLOEXEC
                        if let Some(f) = fds.get_mut(&fd) {
                            f.cloexec = true;
                        }
                    } else if let Some(f) = fds.remove(&fd) {
                        released.push(f.obj);
                    }
                }
            }
            for o in released {
                host.release(o);
            }
            Answer::Continue
        }
        SYS_dup => match fd_entry(e, a[0]) {
            None => Answer::Continue,
            Some(f) => dup_emulated(e, h, f.obj, false),
        },
        SYS_dup2 | SYS_dup3 => {
            let (old, new) = (a[0] as i32, a[1] as i32);
            let cloexec = nr == SYS_dup3 && a[2] & O_CLOEXEC as u64 != 0;
            if old == new {
                return Ok(Answer::Continue);
            }
            let host = &mut e.hosts[h];
            let src = host.fds(vid).get(&old).copied();
            if let Some(f) = src {
                host.retain(f.obj);
            }
            let replaced = host.fds_mut(vid).and_then(|fds| match src {
                Some(f) => fds.insert(new, FdEntry { obj: f.obj, cloexec }),
                None => fds.remove(&new),
            });
            if let Some(r) = replaced {
                host.release(r.obj);
            }
            Answer::Continue
        }
        SYS_fcntl => match fd_entry(e, a[0]) {
            None => Answer::Continue,
            Some(f) => match a[1] as i32 {
                F_DUPFD => dup_emulated(e, h, f.obj, false),
                F_DUPFD_CLOEXEC => dup_emulated(e, h, f.obj, true),
                F_GETFD => Answer::Value(i64::from(f.cloexec)),
                F_SETFD => {
                    if let Some(x) = e.hosts[h].fds_mut(vid).and_then(|fds| fds.get_mut(&(a[0] as i32))) {
                        x.cloexec = a[2] & FD_CLOEXEC as u64 != 0;
                    }
                    Answer::Continue
                }
                F_GETFL => {
                    let nb = e.hosts[h].objs[f.obj].as_ref().is_some_and(|s| s.nonblock);
                    Answer::Value((O_RDWR | if nb { O_NONBLOCK } else { 0 }) as i64)
                }
                F_SETFL => {
                    if let Some(Some(s)) = e.hosts[h].objs.get_mut(f.obj) {
                        s.nonblock = a[2] & O_NONBLOCK as u64 != 0;
                    }
                    Answer::Value(0)
                }
                _ => Answer::Continue,
            },
        },
        SYS_ioctl if crate::netlink::is_interface_ioctl(a[1]) => {
            errno(crate::netlink::interface_ioctl(e, h, pid, a[1], a[2]))
        }
        SYS_ioctl => match fd_entry(e, a[0]) {
            None => Answer::Continue,
            Some(f) => errno((|| match a[1] {
                FIONBIO => {
                    let b = mem::read(pid, a[2], 4).map_err(|_| EFAULT)?;
                    if let Some(Some(s)) = e.hosts[h].objs.get_mut(f.obj) {
                        s.nonblock = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) != 0;
                    }
                    Ok(Answer::Value(0))
                }
                _ if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::Tcp(_))) => {
                    let n = tcp::ioctl(&mut e.hosts[h], f.obj, a[1]).ok_or(ENOTTY)?;
                    mem::write(pid, a[2], &n.to_ne_bytes()).map_err(|_| EFAULT)?;
                    Ok(Answer::Value(0))
                }
                FIONREAD => {
                    let n = match &e.hosts[h].objs[f.obj] {
                        Some(s) => match &s.obj {
                            Obj::Udp(u) => u.queue.front().map_or(0, |d| d.data.len()),
                            Obj::Random | Obj::Epoll(_) | Obj::Tcp(_) | Obj::TimerFd(_) | Obj::Netlink(_) => 0,
                        },
                        None => 0,
                    };
                    mem::write(pid, a[2], &(n as i32).to_ne_bytes()).map_err(|_| EFAULT)?;
                    Ok(Answer::Value(0))
                }
                _ => Err(ENOTTY),
            })()),
        },
        SYS_poll | SYS_ppoll => {
            let timeout = if nr == SYS_poll {
                let ms = a[2] as i32;
                if ms < 0 { None } else { Some(ms as u64 * 1_000_000) }
            } else if a[2] == 0 {
                None
            } else {
                match read_time(pid, a[2], false) {
                    Ok(t) => Some(t),
                    Err(x) => return Ok(Answer::Errno(x)),
                }
            };
            errno(do_poll(e, h, vid, a[0], a[1] as usize, timeout))
        }
        SYS_select | SYS_pselect6 => {
            let timeout = if a[4] == 0 {
                None
            } else {
                match read_time(pid, a[4], nr == SYS_select) {
                    Ok(t) => Some(t),
                    Err(x) => return Ok(Answer::Errno(x)),
                }
            };
            errno(do_select(e, h, vid, a[0] as usize, [a[1], a[2], a[3]], timeout))
        }
        SYS_socket => {
            let (domain, ty, proto) = (a[0] as i32, a[1] as i32, a[2] as i32);
            match domain {
                AF_UNIX => Answer::Continue,
                AF_NETLINK => crate::netlink::socket(e, h, vid, nr, ty, proto),
                AF_INET if ty & 0xf == SOCK_DGRAM && (proto == 0 || proto == IPPROTO_UDP) => {
                    let obj = e.hosts[h].add_obj(new_udp(), ty & SOCK_NONBLOCK != 0);
                    Answer::AddFd { src: e.udp_placeholder.as_raw_fd(), cloexec: ty & SOCK_CLOEXEC != 0, obj }
                }
                AF_INET if ty & 0xf == SOCK_STREAM && (proto == 0 || proto == IPPROTO_TCP) => {
                    let obj = e.hosts[h].add_obj(Obj::Tcp(Box::default()), ty & SOCK_NONBLOCK != 0);
                    Answer::AddFd { src: e.tcp_placeholder_fd(), cloexec: ty & SOCK_CLOEXEC != 0, obj }
                }
                AF_INET => {
                    e.unsupported(
                        h,
                        vid,
                        nr,
                        &format!(" (AF_INET type {} protocol {proto}; only UDP and TCP are emulated)", ty & 0xf),
                        ESOCKTNOSUPPORT,
                    );
                    Answer::Errno(ESOCKTNOSUPPORT)
                }
                _ => {
                    e.unsupported(h, vid, nr, &format!(" (address family {domain})"), EAFNOSUPPORT);
                    Answer::Errno(EAFNOSUPPORT)
                }
            }
        }
        SYS_socketpair => {
            if a[0] as i32 == AF_UNIX {
                Answer::Continue
            } else {
                Answer::Errno(EOPNOTSUPP)
            }
        }
        SYS_bind | SYS_connect | SYS_getsockname | SYS_getpeername | SYS_setsockopt | SYS_getsockopt | SYS_shutdown
        | SYS_sendto | SYS_recvfrom | SYS_sendmsg | SYS_recvmsg | SYS_listen | SYS_accept | SYS_accept4
        | SYS_sendmmsg | SYS_recvmmsg => match fd_entry(e, a[0]) {
            // Sockets the supervisor does not emulate (AF_UNIX): wait here rather than in the
            // kernel when a receive or accept would block.
            None => {
                let flags = match nr {
                    SYS_recvmsg | SYS_sendmsg => a[2],
                    SYS_accept | SYS_accept4 => 0,
                    _ => a[3],
                };
                let receives = matches!(nr, SYS_recvfrom | SYS_recvmsg | SYS_recvmmsg);
                let sends = matches!(nr, SYS_sendto | SYS_sendmsg | SYS_sendmmsg);
                let dontwait = flags & MSG_DONTWAIT as u64 != 0;
                match nr {
                    _ if receives => counted_read(e, h, vid, if dontwait { -1 } else { a[0] as i32 }),
                    _ if sends && !dontwait => {
                        let answer = native_io(e, h, vid, a[0] as i32, POLLOUT);
                        counted_write(e, h, answer)
                    }
                    _ if sends || nr == SYS_connect => counted_write(e, h, Answer::Continue),
                    SYS_accept | SYS_accept4 => native_io(e, h, vid, a[0] as i32, POLLIN),
                    SYS_shutdown => {
                        e.hosts[h].native_edges.both();
                        Answer::Continue
                    }
                    _ => Answer::Continue,
                }
            }
            Some(f) => match e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj) {
                Some(Obj::Udp(_)) => errno(socket_call(e, h, vid, n, f.obj)),
                Some(Obj::Tcp(_)) => errno(tcp::call(e, h, vid, n, f.obj)),
                Some(Obj::Netlink(_)) => errno(crate::netlink::call(e, h, vid, n, f.obj)),
                _ => Answer::Errno(ENOTSOCK),
            },
        },
        SYS_sendfile => match fd_entry(e, a[0]) {
            Some(f) if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::Tcp(_))) => {
                errno(tcp::sendfile(e, h, vid, n, f.obj))
            }
            Some(_) => Answer::Errno(EINVAL),
            None => {
                let answer = native_io(e, h, vid, a[0] as i32, POLLOUT);
                counted_write(e, h, answer)
            }
        },
        SYS_clone | SYS_clone3 | SYS_fork | SYS_vfork => crate::threads::spawn(e, h, vid, n),
        SYS_futex
        | SYS_futex_waitv
        | crate::futex::SYS_FUTEX_WAKE
        | crate::futex::SYS_FUTEX_WAIT
        | crate::futex::SYS_FUTEX_REQUEUE => crate::futex::syscall(e, h, vid, n),
        SYS_sched_yield => crate::threads::yield_now(e, h, vid, crate::threads::SCHED_YIELD_NS),
        SYS_sched_getaffinity | SYS_sched_setaffinity => crate::threads::affinity(e, h, vid, n),
        // A new thread's first syscalls (it stops there before running application code) and
        // the CPU a task runs on (always CPU 0, as the shim's vDSO getcpu says).
        SYS_set_robust_list => {
            if let Some(t) = e.hosts[h].tasks.get_mut(&vid) {
                t.exit_words.robust_list = a[0];
            }
            Answer::Continue
        }
        SYS_rseq | SYS_rt_sigprocmask | SYS_gettid => Answer::Continue,
        SYS_getcpu => errno((|| {
            for addr in [a[0], a[1]] {
                if addr != 0 {
                    mem::write(pid, addr, &0u32.to_ne_bytes()).map_err(|_| EFAULT)?;
                }
            }
            Ok(Answer::Value(0))
        })()),
        SYS_execve | SYS_execveat => {
            e.hosts[h].tasks.get_mut(&vid).expect("task exists").exec_pending = true;
            Answer::Continue
        }
        SYS_wait4 | SYS_waitid => {
            let (target, options) = if nr == SYS_wait4 {
                let p = a[0] as i32;
                (if p > 0 { Some(p) } else { None }, a[2] as i32)
            } else {
                (if a[0] as u32 == P_PID { Some(a[1] as i32) } else { None }, a[3] as i32)
            };
            if options & WNOHANG != 0 {
                return Ok(Answer::Continue);
            }
            // The program names a child by its pid in the host's namespace.
            let tgid = e.hosts[h].tasks[&vid].tgid;
            let children: Vec<i32> = crate::threads::group_children(tgid)
                .into_iter()
                .filter(|&c| target.is_none_or(|t| crate::pidns::ns_pid(c) == Some(t)))
                .collect();
            if children.is_empty() || children.iter().any(|&c| proc_state(c).is_none_or(|s| s == 'Z' || s == 'X')) {
                Answer::Continue
            } else {
                Answer::Block(BlockKind::Io { since: 0 }, None)
            }
        }
        SYS_uname => errno((|| {
            let mut u: utsname = unsafe { std::mem::zeroed() };
            // SAFETY: uname fills the struct.
            unsafe { uname(&mut u) };
            let mut b = vec![0u8; std::mem::size_of::<utsname>()];
            let field = 65;
            let put = |b: &mut [u8], i: usize, s: &[u8]| {
                let n = s.len().min(field - 1);
                b[i * field..i * field + n].copy_from_slice(&s[..n]);
            };
            let cstr = |f: &[c_char]| f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect::<Vec<u8>>();
            put(&mut b, 0, b"Linux");
            put(&mut b, 1, e.hosts[h].name.as_bytes());
            put(&mut b, 2, &cstr(&u.release));
            put(&mut b, 3, &cstr(&u.version));
            put(&mut b, 4, b"x86_64");
            put(&mut b, 5, b"(none)");
            mem::write(pid, a[0], &b).map_err(|_| EFAULT)?;
            Ok(Answer::Value(0))
        })()),
        // Waiting for a signal: signals come from the host's own tasks (a child's SIGCHLD, a
        // kill), so the task waits until one is pending, then the kernel delivers it at once.
        SYS_pause | SYS_rt_sigsuspend | SYS_rt_sigtimedwait => {
            let (pending, blocked) = proc_signals(pid);
            let wanted = match nr {
                SYS_pause => !blocked,
                SYS_rt_sigsuspend => match mem::read(pid, a[0], 8) {
                    Ok(b) => !u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
                    Err(_) => return Ok(Answer::Errno(EFAULT)),
                },
                _ => match mem::read(pid, a[0], 8) {
                    Ok(b) => u64::from_ne_bytes(b.try_into().unwrap_or([0; 8])),
                    Err(_) => return Ok(Answer::Errno(EFAULT)),
                },
            };
            // A child that has exited is about to raise SIGCHLD (the kernel may not have queued
            // it yet when its exit is seen).
            let sigchld = 1u64 << (SIGCHLD - 1);
            let child_gone = wanted & sigchld != 0
                && crate::threads::group_children(e.hosts[h].tasks[&vid].tgid)
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
        SYS_epoll_create | SYS_epoll_create1 => {
            let cloexec = nr == SYS_epoll_create1 && a[0] & EPOLL_CLOEXEC as u64 != 0;
            let obj = e.hosts[h].add_obj(Obj::Epoll(Default::default()), false);
            Answer::AddFd { src: e.devnull.as_raw_fd(), cloexec, obj }
        }
        SYS_epoll_ctl => errno(emu_epoll_ctl(e, h, vid, a[0] as i32, a[1] as i32, a[2] as i32, a[3])),
        SYS_epoll_wait | SYS_epoll_pwait | SYS_epoll_pwait2 => {
            let timeout = if nr == SYS_epoll_pwait2 {
                if a[3] == 0 {
                    None
                } else {
                    match read_time(pid, a[3], false) {
                        Ok(t) => Some(t),
                        Err(x) => return Ok(Answer::Errno(x)),
                    }
                }
            } else {
                let ms = a[3] as i32;
                if ms < 0 { None } else { Some(ms as u64 * 1_000_000) }
            };
            errno(emu_epoll_wait(e, h, vid, a[0] as i32, a[1], a[2] as i32, timeout))
        }
        SYS_alarm => {
            let old = alarm_left(e, h, vid);
            let host = &mut e.hosts[h];
            host.tasks.get_mut(&vid).expect("task exists").alarm = None;
            if a[0] as u32 > 0 {
                let at = host.now + (a[0] as u32) as u64 * NS;
                e.set_alarm(h, vid, at, 0);
            }
            // Seconds left on the previous alarm, rounded to nearest (at least 1 if any).
            let (left, _) = old;
            Answer::Value(if left == 0 { 0 } else { ((left + NS / 2) / NS).max(1) as i64 })
        }
        SYS_setitimer | SYS_getitimer if a[0] as i32 != ITIMER_REAL => {
            e.unsupported(h, vid, nr, " (only ITIMER_REAL: CPU time is not modelled)", EINVAL);
            Answer::Errno(EINVAL)
        }
        SYS_getitimer => errno((|| {
            let (left, interval) = alarm_left(e, h, vid);
            mem::write(pid, a[1], &itimerval_bytes(interval, left)).map_err(|_| EFAULT)?;
            Ok(Answer::Value(0))
        })()),
        SYS_setitimer => errno((|| {
            let (left, interval) = alarm_left(e, h, vid);
            let new = if a[1] != 0 {
                let b = mem::read(pid, a[1], 32).map_err(|_| EFAULT)?;
                let tv = |o: usize| -> Result<u64, i32> {
                    let sec = i64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
                    let usec = i64::from_ne_bytes(b[o + 8..o + 16].try_into().unwrap_or([0; 8]));
                    if sec < 0 || !(0..1_000_000).contains(&usec) {
                        return Err(EINVAL);
                    }
                    Ok(sec as u64 * NS + usec as u64 * 1000)
                };
                Some((tv(0)?, tv(16)?))
            } else {
                None
            };
            if a[2] != 0 {
                mem::write(pid, a[2], &itimerval_bytes(interval, left)).map_err(|_| EFAULT)?;
            }
            if let Some((interval, value)) = new {
                e.hosts[h].tasks.get_mut(&vid).expect("task exists").alarm = None;
                if value > 0 {
                    let at = e.now(h) + value;
                    e.set_alarm(h, vid, at, interval);
                }
            }
            Ok(Answer::Value(0))
        })()),
        SYS_timerfd_create => crate::timerfd::create(e, h, a[0], a[1]),
        SYS_timerfd_settime | SYS_timerfd_gettime => match fd_entry(e, a[0]) {
            Some(f) if matches!(e.hosts[h].objs[f.obj].as_ref().map(|s| &s.obj), Some(Obj::TimerFd(_))) => {
                if nr == SYS_timerfd_settime {
                    errno(crate::timerfd::settime(e, h, pid, f.obj, a))
                } else {
                    errno(crate::timerfd::gettime(e, h, pid, f.obj, a[1]))
                }
            }
            _ => Answer::Errno(EINVAL),
        },
        SYS_timer_create | SYS_io_uring_setup | SYS_inotify_init | SYS_inotify_init1 => {
            e.unsupported(h, vid, nr, "", ENOSYS);
            Answer::Errno(ENOSYS)
        }
        // With --syscall-stats every syscall is notified; the rest run as they are.
        _ => Answer::Continue,
    })
}

fn dup_emulated(e: &mut DirectEngine, h: usize, obj: usize, cloexec: bool) -> Answer {
    let src = match e.hosts[h].objs[obj].as_ref().map(|s| &s.obj) {
        Some(Obj::Udp(_)) => e.udp_placeholder.as_raw_fd(),
        Some(Obj::Tcp(_)) => e.tcp_placeholder_fd(),
        _ => e.devnull.as_raw_fd(),
    };
    e.hosts[h].retain(obj);
    Answer::AddFd { src, cloexec, obj }
}

fn fill_random(e: &mut DirectEngine, h: usize, vid: u32, pid: i32, bufs: &[(u64, usize)]) -> Result<Answer, i32> {
    let mut total = 0usize;
    for &(addr, len) in bufs {
        let len = len.min(32 << 20);
        let mut buf = vec![0u8; len];
        e.hosts[h].random_of(vid).ok_or(libc::ESRCH)?.fill_bytes(&mut buf);
        mem::write(pid, addr, &buf).map_err(|_| libc::EFAULT)?;
        total += len;
    }
    Ok(Answer::Value(total as i64))
}

fn gather(pid: i32, bufs: &[(u64, usize)]) -> Result<Vec<u8>, i32> {
    gather_max(pid, bufs, MAX_UDP_PAYLOAD)
}

/// The bytes of the task's buffers `bufs`, at most `max` in all (`EMSGSIZE` beyond).
pub(crate) fn gather_max(pid: i32, bufs: &[(u64, usize)], max: usize) -> Result<Vec<u8>, i32> {
    let total: usize = bufs.iter().map(|b| b.1).sum();
    if total > max {
        return Err(libc::EMSGSIZE);
    }
    let mut data = Vec::with_capacity(total);
    for &(addr, len) in bufs {
        data.extend_from_slice(&mem::read(pid, addr, len).map_err(|_| libc::EFAULT)?);
    }
    Ok(data)
}

fn udp(host: &mut Host, obj: usize) -> &mut net::UdpSocket {
    match host.obj_mut(obj) {
        Some(Obj::Udp(u)) => u,
        _ => unreachable!("checked to be a live UDP socket"),
    }
}

fn ephemeral_port(host: &mut Host) -> Result<u16, i32> {
    for _ in 0..16384 {
        let p = host.next_port;
        host.next_port = if p == 65535 { 49152 } else { p + 1 };
        if !host.ports.contains_key(&p) {
            return Ok(p);
        }
    }
    Err(libc::EADDRINUSE)
}

fn udp_bind(host: &mut Host, obj: usize, ip: Ipv4Addr, port: u16) -> Result<(), i32> {
    if udp(host, obj).local.is_some() {
        return Err(libc::EINVAL);
    }
    if !(ip.is_unspecified() || ip.is_loopback() || ip == host.ip) {
        return Err(libc::EADDRNOTAVAIL);
    }
    let port = if port == 0 { ephemeral_port(host)? } else { port };
    if host.ports.contains_key(&port) {
        return Err(libc::EADDRINUSE);
    }
    host.ports.insert(port, obj);
    udp(host, obj).local = Some((ip, port));
    Ok(())
}

#[allow(non_upper_case_globals)]
fn socket_call(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif, obj: usize) -> Result<Answer, i32> {
    use libc::*;
    let a = n.data.args;
    let nr = n.data.nr as i64;
    let pid = e.hosts[h].tasks[&vid].pid;
    match nr {
        SYS_bind => match read_sockaddr(pid, a[1], a[2])? {
            SockAddr::Inet(ip, port) => udp_bind(&mut e.hosts[h], obj, ip, port).map(|_| Answer::Value(0)),
            SockAddr::Unspec => Err(EAFNOSUPPORT),
        },
        SYS_connect => {
            let host = &mut e.hosts[h];
            match read_sockaddr(pid, a[1], a[2])? {
                SockAddr::Unspec => udp(host, obj).peer = None,
                SockAddr::Inet(ip, port) => {
                    if udp(host, obj).local.is_none() {
                        udp_bind(host, obj, Ipv4Addr::UNSPECIFIED, 0)?;
                    }
                    let ip = if ip.is_unspecified() { Ipv4Addr::LOCALHOST } else { ip };
                    udp(host, obj).peer = Some((ip, port));
                }
            }
            Ok(Answer::Value(0))
        }
        SYS_getsockname => {
            let local = udp(&mut e.hosts[h], obj).local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
            write_sockaddr(pid, a[1], a[2], local)?;
            Ok(Answer::Value(0))
        }
        SYS_getpeername => {
            let peer = udp(&mut e.hosts[h], obj).peer.ok_or(ENOTCONN)?;
            write_sockaddr(pid, a[1], a[2], peer)?;
            Ok(Answer::Value(0))
        }
        SYS_setsockopt => {
            let (level, name) = (a[1] as i32, a[2] as i32);
            let len = (a[4] as usize).min(64);
            let val = mem::read(pid, a[3], len).map_err(|_| EFAULT)?;
            let int = if val.len() >= 4 { i32::from_ne_bytes([val[0], val[1], val[2], val[3]]) } else { 0 };
            let s = udp(&mut e.hosts[h], obj);
            match (level, name) {
                (SOL_SOCKET, SO_RCVBUF) => s.rcvbuf = (int.max(1152) as usize) * 2,
                (SOL_SOCKET, SO_SNDBUF) => s.sndbuf = (int.max(2304) as usize) * 2,
                (SOL_SOCKET, SO_RCVTIMEO_NEW | SO_RCVTIMEO) if val.len() >= 16 => {
                    let sec = i64::from_ne_bytes(val[..8].try_into().unwrap_or([0; 8]));
                    let usec = i64::from_ne_bytes(val[8..16].try_into().unwrap_or([0; 8]));
                    if sec < 0 || !(0..1_000_000).contains(&usec) {
                        return Err(EDOM);
                    }
                    let ns = sec as u64 * NS + usec as u64 * 1000;
                    s.options.retain(|(k, _)| *k != (level, SO_RCVTIMEO));
                    s.options.push(((level, SO_RCVTIMEO), (ns / 1000).min(i32::MAX as u64) as i32));
                }
                // Options with no effect on an emulated datagram socket: stored and reported back.
                (
                    SOL_SOCKET,
                    SO_REUSEADDR | SO_REUSEPORT | SO_BROADCAST | SO_PRIORITY | SO_KEEPALIVE | SO_SNDTIMEO
                    | SO_SNDTIMEO_NEW | SO_DONTROUTE,
                )
                | (IPPROTO_IP, IP_TOS | IP_TTL | IP_MTU_DISCOVER) => {
                    s.options.retain(|(k, _)| *k != (level, name));
                    s.options.push(((level, name), int));
                }
                // Anything else (control-message options such as IP_PKTINFO or IP_RECVERR, UDP
                // segmentation offload, multicast) would be silently wrong: refuse it, loudly.
                _ => {
                    e.unsupported(h, vid, nr, &format!(" (option level {level} name {name})"), ENOPROTOOPT);
                    return Err(ENOPROTOOPT);
                }
            }
            Ok(Answer::Value(0))
        }
        SYS_getsockopt => {
            let (level, name) = (a[1] as i32, a[2] as i32);
            let s = udp(&mut e.hosts[h], obj);
            let v: i32 = match (level, name) {
                (SOL_SOCKET, SO_TYPE) => SOCK_DGRAM,
                (SOL_SOCKET, SO_ERROR) => 0,
                (SOL_SOCKET, SO_DOMAIN) => AF_INET,
                (SOL_SOCKET, SO_PROTOCOL) => IPPROTO_UDP,
                (SOL_SOCKET, SO_RCVBUF) => s.rcvbuf as i32,
                (SOL_SOCKET, SO_SNDBUF) => s.sndbuf as i32,
                (SOL_SOCKET | IPPROTO_IP | IPPROTO_UDP, _) => {
                    s.options.iter().find(|(k, _)| *k == (level, name)).map_or(0, |(_, v)| *v)
                }
                _ => return Err(ENOPROTOOPT),
            };
            write_int_option(pid, a[3], a[4], v)
        }
        SYS_shutdown => {
            let s = udp(&mut e.hosts[h], obj);
            if s.peer.is_none() {
                return Err(ENOTCONN);
            }
            match a[1] as i32 {
                SHUT_RD => s.shut_rd = true,
                SHUT_WR => s.shut_wr = true,
                SHUT_RDWR => {
                    s.shut_rd = true;
                    s.shut_wr = true;
                }
                _ => return Err(EINVAL),
            }
            e.hosts[h].progress += 1;
            Ok(Answer::Value(0))
        }
        SYS_sendto => {
            let data = gather(pid, &[(a[1], a[2] as usize)])?;
            let dst = if a[4] == 0 {
                None
            } else {
                match read_sockaddr(pid, a[4], a[5])? {
                    SockAddr::Inet(ip, port) => Some((ip, port)),
                    SockAddr::Unspec => return Err(EAFNOSUPPORT),
                }
            };
            udp_send(e, h, vid, n, obj, dst, &data)
        }
        SYS_sendmsg => send_msghdr(e, h, vid, n, obj, a[1]),
        SYS_recvfrom => udp_recv(e, h, vid, obj, a[3], &[(a[1], a[2] as usize)], Some(Addr::Ptr(a[4], a[5]))),
        SYS_recvmsg => {
            let m = read_msghdr(pid, a[1])?;
            let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
            udp_recv(e, h, vid, obj, a[2], &bufs, Some(Addr::Msghdr(a[1], m)))
        }
        SYS_listen | SYS_accept | SYS_accept4 => Err(EOPNOTSUPP),
        // struct mmsghdr: a msghdr (56 bytes) and the byte count of that message (+ padding).
        SYS_sendmmsg => {
            let count = (a[2] as usize).min(1024);
            let mut sent = 0;
            for i in 0..count {
                let at = a[1] + i as u64 * 64;
                match send_msghdr(e, h, vid, n, obj, at) {
                    Ok(Answer::Value(len)) => {
                        mem::write(pid, at + 56, &(len as u32).to_ne_bytes()).map_err(|_| EFAULT)?;
                        sent += 1;
                    }
                    Ok(other) => return Ok(other),
                    Err(x) if sent == 0 => return Err(x),
                    Err(_) => break,
                }
            }
            Ok(Answer::Value(sent))
        }
        // Like recvmsg for the first datagram (blocking if the socket is); then whatever else is
        // queued, up to vlen (the MSG_WAITFORONE behaviour).
        SYS_recvmmsg => {
            let count = (a[2] as usize).min(1024);
            if count == 0 {
                return Ok(Answer::Value(0));
            }
            let mut got = 0;
            for i in 0..count {
                let at = a[1] + i as u64 * 64;
                let flags = if i == 0 { a[3] } else { a[3] | MSG_DONTWAIT as u64 };
                let m = read_msghdr(pid, at)?;
                let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
                match udp_recv(e, h, vid, obj, flags, &bufs, Some(Addr::Msghdr(at, m))) {
                    Ok(Answer::Value(len)) => {
                        mem::write(pid, at + 56, &(len as u32).to_ne_bytes()).map_err(|_| EFAULT)?;
                        got += 1;
                    }
                    Ok(other) => return Ok(other), // the first one blocks
                    Err(x) if got == 0 => return Err(x),
                    Err(_) => break,
                }
            }
            Ok(Answer::Value(got))
        }
        _ => {
            e.unsupported(h, vid, nr, " (on a UDP socket)", ENOSYS);
            Err(ENOSYS)
        }
    }
}

/// The fields of a `struct msghdr` the emulation uses.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Msghdr {
    /// `msg_name`.
    pub name: u64,
    /// `msg_namelen`.
    pub namelen: u64,
    /// `msg_iov`.
    pub iov: u64,
    /// `msg_iovlen`.
    pub iovlen: usize,
    /// `msg_controllen`.
    pub controllen: u64,
}

/// Read the `struct msghdr` at `addr` of task `pid`.
pub(crate) fn read_msghdr(pid: i32, addr: u64) -> Result<Msghdr, i32> {
    let b = mem::read(pid, addr, 56).map_err(|_| libc::EFAULT)?;
    let u = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    Ok(Msghdr { name: u(0), namelen: u(8) & 0xffff_ffff, iov: u(16), iovlen: u(24) as usize, controllen: u(40) })
}

/// Where a receive reports the sender.
enum Addr {
    /// `recvfrom`'s `(addr, addrlen*)`.
    Ptr(u64, u64),
    /// `recvmsg`'s header at this address.
    Msghdr(u64, Msghdr),
}

fn udp_recv(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    obj: usize,
    flags: u64,
    bufs: &[(u64, usize)],
    addr: Option<Addr>,
) -> Result<Answer, i32> {
    let (pid, timed_out, proc) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out, t.proc)
    };
    let host = &mut e.hosts[h];
    let nonblock = host.objs[obj].as_ref().is_some_and(|s| s.nonblock) || flags & MSG_DONTWAIT != 0;
    let s = udp(host, obj);
    if s.queue.is_empty() {
        if s.shut_rd {
            return Ok(Answer::Value(0));
        }
        if nonblock || timed_out {
            return Err(libc::EAGAIN);
        }
        let timeout = s.options.iter().find(|(k, _)| *k == (libc::SOL_SOCKET, libc::SO_RCVTIMEO)).map(|(_, v)| *v);
        let timeout = timeout.filter(|&us| us > 0).map(|us| us as u64 * 1000);
        return Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout));
    }
    let d = s.dequeue(flags & MSG_PEEK != 0).ok_or(libc::EAGAIN)?;
    let mut copied = 0usize;
    for &(base, len) in bufs {
        if copied >= d.data.len() {
            break;
        }
        let take = len.min(d.data.len() - copied);
        mem::write(pid, base, &d.data[copied..copied + take]).map_err(|_| libc::EFAULT)?;
        copied += take;
    }
    let truncated = copied < d.data.len();
    match addr {
        Some(Addr::Ptr(a, l)) => write_sockaddr(pid, a, l, d.src)?,
        Some(Addr::Msghdr(at, m)) => {
            if m.name != 0 {
                let bytes = sockaddr_bytes(d.src);
                mem::write(pid, m.name, &bytes[..(m.namelen as usize).min(16)]).map_err(|_| libc::EFAULT)?;
                mem::write(pid, at + 8, &16u32.to_ne_bytes()).map_err(|_| libc::EFAULT)?;
            }
            mem::write(pid, at + 40, &0u64.to_ne_bytes()).map_err(|_| libc::EFAULT)?; // msg_controllen
            let mflags: i32 = if truncated { libc::MSG_TRUNC } else { 0 };
            mem::write(pid, at + 48, &mflags.to_ne_bytes()).map_err(|_| libc::EFAULT)?;
        }
        None => {}
    }
    if let Some(p) = host.procs.get_mut(proc) {
        p.udp_recv += d.data.len() as u64;
    }
    Ok(Answer::Value(if flags & MSG_TRUNC != 0 { d.data.len() } else { copied } as i64))
}

/// Send the datagram described by the `struct msghdr` at `at` in the task's memory (sendmsg, and
/// each message of sendmmsg). Control messages are refused.
fn send_msghdr(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif, obj: usize, at: u64) -> Result<Answer, i32> {
    use libc::{EAFNOSUPPORT, EOPNOTSUPP};
    let pid = e.hosts[h].tasks[&vid].pid;
    let m = read_msghdr(pid, at)?;
    if m.controllen > 0 {
        e.unsupported(h, vid, n.data.nr as i64, " (control messages on a UDP socket)", EOPNOTSUPP);
        return Err(EOPNOTSUPP);
    }
    let bufs = mem::read_msg_iovecs(pid, m.iov, m.iovlen)?;
    let data = gather(pid, &bufs)?;
    let dst = if m.name == 0 || m.namelen == 0 {
        None
    } else {
        match read_sockaddr(pid, m.name, m.namelen)? {
            SockAddr::Inet(ip, port) => Some((ip, port)),
            SockAddr::Unspec => return Err(EAFNOSUPPORT),
        }
    };
    udp_send(e, h, vid, n, obj, dst, &data)
}

fn udp_send(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    n: &Notif,
    obj: usize,
    dst: Option<(Ipv4Addr, u16)>,
    data: &[u8],
) -> Result<Answer, i32> {
    if data.len() > MAX_UDP_PAYLOAD {
        return Err(libc::EMSGSIZE);
    }
    // The payload was read from the task: make sure it is still the task that asked.
    let tree = e.hosts[h].tasks[&vid].tree;
    if !e.hosts[h].trees[tree].id_valid(n.id) {
        return Err(libc::EINTR);
    }
    let host = &mut e.hosts[h];
    let s = udp(host, obj);
    if s.shut_wr {
        return Err(libc::EPIPE);
    }
    let dst = match (dst, s.peer) {
        (Some(_), Some(_)) => return Err(libc::EISCONN),
        (Some(d), None) | (None, Some(d)) => d,
        (None, None) => return Err(libc::EDESTADDRREQ),
    };
    if dst.1 == 0 {
        return Err(libc::EINVAL);
    }
    if s.local.is_none() {
        udp_bind(host, obj, Ipv4Addr::UNSPECIFIED, 0)?;
    }
    let local = udp(host, obj).local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
    let dst_ip = if dst.0.is_unspecified() { Ipv4Addr::LOCALHOST } else { dst.0 };
    let src_ip = if !local.0.is_unspecified() {
        local.0
    } else if dst_ip.is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        host.ip
    };
    if dst_ip.is_loopback() && !src_ip.is_loopback() && src_ip != host.ip {
        return Err(libc::EINVAL);
    }
    let packet = net::encode((src_ip, local.1), (dst_ip, dst.1), data);
    let proc = host.tasks[&vid].proc;
    if let Some(p) = host.procs.get_mut(proc) {
        p.udp_sent += data.len() as u64;
    }
    nic::transmit(e, h, packet);
    Ok(Answer::Value(data.len() as i64))
}

/// A packet has reached host `h` (from another host, `remote`, or from itself): a TCP segment
/// goes to the host's stack; a datagram's payload is queued on the UDP socket bound to its port,
/// if any. Bad packets are dropped (they cannot come from this simulator's own encoders).
pub(crate) fn deliver_packet(e: &mut DirectEngine, h: usize, bytes: &[u8], remote: bool) {
    let host = &mut e.hosts[h];
    if remote && let Some(p) = host.pcap.as_mut() {
        p.record(host.now, bytes);
    }
    host.progress += 1;
    if bytes.len() > 9 && bytes[9] == 6 {
        nic::receive(e, h, bytes);
        return;
    }
    let Ok(p) = net::decode(bytes) else { return };
    let host = &mut e.hosts[h];
    let Some(&obj) = host.ports.get(&p.dst.1) else { return };
    let s = udp(host, obj);
    if let Some((ip, _)) = s.local
        && !ip.is_unspecified()
        && ip != p.dst.0
    {
        return;
    }
    s.enqueue(Datagram { src: p.src, data: p.payload });
}

/// A read or write on a descriptor the supervisor does not emulate. Regular files and anything
/// ready, or non-blocking, run in the kernel at once; a blocking pipe, socket or terminal that is
/// not ready would stop the task inside the kernel, where the supervisor cannot see it wake, so
/// the task waits here instead and is retried when other tasks of the host have run.
fn native_io(e: &DirectEngine, h: usize, vid: u32, fd: i32, events: i16) -> Answer {
    native_access(e, h, vid, fd, events).0
}

/// [`native_io`] for a read, and whether the read can wake writers: any read but that of a
/// regular file or of a pipe that is not full (Linux's `pipe_read` wakes writers only if the pipe
/// was full).
fn native_read(e: &DirectEngine, h: usize, vid: u32, fd: i32) -> (Answer, bool) {
    native_access(e, h, vid, fd, libc::POLLIN)
}

/// [`native_io`], and for a read (`POLLIN`) whether it can wake writers.
fn native_access(e: &DirectEngine, h: usize, vid: u32, fd: i32, events: i16) -> (Answer, bool) {
    let t = &e.hosts[h].tasks[&vid];
    // SAFETY: pidfd_getfd of a stopped task's descriptor; the copy is closed below.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, t.pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return (Answer::Continue, false); // EBADF and friends: the kernel gives the right error
    }
    let copy = copy as i32;
    // SAFETY: fstat, fcntl and poll on our copy, then close it.
    let (ready, wakes_writers) = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let kind = if libc::fstat(copy, &mut st) == 0 { st.st_mode & libc::S_IFMT } else { 0 };
        let nonblock = libc::fcntl(copy, libc::F_GETFL) & libc::O_NONBLOCK != 0;
        let mut p = libc::pollfd { fd: copy, events, revents: 0 };
        let ready = kind == libc::S_IFREG || nonblock || (libc::poll(&mut p, 1, 0) == 1 && p.revents != 0);
        let wakes =
            events == libc::POLLIN && ready && kind != libc::S_IFREG && (kind != libc::S_IFIFO || pipe_full(copy));
        libc::close(copy);
        (ready, wakes)
    };
    let answer = if ready { Answer::Continue } else { Answer::Block(BlockKind::Io { since: 0 }, None) };
    (answer, wakes_writers)
}

/// Whether the pipe whose read end is `copy` (the supervisor's copy) is full, as Linux counts it
/// (in buffers, not bytes): seen through a write end of the same pipe opened through
/// `/proc/self/fd` without blocking, whose `POLLOUT` is the kernel's own answer. Only asked while
/// the pipe has a writer (so the extra writer wakes nobody when it closes); a pipe that cannot be
/// reopened counts as full (a spurious edge rather than a lost one).
fn pipe_full(copy: i32) -> bool {
    let mut p = libc::pollfd { fd: copy, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll with a zero timeout on our copy.
    unsafe { libc::poll(&mut p, 1, 0) };
    if p.revents & libc::POLLHUP != 0 {
        return false; // no writer to wake
    }
    let path = std::ffi::CString::new(format!("/proc/self/fd/{copy}")).unwrap_or_default();
    // SAFETY: opening a path we built; the descriptor is closed below.
    let w = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if w < 0 {
        return true;
    }
    let mut p = libc::pollfd { fd: w, events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll with a zero timeout on our own descriptor, then close it.
    unsafe {
        libc::poll(&mut p, 1, 0);
        libc::close(w);
    }
    p.revents & libc::POLLOUT == 0
}

/// A write on a descriptor the supervisor does not emulate. A write to a regular file is checked
/// against the host's disk quota ([`crate::disk`]). A blocking write to a pipe with less room
/// than the data would stop the task in the kernel until a reader makes room; instead the
/// supervisor writes what fits (a short write, which callers loop on) or, with a full pipe,
/// blocks the task until a reader has run.
#[allow(non_upper_case_globals)]
fn native_write(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif) -> Answer {
    use libc::*;
    let t = &e.hosts[h].tasks[&vid];
    // SAFETY: pidfd_getfd of a stopped task's descriptor; closed below.
    let copy = unsafe { syscall(SYS_pidfd_getfd, t.pidfd.as_raw_fd(), n.data.args[0] as i32, 0) };
    if copy < 0 {
        return Answer::Continue; // EBADF and friends: the kernel gives the right error
    }
    let copy = copy as i32;
    // SAFETY: fstat and fcntl on our copy.
    let (st, nonblock) = unsafe {
        let mut st: stat = std::mem::zeroed();
        let ok = fstat(copy, &mut st) == 0;
        (ok.then_some(st), fcntl(copy, F_GETFL) & O_NONBLOCK != 0)
    };
    let kind = st.map_or(0, |s| s.st_mode & S_IFMT);
    let answer = match st {
        Some(s) if kind == S_IFREG => {
            let now = e.now(h);
            e.hosts[h].stamps.written((s.st_dev, s.st_ino), now);
            crate::disk::file_write(e, h, vid, n, copy, &s)
        }
        Some(_) if kind == S_IFIFO && !nonblock && matches!(n.data.nr as i64, SYS_write | SYS_writev) => {
            pipe_write(e, h, vid, n, copy)
        }
        _ => {
            let mut p = pollfd { fd: copy, events: POLLOUT, revents: 0 };
            // SAFETY: poll with a zero timeout on our copy.
            let ready = nonblock || (unsafe { poll(&mut p, 1, 0) } == 1 && p.revents != 0);
            if ready { Answer::Continue } else { Answer::Block(BlockKind::Io { since: 0 }, None) }
        }
    };
    // SAFETY: closing our copy.
    unsafe { close(copy) };
    answer
}

/// A blocking `write` or `writev` to a pipe (`copy`: the supervisor's copy of it): run in the
/// kernel if it fits, performed here up to the room if it does not, blocked if the pipe is full.
#[allow(non_upper_case_globals)]
fn pipe_write(e: &DirectEngine, h: usize, vid: u32, n: &Notif, copy: i32) -> Answer {
    use libc::*;
    let (a, pid) = (n.data.args, e.hosts[h].tasks[&vid].pid);
    // SAFETY: poll, fcntl, ioctl and write on our copy.
    unsafe {
        let mut p = pollfd { fd: copy, events: POLLOUT, revents: 0 };
        poll(&mut p, 1, 0);
        if p.revents & (POLLERR | POLLHUP) != 0 {
            return Answer::Continue; // no reader: the kernel raises SIGPIPE / EPIPE
        }
        let cap = fcntl(copy, F_GETPIPE_SZ).max(0) as usize;
        let mut queued: c_int = 0;
        ioctl(copy, FIONREAD, &mut queued);
        let free = cap.saturating_sub(queued.max(0) as usize);
        let bufs = if n.data.nr as i64 == SYS_write {
            vec![(a[1], a[2] as usize)]
        } else {
            match mem::read_iovecs(pid, a[1], a[2] as usize) {
                Ok(v) => v,
                Err(err) => return Answer::Errno(err),
            }
        };
        let total: usize = bufs.iter().map(|b| b.1).sum();
        if total <= free {
            return Answer::Continue;
        }
        if free == 0 {
            return Answer::Block(BlockKind::Io { since: 0 }, None);
        }
        let mut data = Vec::with_capacity(free);
        for (base, len) in bufs {
            let take = len.min(free - data.len());
            match mem::read(pid, base, take) {
                Ok(d) => data.extend_from_slice(&d),
                Err(_) => return Answer::Errno(EFAULT),
            }
            if data.len() == free {
                break;
            }
        }
        let w = write(copy, data.as_ptr() as *const c_void, data.len());
        if w < 0 { Answer::Errno(*__errno_location()) } else { Answer::Value(w as i64) }
    }
}

/// Readiness of a descriptor the supervisor does not emulate: poll a copy of it, taken with
/// `pidfd_getfd`, without waiting. `None` if the task has no such descriptor.
fn native_ready(pidfd: i32, fd: i32, events: i16) -> Option<i16> {
    // SAFETY: pidfd_getfd of a stopped task's descriptor; the copy is closed below.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if copy < 0 {
        return None;
    }
    let mut p = libc::pollfd { fd: copy as i32, events, revents: 0 };
    // SAFETY: poll with a zero timeout on our copy, then close it.
    unsafe {
        libc::poll(&mut p, 1, 0);
        libc::close(copy as i32);
    }
    Some(p.revents)
}

/// Whether a vectored read or write (`readv`, `preadv`, `writev`, …; arguments `a`) has an
/// iovec array the kernel refuses before anything else (see [`mem::read_iovecs`]): such a call
/// on a native descriptor must not wait for readiness first.
#[allow(non_upper_case_globals)]
fn bad_iovecs(nr: i64, pid: i32, a: [u64; 6]) -> bool {
    use libc::{SYS_preadv, SYS_preadv2, SYS_pwritev, SYS_pwritev2, SYS_readv, SYS_writev};
    matches!(nr, SYS_readv | SYS_preadv | SYS_preadv2 | SYS_writev | SYS_pwritev | SYS_pwritev2)
        && mem::read_iovecs(pid, a[1], a[2] as usize).is_err()
}

/// A native write the kernel is about to perform (`Continue`) or the supervisor performed (a
/// short pipe write): a new edge for the readers of pipes, sockets and eventfds of the host.
fn counted_write(e: &mut DirectEngine, h: usize, answer: Answer) -> Answer {
    if matches!(answer, Answer::Continue | Answer::Value(1..)) {
        e.hosts[h].native_edges.readable += 1;
    }
    answer
}

/// A native read (or receive, or accept) of descriptor `fd` of task `vid` (`-1`: one that does
/// not wait, not looked at): run in the kernel at once if it can, and a new edge for the host's
/// writers when it can make room for one (see [`crate::host::NativeEdges`]).
fn counted_read(e: &mut DirectEngine, h: usize, vid: u32, fd: i32) -> Answer {
    let (answer, wakes_writers) = if fd < 0 { (Answer::Continue, true) } else { native_read(e, h, vid, fd) };
    if wakes_writers && matches!(answer, Answer::Continue) {
        e.hosts[h].native_edges.writable += 1;
    }
    answer
}

/// The readiness-change count of descriptor `fd` of task `vid` for an epoll interest in
/// `events`, for edge-triggered epoll: for emulated sockets, their own count of arrivals and
/// state changes; for native descriptors, the host's [`crate::host::NativeEdges`].
fn fd_gen(e: &DirectEngine, h: usize, vid: u32, fd: i32, events: u32) -> u64 {
    let host = &e.hosts[h];
    match host.fds(vid).get(&fd) {
        Some(f) => match host.objs.get(f.obj).and_then(|s| s.as_ref()).map(|s| &s.obj) {
            Some(Obj::Udp(u)) => u.arrivals,
            Some(Obj::Tcp(t)) => t.changes,
            Some(Obj::TimerFd(t)) => t.changes,
            Some(Obj::Netlink(s)) => s.changes,
            _ => 0,
        },
        None => host.native_edges.watched(events),
    }
}

fn fd_ready(e: &mut DirectEngine, h: usize, vid: u32, fd: i32, events: i16) -> i16 {
    let t = &e.hosts[h].tasks[&vid];
    let want = events | libc::POLLERR | libc::POLLHUP; // as the kernel: asked-for bits and errors
    if let Some(f) = e.hosts[h].fds(vid).get(&fd)
        && let Some(Some(ObjSlot { obj: Obj::Tcp(_), .. })) = e.hosts[h].objs.get(f.obj)
    {
        let obj = f.obj;
        return tcp::ready(&mut e.hosts[h], obj) & want;
    }
    match e.hosts[h].fds(vid).get(&fd) {
        Some(f) => match e.hosts[h].objs.get(f.obj).and_then(|s| s.as_ref()).map(|s| &s.obj) {
            Some(Obj::Random) => (libc::POLLIN | libc::POLLOUT) & want,
            Some(Obj::TimerFd(t)) => {
                if t.readable() {
                    (libc::POLLIN | libc::POLLRDNORM) & want
                } else {
                    0
                }
            }
            Some(Obj::Netlink(s)) => {
                let r = if s.readable() { libc::POLLIN | libc::POLLRDNORM | libc::POLLOUT } else { libc::POLLOUT };
                r & want
            }
            Some(Obj::Epoll(_)) | Some(Obj::Tcp(_)) => 0, // nested epoll sets are never reported ready
            Some(Obj::Udp(u)) => {
                let mut r = libc::POLLOUT;
                if !u.queue.is_empty() || u.shut_rd {
                    r |= libc::POLLIN | libc::POLLRDNORM;
                }
                r & want
            }
            None => libc::POLLNVAL,
        },
        None => native_ready(t.pidfd.as_raw_fd(), fd, events).unwrap_or(libc::POLLNVAL),
    }
}

fn do_poll(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    addr: u64,
    nfds: usize,
    timeout: Option<u64>,
) -> Result<Answer, i32> {
    if nfds > 65536 {
        return Err(libc::EINVAL);
    }
    let (pid, timed_out) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out)
    };
    let mut raw = mem::read(pid, addr, nfds * 8).map_err(|_| libc::EFAULT)?;
    let mut ready = 0;
    for c in raw.chunks_exact_mut(8) {
        let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
        let events = i16::from_ne_bytes([c[4], c[5]]);
        let r = if fd < 0 { 0 } else { fd_ready(e, h, vid, fd, events) };
        c[6..8].copy_from_slice(&r.to_ne_bytes());
        if r != 0 {
            ready += 1;
        }
    }
    if ready > 0 || timed_out || timeout == Some(0) {
        mem::write(pid, addr, &raw).map_err(|_| libc::EFAULT)?;
        return Ok(Answer::Value(ready));
    }
    Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout))
}

fn do_select(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    nfds: usize,
    sets: [u64; 3],
    timeout: Option<u64>,
) -> Result<Answer, i32> {
    if nfds > 1024 {
        return Err(libc::EINVAL);
    }
    let (pid, timed_out) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out)
    };
    let bytes = nfds.div_ceil(64) * 8;
    let mut input = [Vec::new(), Vec::new(), Vec::new()];
    for (i, &s) in sets.iter().enumerate() {
        if s != 0 {
            input[i] = mem::read(pid, s, bytes).map_err(|_| libc::EFAULT)?;
        }
    }
    let mut out = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut ready = 0;
    for fd in 0..nfds {
        let bit = |v: &Vec<u8>| !v.is_empty() && v[fd / 8] & (1 << (fd % 8)) != 0;
        let (r, w, x) = (bit(&input[0]), bit(&input[1]), bit(&input[2]));
        if !(r || w || x) {
            continue;
        }
        let got = fd_ready(e, h, vid, fd as i32, libc::POLLIN | libc::POLLOUT | libc::POLLPRI);
        if got & libc::POLLNVAL != 0 {
            return Err(libc::EBADF);
        }
        let hits = [
            r && got & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
            w && got & (libc::POLLOUT | libc::POLLERR) != 0,
            x && got & libc::POLLPRI != 0,
        ];
        for (i, &hit) in hits.iter().enumerate() {
            if hit {
                out[i][fd / 8] |= 1 << (fd % 8);
                ready += 1;
            }
        }
    }
    if ready > 0 || timed_out || timeout == Some(0) {
        for (i, &s) in sets.iter().enumerate() {
            if s != 0 {
                mem::write(pid, s, &out[i]).map_err(|_| libc::EFAULT)?;
            }
        }
        return Ok(Answer::Value(ready));
    }
    Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout))
}

/// Pending (thread and process) and blocked signal sets of `pid`, from `/proc`.
fn proc_signals(pid: i32) -> (u64, u64) {
    crate::engine::TaskStatus::read(pid, pid).map_or((0, 0), |s| (s.pending | s.shared_pending, s.blocked))
}

fn forget_in_epolls(host: &mut Host, vid: u32, fd: i32) {
    let epolls: Vec<usize> = host.fds(vid).values().map(|f| f.obj).collect();
    for o in epolls {
        if let Some(Obj::Epoll(set)) = host.obj_mut(o) {
            set.remove(&fd);
        }
    }
}

fn epoll_set(host: &mut Host, vid: u32, epfd: i32) -> Result<&mut std::collections::BTreeMap<i32, EpollInterest>, i32> {
    let obj = host.fds(vid).get(&epfd).map(|f| f.obj).ok_or(libc::EINVAL)?;
    match host.obj_mut(obj) {
        Some(Obj::Epoll(set)) => Ok(set),
        Some(_) => Err(libc::EINVAL),
        None => Err(libc::EBADF),
    }
}

fn emu_epoll_ctl(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    epfd: i32,
    op: i32,
    fd: i32,
    ev: u64,
) -> Result<Answer, i32> {
    let pid = e.hosts[h].tasks[&vid].pid;
    if fd == epfd {
        return Err(libc::EINVAL);
    }
    // The target must be an open descriptor of the task.
    if !e.hosts[h].fds(vid).contains_key(&fd) {
        let pidfd = e.hosts[h].tasks[&vid].pidfd.as_raw_fd();
        if native_ready(pidfd, fd, 0).is_none() {
            return Err(libc::EBADF);
        }
    }
    let interest = if op == libc::EPOLL_CTL_DEL {
        None
    } else {
        let b = mem::read(pid, ev, 12).map_err(|_| libc::EFAULT)?;
        let events = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let data = u64::from_ne_bytes(b[4..12].try_into().unwrap_or([0; 8]));
        Some(EpollInterest { events, data, reported: None })
    };
    let set = epoll_set(&mut e.hosts[h], vid, epfd)?;
    match (op, interest) {
        (libc::EPOLL_CTL_ADD, Some(i)) => {
            if set.contains_key(&fd) {
                return Err(libc::EEXIST);
            }
            set.insert(fd, i);
        }
        (libc::EPOLL_CTL_MOD, Some(i)) => {
            let slot = set.get_mut(&fd).ok_or(libc::ENOENT)?;
            *slot = i;
        }
        (libc::EPOLL_CTL_DEL, _) => {
            set.remove(&fd).ok_or(libc::ENOENT)?;
        }
        _ => return Err(libc::EINVAL),
    }
    Ok(Answer::Value(0))
}

/// `epoll_wait`: the readiness of the interest list, in descriptor order. Level-triggered
/// entries are reported while ready; `EPOLLET` entries only when the descriptor's readiness has
/// changed (new data, a new connection, room to write, a state change) since they were last
/// reported, or since `EPOLL_CTL_ADD`/`MOD`; `EPOLLONESHOT` entries are disarmed once reported
/// until `EPOLL_CTL_MOD`.
fn emu_epoll_wait(
    e: &mut DirectEngine,
    h: usize,
    vid: u32,
    epfd: i32,
    out: u64,
    max: i32,
    timeout: Option<u64>,
) -> Result<Answer, i32> {
    if max <= 0 || max > 1 << 20 {
        return Err(libc::EINVAL);
    }
    let (pid, timed_out) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.timed_out)
    };
    let interest: Vec<(i32, EpollInterest)> =
        epoll_set(&mut e.hosts[h], vid, epfd)?.iter().map(|(k, v)| (*k, *v)).collect();
    let mut ready = Vec::new();
    let mut fired = Vec::new();
    for (fd, i) in interest {
        let asked = (i.events & 0xffff) as i16;
        if asked == 0 {
            continue; // disarmed one-shot
        }
        let edge = i.events & libc::EPOLLET as u32 != 0;
        let count = fd_gen(e, h, vid, fd, i.events);
        if edge && i.reported == Some(count) {
            continue; // nothing new since the last report
        }
        let got = fd_ready(e, h, vid, fd, asked);
        let got = if got & libc::POLLNVAL != 0 { 0 } else { got };
        if got != 0 {
            let mut rec = [0u8; 12];
            rec[..4].copy_from_slice(&(got as u16 as u32).to_ne_bytes());
            rec[4..].copy_from_slice(&i.data.to_ne_bytes());
            ready.extend_from_slice(&rec);
            fired.push((fd, count));
            if ready.len() / 12 == max as usize {
                break;
            }
        }
    }
    let n = ready.len() / 12;
    if n > 0 || timed_out || timeout == Some(0) {
        mem::write(pid, out, &ready).map_err(|_| libc::EFAULT)?;
        let set = epoll_set(&mut e.hosts[h], vid, epfd)?;
        for (fd, count) in fired {
            if let Some(i) = set.get_mut(&fd) {
                i.reported = Some(count);
                if i.events & libc::EPOLLONESHOT as u32 != 0 {
                    i.events &= !0xffff;
                }
            }
        }
        return Ok(Answer::Value(n as i64));
    }
    Ok(Answer::Block(BlockKind::Io { since: 0 }, timeout))
}

/// `-ERESTARTSYS`: the kernel restarts the call after a `SA_RESTART` handler, else fails it with
/// `EINTR` — what a blocking call interrupted by a signal returns inside the kernel.
const ERESTARTSYS: i32 = 512;
/// `-ERESTARTNOHAND`: restarted only if no handler ran (poll, select, epoll_wait).
const ERESTARTNOHAND: i32 = 514;

/// The answer to a blocked syscall interrupted by a pending signal: sleeps fail with `EINTR` and
/// report the time left; waits the kernel would restart get the kernel's own restart codes, so
/// `SA_RESTART` behaves as on Linux (the signal is delivered when the call returns).
#[allow(non_upper_case_globals)]
pub(crate) fn interrupted(e: &mut DirectEngine, h: usize, vid: u32, n: &Notif) -> Answer {
    use libc::*;
    let a = n.data.args;
    let (pid, deadline) = {
        let t = &e.hosts[h].tasks[&vid];
        (t.pid, t.deadline)
    };
    let left = deadline.map_or(0, |(d, _)| d.saturating_sub(e.now(h)));
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

/// (ns left, interval ns) of task `vid`'s `ITIMER_REAL` timer.
fn alarm_left(e: &DirectEngine, h: usize, vid: u32) -> (u64, u64) {
    match e.hosts[h].tasks[&vid].alarm {
        Some((at, interval, _)) => (at.saturating_sub(e.now(h)), interval),
        None => (0, 0),
    }
}

/// A `struct itimerval` (interval, then value), microsecond precision.
fn itimerval_bytes(interval: u64, value: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, value].into_iter().enumerate() {
        b[i * 16..i * 16 + 8].copy_from_slice(&((ns / NS) as i64).to_ne_bytes());
        b[i * 16 + 8..i * 16 + 16].copy_from_slice(&(((ns % NS) / 1000) as i64).to_ne_bytes());
    }
    b
}
