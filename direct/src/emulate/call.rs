//! The notified call a handler answers ([`Call`]: its task and arguments, read once) and the
//! small helpers every family uses.

use crate::cx::{Answer, Cx};
use crate::host::FdEntry;
use crate::seccomp::Notif;
use thermocline_shim::abi::{HELLO_OP_LATENCY_COST, HELLO_OP_LATENCY_HANDOVER, HELLO_SYSCALL};

/// Nanoseconds in a second.
pub(crate) const NS: u64 = 1_000_000_000;

/// The notified call being answered: its task and arguments, read once for every handler.
#[derive(Clone, Copy)]
pub(crate) struct Call<'n> {
    /// The task's virtual id.
    pub vid: u32,
    /// The task's pid (in the supervisor's namespace).
    pub pid: i32,
    /// Whether the task's wait has timed out (a retried blocking call must complete now).
    pub timed_out: bool,
    /// The syscall number.
    pub nr: i64,
    /// The syscall's arguments.
    pub a: [u64; 6],
    /// The notification itself.
    pub n: &'n Notif,
}

/// Whether `n` is one of the shim's latency calls ([`HELLO_OP_LATENCY_COST`],
/// [`HELLO_OP_LATENCY_HANDOVER`]): bookkeeping for calls answered in the process, not a call of
/// the program, so it is not charged syscall latency itself.
pub(crate) fn is_latency_bookkeeping(n: &Notif) -> bool {
    n.data.nr as i64 == HELLO_SYSCALL
        && (n.data.args[0] == HELLO_OP_LATENCY_COST || n.data.args[0] == HELLO_OP_LATENCY_HANDOVER)
}

/// A handler's result as an answer: an error number becomes `Errno`.
pub(crate) fn errno(r: Result<Answer, i32>) -> Answer {
    r.unwrap_or_else(Answer::Errno)
}

/// The emulated descriptor the call's first argument names, if it is one.
pub(crate) fn fd_entry(cx: &Cx, c: &Call) -> Option<FdEntry> {
    cx.host.fds(c.vid).get(&(c.a[0] as i32)).copied()
}
