//! Direct hosts and surrogate identities in one simulation: a real program on direct hosts sends
//! UDP datagrams to surrogate identities by name while the surrogates gossip blocks among
//! themselves. The run has one digest on any shard count and backend, the surrogates still
//! deliver every block, and every datagram reaches the identity it was addressed to (which counts
//! it: identities do not answer raw packets yet).

mod common;
use common::*;
use std::collections::BTreeMap;
use thermocline_models::metrics::read_ipc_file;

fn u64s(batch: &arrow_array::RecordBatch, name: &str) -> Vec<u64> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap().values().to_vec()
}

#[test]
fn direct_hosts_and_surrogates_run_as_one_simulation_on_any_shard_count() {
    let dir = scratch("hybrid");
    let spec = write_spec(&dir, "hybrid.toml", HYBRID_SPEC);
    let mut digests = BTreeMap::new();
    for (name, extra) in [
        ("one", &["--shards", "1"][..]),
        ("two", &["--shards", "2"][..]),
        ("four", &["--shards", "4"][..]),
        ("procs", &["--shards", "2", "--backend", "processes"][..]),
    ] {
        let out = dir.join(name);
        let mut args = vec!["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_ok(&args);
        digests.insert(name, summary(&out)["digest"].as_str().unwrap().to_string());
    }
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
