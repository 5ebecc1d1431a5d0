//! The wire crate's discv5 against an independent implementation: `@chainsafe/discv5` 3.0.0
//! (Lodestar's), run by Node.js on loopback, talks to a [`Node`] driven over a plain UDP socket.
//! It pings (a handshake our way round: its random packet, our WHOAREYOU, its handshake with
//! its record), sends a TALKREQ and runs a lookup
//! that our node answers with records at the distances it asks for. If a byte of a header, a key, a signature or a record were wrong, it
//! would drop our packets and print an error instead.

mod common;
use common::npm::js_discv5_probe;
use k256::ecdsa::SigningKey;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thermocline_wire::discv5::enr::{Enr, NodeId, log_distance};
use thermocline_wire::discv5::message::Message;
use thermocline_wire::discv5::node::{Node, NodeEvent};

fn key(n: u32) -> SigningKey {
    let mut secret = [7u8; 32];
    secret[..4].copy_from_slice(&n.to_be_bytes());
    SigningKey::from_slice(&secret).unwrap()
}

fn record(k: &SigningKey, addr: SocketAddrV4) -> Enr {
    Enr::signed(k, 1, &[(b"ip", addr.ip().octets().to_vec()), (b"udp", addr.port().to_be_bytes().to_vec())]).unwrap()
}

#[test]
fn chainsafe_discv5_pings_talks_to_and_looks_up_through_our_node() {
    let probe = js_discv5_probe();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let SocketAddr::V4(ours) = socket.local_addr().unwrap() else { panic!("IPv4") };
    let theirs_port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let k = key(0);
    let mut node = Node::new(k.clone(), record(&k, ours), 1);
    // Records the lookup can get: 96 identities at made-up addresses, by distance from us.
    let others: Vec<Enr> =
        (1..97).map(|i| record(&key(i), SocketAddrV4::new([127, 0, 0, 2].into(), 20000 + i as u16))).collect();
    let mut child = Command::new("node")
        .args([probe.to_str().unwrap(), &theirs_port.to_string(), &node.enr().to_text()])
        .env("DEBUG", std::env::var("PROBE_DEBUG").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (apt-get install nodejs)");
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut answered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 2048];
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf) {
            node.handle_packet(from, &buf[..n]);
        }
        while let Some(event) = node.poll_event() {
            if let NodeEvent::Request { from, message: Message::FindNode { req_id, distances } } = event {
                let me = node.id();
                let found: Vec<Enr> = others
                    .iter()
                    .filter(|e| distances.contains(&u64::from(log_distance(&me, &e.node_id()))))
                    .take(16)
                    .cloned()
                    .collect();
                answered.extend(found.iter().map(|e| e.node_id()));
                node.answer_findnode(from, &req_id, &found);
            }
        }
        while let Some((to, bytes)) = node.poll_transmit() {
            socket.send_to(&bytes, to).unwrap();
        }
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hex = |id: &NodeId| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert!(stdout.contains("connected 1\n"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("talkresp bytes=0\n"), "{stdout}");
    let line =
        stdout.lines().find(|l| l.starts_with("discovered ")).unwrap_or_else(|| panic!("no lookup result: {stdout}"));
    assert!(!answered.is_empty(), "the lookup asked our node");
    for id in &answered {
        assert!(line.contains(&hex(id)), "record {} we sent was not accepted: {line}", hex(id));
    }
}
