//! Helpers for end-to-end tests: run the `thermocline` binary with a deadline, in a scratch
//! directory, and read what it wrote.

#![allow(dead_code)]

pub mod npm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_thermocline")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thermocline-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run `thermocline args…`, failing the test if it takes longer than `limit` (a hang).
pub fn run_with_deadline(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(exe())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thermocline");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "thermocline {args:?} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run and require success.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run_with_deadline(args, Duration::from_secs(300));
    assert!(out.status.success(), "thermocline {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `spec` once per `(name, extra arguments)`, each into `dir/name`, and returns each run's
/// digest by name: the determinism check over shard counts and backends.
pub fn digests_by_run(
    dir: &Path,
    spec: &Path,
    runs: &[(&'static str, &[&str])],
) -> std::collections::BTreeMap<&'static str, String> {
    let mut digests = std::collections::BTreeMap::new();
    for &(name, extra) in runs {
        let out = dir.join(name);
        let mut args = vec!["run", spec.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        run_ok(&args);
        digests.insert(name, summary(&out)["digest"].as_str().unwrap().to_string());
    }
    digests
}

/// The values of the `UInt64` column `name` of `batch`.
pub fn u64s(batch: &arrow_array::RecordBatch, name: &str) -> Vec<u64> {
    let c = batch.column_by_name(name).unwrap();
    c.as_any().downcast_ref::<arrow_array::UInt64Array>().unwrap().values().to_vec()
}

/// Write a spec file into `dir`.
pub fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The parsed `summary.json` of an output directory.
pub fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// A small PHOLD spec that still sends many events across shards.
pub const SMALL_PHOLD: &str = r#"
[run]
name = "small"
seed = 7
duration = "200 ms"

[phold]
lps = 2000
groups = 4
lookahead = "1 ms"
mean_delay = "2 ms"
remote_share = 0.3
population = 2
payload_bytes = 16
"#;

/// 300 surrogates in Germany and the US, two direct hosts in France; each direct host sends five
/// datagrams of 100 + k bytes to identity `tail{7k + index}` for k in 0..10, half a second apart.
pub const HYBRID_SPEC: &str = r#"
[run]
name = "hybrid"
duration = "30 s"

[network]
topology = "ripe-country"

[[hosts]]
name = "tail"
count = 300
countries = { DE = 0.5, US = 0.5 }

[[hosts]]
name = "hot"
kind = "direct"
count = 2
location = "FR"

[gossip]

[traffic]
start = "5 s"
slot = "12 s"
beacon_block = { size = "20 KiB", proposer_delay = "0 ms" }

[[processes]]
host = "hot"
path = "/usr/bin/python3"
args = ["-c", """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for k in range(10):
    for i in range(5):
        s.sendto(b'x' * (100 + k), ('tail%d' % (7 * k + {index}), 9000))
    time.sleep(0.5)
print('sent', 50)
"""]
"#;

/// Compile the C program `source` as `dir/name` with `cc -O1`.
pub fn compile(dir: &Path, name: &str, source: &str) -> PathBuf {
    compile_with(dir, name, source, &[])
}

/// [`compile`] with extra compiler flags (`-pthread`, `-static`, …).
pub fn compile_with(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let exe = dir.join(name);
    let out = Command::new("cc").arg("-O1").args(flags).arg("-o").arg(&exe).arg(&src).output().expect("run cc");
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// The text of a file the run wrote (panics naming the file if it is missing).
pub fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `path`, failing the test with the Debian package to install when it is missing.
pub fn need(path: &str, package: &str) -> String {
    assert!(Path::new(path).is_file(), "this test needs {path} (apt-get install {package})");
    path.to_string()
}

/// Build `gossip-node` in this test's profile and return its path, beside `thermocline`.
pub fn gossip_node() -> PathBuf {
    node_program("gossip-node")
}

/// Build the workspace's node program `package` (its binary has the package's name) in this
/// test's profile and return its path, beside `thermocline`.
pub fn node_program(package: &str) -> PathBuf {
    let bin_dir = Path::new(exe()).parent().expect("binary folder");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", package]);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("run cargo");
    assert!(out.status.success(), "building {package} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    bin_dir.join(package)
}

/// A spec with a direct host `t` running `path args…` from 1 s (and an idle host, so that the run
/// can be cut into two shards); `extra` is appended to the process entry.
pub fn program_spec(dir: &Path, path: &Path, args: &[&str], extra: &str) -> PathBuf {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    write_spec(
        dir,
        "spec.toml",
        &format!(
            "[run]\nseed = 3\nduration = \"1 min\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"t\"\nkind = \"direct\"\ncount = 1\n\
             [[hosts]]\nname = \"idle\"\nkind = \"direct\"\ncount = 1\n\
             [[processes]]\nhost = \"t\"\npath = {:?}\nargs = [{}]\nstart = \"1 s\"\n{extra}",
            path.display().to_string(),
            args.join(", ")
        ),
    )
}

/// Two real `gossip-node`s, each dialling four surrogates (disjoint sets: their only peers are
/// surrogates), among 200 surrogates that gossip blocks of their own.
pub fn real_clients_spec(node: &std::path::Path, shards_note: &str) -> String {
    format!(
        r#"
# {shards_note}
[run]
seed = 3
duration = "46 s"

[network]
topology = "single-switch"
latency = "10 ms"

[[hosts]]
name = "tail"
count = 200
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[[hosts]]
name = "hot"
kind = "direct"
count = 2
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[gossip]

[traffic]
start = "14 s"
slot = "12 s"
beacon_block = {{ size = "20 KiB", proposer_delay = "0 ms" }}

[[processes]]
host = "hot"
path = {node:?}
args = ["--index", "{{index}}", "--nodes", "2", "--listen", "0.0.0.0:9000",
        "--peer", "tail1{{index}}:9000,tail2{{index}}:9000,tail3{{index}}:9000,tail4{{index}}:9000",
        "--genesis", "20", "--slot", "12", "--slots", "2", "--size", "20000", "--verbose", "--score"]
"#,
        node = node.display().to_string()
    )
}

/// A spec for the end-to-end tests, built key by key: `[run]`, `[network]`, direct host groups
/// and their processes, so each test states only what it is about.
pub struct SpecBuilder {
    run: String,
    network: String,
    hosts: String,
    processes: String,
    sections: String,
}

impl SpecBuilder {
    /// A run of `duration` with `seed`, on a single switch with `latency` between hosts.
    pub fn switch(seed: u64, duration: &str, latency: &str) -> SpecBuilder {
        SpecBuilder {
            run: format!("[run]\nseed = {seed}\nduration = \"{duration}\"\n"),
            network: format!("[network]\ntopology = \"single-switch\"\nlatency = \"{latency}\"\n"),
            hosts: String::new(),
            processes: String::new(),
            sections: String::new(),
        }
    }

    /// The classic pair: direct hosts `alice` (10.0.0.1) and `bob` (10.0.0.2), 25 ms apart, each
    /// with `bandwidth` up and down.
    pub fn alice_bob(seed: u64, duration: &str, bandwidth: &str) -> SpecBuilder {
        SpecBuilder::switch(seed, duration, "25 ms").direct("alice", bandwidth, "").direct("bob", bandwidth, "")
    }

    /// Replace the `[network]` section's keys with `keys` (TOML lines).
    pub fn network(mut self, keys: &str) -> SpecBuilder {
        self.network = format!("[network]\n{}\n", keys.trim_end());
        self
    }

    /// One direct host `name` with `bandwidth` up and down, and `extra` keys (TOML lines).
    pub fn direct(self, name: &str, bandwidth: &str, extra: &str) -> SpecBuilder {
        self.direct_group(name, 1, bandwidth, extra)
    }

    /// A group of `count` direct hosts `name` (`name0`, `name1`, … when more than one), each
    /// with `bandwidth` up and down, and `extra` keys (TOML lines).
    pub fn direct_group(mut self, name: &str, count: u32, bandwidth: &str, extra: &str) -> SpecBuilder {
        self.hosts += &format!(
            "\n[[hosts]]\nname = \"{name}\"\nkind = \"direct\"\ncount = {count}\n{extra}\
             bandwidth = {{ up = \"{bandwidth}\", down = \"{bandwidth}\" }}\n"
        );
        self
    }

    /// A group of `count` surrogate identities `name`, with `extra` keys (TOML lines).
    pub fn surrogates(mut self, name: &str, count: u32, extra: &str) -> SpecBuilder {
        self.hosts += &format!("\n[[hosts]]\nname = \"{name}\"\ncount = {count}\n{extra}");
        self
    }

    /// Further tables (`[gossip]`, `[traffic]`, …) written out as TOML.
    pub fn sections(mut self, toml: &str) -> SpecBuilder {
        self.sections += "\n";
        self.sections += toml;
        self
    }

    /// A process on `host`: `path` with `args`, starting at `start`, and `extra` keys.
    pub fn process(mut self, host: &str, path: &str, args: &[&str], start: &str, extra: &str) -> SpecBuilder {
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        self.processes += &format!(
            "\n[[processes]]\nhost = \"{host}\"\npath = {path:?}\nargs = [{}]\nstart = \"{start}\"\n{extra}",
            args.join(", ")
        );
        self
    }

    /// Processes written out as TOML already.
    pub fn processes_toml(mut self, toml: &str) -> SpecBuilder {
        self.processes += toml;
        self
    }

    /// The spec's text.
    pub fn text(&self) -> String {
        format!("{}\n{}{}{}{}", self.run, self.network, self.hosts, self.sections, self.processes)
    }

    /// Write the spec as `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        write_spec(dir, name, &self.text())
    }
}
