//! The shim's `SIGSEGV` handler, which emulates the faulting `rdtsc`, `rdtscp` and `cpuid`, and
//! the libc calls interposed so that the program cannot take it away.
//!
//! Programs install, reset and block `SIGSEGV` like any signal: Node.js resets every signal to
//! `SIG_DFL` at start-up, V8 installs its WebAssembly trap handler, and thread pools block every
//! signal in their workers. Natively none of that matters to a `cpuid`; here a `cpuid` with the
//! shim's handler gone or `SIGSEGV` blocked would kill the process. So, while the handler is
//! installed, `sigaction`, `signal` and `bsd_signal` for `SIGSEGV` record the program's
//! disposition instead of installing it (and report it back as the program set it), and
//! `sigprocmask` and `pthread_sigmask` never block `SIGSEGV`. The handler emulates the three
//! instructions and gives every other `SIGSEGV` the program's disposition, as the kernel would
//! have: its handler (with its mask and `SA_RESETHAND`), the default action, or nothing.
//!
//! Programs that make the syscalls themselves (Go) are not covered; Go's runtime passes signals
//! it does not own to the handler it found installed, which is the shim's.

use crate::imp::{ARCH_SET_CPUID, next_fn, raw6, tsc_now};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use libc::{c_int, c_void};

/// The handler is installed: `SIGSEGV` dispositions and masks are the shim's to keep.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The program's `SIGSEGV` disposition: `SIG_DFL`, `SIG_IGN` or a handler's address.
static PROG_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
/// Its `sa_flags`.
static PROG_FLAGS: AtomicUsize = AtomicUsize::new(0);
/// Its `sa_mask` (the kernel's 64 signals, bit `n - 1` for signal `n`).
static PROG_MASK: AtomicU64 = AtomicU64::new(0);

/// libc's definitions of the interposed functions, found when the image starts.
static REAL_SIGACTION: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static REAL_SIGPROCMASK: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static REAL_PTHREAD_SIGMASK: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

type SigactionFn = unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
type SigmaskFn = unsafe extern "C" fn(c_int, *const libc::sigset_t, *mut libc::sigset_t) -> c_int;

/// `si_code` of a general-protection fault (`rdtsc`/`cpuid` faulting), as opposed to a page
/// fault's `SEGV_MAPERR`/`SEGV_ACCERR` or a sent signal's non-positive codes.
const SI_KERNEL: c_int = 0x80;

/// Finds libc's definitions of the interposed functions. Called first by the constructor, in
/// every image (with or without a supervisor), so the interposed functions never look one up
/// inside a signal handler.
pub(crate) fn resolve() {
    // SAFETY: dlsym with RTLD_NEXT and NUL-terminated names.
    unsafe {
        REAL_SIGACTION.store(next_fn(c"sigaction"), Ordering::Relaxed);
        REAL_SIGPROCMASK.store(next_fn(c"sigprocmask"), Ordering::Relaxed);
        REAL_PTHREAD_SIGMASK.store(next_fn(c"pthread_sigmask"), Ordering::Relaxed);
    }
}

/// libc's `sigaction`, or `ENOSYS` if it could not be found.
unsafe fn real_sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let f = REAL_SIGACTION.load(Ordering::Relaxed);
    if f.is_null() {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    }
    // SAFETY: libc's sigaction, called with the caller's arguments.
    unsafe { core::mem::transmute::<*mut c_void, SigactionFn>(f)(sig, act, old) }
}

/// Installs the handler, remembering the disposition it replaces as the program's.
pub(crate) unsafe fn install() {
    // SAFETY: a plain sigaction with a handler of the SA_SIGINFO shape.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_segv as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        let mut old: libc::sigaction = core::mem::zeroed();
        if real_sigaction(libc::SIGSEGV, &sa, &mut old) == 0 {
            remember(&old);
            ACTIVE.store(true, Ordering::Release);
        }
    }
}

/// If the program ignores `SIGSEGV`, ignore it in the kernel as well (the handler is then off until
/// [`install`] runs again) and say so. For exec: the next image keeps an ignored signal ignored,
/// and its shim takes that as the program's disposition.
pub(crate) unsafe fn ignore_for_exec() -> bool {
    if !ACTIVE.load(Ordering::Acquire) || PROG_HANDLER.load(Ordering::Relaxed) != libc::SIG_IGN {
        return false;
    }
    // SAFETY: a plain sigaction on SIGSEGV.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        real_sigaction(libc::SIGSEGV, &sa, ptr::null_mut()) == 0
    }
}

/// Records `sa` as the program's disposition.
fn remember(sa: &libc::sigaction) {
    PROG_HANDLER.store(sa.sa_sigaction, Ordering::Relaxed);
    PROG_FLAGS.store(sa.sa_flags as usize, Ordering::Relaxed);
    // SAFETY: a sigset_t's first word holds signals 1–64 on x86-64 Linux.
    PROG_MASK.store(unsafe { ptr::read_unaligned(&sa.sa_mask as *const _ as *const u64) }, Ordering::Relaxed);
}

