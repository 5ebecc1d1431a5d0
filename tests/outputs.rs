//! What a run writes: summary.json fields, Arrow files that read back and agree with the
//! summary, and the benchmarks' JSON.

mod common;
use arrow_array::{Array, UInt32Array, UInt64Array};
use common::*;
use thermocline_models::metrics::read_ipc_file;

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
