//! The protocol's rules, driven by a small harness: every identity on one [`Discovery`], packets
//! delivered after a fixed latency unless the harness drops them (a dead identity), timers at
//! their time, all in one ordered queue.

use super::*;
use crate::discv5::packet::Seal;
use crate::traffic::Subscriptions;
use std::collections::{BTreeMap, BTreeSet};
use thermocline_bus::SimDuration;

const LATENCY: u64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Packet { from: u32, to: u32, packet: Packet },
    Timer { who: u32, timer: Timer },
}

struct Net {
    d: Discovery,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    now: u64,
    dead: BTreeSet<u32>,
    sent: Vec<(u64, u32, u32, Packet)>,
}

impl Net {
    fn new(n: u32, spec: Discv5Spec) -> Net {
        Net::with_found(n, spec, false)
    }

    fn with_found(n: u32, spec: Discv5Spec, report_found: bool) -> Net {
        Net::with_subnets(n, spec, report_found, None)
    }

    fn with_subnets(n: u32, spec: Discv5Spec, report_found: bool, subnets: Option<(Arc<Subscriptions>, u32)>) -> Net {
        let ids: Arc<[NodeId]> = node_ids(7, n).into();
        let d = Discovery::new(Setup { spec: &spec, ids, owned: (0..n).collect(), seed: 7, report_found, subnets });
        let mut net = Net { d, queue: BTreeMap::new(), seq: 0, now: 0, dead: BTreeSet::new(), sent: Vec::new() };
        net.collect();
        net
    }

    fn collect(&mut self) {
        let outputs: Vec<Output> = self.d.drain_outputs().collect();
        for o in outputs {
            self.seq += 1;
            match o {
                Output::Send { from, to, packet, .. } => {
                    self.sent.push((self.now, from, to, packet));
                    if !self.dead.contains(&to) {
                        self.queue.insert((self.now + LATENCY, self.seq), Ev::Packet { from, to, packet });
                    }
                }
                Output::Timer { who, at, timer } => {
                    self.queue.insert((at, self.seq), Ev::Timer { who, timer });
                }
            }
        }
    }

    fn run_until(&mut self, end: u64) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 >= end {
                break;
            }
            let ((time, _), ev) = entry.remove_entry();
            self.now = time;
            match ev {
                Ev::Packet { from, to, packet } => self.d.handle_packet(time, to, from, packet),
                Ev::Timer { who, timer } if !self.dead.contains(&who) => self.d.handle_timer(time, who, timer),
                Ev::Timer { .. } => {}
            }
            self.collect();
        }
        self.now = end;
    }
}

fn spec() -> Discv5Spec {
    Discv5Spec { join_over: SimDuration::from_millis(5_000), exact: true, ..Discv5Spec::default() }
}

const S: u64 = 1_000_000_000;

#[test]
fn a_first_request_costs_the_whoareyou_round_trip_and_later_ones_do_not() {
    let mut net = Net::new(2, Discv5Spec { bootnodes: 2, ..spec() });
    net.run_until(S / 2);
    // Identity 0 joined at zero knowing identity 1 (a bootnode) and looked itself up.
    let between: Vec<(Kind, Seal, u32)> =
        net.sent.iter().filter(|s| s.1 == 0 || s.2 == 0).map(|s| (s.3.kind, s.3.seal, s.1)).collect();
    let first_findnode = between.iter().position(|&(k, _, from)| k == Kind::FindNode && from == 0).unwrap();
    assert_eq!(between[first_findnode].1, Seal::Random, "no session yet: random content");
    assert!(between.contains(&(Kind::WhoAreYou, Seal::Ordinary, 1)), "the peer challenged it");
    assert!(between.contains(&(Kind::FindNode, Seal::Handshake, 0)), "the request followed in a handshake");
    assert!(between.iter().any(|&(k, _, from)| k == Kind::Nodes && from == 1), "and was answered");
    // Each is in the other's table now, and a later request goes out sealed with the session.
    assert!(net.d.table(0).entries().contains(&1) && net.d.table(1).entries().contains(&0));
    net.sent.clear();
    net.run_until(30 * S);
    assert!(net.sent.iter().any(|s| s.3.kind.is_request()), "revalidation and lookups send requests");
    assert!(
        net.sent.iter().filter(|s| s.3.kind.is_request()).all(|s| s.3.seal == Seal::Ordinary),
        "with a session every request is ordinary: {:?}",
        net.sent
    );
    assert!(!net.sent.iter().any(|s| s.3.kind == Kind::WhoAreYou));
}

