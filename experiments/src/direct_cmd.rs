//! Direct hosts in the CLI: building a shard's direct engine from a spec.

use crate::net_plan::NetPlan;
use crate::spec::Spec;
use thermocline_bus::{EngineError, ShardId, SimTime};
use thermocline_direct::{DirectEngine, DirectOptions, DirectSetup, locate_shim};
use thermocline_models::directory::HostKind;
use thermocline_surrogate::traffic::Subscriptions;

/// Check the spec's `[[processes]]`: each names a host group of kind `"direct"` and an
/// executable that exists.
pub fn check_processes(spec: &Spec) -> Result<(), String> {
    for (i, p) in spec.processes.iter().enumerate() {
        let Some(group) = spec.hosts.iter().find(|g| g.name == p.host) else {
            return Err(format!("processes[{i}].host names host group {:?}, which does not exist", p.host));
        };
        if group.kind != HostKind::Direct {
            return Err(format!("processes[{i}].host names hosts group {:?}, which is not kind = \"direct\"", p.host));
        }
        if let Some(n) = p.cpus
            && !(1..=thermocline_direct::config::MAX_CPUS).contains(&n)
        {
            let max = thermocline_direct::config::MAX_CPUS;
            return Err(format!("processes[{i}].cpus = {n}: a process is told of 1 to {max} CPUs"));
        }
        if thermocline_direct::engine::resolve_exe(&p.path).is_none() {
            let path = p.path.display();
            return Err(format!("processes[{i}].path \"{path}\": no such executable (a path, or a name on PATH)"));
        }
    }
    crate::peer_book::check_placeholders(spec)
}

/// The direct engine of `shard`; `subscriptions` are the surrogates' in a hybrid run (in an
/// Ethereum domain their records carry them).
pub fn build_direct_engine(
    spec: &Spec,
    plan: &NetPlan,
    shard: ShardId,
    subscriptions: Option<&Subscriptions>,
) -> Result<Box<DirectEngine>, EngineError> {
    let exe = std::env::current_exe().map_err(|e| format!("locating the thermocline executable: {e}"))?;
    let eth2 = match (crate::peer_book::enr_fork_id(spec)?, subscriptions) {
        (Some(fork_id), Some(subscriptions)) => Some(crate::peer_book::Eth2Book { fork_id, subscriptions }),
        _ => None,
    };
    let book = crate::peer_book::SurrogateBook { dir: &plan.net.directory, seed: spec.run.seed, eth2 };
    let out_dir = std::path::absolute(&spec.output.dir).unwrap_or_else(|_| spec.output.dir.clone());
    let setup = DirectSetup {
        net: plan.net.clone(),
        partition: plan.partition.clone(),
        processes: &spec.processes,
        options: DirectOptions {
            out_dir,
            start_date: spec.run.start_date,
            syscall_stats: spec.output.syscall_stats,
            pcap: spec.output.pcap,
            verbose: spec.output.verbose,
            rx_coalesce_ns: spec.network.rx_coalesce.as_nanos(),
            shim: locate_shim(&exe),
            cpu: match spec.run.pin_cpus {
                true => {
                    Some(thermocline_direct::pin::cpu_for_shard(shard.0).map_err(|e| format!("choosing a CPU: {e}"))?)
                }
                false => None,
            },
        },
        seed: spec.run.seed,
        end: SimTime::ZERO.saturating_add(spec.run.duration),
        peer_book: Some(&book),
        rules: plan.rules.clone(),
        ops: &plan.ops,
        sources: &plan.sources,
        mirrors: &plan.mirrors,
    };
    Ok(Box::new(DirectEngine::new(setup, shard)?))
}
