//! Scenarios: what happens to the network during a run, as a timeline of `[[scenario]]` entries
//! (a partition between two sets of hosts, extra delay, extra loss, each from a simulated time
//! until another). The timeline is known before the run starts, so it compiles once, in the
//! network plan, into the rule table ([`thermocline_net::Rules`]) that every shard's engines
//! consult at the sender: direct hosts and surrogates alike, the same verdicts on any shard count.
//!
//! Rules only drop or delay, never speed up, so the window length the plan computed from the
//! network model stays safe.

use std::ops::Range;
use thermocline_bus::SimDuration;
use thermocline_models::directory::HostDirectory;
use thermocline_net::{Effect, Rule, Rules};

/// What a `[[scenario]]` entry does to the traffic it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetAction {
    /// Everything between the two sides is lost (a partition; healed at `until`).
    Partition,
    /// Everything arrives `extra` later.
    Delay,
    /// Each transmission is lost with probability `rate` (drawn from the sender's stream).
    Loss,
}

/// One `[[scenario]]` entry: an action on the traffic between two sets of hosts, in force for
/// departures from `at` until `until` (the end of the run when absent).
///
/// The sides are host selectors: a group name (`"eu"`) or a range of a group's indices
/// (`"tail[0..500]"`, hosts `tail0` to `tail499`). `between = [A, B]` acts both ways; `from = A`
/// with `to = B` acts on A's transmissions to B only.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// When it starts (simulated, from the run's start).
    pub at: SimDuration,
    /// When it ends (absent: it lasts to the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<SimDuration>,
    /// What it does.
    pub action: NetAction,
    /// Both ways between these two sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between: Option<[String; 2]>,
    /// One way: from this side…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// …to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Extra one-way delay, for `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<SimDuration>,
    /// Loss probability, for `loss` (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// Compile the timeline into the rule table, resolving selectors against `dir`. Errors name
/// the entry's key (`scenario[1].between`), so the CLI can point at it in the spec.
pub fn compile(entries: &[ScenarioSpec], dir: &HostDirectory) -> Result<Rules, String> {
    let mut rules = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let key = |k: &str| format!("scenario[{i}].{k}");
        let start = e.at.as_nanos();
        let end = e.until.map_or(u64::MAX, |u| u.as_nanos());
        if end <= start {
            return Err(format!("{} must be later than at ({})", key("until"), e.at));
        }
        let effect = effect(e, &key)?;
        let sides = match (&e.between, &e.from, &e.to) {
            (Some([a, b]), None, None) => {
                let (a, b) = (select(dir, a, &key("between"))?, select(dir, b, &key("between"))?);
                vec![(a.clone(), b.clone()), (b, a)]
            }
            (None, Some(from), Some(to)) => vec![(select(dir, from, &key("from"))?, select(dir, to, &key("to"))?)],
            _ => {
                return Err(format!(
                    "{} names the traffic it acts on with `between = [A, B]` (both ways) or `from = A` and \
                     `to = B` (one way), not both or neither",
                    key("action")
                ));
            }
        };
        for (from, to) in sides {
            rules.push(Rule { from, to, during: start..end, effect });
        }
    }
    Ok(Rules::new(rules))
}

/// The rule effect of entry `e`, checking that it has the one value its action takes.
fn effect(e: &ScenarioSpec, key: &dyn Fn(&str) -> String) -> Result<Effect, String> {
    let (extra, rate) = (e.extra.map(|_| "extra"), e.rate.map(|_| "rate"));
    let stray = match e.action {
        NetAction::Partition => extra.or(rate),
        NetAction::Delay => rate,
        NetAction::Loss => extra,
    };
    if let Some(name) = stray {
        return Err(format!("{} does not apply to action = {:?}", key(name), e.action));
    }
    Ok(match e.action {
        NetAction::Partition => Effect::Drop,
        NetAction::Delay => {
            let extra = e.extra.ok_or_else(|| format!("{} is needed by action = \"delay\"", key("extra")))?;
            Effect::Delay(extra.as_nanos())
        }
        NetAction::Loss => {
            let rate = e.rate.ok_or_else(|| format!("{} is needed by action = \"loss\"", key("rate")))?;
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(format!("{} must be above 0 and at most 1, not {rate}", key("rate")));
            }
            Effect::Loss(rate)
        }
    })
}

