//! The boundary: surrogate identities that real clients (direct hosts) connect to. Only these
//! identities pay for real networking: each gets, on the first packet a client sends it, a TCP
//! endpoint ([`Endpoint`]) listening on the gossip port, and every accepted connection runs the
//! full libp2p stack ([`Connection`]: multistream-select, Noise with the identity's own key, a
//! muxer, gossipsub). The engine hands packets and timeouts in and gets back what to do: IPv4
//! packets to put on the network, peers coming up or going, and the gossipsub RPCs they sent.
//! Every other identity keeps its compact rows.
//!
//! Keys are derived from the run's seed and the identity's id, so peer ids are the same on every
//! run, shard count and backend.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use thermocline_net::{ConnId, Endpoint, MarkNote, NetEvent, StreamMark};
use thermocline_wire::connection::{Addresses, ConnConfig, ConnEvent, Connection, Side};
use thermocline_wire::gossipsub::Rpc;
use thermocline_wire::identity::{Keypair, PeerId};
use thermocline_wire::mux::StreamId;

/// The TCP port boundary identities accept libp2p connections on.
pub const GOSSIP_PORT: u16 = 9000;
/// Connection slots every surrogate keeps free for real clients in a run with direct hosts.
pub const CLIENT_SLOTS: u32 = 2;

/// A surrogate that dials a real client: who, whom, at which port, when.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientDial {
    /// The dialling identity.
    pub surrogate: u32,
    /// The client's host.
    pub client: u32,
    /// The client's libp2p port.
    pub port: u16,
    /// When, in ns of simulated time.
    pub at_ns: u64,
}

/// The identity key of surrogate `id` in a run with `seed`: an ed25519 key from a hash of both,
/// so it is the same wherever the identity runs.
pub fn identity_key(seed: u64, id: u32) -> Keypair {
    let digest = Sha256::new()
        .chain_update(b"thermocline identity key")
        .chain_update(seed.to_be_bytes())
        .chain_update(id.to_be_bytes())
        .finalize();
    Keypair::ed25519_from_secret(digest.into())
}

/// The libp2p identity of surrogate `id`: the ed25519 key above, or with `secp256k1` (Ethereum
/// networks) its discovery key, so the peer id a client derives from the identity's node record
/// is the one it meets in Noise.
pub fn libp2p_key(seed: u64, id: u32, secp256k1: bool) -> Keypair {
    if !secp256k1 {
        return identity_key(seed, id);
    }
    let secret: [u8; 32] = crate::discv5::boundary::identity_key(seed, id).to_bytes().into();
    Keypair::secp256k1_from_secret(secret).expect("a discovery key is a valid scalar")
}

/// The seed of the Noise keys of connection `conn` of identity `id`.
fn noise_seed(seed: u64, id: u32, conn: ConnId) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"thermocline noise")
        .chain_update(seed.to_be_bytes())
        .chain_update(id.to_be_bytes())
        .chain_update(conn.0.to_be_bytes())
        .finalize()
        .into()
}

/// What the engine must do after the boundary handled something, in order.
#[derive(Debug)]
pub enum Output {
    /// Send this IPv4 packet from the identity.
    Packet(Vec<u8>),
    /// A client is authenticated and its muxer agreed: it is a gossip peer from now on.
    Up {
        /// The client's host.
        host: u32,
        /// Its libp2p peer id.
        peer: PeerId,
        /// Whether the identity dialled it (else the client dialled the identity).
        outbound: bool,
    },
    /// A client sent a request on one of the configured request protocols: answer it with
    /// [`Boundary::respond`].
    Request {
        /// The client's host.
        host: u32,
        /// The stream to answer on.
        stream: StreamId,
        /// The protocol.
        protocol: String,
        /// What it sent.
        body: Vec<u8>,
    },
    /// A client answered a request the identity sent ([`Boundary::request`]); `None` if it
    /// refused or reset it.
    Response {
        /// The client's host.
        host: u32,
        /// The request's stream.
        stream: StreamId,
        /// The answer.
        body: Option<Vec<u8>>,
    },
    /// A client's connection ended.
    Down {
        /// The client's host.
        host: u32,
    },
    /// A client sent a gossipsub RPC.
    Rpc {
        /// The client's host.
        host: u32,
        /// What it sent.
        rpc: Rpc,
    },
    /// A message sent with a note (see [`Boundary::send_rpc`]) has left whole: where it ends on
    /// the TCP stream to the client.
    Mark {
        /// The client's host.
        host: u32,
        /// The connection, the offset and the note.
        mark: StreamMark,
    },
}

