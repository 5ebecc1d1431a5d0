//! Direct hosts in the CLI: building a shard's direct engine from a spec.

use crate::spec::Spec;
use thermocline_bus::{EngineError, ShardId, SimDuration, SimTime};
use thermocline_direct::{DirectEngine, DirectOptions, DirectSetup, locate_shim};
use thermocline_models::directory::HostKind;
use thermocline_models::network::NetworkModel;
use thermocline_models::partition::Partition;

/// The network model, partition and window length of a direct run.
pub struct DirectPlan {
    /// The network model.
    pub net: NetworkModel,
    /// Who owns which host.
    pub partition: Partition,
    /// The window length: the smallest latency between hosts on different shards.
    pub runahead: SimDuration,
}

/// Build the plan of a spec whose workload is direct processes, for `shards` shards.
pub fn direct_plan(spec: &Spec, shards: u32) -> Result<DirectPlan, String> {
    if spec.hosts.is_empty() {
        return Err("[[processes]] need [[hosts]] groups of kind = \"direct\"".into());
    }
    if let Some(g) = spec.hosts.iter().find(|g| g.kind != HostKind::Direct) {
        return Err(format!(
            "hosts group {:?} is a surrogate group; mixing direct and surrogate hosts in one run is not supported yet",
            g.name
        ));
    }
    for (i, p) in spec.processes.iter().enumerate() {
        if !spec.hosts.iter().any(|g| g.name == p.host) {
            return Err(format!("processes[{i}].host names host group {:?}, which does not exist", p.host));
        }
        if thermocline_direct::engine::resolve_exe(&p.path).is_none() {
            let path = p.path.display();
            return Err(format!("processes[{i}].path \"{path}\": no such executable (a path, or a name on PATH)"));
        }
    }
    let net = spec.network_model().map_err(|e| e.to_string())?;
    let partition = Partition::compute(&net.directory, &net.routes, shards).map_err(|e| e.to_string())?;
    let report = partition.report(&net.directory, &net.routes);
    let runahead = SimDuration::from_nanos(report.runahead_ns.unwrap_or(10_000_000));
    if runahead == SimDuration::ZERO {
        return Err("two direct hosts on different shards are 0 ns apart: the runahead would be zero".into());
    }
    Ok(DirectPlan { net, partition, runahead })
}

/// The direct engine of `shard`.
pub fn build_direct_engine(spec: &Spec, shard: ShardId, shards: u32) -> Result<Box<DirectEngine>, EngineError> {
    let plan = direct_plan(spec, shards)?;
    let exe = std::env::current_exe().map_err(|e| format!("locating the thermocline executable: {e}"))?;
    let out_dir = std::path::absolute(&spec.output.dir).unwrap_or_else(|_| spec.output.dir.clone());
    let setup = DirectSetup {
        net: plan.net,
        partition: plan.partition,
        processes: &spec.processes,
        options: DirectOptions {
            out_dir,
            start_date: spec.run.start_date,
            syscall_stats: spec.output.syscall_stats,
            pcap: spec.output.pcap,
            shim: locate_shim(&exe),
        },
        seed: spec.run.seed,
        end: SimTime::ZERO.saturating_add(spec.run.duration),
    };
    Ok(Box::new(DirectEngine::new(setup, shard)?))
}
