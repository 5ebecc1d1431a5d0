//! TCP socket objects of direct hosts: what a descriptor's socket is (fresh, listening with
//! its pool and accept queue, or one connection), its options and readiness, and what happens
//! to its connections when it is closed. The socket calls are in `emulate::tcp`; the stack's
//! polls, which move these objects along, in [`crate::host`].
//!
//! smoltcp has one socket per connection, so a listening descriptor owns a small pool of
//! listening smoltcp sockets on its port; each one that leaves `LISTEN` moves to the descriptor's
//! accept queue once established, and the pool is topped up again. A closed descriptor's
//! connection stays in the stack (FIN-WAIT, TIME-WAIT) until smoltcp has finished it, and keeps
//! its port until then.

use crate::inet6::Inet6;
use crate::linux::{TCP_RMEM, TCP_WMEM, window_for};
use crate::stack::{PortOwner, PortUse, SendBuffer, TcpStack};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint};
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// Size of each connection's send ring in the stack: Linux's largest send buffer
/// (`tcp_wmem` max), which the autotuned one ([`SendBuffer::Linux`]) grows to with the congestion
/// window; a program's `SO_SNDBUF` sets it instead. Only the pages in use take memory.
pub const SEND_RING_BYTES: usize = TCP_WMEM[2];
/// Size of each connection's receive ring where the program set no `SO_RCVBUF`: the window Linux
/// offers at most (half of `tcp_rmem` max, 3 MiB), which its autotuning reaches on a path that
/// needs it. The ring's free space is the window smoltcp advertises.
pub const RECV_RING_BYTES: usize = TCP_RMEM[2] / 2;
/// `SO_RCVBUF` reported before any is set (Linux's `tcp_rmem` default).
pub const DEFAULT_RCVBUF: i32 = 131_072;
/// `SO_SNDBUF` reported before any is set (Linux's `tcp_wmem` default).
pub const DEFAULT_SNDBUF: i32 = 16_384;
/// Largest number of listening smoltcp sockets kept ready per listening descriptor: that many
/// handshakes can be in progress at once (Linux drops SYNs beyond its queue; smoltcp answers an
/// RST when no listening socket is free).
pub const LISTEN_POOL: usize = 16;
/// A connection attempt that hears nothing for this long fails with `ETIMEDOUT` (Linux: about
/// 127 s with its default six SYN retries).
pub const CONNECT_TIMEOUT_S: u64 = 127;
/// Maximum segment size on the simulated 1500-byte MTU.
pub const MSS: i32 = 1460;

/// What a TCP descriptor is.
pub enum Phase {
    /// Created, maybe bound: no connection yet.
    Fresh,
    /// Listening.
    Listening(Listener),
    /// Connecting, connected, or finished: the stack's socket for the connection.
    Open(SocketHandle),
}

/// A listening descriptor's sockets.
pub struct Listener {
    /// `listen`'s backlog: connections waiting in the accept queue at most.
    pub backlog: usize,
    /// Listening smoltcp sockets, and those in the middle of a handshake.
    pub pool: Vec<SocketHandle>,
    /// Established connections waiting for `accept`, oldest first.
    pub queue: VecDeque<SocketHandle>,
}

/// An emulated TCP socket.
pub struct TcpSocket {
    /// What it is.
    pub phase: Phase,
    /// Local address once bound (explicitly, or by `connect`/`listen`).
    pub local: Option<(Ipv4Addr, u16)>,
    /// Peer of a connection.
    pub peer: Option<(Ipv4Addr, u16)>,
    /// Pending error (`SO_ERROR`), reported once by the next call.
    pub error: Option<i32>,
    /// The connection was established at some point.
    pub was_connected: bool,
    /// A `connect` returned `EINPROGRESS` and none has reported the outcome since (Linux's
    /// `SS_CONNECTING`): once the handshake is over, the next `connect` returns 0 (or the
    /// failure), and only the ones after it `EISCONN`.
    pub connect_pending: bool,
    /// Shut down for reading.
    pub shut_rd: bool,
    /// Shut down for writing.
    pub shut_wr: bool,
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, s.
    pub keepidle: i32,
    /// `SO_REUSEADDR`.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT`.
    pub reuseport: bool,
    /// `SO_RCVBUF` as reported.
    pub rcvbuf: i32,
    /// `SO_SNDBUF` as reported.
    pub sndbuf: i32,
    /// The program set `SO_RCVBUF`: the receive ring is the window it gives, no autotuning.
    pub rcvbuf_set: bool,
    /// The program set `SO_SNDBUF`: the send buffer is its value, no autotuning.
    pub sndbuf_set: bool,
    /// `SO_RCVTIMEO`, ns (0: none).
    pub rcvtimeo: u64,
    /// `SO_SNDTIMEO`, ns (0: none).
    pub sndtimeo: u64,
    /// `SO_LINGER`: (on, seconds).
    pub linger: (i32, i32),
    /// Options with no effect here, stored and reported back: ((level, name), value).
    pub options: Vec<((i32, i32), i32)>,
    /// Wake-ups of the socket's waiters, as Linux's socket callbacks make them: what an
    /// edge-triggered epoll counts as a new edge.
    pub wakeups: Wakeups,
    /// Linux's `SOCK_NOSPACE`: a writer found no room (a send that could not queue everything,
    /// or a poll that found the socket not writable), so room freed later wakes writers.
    pub nospace: bool,
    /// For an `AF_INET6` socket: its IPv6 side (see [`crate::inet6`]).
    pub inet6: Option<Inet6>,
    /// What the socket looked like after the last poll of the stack.
    pub seen: Seen,
}

