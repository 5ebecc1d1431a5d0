//! The traffic a spec asks for: every identity's subscriptions (fixed for the run) and every
//! publication (who publishes on which topic, when). Every shard and the peer manager compute the
//! same from the spec and the seed.

use crate::config::{SlotProposer, TrafficSpec};
use crate::topics::{
    ATTESTATION_BASE, ATTESTATION_SUBNETS, COLUMN_BASE, COLUMN_SUBNETS, TOPIC_AGGREGATE, TOPIC_BEACON_BLOCK,
    TOPIC_COUNT,
};
use thermocline_models::rng::{StreamFamily, below};

/// Every identity's topics: `per` of them each, ascending, the block topic first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriptions {
    per: usize,
    topics: Vec<u8>,
    subscribers: Vec<u32>,
}

/// `want` distinct values below `n`, ascending, from `rng` (a partial Fisher–Yates).
fn distinct(rng: &mut thermocline_models::rng::CompactRng, n: u32, want: u32) -> Vec<u8> {
    let mut all: Vec<u8> = (0..n as u8).collect();
    for k in 0..want as usize {
        let r = k + below(rng, (all.len() - k) as u64) as usize;
        all.swap(k, r);
    }
    all.truncate(want as usize);
    all.sort_unstable();
    all
}

impl Subscriptions {
    /// The subscriptions of `n` identities under `traffic`'s topics; with `aggregates` (an
    /// Ethereum domain, `[gossip.eth2]`) every identity also subscribes to
    /// `beacon_aggregate_and_proof`, as every real node does, so clients' aggregates cross.
    pub fn compute(n: u32, traffic: &TrafficSpec, seed: u64, aggregates: bool) -> Self {
        let att = traffic.attestations.as_ref().map_or(0, |a| a.subnets_per_node);
        let col = traffic.data_columns.as_ref().map_or(0, |c| c.custody_per_node);
        let per = 1 + att as usize + col as usize + usize::from(aggregates);
        let family = StreamFamily::new(seed, "subscriptions");
        let mut topics = Vec::with_capacity(n as usize * per);
        let mut subscribers = vec![0u32; TOPIC_COUNT];
        for h in 0..n {
            topics.push(TOPIC_BEACON_BLOCK);
            if att + col > 0 {
                let mut rng = family.compact(h);
                topics.extend(distinct(&mut rng, ATTESTATION_SUBNETS, att).into_iter().map(|s| ATTESTATION_BASE + s));
                topics.extend(distinct(&mut rng, COLUMN_SUBNETS, col).into_iter().map(|s| COLUMN_BASE + s));
            }
            if aggregates {
                topics.push(TOPIC_AGGREGATE);
            }
            for &t in &topics[topics.len() - per..] {
                subscribers[t as usize] += 1;
            }
        }
        Subscriptions { per, topics, subscribers }
    }

    /// Topics per identity.
    pub fn per_identity(&self) -> usize {
        self.per
    }

    /// The topics of identity `h`, ascending.
    pub fn of(&self, h: u32) -> &[u8] {
        &self.topics[h as usize * self.per..(h as usize + 1) * self.per]
    }

    /// Whether `h` subscribes to `t`.
    pub fn has(&self, h: u32, t: u8) -> bool {
        self.of(h).binary_search(&t).is_ok()
    }

    /// How many identities subscribe to `t`.
    pub fn subscribers(&self, t: u8) -> u32 {
        self.subscribers[t as usize]
    }
}

/// One publication of the traffic model.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// When, ns.
    pub at_ns: u64,
    /// Who publishes.
    pub publisher: u32,
    /// On which topic.
    pub topic: u8,
}

