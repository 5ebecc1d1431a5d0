//! End-to-end, a post-merge devnet of real clients under the shim:
//! `experiments/specs/cl-el-devnet.toml` — two nodes, each Lodestar 1.5.1 (beacon node and four
//! interop validators) driving @ethereumjs/client 0.8.1 over the Engine API with a JWT secret, the
//! execution clients peered over devp2p, a wallet sending two transfers a second. Blocks carry the
//! transfers, each node's execution head follows its beacon head, the chain finalizes, and one
//! and two shards give the same run.

mod common;

use common::npm::{lodestar_launcher, npm_install};
use common::*;
use serde_json::Value;
use std::path::Path;

/// The probe's lines of host `host` in the run at `out`.
fn probe(out: &Path, host: &str) -> Vec<Value> {
    let dir = out.join("hosts").join(host);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("devnet_probe.py.")
                && p.extension().unwrap() == "stdout"
        })
        .expect("the probe's output");
    read(file).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn lodestar_and_ethereumjs_build_a_finalized_chain_of_blocks_with_transactions() {
    let launcher = lodestar_launcher();
    let scripts = ["genesis.json", "devnet_el.py", "devnet_probe.py", "send_tx.cjs"];
    let el = npm_install("ethereumjs", "ethereumjs-client-0.8.1", &scripts);
    let dir = scratch("direct-devnet");
    let text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs/cl-el-devnet.toml"))
        .replace("../../target/lodestar-1.5.1/lodestar", &launcher.display().to_string())
        .replace("../../target/ethereumjs-client-0.8.1", &el.display().to_string());
    let spec = write_spec(&dir, "devnet.toml", &text);
    let mut digests = Vec::new();
    for (name, extra) in [("one", &[][..]), ("two", &["--shards", "2"][..])] {
        let out = dir.join(name);
        let mut args = vec!["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = run_ok(&args);
        // No call the clients make is unsupported (each would be logged).
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!stderr.contains("unsupported syscall"), "{stderr}");
        digests.push(summary(&out)["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(digests[0], digests[1]);
    let one = dir.join("one");
    for host in ["n0", "n1"] {
        let lines = probe(&one, host);
        assert_eq!(lines, probe(&dir.join("two"), host), "{host}: the same on two shards");
        assert!(lines.len() >= 35, "{host}: {} samples", lines.len());
        let chain: Vec<&Value> = lines.iter().filter(|l| l["slot"].as_u64().is_some_and(|s| s >= 2)).collect();
        // The execution head is the beacon head's payload (sampled one after the other, so a block
        // may land between the two reads now and then), and they advance slot by slot.
        let following = chain.iter().filter(|l| l["payload_hash"] == l["el_hash"]).count();
        assert!(following * 10 >= chain.len() * 9, "{host}: {following} of {} samples follow", chain.len());
        let last = lines.last().unwrap();
        assert!(last["slot"].as_u64().unwrap() >= 36 && last["payload_hash"] == last["el_hash"], "{host}: {last}");
        assert!(last["el_number"].as_u64().unwrap() >= 30, "{host}: {last}");
        // Blocks carry the wallet's transfers; the chain finalizes; the execution clients are peers.
        let txs: u64 = chain.iter().map(|l| l["payload_txs"].as_u64().unwrap_or(0)).sum();
        assert!(txs >= 200, "{host}: {txs} transactions in sampled blocks");
        assert!(last["finalized_epoch"].as_u64().unwrap() >= 2, "{host}: {last}");
        assert!(last["el_peers"].as_u64().unwrap() >= 1, "{host}: {last}");
    }
    assert_eq!(probe(&one, "n0").last().unwrap()["el_hash"], probe(&one, "n1").last().unwrap()["el_hash"]);
    // Every transfer was accepted.
    let wallet = std::fs::read_dir(one.join("hosts/n0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("send_tx.cjs.") && p.extension().unwrap() == "stdout")
        .unwrap();
    let sent: Vec<Value> = read(wallet).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(sent.len(), 400);
    assert!(sent.iter().all(|s| s["hash"].is_string()), "{:?}", sent.iter().find(|s| !s["hash"].is_string()));
    std::fs::remove_dir_all(dir).unwrap();
}