/// Wake-ups of a TCP socket's wait queue, counted by the events they carry, following the
/// callbacks through which Linux wakes a socket's waiters (and so `ep_poll_callback`):
/// `sk_data_ready` when in-order data or a connection to accept arrives (`EPOLLIN`),
/// `sk_write_space` when acknowledged data frees room *and* a writer had found none
/// (`SOCK_NOSPACE`, `sk_stream_write_space`; `EPOLLOUT`), and `sk_state_change` /
/// `sk_error_report` for a state change or an error (every waiter). A read that empties the
/// receive queue, a write that fills the send buffer, or an ACK that frees room nobody waited
/// for wakes nobody.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Wakeups {
    /// `sk_data_ready`: new data, or a connection queued for `accept`.
    pub readable: u64,
    /// `sk_write_space`: room to write after a writer found none.
    pub writable: u64,
    /// `sk_state_change`, `sk_error_report`: a state change or an error, for every waiter.
    pub all: u64,
}

impl Wakeups {
    /// The count an epoll interest in `events` (`EPOLLIN`, `EPOLLOUT`, …) watches: the wake-ups
    /// whose events it asked for (`ep_poll_callback` ignores the others), and all state changes.
    pub fn watched(&self, events: u32) -> u64 {
        let reads = (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDNORM | libc::EPOLLRDHUP) as u32;
        let writes = (libc::EPOLLOUT | libc::EPOLLWRNORM) as u32;
        let r = if events & reads != 0 { self.readable } else { 0 };
        let w = if events & writes != 0 { self.writable } else { 0 };
        r + w + self.all
    }
}

/// What changed between two looks at a socket (after two polls of the stack), and the wake-ups
/// it makes under Linux's rules (see [`Wakeups`]). `nospace` is Linux's `SOCK_NOSPACE`; the
/// second value says whether it stays set.
pub fn wakeups_between(before: Seen, after: Seen, arrivals: usize, nospace: bool) -> (Wakeups, bool) {
    use libc::{POLLERR, POLLHUP, POLLOUT, POLLRDHUP};
    let mut w = Wakeups::default();
    let news = after.mask & !before.mask;
    if after.state != before.state || news & (POLLERR | POLLHUP | POLLRDHUP) != 0 {
        w.all = 1;
    }
    if after.rx > before.rx || arrivals > 0 {
        w.readable = 1;
    }
    let mut nospace = nospace;
    if nospace && after.mask & POLLOUT != 0 {
        w.writable = 1;
        nospace = false;
    }
    (w, nospace)
}

/// What the socket looked like after the last poll of the stack.
#[derive(Copy, Clone, Debug, Default)]
pub struct Seen {
    /// Readiness bits.
    pub mask: i16,
    /// Bytes waiting to be read.
    pub rx: usize,
    /// Connections waiting to be accepted.
    pub queued: usize,
    /// The connection's state.
    pub state: Option<State>,
}

impl TcpSocket {
    /// A new socket.
    pub fn new() -> Self {
        TcpSocket {
            phase: Phase::Fresh,
            local: None,
            peer: None,
            error: None,
            was_connected: false,
            connect_pending: false,
            shut_rd: false,
            shut_wr: false,
            nodelay: false,
            keepalive: false,
            keepidle: 7200,
            reuseaddr: false,
            reuseport: false,
            rcvbuf: DEFAULT_RCVBUF,
            sndbuf: DEFAULT_SNDBUF,
            rcvbuf_set: false,
            sndbuf_set: false,
            rcvtimeo: 0,
            sndtimeo: 0,
            linger: (0, 0),
            options: Vec::new(),
            wakeups: Wakeups::default(),
            nospace: false,
            inet6: None,
            seen: Seen::default(),
        }
    }

