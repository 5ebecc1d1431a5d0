//! End-to-end, Hybrid II: `experiments/specs/lodestar-tail.toml` — four real Ethereum consensus
//! clients (Lodestar 1.5.1, unmodified, from the lockfile in `nodes/lodestar`) whose only peers
//! are surrogates, in a tail of 10,000 identities (three are dialled by 8 surrogates; the fourth
//! dials 8 itself, given their node records as bootnodes). Two run the eight interop validators;
//! every block, aggregate and attestation one client gets from another crossed the tail as the
//! publisher's exact bytes, and the surrogates answer the clients' req/resp (Status, Ping,
//! MetaData, blocks). The clients' heads, read each slot with curl through their REST API, agree
//! at every slot of epochs 1 to 4, each slot's block reaching all four; the chain finalizes; no
//! client drops, bans or fails a request to a surrogate. One and two shards give the same heads
//! and digest.

mod common;

use common::*;
use std::path::Path;

/// The experiment's spec with Lodestar's launcher from this target folder, logging at
/// `verbose` (peer and req/resp events).
fn spec(dir: &Path) -> std::path::PathBuf {
    let launcher = npm::lodestar_launcher();
    let text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs/lodestar-tail.toml"));
    assert_eq!(text.matches("../../target/lodestar-1.5.1/lodestar").count(), 4, "the spec runs four Lodestar nodes");
    let text = text
        .replace("../../target/lodestar-1.5.1/lodestar", &launcher.display().to_string())
        .replace(r#""--enr.ip", "{ip}"]"#, r#""--enr.ip", "{ip}", "--logLevel", "verbose"]"#);
    write_spec(dir, "lodestar-tail.toml", &text)
}

/// Lodestar's dev chain (8 interop validators, genesis at 20 s) as the tail's Ethereum domain.
const DEV_CHAIN: &str = r#"[gossip.eth2]
genesis_validators_root = "0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69"
fork_version = "0x00000001"
preset = "minimal"
genesis_time = 946684820
"#;

/// A head as curl read it: (slot asked at, head root, head slot).
type Head = (u64, String, u64);

/// One curl answer per slot, and the last finalized epoch.
fn heads(out: &Path, node: u32) -> (Vec<Head>, u64) {
    let text = read(out.join(format!("hosts/ls{node}/sh.1.stdout")));
    let mut rows = Vec::new();
    let mut finalized = 0;
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some("slot"), Some(slot), Some(kind), Some(json)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("ls{node}: unexpected line {line:?}");
        };
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("ls{node} {line}: {e}"));
        match kind {
            "head" => rows.push((
                slot.parse().unwrap(),
                v["data"]["root"].as_str().expect("a root").to_string(),
                v["data"]["header"]["message"]["slot"].as_str().expect("a slot").parse().unwrap(),
            )),
            _ => finalized = v["data"]["finalized"]["epoch"].as_str().expect("an epoch").parse().unwrap(),
        }
    }
    (rows, finalized)
}

/// What a client's log says about its surrogate peers: the peer counts it reported each slot,
/// and any line about a failed request or response, a goodbye or a dropped peer before it was
/// told to stop.
fn peer_log(out: &Path, node: u32) -> (Vec<u32>, Vec<String>) {
    let log = read(out.join(format!("hosts/ls{node}/lodestar.0.stdout")));
    let mut counts = Vec::new();
    let mut trouble = Vec::new();
    for line in log.lines().take_while(|l| !l.contains("Stopping")) {
        if let Some(n) = line.split("peers: ").nth(1).filter(|_| line.contains("Synced - slot:")) {
            counts.push(n.trim().parse().unwrap_or(u32::MAX));
        }
        if ["Req  error", "Resp error", "goodbye", "peer disconnected", "Irrelevant peer", "ban"]
            .iter()
            .any(|w| line.contains(w))
        {
            trouble.push(line.to_string());
        }
    }
    (counts, trouble)
}

