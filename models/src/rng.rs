//! Deterministic random streams, one per (run seed, purpose, host).
//!
//! A stream is ChaCha8 keyed by SHA-256 of the run seed and the purpose name, with the host id as
//! the ChaCha stream number. Every host draws from its own stream, so adding a host or a purpose
//! changes no other stream, and a host's draws do not depend on which shard runs it.
//!
//! Hot loops that draw per event for many hosts use [`StreamFamily::compact`]: a 16-byte PCG
//! generator seeded from the host's ChaCha stream. A ChaCha generator carries a 256-byte output
//! buffer; a hundred thousand of them do not fit in cache, and the misses cost more than the
//! simulation itself (measured: PHOLD at 100k LPs ran at half speed).

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use sha2::{Digest, Sha256};

/// The generator behind every stream.
pub type StreamRng = ChaCha8Rng;

/// The compact per-host generator for hot loops (16 bytes of state).
pub type CompactRng = Pcg64Mcg;

/// A family of streams: one per host, for one purpose (e.g. `"phold"`, `"latency"`).
#[derive(Clone, Debug)]
pub struct StreamFamily {
    key: [u8; 32],
}

impl StreamFamily {
    /// The streams for `purpose` in a run with `seed`.
    pub fn new(seed: u64, purpose: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"thermocline-rng-v1\0");
        h.update(seed.to_be_bytes());
        h.update(purpose.as_bytes());
        StreamFamily { key: h.finalize().into() }
    }

    /// The stream of host `host`.
    pub fn stream(&self, host: u32) -> StreamRng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(host as u64);
        rng
    }

    /// Stream `index` of host `host`: one of 2^32 independent streams per host, for things of a
    /// host that draw independently of one another (each process of a direct host), so that the
    /// order in which they draw cannot change what any of them gets. Index 0 is [`Self::stream`].
    pub fn substream(&self, host: u32, index: u32) -> StreamRng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(u64::from(index) << 32 | u64::from(host));
        rng
    }

    /// A compact generator for host `host`, seeded from the first 128 bits of its stream.
    pub fn compact(&self, host: u32) -> CompactRng {
        let mut seed = [0u8; 16];
        self.stream(host).fill_bytes(&mut seed);
        Pcg64Mcg::from_seed(seed)
    }
}

/// A uniform integer in `0..n` (`n > 0`) by multiply-shift: integer-only, the same on every
/// platform and independent of any library's sampling algorithm. The bias is below n / 2^64.
pub fn below(rng: &mut impl Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    ((rng.next_u64() as u128 * n as u128) >> 64) as u64
}

/// The probability `p` (clamped to `[0, 1]`) as a threshold on a uniform u64: an event of
/// probability `p` happens when `rng.next_u64() < threshold`. `1.0` maps to `u64::MAX`, which
/// misses one value in 2^64.
pub fn probability_threshold(p: f64) -> u64 {
    if p <= 0.0 {
        0
    } else if p >= 1.0 {
        u64::MAX
    } else {
        (p * 18_446_744_073_709_551_616.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let f = StreamFamily::new(7, "phold");
        let a: Vec<u64> = (0..4).map(|_| 0).scan(f.stream(3), |r, _: u64| Some(r.next_u64())).collect();
        let b: Vec<u64> =
            (0..4).map(|_| 0).scan(StreamFamily::new(7, "phold").stream(3), |r, _: u64| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        let other_host = f.stream(4).next_u64();
        let other_purpose = StreamFamily::new(7, "latency").stream(3).next_u64();
        let other_seed = StreamFamily::new(8, "phold").stream(3).next_u64();
        assert!(a[0] != other_host && a[0] != other_purpose && a[0] != other_seed);
        let c = f.compact(3).next_u64();
        assert_eq!(c, StreamFamily::new(7, "phold").compact(3).next_u64());
        assert_ne!(c, f.compact(4).next_u64());
        assert_eq!(std::mem::size_of::<CompactRng>(), 16);
    }

    #[test]
    fn substreams_of_a_host_are_independent_of_each_other_and_of_other_hosts() {
        let f = StreamFamily::new(7, "direct-random");
        let first = |mut r: StreamRng| r.next_u64();
        assert_eq!(first(f.substream(3, 0)), first(f.stream(3)));
        assert_eq!(first(f.substream(3, 2)), first(StreamFamily::new(7, "direct-random").substream(3, 2)));
        let all =
            [first(f.substream(3, 1)), first(f.substream(3, 2)), first(f.substream(4, 1)), first(f.substream(1, 3))];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| a != b), "{all:?}");
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = StreamFamily::new(1, "t").stream(0);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = below(&mut r, 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn thresholds_match_probabilities() {
        assert_eq!(probability_threshold(0.0), 0);
        assert_eq!(probability_threshold(1.0), u64::MAX);
        assert_eq!(probability_threshold(0.5), 1 << 63);
        let mut r = StreamFamily::new(1, "t").stream(0);
        let t = probability_threshold(0.1);
        let hits = (0..100_000).filter(|_| r.next_u64() < t).count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
    }
}
