//! `thermocline bench direct`: what real clients cost under the shim. `N` direct hosts each run
//! `gossip-node` (rust-libp2p gossipsub on tokio's multi-thread runtime, TCP, noise, yamux);
//! after a genesis delay for connecting, one node publishes one block per 12-s slot. The figures
//! are wall seconds per simulated minute, peak RSS per node, events, and whether every node got
//! every block.

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
    let seconds = GENESIS_S + (args.slots + 1) * SLOT_S + 5;
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

/// Run `thermocline bench direct`.
pub fn direct(args: &DirectBench, exe: &Path) -> Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let node = match &args.node {
        Some(p) => p.clone(),
        None => exe.with_file_name("gossip-node"),
    };
    if !node.exists() {
        bail!("{} not found: build it with `cargo build --release -p gossip-node` or pass --node", node.display());
    }
    let out = std::env::temp_dir().join(format!("thermocline-bench-direct-{}", std::process::id()));
    let mut spec = Spec::parse(&spec_text(args, &node, &out), "<bench direct>")?;
    spec.output.syscall_stats = args.syscall_stats;
    let sim_s = spec.run.duration.as_secs_f64();
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
    let (mut received, mut expected, mut delays) = (0u64, 0u64, Vec::new());
    for i in 0..args.nodes {
        let path = out.join(format!("hosts/node{i}/gossip-node.0.stdout"));
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
    let pct = |q: usize| {
        delays.get((delays.len() * q / 100).min(delays.len().saturating_sub(1))).map_or(0.0, |&d| d as f64 / 1000.0)
    };
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
    let wall = outcome.wall.as_secs_f64();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
    let v = json!({
        "nodes": args.nodes,
        "shards": args.shards,
        "pinned": !args.no_pin,
        "rx_coalesce": args.rx_coalesce,
        "slots": args.slots,
        "block_bytes": args.size,
        "simulated_s": sim_s,
        "wall_s": wall,
        "wall_s_per_simulated_minute": wall / (sim_s / 60.0),
        "events": outcome.totals.events,
        "rss_per_node_bytes_mean": rss_mean,
        "rss_per_node_bytes_max": rss.iter().copied().max().unwrap_or(0),
        "blocks_received": received,
        "blocks_expected": expected,
        "delay_p50_ms": pct(50),
        "delay_p95_ms": pct(95),
        "digest": outcome.digest.to_string(),
        "syscalls": syscalls.iter().map(|(k, v)| json!({"syscall": k, "calls": v})).collect::<Vec<_>>(),
        "wakeups": wakeups.iter().map(|(k, v)| json!({"call / how / reason": k, "calls": v})).collect::<Vec<_>>(),
        "wait_events": wait_events.iter().map(|(k, v)| json!({"call / how / fd / events": k, "count": v})).collect::<Vec<_>>(),
        "anchor": "ethereum-shadow: ~12 wall-minutes per simulated minute for 1,000 Lighthouse+Geth nodes on 32 vCPUs",
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "Direct: {} gossip-nodes, {:.0} s simulated, {} shard(s)\n  wall      {:.1} s ({:.2} s per simulated minute)\n  events    {}\n  RSS/node  {:.1} MB mean, {:.1} MB max\n  blocks    {received} of {expected} received\n  delay     p50 {:.1} ms, p95 {:.1} ms after publication\n  digest    {}",
            args.nodes,
            sim_s,
            args.shards,
            wall,
            wall / (sim_s / 60.0),
            outcome.totals.events,
            rss_mean / 1e6,
            rss.iter().copied().max().unwrap_or(0) as f64 / 1e6,
            pct(50),
            pct(95),
            outcome.digest,
        );
        for (title, rows) in [("syscalls", &syscalls), ("wake-ups", &wakeups), ("events reported", &wait_events)] {
            if !rows.is_empty() {
                println!("  {title}:");
            }
            for (name, calls) in rows {
                println!("  {calls:>10}  {name}");
            }
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
