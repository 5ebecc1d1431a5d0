//! Distances between two samples and their confidence over seeds.
//!
//! Every function takes samples as slices of finite values; [`Sample::new`] sorts once so the
//! distances are computed by merging two sorted slices (O(n + m)). Quantiles interpolate
//! linearly between order statistics (Hyndman and Fan's type 7, the default of R, NumPy and
//! DuckDB's `quantile_cont`), so figures here agree with what users compute from the tables.

use thermocline_models::rng::{StreamFamily, below};

/// A sorted sample of finite values.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample(Vec<f64>);

impl Sample {
    /// Sort `values`, dropping values that are not finite.
    pub fn new(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        Sample(values)
    }

    /// The values, ascending.
    pub fn values(&self) -> &[f64] {
        &self.0
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the sample has no value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), interpolated linearly between order statistics; `None` for
    /// an empty sample.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = &self.0;
        if v.is_empty() {
            return None;
        }
        let h = (v.len() - 1) as f64 * q.clamp(0.0, 1.0);
        let lo = h.floor() as usize;
        let hi = (lo + 1).min(v.len() - 1);
        Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
    }

    /// The arithmetic mean; `None` for an empty sample.
    pub fn mean(&self) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.iter().sum::<f64>() / self.0.len() as f64)
    }
}

/// The two empirical distribution functions stepped through every value of `a` and `b` in
/// order: calls `f(x, next_x, F_a(x), F_b(x))` for each distinct value `x` (with the next
/// distinct value, or `x` itself at the end).
fn merged_steps(a: &Sample, b: &Sample, mut f: impl FnMut(f64, f64, f64, f64)) {
    let (a, b) = (a.values(), b.values());
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let x = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) | (None, Some(&x)) => x,
            (None, None) => unreachable!("the loop runs while a value is left"),
        };
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(&p), Some(&q)) => p.min(q),
            (Some(&p), None) | (None, Some(&p)) => p,
            (None, None) => x,
        };
        f(x, next, i as f64 / na, j as f64 / nb);
    }
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the two empirical
/// distribution functions (0 for identical samples, 1 for samples that do not overlap); `None`
/// when either sample is empty.
pub fn ks(a: &Sample, b: &Sample) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut d: f64 = 0.0;
    merged_steps(a, b, |_, _, fa, fb| d = d.max((fa - fb).abs()));
    Some(d)
}

/// The Wasserstein-1 (earth mover's) distance: the area between the two empirical distribution
/// functions, in the samples' unit (for samples that differ by a shift `s`, it is `|s|`); `None`
/// when either sample is empty.
pub fn wasserstein1(a: &Sample, b: &Sample) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut area = 0.0;
    merged_steps(a, b, |x, next, fa, fb| area += (fa - fb).abs() * (next - x));
    Some(area)
}

/// `(candidate − reference) / reference`: the relative error of a figure against the reference
/// (all-direct); `None` when the reference is 0.
pub fn relative_error(candidate: f64, reference: f64) -> Option<f64> {
    (reference != 0.0).then(|| (candidate - reference) / reference)
}

/// A figure with its bootstrap confidence interval.
#[derive(Copy, Clone, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The figure computed on all seeds pooled.
    pub value: f64,
    /// The lower end of the interval.
    pub low: f64,
    /// The upper end of the interval.
    pub high: f64,
}

