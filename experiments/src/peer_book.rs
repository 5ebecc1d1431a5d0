//! The run's answer to peer placeholders (`{peers:GROUP:N}`, `{multiaddrs:GROUP:N}`,
//! `{enrs:GROUP:N}` in a process's arguments): which surrogate identities a real client is given to dial. Clients get
//! disjoint sets while the group lasts: direct host `r` (counting direct hosts from 0) takes
//! members `rN … rN + N − 1` of one seeded walk over the group (a stride coprime with its size
//! from a seeded start), so every client meets different surrogates and no surrogate is offered
//! to more clients than it keeps slots for until the group is used up.

use thermocline_direct::peers::{PeerAddr, PeerBook, peer_refs};
use thermocline_models::directory::{HostDirectory, HostKind};
use thermocline_models::rng::{StreamFamily, below};
use thermocline_surrogate::boundary::{ClientDial, GOSSIP_PORT, libp2p_key};
use thermocline_surrogate::config::GossipSpec;
use thermocline_surrogate::discv5::boundary::{eth2_record, record};
use thermocline_surrogate::topics::attnets;

use crate::spec::Spec;

/// Surrogate identities as peers, from the run's directory and seed.
pub struct SurrogateBook<'a> {
    /// The hosts of the run.
    pub dir: &'a HostDirectory,
    /// The run's seed (identity keys derive from it).
    pub seed: u64,
    /// In an Ethereum domain (`[gossip.eth2]`), what identities' records and keys follow.
    pub eth2: Option<Eth2Book<'a>>,
}

/// What an Ethereum domain changes in the book: identities have secp256k1 libp2p keys, and
/// their records carry `tcp`, `eth2` and `attnets`, so a client can take them as bootnodes.
pub struct Eth2Book<'a> {
    /// The network's `ENRForkID`.
    pub fork_id: Vec<u8>,
    /// Every surrogate's subscriptions (its `attnets`), as the run computed them.
    pub subscriptions: &'a thermocline_surrogate::traffic::Subscriptions,
}

/// The network's `ENRForkID` in an Ethereum domain (`[gossip.eth2]`), which the records of
/// identities carry; `None` without one.
pub fn enr_fork_id(spec: &Spec) -> Result<Option<Vec<u8>>, String> {
    let Some(e) = spec.gossip.as_ref().and_then(|g| g.eth2.as_ref()) else { return Ok(None) };
    let d = e.domain(spec.run.start_date.0)?;
    Ok(Some(thermocline_wire::eth2::types::enr_fork_id(d.fork_digest, d.fork_version)))
}

/// The walk over a group of `count` members: (start, stride), the stride coprime with `count`.
fn walk(seed: u64, group: &str, count: u32) -> (u64, u64) {
    let mut rng = StreamFamily::new(seed, &format!("peer book {group}")).stream(0);
    let count = u64::from(count.max(1));
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let start = below(&mut rng, count);
    let mut stride = 1 + below(&mut rng, count);
    while gcd(stride, count) != 1 {
        stride = stride % count + 1;
    }
    (start, stride)
}

/// The members (offsets within a group of `count`) that client number `rank` gets, `n` of them.
pub fn picks(seed: u64, group: &str, count: u32, rank: u32, n: u32) -> Vec<u32> {
    let (start, stride) = walk(seed, group, count);
    let count = u64::from(count);
    (0..u64::from(n)).map(|j| ((start + (u64::from(rank) * u64::from(n) + j) * stride) % count) as u32).collect()
}

impl PeerBook for SurrogateBook<'_> {
    fn peers(&self, host: u32, group: &str, n: u32) -> Result<Vec<PeerAddr>, String> {
        let g = self.dir.groups.iter().find(|g| g.spec.name == group).ok_or(format!("no host group {group:?}"))?;
        if g.spec.kind != HostKind::Surrogate {
            return Err(format!("host group {group:?} is not a surrogate group: only surrogates are given as peers"));
        }
        if n > g.spec.count {
            return Err(format!("host group {group:?} has {} identities, fewer than {n}", g.spec.count));
        }
        let rank = host.saturating_sub(self.dir.surrogates());
        let peer = |k: u32| {
            let id = g.first + k;
            PeerAddr {
                name: self.dir.name_of(id),
                ip: HostDirectory::ip_of(id),
                port: GOSSIP_PORT,
                peer_id: libp2p_key(self.seed, id, self.eth2.is_some()).peer_id().to_string(),
                enr: match &self.eth2 {
                    Some(e) => eth2_record(self.seed, id, &e.fork_id, attnets(e.subscriptions.of(id))),
                    None => record(self.seed, id),
                }
                .to_text(),
            }
        };
        Ok(picks(self.seed, group, g.spec.count, rank, n).into_iter().map(peer).collect())
    }
}

