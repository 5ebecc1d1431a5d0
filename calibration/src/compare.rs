//! The error table: each resolution's arrival delays against the reference's, per phase, with
//! bootstrap confidence intervals over seeds.

use crate::config::Resolution;
use crate::stats::{Estimate, Sample, bootstrap, ks, relative_error, wasserstein1};

/// One first arrival of a block at a node.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Arrival {
    /// The block's slot, from the first slot of the scenario (0).
    pub slot: u32,
    /// The receiving node.
    pub node: u32,
    /// Milliseconds from the block's publication to its first arrival.
    pub delay_ms: f64,
    /// Copies of the block the node received after the first, where the engine counts them.
    pub duplicates: Option<u32>,
}

/// What one run (one resolution, one seed) measured.
#[derive(Clone, Debug, PartialEq)]
pub struct RunArrivals {
    /// The run's seed.
    pub seed: u64,
    /// Every first arrival of a scheduled block at a node other than its publisher.
    pub arrivals: Vec<Arrival>,
    /// Arrivals a run delivering everything would have: blocks × (nodes − 1).
    pub expected: u64,
    /// Duplicate copies the run's nodes received over all its slots, where an engine counts
    /// them per node rather than per arrival (a real client's gossipsub metrics): enough for
    /// the all-slots figure.
    pub copies: Option<u64>,
}

impl RunArrivals {
    /// The arrivals at the nodes `keep` accepts, of which a run delivering everything has
    /// `expected`: one side of a comparison of some nodes only (a hybrid run's real clients or
    /// its surrogates, against the reference's arrivals at the same nodes). Run-level copy
    /// counts cannot be split by node and are dropped.
    pub fn at_nodes(&self, keep: impl Fn(u32) -> bool, expected: u64) -> RunArrivals {
        let arrivals = self.arrivals.iter().filter(|a| keep(a.node)).copied().collect();
        RunArrivals { seed: self.seed, arrivals, expected, copies: None }
    }
}

/// Which nodes a row of the error table compares.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Nodes {
    /// Every node.
    All,
    /// The nodes a hybrid run gives real clients (in the reference too).
    Hot,
    /// The nodes a hybrid run leaves to surrogates (in the reference too).
    Cold,
}

impl Nodes {
    /// What a table's resolution column adds for the nodes.
    fn suffix(self) -> &'static str {
        match self {
            Nodes::All => "",
            Nodes::Hot => ", real-client nodes",
            Nodes::Cold => ", surrogate nodes",
        }
    }
}

/// Which slots a figure covers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Every slot.
    All,
    /// The first `cold_slots` slots: blocks on fresh connections.
    Cold,
    /// The slots after them.
    Warm,
}

impl Phase {
    /// Every phase, in table order.
    pub const ALL: [Phase; 3] = [Phase::All, Phase::Cold, Phase::Warm];

    /// The phase's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Phase::All => "all",
            Phase::Cold => "cold",
            Phase::Warm => "warm",
        }
    }

    /// Whether `slot` belongs to the phase when the first `cold_slots` slots are cold.
    pub fn covers(self, slot: u32, cold_slots: u32) -> bool {
        match self {
            Phase::All => true,
            Phase::Cold => slot < cold_slots,
            Phase::Warm => slot >= cold_slots,
        }
    }
}

/// The bounds a calibrated surrogate is held to.
#[derive(Copy, Clone, Debug, PartialEq, serde::Serialize)]
pub struct Goals {
    /// Largest KS distance.
    pub ks: f64,
    /// Largest |relative error| of p50 and p95.
    pub quantile: f64,
    /// Largest |relative error| of duplicates per delivery.
    pub duplicates: f64,
}

/// The goals: KS ≤ 0.05, p50 and p95 within ±5 %, duplicates within ±10 %.
pub const GOALS: Goals = Goals { ks: 0.05, quantile: 0.05, duplicates: 0.10 };

/// One line of the error table: a resolution against the reference, in one phase.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ErrorRow {
    /// The resolution measured.
    pub resolution: Resolution,
    /// The nodes compared (a hybrid run's real clients or surrogates, or all).
    pub nodes: Nodes,
    /// The slots covered.
    pub phase: Phase,
    /// Arrivals in the reference and in this resolution, all seeds.
    pub arrivals: (usize, usize),
    /// Share of expected arrivals that happened, reference and this resolution.
    pub delivered: (f64, f64),
    /// p50, p95 and p99 of the delay (ms), reference and this resolution.
    pub quantiles_ms: [(f64, f64); 3],
    /// Relative errors of p50, p95 and p99, with intervals.
    pub quantile_errors: [Option<Estimate>; 3],
    /// Two-sample KS distance, with interval.
    pub ks: Option<Estimate>,
    /// The KS distance two independent samples of these sizes from one distribution exceed
    /// with probability 5 % (1.358 · √((n + m) / (n m))): distances below it are not told
    /// apart from sampling noise, and arrivals of one run are correlated, so the true noise is
    /// larger still.
    pub ks_noise: f64,
    /// Wasserstein-1 distance (ms), with interval.
    pub wasserstein_ms: Option<Estimate>,
    /// Copies beyond the first per arrival, reference and this resolution (`None` where the
    /// engine does not count them).
    pub duplicates: (Option<f64>, Option<f64>),
    /// Whether KS, the p50 and p95 errors and, where both sides count them, the duplicates
    /// error are within [`GOALS`].
    pub meets_goals: bool,
}

