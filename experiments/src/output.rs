//! What a run leaves behind: `summary.json` with the digest, Arrow IPC files of the metrics, the
//! resolved spec, and a short human summary.

use crate::run::{RunOutcome, RunPlan};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use thermocline_bus::Table;
use thermocline_models::metrics::{bus_pairs_batch, bus_windows_batch, concat_tables, write_ipc_file};

/// The machine-readable summary of a run (`summary.json`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// The run's name from the spec.
    pub name: String,
    /// The metrics digest: identical for the same spec and seed on any shard count or backend.
    pub digest: String,
    /// The seed.
    pub seed: u64,
    /// Simulated duration in nanoseconds.
    pub sim_time_ns: u64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Events executed over all shards.
    pub events: u64,
    /// Events per wall second.
    pub events_per_s: f64,
    /// Windows run.
    pub windows: u64,
    /// Runahead in nanoseconds (`null` when unbounded, on one shard).
    pub runahead_ns: Option<u64>,
    /// Number of shards.
    pub shards: u32,
    /// Backend name.
    pub backend: String,
    /// Share of shard wall time spent waiting at the window barrier.
    pub barrier_idle_fraction: f64,
    /// `cut_events[src][dst]`: events between shards.
    pub cut_events: Vec<Vec<u64>>,
    /// `cut_bytes[src][dst]`: encoded bytes between shards.
    pub cut_bytes: Vec<Vec<u64>>,
    /// Files written beside the summary.
    pub files: Vec<String>,
    /// Thermocline version.
    pub version: String,
}

impl Summary {
    /// Summarise a finished run.
    pub fn new(plan: &RunPlan, outcome: &RunOutcome) -> Self {
        let wall_s = outcome.wall.as_secs_f64();
        let runahead = outcome.window.runahead.as_nanos();
        Summary {
            name: plan.spec.run.name.clone(),
            digest: outcome.digest.to_hex(),
            seed: plan.spec.run.seed,
            sim_time_ns: outcome.window.end.as_nanos(),
            wall_s,
            events: outcome.totals.events,
            events_per_s: if wall_s > 0.0 { outcome.totals.events as f64 / wall_s } else { 0.0 },
            windows: outcome.totals.windows,
            runahead_ns: (runahead != u64::MAX).then_some(runahead),
            shards: plan.shards,
            backend: plan.backend.name().to_string(),
            barrier_idle_fraction: outcome.totals.barrier_idle_fraction,
            cut_events: outcome.totals.cut_events.clone(),
            cut_bytes: outcome.totals.cut_bytes.clone(),
            files: Vec::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// Write the results of a run into `dir`; returns the summary written.
pub fn write_outputs(dir: &Path, plan: &RunPlan, outcome: &RunOutcome) -> Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating output directory {}", dir.display()))?;
    let mut summary = Summary::new(plan, outcome);
    let mut files = vec!["spec.toml".to_string()];
    std::fs::write(dir.join("spec.toml"), plan.spec.to_toml()).context("writing spec.toml")?;
    if plan.spec.output.arrow {
        let windows = bus_windows_batch(&outcome.reports)?;
        write_ipc_file(&dir.join("bus_windows.arrow"), &windows.schema(), &[windows])?;
        let pairs = bus_pairs_batch(&outcome.reports)?;
        write_ipc_file(&dir.join("bus_pairs.arrow"), &pairs.schema(), &[pairs])?;
        files.extend(["bus_windows.arrow".to_string(), "bus_pairs.arrow".to_string()]);
        let mut by_name: BTreeMap<&str, Vec<&Table>> = BTreeMap::new();
        for r in &outcome.reports {
            for t in &r.output.tables {
                by_name.entry(&t.name).or_default().push(t);
            }
        }
        for (name, tables) in by_name {
            let (schema, batches) = concat_tables(name, &tables)?;
            let file = format!("{name}.arrow");
            write_ipc_file(&dir.join(&file), &schema, &batches)?;
            files.push(file);
        }
    }
    files.push("summary.json".to_string());
    summary.files = files;
    let json = serde_json::to_string_pretty(&summary)?;
    std::fs::write(dir.join("summary.json"), json + "\n").context("writing summary.json")?;
    Ok(summary)
}

/// A short human summary of a run.
pub fn human_summary(s: &Summary, dir: &Path) -> String {
    let runahead = s
        .runahead_ns
        .map_or("unbounded (1 shard)".to_string(), |ns| thermocline_bus::SimDuration::from_nanos(ns).to_string());
    let cut: u64 = s.cut_events.iter().flatten().sum();
    let rows = [
        ("experiment", s.name.clone()),
        ("simulated", thermocline_bus::SimDuration::from_nanos(s.sim_time_ns).to_string()),
        ("wall", format!("{:.3} s", s.wall_s)),
        ("events", format!("{} ({:.2} M/s)", s.events, s.events_per_s / 1e6)),
        ("shards", format!("{} on {}", s.shards, s.backend)),
        ("windows", format!("{} (runahead {runahead})", s.windows)),
        ("cross-shard events", format!("{cut}")),
        ("barrier idle", format!("{:.1} %", s.barrier_idle_fraction * 100.0)),
        ("digest", s.digest.clone()),
        ("output", dir.display().to_string()),
    ];
    rows.iter().map(|(k, v)| format!("  {k:<20} {v}\n")).collect()
}
