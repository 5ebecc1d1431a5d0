//! End-to-end: two real Ethereum consensus clients — Lodestar 1.5.1 on Node.js, unmodified, as
//! installed from npm by its lockfile (`nodes/lodestar/`) — on two simulated hosts. They start a
//! local network from interop keys, half the validators each; the second finds the first from
//! its ENR file, they peer over simulated TCP (noise, mplex) and gossip each other's blocks, and
//! at the end both report the same head. Repeated runs and a two-shard run give the same answers
//! and digest.

mod common;

use common::*;

/// The `root` and `slot` of a `/eth/v1/beacon/headers/head` answer.
fn head(json: &str) -> (String, u64) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let root = v["data"]["root"].as_str().expect("a root").to_string();
    let slot = v["data"]["header"]["message"]["slot"].as_str().expect("a slot").parse().unwrap();
    (root, slot)
}

#[test]
fn two_lodestar_nodes_peer_gossip_blocks_and_agree_on_the_head() {
    let entry = npm::lodestar_entry();
    let dir = scratch("lodestar");
    // Genesis 20 s after the simulated start date (2000-01-01T00:00:00Z); the minimal preset's
    // slots are 6 s, so 140 s hold 20 slots.
    let node = |validators: &str, extra: &str| {
        format!(
            r#"args = ["{entry}", "dev", "--genesisValidators", "8", "--genesisTime", "946684820",
        "--startValidators", "{validators}", "--dataDir", "data", "--rest", "--rest.port", "9596",
        "--metrics", "false", "--port", "9000", "--enr.ip", "{{ip}}"{extra}]
expected_exit = "running""#,
            entry = entry.display()
        )
    };
    let spec = write_spec(
        &dir,
        "lodestar.toml",
        &format!(
            r#"
[run]
seed = 1
duration = "140 s"

[network]
topology = "single-switch"
latency = "10 ms"

[[hosts]]
name = "a"
kind = "direct"
count = 1
bandwidth = {{ up = "100 Mbit", down = "100 Mbit" }}

[[hosts]]
name = "b"
kind = "direct"
count = 1
bandwidth = {{ up = "100 Mbit", down = "100 Mbit" }}

[[processes]]
host = "a"
path = "/usr/bin/node"
{a}

[[processes]]
host = "b"
path = "/usr/bin/node"
start = "2 s"
{b}

[[processes]]
host = "a"
path = "curl"
args = ["-s", "http://127.0.0.1:9596/eth/v1/beacon/headers/head"]
start = "135 s"

[[processes]]
host = "b"
path = "curl"
args = ["-s", "http://127.0.0.1:9596/eth/v1/beacon/headers/head"]
start = "135 s"
"#,
            a = node("0..3", ""),
            // b reads the ENR a wrote at start and dials it (with two nodes a discv5 lookup
            // never returns the boot node itself).
            b = node("4..7", r#", "--bootnodesFile", "../a/data/enr", "--network.connectToDiscv5Bootnodes""#),
        ),
    );
    let mut seen: Option<(String, String, String)> = None;
    for (i, shards) in ["1", "1", "2"].into_iter().enumerate() {
        let out = dir.join(format!("out{i}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let run = (
            read(out.join("hosts/a/curl.1.stdout")),
            read(out.join("hosts/b/curl.1.stdout")),
            summary(&out)["digest"].as_str().unwrap().to_string(),
        );
        if i == 0 {
            let (ha, hb) = (head(&run.0), head(&run.1));
            assert_eq!(ha, hb, "both nodes have the same head");
            // Slot 19 is due at 134 s; each node proposes for only half the validators, so a
            // head this recent on both means blocks crossed in both directions.
            assert!(ha.1 >= 17, "head at slot {}", ha.1);
            for host in ["a", "b"] {
                let log = read(out.join(format!("hosts/{host}/node.0.stdout")));
                assert!(log.contains("peers: 1"), "{host} peered: {log}");
            }
        }
        match &seen {
            None => seen = Some(run),
            Some(first) => assert_eq!(&run, first, "run {i} ({shards} shards) differs"),
        }
    }
}
