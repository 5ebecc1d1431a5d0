//! A host's TCP/IP stack: one `smoltcp` interface (medium IP) whose device collects the IPv4
//! packets the stack transmits, for the caller to put on the simulated network, and is fed the
//! TCP packets that reach the host. Sans-IO: the caller gives the time (simulated ns) to every
//! call, takes what was transmitted, and polls again at [`TcpStack::next_poll`] (retransmission,
//! delayed ACK, keep-alive, TIME-WAIT). Direct hosts drive one per host from their socket
//! calls; nothing here knows an engine or a process.
//!
//! smoltcp's own congestion controller starts at 2 KiB and never restarts after idle, and its
//! ACK delay is a fixed 10 ms, so the stack replaces both with Linux's rules ([`crate::linux`])
//! through smoltcp's public API: sockets run without smoltcp's controller
//! (`CongestionControl::None`), the program's bytes wait in a per-connection staging queue and
//! enter smoltcp's send buffer only as the congestion window allows (so unacknowledged plus
//! unsent bytes never exceed it), and each socket's ACK delay is set before every received
//! segment from the connection's ACK clock. The stack watches every segment in and out to
//! drive both.

use crate::linux::{AckClock, Sender};
use crate::pages;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpProtocol, Ipv4Packet, TcpPacket};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

/// IP MTU of every simulated interface (loopback included): segments carry at most 1460 bytes.
pub const MTU: usize = 1500;
/// The segment size that fits the MTU (IPv4 and TCP headers without options).
pub const MSS: usize = MTU - 40;

/// The simulated network card: packets the stack transmits, and packets waiting to be received.
#[derive(Debug, Default)]
pub struct SimDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

/// A received packet, handed to the stack.
pub struct SimRx(Vec<u8>);

/// Room for one transmitted packet.
pub struct SimTx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for SimRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for SimTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = SimRx;
    type TxToken<'a> = SimTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(SimRx, SimTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((SimRx(p), SimTx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<SimTx<'_>> {
        Some(SimTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// Who holds a TCP port: an emulated socket object (bound or listening) or a connection of the
/// stack (connected, accepted, or closed by the program and still finishing: FIN-WAIT, TIME-WAIT).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PortOwner {
    /// The host's TCP socket with this index in its table ([`crate::host::TcpId`]): bound or
    /// listening, no connection yet.
    Socket(usize),
    /// A connection of the stack.
    Conn(SocketHandle),
}

/// One use of a local TCP port, for `bind`'s address-in-use rules.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortUse {
    /// The port.
    pub port: u16,
    /// The local address (unspecified: all).
    pub ip: Ipv4Addr,
    /// Who holds it.
    pub owner: PortOwner,
    /// `SO_REUSEADDR` when it was bound.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT` when it was bound.
    pub reuseport: bool,
    /// A listening socket.
    pub listening: bool,
    /// Peers of each family it takes: (IPv4, IPv6). An `AF_INET` socket takes IPv4 only, a
    /// dual-stack `AF_INET6` one both, an `IPV6_V6ONLY` one IPv6 only; two uses of a port clash
    /// only when they share a family.
    pub families: (bool, bool),
}

/// How much a connection's program may queue for sending, beyond what smoltcp's ring holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SendBuffer {
    /// Linux's autotuning: [`crate::linux::send_buffer_for`] the congestion window, never
    /// shrinking; the largest so far is kept.
    Linux(usize),
    /// Set by the program (`SO_SNDBUF`, which turns autotuning off): this many bytes.
    Locked(usize),
}

/// A host's TCP/IP stack.
pub struct TcpStack {
    iface: Interface,
    /// The stack's sockets: one per connection, and the listening ones. Add and remove them
    /// with [`TcpStack::add`] and [`TcpStack::remove`].
    pub sockets: SocketSet<'static>,
    dev: SimDevice,
    /// Local ports in use.
    pub ports: Vec<PortUse>,
    /// Connections whose descriptors are all closed, kept until the stack has finished them.
    pub orphans: Vec<SocketHandle>,
    /// Connections reset by a received RST since the objects last looked: (handle, state before).
    pub resets: Vec<(SocketHandle, tcp::State)>,
    /// Linux's timing state of each connection.
    flows: BTreeMap<SocketHandle, Flow>,
    /// Connections by (local, remote) endpoint, checked against the socket on every use.
    tuples: HashMap<(Ep, Ep), SocketHandle>,
    /// Connections that received a segment in the current [`TcpStack::run`].
    received: Vec<SocketHandle>,
    /// Send buffers of the connections that have one beyond their ring (see [`SendBuffer`]).
    send_buffers: BTreeMap<SocketHandle, SendBuffer>,
}

/// An IPv4 endpoint.
type Ep = (Ipv4Addr, u16);

