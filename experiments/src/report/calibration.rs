//! The calibration's charts (`thermocline calibrate` writes them beside `calibration.md`): the
//! arrival-delay CDF of every resolution per phase, a Q–Q plot of every resolution against the
//! reference, and each resolution's p50 and p95 slot by slot, so the shape of an error — a tail,
//! an offset, a cold first slot — shows at a glance where the table gives only its size.

use super::ReportError;
use super::chart::{LineChart, Series, line_chart};
use super::stats::{cdf, percentile};
use thermocline_calibration::compare::{Arrival, Phase, RunArrivals};

/// One chart of the calibration: its file name, what it shows, and its SVG.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationChart {
    /// The file name in the output folder (`cdf-warm.svg`).
    pub file: String,
    /// A sentence saying what it shows, for the page that links it.
    pub caption: String,
    /// The drawing.
    pub svg: String,
}

/// The runs of one line of the charts: a resolution (or a fitted candidate) over every seed.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The legend entry.
    pub name: &'a str,
    /// Its runs, one per seed.
    pub runs: &'a [RunArrivals],
}

/// An arrival's delay in whole microseconds (the CDF's and percentiles' unit).
fn delay_us(a: &Arrival) -> u64 {
    (a.delay_ms * 1000.0).round().max(0.0) as u64
}

/// Delays of `runs` in `phase`, in microseconds, pooled over seeds.
fn delays_us(runs: &[RunArrivals], phase: Phase, cold_slots: u32) -> Vec<u64> {
    runs.iter().flat_map(|r| r.arrivals.iter()).filter(|a| phase.covers(a.slot, cold_slots)).map(delay_us).collect()
}

/// The CDF chart of `phase`, one series per line.
fn cdf_chart(lines: &[Line], phase: Phase, cold_slots: u32) -> LineChart {
    let series = lines
        .iter()
        .map(|l| Series { name: l.name.to_string(), points: cdf(delays_us(l.runs, phase, cold_slots), 1e-3) })
        .collect();
    let mut chart = LineChart::new("delay from publication to first arrival (ms)", "share of arrivals", series);
    chart.y_max = Some(1.0);
    chart
}

/// The chart of p50 and p95 by slot, two series per line.
fn by_slot_chart(lines: &[Line], slots: u32) -> LineChart {
    let mut series = Vec::new();
    for l in lines {
        for (label, q) in [("p50", 0.5), ("p95", 0.95)] {
            let points = (0..slots)
                .filter_map(|slot| {
                    let mut v: Vec<u64> = l
                        .runs
                        .iter()
                        .flat_map(|r| r.arrivals.iter())
                        .filter(|a| a.slot == slot)
                        .map(delay_us)
                        .collect();
                    v.sort_unstable();
                    Some((f64::from(slot), percentile(&v, q)? as f64 / 1000.0))
                })
                .collect();
            series.push(Series { name: format!("{} {label}", l.name), points });
        }
    }
    LineChart::new("slot", "delay (ms)", series)
}

/// The Q–Q chart of every line against the first (the reference), all slots: the reference's
/// percentiles 1 to 99 on x, the line's on y, and the diagonal where they would agree.
fn qq_chart(lines: &[Line], cold_slots: u32) -> LineChart {
    let sorted = |l: &Line| {
        let mut v = delays_us(l.runs, Phase::All, cold_slots);
        v.sort_unstable();
        v
    };
    let Some((reference, others)) = lines.split_first() else { return LineChart::new("", "", Vec::new()) };
    let r = sorted(reference);
    let q = |v: &[u64], k: u32| percentile(v, f64::from(k) / 100.0).map(|x| x as f64 / 1000.0);
    let mut series: Vec<Series> = others
        .iter()
        .map(|l| {
            let v = sorted(l);
            let points = (1..100).filter_map(|k| Some((q(&r, k)?, q(&v, k)?))).collect();
            Series { name: l.name.to_string(), points }
        })
        .collect();
    if let (Some(lo), Some(hi)) = (q(&r, 1), q(&r, 99)) {
        series.push(Series { name: format!("{} (agreement)", reference.name), points: vec![(lo, lo), (hi, hi)] });
    }
    let mut chart = LineChart::new(
        &format!("{} delay percentile (ms)", reference.name),
        "the same percentile of the resolution (ms)",
        series,
    );
    chart.y_from_zero = false;
    chart
}

