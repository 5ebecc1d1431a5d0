//! The matched scenario: one peer graph and one proposer sequence per seed, given to every
//! resolution, so runs differ only in engine.
//!
//! The surrogate engine builds its graph and publications from the spec and seed
//! ([`PeerGraph::for_run`], [`thermocline_surrogate::traffic::publications`]); the caller builds the
//! same from the same spec, and this module turns them into what a real client is told: the
//! nodes it dials (its outbound connections in the graph) and who proposes each slot.

use thermocline_models::rng::{StreamFamily, below};
use thermocline_surrogate::peers::PeerGraph;
use thermocline_surrogate::topics::TOPIC_BEACON_BLOCK;
use thermocline_surrogate::traffic::Publication;

/// What every resolution of one seed shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedScenario {
    /// For each node, the nodes it dials, ascending.
    pub dials: Vec<Vec<u32>>,
    /// For each slot, the node that publishes its block.
    pub proposers: Vec<u32>,
}

/// Why a run's traffic cannot be matched.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The client publishes blocks only.
    #[error("publication on topic {topic} at {at_ns} ns: the calibration client publishes blocks only")]
    NotABlock {
        /// The topic index.
        topic: u8,
        /// When.
        at_ns: u64,
    },
    /// Fewer block slots than asked.
    #[error("the traffic has {found} block slots before the run's end, the calibration {wanted}")]
    TooFewSlots {
        /// Slots in the traffic.
        found: usize,
        /// Slots asked for.
        wanted: usize,
    },
}

impl MatchedScenario {
    /// The scenario of a surrogate run's `graph` and block `publications` (in slot order), for
    /// its first `slots` slots.
    pub fn new(graph: &PeerGraph, publications: &[Publication], slots: usize) -> Result<Self, MatchError> {
        let n = graph.start.len().saturating_sub(1);
        let dials = (0..n as u32)
            .map(|i| {
                let row = graph.start[i as usize] as usize;
                graph.of(i).iter().enumerate().filter(|&(k, _)| graph.outbound[row + k]).map(|(_, &p)| p).collect()
            })
            .collect();
        if let Some(p) = publications.iter().find(|p| p.topic != TOPIC_BEACON_BLOCK) {
            return Err(MatchError::NotABlock { topic: p.topic, at_ns: p.at_ns });
        }
        if publications.len() < slots {
            return Err(MatchError::TooFewSlots { found: publications.len(), wanted: slots });
        }
        let proposers = publications[..slots].iter().map(|p| p.publisher).collect();
        Ok(MatchedScenario { dials, proposers })
    }

    /// Nodes in the scenario.
    pub fn nodes(&self) -> usize {
        self.dials.len()
    }

    /// The dial lists as a client reads them (`gossip-node --graph FILE`): line `i` holds the
    /// indices node `i` dials, separated by spaces.
    pub fn graph_text(&self) -> String {
        let mut text = String::new();
        for row in &self.dials {
            let line: Vec<String> = row.iter().map(u32::to_string).collect();
            text += &line.join(" ");
            text.push('\n');
        }
        text
    }

    /// The proposers as a client reads them (`gossip-node --proposers LIST`): comma-separated,
    /// one per slot.
    pub fn proposers_text(&self) -> String {
        self.proposers.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }

    /// The real clients of a hybrid run with `percent` % of the nodes real: a flag per node, set
    /// on `round(n × percent / 100)` nodes (at least one, and one node left a surrogate) drawn
    /// uniformly from seed `seed`'s "calibration-hot" stream.
    pub fn hot_nodes(&self, percent: u8, seed: u64) -> Vec<bool> {
        let n = self.nodes();
        let k = ((n as u64 * u64::from(percent) + 50) / 100).clamp(1, n.saturating_sub(1) as u64) as usize;
        let mut rng = StreamFamily::new(seed, "calibration-hot").compact(0);
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut hot = vec![false; n];
        for i in 0..k.min(n) {
            let j = i + below(&mut rng, (n - i) as u64) as usize;
            order.swap(i, j);
            hot[order[i] as usize] = true;
        }
        hot
    }

