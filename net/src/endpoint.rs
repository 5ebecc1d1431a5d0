//! A host's TCP and UDP endpoint without a process behind it: what a surrogate identity uses
//! where it meets a real client. It owns the host's [`TcpStack`], its listening ports, its
//! connections and its datagram sockets, and speaks in the sans-IO manner of the rest of this
//! crate: [`Endpoint::handle_packet`] takes an IPv4 packet that reached the host,
//! [`Endpoint::poll_transmit`] gives the packets it sends, [`Endpoint::poll_timeout`] says when it
//! must next be polled, connections are handles ([`ConnId`]) with `send`/`recv`/`close`, and
//! datagram sockets are their bound ports ([`UdpPort`]) with `send_to`/`recv_from`.
//! [`Endpoint::poll_event`] reports accepted connections, established dials, ends and datagrams.
//!
//! It is a thin layer over a [`HostNet`], the socket table direct hosts' syscalls use, so an
//! identity's sockets follow the same Linux rules (ports, listen pool and accept queue, resets,
//! pending errors) as a real program's; this endpoint only turns them into events.

use crate::host::{HostNet, TcpId, UdpId};
use crate::tcp::Phase;
use crate::udp::MAX_UDP_PAYLOAD;
use smoltcp::socket::tcp::State;
use smoltcp::wire::{IpProtocol, Ipv4Packet};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Send and receive buffer of each connection: 256 KiB keeps a 50 Mbit/s path with a 40 ms
/// round trip (250 kB in flight) from being window-limited, with window scaling.
pub const CONN_BUFFER: usize = 256 * 1024;
/// Connections waiting to be accepted per listening port at most (Linux's `somaxconn`); the
/// endpoint accepts every one after each poll, so this only bounds a burst at one instant.
const BACKLOG: i32 = 4096;

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
    id: TcpId,
    /// Reported `Connected`/`Accepted` already.
    up: bool,
    /// A dial (reported as `Connected`), not an accepted connection.
    dialled: bool,
}

/// A host's TCP endpoint (see the module documentation).
pub struct Endpoint {
    net: HostNet,
    /// Listening sockets by port.
    listening: BTreeMap<u16, TcpId>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u32,
    events: VecDeque<NetEvent>,
    tx: VecDeque<Vec<u8>>,
    /// Datagram sockets by bound port.
    udp: BTreeMap<u16, UdpId>,
    /// The time of the latest call that gave one (ns).
    now: u64,
}

impl Endpoint {
    /// The endpoint of a host with address `ip`, its sequence numbers drawn from `seed`.
    pub fn new(ip: Ipv4Addr, seed: u64, now: u64) -> Endpoint {
        let mut net = HostNet::new(ip, seed);
        net.stack(now);
        Endpoint {
            net,
            listening: BTreeMap::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            events: VecDeque::new(),
            tx: VecDeque::new(),
            udp: BTreeMap::new(),
            now,
        }
    }

