//! Paths between the locations hosts use, computed once per run and replicated on every shard.
//!
//! Memory grows with the number of *used* locations squared, never with hosts: a million hosts in
//! 170 countries need 170² paths. Shortest paths are by mean latency (Dijkstra, ties broken by
//! node index, so the result never depends on iteration order); along a path latencies and jitter
//! half-widths add up and losses combine as `1 − Π(1 − pᵢ)`.

use crate::rng::probability_threshold;
use crate::topology::{Link, RouteMode, Topology};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use rand_core::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What happens to a message between two locations.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct PathProps {
    /// Mean one-way latency, ns.
    pub latency_ns: u64,
    /// Half-width of the symmetric (triangular) jitter, ns; never more than the latency.
    pub jitter_ns: u64,
    /// Loss probability.
    pub loss: f64,
    loss_threshold: u64,
}

impl PathProps {
    /// A path of mean one-way `latency_ns`, symmetric jitter of half-width `jitter_ns` (clamped
    /// to the latency) and loss probability `loss`.
    pub fn new(latency_ns: u64, jitter_ns: u64, loss: f64) -> Self {
        let jitter_ns = jitter_ns.min(latency_ns);
        PathProps { latency_ns, jitter_ns, loss, loss_threshold: probability_threshold(loss) }
    }

    /// The smallest delay this path can produce: what bounds the runahead.
    pub fn min_latency_ns(&self) -> u64 {
        self.latency_ns - self.jitter_ns
    }

    /// Decide one message's fate with the sender's generator: `None` if lost, else its one-way
    /// delay in `[latency − jitter, latency + jitter]` (triangular: the sum of two uniforms).
    /// Integer-only, so the same on every platform. A lossless path draws no loss number.
    pub fn sample(&self, rng: &mut impl Rng) -> Option<u64> {
        if self.loss_threshold > 0 && rng.next_u64() < self.loss_threshold {
            return None;
        }
        if self.jitter_ns == 0 {
            return Some(self.latency_ns);
        }
        let w = self.jitter_ns;
        let u = |rng: &mut dyn FnMut() -> u64| ((rng() as u128 * (w as u128 + 1)) >> 64) as u64;
        let mut next = || rng.next_u64();
        Some(self.latency_ns - w + u(&mut next) + u(&mut next))
    }
}

/// Why paths could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// No path between two used locations.
    #[error("no path from location {from} to location {to}{hint}")]
    NoPath {
        /// Source location name.
        from: String,
        /// Destination location name.
        to: String,
        /// What to do about it.
        hint: &'static str,
    },
}

/// Paths between every pair of used locations.
#[derive(Clone, Debug)]
pub struct Routes {
    /// Slot of each topology node, or `u32::MAX` if unused.
    slot: Vec<u32>,
    /// Used nodes, by slot.
    used: Vec<u32>,
    /// `props[a * used + b]`.
    props: Vec<PathProps>,
}

/// Best direct link from `a` to `b` (smallest latency, then smallest loss).
fn direct(t: &Topology, a: u32, b: u32) -> Option<Link> {
    t.graph.edges_connecting(NodeIndex::new(a as usize), NodeIndex::new(b as usize)).map(|e| *e.weight()).min_by(
        |x, y| x.latency_ns.cmp(&y.latency_ns).then(x.loss.total_cmp(&y.loss)).then(x.jitter_ns.cmp(&y.jitter_ns)),
    )
}

/// Dijkstra from `src` over the whole graph: for each node, the (latency, jitter, survival) of the
/// path with the smallest latency; ties go to the path found first in node-index order.
fn shortest_from(adj: &[Vec<(u32, Link)>], src: u32) -> Vec<Option<(u64, u64, f64)>> {
    let n = adj.len();
    let mut best: Vec<Option<(u64, u64, f64)>> = vec![None; n];
    let mut done = vec![false; n];
    let mut heap = BinaryHeap::new();
    best[src as usize] = Some((0, 0, 1.0));
    heap.push(Reverse((0u64, src)));
    while let Some(Reverse((d, u))) = heap.pop() {
        if done[u as usize] {
            continue;
        }
        done[u as usize] = true;
        let (_, ju, su) = best[u as usize].expect("settled nodes have a path");
        for &(v, l) in &adj[u as usize] {
            let (nd, ns) = (d + l.latency_ns, su * (1.0 - l.loss));
            // Shortest by latency; equal latency: the path with less loss (as Shadow).
            let better = match best[v as usize] {
                None => true,
                Some((bd, _, bs)) => nd < bd || (nd == bd && ns > bs),
            };
            if !done[v as usize] && better {
                best[v as usize] = Some((nd, ju + l.jitter_ns, ns));
                heap.push(Reverse((nd, v)));
            }
        }
    }
    best
}

