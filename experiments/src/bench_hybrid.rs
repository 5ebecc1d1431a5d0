//! `thermocline bench hybrid`: what the boundary costs. `--hot N` direct hosts run `gossip-node`,
//! each dialling four surrogates of `--cold M` (`{peers:tail:4}`: no two share one, so every block between
//! real nodes crosses the tail), while the surrogates publish blocks of their own. The same hot
//! set (dialling each other) and the same cold tail are then run apart, so the boundary's
//! overhead is the hybrid run's wall time against the sum of the two, in one invocation. The
//! hybrid's tail also carries the real nodes' blocks, which the tail alone does not: a third
//! baseline, the tail alone publishing as many blocks over the run (at a shorter slot), gives the
//! overhead against the same tail work (`boundary_overhead_same_blocks`).
//!
//! Memory is the growth of the process's peak resident set over each run (the peak restarted
//! before it). A boundary identity's, in the run, is measured against two more runs whose real
//! nodes dial nobody, with the tail and without: the hybrid's growth beyond the first is its
//! boundary identities plus their clients' ends of the connections (and the tail's share of the
//! real nodes' blocks), and half the hot set's growth beyond the second is as many connection ends
//! on real nodes (each hot connection has two). Alone, it is measured by
//! [`crate::boundary_memory`].

use crate::run::{RunOutcome, RunPlan, execute, window_config};
use crate::spec::{Backend, Spec};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::Path;
use thermocline_bus::NoProgress;

