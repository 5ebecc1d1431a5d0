//! The fate of one transmission between two hosts: the network model's path (latency, jitter,
//! loss, drawn from the sender's stream) and the rules in force when it departs. One function
//! for every engine, so a surrogate's RPC and a direct host's packet cross the same network.

use crate::rules::{Rules, Verdict};
use rand_core::Rng;
use std::collections::HashMap;
use thermocline_models::network::NetworkModel;
use thermocline_models::routing::PathProps;

/// One sender's last arrival on each of its paths, by destination: keeps every path's packets in
/// order, so that jitter varies the delay from packet to packet without reordering a flow (a
/// packet drawn to arrive before the previous one on its path arrives with it instead). The
/// sender's engine owns it and consults it in its own departure order, so it depends on nothing
/// but that sender's transmissions, whatever the shard count.
#[derive(Clone, Debug, Default)]
pub struct InOrder {
    last: HashMap<u32, u64>,
}

impl InOrder {
    /// When a packet that [`decide`] put at `arrival` on the path to `to` arrives: never before
    /// the previous arrival on that path.
    pub fn arrive(&mut self, to: u32, arrival: u64) -> u64 {
        let last = self.last.entry(to).or_insert(0);
        *last = (*last).max(arrival);
        *last
    }
}

/// When a transmission departing `from` at `depart` (ns) arrives at `to` over `path` (the
/// model's path between them), or `None` if it is lost. `reliable` transmissions (connection
/// management that the model keeps lossless) take the path's base latency and draw nothing;
/// otherwise the path draws its loss and jitter from `rng`. The rules then apply: a partition
/// drops anything, extra loss draws once more (only when such a rule matches), extra delay adds
/// up, and extra jitter draws a delay below its bound (only when such a rule matches). A static
/// route instead sends it over two legs, to the relay host (departing at `depart`) and from it
/// (departing when it arrives there), each leg with its path from `net` and its own rules (a
/// route on a leg is not followed again); the relay forwards at once, without queueing.
pub fn decide(
    net: &NetworkModel,
    path: &PathProps,
    rules: &Rules,
    (from, to): (u32, u32),
    depart: u64,
    reliable: bool,
    rng: &mut impl Rng,
) -> Option<u64> {
    if rules.is_empty() {
        let delay = if reliable { path.latency_ns } else { path.sample(rng)? };
        return Some(depart + delay);
    }
    let verdict = rules.verdict(from, to, depart);
    match verdict.via {
        Some(relay) if relay != from && relay != to => {
            let first = rules.verdict(from, relay, depart);
            let there = leg(net.path(from, relay), &first, depart, reliable, rng)?;
            leg(net.path(relay, to), &rules.verdict(relay, to, there), there, reliable, rng)
        }
        _ => leg(path, &verdict, depart, reliable, rng),
    }
}

/// One leg of a transmission departing at `depart`: `path` and the `verdict` of the rules in
/// force on it (its route aside).
fn leg(path: &PathProps, verdict: &Verdict, depart: u64, reliable: bool, rng: &mut impl Rng) -> Option<u64> {
    let delay = if reliable { path.latency_ns } else { path.sample(rng)? };
    if verdict.drop || (verdict.loss > 0 && rng.next_u64() < verdict.loss) {
        return None;
    }
    let jitter = if verdict.jitter_ns > 0 { below(rng, verdict.jitter_ns) } else { 0 };
    Some(depart + delay + verdict.delay_ns + jitter)
}