/// Linux's timing state of one connection, kept beside smoltcp's socket.
#[derive(Debug)]
struct Flow {
    tx: Sender,
    ack: AckClock,
    /// Bytes the program wrote that the congestion window holds back.
    staged: VecDeque<u8>,
    /// The program closed its sending side: the FIN follows the staged bytes.
    close_pending: bool,
    /// smoltcp's send queue (unacknowledged and unsent bytes) when the stack last looked.
    queued: usize,
    /// A segment for this connection arrived in the current run: a retransmission now answers
    /// duplicate ACKs rather than a timeout.
    rx: bool,
    /// Bytes received in order since the connection started: what smoltcp has put in the receive
    /// buffer for the program to read (data beyond a hole counts once the hole is filled).
    delivered: u64,
    /// The sequence number after the highest byte received, once known (from the handshake).
    rx_high: Option<u32>,
    /// Bytes may be waiting out of order in smoltcp's receive ring (a segment arrived beyond
    /// `rx_high`, and no ACK of all of it has left since): the ring's free space is not all free.
    rx_gap: bool,
    /// Lowest and highest addresses of the receive ring that data was taken from.
    rx_seen: (usize, usize),
    /// Bytes taken from the receive ring since its pages were last returned.
    rx_unreleased: usize,
    /// Bytes put into smoltcp's send ring since its pages were last returned.
    tx_unreleased: usize,
}

impl Flow {
    fn new() -> Self {
        Flow {
            tx: Sender::new(MSS),
            ack: AckClock::default(),
            staged: VecDeque::new(),
            close_pending: false,
            queued: 0,
            rx: false,
            delivered: 0,
            rx_high: None,
            rx_gap: false,
            rx_seen: (usize::MAX, 0),
            rx_unreleased: 0,
            tx_unreleased: 0,
        }
    }

    /// Watches a received segment's sequence numbers: one beyond the highest byte so far (or
    /// before the handshake told where the stream starts) may leave bytes out of order.
    fn track_rx(&mut self, seg: &Seg) {
        if seg.syn {
            self.rx_high = Some(seg.seq.wrapping_add(1));
            return;
        }
        if seg.len == 0 {
            return;
        }
        let end = seg.seq.wrapping_add(seg.len as u32);
        match self.rx_high {
            Some(high) if !seq_after(seg.seq, high) => {
                if seq_after(end, high) {
                    self.rx_high = Some(end);
                }
            }
            _ => {
                self.rx_gap = true;
                self.rx_high = Some(end);
            }
        }
    }
}

/// The fields of a TCP segment the stack watches.
#[derive(Copy, Clone, Debug)]
struct Seg {
    src: Ep,
    dst: Ep,
    seq: u32,
    ack: Option<u32>,
    len: usize,
    syn: bool,
    rst: bool,
}

/// Bytes that pass through a ring before its pages are returned to the kernel (see [`pages`]):
/// one `madvise` per this much data, and at most this much (plus partial pages) kept per ring.
const RELEASE_EVERY: usize = 8 * 1024;

/// Whether sequence number `a` is after `b` (modulo 2^32).
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The TCP segment in IPv4 packet `bytes`, if it is one. Never panics on any input.
fn segment(bytes: &[u8]) -> Option<Seg> {
    let ip = Ipv4Packet::new_checked(bytes).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let header = usize::from(tcp.header_len());
    Some(Seg {
        src: (ip.src_addr(), tcp.src_port()),
        dst: (ip.dst_addr(), tcp.dst_port()),
        seq: tcp.seq_number().0 as u32,
        ack: tcp.ack().then(|| tcp.ack_number().0 as u32),
        len: ip.payload().len().saturating_sub(header),
        syn: tcp.syn(),
        rst: tcp.rst(),
    })
}

/// smoltcp's duration for `ns` (µs resolution).
fn duration(ns: u64) -> Duration {
    Duration::from_micros(ns / 1000)
}

/// smoltcp's clock (µs) at simulated time `ns`.
pub fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

