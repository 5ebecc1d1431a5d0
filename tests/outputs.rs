//! What a run writes: summary.json fields, Arrow files that read back and agree with the
//! summary, Parquet files equal to the Arrow ones, and the benchmarks' JSON.

mod common;
use arrow_array::{Array, UInt32Array, UInt64Array};
use arrow_array::{StringArray, TimestampMillisecondArray};
use common::*;
use std::path::{Path, PathBuf};
use thermocline_models::metrics::{read_ipc_file, read_table, read_table_file};

fn column_u64(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.column_by_name(name).unwrap().as_any().downcast_ref::<UInt64Array>().unwrap().values().to_vec())
        .collect()
}

#[test]
fn summary_and_arrow_tables_agree() {
    let dir = scratch("outputs");
    let spec = write_spec(&dir, "small.toml", SMALL_PHOLD);
    let out = dir.join("out");
    let o = run_ok(&[
        "run",
        spec.to_str().unwrap(),
        "--shards",
        "2",
        "--backend",
        "processes",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("digest") && stdout.contains("barrier idle"), "human summary missing:\n{stdout}");

    let s = summary(&out);
    for key in [
        "digest",
        "sim_time_ns",
        "wall_s",
        "events",
        "shards",
        "backend",
        "windows",
        "barrier_idle_fraction",
        "cut_events",
    ] {
        assert!(!s[key].is_null(), "summary.json lacks {key}");
    }
    assert_eq!(s["sim_time_ns"], 200_000_000u64);
    assert_eq!(s["runahead_ns"], 1_000_000u64);
    let events = s["events"].as_u64().unwrap();
    let windows = s["windows"].as_u64().unwrap();

    // Per-window bus statistics: one row per shard and window, events adding up to the summary.
    let (_, batches) = read_ipc_file(&out.join("bus_windows.arrow")).unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, 2 * windows);
    assert_eq!(column_u64(&batches, "events").iter().sum::<u64>(), events);
    let sent: u64 = column_u64(&batches, "sent_events").iter().sum();
    let recv: u64 = column_u64(&batches, "recv_events").iter().sum();
    assert_eq!(sent, recv);
    let cut: u64 = s["cut_events"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(cut, sent);
    assert!(sent > 0);
    let starts = column_u64(&batches, "start_ns");
    let ends = column_u64(&batches, "end_ns");
    assert!(starts.iter().zip(&ends).all(|(s, e)| e > s && e - s <= 1_000_000), "windows last at most the runahead");

    // Shard-pair traffic per window.
    let (_, pairs) = read_ipc_file(&out.join("bus_pairs.arrow")).unwrap();
    assert_eq!(column_u64(&pairs, "sent_events").iter().sum::<u64>(), sent);

    // The engine's table: every LP once, events adding up.
    let (_, lps) = read_ipc_file(&out.join("phold_lps.arrow")).unwrap();
    let ids: Vec<u32> = lps
        .iter()
        .flat_map(|b| b.column_by_name("lp").unwrap().as_any().downcast_ref::<UInt32Array>().unwrap().values().to_vec())
        .collect();
    assert_eq!(ids, (0..2000).collect::<Vec<u32>>());
    assert_eq!(column_u64(&lps, "events").iter().sum::<u64>(), events);
    assert!(out.join("spec.toml").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bench_phold_json_reports_the_figures() {
    let o = run_ok(&[
        "bench",
        "phold",
        "--lps",
        "4000",
        "--shards",
        "1,2",
        "--backend",
        "threads,processes",
        "--duration",
        "50 ms",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["digests_equal"], true);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        for key in ["events_per_s", "windows_per_s", "barrier_idle_fraction", "us_per_window"] {
            assert!(r[key].as_f64().is_some(), "{key} missing in {r}");
        }
        assert_eq!(r["events"], runs[0]["events"]);
    }
    assert!(runs[1]["cross_shard_share"].as_f64().unwrap() > 0.05);
    assert_eq!(v["speedups"].as_array().unwrap().len(), 2);
}

#[test]
fn bench_window_json_reports_overhead_per_backend() {
    let o = run_ok(&["bench", "window", "--shards", "2", "--windows", "500", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["windows"], 500);
        assert!(r["us_per_window"].as_f64().unwrap() > 0.0);
    }
}

/// A small gossip run with a calendar start date; `FORMAT` is replaced by the output format.
const GOSSIP_FORMAT: &str = r#"
[run]
name = "formats"
seed = 5
duration = "30 s"
start_date = "2026-01-01T00:00:00Z"

[[hosts]]
name = "tail"
count = 300
countries = { DE = 0.5, other = 0.5 }
bandwidth = { up = "50 Mbit", down = "200 Mbit" }

[gossip]
profile = "ethereum"

[traffic]
start = "10 s"
slot = "6 s"
beacon_block = { size = "50 KiB" }

[output]
format = "FORMAT"
"#;

/// Run `GOSSIP_FORMAT` in `format` on `shards` shards into `dir/name`.
fn run_format(dir: &Path, name: &str, format: &str, shards: &str) -> PathBuf {
    let spec = write_spec(dir, &format!("{name}.toml"), &GOSSIP_FORMAT.replace("FORMAT", format));
    let out = dir.join(name);
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--shards", shards, "--out", out.to_str().unwrap()]);
    out
}

/// The `files` list of a run's summary.
fn files(out: &Path) -> Vec<String> {
    summary(out)["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
}

#[test]
fn parquet_tables_equal_the_arrow_ones_and_the_format_leaves_the_digest_alone() {
    let dir = scratch("formats");
    let both = run_format(&dir, "both", "both", "2");
    let listed = files(&both);
    let tables: Vec<&str> = listed.iter().filter_map(|f| f.strip_suffix(".arrow")).collect();
    for t in ["bus_windows", "bus_pairs", "gossip_arrivals", "gossip_messages", "gossip_nodes", "gossip_mesh_degree"] {
        assert!(tables.contains(&t), "{t} missing from {listed:?}");
    }
    for t in &tables {
        assert!(listed.contains(&format!("{t}.parquet")), "{t}.parquet missing from {listed:?}");
        let arrow = read_table_file(&both.join(format!("{t}.arrow"))).unwrap();
        let parquet = read_table_file(&both.join(format!("{t}.parquet"))).unwrap();
        assert_eq!(parquet.schema(), arrow.schema(), "{t}");
        assert_eq!(parquet, arrow, "{t}");
        assert!(arrow.num_rows() > 0, "{t} is empty");
    }

    // Parquet alone: no Arrow file anywhere, the same digest as an Arrow run, the same tables.
    let parquet = run_format(&dir, "parquet", "parquet", "1");
    let arrow = run_format(&dir, "arrow", "arrow", "1");
    let written: Vec<String> =
        std::fs::read_dir(&parquet).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!written.iter().any(|f| f.ends_with(".arrow")), "{written:?}");
    assert!(files(&arrow).iter().all(|f| !f.ends_with(".parquet")));
    assert_eq!(summary(&parquet)["digest"], summary(&both)["digest"]);
    assert_eq!(summary(&arrow)["digest"], summary(&both)["digest"]);
    for t in ["gossip_arrivals", "gossip_messages", "gossip_nodes"] {
        assert_eq!(read_table(&parquet, t).unwrap(), read_table(&arrow, t).unwrap(), "{t}");
    }

    // Xatu's columns: the slot's start as a UTC date, the arrival's own date, the receiver's name.
    let a = read_table(&parquet, "gossip_arrivals").unwrap();
    let dates = |name: &str| -> Vec<i64> {
        let c = a.column_by_name(name).unwrap().as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        assert_eq!(c.timezone(), Some("UTC"), "{name}");
        c.values().to_vec()
    };
    let (slot_start, event) = (dates("slot_start_date_time"), dates("event_date_time"));
    let (slots, diffs) = (u64s(&a, "slot"), u64s(&a, "propagation_slot_start_diff"));
    assert!(!slots.is_empty());
    for k in 0..slots.len() {
        // 2026-01-01T00:00:00Z, then traffic.start 10 s and 6 s slots.
        assert_eq!(slot_start[k], 1_767_225_600_000 + 10_000 + slots[k] as i64 * 6_000);
        assert_eq!((event[k] - slot_start[k]) as u64, diffs[k]);
    }
    let names = a.column_by_name("meta_client_name").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    let clients =
        a.column_by_name("meta_client_implementation").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    assert!((0..a.num_rows()).all(|k| names.value(k).starts_with("tail") && clients.value(k) == "ethereum"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_arrow_key_still_turns_table_files_off_and_conflicts_are_located() {
    let dir = scratch("no-tables");
    let text = GOSSIP_FORMAT.replace("format = \"FORMAT\"", "arrow = false");
    let spec = write_spec(&dir, "off.toml", &text);
    let out = dir.join("off");
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    assert_eq!(files(&out), ["spec.toml", "summary.json"]);
    assert!(summary(&out)["gossip"]["reliability"].as_f64().unwrap() > 0.99);

    let text = GOSSIP_FORMAT.replace("format = \"FORMAT\"", "arrow = false\nformat = \"both\"");
    let spec = write_spec(&dir, "conflict.toml", &text);
    let o = run_with_deadline(
        &["run", spec.to_str().unwrap(), "-q", "--out", dir.join("c").to_str().unwrap()],
        std::time::Duration::from_secs(60),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let line = text.lines().position(|l| l == "arrow = false").unwrap() + 1;
    assert!(err.contains(&format!("conflict.toml:{line}:1: output.arrow = false")), "{err}");
    assert!(!dir.join("c").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
