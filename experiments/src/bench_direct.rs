//! `thermocline bench direct`: what real clients cost under the shim. `N` direct hosts each run
//! `gossip-node` (rust-libp2p gossipsub on tokio's multi-thread runtime, TCP, noise, yamux);
//! after a genesis delay for connecting, one node publishes one block per 12-s slot. The figures
//! are wall seconds per simulated minute, peak RSS per node, events, and whether every node got
//! every block.
//!
//! With `--shadow PATH` the workload is written as a Shadow configuration
//! ([`crate::bench_shadow`]) that both simulators run, in `--rounds` interleaved rounds, and the
//! figures of both and their ratio are printed.

use crate::bench_shadow::{ShadowRun, Workload};
use crate::run::{RunPlan, execute, window_config};
use crate::spec::{Backend, Spec};
use anyhow::{Context, Result, bail};
use arrow_array::{Array, StringArray, UInt64Array};
use serde_json::json;
use std::path::{Path, PathBuf};
use thermocline_bus::NoProgress;
use thermocline_models::metrics::concat_tables;

/// Options of `bench direct`.
#[derive(Clone, Debug, clap::Args)]
pub struct DirectBench {
    /// Nodes (direct hosts), each running one gossip-node.
    #[arg(long, default_value_t = 16)]
    pub nodes: u32,
    /// Slots with a block each, after the genesis delay.
    #[arg(long, default_value_t = 4)]
    pub slots: u32,
    /// Block size, bytes.
    #[arg(long, default_value_t = 100 * 1024)]
    pub size: u32,
    /// Connections each node dials (to the nodes before it in index order).
    #[arg(long, default_value_t = 4)]
    pub dial: u32,
    /// Shards (threads).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Do not pin shards and their processes to CPUs (`run.pin_cpus = false`), to measure what
    /// pinning buys.
    #[arg(long)]
    pub no_pin: bool,
    /// Place every node in this country of the RIPE Atlas table (its measured latency and
    /// jitter) instead of on a 25 ms single switch.
    #[arg(long)]
    pub country: Option<String>,
    /// The gossip-node binary (default: beside this executable).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// Receive interrupt coalescing at every node's card (`[network] rx_coalesce`, e.g.
    /// "1 ms"; off by default).
    #[arg(long)]
    pub rx_coalesce: Option<String>,
    /// A Shadow 3.x executable: run the same workload under it too (written as a Shadow
    /// configuration, which Thermocline then runs through its importer), in every round, and
    /// print both figures and their ratio. Not with `--country`.
    #[arg(long, value_name = "PATH")]
    pub shadow: Option<PathBuf>,
    /// Rounds, Thermocline then Shadow in each; medians and ranges are printed.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also count every syscall of the nodes (`run --syscall-stats`: every call is notified, so
    /// the run is slower, its results the same) and print the counts per syscall, how blocking
    /// and readiness calls ended and why, and the events readiness calls reported.
    #[arg(long)]
    pub syscall_stats: bool,
}

/// Seconds from start to slot 0, and the slot length.
const GENESIS_S: u32 = 12;
const SLOT_S: u32 = 12;