    /// The host's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.net.ip()
    }

    /// A TCP socket with this endpoint's settings: [`CONN_BUFFER`] to send and receive, and no
    /// Nagle delay, as libp2p sets `TCP_NODELAY`.
    fn socket(&mut self) -> TcpId {
        let id = self.net.tcp_socket(false);
        let s = self.net.tcp_mut(id);
        s.nodelay = true;
        (s.sndbuf, s.sndbuf_set) = (CONN_BUFFER as i32, true);
        // `SO_RCVBUF` counts bookkeeping too: the window is half of it, as on Linux.
        (s.rcvbuf, s.rcvbuf_set) = (2 * CONN_BUFFER as i32, true);
        id
    }

    /// Accepts connections on `port` from now on.
    pub fn listen(&mut self, port: u16) -> Result<(), EndpointError> {
        if self.listening.contains_key(&port) {
            return Err(EndpointError::AddrInUse);
        }
        let id = self.socket();
        let now = self.now;
        let bound = self.net.tcp_bind(id, Ipv4Addr::UNSPECIFIED, port, now);
        if bound.and_then(|()| self.net.tcp_listen(id, BACKLOG, now)).is_err() {
            self.net.tcp_close(id, now);
            return Err(EndpointError::AddrInUse);
        }
        self.listening.insert(port, id);
        self.poll(now);
        Ok(())
    }

    /// Starts a connection to `remote`; `Connected` (or `Closed`, if refused) follows.
    pub fn connect(&mut self, now: u64, remote: SocketAddrV4) -> Result<ConnId, EndpointError> {
        let id = self.socket();
        if self.net.tcp_connect(id, *remote.ip(), remote.port(), false, now).is_err() {
            self.net.tcp_close(id, now);
            return Err(EndpointError::CannotDial);
        }
        let conn = self.add(id, true);
        self.poll(now);
        Ok(conn)
    }

    /// The local address and port of connection `conn` (a dial's is an ephemeral port).
    pub fn local_addr(&mut self, conn: ConnId) -> Option<SocketAddrV4> {
        let id = self.conns.get(&conn)?.id;
        self.net.tcp_ref(id).local.map(|(ip, port)| SocketAddrV4::new(ip, port))
    }

    /// Takes an IPv4 packet that reached the host (any bytes: what does not parse is dropped).
    /// A datagram goes to the socket bound to its port, if any; a segment to the TCP stack.
    pub fn handle_packet(&mut self, now: u64, packet: Vec<u8>) {
        let header = Ipv4Packet::new_checked(&packet[..]).map(|p| (p.next_header(), p.dst_addr()));
        if let Ok((IpProtocol::Udp, dst)) = header {
            if dst == self.net.ip()
                && let Some(id) = self.net.deliver_datagram(&packet, false)
            {
                let port = self.net.udp_ref(id).local_port().expect("a datagram reaches a bound socket");
                self.events.push_back(NetEvent::Datagram(UdpPort(port)));
            }
            return;
        }
        if let Err(rst) = self.net.take_segment(packet, false, now) {
            self.tx.push_back(rst);
        }
        self.poll(now);
    }

    /// Binds a datagram socket to `port` (0: a free ephemeral port).
    pub fn bind_udp(&mut self, port: u16) -> Result<UdpPort, EndpointError> {
        let id = self.net.udp_socket(false);
        let ip = self.net.ip();
        if self.net.udp_bind(id, ip, port).is_err() {
            self.net.udp_close(id);
            return Err(EndpointError::AddrInUse);
        }
        let port = self.net.udp_ref(id).local_port().expect("bound above");
        self.udp.insert(port, id);
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
        self.tx.push_back(crate::udp::encode((self.net.ip(), from.0), (*to.ip(), to.port()), data));
        Ok(data.len())
    }

    /// Takes the oldest datagram waiting on socket `on`, with its sender (`None` when none waits).
    pub fn recv_from(&mut self, on: UdpPort) -> Result<Option<(SocketAddrV4, Vec<u8>)>, EndpointError> {
        let &id = self.udp.get(&on.0).ok_or(EndpointError::NoSocket)?;
        let d = self.net.udp_mut(id).dequeue(false);
        Ok(d.map(|d| (SocketAddrV4::new(d.src.0, d.src.1), d.data)))
    }

    /// Closes datagram socket `on`, dropping what waits on it; its port is free again.
    pub fn close_udp(&mut self, on: UdpPort) {
        if let Some(id) = self.udp.remove(&on.0) {
            self.net.udp_close(id);
        }
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
        self.net.poll_timeout(now)
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
        let id = self.conns.get(&conn).ok_or(EndpointError::NoConnection)?.id;
        let n = match self.net.tcp_send(id, data, now) {
            Ok(n) => n,
            Err(libc::EAGAIN) if self.conns[&conn].up => 0,
            Err(_) => return Err(EndpointError::NotWritable),
        };
        self.poll(now);
        Ok(n)
    }

    /// Room left in a connection's send buffer (0 for an unknown connection).
    pub fn send_room(&mut self, conn: ConnId) -> usize {
        let Some(c) = self.conns.get(&conn) else { return 0 };
        let (s, st) = self.net.tcp_parts(c.id, self.now);
        s.handle().map_or(0, |hd| st.send_room(hd))
    }

    /// Takes what a connection has received (empty when nothing is waiting).
    pub fn recv(&mut self, now: u64, conn: ConnId) -> Result<Vec<u8>, EndpointError> {
        let id = self.conns.get(&conn).ok_or(EndpointError::NoConnection)?.id;
        let mut data = Vec::new();
        if self.net.tcp_recv(id, &mut data, now).is_ok_and(|n| n > 0) {
            // The window opened: the stack may have an update to send.
            self.poll(now);
        }
        Ok(data)
    }

    /// Closes a connection gracefully (FIN after what is queued); `Closed` follows once done.
    pub fn close(&mut self, now: u64, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = self.net.tcp_shutdown(c.id, libc::SHUT_WR, now);
            self.poll(now);
        }
    }

    /// Resets a connection at once.
    pub fn abort(&mut self, now: u64, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            self.net.tcp_abort(c.id, now);
            self.poll(now);
        }
    }

    /// Connections open (for memory accounting).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn add(&mut self, id: TcpId, dialled: bool) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(conn, Conn { id, up: false, dialled });
        conn
    }

    /// Runs the stack at `now` and turns what changed into events and packets.
    fn poll(&mut self, now: u64) {
        self.now = now;
        loop {
            let outcome = self.net.poll(now);
            self.net.dirty = false;
            let progressed = self.accept_all(now) | self.report(now);
            self.tx.extend(self.net.take_transmit());
            if !(progressed || outcome.again) {
                break;
            }
        }
    }

    /// Connections waiting on listening ports become this endpoint's.
    fn accept_all(&mut self, now: u64) -> bool {
        let mut any = false;
        let listeners: Vec<TcpId> = self.listening.values().copied().collect();
        for l in listeners {
            while let Ok(id) = self.net.tcp_accept(l, now) {
                self.add(id, false);
                any = true;
            }
        }
        any
    }

    /// Reports connections coming up, data waiting, and ends; forgets ended connections (the
    /// stack finishes them, TIME-WAIT included).
    fn report(&mut self, now: u64) -> bool {
        let mut ended = Vec::new();
        let mut changed = false;
        for (&conn, c) in self.conns.iter_mut() {
            let (s, st) = self.net.tcp_parts(c.id, now);
            let Phase::Open(hd) = s.phase else { continue };
            let t = st.socket(hd);
            let state = t.state();
            if !c.up && !matches!(state, State::SynSent | State::SynReceived | State::Closed | State::Listen) {
                c.up = true;
                changed = true;
                let remote =
                    s.peer.map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), |(ip, p)| SocketAddrV4::new(ip, p));
                self.events.push_back(match c.dialled {
                    true => NetEvent::Connected(conn),
                    false => NetEvent::Accepted { conn, remote },
                });
            }
            if t.recv_queue() > 0 {
                self.events.push_back(NetEvent::Readable(conn));
            }
            if state == State::Closed || (state == State::TimeWait && t.recv_queue() == 0) {
                ended.push(conn);
            }
        }
        for conn in ended {
            let c = self.conns.remove(&conn).expect("listed above");
            self.net.tcp_close(c.id, now);
            self.events.push_back(NetEvent::Closed(conn));
            changed = true;
        }
        changed
    }
}

#[cfg(test)]
mod tests;
