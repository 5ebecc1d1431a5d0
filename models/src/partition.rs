//! The partitioner: which shard owns which hosts. Deterministic; balances an estimated load per
//! shard (a direct host weighs far more than a surrogate); keeps low-latency communities together,
//! which lengthens the runahead; writes and reads partition files; reports the expected cut and
//! the runahead a partition allows.
//!
//! Method: order the used locations along a minimum spanning tree of their latencies (depth-first,
//! nearest neighbour first), so that nearby locations are adjacent; lay the hosts out in that
//! order; cut the sequence into shards of equal load, splitting a location only when it alone
//! exceeds a shard's share. Hosts keep their global ids; the partition is a list of id ranges.

use crate::directory::HostDirectory;
use crate::routing::Routes;
use thermocline_bus::ShardId;

/// How far (as a share of one shard's load) a cut may move from perfect balance to fall between
/// distant locations. A longer runahead usually saves more than the imbalance costs: two locations
/// 40 ms apart cut at their gap instead of inside one (1 ms self-latency) need 40x fewer windows
/// for at most 25 % more work on the fullest shard.
pub const DEFAULT_TOLERANCE: f64 = 0.25;

/// Hosts `first..=last` belong to `shard`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// First host id.
    pub first: u32,
    /// Last host id (inclusive).
    pub last: u32,
    /// Owner.
    pub shard: u32,
}

/// A partition of the hosts into shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Ranges in id order, covering every host exactly once.
    pub ranges: Vec<Range>,
    /// Number of shards.
    pub shards: u32,
}

/// What a partition implies for a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PartitionReport {
    /// Number of shards.
    pub shards: u32,
    /// Estimated load per shard.
    pub loads: Vec<f64>,
    /// Hosts per shard.
    pub hosts: Vec<u32>,
    /// Largest load over mean load (1 = perfect balance).
    pub imbalance: f64,
    /// The smallest latency between hosts on different shards: the window length the partition
    /// allows (`None` with one shard).
    pub runahead_ns: Option<u64>,
    /// Share of uniformly random host pairs that sit on different shards.
    pub expected_cut: f64,
}

/// Why a partition could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// More shards than hosts, or none.
    #[error("cannot cut {hosts} hosts into {shards} shards")]
    Shards {
        /// Hosts.
        hosts: u32,
        /// Shards.
        shards: u32,
    },
    /// A bad line in a partition file.
    #[error("{origin}:{line}: {message}")]
    File {
        /// File name.
        origin: String,
        /// 1-based line.
        line: usize,
        /// What was expected.
        message: String,
    },
}

/// Smallest latency between two locations, either way.
fn distance(routes: &Routes, a: u32, b: u32) -> u64 {
    routes.path(a, b).min_latency_ns().min(routes.path(b, a).min_latency_ns())
}

/// Used locations in spanning-tree order: nearby locations adjacent.
fn location_order(dir: &HostDirectory, routes: &Routes) -> Vec<u32> {
    let used = routes.used().to_vec();
    let k = used.len();
    let mut load = vec![0f64; k];
    for b in &dir.blocks {
        let i = used.binary_search(&b.node).expect("block locations are used");
        load[i] += b.count as f64 * dir.groups[b.group as usize].load;
    }
    // Prim's algorithm from the heaviest location (ties: lowest id).
    let root = (0..k).max_by(|&a, &b| load[a].total_cmp(&load[b]).then(b.cmp(&a))).unwrap_or(0);
    let mut in_tree = vec![false; k];
    let mut best = vec![(u64::MAX, usize::MAX); k];
    let mut children: Vec<Vec<(u64, usize)>> = vec![Vec::new(); k];
    best[root] = (0, usize::MAX);
    for _ in 0..k {
        let u = (0..k).filter(|&i| !in_tree[i]).min_by_key(|&i| (best[i].0, i)).expect("a node is left");
        in_tree[u] = true;
        if best[u].1 != usize::MAX {
            children[best[u].1].push((best[u].0, u));
        }
        for v in 0..k {
            if !in_tree[v] {
                let d = distance(routes, used[u], used[v]);
                if d < best[v].0 {
                    best[v] = (d, u);
                }
            }
        }
    }
    let mut order = Vec::with_capacity(k);
    let mut stack = vec![root];
    while let Some(u) = stack.pop() {
        order.push(used[u]);
        let mut c = children[u].clone();
        c.sort();
        stack.extend(c.iter().rev().map(|&(_, v)| v));
    }
    order
}

