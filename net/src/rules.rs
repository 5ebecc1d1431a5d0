//! Rules on top of the network model, in force during a window of simulated time between two
//! sets of hosts: a partition (drop), extra one-way delay, extra jitter, extra loss, or a static
//! route through a relay host; and bandwidth limits on hosts' links. They are consulted at
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
    /// A static route: the transmission travels by way of this host (global id), over the path
    /// to it and the path from it, each leg with the rules in force on it, instead of the direct
    /// path and its rules (a private backbone, a path around a partition).
    Via(u32),
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

/// A bandwidth limit on hosts' links for a window of simulated time: what they send and receive
/// is serialised at no more than these rates (a throttled link, a congested access network).
/// The sender's engine applies the upload limit when a transmission joins its upload queue, the
/// receiver's the download limit when one joins its download queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// The hosts (global ids).
    pub hosts: Range<u32>,
    /// When it is in force, ns.
    pub during: Range<u64>,
    /// Upload cap, bit/s.
    pub up_bps: Option<u64>,
    /// Download cap, bit/s.
    pub down_bps: Option<u64>,
}

/// A bandwidth limit on paths for a window of simulated time: each sender's transmissions to
/// the other side are serialised at no more than `bps`, in a queue of the sender's own for this
/// limit, after its upload link (a throttled path, as `tc` shapes a host's egress toward some
/// destinations). The sender's engine owns the queue ([`crate::Shaping`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PathLimit {
    /// Sending hosts.
    pub from: Range<u32>,
    /// Receiving hosts.
    pub to: Range<u32>,
    /// Departure times at which it is in force, ns.
    pub during: Range<u64>,
    /// The rate, bit/s.
    pub bps: u64,
}

/// The rule table every shard holds alike.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules {
    rules: Vec<Rule>,
    limits: Vec<Limit>,
    paths: Vec<PathLimit>,
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
    /// The relay host of a matching static route (the last such rule's), if any: then the other
    /// fields do not apply, the legs' own verdicts do.
    pub via: Option<u32>,
}

impl Rules {
    /// A table of `rules`, applied in order.
    pub fn new(rules: Vec<Rule>) -> Self {
        Rules { rules, limits: Vec::new(), paths: Vec::new() }
    }

    /// The table with bandwidth `limits` on hosts' links too.
    pub fn with_limits(self, limits: Vec<Limit>) -> Self {
        Rules { limits, ..self }
    }

    /// The table with bandwidth limits on `paths` too.
    pub fn with_path_limits(self, paths: Vec<PathLimit>) -> Self {
        Rules { paths, ..self }
    }

    /// The path limit in force on transmissions from `from` to `to` departing at `at`, as its
    /// index in the table and its rate: the lowest rate of those that match.
    pub fn path_limit(&self, from: u32, to: u32, at: u64) -> Option<(u32, u64)> {
        self.paths
            .iter()
            .enumerate()
            .filter(|(_, l)| l.from.contains(&from) && l.to.contains(&to) && l.during.contains(&at))
            .min_by_key(|(k, l)| (l.bps, *k))
            .map(|(k, l)| (k as u32, l.bps))
    }

    /// Whether the table has path limits (senders need no shaping queues without).
    pub fn has_path_limits(&self) -> bool {
        !self.paths.is_empty()
    }

    /// True when no rule on transmissions is set: the network model alone decides their fate.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Host `host`'s upload rate at `at` (ns): its own, `own_bps`, or the lowest limit in force
    /// on it if lower.
    pub fn up_bps(&self, host: u32, at: u64, own_bps: u64) -> u64 {
        self.capped(host, at, own_bps, |l| l.up_bps)
    }

    /// Host `host`'s download rate at `at` (ns), as [`Rules::up_bps`].
    pub fn down_bps(&self, host: u32, at: u64, own_bps: u64) -> u64 {
        self.capped(host, at, own_bps, |l| l.down_bps)
    }

    fn capped(&self, host: u32, at: u64, own_bps: u64, cap: impl Fn(&Limit) -> Option<u64>) -> u64 {
        self.limits
            .iter()
            .filter(|l| l.hosts.contains(&host) && l.during.contains(&at))
            .filter_map(cap)
            .fold(own_bps, u64::min)
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
                Effect::Via(host) => v.via = Some(host),
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
        let routed = Rules::new(vec![
            Rule { from: 0..1, to: 1..2, during: 0..10, effect: Effect::Via(7) },
            Rule { from: 0..2, to: 1..2, during: 5..10, effect: Effect::Via(8) },
        ]);
        assert_eq!((routed.verdict(0, 1, 2).via, routed.verdict(0, 1, 7).via), (Some(7), Some(8)), "the last route");
        assert_eq!(routed.verdict(1, 0, 2).via, None);
    }

    #[test]
    fn a_path_limit_matches_its_direction_and_window_and_the_lowest_rate_wins() {
        let rules = Rules::default().with_path_limits(vec![
            PathLimit { from: 0..2, to: 2..4, during: 10..20, bps: 1_000 },
            PathLimit { from: 0..1, to: 3..4, during: 0..30, bps: 500 },
        ]);
        assert!(rules.is_empty() && rules.has_path_limits());
        assert_eq!(rules.path_limit(1, 2, 15), Some((0, 1_000)));
        assert_eq!(rules.path_limit(0, 3, 15), Some((1, 500)), "the lowest");
        assert_eq!(rules.path_limit(2, 1, 15), None, "one way");
        assert_eq!(rules.path_limit(1, 2, 20), None, "ended");
    }

    #[test]
    fn limits_cap_a_hosts_rates_while_in_force_and_never_raise_them() {
        let limit = |hosts, during, up_bps, down_bps| Limit { hosts, during, up_bps, down_bps };
        let rules = Rules::default()
            .with_limits(vec![limit(0..2, 10..20, Some(1_000), None), limit(1..3, 15..30, Some(500), Some(2_000))]);
        assert!(rules.is_empty(), "limits leave transmissions' fate alone");
        assert_eq!(rules.up_bps(0, 12, 10_000), 1_000);
        assert_eq!(rules.up_bps(0, 20, 10_000), 10_000, "ended");
        assert_eq!(rules.up_bps(1, 16, 10_000), 500, "the lowest of two");
        assert_eq!(rules.down_bps(1, 16, 10_000), 2_000);
        assert_eq!(rules.down_bps(0, 16, 10_000), 10_000, "no download cap on host 0");
        assert_eq!(rules.up_bps(2, 16, 100), 100, "a cap above the host's own rate changes nothing");
    }
}
