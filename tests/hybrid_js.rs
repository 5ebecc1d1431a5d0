//! A js-libp2p node meets surrogate identities: `nodes/js-gossip-node` (js-libp2p 2.9 with
//! `@chainsafe/libp2p-gossipsub`, Noise, yamux, identify and ping, on Node.js, as installed from
//! its lockfile) and the Rust `gossip-node` run on two direct hosts, each dialling four surrogates
//! of its own among 200 that gossip blocks: their only peers are surrogates. Each real node's
//! block crosses the cold tail to the other, the surrogates' blocks reach both, js-libp2p logs no
//! error of its own (identify included), pings every surrogate and scores it at zero or more,
//! and the run has one digest on one shard (twice), two shards and two shard processes. The same
//! holds over mplex.

mod common;
use common::npm::js_gossip_node;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use thermocline_models::metrics::read_ipc_file;

/// The JavaScript node (index 0) on host `js`, the Rust node (index 1) on `rs`, both over
/// `muxer`; each dials four surrogates (`tail1i`, …, `tail4i`), so they share no connection.
fn js_and_rust_spec(node: &str, script: &Path, rust: &Path, muxer: &str) -> String {
    let args = |index: u32| {
        let peers: Vec<String> = (1..=4).map(|k| format!("tail{k}{index}:9000")).collect();
        format!(
            r#""--index", "{index}", "--nodes", "2", "--listen", "0.0.0.0:9000", "--peer", "{}",
        "--genesis", "20", "--slot", "12", "--slots", "2", "--size", "20000", "--verbose", "--muxer", "{muxer}""#,
            peers.join(",")
        )
    };
    format!(
        r#"
[run]
seed = 3
duration = "46 s"

[network]
topology = "single-switch"
latency = "10 ms"

[[hosts]]
name = "tail"
count = 200
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[[hosts]]
name = "js"
kind = "direct"
count = 1
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[[hosts]]
name = "rs"
kind = "direct"
count = 1
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[gossip]

[traffic]
start = "14 s"
slot = "12 s"
beacon_block = {{ size = "20 KiB", proposer_delay = "0 ms" }}

[[processes]]
host = "js"
path = {node:?}
args = [{script:?}, {js}]
env = {{ DEBUG = "libp2p:*:error" }}

[[processes]]
host = "rs"
path = {rust:?}
args = [{rs}]
"#,
        script = script.display().to_string(),
        rust = rust.display().to_string(),
        js = args(0),
        rs = args(1),
    )
}

/// Runs `spec` on one shard (twice), two shards and two shard processes, into folders of `dir`
/// named after each; returns each run's digest.
fn digests(dir: &Path, spec: &Path) -> BTreeMap<&'static str, String> {
    digests_by_run(
        dir,
        spec,
        &[
            ("one", &["--shards", "1"]),
            ("again", &["--shards", "1"]),
            ("two", &["--shards", "2"]),
            ("procs", &["--shards", "2", "--backend", "processes"]),
        ],
    )
}

/// What both nodes' logs must show: four surrogate peers, the other real node's block through
/// the tail, two or more surrogate blocks, nothing failed.
fn check_node_log(me: u32, other: u32, log: &str) {
    assert_eq!(log.matches("connected node=-1 dialer=true").count(), 4, "four surrogate peers:\n{log}");
    assert!(!log.contains("connected node=0") && !log.contains("connected node=1"), "no real peer:\n{log}");
    assert!(log.contains(&format!("recv slot={other} publisher={other} via=-1 ")), "node {me}:\n{log}");
    assert!(log.contains(&format!("done node={me} received=1 expected=1")), "node {me}:\n{log}");
    let surrogate_blocks = log
        .lines()
        .filter(|l| l.starts_with("recv ") && !l.contains(" publisher=0 ") && !l.contains(" publisher=1 "))
        .count();
    assert!(surrogate_blocks >= 2, "node {me} got {surrogate_blocks} surrogate blocks:\n{log}");
    for bad in ["malformed", "failed", "disconnected", "error"] {
        assert!(!log.contains(bad), "node {me} logged {bad:?}:\n{log}");
    }
}

/// The JavaScript node's own view: js-libp2p logged no error before it began to shut down
/// (identify, ping, gossipsub, yamux, noise all went through), gossipsub scored each of its
/// four surrogate peers at zero or more, and its connection monitor's pings (every 10 s) came
/// back from each surrogate after at least the two 10 ms hops of the path.
fn check_js_internals(log: &str, stderr: &str) {
    let (running, _) = stderr.split_once("stopping").unwrap_or_else(|| panic!("never stopped:\n{stderr}"));
    assert!(!running.contains(":error"), "js-libp2p errors:\n{running}");
    let scores: Vec<f64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("score peer=-1 value="))
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{v}: {e}")))
        .collect();
    assert_eq!(scores.len(), 4, "a score for each surrogate peer:\n{log}");
    assert!(scores.iter().all(|s| *s >= 0.0), "scores {scores:?}");
    let rtts: Vec<f64> =
        log.lines().filter_map(|l| l.strip_prefix("rtt peer=-1 ms=")).filter_map(|v| v.parse().ok()).collect();
    assert_eq!(rtts.len(), 4, "a ping round trip on each connection:\n{log}");
    assert!(rtts.iter().all(|r| *r >= 20.0), "round trips {rtts:?}");
}

#[test]
fn a_js_libp2p_node_and_a_rust_node_with_only_surrogate_peers_get_each_others_blocks() {
    let node = need("/usr/bin/node", "nodejs");
    let script = js_gossip_node();
    let rust = gossip_node();
    let dir = scratch("hybrid-js");
    let spec = write_spec(&dir, "js.toml", &js_and_rust_spec(&node, &script, &rust, "yamux"));
    let digests = digests(&dir, &spec);
    assert!(digests.values().all(|d| *d == digests["one"]), "one digest on every run: {digests:?}");

    let out = dir.join("one");
    let js = read(out.join("hosts/js/node.0.stdout"));
    check_node_log(0, 1, &js);
    check_js_internals(&js, &read(out.join("hosts/js/node.0.stderr")));
    check_node_log(1, 0, &read(out.join("hosts/rs/gossip-node.0.stdout")));
    // Both real nodes' blocks reached the tail, tabled apart from the surrogates' own.
    let (_, batches) = read_ipc_file(&out.join("client_message_arrivals.arrow")).unwrap();
    let ids: BTreeSet<u64> = batches.iter().flat_map(|b| u64s(b, "message_id")).collect();
    assert_eq!(ids.len(), 2, "two client blocks");
    assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 100, "client blocks reached most of the tail");
}

#[test]
fn the_same_over_mplex() {
    let node = need("/usr/bin/node", "nodejs");
    let script = js_gossip_node();
    let rust = gossip_node();
    let dir = scratch("hybrid-js-mplex");
    let spec = write_spec(&dir, "js.toml", &js_and_rust_spec(&node, &script, &rust, "mplex"));
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    let js = read(out.join("hosts/js/node.0.stdout"));
    check_node_log(0, 1, &js);
    check_js_internals(&js, &read(out.join("hosts/js/node.0.stderr")));
    check_node_log(1, 0, &read(out.join("hosts/rs/gossip-node.0.stdout")));
}
