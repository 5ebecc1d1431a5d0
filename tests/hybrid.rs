//! Direct hosts and surrogate identities in one simulation: a real program on direct hosts sends
//! UDP datagrams to surrogate identities by name while the surrogates gossip blocks among
//! themselves. The run has one digest on any shard count and backend, the surrogates still
//! deliver every block, and every datagram reaches the identity it was addressed to (which counts
//! it; they answer only libp2p over TCP). And real rust-libp2p nodes whose only peers are
//! surrogates mesh with them: the surrogates terminate TCP, speak Noise, yamux and gossipsub,
//! and blocks cross the cold tail in both directions.

mod common;
use common::*;
use std::collections::BTreeMap;
use thermocline_models::metrics::read_ipc_file;

/// Runs `spec` on 1 (twice), 2 and 4 shards and on 2 shard processes, into folders of `dir`
/// named after each; returns each run's digest.
fn digests_on_every_shard_count(dir: &std::path::Path, spec: &std::path::Path) -> BTreeMap<&'static str, String> {
    digests_by_run(
        dir,
        spec,
        &[
            ("one", &["--shards", "1"]),
            ("again", &["--shards", "1"]),
            ("two", &["--shards", "2"]),
            ("four", &["--shards", "4"]),
            ("procs", &["--shards", "2", "--backend", "processes"]),
        ],
    )
}

#[test]
fn direct_hosts_and_surrogates_run_as_one_simulation_on_any_shard_count() {
    let dir = scratch("hybrid");
    let spec = write_spec(&dir, "hybrid.toml", HYBRID_SPEC);
    let digests = digests_on_every_shard_count(&dir, &spec);
    let first = digests["one"].clone();
    assert!(digests.values().all(|d| *d == first), "{digests:?}");

    let out = dir.join("one");
    assert_eq!(read(out.join("hosts/hot0/python3.0.stdout")).trim(), "sent 50");
    let s = summary(&out);
    assert!(s["gossip"]["reliability"].as_f64().unwrap() > 0.999, "{}", s["gossip"]);
    assert_eq!(s["gossip"]["identities"], 300, "direct hosts are not gossip identities");

    // Every datagram reached its identity: 5 to each of tail{7k} and tail{7k + 1}.
    let (_, batches) = read_ipc_file(&out.join("surrogate_packets.arrow")).unwrap();
    let mut got: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for b in &batches {
        let ids = b.column_by_name("identity").unwrap();
        let ids = ids.as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap();
        for ((id, p), bytes) in ids.values().iter().zip(u64s(b, "packets")).zip(u64s(b, "bytes")) {
            got.insert(*id, (p, bytes));
        }
    }
    // Surrogate groups take the first ids, so `tailN` is identity N.
    let want: BTreeMap<u32, (u64, u64)> =
        (0..10u32).flat_map(|k| [7 * k, 7 * k + 1].map(|id| (id, (5, 5 * (28 + 100 + k as u64))))).collect();
    assert_eq!(got, want);
}

#[test]
fn a_surrogate_group_is_refused_as_the_host_of_a_program() {
    let dir = scratch("hybrid-refused");
    let text = HYBRID_SPEC.replace("host = \"hot\"", "host = \"tail\"");
    let spec = write_spec(&dir, "bad.toml", &text);
    let o = run_with_deadline(&["run", spec.to_str().unwrap(), "-q"], std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:") && err.contains("which is not kind = \"direct\""), "{err}");
}