/// Delays (ms) of each run in `phase`.
fn delays(runs: &[RunArrivals], phase: Phase, cold_slots: u32) -> Vec<Vec<f64>> {
    runs.iter()
        .map(|r| r.arrivals.iter().filter(|a| phase.covers(a.slot, cold_slots)).map(|a| a.delay_ms).collect())
        .collect()
}

/// Share of the expected arrivals in `phase` that happened (phases split expectations by slot
/// count: every slot expects the same number).
fn delivered(runs: &[RunArrivals], phase: Phase, cold_slots: u32, slots: u32) -> f64 {
    let got: usize = runs.iter().map(|r| r.arrivals.iter().filter(|a| phase.covers(a.slot, cold_slots)).count()).sum();
    let share = match phase {
        Phase::All => 1.0,
        Phase::Cold => cold_slots as f64 / slots as f64,
        Phase::Warm => (slots - cold_slots) as f64 / slots as f64,
    };
    let expected: f64 = runs.iter().map(|r| r.expected as f64 * share).sum();
    if expected > 0.0 { got as f64 / expected } else { 0.0 }
}

/// Copies beyond the first per arrival in `phase`, over all runs: from every arrival's count,
/// or, for all slots, from every run's own total.
fn duplicates(runs: &[RunArrivals], phase: Phase, cold_slots: u32) -> Option<f64> {
    let arrivals: Vec<&Arrival> =
        runs.iter().flat_map(|r| &r.arrivals).filter(|a| phase.covers(a.slot, cold_slots)).collect();
    let per_arrival: Option<u64> = arrivals.iter().map(|a| a.duplicates.map(u64::from)).sum();
    let per_run = || runs.iter().map(|r| r.copies).sum::<Option<u64>>().filter(|_| phase == Phase::All);
    per_arrival.or_else(per_run).filter(|_| !arrivals.is_empty()).map(|c| c as f64 / arrivals.len() as f64)
}

/// The 5 % critical value of the two-sample KS distance for samples of `n` and `m` values.
pub fn ks_critical(n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return f64::NAN;
    }
    let (n, m) = (n as f64, m as f64);
    1.358 * ((n + m) / (n * m)).sqrt()
}

/// Options of [`error_table`].
#[derive(Copy, Clone, Debug)]
pub struct TableOptions {
    /// Slots per run.
    pub slots: u32,
    /// The first slots that are the cold phase.
    pub cold_slots: u32,
    /// Bootstrap replicates.
    pub rounds: u32,
    /// Seed of the bootstrap draws.
    pub seed: u64,
}

/// The error table of `candidates` (resolution, its runs) against the `reference` runs.
pub fn error_table(
    reference: &[RunArrivals],
    candidates: &[(Resolution, Vec<RunArrivals>)],
    o: TableOptions,
) -> Vec<ErrorRow> {
    let mut rows = Vec::new();
    for (resolution, runs) in candidates {
        for phase in Phase::ALL {
            let (a, b) = (delays(reference, phase, o.cold_slots), delays(runs, phase, o.cold_slots));
            let pool = |v: &[Vec<f64>]| Sample::new(v.concat());
            let (pa, pb) = (pool(&a), pool(&b));
            let quantile = |q: f64| (pa.quantile(q).unwrap_or(f64::NAN), pb.quantile(q).unwrap_or(f64::NAN));
            let err = |q: f64| {
                bootstrap(&a, &b, |x, y| relative_error(y.quantile(q)?, x.quantile(q)?), o.rounds, 0.95, o.seed)
            };
            let quantile_errors = [err(0.5), err(0.95), err(0.99)];
            let ks = bootstrap(&a, &b, ks, o.rounds, 0.95, o.seed);
            let within = |e: &Option<Estimate>, bound: f64| e.is_some_and(|e| e.value.abs() <= bound);
            let dups = (duplicates(reference, phase, o.cold_slots), duplicates(runs, phase, o.cold_slots));
            let meets_goals = within(&ks, GOALS.ks)
                && within(&quantile_errors[0], GOALS.quantile)
                && within(&quantile_errors[1], GOALS.quantile)
                && duplicates_error(dups).is_none_or(|e| e.abs() <= GOALS.duplicates);
            rows.push(ErrorRow {
                resolution: *resolution,
                nodes: Nodes::All,
                phase,
                arrivals: (pa.len(), pb.len()),
                delivered: (
                    delivered(reference, phase, o.cold_slots, o.slots),
                    delivered(runs, phase, o.cold_slots, o.slots),
                ),
                quantiles_ms: [quantile(0.5), quantile(0.95), quantile(0.99)],
                quantile_errors,
                ks,
                ks_noise: ks_critical(pa.len(), pb.len()),
                wasserstein_ms: bootstrap(&a, &b, wasserstein1, o.rounds, 0.95, o.seed),
                duplicates: dups,
                meets_goals,
            });
        }
    }
    rows
}

