//! Surrogate discv5 end to end: a run of discovery among identities on the RIPE country table has
//! one digest on any shard count and backend, its lookups end on the exact closest identities,
//! discovery stays healthy under churn and NAT, and a bad `[discv5]` section is refused with a
//! message naming the key.

mod common;

use common::{SpecBuilder, digests_by_run, run_ok, run_with_deadline, scratch, summary, u64s};
use std::time::Duration;

/// `count` identities on the country table, discovering for `duration` with `discv5` keys.
fn spec(count: u32, duration: &str, discv5: &str) -> SpecBuilder {
    SpecBuilder::switch(3, duration, "10 ms")
        .network("topology = \"ripe-country\"\njitter = true")
        .surrogates("tail", count, "countries = { DE = 0.3, US = 0.3, JP = 0.1, other = 0.3 }\n")
        .sections(&format!("[discv5]\n{discv5}\n"))
}

/// Runs `path` on 1, 2 and 4 shards, 2 shard processes and 2 shards again (into folders of
/// `dir` named `one`, `two`, `four`, `processes`, `again`) and checks they have one digest.
fn one_digest_everywhere(dir: &std::path::Path, path: &std::path::Path) {
    let digests = digests_by_run(
        dir,
        path,
        &[
            ("one", &["--shards", "1"]),
            ("two", &["--shards", "2"]),
            ("four", &["--shards", "4"]),
            ("processes", &["--shards", "2", "--backend", "processes"]),
            ("again", &["--shards", "2"]),
        ],
    );
    let first = digests.values().next().unwrap();
    assert!(digests.values().all(|d| d == first), "{digests:?}");
}

#[test]
fn a_discv5_run_has_one_digest_on_any_shard_count_and_backend() {
    let dir = scratch("discv5-digest");
    let churn = "nat_share = 0.2\njoin_over = \"10 s\"\n\
                 churn = { share = 0.3, mean_online = \"40 s\", mean_offline = \"20 s\" }";
    let path = spec(1500, "80 s", churn).write(&dir, "discv5.toml");
    one_digest_everywhere(&dir, &path);
    let s = summary(&dir.join("two"));
    let d = &s["discv5"];
    assert_eq!(d["identities"], 1500);
    assert!(d["random_lookups"]["lookups"].as_u64().unwrap() > 500, "{d}");
    assert!(d["mean_table_entries"].as_f64().unwrap() > 30.0, "{d}");
    // Every kind of packet went out, the handshake's WHOAREYOU among them.
    for kind in ["ping", "pong", "findnode", "nodes", "whoareyou"] {
        assert!(d["bytes_per_identity"][kind].as_f64().unwrap() > 0.0, "{kind}: {d}");
    }
    assert!(d["timeouts_per_identity"].as_f64().unwrap() > 0.0, "churn leaves requests unanswered: {d}");
    // Table fill over time: the shards' rows sum to the same counts on any shard count, every
    // online identity is counted at each sample, and tables fill up as identities join.
    let fill = |run: &str| {
        let t = thermocline_models::metrics::read_table(&dir.join(run), "discv5_table_fill").unwrap();
        let (time, entries, count) = (u64s(&t, "time_ns"), u32s(&t, "table_entries"), u64s(&t, "identities"));
        let mut by_key = std::collections::BTreeMap::new();
        for k in 0..t.num_rows() {
            *by_key.entry((time[k], entries[k])).or_insert(0u64) += count[k];
        }
        by_key
    };
    let one = fill("one");
    assert_eq!(one, fill("four"));
    let samples: std::collections::BTreeSet<u64> = one.keys().map(|k| k.0).collect();
    assert_eq!(samples.len(), 7, "a sample every 10 s before the end at 80 s: {samples:?}");
    let last = *samples.iter().last().unwrap();
    let (full, online): (u64, u64) = one
        .iter()
        .filter(|(k, _)| k.0 == last)
        .fold((0, 0), |(f, o), (k, n)| (f + if k.1 >= 16 { *n } else { 0 }, o + n));
    assert!(online > 900 && full as f64 > 0.95 * online as f64, "{full} of {online} online with 16 entries or more");
    std::fs::remove_dir_all(dir).unwrap();
}

fn u32s(batch: &arrow_array::RecordBatch, name: &str) -> Vec<u32> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap().values().to_vec()
}

