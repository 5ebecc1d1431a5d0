//! A host's sockets: [`HostNet`] owns a host's TCP/IP stack, its TCP and UDP socket objects
//! (by handle: [`TcpId`], [`UdpId`]), its ports and its IPv6 flows, and gives them Linux's
//! semantics: `bind`'s address-in-use and sharing rules, `listen`'s pool and accept queue,
//! `accept`, `connect`, datagram delivery to the socket Linux's lookup picks, and readiness and
//! wake-ups after every poll of the stack. Sans-IO: the caller gives the time, puts the packets
//! the stack sends on the network ([`HostNet::take_transmit`]), and schedules the next poll
//! ([`HostNet::poll_timeout`]).
//!
//! Direct hosts' descriptors are handles into this table (their syscall layer decodes a call's
//! arguments and calls these methods); surrogate identities that meet real clients use the same
//! table through [`crate::endpoint`]. Calls that can fail return a Linux errno ([`Errno`]).

use crate::inet6::{self, FlowKey, Inet6};
use crate::stack::{PortOwner, PortUse, TcpStack};
use crate::tcp::{
    CONNECT_TIMEOUT_S, LISTEN_POOL, Listener, Phase, Seen, TcpSocket, ep, mask, new_stack_socket, send_buffer,
    synchronised, v4, wakeups_between,
};
use crate::udp::{Datagram, UdpSocket};
use crate::udp_ports::{Arrival, UdpHolder, UdpPorts};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpListenEndpoint};
use std::collections::{BTreeSet, VecDeque};
use std::net::Ipv4Addr;

/// A Linux error number (`libc::E…`), as a socket call fails.
pub type Errno = i32;

/// The first port of the ephemeral range (Linux's default `ip_local_port_range` starts at 32768;
/// this is the IANA range, which the simulation has always used).
pub const EPHEMERAL: u16 = 49152;

/// A TCP socket of a host (an index into its table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TcpId(pub u32);

/// A UDP socket of a host (an index into its table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdpId(pub u32);

/// Objects by index; a freed index is reused by the next insertion (the lowest free one first),
/// as a descriptor table reuses numbers.
#[derive(Debug)]
pub struct Table<T> {
    slots: Vec<Option<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { slots: Vec::new() }
    }
}

impl<T> Table<T> {
    /// Adds `value` at the lowest free index, which it returns.
    pub fn insert(&mut self, value: T) -> usize {
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(value);
                i
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    /// The object at `i`, if any.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    /// The object at `i`, if any.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    /// Takes the object at `i` out; its index is free again.
    pub fn remove(&mut self, i: usize) -> Option<T> {
        self.slots.get_mut(i)?.take()
    }

    /// Objects with their indices, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| Some((i, s.as_ref()?)))
    }

    /// Objects with their indices, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| Some((i, s.as_mut()?)))
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// What a poll of the stack changed (see [`HostNet::after_poll`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// The stack has something new to send: poll it again at the same instant.
    pub again: bool,
    /// Some socket's readiness, data, queue or state changed: blocked callers should look again.
    pub changed: bool,
}

/// A host's sockets, ports and TCP/IP stack (see the module documentation).
pub struct HostNet {
    ip: Ipv4Addr,
    seed: u64,
    stack: Option<Box<TcpStack>>,
    /// TCP sockets.
    pub tcp: Table<TcpSocket>,
    /// UDP sockets.
    pub udp: Table<UdpSocket>,
    /// Who holds which UDP port (holders are indices into [`HostNet::udp`]).
    pub udp_ports: UdpPorts,
    next_port: u16,
    /// TCP connections of this host that are IPv6 flows: their packets are marked
    /// ([`inet6::mark`]) and their sockets see IPv6 addresses.
    pub v6_flows: BTreeSet<FlowKey>,
    /// Some socket of the host is `AF_INET6`: incoming connection requests are checked against
    /// the listeners' families.
    pub has_inet6: bool,
    /// A socket call changed the stack: poll it once the call is answered.
    pub dirty: bool,
}

