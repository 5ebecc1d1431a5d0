//! File timestamps in simulated time.
//!
//! The kernel stamps a file with the machine's clock when it is written, so a program that
//! prints the modification time of a file it wrote would print a different time on every run.
//! The supervisor therefore answers the `stat` family itself (`stat`, `fstat`, `lstat`,
//! `newfstatat`, `statx`): it looks the file up as the task would — through the task's root
//! (`/proc/<pid>/root`, with `RESOLVE_IN_ROOT`, so its mount namespace and absolute symbolic links
//! count) and its working directory or directory descriptor — takes the kernel's answer for it,
//! and rewrites the timestamps:
//!
//! - a time before the run began (the machine's files: `/usr`, the program itself) is shown as
//!   it is, the same on every run;
//! - a time from the run on is shown in simulated time (the host's `CLOCK_REALTIME`): a write to
//!   a regular file, which the supervisor sees anyway (see `disk`), marks the file modified at
//!   that simulated instant (its `mtime` and `ctime`); any other change — the kernel's time
//!   differs from the one last shown for the file — is dated to the simulated instant at which
//!   the host first sees it (`atime` after a read, a file created by `open` and not written,
//!   `mkdir`, `chmod`); a file's creation time (`btime`) is the first of these.
//!
//! So a file written at 5 s reads as modified at 5 s on every run, whatever the machine's clock.
//!
//! File identities are the same kind of leak: a file the run makes gets whatever inode number the
//! file system has free, and its device is that of whichever disk holds the output folder. A file
//! first seen with a change time from the run on (made, or changed, by the run) is therefore
//! shown with a simulated identity: the device [`SIM_DEV`] and an inode number from
//! [`SIM_INO_BASE`] on, a hash of the file's path when first seen (relative to the host's folder
//! when in it, so the same whatever `--out` is; not the order of first looks, which differs
//! between a host's processes running at once), moved on to the next free number if another file
//! already has it, and kept for as long as the run lasts. The machine's own files keep the kernel's numbers (the same on every run
//! on one machine). Directory entries (`getdents64`'s `d_ino`) still carry the kernel's numbers.
//! The calls are answered at once, as the task makes them (not a scheduling point, and charged no
//! syscall latency), so answering them changes no other result. Paths under `/proc` are left to
//! the kernel (`/proc/self` names whoever looks).

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `openat2`'s `RESOLVE_IN_ROOT`: the directory descriptor is the root of the lookup.
const RESOLVE_IN_ROOT: u64 = 0x10;

/// The stat family, answered with simulated timestamps.
pub const STAT_SYSCALLS: [i64; 5] =
    [libc::SYS_stat, libc::SYS_fstat, libc::SYS_lstat, libc::SYS_newfstatat, libc::SYS_statx];

/// Whether `nr` is one of [`STAT_SYSCALLS`].
pub fn is_stat(nr: i64) -> bool {
    STAT_SYSCALLS.contains(&nr)
}

/// The device shown for files the run made (`makedev(0, 0x74)`: an anonymous device, as on
/// Linux for file systems with no disk of their own).
pub const SIM_DEV: u64 = 0x74;

/// The first inode number shown for files the run made: above any 32-bit inode number, so none
/// is shown for two files.
pub const SIM_INO_BASE: u64 = 0x7468_0000_0000;

/// The bits of a path's hash that make a simulated inode number.
const INO_HASH_MASK: u64 = (1 << 40) - 1;

/// FNV-1a, 64 bits: a hash that is the same on every run and machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Index of each timestamp in [`Stamps`]' records.
const ATIME: usize = 0;
const MTIME: usize = 1;
const CTIME: usize = 2;
const BTIME: usize = 3;

/// A timestamp as last shown: the kernel's value and the simulated time shown for it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Shown {
    real: i64,
    sim: u64,
}

/// What the host knows of one file's times.
#[derive(Clone, Debug, Default)]
struct FileTimes {
    shown: [Option<Shown>; 4],
    /// Written at this simulated time since its times were last shown.
    written: Option<u64>,
    /// The simulated time the host first wrote or saw it changed.
    first: Option<u64>,
}

/// One host's record of the simulated times of the files its programs changed.
#[derive(Debug)]
pub struct Stamps {
    /// The machine's time (ns since the epoch, coarse clock) when the run began: file times from
    /// then on are the run's.
    run_start: i64,
    files: HashMap<(u64, u64), FileTimes>,
    /// The identity shown for each file (kernel device and inode): its own, or a simulated one.
    ids: HashMap<(u64, u64), (u64, u64)>,
    /// The simulated inode numbers given so far.
    made: HashSet<u64>,
}