#[test]
fn lookups_on_the_country_table_end_on_the_exact_closest_identities() {
    let dir = scratch("discv5-exact");
    let path = spec(2000, "150 s", "exact = true\njoin_over = \"20 s\"").write(&dir, "exact.toml");
    let out = dir.join("out");
    run_ok(&["run", path.to_str().unwrap(), "-q", "--shards", "2", "--out", out.to_str().unwrap()]);
    let l = &summary(&out)["discv5"]["random_lookups"];
    // The three distances a FINDNODE asks around the target miss a closest node now and then,
    // as they do for real clients (see the protocol's tests); nearly all are found.
    assert!(l["exact_recall"].as_f64().unwrap() > 0.97, "{l}");
    assert!(l["exact_share"].as_f64().unwrap() > 0.7, "{l}");
    assert!(l["mean_found"].as_f64().unwrap() > 15.9, "{l}");
    // Lookups on the country table take a few round trips of the handshake and FINDNODE.
    let p50 = l["p50_ms"].as_f64().unwrap();
    assert!((200.0..5000.0).contains(&p50), "{l}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_discv5_section_is_refused_naming_the_key() {
    let dir = scratch("discv5-bad");
    for (keys, expected) in [
        ("alpha = 0", "discv5.alpha"),
        ("bootnodes = 5000", "discv5.bootnodes"),
        ("churn = { share = 2.0, mean_online = \"1 s\", mean_offline = \"1 s\" }", "discv5.churn.share"),
        ("lookups = 3", "lookups"),
    ] {
        let path = spec(100, "10 s", keys).write(&dir, "bad.toml");
        let out = run_with_deadline(&["run", path.to_str().unwrap(), "-q"], Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{keys}: {stderr}");
    }
    let mixed = spec(100, "10 s", "").direct("alice", "10 Mbit", "location = \"DE\"\n").write(&dir, "mixed.toml");
    let out = run_with_deadline(&["run", mixed.to_str().unwrap(), "-q"], Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("without [[processes]]"), "{stderr}");
    let both = spec(100, "10 s", "")
        .direct("alice", "10 Mbit", "location = \"DE\"\n")
        .sections("[gossip]\n")
        .process("alice", "/bin/true", &[], "1 s", "")
        .write(&dir, "both.toml");
    let out = run_with_deadline(&["run", both.to_str().unwrap(), "-q"], Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("discovery = \"discv5\""), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Gossip identities that find their peers through discv5 on the country table.
fn found_peers_spec() -> SpecBuilder {
    spec(1500, "90 s", "nat_share = 0.2\njoin_over = \"10 s\"\nlookup_interval = \"20 s\"").sections(
        "[gossip]\ndiscovery = \"discv5\"\n\n[traffic]\nstart = \"40 s\"\n\
             attestations = { subnets_per_node = 2, per_subnet = 1 }\n",
    )
}

#[test]
fn gossip_identities_dial_the_peers_discv5_finds_and_deliver_every_block() {
    let dir = scratch("discv5-found-peers");
    let path = found_peers_spec().write(&dir, "found.toml");
    one_digest_everywhere(&dir, &path);
    let out = dir.join("two");
    let s = summary(&out);
    let family = &s["gossip"]["by_family"];
    assert_eq!(family["beacon_block"]["reliability"].as_f64(), Some(1.0), "{family}");
    assert!(family["beacon_attestation"]["reliability"].as_f64().unwrap() > 0.99, "{family}");

    let read = |name: &str| thermocline_models::metrics::read_table(&out, name).unwrap();
    let (peering, identities) = (read("gossip_peering"), read("discv5_identities"));
    let by_node = |t: &arrow_array::RecordBatch, key: &str| -> Vec<u32> { u32s(t, key) };
    assert_eq!(by_node(&peering, "node"), by_node(&identities, "identity"), "both tables go by identity");
    let first_peer = opt_u64s(&peering, "first_peer_ns");
    let target = opt_u64s(&peering, "target_peers_ns");
    let joined = u64s(&identities, "joined_ns");
    let nat = bools(&identities, "behind_nat");
    let found_inbound = u32s(&peering, "found_inbound");
    for k in 0..peering.num_rows() {
        // No peer before discovery: an identity is found only once it has contacted others.
        let at = first_peer[k].unwrap_or_else(|| panic!("identity {k} never had a peer"));
        assert!(at >= joined[k], "identity {k}: first peer at {at} before joining at {}", joined[k]);
        // Identities behind NAT are in no table, so nobody finds them to dial.
        if nat[k] {
            assert_eq!(found_inbound[k], 0, "identity {k} behind NAT was dialled");
        }
    }
    let reached = target.iter().filter(|t| t.is_some()).count();
    assert!(reached as f64 >= 0.95 * peering.num_rows() as f64, "{reached} reached 12 outbound peers");
    let inbound_somewhere = (0..peering.num_rows()).filter(|&k| !nat[k] && found_inbound[k] > 0).count();
    assert!(inbound_somewhere > 1000, "reachable identities are dialled: {inbound_somewhere}");
    // Subnet peers are found by subnet queries: a row per identity and subnet it subscribes to,
    // most reaching the 4 subnet peers wanted, none before the identity joined.
    let subnets = read("gossip_subnet_peering");
    assert_eq!(subnets.num_rows(), 2 * peering.num_rows());
    let joined_at: std::collections::BTreeMap<u32, u64> =
        by_node(&identities, "identity").into_iter().zip(joined.iter().copied()).collect();
    let reached = opt_u64s(&subnets, "reached_ns");
    for (node, at) in by_node(&subnets, "node").iter().zip(&reached) {
        assert!(at.is_none_or(|t| t >= joined_at[node]), "identity {node} had subnet peers before joining");
    }
    let share = reached.iter().filter(|r| r.is_some()).count() as f64 / reached.len() as f64;
    assert!(share > 0.6, "{share} of identities' subnets reached 4 peers");
    std::fs::remove_dir_all(dir).unwrap();
}

fn opt_u64s(batch: &arrow_array::RecordBatch, name: &str) -> Vec<Option<u64>> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap().iter().collect()
}

fn bools(batch: &arrow_array::RecordBatch, name: &str) -> Vec<bool> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any().downcast_ref::<arrow_array::BooleanArray>().unwrap().iter().map(|b| b.unwrap()).collect()
}

#[test]
fn bench_gossip_with_discovery_reports_the_peering_figures() {
    let o = run_ok(&["bench", "gossip", "--nodes", "600", "--slots", "1", "--shards", "2", "--discovery", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let p = &v["discv5"]["peering"];
    assert_eq!(p["identities"], 600, "{v}");
    assert!(p["target_reached"].as_f64().unwrap() > 0.9, "{p}");
    let (first, target) = (p["first_peer_p50_s"].as_f64().unwrap(), p["target_p50_s"].as_f64().unwrap());
    assert!(first > 0.0 && target >= first, "{p}");
    assert!(v["gossip"]["reliability"].as_f64().unwrap() > 0.99, "{}", v["gossip"]);
    let assigned = run_ok(&["bench", "gossip", "--nodes", "600", "--slots", "1", "--json"]);
    let a: serde_json::Value = serde_json::from_slice(&assigned.stdout).unwrap();
    assert!(a.get("discv5").is_none(), "no discovery figures without --discovery");
}

#[test]
fn a_dial_to_an_identity_gone_offline_is_refused_and_the_dialler_moves_on() {
    let dir = scratch("discv5-found-churn");
    // Gossip churn from the start: many found peers are offline when dialled.
    let path = spec(800, "80 s", "join_over = \"10 s\"\nlookup_interval = \"30 s\"")
        .sections(
            "[gossip]\ndiscovery = \"discv5\"\n\n[traffic]\nstart = \"30 s\"\n\
             churn = { session = \"60 s\", downtime = \"20 s\", start = \"0 s\" }\n",
        )
        .write(&dir, "churn.toml");
    let runs: &[(&str, &[&str])] = &[("one", &["--shards", "1"]), ("two", &["--shards", "2"])];
    let digests = digests_by_run(&dir, &path, runs);
    assert_eq!(digests["one"], digests["two"]);
    let p = &summary(&dir.join("two"))["discv5"]["peering"];
    assert!(p["target_reached"].as_f64().unwrap() > 0.9, "identities stuck on dials nobody answers: {p}");
    std::fs::remove_dir_all(dir).unwrap();
}
