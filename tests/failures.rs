//! A shard that errors, panics or dies ends the whole run promptly, with a message naming the
//! shard and the cause, and leaves no summary behind that could pass for a complete run.

mod common;
use common::*;
use std::time::Duration;

/// Run the small PHOLD spec with a fault at LP 1200 (group 2 of 4: shard 1 of 2, shard 2 of 4) and
/// return (exit success, stderr, whether a summary was written).
fn run_fault(name: &str, mode: &str, backend: &str, shards: u32) -> (bool, String, bool) {
    let dir = scratch(&format!("fault-{name}"));
    let spec = format!("{SMALL_PHOLD}\n[phold.fault]\nlp = 1200\nat = \"50 ms\"\nmode = \"{mode}\"\n");
    let spec = write_spec(&dir, "fault.toml", &spec);
    let out = dir.join("out");
    let shards = shards.to_string();
    let o = run_with_deadline(
        &[
            "run",
            spec.to_str().unwrap(),
            "--quiet",
            "--shards",
            &shards,
            "--backend",
            backend,
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let wrote_summary = out.join("summary.json").exists();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    std::fs::remove_dir_all(dir).unwrap();
    (o.status.success(), stderr, wrote_summary)
}

fn assert_failed(result: (bool, String, bool), expected: &[&str]) {
    let (ok, stderr, wrote_summary) = result;
    assert!(!ok, "the run should fail");
    assert!(!wrote_summary, "a failed run must not write summary.json");
    for e in expected {
        assert!(stderr.contains(e), "stderr should contain {e:?}:\n{stderr}");
    }
}

#[test]
fn engine_error_on_threads() {
    assert_failed(run_fault("err-threads", "error", "threads", 2), &["shard 1 failed", "injected fault at LP 1200"]);
}

#[test]
fn panic_on_threads() {
    assert_failed(
        run_fault("panic-threads", "panic", "threads", 4),
        &["shard 2", "panicked: injected panic at LP 1200"],
    );
}

#[test]
fn engine_error_in_a_shard_process() {
    assert_failed(run_fault("err-proc", "error", "processes", 2), &["shard 1 failed", "injected fault at LP 1200"]);
}

#[test]
fn panic_in_a_shard_process() {
    assert_failed(
        run_fault("panic-proc", "panic", "processes", 4),
        &["shard 2 failed", "panicked: injected panic at LP 1200"],
    );
}

#[test]
fn a_shard_process_that_exits_abruptly() {
    assert_failed(run_fault("exit-proc", "exit", "processes", 2), &["shard 1 failed", "exited with status 3"]);
}

#[test]
fn a_shard_process_killed_by_a_signal() {
    assert_failed(
        run_fault("abort-proc", "abort", "processes", 4),
        &["shard 2 failed", "killed by signal 6 (SIGABRT)"],
    );
}

#[test]
fn a_spec_the_run_cannot_use_is_refused_before_starting() {
    let dir = scratch("too-many-shards");
    let spec = write_spec(&dir, "s.toml", SMALL_PHOLD);
    let o = run_with_deadline(&["run", spec.to_str().unwrap(), "--quiet", "--shards", "8"], Duration::from_secs(30));
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("phold.groups >= 8"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_spec_errors_name_file_line_and_column() {
    let dir = scratch("bad-spec");
    let spec = write_spec(&dir, "bad.toml", "[run]\nseed = 1\nduration = 5\n\n[phold]\n");
    let o = run_with_deadline(&["run", spec.to_str().unwrap(), "--quiet"], Duration::from_secs(30));
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let location = format!("{}:3:12:", spec.display());
    assert!(stderr.contains(&location), "expected {location} in:\n{stderr}");
    assert!(stderr.contains("duration string with a unit"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
