//! Syscalls answered inside the process: libc's `syscall()` and `uname()`, interposed.
//!
//! A program that bypasses the vDSO — `syscall(SYS_clock_gettime, …)` in C, `libc::syscall` in
//! Rust — would otherwise stop in the supervisor for a value the shim can read from the time page
//! (about 7 µs against a few ns). The shim's `syscall` looks at the number first: `clock_gettime`
//! (the clocks the page answers), `gettimeofday`, `time`, `getcpu` and `uname` are answered here,
//! with the values the supervisor gives; every other number is made as the syscall it is, exactly
//! as glibc's `syscall` makes it (same registers, `errno` on failure), so the supervisor, or the
//! kernel, sees the same call. `uname`'s answer (the host's name, the machine's release) is asked
//! of the supervisor once per image and kept.
//!
//! **Syscall latency.** The supervisor charges each call it answers at once the process's
//! `syscall_latency`, and a task whose account reaches [`MAX_UNAPPLIED_LATENCY_NS`] first waits it
//! off at its next call. Calls answered here are charged the same cost (asked of the supervisor
//! once per image, [`HELLO_OP_LATENCY_COST`]) in a per-thread account; when that account fills the
//! room the supervisor's account had left, it is handed to the supervisor
//! ([`HELLO_OP_LATENCY_HANDOVER`]), which answers with the task's account; if that has reached the
//! threshold, the call goes to the supervisor, which waits it off first, as it would have. A loop
//! of such calls therefore spends simulated time exactly as before (1 ms per thousand calls at
//! 1 µs), and a wait happens at the same call.

use crate::abi::{
    ABI_VERSION, HELLO_OP_LATENCY_COST, HELLO_OP_LATENCY_HANDOVER, HELLO_SYSCALL, MAX_UNAPPLIED_LATENCY_NS,
};
use crate::imp::{clock_ns, has_page, raw6};
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libc::{c_int, c_long};

const NS: u64 = 1_000_000_000;
/// [`COST`] before it has been asked.
const UNKNOWN: u64 = u64::MAX;
/// `struct utsname`: six fields of 65 bytes.
const UTS_BYTES: usize = 6 * 65;

/// The process's syscall latency, ns (the same for every thread of the image).
static COST: AtomicU64 = AtomicU64::new(UNKNOWN);

thread_local! {
    /// Latency this thread was charged for calls answered here since the last hand-over, ns.
    static CHARGED: Cell<u64> = const { Cell::new(0) };
    /// How much may be charged here before the supervisor's account of this thread would reach
    /// the threshold (as last known: the supervisor says at each hand-over), ns.
    static ROOM: Cell<u64> = const { Cell::new(MAX_UNAPPLIED_LATENCY_NS) };
}

/// `uname`'s answer, once the supervisor has given it.
struct UtsCache {
    ready: AtomicBool,
    bytes: UnsafeCell<[u8; UTS_BYTES]>,
}

// SAFETY: `bytes` is written once, before `ready` is set (Release), and only read after `ready`
// is seen (Acquire); one task of a host runs at a time, so two first writers never overlap, and
// they would write the same bytes.
unsafe impl Sync for UtsCache {}

static UTS: UtsCache = UtsCache { ready: AtomicBool::new(false), bytes: UnsafeCell::new([0; UTS_BYTES]) };

/// libc's `syscall(number, …)`, interposed: the numbers this module answers go to
/// [`local_syscall`]; any other is made exactly as glibc makes it (arguments moved to the kernel's
/// registers, the sixth from the stack; `-1` and `errno` for results in `-4095..=-1`), with no
/// stack use between entry and the `syscall` instruction, so `vfork` and `clone` behave as there.
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall() -> c_long {
    // SAFETY: only the registers a C call may clobber are written; the caller's arguments reach
    // the kernel, or `local_syscall` (same argument registers, same return address), unchanged.
    core::arch::naked_asm!(
        "cmp rdi, {clock_gettime}",
        "je 2f",
        "cmp rdi, {gettimeofday}",
        "je 2f",
        "cmp rdi, {time}",
        "je 2f",
        "cmp rdi, {getcpu}",
        "je 2f",
        "cmp rdi, {uname}",
        "je 2f",
        "mov rax, rdi",
        "mov rdi, rsi",
        "mov rsi, rdx",
        "mov rdx, rcx",
        "mov r10, r8",
        "mov r8, r9",
        "mov r9, [rsp + 8]",
        "syscall",
        "cmp rax, -4095",
        "jae 3f",
        "ret",
        "3:",
        "mov rdi, rax",
        "jmp {fail}",
        "2:",
        "jmp {local}",
        clock_gettime = const libc::SYS_clock_gettime,
        gettimeofday = const libc::SYS_gettimeofday,
        time = const libc::SYS_time,
        getcpu = const libc::SYS_getcpu,
        uname = const libc::SYS_uname,
        fail = sym fail,
        local = sym local_syscall,
    )
}

