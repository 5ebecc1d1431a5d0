//! The gossip plots: arrival-delay CDFs per topic family and hot/cold, reliability and p95 per
//! slot, duplicates and bytes per node, and mesh degree over time. They read `gossip_arrivals`,
//! `gossip_messages`, `gossip_nodes` and `gossip_mesh_degree` (docs/surrogate.md, *Outputs*).

use super::chart::{LineChart, Series};
use super::data::{RunFolder, Table};
use super::stats::{Histogram, cdf};
use super::{Figure, ReportError, Section};
use std::collections::{BTreeMap, HashMap};
use thermocline_surrogate::topics::topic_family_of_name;

const NO_GOSSIP: &str = "the run has no gossip (no `gossip_arrivals.arrow`)";

/// Histogram resolution of the arrival-delay CDFs: 2^9 buckets per power of two (a point is at
/// most 1/512, 0.2 %, below the exact quantile).
const CDF_BITS: u32 = 9;
/// Histogram resolution of the per-slot delays: 2^7 buckets per power of two (at most 1/128,
/// 0.8 %, below the exact p95), so each (slot, family) costs a few KB.
const SLOT_BITS: u32 = 7;

/// The gossip section, or `None` when the run had no surrogate gossip at all.
pub fn section(run: &RunFolder) -> Result<Option<Section>, ReportError> {
    let arrivals = ArrivalStats::read(run)?;
    let has_nodes = run.dir().join("gossip_nodes.arrow").is_file();
    if arrivals.is_none() && !has_nodes {
        return Ok(None);
    }
    let mut figures = Vec::new();
    match &arrivals {
        Some(a) => {
            figures.push(family_cdf(a)?);
            figures.push(hot_cold_cdf(a)?);
            let slots = SlotMessages::read(run)?;
            figures.extend(per_slot(a, &slots)?);
            figures.push(duplicates_per_node(a)?);
        }
        None => {
            for (id, title) in [
                ("arrival-cdf", "Arrival delay by topic family"),
                ("arrival-hot-cold", "Arrival delay at real clients and surrogates"),
                ("slot-reliability", "Reliability per slot"),
                ("slot-p95", "95th percentile arrival delay per slot"),
                ("duplicates-per-node", "Duplicates per node"),
            ] {
                figures.push(Figure::absent(id, title, NO_GOSSIP));
            }
        }
    }
    figures.push(bytes_per_node(run)?);
    figures.extend(mesh_degree(run)?);
    Ok(Some(Section { title: "Gossip".into(), figures }))
}

/// What the plots need of `gossip_arrivals`, gathered a record batch at a time: its memory grows
/// with topic families × slots and with identities, never with rows.
#[derive(Debug, PartialEq)]
struct ArrivalStats {
    /// Topic families in order of first appearance (plots order them by name).
    families: Vec<String>,
    /// Per family: the delays (ns) of first arrivals at surrogates (`[0]`) and clients (`[1]`).
    delays: Vec<[Histogram; 2]>,
    /// Per (family, hot, slot of publication): the delays (ns) of its first arrivals.
    per_slot: BTreeMap<(u32, bool, u64), Histogram>,
    /// Per surrogate identity that received anything: the duplicates it received, summed.
    duplicates: HashMap<u64, u64>,
}

impl ArrivalStats {
    const COLUMNS: [&str; 6] = ["topic", "slot", "arrival_since_publish_ns", "node", "duplicates", "hot"];

    fn new() -> ArrivalStats {
        ArrivalStats { families: Vec::new(), delays: Vec::new(), per_slot: BTreeMap::new(), duplicates: HashMap::new() }
    }

    /// The statistics of the run's `gossip_arrivals`, or `None` when it did not write the table.
    fn read(run: &RunFolder) -> Result<Option<ArrivalStats>, ReportError> {
        let mut stats = ArrivalStats::new();
        let found = run.each_batch("gossip_arrivals", |c| Self::COLUMNS.contains(&c), |t| stats.add(t))?;
        Ok(found.then_some(stats))
    }

