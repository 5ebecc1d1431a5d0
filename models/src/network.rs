//! The network model every shard replicates: topology, paths between used locations, and the host
//! directory. Engines ask it what happens to a message between two hosts; the decision is taken at
//! the source with the source host's random stream (invariant 5).

use crate::directory::{DirectoryError, HostDirectory, HostGroupSpec};
use crate::routing::{PathProps, Routes, RoutingError};
use crate::topology::{Topology, TopologyError};
use thermocline_bus::SimDuration;

/// Which topology to use (the `[network]` section of a spec).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyKind {
    /// The measured RIPE Atlas country table (embedded).
    #[default]
    RipeCountry,
    /// One switch: every pair of hosts `latency` apart.
    SingleSwitch,
    /// Named regions with a latency matrix (`[network.regions]`).
    Regions,
    /// A Shadow-compatible GML file (`gml = "path"`).
    Gml,
}

/// `[network.regions]`: region names and the one-way latency matrix.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionsSpec {
    /// Region names.
    pub names: Vec<String>,
    /// `latency[i][j]`: one-way latency from region i to region j (diagonal: within a region).
    pub latency: Vec<Vec<SimDuration>>,
}

/// The `[network]` section of a spec.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// Topology source.
    pub topology: TopologyKind,
    /// Measured jitter on the country table (`true`), or none.
    pub jitter: bool,
    /// One-way latency of the single switch.
    pub latency: SimDuration,
    /// Loss probability of the single switch.
    pub loss: f64,
    /// GML file (relative to the spec's folder), for `topology = "gml"`.
    pub gml: Option<std::path::PathBuf>,
    /// The GML graph written in the spec itself (as Shadow's `graph.inline`), for
    /// `topology = "gml"`: instead of `gml`, so that an imported Shadow configuration is one file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gml_inline: Option<String>,
    /// Route GML graphs by shortest path (as Shadow's `use_shortest_path`), else direct edges only.
    pub use_shortest_path: bool,
    /// Regions, for `topology = "regions"`.
    pub regions: Option<RegionsSpec>,
    /// Receive interrupt coalescing at direct hosts' network cards (`rx_coalesce = "50 us"`, off
    /// when zero, the default): a packet that reaches a host's card with no window open opens one,
    /// and everything that arrives until the window ends is handed to the host's stack together
    /// at its end, as a NIC's `rx-usecs` moderation does. Fewer, larger wake-ups of the host's
    /// programs, each packet later by up to the window.
    pub rx_coalesce: SimDuration,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            topology: TopologyKind::RipeCountry,
            jitter: true,
            latency: SimDuration::from_millis(10),
            loss: 0.0,
            gml: None,
            gml_inline: None,
            use_shortest_path: true,
            regions: None,
            rx_coalesce: SimDuration::ZERO,
        }
    }
}

/// Why the network model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetworkError {
    /// Topology.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Hosts.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Paths.
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// The spec is incomplete.
    #[error("network: {0}")]
    Spec(String),
}

/// The replicated network model.
#[derive(Clone, Debug)]
pub struct NetworkModel {
    /// Locations and links.
    pub topology: Topology,
    /// Every host.
    pub directory: HostDirectory,
    /// Paths between used locations.
    pub routes: Routes,
}

impl NetworkModel {
    /// Build the topology of `spec`; `gml` is the GML text and its name when the spec uses one.
    pub fn topology(spec: &NetworkSpec, gml: Option<(&str, &str)>) -> Result<Topology, NetworkError> {
        Ok(match spec.topology {
            TopologyKind::RipeCountry => Topology::ripe_countries(spec.jitter),
            TopologyKind::SingleSwitch => {
                if !(0.0..=1.0).contains(&spec.loss) {
                    return Err(NetworkError::Spec(format!("loss {} is outside [0, 1]", spec.loss)));
                }
                Topology::single_switch(spec.latency.as_nanos(), spec.loss)
            }
            TopologyKind::Regions => {
                let r = spec
                    .regions
                    .as_ref()
                    .ok_or_else(|| NetworkError::Spec("topology \"regions\" needs a [network.regions] table".into()))?;
                let ns: Vec<Vec<u64>> =
                    r.latency.iter().map(|row| row.iter().map(|d| d.as_nanos()).collect()).collect();
                Topology::regions(&r.names, &ns)?
            }
            TopologyKind::Gml => {
                let (text, origin) =
                    gml.ok_or_else(|| NetworkError::Spec("topology \"gml\" needs gml = \"file.gml\"".into()))?;
                Topology::from_gml(text, origin, spec.use_shortest_path)?
            }
        })
    }

