//! A host's TCP and UDP endpoint without a process behind it: what a surrogate identity uses
//! where it meets a real client. It owns the host's [`TcpStack`], its listening ports, its
//! connections and its datagram sockets, and speaks in the sans-IO manner of the rest of this
//! crate: [`Endpoint::handle_packet`] takes an IPv4 packet that reached the host,
//! [`Endpoint::poll_transmit`] gives the packets it sends, [`Endpoint::poll_timeout`] says when it
//! must next be polled, connections are handles ([`ConnId`]) with `send`/`recv`/`close`, and
//! datagram sockets are their bound ports ([`UdpPort`]) with `send_to`/`recv_from`.
//! [`Endpoint::poll_event`] reports accepted connections, established dials, ends and datagrams.
//!
//! Direct hosts run Linux's socket calls on the same [`TcpStack`] (their descriptor logic lives
//! with their syscalls); this endpoint is the small surface an in-simulator peer needs.

use crate::stack::TcpStack;
use crate::udp::{Datagram, MAX_UDP_PAYLOAD, UdpSocket};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, IpProtocol, Ipv4Packet};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Send and receive buffer of each connection: 256 KiB keeps a 50 Mbit/s path with a 40 ms
/// round trip (250 kB in flight) from being window-limited, with window scaling.
pub const CONN_BUFFER: usize = 256 * 1024;
/// Sockets kept in LISTEN per port, refilled after every packet; those half-way through a
/// handshake come on top, so any number of handshakes may be in progress at once.
pub const LISTEN_POOL: usize = 2;
/// The first ephemeral port of dials (Linux's default range starts here too).
const EPHEMERAL: u16 = 49152;

/// A connection of this endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u32);

/// A datagram socket of this endpoint, named by the UDP port it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdpPort(pub u16);

/// What happened on the endpoint, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A peer connected to a listening port.
    Accepted {
        /// The new connection.
        conn: ConnId,
        /// The peer's address.
        remote: SocketAddrV4,
    },
    /// A dial completed.
    Connected(ConnId),
    /// Bytes are waiting in the connection's receive buffer.
    Readable(ConnId),
    /// The connection is over (closed by both sides, reset, refused or timed out); its handle is
    /// no longer valid.
    Closed(ConnId),
    /// A datagram was queued on a datagram socket (one event per datagram).
    Datagram(UdpPort),
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The port is taken.
    #[error("address in use")]
    AddrInUse,
    /// No such connection (never made, or already reported closed).
    #[error("no such connection")]
    NoConnection,
    /// The connection cannot send any more (closed, or not established).
    #[error("connection not writable")]
    NotWritable,
    /// No free ephemeral port, or the stack refused the dial.
    #[error("cannot dial")]
    CannotDial,
    /// No datagram socket is bound to that port.
    #[error("no such datagram socket")]
    NoSocket,
    /// A datagram larger than one IPv4 packet can carry.
    #[error("message too long")]
    TooLarge,
}

/// One connection's record.
struct Conn {
    handle: SocketHandle,
    /// Reported `Connected`/`Accepted` already.
    up: bool,
    /// A dial (reported as `Connected`), not an accepted connection.
    dialled: bool,
}

/// A host's TCP endpoint (see the module documentation).
pub struct Endpoint {
    ip: Ipv4Addr,
    stack: TcpStack,
    listening: BTreeMap<u16, Vec<SocketHandle>>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    next_port: u16,
    events: VecDeque<NetEvent>,
    tx: VecDeque<Vec<u8>>,
    /// Datagram sockets by bound port (UDP ports are apart from TCP's, as on Linux).
    udp: BTreeMap<u16, UdpSocket>,
    next_udp_port: u16,
}

impl Endpoint {
    /// The endpoint of a host with address `ip`, its sequence numbers drawn from `seed`.
    pub fn new(ip: Ipv4Addr, seed: u64, now: u64) -> Endpoint {
        Endpoint {
            ip,
            stack: TcpStack::new(ip, seed, now),
            listening: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            next_port: EPHEMERAL,
            events: VecDeque::new(),
            tx: VecDeque::new(),
            udp: BTreeMap::new(),
            next_udp_port: EPHEMERAL,
        }
    }

    /// The host's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Accepts connections on `port` from now on.
    pub fn listen(&mut self, port: u16) -> Result<(), EndpointError> {
        if self.listening.contains_key(&port) {
            return Err(EndpointError::AddrInUse);
        }
        self.listening.insert(port, Vec::new());
        self.refill();
        Ok(())
    }

    /// Starts a connection to `remote`; `Connected` (or `Closed`, if refused) follows.
    pub fn connect(&mut self, now: u64, remote: SocketAddrV4) -> Result<ConnId, EndpointError> {
        let port = self.free_port().ok_or(EndpointError::CannotDial)?;
        let handle = self.stack.add(new_socket());
        let local = IpEndpoint::new(IpAddress::Ipv4(self.ip), port);
        let to = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        if self.stack.connect(handle, to, local).is_err() {
            self.stack.remove(handle);
            return Err(EndpointError::CannotDial);
        }
        let id = self.add(handle, true);
        self.poll(now);
        Ok(id)
    }