impl Stamps {
    /// The record of a host whose run began at `run_start` (machine time, ns since the epoch).
    pub fn new(run_start: i64) -> Self {
        Stamps { run_start, files: HashMap::new(), ids: HashMap::new(), made: HashSet::new() }
    }

    /// The device and inode to show for file `id` (the kernel's), whose change time is `ctime`
    /// (ns since the epoch) when looked at, and whose path (as the host names it) `path` gives:
    /// decided the first time the host looks, and kept.
    fn identity(&mut self, id: (u64, u64), ctime: i64, path: impl FnOnce() -> Vec<u8>) -> (u64, u64) {
        if let Some(&shown) = self.ids.get(&id) {
            return shown;
        }
        let shown = if ctime >= self.run_start {
            let mut ino = SIM_INO_BASE + (fnv1a(&path()) & INO_HASH_MASK);
            while !self.made.insert(ino) {
                ino = SIM_INO_BASE + ((ino - SIM_INO_BASE + 1) & INO_HASH_MASK);
            }
            (SIM_DEV, ino)
        } else {
            id
        };
        self.ids.insert(id, shown);
        shown
    }

    /// File `id` (device, inode) was written at simulated time `now`.
    pub fn written(&mut self, id: (u64, u64), now: u64) {
        let f = self.files.entry(id).or_default();
        f.written = Some(now);
        f.first.get_or_insert(now);
    }

    /// The times to show for file `id` whose kernel times are `real` (atime, mtime, ctime,
    /// btime; ns since the epoch, `None` where unknown), looked at at simulated time `now`:
    /// simulated times as ns since the run's start (`Ok`), or the kernel's own (`Err`).
    fn show(&mut self, id: (u64, u64), real: [Option<i64>; 4], now: u64) -> [Option<Result<u64, i64>>; 4] {
        let f = self.files.entry(id).or_default();
        let mut out = [None; 4];
        for (i, r) in real.iter().enumerate() {
            let Some(r) = *r else { continue };
            if r < self.run_start {
                out[i] = Some(Err(r));
                continue;
            }
            let sim = match (f.shown[i], f.written) {
                (_, Some(w)) if i == MTIME || i == CTIME => w,
                (Some(s), _) if s.real == r => s.sim,
                _ if i == BTIME => *f.first.get_or_insert(now),
                _ => now,
            };
            f.first.get_or_insert(sim);
            f.shown[i] = Some(Shown { real: r, sim });
            out[i] = Some(Ok(sim));
        }
        f.written = None;
        out
    }
}

/// When the run began, for file times (machine time, ns since the epoch): when its output folder
/// `out_dir` was made (its birth time), which every shard of the run shares — a shard that starts
/// late must not take files another shard's hosts wrote before it started for the machine's — or,
/// where the file system keeps no birth times, now. Less [`COARSE_MARGIN_NS`]: file times come
/// from the coarse clock, which lags the birth time's fine one by up to a tick, and a file the run
/// writes must never look older than the run.
pub fn run_start(out_dir: &std::path::Path) -> i64 {
    run_birth(out_dir) - COARSE_MARGIN_NS
}

/// Longer than any kernel's coarse-clock tick (4 ms at 250 Hz, 10 ms at 100 Hz).
pub const COARSE_MARGIN_NS: i64 = 20_000_000;

/// The birth time of `out_dir`, or now where there is none.
fn run_birth(out_dir: &std::path::Path) -> i64 {
    let now = machine_now();
    let Ok(path) = CString::new(out_dir.as_os_str().as_encoded_bytes()) else { return now };
    // SAFETY: a zeroed statx is valid; statx fills it.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx with a valid path and buffer.
    let ok = unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), 0, libc::STATX_BTIME, &mut sx) } == 0;
    if ok && sx.stx_mask & libc::STATX_BTIME != 0 {
        ns(sx.stx_btime.tv_sec, i64::from(sx.stx_btime.tv_nsec))
    } else {
        now
    }
}