/// libc's `uname`, interposed: the cached answer (see [`local_syscall`]).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uname(buf: *mut libc::utsname) -> c_int {
    // SAFETY: the caller's pointer, handled as the syscall's argument.
    unsafe { local_syscall(libc::SYS_uname, buf as c_long, 0, 0, 0, 0) as c_int }
}

/// Set `errno` from a kernel result in `-4095..=-1` and return `-1` (glibc's convention).
extern "C" fn fail(ret: c_long) -> c_long {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() = (-ret) as c_int };
    -1
}

/// A kernel result in libc's convention.
fn libc_result(ret: c_long) -> c_long {
    if (-4095..0).contains(&ret) { fail(ret) } else { ret }
}

/// Make the call as the syscall it is (the supervisor answers it).
fn forward(nr: c_long, a: [c_long; 5]) -> c_long {
    let args = [a[0] as usize, a[1] as usize, a[2] as usize, a[3] as usize, a[4] as usize, 0];
    // SAFETY: the program's own call, made unchanged.
    libc_result(unsafe { raw6(nr, args) } as c_long)
}

/// Answer `nr` in the process if it can be, else make it as a syscall. Safety: the arguments
/// are the program's, valid for `nr` as the kernel would take them.
unsafe extern "C" fn local_syscall(nr: c_long, a0: c_long, a1: c_long, a2: c_long, a3: c_long, a4: c_long) -> c_long {
    let a = [a0, a1, a2, a3, a4];
    if !has_page() {
        return forward(nr, a);
    }
    if !answerable(nr, a0) {
        let r = forward(nr, a);
        if nr == libc::SYS_uname && r == 0 {
            remember_uname(a0 as *const u8);
        }
        return r;
    }
    if !latency_allows() {
        return forward(nr, a);
    }
    // SAFETY: the caller's pointers, written as the kernel would write them.
    let r = unsafe { answer(nr, a) };
    charge();
    libc_result(r)
}

/// Whether this module can answer `nr` (with first argument `a0`) without the supervisor.
fn answerable(nr: c_long, a0: c_long) -> bool {
    match nr {
        libc::SYS_clock_gettime => clock_ns(a0 as c_int).is_some(),
        libc::SYS_uname => UTS.ready.load(Ordering::Acquire),
        _ => true,
    }
}

/// The kernel-convention result of `nr`, answered from the time page or the cache: what the
/// supervisor answers (`-EFAULT` for a null pointer it must write through).
unsafe fn answer(nr: c_long, a: [c_long; 5]) -> c_long {
    // SAFETY: non-null pointers are the caller's, of the types the syscall writes.
    unsafe {
        match nr {
            libc::SYS_clock_gettime => clock_gettime(a[0] as c_int, a[1] as *mut libc::timespec),
            libc::SYS_gettimeofday => gettimeofday(a[0] as *mut libc::timeval, a[1] as *mut u8),
            libc::SYS_time => time(a[0] as *mut libc::time_t),
            libc::SYS_getcpu => getcpu(a[0] as *mut u32, a[1] as *mut u32),
            _ => uname_cached(a[0] as *mut u8),
        }
    }
}

/// `clock_gettime` from the page (`clock` is one it answers). Safety: `ts` is null or writable.
unsafe fn clock_gettime(clock: c_int, ts: *mut libc::timespec) -> c_long {
    let Some(ns) = clock_ns(clock) else { return -libc::EINVAL as c_long };
    if ts.is_null() {
        return -libc::EFAULT as c_long;
    }
    // SAFETY: a non-null timespec pointer from the caller.
    unsafe { ts.write(libc::timespec { tv_sec: (ns / NS) as _, tv_nsec: (ns % NS) as _ }) };
    0
}

