//! `thermocline calibrate`: one scenario at two resolutions (real rust-libp2p gossip-nodes on
//! direct hosts, and surrogates) with one peer graph and one proposer sequence per seed; the
//! error table and every run's outputs; identical results across output folders and shard counts.

mod common;

use arrow_array::{Array, UInt32Array};
use common::{SpecBuilder, gossip_node, run_ok, run_with_deadline, scratch};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A 12-node calibration over 2 seeds and 3 slots (1 cold), with two host groups of different
/// bandwidths so that the client's index base is exercised.
fn spec(dir: &Path, client: &Path) -> std::path::PathBuf {
    SpecBuilder::switch(4, "1 s", "25 ms")
        .surrogates("fast", 4, "bandwidth = { up = \"1 Gbit\", down = \"1 Gbit\" }\n")
        .surrogates("slow", 8, "bandwidth = { up = \"50 Mbit\", down = \"50 Mbit\" }\n")
        .sections(&format!(
            "[gossip]\nprofile = \"ethereum\"\noutbound_peers = 3\nmax_peers = 24\nsubnet_peers = 0\nduty_peers = 0\n\
             [gossip.params]\nscoring = false\nvalidation_delay = \"0 ms\"\n\
             [traffic]\nstart = \"6 s\"\nslot = \"6 s\"\nbeacon_block = {{ size = \"40 KiB\", proposer_delay = \"0 ms\" }}\n\
             [calibration]\nseeds = 2\nslots = 3\ncold_slots = 1\nbootstrap_rounds = 200\nclient = {:?}\n",
            client.display().to_string()
        ))
        .write(dir, "calibrate.toml")
}

/// Each run's digest, by run folder name.
fn digests(out: &Path) -> BTreeMap<String, String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("calibration.json")).unwrap()).unwrap();
    json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = format!("{}-seed{}", r["resolution"].as_str().unwrap(), r["seed"]);
            (name, r["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn both_resolutions_run_one_graph_and_the_table_is_repeatable() {
    let dir = scratch("calibrate");
    let spec = spec(&dir, &gossip_node());
    let out1 = dir.join("one");
    let stdout = run_ok(&["calibrate", spec.to_str().unwrap(), "--out", out1.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&stdout.stdout);
    for phase in ["all", "cold", "warm"] {
        assert!(table.contains(&format!("| all-surrogate | {phase} |")), "{table}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out1.join("calibration.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        // 3 blocks, 11 receivers each: every block reached every node at both resolutions.
        assert_eq!((r["arrivals"].as_u64(), r["expected"].as_u64()), (Some(33), Some(33)), "{r}");
    }
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    for e in errors {
        let ks = e["ks"]["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ks), "{e}");
        assert!(e["ks"]["low"].as_f64().unwrap() <= ks && ks <= e["ks"]["high"].as_f64().unwrap());
    }
    assert!(out1.join("calibration.md").is_file() && out1.join("calibration_arrivals.arrow").is_file());

    // The surrogates ran the graph the clients were given: each identity's connections are its
    // dials plus the times it was dialled.
    for seed in [4, 5] {
        let graph = std::fs::read_to_string(out1.join(format!("graphs/seed{seed}.txt"))).unwrap();
        let mut degree = [0u32; 12];
        for (i, line) in graph.lines().enumerate() {
            for j in line.split_whitespace().map(|w| w.parse::<usize>().unwrap()) {
                degree[i] += 1;
                degree[j] += 1;
            }
        }
        let nodes = thermocline_models::metrics::read_table(
            &out1.join(format!("runs/all-surrogate-seed{seed}")),
            "gossip_nodes",
        )
        .unwrap();
        let col = |n: &str| nodes.column_by_name(n).unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().clone();
        let (node, connections) = (col("node"), col("connections"));
        for k in 0..nodes.num_rows() {
            assert_eq!(connections.value(k), degree[node.value(k) as usize], "seed {seed} node {}", node.value(k));
        }
        // The clients were told that graph and the surrogates' proposers.
        let direct_spec = std::fs::read_to_string(out1.join(format!("runs/all-direct-seed{seed}/spec.toml"))).unwrap();
        assert!(direct_spec.contains(&format!("seed{seed}.txt")) && direct_spec.contains("--proposers"));
    }

    // Another output folder and two shards: the same runs, bit for bit, and the same table.
    let out2 = dir.join("two");
    run_ok(&["calibrate", spec.to_str().unwrap(), "--out", out2.to_str().unwrap(), "--shards", "2"]);
    assert_eq!(digests(&out1), digests(&out2));
    let errors2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("calibration.json")).unwrap()).unwrap();
    assert_eq!(json["errors"], errors2["errors"]);
}

#[test]
fn scenarios_the_client_cannot_play_are_refused_at_their_key() {
    let dir = scratch("calibrate-refused");
    let spec = SpecBuilder::switch(1, "1 s", "25 ms")
        .surrogates("node", 8, "")
        .sections(
            "[gossip]\nprofile = \"ethereum\"\n[traffic]\nstart = \"6 s\"\nslot = \"6 s\"\n\
             attestations = { subnets_per_node = 2 }\n[calibration]\nseeds = 2\nslots = 2\n",
        )
        .write(&dir, "bad.toml");
    let target = dir.join("out");
    let calibrate = |spec: &Path| {
        run_with_deadline(
            &["calibrate", spec.to_str().unwrap(), "--out", target.to_str().unwrap()],
            Duration::from_secs(60),
        )
    };
    let out = calibrate(&spec);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:") && err.contains("blocks only"), "{err}");

    let spec = SpecBuilder::switch(1, "1 s", "25 ms")
        .surrogates("node", 8, "")
        .sections("[gossip]\nprofile = \"ethereum\"\n[calibration]\nseeds = 1\n")
        .write(&dir, "one-seed.toml");
    let out = calibrate(&spec);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one-seed.toml:") && err.contains("calibration.seeds"), "{err}");
    assert!(!target.exists(), "a refused calibration writes nothing");
}