    /// The families of peers it takes: (IPv4, IPv6).
    pub fn families(&self) -> (bool, bool) {
        self.inet6.as_ref().map_or((true, false), Inet6::families)
    }

    /// The stack handle of an open connection (`None` before connect/listen or after release).
    pub fn handle(&self) -> Option<SocketHandle> {
        match self.phase {
            Phase::Open(h) => Some(h),
            _ => None,
        }
    }
}

impl Default for TcpSocket {
    fn default() -> Self {
        Self::new()
    }
}

/// A new stack socket with this descriptor's settings.
pub fn new_stack_socket(s: &TcpSocket) -> tcp::Socket<'static> {
    let rx = if s.rcvbuf_set { window_for(s.rcvbuf as usize) } else { RECV_RING_BYTES };
    let mut t = TcpStack::new_socket(rx, SEND_RING_BYTES);
    t.set_nagle_enabled(!s.nodelay);
    if s.keepalive {
        t.set_keep_alive(Some(Duration::from_secs(s.keepidle.max(1) as u64)));
    }
    t
}

/// The send buffer of a connection of this descriptor: the program's, or Linux's autotuned one.
pub fn send_buffer(s: &TcpSocket) -> SendBuffer {
    if s.sndbuf_set { SendBuffer::Locked(s.sndbuf as usize) } else { SendBuffer::Linux(0) }
}

/// The smoltcp endpoint for an IPv4 address and port.
pub fn ep(ip: Ipv4Addr, port: u16) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(ip), port)
}

/// The IPv4 address inside a smoltcp address (the stack is built IPv4-only).
pub fn v4(a: IpAddress) -> Ipv4Addr {
    match a {
        IpAddress::Ipv4(v) => v,
    }
}

/// Whether a connection in state `st` has been synchronised (it is or was established).
pub fn synchronised(st: State) -> bool {
    !matches!(st, State::Closed | State::Listen | State::SynSent | State::SynReceived)
}

/// Whether a read of TCP socket `s`, its connection in `state` and nothing queued, finds the end
/// of the stream (0) rather than waiting: reading was shut, the peer's FIN came, or an
/// established connection is over.
pub fn read_ended(s: &TcpSocket, state: State) -> bool {
    s.shut_rd
        || matches!(state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
        || (state == State::Closed && s.was_connected)
}

/// Readiness (`POLL*` bits) of TCP object `s`, as Linux's `tcp_poll` computes it.
pub fn mask(s: &TcpSocket, st: &mut TcpStack) -> i16 {
    use libc::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, POLLRDNORM, POLLWRNORM};
    let err = if s.error.is_some() { POLLERR } else { 0 };
    match &s.phase {
        // A socket in Linux's CLOSE state: hung up and writable.
        Phase::Fresh => POLLOUT | POLLWRNORM | POLLHUP | err,
        Phase::Listening(l) => {
            if l.queue.is_empty() {
                err
            } else {
                POLLIN | POLLRDNORM | err
            }
        }
        &Phase::Open(h) => {
            let t = st.socket(h);
            let state = t.state();
            let mut m = err;
            let peer_fin = matches!(state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait);
            let rd_shut = s.shut_rd || peer_fin || state == State::Closed;
            let wr_shut = s.shut_wr || !matches!(state, State::Established | State::CloseWait);
            if state == State::Closed || (rd_shut && wr_shut && state != State::SynSent && state != State::SynReceived)
            {
                m |= POLLHUP;
            }
            if rd_shut {
                m |= POLLIN | POLLRDNORM | POLLRDHUP;
            }
            if !matches!(state, State::SynSent | State::SynReceived) {
                if st.socket(h).recv_queue() > 0 {
                    m |= POLLIN | POLLRDNORM;
                }
                let queued = st.send_queue(h);
                let free = st.send_room(h);
                // Linux: writable while the free space is at least half of what is queued.
                if wr_shut || free * 2 >= queued && free > 0 {
                    m |= POLLOUT | POLLWRNORM;
                }
            }
            m
        }
    }
}