    /// The number of `family`, numbering it if new.
    fn family_id(&mut self, family: &str) -> u32 {
        match self.families.iter().position(|f| f == family) {
            Some(k) => k as u32,
            None => {
                self.families.push(family.to_string());
                self.delays.push([Histogram::new(CDF_BITS), Histogram::new(CDF_BITS)]);
                (self.families.len() - 1) as u32
            }
        }
    }

    /// Count the rows of one batch.
    fn add(&mut self, t: &Table) -> Result<(), ReportError> {
        let (topics, codes) = t.codes("topic")?;
        let of_topic: Vec<u32> = topics.iter().map(|n| self.family_id(topic_family_of_name(n))).collect();
        let (slot, delay) = (t.u64s("slot")?, t.u64s("arrival_since_publish_ns")?);
        let (node, duplicates, hot) = (t.u64s("node")?, t.u64s("duplicates")?, t.bools_or_false("hot")?);
        for k in 0..codes.len() {
            let family = of_topic[codes[k] as usize];
            self.delays[family as usize][usize::from(hot[k])].add(delay[k]);
            self.per_slot.entry((family, hot[k], slot[k])).or_insert_with(|| Histogram::new(SLOT_BITS)).add(delay[k]);
            if !hot[k] {
                *self.duplicates.entry(node[k]).or_insert(0) += duplicates[k];
            }
        }
        Ok(())
    }