/// Writes the program's disposition into `sa`.
fn recall(sa: &mut libc::sigaction) {
    // SAFETY: a zeroed sigaction is valid; the mask's first word holds signals 1–64.
    unsafe {
        *sa = core::mem::zeroed();
        ptr::write_unaligned(&mut sa.sa_mask as *mut _ as *mut u64, PROG_MASK.load(Ordering::Relaxed));
    }
    sa.sa_sigaction = PROG_HANDLER.load(Ordering::Relaxed);
    sa.sa_flags = PROG_FLAGS.load(Ordering::Relaxed) as c_int;
}

/// libc's `sigaction`, interposed: `SIGSEGV` is the program's to set and read, the shim's
/// handler stays installed (see the module notes); every other signal is libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if sig != libc::SIGSEGV || !ACTIVE.load(Ordering::Acquire) {
        // SAFETY: the caller's arguments, for libc.
        return unsafe { real_sigaction(sig, act, old) };
    }
    // SAFETY: the caller passes valid pointers or null, as sigaction(2) requires.
    unsafe {
        let prev = if act.is_null() { None } else { Some(*act) };
        if !old.is_null() {
            recall(&mut *old);
        }
        if let Some(sa) = prev {
            remember(&sa);
        }
    }
    0
}

/// Sets the program's `SIGSEGV` handler as `signal` does (BSD semantics: `SA_RESTART`, the
/// signal blocked while its handler runs) and returns the previous one.
fn swap_handler(handler: libc::sighandler_t) -> libc::sighandler_t {
    let old = PROG_HANDLER.swap(handler, Ordering::Relaxed);
    PROG_FLAGS.store(libc::SA_RESTART as usize, Ordering::Relaxed);
    PROG_MASK.store(1 << (libc::SIGSEGV - 1), Ordering::Relaxed);
    old
}

/// libc's `signal`, interposed for `SIGSEGV` as [`sigaction`] is.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig == libc::SIGSEGV && ACTIVE.load(Ordering::Acquire) {
        return swap_handler(handler);
    }
    // SAFETY: the caller's arguments, with glibc's `signal` semantics spelt out.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if (1..=64).contains(&sig) {
            libc::sigaddset(&mut sa.sa_mask, sig);
        }
        let mut old: libc::sigaction = core::mem::zeroed();
        if real_sigaction(sig, &sa, &mut old) < 0 { libc::SIG_ERR } else { old.sa_sigaction }
    }
}

/// libc's `bsd_signal`: the same as `signal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: forwards the caller's arguments.
    unsafe { signal(sig, handler) }
}

/// `set` without `SIGSEGV` when the call would block it and the handler is installed; `set`
/// itself otherwise.
unsafe fn without_segv(how: c_int, set: *const libc::sigset_t, copy: &mut libc::sigset_t) -> *const libc::sigset_t {
    // SAFETY: `set` is the caller's valid set (or null).
    unsafe {
        if set.is_null()
            || how == libc::SIG_UNBLOCK
            || !ACTIVE.load(Ordering::Acquire)
            || libc::sigismember(set, libc::SIGSEGV) != 1
        {
            return set;
        }
        *copy = *set;
        libc::sigdelset(copy, libc::SIGSEGV);
    }
    copy
}

/// Calls libc's mask function `f` (or fails with `ENOSYS` in `errno` style `fail`).
unsafe fn forward_mask(
    f: &AtomicPtr<c_void>,
    how: c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
    fail: c_int,
) -> c_int {
    let f = f.load(Ordering::Relaxed);
    if f.is_null() {
        return fail;
    }
    // SAFETY: zeroed is a valid sigset_t; libc's function with the caller's arguments.
    unsafe {
        let mut copy: libc::sigset_t = core::mem::zeroed();
        let set = without_segv(how, set, &mut copy);
        core::mem::transmute::<*mut c_void, SigmaskFn>(f)(how, set, old)
    }
}

/// libc's `sigprocmask`, interposed: `SIGSEGV` is never blocked while the handler is installed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigprocmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
    // SAFETY: forwards the caller's arguments.
    let r = unsafe { forward_mask(&REAL_SIGPROCMASK, how, set, old, -1) };
    if r == -1 && REAL_SIGPROCMASK.load(Ordering::Relaxed).is_null() {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
    }
    r
}

/// libc's `pthread_sigmask`, interposed as [`sigprocmask`] is.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_sigmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
    // SAFETY: forwards the caller's arguments.
    unsafe { forward_mask(&REAL_PTHREAD_SIGMASK, how, set, old, libc::ENOSYS) }
}