impl Routes {
    /// Compute paths between every pair of `used` locations (each path from a location to
    /// itself is its self-link).
    pub fn compute(t: &Topology, used: &[u32]) -> Result<Self, RoutingError> {
        let mut used: Vec<u32> = used.to_vec();
        used.sort_unstable();
        used.dedup();
        let mut slot = vec![u32::MAX; t.len()];
        for (i, &u) in used.iter().enumerate() {
            slot[u as usize] = i as u32;
        }
        let k = used.len();
        let mut props = Vec::with_capacity(k * k);
        let name = |i: u32| t.nodes[i as usize].name.clone();
        // Each node's links, by (target, latency): built once for all the Dijkstra runs.
        let adj: Vec<Vec<(u32, Link)>> = if t.mode == RouteMode::Direct {
            Vec::new()
        } else {
            (0..t.len())
                .map(|u| {
                    let mut edges: Vec<(u32, Link)> =
                        t.graph.edges(NodeIndex::new(u)).map(|e| (e.target().index() as u32, *e.weight())).collect();
                    edges.sort_by_key(|(v, l)| (*v, l.latency_ns));
                    edges
                })
                .collect()
        };
        for &a in &used {
            // The shortest-path tree from `a`, computed only when some pair needs it (with direct
            // edges everywhere, as in the country table, none does).
            let mut tree_cache: Option<Vec<Option<(u64, u64, f64)>>> = None;
            for &b in &used {
                let direct_ab = if a == b { None } else { direct(t, a, b) };
                let tree = match (t.mode, &direct_ab) {
                    (RouteMode::Shortest, _) | (RouteMode::DirectElseShortest, None) if a != b => {
                        Some(&*tree_cache.get_or_insert_with(|| shortest_from(&adj, a)))
                    }
                    _ => None,
                };
                let link = if a == b {
                    direct(t, a, a).ok_or_else(|| RoutingError::NoPath {
                        from: name(a),
                        to: name(b),
                        hint: ": hosts at one location talk over its self-link (an edge from the node to itself)",
                    })?
                } else {
                    match (t.mode, direct_ab, tree) {
                        (RouteMode::Direct | RouteMode::DirectElseShortest, Some(l), _) => l,
                        (RouteMode::Shortest, _, Some(tree)) | (RouteMode::DirectElseShortest, None, Some(tree)) => {
                            match tree[b as usize] {
                                Some((lat, jit, survive)) => {
                                    Link { latency_ns: lat, jitter_ns: jit, loss: (1.0 - survive).clamp(0.0, 1.0) }
                                }
                                None => {
                                    return Err(RoutingError::NoPath {
                                        from: name(a),
                                        to: name(b),
                                        hint: ": the graph is not connected",
                                    });
                                }
                            }
                        }
                        _ => {
                            return Err(RoutingError::NoPath {
                                from: name(a),
                                to: name(b),
                                hint: " (shortest paths are off, so every pair of used locations needs a direct edge)",
                            });
                        }
                    }
                };
                props.push(PathProps::new(link.latency_ns, link.jitter_ns, link.loss));
            }
        }
        Ok(Routes { slot, used, props })
    }

    /// The path from location `a` to location `b` (both must be used).
    pub fn path(&self, a: u32, b: u32) -> &PathProps {
        &self.props[self.index(a, b) as usize]
    }

    /// A stable index for the path from `a` to `b`, for callers that cache it per connection.
    pub fn index(&self, a: u32, b: u32) -> u32 {
        let k = self.used.len();
        (self.slot[a as usize] as usize * k + self.slot[b as usize] as usize) as u32
    }

    /// The path with index `i` (see [`Routes::index`]).
    pub fn by_index(&self, i: u32) -> &PathProps {
        &self.props[i as usize]
    }

    /// The used locations, in ascending order.
    pub fn used(&self) -> &[u32] {
        &self.used
    }

    /// Bytes held by the path table.
    pub fn memory_bytes(&self) -> usize {
        self.props.len() * std::mem::size_of::<PathProps>() + self.slot.len() * 4 + self.used.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamFamily;

    #[test]
    fn samples_stay_within_jitter_bounds_and_centre_on_the_mean() {
        let p = PathProps::new(50_000_000, 10_000_000, 0.0);
        let mut rng = StreamFamily::new(1, "t").stream(0);
        let samples: Vec<u64> = (0..20_000).map(|_| p.sample(&mut rng).unwrap()).collect();
        assert!(samples.iter().all(|&s| (40_000_000..=60_000_000).contains(&s)));
        let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
        assert!((mean - 50e6).abs() < 0.2e6, "{mean}");
        assert_eq!(p.min_latency_ns(), 40_000_000);
    }

    #[test]
    fn losses_happen_at_the_configured_rate() {
        let p = PathProps::new(1_000, 0, 0.2);
        let mut rng = StreamFamily::new(1, "t").stream(0);
        let lost = (0..50_000).filter(|_| p.sample(&mut rng).is_none()).count();
        assert!((9_000..11_000).contains(&lost), "{lost}");
    }
}
