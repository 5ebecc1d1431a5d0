//! The boundary: surrogate identities that real clients (direct hosts) connect to. Only these
//! identities pay for real networking: each gets, on the first packet a client sends it, a TCP
//! endpoint ([`HostNet`]) listening on the gossip port, and every accepted connection runs the
//! full libp2p stack ([`Connection`]: multistream-select, Noise with the identity's own key, a
//! muxer, gossipsub). The engine hands packets and timeouts in and gets back what to do: IPv4
//! packets to put on the network, peers coming up or going, and the gossipsub RPCs they sent.
//! Every other identity keeps its compact rows.
//!
//! Keys are derived from the run's seed and the identity's id, so peer ids are the same on every
//! run, shard count and backend.

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use thermocline_net::{ConnId, HostNet, NetEvent};
use thermocline_wire::connection::{Addresses, ConnConfig, ConnEvent, Connection};
use thermocline_wire::gossipsub::Rpc;
use thermocline_wire::identity::{Keypair, PeerId};

/// The TCP port boundary identities accept libp2p connections on.
pub const GOSSIP_PORT: u16 = 9000;
/// Connection slots every surrogate keeps free for real clients in a run with direct hosts.
pub const CLIENT_SLOTS: u32 = 2;

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
}

/// One client connection of a boundary identity.
struct Peer {
    /// The client's host id.
    host: u32,
    wire: Connection,
    /// Bytes the wire produced that the TCP send buffer had no room for yet.
    unsent: Vec<u8>,
}

/// One boundary identity.
struct BoundaryHost {
    id: u32,
    net: HostNet,
    key: Keypair,
    peers: BTreeMap<ConnId, Peer>,
    /// Connections accepted so far.
    accepted: u32,
}

/// The boundary identities of one shard.
pub struct Boundary {
    seed: u64,
    config: Arc<ConnConfig>,
    hosts: BTreeMap<u32, BoundaryHost>,
}

impl Boundary {
    /// No boundary identities yet.
    pub fn new(seed: u64, config: ConnConfig) -> Boundary {
        Boundary { seed, config: Arc::new(config), hosts: BTreeMap::new() }
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
        let (seed, config) = (self.seed, &self.config);
        let b = self.hosts.entry(id).or_insert_with(|| {
            let mut net = HostNet::new(ip, seed ^ u64::from(id), now);
            net.listen(GOSSIP_PORT).expect("a fresh endpoint has every port free");
            BoundaryHost { id, net, key: identity_key(seed, id), peers: BTreeMap::new(), accepted: 0 }
        });
        b.net.handle_packet(now, packet);
        let mut out = Vec::new();
        b.pump(now, seed, config, host_of_ip, &mut out);
        out
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

    /// Sends `rpc` from identity `id` to the client on host `host`, if connected.
    pub fn send_rpc(
        &mut self,
        id: u32,
        host: u32,
        now: u64,
        rpc: &Rpc,
        host_of_ip: &dyn Fn(Ipv4Addr) -> Option<u32>,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(b) = self.hosts.get_mut(&id) else { return out };
        let Some(p) = b.peers.values_mut().find(|p| p.host == host) else { return out };
        if p.wire.send_rpc(now, rpc).is_ok() {
            b.pump(now, self.seed, &self.config, host_of_ip, &mut out);
        }
        out
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
                        ConnEvent::Established { peer } => Output::Up { host: p.host, peer },
                        ConnEvent::Rpc(rpc) => Output::Rpc { host: p.host, rpc },
                        ConnEvent::Ready { .. } => continue,
                    });
                }
                while let Some(bytes) = p.wire.poll_transmit() {
                    p.unsent.extend_from_slice(&bytes);
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
                self.peers.insert(conn, Peer { host, wire, unsent: Vec::new() });
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
            NetEvent::Connected(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;
    use thermocline_wire::gossipsub::SubOpts;

    #[test]
    fn identity_keys_are_stable_per_seed_and_id_and_distinct() {
        assert_eq!(identity_key(1, 7).peer_id(), identity_key(1, 7).peer_id());
        assert_ne!(identity_key(1, 7).peer_id(), identity_key(1, 8).peer_id());
        assert_ne!(identity_key(1, 7).peer_id(), identity_key(2, 7).peer_id());
    }

    /// A client (its own endpoint and libp2p connection) dials identity 5 of a boundary; packets
    /// cross at once. The identity authenticates it, and its RPC comes out as the client's.
    #[test]
    fn a_client_dials_an_identity_which_terminates_tcp_and_libp2p() {
        let (client_ip, id_ip) = (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 6));
        let host_of_ip = |ip: Ipv4Addr| (ip == client_ip).then_some(42);
        let mut boundary = Boundary::new(1, ConnConfig::default());
        let mut client = HostNet::new(client_ip, 3, 0);
        let conn = client.connect(0, SocketAddrV4::new(id_ip, GOSSIP_PORT)).unwrap();
        let key = identity_key(1, 5);
        let config = Arc::new(ConnConfig::default());
        let mut wire = Connection::dial(
            Keypair::ed25519_from_secret([9; 32]),
            [4; 32],
            Some(key.peer_id()),
            config,
            Addresses::default(),
        );
        let hello =
            Rpc { subscriptions: vec![SubOpts { subscribe: true, topic: "beacon_block".into() }], ..Rpc::default() };
        wire.send_rpc(0, &hello).unwrap();
        let mut outs = Vec::new();
        let mut now = 0;
        for _ in 0..200 {
            now += 1_000_000;
            while let Some(p) = client.poll_transmit() {
                outs.extend(boundary.handle_packet(5, id_ip, now, p, &host_of_ip));
            }
            for o in std::mem::take(&mut outs) {
                match o {
                    Output::Packet(p) => client.handle_packet(now, p),
                    other => outs.push(other),
                }
            }
            while let Some(e) = client.poll_event() {
                if let NetEvent::Readable(c) = e {
                    let data = client.recv(now, c).unwrap();
                    wire.handle_bytes(now, &data).unwrap();
                }
            }
            while let Some(b) = wire.poll_transmit() {
                client.send(now, conn, &b).unwrap();
            }
            if outs.iter().any(|o| matches!(o, Output::Rpc { .. })) {
                break;
            }
        }
        let peer = Keypair::ed25519_from_secret([9; 32]).peer_id();
        assert!(matches!(outs.first(), Some(Output::Up { host: 42, peer: p }) if *p == peer), "{outs:?}");
        assert!(outs.iter().any(|o| matches!(o, Output::Rpc { host: 42, rpc } if *rpc == hello)), "{outs:?}");
        assert_eq!(boundary.len(), 1);
        assert_eq!((boundary.accepted(5), boundary.accepted(6)), (1, 0));
    }
}