impl TcpStack {
    /// The stack of a host with address `ip`, its sequence numbers drawn from `seed`.
    pub fn new(ip: Ipv4Addr, seed: u64, now_ns: u64) -> Self {
        let mut dev = SimDevice::default();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut dev, instant(now_ns));
        iface.update_ip_addrs(|a| {
            // Every host of the simulated network is 10.x.y.z: all on-link for medium IP.
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), 8));
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Addr::LOCALHOST), 8));
        });
        TcpStack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            ports: Vec::new(),
            orphans: Vec::new(),
            resets: Vec::new(),
            flows: BTreeMap::new(),
            tuples: HashMap::new(),
            received: Vec::new(),
            send_buffers: BTreeMap::new(),
        }
    }

    /// A new socket for this stack with `rx` and `tx` buffer bytes: no smoltcp congestion
    /// controller, as the stack keeps Linux's window itself.
    pub fn new_socket(rx: usize, tx: usize) -> tcp::Socket<'static> {
        let (mut rx, mut tx) = (vec![0u8; rx], vec![0u8; tx]);
        // Rings give pages back as they go: on huge pages each write after that would zero 2 MiB.
        pages::keep_small(&mut rx);
        pages::keep_small(&mut tx);
        // Zeroed memory may come back from the allocator already written: start with no pages.
        pages::release(&mut rx);
        pages::release(&mut tx);
        let mut t = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
        t.set_congestion_control(tcp::CongestionControl::None);
        t
    }

    /// Add socket `t` to the stack.
    pub fn add(&mut self, t: tcp::Socket<'static>) -> SocketHandle {
        self.sockets.add(t)
    }

    /// Remove socket `handle` and its timing state.
    pub fn remove(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
        self.flows.remove(&handle);
        self.send_buffers.remove(&handle);
        self.tuples.retain(|_, hd| *hd != handle);
    }

    /// Queue as much of `data` on connection `handle` as its send buffer has room for, at
    /// `now_ns`; the congestion window decides when it enters smoltcp's buffer.
    pub fn send_slice(&mut self, handle: SocketHandle, data: &[u8], now_ns: u64) -> Result<usize, tcp::SendError> {
        if !self.socket(handle).may_send() {
            return Err(tcp::SendError::InvalidState);
        }
        let room = self.send_room(handle);
        let n = room.min(data.len());
        self.flows.entry(handle).or_insert_with(Flow::new).staged.extend(&data[..n]);
        self.pump(handle, now_ns);
        Ok(n)
    }

    /// Takes everything connection `handle` has received, in order, onto `out`; returns how many
    /// bytes. See [`TcpStack::recv_slice`] for what happens to the receive ring's memory.
    pub fn recv_into(&mut self, handle: SocketHandle, out: &mut Vec<u8>) -> usize {
        self.drain(handle, usize::MAX, |data| out.extend_from_slice(data))
    }

    /// Takes up to `data.len()` received bytes of connection `handle` into `data`, in order;
    /// returns how many. Once enough has passed and nothing waits in the receive ring (in order
    /// or not), the pages it passed through go back to the kernel.
    pub fn recv_slice(&mut self, handle: SocketHandle, data: &mut [u8]) -> usize {
        let mut at = 0;
        self.drain(handle, data.len(), |chunk| {
            data[at..at + chunk.len()].copy_from_slice(chunk);
            at += chunk.len();
        })
    }

    /// Takes up to `max` received bytes of connection `handle`, handing each contiguous piece to
    /// `sink`; then returns the ring's pages if it may (see [`TcpStack::recv_slice`]).
    fn drain(&mut self, handle: SocketHandle, max: usize, mut sink: impl FnMut(&[u8])) -> usize {
        let t = self.sockets.get_mut::<tcp::Socket>(handle);
        let (mut taken, mut seen) = (0, (usize::MAX, 0));
        while taken < max
            && let Ok(n) = t.recv(|data| {
                let n = data.len().min(max - taken);
                sink(&data[..n]);
                let at = data.as_ptr() as usize;
                seen = (seen.0.min(at), seen.1.max(at + n));
                (n, n)
            })
            && n > 0
        {
            taken += n;
        }
        if taken == 0 {
            return 0;
        }
        let f = self.flows.entry(handle).or_insert_with(Flow::new);
        f.rx_seen = (f.rx_seen.0.min(seen.0), f.rx_seen.1.max(seen.1));
        f.rx_unreleased += taken;
        if f.rx_unreleased >= RELEASE_EVERY && !f.rx_gap && t.recv_queue() == 0 {
            // SAFETY: both ends are addresses of bytes of this socket's receive ring, which the
            // stack holds exclusively; with the ring empty and nothing out of order, all of it
            // is free space that smoltcp writes before reading.
            unsafe { pages::release_span(f.rx_seen.0, f.rx_seen.1) };
            f.rx_unreleased = 0;
        }
        taken
    }

    /// Bytes written on connection `handle` and not yet acknowledged (sent or not).
    pub fn send_queue(&mut self, handle: SocketHandle) -> usize {
        let staged = self.flows.get(&handle).map_or(0, |f| f.staged.len());
        self.socket(handle).send_queue() + staged
    }

    /// Room left in connection `handle`'s send buffer.
    pub fn send_room(&mut self, handle: SocketHandle) -> usize {
        let capacity = self.socket(handle).send_capacity().min(self.send_buffer(handle));
        capacity.saturating_sub(self.send_queue(handle))
    }

    /// Give connection `handle` a send buffer smaller than its ring: Linux's, autotuned
    /// ([`SendBuffer::Linux`]), or one the program set.
    pub fn set_send_buffer(&mut self, handle: SocketHandle, b: SendBuffer) {
        self.send_buffers.insert(handle, b);
    }

    /// Connection `handle`'s send buffer now, bytes (its ring's size where it has none other);
    /// an autotuned one first grows to what the congestion window asks for.
    pub fn send_buffer(&mut self, handle: SocketHandle) -> usize {
        let cwnd = self.flows.get(&handle).map_or(crate::linux::INIT_CWND * MSS, |f| f.tx.cwnd);
        match self.send_buffers.get_mut(&handle) {
            Some(SendBuffer::Linux(b)) => {
                *b = (*b).max(crate::linux::send_buffer_for(cwnd, MSS));
                *b
            }
            Some(SendBuffer::Locked(b)) => *b,
            None => usize::MAX,
        }
    }

    /// Close connection `handle`'s sending side: the FIN follows every byte written.
    pub fn close(&mut self, handle: SocketHandle) {
        match self.flows.get_mut(&handle) {
            Some(f) if !f.staged.is_empty() => f.close_pending = true,
            _ => self.socket(handle).close(),
        }
    }

    /// Reset connection `handle`, dropping what it had not sent.
    pub fn abort(&mut self, handle: SocketHandle) {
        if let Some(f) = self.flows.get_mut(&handle) {
            f.staged.clear();
            f.close_pending = false;
        }
        self.socket(handle).abort();
    }

    /// Linux's view of connection `handle`: congestion window and slow-start threshold
    /// (segments), smoothed RTT (ns), retransmission and delayed-ACK timeouts (ns),
    /// retransmitted segments.
    pub fn info(&self, handle: SocketHandle) -> Option<FlowInfo> {
        let f = self.flows.get(&handle)?;
        Some(FlowInfo {
            cwnd: f.tx.cwnd / MSS,
            ssthresh: f.tx.ssthresh / MSS,
            srtt_ns: f.tx.srtt_ns,
            rto_ns: f.tx.rto_ns(),
            ato_ns: f.ack.ato_ns,
            retransmits: f.tx.retransmits,
        })
    }

    /// The connection from `local` to `remote`, if the stack holds one.
    pub fn find(&mut self, local: (Ipv4Addr, u16), remote: (Ipv4Addr, u16)) -> Option<SocketHandle> {
        self.lookup(local, remote)
    }

    /// Bytes connection `handle` has received in order, readable by the program or read: the
    /// stream offset up to which everything has arrived.
    pub fn delivered(&self, handle: SocketHandle) -> u64 {
        self.flows.get(&handle).map_or(0, |f| f.delivered)
    }

    /// The connection with these endpoints, if any.
    fn lookup(&mut self, local: Ep, remote: Ep) -> Option<SocketHandle> {
        let matches = |t: &tcp::Socket, local: Ep, remote: Ep| {
            t.local_endpoint().is_some_and(|l| l.addr == IpAddress::Ipv4(local.0) && l.port == local.1)
                && t.remote_endpoint().is_some_and(|r| r.addr == IpAddress::Ipv4(remote.0) && r.port == remote.1)
        };
        // Cached handles are removed with their sockets, so they are valid.
        if let Some(&hd) = self.tuples.get(&(local, remote))
            && matches(self.sockets.get::<tcp::Socket>(hd), local, remote)
        {
            return Some(hd);
        }
        let hd = self.sockets.iter().find_map(|(hd, s)| match s {
            smoltcp::socket::Socket::Tcp(t) if matches(t, local, remote) => Some(hd),
            _ => None,
        })?;
        self.tuples.insert((local, remote), hd);
        Some(hd)
    }

    /// Before smoltcp takes in `seg` at `now`: time the RTT, run the ACK clock, and set the
    /// socket's ACK delay from it.
    fn before_ingress(&mut self, seg: &Seg, now: u64) -> Option<SocketHandle> {
        let hd = self.lookup(seg.dst, seg.src)?;
        let f = self.flows.entry(hd).or_insert_with(Flow::new);
        if !f.rx {
            f.rx = true;
            self.received.push(hd);
        }
        if let Some(ack) = seg.ack {
            f.tx.on_ack(ack, now);
        }
        if seg.len > 0 {
            f.ack.on_data(now, f.tx.rto_ns());
        }
        f.track_rx(seg);
        self.apply_ack_delay(hd);
        Some(hd)
    }

    /// Set socket `hd`'s ACK delay from its ACK clock.
    fn apply_ack_delay(&mut self, hd: SocketHandle) {
        let Some(f) = self.flows.get(&hd) else { return };
        let delay = f.ack.delay_ns(f.tx.srtt_ns).map(duration);
        self.socket(hd).set_ack_delay(delay);
    }

    /// Watch the packets transmitted from index `from` on, at `now`: a SYN starts a
    /// connection's timing afresh, data feeds the congestion window, ACKs the ACK clock
    /// (`timer`: sent by no received segment).
    fn after_egress(&mut self, from: usize, now: u64, timer: bool) {
        for k in from..self.dev.tx.len() {
            let Some(seg) = segment(&self.dev.tx[k]) else { continue };
            let Some(hd) = self.lookup(seg.src, seg.dst) else { continue };
            if seg.syn {
                self.flows.insert(hd, Flow::new());
            }
            let f = self.flows.entry(hd).or_insert_with(Flow::new);
            if seg.len > 0 {
                let fast = f.rx;
                f.tx.on_sent(seg.seq, seg.len, now, fast);
                f.ack.on_data_sent(now);
            }
            if let Some(ack) = seg.ack {
                f.ack.on_ack_sent(ack, timer && seg.len == 0 && !f.rx);
                if seg.syn {
                    f.rx_high = Some(ack);
                }
                f.rx_gap &= f.rx_high != Some(ack);
            }
            self.apply_ack_delay(hd);
        }
    }

    /// Account what connection `hd` had acknowledged, then move staged bytes into smoltcp's
    /// buffer as far as the congestion window allows (whole segments while more wait), and
    /// close once they all have.
    fn pump(&mut self, hd: SocketHandle, now: u64) {
        let Some(f) = self.flows.get_mut(&hd) else { return };
        let t = self.sockets.get_mut::<tcp::Socket>(hd);
        let q = t.send_queue();
        f.tx.on_acked(f.queued.saturating_sub(q), f.queued, !f.staged.is_empty());
        if !t.may_send() {
            f.staged.clear();
        }
        if !f.staged.is_empty() {
            if q == 0 {
                f.tx.before_send(now);
            }
            let room = f.tx.cwnd.saturating_sub(q).min(t.send_capacity() - q);
            let n = if f.staged.len() <= room { f.staged.len() } else { room - room % MSS };
            let (a, b) = f.staged.as_slices();
            let mut sent = t.send_slice(&a[..n.min(a.len())]).unwrap_or(0);
            if n > a.len() {
                sent += t.send_slice(&b[..n - a.len()]).unwrap_or(0);
            }
            f.staged.drain(..sent);
            f.tx_unreleased += sent;
            if f.staged.is_empty() && f.staged.capacity() > RELEASE_EVERY {
                f.staged = VecDeque::new();
            }
        }
        if t.send_queue() == 0 && f.tx_unreleased >= RELEASE_EVERY {
            // An empty ring restarts at its beginning: all of it is free space.
            let _ = t.send(|free| {
                pages::release(free);
                (0, ())
            });
            f.tx_unreleased = 0;
        }
        if f.close_pending && f.staged.is_empty() {
            f.close_pending = false;
            t.close();
        }
        f.queued = t.send_queue();
    }

    /// Start connecting the stack's socket `handle` from `local` to `remote`.
    pub fn connect(
        &mut self,
        handle: SocketHandle,
        remote: IpEndpoint,
        local: IpEndpoint,
    ) -> Result<(), tcp::ConnectError> {
        let TcpStack { iface, sockets, .. } = self;
        sockets.get_mut::<tcp::Socket>(handle).connect(iface.context(), remote, local)
    }

    /// The TCP socket behind `handle`.
    pub fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Queue a packet that reached the host (any bytes: the stack drops what does not parse).
    pub fn push_rx(&mut self, packet: Vec<u8>) {
        self.dev.rx.push_back(packet);
    }

    /// The packets the stack has transmitted since the last call.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.dev.tx)
    }

    /// Process received packets (noting connections reset by an RST), let the congestion
    /// window release staged bytes, and transmit what is due, at simulated time `now_ns`.
    pub fn run(&mut self, now_ns: u64) {
        let now = instant(now_ns);
        let mut ingested = false;
        while let Some(p) = self.dev.rx.front() {
            let seg = segment(p);
            let hd = seg.as_ref().and_then(|seg| self.before_ingress(seg, now_ns));
            let reset = hd.filter(|_| seg.is_some_and(|s| s.rst)).map(|hd| (hd, self.socket(hd).state()));
            let readable = hd.map(|hd| self.socket(hd).recv_queue());
            let mark = self.dev.tx.len();
            self.iface.poll_ingress_single(now, &mut self.dev, &mut self.sockets);
            if let (Some(hd), Some(before)) = (hd, readable) {
                // Nothing reads while a packet is taken in: the growth is what it delivered.
                let grown = self.socket(hd).recv_queue().saturating_sub(before) as u64;
                if let Some(f) = self.flows.get_mut(&hd) {
                    f.delivered += grown;
                }
            }
            self.after_egress(mark, now_ns, false);
            ingested = true;
            if let Some((handle, before)) = reset
                && self.socket(handle).state() == tcp::State::Closed
            {
                self.resets.push((handle, before));
            }
        }
        let received = std::mem::take(&mut self.received);
        for &hd in &received {
            self.pump(hd, now_ns);
        }
        let mark = self.dev.tx.len();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        self.after_egress(mark, now_ns, !ingested);
        for hd in received {
            if let Some(f) = self.flows.get_mut(&hd) {
                f.rx = false;
            }
        }
    }

    /// When the stack next needs a poll (simulated ns), if ever: always after `now_ns`.
    pub fn next_poll(&mut self, now_ns: u64) -> Option<u64> {
        let at = self.iface.poll_at(instant(now_ns), &self.sockets)?;
        let at_ns = (at.total_micros().max(0) as u64).saturating_mul(1000);
        // Never at or before now: smoltcp's clock has µs resolution.
        Some(at_ns.max((now_ns / 1000 + 1) * 1000))
    }
}

