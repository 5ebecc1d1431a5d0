//! The gossip workload end to end: determinism across shard counts and backends, delivery without
//! loss, mesh degrees, PRUNE backoff, IHAVE/IWANT recovery under loss, IDONTWANT savings.

mod common;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrowPrimitiveType};
use common::*;
use std::path::{Path, PathBuf};
use thermocline_models::metrics::read_ipc_file;

fn spec(extra_gossip: &str, network: &str, count: u32, duration: &str) -> String {
    format!(
        r#"
[run]
name = "gossip-test"
seed = 11
duration = "{duration}"

{network}

[[hosts]]
name = "tail"
count = {count}
countries = {{ DE = 0.3, US = 0.3, other = 0.4 }}
bandwidth = {{ up = "50 Mbit", down = "200 Mbit" }}

[gossip]
profile = "ethereum"
{extra_gossip}

[traffic]
start = "10 s"
slot = "6 s"
beacon_block = {{ size = "100 KiB" }}
"#
    )
}

fn run(dir: &Path, name: &str, text: &str, args: &[&str]) -> (serde_json::Value, std::path::PathBuf) {
    let spec = write_spec(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    let mut all = vec!["run", spec.to_str().unwrap(), "--quiet", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    run_ok(&all);
    (summary(&out), out)
}

/// Column `name` of the Arrow file at `path`, all batches, as values.
fn values<T: ArrowPrimitiveType>(path: &Path, name: &str) -> Vec<T::Native> {
    let (_, batches) = read_ipc_file(path).unwrap();
    batches.iter().flat_map(|b| b.column_by_name(name).unwrap().as_primitive::<T>().values().to_vec()).collect()
}

/// A text column of the Arrow file at `path`, all batches.
fn strings(path: &Path, name: &str) -> Vec<String> {
    let (_, batches) = read_ipc_file(path).unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap().as_string::<i32>();
            (0..a.len()).map(|k| a.value(k).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn same_digest_on_1_2_4_shards_and_both_backends() {
    let dir = scratch("gossip-determinism");
    let text = spec("", "", 600, "30 s");
    let (one, _) = run(&dir, "t1", &text, &["--shards", "1"]);
    assert!(one["gossip"]["messages"].as_u64().unwrap() >= 3);
    for (name, args) in [
        ("t2", vec!["--shards", "2"]),
        ("t4", vec!["--shards", "4"]),
        ("p2", vec!["--shards", "2", "--backend", "processes"]),
        ("p4", vec!["--shards", "4", "--backend", "processes"]),
    ] {
        let (s, _) = run(&dir, name, &text, &args);
        assert_eq!(s["digest"], one["digest"], "{name}");
        assert_eq!(s["gossip"], one["gossip"], "{name}");
    }
    let (other, _) = run(&dir, "seed", &text, &["--seed", "12"]);
    assert_ne!(other["digest"], one["digest"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_loss_everyone_gets_every_message_once_and_meshes_stay_in_bounds() {
    let dir = scratch("gossip-delivery");
    let (s, out) = run(&dir, "d", &spec("", "", 1000, "40 s"), &["--shards", "2"]);
    let g = &s["gossip"];
    assert_eq!(g["reliability"], 1.0, "{g}");
    let messages = g["messages"].as_u64().unwrap();
    // One first-arrival row per (identity, message), never two.
    let nodes: Vec<u32> = values::<UInt32Type>(&out.join("gossip_arrivals.arrow"), "node").into_iter().collect();
    let ids: Vec<u64> = values::<UInt64Type>(&out.join("gossip_arrivals.arrow"), "message_id").into_iter().collect();
    let mut pairs: Vec<(u64, u32)> = ids.into_iter().zip(nodes).collect();
    pairs.sort_unstable();
    let before = pairs.len();
    pairs.dedup();
    assert_eq!(before, pairs.len());
    assert_eq!(pairs.len() as u64, 1000 * messages);
    // After warm-up (10 s = 14 heartbeat periods) every sampled degree lies in [D_low, D_high].
    let period: Vec<u64> =
        values::<UInt64Type>(&out.join("gossip_mesh_degree.arrow"), "heartbeat_period").into_iter().collect();
    let degree: Vec<u16> =
        values::<UInt16Type>(&out.join("gossip_mesh_degree.arrow"), "mesh_degree").into_iter().collect();
    let late: Vec<u16> = period.iter().zip(&degree).filter(|(p, _)| **p >= 14).map(|(_, d)| *d).collect();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|d| (6..=12).contains(d)),
        "degrees outside [6, 12]: {:?}",
        late.iter().filter(|d| !(6..=12).contains(*d)).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prune_backoff_is_honoured() {
    // A narrow mesh band with many peers forces constant grafting and pruning.
    let dir = scratch("gossip-backoff");
    let text = spec(
        "outbound_peers = 20\nmax_peers = 60\n[gossip.params]\nd = 3\nd_low = 2\nd_high = 4\nprune_backoff = \"5 s\"",
        "",
        400,
        "40 s",
    );
    let (_, out) = run(&dir, "b", &text, &["--shards", "2"]);
    let pruned: u64 = values::<UInt64Type>(&out.join("gossip_nodes.arrow"), "bytes_sent_prune").into_iter().sum();
    assert!(pruned > 0, "the run should prune");
    let violations: u64 =
        values::<UInt32Type>(&out.join("gossip_nodes.arrow"), "graft_in_backoff").into_iter().map(u64::from).sum();
    assert_eq!(violations, 0, "GRAFTs arrived within a PRUNE backoff");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ihave_iwant_recovers_messages_on_lossy_links() {
    let dir = scratch("gossip-lossy");
    let lossy = "[network]\ntopology = \"single-switch\"\nlatency = \"20 ms\"\nloss = 0.25";
    let text = |lazy: u32| {
        spec(&format!("[gossip.params]\nd_lazy = {lazy}\nd = 4\nd_low = 3\nd_high = 6"), lossy, 500, "40 s")
            .replace("countries = { DE = 0.3, US = 0.3, other = 0.4 }", "")
    };
    let (with, _) = run(&dir, "with", &text(6), &["--shards", "2"]);
    let (without, _) = run(&dir, "without", &text(0), &["--shards", "2"]);
    let (r_with, r_without) =
        (with["gossip"]["reliability"].as_f64().unwrap(), without["gossip"]["reliability"].as_f64().unwrap());
    assert!(r_without < 0.999, "loss should cost deliveries without gossip: {r_without}");
    assert!(r_with > r_without, "gossip should recover messages: {r_with} vs {r_without}");
    assert!(r_with > 0.99, "{r_with}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn idontwant_cuts_duplicates_of_large_messages() {
    let dir = scratch("gossip-idontwant");
    let (on, out_on) = run(&dir, "on", &spec("", "", 600, "30 s"), &[]);
    let (off, out_off) =
        run(&dir, "off", &spec("[gossip.params]\nidontwant_threshold = \"0 B\"", "", 600, "30 s"), &[]);
    // Queued copies whose peer said IDONTWANT first are dropped before they use the link.
    let cancelled = |out: &Path| -> u64 {
        values::<UInt32Type>(&out.join("gossip_nodes.arrow"), "copies_cancelled").into_iter().map(u64::from).sum()
    };
    assert!(cancelled(&out_on) > 0);
    assert_eq!(cancelled(&out_off), 0);
    let (d_on, d_off) = (
        on["gossip"]["duplicates_per_delivery"].as_f64().unwrap(),
        off["gossip"]["duplicates_per_delivery"].as_f64().unwrap(),
    );
    assert!(d_on < d_off, "IDONTWANT should cut duplicates: {d_on} vs {d_off}");
    let (b_on, b_off) =
        (on["gossip"]["bytes_sent_per_node"].as_f64().unwrap(), off["gossip"]["bytes_sent_per_node"].as_f64().unwrap());
    assert!(b_on < b_off, "and bytes: {b_on} vs {b_off}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Run `spec` (named `name`) on 1, 2 and 4 shards and on the processes backend, require one
/// digest, and return the one-shard run's summary and output folder.
fn same_everywhere(dir: &Path, name: &str, spec: &str) -> (serde_json::Value, PathBuf) {
    let (one, out) = run(dir, &format!("{name}1"), spec, &["--shards", "1"]);
    for (tag, args) in [
        ("2", vec!["--shards", "2"]),
        ("4", vec!["--shards", "4"]),
        ("p2", vec!["--shards", "2", "--backend", "processes"]),
    ] {
        let (s, _) = run(dir, &format!("{name}{tag}"), spec, &args);
        assert_eq!(s["digest"], one["digest"], "{name}{tag}");
    }
    (one, out)
}

#[test]
fn slow_start_as_rounds_or_windows_is_deterministic_and_changes_the_run() {
    let dir = scratch("gossip-slow-start");
    let params = "[gossip.params]\nupload = \"fair\"\ndownload = \"fair\"\nslow_start = true\n";
    let (plain, _) = run(&dir, "plain", &spec(params, "", 600, "30 s"), &[]);
    let (rounds, _) =
        same_everywhere(&dir, "rounds", &spec(&format!("{params}slow_start_rounds = true"), "", 600, "30 s"));
    let (windows, _) =
        same_everywhere(&dir, "windows", &spec(&format!("{params}slow_start_windows = true"), "", 600, "30 s"));
    let digests = [&plain["digest"], &rounds["digest"], &windows["digest"]];
    assert!(digests[0] != digests[1] && digests[0] != digests[2] && digests[1] != digests[2], "{digests:?}");
    for s in [&rounds, &windows] {
        assert_eq!(s["gossip"]["reliability"], plain["gossip"]["reliability"]);
    }
    // Windows waiting for their round trip are lost with an identity that goes offline, on any
    // shard count.
    let churned = spec(&format!("{params}slow_start_windows = true"), "", 600, "40 s").replace(
        "beacon_block = { size = \"100 KiB\" }",
        "beacon_block = { size = \"100 KiB\" }\nchurn = { session = \"20 s\", downtime = \"5 s\" }",
    );
    let (churn, _) = same_everywhere(&dir, "churn", &churned);
    assert!(churn["gossip"]["reliability"].as_f64().unwrap() < 1.0, "{}", churn["gossip"]);
    // A floor could hold a copy past its sender's going offline: refused with churn.
    let floor = write_spec(&dir, "floor-churn.toml", &churned.replace("slow_start_windows = true", ""));
    let refused = run_with_deadline(&["run", floor.to_str().unwrap(), "-q"], std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("unless as slow_start_windows"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fair_links_are_deterministic_and_slow_blocks_down() {
    let dir = scratch("gossip-fair");
    let fair = spec("[gossip.params]\nupload = \"fair\"\ndownload = \"fair\"", "", 600, "30 s");
    let (one, out) = same_everywhere(&dir, "f", &fair);
    let (fifo, _) = run(&dir, "fifo", &spec("", "", 600, "30 s"), &[]);
    assert_ne!(fifo["digest"], one["digest"]);
    assert_eq!(one["gossip"]["reliability"], fifo["gossip"]["reliability"]);
    // Copies sent (and received) side by side are done together after all of them: none earlier
    // than with FIFO links, most later.
    let p50 = |s: &serde_json::Value| s["gossip"]["p50_ms"].as_f64().unwrap();
    assert!(p50(&one) > p50(&fifo), "{} vs {}", p50(&one), p50(&fifo));
    assert!(out.join("gossip_arrivals.arrow").is_file());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn honest_peers_earn_positive_scores_and_scoring_changes_the_run() {
    let dir = scratch("gossip-scores");
    let (on, out_on) = run(&dir, "on", &spec("", "", 500, "60 s"), &[]);
    let (off, out_off) = run(&dir, "off", &spec("[gossip.params]\nscoring = false", "", 500, "60 s"), &[]);
    let scores = |out: &Path| -> Vec<f64> {
        values::<Float64Type>(&out.join("gossip_nodes.arrow"), "mean_mesh_score").into_iter().collect()
    };
    let on_scores = scores(&out_on);
    let mean = on_scores.iter().sum::<f64>() / on_scores.len() as f64;
    // Time in mesh (P1) and first deliveries (P2) are positive for honest peers; P3 is not yet
    // active (384 s) and nobody misbehaves.
    assert!(mean > 0.0, "{mean}");
    assert!(on_scores.iter().all(|&s| s >= 0.0));
    assert!(scores(&out_off).iter().all(|&s| s == 0.0));
    assert_ne!(on["digest"], off["digest"]);
    assert_eq!(off["gossip"]["reliability"], 1.0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_message_that_never_leaves_its_publishers_shard_does_not_split_the_digest() {
    // The last block is published 5 ms before the end: it cannot leave the publisher's upload
    // link (about 16 ms per copy), so other shards never hear of it.
    let dir = scratch("gossip-late-block");
    let text = spec("", "", 600, "28.005 s");
    let (one, _) = run(&dir, "one", &text, &["--shards", "1"]);
    let (two, _) = run(&dir, "two", &text, &["--shards", "2"]);
    let (four, _) = run(&dir, "four", &text, &["--shards", "4"]);
    assert_eq!(one["digest"], two["digest"]);
    assert_eq!(one["digest"], four["digest"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn attestation_and_column_subnets_reach_every_subscriber_by_flood_and_by_fanout() {
    let dir = scratch("gossip-topics");
    let topics =
        "[traffic]\nattestations = { subnets_per_node = 2, per_subnet = 2 }\ndata_columns = { custody_per_node = 4 }";
    for profile in ["ethereum", "lighthouse"] {
        let text = spec("", "", 800, "30 s")
            .replace("profile = \"ethereum\"", &format!("profile = \"{profile}\""))
            .replace("[traffic]", topics);
        let (one, out) = run(&dir, &format!("{profile}-1"), &text, &["--shards", "1"]);
        for (name, args) in [("2", vec!["--shards", "2"]), ("p3", vec!["--shards", "3", "--backend", "processes"])] {
            let (s, _) = run(&dir, &format!("{profile}-{name}"), &text, &args);
            assert_eq!(s["digest"], one["digest"], "{profile} {name}");
            assert_eq!(s["gossip"], one["gossip"], "{profile} {name}");
        }
        let g = &one["gossip"];
        assert_eq!(g["reliability"], 1.0, "{profile}: blocks");
        // Four slots start within 30 s (10, 16, 22, 28 s with 6-s slots), each with a block and
        // 128 columns; attestations (4 s into a slot) come in the first three: 64 subnets × 2.
        assert_eq!(g["messages"], 4, "{g}");
        assert_eq!(g["by_family"]["data_column_sidecar"]["messages"], 4 * 128, "{g}");
        assert_eq!(g["by_family"]["beacon_attestation"]["messages"], 3 * 64 * 2, "{g}");
        // Every message whose publisher had a peer on its topic reached every subscriber (no
        // loss in this network): the subnet meshes, flood publishing and fanout all work.
        let messages = out.join("gossip_messages.arrow");
        let ids: Vec<u64> = values::<UInt64Type>(&messages, "message_id").into_iter().collect();
        let subscribers: Vec<u32> = values::<UInt32Type>(&messages, "subscribers").into_iter().collect();
        let peers: Vec<u32> = values::<UInt32Type>(&messages, "publisher_topic_peers").into_iter().collect();
        let arrived: Vec<u64> =
            values::<UInt64Type>(&out.join("gossip_arrivals.arrow"), "message_id").into_iter().collect();
        let mut count = std::collections::BTreeMap::new();
        for id in arrived {
            *count.entry(id).or_insert(0u32) += 1;
        }
        let reachable: Vec<usize> = (0..ids.len()).filter(|&k| peers[k] > 0).collect();
        assert!(reachable.len() * 10 > ids.len() * 8, "{profile}: {} of {}", reachable.len(), ids.len());
        for k in reachable {
            assert_eq!(count.get(&ids[k]).copied().unwrap_or(0), subscribers[k], "{profile}: message {}", ids[k]);
        }
        // After warm-up (14 heartbeat periods) subnet meshes stay at or below D_high.
        let mesh = out.join("gossip_mesh_degree.arrow");
        let period: Vec<u64> = values::<UInt64Type>(&mesh, "heartbeat_period").into_iter().collect();
        let families: Vec<String> = strings(&mesh, "topic_family");
        let degrees: Vec<u16> = values::<UInt16Type>(&mesh, "mesh_degree").into_iter().collect();
        let d_high = if profile == "ethereum" { 12 } else { 10 };
        assert!(families.iter().any(|f| f == "beacon_attestation"));
        let high: Vec<_> = (0..degrees.len())
            .filter(|&k| period[k] >= 14 && degrees[k] > d_high)
            .map(|k| (period[k], &families[k], degrees[k]))
            .collect();
        assert!(high.is_empty(), "{profile}: {high:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn under_churn_identities_that_stay_online_get_every_block_on_any_shard_count() {
    let dir = scratch("gossip-churn");
    let text = spec("", "", 800, "50 s").replace(
        "beacon_block = { size = \"100 KiB\" }",
        "beacon_block = { size = \"100 KiB\" }\nchurn = { session = \"40 s\", downtime = \"15 s\" }",
    );
    let (one, out) = run(&dir, "c1", &text, &["--shards", "1"]);
    for (name, args) in [("c2", vec!["--shards", "2"]), ("p3", vec!["--shards", "3", "--backend", "processes"])] {
        let (s, _) = run(&dir, name, &text, &args);
        assert_eq!(s["digest"], one["digest"], "{name}");
    }
    let nodes = out.join("gossip_nodes.arrow");
    let node: Vec<u32> = values::<UInt32Type>(&nodes, "node").into_iter().collect();
    let offline: Vec<u64> = values::<UInt64Type>(&nodes, "offline_ns").into_iter().collect();
    let dropped: u64 = values::<UInt32Type>(&nodes, "dropped_offline").into_iter().map(u64::from).sum();
    let stayed: std::collections::BTreeSet<u32> =
        (0..node.len()).filter(|&k| offline[k] == 0).map(|k| node[k]).collect();
    // With a 40-s mean session, e⁻¹ ≈ 37 % stay online through the 40 s of churn.
    assert!(stayed.len() > 220 && stayed.len() < 370, "{}", stayed.len());
    assert!(dropped > 0);
    let g = &one["gossip"];
    let reliability = g["reliability"].as_f64().unwrap();
    assert!(reliability < 1.0 && reliability > 0.5, "{g}");
    let messages = g["messages"].as_u64().unwrap();
    let arrivals = out.join("gossip_arrivals.arrow");
    let got: Vec<u32> = values::<UInt32Type>(&arrivals, "node").into_iter().collect();
    let mut per: std::collections::BTreeMap<u32, u64> = Default::default();
    for n in got.into_iter().filter(|n| stayed.contains(n)) {
        *per.entry(n).or_default() += 1;
    }
    assert_eq!(per.len(), stayed.len());
    assert!(per.values().all(|&c| c == messages), "an identity that stayed online missed a block");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn peer_exchange_on_prune_opens_new_connections_deterministically() {
    let dir = scratch("gossip-px");
    // A narrow mesh band forces pruning; each PRUNE offers up to 16 peers of the topic.
    let text = |px: bool| {
        spec(
            &format!(
                "outbound_peers = 20\nmax_peers = 60\n[gossip.params]\nd = 3\nd_low = 2\nd_high = 4\npeer_exchange = {px}"
            ),
            "",
            400,
            "30 s",
        )
    };
    let (on, out_on) = run(&dir, "on", &text(true), &["--shards", "1"]);
    for (name, args) in [("on2", vec!["--shards", "2"]), ("onp3", vec!["--shards", "3", "--backend", "processes"])] {
        let (s, _) = run(&dir, name, &text(true), &args);
        assert_eq!(s["digest"], on["digest"], "{name}");
    }
    let (off, out_off) = run(&dir, "off", &text(false), &["--shards", "1"]);
    let sum = |out: &Path, column: &str| -> u64 {
        values::<UInt64Type>(&out.join("gossip_nodes.arrow"), column).into_iter().sum()
    };
    let connections = |out: &Path| -> Vec<u32> {
        values::<UInt32Type>(&out.join("gossip_nodes.arrow"), "connections").into_iter().collect()
    };
    assert!(sum(&out_on, "bytes_sent_px") > 0);
    assert_eq!(sum(&out_off, "bytes_sent_px"), 0);
    let (c_on, c_off) = (connections(&out_on), connections(&out_off));
    let (t_on, t_off) = (c_on.iter().sum::<u32>(), c_off.iter().sum::<u32>());
    assert!(t_on > t_off, "peer exchange should add connections: {t_on} vs {t_off}");
    // Peer-exchange dials stay within the connection target plus the four slots kept for them.
    assert!(c_on.iter().all(|&c| c <= 64));
    assert!(c_on.iter().zip(&c_off).all(|(a, b)| a >= b && a - b <= 4));
    assert_eq!(on["gossip"]["reliability"], 1.0);
    assert_ne!(on["digest"], off["digest"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn host_groups_with_different_client_profiles_mix_deterministically() {
    let dir = scratch("gossip-profiles");
    let text = spec("", "", 500, "30 s").replace(
        "[gossip]",
        "[[hosts]]\nname = \"lh\"\ncount = 300\ncountries = { DE = 0.5, other = 0.5 }\nprofile = \"lighthouse\"\n\n[gossip]",
    );
    let (one, out) = run(&dir, "m1", &text, &["--shards", "1"]);
    for (name, args) in [("m2", vec!["--shards", "2"]), ("mp3", vec!["--shards", "3", "--backend", "processes"])] {
        let (s, _) = run(&dir, name, &text, &args);
        assert_eq!(s["digest"], one["digest"], "{name}");
    }
    assert_eq!(one["gossip"]["reliability"], 1.0);
    assert_eq!(one["gossip"]["identities"], 800);
    let nodes = out.join("gossip_nodes.arrow");
    let client: Vec<String> = strings(&nodes, "meta_client_implementation");
    let degree: Vec<u16> = values::<UInt16Type>(&nodes, "mesh_degree").into_iter().collect();
    assert_eq!(client.iter().filter(|c| *c == "lighthouse").count(), 300);
    // `meta_client_name` is each identity's own name, as Xatu names the node that saw the data.
    let names: Vec<String> = strings(&nodes, "meta_client_name");
    assert_eq!(names.iter().collect::<std::collections::BTreeSet<_>>().len(), 800);
    let lh = names.iter().zip(&client).filter(|(_, c)| *c == "lighthouse");
    assert!(lh.clone().all(|(n, _)| n.starts_with("lh")) && lh.clone().any(|(n, _)| n == "lh299"));
    assert_eq!(client.iter().filter(|c| *c == "ethereum").count(), 500);
    // Each profile keeps its own mesh band: Lighthouse D = 5 (3..10), the spec's D = 8 (6..12).
    let mean = |name: &str| -> f64 {
        let d: Vec<f64> = client.iter().zip(&degree).filter(|(c, _)| *c == name).map(|(_, d)| *d as f64).collect();
        d.iter().sum::<f64>() / d.len() as f64
    };
    let (lh, eth) = (mean("lighthouse"), mean("ethereum"));
    assert!(lh < eth, "lighthouse {lh} vs ethereum {eth}");
    assert!((3.0..=10.0).contains(&lh) && (6.0..=12.0).contains(&eth), "{lh} {eth}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn meshes_keep_their_outbound_quota() {
    let dir = scratch("gossip-dout");
    let quota = |out: &Path| -> (usize, usize) {
        let nodes = out.join("gossip_nodes.arrow");
        let outbound: Vec<u16> = values::<UInt16Type>(&nodes, "mesh_outbound").into_iter().collect();
        (outbound.iter().filter(|&&o| o >= 3).count(), outbound.len())
    };
    // D_out = 3 of D = 8: few meshes reach it by chance with 12 outbound among ~24 connections
    // and inbound GRAFTs accepted until D_high.
    let (_, out) = run(&dir, "on", &spec("outbound_peers = 6\n[gossip.params]\nd_out = 3", "", 600, "30 s"), &[]);
    let (_, out_off) = run(&dir, "off", &spec("outbound_peers = 6\n[gossip.params]\nd_out = 0", "", 600, "30 s"), &[]);
    let ((met, all), (met_off, _)) = (quota(&out), quota(&out_off));
    assert!(met * 100 >= all * 99, "{met} of {all} meshes keep 3 outbound peers");
    assert!(met_off < met, "without the quota fewer do: {met_off} vs {met}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Rows of `gossip_arrivals` as (message, node, delay, from, hops, duplicates), sorted: the same
/// set whatever order shards and retirement wrote them in.
fn arrival_rows(out: &Path) -> Vec<(u64, u32, u64, u32, u32, u32)> {
    let path = out.join("gossip_arrivals.arrow");
    let mut rows: Vec<_> = values::<UInt64Type>(&path, "message_id")
        .into_iter()
        .zip(values::<UInt32Type>(&path, "node"))
        .zip(values::<UInt64Type>(&path, "arrival_since_publish_ns"))
        .zip(values::<UInt32Type>(&path, "from_peer"))
        .zip(values::<UInt32Type>(&path, "hops"))
        .zip(values::<UInt32Type>(&path, "duplicates"))
        .map(|(((((m, n), d), f), h), u)| (m, n, d, f, h, u))
        .collect();
    rows.sort_unstable();
    rows
}

#[test]
fn retiring_expired_messages_changes_nothing_but_memory() {
    let dir = scratch("gossip-retire");
    // 20,000 identities for 50 slots: messages expire a minute after publication, so most are
    // retired during the run, their rows spilled to disk and read back at the end.
    let retire = spec("", "", 20_000, "310 s");
    let keep = spec("keep_messages = true", "", 20_000, "310 s");
    let (kept, kept_out) = run(&dir, "keep", &keep, &["--shards", "1"]);
    let (retired, retired_out) = run(&dir, "retire", &retire, &["--shards", "2", "--backend", "processes"]);
    assert_eq!(kept["gossip"]["messages"].as_u64(), Some(50));
    assert_eq!(retired["digest"], kept["digest"]);
    assert_eq!(retired["gossip"], kept["gossip"]);
    let rows = arrival_rows(&retired_out);
    assert_eq!(rows.len() as u64, 50 * 20_000, "every identity got every block");
    assert_eq!(rows, arrival_rows(&kept_out));
    assert!(!retired_out.join(".spill").exists(), "the spill folder is gone once the tables are written");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_message_lifetime_too_short_to_serve_iwants_is_refused_at_its_key() {
    let dir = scratch("gossip-lifetime");
    let spec_path = write_spec(&dir, "short.toml", &spec("message_lifetime = \"3 s\"", "", 50, "20 s"));
    let out = run_with_deadline(&["run", spec_path.to_str().unwrap(), "-q"], std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("message_lifetime (3 s) must exceed"), "{err}");
    assert!(err.contains("short.toml:"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn log_every_prints_progress_lines_with_the_time_left_and_moves_no_digest() {
    let dir = scratch("gossip-log-every");
    let text = spec("", "", 3_000, "60 s");
    let (quiet, _) = run(&dir, "quiet", &text, &[]);
    let spec_path = write_spec(&dir, "logged.toml", &text);
    let out = dir.join("logged");
    let o = run_ok(&["run", spec_path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--log-every", "10 ms"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("progress: sim ")).collect();
    assert!(!lines.is_empty(), "{err}");
    assert!(lines.iter().all(|l| l.contains("/60 s (") && l.contains(" eta ")), "{lines:?}");
    assert_eq!(summary(&out)["digest"], quiet["digest"]);
    std::fs::remove_dir_all(dir).unwrap();
}