/// A draw from `rng`, uniform in `[0, bound)` (`bound` above 0).
fn below(rng: &mut impl Rng, bound: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(bound)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Effect, Rule};
    use rand_core::SeedableRng;
    use rand_pcg::Pcg64Mcg;

    fn path() -> PathProps {
        PathProps::new(10_000, 2_000, 0.1)
    }

    /// Three regions `a`, `b`, `c`, 10, 20 and 30 ms one way between them, 1 ms within; one host
    /// in each (global ids 0, 1, 2).
    fn model() -> NetworkModel {
        use thermocline_bus::SimDuration;
        use thermocline_models::directory::{HostGroupSpec, HostKind};
        use thermocline_models::network::{NetworkSpec, RegionsSpec, TopologyKind};
        let ms = SimDuration::from_millis;
        let names = ["a", "b", "c"].map(String::from).to_vec();
        let latency = vec![vec![ms(1), ms(10), ms(30)], vec![ms(10), ms(1), ms(20)], vec![ms(30), ms(20), ms(1)]];
        let spec = NetworkSpec {
            topology: TopologyKind::Regions,
            regions: Some(RegionsSpec { names: names.clone(), latency }),
            ..NetworkSpec::default()
        };
        let group = |n: &String| HostGroupSpec {
            name: format!("h{n}"),
            kind: HostKind::Surrogate,
            count: 1,
            location: Some(n.clone()),
            locations: None,
            bandwidth: None,
            profile: None,
            load: None,
        };
        NetworkModel::build(&spec, None, &names.iter().map(group).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn with_rules_the_draws_are_the_paths_then_the_extra_loss_then_the_jitter() {
        let p = path();
        let rules = Rules::new(vec![
            Rule { from: 0..1, to: 1..2, during: 0..u64::MAX, effect: Effect::Loss(0.3) },
            Rule { from: 0..1, to: 1..2, during: 0..u64::MAX, effect: Effect::Jitter(1_000) },
        ]);
        let loss = rules.verdict(0, 1, 0).loss;
        let (mut a, mut b) = (Pcg64Mcg::seed_from_u64(11), Pcg64Mcg::seed_from_u64(11));
        for t in 0..2000 {
            let by_hand = p.sample(&mut b).and_then(|d| {
                if b.next_u64() < loss {
                    return None; // lost: no jitter is drawn
                }
                Some(t + d + ((u128::from(b.next_u64()) * 1_000) >> 64) as u64)
            });
            assert_eq!(decide(&model(), &p, &rules, (0, 1), t, false, &mut a), by_hand, "at {t}");
        }
    }

    #[test]
    fn a_static_route_takes_both_legs_with_their_own_rules_and_only_while_in_force() {
        let net = model();
        let direct = *net.path(0, 2);
        assert_eq!(direct.latency_ns, 30_000_000);
        let rules = Rules::new(vec![
            Rule { from: 0..1, to: 2..3, during: 0..100, effect: Effect::Drop },
            Rule { from: 0..1, to: 2..3, during: 0..200, effect: Effect::Via(1) },
            Rule { from: 1..2, to: 2..3, during: 0..u64::MAX, effect: Effect::Delay(7) },
        ]);
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        // Around the partition of the direct path, by way of host 1: 10 ms, then 20 ms + 7 ns
        // (the second leg departs 10 ms later, with the rules in force then).
        assert_eq!(decide(&net, &direct, &rules, (0, 2), 50, false, &mut rng), Some(50 + 30_000_007));
        assert_eq!(decide(&net, &direct, &rules, (0, 2), 250, false, &mut rng), Some(250 + 30_000_000));
        assert_eq!(decide(&net, &direct, &rules, (2, 0), 50, false, &mut rng), Some(50 + 30_000_000), "one way");
        // A leg's own partition cuts the route; a route to the relay itself is the direct path.
        let cut = Rules::new(vec![
            Rule { from: 0..1, to: 2..3, during: 0..200, effect: Effect::Via(1) },
            Rule { from: 1..2, to: 2..3, during: 0..u64::MAX, effect: Effect::Drop },
        ]);
        assert_eq!(decide(&net, &direct, &cut, (0, 2), 50, false, &mut rng), None);
        let to_relay = Rules::new(vec![Rule { from: 0..1, to: 0..3, during: 0..200, effect: Effect::Via(1) }]);
        assert_eq!(decide(&net, net.path(0, 1), &to_relay, (0, 1), 5, false, &mut rng), Some(10_000_005));
    }

    #[test]
    fn without_rules_the_path_alone_decides_with_the_same_draws() {
        let (p, rules) = (path(), Rules::default());
        let (mut a, mut b) = (Pcg64Mcg::seed_from_u64(3), Pcg64Mcg::seed_from_u64(3));
        for t in 0..1000 {
            assert_eq!(decide(&model(), &p, &rules, (0, 1), t, false, &mut a), p.sample(&mut b).map(|d| t + d));
        }
        assert_eq!(decide(&model(), &p, &rules, (0, 1), 5, true, &mut a), Some(10_005), "reliable: base latency");
    }

    #[test]
    fn jittery_arrivals_keep_their_order_on_each_path_and_paths_are_independent() {
        let p = PathProps::new(10_000_000, 5_000_000, 0.0);
        let (rules, mut rng, mut order) = (Rules::default(), Pcg64Mcg::seed_from_u64(7), InOrder::default());
        let mut last = [0u64; 2];
        let mut reordered = 0;
        for k in 0..2000u64 {
            let to = (k % 2) as u32 + 1;
            let drawn = decide(&model(), &p, &rules, (0, to), k * 100_000, false, &mut rng).unwrap();
            let at = order.arrive(to, drawn);
            reordered += usize::from(drawn < last[to as usize - 1]);
            assert!(at >= last[to as usize - 1] && at >= drawn, "in order, never earlier than drawn");
            last[to as usize - 1] = at;
        }
        assert!(reordered > 500, "the draws alone would reorder: {reordered}");
        assert_eq!(order.arrive(1, 5), last[0], "an early draw waits for the path's last arrival");
    }

    #[test]
    fn a_jitter_rule_spreads_arrivals_below_its_bound_and_draws_only_where_it_matches() {
        let p = PathProps::new(10_000, 0, 0.0);
        let rules =
            Rules::new(vec![Rule { from: 0..1, to: 1..2, during: 0..u64::MAX, effect: Effect::Jitter(1_000_000) }]);
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        let extra: Vec<u64> =
            (0..4000).map(|t| decide(&model(), &p, &rules, (0, 1), t, true, &mut rng).unwrap() - t - 10_000).collect();
        assert!(extra.iter().all(|&e| e < 1_000_000), "below the bound");
        let mean = extra.iter().sum::<u64>() as f64 / extra.len() as f64;
        assert!((mean - 500_000.0).abs() < 25_000.0, "uniform: mean {mean}");
        assert!(extra.iter().filter(|&&e| e < 100_000).count() > 300, "the low tenth is reached");
        // The other direction matches no rule: no draw, so the stream is where it was.
        let mut other = Pcg64Mcg::seed_from_u64(9);
        assert_eq!(decide(&model(), &p, &rules, (1, 0), 5, true, &mut other), Some(10_005));
        assert_eq!(other.next_u64(), Pcg64Mcg::seed_from_u64(9).next_u64());
    }

    #[test]
    fn a_partition_drops_everything_and_a_delay_adds() {
        let p = path();
        let rules = Rules::new(vec![
            Rule { from: 0..1, to: 1..2, during: 0..100, effect: Effect::Drop },
            Rule { from: 0..1, to: 1..2, during: 100..200, effect: Effect::Delay(1_000_000) },
        ]);
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        assert!((0..100).all(|t| decide(&model(), &p, &rules, (0, 1), t, true, &mut rng).is_none()));
        let late = decide(&model(), &p, &rules, (0, 1), 150, true, &mut rng).unwrap();
        assert_eq!(late, 150 + 10_000 + 1_000_000);
        assert_eq!(
            decide(&model(), &p, &rules, (1, 0), 50, true, &mut rng),
            Some(10_050),
            "the other direction is open"
        );
    }
}
