//! `thermocline bench`: benchmarks that print their figures (as JSON with `--json`).
//!
//! - `bench phold`: committed events/s, windows/s, barrier idle fraction and µs per window of the
//!   PHOLD model, for one or more shard counts and backends; checks that every configuration
//!   produced the same digest and reports speedups over one shard.
//! - `bench window`: µs per window with empty batches (the idle workload) per backend.

use crate::mpi_support::{MpiSession, raw_collectives_us};
use crate::run::{RunOutcome, RunPlan, execute, window_config};
use crate::spec::{Backend, Spec};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::Path;
use thermocline_bus::codec::{BATCH_HEADER_BYTES, EVENT_HEADER_BYTES};
use thermocline_bus::{NoProgress, SimDuration, SimTime};
use thermocline_models::idle::IdleConfig;
use thermocline_models::phold::PholdConfig;
use thermocline_surrogate::config::LinkQueue;

/// Parameters of `bench phold`.
#[derive(Clone, Debug, clap::Args)]
pub struct PholdBench {
    /// Logical processes.
    #[arg(long, default_value_t = 100_000)]
    pub lps: u32,
    /// Shard counts to run, comma-separated (e.g. 1,2); default 1, or the number of MPI ranks.
    #[arg(long, value_delimiter = ',')]
    pub shards: Option<Vec<u32>>,
    /// Backends to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "threads")]
    pub backend: Vec<Backend>,
    /// Share of events sent to another LP group (= another shard when groups = shards).
    #[arg(long, default_value_t = 0.1)]
    pub remote_share: f64,
    /// LP groups (default: the largest shard count, so that remote events cross shards).
    #[arg(long)]
    pub groups: Option<u32>,
    /// Simulated duration.
    #[arg(long, default_value = "300 ms")]
    pub duration: SimDuration,
    /// Lookahead (minimum event delay; the runahead).
    #[arg(long, default_value = "1 ms")]
    pub lookahead: SimDuration,
    /// Mean extra delay.
    #[arg(long, default_value = "1 ms")]
    pub mean_delay: SimDuration,
    /// Events per LP at start.
    #[arg(long, default_value_t = 1)]
    pub population: u32,
    /// Payload bytes on cross-shard events.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parameters of `bench window`.
#[derive(Clone, Debug, clap::Args)]
pub struct WindowBench {
    /// Shard counts, comma-separated; default 2, or the number of MPI ranks.
    #[arg(long, value_delimiter = ',')]
    pub shards: Option<Vec<u32>>,
    /// Backends, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "threads,processes")]
    pub backend: Vec<Backend>,
    /// Windows to run.
    #[arg(long, default_value_t = 20_000)]
    pub windows: u64,
    /// Payload bytes of the one event each shard sends every other shard per window (0: none).
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Wall seconds of the window loop: the slowest shard's, from its first window to its report.
fn loop_wall_s(o: &RunOutcome) -> f64 {
    o.reports.iter().map(|r| r.wall_ns).max().unwrap_or(0) as f64 / 1e9
}

pub(crate) fn figures(plan: &RunPlan, o: &RunOutcome) -> Value {
    let wall = loop_wall_s(o);
    let cut: u64 = o.totals.cut_events.iter().flatten().sum();
    let rate = |x: f64| if wall > 0.0 { x / wall } else { 0.0 };
    json!({
        "backend": plan.backend.name(),
        "shards": plan.shards,
        "events": o.totals.events,
        "windows": o.totals.windows,
        "wall_s": wall,
        "launch_to_end_s": o.wall.as_secs_f64(),
        "events_per_s": rate(o.totals.events as f64),
        "windows_per_s": rate(o.totals.windows as f64),
        "us_per_window": if o.totals.windows > 0 { wall * 1e6 / o.totals.windows as f64 } else { 0.0 },
        "barrier_idle_fraction": o.totals.barrier_idle_fraction,
        "cross_shard_events": cut,
        "cross_shard_share": if o.totals.events > 0 { cut as f64 / o.totals.events as f64 } else { 0.0 },
        "digest": o.digest.to_hex(),
    })
}

/// Run every (backend, shard count). Returns `None` on MPI ranks other than 0, which print
/// nothing. Under MPI the shard count is the number of ranks, and MPI must be the only backend.
fn run_matrix(
    base: &Spec,
    shards: Option<&[u32]>,
    default_shards: u32,
    backends: &[Backend],
    exe: &Path,
    mpi: Option<&MpiSession>,
) -> Result<Option<Vec<(RunPlan, RunOutcome)>>> {
    let mut runs = Vec::new();
    for &backend in backends {
        let counts = match (backend, mpi) {
            (Backend::Mpi, Some(session)) => {
                if backends.len() > 1 {
                    bail!("--backend mpi cannot be combined with other backends (every rank would run them all)");
                }
                let ranks = session.size();
                if let Some(list) = shards.filter(|l| l.iter().any(|&n| n != ranks)) {
                    bail!(
                        "--shards {list:?}, but mpirun started {ranks} ranks: under MPI the shard count is the number of ranks"
                    );
                }
                vec![ranks]
            }
            _ => shards.map_or_else(|| vec![default_shards], <[u32]>::to_vec),
        };
        for n in counts {
            let plan = RunPlan { spec: base.clone(), shards: n, backend, exe: exe.to_path_buf() };
            let window = window_config(&plan.spec, n).map_err(anyhow::Error::msg)?;
            match execute(&plan, window, &NoProgress, mpi)? {
                Some(outcome) => runs.push((plan, outcome)),
                None => return Ok(None),
            }
        }
    }
    Ok(Some(runs))
}

pub(crate) fn print(result: &Value, json_out: bool, text: impl FnOnce() -> String) {
    if json_out {
        println!("{result}");
    } else {
        print!("{}", text());
    }
}

/// Run `bench phold`.
pub fn phold(args: &PholdBench, exe: &Path, mpi: Option<&MpiSession>) -> Result<()> {
    let groups = args.groups.unwrap_or_else(|| match mpi {
        Some(session) => session.size(),
        None => args.shards.as_deref().and_then(|l| l.iter().copied().max()).unwrap_or(1).max(1),
    });
    let mut spec = Spec::parse("[phold]\n", "<bench phold>").expect("a minimal spec");
    spec.run.name = "bench-phold".into();
    spec.run.seed = args.seed;
    spec.run.duration = args.duration;
    spec.phold = Some(PholdConfig {
        lps: args.lps,
        groups,
        lookahead: args.lookahead,
        mean_delay: args.mean_delay,
        remote_share: args.remote_share,
        population: args.population,
        payload_bytes: args.payload_bytes,
        fault: None,
    });
    let Some(runs) = run_matrix(&spec, args.shards.as_deref(), 1, &args.backend, exe, mpi)? else { return Ok(()) };
    let runs: Vec<Value> = runs.iter().map(|(plan, o)| figures(plan, o)).collect();
    let digests: Vec<&str> = runs.iter().map(|r| r["digest"].as_str().unwrap_or("")).collect();
    if digests.windows(2).any(|w| w[0] != w[1]) {
        bail!("determinism failure: configurations produced different digests: {digests:?}");
    }
    let speedups: Vec<Value> = runs
        .iter()
        .filter(|r| r["shards"] != 1)
        .filter_map(|r| {
            let base = runs.iter().find(|b| b["shards"] == 1 && b["backend"] == r["backend"])?;
            let s = r["events_per_s"].as_f64()? / base["events_per_s"].as_f64()?;
            Some(json!({"backend": r["backend"], "shards": r["shards"], "speedup_vs_1_shard": s}))
        })
        .collect();
    let result = json!({
        "benchmark": "phold",
        "lps": args.lps,
        "groups": groups,
        "remote_share": args.remote_share,
        "lookahead_ns": args.lookahead.as_nanos(),
        "mean_delay_ns": args.mean_delay.as_nanos(),
        "sim_time_ns": args.duration.as_nanos(),
        "digests_equal": true,
        "runs": runs,
        "speedups": speedups,
    });
    print(&result, args.json, || {
        let mut out = format!(
            "PHOLD: {} LPs in {groups} groups, remote share {}, {} simulated\n",
            args.lps, args.remote_share, args.duration
        );
        out += &format!(
            "  {:<10} {:>6} {:>12} {:>10} {:>10} {:>9} {:>8}\n",
            "backend", "shards", "events", "M ev/s", "windows/s", "us/window", "idle"
        );
        for r in result["runs"].as_array().into_iter().flatten() {
            out += &format!(
                "  {:<10} {:>6} {:>12} {:>10.2} {:>10.0} {:>9.1} {:>7.1}%\n",
                r["backend"].as_str().unwrap_or(""),
                r["shards"],
                r["events"],
                r["events_per_s"].as_f64().unwrap_or(0.0) / 1e6,
                r["windows_per_s"].as_f64().unwrap_or(0.0),
                r["us_per_window"].as_f64().unwrap_or(0.0),
                r["barrier_idle_fraction"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
        for s in result["speedups"].as_array().into_iter().flatten() {
            out += &format!(
                "  speedup {} x{}: {:.2}x\n",
                s["backend"].as_str().unwrap_or(""),
                s["shards"],
                s["speedup_vs_1_shard"].as_f64().unwrap_or(0.0)
            );
        }
        out += &format!("  digest {} (identical in every run)\n", digests.first().unwrap_or(&""));
        out
    });
    Ok(())
}

/// Run `bench window`.
pub fn window(args: &WindowBench, exe: &Path, mpi: Option<&MpiSession>) -> Result<()> {
    let period = SimDuration::from_millis(1);
    let mut spec = Spec::parse("[idle]\n", "<bench window>").expect("a minimal spec");
    spec.run.name = "bench-window".into();
    spec.run.duration = SimDuration::from_nanos(period.as_nanos() * args.windows);
    spec.idle = Some(IdleConfig { period, payload_bytes: args.payload_bytes });
    let outcomes = run_matrix(&spec, args.shards.as_deref(), 2, &args.backend, exe, mpi)?;
    // The raw baseline is collective too: every rank takes part before rank 0 prints.
    let bytes_per_peer =
        if args.payload_bytes > 0 { BATCH_HEADER_BYTES + EVENT_HEADER_BYTES + args.payload_bytes as usize } else { 0 };
    let raw = mpi.map(|session| raw_collectives_us(session, args.windows, bytes_per_peer));
    let Some(outcomes) = outcomes else { return Ok(()) };
    let runs: Vec<Value> = outcomes
        .iter()
        .map(|(plan, o)| {
            let mut v = figures(plan, o);
            if let (Backend::Mpi, Some((raw, floor))) = (plan.backend, raw) {
                let ours = v["us_per_window"].as_f64().unwrap_or(0.0);
                v["raw_mpi_us_per_round"] = json!(raw);
                v["protocol_vs_raw_mpi"] = json!(if raw > 0.0 { ours / raw } else { 0.0 });
                v["raw_allreduce_only_us"] = json!(floor);
            }
            v
        })
        .collect();
    let result = json!({
        "benchmark": "window",
        "windows": args.windows,
        "payload_bytes": args.payload_bytes,
        "batch_bytes_per_peer": bytes_per_peer,
        "runs": runs,
    });
    print(&result, args.json, || {
        let mut out =
            format!("Window overhead, {} windows, {} batch bytes per peer per window\n", args.windows, bytes_per_peer);
        for r in &runs {
            let us = r["us_per_window"].as_f64().unwrap_or(0.0);
            out += &format!("  {:<10} {} shards: {us:.2} us/window", r["backend"].as_str().unwrap_or(""), r["shards"]);
            if let Some(raw) = r["raw_mpi_us_per_round"].as_f64() {
                let ratio = r["protocol_vs_raw_mpi"].as_f64().unwrap_or(0.0);
                let floor = r["raw_allreduce_only_us"].as_f64().unwrap_or(0.0);
                out += &format!(
                    " (raw MPI_Allreduce + MPI_Alltoallv: {raw:.2} us, ratio {ratio:.2}; MPI_Allreduce alone: {floor:.2} us)"
                );
            }
            out += "\n";
        }
        out
    });
    Ok(())
}

/// Parameters of `bench gossip`.
#[derive(Clone, Debug, clap::Args)]
pub struct GossipBench {
    /// Surrogate identities.
    #[arg(long, default_value_t = 10_000)]
    pub nodes: u32,
    /// Slots (12 s each, one 100 KiB block per slot) after a 10 s warm-up (60 s with `--discovery`).
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
    /// Shards.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Backend.
    #[arg(long, value_enum, default_value = "threads")]
    pub backend: Backend,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Identities find their peers by discv5 (`[gossip] discovery = "discv5"`): they join over
    /// 30 s and the warm-up is 60 s; the JSON gains `discv5` with the peering figures.
    #[arg(long)]
    pub discovery: bool,
    /// The gossip profile: a client's (`ethereum`, `lighthouse`) or a calibrated one
    /// (`calibrated/gossip-node`); the options below change it.
    #[arg(long, default_value = "ethereum")]
    pub profile: String,
    /// How identities' message copies share their upload link (`[gossip.params] upload`):
    /// `fifo` or `fair` (default: the profile's), to measure what the fair link costs.
    #[arg(long, value_enum)]
    pub upload: Option<LinkArg>,
    /// How messages arriving together share the download link (`[gossip.params] download`;
    /// default: the profile's).
    #[arg(long, value_enum)]
    pub download: Option<LinkArg>,
    /// TCP's slow start on idle connections (`[gossip.params] slow_start`; needs a fair upload).
    #[arg(long)]
    pub slow_start: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `bench gossip --upload` and `--download`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LinkArg {
    /// One message at a time.
    Fifo,
    /// Messages share the link.
    Fair,
    /// Downloading only: bytes pass while the sender is still sending them.
    Pipelined,
}

impl From<LinkArg> for LinkQueue {
    fn from(u: LinkArg) -> Self {
        match u {
            LinkArg::Fifo => LinkQueue::Fifo,
            LinkArg::Fair => LinkQueue::Fair,
            LinkArg::Pipelined => LinkQueue::Pipelined,
        }
    }
}

/// The `[[hosts]]` group of the surrogate benchmarks: `nodes` identities spread over countries
/// like Ethereum nodes, 50 Mbit up and 200 Mbit down.
pub(crate) fn tail_hosts(nodes: u32) -> String {
    format!(
        "[[hosts]]\nname = \"tail\"\ncount = {nodes}\n\
         countries = {{ DE = 0.22, US = 0.20, FR = 0.06, GB = 0.05, other = 0.47 }}\n\
         bandwidth = {{ up = \"50 Mbit\", down = \"200 Mbit\" }}\n"
    )
}

/// The spec of `bench gossip`: identities spread over countries like Ethereum nodes; with
/// `discovery`, they find their peers by discv5.
pub fn gossip_bench_spec(nodes: u32, slots: u32, seed: u64, discovery: bool) -> Spec {
    let (warm_up, discv5) =
        if discovery { (60, "discovery = \"discv5\"\n\n[discv5]\njoin_over = \"30 s\"\n") } else { (10, "") };
    let text = format!(
        r#"
[run]
name = "bench-gossip"
seed = {seed}
duration = "{duration} s"

{hosts}
[gossip]
profile = "ethereum"
{discv5}
[traffic]
start = "{warm_up} s"
slot = "12 s"
beacon_block = {{ size = "100 KiB" }}
"#,
        duration = warm_up + 12 * slots as u64,
        hosts = tail_hosts(nodes)
    );
    Spec::parse(&text, "<bench gossip>").expect("the benchmark spec is valid")
}

/// Run `bench gossip`.
pub fn gossip(args: &GossipBench, exe: &Path) -> Result<()> {
    let mut spec = gossip_bench_spec(args.nodes, args.slots, args.seed, args.discovery);
    let g = spec.gossip.as_mut().context("the benchmark spec has a [gossip] section")?;
    g.profile = args.profile.clone();
    g.params.upload = args.upload.map(LinkQueue::from).or(g.params.upload);
    g.params.download = args.download.map(LinkQueue::from).or(g.params.download);
    if args.slow_start {
        g.params.slow_start = Some(true);
    }
    let params = g.params_for(&args.profile).map_err(anyhow::Error::msg)?;
    // Where the engines spill the rows of retired messages: a folder of this process's own.
    spec.output.dir = std::env::temp_dir().join(format!("thermocline-bench-gossip-{}", std::process::id()));
    let sim_s = spec.run.duration.as_secs_f64();
    let plan = RunPlan { spec, shards: args.shards, backend: args.backend, exe: exe.to_path_buf() };
    let window = window_config(&plan.spec, plan.shards).map_err(anyhow::Error::msg)?;
    let Some(outcome) = execute(&plan, window, &NoProgress, None)? else { return Ok(()) };
    let mut v = figures(&plan, &outcome);
    let figures = crate::output::gossip_figures(&outcome)?;
    let discovery = crate::discv5_figures::discv5_figures(&outcome)?;
    let peak = crate::model_cmd::peak_rss_bytes();
    let _ = std::fs::remove_dir_all(&plan.spec.output.dir);
    let wall = outcome.wall.as_secs_f64();
    let slots = sim_s / 12.0;
    v["benchmark"] = json!("gossip");
    v["nodes"] = json!(args.nodes);
    v["profile"] = json!(args.profile);
    v["upload"] = json!(params.upload);
    v["download"] = json!(params.download);
    v["slow_start"] = json!(params.slow_start);
    v["sim_s"] = json!(sim_s);
    v["wall_total_s"] = json!(wall);
    v["wall_s_per_sim_slot"] = json!(wall / slots);
    v["real_time_factor"] = json!(wall / sim_s);
    // Steady state: the wall time of the windows after the warm-up (every shard spends a window's
    // wall time running, encoding, waiting or decoding, so any shard's sum measures it), without
    // building the engines, the warm-up or writing results.
    let warm_up = SimTime::ZERO.saturating_add(plan.spec.traffic.start);
    let steady_ns: u64 = outcome
        .reports
        .iter()
        .map(|r| {
            r.windows
                .iter()
                .filter(|w| w.start >= warm_up)
                .map(|w| w.exec_ns + w.encode_ns + w.wait_ns + w.decode_ns)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    // Per shard in the steady state: time running its engine (and coding batches) against time
    // waiting for the others, and events executed, to show how evenly the partition loads them.
    let per_shard: Vec<_> = outcome
        .reports
        .iter()
        .map(|r| {
            let steady = r.windows.iter().filter(|w| w.start >= warm_up);
            let (mut busy, mut wait, mut events) = (0u64, 0u64, 0u64);
            for w in steady {
                busy += w.exec_ns + w.encode_ns + w.decode_ns;
                wait += w.wait_ns;
                events += w.events;
            }
            json!({"shard": r.shard.0, "busy_s": busy as f64 / 1e9, "wait_s": wait as f64 / 1e9, "events": events})
        })
        .collect();
    v["steady_shards"] = json!(per_shard);
    let steady_slots = (sim_s - plan.spec.traffic.start.as_secs_f64()) / 12.0;
    v["steady_wall_s_per_slot"] = json!(steady_ns as f64 / 1e9 / steady_slots);
    v["steady_real_time_factor"] = json!(steady_ns as f64 / 1e9 / (steady_slots * 12.0));
    v["peak_rss_bytes"] = json!(peak);
    v["rss_bytes_per_identity"] = json!(peak.map(|p| p as f64 / args.nodes as f64));
    v["gossip"] = json!(figures);
    if discovery.is_some() {
        v["discv5"] = json!(discovery);
    }
    print(&v, args.json, || {
        format!(
            "Gossip: {} identities, {:.0} s simulated ({} slots after {:.0} s warm-up), {} shards on {}\n  wall          {:.2} s ({:.2} s per 12-s slot, {:.2}x real time)\n  steady state  {:.2} s per 12-s slot after the warm-up ({:.2}x real time)\n  events        {} ({:.2} M/s)\n  peak RSS      {} ({} per identity)\n  delivery      {}\n",
            args.nodes,
            sim_s,
            args.slots,
            plan.spec.traffic.start.as_secs_f64(),
            args.shards,
            args.backend.name(),
            wall,
            wall / slots,
            wall / sim_s,
            steady_ns as f64 / 1e9 / steady_slots,
            steady_ns as f64 / 1e9 / (steady_slots * 12.0),
            outcome.totals.events,
            outcome.totals.events as f64 / wall / 1e6,
            peak.map_or("unknown".into(), |p| format!("{:.1} MB", p as f64 / 1e6)),
            peak.map_or("unknown".into(), |p| format!("{:.0} B", p as f64 / args.nodes as f64)),
            figures.map_or("-".into(), |g| format!(
                "reliability {:.4} %, p50/p95/p99 {:.0}/{:.0}/{:.0} ms, {:.2} duplicates per delivery",
                g.blocks.reliability * 100.0,
                g.blocks.p50_ms,
                g.blocks.p95_ms,
                g.blocks.p99_ms,
                g.blocks.duplicates_per_delivery
            )),
        )
    });
    Ok(())
}
