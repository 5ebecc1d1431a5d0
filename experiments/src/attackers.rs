//! `[[gossip.attackers]]` resolved against the run's hosts: each entry's surrogate groups as
//! ranges of identity ids, with the attack the engines run.

use std::ops::Range;
use thermocline_models::directory::{HostDirectory, HostKind};
use thermocline_surrogate::config::GossipSpec;
use thermocline_surrogate::engine::Attack;

/// The attackers of `g` in the hosts `dir`, with `block_size` the default size of an invalid
/// message; an entry that is wrong is named by its key.
pub fn resolve(g: &GossipSpec, dir: &HostDirectory, block_size: u32) -> Result<Vec<(Range<u32>, Attack)>, String> {
    if g.attackers.len() > 254 {
        return Err(format!("gossip.attackers: at most 254 entries, got {}", g.attackers.len()));
    }
    let mut out: Vec<(Range<u32>, Attack)> = Vec::new();
    for (k, spec) in g.attackers.iter().enumerate() {
        spec.check(k)?;
        for name in spec.group.names() {
            let group = dir.groups.iter().find(|x| x.spec.name == name);
            let Some(group) = group.filter(|x| x.spec.kind == HostKind::Surrogate) else {
                return Err(format!("gossip.attackers[{k}].group names {name:?}, which is not a surrogate host group"));
            };
            let range = group.first..group.first + group.spec.count;
            if out.iter().any(|(r, _)| r.start < range.end && range.start < r.end) {
                return Err(format!("gossip.attackers[{k}].group: {name:?} is named by two attacker entries"));
            }
            out.push((range, Attack::from_spec(spec, block_size)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::switch_network;

    const HOSTS: &str = "[[hosts]]\nname = \"honest\"\ncount = 10\n\
        [[hosts]]\nname = \"bad\"\ncount = 3\n\
        [[hosts]]\nname = \"hot\"\nkind = \"direct\"\ncount = 1\n";

    fn gossip(attackers: &str) -> GossipSpec {
        toml::from_str(attackers).unwrap()
    }

    #[test]
    fn attacker_groups_become_id_ranges_with_their_attack() {
        let net = switch_network(HOSTS);
        let g = gossip("[[attackers]]\ngroup = \"bad\"\ninvalid_rate = 4.0\nwithhold = true\nstart = \"10s\"");
        let got = resolve(&g, &net.directory, 1000).unwrap();
        assert_eq!(got.len(), 1);
        // Surrogate groups take ids in name order: "bad" before "honest".
        assert_eq!(got[0].0, 0..3);
        let a = &got[0].1;
        assert_eq!((a.start_ns, a.invalid_every_ns, a.invalid_size), (10_000_000_000, 250_000_000, 1000));
        assert!(a.withhold && !a.graft_spam && a.iwant_spam == 0);
    }

    #[test]
    fn bad_entries_name_their_key() {
        let net = switch_network(HOSTS);
        for (text, want) in [
            ("group = \"hot\"\nwithhold = true", "gossip.attackers[0].group names \"hot\", which is not a surrogate"),
            ("group = \"nobody\"\nwithhold = true", "gossip.attackers[0].group names \"nobody\""),
            ("group = \"bad\"", "gossip.attackers[0] does nothing"),
            ("group = \"bad\"\ninvalid_rate = -1.0", "gossip.attackers[0].invalid_rate must be within"),
            ("group = \"bad\"\niwant_spam = 65", "gossip.attackers[0].iwant_spam must be at most 64"),
            ("group = \"bad\"\ninvalid_rate = 1.0\ninvalid_size = \"0B\"", "gossip.attackers[0].invalid_size"),
            ("group = [\"bad\", \"bad\"]\nwithhold = true", "named by two attacker entries"),
        ] {
            let err = resolve(&gossip(&format!("[[attackers]]\n{text}")), &net.directory, 1000).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