#[test]
fn a_peer_that_lost_the_session_challenges_an_ordinary_packet() {
    // One session each: talking to a third identity evicts the first.
    let mut net = Net::new(3, Discv5Spec { bootnodes: 3, sessions: 1, ..spec() });
    net.run_until(60 * S);
    let challenged_ordinary = net.sent.windows(1).any(|w| w[0].3.kind == Kind::WhoAreYou)
        && net.sent.iter().any(|s| s.3.kind.is_request() && s.3.seal == Seal::Handshake);
    assert!(challenged_ordinary, "sessions were evicted and rebuilt");
    // Every request still got its answer: nothing timed out.
    assert!(
        (0..3).all(|i| net.d.counters(i).timeouts == 0),
        "{:?}",
        (0..3).map(|i| *net.d.counters(i)).collect::<Vec<_>>()
    );
}

/// Lookups end on the exact 16 closest identities, or next to it: a FINDNODE asks for three
/// distances around the target (`d`, `d + 1`, `d − 1`, as geth and the sigp implementation
/// ask), so a node that sits closer to the answering peer than that, and that no other asked
/// peer holds, is missed now and then, as in real networks.
#[test]
fn lookups_converge_on_the_exact_closest_set() {
    let mut net = Net::new(400, spec());
    net.run_until(200 * S);
    let rows = net.d.take_rows();
    // Lookups started once everyone had joined and had a lookup behind it.
    let late: Vec<&LookupRow> = rows.iter().filter(|r| r.random && r.start_ns > 80 * S).collect();
    assert!(late.len() > 300, "{} late lookups", late.len());
    let mut overlap = [0; 17];
    late.iter().for_each(|r| overlap[r.exact_overlap.unwrap() as usize] += 1);
    let found: u32 = (0..17).map(|k| k as u32 * overlap[k]).sum();
    let recall = f64::from(found) / (16.0 * late.len() as f64);
    assert!(recall > 0.97, "recall {recall}; lookups by overlap with the exact 16: {overlap:?}");
    assert!(f64::from(overlap[16]) > 0.75 * late.len() as f64, "lookups by overlap: {overlap:?}");
    assert!(overlap[..10].iter().all(|&n| n == 0), "lookups by overlap: {overlap:?}");
    // Every lookup asked at least the 16 it found (its own table may have held them: 0 hops).
    let odd: Vec<_> = late.iter().filter(|r| !(r.found == 16 && r.messages >= 16)).collect();
    assert!(odd.is_empty(), "{odd:?}");
    assert!(late.iter().any(|r| r.hops >= 2), "some lookups went through others' answers");
}

/// A dead entry goes within a bounded number of liveness rounds: each round pings the least
/// recently verified entry of one bucket, so an entry that never answers is checked within
/// (filled buckets × k) rounds of its owner, sooner when a lookup asks it and times out.
#[test]
fn an_entry_that_stops_answering_leaves_every_table_within_its_liveness_rounds() {
    let mut net = Net::new(60, spec());
    net.run_until(40 * S);
    let victim = 30;
    let holders: Vec<u32> = (0..60).filter(|&i| net.d.table(i).entries().contains(&victim)).collect();
    assert!(holders.len() > 5, "{} tables hold the victim", holders.len());
    // The worst case per holder: every round picks another bucket or entry first; rounds are
    // `revalidate` ± 50 % apart.
    let round = spec().revalidate.as_nanos() * 3 / 2;
    let bound: BTreeMap<u32, u64> =
        holders.iter().map(|&i| (i, net.d.table(i).filled_buckets() as u64 * K as u64 * round)).collect();
    let died = net.now;
    net.dead.insert(victim);
    let mut gone_at = BTreeMap::new();
    while gone_at.len() < holders.len() && net.now < died + 3_000 * S {
        net.run_until(net.now + S);
        for &i in &holders {
            if !net.d.table(i).entries().contains(&victim) {
                gone_at.entry(i).or_insert(net.now - died);
            }
        }
    }
    for &i in &holders {
        let took = gone_at.get(&i).copied().unwrap_or(u64::MAX);
        assert!(took <= bound[&i] + S, "identity {i} dropped the victim after {took} ns, bound {} ns", bound[&i]);
    }
    assert!(holders.iter().map(|&i| net.d.counters(i).timeouts).sum::<u32>() >= holders.len() as u32);
    // Nothing else left: the others' tables did not shrink for it.
    assert!((0..60).filter(|&i| i != victim).all(|i| net.d.table(i).len() >= 16));
}

