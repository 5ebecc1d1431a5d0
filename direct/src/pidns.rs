//! A PID namespace per direct host, so that nothing a host ran outlives `thermocline`, even when
//! it is killed with `SIGKILL`.
//!
//! Each host gets a namespace whose init is a tiny process of ours: forked from the shard thread
//! that launches the host's programs (`clone` with `CLONE_NEWPID | CLONE_NEWNS`), it sets
//! `PR_SET_PDEATHSIG(SIGKILL)`, mounts a `/proc` of the new namespace in a mount namespace of its
//! own (`/` made a slave first, so nothing propagates back), ignores `SIGCHLD` (orphans are reaped
//! at once) and execs a 163-byte program from a memfd that names itself `thermocline-ns` and calls
//! `pause` for ever. When the shard thread ends — the run is over, or `thermocline` died, however —
//! the kernel kills the init, and the death of a namespace's init kills every process in it:
//! orphans, double-forked daemons and spinning grandchildren included.
//!
//! The host's programs are forked by the shard thread after `setns(CLONE_NEWPID)` into the
//! namespace (which only changes where that thread's *children* go; it is switched back right
//! after the fork), so they stay the supervisor's children (pidfds, `waitid`), and each joins the
//! init's mount namespace before exec, so that `/proc` shows the host's own processes.
//!
//! What programs see: their pids are numbered per host from 2 (1 is the init), so pids are now
//! repeatable; a launched program's parent is outside its namespace (`getppid` returns 0, as for a
//! container's first process); `kill(-1, …)` reaches only the host's own processes; `/proc/<pid>`
//! and `/proc/self` agree. The supervisor itself works with the kernel's global ids (a seccomp
//! notification names the caller in the listener's namespace) and translates where a program
//! names a process (`wait4`/`waitid` of one pid).
//!
//! The mount namespace also presents the run's host folders (`<out>/hosts`) at the fixed path
//! [`HOSTS_MOUNT`] (a bind mount over an empty folder of that name, created if missing): programs
//! start in `/run/thermocline/<host>` and have it as `HOME`, so the paths, environment and
//! memory layout they see are the same whatever `--out` is. The mount is the namespace's own
//! (`/` is a slave mount): the machine never sees it.
//!
//! Creating namespaces needs `CAP_SYS_ADMIN` (root). Without it, or with
//! `THERMOCLINE_DIRECT_NAMESPACES=0`, hosts run in the machine's namespace, with a one-line note:
//! programs are then killed with the run by their own `PR_SET_PDEATHSIG` (the launched ones) and
//! by [`crate::teardown`] (on `SIGTERM`/`SIGINT`), but a process that left its parent survives a
//! `SIGKILL` of `thermocline`.

use crate::shared_page::SharedPage;
use crate::teardown::Registration;
use std::ffi::{CStr, CString};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the run's host folders appear to the programs of a host that has a namespace: host
/// `name` starts in `HOSTS_MOUNT/name`, whatever the output folder.
pub const HOSTS_MOUNT: &str = "/run/thermocline";
/// [`HOSTS_MOUNT`] for the raw `mount` of the init.
const HOSTS_MOUNT_C: &CStr = c"/run/thermocline";

/// Where the init program is loaded.
const BASE: u64 = 0x40_0000;
/// Offset of the code: after the ELF header (64 bytes) and one program header (56 bytes).
const CODE_AT: usize = 120;
/// x86-64 code of the init: name itself, then `pause` for ever.
const CODE: [u8; 28] = [
    0xbf, 0x0f, 0, 0, 0, // mov edi, PR_SET_NAME (15)
    0x48, 0x8d, 0x35, 0x10, 0, 0, 0, // lea rsi, [rip + 16]: NAME, right after the code
    0xb8, 0x9d, 0, 0, 0, // mov eax, SYS_prctl (157)
    0x0f, 0x05, // syscall
    0xb8, 0x22, 0, 0, 0, // loop: mov eax, SYS_pause (34)
    0x0f, 0x05, // syscall
    0xeb, 0xf7, // jmp loop
];
/// The init's name (`comm`).
const NAME: &[u8] = b"thermocline-ns\0";