    /// The local address and port of connection `conn` (a dial's is an ephemeral port).
    pub fn local_addr(&mut self, conn: ConnId) -> Option<SocketAddrV4> {
        let handle = self.conns.get(&conn)?.handle;
        self.stack
            .socket(handle)
            .local_endpoint()
            .map(|IpEndpoint { addr: IpAddress::Ipv4(ip), port }| SocketAddrV4::new(ip, port))
    }

    /// Takes an IPv4 packet that reached the host (any bytes: what does not parse is dropped).
    /// A datagram goes to the socket bound to its port, if any; a segment to the TCP stack.
    pub fn handle_packet(&mut self, now: u64, packet: Vec<u8>) {
        let udp = Ipv4Packet::new_checked(&packet[..]).is_ok_and(|p| p.next_header() == IpProtocol::Udp);
        if udp {
            self.take_datagram(&packet);
            return;
        }
        self.stack.push_rx(packet);
        self.poll(now);
    }

    /// Binds a datagram socket to `port` (0: a free ephemeral port).
    pub fn bind_udp(&mut self, port: u16) -> Result<UdpPort, EndpointError> {
        let port = match port {
            0 => self.free_udp_port().ok_or(EndpointError::AddrInUse)?,
            p if self.udp.contains_key(&p) => return Err(EndpointError::AddrInUse),
            p => p,
        };
        let mut socket = UdpSocket::new();
        socket.local = Some((self.ip, port));
        self.udp.insert(port, socket);
        Ok(UdpPort(port))
    }

    /// Sends `data` from datagram socket `from` to `to`; returns the bytes sent.
    pub fn send_to(&mut self, from: UdpPort, to: SocketAddrV4, data: &[u8]) -> Result<usize, EndpointError> {
        if !self.udp.contains_key(&from.0) {
            return Err(EndpointError::NoSocket);
        }
        if data.len() > MAX_UDP_PAYLOAD {
            return Err(EndpointError::TooLarge);
        }
        self.tx.push_back(crate::udp::encode((self.ip, from.0), (*to.ip(), to.port()), data));
        Ok(data.len())
    }

    /// Takes the oldest datagram waiting on socket `on`, with its sender (`None` when none waits).
    pub fn recv_from(&mut self, on: UdpPort) -> Result<Option<(SocketAddrV4, Vec<u8>)>, EndpointError> {
        let socket = self.udp.get_mut(&on.0).ok_or(EndpointError::NoSocket)?;
        Ok(socket.dequeue(false).map(|d| (SocketAddrV4::new(d.src.0, d.src.1), d.data)))
    }

    /// Closes datagram socket `on`, dropping what waits on it; its port is free again.
    pub fn close_udp(&mut self, on: UdpPort) {
        self.udp.remove(&on.0);
    }

    /// Datagram sockets open (for memory accounting).
    pub fn udp_sockets(&self) -> usize {
        self.udp.len()
    }

    /// Lets time pass to `now` (retransmissions, delayed ACKs, TIME-WAIT).
    pub fn handle_timeout(&mut self, now: u64) {
        self.poll(now);
    }

    /// When the endpoint must next be polled (ns), if ever; always after `now`.
    pub fn poll_timeout(&mut self, now: u64) -> Option<u64> {
        self.stack.next_poll(now)
    }

    /// The next IPv4 packet the host sends, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    /// Queues bytes on a connection; returns how many fit in its send buffer.
    pub fn send(&mut self, now: u64, conn: ConnId, data: &[u8]) -> Result<usize, EndpointError> {
        let handle = self.conns.get(&conn).ok_or(EndpointError::NoConnection)?.handle;
        let n = self.stack.send_slice(handle, data, now).map_err(|_| EndpointError::NotWritable)?;
        self.poll(now);
        Ok(n)
    }

    /// Room left in a connection's send buffer (0 for an unknown connection).
    pub fn send_room(&mut self, conn: ConnId) -> usize {
        let Some(c) = self.conns.get(&conn) else { return 0 };
        self.stack.send_room(c.handle)
    }

    /// Takes what a connection has received (empty when nothing is waiting).
    pub fn recv(&mut self, now: u64, conn: ConnId) -> Result<Vec<u8>, EndpointError> {
        let handle = self.conns.get(&conn).ok_or(EndpointError::NoConnection)?.handle;
        let mut data = Vec::new();
        if self.stack.recv_into(handle, &mut data) > 0 {
            // The window opened: the stack may have an update to send.
            self.poll(now);
        }
        Ok(data)
    }