/// The shards a location's load `[start, start + load)` falls to between `cuts` (each shard's
/// end, in cumulative load), as (shard, end of its share as a fraction of the location).
fn location_shares(cuts: &[f64], start: f64, load: f64) -> Vec<(u32, f64)> {
    let end = start + load;
    if load <= 0.0 {
        let shard = cuts.iter().position(|&cut| cut > start).unwrap_or(cuts.len() - 1);
        return vec![(shard as u32, 1.0)];
    }
    let mut shares = Vec::new();
    let mut from = 0f64;
    for (s, &cut) in cuts.iter().enumerate() {
        if from >= end {
            break;
        }
        let upto = cut.min(end);
        if upto > start.max(from) {
            shares.push((s as u32, ((upto - start) / load).clamp(0.0, 1.0)));
        }
        from = cut;
    }
    if let Some(last) = shares.last_mut() {
        last.1 = 1.0;
    }
    shares
}

/// Hosts `first..first + count` of one block, dealt to a location's shards in proportion to
/// their `shares`: every group in a location that several shards split is split alike, so
/// heavy hosts (direct hosts) spread over those shards instead of landing on one. `dealt` carries
/// the rounding from one block of the location to the next (per share: hosts that exact
/// proportions would have given up to its end so far, and hosts given), so that blocks too small
/// to split — a Shadow configuration's hosts, each a group of one — alternate between the shards
/// instead of all rounding to the first.
fn split_block(first: u32, count: u32, shares: &[(u32, f64)], dealt: &mut [(f64, u32)]) -> Vec<Range> {
    let mut out = Vec::new();
    let mut taken = 0u32;
    for (&(shard, upto), (exact, given)) in shares.iter().zip(dealt.iter_mut()) {
        *exact += upto * count as f64;
        let until = (exact.round() as u32).saturating_sub(*given).clamp(taken, count);
        *given += until;
        if until > taken {
            out.push(Range { first: first + taken, last: first + until - 1, shard });
            taken = until;
        }
    }
    out
}

impl Partition {
    /// Cut the hosts of `dir` into `shards` shards, letting each cut move by up to
    /// [`DEFAULT_TOLERANCE`] of a shard's load where that puts it between distant locations.
    pub fn compute(dir: &HostDirectory, routes: &Routes, shards: u32) -> Result<Self, PartitionError> {
        Self::compute_with_tolerance(dir, routes, shards, DEFAULT_TOLERANCE)
    }

    /// [`Partition::compute`] with an explicit balance tolerance. An imbalance is only worth the
    /// runahead it buys: of the cuts made with the tolerance and with smaller ones down to none,
    /// this keeps the most balanced one that allows the longest runahead. (Where every location
    /// pair is about equally close, cutting at a gap buys nothing, and a 1.17x imbalance would
    /// cost the fullest shard 17 % more work for the same number of windows.)
    pub fn compute_with_tolerance(
        dir: &HostDirectory,
        routes: &Routes,
        shards: u32,
        tolerance: f64,
    ) -> Result<Self, PartitionError> {
        let mut best = Self::cut(dir, routes, shards, tolerance)?;
        let mut best_runahead = best.report(dir, routes).runahead_ns;
        for t in [tolerance / 2.0, tolerance / 4.0, tolerance / 8.0, 0.0] {
            let p = Self::cut(dir, routes, shards, t)?;
            let runahead = p.report(dir, routes).runahead_ns;
            if runahead >= best_runahead {
                (best, best_runahead) = (p, runahead);
            }
        }
        Ok(best)
    }