impl HostNet {
    /// The sockets of a host with address `ip`; its stack (created when first needed) draws its
    /// initial sequence numbers from `seed`.
    pub fn new(ip: Ipv4Addr, seed: u64) -> HostNet {
        HostNet {
            ip,
            seed,
            stack: None,
            tcp: Table::default(),
            udp: Table::default(),
            udp_ports: UdpPorts::default(),
            next_port: EPHEMERAL,
            v6_flows: BTreeSet::new(),
            has_inet6: false,
            dirty: false,
        }
    }

    /// The host's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The host's stack, created at `now` on first use.
    pub fn stack(&mut self, now: u64) -> &mut TcpStack {
        let (ip, seed) = (self.ip, self.seed);
        self.stack.get_or_insert_with(|| Box::new(TcpStack::new(ip, seed, now)))
    }

    /// The host's stack, if it has been created.
    pub fn stack_if_any(&mut self) -> Option<&mut TcpStack> {
        self.stack.as_deref_mut()
    }

    /// Whether the stack has been created.
    pub fn has_stack(&self) -> bool {
        self.stack.is_some()
    }

    /// A new TCP socket (`AF_INET6` if `inet6`).
    pub fn tcp_socket(&mut self, inet6: bool) -> TcpId {
        let s = TcpSocket { inet6: self.six(inet6), ..TcpSocket::new() };
        TcpId(self.tcp.insert(s) as u32)
    }

    /// A new UDP socket (`AF_INET6` if `inet6`).
    pub fn udp_socket(&mut self, inet6: bool) -> UdpId {
        let s = UdpSocket { inet6: self.six(inet6), ..UdpSocket::new() };
        UdpId(self.udp.insert(s) as u32)
    }

    fn six(&mut self, inet6: bool) -> Option<Inet6> {
        self.has_inet6 |= inet6;
        inet6.then(Inet6::default)
    }

    /// TCP socket `id` (which must be live: handles come from this table).
    pub fn tcp_ref(&self, id: TcpId) -> &TcpSocket {
        self.tcp.get(id.0 as usize).expect("a live TCP socket")
    }

    /// UDP socket `id` (which must be live).
    pub fn udp_ref(&self, id: UdpId) -> &UdpSocket {
        self.udp.get(id.0 as usize).expect("a live UDP socket")
    }

    /// TCP socket `id` (which must be live: handles come from this table).
    pub fn tcp_mut(&mut self, id: TcpId) -> &mut TcpSocket {
        self.tcp.get_mut(id.0 as usize).expect("a live TCP socket")
    }

    /// UDP socket `id` (which must be live).
    pub fn udp_mut(&mut self, id: UdpId) -> &mut UdpSocket {
        self.udp.get_mut(id.0 as usize).expect("a live UDP socket")
    }

    /// TCP socket `id` and the stack (created at `now` if needed), borrowed together.
    pub fn tcp_parts(&mut self, id: TcpId, now: u64) -> (&mut TcpSocket, &mut TcpStack) {
        self.stack(now);
        let s = self.tcp.get_mut(id.0 as usize).expect("a live TCP socket");
        (s, self.stack.as_deref_mut().expect("created above"))
    }

    /// Readiness of TCP socket `id` (`POLL*` bits, all of them: the caller masks). Like Linux's
    /// `tcp_poll`, a connection found not writable is marked `SOCK_NOSPACE`, so that room freed
    /// later wakes its writers.
    pub fn tcp_ready(&mut self, id: TcpId, now: u64) -> i16 {
        let (s, st) = self.tcp_parts(id, now);
        let m = mask(s, st);
        if m & libc::POLLOUT == 0 && matches!(s.phase, Phase::Open(_)) {
            s.nospace = true;
        }
        m
    }