/// Emulate `rdtsc`, `rdtscp` and `cpuid`, which fault in managed processes (the kernel sends the
/// fault's `SIGSEGV` with `si_code` `SI_KERNEL`). Anything else gets the disposition the program
/// set: a real fault its handler or the default action, and a `SIGSEGV` sent by a process
/// (`kill`, `tgkill`, `sigqueue`: `si_code` ≤ 0) what Linux would do with it.
extern "C" fn on_segv(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo (or none) and ucontext.
    let code = if info.is_null() { 0 } else { unsafe { (*info).si_code } };
    // SAFETY: as above; after a general-protection fault the instruction at rip is readable code.
    if code == SI_KERNEL && unsafe { emulate_instruction(ctx) } {
        return;
    }
    // SAFETY: forwards the kernel's arguments.
    unsafe { chain(sig, info, ctx, code > 0) }
}

/// If the instruction at the fault is `rdtsc`, `rdtscp` or `cpuid`, perform it on the saved
/// registers and step over it.
unsafe fn emulate_instruction(ctx: *mut c_void) -> bool {
    // SAFETY: the kernel passes a valid ucontext; the faulting instruction is readable code.
    unsafe {
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        let g = &mut uc.uc_mcontext.gregs;
        let rip = g[libc::REG_RIP as usize] as usize as *const u8;
        let b0 = *rip;
        let b1 = *rip.add(1);
        if b0 == 0x0f && b1 == 0x31 {
            let t = tsc_now();
            g[libc::REG_RAX as usize] = (t & 0xffff_ffff) as i64;
            g[libc::REG_RDX as usize] = (t >> 32) as i64;
            g[libc::REG_RIP as usize] += 2;
            return true;
        }
        if b0 == 0x0f && b1 == 0x01 && *rip.add(2) == 0xf9 {
            let t = tsc_now();
            g[libc::REG_RAX as usize] = (t & 0xffff_ffff) as i64;
            g[libc::REG_RDX as usize] = (t >> 32) as i64;
            g[libc::REG_RCX as usize] = 0;
            g[libc::REG_RIP as usize] += 3;
            return true;
        }
        if b0 == 0x0f && b1 == 0xa2 {
            let leaf = g[libc::REG_RAX as usize] as u32;
            let sub = g[libc::REG_RCX as usize] as u32;
            raw6(libc::SYS_arch_prctl, [ARCH_SET_CPUID as usize, 1, 0, 0, 0, 0]);
            let r = core::arch::x86_64::__cpuid_count(leaf, sub);
            raw6(libc::SYS_arch_prctl, [ARCH_SET_CPUID as usize, 0, 0, 0, 0, 0]);
            let (mut ebx, mut ecx) = (r.ebx, r.ecx);
            if leaf == 1 {
                ecx &= !(1 << 30); // RDRAND
            }
            if leaf == 7 && sub == 0 {
                ebx &= !(1 << 18); // RDSEED
            }
            g[libc::REG_RAX as usize] = r.eax as i64;
            g[libc::REG_RBX as usize] = ebx as i64;
            g[libc::REG_RCX as usize] = ecx as i64;
            g[libc::REG_RDX as usize] = r.edx as i64;
            g[libc::REG_RIP as usize] += 2;
            return true;
        }
        false
    }
}

/// A `SIGSEGV` that is not the shim's: give it the program's disposition. A handler is called
/// with the program's mask added (the kernel restores the mask when this handler returns) and,
/// for `SA_RESETHAND`, the disposition reset first. Otherwise the default action is installed: a
/// real `fault` takes it when the instruction runs again; a signal sent by a process is raised
/// again, and the default action (terminate, dumping core) takes it once this handler returns
/// and `SIGSEGV` is unblocked — unless it was ignored, as Linux ignores a sent `SIGSEGV` (not a
/// fault) whose disposition is `SIG_IGN`.
unsafe fn chain(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void, fault: bool) {
    let prev = PROG_HANDLER.load(Ordering::Relaxed);
    if prev == libc::SIG_IGN && !fault {
        return;
    }
    // SAFETY: sigaction, rt_sigprocmask and raise are async-signal-safe; a handler is called with
    // the arguments of the shape it was installed with.
    unsafe {
        if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
            ACTIVE.store(false, Ordering::Release);
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            real_sigaction(libc::SIGSEGV, &sa, ptr::null_mut());
            if !fault {
                libc::raise(sig);
            }
            return;
        }
        let flags = PROG_FLAGS.load(Ordering::Relaxed) as c_int;
        if flags & libc::SA_RESETHAND != 0 {
            PROG_HANDLER.store(libc::SIG_DFL, Ordering::Relaxed);
        }
        let mask = PROG_MASK.load(Ordering::Relaxed);
        if mask != 0 {
            raw6(libc::SYS_rt_sigprocmask, [libc::SIG_BLOCK as usize, &mask as *const u64 as usize, 0, 8, 0, 0]);
        }
        if flags & libc::SA_SIGINFO != 0 {
            let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = core::mem::transmute(prev);
            handler(sig, info, ctx);
        } else {
            let handler: extern "C" fn(c_int) = core::mem::transmute(prev);
            handler(sig);
        }
    }
}