/// The last descriptor of TCP socket `s` (emulated object `obj`, taking peers of families
/// `fams`) is closed: let the stack finish its connection (graceful FIN, or an RST with unread
/// data or `SO_LINGER` 0), stop listening, free its port.
pub fn release(s: &mut TcpSocket, st: &mut TcpStack, obj: usize) {
    let fams = s.families();
    st.ports.retain(|p| p.owner != PortOwner::Socket(obj));
    match std::mem::replace(&mut s.phase, Phase::Fresh) {
        Phase::Fresh => {}
        Phase::Listening(l) => {
            for hd in l.pool {
                if st.socket(hd).state() == State::Listen {
                    st.remove(hd);
                } else {
                    st.abort(hd);
                    st.orphans.push(hd);
                }
            }
            for hd in l.queue {
                // Linux resets connections nobody accepted.
                st.abort(hd);
                st.orphans.push(hd);
            }
        }
        Phase::Open(hd) => {
            if (s.linger.0 != 0 && s.linger.1 == 0) || st.socket(hd).recv_queue() > 0 {
                st.abort(hd);
            } else {
                st.close(hd);
            }
            if let Some((ip, port)) = s.local
                && !st.ports.iter().any(|p| p.owner == PortOwner::Conn(hd))
            {
                st.ports.push(PortUse {
                    port,
                    ip,
                    owner: PortOwner::Conn(hd),
                    reuseaddr: s.reuseaddr,
                    reuseport: s.reuseport,
                    listening: false,
                    families: fams,
                });
            }
            st.orphans.push(hd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{POLLHUP, POLLIN, POLLOUT, POLLRDHUP};

    fn seen(mask: i16, rx: usize, state: State) -> Seen {
        Seen { mask, rx, queued: 0, state: Some(state) }
    }

    #[test]
    fn arriving_data_wakes_readers_and_reading_it_wakes_nobody() {
        let idle = seen(POLLOUT, 0, State::Established);
        let data = seen(POLLIN | POLLOUT, 1460, State::Established);
        let (w, _) = wakeups_between(idle, data, 0, false);
        assert_eq!(w, Wakeups { readable: 1, ..Default::default() });
        // The read emptied the queue: POLLIN went away, which is no wake-up.
        let (w, _) = wakeups_between(data, idle, 0, false);
        assert_eq!(w, Wakeups::default());
        // A segment arriving while unread data remains is one.
        let more = seen(POLLIN | POLLOUT, 2000, State::Established);
        assert_eq!(wakeups_between(seen(POLLIN | POLLOUT, 540, State::Established), more, 0, false).0.readable, 1);
    }

    #[test]
    fn room_wakes_writers_only_after_one_found_none() {
        let full = seen(0, 0, State::Established);
        let room = seen(POLLOUT, 0, State::Established);
        // An ACK freeing room nobody waited for (tcp_check_space without SOCK_NOSPACE).
        assert_eq!(wakeups_between(room, room, 0, false), (Wakeups::default(), false));
        assert_eq!(wakeups_between(full, room, 0, false), (Wakeups::default(), false));
        // A writer found no room: still full, nothing yet; then room, one wake-up, flag cleared.
        assert_eq!(wakeups_between(full, full, 0, true), (Wakeups::default(), true));
        assert_eq!(wakeups_between(full, room, 0, true), (Wakeups { writable: 1, ..Default::default() }, false));
    }

    #[test]
    fn state_changes_and_connections_to_accept_wake_their_waiters() {
        let open = seen(POLLOUT, 0, State::Established);
        let fin = seen(POLLIN | POLLOUT | POLLRDHUP, 0, State::CloseWait);
        assert_eq!(wakeups_between(open, fin, 0, false).0.all, 1);
        let hup = Seen { state: Some(State::Established), ..seen(POLLOUT | POLLHUP, 0, State::Established) };
        assert_eq!(wakeups_between(open, hup, 0, false).0.all, 1, "a new hang-up or error bit");
        let listen = Seen { mask: 0, rx: 0, queued: 0, state: None };
        assert_eq!(wakeups_between(listen, listen, 1, false).0.readable, 1, "a connection queued");
    }

    #[test]
    fn an_epoll_interest_watches_the_wakeups_it_asked_for_and_state_changes() {
        let w = Wakeups { readable: 3, writable: 5, all: 7 };
        let (i, o, et) = (libc::EPOLLIN as u32, libc::EPOLLOUT as u32, libc::EPOLLET as u32);
        assert_eq!(w.watched(i | et), 10);
        assert_eq!(w.watched(o | et), 12);
        assert_eq!(w.watched(i | o | libc::EPOLLRDHUP as u32), 15);
        assert_eq!(w.watched(0), 7, "hang-ups and errors are always watched");
    }
}