/// One client connection of a boundary identity.
struct Peer {
    /// The client's host id.
    host: u32,
    /// The client's address and port.
    remote: SocketAddrV4,
    /// The identity's end: the gossip port, or a dial's ephemeral port.
    local: SocketAddrV4,
    /// The client's peer id, once authenticated.
    peer: Option<PeerId>,
    wire: Connection,
    /// Bytes the wire produced that the TCP send buffer had no room for yet.
    unsent: Vec<u8>,
    /// Notes of marked messages not yet sent whole, by tag.
    notes: BTreeMap<u64, MarkNote>,
    /// The next mark's tag.
    next_tag: u64,
}

impl Peer {
    /// A new connection to the client on `host`, between `local` and `remote`.
    fn new(host: u32, (local, remote): (SocketAddrV4, SocketAddrV4), wire: Connection) -> Peer {
        Peer { host, remote, local, peer: None, wire, unsent: Vec::new(), notes: BTreeMap::new(), next_tag: 0 }
    }
}

/// One boundary identity.
struct BoundaryHost {
    id: u32,
    net: Endpoint,
    key: Keypair,
    peers: BTreeMap<ConnId, Peer>,
    /// Connections accepted so far.
    accepted: u32,
}

/// The boundary identities of one shard.
pub struct Boundary {
    seed: u64,
    /// Identities use secp256k1 keys (see [`libp2p_key`]).
    secp256k1: bool,
    config: Arc<ConnConfig>,
    hosts: BTreeMap<u32, BoundaryHost>,
}

impl Boundary {
    /// No boundary identities yet.
    pub fn new(seed: u64, config: ConnConfig) -> Boundary {
        Boundary { seed, secp256k1: false, config: Arc::new(config), hosts: BTreeMap::new() }
    }

    /// The same with secp256k1 identities, as Ethereum's network has them (see [`libp2p_key`]).
    pub fn with_secp256k1_keys(mut self) -> Boundary {
        self.secp256k1 = true;
        self
    }

    /// Boundary identities so far.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// TCP connections identity `id` accepted from clients so far (0 if it is not a boundary
    /// identity).
    pub fn accepted(&self, id: u32) -> u32 {
        self.hosts.get(&id).map_or(0, |b| b.accepted)
    }

    /// An IPv4 packet reached identity `id` (global id, address `ip`) at `now`. `host_of_ip`
    /// names the sender's host.
    pub fn handle_packet(
        &mut self,
        id: u32,
        ip: Ipv4Addr,
        now: u64,
        packet: Vec<u8>,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
    ) -> Vec<Output> {
        let (seed, config) = (self.seed, self.config.clone());
        let b = self.host(id, ip, now);
        b.net.handle_packet(now, packet);
        let mut out = Vec::new();
        b.pump(now, seed, &config, host_of_ip, &mut out);
        out
    }

    /// Identity `id` (address `ip`) dials the client on host `host` at `to`: a TCP connection,
    /// then the libp2p stack as its dialer. The client comes up as a peer ([`Output::Up`]) once
    /// authenticated, as an accepted one does; a refused connection ends in [`Output::Down`].
    pub fn dial(
        &mut self,
        id: u32,
        ip: Ipv4Addr,
        now: u64,
        (host, to): (u32, SocketAddrV4),
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
    ) -> Vec<Output> {
        let (seed, config) = (self.seed, self.config.clone());
        let b = self.host(id, ip, now);
        let mut out = Vec::new();
        let Ok(conn) = b.net.connect(now, to) else { return out };
        let wire =
            Connection::dial(b.key.clone(), noise_seed(seed, id, conn), None, config.clone(), Addresses::default());
        let local = b.net.local_addr(conn).unwrap_or(SocketAddrV4::new(ip, 0));
        let peer = Peer::new(host, (local, to), wire);
        b.peers.insert(conn, peer);
        b.pump(now, seed, &config, host_of_ip, &mut out);
        out
    }

