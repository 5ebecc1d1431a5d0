//! The initial connection graph: each identity opens `outbound` connections, in id order, each
//! to an identity chosen with its own random stream — with probability `local_share` among the
//! identities at its own location (region-weighted peering), otherwise uniformly among all —
//! within `max_peers` per identity. Built identically on every shard (each keeps only its
//! identities' lists), so it does not depend on the partition.

use crate::config::{GossipSpec, MAX_PEERS, PeerDiscovery};
use crate::topics::TOPIC_COUNT;
use crate::traffic::{Publication, Subscriptions};

/// Connection slots subnet dials leave free for duty dials (see [`PeerGraph::for_run`]).
pub const DUTY_ROOM: u32 = 4;
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
        Self::build_local(n, outbound, max_peers, u32::MAX, seed, None, false)
    }

    /// Connect `n` identities; with `locality = Some((location_of, share))`, each dial goes with
    /// probability `share` to a uniformly chosen identity at the dialler's location. An identity
    /// accepts at most `max_inbound` dials (and `max_peers` connections in all). Each identity
    /// makes `outbound` dials, or, with `count_inbound`, dials until it has `outbound`
    /// connections in all, those it was dialled on included (a peer manager with a target peer
    /// count; the libp2p test plans' random mesh).
    pub fn build_local(
        n: u32,
        outbound: u32,
        max_peers: u32,
        max_inbound: u32,
        seed: u64,
        locality: Option<(&[u32], f64)>,
        count_inbound: bool,
    ) -> Self {
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
        let mut inbound = vec![0u32; n as usize];
        if n > 1 {
            for i in 0..n {
                let mut rng = family.compact(i);
                let mut made = 0;
                let mut attempts = 0;
                let has = |made: u32, list: &Vec<(u32, bool)>| if count_inbound { list.len() as u32 } else { made };
                while has(made, &lists[i as usize]) < outbound
                    && attempts < outbound * 16
                    && lists[i as usize].len() < max_peers as usize
                {
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
                        || inbound[j as usize] >= max_inbound
                        || lists[i as usize].iter().any(|&(p, _)| p == j)
                    {
                        continue;
                    }
                    lists[i as usize].push((j, true));
                    lists[j as usize].push((i, false));
                    inbound[j as usize] += 1;
                    made += 1;
                }
            }
        }
        Self::from_lists(lists)
    }

    /// The peers of `i`.
    pub fn of(&self, i: u32) -> &[u32] {
        &self.peers[self.start[i as usize] as usize..self.start[i as usize + 1] as usize]
    }

    /// The connections of a run, as the peer manager of `spec` makes them: random (or
    /// region-weighted, by `locations`) dials, then subnet peers, then duty peers. Subnet and
    /// duty dials may use every connection slot but those kept for peer exchange, and subnet
    /// dials leave [`DUTY_ROOM`] slots for the duty dials after them.
    pub fn for_run(
        spec: &GossipSpec,
        peer_exchange: bool,
        client_slots: u32,
        locations: &[u32],
        subs: &Subscriptions,
        duties: &[Publication],
        seed: u64,
    ) -> Self {
        if let Some(dials) = &spec.dials {
            return Self::from_dials(dials);
        }
        let n = locations.len() as u32;
        let locality = (spec.local_share > 0.0).then_some((locations, spec.local_share));
        let inbound = spec.max_inbound.unwrap_or(u32::MAX);
        let base = match spec.discovery {
            PeerDiscovery::Assigned => {
                Self::build_local(n, spec.outbound_peers, spec.max_peers, inbound, seed, locality, spec.count_inbound)
            }
            PeerDiscovery::Discv5 => Self::empty(n),
        };
        let slots = match spec.discovery {
            PeerDiscovery::Assigned if peer_exchange => spec.px_slots,
            PeerDiscovery::Assigned => 0,
            // What the engine keeps free for found peers: `max_peers`, and room for subnet peers.
            PeerDiscovery::Discv5 => spec.max_peers + (subs.per_identity() as u32 - 1) * spec.subnet_peers,
        };
        let cap = MAX_PEERS.saturating_sub(slots + client_slots);
        // With discovery, subnet peers are found too (subnet queries).
        let subnet_peers = if spec.discovery == PeerDiscovery::Discv5 { 0 } else { spec.subnet_peers };
        base.with_topic_peers(subs, subnet_peers, cap.saturating_sub(DUTY_ROOM), seed).with_duty_peers(
            duties,
            subs,
            spec.duty_peers,
            cap,
            seed,
        )
    }

    /// `n` identities with no connection (their peers are found during the run).
    pub fn empty(n: u32) -> Self {
        PeerGraph { start: vec![0; n as usize + 1], peers: Vec::new(), outbound: Vec::new() }
    }

    /// Add subnet peers, as a peer manager does when discovery looks for peers of the subnets
    /// its node subscribes to: each identity, in id order, dials subscribers of each of its
    /// topics other than the block topic (chosen uniformly, with its own "subnet-peers" stream)
    /// until it shares `target` peers with that topic, within `cap` connections on both sides
    /// and a bounded number of attempts.
    pub fn with_topic_peers(self, subs: &Subscriptions, target: u32, cap: u32, seed: u64) -> Self {
        let n = self.start.len() as u32 - 1;
        if target == 0 || subs.per_identity() == 1 || n < 2 {
            return self;
        }
        let family = StreamFamily::new(seed, "subnet-peers");
        let mut by_topic: Vec<Vec<u32>> = vec![Vec::new(); TOPIC_COUNT];
        for h in 0..n {
            for &t in &subs.of(h)[1..] {
                by_topic[t as usize].push(h);
            }
        }
        let mut lists = self.into_lists();
        for i in 0..n {
            let mut rng = family.compact(i);
            for &t in &subs.of(i)[1..] {
                let candidates = &by_topic[t as usize];
                let mut have = lists[i as usize].iter().filter(|&&(p, _)| subs.has(p, t)).count() as u32;
                let mut attempts = 0;
                while have < target && attempts < target * 16 && lists[i as usize].len() < cap as usize {
                    attempts += 1;
                    let j = candidates[below(&mut rng, candidates.len() as u64) as usize];
                    if j == i
                        || lists[j as usize].len() >= cap as usize
                        || lists[i as usize].iter().any(|&(p, _)| p == j)
                    {
                        continue;
                    }
                    lists[i as usize].push((j, true));
                    lists[j as usize].push((i, false));
                    have += 1;
                }
            }
        }
        Self::from_lists(lists)
    }

    /// Add duty peers: before publishing on a topic it does not subscribe to, a node's peer
    /// manager looks for peers on that subnet (Ethereum clients discover subnet peers ahead of
    /// their validators' duties). For each publication whose publisher has fewer than `target`
    /// peers on the topic, the publisher dials subscribers (chosen with its "duty-peers" stream)
    /// until it has `target`, within `cap` connections on both sides (peer managers accept
    /// some peers beyond their target for subnets and duties).
    pub fn with_duty_peers(
        self,
        duties: &[Publication],
        subs: &Subscriptions,
        target: u32,
        cap: u32,
        seed: u64,
    ) -> Self {
        let n = self.start.len() as u32 - 1;
        if target == 0 || n < 2 {
            return self;
        }
        let family = StreamFamily::new(seed, "duty-peers");
        let mut by_topic: Vec<Vec<u32>> = vec![Vec::new(); TOPIC_COUNT];
        for h in 0..n {
            for &t in subs.of(h) {
                by_topic[t as usize].push(h);
            }
        }
        let mut lists = self.into_lists();
        let mut rngs: std::collections::BTreeMap<u32, thermocline_models::rng::CompactRng> = Default::default();
        for d in duties {
            let (i, t) = (d.publisher, d.topic);
            let candidates = &by_topic[t as usize];
            let mut have = lists[i as usize].iter().filter(|&&(p, _)| subs.has(p, t)).count() as u32;
            let rng = rngs.entry(i).or_insert_with(|| family.compact(i));
            let mut attempts = 0;
            while have < target.min(candidates.len() as u32)
                && attempts < target * 16
                && lists[i as usize].len() < cap as usize
            {
                attempts += 1;
                let j = candidates[below(rng, candidates.len() as u64) as usize];
                if j == i || lists[j as usize].len() >= cap as usize || lists[i as usize].iter().any(|&(p, _)| p == j) {
                    continue;
                }
                lists[i as usize].push((j, true));
                lists[j as usize].push((i, false));
                have += 1;
            }
        }
        Self::from_lists(lists)
    }

    fn into_lists(self) -> Vec<Vec<(u32, bool)>> {
        let n = self.start.len() - 1;
        (0..n)
            .map(|i| {
                let row = self.start[i] as usize;
                self.of(i as u32).iter().enumerate().map(|(k, &p)| (p, self.outbound[row + k])).collect()
            })
            .collect()
    }

    /// The graph in which identity `i` dialled exactly `dials[i]` (checked by
    /// [`GossipSpec::check_dials`](crate::config::GossipSpec::check_dials)).
    pub fn from_dials(dials: &[Vec<u32>]) -> Self {
        let mut lists: Vec<Vec<(u32, bool)>> = vec![Vec::new(); dials.len()];
        for (i, row) in dials.iter().enumerate() {
            for &j in row {
                lists[i].push((j, true));
                lists[j as usize].push((i as u32, false));
            }
        }
        Self::from_lists(lists)
    }

    fn from_lists(lists: Vec<Vec<(u32, bool)>>) -> Self {
        let mut start = Vec::with_capacity(lists.len() + 1);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_dials_are_the_connections_and_their_directions() {
        let g = PeerGraph::from_dials(&[vec![2, 1], vec![], vec![1]]);
        assert_eq!((g.of(0), g.of(1), g.of(2)), (&[1, 2][..], &[0, 2][..], &[0, 1][..]));
        assert_eq!(g.outbound, [true, true, false, false, false, true]);
        let mut spec = GossipSpec { dials: Some(vec![vec![2, 1], vec![], vec![1]]), ..GossipSpec::default() };
        let locations = [0, 0, 0];
        let subs = Subscriptions::compute(3, &Default::default(), 1, false);
        assert_eq!(
            PeerGraph::for_run(&spec, false, 0, &locations, &subs, &[], 9),
            g,
            "the run's graph is the given one"
        );
        spec.check_dials(3).unwrap();
        for (dials, why) in [
            (vec![vec![1], vec![]], "entries"),
            (vec![vec![0], vec![], vec![]], "another identity"),
            (vec![vec![3], vec![], vec![]], "another identity"),
            (vec![vec![1], vec![0], vec![]], "twice"),
        ] {
            spec.dials = Some(dials);
            let err = spec.check_dials(3).unwrap_err();
            assert!(err.contains("gossip.dials") && err.contains(why), "{err}");
        }
        spec.dials = Some(vec![vec![1], vec![], vec![]]);
        spec.discovery = PeerDiscovery::Discv5;
        assert!(spec.check_dials(3).unwrap_err().contains("assigned"));
    }

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
        let g = PeerGraph::build_local(2_000, 8, 40, u32::MAX, 5, Some((&loc, 0.8)), false);
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
        let uniform = PeerGraph::build_local(2_000, 8, 40, u32::MAX, 5, None, false);
        assert_eq!(uniform, PeerGraph::build(2_000, 8, 40, 5));
    }

    #[test]
    fn counting_inbound_dials_until_every_identity_has_its_target_in_all() {
        // The libp2p test plans' mesh: 64 nodes, each with at least 20 peers.
        let g = PeerGraph::build_local(64, 20, 63, u32::MAX, 5, None, true);
        let degrees: Vec<usize> = (0..64).map(|i| g.of(i).len()).collect();
        assert!(degrees.iter().all(|&d| d >= 20), "{degrees:?}");
        // The late identities were dialled enough to need few dials of their own.
        let row = g.start[63] as usize;
        let dialled = (0..g.of(63).len()).filter(|&k| g.outbound[row + k]).count();
        assert!(dialled < 20, "{dialled}");
        // Making 20 dials each instead gives about 40 connections.
        let plain = PeerGraph::build_local(64, 20, 63, u32::MAX, 5, None, false);
        let mean = |g: &PeerGraph| (0..64).map(|i| g.of(i).len()).sum::<usize>() as f64 / 64.0;
        assert!(mean(&g) < 30.0 && mean(&plain) > 35.0, "{} {}", mean(&g), mean(&plain));
    }

    #[test]
    fn inbound_limit_caps_accepted_dials() {
        let g = PeerGraph::build_local(2_000, 8, 40, 10, 5, None, false);
        for i in 0..2_000u32 {
            let row = g.start[i as usize] as usize;
            let inbound = (0..g.of(i).len()).filter(|&k| !g.outbound[row + k]).count();
            assert!(inbound <= 10, "{i}: {inbound}");
        }
        assert_ne!(g, PeerGraph::build(2_000, 8, 40, 5));
    }

    #[test]
    fn topic_peers_reach_their_target_and_keep_the_graph_symmetric() {
        use crate::config::{AttestationSpec, TrafficSpec};
        let traffic = TrafficSpec { attestations: Some(AttestationSpec::default()), ..TrafficSpec::default() };
        let subs = Subscriptions::compute(3_000, &traffic, 9, false);
        let plain = PeerGraph::build(3_000, 8, 48, 9);
        let short = |g: &PeerGraph| {
            (0..3_000u32)
                .flat_map(|i| subs.of(i)[1..].iter().map(move |&t| (i, t)))
                .filter(|&(i, t)| g.of(i).iter().filter(|&&p| subs.has(p, t)).count() < 4)
                .count()
        };
        let g = plain.clone().with_topic_peers(&subs, 4, 64, 9);
        assert!(short(&plain) > 5_000, "{}", short(&plain));
        assert_eq!(short(&g), 0);
        for i in 0..3_000u32 {
            let p = g.of(i);
            assert!(p.len() <= 64 && p.windows(2).all(|w| w[0] < w[1]));
            assert!(plain.of(i).iter().all(|x| p.contains(x)));
            for &j in p {
                assert!(g.of(j).binary_search(&i).is_ok());
            }
        }
        assert_eq!(g, plain.with_topic_peers(&subs, 4, 64, 9));
    }
}
