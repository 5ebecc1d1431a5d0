//! What a run leaves behind: `summary.json` with the digest, the metrics tables as Arrow IPC
//! and/or Parquet files (`[output] format`), the resolved spec, and a short human summary.

use crate::outdir::{write_atomic, write_synced};
use crate::run::{RunOutcome, RunPlan};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;
use thermocline_bus::Table;
use thermocline_models::metrics::{
    TableFormat, TableWriter, bus_pairs_batch, bus_windows_batch, concat_tables, write_table,
};
use thermocline_surrogate::rpc::MsgKey;
use thermocline_surrogate::topics::topic_family_of_name;

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
    /// Gossip figures, for runs of the gossip workload.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gossip: Option<GossipFigures>,
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
            gossip: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What a gossip run measured: delivery, delay, duplicates and bytes. The headline figures are
/// the `beacon_block` topic's; `by_family` has the same for every topic family that carried
/// messages (attestation and data column subnets).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GossipFigures {
    /// Identities.
    pub identities: u64,
    /// The `beacon_block` figures (at the top level of the JSON object).
    #[serde(flatten)]
    pub blocks: TopicFigures,
    /// Bytes sent per identity over the run, all topics.
    pub bytes_sent_per_node: f64,
    /// Figures per topic family.
    pub by_family: BTreeMap<String, TopicFigures>,
    /// `beacon_block` arrivals at surrogate identities (`gossip_arrivals` rows with `hot` false).
    pub cold: ArrivalFigures,
    /// `beacon_block` arrivals at real clients (rows with `hot` true), in a run whose boundary
    /// identities sent clients gossip.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hot: Option<ArrivalFigures>,
}

/// `beacon_block` arrivals at one kind of node (surrogate identities, or real clients).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArrivalFigures {
    /// Nodes of this kind: identities, or direct hosts that boundary identities sent gossip to.
    pub nodes: u64,
    /// (node, message) first arrivals.
    pub received: u64,
    /// Share of the (node, message) pairs these nodes could receive: every subscriber of every
    /// message for identities; for clients, every block published in the run (the tail's and
    /// the clients') at every client but its publisher.
    pub reliability: f64,
    /// Arrival delay since publication, ms: median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
}

impl ArrivalFigures {
    fn new(nodes: u64, delays: Vec<u64>, expected: u64) -> Self {
        let received = delays.len() as u64;
        let t = topic_figures(delays, 0, 0, expected);
        ArrivalFigures { nodes, received, reliability: t.reliability, p50_ms: t.p50_ms, p95_ms: t.p95_ms }
    }
}

/// Delivery figures of one topic family.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopicFigures {
    /// Messages published.
    pub messages: u64,
    /// Share of (subscriber, message) pairs delivered.
    pub reliability: f64,
    /// Arrival delay since publish, ms: median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Copies received after the first, per delivery.
    pub duplicates_per_delivery: f64,
}

/// Column `column` (u64 or u32) of table `table` over every shard of `outcome`; empty if no shard
/// wrote the table.
pub fn table_column_u64(outcome: &RunOutcome, table: &str, column: &str) -> Result<Vec<u64>> {
    let tables: Vec<&Table> =
        outcome.reports.iter().flat_map(|r| r.output.tables.iter()).filter(|t| t.name == table).collect();
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let (_, batches) = concat_tables(table, &tables)?;
    Ok(column_u64(&batches, column))
}