    /// The next free port of the ephemeral range (49152–65535) that `taken` does not hold.
    fn ephemeral(&mut self, taken: impl Fn(&Self, u16) -> bool) -> Result<u16, Errno> {
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { EPHEMERAL } else { p + 1 };
            if !taken(self, p) {
                return Ok(p);
            }
        }
        Err(libc::EADDRINUSE)
    }

    /// Whether `ip` is an address a socket of this host can bind.
    fn local_ip(&self, ip: Ipv4Addr) -> Result<(), Errno> {
        match ip.is_unspecified() || ip.is_loopback() || ip == self.ip {
            true => Ok(()),
            false => Err(libc::EADDRNOTAVAIL),
        }
    }

    /// `bind` of TCP socket `id` to `ip:port` (port 0: an ephemeral one), with Linux's rule: a
    /// port in use can be shared when both sockets set `SO_REUSEPORT`, or both set
    /// `SO_REUSEADDR` and the other is not listening.
    pub fn tcp_bind(&mut self, id: TcpId, ip: Ipv4Addr, port: u16, now: u64) -> Result<(), Errno> {
        self.local_ip(ip)?;
        let (s, st) = self.tcp_parts(id, now);
        if s.local.is_some() {
            return Err(libc::EINVAL);
        }
        let (reuse, fams) = ((s.reuseaddr, s.reuseport), s.families());
        let port = match port {
            0 => self.ephemeral(|net, p| net.stack.as_ref().is_some_and(|st| st.ports.iter().any(|u| u.port == p)))?,
            p if !port_free(st, ip, p, reuse, fams, id) => return Err(libc::EADDRINUSE),
            p => p,
        };
        let (s, st) = self.tcp_parts(id, now);
        st.ports.push(PortUse {
            port,
            ip,
            owner: PortOwner::Socket(id.0 as usize),
            reuseaddr: reuse.0,
            reuseport: reuse.1,
            listening: false,
            families: fams,
        });
        s.local = Some((ip, port));
        Ok(())
    }

    /// `listen` on TCP socket `id` (bound to an ephemeral port first if unbound). The pool of
    /// listening stack sockets is filled by the next poll.
    pub fn tcp_listen(&mut self, id: TcpId, backlog: i32, now: u64) -> Result<(), Errno> {
        let backlog = backlog.clamp(0, 4096) as usize;
        if self.tcp_mut(id).local.is_none() {
            self.tcp_bind(id, Ipv4Addr::UNSPECIFIED, 0, now)?;
        }
        let (s, st) = self.tcp_parts(id, now);
        match &mut s.phase {
            Phase::Listening(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            Phase::Open(_) => return Err(libc::EINVAL),
            Phase::Fresh => {}
        }
        let (ip, port) = s.local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        let me = PortOwner::Socket(id.0 as usize);
        let fams = s.families();
        let clash = st.ports.iter().any(|p| {
            p.port == port
                && p.owner != me
                && p.listening
                && (p.ip.is_unspecified() || ip.is_unspecified() || p.ip == ip)
                && share(fams, p.families)
                && !(p.reuseport && s.reuseport)
        });
        if clash {
            return Err(libc::EADDRINUSE);
        }
        for p in st.ports.iter_mut().filter(|p| p.owner == me) {
            p.listening = true;
        }
        s.phase = Phase::Listening(Listener { backlog, pool: Vec::new(), queue: VecDeque::new() });
        self.dirty = true;
        Ok(())
    }

    /// The connection `accept` on listener `id` would take next, as (local, peer, IPv6 flow):
    /// `Err(EINVAL)` if it is not listening, `Ok(None)` if none waits.
    pub fn tcp_next_accept(&mut self, id: TcpId, now: u64) -> Result<Option<(FlowKey, bool)>, Errno> {
        let (s, st) = self.tcp_parts(id, now);
        let Phase::Listening(l) = &s.phase else { return Err(libc::EINVAL) };
        let Some(&hd) = l.queue.front() else { return Ok(None) };
        let t = st.socket(hd);
        let local = t.local_endpoint().map_or((Ipv4Addr::UNSPECIFIED, 0), |l| (v4(l.addr), l.port));
        let peer = t.remote_endpoint().map_or((Ipv4Addr::UNSPECIFIED, 0), |r| (v4(r.addr), r.port));
        Ok(Some(((local, peer), self.v6_flows.contains(&(local, peer)))))
    }

    /// `accept` on listener `id`: the oldest queued connection becomes a new socket with the
    /// listener's options (`EINVAL` if not listening, `EAGAIN` if none waits).
    pub fn tcp_accept(&mut self, id: TcpId, now: u64) -> Result<TcpId, Errno> {
        let ((local, peer), native) = self.tcp_next_accept(id, now)?.ok_or(libc::EAGAIN)?;
        let s = self.tcp_mut(id);
        let Phase::Listening(l) = &mut s.phase else { unreachable!("checked above") };
        let hd = l.queue.pop_front().expect("checked above");
        let c = TcpSocket {
            phase: Phase::Open(hd),
            local: Some(local),
            peer: Some(peer),
            was_connected: true,
            nodelay: s.nodelay,
            keepalive: s.keepalive,
            keepidle: s.keepidle,
            reuseaddr: s.reuseaddr,
            reuseport: s.reuseport,
            rcvbuf: s.rcvbuf,
            sndbuf: s.sndbuf,
            rcvbuf_set: s.rcvbuf_set,
            sndbuf_set: s.sndbuf_set,
            inet6: s.inet6.as_ref().map(|six| Inet6 { native_peer: native, ..six.clone() }),
            ..TcpSocket::new()
        };
        Ok(TcpId(self.tcp.insert(c) as u32))
    }

    /// Starts the connection of fresh TCP socket `id` to `dst:port` (an IPv6 flow if `native`),
    /// binding it first if unbound; its outcome shows in later polls.
    pub fn tcp_connect(&mut self, id: TcpId, dst: Ipv4Addr, port: u16, native: bool, now: u64) -> Result<(), Errno> {
        if !(dst.is_loopback() || dst.octets()[0] == 10) {
            return Err(libc::ENETUNREACH);
        }
        if port == 0 {
            return Err(libc::ECONNREFUSED);
        }
        if self.tcp_mut(id).local.is_none() {
            self.tcp_bind(id, Ipv4Addr::UNSPECIFIED, 0, now)?;
        }
        let host_ip = self.ip;
        let (s, st) = self.tcp_parts(id, now);
        let (lip, lport) = s.local.unwrap_or((Ipv4Addr::UNSPECIFIED, 0));
        let src = match () {
            _ if !lip.is_unspecified() => lip,
            _ if dst.is_loopback() => Ipv4Addr::LOCALHOST,
            _ => host_ip,
        };
        let mut t = new_stack_socket(s);
        t.set_timeout(Some(Duration::from_secs(CONNECT_TIMEOUT_S)));
        let hd = st.add(t);
        st.set_send_buffer(hd, send_buffer(s));
        if st.connect(hd, ep(dst, port), ep(src, lport)).is_err() {
            st.remove(hd);
            return Err(libc::EADDRNOTAVAIL);
        }
        s.phase = Phase::Open(hd);
        s.peer = Some((dst, port));
        s.local = Some((src, lport));
        if let Some(six) = s.inet6.as_mut() {
            six.native_peer = native;
        }
        self.note_flow(((src, lport), (dst, port)), native, now);
        self.dirty = true;
        Ok(())
    }

    /// The last descriptor of TCP socket `id` is closed: the stack finishes its connection
    /// ([`crate::tcp::release`]) and the handle is free again.
    pub fn tcp_close(&mut self, id: TcpId, now: u64) {
        let (s, st) = self.tcp_parts(id, now);
        crate::tcp::release(s, st, id.0 as usize);
        self.tcp.remove(id.0 as usize);
        self.dirty = true;
    }

    /// `shutdown(how)` of TCP socket `id` (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`): reading ends,
    /// and writing ends with a FIN after what is queued. `ENOTCONN` unless the connection is (or
    /// is becoming) synchronised, `EINVAL` for another `how`.
    pub fn tcp_shutdown(&mut self, id: TcpId, how: i32, now: u64) -> Result<(), Errno> {
        let (s, st) = self.tcp_parts(id, now);
        let hd = s.handle().ok_or(libc::ENOTCONN)?;
        let state = st.socket(hd).state();
        let live = matches!(
            state,
            State::Established
                | State::SynSent
                | State::SynReceived
                | State::CloseWait
                | State::FinWait1
                | State::FinWait2
        );
        if !live && !s.was_connected {
            return Err(libc::ENOTCONN);
        }
        if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
            return Err(libc::EINVAL);
        }
        if how != libc::SHUT_WR {
            s.shut_rd = true;
        }
        if how != libc::SHUT_RD {
            s.shut_wr = true;
            st.close(hd);
        }
        self.dirty = true;
        Ok(())
    }

    /// Resets TCP socket `id`'s connection at once, dropping what it had not sent (the socket
    /// stays, its connection `Closed`, until [`HostNet::tcp_close`]).
    pub fn tcp_abort(&mut self, id: TcpId, now: u64) {
        let (s, st) = self.tcp_parts(id, now);
        if let Some(hd) = s.handle() {
            st.abort(hd);
            self.dirty = true;
        }
    }

    /// A non-blocking write of `data` on TCP socket `id`: the bytes its send buffer took (maybe
    /// fewer than offered), `EAGAIN` when it took none or the handshake is not over, a pending
    /// error, or `EPIPE` once writing is shut.
    pub fn tcp_send(&mut self, id: TcpId, data: &[u8], now: u64) -> Result<usize, Errno> {
        let (s, st) = self.tcp_parts(id, now);
        let hd = s.handle().ok_or(libc::EPIPE)?;
        if let Some(err) = s.error.take() {
            return Err(err);
        }
        let t = st.socket(hd);
        if matches!(t.state(), State::SynSent | State::SynReceived) {
            return Err(libc::EAGAIN);
        }
        if s.shut_wr || !t.may_send() {
            return Err(libc::EPIPE);
        }
        let n = st.send_slice(hd, data, now).map_err(|_| libc::EPIPE)?;
        if n == 0 && !data.is_empty() {
            s.nospace = true;
            return Err(libc::EAGAIN);
        }
        self.dirty = true;
        Ok(n)
    }

    /// A non-blocking read of everything TCP socket `id` has received, onto `out`: the bytes
    /// taken, 0 at the end of the stream, `EAGAIN` when nothing waits yet, or a pending error.
    pub fn tcp_recv(&mut self, id: TcpId, out: &mut Vec<u8>, now: u64) -> Result<usize, Errno> {
        let (s, st) = self.tcp_parts(id, now);
        let hd = s.handle().ok_or(libc::ENOTCONN)?;
        if !s.shut_rd && st.socket(hd).recv_queue() > 0 {
            let n = st.recv_into(hd, out);
            s.seen.rx = st.socket(hd).recv_queue();
            self.dirty = true;
            return Ok(n);
        }
        if let Some(err) = s.error.take() {
            return Err(err);
        }
        let state = st.socket(hd).state();
        match () {
            _ if crate::tcp::read_ended(s, state) => Ok(0),
            _ if state == State::Closed => Err(libc::ENOTCONN),
            _ => Err(libc::EAGAIN),
        }
    }

    /// `bind` of UDP socket `id` to `ip:port` (port 0: an ephemeral one), with Linux's address
    /// and sharing rules ([`UdpPorts`]).
    pub fn udp_bind(&mut self, id: UdpId, ip: Ipv4Addr, port: u16) -> Result<(), Errno> {
        if self.udp_mut(id).local.is_some() {
            return Err(libc::EINVAL);
        }
        self.local_ip(ip)?;
        let port = match port {
            0 => self.ephemeral(|net, p| !net.udp_ports.is_free(p))?,
            p => p,
        };
        let s = self.udp_mut(id);
        let set = |name: i32| s.options.iter().any(|&((l, n), v)| l == libc::SOL_SOCKET && n == name && v != 0);
        let (reuseaddr, reuseport) = (set(libc::SO_REUSEADDR), set(libc::SO_REUSEPORT));
        let holder = UdpHolder { obj: id.0 as usize, ip, families: s.families(), reuseaddr, reuseport };
        if !self.udp_ports.bind(port, holder) {
            return Err(libc::EADDRINUSE);
        }
        self.udp_mut(id).local = Some((ip, port));
        Ok(())
    }

    /// The last descriptor of UDP socket `id` is closed: its port is released, what waits on it
    /// is dropped, and the handle is free again.
    pub fn udp_close(&mut self, id: UdpId) {
        if let Some(s) = self.udp.remove(id.0 as usize)
            && let Some(port) = s.local_port()
        {
            self.udp_ports.release(port, id.0 as usize);
        }
    }

    /// A UDP datagram (IPv4 packet `bytes`, unmarked; of an IPv6 flow if `native`) reached the
    /// host: it is queued on the socket Linux's lookup picks among those holding its port, whose
    /// handle is returned (`None`: nobody holds the port, or the packet does not decode).
    pub fn deliver_datagram(&mut self, bytes: &[u8], native: bool) -> Option<UdpId> {
        let p = crate::udp::decode(bytes).ok()?;
        let arrival = Arrival { src: p.src, dst: p.dst, v6: native };
        let udp = &self.udp;
        let i = self.udp_ports.lookup(arrival, |i| udp.get(i).and_then(|s| s.peer))?;
        let s = self.udp.get_mut(i)?;
        s.enqueue(Datagram { src: p.src, data: p.payload, v6: native }).then_some(UdpId(i as u32))
    }

    /// Records whether TCP connection `key` (local, remote) is an IPv6 flow (`native`). Entries
    /// of connections the stack no longer has are dropped now and then (whenever the set reaches
    /// a power of two from 1,024 up), so the set stays as large as the live connections.
    pub fn note_flow(&mut self, key: FlowKey, native: bool, now: u64) {
        if !native {
            self.v6_flows.remove(&key);
            return;
        }
        let n = self.v6_flows.len();
        if n >= 1024 && n.is_power_of_two() {
            let flows = std::mem::take(&mut self.v6_flows);
            let st = self.stack(now);
            self.v6_flows = flows.into_iter().filter(|&(l, r)| st.find(l, r).is_some()).collect();
        }
        self.v6_flows.insert(key);
    }

    /// TCP packet `packet` (unmarked; of an IPv6 flow if `native`) reached the host: it goes into
    /// the stack for the next poll. A connection request notes the flow's family, and is refused
    /// when listeners have its port but none takes its family (an `IPV6_V6ONLY` listener and an
    /// IPv4 peer, an `AF_INET` listener and an IPv6 peer), as Linux refuses it: then the RST to
    /// send (marked for an IPv6 flow) is returned instead.
    pub fn take_segment(&mut self, packet: Vec<u8>, native: bool, now: u64) -> Result<(), Vec<u8>> {
        if (native || self.has_inet6 || !self.v6_flows.is_empty())
            && let Some(s) = inet6::syn(&packet)
        {
            self.note_flow((s.dst, s.src), native, now);
            if self.refuses(&s, native) {
                let mut rst = inet6::refusal(&s);
                if native {
                    inet6::mark(&mut rst);
                }
                return Err(rst);
            }
        }
        self.stack(now).push_rx(packet);
        Ok(())
    }

    /// Whether connection request `s` is refused because listeners have its port but none takes
    /// its family.
    fn refuses(&self, s: &inet6::Syn, native: bool) -> bool {
        let mut any = false;
        for (_, t) in self.tcp.iter() {
            let Some((ip, port)) = t.local else { continue };
            if !matches!(t.phase, Phase::Listening(_)) || port != s.dst.1 || !(ip.is_unspecified() || ip == s.dst.0) {
                continue;
            }
            any = true;
            if t.inet6.as_ref().map_or(!native, |six| six.takes(native)) {
                return false;
            }
        }
        any
    }

    /// Runs the stack at `now`, then lets the sockets see what changed ([`HostNet::after_poll`]).
    pub fn poll(&mut self, now: u64) -> PollOutcome {
        let Some(st) = self.stack.as_deref_mut() else { return PollOutcome::default() };
        st.run(now);
        self.after_poll()
    }

    /// The packets the stack has sent since the last call, those of IPv6 flows marked.
    pub fn take_transmit(&mut self) -> Vec<Vec<u8>> {
        let Some(st) = self.stack.as_deref_mut() else { return Vec::new() };
        let mut out = st.take_tx();
        if !self.v6_flows.is_empty() {
            for p in &mut out {
                if inet6::tuple(p).is_some_and(|t| self.v6_flows.contains(&t)) {
                    inet6::mark(p);
                }
            }
        }
        out
    }

    /// When the stack must next be polled (ns), if ever.
    pub fn poll_timeout(&mut self, now: u64) -> Option<u64> {
        self.stack.as_deref_mut()?.next_poll(now)
    }

    /// After a poll of the stack: finish orphaned connections, refill listening pools and move
    /// established connections to accept queues, turn resets and timeouts into pending errors,
    /// and count readiness changes and wake-ups.
    pub fn after_poll(&mut self) -> PollOutcome {
        let mut out = PollOutcome::default();
        let Some(st) = self.stack.as_deref_mut() else { return out };
        out.again |= finish_orphans(st);
        let resets = std::mem::take(&mut st.resets);
        let mut misfits = Vec::new();
        for (_, s) in self.tcp.iter_mut() {
            let mut now = Seen { state: None, ..Seen::default() };
            let mut arrivals = 0;
            match s.phase {
                Phase::Fresh => {}
                Phase::Listening(_) => {
                    arrivals = settle_listener(s, st, &self.v6_flows, &mut misfits);
                    let Phase::Listening(l) = &s.phase else { unreachable!("a listener") };
                    now.queued = l.queue.len();
                }
                Phase::Open(hd) => {
                    let t = st.socket(hd);
                    now.rx = t.recv_queue();
                    now.state = Some(t.state());
                    settle_connection(s, st, hd, &resets);
                }
            }
            now.mask = mask(s, st);
            let (w, nospace) = wakeups_between(s.seen, now, arrivals, s.nospace);
            s.wakeups.readable += w.readable;
            s.wakeups.writable += w.writable;
            s.wakeups.all += w.all;
            s.nospace = nospace;
            // Blocked calls are retried on any change (they look at the levels themselves).
            let before = s.seen;
            if now.mask != before.mask || now.rx > before.rx || now.queued > before.queued || now.state != before.state
            {
                out.changed = true;
            }
            s.seen = now;
        }
        for (hd, (local, native)) in misfits {
            match home(&mut self.tcp, local, native) {
                Some(l) => l.pool.push(hd),
                None => {
                    st.abort(hd);
                    st.orphans.push(hd);
                }
            }
            out.again = true;
        }
        out
    }
}