    /// Identity `id`'s endpoint, made (listening on the gossip port) on first use.
    fn host(&mut self, id: u32, ip: Ipv4Addr, now: u64) -> &mut BoundaryHost {
        let (seed, secp256k1) = (self.seed, self.secp256k1);
        self.hosts.entry(id).or_insert_with(|| {
            let mut net = Endpoint::new(ip, seed ^ u64::from(id), now);
            net.listen(GOSSIP_PORT).expect("a fresh endpoint has every port free");
            BoundaryHost { id, net, key: libp2p_key(seed, id, secp256k1), peers: BTreeMap::new(), accepted: 0 }
        })
    }

    /// Lets time pass to `now` for identity `id`.
    pub fn handle_timeout(&mut self, id: u32, now: u64, host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(b) = self.hosts.get_mut(&id) {
            b.net.handle_timeout(now);
            for p in b.peers.values_mut() {
                p.wire.handle_timeout(now);
            }
            b.pump(now, self.seed, &self.config, host_of_ip, &mut out);
        }
        out
    }

    /// When identity `id` must next be given the time, if ever.
    pub fn poll_timeout(&mut self, id: u32, now: u64) -> Option<u64> {
        let b = self.hosts.get_mut(&id)?;
        let wire = b.peers.values().filter_map(|p| p.wire.poll_timeout()).min();
        b.net.poll_timeout(now).into_iter().chain(wire).min()
    }

    /// Sends `rpc` from identity `id` to the client on host `host`, if connected. With a
    /// `note`, an [`Output::Mark`] follows once the RPC has left whole (unless the connection
    /// ends first).
    pub fn send_rpc(
        &mut self,
        id: u32,
        host: u32,
        now: u64,
        rpc: &Rpc,
        note: Option<MarkNote>,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
    ) -> Vec<Output> {
        self.on_client((id, host), now, host_of_ip, |p| {
            match note {
                Some(note) => {
                    let tag = p.next_tag;
                    p.next_tag += 1;
                    p.notes.insert(tag, note);
                    p.wire.send_rpc_marked(now, rpc, tag)
                }
                None => p.wire.send_rpc(now, rpc),
            }
            .is_ok()
        })
    }

    /// Applies `act` to identity `id`'s connection with the client on `host`, if there is one,
    /// and pumps the identity's endpoint if `act` says it made something to send.
    fn on_client(
        &mut self,
        (id, host): (u32, u32),
        now: u64,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
        act: impl FnOnce(&mut Peer) -> bool,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(b) = self.hosts.get_mut(&id) else { return out };
        let Some(p) = b.peers.values_mut().find(|p| p.host == host) else { return out };
        if act(p) {
            b.pump(now, self.seed, &self.config, host_of_ip, &mut out);
        }
        out
    }

    /// Answers the request on `stream` from the client on `host` with `bytes` and closes the
    /// stream.
    pub fn respond(
        &mut self,
        (id, host): (u32, u32),
        now: u64,
        stream: StreamId,
        bytes: &[u8],
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
    ) -> Vec<Output> {
        self.on_client((id, host), now, host_of_ip, |p| p.wire.respond(now, stream, bytes).is_ok())
    }

    /// Sends the client on `host` a request on `protocol`; its answer comes as
    /// [`Output::Response`].
    pub fn request(
        &mut self,
        (id, host): (u32, u32),
        now: u64,
        protocol: &str,
        body: Vec<u8>,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
    ) -> Vec<Output> {
        self.on_client((id, host), now, host_of_ip, |p| p.wire.request(now, protocol, body).is_ok())
    }

    /// The peer id of the client on host `host` connected to identity `id`, once authenticated.
    pub fn client_peer(&self, id: u32, host: u32) -> Option<&PeerId> {
        self.hosts.get(&id)?.peers.values().find(|p| p.host == host)?.peer.as_ref()
    }
}

