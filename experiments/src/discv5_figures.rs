//! The figures of a discv5 run, from its engines' tables: how lookups went (time, hops,
//! messages, and against the exact closest set when the run checked it), how full tables are,
//! and what discovery cost each identity in bytes, by message kind.

use crate::output::column_u64;
use crate::run::RunOutcome;
use anyhow::Result;
use arrow_array::{Array, BooleanArray, RecordBatch};
use std::collections::BTreeMap;

/// How lookups went.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LookupFigures {
    /// Lookups finished.
    pub lookups: u64,
    /// Duration quantiles, ms: p50, p95, p99.
    pub p50_ms: f64,
    /// p95.
    pub p95_ms: f64,
    /// p99.
    pub p99_ms: f64,
    /// Mean hops (the longest chain of answers that led to a node of the result).
    pub mean_hops: f64,
    /// Mean FINDNODE requests per lookup.
    pub mean_messages: f64,
    /// Mean nodes in the result (at most 16).
    pub mean_found: f64,
    /// Mean share of the exact 16 closest that the result holds (runs with `exact = true`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exact_recall: Option<f64>,
    /// Share of lookups whose result is exactly the 16 closest (runs with `exact = true`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exact_share: Option<f64>,
}

/// The figures of a discv5 run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Discv5Figures {
    /// Identities.
    pub identities: u64,
    /// Lookups of a random target (the steady work of discovery).
    pub random_lookups: LookupFigures,
    /// Self-lookups, made on joining.
    pub self_lookups: LookupFigures,
    /// Mean table entries at the end.
    pub mean_table_entries: f64,
    /// Mean filled buckets at the end.
    pub mean_filled_buckets: f64,
    /// Requests that timed out, per identity.
    pub timeouts_per_identity: f64,
    /// Bytes sent per identity over the run, by packet kind (IP and UDP headers included).
    pub bytes_per_identity: BTreeMap<String, f64>,
    /// How gossip identities found their peers (runs with `[gossip] discovery = "discv5"`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peering: Option<PeeringFigures>,
}

/// How gossip identities that find their peers by discv5 got them: times from each identity's
/// joining (`discv5_identities.joined_ns`) to its first peer and to `outbound_peers` outbound
/// peers (`gossip_peering`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeeringFigures {
    /// Identities.
    pub identities: u64,
    /// Identities that never had a peer.
    pub without_peer: u64,
    /// Time to the first peer, s: p50.
    pub first_peer_p50_s: f64,
    /// p95.
    pub first_peer_p95_s: f64,
    /// Share of identities that reached `outbound_peers` outbound peers.
    pub target_reached: f64,
    /// Time to `outbound_peers` outbound peers, s, of those that reached it: p50.
    pub target_p50_s: f64,
    /// p95.
    pub target_p95_s: f64,
    /// Mean dials per identity (refused ones included).
    pub mean_dials: f64,
    /// Connections per identity at the end: p5, p50, p95.
    pub connections_p5: u64,
    /// p50.
    pub connections_p50: u64,
    /// p95.
    pub connections_p95: u64,
    /// Share of (identity, subnet it subscribes to) that reached `subnet_peers` peers on the
    /// subnet (`None` without subnets).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subnets_reached: Option<f64>,
    /// Time from joining to `subnet_peers` peers on a subnet, s, of those reached: p50.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subnet_p50_s: Option<f64>,
    /// p95.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subnet_p95_s: Option<f64>,
}

/// The values of nullable column `name`, in order.
fn optional_u64s(batches: &[RecordBatch], name: &str) -> Vec<Option<u64>> {
    use arrow_array::UInt64Array;
    let mut out = Vec::new();
    for b in batches {
        if let Some(a) = b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<UInt64Array>()) {
            out.extend(a.iter());
        }
    }
    out
}

/// The peering figures from `gossip_peering`, `gossip_subnet_peering` and the identities' join
/// times.
fn peering_figures(peering: &[RecordBatch], subnets: &[RecordBatch], identities: &[RecordBatch]) -> PeeringFigures {
    let joined: BTreeMap<u64, u64> =
        column_u64(identities, "identity").into_iter().zip(column_u64(identities, "joined_ns")).collect();
    let nodes = column_u64(peering, "node");
    let since = |times: Vec<Option<u64>>| -> Vec<u64> {
        let mut v: Vec<u64> = nodes
            .iter()
            .zip(times)
            .filter_map(|(n, t)| Some(t?.saturating_sub(*joined.get(n).unwrap_or(&0))))
            .collect();
        v.sort_unstable();
        v
    };
    let first = since(optional_u64s(peering, "first_peer_ns"));
    let subnet_rows = column_u64(subnets, "node");
    let mut subnet_times: Vec<u64> = subnet_rows
        .iter()
        .zip(optional_u64s(subnets, "reached_ns"))
        .filter_map(|(n, t)| Some(t?.saturating_sub(*joined.get(n).unwrap_or(&0))))
        .collect();
    subnet_times.sort_unstable();
    let any_subnets = !subnet_rows.is_empty();
    let target = since(optional_u64s(peering, "target_peers_ns"));
    let mut connections = column_u64(peering, "connections");
    connections.sort_unstable();
    let n = nodes.len() as u64;
    let rank = |q: f64| connections.get(((q * connections.len() as f64).ceil() as usize).saturating_sub(1)).copied();
    PeeringFigures {
        identities: n,
        without_peer: n - first.len() as u64,
        first_peer_p50_s: quantile_ms(&first, 0.50) / 1e3,
        first_peer_p95_s: quantile_ms(&first, 0.95) / 1e3,
        target_reached: target.len() as f64 / n.max(1) as f64,
        target_p50_s: quantile_ms(&target, 0.50) / 1e3,
        target_p95_s: quantile_ms(&target, 0.95) / 1e3,
        mean_dials: mean(column_u64(peering, "dials").into_iter()),
        connections_p5: rank(0.05).unwrap_or(0),
        connections_p50: rank(0.50).unwrap_or(0),
        connections_p95: rank(0.95).unwrap_or(0),
        subnets_reached: any_subnets.then(|| subnet_times.len() as f64 / subnet_rows.len() as f64),
        subnet_p50_s: any_subnets.then(|| quantile_ms(&subnet_times, 0.50) / 1e3),
        subnet_p95_s: any_subnets.then(|| quantile_ms(&subnet_times, 0.95) / 1e3),
    }
}