/// Whether two uses of a port, taking peers of families `a` and `b`, share a family.
fn share(a: (bool, bool), b: (bool, bool)) -> bool {
    (a.0 && b.0) || (a.1 && b.1)
}

/// Whether `port` on `ip` can be bound by TCP socket `me` with these flags and families.
fn port_free(st: &TcpStack, ip: Ipv4Addr, port: u16, reuse: (bool, bool), fams: (bool, bool), me: TcpId) -> bool {
    let (reuseaddr, reuseport) = reuse;
    let me = PortOwner::Socket(me.0 as usize);
    st.ports.iter().filter(|p| p.port == port && p.owner != me).all(|p| {
        let overlap = (p.ip.is_unspecified() || ip.is_unspecified() || p.ip == ip) && share(fams, p.families);
        !overlap || (reuseport && p.reuseport) || (reuseaddr && p.reuseaddr && !p.listening)
    })
}

/// Connections whose descriptors are closed: those the stack has finished are removed with their
/// ports; one that receives data is reset, as Linux answers data for a closed descriptor.
/// Returns whether a reset was made (the stack has something to send).
fn finish_orphans(st: &mut TcpStack) -> bool {
    let mut again = false;
    let mut orphans = std::mem::take(&mut st.orphans);
    orphans.retain(|&hd| {
        let t = st.socket(hd);
        if t.state() == State::Closed && t.remote_endpoint().is_none() {
            st.remove(hd);
            st.ports.retain(|p| p.owner != PortOwner::Conn(hd));
            return false;
        }
        if t.recv_queue() > 0 && t.state() != State::Closed {
            st.abort(hd);
            again = true;
        }
        true
    });
    st.orphans = orphans;
    again
}