/// The spec of the benchmark network.
fn spec_text(args: &DirectBench, node: &Path, out: &Path) -> String {
    let book: Vec<String> = (0..args.nodes).map(|i| format!("node{i}:9000")).collect();
    let seconds = seconds(args);
    format!(
        r#"
[run]
seed = 1
duration = "{seconds} s"
pin_cpus = {pin}

[network]
{network}{coalesce}

[output]
dir = {out:?}

[[hosts]]
name = "node"
kind = "direct"
count = {nodes}{location}
bandwidth = {{ up = "50 Mbit", down = "50 Mbit" }}

[[processes]]
host = "node"
path = {node:?}
args = ["--index", "{{index}}", "--nodes", "{{count}}", "--listen", "0.0.0.0:9000", "--peer", "{book}",
        "--dial", "{dial}", "--genesis", "{GENESIS_S}", "--slot", "{SLOT_S}", "--slots", "{slots}",
        "--size", "{size}"]
"#,
        out = out.display().to_string(),
        network = match &args.country {
            Some(_) => "topology = \"ripe-country\"",
            None => "topology = \"single-switch\"\nlatency = \"25 ms\"",
        },
        coalesce = args.rx_coalesce.as_ref().map(|w| format!("\nrx_coalesce = {w:?}")).unwrap_or_default(),
        location = args.country.as_ref().map(|c| format!("\nlocation = {c:?}")).unwrap_or_default(),
        nodes = args.nodes,
        node = node.display().to_string(),
        book = book.join(","),
        dial = args.dial.min(args.nodes.saturating_sub(1)),
        pin = !args.no_pin,
        slots = args.slots,
        size = args.size,
    )
}

/// What one run of the workload gave, from Thermocline.
struct Round {
    wall_s: f64,
    events: u64,
    digest: String,
    rss: Vec<u64>,
    blocks: Blocks,
    syscalls: Vec<(String, u64)>,
    wakeups: Vec<(String, u64)>,
    wait_events: Vec<(String, u64)>,
}

/// Blocks the nodes reported in their stdout: received, expected, and every delay (µs, sorted).
struct Blocks {
    received: u64,
    expected: u64,
    delays: Vec<u64>,
}

impl Blocks {
    /// The delay at percentile `q`, ms.
    fn pct(&self, q: usize) -> f64 {
        let d = &self.delays;
        d.get((d.len() * q / 100).min(d.len().saturating_sub(1))).map_or(0.0, |&v| v as f64 / 1000.0)
    }
}

