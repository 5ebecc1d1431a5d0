//! The x86-64 Linux implementation: constructor, vDSO patching, time functions, fault handler.

use crate::abi::{
    ABI_VERSION, HELLO_OP_NO_CPUID_FAULTING, HELLO_OP_TIME_PAGE, HELLO_OP_YIELD, HELLO_SYSCALL, PREEMPT_SIGNAL,
    TIME_PAGE_BYTES, TimePage,
};
use core::arch::asm;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use libc::{c_int, c_long, c_void, timespec, timeval};

/// The mapped time page, or null before (or without) a supervisor.
static PAGE: AtomicPtr<TimePage> = AtomicPtr::new(ptr::null_mut());
/// rdtsc faulting is on in this image.
static TSC_TRAPPED: AtomicBool = AtomicBool::new(false);
/// Bit `i` set: the vDSO symbol `TARGETS[i]` was patched.
static PATCHED: AtomicU32 = AtomicU32::new(0);

const NS: u64 = 1_000_000_000;
/// `arch_prctl` code to turn CPUID faulting off (1) or on (0) for the calling thread.
pub(crate) const ARCH_SET_CPUID: c_long = 0x1012;

/// Which vDSO symbols were redirected into the shim in this process: a bit per name of
/// `["__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_clock_getres",
/// "__vdso_getcpu", "__vdso_getrandom"]`.
pub fn patched_symbols() -> u32 {
    PATCHED.load(Ordering::Relaxed)
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = thermocline_shim_init;

/// A raw syscall returning the kernel's value (`-errno` on failure), never touching `errno`.
#[inline(always)]
pub(crate) unsafe fn raw6(nr: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for `nr`; rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!("syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

extern "C" fn thermocline_shim_init() {
    // SAFETY: raw syscalls with valid arguments; the page is mapped read-only and never unmapped.
    unsafe {
        crate::segv::resolve();
        let fd = raw6(HELLO_SYSCALL as c_long, [HELLO_OP_TIME_PAGE as usize, ABI_VERSION as usize, 0, 0, 0, 0]);
        if fd < 0 {
            return; // not under a Thermocline supervisor
        }
        let p = libc::mmap(ptr::null_mut(), TIME_PAGE_BYTES, libc::PROT_READ, libc::MAP_SHARED, fd as c_int, 0);
        raw6(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]);
        if p == libc::MAP_FAILED {
            return;
        }
        PAGE.store(p as *mut TimePage, Ordering::Release);
        crate::segv::install();
        install_preempt_handler();
        patch_vdso();
        // CPUID faulting is reset by exec, so it is turned on here, in every new image.
        let r = raw6(libc::SYS_arch_prctl, [ARCH_SET_CPUID as usize, 0, 0, 0, 0, 0]);
        if r < 0 {
            raw6(
                HELLO_SYSCALL as c_long,
                [HELLO_OP_NO_CPUID_FAULTING as usize, ABI_VERSION as usize, (-r) as usize, 0, 0, 0],
            );
        }
        // rdtsc faulting survives exec, and the next image's dynamic loader reads the TSC before
        // any handler exists: it is on only while this image runs (see the exec wrappers below).
        let native = libc::getenv(c"THERMOCLINE_RDTSC".as_ptr());
        if native.is_null() || !cstr_eq(native as *const u8, b"native") {
            TSC_TRAPPED.store(true, Ordering::Relaxed);
            tsc_faulting(true);
        }
    }
}

#[inline(always)]
fn now_parts() -> Option<(u64, u64, u64)> {
    let p = PAGE.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null PAGE points at the mapped, never-unmapped time page.
    unsafe {
        Some((
            ptr::read_volatile(&(*p).now_ns),
            ptr::read_volatile(&(*p).realtime_offset_ns),
            ptr::read_volatile(&(*p).monotonic_offset_ns),
        ))
    }
}

/// Whether the time page is mapped: the process runs under a Thermocline supervisor.
#[inline(always)]
pub(crate) fn has_page() -> bool {
    !PAGE.load(Ordering::Relaxed).is_null()
}

/// Simulated time of `clock`, ns, or `None` for clocks the page does not answer.
#[inline(always)]
pub(crate) fn clock_ns(clock: c_int) -> Option<u64> {
    let (now, real, mono) = now_parts()?;
    match clock {
        // REALTIME, REALTIME_COARSE, REALTIME_ALARM, TAI
        0 | 5 | 8 | 11 => Some(now + real),
        // MONOTONIC, MONOTONIC_RAW, MONOTONIC_COARSE, BOOTTIME, BOOTTIME_ALARM
        1 | 4 | 6 | 7 | 9 => Some(now + mono),
        // PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID: CPU time is not modelled; simulated time stands in.
        2 | 3 => Some(now),
        _ => None,
    }
}

unsafe extern "C" fn th_clock_gettime(clock: c_int, ts: *mut timespec) -> c_int {
    match clock_ns(clock) {
        Some(ns) => {
            if ts.is_null() {
                return -libc::EFAULT;
            }
            // SAFETY: the caller passes a valid timespec pointer (checked non-null).
            unsafe {
                (*ts).tv_sec = (ns / NS) as _;
                (*ts).tv_nsec = (ns % NS) as _;
            }
            0
        }
        // SAFETY: forwarded unchanged to the (supervised) syscall.
        None => unsafe { raw6(libc::SYS_clock_gettime, [clock as usize, ts as usize, 0, 0, 0, 0]) as c_int },
    }
}

unsafe extern "C" fn th_gettimeofday(tv: *mut timeval, tz: *mut c_void) -> c_int {
    let Some(ns) = clock_ns(0) else {
        // SAFETY: forwarded unchanged.
        return unsafe { raw6(libc::SYS_gettimeofday, [tv as usize, tz as usize, 0, 0, 0, 0]) as c_int };
    };
    // SAFETY: pointers come from the caller; null ones are skipped.
    unsafe {
        if !tv.is_null() {
            (*tv).tv_sec = (ns / NS) as _;
            (*tv).tv_usec = ((ns % NS) / 1000) as _;
        }
        if !tz.is_null() {
            ptr::write_bytes(tz as *mut u8, 0, 8);
        }
    }
    0
}

unsafe extern "C" fn th_time(t: *mut libc::time_t) -> libc::time_t {
    let Some(ns) = clock_ns(0) else {
        // SAFETY: forwarded unchanged.
        return unsafe { raw6(libc::SYS_time, [t as usize, 0, 0, 0, 0, 0]) as libc::time_t };
    };
    let s = (ns / NS) as libc::time_t;
    if !t.is_null() {
        // SAFETY: non-null pointer from the caller.
        unsafe { *t = s };
    }
    s
}

unsafe extern "C" fn th_clock_getres(clock: c_int, res: *mut timespec) -> c_int {
    if clock_ns(clock).is_none() {
        // SAFETY: forwarded unchanged.
        return unsafe { raw6(libc::SYS_clock_getres, [clock as usize, res as usize, 0, 0, 0, 0]) as c_int };
    }
    if !res.is_null() {
        // SAFETY: non-null pointer from the caller.
        unsafe {
            (*res).tv_sec = 0;
            (*res).tv_nsec = 1;
        }
    }
    0
}

unsafe extern "C" fn th_getcpu(cpu: *mut u32, node: *mut u32, _cache: *mut c_void) -> c_int {
    // Every simulated host has one CPU.
    // SAFETY: null pointers are skipped.
    unsafe {
        if !cpu.is_null() {
            *cpu = 0;
        }
        if !node.is_null() {
            *node = 0;
        }
    }
    0
}

unsafe extern "C" fn th_getrandom(
    buf: *mut c_void,
    len: usize,
    flags: u32,
    _state: *mut c_void,
    _slen: usize,
) -> isize {
    // The supervisor answers getrandom from the host's seeded stream.
    // SAFETY: forwarded to the (supervised) syscall.
    unsafe { raw6(libc::SYS_getrandom, [buf as usize, len, flags as usize, 0, 0, 0]) }
}

const TARGETS: [&[u8]; 6] = [
    b"__vdso_clock_gettime",
    b"__vdso_gettimeofday",
    b"__vdso_time",
    b"__vdso_clock_getres",
    b"__vdso_getcpu",
    b"__vdso_getrandom",
];

fn replacement(i: usize) -> usize {
    match i {
        0 => th_clock_gettime as *const () as usize,
        1 => th_gettimeofday as *const () as usize,
        2 => th_time as *const () as usize,
        3 => th_clock_getres as *const () as usize,
        4 => th_getcpu as *const () as usize,
        _ => th_getrandom as *const () as usize,
    }
}

#[repr(C)]
struct Ehdr {
    ident: [u8; 16],
    kind: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    shoff: u64,
    flags: u32,
    ehsize: u16,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

#[repr(C)]
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

#[repr(C)]
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    addralign: u64,
    entsize: u64,
}

#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// Bytes of the entry patch: `movabs r11, imm64; jmp r11`.
const PATCH_LEN: usize = 13;

unsafe fn cstr_eq(mut p: *const u8, want: &[u8]) -> bool {
    for &b in want {
        // SAFETY: p walks a NUL-terminated string inside the vDSO image; we stop at NUL.
        if unsafe { *p } != b {
            return false;
        }
        p = p.wrapping_add(1);
    }
    // SAFETY: as above.
    unsafe { *p == 0 }
}

/// Find the target symbols through the vDSO's section headers (the image in memory is the whole
/// shared object) and redirect each to the shim.
unsafe fn patch_vdso() {
    // SAFETY: AT_SYSINFO_EHDR is the address of the mapped vDSO ELF image (or 0).
    unsafe {
        let base = libc::getauxval(libc::AT_SYSINFO_EHDR) as usize;
        if base == 0 {
            return;
        }
        let eh = &*(base as *const Ehdr);
        if eh.ident[..4] != *b"\x7fELF" || eh.shentsize as usize != core::mem::size_of::<Shdr>() {
            return;
        }
        // Load bias: the first PT_LOAD maps offset p_offset at p_vaddr.
        let mut bias = None;
        for i in 0..eh.phnum as usize {
            let ph = &*((base + eh.phoff as usize + i * eh.phentsize as usize) as *const Phdr);
            if ph.kind == 1 {
                bias = Some(base.wrapping_add(ph.offset as usize).wrapping_sub(ph.vaddr as usize));
                break;
            }
        }
        let Some(bias) = bias else { return };
        let shdrs = (base + eh.shoff as usize) as *const Shdr;
        let mut found = [0usize; TARGETS.len()];
        for i in 0..eh.shnum as usize {
            let sh = &*shdrs.add(i);
            if sh.kind != 11 || sh.entsize as usize != core::mem::size_of::<Sym>() || sh.link >= eh.shnum as u32 {
                continue; // SHT_DYNSYM only
            }
            let strtab = &*shdrs.add(sh.link as usize);
            let syms = (base + sh.offset as usize) as *const Sym;
            let strs = (base + strtab.offset as usize) as *const u8;
            for s in 0..(sh.size / sh.entsize) as usize {
                let sym = &*syms.add(s);
                if sym.shndx == 0 || sym.value == 0 || (sym.info & 0xf) != 2 {
                    continue; // defined functions only
                }
                for (t, name) in TARGETS.iter().enumerate() {
                    if sym.size as usize >= PATCH_LEN && cstr_eq(strs.add(sym.name as usize), name) {
                        found[t] = bias.wrapping_add(sym.value as usize);
                    }
                }
            }
        }
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for &a in &found {
            if a != 0 {
                lo = lo.min(a);
                hi = hi.max(a + PATCH_LEN);
            }
        }
        if lo == usize::MAX {
            return;
        }
        let page = 4096usize;
        let start = lo & !(page - 1);
        let len = (hi - start).div_ceil(page) * page;
        let writable =
            libc::mprotect(start as *mut c_void, len, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) == 0;
        let mem = if writable { -1 } else { libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        let mut done = 0u32;
        for (t, &a) in found.iter().enumerate() {
            if a == 0 {
                continue;
            }
            let mut code = [0u8; PATCH_LEN];
            code[0] = 0x49;
            code[1] = 0xbb;
            code[2..10].copy_from_slice(&(replacement(t) as u64).to_le_bytes());
            code[10] = 0x41;
            code[11] = 0xff;
            code[12] = 0xe3;
            let ok = if writable {
                ptr::copy_nonoverlapping(code.as_ptr(), a as *mut u8, PATCH_LEN);
                true
            } else {
                mem >= 0 && libc::pwrite(mem, code.as_ptr() as *const c_void, PATCH_LEN, a as i64) == PATCH_LEN as isize
            };
            if ok {
                done |= 1 << t;
            }
        }
        if writable {
            libc::mprotect(start as *mut c_void, len, libc::PROT_READ | libc::PROT_EXEC);
        } else if mem >= 0 {
            libc::close(mem);
        }
        PATCHED.store(done, Ordering::Relaxed);
    }
}

unsafe fn install_preempt_handler() {
    // SAFETY: a plain sigaction; SA_RESTART so that a native call the signal interrupts resumes.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_preempt as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(PREEMPT_SIGNAL, &sa, ptr::null_mut());
    }
}

/// The supervisor found this thread running too long without a syscall (it spins): stop in a
/// notified call, so other threads can run and simulated time can move. `errno` is untouched.
extern "C" fn on_preempt(_sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: the private syscall with constant arguments; no memory is passed.
    unsafe { raw6(HELLO_SYSCALL as c_long, [HELLO_OP_YIELD as usize, ABI_VERSION as usize, 0, 0, 0, 0]) };
}

/// The emulated time-stamp counter: simulated monotonic time in ns (a 1 GHz counter).
pub(crate) fn tsc_now() -> u64 {
    now_parts().map_or(0, |(now, _, mono)| now + mono)
}

fn tsc_faulting(on: bool) {
    let mode = if on { libc::PR_TSC_SIGSEGV } else { libc::PR_TSC_ENABLE };
    // SAFETY: prctl with constant arguments.
    unsafe { raw6(libc::SYS_prctl, [libc::PR_SET_TSC as usize, mode as usize, 0, 0, 0, 0]) };
}

/// Look up the next definition of `name` (libc's), skipping this library's.
pub(crate) unsafe fn next_fn(name: &core::ffi::CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// Run `f` as the next image should start: with rdtsc faulting off (if this image turned it on)
/// and, if the program ignores `SIGSEGV`, with it ignored in the kernel too, since `exec` keeps an
/// ignored signal ignored but resets the shim's handler; then restore both. For the library calls
/// that exec a new image or spawn a process that will.
fn as_next_image<R>(f: impl FnOnce() -> R) -> R {
    let active = TSC_TRAPPED.load(Ordering::Relaxed);
    if active {
        tsc_faulting(false);
    }
    // SAFETY: plain sigaction calls on SIGSEGV.
    let ignored = unsafe { crate::segv::ignore_for_exec() };
    let r = f();
    if ignored {
        // SAFETY: as above.
        unsafe { crate::segv::install() };
    }
    if active {
        tsc_faulting(true);
    }
    r
}

type Str = *const libc::c_char;
type Vec_ = *const *const libc::c_char;

macro_rules! wrap {
    ($name:ident, $cname:literal, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        /// Exec wrapper: starts the new image as it should (see [`as_next_image`]).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: forwards the caller's arguments to libc's definition of the same function.
            unsafe {
                let real = next_fn($cname);
                if real.is_null() {
                    *libc::__errno_location() = libc::ENOSYS;
                    return -1 as _;
                }
                let real: unsafe extern "C" fn($($ty),*) -> $ret = core::mem::transmute(real);
                as_next_image(|| real($($arg),*))
            }
        }
    };
}

wrap!(execve, c"execve", (path: Str, argv: Vec_, envp: Vec_) -> c_int);
wrap!(execv, c"execv", (path: Str, argv: Vec_) -> c_int);
wrap!(execvp, c"execvp", (file: Str, argv: Vec_) -> c_int);
wrap!(execvpe, c"execvpe", (file: Str, argv: Vec_, envp: Vec_) -> c_int);
wrap!(fexecve, c"fexecve", (fd: c_int, argv: Vec_, envp: Vec_) -> c_int);
wrap!(system, c"system", (command: Str) -> c_int);
wrap!(posix_spawn, c"posix_spawn",
    (pid: *mut libc::pid_t, path: Str, actions: *const c_void, attr: *const c_void, argv: Vec_, envp: Vec_) -> c_int);
wrap!(posix_spawnp, c"posix_spawnp",
    (pid: *mut libc::pid_t, file: Str, actions: *const c_void, attr: *const c_void, argv: Vec_, envp: Vec_) -> c_int);
wrap!(popen, c"popen", (command: Str, mode: Str) -> *mut libc::FILE);