/// A connection a listener took for another: its stack handle, local endpoint, and whether it
/// is an IPv6 flow.
type Misfit = (smoltcp::iface::SocketHandle, ((Ipv4Addr, u16), bool));

/// A listener after a poll: connections of a family it does not take go to `misfits` (for the
/// listener that does), established ones move to its accept queue (holding their port), and the
/// pool of listening stack sockets is topped up to what the backlog allows. Returns how many
/// connections were queued.
fn settle_listener(
    s: &mut TcpSocket,
    st: &mut TcpStack,
    v6_flows: &BTreeSet<FlowKey>,
    misfits: &mut Vec<Misfit>,
) -> usize {
    let (reuse, fams) = ((s.reuseaddr, s.reuseport), s.families());
    let Phase::Listening(l) = &mut s.phase else { return 0 };
    let six = s.inet6.as_ref();
    let mut arrivals = 0;
    l.pool.retain(|&hd| {
        let t = st.socket(hd);
        if matches!(t.state(), State::Listen | State::Closed) {
            return true;
        }
        let Some(m) = stray(t, six, v6_flows) else { return true };
        misfits.push((hd, m));
        false
    });
    l.pool.retain(|&hd| match st.socket(hd).state() {
        State::Listen | State::SynReceived => true,
        State::Closed => {
            st.remove(hd);
            false
        }
        _ => {
            let t = st.socket(hd);
            let (ip, port) = t.local_endpoint().map_or((Ipv4Addr::UNSPECIFIED, 0), |e| (v4(e.addr), e.port));
            st.ports.push(PortUse {
                port,
                ip,
                owner: PortOwner::Conn(hd),
                reuseaddr: reuse.0,
                reuseport: reuse.1,
                listening: false,
                families: fams,
            });
            l.queue.push_back(hd);
            arrivals += 1;
            false
        }
    });
    let listening = l.pool.iter().filter(|&&hd| st.socket(hd).state() == State::Listen).count();
    let room = (l.backlog + 1).saturating_sub(l.queue.len()).min(LISTEN_POOL);
    if let Some((ip, port)) = s.local {
        for _ in listening..room {
            let mut t = new_stack_socket(s);
            let addr = (!ip.is_unspecified()).then_some(IpAddress::Ipv4(ip));
            if t.listen(IpListenEndpoint { addr, port }).is_ok() {
                let hd = st.add(t);
                st.set_send_buffer(hd, send_buffer(s));
                let Phase::Listening(l) = &mut s.phase else { unreachable!("a listener") };
                l.pool.push(hd);
            }
        }
    }
    arrivals
}