/// `gettimeofday` from the page. Safety: `tv` and `tz` are null or writable.
unsafe fn gettimeofday(tv: *mut libc::timeval, tz: *mut u8) -> c_long {
    let ns = clock_ns(libc::CLOCK_REALTIME).unwrap_or(0);
    // SAFETY: non-null pointers from the caller; `tz` is a `struct timezone` (8 bytes).
    unsafe {
        if !tv.is_null() {
            tv.write(libc::timeval { tv_sec: (ns / NS) as _, tv_usec: ((ns % NS) / 1000) as _ });
        }
        if !tz.is_null() {
            core::ptr::write_bytes(tz, 0, 8);
        }
    }
    0
}

/// `time` from the page. Safety: `t` is null or writable.
unsafe fn time(t: *mut libc::time_t) -> c_long {
    let s = (clock_ns(libc::CLOCK_REALTIME).unwrap_or(0) / NS) as libc::time_t;
    if !t.is_null() {
        // SAFETY: a non-null pointer from the caller.
        unsafe { t.write(s) };
    }
    s as c_long
}

/// Every simulated host's tasks run on CPU 0, node 0 (as the supervisor says). Safety: `cpu` and
/// `node` are null or writable.
unsafe fn getcpu(cpu: *mut u32, node: *mut u32) -> c_long {
    for p in [cpu, node] {
        if !p.is_null() {
            // SAFETY: a non-null pointer from the caller.
            unsafe { p.write(0) };
        }
    }
    0
}

/// `uname` from the cache (filled). Safety: `buf` is null or a writable `struct utsname`.
unsafe fn uname_cached(buf: *mut u8) -> c_long {
    if buf.is_null() {
        return -libc::EFAULT as c_long;
    }
    // SAFETY: `ready` was seen (see `answerable`), so the bytes are complete; `buf` is the
    // caller's `struct utsname`.
    unsafe { core::ptr::copy_nonoverlapping(UTS.bytes.get() as *const u8, buf, UTS_BYTES) };
    0
}

/// After a forwarded `uname` succeeded: keep its answer for the next calls.
fn remember_uname(buf: *const u8) {
    if buf.is_null() || UTS.ready.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: the kernel (the supervisor) has just filled the caller's `struct utsname`; see
    // `UtsCache` for why the write cannot race.
    unsafe { core::ptr::copy_nonoverlapping(buf, UTS.bytes.get() as *mut u8, UTS_BYTES) };
    UTS.ready.store(true, Ordering::Release);
}

/// The process's syscall latency, asked of the supervisor the first time.
fn cost() -> u64 {
    let c = COST.load(Ordering::Relaxed);
    if c != UNKNOWN {
        return c;
    }
    // SAFETY: the private syscall with constant arguments.
    let r =
        unsafe { raw6(HELLO_SYSCALL as c_long, [HELLO_OP_LATENCY_COST as usize, ABI_VERSION as usize, 0, 0, 0, 0]) };
    let c = if r < 0 { 0 } else { r as u64 };
    COST.store(c, Ordering::Relaxed);
    c
}

/// Whether the next call may be answered here: not once this thread's account would make the
/// supervisor's reach the threshold — then the charged latency is handed over, and if the
/// supervisor's account has reached it, the call goes there to wait it off first.
fn latency_allows() -> bool {
    let cost = cost();
    let charged = CHARGED.get();
    if cost == 0 || charged < ROOM.get() {
        return true;
    }
    CHARGED.set(0);
    let args = [HELLO_OP_LATENCY_HANDOVER as usize, ABI_VERSION as usize, charged as usize, 0, 0, 0];
    // SAFETY: the private syscall with scalar arguments.
    let account = unsafe { raw6(HELLO_SYSCALL as c_long, args) };
    let account = if account < 0 { 0 } else { account as u64 };
    let room = room_after(account, cost);
    ROOM.set(room.0);
    room.1
}