#[test]
fn identities_behind_nat_find_others_but_enter_no_table() {
    let mut net = Net::new(200, Discv5Spec { nat_share: 0.3, ..spec() });
    net.run_until(120 * S);
    let natted: Vec<u32> = (0..200).filter(|&g| net.d.behind_nat(g)).collect();
    assert!((40..=80).contains(&natted.len()), "{} behind NAT", natted.len());
    for i in 0..200 {
        for &e in net.d.table(i).entries() {
            assert!(!net.d.behind_nat(e), "{i} holds {e}, which is behind NAT");
        }
    }
    // They found peers all the same.
    assert!(natted.iter().all(|&g| net.d.table(g).len() >= 16));
}

#[test]
fn churning_identities_go_and_come_back_and_tables_keep_up() {
    let churn = crate::discv5::config::ChurnSpec {
        share: 0.5,
        mean_online: SimDuration::from_millis(60_000),
        mean_offline: SimDuration::from_millis(30_000),
    };
    let mut net = Net::new(200, Discv5Spec { churn: Some(churn), ..spec() });
    let mut offline_seen = 0;
    for t in 1..=60 {
        net.run_until(t * 10 * S);
        offline_seen += (0..200).filter(|&i| !net.d.online(i)).count();
    }
    assert!(offline_seen > 0, "some identities went offline");
    // Online identities keep full enough tables, and lookups still find nodes.
    let online: Vec<u32> = (0..200).filter(|&i| net.d.online(i)).collect();
    assert!(online.iter().all(|&i| net.d.table(i).len() >= 16));
    let late: Vec<LookupRow> = net.d.take_rows().into_iter().filter(|r| r.start_ns > 300 * S).collect();
    let recall: f64 =
        late.iter().map(|r| f64::from(r.exact_overlap.unwrap())).sum::<f64>() / (16.0 * late.len() as f64);
    assert!(recall > 0.6, "recall under churn {recall}");
}

#[test]
fn the_same_spec_runs_the_same_way() {
    let run = || {
        let mut net = Net::new(100, Discv5Spec { nat_share: 0.1, ..spec() });
        net.run_until(60 * S);
        (net.sent.clone(), net.d.take_rows())
    };
    assert_eq!(run(), run());
}

