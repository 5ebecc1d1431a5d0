//! The Shadow side of `thermocline bench direct --shadow PATH`: the benchmark's workload written
//! as a Shadow 3.x configuration, run under a Shadow installation, with its wall time and the
//! syscall counts Shadow logs at the end.
//!
//! The same YAML is what Thermocline runs in that mode (read by its Shadow importer,
//! [`crate::shadow`]), so the two simulators see one workload by construction: the same binary
//! and arguments, hosts, graph, bandwidths and stop time.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The workload of one benchmark run, as both simulators get it.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Hosts `node0`, `node1`, …, each running the node program once.
    pub nodes: u32,
    /// The node program (gossip-node), an absolute path.
    pub node: PathBuf,
    /// Arguments of host `i`'s process.
    pub args: Vec<Vec<String>>,
    /// Simulated seconds.
    pub seconds: u32,
    /// One-way latency between any two hosts, ms (one graph node and its self-loop).
    pub latency_ms: u32,
    /// Up and down bandwidth of every host, Mbit/s.
    pub mbit: u32,
    /// Worker threads (Shadow's `parallelism`; Thermocline's shards).
    pub threads: u32,
    /// Pin workers (and their processes) to CPUs.
    pub pin: bool,
}

/// `workload` as a Shadow configuration (the graph one key per line: Shadow's GML reader
/// wants a line break after each value). Shadow's `model_unblocked_syscall_latency` is on,
/// because Thermocline always charges a syscall that does not block (docs/shadow.md); syscall
/// counters are on (Shadow's default) so the run's log carries the counts.
pub fn config(w: &Workload) -> String {
    let mut y = format!(
        "# thermocline bench direct --shadow: {nodes} gossip-nodes on one switch\n\
         general:\n  stop_time: {seconds} s\n  seed: 1\n  parallelism: {threads}\n  \
         model_unblocked_syscall_latency: true\n\
         experimental:\n  use_cpu_pinning: {pin}\n  use_syscall_counters: true\n\
         network:\n  graph:\n    type: gml\n    inline: |\n      graph [\n        directed 0\n        \
         node [\n          id 0\n          host_bandwidth_up \"{mbit} Mbit\"\n          \
         host_bandwidth_down \"{mbit} Mbit\"\n        ]\n        \
         edge [\n          source 0\n          target 0\n          latency \"{latency} ms\"\n          \
         packet_loss 0.0\n        ]\n      ]\n\
         hosts:\n",
        nodes = w.nodes,
        seconds = w.seconds,
        threads = w.threads,
        pin = w.pin,
        mbit = w.mbit,
        latency = w.latency_ms,
    );
    for (i, args) in w.args.iter().enumerate() {
        let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        y += &format!(
            "  node{i}:\n    network_node_id: 0\n    processes:\n    - path: {path:?}\n      args: [{args}]\n      \
             expected_final_state: {{exited: 0}}\n",
            path = w.node.display().to_string(),
            args = quoted.join(", "),
        );
    }
    y
}

/// One Shadow run's figures.
#[derive(Clone, Debug)]
pub struct ShadowRun {
    /// Wall seconds of the `shadow` process, start to exit.
    pub wall_s: f64,
    /// Shadow's data directory (`hosts/<host>/<program>.<pid>.stdout`).
    pub data: PathBuf,
    /// Calls per syscall over all processes, from the log's "Global syscall counts" line.
    pub syscalls: Vec<(String, u64)>,
}

/// The first line `shadow --version` prints.
pub fn version(shadow: &Path) -> Result<String> {
    let out =
        Command::new(shadow).arg("--version").output().with_context(|| format!("running {}", shadow.display()))?;
    if !out.status.success() {
        bail!("{} --version failed: {}", shadow.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").trim().to_string())
}

/// Run `shadow` on configuration `yaml` in folder `dir` (its data directory `dir/shadow.data`,
/// its log `dir/shadow.log`, both replaced).
pub fn run(shadow: &Path, yaml: &str, dir: &Path) -> Result<ShadowRun> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (config, data, log) = (dir.join("shadow.yaml"), dir.join("shadow.data"), dir.join("shadow.log"));
    std::fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    }
    let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let start = Instant::now();
    let status = Command::new(shadow)
        .arg("--data-directory")
        .arg(&data)
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .with_context(|| format!("running {}", shadow.display()))?;
    let wall_s = start.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{} failed ({status}); the end of {}:\n{}", shadow.display(), log.display(), tail.join("\n"));
    }
    Ok(ShadowRun { wall_s, data, syscalls: syscall_counts(&text) })
}