/// The host ids a selector names: a group, or `group[a..b]` for its indices `a` to `b - 1`.
fn select(dir: &HostDirectory, selector: &str, key: &str) -> Result<Range<u32>, String> {
    let (name, indices) = match selector.split_once('[') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(']').ok_or_else(|| format!("{key}: {selector:?} lacks its closing ]"))?;
            let parsed =
                inner.split_once("..").and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            let (a, b): (u32, u32) = parsed.ok_or_else(|| {
                format!("{key}: {selector:?} should be GROUP or GROUP[FIRST..END] with indices, e.g. \"{name}[0..10]\"")
            })?;
            (name, Some(a..b))
        }
        None => (selector, None),
    };
    let group = dir.groups.iter().find(|g| g.spec.name == name).ok_or_else(|| {
        let names: Vec<&str> = dir.groups.iter().map(|g| g.spec.name.as_str()).collect();
        format!("{key}: no hosts group named {name:?} (the groups are {})", names.join(", "))
    })?;
    let count = group.spec.count;
    let Some(r) = indices else { return Ok(group.first..group.first + count) };
    if r.start >= r.end || r.end > count {
        return Err(format!("{key}: {selector:?} is not a non-empty range of the group's {count} indices"));
    }
    Ok(group.first + r.start..group.first + r.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_models::network::{NetworkModel, NetworkSpec, TopologyKind};

    fn directory() -> HostDirectory {
        let text = "[[hosts]]\nname = \"a\"\ncount = 10\n[[hosts]]\nname = \"b\"\ncount = 5\n";
        #[derive(serde::Deserialize)]
        struct Hosts {
            hosts: Vec<thermocline_models::directory::HostGroupSpec>,
        }
        let hosts: Hosts = toml::from_str(text).unwrap();
        let spec = NetworkSpec { topology: TopologyKind::SingleSwitch, ..NetworkSpec::default() };
        NetworkModel::build(&spec, None, &hosts.hosts).unwrap().directory
    }

    fn entries(toml_text: &str) -> Vec<ScenarioSpec> {
        #[derive(serde::Deserialize)]
        struct Doc {
            scenario: Vec<ScenarioSpec>,
        }
        toml::from_str::<Doc>(toml_text).unwrap().scenario
    }

    #[test]
    fn a_partition_between_two_groups_drops_both_ways_within_its_window_only() {
        let dir = directory();
        let rules = compile(
            &entries(
                "[[scenario]]\nat = \"10 s\"\nuntil = \"20 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]\n",
            ),
            &dir,
        )
        .unwrap();
        let s = 1_000_000_000;
        assert!(rules.verdict(0, 10, 10 * s).drop && rules.verdict(14, 9, 15 * s).drop, "both ways");
        assert!(!rules.verdict(0, 10, 10 * s - 1).drop && !rules.verdict(0, 10, 20 * s).drop, "[at, until)");
        assert!(!rules.verdict(0, 9, 15 * s).drop && !rules.verdict(10, 14, 15 * s).drop, "within a side");
    }

    #[test]
    fn one_way_delay_and_loss_on_index_ranges() {
        let dir = directory();
        let text = "[[scenario]]\nat = \"0 s\"\naction = \"delay\"\nfrom = \"a[0..2]\"\nto = \"b\"\nextra = \"100 ms\"\n\
                    [[scenario]]\nat = \"0 s\"\naction = \"loss\"\nfrom = \"b[4..5]\"\nto = \"a\"\nrate = 1.0\n";
        let rules = compile(&entries(text), &dir).unwrap();
        assert_eq!(rules.verdict(1, 12, u64::MAX - 1).delay_ns, 100_000_000, "to the end of the run");
        assert_eq!(rules.verdict(2, 12, 0).delay_ns, 0, "a[2] is outside a[0..2]");
        assert_eq!(rules.verdict(12, 1, 0).delay_ns, 0, "one way");
        assert!(rules.verdict(14, 0, 0).loss > 0 && rules.verdict(13, 0, 0).loss == 0);
    }

    #[test]
    fn bad_entries_are_errors_naming_their_key() {
        let dir = directory();
        let cases = [
            ("at = \"5 s\"\nuntil = \"5 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]", "scenario[0].until"),
            ("at = \"0 s\"\naction = \"partition\"\nbetween = [\"a\", \"c\"]", "no hosts group named \"c\""),
            ("at = \"0 s\"\naction = \"partition\"\nfrom = \"a\"", "scenario[0].action names the traffic"),
            ("at = \"0 s\"\naction = \"delay\"\nbetween = [\"a\", \"b\"]", "scenario[0].extra is needed"),
            ("at = \"0 s\"\naction = \"loss\"\nbetween = [\"a\", \"b\"]\nrate = 1.5", "scenario[0].rate must be"),
            (
                "at = \"0 s\"\naction = \"partition\"\nbetween = [\"a\", \"b\"]\nrate = 0.5",
                "scenario[0].rate does not apply",
            ),
            ("at = \"0 s\"\naction = \"partition\"\nbetween = [\"a[3..11]\", \"b\"]", "of the group's 10 indices"),
            ("at = \"0 s\"\naction = \"partition\"\nbetween = [\"a[x]\", \"b\"]", "GROUP[FIRST..END]"),
        ];
        for (body, expected) in cases {
            let err = compile(&entries(&format!("[[scenario]]\n{body}\n")), &dir).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
