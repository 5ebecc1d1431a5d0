//! Exact order statistics of a stream too large to hold (a million identities' arrivals over an
//! hour of slots), in two passes: the first counts values in fine logarithmic buckets, which
//! says which bucket holds each wanted rank; the second keeps only the values of those buckets.
//! The answers are exactly those of sorting every value.

use std::collections::BTreeMap;

/// Sub-buckets per power of two: values of one bucket differ by at most 1/512 of themselves.
const SUB: u64 = 512;
/// Values below this have a bucket each.
const LINEAR: u64 = 2 * SUB;

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // ≥ 10
    let mantissa = v >> (e - 9); // in [512, 1024)
    (LINEAR + (e - 10) * SUB + (mantissa - SUB)) as usize
}

/// One stream's exact quantiles: [`TwoPass::count`] every value, then [`TwoPass::second_pass`],
/// [`TwoPass::keep`] every value again in any order, and read [`TwoPass::quantile`].
#[derive(Default)]
pub struct TwoPass {
    counts: Vec<u64>,
    n: u64,
    /// After the first pass: the values of the buckets that hold a wanted rank.
    kept: BTreeMap<usize, Vec<u64>>,
}

impl TwoPass {
    /// First pass: count `v`.
    pub fn count(&mut self, v: u64) {
        let b = bucket(v);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.n += 1;
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The 0-based rank of quantile `p`: the smallest value with at least `p` of the values at
    /// or below it (`ceil(p·n)`-th, from 1).
    fn rank(&self, p: f64) -> u64 {
        ((p * self.n as f64).ceil() as u64).clamp(1, self.n) - 1
    }

    /// The bucket holding rank `k`, and how many values come before that bucket.
    fn locate(&self, k: u64) -> (usize, u64) {
        let mut below = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            if below + c > k {
                return (b, below);
            }
            below += c;
        }
        unreachable!("rank {k} of {} values", self.n)
    }

    /// End the first pass: the second keeps the values of the buckets that hold quantiles `ps`.
    pub fn second_pass(&mut self, ps: &[f64]) {
        if self.n == 0 {
            return;
        }
        for &p in ps {
            let (b, _) = self.locate(self.rank(p));
            self.kept.entry(b).or_default();
        }
    }

    /// Second pass: see `v` again.
    pub fn keep(&mut self, v: u64) {
        if let Some(values) = self.kept.get_mut(&bucket(v)) {
            values.push(v);
        }
    }

    /// Quantile `p` (one of those given to [`TwoPass::second_pass`]); 0 with no values.
    pub fn quantile(&mut self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let k = self.rank(p);
        let (b, below) = self.locate(k);
        let values = self.kept.get_mut(&b).expect("quantiles are read after a second pass that wanted them");
        values.sort_unstable();
        values[(k - below) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_grow_with_values_and_stay_fine() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1023), 1023);
        assert_eq!(bucket(1024), 1024);
        let mut last = 0;
        for v in [2048u64, 1 << 20, 750_000_000, u64::MAX] {
            assert!(bucket(v) > last);
            last = bucket(v);
        }
        // Neighbouring values of one bucket are within 1/512 of each other.
        assert_eq!(bucket(750_000_000), bucket(750_000_000 + 750_000_000 / 1024));
    }

    proptest! {
        #[test]
        fn two_passes_give_exactly_what_sorting_gives(
            values in prop::collection::vec(prop_oneof![0u64..2000, 0u64..5_000_000_000, any::<u64>()], 1..400),
            p in 0.0f64..=1.0,
        ) {
            let mut q = TwoPass::default();
            values.iter().for_each(|&v| q.count(v));
            q.second_pass(&[p, 0.5]);
            values.iter().rev().for_each(|&v| q.keep(v));
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            prop_assert_eq!(q.quantile(p), sorted[k]);
            let k = ((0.5 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            prop_assert_eq!(q.quantile(0.5), sorted[k]);
        }
    }

    #[test]
    fn no_values_give_zero() {
        let mut q = TwoPass::default();
        q.second_pass(&[0.5]);
        assert_eq!(q.quantile(0.5), 0);
        assert!(q.is_empty());
    }
}
