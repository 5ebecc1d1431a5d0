//! End-to-end, the shred relay: packet sockets and port mirrors read by unmodified programs, and
//! `experiments/specs/shred-relay.toml` — turbine traffic sources, a port mirror on the Ashburn
//! switch read by Debian's `socat` (`INTERFACE:mirror0,type=2`), a static route over a private
//! backbone, and a Python unwrap script and replay consumer on the validator in Miami. The relay
//! with its route raises the validator's shred and slot rates; without the route (over the lossy
//! public path) it does not; the runs repeat on one and two shards.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Reads packet sockets on `alice` for 3 s: a cooked one bound to `mirror0` and a raw one on
/// every interface; prints the interfaces, then what each socket read.
const CAPTURE: &str = r#"
import json, select, socket, time
print(json.dumps({"interfaces": socket.if_nameindex()}), flush=True)
cooked = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))
cooked.bind(("mirror0", 3))
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
got = {"cooked": [], "raw": []}
end = time.time() + 3
while time.time() < end:
    ready, _, _ = select.select([cooked, raw], [], [], end - time.time())
    for s in ready:
        whole = s.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
        data, (ifname, proto, pkttype, hatype, mac) = s.recvfrom(65536)
        ip = data if s is cooked else data[14:]
        port = int.from_bytes(ip[22:24], "big")
        got["cooked" if s is cooked else "raw"].append([ifname, proto, pkttype, hatype, len(data), whole, port])
print(json.dumps(got), flush=True)
"#;

/// Sends three datagrams to alice's port 7000 and two to 7001.
const SEND: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in (7000, 7001, 7000, 7001, 7000):
    s.sendto(b"x" * 100, ("alice", port))
"#;

#[test]
fn packet_sockets_read_what_crosses_eth0_and_a_mirror_takes_only_its_port() {
    let python = need("/usr/bin/python3", "python3");
    let dir = scratch("scenario-relay-sockets");
    let spec = SpecBuilder::alice_bob(1, "4 s", "100 Mbit")
        .sections("[[mirrors]]\nhosts = \"alice\"\ninterface = \"mirror0\"\nprotocol = \"udp\"\nport = 7000\n")
        .process("alice", &python, &["-c", CAPTURE], "0 s", "")
        .process("bob", &python, &["-c", SEND], "1 s", "")
        .write(&dir, "capture.toml");
    let digests = digests_by_run(&dir, &spec, &[("one", &[]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"]);
    let out = read(dir.join("one/hosts/alice/python3.0.stdout"));
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["interfaces"], serde_json::json!([[1, "lo"], [2, "eth0"], [3, "mirror0"]]));
    // The cooked socket on mirror0: the three datagrams to port 7000, as IPv4 packets (20 + 8 +
    // 100 bytes), received (PACKET_HOST), Ethernet, the whole length under MSG_TRUNC.
    let packet = |ifname: &str, len: u64, port: u64| serde_json::json!([ifname, 0x0800, 0, 1, len, len, port]);
    assert_eq!(lines[1]["cooked"], serde_json::Value::Array(vec![packet("mirror0", 128, 7000); 3]), "{out}");
    // The raw socket on every interface: each datagram on eth0, and again on mirror0 for those
    // it mirrors, behind a 14-byte Ethernet header.
    let mut raw: Vec<serde_json::Value> = lines[1]["raw"].as_array().unwrap().clone();
    raw.sort_by_key(|v| v.to_string());
    let mut want = vec![packet("eth0", 142, 7000); 3];
    want.extend(vec![packet("eth0", 142, 7001); 2]);
    want.extend(vec![packet("mirror0", 142, 7000); 3]);
    want.sort_by_key(|v| v.to_string());
    assert_eq!(raw, want, "{out}");
}

/// The replay consumer's summary fields of the run in `out`.
fn replay_summary(out: &Path) -> BTreeMap<String, f64> {
    let text = read(out.join("hosts/validator/replay.py.1.stdout"));
    let line = text.lines().find(|l| l.starts_with("summary ")).unwrap_or_else(|| panic!("no summary in {text}"));
    line.split_whitespace()
        .skip(1)
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_relay_over_its_backbone_raises_the_validators_shred_and_slot_rates() {
    need("/usr/bin/socat", "socat");
    need("/usr/bin/python3", "python3");
    let dir = scratch("scenario-relay");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs");
    std::fs::create_dir_all(dir.join("shred-relay")).unwrap();
    for f in ["unwrap.py", "replay.py"] {
        std::fs::copy(source.join("shred-relay").join(f), dir.join("shred-relay").join(f)).unwrap();
    }
    let text = read(source.join("shred-relay.toml"));
    let route_at = text.find("# The static route").unwrap();
    let variants = [
        ("before", text.replace(r#"to = ["relay:20000"]"#, r#"to = ["validator:9000"]"#)),
        ("public", text[..route_at].to_string()),
        ("relay", text.clone()),
    ];
    let mut runs = BTreeMap::new();
    for (name, spec_text) in &variants {
        assert!(name == &"relay" || spec_text != &text, "{name} differs from the experiment");
        let spec = write_spec(&dir, &format!("{name}.toml"), spec_text);
        let extra: &[(&str, &[&str])] = if *name == "relay" {
            &[("relay", &[]), ("relay-again", &[]), ("relay-two", &["--shards", "2"])]
        } else {
            &[(name, &[])]
        };
        let digests = digests_by_run(&dir, &spec, extra);
        assert!(digests.values().all(|d| d == &digests[name]), "{name}: one digest on repeats and shards: {digests:?}");
        runs.insert(*name, replay_summary(&dir.join(name)));
    }
    let (before, public, relay) = (&runs["before"], &runs["public"], &runs["relay"]);
    // 16 sources × 40 shreds/s from 2 s to 18 s: 640 shreds/s, 2.5 slots/s.
    assert_eq!(relay["shreds_per_s"], 640.0, "every shred crosses the backbone: {relay:?}");
    assert_eq!(relay["slots_per_s"], 2.5);
    assert!(before["shreds_per_s"] < 0.65 * 640.0, "the lossy uplink drops about 42 %: {before:?}");
    assert!(before["slots_per_s"] < 2.2, "so slots go missing: {before:?}");
    assert!(public["shreds_per_s"] < 0.65 * 640.0, "without the route the relay crosses the same uplink: {public:?}");
    // The relay's own one-way latency: Ashburn sources reach the switch in 0.5 ms, the backbone
    // takes 25.4 + 0.13 ms, a shred 0.1 ms on a source's 100 Mbit/s uplink; the shortest delay
    // via the relay is that and the forwarding.
    let fastest = relay["delay_min_ms"];
    assert!((26.1..26.6).contains(&fastest), "backbone delay: {relay:?}");
    assert!(before["delay_min_ms"] < fastest, "the direct path is shorter, only lossy: {before:?}");
}
