//! The host directory: every simulated host, its global id, location, kind, bandwidth and IPv4
//! address — built from the spec's host groups before partitioning, identically on every shard.
//!
//! Ids are assigned in a stable order (groups sorted by name, then hosts in location blocks), so
//! they never depend on the shard count (invariant 2). A group's hosts are spread over its
//! locations by largest-remainder quotas of the weights, in contiguous id blocks: deterministic,
//! exact, and compact — a million hosts in 170 countries are ~200 blocks plus one u32 per host.

use crate::topology::Topology;
use crate::units::Bandwidth;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Direct hosts run real binaries; surrogates are lightweight protocol identities.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// A lightweight identity of the cold tail.
    #[default]
    Surrogate,
    /// A real binary under the shim.
    Direct,
}

impl HostKind {
    /// Default partitioning load of one host: a direct host costs far more than a surrogate.
    pub fn default_load(self) -> f64 {
        match self {
            HostKind::Surrogate => 1.0,
            HostKind::Direct => 1000.0,
        }
    }
}

/// Upload and download bandwidth of a host.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBandwidth {
    /// Upload.
    pub up: Bandwidth,
    /// Download.
    pub down: Bandwidth,
}

/// The bandwidth of hosts whose group and location give none.
pub const DEFAULT_BANDWIDTH: HostBandwidth = HostBandwidth { up: Bandwidth(100_000_000), down: Bandwidth(100_000_000) };

/// One `[[hosts]]` group of the spec.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostGroupSpec {
    /// Group name; host names are the name plus an index.
    pub name: String,
    /// Direct or surrogate (default).
    #[serde(default)]
    pub kind: HostKind,
    /// Number of hosts.
    pub count: u32,
    /// A single location (a country code, region name or GML node id).
    #[serde(default, alias = "country", alias = "region", alias = "node")]
    pub location: Option<String>,
    /// Location weights; the key `other` spreads its weight evenly over every location not named.
    #[serde(default, alias = "countries", alias = "regions", alias = "nodes")]
    pub locations: Option<BTreeMap<String, f64>>,
    /// Bandwidth of every host in the group (default: the location's, else 100 Mbit each way).
    #[serde(default)]
    pub bandwidth: Option<HostBandwidth>,
    /// Client profile name (protocol parameters), used by the engines.
    #[serde(default)]
    pub profile: Option<String>,
    /// Partitioning load of one host (default: 1 for surrogates, 1000 for direct hosts).
    #[serde(default)]
    pub load: Option<f64>,
}

/// A contiguous run of hosts of one group at one location.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// First host id.
    pub first: u32,
    /// Number of hosts.
    pub count: u32,
    /// Index of the group (in sorted order).
    pub group: u32,
    /// Location (topology node).
    pub node: u32,
    /// Bandwidth of each host.
    pub bandwidth: HostBandwidth,
}

/// A group as placed in the directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The spec.
    pub spec: HostGroupSpec,
    /// First host id.
    pub first: u32,
    /// Load of one host for partitioning.
    pub load: f64,
}

/// Why the directory could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DirectoryError {
    /// A problem with one group.
    #[error("hosts group {group:?}: {message}")]
    Group {
        /// Group name.
        group: String,
        /// What is wrong.
        message: String,
    },
    /// Too many hosts.
    #[error("{0} hosts exceed the {max} that the address plan holds", max = MAX_HOSTS)]
    TooMany(u64),
}

/// Hosts the 10.0.0.0/8 address plan holds (254 hosts per /24).
pub const MAX_HOSTS: u64 = 256 * 256 * 254;

/// Every host of the run.
#[derive(Clone, Debug)]
pub struct HostDirectory {
    /// Groups: surrogate groups first, then direct ones, each sorted by name, so surrogate
    /// identities hold the ids `0..surrogates()` whatever direct hosts a run adds.
    pub groups: Vec<Group>,
    /// Blocks, in id order.
    pub blocks: Vec<Block>,
    /// Location of each host.
    node: Vec<u32>,
}

/// Split `count` by `weights` with the largest-remainder method (ties: lower index first).
fn quotas(count: u32, weights: &[f64]) -> Vec<u32> {
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| count as f64 * w / total).collect();
    let mut q: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut left = count - q.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b)));
    for i in order {
        if left == 0 {
            break;
        }
        q[i] += 1;
        left -= 1;
    }
    q
}

