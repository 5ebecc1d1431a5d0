//! `thermocline bench lodestar`: what a cold tail costs real Ethereum clients' runs. The spec
//! (by default `experiments/specs/lodestar-tail.toml`: 4 Lodestar nodes whose only peers are
//! surrogates) is run with its tail at each `--tails` size, the smallest standing for "the
//! clients alone" (they need some surrogates to peer through), all in one invocation; the
//! figure is wall seconds per simulated minute, and the tail's cost relative to the smallest.

use crate::run::{RunOutcome, RunPlan, execute, window_config};
use crate::spec::{Backend, Spec};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use thermocline_bus::NoProgress;
use thermocline_bus::SimDuration;

/// Options of `bench lodestar`.
#[derive(Clone, Debug, clap::Args)]
pub struct LodestarBench {
    /// The spec: Lodestar nodes on direct hosts among the surrogate group `--group`.
    #[arg(long, default_value = "experiments/specs/lodestar-tail.toml")]
    pub spec: PathBuf,
    /// The surrogate group whose size varies.
    #[arg(long, default_value = "tail")]
    pub group: String,
    /// Tail sizes, smallest first (the first is the baseline).
    #[arg(long, value_delimiter = ',', default_value = "64,10000,100000")]
    pub tails: Vec<u32>,
    /// Simulated duration of each run (default: the spec's).
    #[arg(long)]
    pub duration: Option<SimDuration>,
    /// Shards (threads).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One run of `spec` with the group at `count`, writing into `out`.
fn run(args: &LodestarBench, mut spec: Spec, count: u32, out: &Path, exe: &Path) -> Result<RunOutcome> {
    let group = spec.hosts.iter_mut().find(|g| g.name == args.group);
    group.with_context(|| format!("{} has no host group {:?}", args.spec.display(), args.group))?.count = count;
    spec.output.dir = out.to_path_buf();
    let window = window_config(&spec, args.shards).map_err(anyhow::Error::msg)?;
    let plan = RunPlan { spec, shards: args.shards, backend: Backend::Threads, exe: exe.to_path_buf() };
    execute(&plan, window, &NoProgress, None)?.context("no outcome")
}

/// Run `thermocline bench lodestar`.
pub fn lodestar(args: &LodestarBench, exe: &Path) -> Result<()> {
    if args.tails.is_empty() || args.tails.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--tails must be sizes in ascending order, e.g. 64,10000,100000");
    }
    let mut spec = Spec::load(&args.spec)?;
    if let Some(d) = args.duration {
        spec.run.duration = d;
    }
    let sim_s = spec.run.duration.as_nanos() as f64 / 1e9;
    let base = std::env::temp_dir().join(format!("thermocline-bench-lodestar-{}", std::process::id()));
    let mut rows = Vec::new();
    for &n in &args.tails {
        let out = base.join(n.to_string());
        let o = run(args, spec.clone(), n, &out, exe)?;
        let wall = o.wall.as_secs_f64();
        let tail = crate::output::gossip_figures(&o)?.and_then(|g| g.tail_client_blocks);
        rows.push((n, wall, sim_s, o.totals.events, tail, o.digest.to_string()));
    }
    std::fs::remove_dir_all(&base).ok();
    let per_minute = |wall: f64, sim: f64| wall / (sim / 60.0);
    let base_cost = per_minute(rows[0].1, rows[0].2);
    let runs: Vec<_> = rows
        .iter()
        .map(|(n, wall, sim, events, tail, digest)| {
            json!({
                "tail": n,
                "simulated_s": sim,
                "wall_s": wall,
                "wall_s_per_simulated_minute": per_minute(*wall, *sim),
                "added_over_baseline": per_minute(*wall, *sim) / base_cost - 1.0,
                "events": events,
                "tail_client_block_p50_ms": tail.as_ref().map(|t| t.p50_ms),
                "tail_client_block_p95_ms": tail.as_ref().map(|t| t.p95_ms),
                "tail_client_block_reliability": tail.as_ref().map(|t| t.reliability),
                "digest": digest,
            })
        })
        .collect();
    let v = json!({ "benchmark": "lodestar", "spec": args.spec.display().to_string(), "shards": args.shards, "runs": runs });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("Lodestar among surrogates: {} ({} shard(s))", args.spec.display(), args.shards);
    for (n, wall, sim, ..) in &rows {
        let m = per_minute(*wall, *sim);
        println!(
            "  tail {n:>7}: {wall:.1} s wall for {sim:.0} s, {m:.2} s per simulated minute ({:+.1} %)",
            (m / base_cost - 1.0) * 100.0
        );
    }
    Ok(())
}
