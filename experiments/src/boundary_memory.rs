//! The resident memory of boundary identities on their own, for `bench hybrid`: `n` identities
//! each accept a libp2p connection from a client of their own (a TCP endpoint and connection as
//! a real client's), send and receive 100 KiB blocks over it, and fall quiet; the process's
//! resident set then drops by their memory when the boundary is dropped. Run in one thread with
//! nothing else in the process working, so the drop is theirs alone.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use thermocline_net::{ConnId, Endpoint, NetEvent};
use thermocline_surrogate::boundary::{Boundary, GOSSIP_PORT, Output, identity_key};
use thermocline_wire::connection::{Addresses, ConnConfig, ConnEvent, Connection};
use thermocline_wire::gossipsub::{Message, Rpc, SubOpts};
use thermocline_wire::identity::Keypair;

/// One simulated millisecond, the step of the exchange.
const STEP_NS: u64 = 1_000_000;
/// Steps between blocks, and after the last one before the identities are measured.
const BLOCK_EVERY: u64 = 500;

/// A client of identity `k`: its endpoint, connection handle and libp2p connection.
struct Client {
    net: Endpoint,
    conn: ConnId,
    wire: Connection,
    identity_ip: Ipv4Addr,
}

fn address(net: u8, k: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, net, (k >> 8) as u8, k as u8)
}

fn block(topic: &str, fill: u8) -> Rpc {
    let message = Message { data: vec![fill; 100 * 1024], topic: topic.into(), ..Message::default() };
    Rpc { publish: vec![message], ..Rpc::default() }
}

/// The process's resident set after returning free heap memory to the kernel, in bytes.
fn resident() -> Option<u64> {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of resident memory per boundary identity after `n` (at most 65,536) identities each
/// sent and received `blocks` blocks; `None` where `/proc` cannot tell.
pub fn per_identity(n: u32, blocks: u64) -> Option<f64> {
    let (boundary, _) = exchange(n, blocks);
    let with = resident()?;
    drop(boundary);
    let without = resident()?;
    Some(with.saturating_sub(without) as f64 / f64::from(n.max(1)))
}

/// `n` identities and their clients exchange `blocks` blocks each way; the boundary, and the
/// blocks (identities', clients') that arrived.
fn exchange(n: u32, blocks: u64) -> (Boundary, (u64, u64)) {
    let mut arrived = (0, 0);
    let topic = "beacon_block";
    let mut boundary = Boundary::new(1, ConnConfig::default());
    let mut clients: Vec<Client> = (0..n.min(1 << 16))
        .map(|k| {
            let mut net = Endpoint::new(address(1, k), u64::from(k), 0);
            let identity_ip = address(0, k);
            let conn = net.connect(0, SocketAddrV4::new(identity_ip, GOSSIP_PORT)).expect("a fresh endpoint dials");
            let peer = Some(identity_key(1, k).peer_id());
            let key = Keypair::ed25519_from_secret([9; 32]);
            let mut wire = Connection::dial(key, [4; 32], peer, Arc::new(ConnConfig::default()), Addresses::default());
            let hello = SubOpts { subscribe: true, topic: topic.into() };
            let _ = wire.send_rpc(0, &Rpc { subscriptions: vec![hello], ..Rpc::default() });
            Client { net, conn, wire, identity_ip }
        })
        .collect();
    let host_of_ip = |ip: Ipv4Addr| {
        let o = ip.octets();
        (o[1] == 1).then(|| (u32::from(o[2]) << 8 | u32::from(o[3])) + 1_000_000)
    };
    let steps = (blocks + 2) * BLOCK_EVERY;
    for step in 1..=steps {
        let now = step * STEP_NS;
        let sending = step % BLOCK_EVERY == 0 && step / BLOCK_EVERY <= blocks;
        for (k, c) in (0u32..).zip(clients.iter_mut()) {
            let mut outs = Vec::new();
            while let Some(p) = c.net.poll_transmit() {
                outs.extend(boundary.handle_packet(k, c.identity_ip, now, p, &host_of_ip));
            }
            outs.extend(boundary.handle_timeout(k, now, &host_of_ip));
            if sending {
                outs.extend(boundary.send_rpc(k, k + 1_000_000, now, &block(topic, step as u8), None, &host_of_ip));
                let _ = c.wire.send_rpc(now, &block(topic, !(step as u8)));
            }
            for o in outs {
                match o {
                    Output::Packet(p) => c.net.handle_packet(now, p),
                    Output::Rpc { rpc, .. } => arrived.0 += rpc.publish.len() as u64,
                    _ => {}
                }
            }
            c.net.handle_timeout(now);
            while let Some(e) = c.net.poll_event() {
                if let NetEvent::Readable(conn) = e {
                    let data = c.net.recv(now, conn).unwrap_or_default();
                    let _ = c.wire.handle_bytes(now, &data);
                }
            }
            while let Some(e) = c.wire.poll_event() {
                if let ConnEvent::Rpc(rpc) = e {
                    arrived.1 += rpc.publish.len() as u64;
                }
            }
            while let Some(bytes) = c.wire.poll_transmit() {
                let _ = c.net.send(now, c.conn, &bytes);
            }
        }
    }
    (boundary, arrived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_crosses_both_ways_before_the_identities_are_measured() {
        let (boundary, arrived) = exchange(3, 2);
        assert_eq!(boundary.len(), 3);
        assert_eq!(arrived, (6, 6));
    }
}