/// Bootstrap over seeds: each of `rounds` replicates draws, with replacement, as many seeds as
/// each side has, pools the drawn seeds' samples and computes `figure(a, b)`. When both sides
/// have the same number of runs they are taken as paired (run `k` of each side shares seed `k`,
/// and with it the peer graph and proposers), so one draw of seeds serves both; otherwise each
/// side is drawn on its own; the interval is the replicates' central `level`
/// (e.g. 0.95). Seeds, not single values, are resampled because values of one run are not
/// independent (one slow link delays many arrivals). The draws come from the "bootstrap" stream
/// of `seed`, so the interval is the same on every machine. `None` when the figure is undefined
/// on all seeds pooled.
pub fn bootstrap(
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    figure: impl Fn(&Sample, &Sample) -> Option<f64>,
    rounds: u32,
    level: f64,
    seed: u64,
) -> Option<Estimate> {
    let pool = |runs: &[Vec<f64>], pick: &[usize]| Sample::new(pick.iter().flat_map(|&k| runs[k].clone()).collect());
    let all = |runs: &[Vec<f64>]| (0..runs.len()).collect::<Vec<_>>();
    let value = figure(&pool(a, &all(a)), &pool(b, &all(b)))?;
    let mut rng = StreamFamily::new(seed, "bootstrap").compact(0);
    let mut draw = |n: usize| (0..n).map(|_| below(&mut rng, n as u64) as usize).collect::<Vec<_>>();
    let mut replicates = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let pa = draw(a.len());
        let pb = if a.len() == b.len() { pa.clone() } else { draw(b.len()) };
        if let Some(x) = figure(&pool(a, &pa), &pool(b, &pb)) {
            replicates.push(x);
        }
    }
    let replicates = Sample::new(replicates);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    Some(Estimate {
        value,
        low: replicates.quantile(tail).unwrap_or(value),
        high: replicates.quantile(1.0 - tail).unwrap_or(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_core::Rng;

    /// A uniform value in [0, 1).
    fn unit(rng: &mut impl Rng) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StreamFamily::new(seed, "test").compact(0);
        (0..n).map(|_| unit(&mut rng)).collect()
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = Sample::new(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.quantile(0.0), Some(1.0));
        assert_eq!(s.quantile(1.0), Some(4.0));
        assert_eq!(s.quantile(0.5), Some(2.5));
        // numpy.quantile([1, 2, 3, 4], 0.95) = 3.85
        assert!((s.quantile(0.95).unwrap() - 3.85).abs() < 1e-12);
        assert_eq!(Sample::new(vec![]).quantile(0.5), None);
        assert_eq!(Sample::new(vec![f64::NAN, 7.0]).values(), &[7.0]);
    }

    #[test]
    fn ks_of_identical_samples_is_zero_and_of_disjoint_ones_is_one() {
        let a = Sample::new(uniform(1000, 1));
        assert_eq!(ks(&a, &a), Some(0.0));
        assert_eq!(wasserstein1(&a, &a), Some(0.0));
        let b = Sample::new(a.values().iter().map(|x| x + 10.0).collect());
        assert_eq!(ks(&a, &b), Some(1.0));
        assert_eq!(ks(&a, &Sample::new(vec![])), None);
    }

    #[test]
    fn ks_of_a_shifted_uniform_is_the_shift() {
        // U(0,1) against U(0.2,1.2): sup |F − G| = 0.2, up to sampling error (~1.36·sqrt(2/n)).
        let a = Sample::new(uniform(20_000, 2));
        let b = Sample::new(uniform(20_000, 3).into_iter().map(|x| x + 0.2).collect());
        let d = ks(&a, &b).unwrap();
        assert!((d - 0.2).abs() < 0.015, "{d}");
        let w = wasserstein1(&a, &b).unwrap();
        assert!((w - 0.2).abs() < 0.01, "{w}");
        // Two draws of one distribution: small, but not zero.
        let c = Sample::new(uniform(20_000, 4));
        let same = ks(&a, &c).unwrap();
        assert!(same > 0.0 && same < 0.0136, "{same}");
    }

    #[test]
    fn wasserstein_of_point_masses_is_their_distance() {
        let a = Sample::new(vec![1.0; 5]);
        let b = Sample::new(vec![4.0; 3]);
        assert_eq!(wasserstein1(&a, &b), Some(3.0));
        // Half the mass moves by 2: W1 = 1.
        let c = Sample::new(vec![0.0, 0.0, 2.0, 2.0]);
        let d = Sample::new(vec![0.0, 0.0, 4.0, 4.0]);
        assert_eq!(wasserstein1(&c, &d), Some(1.0));
    }

    #[test]
    fn relative_error_is_signed_and_undefined_against_zero() {
        assert_eq!(relative_error(110.0, 100.0), Some(0.1));
        assert_eq!(relative_error(90.0, 100.0), Some(-0.1));
        assert_eq!(relative_error(1.0, 0.0), None);
    }

    #[test]
    fn bootstrap_intervals_hold_the_value_and_are_reproducible() {
        let a: Vec<Vec<f64>> = (0..5).map(|s| uniform(400, 10 + s)).collect();
        let b: Vec<Vec<f64>> = (0..5).map(|s| uniform(400, 20 + s).into_iter().map(|x| x + 0.1).collect()).collect();
        let e = bootstrap(&a, &b, ks, 200, 0.95, 7).unwrap();
        assert!(e.low <= e.value && e.value <= e.high, "{e:?}");
        assert!(e.low > 0.03 && e.high < 0.2, "{e:?}");
        assert_eq!(e, bootstrap(&a, &b, ks, 200, 0.95, 7).unwrap());
        // Identical runs on both sides: the interval collapses onto 0.
        let same = bootstrap(&a[..1], &a[..1], ks, 50, 0.95, 7).unwrap();
        assert_eq!((same.value, same.low, same.high), (0.0, 0.0, 0.0));
        assert_eq!(bootstrap(&[], &b, ks, 50, 0.95, 7), None);
    }

    proptest! {
        #[test]
        fn distances_are_symmetric_and_bounded(
            a in prop::collection::vec(-1e6f64..1e6, 1..60),
            b in prop::collection::vec(-1e6f64..1e6, 1..60),
        ) {
            let (sa, sb) = (Sample::new(a), Sample::new(b));
            let d = ks(&sa, &sb).unwrap();
            prop_assert!((0.0..=1.0).contains(&d));
            prop_assert_eq!(Some(d), ks(&sb, &sa));
            let w = wasserstein1(&sa, &sb).unwrap();
            let w2 = wasserstein1(&sb, &sa).unwrap();
            prop_assert!(w >= 0.0 && (w - w2).abs() <= 1e-9 * w.max(1.0));
            // W1 lies between the difference of means and the range's width.
            let gap = (sa.mean().unwrap() - sb.mean().unwrap()).abs();
            prop_assert!(w + 1e-6 >= gap);
        }

        #[test]
        fn quantiles_are_monotone(v in prop::collection::vec(-1e6f64..1e6, 1..60), p in 0.0f64..1.0, q in 0.0f64..1.0) {
            let s = Sample::new(v);
            let (lo, hi) = (p.min(q), p.max(q));
            prop_assert!(s.quantile(lo).unwrap() <= s.quantile(hi).unwrap());
        }
    }
}