fn booleans(batches: &[RecordBatch], name: &str) -> Vec<bool> {
    let mut out = Vec::new();
    for b in batches {
        if let Some(a) = b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<BooleanArray>()) {
            out.extend((0..a.len()).map(|k| a.value(k)));
        }
    }
    out
}

fn u8s(batches: &[RecordBatch], name: &str) -> Option<Vec<u64>> {
    use arrow_array::UInt8Array;
    let mut out = Vec::new();
    for b in batches {
        let a = b.column_by_name(name)?.as_any().downcast_ref::<UInt8Array>()?;
        out.extend(a.values().iter().map(|&v| u64::from(v)));
    }
    Some(out)
}

fn mean(v: impl Iterator<Item = u64>) -> f64 {
    let (sum, n) = v.fold((0u128, 0u64), |(s, n), x| (s + u128::from(x), n + 1));
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}

/// The quantile `q` of sorted `v` (nearest rank), in ms.
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn lookup_figures(lookups: &[RecordBatch], random: bool) -> LookupFigures {
    let keep: Vec<bool> = booleans(lookups, "random_target").into_iter().map(|r| r == random).collect();
    let pick =
        |col: Vec<u64>| -> Vec<u64> { col.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(v, _)| v).collect() };
    let (start, end) = (pick(column_u64(lookups, "start_ns")), pick(column_u64(lookups, "end_ns")));
    let mut durations: Vec<u64> = end.iter().zip(&start).map(|(e, s)| e - s).collect();
    durations.sort_unstable();
    let hops = u8s(lookups, "hops").map(pick).unwrap_or_default();
    let overlap = u8s(lookups, "exact_overlap").map(pick);
    LookupFigures {
        lookups: durations.len() as u64,
        p50_ms: quantile_ms(&durations, 0.50),
        p95_ms: quantile_ms(&durations, 0.95),
        p99_ms: quantile_ms(&durations, 0.99),
        mean_hops: mean(hops.into_iter()),
        mean_messages: mean(pick(column_u64(lookups, "messages")).into_iter()),
        mean_found: mean(pick(column_u64(lookups, "found")).into_iter()),
        exact_recall: overlap.as_ref().map(|o| mean(o.iter().copied()) / 16.0),
        exact_share: overlap.as_ref().map(|o| mean(o.iter().map(|&v| u64::from(v == 16)))),
    }
}

/// The discv5 figures of a run (`None` if it ran no discv5).
pub fn discv5_figures(outcome: &RunOutcome) -> Result<Option<Discv5Figures>> {
    let tables = outcome.tables();
    if !tables.has("discv5_identities")? {
        return Ok(None);
    }
    let ids = tables.batches("discv5_identities")?;
    let lookups = if tables.has("discv5_lookups")? { tables.batches("discv5_lookups")? } else { Vec::new() };
    let identities = ids.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let per_identity = |name: &str| mean(column_u64(&ids, name).into_iter());
    let bytes_per_identity = ids
        .first()
        .map(|b| b.schema())
        .iter()
        .flat_map(|s| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>())
        .filter_map(|n| n.strip_suffix("_bytes").map(|k| (k.to_string(), per_identity(&n))))
        .collect();
    Ok(Some(Discv5Figures {
        identities,
        random_lookups: lookup_figures(&lookups, true),
        self_lookups: lookup_figures(&lookups, false),
        mean_table_entries: per_identity("table_entries"),
        mean_filled_buckets: per_identity("filled_buckets"),
        timeouts_per_identity: per_identity("timeouts"),
        bytes_per_identity,
        peering: if tables.has("gossip_peering")? {
            let subnets = if tables.has("gossip_subnet_peering")? {
                tables.batches("gossip_subnet_peering")?
            } else {
                Vec::new()
            };
            Some(peering_figures(&tables.batches("gossip_peering")?, &subnets, &ids))
        } else {
            None
        },
    }))
}
