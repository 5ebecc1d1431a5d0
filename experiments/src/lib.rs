//! The `thermocline` command line as a library: experiment specs, running them on a backend,
//! benchmarks, progress display and output files. `main.rs` only parses arguments.

pub mod attackers;
pub mod bench;
pub mod bench_direct;
pub mod bench_discv5;
pub mod bench_hybrid;
pub mod bench_lodestar;
pub mod bench_shadow;
pub mod bench_syscall;
pub mod boundary_memory;
pub mod calibrate_cmd;
pub mod calibrate_fit;
pub mod check;
pub mod direct_cmd;
pub mod discv5_figures;
pub mod huge_pages;
pub mod mirrors;
pub mod model_cmd;
pub mod mpi_support;
pub mod net_plan;
pub mod outdir;
pub mod output;
pub mod peer_book;
pub mod progress;
pub mod quantiles;
pub mod report;
pub mod resources;
pub mod run;
pub mod scenario;
pub mod shadow;
pub mod signals;
pub mod spec;
pub mod spill;
pub mod traffic_sources;

/// What the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod test_support {
    use thermocline_models::network::{NetworkModel, NetworkSpec, TopologyKind};

    /// A single-switch network of the `[[hosts]]` groups written in `hosts_toml`.
    pub(crate) fn switch_network(hosts_toml: &str) -> NetworkModel {
        #[derive(serde::Deserialize)]
        struct Hosts {
            hosts: Vec<thermocline_models::directory::HostGroupSpec>,
        }
        let hosts: Hosts = toml::from_str(hosts_toml).unwrap();
        let spec = NetworkSpec { topology: TopologyKind::SingleSwitch, ..NetworkSpec::default() };
        NetworkModel::build(&spec, None, &hosts.hosts).unwrap()
    }
}