/// The relative error of duplicates per arrival, (resolution − reference) / reference, where
/// both sides count them.
pub fn duplicates_error((reference, it): (Option<f64>, Option<f64>)) -> Option<f64> {
    match (reference, it) {
        (Some(r), Some(x)) if r > 0.0 => Some((x - r) / r),
        _ => None,
    }
}

/// `+12.3 % [+8.1, +15.0]`, or `n/a`.
fn percent(e: &Option<Estimate>) -> String {
    match e {
        Some(e) => format!("{:+.1} % [{:+.1}, {:+.1}]", e.value * 100.0, e.low * 100.0, e.high * 100.0),
        None => "n/a".into(),
    }
}

/// `0.123 [0.080, 0.150]`, or `n/a`.
fn plain(e: &Option<Estimate>, digits: usize) -> String {
    match e {
        Some(e) => format!("{:.d$} [{:.d$}, {:.d$}]", e.value, e.low, e.high, d = digits),
        None => "n/a".into(),
    }
}

/// The table as Markdown: one line per resolution and phase, figures of the reference and the
/// resolution side by side, errors with their 95 % intervals over seeds.
pub fn markdown(rows: &[ErrorRow], reference: Resolution) -> String {
    let mut t = format!(
        "| resolution | phase | arrivals ({r} / it) | delivered | p50 ms ({r} / it) | p50 error | p95 ms | p95 error | p99 error | KS | KS noise | W1 ms | duplicates per arrival | goals |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        r = reference.name()
    );
    for row in rows {
        let dup = |d: Option<f64>| d.map_or("n/a".to_string(), |d| format!("{d:.2}"));
        let [p50, p95, _] = row.quantiles_ms;
        t += &format!(
            "| {}{} | {} | {} / {} | {:.1} % / {:.1} % | {:.1} / {:.1} | {} | {:.1} / {:.1} | {} | {} | {} | {:.3} | {} | {} / {} | {} |\n",
            row.resolution.name(),
            row.nodes.suffix(),
            row.phase.name(),
            row.arrivals.0,
            row.arrivals.1,
            row.delivered.0 * 100.0,
            row.delivered.1 * 100.0,
            p50.0,
            p50.1,
            percent(&row.quantile_errors[0]),
            p95.0,
            p95.1,
            percent(&row.quantile_errors[1]),
            percent(&row.quantile_errors[2]),
            plain(&row.ks, 3),
            row.ks_noise,
            plain(&row.wasserstein_ms, 1),
            dup(row.duplicates.0),
            dup(row.duplicates.1),
            if row.meets_goals { "met" } else { "missed" },
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, slots: u32, nodes: u32, delay: impl Fn(u32, u32) -> f64) -> RunArrivals {
        let arrivals = (0..slots)
            .flat_map(|s| (0..nodes).map(move |n| (s, n)))
            .map(|(slot, node)| Arrival { slot, node, delay_ms: delay(slot, node), duplicates: Some(slot) })
            .collect();
        RunArrivals { seed, arrivals, expected: (slots * nodes) as u64, copies: None }
    }

    const OPTIONS: TableOptions = TableOptions { slots: 4, cold_slots: 1, rounds: 200, seed: 1 };

    #[test]
    fn a_subset_of_nodes_keeps_their_arrivals_and_drops_run_level_copies() {
        let mut r = run(3, 2, 4, |_, n| n as f64);
        r.copies = Some(9);
        let hot = r.at_nodes(|n| n % 2 == 0, 4);
        assert_eq!(hot.arrivals.iter().map(|a| a.node).collect::<Vec<_>>(), [0, 2, 0, 2]);
        assert_eq!((hot.seed, hot.expected, hot.copies), (3, 4, None));
        let mut rows = error_table(std::slice::from_ref(&hot), &[(Resolution::Hybrid(50), vec![hot.clone()])], OPTIONS);
        rows[0].nodes = Nodes::Hot;
        assert!(markdown(&rows, Resolution::AllDirect).contains("| hybrid-50, real-client nodes | all |"));
    }

    #[test]
    fn a_resolution_against_itself_meets_every_goal() {
        let refs: Vec<_> = (0..3).map(|s| run(s, 4, 20, |slot, n| 100.0 + (slot * 7 + n) as f64)).collect();
        let rows = error_table(&refs, &[(Resolution::AllSurrogate, refs.clone())], OPTIONS);
        assert_eq!(rows.len(), 3);
        for r in &rows {
            assert_eq!(r.ks.unwrap().value, 0.0);
            assert_eq!(r.quantile_errors[0].unwrap().value, 0.0);
            assert!(r.meets_goals);
            assert_eq!(r.delivered, (1.0, 1.0));
        }
        assert_eq!(rows[1].arrivals, (60, 60));
        assert_eq!(rows[2].arrivals, (180, 180));
    }

    #[test]
    fn a_slower_cold_phase_shows_in_its_rows_only() {
        let refs: Vec<_> =
            (0..3).map(|s| run(s, 4, 20, |slot, n| 100.0 + n as f64 + if slot == 0 { 500.0 } else { 0.0 })).collect();
        let cand: Vec<_> = (0..3).map(|s| run(s, 4, 20, |_, n| 100.0 + n as f64)).collect();
        let rows = error_table(&refs, &[(Resolution::AllSurrogate, cand)], OPTIONS);
        let [all, cold, warm] = [&rows[0], &rows[1], &rows[2]];
        assert_eq!(warm.ks.unwrap().value, 0.0);
        assert!(warm.meets_goals);
        assert_eq!(cold.ks.unwrap().value, 1.0);
        // 109.5 against 609.5: −82 %.
        assert!((cold.quantile_errors[0].unwrap().value + 500.0 / 609.5).abs() < 1e-9);
        assert!((cold.wasserstein_ms.unwrap().value - 500.0).abs() < 1e-9);
        assert!(!cold.meets_goals && !all.meets_goals);
        assert!((all.ks.unwrap().value - 0.25).abs() < 1e-9);
        let md = markdown(&rows, Resolution::AllDirect);
        assert_eq!(md.lines().count(), 5);
        assert!(md.contains("| all-surrogate | cold |") && md.contains("missed") && md.contains("met"));
    }

    #[test]
    fn missing_arrivals_and_duplicates_are_reported() {
        let mut r = run(0, 4, 10, |_, _| 50.0);
        r.arrivals.retain(|a| a.node != 3);
        let mut unknown = run(1, 4, 10, |_, _| 50.0);
        unknown.arrivals[5].duplicates = None;
        let rows = error_table(&[unknown.clone()], &[(Resolution::AllSurrogate, vec![r])], OPTIONS);
        assert!((rows[0].delivered.1 - 0.9).abs() < 1e-12);
        assert_eq!(rows[0].delivered.0, 1.0);
        // Slot s counted s copies per arrival: 1.5 over all slots, 0 in the cold slot, 2 warm.
        assert_eq!(
            (rows[0].duplicates.1, rows[1].duplicates.1, rows[2].duplicates.1),
            (Some(1.5), Some(0.0), Some(2.0))
        );
        assert_eq!(rows[0].duplicates.0, None, "an arrival without a count makes the figure unknown");
        assert!((rows[0].ks_noise - 1.358 * (76.0 / (40.0 * 36.0f64)).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_clients_run_total_of_copies_gives_the_all_slots_figure_and_holds_the_goal() {
        // The reference counts copies per node, not per arrival: 40 arrivals, 60 copies in all.
        let counted = |copies| {
            let mut r = run(0, 4, 10, |_, _| 50.0);
            r.arrivals.iter_mut().for_each(|a| a.duplicates = None);
            RunArrivals { copies: Some(copies), ..r }
        };
        let it = vec![run(0, 4, 10, |_, _| 50.0)];
        let rows = error_table(&[counted(60)], &[(Resolution::AllSurrogate, it.clone())], OPTIONS);
        assert_eq!((rows[0].duplicates.0, rows[1].duplicates.0, rows[2].duplicates.0), (Some(1.5), None, None));
        assert_eq!(duplicates_error(rows[0].duplicates), Some(0.0));
        assert!(rows[0].meets_goals, "same delays, same copies");
        // 25 % more copies in the reference: the surrogates' 1.5 is 20 % short, past the ±10 %.
        let rows = error_table(&[counted(75)], &[(Resolution::AllSurrogate, it)], OPTIONS);
        assert!((duplicates_error(rows[0].duplicates).unwrap() + 0.2).abs() < 1e-12);
        assert!(!rows[0].meets_goals && rows[2].meets_goals);
    }
}
