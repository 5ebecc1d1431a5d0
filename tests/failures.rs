//! A shard that errors, panics, dies or stalls ends the whole run promptly, with a message naming
//! the shard and the cause, and leaves no summary behind that could pass for a complete run.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

#[test]
fn bad_ethereum_domains_are_refused_at_their_key() {
    let dir = scratch("bad-eth2");
    let good = "[run]\nseed = 1\nduration = \"1 s\"\n\n[[hosts]]\nname = \"tail\"\ncount = 20\n\n[gossip]\n\n\
        [gossip.eth2]\ngenesis_validators_root = \"0x270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69\"\n\
        fork_version = \"0x00000001\"\ngenesis_time = 946684820\n\n[network]\ntopology = \"single-switch\"\n";
    let cases = [
        ("genesis_time = 946684820", "genesis_time = 946684000", 14, "is before the run's start_date"),
        (
            "fork_version = \"0x00000001\"",
            "fork_version = \"0x01\"",
            13,
            "gossip.eth2.fork_version must be 4 bytes of hex",
        ),
        ("genesis_time", "fork = \"deneb\"\ngenesis_time", 14, "gossip.eth2.fork must be"),
    ];
    for (from, to, line, message) in cases {
        let spec = write_spec(&dir, "eth2.toml", &good.replace(from, to));
        let o = run_with_deadline(&["run", spec.to_str().unwrap(), "--quiet"], Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{to}: {stderr}");
        let location = format!("{}:{line}:", spec.display());
        assert!(
            stderr.contains(&location) && stderr.contains(message),
            "{to}: expected {location} {message} in:\n{stderr}"
        );
    }
    let spec = write_spec(&dir, "eth2.toml", good);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "--quiet", "--out", out.to_str().unwrap()]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// An idle run that would take hours of wall time: 2 shard processes, windows of 1 ms until
/// 100,000 simulated seconds, and a stall limit of 2 s.
const ENDLESS_IDLE: &str =
    "[run]\nname = \"endless\"\nduration = \"100000 s\"\nstall_timeout = \"2 s\"\n\n[idle]\nperiod = \"1 ms\"\n";

/// The pids of the `thermocline shard` processes whose parent is `hub`, lowest (first launched,
/// shard 0) first.
fn shard_processes(hub: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // After the parenthesised command name come the state and then the parent's pid.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(hub) && cmdline.split(|&b| b == 0).nth(1) == Some(b"shard") {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Send `signal` to `pid`.
fn signal(pid: u32, signal: i32) {
    // SAFETY: kill touches no memory of ours.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Wait up to `limit` for `hub` to exit; on a hang, kill it and the `shards` and fail the test.
fn wait_or_kill(hub: Child, shards: &[u32], limit: Duration) -> std::process::Output {
    let mut hub = hub;
    let started = Instant::now();
    while hub.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = hub.kill();
            shards.iter().for_each(|&pid| signal(pid, libc::SIGKILL));
            let out = hub.wait_with_output().unwrap();
            panic!("the run did not end within {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    hub.wait_with_output().unwrap()
}

#[test]
fn a_stopped_shard_process_ends_the_run_within_the_stall_limit() {
    let dir = scratch("stall-proc");
    let spec = write_spec(&dir, "endless.toml", ENDLESS_IDLE);
    let out = dir.join("out");
    let args = ["run", spec.to_str().unwrap(), "--quiet", "--shards", "2", "--backend", "processes"];
    let hub = Command::new(exe())
        .args(args)
        .args(["--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let shards = loop {
        let pids = shard_processes(hub.id());
        if pids.len() == 2 {
            break pids;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the shard processes did not start");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(500)); // let windows run
    signal(shards[1], libc::SIGSTOP);
    let stopped = Instant::now();
    let o = wait_or_kill(hub, &shards, Duration::from_secs(30));
    let took = stopped.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the run should fail:\n{stderr}");
    assert!(stderr.contains("shard 1 failed: stalled: no frame or heartbeat for 2 s"), "{stderr}");
    assert!(stderr.contains("window "), "the message should say where the shard was:\n{stderr}");
    // Heartbeats come every 0.5 s, so the last one was at most that long before the stop.
    assert!(took >= Duration::from_millis(1400), "ended {took:?} after the stop, before the limit:\n{stderr}");
    assert!(!out.join("summary.json").exists(), "a failed run must not write summary.json");
    let deadline = Instant::now() + Duration::from_secs(5);
    while shards.iter().any(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()) {
        assert!(Instant::now() < deadline, "shard processes {shards:?} outlived the run");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_zero_stall_timeout_is_refused() {
    let dir = scratch("stall-zero");
    let spec = write_spec(&dir, "s.toml", &ENDLESS_IDLE.replace("\"2 s\"", "\"0 s\""));
    let o = run_with_deadline(&["run", spec.to_str().unwrap(), "--quiet"], Duration::from_secs(30));
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("run.stall_timeout must be longer than 0 s"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Spins for about 3.4 s of wall time on the project's machine without a system call, so the
/// window it runs in lasts that long.
const BUSY_PROGRAM: &str = r#"
#include <stdio.h>
int main(void) {
    volatile unsigned long n = 0;
    for (unsigned long i = 0; i < 10000000000UL; i++) n++;
    printf("%lu\n", n);
    return 0;
}
"#;

#[test]
fn a_shard_process_busy_in_a_long_window_is_not_taken_for_stalled() {
    let dir = scratch("stall-busy");
    let busy = compile(&dir, "busy", BUSY_PROGRAM);
    let spec = format!(
        "[run]\nduration = \"2 s\"\nstall_timeout = \"500 ms\"\n\n[network]\ntopology = \"single-switch\"\n\
         latency = \"10 ms\"\n\n[[hosts]]\nname = \"busy\"\nkind = \"direct\"\ncount = 1\n\n[[hosts]]\n\
         name = \"calm\"\nkind = \"direct\"\ncount = 1\n\n[[processes]]\nhost = \"busy\"\npath = \"{}\"\n\
         start = \"1 s\"\n\n[[processes]]\nhost = \"calm\"\npath = \"sh\"\nargs = [\"-c\", \"true\"]\n\
         start = \"1 s\"\n",
        busy.display()
    );
    let spec = write_spec(&dir, "busy.toml", &spec);
    let out = dir.join("out");
    let started = Instant::now();
    let args = ["run", spec.to_str().unwrap(), "-q", "--shards", "2", "--backend", "processes"];
    run_ok(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "the busy window took only {took:?}: the test proves nothing");
    assert_eq!(read(out.join("hosts/busy/busy.0.stdout")), "10000000000\n");
    std::fs::remove_dir_all(dir).unwrap();
}
