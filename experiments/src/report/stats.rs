//! Aggregates the plots are drawn from, so a plot's size does not grow with the run: CDFs from
//! a fixed number of sample quantiles, percentiles, and sums over time bins.

/// Points drawn per CDF line, whatever the number of samples.
pub const CDF_POINTS: usize = 200;

/// The `p` quantile of `sorted` by nearest rank (the summary's rule: the value at rank
/// ⌈p·n⌉), or `None` when there are no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[k])
}

/// The empirical CDF of `values` (sorted here) as `(value × scale, share of samples ≤ it)`
/// points at [`CDF_POINTS`] evenly spaced quantiles, the smallest and largest value included.
pub fn cdf(mut values: Vec<u64>, scale: f64) -> Vec<(f64, f64)> {
    values.sort_unstable();
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let mut points = vec![(values[0] as f64 * scale, 0.0)];
    for k in 1..=CDF_POINTS {
        let q = k as f64 / CDF_POINTS as f64;
        let v = percentile(&values, q).expect("not empty");
        points.push((v as f64 * scale, q));
    }
    points.dedup();
    points
}

/// Sums of values into `bins` equal bins over `0..end` by their time (times at or past `end`
/// go into the last bin).
#[derive(Debug, Clone, PartialEq)]
pub struct Bins {
    end: u64,
    /// Per bin: the sums.
    pub sums: Vec<f64>,
}

impl Bins {
    /// `bins` empty bins over `0..end`.
    pub fn new(end: u64, bins: usize) -> Bins {
        Bins { end: end.max(1), sums: vec![0.0; bins.max(1)] }
    }

    /// The bin of time `t`.
    pub fn index(&self, t: u64) -> usize {
        let n = self.sums.len();
        ((u128::from(t) * n as u128 / u128::from(self.end)) as usize).min(n - 1)
    }

    /// Add `v` to the bin of time `t`.
    pub fn add(&mut self, t: u64, v: f64) {
        let k = self.index(t);
        self.sums[k] += v;
    }

    /// The start time of bin `k`, ns.
    pub fn start(&self, k: usize) -> u64 {
        (u128::from(self.end) * k as u128 / self.sums.len() as u128) as u64
    }

    /// The width of one bin, ns.
    pub fn width(&self) -> f64 {
        self.end as f64 / self.sums.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_summary_rule() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_cdf_has_a_bounded_number_of_points_from_min_to_max() {
        let values: Vec<u64> = (0..1_000_000).rev().collect();
        let points = cdf(values, 1e-3);
        assert!(points.len() <= CDF_POINTS + 1);
        assert_eq!(points.first(), Some(&(0.0, 0.0)));
        assert_eq!(points.last(), Some(&(999.999, 1.0)));
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!(cdf(Vec::new(), 1.0).is_empty());
    }

    #[test]
    fn bins_cover_the_run_and_keep_late_times() {
        let mut b = Bins::new(1000, 10);
        b.add(0, 1.0);
        b.add(999, 2.0);
        b.add(5000, 3.0);
        assert_eq!(b.sums[0], 1.0);
        assert_eq!(b.sums[9], 5.0);
        assert_eq!((b.start(3), b.width()), (300, 100.0));
    }
}