/// Every chart of a calibration whose first `cold_slots` of `slots` are the cold phase: a CDF
/// per phase (the cold one only when there are cold slots), a Q–Q plot of every line against the
/// first, and the by-slot quantiles. A chart with no arrival to draw is left out.
pub fn calibration_charts(lines: &[Line], slots: u32, cold_slots: u32) -> Result<Vec<CalibrationChart>, ReportError> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        if phase == Phase::Cold && cold_slots == 0 {
            continue;
        }
        let chart = cdf_chart(lines, phase, cold_slots);
        if chart.has_points() {
            let caption = match phase {
                Phase::All => "Arrival delays over every slot, pooled over seeds.".to_string(),
                Phase::Cold => format!("Arrival delays in the cold phase (the first {cold_slots} slots)."),
                Phase::Warm => format!("Arrival delays in the warm phase (slots {cold_slots} and after)."),
            };
            out.push(CalibrationChart { file: format!("cdf-{}.svg", phase.name()), caption, svg: line_chart(&chart)? });
        }
    }
    if lines.len() > 1 {
        let chart = qq_chart(lines, cold_slots);
        if chart.has_points() {
            let caption = format!(
                "Q–Q plot against {}, all slots: percentiles 1 to 99; a line above the diagonal is slower there.",
                lines[0].name
            );
            out.push(CalibrationChart { file: "qq.svg".into(), caption, svg: line_chart(&chart)? });
        }
    }
    let chart = by_slot_chart(lines, slots);
    if chart.has_points() {
        let caption = "Median and 95th percentile of the arrival delay, slot by slot, pooled over seeds.".to_string();
        out.push(CalibrationChart { file: "by-slot.svg".into(), caption, svg: line_chart(&chart)? });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_calibration::compare::Arrival;

    fn run(seed: u64, delays: &[(u32, f64)]) -> RunArrivals {
        let arrivals =
            delays.iter().map(|&(slot, delay_ms)| Arrival { slot, node: 1, delay_ms, duplicates: None }).collect();
        RunArrivals { seed, arrivals, expected: delays.len() as u64, copies: None }
    }

    #[test]
    fn each_phase_has_a_cdf_and_the_slots_a_quantile_chart() {
        let direct = [run(1, &[(0, 700.0), (1, 150.0), (2, 160.0)]), run(2, &[(0, 650.0), (1, 140.0)])];
        let surrogate = [run(1, &[(0, 200.0), (1, 145.0), (2, 150.0)])];
        let lines = [Line { name: "all-direct", runs: &direct }, Line { name: "all-surrogate", runs: &surrogate }];
        let charts = calibration_charts(&lines, 3, 1).unwrap();
        let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(files, ["cdf-all.svg", "cdf-cold.svg", "cdf-warm.svg", "qq.svg", "by-slot.svg"]);
        assert!(charts.iter().all(|c| c.svg.starts_with("<svg") && c.svg.contains("all-surrogate")));
        assert!(charts[4].svg.contains("all-direct p95"));
        // Without cold slots there is no cold chart.
        let files: Vec<String> = calibration_charts(&lines, 3, 0).unwrap().into_iter().map(|c| c.file).collect();
        assert_eq!(files, ["cdf-all.svg", "cdf-warm.svg", "qq.svg", "by-slot.svg"]);
    }

    #[test]
    fn the_cdfs_split_by_phase_and_pool_seeds() {
        let runs = [run(1, &[(0, 700.0), (1, 150.0)]), run(2, &[(0, 650.0), (3, 140.5)])];
        assert_eq!(delays_us(&runs, Phase::Cold, 1), [700_000, 650_000]);
        assert_eq!(delays_us(&runs, Phase::Warm, 1), [150_000, 140_500]);
        let chart = by_slot_chart(&[Line { name: "x", runs: &runs }], 4);
        // Slot 2 has no arrival: no point; slot 0's p50 over both seeds is the lower one.
        assert_eq!(chart.series[0].points, [(0.0, 650.0), (1.0, 150.0), (3.0, 140.5)]);
        assert_eq!(chart.series[1].points, [(0.0, 700.0), (1.0, 150.0), (3.0, 140.5)]);
    }

    #[test]
    fn the_qq_plot_pairs_percentiles_of_each_line_with_the_references() {
        let reference = [run(1, &(1..=100).map(|k| (0, f64::from(k))).collect::<Vec<_>>())];
        let slower = [run(1, &(1..=100).map(|k| (0, 2.0 * f64::from(k))).collect::<Vec<_>>())];
        let chart = qq_chart(&[Line { name: "ref", runs: &reference }, Line { name: "slow", runs: &slower }], 0);
        assert_eq!(chart.series.len(), 2);
        let points = &chart.series[0].points;
        assert_eq!(points.len(), 99);
        assert_eq!((points[0], points[49], points[98]), ((1.0, 2.0), (50.0, 100.0), (99.0, 198.0)));
        assert_eq!(chart.series[1].points, [(1.0, 1.0), (99.0, 99.0)], "the diagonal");
    }

    #[test]
    fn the_same_runs_draw_the_same_bytes() {
        let runs = [run(1, &[(0, 700.0), (1, 150.0)])];
        let lines = [Line { name: "a", runs: &runs }];
        assert_eq!(calibration_charts(&lines, 2, 1).unwrap(), calibration_charts(&lines, 2, 1).unwrap());
    }
}
