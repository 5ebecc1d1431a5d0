//! `thermocline partition` and `thermocline bench model`: the network model on its own — host
//! directory, routing and partition — with the figures a study needs before it runs.

use crate::spec::Spec;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use thermocline_models::directory::{HostBandwidth, HostDirectory, HostGroupSpec, HostKind};
use thermocline_models::network::{NetworkModel, NetworkSpec};
use thermocline_models::partition::{Partition, PartitionReport};
use thermocline_models::routing::Routes;
use thermocline_models::units::Bandwidth;

/// Parameters of `thermocline partition`.
#[derive(Clone, Debug, clap::Args)]
pub struct PartitionArgs {
    /// The experiment spec (its `[network]` and `[[hosts]]`).
    pub spec: PathBuf,
    /// Number of shards.
    #[arg(long)]
    pub shards: u32,
    /// Write the partition file here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How far (share of one shard's load) a cut may move from perfect balance to fall between
    /// distant locations.
    #[arg(long, default_value_t = thermocline_models::partition::DEFAULT_TOLERANCE)]
    pub balance_tolerance: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parameters of `thermocline bench model`.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelBench {
    /// Hosts in the generated spec (one surrogate group with country weights).
    #[arg(long, default_value_t = 1_000_000)]
    pub hosts: u32,
    /// Shards to partition into.
    #[arg(long, default_value_t = 8)]
    pub shards: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn report_json(r: &PartitionReport) -> serde_json::Value {
    json!({
        "shards": r.shards,
        "hosts": r.hosts,
        "loads": r.loads,
        "imbalance": r.imbalance,
        "runahead_ns": r.runahead_ns,
        "expected_cut": r.expected_cut,
    })
}

fn report_text(r: &PartitionReport) -> String {
    let runahead = r
        .runahead_ns
        .map_or("unbounded (1 shard)".into(), |ns| thermocline_bus::SimDuration::from_nanos(ns).to_string());
    let mut s = format!(
        "  shards        {}\n  runahead      {runahead}\n  expected cut  {:.1} % of random host pairs cross shards\n  imbalance     {:.3} (largest load / mean)\n",
        r.shards,
        r.expected_cut * 100.0,
        r.imbalance
    );
    for (i, (h, l)) in r.hosts.iter().zip(&r.loads).enumerate() {
        s += &format!("  shard {i:<6} {h} hosts, load {l:.0}\n");
    }
    s
}

/// Run `thermocline partition`.
pub fn partition(args: &PartitionArgs) -> Result<()> {
    let spec = Spec::load(&args.spec)?;
    if spec.hosts.is_empty() {
        bail!("{}: the spec has no [[hosts]] groups to partition", args.spec.display());
    }
    let model = spec.network_model()?;
    let p = Partition::compute_with_tolerance(&model.directory, &model.routes, args.shards, args.balance_tolerance)?;
    let report = p.report(&model.directory, &model.routes);
    if let Some(out) = &args.out {
        std::fs::write(out, p.to_csv()).with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        println!("{}", report_json(&report));
    } else {
        print!("{}", report_text(&report));
        if let Some(out) = &args.out {
            println!("  written to    {}", out.display());
        }
    }
    Ok(())
}

/// Peak resident set of this process, in bytes (`VmHWM`), where the kernel reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The benchmark's host group: a million-node Ethereum-like spread over countries.
fn bench_groups(hosts: u32) -> Vec<HostGroupSpec> {
    let weights = [("DE", 0.22), ("US", 0.20), ("FR", 0.06), ("GB", 0.05), ("other", 0.47)];
    vec![HostGroupSpec {
        name: "tail".into(),
        kind: HostKind::Surrogate,
        count: hosts,
        location: None,
        locations: Some(weights.iter().map(|(k, w)| (k.to_string(), *w)).collect()),
        bandwidth: Some(HostBandwidth { up: Bandwidth(50_000_000), down: Bandwidth(200_000_000) }),
        profile: None,
        load: None,
    }]
}

/// Run `thermocline bench model`.
pub fn bench_model(args: &ModelBench) -> Result<()> {
    let spec = NetworkSpec::default();
    let groups = bench_groups(args.hosts);
    let t0 = Instant::now();
    let topology = NetworkModel::topology(&spec, None)?;
    let t1 = Instant::now();
    let directory = HostDirectory::build(&groups, &topology)?;
    let t2 = Instant::now();
    let routes = Routes::compute(&topology, &directory.used_nodes())?;
    let t3 = Instant::now();
    let partition = Partition::compute(&directory, &routes, args.shards)?;
    let report = partition.report(&directory, &routes);
    let t4 = Instant::now();
    let secs = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64();
    let peak = peak_rss_bytes();
    let result = json!({
        "benchmark": "model",
        "hosts": args.hosts,
        "locations": topology.len(),
        "locations_used": routes.used().len(),
        "build_s": {
            "topology": secs(t0, t1),
            "directory": secs(t1, t2),
            "routing": secs(t2, t3),
            "partition": secs(t3, t4),
            "total": secs(t0, t4),
        },
        "peak_rss_bytes": peak,
        "directory_bytes": directory.memory_bytes(),
        "routing_bytes": routes.memory_bytes(),
        "partition_ranges": partition.ranges.len(),
        "partition": report_json(&report),
    });
    if args.json {
        println!("{result}");
    } else {
        println!(
            "Network model: {} hosts in {} of {} countries, {} shards\n  build         {:.3} s (topology {:.3}, directory {:.3}, routing {:.3}, partition {:.3})\n  peak RSS      {}\n  directory     {:.1} MB, routing {:.1} MB",
            args.hosts,
            routes.used().len(),
            topology.len(),
            args.shards,
            secs(t0, t4),
            secs(t0, t1),
            secs(t1, t2),
            secs(t2, t3),
            secs(t3, t4),
            peak.map_or("unknown".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            directory.memory_bytes() as f64 / 1e6,
            routes.memory_bytes() as f64 / 1e6
        );
        print!("{}", report_text(&report));
    }
    Ok(())
}
