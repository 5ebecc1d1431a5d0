//! Aggregates the plots are drawn from, so a plot's size does not grow with the run: CDFs from
//! a fixed number of sample quantiles, percentiles, and sums over time bins. Samples whose
//! number grows with the run (arrival delays) are counted in logarithmic [`Histogram`]s, so the
//! report's memory does not grow with it either.

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

/// Counts of values in logarithmic buckets: values below `2^(bits+1)` have a bucket each; above,
/// each power of two is split into `2^bits` buckets, so the values of one bucket differ by less
/// than `1/2^bits` of themselves. Holds one counter per bucket between the smallest and largest
/// value seen (at most `64·2^bits`), and the exact smallest and largest value.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bits: u32,
    /// The bucket of `counts[0]`.
    first: usize,
    counts: Vec<u64>,
    n: u64,
    min: u64,
    max: u64,
}

impl Histogram {
    /// An empty histogram of `2^bits` buckets per power of two (`bits` at most 16).
    pub fn new(bits: u32) -> Histogram {
        Histogram { bits: bits.min(16), first: 0, counts: Vec::new(), n: 0, min: u64::MAX, max: 0 }
    }

    fn bucket(&self, v: u64) -> usize {
        let linear = 2u64 << self.bits;
        if v < linear {
            return v as usize;
        }
        let e = u64::from(63 - v.leading_zeros()); // > bits
        let mantissa = v >> (e - u64::from(self.bits)); // in [2^bits, 2^(bits+1))
        (linear + (e - u64::from(self.bits) - 1) * (1 << self.bits) + mantissa - (1 << self.bits)) as usize
    }

    /// The smallest value of bucket `b`.
    fn lower(&self, b: usize) -> u64 {
        let (sub, linear) = (1u64 << self.bits, 2u64 << self.bits);
        let b = b as u64;
        if b < linear {
            return b;
        }
        let (octave, m) = ((b - linear) / sub, (b - linear) % sub);
        (sub + m) << (octave + 1)
    }

    /// Count `v`.
    pub fn add(&mut self, v: u64) {
        let b = self.bucket(v);
        if self.counts.is_empty() {
            self.first = b;
        } else if b < self.first {
            let mut grown = vec![0; self.first - b];
            grown.append(&mut self.counts);
            self.counts = grown;
            self.first = b;
        }
        let k = b - self.first;
        if k >= self.counts.len() {
            self.counts.resize(k + 1, 0);
        }
        self.counts[k] += 1;
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `p` quantile by the summary's rule (the value at rank ⌈p·n⌉), to the histogram's
    /// resolution: the smallest value of the bucket holding that rank, kept within the smallest
    /// and largest value seen (so exact below `2^(bits+1)`, and the largest value for the last rank). `None` when empty.
    pub fn quantile(&self, p: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((p * self.n as f64).ceil() as u64).clamp(1, self.n);
        if rank == self.n {
            return Some(self.max);
        }
        let mut seen = 0;
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.lower(self.first + k).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The CDF as [`cdf`] draws it: `(value × scale, share ≤ it)` at [`CDF_POINTS`] evenly
    /// spaced quantiles, from the smallest value to the largest.
    pub fn cdf(&self, scale: f64) -> Vec<(f64, f64)> {
        if self.n == 0 {
            return Vec::new();
        }
        let mut points = vec![(self.min as f64 * scale, 0.0)];
        for k in 1..=CDF_POINTS {
            let q = k as f64 / CDF_POINTS as f64;
            points.push((self.quantile(q).expect("not empty") as f64 * scale, q));
        }
        points.dedup();
        points
    }
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
    fn histogram_quantiles_are_within_a_bucket_of_the_exact_ones() {
        let values: Vec<u64> = (0..100_000u64).map(|k| (k * 7919) % 100_000 * 37_000 + 1_000).collect();
        let mut h = Histogram::new(9);
        values.iter().for_each(|&v| h.add(v));
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for p in [0.0, 0.01, 0.5, 0.95, 0.99, 1.0] {
            let (exact, got) = (percentile(&sorted, p).unwrap(), h.quantile(p).unwrap());
            assert!(got <= exact && exact - got <= exact / 512, "p {p}: {got} for {exact}");
        }
        assert_eq!(h.quantile(1.0), Some(*sorted.last().unwrap()));
        assert_eq!(h.len(), 100_000);
        let points = h.cdf(1.0);
        assert_eq!(points.first(), Some(&(1_000.0, 0.0)));
        assert!(points.len() <= CDF_POINTS + 1 && points.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn small_values_and_extremes_are_exact_in_a_histogram() {
        let values: Vec<u64> = (1..=100).chain([u64::MAX, 1 << 40]).collect();
        let mut h = Histogram::new(7);
        values.iter().rev().for_each(|&v| h.add(v));
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for p in [0.01, 0.5, 0.95] {
            assert_eq!(h.quantile(p), percentile(&sorted, p));
        }
        assert_eq!(h.quantile(1.0), Some(u64::MAX));
        for v in [255u64, 256, 257, 1000, 1 << 33, (1 << 33) + 12_345_678] {
            let b = h.bucket(v);
            assert!(h.lower(b) <= v && h.lower(b + 1) > v, "{v}");
        }
        assert_eq!(Histogram::new(9).quantile(0.5), None);
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
