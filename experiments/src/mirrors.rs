//! `[[mirrors]]`: port mirrors on direct hosts, checked and resolved against the host directory
//! into the plans the direct engines follow (see `thermocline_direct::packet`).

use thermocline_direct::packet::{MAX_NAME, MirrorPlan, MirrorRule, MirrorSpec};
use thermocline_models::directory::{HostDirectory, HostKind};

/// Resolve `entries` against `dir`. Errors name the entry's key (`mirrors[0].interface`).
pub fn compile(entries: &[MirrorSpec], dir: &HostDirectory) -> Result<Vec<MirrorPlan>, String> {
    let mut plans: Vec<MirrorPlan> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let key = |k: &str| format!("mirrors[{i}].{k}");
        let hosts = crate::scenario::select(dir, &e.hosts, &key("hosts"))?;
        let group = &dir.groups[dir.block_of(hosts.start).group as usize];
        if group.spec.kind != HostKind::Direct {
            return Err(format!("{}: group {:?} is not kind = \"direct\"", key("hosts"), group.spec.name));
        }
        let name = &e.interface;
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name != "."
            && name != "..";
        if !valid {
            return Err(format!(
                "{}: {name:?} is not an interface name (1 to {MAX_NAME} letters, digits, '-', '_' or '.')",
                key("interface")
            ));
        }
        let taken =
            |p: &MirrorPlan| p.rule.interface == *name && p.hosts.start < hosts.end && hosts.start < p.hosts.end;
        if name == "lo" || name == "eth0" || plans.iter().any(taken) {
            return Err(format!("{}: a host already has an interface named {name:?}", key("interface")));
        }
        if e.port == Some(0) {
            return Err(format!("{} must be a port from 1 to 65535", key("port")));
        }
        let rule = MirrorRule { interface: name.clone(), direction: e.direction, protocol: e.protocol, port: e.port };
        plans.push(MirrorPlan { hosts, rule });
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermocline_direct::packet::{Direction, Protocol};

    fn directory() -> HostDirectory {
        let text = "[[hosts]]\nname = \"relay\"\nkind = \"direct\"\ncount = 2\n[[hosts]]\nname = \"tail\"\ncount = 5\n";
        crate::test_support::switch_network(text).directory
    }

    fn mirrors(text: &str) -> Vec<MirrorSpec> {
        #[derive(serde::Deserialize)]
        struct Doc {
            mirrors: Vec<MirrorSpec>,
        }
        toml::from_str::<Doc>(text).unwrap().mirrors
    }

    #[test]
    fn mirrors_resolve_to_their_hosts_and_bad_ones_name_their_key() {
        let dir = directory();
        let ok = "[[mirrors]]\nhosts = \"relay[1..2]\"\ninterface = \"mirror0\"\nprotocol = \"udp\"\nport = 20000\n";
        let plans = compile(&mirrors(ok), &dir).unwrap();
        let relay = crate::scenario::select(&dir, "relay", "k").unwrap();
        assert_eq!(plans[0].hosts, relay.start + 1..relay.end);
        assert_eq!(
            plans[0].rule,
            MirrorRule {
                interface: "mirror0".into(),
                direction: Direction::In,
                protocol: Protocol::Udp,
                port: Some(20000)
            }
        );
        let err = |t: &str| compile(&mirrors(t), &dir).unwrap_err();
        assert!(err("[[mirrors]]\nhosts = \"tail\"\ninterface = \"m\"\n").contains("mirrors[0].hosts"));
        assert!(err("[[mirrors]]\nhosts = \"relay\"\ninterface = \"eth0\"\n").contains("already has"));
        assert!(err("[[mirrors]]\nhosts = \"relay\"\ninterface = \"a/b\"\n").contains("mirrors[0].interface"));
        assert!(err("[[mirrors]]\nhosts = \"relay\"\ninterface = \"sixteen-letters!\"\n").contains("not an interface"));
        assert!(err("[[mirrors]]\nhosts = \"relay\"\ninterface = \"m\"\nport = 0\n").contains("mirrors[0].port"));
        let twice = "[[mirrors]]\nhosts = \"relay\"\ninterface = \"m\"\n[[mirrors]]\nhosts = \"relay[1..2]\"\ninterface = \"m\"\n";
        assert!(err(twice).contains("mirrors[1].interface"));
        let apart = "[[mirrors]]\nhosts = \"relay[0..1]\"\ninterface = \"m\"\n[[mirrors]]\nhosts = \"relay[1..2]\"\ninterface = \"m\"\n";
        assert_eq!(compile(&mirrors(apart), &dir).unwrap().len(), 2, "one name on different hosts");
    }
}
