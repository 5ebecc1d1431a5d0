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
    /// Route GML graphs by shortest path (as Shadow's `use_shortest_path`), else direct edges only.
    pub use_shortest_path: bool,
    /// Regions, for `topology = "regions"`.
    pub regions: Option<RegionsSpec>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            topology: TopologyKind::RipeCountry,
            jitter: true,
            latency: SimDuration::from_millis(10),
            loss: 0.0,
            gml: None,
            use_shortest_path: true,
            regions: None,
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
}