impl BoundaryHost {
    /// Moves everything along until nothing changes: endpoint events into connections, the
    /// connections' bytes into TCP, TCP's packets out.
    fn pump(
        &mut self,
        now: u64,
        seed: u64,
        config: &Arc<ConnConfig>,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
        out: &mut Vec<Output>,
    ) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.net.poll_event() {
                progressed = true;
                self.on_net_event(now, seed, config, event, host_of_ip, out);
            }
            for (&conn, p) in self.peers.iter_mut() {
                while let Some(event) = p.wire.poll_event() {
                    out.push(match event {
                        ConnEvent::Established { peer } => {
                            p.peer = Some(peer);
                            continue;
                        }
                        // Up once streams can open: the identity may send requests at once.
                        ConnEvent::Ready { .. } => match p.peer {
                            Some(peer) => Output::Up { host: p.host, peer, outbound: p.wire.side() == Side::Dialer },
                            None => continue,
                        },
                        ConnEvent::Rpc(rpc) => Output::Rpc { host: p.host, rpc },
                        ConnEvent::Request { stream, protocol, body } => {
                            Output::Request { host: p.host, stream, protocol, body }
                        }
                        ConnEvent::Response { stream, body } => Output::Response { host: p.host, stream, body },
                    });
                }
                while let Some(bytes) = p.wire.poll_transmit() {
                    p.unsent.extend_from_slice(&bytes);
                }
                // Offsets count what the wire produced: queued here or in TCP, the stream's bytes.
                while let Some((tag, end)) = p.wire.poll_mark() {
                    let Some(note) = p.notes.remove(&tag) else { continue };
                    out.push(Output::Mark {
                        host: p.host,
                        mark: StreamMark { src: p.local, dst: p.remote, end, note },
                    });
                }
                if !p.unsent.is_empty() {
                    let n = self.net.send(now, conn, &p.unsent).unwrap_or(0);
                    p.unsent.drain(..n);
                    if p.unsent.is_empty() {
                        // What waited for room leaves no room behind.
                        p.unsent = Vec::new();
                    }
                    progressed |= n > 0;
                }
            }
            while let Some(packet) = self.net.poll_transmit() {
                out.push(Output::Packet(packet));
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_net_event(
        &mut self,
        now: u64,
        seed: u64,
        config: &Arc<ConnConfig>,
        event: NetEvent,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
        out: &mut Vec<Output>,
    ) {
        match event {
            NetEvent::Accepted { conn, remote } => {
                let Some(host) = host_of_ip(*remote.ip()) else {
                    self.net.abort(now, conn);
                    return;
                };
                let wire = Connection::accept(
                    self.key.clone(),
                    noise_seed(seed, self.id, conn),
                    config.clone(),
                    Addresses::default(),
                );
                let peer = Peer::new(host, (SocketAddrV4::new(self.net.ip(), GOSSIP_PORT), remote), wire);
                self.peers.insert(conn, peer);
                self.accepted += 1;
            }
            NetEvent::Readable(conn) => {
                let data = self.net.recv(now, conn).unwrap_or_default();
                if let Some(p) = self.peers.get_mut(&conn)
                    && !data.is_empty()
                    && p.wire.handle_bytes(now, &data).is_err()
                {
                    self.net.abort(now, conn);
                }
            }
            NetEvent::Closed(conn) => {
                if let Some(p) = self.peers.remove(&conn) {
                    out.push(Output::Down { host: p.host });
                }
            }
            // Dials are reported by the wire stack; boundary identities bind no datagram sockets.
            NetEvent::Connected(_) | NetEvent::Datagram(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_wire::gossipsub::SubOpts;

    #[test]
    fn identity_keys_are_stable_per_seed_and_id_and_distinct() {
        assert_eq!(identity_key(1, 7).peer_id(), identity_key(1, 7).peer_id());
        assert_ne!(identity_key(1, 7).peer_id(), identity_key(1, 8).peer_id());
        assert_ne!(identity_key(1, 7).peer_id(), identity_key(2, 7).peer_id());
    }

    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
    const ID_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 6);

    /// A client of identity 5: its endpoint, its connection, and what it has read.
    struct Client {
        net: Endpoint,
        conn: ConnId,
        wire: Connection,
        /// Stream bytes received, and the RPCs read with the count at which each became readable.
        received: u64,
        rpcs: Vec<(Rpc, u64)>,
    }

    impl Client {
        fn dial() -> Client {
            let mut net = Endpoint::new(CLIENT_IP, 3, 0);
            let conn = net.connect(0, SocketAddrV4::new(ID_IP, GOSSIP_PORT)).unwrap();
            let wire = Connection::dial(
                Keypair::ed25519_from_secret([9; 32]),
                [4; 32],
                Some(identity_key(1, 5).peer_id()),
                Arc::new(ConnConfig::default()),
                Addresses::default(),
            );
            Client { net, conn, wire, received: 0, rpcs: Vec::new() }
        }

        /// Moves packets both ways for `steps` ms; returns the boundary's outputs but packets.
        fn run(&mut self, boundary: &mut Boundary, now: &mut u64, steps: usize) -> Vec<Output> {
            let host_of_ip = |ip: Ipv4Addr| (ip == CLIENT_IP).then_some(42);
            let mut outs = Vec::new();
            for _ in 0..steps {
                *now += 1_000_000;
                while let Some(p) = self.net.poll_transmit() {
                    outs.extend(boundary.handle_packet(5, ID_IP, *now, p, &host_of_ip));
                }
                for o in std::mem::take(&mut outs) {
                    match o {
                        Output::Packet(p) => self.net.handle_packet(*now, p),
                        other => outs.push(other),
                    }
                }
                while let Some(e) = self.net.poll_event() {
                    if let NetEvent::Readable(c) = e {
                        for byte in self.net.recv(*now, c).unwrap() {
                            self.wire.handle_bytes(*now, &[byte]).unwrap();
                            self.received += 1;
                            while let Some(ev) = self.wire.poll_event() {
                                if let ConnEvent::Rpc(r) = ev {
                                    self.rpcs.push((r, self.received));
                                }
                            }
                        }
                    }
                }
                while let Some(b) = self.wire.poll_transmit() {
                    self.net.send(*now, self.conn, &b).unwrap();
                }
            }
            outs
        }
    }

    /// A client (its own endpoint and libp2p connection) dials identity 5 of a boundary; packets
    /// cross at once. The identity authenticates it, and its RPC comes out as the client's.
    #[test]
    fn a_client_dials_an_identity_which_terminates_tcp_and_libp2p() {
        let mut boundary = Boundary::new(1, ConnConfig::default());
        let mut client = Client::dial();
        let hello =
            Rpc { subscriptions: vec![SubOpts { subscribe: true, topic: "beacon_block".into() }], ..Rpc::default() };
        client.wire.send_rpc(0, &hello).unwrap();
        let mut now = 0;
        let outs = client.run(&mut boundary, &mut now, 50);
        let peer = Keypair::ed25519_from_secret([9; 32]).peer_id();
        assert!(
            matches!(outs.first(), Some(Output::Up { host: 42, peer: p, outbound: false }) if *p == peer),
            "{outs:?}"
        );
        assert!(outs.iter().any(|o| matches!(o, Output::Rpc { host: 42, rpc } if *rpc == hello)), "{outs:?}");
        assert_eq!(boundary.len(), 1);
        assert_eq!(boundary.client_peer(5, 42), Some(&peer));
        assert_eq!((boundary.accepted(5), boundary.accepted(6)), (1, 0));
    }

    /// Messages the identity sends with a note are marked where they end on the TCP stream: the
    /// client can read each one exactly when it has received that many bytes of the stream.
    #[test]
    fn a_noted_message_is_marked_at_the_stream_offset_where_the_client_can_read_it() {
        let mut boundary = Boundary::new(1, ConnConfig::default());
        let mut client = Client::dial();
        let mut now = 0;
        client.run(&mut boundary, &mut now, 50);
        let host_of_ip = |ip: Ipv4Addr| (ip == CLIENT_IP).then_some(42);
        let mut marks = Vec::new();
        for (k, size) in [300_000usize, 10, 70_000].into_iter().enumerate() {
            let message = thermocline_wire::gossipsub::Message {
                data: vec![k as u8; size],
                topic: "beacon_block".into(),
                ..Default::default()
            };
            let rpc = Rpc { publish: vec![message], ..Rpc::default() };
            let note = MarkNote {
                message: k as u64,
                published_ns: 0,
                slot: 0,
                slot_start_ns: 0,
                sender: 5,
                hops: 1,
                topic: "beacon_block".into(),
            };
            let outs = boundary.send_rpc(5, 42, now, &rpc, Some(note), &host_of_ip);
            for o in outs {
                match o {
                    Output::Packet(p) => client.net.handle_packet(now, p),
                    Output::Mark { mark, .. } => marks.push(mark),
                    _ => {}
                }
            }
        }
        for o in client.run(&mut boundary, &mut now, 2000) {
            if let Output::Mark { host: 42, mark } = o {
                marks.push(mark);
            }
        }
        let readable: Vec<u64> = client.rpcs.iter().filter(|(r, _)| !r.publish.is_empty()).map(|(_, n)| *n).collect();
        assert_eq!(readable.len(), 3, "all three read");
        assert_eq!(marks.iter().map(|m| m.end).collect::<Vec<_>>(), readable);
        assert_eq!(marks.iter().map(|m| m.note.message).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(marks.iter().all(|m| m.src == SocketAddrV4::new(ID_IP, GOSSIP_PORT) && *m.dst.ip() == CLIENT_IP));
    }

    /// Identity 5 dials a listening client: TCP, then libp2p with the identity as dialer. The
    /// client authenticates the identity's key; the identity reports the client up, and the
    /// client's RPC comes out as the client's.
    #[test]
    fn an_identity_dials_a_listening_client() {
        let (client_ip, id_ip) = (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 6));
        let host_of_ip = |ip: Ipv4Addr| (ip == client_ip).then_some(42);
        let mut boundary = Boundary::new(1, ConnConfig::default());
        let mut client = Endpoint::new(client_ip, 3, 0);
        client.listen(9100).unwrap();
        let client_key = Keypair::ed25519_from_secret([9; 32]);
        let mut wire = None;
        let mut conn = None;
        let hello =
            Rpc { subscriptions: vec![SubOpts { subscribe: true, topic: "beacon_block".into() }], ..Rpc::default() };
        let mut outs = boundary.dial(5, id_ip, 0, (42, SocketAddrV4::new(client_ip, 9100)), &host_of_ip);
        let mut now = 0;
        let mut authenticated = None;
        for _ in 0..200 {
            now += 1_000_000;
            for o in std::mem::take(&mut outs) {
                match o {
                    Output::Packet(p) => client.handle_packet(now, p),
                    other => outs.push(other),
                }
            }
            while let Some(e) = client.poll_event() {
                match e {
                    NetEvent::Accepted { conn: c, .. } => {
                        let mut w = Connection::accept(
                            client_key.clone(),
                            [4; 32],
                            Arc::new(ConnConfig::default()),
                            Addresses::default(),
                        );
                        w.send_rpc(now, &hello).unwrap();
                        (wire, conn) = (Some(w), Some(c));
                    }
                    NetEvent::Readable(c) => {
                        let data = client.recv(now, c).unwrap();
                        wire.as_mut().unwrap().handle_bytes(now, &data).unwrap();
                    }
                    _ => {}
                }
            }
            if let (Some(w), Some(c)) = (wire.as_mut(), conn) {
                while let Some(e) = w.poll_event() {
                    if let ConnEvent::Established { peer } = e {
                        authenticated = Some(peer);
                    }
                }
                while let Some(b) = w.poll_transmit() {
                    client.send(now, c, &b).unwrap();
                }
            }
            while let Some(p) = client.poll_transmit() {
                outs.extend(boundary.handle_packet(5, id_ip, now, p, &host_of_ip));
            }
            if outs.iter().any(|o| matches!(o, Output::Rpc { .. })) {
                break;
            }
        }
        assert_eq!(authenticated, Some(identity_key(1, 5).peer_id()), "the client sees identity 5's key");
        let peer = client_key.peer_id();
        assert!(
            outs.iter().any(|o| matches!(o, Output::Up { host: 42, peer: p, outbound: true } if *p == peer)),
            "{outs:?}"
        );
        assert!(outs.iter().any(|o| matches!(o, Output::Rpc { host: 42, rpc } if *rpc == hello)), "{outs:?}");
        assert_eq!(boundary.len(), 1);
        assert_eq!(boundary.accepted(5), 0, "a dial is not an accepted connection");
    }
}