    /// Cut the hosts into shards, each cut within `tolerance` of perfect balance and at the
    /// widest gap between locations it can reach.
    fn cut(dir: &HostDirectory, routes: &Routes, shards: u32, tolerance: f64) -> Result<Self, PartitionError> {
        let n = dir.len();
        if shards == 0 || shards > n {
            return Err(PartitionError::Shards { hosts: n, shards });
        }
        let order = location_order(dir, routes);
        let load_at = |node: u32| -> f64 {
            dir.blocks
                .iter()
                .filter(|b| b.node == node)
                .map(|b| b.count as f64 * dir.groups[b.group as usize].load)
                .sum()
        };
        let loads: Vec<f64> = order.iter().map(|&node| load_at(node)).collect();
        let total: f64 = loads.iter().sum();
        let target = total / shards as f64;
        // Cut points, in cumulative load. The smallest latency between shards is the lightest
        // spanning-tree edge between them, so each cut goes, within the tolerance, to the gap
        // between consecutive locations that are farthest apart; failing that, inside a location.
        let mut before = Vec::with_capacity(order.len() + 1);
        let mut acc = 0.0;
        for l in &loads {
            before.push(acc);
            acc += l;
        }
        let mut cuts = Vec::with_capacity(shards as usize);
        for j in 1..shards {
            let ideal = target * j as f64;
            let floor = cuts.last().copied().unwrap_or(0.0);
            let best = (1..order.len())
                .filter(|&p| (before[p] - ideal).abs() <= tolerance * target && before[p] > floor)
                .max_by(|&a, &b| {
                    let (da, db) = (distance(routes, order[a - 1], order[a]), distance(routes, order[b - 1], order[b]));
                    da.cmp(&db).then((before[b] - ideal).abs().total_cmp(&(before[a] - ideal).abs()))
                });
            cuts.push(best.map_or(ideal, |p| before[p]));
        }
        cuts.push(f64::INFINITY);
        let mut pieces: Vec<Range> = Vec::new();
        let mut start = 0f64;
        for (node, load) in order.into_iter().zip(loads) {
            let shares = location_shares(&cuts, start, load);
            let mut dealt = vec![(0.0, 0); shares.len()];
            for b in dir.blocks.iter().filter(|b| b.node == node) {
                pieces.extend(split_block(b.first, b.count, &shares, &mut dealt));
            }
            start += load;
        }
        pieces.sort_by_key(|r| r.first);
        let mut ranges: Vec<Range> = Vec::with_capacity(pieces.len());
        for r in pieces {
            match ranges.last_mut() {
                Some(prev) if prev.shard == r.shard && prev.last + 1 == r.first => prev.last = r.last,
                _ => ranges.push(r),
            }
        }
        Ok(Partition { ranges, shards })
    }

    /// The shard that owns `host`.
    pub fn shard_of(&self, host: u32) -> ShardId {
        let i = self.ranges.partition_point(|r| r.last < host);
        ShardId(self.ranges[i].shard)
    }

    /// The partition file: a CSV of id ranges.
    pub fn to_csv(&self) -> String {
        let mut s = format!("# thermocline partition: {} shards\nfirst_host,last_host,shard\n", self.shards);
        for r in &self.ranges {
            s += &format!("{},{},{}\n", r.first, r.last, r.shard);
        }
        s
    }

