//! What a run leaves behind: `summary.json` with the digest, the metrics tables as Arrow IPC
//! and/or Parquet files (`[output] format`), the resolved spec, and a short human summary.

use crate::outdir::{write_atomic, write_synced};
use crate::quantiles::TwoPass;
use crate::run::{RunOutcome, RunPlan};
use crate::spill::Tables;
use anyhow::Result;
use arrow_array::RecordBatch;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use thermocline_models::metrics::{TableFormat, TableWriter, bus_pairs_batch, bus_windows_batch, write_table};
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
    /// Discovery figures, for runs of the discv5 workload.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discv5: Option<crate::discv5_figures::Discv5Figures>,
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
            discv5: None,
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
    /// In an Ethereum domain (`[gossip.eth2]`), the clients' `beacon_block` arrivals at
    /// surrogate identities, since the start of each block's slot (as `hot` is there).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tail_client_blocks: Option<ArrivalFigures>,
    /// In a run with attackers (`[[gossip.attackers]]`), what the honest identities saw.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub honest: Option<HonestFigures>,
}

/// The honest identities of a run with attackers: blocks honest identities published, at honest
/// identities, and what reached them of the attack.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HonestFigures {
    /// Attacker identities.
    pub attackers: u64,
    /// Honest blocks at honest identities (`nodes`: the honest identities).
    pub blocks: ArrivalFigures,
    /// Invalid messages honest identities received.
    pub invalid_received: u64,
    /// Peers honest identities disconnected for their score.
    pub score_disconnects: u64,
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
    fn new(nodes: u64, delays: &mut TwoPass, expected: u64) -> Self {
        let t = topic_figures(delays, 0, 0, expected);
        ArrivalFigures { nodes, received: delays.len(), reliability: t.reliability, p50_ms: t.p50_ms, p95_ms: t.p95_ms }
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
    Ok(column_u64(&outcome.tables().batches(table)?, column))
}