/// The dials of `[gossip] dial_clients`: every host of the named direct group is dialled by
/// `peers` surrogates, chosen from all surrogates by the same kind of walk as placeholders (its
/// own walk, so the dialers are not the identities the client was given to dial).
pub fn client_dials(g: &GossipSpec, dir: &HostDirectory, seed: u64) -> Result<Vec<ClientDial>, String> {
    let Some(d) = &g.dial_clients else { return Ok(Vec::new()) };
    let n = dir.surrogates();
    if d.peers == 0 || d.peers > n {
        return Err(format!("gossip.dial_clients.peers must be within 1..={n} (the surrogates), got {}", d.peers));
    }
    let mut dials = Vec::new();
    for name in d.group.names() {
        let group = dir.groups.iter().find(|x| x.spec.name == name);
        let Some(group) = group.filter(|x| x.spec.kind == HostKind::Direct) else {
            return Err(format!(
                "gossip.dial_clients.group names {name:?}, which is not a kind = \"direct\" host group"
            ));
        };
        for k in 0..group.spec.count {
            let client = group.first + k;
            let rank = client - n;
            for surrogate in picks(seed, &format!("dialers of {name}"), n, rank, d.peers) {
                dials.push(ClientDial { surrogate, client, port: d.port, at_ns: d.start.as_nanos() });
            }
        }
    }
    Ok(dials)
}

/// Check the peer placeholders of `spec`'s processes against its host groups, naming the
/// argument (`processes[0].args[3]`) that is wrong.
pub fn check_placeholders(spec: &Spec) -> Result<(), String> {
    for (i, p) in spec.processes.iter().enumerate() {
        let texts = p.args.iter().enumerate().map(|(j, a)| (format!("processes[{i}].args[{j}]"), a));
        let env = p.env.iter().map(|(k, v)| (format!("processes[{i}].env.{k}"), v));
        for (key, text) in texts.chain(env) {
            for r in peer_refs(text).map_err(|e| format!("{key}: {e}"))? {
                let Some(g) = spec.hosts.iter().find(|g| g.name == r.group) else {
                    return Err(format!("{key}: {} names host group {:?}, which does not exist", r.token, r.group));
                };
                if g.kind != HostKind::Surrogate {
                    return Err(format!("{key}: {} names {:?}, which is not a surrogate group", r.token, r.group));
                }
                if r.n > g.count {
                    return Err(format!(
                        "{key}: {} asks for {} of the {} identities of {:?}",
                        r.token, r.n, g.count, r.group
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_disjoint_members_until_the_group_is_used_up() {
        let all: Vec<u32> = (0..25).flat_map(|rank| picks(7, "tail", 100, rank, 4)).collect();
        let mut seen = all.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (0..100).collect::<Vec<_>>(), "25 clients × 4 cover the 100 once each");
        assert_eq!(picks(7, "tail", 100, 3, 4), picks(7, "tail", 100, 3, 4));
        assert_ne!(picks(7, "tail", 100, 0, 4), picks(8, "tail", 100, 0, 4), "the seed moves the walk");
        assert_eq!(picks(1, "one", 1, 5, 1), [0]);
    }

    #[test]
    fn every_client_of_the_group_is_dialled_by_its_own_surrogates() {
        use thermocline_models::directory::HostGroupSpec;
        let group = |name: &str, kind, count| HostGroupSpec {
            name: name.into(),
            kind,
            count,
            location: None,
            locations: None,
            bandwidth: None,
            profile: None,
            load: None,
        };
        let hosts = [group("tail", HostKind::Surrogate, 30), group("hot", HostKind::Direct, 3)];
        let spec = thermocline_models::network::NetworkSpec {
            topology: thermocline_models::network::TopologyKind::SingleSwitch,
            ..Default::default()
        };
        let net = thermocline_models::network::NetworkModel::build(&spec, None, &hosts).unwrap();
        let mut g = GossipSpec::default();
        assert!(client_dials(&g, &net.directory, 1).unwrap().is_empty());
        g.dial_clients = Some(toml::from_str("group = \"hot\"\npeers = 4").unwrap());
        let dials = client_dials(&g, &net.directory, 1).unwrap();
        assert_eq!(dials.len(), 12);
        for (k, client) in (30..33).enumerate() {
            let mine: Vec<u32> = dials.iter().filter(|d| d.client == client).map(|d| d.surrogate).collect();
            assert_eq!(mine, picks(1, "dialers of hot", 30, k as u32, 4));
            assert!(dials.iter().all(|d| d.port == GOSSIP_PORT && d.at_ns == 5_000_000_000 && d.surrogate < 30));
        }
        g.dial_clients = Some(toml::from_str("group = \"tail\"\npeers = 4").unwrap());
        assert!(client_dials(&g, &net.directory, 1).unwrap_err().contains("not a kind = \"direct\""));
        g.dial_clients = Some(toml::from_str("group = \"hot\"\npeers = 31").unwrap());
        assert!(client_dials(&g, &net.directory, 1).unwrap_err().contains("1..=30"));
    }
}
