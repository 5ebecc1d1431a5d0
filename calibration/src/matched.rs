//! The matched scenario: one peer graph and one proposer sequence per seed, given to every
//! resolution, so runs differ only in engine.
//!
//! The surrogate engine builds its graph and publications from the spec and seed
//! ([`PeerGraph::for_run`], [`thermocline_surrogate::traffic::publications`]); the caller builds the
//! same from the same spec, and this module turns them into what a real client is told: the
//! nodes it dials (its outbound connections in the graph) and who proposes each slot.

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
    fn other_topics_and_short_traffic_are_refused() {
        let graph = PeerGraph::build(10, 2, 8, 1);
        let mut p = blocks(&[1, 2]);
        assert_eq!(MatchedScenario::new(&graph, &p, 3), Err(MatchError::TooFewSlots { found: 2, wanted: 3 }));
        p[1].topic = 5;
        assert!(matches!(MatchedScenario::new(&graph, &p, 2), Err(MatchError::NotABlock { topic: 5, .. })));
    }
}