    /// Read a partition file for a run of `hosts` hosts on `shards` shards.
    pub fn from_csv(text: &str, origin: &str, hosts: u32, shards: u32) -> Result<Self, PartitionError> {
        let bad = |line: usize, message: String| PartitionError::File { origin: origin.to_string(), line, message };
        let mut ranges = Vec::new();
        let mut header = false;
        let mut next = 0u64;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if !header {
                if l != "first_host,last_host,shard" {
                    return Err(bad(i + 1, "expected the header first_host,last_host,shard".into()));
                }
                header = true;
                continue;
            }
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let nums: Option<Vec<u32>> = f.iter().map(|x| x.parse().ok()).collect();
            let [first, last, shard] = match nums.as_deref() {
                Some(&[a, b, c]) => [a, b, c],
                _ => return Err(bad(i + 1, "expected three non-negative integers: first_host,last_host,shard".into())),
            };
            if first as u64 != next {
                return Err(bad(
                    i + 1,
                    format!("range starts at host {first}, but host {next} is the next not yet assigned"),
                ));
            }
            if last < first || last >= hosts {
                return Err(bad(i + 1, format!("range {first}..={last} is empty or beyond the {hosts} hosts")));
            }
            if shard >= shards {
                return Err(bad(i + 1, format!("shard {shard} does not exist in a run of {shards} shards")));
            }
            ranges.push(Range { first, last, shard });
            next = last as u64 + 1;
        }
        if next != hosts as u64 {
            return Err(bad(
                text.lines().count().max(1),
                format!("hosts {next}..{hosts} are not assigned to any shard"),
            ));
        }
        Ok(Partition { ranges, shards })
    }

    /// What this partition implies: loads, balance, runahead and expected cut.
    pub fn report(&self, dir: &HostDirectory, routes: &Routes) -> PartitionReport {
        let k = self.shards as usize;
        let (mut loads, mut hosts) = (vec![0f64; k], vec![0u32; k]);
        let used = routes.used();
        let mut on = vec![Vec::<u32>::new(); used.len()];
        for b in &dir.blocks {
            let load = dir.groups[b.group as usize].load;
            let slot = used.binary_search(&b.node).expect("used");
            for r in self.ranges.iter().filter(|r| r.first < b.first + b.count && r.last >= b.first) {
                let n = r.last.min(b.first + b.count - 1) - r.first.max(b.first) + 1;
                loads[r.shard as usize] += n as f64 * load;
                hosts[r.shard as usize] += n;
                if !on[slot].contains(&r.shard) {
                    on[slot].push(r.shard);
                }
            }
        }
        let mut runahead: Option<u64> = None;
        for (i, si) in on.iter().enumerate() {
            for (j, sj) in on.iter().enumerate() {
                if si.iter().any(|a| sj.iter().any(|b| a != b)) {
                    let d = distance(routes, used[i], used[j]);
                    runahead = Some(runahead.map_or(d, |r| r.min(d)));
                }
            }
        }
        let n = dir.len() as f64;
        let mean = loads.iter().sum::<f64>() / k as f64;
        PartitionReport {
            shards: self.shards,
            imbalance: if mean > 0.0 { loads.iter().cloned().fold(0.0, f64::max) / mean } else { 1.0 },
            expected_cut: 1.0 - hosts.iter().map(|&h| (h as f64 / n).powi(2)).sum::<f64>(),
            runahead_ns: runahead,
            loads,
            hosts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{HostGroupSpec, HostKind};
    use crate::topology::Topology;

    fn model(hosts: u32, direct: u32) -> (HostDirectory, Routes) {
        model_in(hosts, direct, &[("DE", 0.22), ("US", 0.20), ("FR", 0.06), ("GB", 0.05), ("other", 0.47)])
    }

    fn model_in(hosts: u32, direct: u32, weights: &[(&str, f64)]) -> (HostDirectory, Routes) {
        let t = Topology::ripe_countries(true);
        let mut groups = vec![HostGroupSpec {
            name: "tail".into(),
            kind: HostKind::Surrogate,
            count: hosts,
            location: None,
            locations: Some(weights.iter().map(|(k, w)| (k.to_string(), *w)).collect()),
            bandwidth: None,
            profile: None,
            load: None,
        }];
        if direct > 0 {
            groups.push(HostGroupSpec {
                name: "beacon".into(),
                kind: HostKind::Direct,
                count: direct,
                location: Some("DE".into()),
                locations: None,
                ..groups[0].clone()
            });
        }
        let dir = HostDirectory::build(&groups, &t).unwrap();
        let routes = Routes::compute(&t, &dir.used_nodes()).unwrap();
        (dir, routes)
    }

    #[test]
    fn same_inputs_give_the_same_partition_covering_every_host_once() {
        let (dir, routes) = model(50_000, 0);
        for shards in [1, 2, 3, 8] {
            let a = Partition::compute(&dir, &routes, shards).unwrap();
            let (dir2, routes2) = model(50_000, 0);
            assert_eq!(a, Partition::compute(&dir2, &routes2, shards).unwrap());
            let r = a.report(&dir, &routes);
            assert_eq!(r.hosts.iter().sum::<u32>(), 50_000);
            assert!(r.imbalance <= 1.0 + DEFAULT_TOLERANCE * shards as f64 + 1e-9, "{shards}: {}", r.imbalance);
            assert!(r.hosts.iter().all(|&h| h > 0));
        }
    }

    #[test]
    fn an_imbalance_is_taken_only_for_a_longer_runahead() {
        // Ethereum's country mix: no cut within the tolerance lengthens the runahead, so the
        // shards are balanced (the tolerance alone would give a 1.17x imbalance).
        let (dir, routes) = model(100_000, 0);
        let loose = Partition::cut(&dir, &routes, 2, DEFAULT_TOLERANCE).unwrap().report(&dir, &routes);
        let r = Partition::compute(&dir, &routes, 2).unwrap().report(&dir, &routes);
        assert!(loose.imbalance > 1.1, "{}", loose.imbalance);
        assert!(r.imbalance < 1.001, "{}", r.imbalance);
        assert_eq!(r.runahead_ns, loose.runahead_ns);
        // Two continents, 55/45: cutting at the ocean is worth a 1.1x imbalance.
        let (dir, routes) = model_in(100_000, 0, &[("DE", 0.55), ("US", 0.45)]);
        let balanced = Partition::cut(&dir, &routes, 2, 0.0).unwrap().report(&dir, &routes);
        let r = Partition::compute(&dir, &routes, 2).unwrap().report(&dir, &routes);
        assert!(r.runahead_ns > balanced.runahead_ns, "{:?} vs {:?}", r.runahead_ns, balanced.runahead_ns);
        assert!((r.imbalance - 1.1).abs() < 0.001, "{}", r.imbalance);
    }

    #[test]
    fn direct_hosts_weigh_more() {
        let (dir, routes) = model(10_000, 10);
        let p = Partition::compute(&dir, &routes, 2).unwrap();
        let r = p.report(&dir, &routes);
        // 10 direct hosts weigh as much as 10,000 surrogates: shards balance loads, not counts.
        assert_eq!(r.loads.iter().sum::<f64>(), 20_000.0);
        assert!(r.imbalance <= 1.0 + DEFAULT_TOLERANCE, "{:?}", r.loads);
        // The direct hosts (after every surrogate: ids 10,000..10,010) sit on the shard with fewer hosts.
        assert_eq!(dir.surrogates(), 10_000);
        let with_direct = p.shard_of(dir.surrogates()).index();
        assert!(r.hosts[with_direct] < r.hosts[1 - with_direct], "{:?}", r.hosts);
    }

    #[test]
    fn a_location_split_between_shards_splits_each_of_its_groups_alike() {
        // Every host in DE: the one location is cut in two, and so is each group in it.
        let (dir, routes) = model_in(100_000, 16, &[("DE", 1.0)]);
        let p = Partition::compute(&dir, &routes, 2).unwrap();
        let direct_on = |s: u32| (100_000..100_016).filter(|&h| p.shard_of(h).index() == s as usize).count();
        assert_eq!((direct_on(0), direct_on(1)), (8, 8));
        let r = p.report(&dir, &routes);
        assert_eq!(r.hosts, vec![50_008, 50_008]);
        assert!(r.imbalance < 1.001, "{:?}", r.loads);
    }

    #[test]
    fn hosts_that_are_groups_of_one_at_one_location_are_dealt_to_every_shard() {
        // A Shadow configuration: every host its own group, all on one graph node.
        let t = Topology::ripe_countries(false);
        let groups: Vec<HostGroupSpec> = (0..16)
            .map(|i| HostGroupSpec {
                name: format!("node{i}"),
                kind: HostKind::Direct,
                count: 1,
                location: Some("DE".into()),
                locations: None,
                bandwidth: None,
                profile: None,
                load: None,
            })
            .collect();
        let dir = HostDirectory::build(&groups, &t).unwrap();
        let routes = Routes::compute(&t, &dir.used_nodes()).unwrap();
        for shards in [2, 3, 4] {
            let r = Partition::compute(&dir, &routes, shards).unwrap().report(&dir, &routes);
            let (least, most) = (r.hosts.iter().min().unwrap(), r.hosts.iter().max().unwrap());
            assert!(most - least <= 1, "{shards} shards: {:?}", r.hosts);
        }
    }

    #[test]
    fn reported_runahead_is_the_smallest_cross_shard_latency() {
        let (dir, routes) = model(3_000, 0);
        let p = Partition::compute(&dir, &routes, 4).unwrap();
        let r = p.report(&dir, &routes);
        // Brute force over host pairs at distinct locations or split locations.
        let mut best = u64::MAX;
        for a in (0..dir.len()).step_by(7) {
            for b in (0..dir.len()).step_by(11) {
                if p.shard_of(a) != p.shard_of(b) {
                    best = best.min(routes.path(dir.node_of(a), dir.node_of(b)).min_latency_ns());
                }
            }
        }
        assert!(r.runahead_ns.unwrap() <= best);
        assert_eq!(Partition::compute(&dir, &routes, 1).unwrap().report(&dir, &routes).runahead_ns, None);
    }

    #[test]
    fn partition_files_round_trip_and_bad_files_are_located() {
        let (dir, routes) = model(5_000, 0);
        let p = Partition::compute(&dir, &routes, 3).unwrap();
        let csv = p.to_csv();
        assert_eq!(Partition::from_csv(&csv, "p.csv", 5_000, 3).unwrap(), p);
        let e = Partition::from_csv(&csv, "p.csv", 5_000, 2).unwrap_err().to_string();
        assert!(e.starts_with("p.csv:") && e.contains("does not exist in a run of 2 shards"), "{e}");
        let e = Partition::from_csv("first_host,last_host,shard\n0,9,0\n11,4999,1\n", "p.csv", 5_000, 2)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.csv:3:") && e.contains("host 10 is the next"), "{e}");
        let e = Partition::from_csv("first_host,last_host,shard\n0,9,0\n", "p.csv", 5_000, 2).unwrap_err().to_string();
        assert!(e.contains("hosts 10..5000 are not assigned"), "{e}");
        let e = Partition::from_csv("a,b\n", "p.csv", 5_000, 2).unwrap_err().to_string();
        assert!(e.starts_with("p.csv:1:"), "{e}");
    }
}