/// A connection after a poll: the connect timeout ends once it is established, and a reset or a
/// timeout becomes its pending error (`SO_ERROR`) as Linux reports it.
fn settle_connection(
    s: &mut TcpSocket,
    st: &mut TcpStack,
    hd: smoltcp::iface::SocketHandle,
    resets: &[(smoltcp::iface::SocketHandle, State)],
) {
    let t = st.socket(hd);
    let state = t.state();
    if synchronised(state) && !s.was_connected {
        s.was_connected = true;
        t.set_timeout(None);
    }
    if let Some(&(_, before)) = resets.iter().find(|(h, _)| *h == hd) {
        s.error = Some(match before {
            State::SynSent | State::SynReceived => libc::ECONNREFUSED,
            State::CloseWait => libc::EPIPE,
            _ => libc::ECONNRESET,
        });
    } else if state == State::Closed
        && s.error.is_none()
        && s.seen.state.is_some_and(|b| b != State::Closed && b != State::TimeWait && b != State::LastAck)
    {
        s.error = Some(libc::ETIMEDOUT);
    }
}

/// If connection `t`, taken by a listener with IPv6 side `six`, is of a family that listener
/// does not take: its local endpoint, and whether it is an IPv6 flow.
fn stray(
    t: &tcp::Socket<'static>,
    six: Option<&Inet6>,
    v6_flows: &BTreeSet<FlowKey>,
) -> Option<((Ipv4Addr, u16), bool)> {
    let local = t.local_endpoint().map(|l| (v4(l.addr), l.port))?;
    let remote = t.remote_endpoint().map(|r| (v4(r.addr), r.port))?;
    let native = v6_flows.contains(&(local, remote));
    let takes = six.map_or(!native, |six| six.takes(native));
    (!takes).then_some((local, native))
}

/// The listener that takes a connection to `local` of this family (`native`: IPv6).
fn home(tcp: &mut Table<TcpSocket>, local: (Ipv4Addr, u16), native: bool) -> Option<&mut Listener> {
    tcp.iter_mut().find_map(|(_, s)| {
        let here = s.local.is_some_and(|(ip, port)| port == local.1 && (ip.is_unspecified() || ip == local.0));
        let takes = s.inet6.as_ref().map_or(!native, |six| six.takes(native));
        match &mut s.phase {
            Phase::Listening(l) if here && takes => Some(l),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests;