    /// Build the whole model.
    pub fn build(
        spec: &NetworkSpec,
        gml: Option<(&str, &str)>,
        groups: &[HostGroupSpec],
    ) -> Result<Self, NetworkError> {
        let topology = Self::topology(spec, gml)?;
        let directory = HostDirectory::build(groups, &topology)?;
        let routes = Routes::compute(&topology, &directory.used_nodes())?;
        Ok(NetworkModel { topology, directory, routes })
    }

    /// The path from host `src` to host `dst`.
    pub fn path(&self, src: u32, dst: u32) -> &PathProps {
        self.routes.path(self.directory.node_of(src), self.directory.node_of(dst))
    }

    /// The path index of `src` → `dst`, for engines that cache it per connection.
    pub fn path_index(&self, src: u32, dst: u32) -> u32 {
        self.routes.index(self.directory.node_of(src), self.directory.node_of(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::HostKind;
    use crate::rng::StreamFamily;

    fn host(name: &str, country: &str) -> HostGroupSpec {
        HostGroupSpec {
            name: name.into(),
            kind: HostKind::Surrogate,
            count: 1,
            location: Some(country.into()),
            locations: None,
            bandwidth: None,
            profile: None,
            load: None,
        }
    }

    /// The measured row for a pair, from the embedded CSV: (rtt_avg, rtt_std) in ms.
    fn measured(a: &str, b: &str) -> (f64, f64) {
        let row = crate::topology::COUNTRY_RTT_CSV
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| (f[0] == a && f[1] == b) || (f[0] == b && f[1] == a))
            .expect("pair is measured");
        (row[3].parse().unwrap(), row[4].parse().unwrap_or(0.0))
    }

    #[test]
    fn latency_between_two_hosts_matches_the_table_within_jitter_bounds() {
        for (a, b) in [("DE", "US"), ("FR", "GB"), ("JP", "BR")] {
            let m = NetworkModel::build(&NetworkSpec::default(), None, &[host("a", a), host("b", b)]).unwrap();
            let (src, dst) = (0, 1);
            let (avg, std) = measured(a, b);
            let mean_ns = avg / 2.0 * 1e6;
            let half_ns = (std / 2.0 * 1e6).min(mean_ns / 2.0);
            let mut rng = StreamFamily::new(7, "latency").stream(src);
            let samples: Vec<f64> =
                (0..20_000).map(|_| m.path(src, dst).sample(&mut rng).expect("lossless") as f64).collect();
            for s in &samples {
                assert!(
                    *s >= mean_ns - half_ns - 1.0 && *s <= mean_ns + half_ns + 1.0,
                    "{a}-{b}: {s} outside {mean_ns} ± {half_ns}"
                );
            }
            let mean = samples.iter().sum::<f64>() / samples.len() as f64;
            assert!((mean - mean_ns).abs() < 0.01 * mean_ns, "{a}-{b}: sample mean {mean} vs measured {mean_ns}");
            // Symmetric, and the same draws for the same stream.
            assert_eq!(m.path(src, dst), m.path(dst, src));
            let mut again = StreamFamily::new(7, "latency").stream(src);
            assert_eq!(m.path(src, dst).sample(&mut again).unwrap() as f64, samples[0]);
        }
    }

    #[test]
    fn the_same_spec_builds_the_same_model() {
        let groups = [
            host("x", "DE"),
            host("y", "NZ"),
            HostGroupSpec {
                count: 1000,
                location: None,
                locations: Some([("other".to_string(), 1.0)].into()),
                ..host("z", "DE")
            },
        ];
        let a = NetworkModel::build(&NetworkSpec::default(), None, &groups).unwrap();
        let b = NetworkModel::build(&NetworkSpec::default(), None, &groups).unwrap();
        assert_eq!(a.directory.blocks, b.directory.blocks);
        for (s, d) in [(0, 1), (5, 900), (1001, 2)] {
            assert_eq!(a.path(s, d), b.path(s, d));
        }
    }
}