/// The machine's coarse realtime clock (what file times are stamped with), ns since the epoch.
pub fn machine_now() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own (the syscall: no `rdtsc`, see `wall`).
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_REALTIME_COARSE, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The path of our descriptor `fd`, as the same on every run: relative to the host's folder
/// (`dir`, or `/run/thermocline/<name>` as its programs see it) when in it, else as it is.
pub(crate) fn host_path(fd: RawFd, dir: &std::path::Path, name: &str) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else { return Vec::new() };
    let mounted = std::path::Path::new(crate::pidns::HOSTS_MOUNT).join(name);
    let relative = path.strip_prefix(dir).or_else(|_| path.strip_prefix(&mounted));
    relative
        .map(|r| [b"./", r.as_os_str().as_bytes()].concat())
        .unwrap_or_else(|_| path.as_os_str().as_bytes().to_vec())
}

/// A descriptor of ours for what the task names (`dirfd`, `path`), looked up as the task would;
/// `None` where the kernel should answer (paths under `/proc`, a deleted directory).
pub(crate) fn target(pid: i32, pidfd: RawFd, dirfd: i32, path: &[u8], nofollow: bool) -> Option<Result<OwnedFd, i32>> {
    if path.is_empty() {
        return Some(if dirfd == libc::AT_FDCWD {
            open_path(&format!("/proc/{pid}/cwd"), libc::O_DIRECTORY)
        } else {
            // SAFETY: pidfd_getfd of a stopped task's descriptor; the copy is ours.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, dirfd, 0) };
            // SAFETY: a fresh descriptor we own.
            if fd < 0 { Err(libc::EBADF) } else { Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }) }
        });
    }
    let mut full = Vec::new();
    if path[0] != b'/' {
        let base = if dirfd == libc::AT_FDCWD { format!("/proc/{pid}/cwd") } else { format!("/proc/{pid}/fd/{dirfd}") };
        let Ok(base) = std::fs::read_link(&base) else { return Some(Err(libc::EBADF)) };
        let base = base.into_os_string().into_encoded_bytes();
        if base.ends_with(b" (deleted)") {
            return None;
        }
        if base.first() != Some(&b'/') {
            return Some(Err(libc::ENOTDIR));
        }
        full.extend_from_slice(&base);
        full.push(b'/');
    }
    full.extend_from_slice(path);
    if under_proc(&full) {
        return None;
    }
    let root = match open_path(&format!("/proc/{pid}/root"), libc::O_DIRECTORY) {
        Ok(r) => r,
        Err(cx) => return Some(Err(cx)),
    };
    Some(resolve_in(&root, &full, nofollow))
}

/// Whether the absolute `path` is in `/proc` (by its first component).
fn under_proc(path: &[u8]) -> bool {
    let mut parts = path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".");
    parts.next() == Some(b"proc")
}

/// `open(path, O_PATH | extra)`.
fn open_path(path: &str, extra: i32) -> Result<OwnedFd, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: open with a valid string.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | extra) };
    // SAFETY: a fresh descriptor we own.
    if fd < 0 { Err(errno()) } else { Ok(unsafe { OwnedFd::from_raw_fd(fd) }) }
}

/// `openat2`'s `struct open_how`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Look `path` up with `root` as the root (`RESOLVE_IN_ROOT`), as `O_PATH`.
fn resolve_in(root: &OwnedFd, path: &[u8], nofollow: bool) -> Result<OwnedFd, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    let flags = libc::O_PATH | libc::O_CLOEXEC | if nofollow { libc::O_NOFOLLOW } else { 0 };
    let how = OpenHow { flags: flags as u64, mode: 0, resolve: RESOLVE_IN_ROOT };
    loop {
        // SAFETY: openat2 with a valid string and open_how.
        let fd = unsafe {
            libc::syscall(libc::SYS_openat2, root.as_raw_fd(), c.as_ptr(), &how, std::mem::size_of::<OpenHow>())
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        // EAGAIN: a rename raced the lookup (RESOLVE_IN_ROOT); look again.
        if errno() != libc::EAGAIN {
            return Err(errno());
        }
    }
}

