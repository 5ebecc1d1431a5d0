//! What a new, careless or hostile user meets: the bare command runs the default experiment; a
//! run's output folder is complete or absent (reruns, failures, a full disk, concurrent runs,
//! folders that are not runs); inputs too large for the machine and values out of range are
//! refused at once, at the key that is wrong; long runs keep bounded window statistics; each kind
//! of failure has its exit code.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `thermocline args…` in `cwd` with a deadline.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(exe())
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thermocline");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(300), "thermocline {args:?} hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn digest(dir: &Path) -> String {
    summary(dir)["digest"].as_str().unwrap().to_string()
}

/// A PHOLD run of a few seconds of wall time (long enough to overlap a second run).
const SLOW_PHOLD: &str = "[run]\nduration = \"3 s\"\n[phold]\nlps = 20000\npopulation = 4\n";

#[test]
fn the_bare_command_runs_the_default_experiment() {
    let dir = scratch("bare");
    let o = run_in(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("default-gossip") && text.contains("reliability"), "{text}");
    let s = summary(&dir.join("out"));
    assert_eq!(s["digest"].as_str().unwrap().len(), 64);
    assert_eq!(s["name"], "default-gossip");
    let help = run_in(&dir, &["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("run") && help.status.success());
}

#[test]
fn a_rerun_replaces_the_previous_run_whole() {
    let dir = scratch("rerun");
    let spec = write_spec(&dir, "p.toml", SMALL_PHOLD);
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    let first = digest(&out);
    std::fs::write(out.join("left-over.txt"), "from an earlier run").unwrap();
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    assert_eq!(digest(&out), first);
    assert!(!out.join("left-over.txt").exists(), "the folder holds only the new run");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("partial") || n.contains("failed")), "{names:?}");
}