/// Whether `name` can name hosts: dot-separated labels of letters, digits, `-` and `_` (as host
/// names in Shadow's configs are: `relay.2` or `client-1`), none empty, and not all of them
/// numbers (decimal or `0x` hexadecimal), so that a name never reads as an address: resolvers
/// take `10.1`, `42` or `0x7f.1` for IPv4 addresses (`inet_aton`) before looking in `/etc/hosts`.
fn valid_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let numeric = |l: &&str| {
        let hex = l.strip_prefix("0x").or_else(|| l.strip_prefix("0X"));
        match hex {
            Some(h) => h.chars().all(|c| c.is_ascii_hexdigit()),
            None => l.chars().all(|c| c.is_ascii_digit()),
        }
    };
    labels.iter().all(label_ok) && !labels.iter().all(numeric)
}

impl HostDirectory {
    /// Place the groups on `topology`.
    pub fn build(specs: &[HostGroupSpec], topology: &Topology) -> Result<Self, DirectoryError> {
        let mut specs: Vec<&HostGroupSpec> = specs.iter().collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = specs.windows(2).find(|w| w[0].name == w[1].name) {
            let message = "two groups have this name".to_string();
            return Err(DirectoryError::Group { group: w[0].name.clone(), message });
        }
        specs.sort_by_key(|g| g.kind != HostKind::Surrogate);
        let total: u64 = specs.iter().map(|g| g.count as u64).sum();
        if total > MAX_HOSTS {
            return Err(DirectoryError::TooMany(total));
        }
        let mut dir =
            HostDirectory { groups: Vec::new(), blocks: Vec::new(), node: Vec::with_capacity(total as usize) };
        let mut next = 0u32;
        for (gi, spec) in specs.iter().enumerate() {
            let err = |message: String| DirectoryError::Group { group: spec.name.clone(), message };
            if !valid_host_name(&spec.name) {
                return Err(err("names are labels of letters, digits, - and _, joined by single dots \
                                (e.g. `tail`, `relay.2` or `lossless.tcpserver.echo`), not all of them numbers \
                                (a name must not read as an address)"
                    .into()));
            }
            if let Some(bw) = spec.bandwidth
                && (bw.up.0 == 0 || bw.down.0 == 0)
            {
                return Err(err("bandwidth.up and bandwidth.down must be positive; omit `bandwidth` for the \
                                location's (or the 100 Mbit default)"
                    .into()));
            }
            let resolve = |name: &str| {
                topology.node(name).ok_or_else(|| {
                    err(format!(
                        "unknown location {name:?} (the topology has {} locations{})",
                        topology.len(),
                        topology.nodes.first().map_or(String::new(), |n| format!(", e.g. {:?}", n.name))
                    ))
                })
            };
            let mut weighted: Vec<(u32, f64)> = match (&spec.location, &spec.locations) {
                (Some(_), Some(_)) => return Err(err("give `location` or `locations`, not both".into())),
                (Some(l), None) => vec![(resolve(l)?, 1.0)],
                (None, Some(map)) => {
                    let mut named = Vec::new();
                    let mut other = 0.0;
                    for (k, &w) in map {
                        if !(w.is_finite() && w >= 0.0) {
                            return Err(err(format!("weight of {k:?} must be a non-negative number")));
                        }
                        if k == "other" {
                            other = w;
                        } else {
                            named.push((resolve(k)?, w));
                        }
                    }
                    if other > 0.0 {
                        let rest: Vec<u32> =
                            (0..topology.len() as u32).filter(|n| !named.iter().any(|(m, _)| m == n)).collect();
                        if rest.is_empty() {
                            return Err(err("`other` has no locations left to cover".into()));
                        }
                        named.extend(rest.iter().map(|&n| (n, other / rest.len() as f64)));
                    }
                    named
                }
                (None, None) if topology.len() == 1 => vec![(0, 1.0)],
                (None, None) => return Err(err("needs `location` or `locations` (the topology has several)".into())),
            };
            weighted.sort_by_key(|(n, _)| *n);
            if weighted.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
                return Err(err("location weights add up to zero".into()));
            }
            let load = spec.load.unwrap_or(spec.kind.default_load());
            if !(load.is_finite() && load > 0.0) {
                return Err(err("`load` must be positive".into()));
            }
            dir.groups.push(Group { spec: (*spec).clone(), first: next, load });
            let counts = quotas(spec.count, &weighted.iter().map(|(_, w)| *w).collect::<Vec<_>>());
            for ((node, _), n) in weighted.iter().zip(counts) {
                if n == 0 {
                    continue;
                }
                let loc = &topology.nodes[*node as usize];
                let bandwidth = spec.bandwidth.unwrap_or(HostBandwidth {
                    up: loc.bandwidth_up.unwrap_or(DEFAULT_BANDWIDTH.up),
                    down: loc.bandwidth_down.unwrap_or(DEFAULT_BANDWIDTH.down),
                });
                dir.blocks.push(Block { first: next, count: n, group: gi as u32, node: *node, bandwidth });
                dir.node.extend(std::iter::repeat_n(*node, n as usize));
                next += n;
            }
        }
        Ok(dir)
    }

    /// Number of hosts.
    pub fn len(&self) -> u32 {
        self.node.len() as u32
    }

    /// Number of surrogate identities: they hold the ids `0..surrogates()`.
    pub fn surrogates(&self) -> u32 {
        let direct = self.groups.iter().position(|g| g.spec.kind != HostKind::Surrogate);
        direct.map_or(self.len(), |g| self.groups[g].first)
    }

    /// The kind of `host`.
    pub fn kind_of(&self, host: u32) -> HostKind {
        if host < self.surrogates() { HostKind::Surrogate } else { HostKind::Direct }
    }

    /// True when there are no hosts.
    pub fn is_empty(&self) -> bool {
        self.node.is_empty()
    }

    /// Location of `host`.
    pub fn node_of(&self, host: u32) -> u32 {
        self.node[host as usize]
    }

    /// The block holding `host`.
    pub fn block_of(&self, host: u32) -> &Block {
        let i = self.blocks.partition_point(|b| b.first + b.count <= host);
        &self.blocks[i]
    }

    /// Host name: the group name, plus the index within the group when the group has several.
    pub fn name_of(&self, host: u32) -> String {
        let g = &self.groups[self.block_of(host).group as usize];
        if g.spec.count == 1 { g.spec.name.clone() } else { format!("{}{}", g.spec.name, host - g.first) }
    }

    /// IPv4 address of `host`: 10.a.b.c with c in 1..=254, in id order.
    pub fn ip_of(host: u32) -> Ipv4Addr {
        let (net, c) = (host / 254, host % 254 + 1);
        Ipv4Addr::new(10, (net >> 8) as u8, net as u8, c as u8)
    }

    /// The host with address `ip`, if it is in the plan.
    pub fn host_of_ip(&self, ip: Ipv4Addr) -> Option<u32> {
        let [a, b, c, d] = ip.octets();
        if a != 10 || d == 0 || d == 255 {
            return None;
        }
        let host = ((b as u32) << 8 | c as u32) * 254 + d as u32 - 1;
        (host < self.len()).then_some(host)
    }

    /// The locations in use, ascending.
    pub fn used_nodes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.blocks.iter().map(|b| b.node).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Bytes held per host and in total (for the memory benchmark).
    pub fn memory_bytes(&self) -> usize {
        self.node.capacity() * 4 + self.blocks.capacity() * std::mem::size_of::<Block>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, count: u32, locs: &[(&str, f64)]) -> HostGroupSpec {
        HostGroupSpec {
            name: name.into(),
            kind: HostKind::Surrogate,
            count,
            location: None,
            locations: Some(locs.iter().map(|(k, w)| (k.to_string(), *w)).collect()),
            bandwidth: None,
            profile: None,
            load: None,
        }
    }

    #[test]
    fn host_names_may_be_dotted_but_never_read_as_addresses() {
        for ok in ["tail", "lossless.tcpserver.echo", "a-b_c.d2", "x.y1", "a.42", "relay.2", "1a", "0xg.1"] {
            assert!(valid_host_name(ok), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "10.0.0.1", "10.1", "42", "0x7f.1", "0X1", "a b", "a/b"] {
            assert!(!valid_host_name(bad), "{bad:?}");
        }
        let t = Topology::single_switch(10, 0.0);
        let dotted = HostGroupSpec { location: None, locations: None, ..group("lossless.tcpserver.echo", 1, &[]) };
        let d = HostDirectory::build(&[dotted], &t).unwrap();
        assert_eq!(d.name_of(0), "lossless.tcpserver.echo");
    }

    #[test]
    fn quotas_are_exact_and_deterministic() {
        assert_eq!(quotas(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(quotas(1_000_000, &[0.22, 0.20, 0.06, 0.05, 0.47]).iter().sum::<u32>(), 1_000_000);
        assert_eq!(quotas(7, &[0.0, 1.0]), vec![0, 7]);
    }

    #[test]
    fn ids_follow_sorted_group_names_and_locations() {
        let t = Topology::ripe_countries(true);
        let groups = vec![group("tail", 100, &[("US", 0.5), ("DE", 0.5)]), group("beacon", 3, &[("FR", 1.0)])];
        let d = HostDirectory::build(&groups, &t).unwrap();
        assert_eq!(d.len(), 103);
        // "beacon" sorts first: ids 0..3 in FR, then "tail": DE before US (node order).
        assert_eq!(d.name_of(0), "beacon0");
        assert_eq!(t.nodes[d.node_of(2) as usize].name, "FR");
        assert_eq!(t.nodes[d.node_of(3) as usize].name, "DE");
        assert_eq!(t.nodes[d.node_of(102) as usize].name, "US");
        assert_eq!(d.name_of(102), "tail99");
        let again = HostDirectory::build(&[groups[1].clone(), groups[0].clone()], &t).unwrap();
        assert_eq!(again.blocks, d.blocks);
    }

    #[test]
    fn surrogates_come_first_whatever_the_names_and_names_stay_unique() {
        let t = Topology::ripe_countries(true);
        let direct = |name: &str, n| HostGroupSpec { kind: HostKind::Direct, ..group(name, n, &[("DE", 1.0)]) };
        let groups = vec![direct("alpha", 2), group("zulu", 5, &[("US", 1.0)]), direct("beta", 1)];
        let d = HostDirectory::build(&groups, &t).unwrap();
        let names: Vec<&str> = d.groups.iter().map(|g| g.spec.name.as_str()).collect();
        assert_eq!(names, ["zulu", "alpha", "beta"]);
        assert_eq!(d.surrogates(), 5);
        assert_eq!(
            (d.kind_of(4), d.kind_of(5), d.kind_of(7)),
            (HostKind::Surrogate, HostKind::Direct, HostKind::Direct)
        );
        let twice = vec![direct("same", 1), group("same", 1, &[("US", 1.0)])];
        let err = HostDirectory::build(&twice, &t).unwrap_err().to_string();
        assert!(err.contains("two groups have this name"), "{err}");
    }

    #[test]
    fn other_spreads_over_unnamed_locations() {
        let t = Topology::ripe_countries(true);
        let d = HostDirectory::build(&[group("g", 10_000, &[("DE", 0.5), ("other", 0.5)])], &t).unwrap();
        let de = t.node("DE").unwrap();
        let in_de = (0..d.len()).filter(|&h| d.node_of(h) == de).count();
        assert_eq!(in_de, 5_000);
        assert_eq!(d.used_nodes().len(), t.len());
    }

    #[test]
    fn addresses_are_unique_and_reversible() {
        let t = Topology::single_switch(1_000, 0.0);
        let d =
            HostDirectory::build(&[HostGroupSpec { location: None, locations: None, ..group("h", 70_000, &[]) }], &t)
                .unwrap();
        let mut seen = std::collections::HashSet::new();
        for h in (0..d.len()).step_by(7) {
            let ip = HostDirectory::ip_of(h);
            assert!(seen.insert(ip));
            assert_eq!(d.host_of_ip(ip), Some(h));
        }
        assert_eq!(HostDirectory::ip_of(0), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(HostDirectory::ip_of(254), Ipv4Addr::new(10, 0, 1, 1));
    }

    #[test]
    fn bad_groups_are_named() {
        let t = Topology::ripe_countries(true);
        let e = HostDirectory::build(&[group("g", 1, &[("XX", 1.0)])], &t).unwrap_err().to_string();
        assert!(e.contains("hosts group \"g\": unknown location \"XX\""), "{e}");
        let e = HostDirectory::build(&[group("g", 1, &[("DE", 1.0)]), group("g", 1, &[("DE", 1.0)])], &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("two groups"), "{e}");
    }
}