    /// Closes a connection gracefully (FIN after what is queued); `Closed` follows once done.
    pub fn close(&mut self, now: u64, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            self.stack.close(c.handle);
            self.poll(now);
        }
    }

    /// Resets a connection at once.
    pub fn abort(&mut self, now: u64, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            self.stack.abort(c.handle);
            self.poll(now);
        }
    }

    /// Connections open (for memory accounting).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn add(&mut self, handle: SocketHandle, dialled: bool) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(id, Conn { handle, up: false, dialled });
        id
    }

    /// Queues a datagram on the socket bound to its destination port. A datagram to a port
    /// nobody holds, one that does not decode, or one beyond the socket's receive buffer is
    /// dropped (Linux answers the first with an ICMP port-unreachable, which is not modelled).
    fn take_datagram(&mut self, packet: &[u8]) {
        let Ok(d) = crate::udp::decode(packet) else { return };
        if d.dst.0 != self.ip {
            return;
        }
        let Some(socket) = self.udp.get_mut(&d.dst.1) else { return };
        if socket.enqueue(Datagram { src: d.src, data: d.payload, v6: false }) {
            self.events.push_back(NetEvent::Datagram(UdpPort(d.dst.1)));
        }
    }

    fn free_udp_port(&mut self) -> Option<u16> {
        for _ in 0..16384 {
            let p = self.next_udp_port;
            self.next_udp_port = if p == u16::MAX { EPHEMERAL } else { p + 1 };
            if !self.udp.contains_key(&p) {
                return Some(p);
            }
        }
        None
    }

    fn free_port(&mut self) -> Option<u16> {
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { EPHEMERAL } else { p + 1 };
            let taken = self.listening.contains_key(&p)
                || self.conns.values().any(|c| {
                    self.stack.sockets.get::<tcp::Socket>(c.handle).local_endpoint().is_some_and(|l| l.port == p)
                });
            if !taken {
                return Some(p);
            }
        }
        None
    }

    /// Runs the stack at `now` and turns what changed into events and packets.
    fn poll(&mut self, now: u64) {
        loop {
            self.stack.run(now);
            let progressed = self.adopt_established() | self.report();
            self.tx.extend(self.stack.take_tx());
            self.refill();
            if !progressed {
                break;
            }
        }
        self.stack.resets.clear();
    }

    /// Listening sockets that left LISTEN become connections.
    fn adopt_established(&mut self) -> bool {
        let mut found = Vec::new();
        for pool in self.listening.values_mut() {
            pool.retain(|&h| {
                let st = self.stack.sockets.get::<tcp::Socket>(h).state();
                if matches!(st, State::Listen | State::SynReceived) {
                    return true;
                }
                found.push((h, st));
                false
            });
        }
        let any = !found.is_empty();
        for (h, st) in found {
            if st == State::Closed {
                self.stack.remove(h);
            } else {
                self.add(h, false);
            }
        }
        any
    }

    /// Reports connections coming up, data waiting, and ends; forgets ended connections.
    fn report(&mut self) -> bool {
        let mut ended = Vec::new();
        let mut changed = false;
        for (&id, c) in self.conns.iter_mut() {
            let s = self.stack.sockets.get_mut::<tcp::Socket>(c.handle);
            let st = s.state();
            if !c.up && !matches!(st, State::SynSent | State::SynReceived | State::Closed | State::Listen) {
                c.up = true;
                changed = true;
                self.events.push_back(match c.dialled {
                    true => NetEvent::Connected(id),
                    false => NetEvent::Accepted { conn: id, remote: remote_of(s) },
                });
            }
            if s.recv_queue() > 0 {
                self.events.push_back(NetEvent::Readable(id));
            }
            if st == State::Closed || (st == State::TimeWait && s.recv_queue() == 0) {
                ended.push(id);
            }
        }
        for id in ended {
            let c = self.conns.remove(&id).expect("listed above");
            self.stack.remove(c.handle);
            self.events.push_back(NetEvent::Closed(id));
            changed = true;
        }
        changed
    }

    /// Keeps [`LISTEN_POOL`] sockets in LISTEN on every listening port, beside those that took a
    /// SYN and are half-way through their handshake: Linux's backlog, which a burst of dials at one
    /// instant must not overrun.
    fn refill(&mut self) {
        for (&port, pool) in self.listening.iter_mut() {
            let sockets = &self.stack.sockets;
            let mut idle = pool.iter().filter(|&&h| sockets.get::<tcp::Socket>(h).state() == State::Listen).count();
            while idle < LISTEN_POOL {
                idle += 1;
                let mut s = new_socket();
                if s.listen(IpListenEndpoint { addr: None, port }).is_err() {
                    break;
                }
                pool.push(self.stack.add(s));
            }
        }
    }
}

/// A connection with Linux's windows (kept by the stack) and no Nagle delay, as libp2p sets
/// `TCP_NODELAY`.
fn new_socket() -> tcp::Socket<'static> {
    let mut s = TcpStack::new_socket(CONN_BUFFER, CONN_BUFFER);
    s.set_nagle_enabled(false);
    s
}

fn remote_of(s: &tcp::Socket<'_>) -> SocketAddrV4 {
    match s.remote_endpoint() {
        Some(IpEndpoint { addr: IpAddress::Ipv4(ip), port }) => SocketAddrV4::new(ip, port),
        None => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

#[cfg(test)]
mod tests;