/// The counts of Shadow's `Global syscall counts: {name:count, …}` log line, largest first
/// (empty when the line is missing, e.g. with counters off).
pub fn syscall_counts(log: &str) -> Vec<(String, u64)> {
    let Some(list) = log.lines().find_map(|l| l.split_once("Global syscall counts: {").map(|(_, rest)| rest)) else {
        return Vec::new();
    };
    let list = list.trim_end().trim_end_matches('}');
    let mut rows: Vec<(String, u64)> = list
        .split(", ")
        .filter_map(|item| {
            let (name, n) = item.rsplit_once(':')?;
            Some((name.trim().to_string(), n.trim().parse().ok()?))
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// The one `PROGRAM.*.stdout` file in host folder `dir` (Thermocline names it
/// `PROGRAM.0.stdout`, Shadow `PROGRAM.PID.stdout`).
pub fn stdout_file(dir: &Path, program: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{program}.")) && name.ends_with(".stdout") {
            found.push(dir.join(name));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no {program}.*.stdout in {}", dir.display()),
        _ => bail!("more than one {program}.*.stdout in {}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            nodes: 3,
            node: PathBuf::from("/bin/true"),
            args: (0..3).map(|i| vec!["--index".to_string(), i.to_string(), "--peer".into(), "a b".into()]).collect(),
            seconds: 41,
            latency_ms: 25,
            mbit: 50,
            threads: 2,
            pin: false,
        }
    }

    #[test]
    fn the_config_imports_as_the_same_workload() {
        let yaml = config(&workload());
        let imported = crate::shadow::import(&yaml, "bench.yaml", Path::new("/")).expect("the importer reads it");
        let spec = imported.spec;
        assert_eq!(spec.run.duration.as_secs_f64(), 41.0);
        assert_eq!(spec.processes.len(), 3);
        for (i, p) in spec.processes.iter().enumerate() {
            assert_eq!(p.host, format!("node{i}"));
            assert_eq!(p.path, PathBuf::from("/bin/true"));
            assert_eq!(p.args, ["--index", &i.to_string(), "--peer", "a b"]);
        }
        assert_eq!(spec.hosts.len(), 3);
        let gml = spec.network.gml_inline.as_deref().expect("an inline graph");
        assert!(gml.contains("latency \"25 ms\"") && gml.contains("host_bandwidth_up \"50 Mbit\""), "{gml}");
        assert!(yaml.contains("parallelism: 2") && yaml.contains("use_cpu_pinning: false"), "{yaml}");
    }

    #[test]
    fn syscall_counts_are_read_from_the_log_line() {
        let log = "00:00:01 [INFO] [shadow] other\n\
                   00:01:02.5 [INFO] [main] [shadow_rs::core::manager] Global syscall counts: {epoll_wait:8400, \
                   recvfrom:10700, futex:11900}\n";
        let rows = syscall_counts(log);
        assert_eq!(
            rows,
            [("futex".to_string(), 11900), ("recvfrom".to_string(), 10700), ("epoll_wait".to_string(), 8400)]
        );
        assert!(syscall_counts("no counts here").is_empty());
    }

    #[test]
    fn a_stdout_file_is_found_under_either_naming() {
        let dir = std::env::temp_dir().join(format!("thermocline-bench-shadow-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(stdout_file(&dir, "gossip-node").is_err(), "an empty folder has none");
        std::fs::write(dir.join("gossip-node.1000.stdout"), "x").unwrap();
        std::fs::write(dir.join("gossip-node.1000.stderr"), "x").unwrap();
        assert_eq!(stdout_file(&dir, "gossip-node").unwrap(), dir.join("gossip-node.1000.stdout"));
        std::fs::write(dir.join("gossip-node.0.stdout"), "x").unwrap();
        assert!(stdout_file(&dir, "gossip-node").is_err(), "two are ambiguous");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
