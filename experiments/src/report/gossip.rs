//! The gossip plots: arrival-delay CDFs per topic family and hot/cold, reliability and p95 per
//! slot, duplicates and bytes per node, and mesh degree over time. They read `gossip_arrivals`,
//! `gossip_messages`, `gossip_nodes` and `gossip_mesh_degree` (docs/surrogate.md, *Outputs*).

use super::chart::{LineChart, Series};
use super::data::{RunFolder, Table};
use super::stats::{cdf, percentile};
use super::{Figure, ReportError, Section};
use std::collections::BTreeMap;
use thermocline_surrogate::topics::topic_family_of_name;

const NO_GOSSIP: &str = "the run has no gossip (no `gossip_arrivals.arrow`)";

/// The gossip section, or `None` when the run had no surrogate gossip at all.
pub fn section(run: &RunFolder) -> Result<Option<Section>, ReportError> {
    let arrivals = run.table("gossip_arrivals")?.map(|t| Arrivals::read(&t)).transpose()?;
    let messages = run.table("gossip_messages")?;
    let nodes = run.table("gossip_nodes")?;
    let mesh = run.table("gossip_mesh_degree")?;
    if arrivals.is_none() && nodes.is_none() {
        return Ok(None);
    }
    let mut figures = Vec::new();
    match &arrivals {
        Some(a) => {
            figures.push(family_cdf(a)?);
            figures.push(hot_cold_cdf(a)?);
            let slots = messages.as_ref().map(SlotMessages::read).transpose()?.unwrap_or_default();
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
    figures.push(match &nodes {
        Some(t) => bytes_per_node(t)?,
        None => Figure::absent("bytes-per-node", "Bytes per node", "the run has no `gossip_nodes.arrow`"),
    });
    figures.extend(match &mesh {
        Some(t) => mesh_degree(t)?,
        None => {
            vec![Figure::absent("mesh-degree", "Mesh degree over time", "the run has no `gossip_mesh_degree.arrow`")]
        }
    });
    Ok(Some(Section { title: "Gossip".into(), figures }))
}

/// The columns of `gossip_arrivals` the plots use, topics reduced to their families.
struct Arrivals {
    families: Vec<String>,
    family: Vec<u32>,
    slot: Vec<u64>,
    delay_ns: Vec<u64>,
    node: Vec<u64>,
    duplicates: Vec<u64>,
    hot: Vec<bool>,
}

impl Arrivals {
    fn read(t: &Table) -> Result<Arrivals, ReportError> {
        let (topics, codes) = t.codes("topic")?;
        // Families sorted by name, so their order (and colours) never depend on row order.
        let mut families: Vec<String> = topics.iter().map(|n| topic_family_of_name(n).to_string()).collect();
        families.sort();
        families.dedup();
        let of_topic: Vec<u32> = topics
            .iter()
            .map(|n| families.binary_search_by(|f| f.as_str().cmp(topic_family_of_name(n))).expect("listed") as u32)
            .collect();
        Ok(Arrivals {
            family: codes.iter().map(|&c| of_topic[c as usize]).collect(),
            families,
            slot: t.u64s("slot")?,
            delay_ns: t.u64s("arrival_since_publish_ns")?,
            node: t.u64s("node")?,
            duplicates: t.u64s("duplicates")?,
            hot: t.bools_or_false("hot")?,
        })
    }

    /// Delays (ns) of the rows of `family` at surrogates (`hot` false) or clients (`hot` true).
    fn delays(&self, family: u32, hot: bool) -> Vec<u64> {
        (0..self.delay_ns.len())
            .filter(|&k| self.family[k] == family && self.hot[k] == hot)
            .map(|k| self.delay_ns[k])
            .collect()
    }

    fn family_index(&self, name: &str) -> Option<u32> {
        self.families.iter().position(|f| f == name).map(|k| k as u32)
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// CDF of the delay since publication per topic family, at surrogate identities.
fn family_cdf(a: &Arrivals) -> Result<Figure, ReportError> {
    let series = (0..a.families.len() as u32)
        .map(|f| Series { name: a.families[f as usize].clone(), points: cdf(a.delays(f, false), 1e-6) })
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
fn hot_cold_cdf(a: &Arrivals) -> Result<Figure, ReportError> {
    let id = "arrival-hot-cold";
    let title = "Block arrival delay at real clients (hot) and surrogates (cold)";
    let Some(block) = a.family_index("beacon_block") else {
        return Ok(Figure::absent(id, title, "no `beacon_block` arrivals"));
    };
    let hot = a.delays(block, true);
    if hot.is_empty() {
        return Ok(Figure::absent(id, title, "no arrivals at real clients (`hot` rows come from hybrid runs)"));
    }
    let series = vec![
        Series { name: "cold (surrogates)".into(), points: cdf(a.delays(block, false), 1e-6) },
        Series { name: "hot (real clients)".into(), points: cdf(hot, 1e-6) },
    ];
    let chart = LineChart::new("delay since publication (ms)", "share of first arrivals", series);
    Figure::line(id, title, "`beacon_block` rows of `gossip_arrivals` by their `hot` column.", &chart, "")
}

/// Per (family, slot): the subscribers of the slot's messages, from `gossip_messages`.
#[derive(Default)]
struct SlotMessages {
    expected: BTreeMap<(String, u64), u64>,
}

impl SlotMessages {
    fn read(t: &Table) -> Result<SlotMessages, ReportError> {
        let topics = t.strings("topic")?;
        let mut expected = BTreeMap::new();
        for ((topic, slot), subs) in topics.iter().zip(t.u64s("slot")?).zip(t.u64s("subscribers")?) {
            *expected.entry((topic_family_of_name(topic).to_string(), slot)).or_insert(0) += subs;
        }
        Ok(SlotMessages { expected })
    }
}

/// Reliability and p95 delay per slot and family (surrogates; p95 of clients too when there are
/// hot rows).
fn per_slot(a: &Arrivals, slots: &SlotMessages) -> Result<Vec<Figure>, ReportError> {
    // (family, hot) → slot → delays.
    let mut delays: BTreeMap<(u32, bool), BTreeMap<u64, Vec<u64>>> = BTreeMap::new();
    for k in 0..a.delay_ns.len() {
        delays.entry((a.family[k], a.hot[k])).or_default().entry(a.slot[k]).or_default().push(a.delay_ns[k]);
    }
    let mut reliability = Vec::new();
    let mut p95 = Vec::new();
    for ((family, hot), by_slot) in delays {
        let name = &a.families[family as usize];
        let label = if hot { format!("{name} (hot)") } else { name.clone() };
        if !hot {
            let points = slots
                .expected
                .range((name.clone(), 0)..=(name.clone(), u64::MAX))
                .map(|((_, slot), &expected)| {
                    let got = by_slot.get(slot).map_or(0, Vec::len);
                    (*slot as f64, 100.0 * got as f64 / expected.max(1) as f64)
                })
                .collect();
            reliability.push(Series { name: name.clone(), points });
        }
        let points = by_slot
            .into_iter()
            .map(|(slot, mut d)| {
                d.sort_unstable();
                (slot as f64, ms(percentile(&d, 0.95).expect("a slot has rows")))
            })
            .collect();
        p95.push(Series { name: label, points });
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
fn duplicates_per_node(a: &Arrivals) -> Result<Figure, ReportError> {
    let mut per_node: BTreeMap<u64, u64> = BTreeMap::new();
    for k in (0..a.node.len()).filter(|&k| !a.hot[k]) {
        *per_node.entry(a.node[k]).or_insert(0) += a.duplicates[k];
    }
    let series = vec![Series { name: String::new(), points: cdf(per_node.into_values().collect(), 1.0) }];
    Figure::line(
        "duplicates-per-node",
        "Duplicates per node",
        "Over surrogate identities that received anything: the copies each received after the first, summed over its messages (`gossip_arrivals.duplicates`).",
        &LineChart::new("duplicate copies received", "share of identities", series),
        "no arrivals at surrogate identities",
    )
}

/// CDFs over identities of the bytes each sent and received, all RPC kinds.
fn bytes_per_node(t: &Table) -> Result<Figure, ReportError> {
    let mut series = Vec::new();
    for (dir, prefix) in [("sent", "bytes_sent_"), ("received", "bytes_recv_")] {
        let mut total = vec![0u64; t.rows()];
        for name in t.column_names().iter().filter(|n| n.starts_with(prefix)) {
            for (sum, v) in total.iter_mut().zip(t.u64s(name)?) {
                *sum += v;
            }
        }
        series.push(Series { name: dir.into(), points: cdf(total, 1.0 / (1024.0 * 1024.0)) });
    }
    Figure::line(
        "bytes-per-node",
        "Bytes per node",
        "Over surrogate identities: gossip bytes each sent and received over the run, every RPC kind (`gossip_nodes.bytes_sent_*`, `bytes_recv_*`).",
        &LineChart::new("MiB over the run", "share of identities", series),
        "`gossip_nodes.arrow` has no rows",
    )
}

/// Per topic family, the mean and 10th/90th percentile mesh degree in each heartbeat period.
fn mesh_degree(t: &Table) -> Result<Vec<Figure>, ReportError> {
    // family → period → degree → meshes (summed over shards).
    let mut hist: BTreeMap<String, BTreeMap<u64, BTreeMap<u64, u64>>> = BTreeMap::new();
    let families = t.strings("topic_family")?;
    let rows = families.iter().zip(t.u64s("heartbeat_period")?).zip(t.u64s("mesh_degree")?).zip(t.u64s("meshes")?);
    for (((family, period), degree), meshes) in rows {
        *hist.entry(family.clone()).or_default().entry(period).or_default().entry(degree).or_insert(0) += meshes;
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

    #[test]
    fn degree_quantiles_walk_the_histogram() {
        let h: BTreeMap<u64, u64> = [(4, 10), (8, 80), (12, 10)].into();
        assert_eq!(degree_quantile(&h, 100, 0.1), 4.0);
        assert_eq!(degree_quantile(&h, 100, 0.5), 8.0);
        assert_eq!(degree_quantile(&h, 100, 0.95), 12.0);
    }
}
