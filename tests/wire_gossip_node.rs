//! The wire crate's whole stack against a real, unmodified rust-libp2p node: `nodes/gossip-node` runs as an
//! ordinary process on loopback, and a [`Connection`] over a plain TCP socket dials it as node 1
//! of 2 (with node 1's key, so the node names it in its log). Multistream-select, Noise, the
//! muxer, gossipsub's streams, subscriptions, signed messages in both directions: if any byte
//! were wrong the node would refuse the connection or the messages, and its log would say so.

mod common;
use common::gossip_node;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thermocline_wire::connection::{Addresses, ConnConfig, ConnEvent, Connection, MuxKind};
use thermocline_wire::gossipsub::{self, Message, Rpc, SubOpts};
use thermocline_wire::identity::{Keypair, PeerId};

const TOPIC: &str = "beacon_block";

/// gossip-node's key for node `index` (its `key_of`).
fn key_of(index: u32) -> Keypair {
    let mut secret = [0u8; 32];
    secret[..4].copy_from_slice(&index.to_be_bytes());
    secret[4..12].copy_from_slice(b"gossipnd");
    Keypair::ed25519_from_secret(secret)
}

/// A block as gossip-node writes them: slot, publisher, publication time (Unix ns), filler.
fn block(slot: u64, publisher: u32, size: usize) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut data = Vec::with_capacity(size);
    data.extend_from_slice(&slot.to_be_bytes());
    data.extend_from_slice(&publisher.to_be_bytes());
    data.extend_from_slice(&now.to_be_bytes());
    data.resize(size, slot as u8);
    data
}

/// A message signed as gossipsub's `Signed` authenticity requires.
fn signed(key: &Keypair, seqno: u64, data: Vec<u8>) -> Message {
    let mut m = Message {
        from: Some(key.peer_id().to_bytes()),
        data,
        seqno: Some(seqno.to_be_bytes().to_vec()),
        topic: TOPIC.into(),
        signature: None,
        key: None,
    };
    m.signature = Some(key.sign(&gossipsub::signing_bytes(&m)));
    m
}

/// The signature of a received message checks out against its `from` peer's inlined key.
fn verify(m: &Message) -> bool {
    let Some(from) = m.from.as_deref().and_then(|f| PeerId::from_bytes(f).ok()) else { return false };
    let Some(key) = from.public_key() else { return false };
    m.signature.as_deref().is_some_and(|sig| key.verify(&gossipsub::signing_bytes(m), sig))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("gossip-node never listened on {port}: {e}"),
        }
    }
}

/// Runs gossip-node 0 against this side as node 1 over `muxer`, and returns gossip-node's log
/// and the slots of the valid blocks this side received.
fn exchange(muxer: MuxKind) -> (String, Vec<u64>) {
    let port = free_port();
    let mut node = Command::new(gossip_node())
        .args(["--index", "0", "--nodes", "2", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--genesis", "3", "--slot", "1", "--slots", "4", "--size", "3000", "--verbose"])
        .args(["--muxer", if muxer == MuxKind::Mplex { "mplex" } else { "yamux" }])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gossip-node");
    let mut tcp = connect(port);
    tcp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let me = key_of(1);
    let config = Arc::new(ConnConfig { muxers: vec![muxer], ..ConnConfig::default() });
    let mut conn = Connection::dial(me.clone(), [7; 32], Some(key_of(0).peer_id()), config, Addresses::default());
    let start = Instant::now();
    let mut got = Vec::new();
    let mut published = 0u64;
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < Duration::from_secs(30) {
        let now = start.elapsed().as_nanos() as u64;
        while let Some(out) = conn.poll_transmit() {
            tcp.write_all(&out).unwrap();
        }
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => conn.handle_bytes(now, &buf[..n]).expect("gossip-node's bytes are valid"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => conn.handle_timeout(now),
            Err(e) => panic!("reading from gossip-node: {e}"),
        }
        while let Some(event) = conn.poll_event() {
            match event {
                ConnEvent::Established { peer } => assert_eq!(peer, key_of(0).peer_id()),
                ConnEvent::Ready { muxer: agreed } => {
                    assert_eq!(agreed, muxer);
                    let hello =
                        Rpc { subscriptions: vec![SubOpts { subscribe: true, topic: TOPIC.into() }], ..Rpc::default() };
                    conn.send_rpc(now, &hello).unwrap();
                }
                ConnEvent::Rpc(rpc) => {
                    for m in rpc.publish.iter().filter(|m| m.topic == TOPIC && verify(m)) {
                        got.push(u64::from_be_bytes(m.data[..8].try_into().unwrap()));
                    }
                }
                ConnEvent::Request { .. } | ConnEvent::Response { .. } => panic!("no request protocols here"),
            }
        }
        // Publish slots 1 and 3 (this side's) once gossip-node's slot 0 has arrived.
        if !got.is_empty() && published < 2 {
            let slot = 1 + 2 * published;
            let rpc = Rpc { publish: vec![signed(&me, published + 1, block(slot, 1, 3000))], ..Rpc::default() };
            conn.send_rpc(now, &rpc).unwrap();
            published += 1;
        }
    }
    let status = node.wait().expect("gossip-node exits");
    let mut log = String::new();
    node.stdout.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "gossip-node failed: {log}");
    got.sort();
    got.dedup();
    (log, got)
}

fn check(muxer: MuxKind) {
    let (log, got) = exchange(muxer);
    assert!(log.contains("connected node=1"), "gossip-node saw this side as node 1:\n{log}");
    for slot in [1, 3] {
        let line = format!("recv slot={slot} publisher=1 via=1 ");
        assert!(log.contains(&line), "gossip-node accepted this side's signed block {slot}:\n{log}");
    }
    assert!(log.contains("done node=0 received=2 expected=2"), "{log}");
    assert!(!log.contains("malformed") && !log.contains("failed"), "{log}");
    assert_eq!(got, [0, 2], "this side received gossip-node's blocks, with valid signatures");
}

#[test]
fn a_real_rust_libp2p_node_meshes_with_the_stack_over_yamux() {
    check(MuxKind::Yamux);
}

#[test]
fn a_real_rust_libp2p_node_meshes_with_the_stack_over_mplex() {
    check(MuxKind::Mplex);
}