#[test]
fn lodestar_nodes_agree_through_a_cold_tail_and_finalize() {
    let dir = scratch("hybrid_lodestar");
    let spec = spec(&dir);
    let mut first: Option<(Vec<Vec<Head>>, String)> = None;
    for shards in ["1", "2"] {
        let out = dir.join(format!("out{shards}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let all: Vec<_> = (0..4).map(|n| heads(&out, n)).collect();
        let digest = summary(&out)["digest"].as_str().unwrap().to_string();
        if first.is_none() {
            let (rows, _) = &all[0];
            assert_eq!(rows.len(), 32, "a head each slot of epochs 1 to 4: {rows:?}");
            for (n, (r, finalized)) in all.iter().enumerate() {
                assert_eq!(r, rows, "ls{n} has the heads of ls0");
                assert!(*finalized >= 2, "ls{n} finalized epoch {finalized}");
            }
            // Four seconds into each slot every node's head is that slot's block: each block
            // either validator client proposed reached all four through the tail.
            let late: Vec<_> = rows.iter().filter(|(asked, _, head)| head != asked).collect();
            assert!(late.is_empty(), "slots whose block had not arrived: {late:?}");
            for n in 0..4 {
                let (counts, trouble) = peer_log(&out, n);
                // From genesis on (the surrogates dialled at 12 s), each keeps its 8 peers.
                let from_genesis = &counts[counts.len().saturating_sub(40)..];
                assert!(from_genesis.len() == 40 && from_genesis.iter().all(|&c| c == 8), "ls{n} peers: {counts:?}");
                assert!(trouble.is_empty(), "ls{n}: {trouble:#?}");
            }
            // ls3 found its peers in the records it was given: it dialled all eight.
            let ls3 = read(out.join("hosts/ls3/lodestar.0.stdout"));
            let dialled =
                ls3.lines().filter(|l| l.contains("peer connected") && l.contains("direction=outbound")).count();
            assert_eq!(dialled, 8, "ls3 dialled the surrogates of its bootnode records");
            let s = summary(&out);
            let g = &s["gossip"];
            // 39 blocks (slots 1..=39), each at every identity of the tail and at the three
            // clients that did not propose it.
            let tail = &g["tail_client_blocks"];
            assert!(tail["reliability"].as_f64().unwrap() > 0.999, "{g}");
            assert!(tail["p50_ms"].as_f64().unwrap() > 0.0 && tail["p95_ms"].as_f64().unwrap() < 6000.0, "{g}");
            let hot = &g["hot"];
            assert_eq!(hot["nodes"], 4, "{g}");
            assert!(hot["reliability"].as_f64().unwrap() > 0.999, "{g}");
            assert!(hot["p95_ms"].as_f64().unwrap() < 6000.0, "{g}");
        }
        let heads_only = all.into_iter().map(|(r, _)| r).collect();
        match &first {
            None => first = Some((heads_only, digest)),
            Some((h, d)) => {
                assert_eq!(&heads_only, h, "{shards} shards: other heads");
                assert_eq!(&digest, d, "{shards} shards: another digest");
            }
        }
    }
}

/// The `counter` → `count` sums of a run's `eth2_boundary` table.
fn eth2_counters(out: &Path) -> std::collections::BTreeMap<String, u64> {
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join("eth2_boundary.arrow")).unwrap();
    let mut sums = std::collections::BTreeMap::new();
    for batch in batches {
        let names = batch.column_by_name("counter").unwrap();
        let names = names.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        for (k, n) in u64s(&batch, "count").into_iter().enumerate() {
            *sums.entry(names.value(k).to_string()).or_default() += n;
        }
    }
    sums
}

/// A node that starts a minute after genesis, with 4 surrogates' records as its only bootnodes,
/// catches up on the blocks it missed by asking those surrogates (the surrogates serve the real
/// blocks they relayed) and then follows the validator node's head; one digest on 1 and 2 shards.
#[test]
fn a_late_lodestar_node_fetches_the_blocks_it_missed_from_surrogates() {
    let launcher = npm::lodestar_launcher();
    let dir = scratch("hybrid_lodestar_late");
    let node = |extra: &str| {
        format!(
            r#"path = "{launcher}"
args = ["dev", "--genesisValidators", "8", "--genesisTime", "946684820", {extra}"--dataDir", "data",
        "--rest", "--rest.port", "9596", "--metrics", "false", "--port", "9000", "--enr.ip", "{{ip}}"]
expected_exit = "running""#,
            launcher = launcher.display()
        )
    };
    let curl = r#"path = "curl"
args = ["-s", "http://127.0.0.1:9596/eth/v1/beacon/headers/head"]
start = "118 s""#;
    let text = format!(
        r#"
[run]
seed = 1
duration = "120 s"

[network]
topology = "single-switch"
latency = "10 ms"

[[hosts]]
name = "tail"
count = 300

[[hosts]]
name = "early"
kind = "direct"
count = 1

[[hosts]]
name = "late"
kind = "direct"
count = 1

[gossip]
dial_clients = {{ group = "early", peers = 4, start = "15 s" }}

{DEV_CHAIN}
[traffic]
start = "1 h"

[[processes]]
host = "early"
{early}

[[processes]]
host = "late"
start = "60 s"
{late}

[[processes]]
host = "early"
{curl}

[[processes]]
host = "late"
{curl}
"#,
        early = node(r#""--startValidators", "0..7", "#),
        late = node(r#""--bootnodes", "{enrs:tail:4}", "--network.connectToDiscv5Bootnodes", "#),
    );
    let spec = write_spec(&dir, "late.toml", &text);
    let mut first: Option<(String, String)> = None;
    for shards in ["1", "2"] {
        let out = dir.join(format!("out{shards}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let (early, late) = (read(out.join("hosts/early/curl.1.stdout")), read(out.join("hosts/late/curl.1.stdout")));
        let head = |json: &str| -> (String, u64) {
            let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
            let slot = v["data"]["header"]["message"]["slot"].as_str().expect("a slot").parse().unwrap();
            (v["data"]["root"].as_str().expect("a root").to_string(), slot)
        };
        // Slot 16 starts at 116 s: the late node has the head of a chain it saw less than half of.
        assert_eq!(head(&late), head(&early), "{shards} shards");
        assert!(head(&early).1 >= 15, "head at slot {}", head(&early).1);
        let counters = eth2_counters(&out);
        let asked: u64 = counters.iter().filter(|(k, _)| k.contains("beacon_blocks_by_r")).map(|(_, n)| n).sum::<u64>();
        assert!(asked > 0 && counters.get("blocks_served").copied().unwrap_or(0) > 0, "{counters:?}");
        let digest = summary(&out)["digest"].as_str().unwrap().to_string();
        match &first {
            None => first = Some((early, digest)),
            Some((h, d)) => assert_eq!((&early, &digest), (h, d), "{shards} shards differ"),
        }
    }
}

/// Lodestar with its discv5 on and two surrogates' records as its only bootnodes finds its peers
/// in the tail (`[gossip] discovery = "discv5"`): its lookups walk the surrogates' tables (real
/// discv5 at the boundary, records with the network's fork digest, a `tcp` port and each
/// identity's `attnets`), it dials identities it was not given until it has its 8 peers, and keeps
/// them. The connections it opens beyond its target it closes itself; none ends in a goodbye, a
/// ban or a failed answer. One digest and the same peers on 1 and 2 shards.
#[test]
fn lodestar_finds_its_peers_among_surrogates_by_discv5() {
    let launcher = npm::lodestar_launcher();
    let dir = scratch("hybrid_lodestar_discv5");
    let args = [
        "dev",
        "--genesisValidators",
        "8",
        "--genesisTime",
        "946684820",
        "--startValidators",
        "0..7",
        "--bootnodes",
        "{enrs:tail:2}",
        "--targetPeers",
        "8",
        "--dataDir",
        "data",
        "--rest",
        "--rest.port",
        "9596",
        "--metrics",
        "false",
        "--port",
        "9000",
        "--enr.ip",
        "{ip}",
        "--logLevel",
        "verbose",
    ];
    let peers = ["-s", "http://127.0.0.1:9596/eth/v1/node/peers?state=connected"];
    let spec = SpecBuilder::switch(1, "100 s", "10 ms")
        .surrogates("tail", 300, "")
        .direct("ls0", "100 Mbit", "")
        .sections(&format!(
            "[gossip]\ndiscovery = \"discv5\"\n\n{DEV_CHAIN}\n[traffic]\nstart = \"1 h\"\n\
             attestations = {{ subnets_per_node = 2, per_subnet = 0 }}\n"
        ))
        .process("ls0", &launcher.display().to_string(), &args, "0 s", "expected_exit = \"running\"\n")
        .process("ls0", "curl", &peers, "95 s", "")
        .write(&dir, "discv5.toml");
    let mut first: Option<(Vec<String>, String)> = None;
    for shards in ["1", "2"] {
        let out = dir.join(format!("out{shards}"));
        run_ok(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--shards", shards]);
        let json = read(out.join("hosts/ls0/curl.1.stdout"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        let peers = v["data"].as_array().expect("a peer list");
        let mut ids = Vec::new();
        for p in peers {
            let addr = p["last_seen_p2p_address"].as_str().expect("an address");
            assert!(addr.starts_with("/ip4/10.0.") && addr.contains("/tcp/9000/p2p/"), "a tail identity: {addr}");
            assert_eq!(p["direction"], "outbound", "Lodestar dialled it: {p}");
            ids.push(p["peer_id"].as_str().unwrap().to_string());
        }
        ids.sort();
        ids.dedup();
        // Two records given, eight peers: the rest came from its lookups through the tail.
        assert!(ids.len() >= 8, "{json}");
        let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join("discv5_boundary.arrow")).unwrap();
        let column = |b: &arrow_array::RecordBatch, name: &str| -> Vec<u32> {
            let c = b.column_by_name(name).unwrap();
            c.as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap().values().to_vec()
        };
        let asked: Vec<u32> = batches.iter().flat_map(|b| column(b, "findnodes")).collect();
        let records: u32 = batches.iter().flat_map(|b| column(b, "records")).sum();
        assert!(asked.iter().filter(|&&n| n > 0).count() > 2, "FINDNODE beyond the bootnodes: {asked:?}");
        assert!(records > 100, "{records} records");
        // Kept: a peer of the end never left, and the only trouble is Lodestar closing what it
        // dialled beyond its target (its requests on those fail as the connection goes).
        let (counts, trouble) = peer_log(&out, 0);
        assert!(counts.last().is_some_and(|&c| (8..u32::MAX).contains(&c)), "peers per slot: {counts:?}");
        let kept: Vec<String> = ids.iter().map(|id| format!("peer={}...{}", &id[..2], &id[id.len() - 6..])).collect();
        for line in &trouble {
            assert!(!kept.iter().any(|k| line.contains(k.as_str())), "a kept peer left or failed: {line}");
            assert!(
                line.contains("peer disconnected") || line.contains("REQUEST_ERROR_DIAL_ERROR"),
                "only Lodestar's own pruning: {line}"
            );
        }
        let digest = summary(&out)["digest"].as_str().unwrap().to_string();
        match &first {
            None => first = Some((ids, digest)),
            Some((p, d)) => {
                assert_eq!(&ids, p, "{shards} shards: other peers");
                assert_eq!(&digest, d, "{shards} shards: another digest");
            }
        }
    }
}
