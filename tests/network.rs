//! The network model through the CLI: `thermocline partition` on a spec with a Shadow GML graph
//! and host groups, partition files, bad specs, and `bench model`.

mod common;
use common::*;

const GML: &str = r#"graph [
  directed 0
  node [
    id 0
    host_bandwidth_down "100 Mbit"
    host_bandwidth_up "100 Mbit"
  ]
  node [
    id 1
    host_bandwidth_down "1 Gbit"
    host_bandwidth_up "1 Gbit"
  ]
  edge [
    source 0
    target 0
    latency "1 ms"
  ]
  edge [
    source 1
    target 1
    latency "1 ms"
  ]
  edge [
    source 0
    target 1
    latency "40 ms"
    packet_loss 0.01
  ]
]
"#;

const SPEC: &str = r#"
[network]
topology = "gml"
gml = "net.gml"

[[hosts]]
name = "east"
count = 600
location = "0"

[[hosts]]
name = "west"
count = 400
location = "1"
"#;

#[test]
fn partition_keeps_locations_together_and_reports_the_runahead() {
    let dir = scratch("partition");
    write_spec(&dir, "net.gml", GML);
    let spec = write_spec(&dir, "exp.toml", SPEC);
    let file = dir.join("p.csv");
    let o = run_ok(&["partition", spec.to_str().unwrap(), "--shards", "2", "--out", file.to_str().unwrap(), "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The two locations are 40 ms apart and each has a 1 ms self-link: the best cut puts each
    // location on its own shard, so the runahead is the 40 ms between them.
    assert_eq!(r["runahead_ns"], 40_000_000u64);
    assert_eq!(r["hosts"], serde_json::json!([600, 400]));
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(csv.contains("first_host,last_host,shard\n0,599,"), "{csv}");
    // Repeatable.
    let again = run_ok(&["partition", spec.to_str().unwrap(), "--shards", "2", "--json"]);
    assert_eq!(again.stdout, o.stdout);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_network_specs_are_refused_with_a_reason() {
    let dir = scratch("bad-network");
    write_spec(&dir, "net.gml", &GML.replace("target 1\n    latency \"40 ms\"", "target 7\n    latency \"40 ms\""));
    let spec = write_spec(&dir, "exp.toml", SPEC);
    let o =
        run_with_deadline(&["partition", spec.to_str().unwrap(), "--shards", "2"], std::time::Duration::from_secs(30));
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("net.gml:") && stderr.contains("edge target 7 is not a node id"), "{stderr}");

    let spec = write_spec(&dir, "exp2.toml", &SPEC.replace("location = \"1\"", "location = \"9\""));
    write_spec(&dir, "net.gml", GML);
    let o =
        run_with_deadline(&["partition", spec.to_str().unwrap(), "--shards", "2"], std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("hosts group \"west\": unknown location \"9\""), "{stderr}");

    let spec = write_spec(&dir, "exp3.toml", &SPEC.replace("count = 400", "count = \"many\""));
    let o =
        run_with_deadline(&["partition", spec.to_str().unwrap(), "--shards", "2"], std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("exp3.toml:13:9:"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_model_reports_time_and_memory() {
    let o = run_ok(&["bench", "model", "--hosts", "20000", "--shards", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["hosts"], 20_000);
    assert!(v["build_s"]["total"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["partition"]["hosts"].as_array().unwrap().iter().map(|h| h.as_u64().unwrap()).sum::<u64>(), 20_000);
    assert!(v["partition"]["runahead_ns"].as_u64().unwrap() > 0);
}
