//! The MPI backend under a real `mpirun` (OpenMPI): the same digest as the local backends on 2
//! and 4 ranks (PHOLD, hybrid, discv5 and found-peers gossip runs), failing ranks abort the job
//! promptly with a named cause, and the benchmarks run under MPI. Built only with the `mpi`
//! feature.
#![cfg(feature = "mpi")]

mod common;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `mpirun -n RANKS thermocline ARGS…` (as root too, oversubscribing the 2 cores), failing
/// the test if it hangs. `THERMOCLINE_MPIRUN` names the launcher (default `mpirun`; OpenMPI's
/// options are used).
fn mpirun(ranks: u32, args: &[&str]) -> Output {
    let launcher = std::env::var("THERMOCLINE_MPIRUN").unwrap_or_else(|_| "mpirun".to_string());
    let mut cmd = Command::new(launcher);
    cmd.args(["--oversubscribe", "-n", &ranks.to_string(), exe()])
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("mpirun (openmpi-bin) must be installed to test the mpi feature");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("mpirun {args:?} hung; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_hybrid_run_of_direct_hosts_and_surrogates_has_one_digest_under_mpi() {
    let dir = scratch("mpi-hybrid");
    let spec = write_spec(&dir, "hybrid.toml", HYBRID_SPEC);
    let spec = spec.to_str().unwrap();
    let local = dir.join("threads");
    run_ok(&["run", spec, "--quiet", "--out", local.to_str().unwrap()]);
    let out = dir.join("mpi");
    let o = mpirun(2, &["run", spec, "--quiet", "--backend", "mpi", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "mpirun -n 2 failed:\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&out)["digest"], summary(&local)["digest"]);
    assert_eq!(read(out.join("hosts/hot1/python3.0.stdout")).trim(), "sent 50");
}

/// Runs `spec` on 2 threads and under `mpirun -n 2` (into `dir/threads` and `dir/mpi`) and checks
/// both have one digest; returns the MPI run's folder.
fn same_digest_under_mpi(dir: &std::path::Path, spec: &std::path::Path) -> std::path::PathBuf {
    let spec = spec.to_str().unwrap();
    let local = dir.join("threads");
    run_ok(&["run", spec, "--quiet", "--shards", "2", "--out", local.to_str().unwrap()]);
    let out = dir.join("mpi");
    let o = mpirun(2, &["run", spec, "--quiet", "--backend", "mpi", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "mpirun -n 2 failed:\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&out)["digest"], summary(&local)["digest"]);
    out
}

/// 800 surrogate identities in Germany and the US on the country table for `duration`, with
/// `sections`.
fn mpi_tail(duration: &str, sections: &str) -> SpecBuilder {
    SpecBuilder::switch(5, duration, "10 ms")
        .network("topology = \"ripe-country\"")
        .surrogates("tail", 800, "countries = { DE = 0.5, US = 0.5 }\n")
        .sections(sections)
}

#[test]
fn a_discv5_run_has_one_digest_under_mpi() {
    let dir = scratch("mpi-discv5");
    let spec = mpi_tail("40 s", "[discv5]\njoin_over = \"10 s\"\nnat_share = 0.1\n").write(&dir, "discv5.toml");
    let out = same_digest_under_mpi(&dir, &spec);
    assert!(summary(&out)["discv5"]["random_lookups"]["lookups"].as_u64().unwrap() > 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gossip_identities_that_find_their_peers_by_discv5_have_one_digest_under_mpi() {
    let dir = scratch("mpi-found-peers");
    let sections =
        "[gossip]\ndiscovery = \"discv5\"\n\n[discv5]\njoin_over = \"10 s\"\n\n[traffic]\nstart = \"30 s\"\n";
    let spec = mpi_tail("50 s", sections).write(&dir, "found.toml");
    let out = same_digest_under_mpi(&dir, &spec);
    assert!(summary(&out)["discv5"]["peering"]["target_reached"].as_f64().unwrap() > 0.9);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mpi_digest_equals_threads_and_processes_on_2_and_4_ranks() {
    let dir = scratch("mpi-digest");
    let spec = write_spec(&dir, "small.toml", SMALL_PHOLD);
    let spec = spec.to_str().unwrap();
    let local = dir.join("threads");
    run_ok(&["run", spec, "--quiet", "--shards", "2", "--out", local.to_str().unwrap()]);
    let expected = summary(&local);
    let procs = dir.join("processes");
    run_ok(&["run", spec, "--quiet", "--shards", "4", "--backend", "processes", "--out", procs.to_str().unwrap()]);
    assert_eq!(summary(&procs)["digest"], expected["digest"]);
    for ranks in [2, 4] {
        let out = dir.join(format!("mpi-{ranks}"));
        let o = mpirun(ranks, &["run", spec, "--quiet", "--backend", "mpi", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "mpirun -n {ranks} failed:\n{}", String::from_utf8_lossy(&o.stderr));
        let s = summary(&out);
        assert_eq!(s["backend"], "mpi");
        assert_eq!(s["shards"], ranks);
        assert_eq!(s["digest"], expected["digest"], "MPI with {ranks} ranks");
        assert_eq!(s["events"], expected["events"]);
        // Rank 0 gathered every rank's window statistics into the Arrow file.
        let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join("bus_windows.arrow")).unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, ranks as u64 * s["windows"].as_u64().unwrap());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn mpi_fault(ranks: u32, mode: &str) -> (Output, bool) {
    let dir = scratch(&format!("mpi-fault-{mode}-{ranks}"));
    let spec = format!("{SMALL_PHOLD}\n[phold.fault]\nlp = 1200\nat = \"50 ms\"\nmode = \"{mode}\"\n");
    let spec = write_spec(&dir, "fault.toml", &spec);
    let out = dir.join("out");
    let o =
        mpirun(ranks, &["run", spec.to_str().unwrap(), "--quiet", "--backend", "mpi", "--out", out.to_str().unwrap()]);
    let wrote = out.join("summary.json").exists();
    std::fs::remove_dir_all(dir).unwrap();
    (o, wrote)
}

#[test]
fn a_rank_with_an_engine_error_aborts_the_job_naming_itself() {
    let (o, wrote) = mpi_fault(2, "error");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!wrote, "a failed run must not write summary.json");
    assert!(stderr.contains("rank 1 failed: engine error: injected fault at LP 1200"), "{stderr}");
}

#[test]
fn a_panicking_rank_aborts_the_job_naming_itself() {
    let (o, wrote) = mpi_fault(4, "panic");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!wrote);
    assert!(stderr.contains("rank 2 failed: panicked: injected panic at LP 1200"), "{stderr}");
}

#[test]
fn a_rank_that_dies_ends_the_job() {
    let (o, wrote) = mpi_fault(2, "abort");
    assert!(!o.status.success());
    assert!(!wrote);
}

#[test]
fn shard_count_must_match_the_ranks() {
    let o = mpirun(2, &["run", "--quiet", "--backend", "mpi", "--shards", "3", "--out", "/dev/null/never"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shards 3, but mpirun started 2 ranks"));
}

#[test]
fn benchmarks_run_under_mpi() {
    let o = mpirun(2, &["bench", "phold", "--lps", "4000", "--duration", "50 ms", "--backend", "mpi", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("rank 0 prints one JSON object");
    assert_eq!(v["runs"][0]["backend"], "mpi");
    assert_eq!(v["runs"][0]["shards"], 2);
    assert!(v["runs"][0]["events_per_s"].as_f64().unwrap() > 0.0);
    // The same model on threads gives the same digest.
    let local = run_ok(&["bench", "phold", "--lps", "4000", "--duration", "50 ms", "--shards", "2", "--json"]);
    let l: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(l["runs"][0]["digest"], v["runs"][0]["digest"]);

    let o = mpirun(2, &["bench", "window", "--windows", "300", "--payload-bytes", "64", "--backend", "mpi", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["windows"], 300);
    assert!(run["raw_mpi_us_per_round"].as_f64().unwrap() > 0.0);
    assert!(run["protocol_vs_raw_mpi"].as_f64().unwrap() > 0.0);
    // Each window moved one 64-byte event each way.
    assert_eq!(run["cross_shard_events"], 2 * 300);
}

#[test]
fn the_gossip_default_experiment_has_the_same_digest_under_mpi() {
    let dir = scratch("mpi-gossip");
    let local = dir.join("threads");
    run_ok(&["run", "--quiet", "--shards", "2", "--out", local.to_str().unwrap()]);
    let out = dir.join("mpi");
    let o = mpirun(2, &["run", "--quiet", "--backend", "mpi", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&out)["digest"], summary(&local)["digest"]);
    assert_eq!(summary(&out)["gossip"], summary(&local)["gossip"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn real_libp2p_clients_among_surrogates_have_one_digest_under_mpi() {
    let node = gossip_node();
    let dir = scratch("mpi-clients");
    let spec = write_spec(&dir, "clients.toml", &real_clients_spec(&node, "two real clients under MPI"));
    let spec = spec.to_str().unwrap();
    let local = dir.join("threads");
    run_ok(&["run", spec, "--quiet", "--shards", "2", "--out", local.to_str().unwrap()]);
    let out = dir.join("mpi");
    let o = mpirun(2, &["run", spec, "--quiet", "--backend", "mpi", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "mpirun -n 2 failed:\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&out)["digest"], summary(&local)["digest"]);
    for (me, other) in [(0, 1), (1, 0)] {
        let log = read(out.join(format!("hosts/hot{me}/gossip-node.0.stdout")));
        assert!(log.contains(&format!("recv slot={other} publisher={other} via=-1 ")), "hot{me}:\n{log}");
        assert!(log.contains(&format!("done node={me} received=1 expected=1")), "hot{me}:\n{log}");
    }
}