#[test]
fn real_libp2p_nodes_with_only_surrogate_peers_get_each_others_blocks_and_the_surrogates() {
    let node = gossip_node();
    let dir = scratch("hybrid-clients");
    let spec = write_spec(&dir, "clients.toml", &real_clients_spec(&node, "two real clients"));
    let digests = digests_on_every_shard_count(&dir, &spec);
    assert!(
        digests.values().all(|d| *d == digests["one"]),
        "one digest on every run, shard count and backend: {digests:?}"
    );
    // On 2 and 4 shards, hot1 (host 201) and the surrogates it dials (tail21…tail24) are on
    // different shards: its connections cross the bus.
    for shards in ["2", "4"] {
        let csv = dir.join(format!("partition-{shards}.csv"));
        run_ok(&["partition", spec.to_str().unwrap(), "--shards", shards, "--out", csv.to_str().unwrap()]);
        let ranges: Vec<(u32, u32, u32)> = read(csv)
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .map(|l| {
                let v: Vec<u32> = l.split(',').map(|x| x.parse().unwrap()).collect();
                (v[0], v[1], v[2])
            })
            .collect();
        let shard_of = |h: u32| ranges.iter().find(|r| r.0 <= h && h <= r.1).unwrap().2;
        assert!((21..=24).all(|t| shard_of(t) != shard_of(201)), "{shards} shards: {ranges:?}");
    }
    let out = dir.join("one");
    for (me, other) in [(0, 1), (1, 0)] {
        let log = read(out.join(format!("hosts/hot{me}/gossip-node.0.stdout")));
        assert_eq!(log.matches("connected node=-1 dialer=true").count(), 4, "four surrogate peers:\n{log}");
        // The other real node's block crossed the tail (they share no connection).
        assert!(log.contains(&format!("recv slot={other} publisher={other} via=-1 ")), "hot{me}:\n{log}");
        assert!(log.contains(&format!("done node={me} received=1 expected=1")), "hot{me}:\n{log}");
        // Blocks the surrogates published arrive too, with their signatures accepted.
        let surrogate_blocks = log
            .lines()
            .filter(|l| l.starts_with("recv ") && !l.contains(" publisher=0 ") && !l.contains(" publisher=1 "))
            .count();
        assert!(surrogate_blocks >= 2, "hot{me} got {surrogate_blocks} surrogate blocks:\n{log}");
        assert!(!log.contains("malformed") && !log.contains("failed"), "hot{me}:\n{log}");
        // Its mesh holds surrogates, and it scores every surrogate peer non-negatively: no invalid
        // message, no broken IWANT promise, no other behaviour penalty.
        let mesh = log.lines().find(|l| l.starts_with("mesh ")).unwrap_or_else(|| panic!("hot{me}:\n{log}"));
        assert!(!mesh.contains("surrogates=0"), "hot{me}: {mesh}");
        let scores: Vec<f64> =
            log.lines().filter_map(|l| l.strip_prefix("score node=-1 value=")).map(|v| v.parse().unwrap()).collect();
        assert_eq!(scores.len(), 4, "hot{me}:\n{log}");
        assert!(scores.iter().all(|&v| v >= 0.0), "hot{me} scores {scores:?}");
    }
    // Both real nodes' blocks reached surrogates, and are tabled apart from the surrogates' own.
    let (_, batches) = read_ipc_file(&out.join("client_message_arrivals.arrow")).unwrap();
    let ids: std::collections::BTreeSet<u64> = batches.iter().flat_map(|b| u64s(b, "message_id")).collect();
    assert_eq!(ids.len(), 2, "two client blocks");
    assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 100, "client blocks reached most of the tail");
}