/// The init program: a static ELF executable of one loadable segment.
fn init_image() -> Vec<u8> {
    let total = (CODE_AT + CODE.len() + NAME.len()) as u64;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"); // 64-bit, little-endian, SysV
    b.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(BASE + CODE_AT as u64).to_le_bytes()); // entry
    b.extend_from_slice(&64u64.to_le_bytes()); // program headers
    b.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    b.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 0, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes()); // header size, program header size and count, …
    }
    b.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b.extend_from_slice(&5u32.to_le_bytes()); // read + execute
    for v in [0, BASE, BASE, total, total, 0x1000] {
        b.extend_from_slice(&v.to_le_bytes()); // offset, addresses, sizes, alignment
    }
    b.extend_from_slice(&CODE);
    b.extend_from_slice(NAME);
    b
}

/// A host's PID (and mount) namespace and its init.
#[derive(Debug)]
pub struct HostNamespace {
    /// The init's pid (in the supervisor's namespace).
    init: i32,
    /// A pidfd of the init.
    pidfd: OwnedFd,
    /// The namespace, for `setns(CLONE_NEWPID)` before a fork.
    pid_ns: OwnedFd,
    /// The init's mount namespace (with the namespace's `/proc`), for launched children.
    mnt_ns: OwnedFd,
    /// The run's host folders are mounted at [`HOSTS_MOUNT`] in its mount namespace.
    presents_hosts: bool,
    /// Its entry in the teardown registry.
    _registration: Option<Registration>,
}

impl HostNamespace {
    /// A new namespace and its init, a child of the calling thread (which must be the thread
    /// that forks the host's programs: the init dies with it). With `hosts`, that folder is
    /// mounted at [`HOSTS_MOUNT`] in the namespace (which must exist as a folder).
    pub fn create(hosts: Option<&Path>) -> io::Result<Self> {
        let image = memfd_with(&init_image())?;
        let hosts = hosts.map(|p| CString::new(p.as_os_str().as_bytes())).transpose()?;
        // SAFETY: gettid and pidfd_open of the calling thread (PIDFD_THREAD).
        let me = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::gettid(), libc::O_EXCL) };
        if me < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let me = unsafe { OwnedFd::from_raw_fd(me as i32) };
        let status = SharedPage::new()?;
        // SAFETY: one atomic word, valid when zero.
        let word = unsafe { status.as_ref::<AtomicU32>() };
        let argv = [c"thermocline-ns".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let flags = (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_VFORK | libc::SIGCHLD) as libc::c_ulong;
        // SAFETY: a raw fork (no CLONE_VM, stack 0: the child runs on a copy of this stack); the
        // child makes raw syscalls only, on memory prepared before the clone.
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the child, see above.
            unsafe { init_child(image.as_raw_fd(), me.as_raw_fd(), word, hosts.as_deref(), &argv, &envp) }
        }
        let pid = pid as i32;
        // CLONE_VFORK: the child has exec'd, or has failed and exited.
        let step = word.load(Ordering::SeqCst);
        if step != 0 {
            // SAFETY: reaping our own child, which has exited or is exiting.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            let what =
                ["", "PR_SET_PDEATHSIG", "", "making / a slave mount", "mounting /proc", "exec", "mounting the hosts"];
            let errno = (step & 0xffff) as i32;
            let at = what.get((step >> 16) as usize).copied().unwrap_or("?");
            return Err(io::Error::other(format!("{at}: {}", io::Error::from_raw_os_error(errno))));
        }
        Self::adopt(pid, hosts.is_some())
    }

    /// Take hold of the running init `pid`: its pidfd and namespaces.
    fn adopt(pid: i32, presents_hosts: bool) -> io::Result<Self> {
        let killed = |e: io::Error| {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            e
        };
        // SAFETY: pidfd_open of our own child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(killed(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let open = |ns: &str| std::fs::File::open(format!("/proc/{pid}/ns/{ns}")).map(OwnedFd::from);
        let pid_ns = open("pid").map_err(killed)?;
        let mnt_ns = open("mnt").map_err(killed)?;
        let registration = crate::teardown::register(pid, pidfd.as_fd());
        Ok(HostNamespace { init: pid, pidfd, pid_ns, mnt_ns, presents_hosts, _registration: registration })
    }

    /// The path by which the supervisor reaches `path` as the namespace's programs see it
    /// (through the init's root, `/proc/<init>/root`): a file opened so is on the namespace's
    /// mounts, and its programs see its path as theirs (`/proc/self/fd/1` of a launched program
    /// names `/run/thermocline/<host>/…`, not the output folder).
    pub fn inside(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        Path::new(&format!("/proc/{}/root", self.init)).join(relative)
    }

    /// Where host `name`'s folder appears to its programs, if the namespace presents the host
    /// folders at [`HOSTS_MOUNT`].
    pub fn host_dir(&self, name: &str) -> Option<PathBuf> {
        self.presents_hosts.then(|| Path::new(HOSTS_MOUNT).join(name))
    }

    /// The init's mount namespace, which a launched child joins before exec.
    pub fn mount_ns(&self) -> RawFd {
        self.mnt_ns.as_raw_fd()
    }

    /// Make the calling thread's next children start in this namespace, until the guard is
    /// dropped. (A forked child must not drop it: the launcher's child never returns.)
    pub fn children_here(&self) -> io::Result<ChildrenHere> {
        let own: OwnedFd = std::fs::File::open("/proc/thread-self/ns/pid")?.into();
        setns(self.pid_ns.as_raw_fd(), libc::CLONE_NEWPID)?;
        Ok(ChildrenHere { own })
    }
}