/// The calling thread's `errno` after a failed libc call (`EIO` if it has none).
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// ns since the epoch of a `(seconds, nanoseconds)` pair.
pub(crate) fn ns(sec: i64, nsec: i64) -> i64 {
    sec.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// The time to show, as `(seconds, nanoseconds)` since the epoch.
pub(crate) fn shown(t: Option<Result<u64, i64>>, start_date: u64) -> (i64, i64) {
    let ns = match t {
        Some(Ok(sim)) => start_date.saturating_add(sim) as i64,
        Some(Err(real)) => real,
        None => 0,
    };
    (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// `struct stat` of `fd`, with the times to show.
pub(crate) fn stat_bytes(
    stamps: &mut Stamps,
    fd: RawFd,
    now: u64,
    start_date: u64,
    path: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, i32> {
    // SAFETY: a zeroed stat is valid; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat on our descriptor with an empty path.
    if unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) } != 0 {
        return Err(errno());
    }
    let real = [
        Some(ns(st.st_atime, st.st_atime_nsec)),
        Some(ns(st.st_mtime, st.st_mtime_nsec)),
        Some(ns(st.st_ctime, st.st_ctime_nsec)),
        None,
    ];
    let times = stamps.show((st.st_dev, st.st_ino), real, now);
    (st.st_dev, st.st_ino) = stamps.identity((st.st_dev, st.st_ino), ns(st.st_ctime, st.st_ctime_nsec), path);
    (st.st_atime, st.st_atime_nsec) = shown(times[ATIME], start_date);
    (st.st_mtime, st.st_mtime_nsec) = shown(times[MTIME], start_date);
    (st.st_ctime, st.st_ctime_nsec) = shown(times[CTIME], start_date);
    // SAFETY: a plain C struct viewed as its bytes.
    Ok(unsafe {
        std::slice::from_raw_parts((&st as *const libc::stat).cast::<u8>(), std::mem::size_of::<libc::stat>())
    }
    .to_vec())
}

/// `struct statx` of `fd` (`flags`' sync mode, `mask`), with the times to show.
pub(crate) fn statx_bytes(
    stamps: &mut Stamps,
    fd: RawFd,
    flags: i32,
    mask: u32,
    now: u64,
    start_date: u64,
    path: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, i32> {
    // SAFETY: a zeroed statx is valid; statx fills it.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    let sync = flags & libc::AT_STATX_SYNC_TYPE;
    // SAFETY: statx on our descriptor with an empty path.
    if unsafe { libc::statx(fd, c"".as_ptr(), libc::AT_EMPTY_PATH | sync, mask, &mut sx) } != 0 {
        return Err(errno());
    }
    let has = |bit: u32| sx.stx_mask & bit != 0;
    let t = |s: &libc::statx_timestamp| ns(s.tv_sec, i64::from(s.tv_nsec));
    let real = [
        has(libc::STATX_ATIME).then(|| t(&sx.stx_atime)),
        has(libc::STATX_MTIME).then(|| t(&sx.stx_mtime)),
        has(libc::STATX_CTIME).then(|| t(&sx.stx_ctime)),
        has(libc::STATX_BTIME).then(|| t(&sx.stx_btime)),
    ];
    let dev = libc::makedev(sx.stx_dev_major, sx.stx_dev_minor);
    let times = stamps.show((dev, sx.stx_ino), real, now);
    if let Some(ctime) = real[CTIME] {
        let (shown_dev, ino) = stamps.identity((dev, sx.stx_ino), ctime, path);
        sx.stx_ino = ino;
        (sx.stx_dev_major, sx.stx_dev_minor) = (libc::major(shown_dev), libc::minor(shown_dev));
    }
    for (i, ts) in [&mut sx.stx_atime, &mut sx.stx_mtime, &mut sx.stx_ctime, &mut sx.stx_btime].into_iter().enumerate()
    {
        if times[i].is_some() {
            let (sec, nsec) = shown(times[i], start_date);
            ts.tv_sec = sec;
            ts.tv_nsec = nsec as u32;
        }
    }
    // SAFETY: a plain C struct viewed as its bytes.
    Ok(unsafe {
        std::slice::from_raw_parts((&sx as *const libc::statx).cast::<u8>(), std::mem::size_of::<libc::statx>())
    }
    .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_000_000_000_000;

    #[test]
    fn times_before_the_run_are_the_kernels_and_later_ones_simulated() {
        let mut s = Stamps::new(START);
        let old = Some(START - 5);
        let shown = s.show((1, 1), [old, old, old, None], 7);
        assert_eq!(shown, [Some(Err(START - 5)), Some(Err(START - 5)), Some(Err(START - 5)), None]);
        let new = Some(START + 123_456);
        assert_eq!(
            s.show((1, 2), [old, new, new, new], 9),
            [Some(Err(START - 5)), Some(Ok(9)), Some(Ok(9)), Some(Ok(9))]
        );
        assert_eq!(
            s.show((1, 2), [old, new, new, new], 50),
            [Some(Err(START - 5)), Some(Ok(9)), Some(Ok(9)), Some(Ok(9))],
            "unchanged: as shown before"
        );
    }

    #[test]
    fn a_write_dates_mtime_and_ctime_even_within_one_tick_of_the_machines_clock() {
        let mut s = Stamps::new(START);
        let t = Some(START + 10);
        s.written((1, 3), 100);
        assert_eq!(s.show((1, 3), [t, t, t, t], 400), [Some(Ok(400)), Some(Ok(100)), Some(Ok(100)), Some(Ok(100))]);
        s.written((1, 3), 300);
        let shown = s.show((1, 3), [t, t, t, t], 500);
        assert_eq!(
            shown,
            [Some(Ok(400)), Some(Ok(300)), Some(Ok(300)), Some(Ok(100))],
            "same machine time, later write"
        );
        let changed = Some(START + 99);
        let shown = s.show((1, 3), [changed, t, t, t], 600);
        assert_eq!(shown, [Some(Ok(600)), Some(Ok(300)), Some(Ok(300)), Some(Ok(100))], "a change unseen: when seen");
    }

    #[test]
    fn files_the_run_made_get_simulated_identities_from_their_paths() {
        let mut s = Stamps::new(START);
        let p = |path: &'static str| move || path.as_bytes().to_vec();
        let hashed = |path: &str| SIM_INO_BASE + (fnv1a(path.as_bytes()) & INO_HASH_MASK);
        assert_eq!(s.identity((8, 40), START - 1, p("/usr/bin/x")), (8, 40), "the machine's file keeps its own");
        assert_eq!(s.identity((8, 99), START + 5, p("./a.txt")), (SIM_DEV, hashed("./a.txt")));
        assert_eq!(s.identity((8, 99), START + 50, p("./renamed")), (SIM_DEV, hashed("./a.txt")), "kept");
        assert_eq!(s.identity((8, 40), START + 50, p("/usr/bin/x")), (8, 40), "changed after first seen: kept too");
        // Made again at the same path: the next free number, not the first file's.
        assert_eq!(s.identity((8, 100), START + 60, p("./a.txt")), (SIM_DEV, hashed("./a.txt") + 1));
        // Another host, looking in another order, shows the same numbers.
        let mut other = Stamps::new(START);
        assert_eq!(other.identity((9, 7), START + 6, p("./b.txt")), (SIM_DEV, hashed("./b.txt")));
        assert_eq!(other.identity((9, 5), START + 6, p("./a.txt")), (SIM_DEV, hashed("./a.txt")));
    }

    #[test]
    fn a_run_starts_when_its_output_folder_was_made() {
        let dir = std::env::temp_dir().join(format!("thermocline-stamps-start-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let start = run_start(&dir);
        assert!(start <= machine_now() - COARSE_MARGIN_NS / 2, "a coarse tick before the folder's birth");
        // Three ticks of the coarse clock or more: "now" would have moved.
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert_eq!(run_start(&dir), start, "the folder's birth, not now");
        assert!(run_start(&dir.join("missing")) > start, "no folder: now");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_paths_in_proc_are_left_to_the_kernel() {
        assert!(under_proc(b"/proc/self/exe") && under_proc(b"//./proc") && under_proc(b"/proc"));
        assert!(!under_proc(b"/process") && !under_proc(b"/run/thermocline/a/proc") && !under_proc(b"/"));
    }

    #[test]
    fn a_path_is_looked_up_in_a_tasks_root_with_its_own_symbolic_links() {
        let dir = std::env::temp_dir().join(format!("thermocline-stamps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/file"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/file", dir.join("link")).unwrap();
        let root = open_path(dir.to_str().unwrap(), libc::O_DIRECTORY).unwrap();
        let found = resolve_in(&root, b"/link", false).unwrap();
        // SAFETY: zeroed stat buffers filled by fstat.
        let (mut a, mut b): (libc::stat, libc::stat) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        let file = std::fs::File::open(dir.join("etc/file")).unwrap();
        // SAFETY: fstatat on descriptors we own.
        unsafe {
            libc::fstatat(found.as_raw_fd(), c"".as_ptr(), &mut a, libc::AT_EMPTY_PATH);
            libc::fstat(file.as_raw_fd(), &mut b);
        }
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino), "the absolute link resolves inside the root");
        let link = resolve_in(&root, b"/link", true).unwrap();
        // SAFETY: as above.
        unsafe { libc::fstatat(link.as_raw_fd(), c"".as_ptr(), &mut a, libc::AT_EMPTY_PATH) };
        assert_eq!(a.st_mode & libc::S_IFMT, libc::S_IFLNK, "without following: the link itself");
        assert_eq!(resolve_in(&root, b"/missing", false).err(), Some(libc::ENOENT));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