/// (room left for calls answered here, whether this call may be answered here) once the
/// supervisor's account of the thread is `account`: at the threshold the call goes to the
/// supervisor, which waits, empties the account and charges the call `cost`.
fn room_after(account: u64, cost: u64) -> (u64, bool) {
    if account >= MAX_UNAPPLIED_LATENCY_NS {
        (MAX_UNAPPLIED_LATENCY_NS.saturating_sub(cost), false)
    } else {
        (MAX_UNAPPLIED_LATENCY_NS - account, true)
    }
}

/// Charge this thread one call's latency.
fn charge() {
    CHARGED.set(CHARGED.get().saturating_add(cost()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls of a loop that only makes calls the shim answers, at which the supervisor makes the
    /// task wait (simulating both sides), against the supervisor's rule alone.
    fn waits(calls: u64, cost: u64) -> (Vec<u64>, Vec<u64>) {
        let (mut shim_waits, mut sup_waits) = (Vec::new(), Vec::new());
        let (mut sup, mut charged, mut room) = (0u64, 0u64, MAX_UNAPPLIED_LATENCY_NS);
        let mut alone = 0u64;
        for call in 1..=calls {
            if alone >= MAX_UNAPPLIED_LATENCY_NS {
                sup_waits.push(call);
                alone = 0;
            }
            alone += cost;
            if charged < room {
                charged += cost;
                continue;
            }
            sup += charged;
            charged = 0;
            let (r, here) = room_after(sup, cost);
            room = r;
            if here {
                charged += cost;
            } else {
                shim_waits.push(call);
                sup = cost;
            }
        }
        (shim_waits, sup_waits)
    }

    #[test]
    fn calls_answered_here_wait_at_the_same_calls_as_under_the_supervisor() {
        let (shim, sup) = waits(10_001, 1_000);
        assert_eq!(shim, vec![1001, 2001, 3001, 4001, 5001, 6001, 7001, 8001, 9001, 10001]);
        assert_eq!(shim, sup);
        let (shim, sup) = waits(5_000, 3_000);
        assert_eq!(shim, sup, "a cost that does not divide the threshold");
        let (shim, sup) = waits(5, 600_000);
        assert_eq!(shim, sup, "a cost above half the threshold");
    }

    #[test]
    fn room_after_a_hand_over() {
        assert_eq!(room_after(0, 1_000), (MAX_UNAPPLIED_LATENCY_NS, true));
        assert_eq!(room_after(400_000, 1_000), (600_000, true));
        assert_eq!(room_after(MAX_UNAPPLIED_LATENCY_NS, 1_000), (999_000, false));
    }

    type Syscall = unsafe extern "C" fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long;

    /// The interposed `syscall`, called as C calls it.
    fn call(nr: c_long, a0: c_long, a1: c_long) -> c_long {
        // SAFETY: `syscall` takes the number and six arguments in C's registers and stack slot.
        let f: Syscall = unsafe { core::mem::transmute(syscall as unsafe extern "C" fn() -> c_long) };
        // SAFETY: the test's calls take scalar or valid pointer arguments.
        unsafe { f(nr, a0, a1, 0, 0, 0, 0) }
    }

    #[test]
    fn without_a_supervisor_every_call_is_passed_on_as_glibc_makes_it() {
        assert_eq!(call(libc::SYS_getpid, 0, 0), std::process::id() as c_long);
        assert_eq!(call(libc::SYS_close, -1, 0), -1);
        // SAFETY: this thread's errno.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EBADF);
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        assert_eq!(call(libc::SYS_clock_gettime, libc::CLOCK_REALTIME as c_long, &mut ts as *mut _ as c_long), 0);
        assert!(ts.tv_sec > 1_700_000_000, "the machine's clock, not a simulated one");
        // SAFETY: a plain C struct, valid when zeroed.
        let mut u: libc::utsname = unsafe { core::mem::zeroed() };
        assert_eq!(call(libc::SYS_uname, &mut u as *mut _ as c_long, 0), 0);
        assert_eq!(u.sysname[0], b'L' as libc::c_char);
        assert!(!UTS.ready.load(Ordering::Acquire), "nothing is cached outside a supervisor");
    }

    #[test]
    fn kernel_results_follow_libc_convention() {
        assert_eq!(libc_result(5), 5);
        assert_eq!(libc_result(-4096), -4096, "not an error: a value");
        assert_eq!(libc_result(-(libc::EINVAL as c_long)), -1);
        // SAFETY: this thread's errno.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EINVAL);
    }
}