    /// Family numbers in order of their names, so order and colours never depend on row order.
    fn by_name(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.families.len() as u32).collect();
        ids.sort_by(|&a, &b| self.families[a as usize].cmp(&self.families[b as usize]));
        ids
    }

    fn family_index(&self, name: &str) -> Option<u32> {
        self.families.iter().position(|f| f == name).map(|k| k as u32)
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// CDF of the delay since publication per topic family, at surrogate identities.
fn family_cdf(a: &ArrivalStats) -> Result<Figure, ReportError> {
    let series = a
        .by_name()
        .into_iter()
        .map(|f| Series { name: a.families[f as usize].clone(), points: a.delays[f as usize][0].cdf(1e-6) })
        .filter(|s| !s.points.is_empty())
        .collect();
    let chart = LineChart::new("delay since publication (ms)", "share of first arrivals", series);
    Figure::line(
        "arrival-cdf",
        "Arrival delay by topic family",
        "First arrivals at surrogate identities (`gossip_arrivals`, `hot` false): the share that arrived within each delay since publication.",
        &chart,
        "no arrivals at surrogate identities",
    )
}

/// CDF of `beacon_block` delays at real clients (hot) beside surrogates (cold).
fn hot_cold_cdf(a: &ArrivalStats) -> Result<Figure, ReportError> {
    let id = "arrival-hot-cold";
    let title = "Block arrival delay at real clients (hot) and surrogates (cold)";
    let Some(block) = a.family_index("beacon_block") else {
        return Ok(Figure::absent(id, title, "no `beacon_block` arrivals"));
    };
    let [cold, hot] = &a.delays[block as usize];
    if hot.is_empty() {
        return Ok(Figure::absent(id, title, "no arrivals at real clients (`hot` rows come from hybrid runs)"));
    }
    let series = vec![
        Series { name: "cold (surrogates)".into(), points: cold.cdf(1e-6) },
        Series { name: "hot (real clients)".into(), points: hot.cdf(1e-6) },
    ];
    let chart = LineChart::new("delay since publication (ms)", "share of first arrivals", series);
    Figure::line(id, title, "`beacon_block` rows of `gossip_arrivals` by their `hot` column.", &chart, "")
}

/// Per family and slot: the subscribers of the slot's messages, from `gossip_messages`.
#[derive(Default)]
struct SlotMessages {
    expected: BTreeMap<String, BTreeMap<u64, u64>>,
}

impl SlotMessages {
    /// The run's `gossip_messages` summed by family and slot (none when it has no such table).
    fn read(run: &RunFolder) -> Result<SlotMessages, ReportError> {
        let mut m = SlotMessages::default();
        run.each_batch("gossip_messages", |c| ["topic", "slot", "subscribers"].contains(&c), |t| m.add(t))?;
        Ok(m)
    }

    fn add(&mut self, t: &Table) -> Result<(), ReportError> {
        let (topics, codes) = t.codes("topic")?;
        for ((code, slot), subs) in codes.iter().zip(t.u64s("slot")?).zip(t.u64s("subscribers")?) {
            let family = topic_family_of_name(&topics[*code as usize]);
            if !self.expected.contains_key(family) {
                self.expected.insert(family.to_string(), BTreeMap::new());
            }
            *self.expected.get_mut(family).expect("inserted").entry(slot).or_insert(0) += subs;
        }
        Ok(())
    }
}

/// Reliability and p95 delay per slot and family (surrogates; p95 of clients too when there are
/// hot rows).
fn per_slot(a: &ArrivalStats, slots: &SlotMessages) -> Result<Vec<Figure>, ReportError> {
    let mut reliability = Vec::new();
    let mut p95 = Vec::new();
    for family in a.by_name() {
        for hot in [false, true] {
            let by_slot: BTreeMap<u64, &Histogram> =
                a.per_slot.range((family, hot, 0)..=(family, hot, u64::MAX)).map(|(&(_, _, s), h)| (s, h)).collect();
            if by_slot.is_empty() {
                continue;
            }
            let name = &a.families[family as usize];
            let label = if hot { format!("{name} (hot)") } else { name.clone() };
            if !hot {
                let points = slots
                    .expected
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(|(slot, &expected)| {
                        let got = by_slot.get(slot).map_or(0, |h| h.len());
                        (*slot as f64, 100.0 * got as f64 / expected.max(1) as f64)
                    })
                    .collect();
                reliability.push(Series { name: name.clone(), points });
            }
            let points = by_slot
                .iter()
                .map(|(&slot, h)| (slot as f64, ms(h.quantile(0.95).expect("a slot has rows"))))
                .collect();
            p95.push(Series { name: label, points });
        }
    }
    let mut rel = LineChart::new("slot", "delivered (%)", reliability);
    rel.y_from_zero = false;
    rel.y_max = Some(100.0);
    Ok(vec![
        Figure::line(
            "slot-reliability",
            "Reliability per slot",
            "Share of (subscriber, message) pairs delivered, per slot of publication: first arrivals at surrogates (`gossip_arrivals`) over the subscribers of the slot's messages (`gossip_messages.subscribers`).",
            &rel,
            "`gossip_messages.arrow` lists no messages",
        )?,
        Figure::line(
            "slot-p95",
            "95th percentile arrival delay per slot",
            "Per slot of publication, the delay since publication within which 95 % of first arrivals came (`gossip_arrivals`).",
            &LineChart::new("slot", "p95 delay (ms)", p95),
            "no arrivals",
        )?,
    ])
}

/// CDF over surrogate identities of the duplicate copies each received, all topics.
fn duplicates_per_node(a: &ArrivalStats) -> Result<Figure, ReportError> {
    let series = vec![Series { name: String::new(), points: cdf(a.duplicates.values().copied().collect(), 1.0) }];
    Figure::line(
        "duplicates-per-node",
        "Duplicates per node",
        "Over surrogate identities that received anything: the copies each received after the first, summed over its messages (`gossip_arrivals.duplicates`).",
        &LineChart::new("duplicate copies received", "share of identities", series),
        "no arrivals at surrogate identities",
    )
}

/// CDFs over identities of the bytes each sent and received, all RPC kinds.
fn bytes_per_node(run: &RunFolder) -> Result<Figure, ReportError> {
    let mut totals: [Vec<u64>; 2] = Default::default();
    let is_bytes = |c: &str| c.starts_with("bytes_sent_") || c.starts_with("bytes_recv_");
    let found = run.each_batch("gossip_nodes", is_bytes, |t| {
        for (total, prefix) in totals.iter_mut().zip(["bytes_sent_", "bytes_recv_"]) {
            let mut sums = vec![0u64; t.rows()];
            for name in t.column_names().iter().filter(|n| n.starts_with(prefix)) {
                for (sum, v) in sums.iter_mut().zip(t.u64s(name)?) {
                    *sum += v;
                }
            }
            total.extend(sums);
        }
        Ok(())
    })?;
    if !found {
        return Ok(Figure::absent("bytes-per-node", "Bytes per node", "the run has no `gossip_nodes.arrow`"));
    }
    let [sent, received] = totals;
    let series = [("sent", sent), ("received", received)]
        .into_iter()
        .map(|(dir, total)| Series { name: dir.into(), points: cdf(total, 1.0 / (1024.0 * 1024.0)) })
        .collect();
    Figure::line(
        "bytes-per-node",
        "Bytes per node",
        "Over surrogate identities: gossip bytes each sent and received over the run, every RPC kind (`gossip_nodes.bytes_sent_*`, `bytes_recv_*`).",
        &LineChart::new("MiB over the run", "share of identities", series),
        "`gossip_nodes.arrow` has no rows",
    )
}

/// Per topic family, the mean and 10th/90th percentile mesh degree in each heartbeat period.
fn mesh_degree(run: &RunFolder) -> Result<Vec<Figure>, ReportError> {
    // family → period → degree → meshes (summed over shards).
    let mut hist: BTreeMap<String, BTreeMap<u64, BTreeMap<u64, u64>>> = BTreeMap::new();
    let columns = ["topic_family", "heartbeat_period", "mesh_degree", "meshes"];
    let found = run.each_batch(
        "gossip_mesh_degree",
        |c| columns.contains(&c),
        |t| {
            let families = t.strings("topic_family")?;
            let rows =
                families.iter().zip(t.u64s("heartbeat_period")?).zip(t.u64s("mesh_degree")?).zip(t.u64s("meshes")?);
            for (((family, period), degree), meshes) in rows {
                *hist.entry(family.clone()).or_default().entry(period).or_default().entry(degree).or_insert(0) +=
                    meshes;
            }
            Ok(())
        },
    )?;
    if !found {
        let why = "the run has no `gossip_mesh_degree.arrow`";
        return Ok(vec![Figure::absent("mesh-degree", "Mesh degree over time", why)]);
    }
    if hist.is_empty() {
        let why = "`gossip_mesh_degree.arrow` has no rows";
        return Ok(vec![Figure::absent("mesh-degree", "Mesh degree over time", why)]);
    }
    let mut figures = Vec::new();
    for (family, periods) in hist {
        let mut lines: [Vec<(f64, f64)>; 3] = Default::default();
        for (period, degrees) in periods {
            let total: u64 = degrees.values().sum();
            let sum: u64 = degrees.iter().map(|(d, m)| d * m).sum();
            let x = period as f64;
            lines[0].push((x, degree_quantile(&degrees, total, 0.1)));
            lines[1].push((x, sum as f64 / total.max(1) as f64));
            lines[2].push((x, degree_quantile(&degrees, total, 0.9)));
        }
        let [p10, mean, p90] = lines;
        let series = vec![
            Series { name: "10th percentile".into(), points: p10 },
            Series { name: "mean".into(), points: mean },
            Series { name: "90th percentile".into(), points: p90 },
        ];
        figures.push(Figure::line(
            &format!("mesh-degree-{family}"),
            &format!("Mesh degree over time: {family}"),
            "Degree of the (identity, topic) meshes of this family, sampled once per heartbeat period (`gossip_mesh_degree`, summed over shards).",
            &LineChart::new("heartbeat period", "mesh degree", series),
            "no samples",
        )?);
    }
    Ok(figures)
}

/// The `p` quantile (nearest rank) of a histogram of degrees holding `total` samples.
fn degree_quantile(degrees: &BTreeMap<u64, u64>, total: u64, p: f64) -> f64 {
    let rank = ((p * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (&d, &m) in degrees {
        seen += m;
        if seen >= rank {
            return d as f64;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;
    use std::path::PathBuf;
    use thermocline_models::metrics::{GossipArrivals, TableFormat, concat_tables, write_table};

    /// Arrival rows `rows` (at surrogates, or at clients when `hot`): topics, slots, nodes,
    /// delays and duplicates varied by the row number.
    fn arrivals(rows: Range<u64>, hot: bool) -> thermocline_bus::Table {
        let topics = ["beacon_block", "beacon_attestation_3", "beacon_attestation_17", "beacon_aggregate_and_proof"];
        let mut a = GossipArrivals::default();
        for k in rows {
            a.slot.push(k % 7);
            a.topic.push(topics[(k % 4) as usize].into());
            a.message_id.push(k % 7);
            a.node.push((k % 1000) as u32);
            a.name.push(format!("n{}", k % 1000));
            a.implementation.push("c".into());
            a.slot_start_ns.push(k % 7 * 12_000_000_000);
            a.arrival_ns.push(k % 7 * 12_000_000_000 + k % 4000 * 1_000_000);
            a.since_publish_ns.push((k * 7919) % 4_000_000 * 1_000 + 10_000_000);
            a.hops.push(1);
            a.from_peer.push(0);
            a.duplicates.push((k % 5) as u32);
        }
        a.table(hot, 0).unwrap()
    }

    /// A run folder whose `gossip_arrivals.arrow` holds one record batch per range of `batches`.
    fn folder(name: &str, batches: &[(Range<u64>, bool)]) -> RunFolder {
        let dir: PathBuf = std::env::temp_dir().join(format!("thermocline-gossip-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let summary = serde_json::json!({
            "name": "g", "digest": "ab", "seed": 1, "sim_time_ns": 100_000_000_000u64, "wall_s": 1.0,
            "events": 10, "events_per_s": 10.0, "windows": 4, "runahead_ns": 10_000_000, "shards": 1,
            "backend": "threads", "barrier_idle_fraction": 0.5, "cut_events": [[0]], "cut_bytes": [[0]],
            "files": [], "version": "0.1.0"
        });
        std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        let tables: Vec<_> = batches.iter().map(|(rows, hot)| arrivals(rows.clone(), *hot)).collect();
        let (schema, written) = concat_tables("gossip_arrivals", &tables.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(written.len(), batches.len());
        write_table(&dir, "gossip_arrivals", schema, &written, TableFormat::Arrow).unwrap();
        RunFolder::open(&dir).unwrap()
    }

    #[test]
    fn a_table_read_in_several_batches_gives_the_aggregates_of_one_batch() {
        let whole = folder("whole", &[(0..20_000, false), (0..300, true)]);
        let cut = [(0..1, false), (1..4_999, false), (4_999..5_000, false), (5_000..20_000, false), (0..300, true)];
        let parts = folder("parts", &cut);
        let (a, b) = (ArrivalStats::read(&whole).unwrap().unwrap(), ArrivalStats::read(&parts).unwrap().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.delays.iter().map(|[cold, hot]| cold.len() + hot.len()).sum::<u64>(), 20_300);
        assert_eq!(a.duplicates.len(), 1000);
        let figures = |run: &RunFolder| section(run).unwrap().unwrap().figures;
        let drawn = figures(&whole);
        assert_eq!(drawn, figures(&parts), "the same page from either file");
        let slot_p95 = drawn.iter().find(|f| f.id == "slot-p95").unwrap();
        assert!(matches!(&slot_p95.body, super::super::Body::Svg(svg) if svg.contains("beacon_block (hot)")));
    }

    #[test]
    fn a_run_without_the_table_has_no_arrival_statistics() {
        let run = folder("none", &[(0..10, false)]);
        std::fs::remove_file(run.dir().join("gossip_arrivals.arrow")).unwrap();
        assert!(ArrivalStats::read(&run).unwrap().is_none());
        assert!(section(&run).unwrap().is_none());
    }

    #[test]
    fn degree_quantiles_walk_the_histogram() {
        let h: BTreeMap<u64, u64> = [(4, 10), (8, 80), (12, 10)].into();
        assert_eq!(degree_quantile(&h, 100, 0.1), 4.0);
        assert_eq!(degree_quantile(&h, 100, 0.5), 8.0);
        assert_eq!(degree_quantile(&h, 100, 0.95), 12.0);
    }
}
