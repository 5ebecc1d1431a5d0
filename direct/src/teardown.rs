//! Killing every managed process when `thermocline` is told to stop (`SIGTERM`, `SIGINT`).
//!
//! Every live managed task and every host's namespace init (see [`crate::pidns`]) is registered
//! here, process-wide, with a pidfd of its own: [`kill_managed_processes`] sends each `SIGKILL`
//! (through the pidfd, so a pid reused after a task was reaped is never hit), and also kills the
//! descendants it finds under them in `/proc` (children not registered yet). Killing a host's
//! init makes the kernel kill everything in its PID namespace, orphans included; without
//! namespaces (not root) the registered tasks and their descendants are what can be reached.
//!
//! It is meant for a signal handler's helper thread: it only takes a lock that is held for a map
//! update at a time, and once it has run, tasks registered later are killed at once.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live managed processes and threads, with a pidfd of each.
struct Registry {
    /// Registration id → (pid, a pidfd of it).
    live: Mutex<BTreeMap<u64, (i32, OwnedFd)>>,
    /// The next registration id.
    next: AtomicU64,
    /// [`Registry::kill_all`] has run: whatever registers from now on is killed.
    stopping: AtomicBool,
}

/// The registry of this process's direct engines.
static GLOBAL: Registry = Registry::new();

/// A managed task's (or namespace init's) place in the registry; dropping it removes it.
pub struct Registration {
    id: u64,
    registry: &'static Registry,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registration({})", self.id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    const fn new() -> Self {
        Registry { live: Mutex::new(BTreeMap::new()), next: AtomicU64::new(0), stopping: AtomicBool::new(false) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (i32, OwnedFd)>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&'static self, pid: i32, pidfd: BorrowedFd<'_>) -> Option<Registration> {
        let fd = pidfd.try_clone_to_owned().ok()?;
        if self.stopping.load(Ordering::SeqCst) {
            signal(&fd);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, (pid, fd));
        Some(Registration { id, registry: self })
    }

    fn kill_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let live = self.lock();
        let mut descendants = Vec::new();
        for (pid, _) in live.values() {
            collect_descendants(*pid, &mut descendants);
        }
        for (_, fd) in live.values() {
            signal(fd);
        }
        drop(live);
        for pid in descendants {
            // SAFETY: kill(2); these processes were alive under a managed one a moment ago.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Register `pid` (a process or thread) with a duplicate of its pidfd; `None` if the descriptor
/// cannot be duplicated (the task can then only be reached through its parent's death).
pub fn register(pid: i32, pidfd: BorrowedFd<'_>) -> Option<Registration> {
    GLOBAL.register(pid, pidfd)
}

/// Kill every process the direct engines of this process manage — every registered task, the
/// descendants found under them, and each host's PID namespace through its init — with
/// `SIGKILL`. For the CLI's `SIGTERM`/`SIGINT` handling, before it exits; safe to call from any
/// thread, at any time, more than once. Tasks registered afterwards are killed as they register.
pub fn kill_managed_processes() {
    GLOBAL.kill_all();
}

/// Send `SIGKILL` through a pidfd (a thread's pidfd kills its whole process too).
fn signal(fd: &OwnedFd) {
    // SAFETY: pidfd_send_signal on our own descriptor, no siginfo.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0u32) };
}

/// Append every descendant of process `pid` (children of any of its threads, recursively).
fn collect_descendants(pid: i32, out: &mut Vec<i32>) {
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for child in crate::procfs::group_children(p) {
            if !out.contains(&child) && child != pid {
                out.push(child);
                stack.push(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd};

    #[test]
    fn registrations_come_and_go_and_the_teardown_kills_what_is_registered_with_its_children() {
        // A registry of this test's own, so that the engine tests running beside it are untouched.
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let mut child = std::process::Command::new("sh").args(["-c", "sleep 1000 & wait"]).spawn().unwrap();
        let pid = child.id() as i32;
        // SAFETY: pidfd_open of our own child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let gone = registry.register(1, fd.as_fd()).unwrap();
        drop(gone);
        assert!(registry.lock().is_empty(), "a dropped registration leaves");
        let reg = registry.register(pid, fd.as_fd()).unwrap();
        let start = std::time::Instant::now();
        while crate::procfs::group_children(pid).is_empty() && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let sleeper = crate::procfs::group_children(pid)[0];
        registry.kill_all();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        let start = std::time::Instant::now();
        while crate::procfs::proc_state(sleeper).is_some_and(|s| s != 'Z') && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(crate::procfs::proc_state(sleeper).is_none_or(|s| s == 'Z'), "the sleeping grandchild was killed");
        drop(reg);
        assert!(registry.lock().is_empty());
    }
}
