//! The bus plots: barrier idle fraction and events over simulated time per shard
//! (`bus_windows`), and the cut matrix between shards (`bus_pairs`).

use super::chart::{HeatMap, LineChart, Series, tick};
use super::data::RunFolder;
use super::stats::Bins;
use super::{Figure, ReportError, Section};
use std::collections::BTreeMap;

/// Time bins per line: enough to see a run's phases, few enough to keep the page small.
const TIME_BINS: usize = 240;

/// The bus section: always present (every run writes the bus tables unless Arrow output is off).
pub fn section(run: &RunFolder) -> Result<Section, ReportError> {
    let mut figures = windows(run)?;
    figures.push(cut_matrix(run)?);
    Ok(Section { title: "Bus".into(), figures })
}

/// Per shard: (wait ns, busy + wait ns, events) summed into time bins.
struct ShardBins {
    wait: Bins,
    total: Bins,
    events: Bins,
}

/// Idle fraction and events per simulated second, per shard over simulated time.
fn windows(run: &RunFolder) -> Result<Vec<Figure>, ReportError> {
    let idle_id = ("barrier-idle", "Barrier idle fraction over time");
    let events_id = ("events-over-time", "Events over simulated time");
    let end = run.summary.sim_time_ns;
    let mut shards: BTreeMap<u64, ShardBins> = BTreeMap::new();
    let columns = ["shard", "start_ns", "events", "wait_ns", "exec_ns", "encode_ns", "decode_ns"];
    let found = run.each_batch(
        "bus_windows",
        |c| columns.contains(&c),
        |t| {
            let cols = [t.u64s("shard")?, t.u64s("start_ns")?, t.u64s("events")?, t.u64s("wait_ns")?];
            let busy = [t.u64s("exec_ns")?, t.u64s("encode_ns")?, t.u64s("decode_ns")?];
            for k in 0..t.rows() {
                let b = shards.entry(cols[0][k]).or_insert_with(|| ShardBins {
                    wait: Bins::new(end, TIME_BINS),
                    total: Bins::new(end, TIME_BINS),
                    events: Bins::new(end, TIME_BINS),
                });
                let start = cols[1][k];
                let wait = cols[3][k] as f64;
                b.wait.add(start, wait);
                b.total.add(start, wait + busy.iter().map(|c| c[k] as f64).sum::<f64>());
                b.events.add(start, cols[2][k] as f64);
            }
            Ok(())
        },
    )?;
    if !found {
        let why = "the run has no `bus_windows.arrow`";
        return Ok(vec![Figure::absent(idle_id.0, idle_id.1, why), Figure::absent(events_id.0, events_id.1, why)]);
    }
    let mut idle = Vec::new();
    let mut events = Vec::new();
    for (shard, b) in &shards {
        let name = format!("shard {shard}");
        let points = (0..TIME_BINS)
            .filter(|&i| b.total.sums[i] > 0.0)
            .map(|i| (b.total.start(i) as f64 / 1e9, b.wait.sums[i] / b.total.sums[i]))
            .collect();
        idle.push(Series { name: name.clone(), points });
        let per_s = 1e9 / b.events.width();
        let points = (0..TIME_BINS).map(|i| (b.events.start(i) as f64 / 1e9, b.events.sums[i] * per_s)).collect();
        events.push(Series { name, points });
    }
    Ok(vec![
        Figure::line(
            idle_id.0,
            idle_id.1,
            &format!(
                "Share of each shard's wall time spent waiting at the window barrier, over simulated time in {TIME_BINS} bins (`bus_windows`: wait / (exec + encode + wait + decode)). The whole run: {:.1} %.",
                run.summary.barrier_idle_fraction * 100.0
            ),
            &LineChart::new("simulated time (s)", "idle fraction", idle),
            "`bus_windows.arrow` has no rows",
        )?,
        Figure::line(
            events_id.0,
            events_id.1,
            "Events each shard executed per simulated second (`bus_windows.events` by window start): when the run was busy.",
            &LineChart::new("simulated time (s)", "events per simulated s", events),
            "`bus_windows.arrow` has no rows",
        )?,
    ])
}

/// Events and bytes sent from each shard to each other, summed over the run (`bus_pairs`).
fn cut_matrix(run: &RunFolder) -> Result<Figure, ReportError> {
    let (id, title) = ("cut-matrix", "Cut matrix");
    let shards = run.summary.shards as usize;
    if shards < 2 {
        return Ok(Figure::absent(id, title, "one shard: no events cross shards"));
    }
    let mut events = vec![vec![0u64; shards]; shards];
    let mut bytes = vec![vec![0u64; shards]; shards];
    let columns = ["shard", "peer", "sent_events", "sent_bytes"];
    let found = run.each_batch(
        "bus_pairs",
        |c| columns.contains(&c),
        |t| {
            let (src, dst) = (t.u64s("shard")?, t.u64s("peer")?);
            for ((k, e), b) in (0..t.rows()).zip(t.u64s("sent_events")?).zip(t.u64s("sent_bytes")?) {
                let (s, d) = (src[k] as usize, dst[k] as usize);
                if s < shards && d < shards {
                    events[s][d] += e;
                    bytes[s][d] += b;
                }
            }
            Ok(())
        },
    )?;
    if !found {
        return Ok(Figure::absent(id, title, "the run has no `bus_pairs.arrow`"));
    }
    let text = events
        .iter()
        .zip(&bytes)
        .map(|(er, br)| er.iter().zip(br).map(|(&e, &b)| format!("{} · {}B", tick(e as f64), tick(b as f64))).collect())
        .collect();
    let map = HeatMap { x: "to shard".into(), y: "from shard".into(), cells: events, text };
    Ok(Figure::svg(
        id,
        title,
        "Events (and their encoded bytes) each shard sent each other shard over the run (`bus_pairs.sent_events`, `sent_bytes`); darker cells carry more events.",
        super::chart::heat_map(&map)?,
    ))
}
