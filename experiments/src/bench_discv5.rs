//! `thermocline bench discv5`: surrogate discv5 at scale: wall time against simulated time,
//! events/s, memory per identity, and how lookups went. By default a bootstrap: identities join
//! over 30 s, each looks itself up and then a random target about every 30 s, so that in the
//! default 120 s each makes its self-lookup and about three random lookups.

use crate::bench::{figures, print};
use crate::discv5_figures::discv5_figures;
use crate::run::{RunPlan, execute, window_config};
use crate::spec::{Backend, Spec};
use anyhow::Result;
use serde_json::json;
use std::path::Path;
use thermocline_bus::NoProgress;

/// Parameters of `bench discv5`.
#[derive(Clone, Debug, clap::Args)]
pub struct Discv5Bench {
    /// Surrogate identities.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: u32,
    /// Simulated seconds (identities join over the first 30, then look up every ~30 s).
    #[arg(long, default_value_t = 120)]
    pub seconds: u32,
    /// Shards.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Backend.
    #[arg(long, value_enum, default_value = "threads")]
    pub backend: Backend,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Check every lookup against the exact closest set (a scan of all identities per lookup).
    #[arg(long)]
    pub exact: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The spec of `bench discv5`: identities spread over countries like Ethereum nodes.
pub fn discv5_bench_spec(nodes: u32, seconds: u32, seed: u64, exact: bool) -> Spec {
    let text = format!(
        r#"
[run]
name = "bench-discv5"
seed = {seed}
duration = "{seconds} s"

{hosts}
[discv5]
lookup_interval = "30 s"
exact = {exact}
"#,
        hosts = crate::bench::tail_hosts(nodes)
    );
    Spec::parse(&text, "<bench discv5>").expect("the benchmark spec is valid")
}

/// Run `bench discv5`.
pub fn discv5(args: &Discv5Bench, exe: &Path) -> Result<()> {
    let mut spec = discv5_bench_spec(args.nodes, args.seconds, args.seed, args.exact);
    spec.output.dir = std::env::temp_dir().join(format!("thermocline-bench-discv5-{}", std::process::id()));
    let sim_s = spec.run.duration.as_secs_f64();
    let plan = RunPlan { spec, shards: args.shards, backend: args.backend, exe: exe.to_path_buf() };
    let window = window_config(&plan.spec, plan.shards).map_err(anyhow::Error::msg)?;
    let Some(outcome) = execute(&plan, window, &NoProgress, None)? else { return Ok(()) };
    // The run's peak, before the figures below read every lookup row back into memory.
    let peak = crate::model_cmd::peak_rss_bytes();
    let mut v = figures(&plan, &outcome);
    let d = discv5_figures(&outcome)?;
    let _ = std::fs::remove_dir_all(&plan.spec.output.dir);
    let wall = outcome.wall.as_secs_f64();
    v["benchmark"] = json!("discv5");
    v["nodes"] = json!(args.nodes);
    v["sim_s"] = json!(sim_s);
    v["wall_total_s"] = json!(wall);
    v["real_time_factor"] = json!(wall / sim_s);
    v["peak_rss_bytes"] = json!(peak);
    v["bytes_per_identity"] = json!(peak.map(|p| p as f64 / f64::from(args.nodes)));
    v["discv5"] = json!(d);
    print(&v, args.json, || {
        let l = d.as_ref().map(|d| &d.random_lookups);
        format!(
            "Discv5: {} identities, {:.0} s simulated, {} shards on {}\n  wall        {:.2} s ({:.3}x real time)\n  events      {} ({:.2} M/s)\n  peak RSS    {} ({} per identity)\n  lookups     {}\n  table       {}\n",
            args.nodes,
            sim_s,
            args.shards,
            args.backend.name(),
            wall,
            wall / sim_s,
            outcome.totals.events,
            outcome.totals.events as f64 / wall / 1e6,
            peak.map_or("unknown".into(), |p| format!("{:.1} MB", p as f64 / 1e6)),
            peak.map_or("unknown".into(), |p| format!("{:.0} B", p as f64 / f64::from(args.nodes))),
            l.map_or("-".into(), |l| format!(
                "{} random-target, p50/p95 {:.0}/{:.0} ms, {:.1} hops, {:.1} requests, {:.1} found{}",
                l.lookups,
                l.p50_ms,
                l.p95_ms,
                l.mean_hops,
                l.mean_messages,
                l.mean_found,
                l.exact_recall.map_or(String::new(), |r| format!(", recall {:.4}", r))
            )),
            d.as_ref().map_or("-".into(), |d| format!(
                "{:.0} entries in {:.1} buckets on average",
                d.mean_table_entries, d.mean_filled_buckets
            )),
        )
    });
    Ok(())
}
