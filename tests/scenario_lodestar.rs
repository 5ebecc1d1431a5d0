//! End-to-end, the runbook operation: `experiments/specs/runbook-lodestar.toml` — three real
//! Lodestar 1.5.1 nodes (two with the validators, one follower); the timeline stops the follower
//! gracefully and waits for its exit, starts it again and waits until it is synced, then wipes
//! its data directory and restarts it, and it resyncs from its peers. The follower's steps all
//! end in time, its restart resumes from its database and its wipe starts afresh, the validators
//! keep a block at every slot and finalize meanwhile, and one and two shards give the same events
//! and digest.

mod common;

use arrow_array::{Array, RecordBatch, StringArray, UInt64Array};
use common::*;
use std::path::Path;

fn spec(dir: &Path) -> std::path::PathBuf {
    let launcher = npm::lodestar_launcher();
    let text = read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/specs/runbook-lodestar.toml"));
    write_spec(
        dir,
        "runbook.toml",
        &text.replace("../../target/lodestar-1.5.1/lodestar", &launcher.display().to_string()),
    )
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name).unwrap().as_any().downcast_ref::<T>().unwrap()
}

/// Every row of `table` as (time in ms, host, the string columns named).
fn rows(out: &Path, table: &str, columns: &[&str]) -> Vec<(u64, String, Vec<String>)> {
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join(table)).unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let time = column::<UInt64Array>(b, "time_ns");
        let host = column::<StringArray>(b, "host_name");
        for i in 0..b.num_rows() {
            let cols = columns.iter().map(|c| column::<StringArray>(b, c).value(i).to_string()).collect();
            rows.push((time.value(i) / 1_000_000, host.value(i).to_string(), cols));
        }
    }
    rows
}

/// The slot, head slot and peer count of a Lodestar `Synced - slot: S - head: H … - peers: P`
/// line.
fn synced(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.split_once("Synced - slot: ")?.1;
    let (slot, rest) = rest.split_once(" - head: ")?;
    let head = rest.split_whitespace().next()?;
    let peers = rest.rsplit_once("peers: ")?.1.trim();
    Some((slot.parse().ok()?, head.parse().ok()?, peers.parse().ok()?))
}

#[test]
fn a_follower_is_stopped_restarted_and_wiped_while_the_validators_keep_their_chain() {
    let dir = scratch("scenario-lodestar");
    let spec = spec(&dir);
    let digests = digests_by_run(&dir, &spec, &[("one", &["--shards", "1"]), ("two", &["--shards", "2"])]);
    assert_eq!(digests["one"], digests["two"], "one digest on one and two shards");
    let events = rows(&dir.join("one"), "scenario_events.arrow", &["step", "event", "detail"]);
    assert_eq!(events, rows(&dir.join("two"), "scenario_events.arrow", &["step", "event", "detail"]));
    let at = |step: &str, event: &str| -> Vec<u64> {
        events.iter().filter(|(_, _, c)| c[0] == step && c[1] == event).map(|(t, _, _)| *t).collect()
    };
    // The graceful stop: SIGTERM, an exit with status 0 within the grace period, no kill.
    assert_eq!(at("stop", "signal"), [80_000]);
    let exited: Vec<&str> = events.iter().filter(|(_, _, c)| c[1] == "exited").map(|(_, _, c)| c[2].as_str()).collect();
    assert_eq!(exited, ["lodestar.0 exit 0", "lodestar.0 exit 0"], "both stops end in a clean exit");
    assert!(at("stop", "kill").is_empty() && at("wipe", "kill").is_empty());
    let stopped = at("stop", "done")[0];
    assert_eq!(at("rejoin", "begin"), [stopped + 20_000], "the start follows the exit by 20 s");
    let (rejoined, resynced) = (at("rejoin", "done"), at("wipe", "done"));
    assert!(rejoined.len() == 1 && resynced.len() == 1, "both waits for `Synced` end in time: {events:?}");
    assert!(at("rejoin", "timeout").is_empty() && at("wipe", "timeout").is_empty());

    let logs = rows(&dir.join("one"), "direct_logs.arrow", &["line"]);
    let follower: Vec<(u64, &str)> =
        logs.iter().filter(|(_, h, _)| h == "f").map(|(t, _, c)| (*t, c[0].as_str())).collect();
    let starts: Vec<(u64, &str)> =
        follower.iter().copied().filter(|(_, l)| l.contains("Initializing beacon")).collect();
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(starts[1].1.contains("valid db state"), "the restart resumes from its database: {}", starts[1].1);
    assert!(starts[2].1.contains("valid checkpoint state slot=0"), "the wipe starts afresh: {}", starts[2].1);
    for done in [rejoined[0], resynced[0]] {
        let line = follower.iter().find(|(t, _)| *t == done).map(|(_, l)| *l).unwrap_or_default();
        let (slot, head, peers) = synced(line).unwrap_or_else(|| panic!("a Synced line at {done} ms: {line}"));
        assert!(head == slot && peers >= 1, "synced to the head with peers: {line}");
    }
    // The validators: a block at every slot from 1 on, and finality, through all of it.
    for host in ["v0", "v1"] {
        let heads: Vec<(u64, u64, u64)> =
            logs.iter().filter(|(_, h, _)| h == host).filter_map(|(_, _, c)| synced(&c[0])).collect();
        let late: Vec<&(u64, u64, u64)> = heads.iter().filter(|(s, h, _)| *s >= 1 && h != s).collect();
        assert!(late.is_empty(), "{host}'s head trails its slot: {late:?}");
        assert!(heads.last().is_some_and(|(s, _, _)| *s >= 38), "{host} logged to the end: {heads:?}");
        let last = logs.iter().rev().find(|(_, h, c)| h == host && c[0].contains("finalized: ")).unwrap();
        let epoch: u64 = last.2[0]
            .split_once("finalized: ")
            .unwrap()
            .1
            .split(['-', ' '])
            .next()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(epoch >= 2, "{host} finalized epoch {epoch}");
    }
}