/// The `done` and `recv` lines of every node's gossip-node stdout under `hosts` (a folder per
/// host, `node0`, `node1`, …).
fn blocks(hosts: &Path, nodes: u32) -> Result<Blocks> {
    let (mut received, mut expected, mut delays) = (0u64, 0u64, Vec::new());
    for i in 0..nodes {
        let path = crate::bench_shadow::stdout_file(&hosts.join(format!("node{i}")), "gossip-node")?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let done =
            text.lines().find_map(|l| l.strip_prefix("done ")).with_context(|| format!("node{i} did not finish"))?;
        let field = |k: &str| -> u64 {
            done.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        received += field("received=");
        expected += field("expected=");
        delays.extend(
            text.lines()
                .filter(|l| l.starts_with("recv "))
                .filter_map(|l| l.rsplit("delay_us=").next()?.parse::<u64>().ok()),
        );
    }
    delays.sort_unstable();
    Ok(Blocks { received, expected, delays })
}

/// Simulated seconds of the benchmark.
fn seconds(args: &DirectBench) -> u32 {
    GENESIS_S + (args.slots + 1) * SLOT_S + 5
}

/// The workload as the Shadow configuration writes it: the spec's hosts and arguments spelt
/// out per host.
fn workload(args: &DirectBench, node: &Path) -> Workload {
    let book: Vec<String> = (0..args.nodes).map(|i| format!("node{i}:9000")).collect();
    let per_node = |i: u32| -> Vec<String> {
        let dial = args.dial.min(args.nodes.saturating_sub(1));
        [
            ("--index", i.to_string()),
            ("--nodes", args.nodes.to_string()),
            ("--listen", "0.0.0.0:9000".into()),
            ("--peer", book.join(",")),
            ("--dial", dial.to_string()),
            ("--genesis", GENESIS_S.to_string()),
            ("--slot", SLOT_S.to_string()),
            ("--slots", args.slots.to_string()),
            ("--size", args.size.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    };
    Workload {
        nodes: args.nodes,
        node: node.to_path_buf(),
        args: (0..args.nodes).map(per_node).collect(),
        seconds: seconds(args),
        latency_ms: 25,
        mbit: 50,
        threads: args.shards,
        pin: !args.no_pin,
    }
}

/// The spec Thermocline runs: the benchmark's TOML, or with `--shadow` the Shadow configuration
/// read by the importer, with the bench's own settings applied.
fn spec(args: &DirectBench, node: &Path, out: &Path) -> Result<Spec> {
    let mut spec = match &args.shadow {
        None => Spec::parse(&spec_text(args, node, out), "<bench direct>")?,
        Some(_) => {
            let yaml = crate::bench_shadow::config(&workload(args, node));
            let mut spec = crate::shadow::import(&yaml, "<bench direct --shadow>", Path::new("/"))?.spec;
            spec.resolve_paths(Path::new("/"));
            spec.run.pin_cpus = !args.no_pin;
            spec.output.dir = out.to_path_buf();
            if let Some(w) = &args.rx_coalesce {
                spec.network.rx_coalesce = thermocline_models::topology::shadow_duration(w)
                    .map_err(|e| anyhow::anyhow!("--rx-coalesce {w:?}: {e}"))?;
            }
            spec
        }
    };
    spec.output.syscall_stats = args.syscall_stats;
    Ok(spec)
}

/// One Thermocline run of the benchmark.
fn thermocline_round(args: &DirectBench, exe: &Path, node: &Path) -> Result<Round> {
    let out = std::env::temp_dir().join(format!("thermocline-bench-direct-{}", std::process::id()));
    let spec = spec(args, node, &out)?;
    let window = window_config(&spec, args.shards).map_err(anyhow::Error::msg)?;
    let plan = RunPlan { spec, shards: args.shards, backend: Backend::Threads, exe: exe.to_path_buf() };
    let outcome = execute(&plan, window, &NoProgress, None)?.context("no outcome")?;

    let (mut rss, mut failed) = (Vec::new(), Vec::new());
    let tables: Vec<_> =
        outcome.reports.iter().flat_map(|r| &r.output.tables).filter(|t| t.name == "direct_processes").collect();
    let (_, batches) = concat_tables("direct_processes", &tables)?;
    for batch in &batches {
        let col = |name: &str| batch.column_by_name(name).with_context(|| format!("no column {name}"));
        let max_rss = col("max_rss_bytes")?.as_any().downcast_ref::<UInt64Array>().context("max_rss_bytes")?;
        let status = col("status")?.as_any().downcast_ref::<StringArray>().context("status")?;
        let host = col("host_name")?.as_any().downcast_ref::<StringArray>().context("host_name")?;
        for i in 0..batch.num_rows() {
            rss.push(max_rss.value(i));
            if status.value(i) != "exit 0" {
                failed.push(format!("{}: {}", host.value(i), status.value(i)));
            }
        }
    }
    let blocks = blocks(&out.join("hosts"), args.nodes);
    let (syscalls, wakeups, wait_events) = if args.syscall_stats {
        let r = &outcome.reports;
        (
            sum_by(r, "direct_syscalls", &["syscall"], "calls")?,
            sum_by(r, "direct_wakeups", &["syscall", "how", "reason"], "calls")?,
            sum_by(r, "direct_wait_events", &["syscall", "how", "fd_kind", "events"], "count")?,
        )
    } else {
        Default::default()
    };
    let _ = std::fs::remove_dir_all(&out);
    if !failed.is_empty() {
        bail!("gossip-node failed on {}", failed.join(", "));
    }
    Ok(Round {
        wall_s: outcome.wall.as_secs_f64(),
        events: outcome.totals.events,
        digest: outcome.digest.to_string(),
        rss,
        blocks: blocks?,
        syscalls,
        wakeups,
        wait_events,
    })
}

/// One Shadow run of the benchmark: its figures and the blocks its nodes reported.
fn shadow_round(args: &DirectBench, shadow: &Path, node: &Path) -> Result<(ShadowRun, Blocks)> {
    let dir = std::env::temp_dir().join(format!("thermocline-bench-shadow-{}", std::process::id()));
    let run = crate::bench_shadow::run(shadow, &crate::bench_shadow::config(&workload(args, node)), &dir)?;
    let blocks = blocks(&run.data.join("hosts"), args.nodes);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((run, blocks?))
}

/// Median, minimum and maximum of `v` (not empty).
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    (median, s[0], s[n - 1])
}

/// `spread` as JSON.
fn spread_json(v: &[f64]) -> serde_json::Value {
    let (median, min, max) = spread(v);
    json!({ "median": median, "min": min, "max": max, "rounds": v })
}

/// Run `thermocline bench direct`.
pub fn direct(args: &DirectBench, exe: &Path) -> Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if args.shadow.is_some() && args.country.is_some() {
        bail!("--shadow runs the single-switch network; it cannot be combined with --country");
    }
    let node = match &args.node {
        Some(p) => std::path::absolute(p).with_context(|| format!("{}", p.display()))?,
        None => exe.with_file_name("gossip-node"),
    };
    if !node.exists() {
        bail!("{} not found: build it with `cargo build --release -p gossip-node` or pass --node", node.display());
    }
    let shadow_version = match &args.shadow {
        Some(s) => Some(crate::bench_shadow::version(s)?),
        None => None,
    };
    let sim_s = f64::from(seconds(args));
    let per_minute = |wall: f64| wall / (sim_s / 60.0);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let r = thermocline_round(args, exe, &node)?;
        if let Some(first) = ours.first().map(|f: &Round| &f.digest)
            && *first != r.digest
        {
            bail!("round {round} gave digest {} where round 0 gave {first}: the run is not repeatable", r.digest);
        }
        ours.push(r);
        if let Some(shadow) = &args.shadow {
            theirs.push(shadow_round(args, shadow, &node)?);
        }
    }
    let first = &ours[0];
    let walls: Vec<f64> = ours.iter().map(|r| per_minute(r.wall_s)).collect();
    let shadow_walls: Vec<f64> = theirs.iter().map(|(s, _)| per_minute(s.wall_s)).collect();
    let ratios: Vec<f64> = walls.iter().zip(&shadow_walls).map(|(a, b)| a / b).collect();
    let rss = &first.rss;
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
    let pairs = |rows: &[(String, u64)], key: &str, value: &str| -> Vec<serde_json::Value> {
        rows.iter().map(|(k, v)| json!({ key: k, value: v })).collect()
    };
    let mut v = json!({
        "nodes": args.nodes,
        "shards": args.shards,
        "pinned": !args.no_pin,
        "rx_coalesce": args.rx_coalesce,
        "slots": args.slots,
        "block_bytes": args.size,
        "workload": if args.shadow.is_some() { "shadow-config" } else { "spec" },
        "simulated_s": sim_s,
        "rounds": args.rounds,
        "wall_s": spread(&ours.iter().map(|r| r.wall_s).collect::<Vec<_>>()).0,
        "wall_s_per_simulated_minute": spread(&walls).0,
        "wall_s_per_simulated_minute_spread": spread_json(&walls),
        "events": first.events,
        "rss_per_node_bytes_mean": rss_mean,
        "rss_per_node_bytes_max": rss.iter().copied().max().unwrap_or(0),
        "blocks_received": first.blocks.received,
        "blocks_expected": first.blocks.expected,
        "delay_p50_ms": first.blocks.pct(50),
        "delay_p95_ms": first.blocks.pct(95),
        "digest": first.digest,
        "syscalls": pairs(&first.syscalls, "syscall", "calls"),
        "wakeups": pairs(&first.wakeups, "call / how / reason", "calls"),
        "wait_events": pairs(&first.wait_events, "call / how / fd / events", "count"),
        "anchor": "ethereum-shadow: ~12 wall-minutes per simulated minute for 1,000 Lighthouse+Geth nodes on 32 vCPUs",
    });
    if let (Some(path), Some(version), Some((run, blocks))) = (&args.shadow, &shadow_version, theirs.first()) {
        v["shadow"] = json!({
            "path": path,
            "version": version,
            "wall_s_per_simulated_minute": spread(&shadow_walls).0,
            "wall_s_per_simulated_minute_spread": spread_json(&shadow_walls),
            "blocks_received": blocks.received,
            "blocks_expected": blocks.expected,
            "delay_p50_ms": blocks.pct(50),
            "delay_p95_ms": blocks.pct(95),
            "syscalls": pairs(&run.syscalls, "syscall", "calls"),
        });
        v["thermocline_over_shadow"] = spread_json(&ratios);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let (median, min, max) = spread(&walls);
    println!(
        "Direct: {} gossip-nodes, {:.0} s simulated, {} shard(s), {} round(s)\n  wall      {:.2} s per simulated minute (median; {:.2}–{:.2})\n  events    {}\n  RSS/node  {:.1} MB mean, {:.1} MB max\n  blocks    {} of {} received\n  delay     p50 {:.1} ms, p95 {:.1} ms after publication\n  digest    {}",
        args.nodes,
        sim_s,
        args.shards,
        args.rounds,
        median,
        min,
        max,
        first.events,
        rss_mean / 1e6,
        rss.iter().copied().max().unwrap_or(0) as f64 / 1e6,
        first.blocks.received,
        first.blocks.expected,
        first.blocks.pct(50),
        first.blocks.pct(95),
        first.digest,
    );
    if let (Some(version), Some((run, blocks))) = (&shadow_version, theirs.first()) {
        let (median, min, max) = spread(&shadow_walls);
        let (r, rmin, rmax) = spread(&ratios);
        println!(
            "Shadow: {version}\n  wall      {median:.2} s per simulated minute (median; {min:.2}–{max:.2})\n  blocks    {} of {} received\n  delay     p50 {:.1} ms, p95 {:.1} ms after publication\n  Thermocline / Shadow: {r:.2}x (median of the rounds' ratios; {rmin:.2}–{rmax:.2})",
            blocks.received,
            blocks.expected,
            blocks.pct(50),
            blocks.pct(95),
        );
        if !run.syscalls.is_empty() {
            println!("  Shadow's syscalls:");
        }
        for (name, calls) in &run.syscalls {
            println!("  {calls:>10}  {name}");
        }
    }
    for (title, rows) in
        [("syscalls", &first.syscalls), ("wake-ups", &first.wakeups), ("events reported", &first.wait_events)]
    {
        if !rows.is_empty() {
            println!("  {title}:");
        }
        for (name, calls) in rows {
            println!("  {calls:>10}  {name}");
        }
    }
    Ok(())
}

/// Rows of the shards' tables `name` summed by the text columns `keys` (joined by " / "):
/// `(key, sum of column value)`, largest first.
fn sum_by(
    reports: &[thermocline_bus::ShardReport],
    name: &str,
    keys: &[&str],
    value: &str,
) -> Result<Vec<(String, u64)>> {
    let tables: Vec<_> = reports.iter().flat_map(|r| &r.output.tables).filter(|t| t.name == name).collect();
    let (_, batches) = concat_tables(name, &tables)?;
    let mut sums = std::collections::BTreeMap::<String, u64>::new();
    for batch in &batches {
        let col = |n: &str| batch.column_by_name(n).with_context(|| format!("no column {n} in {name}"));
        let values = col(value)?.as_any().downcast_ref::<UInt64Array>().with_context(|| format!("{name}.{value}"))?;
        let texts = keys
            .iter()
            .map(|k| col(k)?.as_any().downcast_ref::<StringArray>().with_context(|| format!("{name}.{k}")))
            .collect::<Result<Vec<_>>>()?;
        for i in 0..batch.num_rows() {
            let key = texts.iter().map(|t| t.value(i)).collect::<Vec<_>>().join(" / ");
            *sums.entry(key).or_default() += values.value(i);
        }
    }
    let mut rows: Vec<_> = sums.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(rows)
}
