//! `thermocline calibrate`: one scenario at three resolutions (real rust-libp2p gossip-nodes on
//! direct hosts, a hybrid with a quarter of them real, and surrogates) with one peer graph and
//! one proposer sequence per seed; the error table and every run's outputs; identical results
//! across output folders and shard counts.

mod common;

use arrow_array::{Array, UInt32Array};
use common::{SpecBuilder, gossip_node, run_ok, run_with_deadline, scratch};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A 12-node calibration over 2 seeds and 3 slots (1 cold), with two host groups of different
/// bandwidths so that the client's index base is exercised, at all-direct, hybrid-25 and
/// all-surrogate.
fn spec(dir: &Path, client: &Path) -> std::path::PathBuf {
    SpecBuilder::switch(4, "1 s", "25 ms")
        .surrogates("fast", 4, "bandwidth = { up = \"1 Gbit\", down = \"1 Gbit\" }\n")
        .surrogates("slow", 8, "bandwidth = { up = \"50 Mbit\", down = \"50 Mbit\" }\n")
        .sections(&format!(
            "[gossip]\nprofile = \"ethereum\"\noutbound_peers = 3\nmax_peers = 24\nsubnet_peers = 0\nduty_peers = 0\n\
             [gossip.params]\nscoring = false\nvalidation_delay = \"0 ms\"\nupload = \"fair\"\nslow_start = true\n\
             [traffic]\nstart = \"6 s\"\nslot = \"6 s\"\nbeacon_block = {{ size = \"40 KiB\", proposer_delay = \"0 ms\" }}\n\
             [calibration]\nresolutions = [\"all-direct\", \"hybrid-25\", \"all-surrogate\"]\n\
             seeds = 2\nslots = 3\ncold_slots = 1\nbootstrap_rounds = 200\nclient = {:?}\n\
             [calibration.fit]\nprofile = \"calibrated/test\"\n\
             params = {{ download = [\"fifo\", \"pipelined\"], slow_start_rounds = [false, true], \
             validation_delay = [\"0 ms\", \"40 ms\"] }}\n",
            client.display().to_string()
        ))
        .write(dir, "calibrate.toml")
}