fn column_u64(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<u64> {
    use arrow_array::{Array, UInt32Array, UInt64Array};
    let mut out = Vec::new();
    for b in batches {
        let Some(c) = b.column_by_name(name) else { continue };
        if let Some(a) = c.as_any().downcast_ref::<UInt64Array>() {
            out.extend(a.values().iter().copied());
        } else if let Some(a) = c.as_any().downcast_ref::<UInt32Array>() {
            out.extend(a.values().iter().map(|&v| v as u64));
        }
    }
    out
}

fn column_bool(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<bool> {
    use arrow_array::{Array, BooleanArray};
    let mut out = Vec::new();
    for b in batches {
        match b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<BooleanArray>()) {
            Some(a) => out.extend((0..a.len()).map(|k| a.value(k))),
            None => out.extend(std::iter::repeat_n(false, b.num_rows())),
        }
    }
    out
}

fn column_str(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<String> {
    use arrow_array::{Array, StringArray};
    let mut out = Vec::new();
    for b in batches {
        let Some(c) = b.column_by_name(name) else { continue };
        if let Some(a) = c.as_any().downcast_ref::<StringArray>() {
            out.extend((0..a.len()).map(|k| a.value(k).to_string()));
        }
    }
    out
}

/// Figures of one family from its delays (sorted here), duplicate count, messages and
/// expected deliveries.
fn topic_figures(mut delays: Vec<u64>, dups: u64, messages: u64, expected: u64) -> TopicFigures {
    delays.sort_unstable();
    let pct = |p: f64| -> f64 {
        if delays.is_empty() {
            return 0.0;
        }
        let k = ((p * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1;
        delays[k] as f64 / 1e6
    };
    TopicFigures {
        messages,
        reliability: delays.len() as f64 / expected.max(1) as f64,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        duplicates_per_delivery: if delays.is_empty() { 0.0 } else { dups as f64 / delays.len() as f64 },
    }
}

/// The gossip figures of a run, from its engines' tables (`None` if it ran no gossip).
pub fn gossip_figures(outcome: &RunOutcome) -> Result<Option<GossipFigures>> {
    let named = |name: &str| -> Vec<&Table> {
        outcome.reports.iter().flat_map(|r| r.output.tables.iter()).filter(|t| t.name == name).collect()
    };
    let (arrivals, messages, nodes) = (named("gossip_arrivals"), named("gossip_messages"), named("gossip_nodes"));
    if nodes.is_empty() {
        return Ok(None);
    }
    let (_, arrivals) = concat_tables("gossip_arrivals", &arrivals)?;
    let (_, messages) = concat_tables("gossip_messages", &messages)?;
    let (schema, nodes) = concat_tables("gossip_nodes", &nodes)?;
    let identities = nodes.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    // Per family: (delays, duplicates, messages, expected deliveries).
    let mut per: BTreeMap<String, (Vec<u64>, u64, u64, u64)> = BTreeMap::new();
    for (topic, subscribers) in column_str(&messages, "topic").iter().zip(column_u64(&messages, "subscribers")) {
        let f = per.entry(topic_family_of_name(topic).to_string()).or_default();
        f.2 += 1;
        // Every subscriber should hold it (a subscribed publisher from the start, at delay 0).
        f.3 += subscribers;
    }
    let topics = column_str(&arrivals, "topic");
    let delays = column_u64(&arrivals, "arrival_since_publish_ns");
    let dups = column_u64(&arrivals, "duplicates");
    let hot = column_bool(&arrivals, "hot");
    let mut hot_blocks = Vec::new();
    for (((topic, delay), dup), hot) in topics.iter().zip(delays).zip(dups).zip(hot) {
        if hot {
            if topic_family_of_name(topic) == "beacon_block" {
                hot_blocks.push(delay);
            }
            continue;
        }
        let f = per.entry(topic_family_of_name(topic).to_string()).or_default();
        f.0.push(delay);
        f.1 += dup;
    }
    let by_family: BTreeMap<String, TopicFigures> = per
        .into_iter()
        .map(|(name, (delays, dups, messages, expected))| (name, topic_figures(delays, dups, messages, expected)))
        .collect();
    let sent: u64 = schema
        .fields()
        .iter()
        .filter(|f| f.name().starts_with("bytes_sent_"))
        .map(|f| column_u64(&nodes, f.name()).iter().sum::<u64>())
        .sum();
    let block = by_family.get("beacon_block").cloned().unwrap_or_else(|| topic_figures(Vec::new(), 0, 0, 0));
    let cold_delays: Vec<u64> = topics
        .iter()
        .zip(column_u64(&arrivals, "arrival_since_publish_ns"))
        .zip(column_bool(&arrivals, "hot"))
        .filter(|((t, _), hot)| !hot && topic_family_of_name(t) == "beacon_block")
        .map(|((_, d), _)| d)
        .collect();
    let cold_expected: u64 = column_str(&messages, "topic")
        .iter()
        .zip(column_u64(&messages, "subscribers"))
        .filter(|(t, _)| topic_family_of_name(t) == "beacon_block")
        .map(|(_, s)| s)
        .sum();
    let hot = hot_figures(outcome, &messages, &arrivals, hot_blocks)?;
    Ok(Some(GossipFigures {
        identities,
        blocks: block,
        bytes_sent_per_node: if identities == 0 { 0.0 } else { sent as f64 / identities as f64 },
        by_family,
        cold: ArrivalFigures::new(identities, cold_delays, cold_expected),
        hot,
    }))
}

/// The clients' `beacon_block` figures, if boundary identities sent clients gossip (the direct
/// engine's `hot_marks` table is there): the clients are the hosts that got marks; each could
/// receive every block the tail published and every client's block but its own.
fn hot_figures(
    outcome: &RunOutcome,
    messages: &[arrow_array::RecordBatch],
    arrivals: &[arrow_array::RecordBatch],
    delays: Vec<u64>,
) -> Result<Option<ArrivalFigures>> {
    let marks: Vec<&Table> =
        outcome.reports.iter().flat_map(|r| r.output.tables.iter()).filter(|t| t.name == "hot_marks").collect();
    if marks.is_empty() {
        return Ok(None);
    }
    let (_, marks) = concat_tables("hot_marks", &marks)?;
    let clients = column_u64(&marks, "marks").iter().filter(|&&m| m > 0).count() as u64;
    let tail_blocks =
        column_str(messages, "topic").iter().filter(|t| topic_family_of_name(t) == "beacon_block").count() as u64;
    let named = |name: &str| -> Vec<&Table> {
        outcome.reports.iter().flat_map(|r| r.output.tables.iter()).filter(|t| t.name == name).collect()
    };
    let (_, tail_seen) = concat_tables("client_message_arrivals", &named("client_message_arrivals"))?;
    let is_block = |t: &String| topic_family_of_name(t) == "beacon_block";
    let mut client_blocks: std::collections::BTreeSet<u64> = column_str(&tail_seen, "topic")
        .iter()
        .zip(column_u64(&tail_seen, "message_id"))
        .filter(|(t, _)| is_block(t))
        .map(|(_, k)| k)
        .collect();
    client_blocks.extend(
        column_str(arrivals, "topic")
            .iter()
            .zip(column_u64(arrivals, "message_id"))
            .filter(|(t, k)| is_block(t) && MsgKey(*k).is_client())
            .map(|(_, k)| k),
    );
    let c = client_blocks.len() as u64;
    let expected = (clients * (tail_blocks + c)).saturating_sub(c);
    Ok(Some(ArrivalFigures::new(clients, delays, expected)))
}

/// Write every table of a run into `dir` in `format`, each through one [`TableWriter`]: the
/// bus's `bus_windows` and `bus_pairs`, then the engines' tables by name (each name's shards in
/// shard order, batch by batch). Returns the file names written.
fn write_tables(dir: &Path, outcome: &RunOutcome, format: TableFormat) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let bus =
        [("bus_windows", bus_windows_batch(&outcome.reports)?), ("bus_pairs", bus_pairs_batch(&outcome.reports)?)];
    for (name, batch) in bus {
        files.extend(write_table(dir, name, batch.schema(), std::slice::from_ref(&batch), format)?);
    }
    let mut by_name: BTreeMap<&str, Vec<&Table>> = BTreeMap::new();
    for r in &outcome.reports {
        for t in &r.output.tables {
            by_name.entry(&t.name).or_default().push(t);
        }
    }
    for (name, tables) in by_name {
        let (schema, batches) = concat_tables(name, &tables)?;
        let mut w = TableWriter::create(dir, name, schema, format)?;
        for b in &batches {
            w.write(b)?;
        }
        files.extend(w.finish()?);
    }
    Ok(files)
}

/// Write the results of a run into `dir` (the run's staging folder), `summary.json` last and
/// atomically; returns the summary written. The stored spec names `target`, where the results
/// will be.
pub fn write_outputs(dir: &Path, target: &Path, plan: &RunPlan, outcome: &RunOutcome) -> Result<Summary> {
    let mut summary = Summary::new(plan, outcome);
    let mut files = vec!["spec.toml".to_string()];
    let mut spec = plan.spec.clone();
    spec.output.dir = target.to_path_buf();
    write_synced(&dir.join("spec.toml"), spec.to_toml().as_bytes())?;
    if let Some(format) = plan.spec.output.tables() {
        files.extend(write_tables(dir, outcome, format)?);
    }
    files.push("summary.json".to_string());
    summary.files = files;
    summary.gossip = gossip_figures(outcome)?;
    let json = serde_json::to_string_pretty(&summary)? + "\n";
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
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
    let mut text: String = rows.iter().map(|(k, v)| format!("  {k:<20} {v}\n")).collect();
    if let Some(g) = &s.gossip {
        let rows = [
            ("identities", format!("{}", g.identities)),
            ("messages", format!("{}", g.blocks.messages)),
            ("reliability", format!("{:.4} %", g.blocks.reliability * 100.0)),
            (
                "arrival p50/p95/p99",
                format!("{:.1} / {:.1} / {:.1} ms", g.blocks.p50_ms, g.blocks.p95_ms, g.blocks.p99_ms),
            ),
            ("duplicates", format!("{:.2} per delivery", g.blocks.duplicates_per_delivery)),
            ("bytes sent per node", format!("{:.1} KiB", g.bytes_sent_per_node / 1024.0)),
        ];
        text += &rows.iter().map(|(k, v)| format!("  {k:<20} {v}\n")).collect::<String>();
        if let Some(hot) = &g.hot {
            for (name, f) in [("cold arrivals", &g.cold), ("hot arrivals", hot)] {
                text += &format!(
                    "  {name:<20} {} nodes, {} blocks received, {:.4} %, p50/p95 {:.1} / {:.1} ms\n",
                    f.nodes,
                    f.received,
                    f.reliability * 100.0,
                    f.p50_ms,
                    f.p95_ms
                );
            }
        }
        for (name, f) in g.by_family.iter().filter(|(name, _)| name.as_str() != "beacon_block") {
            text += &format!(
                "  {:<20} {} messages, {:.4} % delivered, p50/p95/p99 {:.1} / {:.1} / {:.1} ms, {:.2} duplicates\n",
                name,
                f.messages,
                f.reliability * 100.0,
                f.p50_ms,
                f.p95_ms,
                f.p99_ms,
                f.duplicates_per_delivery
            );
        }
    }
    text
}