    /// Who dials whom in a hybrid run whose real clients are the `hot` nodes, on the same
    /// connections: a real client dials every connection it has (surrogates accept clients
    /// but do not dial them per connection), and the rest keep their direction. Entry `i`
    /// lists the nodes node `i` dials, ascending.
    pub fn hybrid_dials(&self, hot: &[bool]) -> Vec<Vec<u32>> {
        let mut dials = vec![Vec::new(); self.nodes()];
        for (i, row) in self.dials.iter().enumerate() {
            for &j in row {
                let (from, to) = if hot[j as usize] && !hot[i] { (j as usize, i as u32) } else { (i, j) };
                dials[from].push(to);
            }
        }
        for row in &mut dials {
            row.sort_unstable();
        }
        dials
    }

    /// The undirected edges `(low, high)`, ascending: what both sides of a comparison must share.
    pub fn edges(&self) -> Vec<(u32, u32)> {
        let mut e: Vec<(u32, u32)> = self
            .dials
            .iter()
            .enumerate()
            .flat_map(|(i, row)| row.iter().map(move |&j| ((i as u32).min(j), (i as u32).max(j))))
            .collect();
        e.sort_unstable();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(proposers: &[u32]) -> Vec<Publication> {
        proposers
            .iter()
            .enumerate()
            .map(|(s, &p)| Publication { at_ns: s as u64 * 12_000_000_000, publisher: p, topic: TOPIC_BEACON_BLOCK })
            .collect()
    }

    #[test]
    fn dials_are_the_graphs_outbound_connections() {
        let graph = PeerGraph::build(50, 4, 20, 3);
        let m = MatchedScenario::new(&graph, &blocks(&[4, 9, 4]), 2).unwrap();
        assert_eq!(m.nodes(), 50);
        assert_eq!(m.proposers, [4, 9]);
        for i in 0..50u32 {
            // Every connection is dialled by exactly one of its ends.
            for &j in graph.of(i) {
                let by_i = m.dials[i as usize].contains(&j);
                let by_j = m.dials[j as usize].contains(&i);
                assert!(by_i != by_j, "{i}-{j}");
            }
            assert_eq!(m.dials[i as usize].len(), 4, "identity {i} dials outbound_peers");
        }
        assert_eq!(m.edges().len(), graph.peers.len() / 2);
        let text = m.graph_text();
        assert_eq!(text.lines().count(), 50);
        let first: Vec<u32> = text.lines().next().unwrap().split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(first, m.dials[0]);
        assert_eq!(m.proposers_text(), "4,9");
    }

    #[test]
    fn hybrids_keep_every_connection_and_real_clients_dial_theirs() {
        let graph = PeerGraph::build(40, 4, 20, 5);
        let m = MatchedScenario::new(&graph, &blocks(&[1, 2]), 2).unwrap();
        let hot = m.hot_nodes(10, 7);
        assert_eq!(hot.iter().filter(|&&h| h).count(), 4, "10 % of 40");
        assert_eq!(hot, m.hot_nodes(10, 7), "a function of the seed");
        assert_ne!(hot, m.hot_nodes(10, 8), "another seed, other clients");
        assert_eq!(m.hot_nodes(1, 7).iter().filter(|&&h| h).count(), 1, "at least one");
        assert_eq!(m.hot_nodes(99, 7).iter().filter(|&&h| h).count(), 39, "one surrogate left");
        let dials = m.hybrid_dials(&hot);
        let hybrid = MatchedScenario { dials: dials.clone(), proposers: m.proposers.clone() };
        assert_eq!(hybrid.edges(), m.edges(), "the same connections");
        for (i, row) in dials.iter().enumerate() {
            for &j in row {
                assert!(hot[i] || !hot[j as usize], "surrogate {i} dials client {j}");
            }
            if !hot[i] {
                let kept: Vec<u32> = m.dials[i].iter().copied().filter(|&j| !hot[j as usize]).collect();
                assert_eq!(*row, kept, "a surrogate dials what it dialled among surrogates");
            }
        }
    }

    #[test]
    fn other_topics_and_short_traffic_are_refused() {
        let graph = PeerGraph::build(10, 2, 8, 1);
        let mut p = blocks(&[1, 2]);
        assert_eq!(MatchedScenario::new(&graph, &p, 3), Err(MatchError::TooFewSlots { found: 2, wanted: 3 }));
        p[1].topic = 5;
        assert!(matches!(MatchedScenario::new(&graph, &p, 2), Err(MatchError::NotABlock { topic: 5, .. })));
    }
}