#[test]
fn a_peer_manager_gets_what_each_random_lookup_found_and_queries_at_once_after_joining() {
    let n = 300;
    let mut net = Net::with_found(n, Discv5Spec { nat_share: 0.2, ..spec() }, true);
    net.run_until(30 * S);
    let rows = net.d.take_rows();
    let found = net.d.take_found();
    let random: Vec<&LookupRow> = rows.iter().filter(|r| r.random).collect();
    assert_eq!(found.len(), random.len(), "one list per finished random lookup");
    // Long before the first `lookup_interval` (60 s ± 50 %), each joined identity has queried.
    let queried: BTreeSet<u32> = random.iter().map(|r| r.identity).collect();
    let joined: BTreeSet<u32> = rows.iter().filter(|r| !r.random).map(|r| r.identity).collect();
    assert!(
        joined.len() as u32 > n * 9 / 10 && queried == joined,
        "{} joined, {} queried",
        joined.len(),
        queried.len()
    );
    let bootnodes: BTreeSet<u32> = (0..n).filter(|&g| !net.d.behind_nat(g)).take(4).collect();
    for ((who, subnet, nodes), row) in found.iter().zip(&random) {
        assert_eq!(*subnet, None, "no subnet queries without subscriptions");
        let me = net.d.global(*who);
        assert_eq!(row.identity, me);
        assert!(nodes.len() as u32 <= row.found && nodes.len() as u32 + 4 >= row.found, "its answered closest");
        assert!(!nodes.contains(&me), "never itself");
        assert!(nodes.iter().all(|&x| !net.d.behind_nat(x)), "never an identity behind NAT");
        assert!(nodes.iter().all(|x| !bootnodes.contains(x)), "never a bootnode");
    }
    let filled = found.iter().filter(|(_, _, nodes)| nodes.len() >= 8).count();
    assert!(filled * 10 >= found.len() * 9, "{filled} of {} queries found 8 or more", found.len());
    assert!(net.d.take_found().is_empty(), "taken once");
    let mut quiet = Net::new(n, spec());
    quiet.run_until(30 * S);
    assert!(quiet.d.take_found().is_empty(), "nothing kept unless asked");
    assert!(quiet.d.take_rows().iter().all(|r| !r.random), "and no early query");
}

#[test]
fn subnet_queries_find_only_subscribers_and_stop_when_one_finds_enough() {
    use crate::config::{AttestationSpec, TrafficSpec};
    let n = 400;
    let traffic = TrafficSpec { attestations: Some(AttestationSpec::default()), ..TrafficSpec::default() };
    let subs = Arc::new(Subscriptions::compute(n, &traffic, 7, false));
    let want = 3;
    let mut net = Net::with_subnets(n, spec(), true, Some((subs.clone(), want)));
    net.run_until(60 * S);
    let found = net.d.take_found();
    let mut queries: BTreeMap<(u32, u8), Vec<usize>> = BTreeMap::new();
    for (who, subnet, nodes) in &found {
        let me = net.d.global(*who);
        let Some(t) = subnet else { continue };
        assert!(subs.of(me)[1..].contains(t), "identity {me} queries only its own subnets");
        assert!(nodes.iter().all(|&x| x != me && subs.has(x, *t)), "only subscribers to {t}");
        queries.entry((me, *t)).or_default().push(nodes.len());
    }
    // Every identity that joined queried for each of its two subnets, again only while a query
    // found fewer than it wants, and never more than SUBNET_QUERIES times.
    let joined: BTreeSet<u32> = found.iter().filter(|f| f.1.is_none()).map(|f| net.d.global(f.0)).collect();
    assert!(joined.len() as u32 > n * 9 / 10);
    for me in &joined {
        for t in &subs.of(*me)[1..] {
            let q = queries.get(&(*me, *t)).unwrap_or_else(|| panic!("identity {me} never queried subnet {t}"));
            assert!(q.len() <= usize::from(SUBNET_QUERIES), "{q:?}");
            let (last, before) = q.split_last().unwrap();
            assert!(before.iter().all(|&k| k < want as usize), "queried again after finding enough: {q:?}");
            assert!(*last >= want as usize || q.len() == usize::from(SUBNET_QUERIES), "stopped short: {q:?}");
        }
    }
    let found_some = queries.values().filter(|q| q.iter().sum::<usize>() > 0).count();
    assert!(found_some * 10 > queries.len() * 9, "{found_some} of {} subnets found subscribers", queries.len());
}

#[test]
fn release_frees_every_table_and_reports_their_sizes_as_they_were() {
    let mut net = Net::new(200, spec());
    net.run_until(60 * S);
    let before: Vec<(u32, u32)> =
        (0..200).map(|i| (net.d.table(i).len() as u32, net.d.table(i).filled_buckets() as u32)).collect();
    let counters: Vec<Counters> = (0..200).map(|i| *net.d.counters(i)).collect();
    assert!(before.iter().all(|&(entries, buckets)| entries > 0 && buckets > 0), "{before:?}");
    assert_eq!(net.d.release(), before);
    assert!((0..200).all(|i| net.d.table(i).is_empty()), "tables freed");
    assert!((0..200).all(|i| *net.d.counters(i) == counters[i as usize]), "counters kept");
}