/// Options of `bench hybrid`.
#[derive(Clone, Debug, clap::Args)]
pub struct HybridBench {
    /// Real clients (direct hosts running gossip-node).
    #[arg(long, default_value_t = 16)]
    pub hot: u32,
    /// Surrogate identities.
    #[arg(long, default_value_t = 10_000)]
    pub cold: u32,
    /// Slots (12 s each) after the genesis delay.
    #[arg(long, default_value_t = 3)]
    pub slots: u32,
    /// Shards (threads).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Seconds to slot 0 of the real nodes; the surrogates start publishing then too.
const GENESIS_S: u32 = 20;

fn common(args: &HybridBench, seconds: u32, out: &Path) -> String {
    format!(
        "[run]\nseed = 1\nduration = \"{seconds} s\"\n\n[network]\ntopology = \"single-switch\"\nlatency = \"25 ms\"\n\n[output]\ndir = {:?}\n",
        out.display().to_string()
    ) + &format!("# {} hot, {} cold\n", args.hot, args.cold)
}

/// The tail, publishing a block every `slot_ms` from the genesis on.
fn cold_part(args: &HybridBench, slot_ms: u64) -> String {
    format!(
        "\n[[hosts]]\nname = \"tail\"\ncount = {}\nbandwidth = {{ up = \"50 Mbit\", down = \"50 Mbit\" }}\n\n[gossip]\n\n[traffic]\nstart = \"{GENESIS_S} s\"\nslot = \"{slot_ms} ms\"\nbeacon_block = {{ size = \"100 KiB\", proposer_delay = \"0 ms\" }}\n",
        args.cold
    )
}

/// The slot (ms) at which the tail alone publishes as many blocks in the run as the hybrid's
/// tail carries: its own (one per 12-s slot) and the real nodes' (one per slot of theirs).
fn same_blocks_slot_ms(args: &HybridBench, seconds: u32) -> u64 {
    let span_ms = u64::from(seconds - GENESIS_S) * 1000;
    let own = span_ms.div_ceil(12_000);
    let carried = own + u64::from(args.slots);
    span_ms / carried
}

/// The hot group; `peers` is the dialling arguments with a trailing comma (empty: dial nobody).
fn hot_part(args: &HybridBench, node: &Path, peers: &str) -> String {
    format!(
        "\n[[hosts]]\nname = \"hot\"\nkind = \"direct\"\ncount = {hot}\nbandwidth = {{ up = \"50 Mbit\", down = \"50 Mbit\" }}\n\n[[processes]]\nhost = \"hot\"\npath = {node:?}\nargs = [\"--index\", \"{{index}}\", \"--nodes\", \"{hot}\", \"--listen\", \"0.0.0.0:9000\", {peers} \"--genesis\", \"{GENESIS_S}\", \"--slot\", \"12\", \"--slots\", \"{slots}\", \"--size\", \"102400\"]\n",
        hot = args.hot,
        node = node.display().to_string(),
        slots = args.slots,
    )
}

/// One run's outcome, and how far the process's resident memory rose above where it started
/// (bytes; 0 where `/proc` cannot tell).
fn run(spec_text: &str, shards: u32, exe: &Path) -> Result<(RunOutcome, u64)> {
    let spec = Spec::parse(spec_text, "<bench hybrid>")?;
    let window = window_config(&spec, shards).map_err(anyhow::Error::msg)?;
    let plan = RunPlan { spec, shards, backend: Backend::Threads, exe: exe.to_path_buf() };
    let base = rss_start();
    let outcome = execute(&plan, window, &NoProgress, None)?.context("no outcome")?;
    let growth = match (base, status_bytes("VmHWM:")) {
        (Some(base), Some(peak)) => peak.saturating_sub(base),
        _ => 0,
    };
    Ok((outcome, growth))
}

/// Per shard of `outcome`, the seconds of one wall-time counter of its windows.
fn shard_seconds(outcome: &RunOutcome, counter: impl Fn(&thermocline_bus::WindowStats) -> u64) -> Vec<f64> {
    outcome.reports.iter().map(|r| r.windows.iter().map(&counter).sum::<u64>() as f64 / 1e9).collect()
}

/// Gives freed memory back to the kernel and restarts the peak resident set at the current one;
/// returns the current one, or `None` if the peak cannot be restarted (it then covers earlier
/// runs too).
fn rss_start() -> Option<u64> {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    // "5" restarts VmHWM at VmRSS (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_bytes("VmRSS:")
}

/// A size field of `/proc/self/status` in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Blocks the real nodes published that they received, and that they should have.
fn hot_deliveries(out: &Path, hot: u32) -> Result<(u64, u64)> {
    let (mut received, mut expected) = (0, 0);
    for i in 0..hot {
        let path = out.join(format!("hosts/hot{i}/gossip-node.0.stdout"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let done =
            text.lines().find_map(|l| l.strip_prefix("done ")).with_context(|| format!("hot{i} did not finish"))?;
        let field = |k: &str| -> u64 {
            done.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        received += field("received=");
        expected += field("expected=");
    }
    Ok((received, expected))
}

/// Run `thermocline bench hybrid`.
pub fn hybrid(args: &HybridBench, exe: &Path) -> Result<()> {
    // Each hot node dials four surrogates of its own (`{peers:tail:4}`: disjoint sets).
    if args.hot < 2 || u64::from(args.cold) < 4 * u64::from(args.hot) {
        bail!("need --hot of at least 2 and --cold of at least 4 per hot node (each dials its own surrogates)");
    }
    let node = exe.with_file_name("gossip-node");
    if !node.exists() {
        bail!("{} not found: build it with `cargo build --release -p gossip-node`", node.display());
    }
    let seconds = GENESIS_S + (args.slots + 1) * 12 + 2;
    let base = std::env::temp_dir().join(format!("thermocline-bench-hybrid-{}", std::process::id()));
    let to_tail = "\"--peer\", \"{peers:tail:4}\",";
    let book: Vec<String> = (0..args.hot).map(|i| format!("hot{i}:9000")).collect();
    let to_hot = format!("\"--peer\", \"{}\", \"--dial\", \"4\",", book.join(","));
    let hybrid_out = base.join("hybrid");
    let mixed = common(args, seconds, &hybrid_out) + &cold_part(args, 12_000) + &hot_part(args, &node, to_tail);
    let hot_only = common(args, seconds, &base.join("hot")) + &hot_part(args, &node, &to_hot);
    let cold_only = common(args, seconds, &base.join("cold")) + &cold_part(args, 12_000);
    let same_slot_ms = same_blocks_slot_ms(args, seconds);
    let cold_same = common(args, seconds, &base.join("cold-same")) + &cold_part(args, same_slot_ms);
    // The hybrid and the hot set without connections: the real nodes dial nobody.
    let undialled =
        common(args, seconds, &base.join("undialled")) + &cold_part(args, 12_000) + &hot_part(args, &node, "");
    let hot_idle = common(args, seconds, &base.join("hot-idle")) + &hot_part(args, &node, "");
    let (cold, cold_rss) = run(&cold_only, args.shards, exe)?;
    let (same, _) = run(&cold_same, args.shards, exe)?;
    let (hot, hot_rss) = run(&hot_only, args.shards, exe)?;
    let (both, both_rss) = run(&mixed, args.shards, exe)?;
    let (_, undialled_rss) = run(&undialled, args.shards, exe)?;
    let (_, hot_idle_rss) = run(&hot_idle, args.shards, exe)?;
    let (received, expected) = hot_deliveries(&hybrid_out, args.hot)?;
    let tail = crate::output::gossip_figures(&both)?.context("the hybrid run has no gossip figures")?;
    let connections = crate::output::table_column_u64(&both, "surrogate_packets", "connections")?;
    let boundary = connections.iter().filter(|&&c| c > 0).count() as u64;
    // The hybrid's connections and boundary, less the real nodes' ends of those connections.
    let beyond = both_rss as f64 - undialled_rss as f64 - (hot_rss as f64 - hot_idle_rss as f64) / 2.0;
    let alone = crate::boundary_memory::per_identity(boundary.max(1) as u32, u64::from(args.slots) + 1);
    let wall = |o: &RunOutcome| o.wall.as_secs_f64();
    let sim_s = f64::from(seconds);
    let v = json!({
        "benchmark": "hybrid",
        "hot": args.hot,
        "cold": args.cold,
        "shards": args.shards,
        "simulated_s": sim_s,
        "wall_s": wall(&both),
        "wall_s_per_simulated_minute": wall(&both) / (sim_s / 60.0),
        "real_time_factor": wall(&both) / sim_s,
        "events": both.totals.events,
        "events_per_s": both.totals.events as f64 / wall(&both),
        "hot_alone_wall_s": wall(&hot),
        "cold_alone_wall_s": wall(&cold),
        "boundary_overhead": wall(&both) / (wall(&hot) + wall(&cold)),
        "cold_same_blocks_slot_ms": same_slot_ms,
        "cold_same_blocks_wall_s": wall(&same),
        "boundary_overhead_same_blocks": wall(&both) / (wall(&hot) + wall(&same)),
        "hot_blocks_received": received,
        "hot_blocks_expected": expected,
        "reliability": tail.blocks.reliability,
        "hot_reliability": if expected > 0 { received as f64 / expected as f64 } else { 1.0 },
        "shard_exec_s": shard_seconds(&both, |w| w.exec_ns),
        "shard_wait_s": shard_seconds(&both, |w| w.wait_ns),
        "peak_rss_bytes": crate::model_cmd::peak_rss_bytes(),
        "rss_growth_bytes": { "cold": cold_rss, "hot": hot_rss, "hybrid": both_rss, "hybrid_undialled": undialled_rss, "hot_undialled": hot_idle_rss },
        "bytes_per_cold_identity": cold_rss as f64 / f64::from(args.cold),
        "boundary_identities": boundary,
        "boundary_connections": connections.iter().sum::<u64>(),
        "bytes_per_boundary_identity": alone,
        "bytes_per_boundary_identity_in_run": if boundary > 0 { beyond / boundary as f64 } else { 0.0 },
        "digest": both.digest.to_string(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "Hybrid: {} real gossip-nodes + {} surrogates, {sim_s:.0} s simulated, {} shard(s)\n  wall      {:.1} s ({:.2}x real time); apart: hot {:.1} s + cold {:.1} s (overhead {:.2}x)\n  blocks    real nodes got {received} of {expected} of each other's; tail reliability {:.4}\n  memory    {:.0} B per cold identity; {boundary} boundary identities, {:.0} B each alone, {:.0} B in the run\n  digest    {}",
            args.hot,
            args.cold,
            args.shards,
            wall(&both),
            wall(&both) / sim_s,
            wall(&hot),
            wall(&cold),
            wall(&both) / (wall(&hot) + wall(&cold)),
            tail.blocks.reliability,
            cold_rss as f64 / f64::from(args.cold),
            alone.unwrap_or(0.0),
            if boundary > 0 { beyond / boundary as f64 } else { 0.0 },
            both.digest
        );
    }
    Ok(())
}
