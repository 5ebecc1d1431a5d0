//! Why blocking calls end, counted with `--syscall-stats` (tables `direct_wakeups` and
//! `direct_wait_events`): each readiness call (`epoll_wait`, `poll`, `select` and their variants)
//! and each call that blocked is counted by *how* it ended — at once, with a zero timeout, or
//! after blocking — and by *why*: the descriptors and events it reported (`tcp IN`, `eventfd IN`,
//! …), its timeout, a futex wake or a signal. Every event a readiness call reports is counted too,
//! by descriptor kind and event bits. It is where a program's extra context switches come from:
//! a wait that returns at once costs a round trip that a blocking one would have saved.
//!
//! Counting reads nothing the simulation uses and changes no answer, so the digest is the same
//! with and without it.

use std::collections::BTreeMap;

/// How a counted call ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum How {
    /// Answered when first handled, without blocking, though it could have waited.
    AtOnce,
    /// A readiness call with a zero timeout (a poll that never waits).
    ZeroTimeout,
    /// Answered after it had blocked: a wake-up.
    AfterBlocking,
}

impl How {
    /// Classify a call: `retried` if it had blocked, `zero_timeout` for a readiness call told
    /// not to wait.
    pub fn of(retried: bool, zero_timeout: bool) -> Self {
        match (retried, zero_timeout) {
            (true, _) => How::AfterBlocking,
            (false, true) => How::ZeroTimeout,
            (false, false) => How::AtOnce,
        }
    }

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            How::AtOnce => "at once",
            How::ZeroTimeout => "timeout 0",
            How::AfterBlocking => "after blocking",
        }
    }
}

/// What a readiness call found, noted by its handler for the counting done once it is answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitNote {
    /// It was told not to wait.
    pub zero_timeout: bool,
    /// The events it reported: (descriptor kind, `POLL*` bits).
    pub events: Vec<(&'static str, u32)>,
}

/// What ended a blocked call, beyond what a readiness call reports.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// Its timeout expired.
    pub timed_out: bool,
    /// A signal interrupted it.
    pub interrupted: bool,
    /// A `futex` wake (or a thread's exit) released it.
    pub futex_woken: bool,
}

