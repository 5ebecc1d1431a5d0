//! Rules on top of the network model, in force during a window of simulated time between two
//! sets of hosts: a partition (drop), extra one-way delay, extra jitter, or extra loss. They are consulted at
//! the sender when a transmission departs (turmoil's `Rule` verdicts; smoltcp's fault injector
//! wraps the device the same way). Scenarios fill the table; with no rules nothing changes, not
//! even a random draw.

use std::ops::Range;
use thermocline_models::rng::probability_threshold;

/// What a rule does to a transmission it matches.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Effect {
    /// The transmission is lost (a partition).
    Drop,
    /// The transmission arrives this many nanoseconds later.
    Delay(u64),
    /// The transmission arrives up to this many nanoseconds later: a delay drawn uniformly below
    /// it from the sender's stream (where the sender keeps a path's packets in order, as direct
    /// hosts do, a packet drawn early arrives with the one before it).
    Jitter(u64),
    /// The transmission is lost with this probability (drawn from the sender's stream).
    Loss(f64),
}

/// One rule: from hosts `from` to hosts `to` (global ids), for departures in `during` (ns).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Sending hosts.
    pub from: Range<u32>,
    /// Receiving hosts.
    pub to: Range<u32>,
    /// Departure times at which the rule is in force, ns.
    pub during: Range<u64>,
    /// What it does.
    pub effect: Effect,
}

/// The rule table every shard holds alike.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// The verdict of the rule table on one transmission.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Lost outright (a partition).
    pub drop: bool,
    /// Extra delay, ns (the sum of the matching delay rules).
    pub delay_ns: u64,
    /// Bound of the extra random delay, ns (the sum of the matching jitter rules); 0 when none
    /// matches, and then nothing is drawn.
    pub jitter_ns: u64,
    /// Loss threshold of the matching loss rules together (independent losses combined),
    /// compared with one draw; 0 when none matches.
    pub loss: u64,
}

impl Rules {
    /// A table of `rules`, applied in order.
    pub fn new(rules: Vec<Rule>) -> Self {
        Rules { rules }
    }

    /// True when no rule is set: the network model alone decides.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the rules in force at `depart` say about a transmission from `from` to `to`.
    pub fn verdict(&self, from: u32, to: u32, depart: u64) -> Verdict {
        let mut v = Verdict::default();
        let mut survive = 1.0;
        for r in &self.rules {
            if !(r.from.contains(&from) && r.to.contains(&to) && r.during.contains(&depart)) {
                continue;
            }
            match r.effect {
                Effect::Drop => v.drop = true,
                Effect::Delay(ns) => v.delay_ns = v.delay_ns.saturating_add(ns),
                Effect::Jitter(ns) => v.jitter_ns = v.jitter_ns.saturating_add(ns),
                Effect::Loss(p) => survive *= 1.0 - p.clamp(0.0, 1.0),
            }
        }
        if survive < 1.0 {
            v.loss = probability_threshold(1.0 - survive).max(1);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_senders_receivers_and_time() {
        let rules = Rules::new(vec![
            Rule { from: 0..10, to: 10..20, during: 100..200, effect: Effect::Drop },
            Rule { from: 0..20, to: 0..20, during: 0..1000, effect: Effect::Delay(5) },
            Rule { from: 0..20, to: 0..20, during: 0..1000, effect: Effect::Delay(7) },
        ]);
        assert!(rules.verdict(3, 12, 150).drop);
        assert!(!rules.verdict(12, 3, 150).drop, "a rule has a direction");
        assert!(!rules.verdict(3, 12, 200).drop, "a rule ends");
        assert_eq!(rules.verdict(3, 12, 250).delay_ns, 12);
        assert_eq!(rules.verdict(3, 30, 250), Verdict::default());
        let lossy = Rules::new(vec![
            Rule { from: 0..1, to: 1..2, during: 0..10, effect: Effect::Loss(0.5) },
            Rule { from: 0..1, to: 1..2, during: 0..10, effect: Effect::Loss(0.5) },
        ]);
        assert_eq!(lossy.verdict(0, 1, 5).loss, probability_threshold(0.75));
        let jittery = Rules::new(vec![
            Rule { from: 0..1, to: 1..2, during: 0..10, effect: Effect::Jitter(3) },
            Rule { from: 0..2, to: 1..2, during: 5..10, effect: Effect::Jitter(4) },
        ]);
        assert_eq!((jittery.verdict(0, 1, 2).jitter_ns, jittery.verdict(0, 1, 7).jitter_ns), (3, 7), "jitters add up");
        assert_eq!(jittery.verdict(1, 0, 7).jitter_ns, 0);
        assert!(Rules::default().is_empty());
    }
}