pub(crate) fn column_u64(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<u64> {
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

/// The quantiles the figures report.
const QUANTILES: [f64; 3] = [0.50, 0.95, 0.99];

/// Figures of one family from its delays (after their second pass), duplicate count, messages
/// and expected deliveries.
fn topic_figures(delays: &mut TwoPass, dups: u64, messages: u64, expected: u64) -> TopicFigures {
    let n = delays.len();
    TopicFigures {
        messages,
        reliability: n as f64 / expected.max(1) as f64,
        p50_ms: delays.quantile(0.50) as f64 / 1e6,
        p95_ms: delays.quantile(0.95) as f64 / 1e6,
        p99_ms: delays.quantile(0.99) as f64 / 1e6,
        duplicates_per_delivery: if n == 0 { 0.0 } else { dups as f64 / n as f64 },
    }
}

/// One topic family's arrivals at identities, gathered over the arrival rows.
#[derive(Default)]
struct Family {
    delays: TwoPass,
    dups: u64,
    messages: u64,
    expected: u64,
}

/// One row of `gossip_arrivals`, as the figures read it.
struct ArrivalRow<'a> {
    node: u32,
    family: &'a str,
    delay: u64,
    duplicates: u64,
    hot: bool,
    message_id: u64,
}

/// Call `f` with every row of `gossip_arrivals`, batch by batch (the table may be far larger
/// than memory).
fn each_arrival(tables: &Tables, mut f: impl FnMut(&ArrivalRow)) -> Result<()> {
    use arrow_array::{Array, BooleanArray, StringArray, UInt32Array, UInt64Array};
    tables.each_batch("gossip_arrivals", |b| {
        let col = |name: &str| b.column_by_name(name).map(|c| c.as_any());
        let topics = col("topic").and_then(|c| c.downcast_ref::<StringArray>());
        let delays = col("arrival_since_publish_ns").and_then(|c| c.downcast_ref::<UInt64Array>());
        let dups = col("duplicates").and_then(|c| c.downcast_ref::<UInt32Array>());
        let ids = col("message_id").and_then(|c| c.downcast_ref::<UInt64Array>());
        let nodes = col("node").and_then(|c| c.downcast_ref::<UInt32Array>());
        let (Some(topics), Some(delays), Some(dups), Some(ids), Some(nodes)) = (topics, delays, dups, ids, nodes)
        else {
            return Err(crate::spill::TablesError::SchemaMismatch("gossip_arrivals".into()));
        };
        let hot = col("hot").and_then(|c| c.downcast_ref::<BooleanArray>());
        for k in 0..b.num_rows() {
            f(&ArrivalRow {
                node: nodes.value(k),
                family: topic_family_of_name(topics.value(k)),
                delay: delays.value(k),
                duplicates: dups.value(k) as u64,
                hot: hot.is_some_and(|h| h.value(k)),
                message_id: ids.value(k),
            });
        }
        Ok(())
    })?;
    Ok(())
}

/// The gossip figures of a run, from its engines' tables (`None` if it ran no gossip). The
/// arrival rows are read twice, a batch at a time, for exact quantiles in bounded memory (see
/// [`crate::quantiles`]).
pub fn gossip_figures(outcome: &RunOutcome) -> Result<Option<GossipFigures>> {
    let tables = outcome.tables();
    if !tables.has("gossip_nodes")? {
        return Ok(None);
    }
    let nodes = tables.batches("gossip_nodes")?;
    let messages = tables.batches("gossip_messages")?;
    let identities = nodes.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let mut per: BTreeMap<String, Family> = BTreeMap::new();
    for (topic, subscribers) in column_str(&messages, "topic").iter().zip(column_u64(&messages, "subscribers")) {
        let f = per.entry(topic_family_of_name(topic).to_string()).or_default();
        f.messages += 1;
        // Every subscriber should hold it (a subscribed publisher from the start, at delay 0).
        f.expected += subscribers;
    }
    let mut hot_blocks = TwoPass::default();
    let mut tail_client_blocks = TwoPass::default();
    let mut client_blocks = BTreeSet::new();
    each_arrival(&tables, |r| {
        let client = MsgKey(r.message_id).is_client();
        if r.family == "beacon_block" && client {
            client_blocks.insert(r.message_id);
        }
        if r.hot {
            if r.family == "beacon_block" {
                hot_blocks.count(r.delay);
            }
            return;
        }
        // A client's message in the tail (an Ethereum domain's rows): figures of its own.
        if client {
            if r.family == "beacon_block" {
                tail_client_blocks.count(r.delay);
            }
            return;
        }
        if !per.contains_key(r.family) {
            per.insert(r.family.to_string(), Family::default());
        }
        let f = per.get_mut(r.family).expect("inserted above");
        f.delays.count(r.delay);
        f.dups += r.duplicates;
    })?;
    for f in per.values_mut() {
        f.delays.second_pass(&QUANTILES);
    }
    hot_blocks.second_pass(&QUANTILES);
    tail_client_blocks.second_pass(&QUANTILES);
    each_arrival(&tables, |r| match (r.hot, MsgKey(r.message_id).is_client(), per.get_mut(r.family)) {
        (false, false, Some(f)) => f.delays.keep(r.delay),
        (false, true, _) if r.family == "beacon_block" => tail_client_blocks.keep(r.delay),
        (true, _, _) if r.family == "beacon_block" => hot_blocks.keep(r.delay),
        _ => {}
    })?;
    let cold_expected = per.get("beacon_block").map_or(0, |f| f.expected);
    let cold = match per.get_mut("beacon_block") {
        Some(f) => ArrivalFigures::new(identities, &mut f.delays, cold_expected),
        None => ArrivalFigures::new(identities, &mut TwoPass::default(), 0),
    };
    let by_family: BTreeMap<String, TopicFigures> = per
        .iter_mut()
        .map(|(name, f)| (name.clone(), topic_figures(&mut f.delays, f.dups, f.messages, f.expected)))
        .collect();
    let schema = nodes.first().map(|b| b.schema());
    let sent: u64 = schema
        .iter()
        .flat_map(|s| s.fields().iter())
        .filter(|f| f.name().starts_with("bytes_sent_"))
        .map(|f| column_u64(&nodes, f.name()).iter().sum::<u64>())
        .sum();
    let block =
        by_family.get("beacon_block").cloned().unwrap_or_else(|| topic_figures(&mut TwoPass::default(), 0, 0, 0));
    // Every identity subscribes to the block topic: each could receive every client block.
    let tail_client_blocks = (!tail_client_blocks.is_empty()).then(|| {
        let expected = identities * client_blocks.len() as u64;
        ArrivalFigures::new(identities, &mut tail_client_blocks, expected)
    });
    let hot = hot_figures(&tables, &messages, client_blocks, &mut hot_blocks)?;
    let honest = honest_figures(&tables, &nodes, &messages)?;
    Ok(Some(GossipFigures {
        identities,
        blocks: block,
        bytes_sent_per_node: if identities == 0 { 0.0 } else { sent as f64 / identities as f64 },
        by_family,
        cold,
        hot,
        tail_client_blocks,
        honest,
    }))
}

/// The honest identities' figures, if the run had attackers (`gossip_nodes.attacker`): blocks
/// honest identities published, at honest identities, each of which could receive every one.
fn honest_figures(tables: &Tables, nodes: &[RecordBatch], messages: &[RecordBatch]) -> Result<Option<HonestFigures>> {
    use arrow_array::{Array, BooleanArray};
    let mut attackers = BTreeSet::new();
    for b in nodes {
        let Some(flags) = b.column_by_name("attacker").and_then(|c| c.as_any().downcast_ref::<BooleanArray>()) else {
            return Ok(None);
        };
        let ids = column_u64(std::slice::from_ref(b), "node");
        attackers.extend((0..b.num_rows()).filter(|&k| flags.value(k)).map(|k| ids[k] as u32));
    }
    if attackers.is_empty() {
        return Ok(None);
    }
    let honest = nodes.iter().map(|b| b.num_rows() as u64).sum::<u64>() - attackers.len() as u64;
    let blocks: BTreeSet<u64> = column_str(messages, "topic")
        .iter()
        .zip(column_u64(messages, "message_id"))
        .zip(column_u64(messages, "publisher"))
        .filter(|((t, _), p)| topic_family_of_name(t) == "beacon_block" && !attackers.contains(&(*p as u32)))
        .map(|((_, k), _)| k)
        .collect();
    let wanted = |r: &ArrivalRow| !r.hot && !attackers.contains(&r.node) && blocks.contains(&r.message_id);
    let mut delays = TwoPass::default();
    each_arrival(tables, |r| {
        if wanted(r) {
            delays.count(r.delay);
        }
    })?;
    delays.second_pass(&QUANTILES);
    each_arrival(tables, |r| {
        if wanted(r) {
            delays.keep(r.delay);
        }
    })?;
    let honest_rows = |name: &str| -> u64 {
        nodes
            .iter()
            .map(|b| {
                let flags = b.column_by_name("attacker").and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
                let values = column_u64(std::slice::from_ref(b), name);
                (0..b.num_rows()).filter(|&k| flags.is_some_and(|f| !f.value(k))).map(|k| values[k]).sum::<u64>()
            })
            .sum()
    };
    Ok(Some(HonestFigures {
        attackers: attackers.len() as u64,
        blocks: ArrivalFigures::new(honest, &mut delays, blocks.len() as u64 * honest),
        invalid_received: honest_rows("invalid_received"),
        score_disconnects: honest_rows("score_disconnects"),
    }))
}

/// The clients' `beacon_block` figures, if boundary identities sent clients gossip (the direct
/// engine's `hot_marks` table is there): the clients are the hosts that got marks; each could
/// receive every block the tail published and every client's block but its own.
/// `client_blocks` holds the clients' blocks seen among the arrival rows.
fn hot_figures(
    tables: &Tables,
    messages: &[arrow_array::RecordBatch],
    mut client_blocks: BTreeSet<u64>,
    delays: &mut TwoPass,
) -> Result<Option<ArrivalFigures>> {
    if !tables.has("hot_marks")? {
        return Ok(None);
    }
    let marks = tables.batches("hot_marks")?;
    let clients = column_u64(&marks, "marks").iter().filter(|&&m| m > 0).count() as u64;
    let tail_blocks =
        column_str(messages, "topic").iter().filter(|t| topic_family_of_name(t) == "beacon_block").count() as u64;
    let tail_seen = tables.batches("client_message_arrivals")?;
    client_blocks.extend(
        column_str(&tail_seen, "topic")
            .iter()
            .zip(column_u64(&tail_seen, "message_id"))
            .filter(|(t, _)| topic_family_of_name(t) == "beacon_block")
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
        files.extend(write_table(dir, name, batch.schema(), &row_chunks(&batch), format)?);
    }
    let tables = outcome.tables();
    for name in tables.names()? {
        files.extend(write_streamed(dir, &name, &tables, format)?);
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
    summary.discv5 = crate::discv5_figures::discv5_figures(outcome)?;
    remove_spill(&outcome.spill)?;
    let json = serde_json::to_string_pretty(&summary)? + "\n";
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    Ok(summary)
}

/// Rows per record batch of an output file at most: a reader that takes a file a batch at a time
/// (`thermocline report`) holds this many rows, however long the run.
pub const MAX_BATCH_ROWS: usize = 65_536;

/// `batch` cut into record batches of at most [`MAX_BATCH_ROWS`] rows (views, not copies).
fn row_chunks(batch: &RecordBatch) -> Vec<RecordBatch> {
    let rows = batch.num_rows();
    if rows <= MAX_BATCH_ROWS {
        return vec![batch.clone()];
    }
    (0..rows).step_by(MAX_BATCH_ROWS).map(|at| batch.slice(at, MAX_BATCH_ROWS.min(rows - at))).collect()
}

/// Write table `name` of `tables` into `dir` in `format`, a batch at a time (it may be larger
/// than memory); returns the files written.
fn write_streamed(dir: &Path, name: &str, tables: &Tables, format: TableFormat) -> Result<Vec<String>> {
    let mut writer: Option<TableWriter> = None;
    let failed = |e: thermocline_models::metrics::MetricsError| crate::spill::TablesError::Write {
        name: name.to_string(),
        detail: e.to_string(),
    };
    let schema = tables.each_batch(name, |b| {
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(TableWriter::create(dir, name, b.schema(), format).map_err(failed)?),
        };
        row_chunks(b).iter().try_for_each(|chunk| w.write(chunk)).map_err(failed)
    })?;
    Ok(match (writer, schema) {
        (Some(w), _) => w.finish()?,
        (None, Some(schema)) => TableWriter::create(dir, name, schema, format)?.finish()?,
        (None, None) => Vec::new(),
    })
}

/// Remove a run's spill folder once its tables are written.
fn remove_spill(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(e).context(format!("removing {}", dir.display())))
        }
        _ => Ok(()),
    }
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
        if let Some(f) = &g.tail_client_blocks {
            text += &format!(
                "  {:<20} {} nodes, {} client blocks received, {:.4} %, p50/p95 {:.1} / {:.1} ms after slot start\n",
                "tail (client blocks)",
                f.nodes,
                f.received,
                f.reliability * 100.0,
                f.p50_ms,
                f.p95_ms
            );
        }
        if let Some(h) = &g.honest {
            text += &format!(
                "  {:<20} {} nodes ({} attackers apart), {:.4} % of honest blocks, p50/p95 {:.1} / {:.1} ms; \
                 {} invalid messages received, {} peers disconnected for their score\n",
                "honest arrivals",
                h.blocks.nodes,
                h.attackers,
                h.blocks.reliability * 100.0,
                h.blocks.p50_ms,
                h.blocks.p95_ms,
                h.invalid_received,
                h.score_disconnects
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, UInt64Array};
    use thermocline_models::metrics::{read_ipc_file, u64_col};

    #[test]
    fn long_tables_are_written_in_bounded_batches_that_read_back_whole() {
        let rows = 2 * MAX_BATCH_ROWS + 7;
        let batch = RecordBatch::try_from_iter([("v", u64_col((0..rows as u64).collect::<Vec<_>>()))]).unwrap();
        let chunks = row_chunks(&batch);
        assert_eq!(chunks.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [MAX_BATCH_ROWS, MAX_BATCH_ROWS, 7]);
        let dir = std::env::temp_dir().join(format!("thermocline-chunks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_table(&dir, "v", batch.schema(), &chunks, TableFormat::Arrow).unwrap();
        let (_, back) = read_ipc_file(&dir.join("v.arrow")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.len(), 3);
        let values: Vec<u64> = back
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(values, (0..rows as u64).collect::<Vec<_>>());
        assert!(back.iter().all(|b| b.column(0).offset() == 0));
        assert_eq!(row_chunks(&back[2]).len(), 1);
    }
}