/// The `POLL*`/`EPOLL*` bits of `mask` by name, `|`-joined (`IN|OUT`), in a fixed order.
pub fn bits(mask: u32) -> String {
    const NAMES: [(u32, &str); 7] = [
        (libc::EPOLLIN as u32, "IN"),
        (libc::EPOLLPRI as u32, "PRI"),
        (libc::EPOLLOUT as u32, "OUT"),
        (libc::EPOLLERR as u32, "ERR"),
        (libc::EPOLLHUP as u32, "HUP"),
        (libc::EPOLLRDHUP as u32, "RDHUP"),
        (libc::POLLNVAL as u32, "NVAL"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(b, _)| mask & b != 0).map(|&(_, n)| n).collect();
    if names.is_empty() { "none".into() } else { names.join("|") }
}

/// Why a call ended: its timeout, a signal, a futex wake, or the distinct `kind EVENTS` its
/// readiness answer reported, `+`-joined in sorted order ("ready" for another blocked call that
/// completed, e.g. a `recv` whose data came).
pub fn reason(end: Ending, events: &[(&'static str, u32)]) -> String {
    if end.interrupted {
        return "signal".into();
    }
    if end.futex_woken {
        return "futex wake".into();
    }
    if !events.is_empty() {
        let mut parts: Vec<String> = events.iter().map(|&(k, m)| format!("{k} {}", bits(m))).collect();
        parts.sort();
        parts.dedup();
        return parts.join(" + ");
    }
    if end.timed_out { "timeout".into() } else { "ready".into() }
}

/// The counts of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitStats {
    /// (binary, syscall number, how, reason) → calls.
    pub ends: BTreeMap<(String, i64, How, String), u64>,
    /// (binary, syscall number, how, descriptor kind, event bits) → events reported.
    pub events: BTreeMap<(String, i64, How, &'static str, String), u64>,
    /// What the readiness call being answered found (taken when it is counted).
    pub note: Option<WaitNote>,
}

impl WaitStats {
    /// Count a call of `binary` (syscall `nr`) that was answered, not blocked: readiness calls
    /// (`note` present) always, other calls only if they had blocked (`retried`).
    pub fn count(&mut self, binary: &str, nr: i64, retried: bool, end: Ending) {
        let note = self.note.take();
        if note.is_none() && !retried {
            return;
        }
        let note = note.unwrap_or_default();
        let how = How::of(retried, note.zero_timeout);
        *self.ends.entry((binary.to_string(), nr, how, reason(end, &note.events))).or_insert(0) += 1;
        for (kind, mask) in note.events {
            *self.events.entry((binary.to_string(), nr, how, kind, bits(mask))).or_insert(0) += 1;
        }
    }

    /// Note what a readiness call found, if counting (`stats`); `report` lists the events it
    /// reports (empty when it blocks or times out).
    pub fn note(stats: &mut Option<WaitStats>, zero_timeout: bool, report: impl FnOnce() -> Vec<(&'static str, u32)>) {
        if let Some(s) = stats {
            s.note = Some(WaitNote { zero_timeout, events: report() });
        }
    }
}

/// The kind of a descriptor the supervisor does not emulate, from its `/proc/PID/fd` link:
/// `eventfd`, `pipe`, `socket` (`AF_UNIX` and other native sockets), `timerfd`, `signalfd`,
/// `epoll`, `file`, or `native` when unknown.
pub fn native_kind(link: Option<&str>) -> &'static str {
    match link {
        Some(l) if l.starts_with("anon_inode:[eventfd") => "eventfd",
        Some(l) if l.starts_with("anon_inode:[timerfd") => "timerfd",
        Some(l) if l.starts_with("anon_inode:[signalfd") => "signalfd",
        Some(l) if l.starts_with("anon_inode:[eventpoll") => "epoll",
        Some(l) if l.starts_with("pipe:") => "pipe",
        Some(l) if l.starts_with("socket:") => "socket",
        Some(l) if l.starts_with('/') => "file",
        _ => "native",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_classified_by_how_they_ended() {
        assert_eq!(How::of(true, true), How::AfterBlocking);
        assert_eq!(How::of(false, true), How::ZeroTimeout);
        assert_eq!(How::of(false, false), How::AtOnce);
    }

    #[test]
    fn reasons_name_the_cause() {
        let none = Ending::default();
        assert_eq!(reason(Ending { timed_out: true, ..none }, &[]), "timeout");
        assert_eq!(reason(Ending { interrupted: true, timed_out: true, ..none }, &[]), "signal");
        assert_eq!(reason(Ending { futex_woken: true, ..none }, &[]), "futex wake");
        assert_eq!(reason(none, &[]), "ready");
        let out = libc::EPOLLOUT as u32;
        let inout = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
        assert_eq!(
            reason(none, &[("tcp", inout), ("eventfd", libc::EPOLLIN as u32), ("tcp", inout)]),
            "eventfd IN + tcp IN|OUT"
        );
        assert_eq!(reason(none, &[("tcp", out)]), "tcp OUT");
        assert_eq!(bits(0), "none");
    }

    #[test]
    fn only_readiness_calls_and_wakeups_are_counted() {
        let mut s = WaitStats::default();
        s.count("p", 0, false, Ending::default()); // a read that did not block
        assert!(s.ends.is_empty());
        s.count("p", 202, true, Ending { futex_woken: true, ..Default::default() });
        WaitStats::note(&mut Some(WaitStats::default()), false, Vec::new); // not this host's
        let mut some = Some(s);
        WaitStats::note(&mut some, true, || vec![("tcp", libc::EPOLLIN as u32)]);
        let mut s = some.expect("counting");
        s.count("p", 232, false, Ending::default());
        assert_eq!(s.ends.len(), 2);
        assert_eq!(s.ends[&("p".into(), 202, How::AfterBlocking, "futex wake".into())], 1);
        assert_eq!(s.ends[&("p".into(), 232, How::ZeroTimeout, "tcp IN".into())], 1);
        assert_eq!(s.events[&("p".into(), 232, How::ZeroTimeout, "tcp", "IN".into())], 1);
        assert!(s.note.is_none(), "a note is used once");
    }

    #[test]
    fn native_descriptors_are_named_by_their_links() {
        assert_eq!(native_kind(Some("anon_inode:[eventfd]")), "eventfd");
        assert_eq!(native_kind(Some("pipe:[123]")), "pipe");
        assert_eq!(native_kind(Some("socket:[9]")), "socket");
        assert_eq!(native_kind(Some("/run/thermocline/a/x")), "file");
        assert_eq!(native_kind(None), "native");
    }
}