impl Drop for HostNamespace {
    /// Kill the init, and with it the namespace. The kernel lets the init finish exiting only
    /// once every process of the namespace is reaped, including the supervisor's own children
    /// (the launched programs), so it is reaped here only if that happens within a second; the
    /// engine reaps its children first.
    fn drop(&mut self) {
        let fd = self.pidfd.as_raw_fd();
        // SAFETY: signalling, polling and reaping our own child through its pidfd.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd, libc::SIGKILL, std::ptr::null::<u8>(), 0u32);
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            if libc::poll(&mut p, 1, 1000) == 1 {
                libc::waitpid(self.init, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
    }
}

/// While alive, the calling thread's children start in a host's PID namespace.
pub struct ChildrenHere {
    own: OwnedFd,
}

impl Drop for ChildrenHere {
    fn drop(&mut self) {
        let _ = setns(self.own.as_raw_fd(), libc::CLONE_NEWPID);
    }
}

fn setns(fd: RawFd, kind: libc::c_int) -> io::Result<()> {
    // SAFETY: setns on a namespace descriptor we own.
    if unsafe { libc::setns(fd, kind) } != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A sealed memfd holding `bytes`.
fn memfd_with(bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: memfd_create with a static name.
    let fd = unsafe { libc::memfd_create(c"thermocline-init".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(bytes)?;
    Ok(file.into())
}

/// The init, between `clone` and `exec`: raw syscalls only. A failure is reported as
/// `step << 16 | errno` in `status`.
unsafe fn init_child(
    image: RawFd,
    parent_thread: RawFd,
    status: &AtomicU32,
    hosts: Option<&CStr>,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
) -> ! {
    // SAFETY: raw syscalls with valid arguments; every failure ends in _exit.
    unsafe {
        let fail = |step: u32| -> ! {
            status.store(step << 16 | *libc::__errno_location() as u32, Ordering::SeqCst);
            libc::_exit(1)
        };
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(1);
        }
        // The parent thread may have died before the death signal was armed.
        let mut p = libc::pollfd { fd: parent_thread, events: libc::POLLIN, revents: 0 };
        if libc::poll(&mut p, 1, 0) != 0 {
            libc::_exit(0);
        }
        let none = std::ptr::null::<libc::c_char>();
        if libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_SLAVE, std::ptr::null()) != 0 {
            fail(3);
        }
        let proc_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if libc::mount(c"proc".as_ptr(), c"/proc".as_ptr(), c"proc".as_ptr(), proc_flags, std::ptr::null()) != 0 {
            fail(4);
        }
        if let Some(hosts) = hosts
            && libc::mount(hosts.as_ptr(), HOSTS_MOUNT_C.as_ptr(), none, libc::MS_BIND, std::ptr::null()) != 0
        {
            fail(6);
        }
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::chdir(c"/".as_ptr());
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
        let empty: &CStr = c"";
        libc::syscall(libc::SYS_execveat, image, empty.as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
        fail(5)
    }
}

/// Whether namespaces are wanted (`THERMOCLINE_DIRECT_NAMESPACES=0` turns them off).
fn wanted() -> bool {
    std::env::var_os("THERMOCLINE_DIRECT_NAMESPACES").is_none_or(|v| v != "0")
}

/// A namespace for a host of a run whose host folders are in `hosts`, presenting them at
/// [`HOSTS_MOUNT`] (if that folder exists or can be made), or `None` (with a note, once per
/// process) where namespaces cannot be had or are turned off.
pub fn for_host(hosts: &Path) -> Option<HostNamespace> {
    static UNAVAILABLE: std::sync::Once = std::sync::Once::new();
    if !wanted() || UNAVAILABLE.is_completed() {
        return None;
    }
    let mount_point = std::fs::create_dir_all(HOSTS_MOUNT).is_ok();
    match HostNamespace::create(mount_point.then_some(hosts)) {
        Ok(ns) => Some(ns),
        Err(e) => {
            UNAVAILABLE.call_once(|| {
                eprintln!(
                    "thermocline: direct hosts run without PID namespaces ({e}): a program that leaves its parent \
                     survives thermocline if thermocline is killed with SIGKILL"
                )
            });
            None
        }
    }
}

/// The pid that process `pid` (a global id) has in its own PID namespace: what it and the other
/// processes of its host call it.
pub fn ns_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_image_is_a_small_static_elf_whose_code_loops_on_pause() {
        let b = init_image();
        assert_eq!(b.len(), CODE_AT + CODE.len() + NAME.len());
        assert_eq!(&b[..4], b"\x7fELF");
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), BASE + CODE_AT as u64, "entry");
        assert_eq!(u64::from_le_bytes(b[64 + 32..64 + 40].try_into().unwrap()), b.len() as u64, "file size");
        // The jump goes back to `mov eax, SYS_pause`; the `lea` reaches the name.
        let jmp_end = CODE.len() as i64;
        assert_eq!(jmp_end + i64::from(CODE[27] as i8), 19);
        assert_eq!(12 + i64::from(CODE[8]), CODE.len() as i64);
    }

    #[test]
    fn the_hosts_mount_point_is_one_path() {
        assert_eq!(HOSTS_MOUNT_C.to_str(), Ok(HOSTS_MOUNT));
    }

    #[test]
    fn a_namespace_holds_its_children_and_its_init_takes_them_along() {
        let Ok(ns) = HostNamespace::create(None) else { return }; // not root: nothing to test
        let guard = ns.children_here().unwrap();
        let mut child = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        drop(guard);
        let pid = child.id() as i32;
        assert_eq!(ns_pid(pid), Some(2), "the first process after the init");
        assert_eq!(ns_pid(std::process::id() as i32), Some(std::process::id() as i32));
        let other = std::process::Command::new("true").spawn().unwrap().wait().unwrap();
        assert!(other.success(), "children after the guard start in our own namespace");
        // The init finishes dying once its namespace's processes are reaped, ours included.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        drop(ns);
        let status = reaper.join().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    }
}
