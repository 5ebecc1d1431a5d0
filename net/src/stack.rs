//! A host's TCP/IP stack: one `smoltcp` interface (medium IP) whose device collects the IPv4
//! packets the stack transmits, for the caller to put on the simulated network, and is fed the
//! TCP packets that reach the host. Sans-IO: the caller gives the time (simulated ns) to every
//! call, takes what was transmitted, and polls again at [`TcpStack::next_poll`] (retransmission,
//! delayed ACK, keep-alive, TIME-WAIT). Direct hosts drive one per host from their socket
//! calls; nothing here knows an engine or a process.

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpProtocol, Ipv4Packet, TcpPacket};
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// IP MTU of every simulated interface (loopback included): segments carry at most 1460 bytes.
pub const MTU: usize = 1500;

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
    /// The host's socket object with this index (bound or listening, no connection yet).
    Obj(usize),
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
}

/// A host's TCP/IP stack.
pub struct TcpStack {
    iface: Interface,
    /// The stack's sockets: one per connection, and the listening ones.
    pub sockets: SocketSet<'static>,
    dev: SimDevice,
    /// The scheduled poll: (time, token).
    pub timer: Option<(u64, u64)>,
    /// Local ports in use.
    pub ports: Vec<PortUse>,
    /// Connections whose descriptors are all closed, kept until the stack has finished them.
    pub orphans: Vec<SocketHandle>,
    /// Connections reset by a received RST since the objects last looked: (handle, state before).
    pub resets: Vec<(SocketHandle, tcp::State)>,
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
            timer: None,
            ports: Vec::new(),
            orphans: Vec::new(),
            resets: Vec::new(),
        }
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

    /// Process received packets (noting connections reset by an RST) and transmit what is due, at
    /// simulated time `now_ns`.
    pub fn run(&mut self, now_ns: u64) {
        let now = instant(now_ns);
        while let Some(p) = self.dev.rx.front() {
            let reset = rst_tuple(p).and_then(|(src, dst)| {
                self.sockets.iter().find_map(|(handle, s)| match s {
                    smoltcp::socket::Socket::Tcp(t)
                        if t.local_endpoint().is_some_and(|l| l.addr == IpAddress::Ipv4(dst.0) && l.port == dst.1)
                            && t.remote_endpoint()
                                .is_some_and(|r| r.addr == IpAddress::Ipv4(src.0) && r.port == src.1) =>
                    {
                        Some((handle, t.state()))
                    }
                    _ => None,
                })
            });
            self.iface.poll_ingress_single(now, &mut self.dev, &mut self.sockets);
            if let Some((handle, before)) = reset
                && self.socket(handle).state() == tcp::State::Closed
            {
                self.resets.push((handle, before));
            }
        }
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
    }

    /// When the stack next needs a poll (simulated ns), if ever: always after `now_ns`.
    pub fn next_poll(&mut self, now_ns: u64) -> Option<u64> {
        let at = self.iface.poll_at(instant(now_ns), &self.sockets)?;
        let at_ns = (at.total_micros().max(0) as u64).saturating_mul(1000);
        // Never at or before now: smoltcp's clock has µs resolution.
        Some(at_ns.max((now_ns / 1000 + 1) * 1000))
    }
}

/// The source and destination of a TCP packet with the RST flag, if `bytes` is one. Never
/// panics on any input.
pub fn rst_tuple(bytes: &[u8]) -> Option<((Ipv4Addr, u16), (Ipv4Addr, u16))> {
    let ip = Ipv4Packet::new_checked(bytes).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    tcp.rst().then(|| ((ip.src_addr(), tcp.src_port()), (ip.dst_addr(), tcp.dst_port())))
}

#[cfg(test)]
mod tests {
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
        let mut now = 0;
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
            if a.socket(client).can_send() {
                a.socket(client).send_slice(b"ping").unwrap();
            }
        }
        let mut buf = [0u8; 16];
        let n = b.socket(server).recv_slice(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert!(b.next_poll(now).is_some_and(|t| t > now), "a delayed ACK is due, after now");
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