#[test]
fn bench_hybrid_reports_the_boundarys_cost_as_json() {
    gossip_node();
    let o = run_ok(&["bench", "hybrid", "--hot", "2", "--cold", "300", "--slots", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "real_time_factor",
        "boundary_overhead",
        "boundary_overhead_same_blocks",
        "reliability",
        "events_per_s",
        "hot_alone_wall_s",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {v}");
    }
    assert_eq!(v["hot_blocks_received"], v["hot_blocks_expected"], "{v}");
    assert!(v["reliability"].as_f64().unwrap() > 0.99, "{v}");
}

/// `experiments/specs/hybrid.toml` with its `gossip-node` path pointing at the one the tests built.
fn example_spec(dir: &std::path::Path) -> std::path::PathBuf {
    let text = read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/hybrid.toml"));
    let node = gossip_node();
    let text = text.replace("\"../../target/release/gossip-node\"", &format!("{:?}", node.display().to_string()));
    assert!(text.contains(&node.display().to_string()), "the example names gossip-node by its path");
    write_spec(dir, "hybrid.toml", &text)
}

#[test]
fn the_hybrid_example_delivers_every_block_to_real_and_surrogate_nodes_on_one_and_two_shards() {
    let dir = scratch("hybrid-example");
    let spec = example_spec(&dir);
    let mut digests = Vec::new();
    for shards in ["1", "2"] {
        let out = dir.join(shards);
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--shards", shards, "--out", out.to_str().unwrap()]);
        digests.push(summary(&out)["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(digests[0], digests[1], "one digest on 1 and 2 shards");
    let out = dir.join("1");
    let s = summary(&out);
    assert!(s["gossip"]["reliability"].as_f64().unwrap() > 0.999, "{}", s["gossip"]);
    // Hot rows: 8 clients × (5 tail blocks + 4 client blocks) less each client's own block.
    assert_eq!(s["gossip"]["hot"]["nodes"], 8, "{}", s["gossip"]);
    assert_eq!(s["gossip"]["hot"]["received"], 8 * (5 + 4) - 4, "{}", s["gossip"]);
    assert_eq!(s["gossip"]["cold"]["nodes"], 10_000, "{}", s["gossip"]);
    let mut peers_seen = std::collections::BTreeSet::new();
    for i in 0..8 {
        let log = read(out.join(format!("hosts/hot{i}/gossip-node.0.stdout")));
        let expected = (0..4).filter(|s| s % 8 != i).count();
        assert!(log.contains(&format!("done node={i} received={expected} expected={expected}")), "hot{i}:\n{log}");
        assert!(log.lines().filter(|l| l.starts_with("recv ")).count() > expected, "surrogate blocks too:\n{log}");
        assert!(!log.contains("failed") && !log.contains("malformed"), "hot{i}:\n{log}");
        peers_seen.insert(i);
    }
    assert_eq!(peers_seen.len(), 8);
}

#[test]
fn peer_placeholders_give_each_client_its_own_surrogates_with_their_peer_ids() {
    let dir = scratch("hybrid-placeholders");
    let spec = r#"
[run]
seed = 11
duration = "2 s"
[network]
topology = "single-switch"
latency = "10 ms"
[[hosts]]
name = "tail"
count = 50
[[hosts]]
name = "hot"
kind = "direct"
count = 3
[gossip]
[traffic]
start = "10 s"
slot = "12 s"
[[processes]]
host = "hot"
path = "/bin/sh"
args = ["-c", "echo \"$PEERS\"; echo \"$ADDRS\""]
env = { PEERS = "{peers:tail:4}", ADDRS = "{multiaddrs:tail:4}" }
"#
    .to_string();
    let path = write_spec(&dir, "p.toml", &spec);
    let out = dir.join("out");
    run_ok(&["run", path.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    let mut all = std::collections::BTreeSet::new();
    for h in 0..3 {
        let text = read(out.join(format!("hosts/hot{h}/sh.0.stdout")));
        let (names, addrs) = text.trim().split_once('\n').unwrap();
        let names: Vec<&str> = names.split(',').collect();
        let addrs: Vec<&str> = addrs.split(',').collect();
        assert_eq!((names.len(), addrs.len()), (4, 4), "{text}");
        for (name, addr) in names.iter().zip(&addrs) {
            let id: u32 = name.strip_prefix("tail").unwrap().strip_suffix(":9000").unwrap().parse().unwrap();
            let key = thermocline_surrogate::boundary::identity_key(11, id);
            let ip = thermocline_models::directory::HostDirectory::ip_of(id);
            assert_eq!(*addr, format!("/ip4/{ip}/tcp/9000/p2p/{}", key.peer_id()), "{name}");
            assert!(all.insert(id), "tail{id} given to two clients");
        }
    }
    // A placeholder naming a group that is not a surrogate group is an error at its line.
    let bad = write_spec(&dir, "bad.toml", &spec.replace("{peers:tail:4}", "{peers:hot:1}"));
    let o = run_with_deadline(&["run", bad.to_str().unwrap(), "-q"], std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:") && err.contains("not a surrogate group"), "{err}");
}

#[test]
fn clients_with_content_message_ids_mesh_with_surrogates_configured_alike() {
    let node = gossip_node();
    let dir = scratch("hybrid-content-ids");
    let text = real_clients_spec(&node, "content-addressed message ids")
        .replace("[gossip]\n", "[gossip]\nmessage_id = { beacon_block = \"content-sha256\" }\n")
        .replace("\"--score\"]", "\"--score\", \"--message-id\", \"content\"]");
    assert!(text.contains("content-sha256") && text.contains("\"content\"]"), "{text}");
    let spec = write_spec(&dir, "content.toml", &text);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    for (me, other) in [(0, 1), (1, 0)] {
        let log = read(out.join(format!("hosts/hot{me}/gossip-node.0.stdout")));
        assert!(log.contains(&format!("recv slot={other} publisher={other} via=-1 ")), "hot{me}:\n{log}");
        let surrogate_blocks = log
            .lines()
            .filter(|l| l.starts_with("recv ") && !l.contains(" publisher=0 ") && !l.contains(" publisher=1 "))
            .count();
        assert!(surrogate_blocks >= 2, "hot{me} got {surrogate_blocks} surrogate blocks:\n{log}");
        assert!(!log.contains("malformed") && !log.contains("failed"), "hot{me}:\n{log}");
    }
    // A topic the surrogates do not model is refused at its line.
    let bad = write_spec(&dir, "bad.toml", &text.replace("{ beacon_block =", "{ beacon_blob ="));
    let o = run_with_deadline(&["run", bad.to_str().unwrap(), "-q"], std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:") && err.contains("beacon_blob"), "{err}");
}

#[test]
fn surrogates_dial_real_clients_that_dial_nobody_and_blocks_cross_both_ways() {
    let node = gossip_node();
    let dir = scratch("hybrid-dial-clients");
    let text = real_clients_spec(&node, "clients that only listen")
        .replace("[gossip]\n", "[gossip]\ndial_clients = { group = \"hot\", peers = 4, start = \"3 s\" }\n")
        .replace("\"--peer\", \"tail1{index}:9000,tail2{index}:9000,tail3{index}:9000,tail4{index}:9000\",", "");
    assert!(text.contains("dial_clients") && !text.contains("--peer"), "{text}");
    let spec = write_spec(&dir, "dialled.toml", &text);
    let mut digests = Vec::new();
    for shards in ["1", "2"] {
        let out = dir.join(shards);
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--shards", shards, "--out", out.to_str().unwrap()]);
        digests.push(summary(&out)["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(digests[0], digests[1], "one digest on 1 and 2 shards");
    let out = dir.join("1");
    for (me, other) in [(0, 1), (1, 0)] {
        let log = read(out.join(format!("hosts/hot{me}/gossip-node.0.stdout")));
        assert_eq!(log.matches("connected node=-1 dialer=false").count(), 4, "four surrogates dialled in:\n{log}");
        assert!(!log.contains("dialer=true"), "hot{me} dialled nobody:\n{log}");
        assert!(log.contains(&format!("recv slot={other} publisher={other} via=-1 ")), "hot{me}:\n{log}");
        let surrogate_blocks = log
            .lines()
            .filter(|l| l.starts_with("recv ") && !l.contains(" publisher=0 ") && !l.contains(" publisher=1 "))
            .count();
        assert!(surrogate_blocks >= 2, "hot{me} got {surrogate_blocks} surrogate blocks:\n{log}");
        assert!(!log.contains("malformed") && !log.contains("failed"), "hot{me}:\n{log}");
    }
    // Dialling a group that is not direct is refused at its line.
    let bad = write_spec(&dir, "bad.toml", &text.replace("group = \"hot\"", "group = \"tail\""));
    let o = run_with_deadline(&["run", bad.to_str().unwrap(), "-q"], std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:") && err.contains("not a kind = \"direct\""), "{err}");
}

/// A real client's arrivals as `gossip_arrivals` tables them (`hot` rows): (message id, delay
/// since publication ns) per `beacon_block` message, for host `node`.
fn hot_block_rows(out: &std::path::Path, node: u32) -> BTreeMap<u64, u64> {
    let (_, batches) = read_ipc_file(&out.join("gossip_arrivals.arrow")).unwrap();
    let mut rows = BTreeMap::new();
    for b in &batches {
        let hot = b.column_by_name("hot").unwrap();
        let hot = hot.as_any().downcast_ref::<arrow_array::BooleanArray>().unwrap();
        let nodes = b.column_by_name("node").unwrap();
        let nodes = nodes.as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap();
        let topics = b.column_by_name("topic").unwrap();
        let topics = topics.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        let (ids, delays) = (u64s(b, "message_id"), u64s(b, "arrival_since_publish_ns"));
        for k in 0..b.num_rows() {
            if hot.value(k) && nodes.value(k) == node && topics.value(k) == "beacon_block" {
                assert!(rows.insert(ids[k], delays[k]).is_none(), "one row per node and message");
            }
        }
    }
    rows
}

/// The real clients' arrivals are tabled with the surrogates' (`hot` rows of
/// `gossip_arrivals`), timed when each block's last byte reached the client's socket: every
/// client has a row for the other client's block and for each surrogate block its log shows,
/// never later than the delay the client logged and close to it, and the summary has hot and cold
/// figures. One digest on every shard count and backend.
#[test]
fn real_clients_arrivals_are_hot_rows_no_later_than_their_own_logs() {
    let node = gossip_node();
    let dir = scratch("hybrid-hot-arrivals");
    let spec = write_spec(&dir, "clients.toml", &real_clients_spec(&node, "hot arrivals"));
    let digests = digests_on_every_shard_count(&dir, &spec);
    assert!(digests.values().all(|d| *d == digests["one"]), "{digests:?}");
    let out = dir.join("one");
    // The tail's blocks: message id by (slot, publisher).
    let (_, batches) = read_ipc_file(&out.join("gossip_messages.arrow")).unwrap();
    let mut tail_blocks = BTreeMap::new();
    for b in &batches {
        let p = b.column_by_name("publisher").unwrap();
        let p = p.as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap();
        for ((slot, id), publisher) in u64s(b, "slot").into_iter().zip(u64s(b, "message_id")).zip(p.values()) {
            tail_blocks.insert((slot, u64::from(*publisher)), id);
        }
    }
    let field =
        |line: &str, key: &str| -> u64 { line.split(' ').find_map(|w| w.strip_prefix(key)).unwrap().parse().unwrap() };
    let mut gaps = Vec::new();
    for (me, other) in [(0u64, 1u64), (1, 0)] {
        let log = read(out.join(format!("hosts/hot{me}/gossip-node.0.stdout")));
        let rows = hot_block_rows(&out, 200 + me as u32);
        let mut matched = 0;
        for line in log.lines().filter(|l| l.starts_with("recv ")) {
            let (slot, publisher) = (field(line, "slot="), field(line, "publisher="));
            let logged_ns = field(line, "delay_us=") * 1000;
            let delay = if publisher == other {
                // The other client's block: the one row with a client's key.
                let client: Vec<u64> = rows.iter().filter(|(id, _)| **id >> 63 == 1).map(|(_, d)| *d).collect();
                assert_eq!(client.len(), 1, "hot{me}: {rows:?}");
                client[0]
            } else {
                let id = tail_blocks[&(slot, publisher)];
                *rows.get(&id).unwrap_or_else(|| panic!("hot{me} has no row for {line}: {rows:?}"))
            };
            assert!(delay < logged_ns + 1000, "hot{me}: tabled {delay} ns, logged {line}");
            gaps.push(logged_ns + 1000 - delay);
            matched += 1;
        }
        assert!(matched >= 3, "hot{me} logged {matched} blocks:\n{log}");
        assert_eq!(rows.len(), matched, "hot{me}: a row for every block it logged, and no other:\n{log}\n{rows:?}");
    }
    let worst = *gaps.iter().max().unwrap();
    assert!(worst < 5_000_000, "the client logs within 5 ms of its socket's arrival: {gaps:?}");
    let s = summary(&out);
    let (hot, cold) = (&s["gossip"]["hot"], &s["gossip"]["cold"]);
    assert_eq!(hot["nodes"], 2, "{}", s["gossip"]);
    assert_eq!(hot["received"].as_u64(), Some(gaps.len() as u64), "{}", s["gossip"]);
    assert!(hot["p50_ms"].as_f64().unwrap() > 0.0 && cold["reliability"].as_f64().unwrap() > 0.99, "{}", s["gossip"]);
}