#[test]
fn a_rerun_of_a_direct_program_sees_a_fresh_working_directory() {
    let dir = scratch("rerun-direct");
    let text = "[run]\nduration = \"2 s\"\n[network]\ntopology = \"single-switch\"\n\
                [[hosts]]\nname = \"a\"\nkind = \"direct\"\ncount = 1\n\
                [[processes]]\nhost = \"a\"\npath = \"/bin/sh\"\n\
                args = [\"-c\", \"echo run >> log; wc -l < log\"]\n";
    let spec = write_spec(&dir, "d.toml", text);
    let out = dir.join("out");
    let mut digests = Vec::new();
    for _ in 0..3 {
        run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
        assert_eq!(read(out.join("hosts/a/sh.0.stdout")).trim(), "1", "the log starts empty on every run");
        digests.push(digest(&out));
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

#[test]
fn a_failed_rerun_leaves_the_previous_results_and_no_summary_of_its_own() {
    let dir = scratch("failed-rerun");
    let out = dir.join("out");
    let good = write_spec(&dir, "good.toml", SMALL_PHOLD);
    run_ok(&["run", good.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    let before = read(out.join("summary.json"));
    let bad = format!("{SMALL_PHOLD}\n[phold.fault]\nlp = 10\nat = \"50 ms\"\nmode = \"error\"\n");
    let bad = write_spec(&dir, "bad.toml", &bad);
    let o = run_in(&dir, &["run", bad.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("injected fault"), "{}", stderr(&o));
    assert_eq!(read(out.join("summary.json")), before, "the previous run is untouched");
    assert!(!dir.join("out.failed/summary.json").exists());
    assert!(!dir.join(".out.partial").exists());
}

#[test]
fn a_full_disk_leaves_no_summary() {
    let dir = scratch("full-disk");
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let spec = write_spec(&dir, "p.toml", SMALL_PHOLD);
    // A private mount namespace with a 48-KiB tmpfs: room for the staging folder, not the tables.
    let script = format!(
        "mount -t tmpfs -o size=48k tmpfs {d} && {exe} run {spec} -q --out {d}/out; code=$?; \
         ls -a {d}; ls -a {d}/out.failed 2>/dev/null; exit $code",
        d = disk.display(),
        exe = exe(),
        spec = spec.display()
    );
    let o = Command::new("unshare").args(["-m", "sh", "-c", &script]).output().expect("run unshare");
    let listing = String::from_utf8_lossy(&o.stdout);
    if stderr(&o).contains("unshare failed") || stderr(&o).contains("mount:") {
        panic!("this test needs mount namespaces and tmpfs (run as root): {}", stderr(&o));
    }
    assert_eq!(o.status.code(), Some(3), "{}\n{listing}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("No space left on device") && err.contains(".arrow"), "{err}");
    assert_eq!(err.matches("No space left").count(), 1, "the cause is said once: {err}");
    assert!(!listing.lines().any(|l| l == "out"), "no output folder: {listing}");
    assert!(!listing.contains("summary.json"), "no summary anywhere: {listing}");
}

#[test]
fn concurrent_runs_into_one_folder_are_refused() {
    let dir = scratch("concurrent");
    let spec = write_spec(&dir, "slow.toml", SLOW_PHOLD);
    let out = dir.join("out");
    let args = ["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
    let mut first = Command::new(exe()).args(args).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while !dir.join(".out.partial").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the first run never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = run_in(&dir, &args);
    let first_done = first.try_wait().unwrap();
    assert!(first_done.is_none(), "the first run must still be running for this test to mean anything");
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(stderr(&second).contains("being written by another thermocline run"), "{}", stderr(&second));
    assert!(first.wait().unwrap().success());
    assert_eq!(summary(&out)["sim_time_ns"], 3_000_000_000u64);
}

#[test]
fn folders_that_are_not_runs_are_refused_before_simulating() {
    let dir = scratch("foreign");
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "precious").unwrap();
    let spec = write_spec(&dir, "slow.toml", SLOW_PHOLD);
    let o = run_in(&dir, &["run", spec.to_str().unwrap(), "-q", "--out", mine.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("not a Thermocline run") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(read(mine.join("notes.txt")), "precious");
    // The spec's own folder is never replaced, even with --force.
    let o = run_in(&dir, &["run", spec.to_str().unwrap(), "-q", "--force", "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("spec file"), "{}", stderr(&o));
    assert!(spec.exists());
    // An output path that cannot be made is refused before the simulation starts.
    let blocked = dir.join("notes-file");
    std::fs::write(&blocked, "").unwrap();
    let o = run_in(&dir, &["run", spec.to_str().unwrap(), "-q", "--out", blocked.join("out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("notes-file"), "{}", stderr(&o));
    let spec_small = write_spec(&dir, "small.toml", SMALL_PHOLD);
    let o = run_in(&dir, &["run", spec_small.to_str().unwrap(), "-q", "--force", "--out", mine.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!mine.join("notes.txt").exists() && mine.join("summary.json").exists());
}

/// Run `thermocline args…` and return its output and peak resident memory in bytes. The child is
/// reaped by `wait4`, which also reports its own peak RSS (not that of other tests' children).
#[allow(clippy::zombie_processes)]
fn run_measured(cwd: &Path, args: &[&str]) -> (Output, u64) {
    let child =
        Command::new(exe()).args(args).current_dir(cwd).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it and the status.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.unwrap(), &mut stderr).unwrap();
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(code << 8),
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    };
    (output, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn inputs_too_large_for_the_machine_are_refused_before_allocating() {
    let dir = scratch("huge");
    let cases = [
        ("lps.toml", "[phold]\nlps = 4000000000\n", vec![], "needs about"),
        ("idle.toml", "[idle]\nperiod = \"0 s\"\n", vec![], "idle.period must be positive"),
        ("shards.toml", "[phold]\n", vec!["--shards", "1000000"], "at most 4096 shards"),
        ("shards2.toml", "[phold]\n", vec!["--shards", "4294967295"], "at most 4096 shards"),
    ];
    for (name, text, extra, expected) in cases {
        let spec = write_spec(&dir, name, text);
        let mut args = vec!["run", spec.to_str().unwrap(), "-q"];
        args.extend(extra);
        let (o, peak) = run_measured(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{name}: {}", stderr(&o));
        assert!(peak < 256 << 20, "{name}: refused only after using {peak} bytes");
        assert!(!dir.join("out").exists(), "{name}: nothing written");
    }
}

#[test]
fn value_errors_name_the_file_line_and_key() {
    let dir = scratch("values");
    let cases = [
        ("lps.toml", "[run]\nseed = 3\n[phold]\nlps = 0\n", "lps.toml:4:1: ", "phold.lps must be at least 1"),
        ("shards.toml", "[run]\nshards = 0\n[phold]\n", "shards.toml:2:1: ", "run.shards = 0"),
        ("neg.toml", "[run]\nduration = \"-1 s\"\n[phold]\n", "neg.toml:2:12: ", "is negative"),
        ("exp.toml", "[run]\nduration = \"1e30 s\"\n[phold]\n", "exp.toml:2:12: ", "uses an exponent"),
        (
            "group.toml",
            "[[hosts]]\nname = \"a\"\nkind = \"direct\"\ncount = 1\n[[processes]]\nhost = \"b\"\npath = \"true\"\n",
            "group.toml:6:1: ",
            "names host group \"b\", which does not exist",
        ),
        (
            "exe.toml",
            "[[hosts]]\nname = \"a\"\nkind = \"direct\"\ncount = 1\n[[processes]]\nhost = \"a\"\n\
             path = \"no-such-program\"\n",
            "exe.toml:7:1: ",
            "no such executable",
        ),
        (
            "dup.toml",
            "[[hosts]]\nname = \"a\"\ncount = 1\nlocation = \"DE\"\n[[hosts]]\nname = \"a\"\ncount = 1\n\
             location = \"DE\"\n[gossip]\n",
            "dup.toml:2:1: ",
            "two groups have this name",
        ),
        (
            "bw.toml",
            "[[hosts]]\nname = \"a\"\ncount = 4\nlocation = \"DE\"\n\
             bandwidth = { up = \"0 Mbit\", down = \"1 Mbit\" }\n[gossip]\n",
            "bw.toml:2:1: ",
            "must be positive",
        ),
        (
            "loc.toml",
            "[[hosts]]\nname = \"a\"\ncount = 4\nlocation = \"XX\"\n[gossip]\n",
            "loc.toml:2:1: ",
            "unknown location \"XX\"",
        ),
    ];
    for (name, text, place, expected) in cases {
        let spec = write_spec(&dir, name, text);
        let o = run_in(&dir, &["run", spec.to_str().unwrap(), "-q"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(place) && err.contains(expected), "{name}: {err}");
        assert!(!err.contains("shard 0 failed") && !err.contains("Some("), "{name}: {err}");
        let prefixes = err.lines().next().unwrap().split(": ").collect::<Vec<_>>();
        assert!(prefixes.windows(2).all(|w| w[0] != w[1]), "{name}: doubled prefix: {err}");
    }
    let o = run_in(&dir, &["run", "--shards", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--shards = 0"), "{}", stderr(&o));
    let o = run_in(&dir, &["run", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn long_runs_keep_bounded_window_statistics() {
    let dir = scratch("long");
    // 400,000 windows of 1 µs: past the 131,072 rows a shard keeps.
    let spec = write_spec(&dir, "idle.toml", "[run]\nduration = \"400 ms\"\n[idle]\nperiod = \"1 us\"\n");
    let out = dir.join("out");
    run_ok(&["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()]);
    let (_, batches) = thermocline_models::metrics::read_ipc_file(&out.join("bus_windows.arrow")).unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(rows <= 131_072, "{rows} rows");
    let windows: u64 = batches
        .iter()
        .map(|b| {
            let c = b.column_by_name("windows").unwrap();
            let c = c.as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap();
            c.values().iter().sum::<u64>()
        })
        .sum();
    assert_eq!(windows, 400_000);
    assert_eq!(summary(&out)["windows"], 400_000);
}