/// Linux's view of one connection (what `TCP_INFO` reports).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlowInfo {
    /// Congestion window, segments.
    pub cwnd: usize,
    /// Slow-start threshold, segments (`usize::MAX / MSS` before any loss).
    pub ssthresh: usize,
    /// Smoothed RTT, ns (0: no sample yet).
    pub srtt_ns: u64,
    /// Retransmission timeout, ns.
    pub rto_ns: u64,
    /// Delayed-ACK timeout, ns (0: no data received yet).
    pub ato_ns: u64,
    /// Segments retransmitted.
    pub retransmits: u32,
}

/// The source and destination of a TCP packet with the RST flag, if `bytes` is one. Never
/// panics on any input.
pub fn rst_tuple(bytes: &[u8]) -> Option<((Ipv4Addr, u16), (Ipv4Addr, u16))> {
    segment(bytes).filter(|s| s.rst).map(|s| (s.src, s.dst))
}

#[cfg(test)]
mod tests {
    use super::{Flow, Seg};
    use std::net::Ipv4Addr;

    fn data(seq: u32, len: usize) -> Seg {
        let ep = (Ipv4Addr::LOCALHOST, 1);
        Seg { src: ep, dst: ep, seq, ack: None, len, syn: false, rst: false }
    }

    #[test]
    fn only_a_segment_beyond_the_highest_byte_leaves_a_gap() {
        let mut f = Flow::new();
        f.track_rx(&data(5, 10));
        assert!(f.rx_gap, "before the handshake, where the stream starts is unknown");
        let mut f = Flow::new();
        f.track_rx(&Seg { syn: true, ..data(u32::MAX, 0) });
        assert_eq!(f.rx_high, Some(0));
        f.track_rx(&data(0, 100));
        f.track_rx(&data(50, 100));
        f.track_rx(&data(0, 100));
        assert!(!f.rx_gap, "in order, overlapping and repeated segments leave none");
        assert_eq!(f.rx_high, Some(150));
        f.track_rx(&data(200, 10));
        assert!(f.rx_gap);
        assert_eq!(f.rx_high, Some(210));
    }
    use super::*;
    use proptest::prelude::*;

