//! The initial connection graph: each identity opens `outbound` connections to identities chosen
//! uniformly at random with its own random stream, in id order, within `max_peers` per identity.
//! Built identically on every shard (each keeps only its identities' lists), so it does not depend
//! on the partition.

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
    /// Connect `n` identities.
    pub fn build(n: u32, outbound: u32, max_peers: u32, seed: u64) -> Self {
        let family = StreamFamily::new(seed, "peers");
        let mut lists: Vec<Vec<(u32, bool)>> = vec![Vec::new(); n as usize];
        if n > 1 {
            for i in 0..n {
                let mut rng = family.compact(i);
                let mut made = 0;
                let mut attempts = 0;
                while made < outbound && attempts < outbound * 16 && lists[i as usize].len() < max_peers as usize {
                    attempts += 1;
                    let j = below(&mut rng, n as u64) as u32;
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
}