/// Every publication of a run of `n` identities ending at `end_ns`, in scheduling order: per
/// slot, the proposer (drawn from the slot's "proposer" stream, or given by
/// `traffic.beacon_block.proposers`) publishes the block and then
/// every data column; then each attestation's publisher and time come from the slot's
/// "attester" stream. Every shard and the peer manager compute the same list.
pub fn publications(n: u32, traffic: &TrafficSpec, seed: u64, end_ns: u64) -> Vec<Publication> {
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    let slot_ns = traffic.slot.as_nanos().max(1);
    let first = traffic.start.as_nanos();
    let proposers = StreamFamily::new(seed, "proposer");
    let mut slot = 0u64;
    while first + slot * slot_ns < end_ns {
        let start = first + slot * slot_ns;
        let proposer = match &traffic.beacon_block.proposers {
            Some(given) => given.get(slot as usize).and_then(SlotProposer::identity),
            None => Some(below(&mut proposers.compact(slot as u32), n as u64) as u32),
        };
        let at_ns = start + traffic.beacon_block.proposer_delay.as_nanos();
        if let Some(proposer) = proposer {
            out.push(Publication { at_ns, publisher: proposer, topic: TOPIC_BEACON_BLOCK });
        }
        if let Some(proposer) = proposer.filter(|_| traffic.data_columns.is_some()) {
            for c in 0..COLUMN_SUBNETS as u8 {
                out.push(Publication { at_ns, publisher: proposer, topic: COLUMN_BASE + c });
            }
        }
        if let Some(a) = &traffic.attestations {
            let attesters = StreamFamily::new(seed ^ slot, "attester");
            for subnet in 0..ATTESTATION_SUBNETS {
                for k in 0..a.per_subnet {
                    let mut rng = attesters.compact(subnet * a.per_subnet + k);
                    let publisher = below(&mut rng, n as u64) as u32;
                    let at_ns = start + a.delay.as_nanos() + below(&mut rng, a.spread.as_nanos().max(1));
                    if at_ns < end_ns {
                        out.push(Publication { at_ns, publisher, topic: ATTESTATION_BASE + subnet as u8 });
                    }
                }
            }
        }
        slot += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttestationSpec, DataColumnSpec};
    use crate::topics::topic_family;

    #[test]
    fn given_proposers_publish_their_slots_and_none_leaves_a_slot_empty() {
        let mut t = TrafficSpec::default();
        let none = SlotProposer::Word("none".into());
        t.beacon_block.proposers = Some(vec![SlotProposer::Identity(3), none, SlotProposer::Identity(0)]);
        let end = t.start.as_nanos() + 10 * t.slot.as_nanos();
        let p = publications(5, &t, 1, end);
        let slots: Vec<(u64, u32)> =
            p.iter().map(|p| ((p.at_ns - t.start.as_nanos()) / t.slot.as_nanos(), p.publisher)).collect();
        assert_eq!(slots, [(0, 3), (2, 0)], "slot 1 is a client's, and after the list there are no blocks");
        t.beacon_block.proposers = None;
        assert_eq!(publications(5, &t, 1, end).len(), 10, "drawn proposers publish every slot");
    }

    #[test]
    fn every_identity_gets_distinct_topics_of_each_kind() {
        let traffic = TrafficSpec {
            attestations: Some(AttestationSpec::default()),
            data_columns: Some(DataColumnSpec::default()),
            ..TrafficSpec::default()
        };
        let s = Subscriptions::compute(2000, &traffic, 7, false);
        assert_eq!(s.per_identity(), 7);
        for h in 0..2000 {
            let t = s.of(h);
            assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
            assert_eq!(t[0], TOPIC_BEACON_BLOCK);
            assert_eq!(t.iter().filter(|&&x| topic_family(x) == "beacon_attestation").count(), 2);
            assert_eq!(t.iter().filter(|&&x| topic_family(x) == "data_column_sidecar").count(), 4);
            assert!(s.has(h, t[3]) && !s.has(h, 200));
        }
        assert_eq!(s.subscribers(0), 2000);
        let att: u32 = (0..64).map(|k| s.subscribers(ATTESTATION_BASE + k)).sum();
        assert_eq!(att, 4000);
        // Spread over subnets: every subnet has some subscribers.
        assert!((0..64).all(|k| s.subscribers(ATTESTATION_BASE + k) > 20));
        assert_eq!(s, Subscriptions::compute(2000, &traffic, 7, false));
        assert_ne!(s, Subscriptions::compute(2000, &traffic, 8, false));
        assert_eq!(Subscriptions::compute(10, &TrafficSpec::default(), 1, false).per_identity(), 1);
    }

    #[test]
    fn an_ethereum_domain_adds_the_aggregate_topic_and_keeps_the_rest() {
        let traffic = TrafficSpec { attestations: Some(AttestationSpec::default()), ..TrafficSpec::default() };
        let plain = Subscriptions::compute(500, &traffic, 3, false);
        let eth2 = Subscriptions::compute(500, &traffic, 3, true);
        assert_eq!(eth2.per_identity(), plain.per_identity() + 1);
        for h in 0..500 {
            assert_eq!(eth2.of(h).split_last(), Some((&TOPIC_AGGREGATE, plain.of(h))));
        }
        assert_eq!(eth2.subscribers(TOPIC_AGGREGATE), 500);
        assert_eq!(
            Subscriptions::compute(5, &TrafficSpec::default(), 3, true).of(4),
            [TOPIC_BEACON_BLOCK, TOPIC_AGGREGATE]
        );
    }
}
