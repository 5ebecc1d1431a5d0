//! A real discv5 client walks the surrogate DHT: `@chainsafe/discv5` 3.0.0 (Lodestar's, from
//! `nodes/js-discv5`) on a direct host, bootstrapped from three surrogate records given by the
//! `{enrs:GROUP:N}` placeholder, runs random lookups through 1,500 discv5 surrogate identities.
//! Its handshakes with the identities it meets succeed, every lookup completes with records it
//! verified (signature, and distance: ChainSafe drops records not at the distances it asked
//! for), each record is a surrogate identity's own (its key's node id, its address, its port),
//! its table fills with them, the tail tables the identities that answered it, and the run has
//! one digest on one shard (twice), two shards and two shard processes. The same walk goes
//! through gossip identities that find their peers by discv5 (`[gossip] discovery = "discv5"`),
//! where a client's UDP datagrams reach discovery and its TCP the libp2p boundary.

mod common;
use common::npm::js_discv5_walk;
use common::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use thermocline_models::directory::HostDirectory;
use thermocline_surrogate::discv5::boundary::{DISCV5_PORT, record};

const SEED: u64 = 5;
const IDENTITIES: u32 = 1500;
const LOOKUPS: u32 = 4;

/// The tail on a single switch, then the walker (host `IDENTITIES`) from 20 s; `gossip` adds
/// sections (gossip on the same identities).
fn spec(node: &str, script: &str, duration: &str, gossip: &str) -> SpecBuilder {
    SpecBuilder::switch(SEED, duration, "15 ms")
        .surrogates("tail", IDENTITIES, "bandwidth = { up = \"50 Mbit\", down = \"50 Mbit\" }\n")
        .direct("walker", "50 Mbit", "")
        .sections(&format!("[discv5]\njoin_over = \"10 s\"\nnat_share = 0.2\n{gossip}"))
        .process("walker", node, &[script, "{ip}", "9000", &LOOKUPS.to_string(), "{enrs:tail:3}"], "20 s", "")
}

#[test]
fn chainsafe_discv5_bootstraps_from_surrogate_records_and_its_lookups_return_surrogates() {
    let node = need("/usr/bin/node", "nodejs");
    let script = js_discv5_walk();
    let dir = scratch("hybrid-discv5");
    let path = spec(&node, script.to_str().unwrap(), "60 s", "").write(&dir, "walk.toml");
    let digests = digests_by_run(
        &dir,
        &path,
        &[
            ("one", &["--shards", "1"]),
            ("again", &["--shards", "1"]),
            ("two", &["--shards", "2"]),
            ("procs", &["--shards", "2", "--backend", "processes"]),
        ],
    );
    assert!(digests.values().all(|d| *d == digests["one"]), "one digest on every run: {digests:?}");

    let out = dir.join("two");
    let log = check_walk(&read(out.join("hosts/walker/node.0.stdout")));

    // The identities it asked: more than the three it was given, each with a session, and
    // together they handed out at least the records it reports.
    let b = thermocline_models::metrics::read_table(&out, "discv5_boundary").unwrap();
    let findnodes = u32s(&b, "findnodes");
    let asked = findnodes.iter().filter(|&&n| n > 0).count();
    assert!(asked > 3, "{asked} identities answered FINDNODE");
    assert!(u32s(&b, "sessions").iter().all(|&s| s >= 1), "every identity it reached completed a handshake");
    let records: u32 = u32s(&b, "records").iter().sum();
    let met = log.lines().filter(|l| l.starts_with("record ")).count();
    assert!(records as usize >= met.min(16), "{records} records sent");

    // Gossip on the same identities, its peers found by discv5 (each identity's peer manager
    // queries at joining, so the tail's tables differ): ChainSafe's four lookups asked 2,745
    // FINDNODE there against 770 above, so the run is longer.
    let gossip = "[gossip]\ndiscovery = \"discv5\"\n\n[traffic]\nstart = \"30 s\"\n";
    let path = spec(&node, script.to_str().unwrap(), "150 s", gossip).write(&dir, "gossip.toml");
    let runs = [("gossip-one", &["--shards", "1"][..]), ("gossip-two", &["--shards", "2"][..])];
    let digests = digests_by_run(&dir, &path, &runs);
    assert_eq!(digests["gossip-one"], digests["gossip-two"]);
    let out = dir.join("gossip-two");
    check_walk(&read(out.join("hosts/walker/node.0.stdout")));
    assert_eq!(summary(&out)["gossip"]["reliability"].as_f64(), Some(1.0));
    std::fs::remove_dir_all(dir).unwrap();
}

/// What the walker's log must show: every lookup completed with records of surrogate identities,
/// each its own (its key's node id, its address and port), and a table of them. Returns the log.
fn check_walk(log: &str) -> String {
    assert!(!log.contains("error"), "{log}");
    let lookups: Vec<u32> = log
        .lines()
        .filter_map(|l| l.strip_prefix("lookup "))
        .map(|l| l.split(' ').find_map(|f| f.strip_prefix("found=")).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lookups.len(), LOOKUPS as usize, "every lookup completed:\n{log}");
    assert!(lookups.iter().all(|&n| n >= 8), "lookups found {lookups:?}:\n{log}");
    let mut met = BTreeSet::new();
    for line in log.lines().filter(|l| l.starts_with("record ")) {
        let field = |name: &str| line.split(' ').find_map(|f| f.strip_prefix(name)).unwrap();
        let (ip, port) = field("addr=").split_once(':').unwrap();
        let ip: Ipv4Addr = ip.parse().unwrap();
        let host = (0..IDENTITIES).find(|&h| HostDirectory::ip_of(h) == ip).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(port.parse::<u16>().unwrap(), DISCV5_PORT, "{line}");
        let id: String = record(SEED, host).node_id().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(field("id="), id, "the record of identity {host} is its own: {line}");
        met.insert(host);
    }
    assert!(met.len() >= 16, "records of {} identities:\n{log}", met.len());
    let table: usize = log.lines().find_map(|l| l.strip_prefix("table size=")).unwrap().parse().unwrap();
    assert!(table >= 16, "the client's table holds {table} surrogates");
    log.to_string()
}

fn u32s(batch: &arrow_array::RecordBatch, name: &str) -> Vec<u32> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any().downcast_ref::<arrow_array::UInt32Array>().unwrap().values().to_vec()
}