    fn listening(ip: Ipv4Addr) -> (TcpStack, SocketHandle) {
        let mut st = TcpStack::new(ip, 1, 0);
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; 4096]));
        s.listen(80).unwrap();
        let h = st.sockets.add(s);
        (st, h)
    }

    #[test]
    fn two_stacks_connect_and_exchange_data_through_their_devices() {
        let (a_ip, b_ip) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let (mut b, server) = listening(b_ip);
        let mut a = TcpStack::new(a_ip, 2, 0);
        let s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; 4096]));
        let client = a.sockets.add(s);
        let (remote, local) = (IpEndpoint::new(b_ip.into(), 80), IpEndpoint::new(a_ip.into(), 40000));
        a.connect(client, remote, local).unwrap();
        let (mut now, mut sent) = (0, false);
        for _ in 0..6 {
            now += 1000;
            a.run(now);
            for p in a.take_tx() {
                assert!(rst_tuple(&p).is_none());
                b.push_rx(p);
            }
            b.run(now);
            for p in b.take_tx() {
                a.push_rx(p);
            }
            if a.socket(client).can_send() && !sent {
                sent = a.send_slice(client, b"ping", now).unwrap() == 4;
            }
        }
        let mut buf = [0u8; 16];
        let n = b.socket(server).recv_slice(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(b.next_poll(now), None, "the first data was acknowledged at once (quick ACK)");
    }

    const MS: u64 = 1_000_000;

    /// Two stacks joined by a wire with a one-way delay, and a connection between them whose
    /// server reads everything as it arrives.
    struct Wire {
        a: TcpStack,
        b: TcpStack,
        client: SocketHandle,
        server: SocketHandle,
        now: u64,
        one_way: u64,
        /// Packets on the wire: (arrival, to b, bytes).
        flight: Vec<(u64, bool, Vec<u8>)>,
        /// Segments sent: (time, by a, segment).
        log: Vec<(u64, bool, Seg)>,
        received: usize,
    }

    impl Wire {
        fn new(one_way: u64) -> Self {
            let (a_ip, b_ip) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
            let mut b = TcpStack::new(b_ip, 1, 0);
            let mut s = TcpStack::new_socket(1 << 20, 1 << 20);
            s.listen(80).unwrap();
            let server = b.add(s);
            let mut a = TcpStack::new(a_ip, 2, 0);
            let client = a.add(TcpStack::new_socket(1 << 20, 1 << 20));
            let (remote, local) = (IpEndpoint::new(b_ip.into(), 80), IpEndpoint::new(a_ip.into(), 40000));
            a.connect(client, remote, local).unwrap();
            let mut w =
                Wire { a, b, client, server, now: 0, one_way, flight: Vec::new(), log: Vec::new(), received: 0 };
            w.run_until(4 * one_way);
            assert_eq!(w.a.socket(client).state(), tcp::State::Established);
            w
        }

        /// Advance to the next arrival or poll, if one is due by `end`; returns whether time moved.
        fn step(&mut self, end: u64) -> bool {
            let next = [self.a.next_poll(self.now), self.b.next_poll(self.now)]
                .into_iter()
                .flatten()
                .chain(self.flight.iter().map(|p| p.0))
                .min();
            self.now = match next {
                Some(t) if t <= end => t,
                _ => {
                    self.now = end;
                    return false;
                }
            };
            let now = self.now;
            for (_, to_b, p) in self.flight.extract_if(.., |p| p.0 <= now) {
                if to_b { self.b.push_rx(p) } else { self.a.push_rx(p) }
            }
            self.a.run(now);
            self.b.run(now);
            let mut buf = vec![0u8; 1 << 20];
            self.received += self.b.socket(self.server).recv_slice(&mut buf).unwrap_or(0);
            self.b.run(now);
            for (by_a, p) in
                self.a.take_tx().into_iter().map(|p| (true, p)).chain(self.b.take_tx().into_iter().map(|p| (false, p)))
            {
                self.log.push((now, by_a, segment(&p).unwrap()));
                self.flight.push((now + self.one_way, by_a, p));
            }
            true
        }

        fn run_until(&mut self, end: u64) {
            while self.step(end) {}
        }

        /// The client writes `n` bytes now; returns how long until the server has them all.
        fn transfer(&mut self, n: usize) -> u64 {
            let (start, want) = (self.now, self.received + n);
            assert_eq!(self.a.send_slice(self.client, &vec![7u8; n], start).unwrap(), n);
            self.a.run(start);
            for p in self.a.take_tx() {
                self.log.push((start, true, segment(&p).unwrap()));
                self.flight.push((start + self.one_way, true, p));
            }
            while self.received < want {
                assert!(self.step(start + 60_000 * MS), "delivered within a minute");
            }
            self.now - start
        }

        /// Data segments the client sent in `[from, to)`.
        fn data_sent(&self, from: u64, to: u64) -> usize {
            self.log.iter().filter(|(t, by_a, s)| *by_a && s.len > 0 && (from..to).contains(t)).count()
        }

        /// When the server's first ACK at or after `from` left.
        fn ack_after(&self, from: u64) -> u64 {
            self.log.iter().find(|(t, by_a, s)| !by_a && *t >= from && s.ack.is_some()).expect("an ACK").0
        }
    }

    #[test]
    fn a_fresh_connection_sends_ten_segments_in_its_first_round_trip() {
        let mut w = Wire::new(50 * MS);
        let start = w.now;
        let took = w.transfer(100 * 1024);
        assert_eq!(w.data_sent(start, start + 100 * MS), 10, "the initial window");
        // Slow start: 10, 20, 40, then the last of 71 segments: three round trips and a half.
        assert!(took <= 3 * 100 * MS + 50 * MS + MS, "100 KiB in {} ms", took / MS);
        assert_eq!(w.a.info(w.client).unwrap().retransmits, 0);
    }

    #[test]
    fn after_twelve_idle_seconds_the_window_restarts_at_ten_segments() {
        let mut w = Wire::new(50 * MS);
        for _ in 0..3 {
            w.transfer(100 * 1024);
        }
        let warm = w.now;
        let took_warm = w.transfer(100 * 1024);
        assert!(w.data_sent(warm, warm + 100 * MS) > 40, "a warm window sends more at once");
        assert!(took_warm < 2 * 100 * MS, "warm: {} ms", took_warm / MS);
        w.run_until(w.now + 12_000 * MS);
        let idle = w.now;
        let took = w.transfer(100 * 1024);
        assert_eq!(w.data_sent(idle, idle + 100 * MS), 10, "restarted from the initial window");
        assert!(took > 3 * 100 * MS, "after idle: {} ms", took / MS);
    }

    #[test]
    fn the_first_segments_are_acknowledged_at_once_then_after_40_ms_and_at_once_after_idle() {
        let mut w = Wire::new(5 * MS);
        let mut delays = Vec::new();
        for _ in 0..20 {
            let arrive = w.now + w.one_way;
            w.transfer(100);
            w.run_until(w.now + 100 * MS);
            delays.push((w.ack_after(arrive) - arrive) / MS);
        }
        assert_eq!(&delays[..16], &[0; 16], "quick ACKs: {delays:?}");
        assert_eq!(&delays[16..], &[40; 4], "delayed ACKs: {delays:?}");
        w.run_until(w.now + 12_000 * MS);
        let arrive = w.now + w.one_way;
        w.transfer(100);
        w.run_until(w.now + 100 * MS);
        assert_eq!(w.ack_after(arrive), arrive, "quick ACK again after idle");
    }

    #[test]
    fn a_syn_to_a_closed_port_is_answered_with_a_reset() {
        let (mut b, _) = listening(Ipv4Addr::new(10, 0, 0, 2));
        let mut a = TcpStack::new(Ipv4Addr::new(10, 0, 0, 1), 2, 0);
        let s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 64]), tcp::SocketBuffer::new(vec![0; 64]));
        let client = a.sockets.add(s);
        let (remote, local) = (
            IpEndpoint::new(Ipv4Addr::new(10, 0, 0, 2).into(), 81),
            IpEndpoint::new(Ipv4Addr::new(10, 0, 0, 1).into(), 40000),
        );
        a.connect(client, remote, local).unwrap();
        a.run(1000);
        for p in a.take_tx() {
            b.push_rx(p);
        }
        b.run(2000);
        let replies = b.take_tx();
        assert_eq!(replies.len(), 1);
        let (src, dst) = rst_tuple(&replies[0]).expect("an RST");
        assert_eq!((src.1, dst.1), (81, 40000));
        a.push_rx(replies[0].clone());
        a.run(3000);
        assert_eq!(a.resets, vec![(client, tcp::State::SynSent)]);
        assert_eq!(a.socket(client).state(), tcp::State::Closed);
    }

    /// Three segments cross from a client to a server, the first one last: the server's stack
    /// counts nothing delivered until the hole is filled, then all three at once, whatever the
    /// program has read.
    #[test]
    fn delivered_bytes_count_only_data_received_in_order() {
        let mut w = Wire::new(5 * MS);
        let server = w.b.find((Ipv4Addr::new(10, 0, 0, 2), 80), (Ipv4Addr::new(10, 0, 0, 1), 40000)).unwrap();
        assert_eq!(server, w.server);
        let before = w.b.delivered(server);
        w.transfer(100);
        assert_eq!(w.b.delivered(server), before + 100, "read by the program, still counted");
        let now = w.now;
        assert_eq!(w.a.send_slice(w.client, &[1u8; 3 * MSS], now).unwrap(), 3 * MSS);
        w.a.run(now);
        let mut segments = w.a.take_tx();
        assert_eq!(segments.len(), 3, "three full segments at once");
        let first = segments.remove(0);
        let base = w.b.delivered(server);
        for p in segments {
            w.b.push_rx(p);
        }
        w.b.run(now + MS);
        assert_eq!(w.b.delivered(server), base, "data beyond the hole does not count");
        w.b.push_rx(first);
        w.b.run(now + 2 * MS);
        assert_eq!(w.b.delivered(server), base + 3 * MSS as u64, "the hole filled: all of it");
        assert_eq!(w.b.find((Ipv4Addr::new(10, 0, 0, 2), 80), (Ipv4Addr::new(10, 0, 0, 9), 40000)), None);
    }

    proptest! {
        #[test]
        fn any_bytes_reaching_a_stack_never_panic(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 1..8)) {
            let (mut st, _) = listening(Ipv4Addr::new(10, 0, 0, 2));
            for (i, p) in packets.into_iter().enumerate() {
                let _ = rst_tuple(&p);
                st.push_rx(p);
                st.run(i as u64 * 1000);
                let _ = st.take_tx();
            }
        }
    }
}
