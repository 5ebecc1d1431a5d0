//! The initial connection graph: each identity opens `outbound` connections, in id order, each
//! to an identity chosen with its own random stream — with probability `local_share` among the
//! identities at its own location (region-weighted peering), otherwise uniformly among all —
//! within `max_peers` per identity. Built identically on every shard (each keeps only its
//! identities' lists), so it does not depend on the partition.

use rand_core::Rng;
use thermocline_models::rng::{StreamFamily, below};

/// Adjacency in compressed rows: the peers of identity `i` are `peers[start[i]..start[i + 1]]`,
/// sorted by id; `outbound[k]` tells whether `i` opened connection `k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGraph {
    /// Row starts (`n + 1` entries).
    pub start: Vec<u32>,
    /// Peer ids.
    pub peers: Vec<u32>,
    /// Whether the row's identity dialled the peer.
    pub outbound: Vec<bool>,
}

impl PeerGraph {
    /// Connect `n` identities uniformly at random.
    pub fn build(n: u32, outbound: u32, max_peers: u32, seed: u64) -> Self {
        Self::build_local(n, outbound, max_peers, seed, None)
    }

    /// Connect `n` identities; with `locality = Some((location_of, share))`, each dial goes with
    /// probability `share` to a uniformly chosen identity at the dialler's location.
    pub fn build_local(n: u32, outbound: u32, max_peers: u32, seed: u64, locality: Option<(&[u32], f64)>) -> Self {
        let family = StreamFamily::new(seed, "peers");
        // Identities per location, in id order (for picking a neighbour uniformly).
        let by_location: Vec<Vec<u32>> = match locality {
            Some((loc, _)) => {
                let k = loc.iter().copied().max().map_or(0, |m| m as usize + 1);
                let mut v = vec![Vec::new(); k];
                for (h, &l) in loc.iter().enumerate() {
                    v[l as usize].push(h as u32);
                }
                v
            }
            None => Vec::new(),
        };
        let local_threshold = locality.map_or(0, |(_, share)| thermocline_models::rng::probability_threshold(share));
        let mut lists: Vec<Vec<(u32, bool)>> = vec![Vec::new(); n as usize];
        if n > 1 {
            for i in 0..n {
                let mut rng = family.compact(i);
                let mut made = 0;
                let mut attempts = 0;
                while made < outbound && attempts < outbound * 16 && lists[i as usize].len() < max_peers as usize {
                    attempts += 1;
                    let j = match locality {
                        Some((loc, _)) if rng.next_u64() < local_threshold => {
                            let near = &by_location[loc[i as usize] as usize];
                            near[below(&mut rng, near.len() as u64) as usize]
                        }
                        _ => below(&mut rng, n as u64) as u32,
                    };
                    if j == i
                        || lists[j as usize].len() >= max_peers as usize
                        || lists[i as usize].iter().any(|&(p, _)| p == j)
                    {
                        continue;
                    }
                    lists[i as usize].push((j, true));
                    lists[j as usize].push((i, false));
                    made += 1;
                }
            }
        }
        let mut start = Vec::with_capacity(n as usize + 1);
        let total: usize = lists.iter().map(Vec::len).sum();
        let (mut peers, mut out) = (Vec::with_capacity(total), Vec::with_capacity(total));
        start.push(0);
        for mut l in lists {
            l.sort_unstable();
            peers.extend(l.iter().map(|&(p, _)| p));
            out.extend(l.iter().map(|&(_, o)| o));
            start.push(peers.len() as u32);
        }
        PeerGraph { start, peers, outbound: out }
    }

    /// The peers of `i`.
    pub fn of(&self, i: u32) -> &[u32] {
        &self.peers[self.start[i as usize] as usize..self.start[i as usize + 1] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_bounded_and_reproducible() {
        let g = PeerGraph::build(2_000, 8, 20, 3);
        assert_eq!(g, PeerGraph::build(2_000, 8, 20, 3));
        for i in 0..2_000u32 {
            let p = g.of(i);
            assert!(p.len() <= 20 && p.len() >= 8, "{i}: {}", p.len());
            assert!(p.windows(2).all(|w| w[0] < w[1]));
            for &j in p {
                assert!(g.of(j).binary_search(&i).is_ok());
            }
        }
        assert_ne!(g, PeerGraph::build(2_000, 8, 20, 4));
    }

    #[test]
    fn local_share_keeps_that_share_of_dials_at_home() {
        // Two locations of 1,000 identities each.
        let loc: Vec<u32> = (0..2_000).map(|h| (h >= 1_000) as u32).collect();
        let g = PeerGraph::build_local(2_000, 8, 40, 5, Some((&loc, 0.8)));
        let (mut same, mut all) = (0, 0);
        for i in 0..2_000u32 {
            let row = g.start[i as usize] as usize;
            for (k, &j) in g.of(i).iter().enumerate() {
                if g.outbound[row + k] {
                    all += 1;
                    same += (loc[i as usize] == loc[j as usize]) as u32;
                }
            }
        }
        // 80 % chosen at home plus half of the uniform 20 %: about 90 %.
        let share = same as f64 / all as f64;
        assert!((0.87..0.93).contains(&share), "{share}");
        let uniform = PeerGraph::build_local(2_000, 8, 40, 5, None);
        assert_eq!(uniform, PeerGraph::build(2_000, 8, 40, 5));
    }
}