/// Each node's connections in a seed's dial lists (`graphs/seed<N>.txt`: line `i` holds whom
/// node `i` dials): its dials plus the times it is dialled.
fn degrees(graph: &str) -> [u32; 12] {
    let mut degree = [0u32; 12];
    for (i, line) in graph.lines().enumerate() {
        for j in line.split_whitespace().map(|w| w.parse::<usize>().unwrap()) {
            degree[i] += 1;
            degree[j] += 1;
        }
    }
    degree
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
    assert_eq!(runs.len(), 6);
    for r in runs {
        // 3 blocks, 11 receivers each: every block reached every node at every resolution.
        assert_eq!((r["arrivals"].as_u64(), r["expected"].as_u64()), (Some(33), Some(33)), "{r}");
    }
    let all_errors = json["errors"].as_array().unwrap();
    // Hybrid and all-surrogate over all nodes, then the hybrid's real-client and surrogate nodes.
    let rows_of = |resolution: &str, nodes: &str| -> Vec<&serde_json::Value> {
        all_errors.iter().filter(|e| e["resolution"] == resolution && e["nodes"] == nodes).collect()
    };
    assert_eq!(all_errors.len(), 12);
    for (resolution, nodes) in [("hybrid-25", "all"), ("hybrid-25", "hot"), ("hybrid-25", "cold")] {
        assert_eq!(rows_of(resolution, nodes).len(), 3, "{resolution} {nodes}");
    }
    let errors = rows_of("all-surrogate", "all");
    assert_eq!(errors.len(), 3);
    // The clients count their copies (gossipsub's metrics): the all-slots row compares them.
    let copies = |row: &serde_json::Value, side: usize| row["duplicates"][side].as_f64();
    assert!(copies(errors[0], 0).is_some_and(|d| d > 0.0) && copies(errors[0], 1).is_some(), "{}", errors[0]);
    assert_eq!(copies(errors[1], 0), None, "per slot only where counted per arrival");
    // The hybrid's subsets hold its real clients' and its surrogates' arrivals, and the
    // reference's at the same nodes: 3 of 12 nodes real.
    let arrivals =
        |row: &serde_json::Value| (row["arrivals"][0].as_u64().unwrap(), row["arrivals"][1].as_u64().unwrap());
    let (hot, cold) = (arrivals(rows_of("hybrid-25", "hot")[0]), arrivals(rows_of("hybrid-25", "cold")[0]));
    assert_eq!((hot.0 + cold.0, hot.1 + cold.1), (66, 66), "every arrival in one subset");
    assert!(hot.0 == hot.1 && (12..=18).contains(&hot.0), "3 real clients × 2 seeds × 2–3 blocks: {hot:?}");
    for e in all_errors {
        let ks = e["ks"]["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ks), "{e}");
        assert!(e["ks"]["low"].as_f64().unwrap() <= ks && ks <= e["ks"]["high"].as_f64().unwrap());
    }
    assert!(out1.join("calibration.md").is_file() && out1.join("calibration_arrivals.arrow").is_file());

    // The fit: every combination ran on both seeds against the same reference, the least loss
    // won, and the profile written is the scenario's parameters with the winner laid over them.
    let fit = &json["fit"];
    let tried = fit["candidates"].as_array().unwrap();
    assert_eq!(tried.len(), 8);
    let losses: Vec<f64> = tried.iter().map(|t| t["loss"].as_f64().unwrap()).collect();
    let best = fit["best"].as_u64().unwrap() as usize;
    assert!(losses.iter().all(|&l| losses[best] <= l), "{losses:?}");
    assert_eq!(tried[0]["params"]["download"], "fifo");
    assert_eq!(tried[3]["params"]["validation_delay"], "40 ms");
    assert_eq!(tried[3]["params"]["slow_start_rounds"], true);
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
    // Each candidate's values reached its runs: no two ran alike on any seed (the losses, read
    // off 33 arrivals a seed, may tie).
    for seed in [4, 5] {
        let mut seen: Vec<String> = (0..tried.len())
            .map(|k| {
                let summary =
                    std::fs::read_to_string(out1.join(format!("runs/fit{k}-seed{seed}/summary.json"))).unwrap();
                serde_json::from_str::<serde_json::Value>(&summary).unwrap()["digest"].as_str().unwrap().to_string()
            })
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), tried.len(), "seed {seed}: candidates with one digest");
    }
    let text = std::fs::read_to_string(out1.join("profile.toml")).unwrap();
    let profile: thermocline_surrogate::config::ProfileFile = toml::from_str(&text).unwrap();
    assert_eq!(profile.base, "ethereum");
    assert_eq!(profile.params.scoring, Some(false), "the scenario's own parameters are kept");
    let winner = &tried[best]["params"];
    for key in ["download", "slow_start_rounds", "validation_delay"] {
        assert!(text.contains(&format!("\n{key} = {}\n", winner[key])), "{key}: {text}");
    }
    assert!(profile.fit.unwrap()["errors"].as_array().unwrap().len() == 3);
    let report = std::fs::read_to_string(out1.join("calibration.md")).unwrap();
    assert!(report.contains("## Fit"));
    // The charts: a CDF per phase and the quantiles by slot, with the fit's winner beside the
    // resolutions, each linked from the report.
    let charts: Vec<&str> = json["charts"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(charts, CHARTS);
    for c in CHARTS {
        let svg = std::fs::read_to_string(out1.join(c)).unwrap();
        for line in ["all-direct", "hybrid-25", "all-surrogate", "fit winner"] {
            assert!(svg.contains(line), "{c}: {line}");
        }
        assert!(report.contains(&format!("]({c})")), "{c}");
    }

    // The surrogates ran the graph the clients were given: each identity's connections are its
    // dials plus the times it was dialled.
    for seed in [4, 5] {
        let graph = std::fs::read_to_string(out1.join(format!("graphs/seed{seed}.txt"))).unwrap();
        let degree = degrees(&graph);
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
        let inline = graph.lines().collect::<Vec<_>>().join(";");
        assert!(direct_spec.contains(&format!("\"--graph-text\", \"{inline}\"")), "{direct_spec}");
        assert!(direct_spec.contains("--proposers"));
    }

    // The hybrid runs: the real clients are 3 one-host direct groups, every client got each
    // block, and every surrogate holds the connections the graph gives its node, clients'
    // included.
    for seed in [4, 5] {
        let run = runs.iter().find(|r| r["resolution"] == "hybrid-25" && r["seed"] == seed).unwrap();
        let real: Vec<u64> = run["real_clients"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let ids: Vec<u64> = run["host_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!((real.len(), ids.len()), (3, 12), "{run}");
        let folder = out1.join(format!("runs/hybrid-25-seed{seed}"));
        for &h in &real {
            assert!(ids[h as usize] >= 9, "real clients follow the 9 surrogates: {ids:?}");
            let log = std::fs::read_to_string(folder.join(format!("hosts/real{h}/gossip-node.0.stdout"))).unwrap();
            let done = log.lines().find(|l| l.starts_with("done ")).unwrap();
            let count = |k: &str| done.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap().to_string();
            assert_eq!(count("received="), count("expected="), "real{h}: {log}");
        }
        let graph = std::fs::read_to_string(out1.join(format!("graphs/seed{seed}.txt"))).unwrap();
        let degree = degrees(&graph);
        let nodes = thermocline_models::metrics::read_table(&folder, "gossip_nodes").unwrap();
        let col = |n: &str| nodes.column_by_name(n).unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().clone();
        let (host, connections) = (col("node"), col("connections"));
        assert_eq!(nodes.num_rows(), 9, "the surrogates' rows");
        for k in 0..nodes.num_rows() {
            let node = ids.iter().position(|&x| x == host.value(k) as u64).unwrap();
            assert_eq!(connections.value(k), degree[node], "seed {seed} node {node}");
        }
    }

    // A hybrid run as its spec.toml has it: the same digest on 4 shards and on 2 shard
    // processes (its clients and surrogates hear of one message in either order on different
    // shards; each must resolve it alike).
    for seed in [4, 5] {
        let run = runs.iter().find(|r| r["resolution"] == "hybrid-25" && r["seed"] == seed).unwrap();
        let spec = out1.join(format!("runs/hybrid-25-seed{seed}/spec.toml"));
        for (name, args) in [("four", &["--shards", "4"][..]), ("procs", &["--shards", "2", "--backend", "processes"])]
        {
            let out = dir.join(format!("hybrid-{seed}-{name}"));
            let mut all = vec!["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
            all.extend_from_slice(args);
            run_ok(&all);
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
            assert_eq!(summary["digest"], run["digest"], "seed {seed} {name}");
        }
    }

    // Another output folder and two shards: the same runs, bit for bit, and the same table.
    // (A longer folder name: nothing a client is given may depend on where the output goes.)
    let out2 = dir.join("second-output-folder-with-a-much-longer-name");
    run_ok(&["calibrate", spec.to_str().unwrap(), "--out", out2.to_str().unwrap(), "--shards", "2"]);
    assert_eq!(digests(&out1), digests(&out2));
    let errors2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("calibration.json")).unwrap()).unwrap();
    assert_eq!(json["errors"], errors2["errors"]);
    assert_eq!(json["fit"], errors2["fit"]);
    assert_eq!(text, std::fs::read_to_string(out2.join("profile.toml")).unwrap());
    for c in CHARTS {
        assert_eq!(std::fs::read(out1.join(c)).unwrap(), std::fs::read(out2.join(c)).unwrap(), "{c}");
    }
}

/// The charts a calibration with cold slots writes.
const CHARTS: [&str; 5] = ["cdf-all.svg", "cdf-cold.svg", "cdf-warm.svg", "qq.svg", "by-slot.svg"];

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

    let spec = SpecBuilder::switch(1, "1 s", "25 ms")
        .surrogates("node", 8, "")
        .sections(
            "[gossip]\nprofile = \"ethereum\"\n[traffic]\nstart = \"6 s\"\nslot = \"6 s\"\n\
             [calibration]\nseeds = 2\nslots = 2\n[calibration.fit]\nprofile = \"calibrated/x\"\n\
             params = { download = [\"fair\", \"lifo\"] }\n",
        )
        .write(&dir, "bad-fit.toml");
    let out = calibrate(&spec);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-fit.toml:") && err.contains("calibration.fit.params") && err.contains("lifo"), "{err}");
    assert!(!target.exists(), "a refused calibration writes nothing");
}
