//! Everything about a run that can be checked before anything is built or simulated: the shard
//! count, the memory the spec would need on this machine, the workload's values and the network.
//! The CLI places these messages at the spec key they name; the spec fuzz target drives the same
//! checks with arbitrary text.

use crate::resources::{MAX_SHARDS, estimate_memory, human_bytes, machine_memory};
use crate::run::window_config;
use crate::spec::{Spec, Workload};
use thermocline_bus::WindowConfig;

/// A shard count that the machine can hold: at least 1, at most [`MAX_SHARDS`]. `what` names
/// where the count came from (`--shards`, `run.shards`).
pub fn check_shards(n: u32, what: &str) -> Result<u32, String> {
    if n == 0 {
        return Err(format!("{what} = 0: need at least 1 shard"));
    }
    if n > MAX_SHARDS {
        return Err(format!("{what} = {n}: at most {MAX_SHARDS} shards are supported"));
    }
    Ok(n)
}

/// Check `spec` for a run on `shards` shards and return its window schedule. Memory comes first,
/// from the spec alone, so a spec of a billion hosts is refused before its directory is built;
/// `ignore_memory` lets a user try anyway.
pub fn check_run(spec: &Spec, shards: u32, ignore_memory: bool) -> Result<WindowConfig, String> {
    let need = estimate_memory(spec, shards);
    if let Some(have) = machine_memory()
        && need > have
        && !ignore_memory
    {
        return Err(format!(
            "this run needs about {} of memory and the machine has {}; make it smaller, or pass \
             --ignore-memory-check to try anyway",
            human_bytes(need),
            human_bytes(have)
        ));
    }
    if !spec.traffic_sources.is_empty() && spec.processes.is_empty() {
        return Err("traffic_sources[0].host: traffic sources are direct hosts, which run beside [[processes]]; \
                    give the programs they send to"
            .into());
    }
    if !spec.mirrors.is_empty() && spec.processes.is_empty() {
        return Err("mirrors[0].hosts: mirrors are read by programs on direct hosts; give the [[processes]]".into());
    }
    let window = window_config(spec, shards)?;
    // Workloads with hosts built their network in `window_config`; PHOLD and idle runs ignore
    // `[[hosts]]`, but a bad one is still refused rather than silently ignored.
    if matches!(spec.workload()?, Workload::Phold(_) | Workload::Idle(_)) {
        if !spec.scenario.is_empty() {
            return Err("scenario[0].action: [[scenario]] acts on the traffic between hosts, which a [phold] or \
                        [idle] run does not have"
                .into());
        }
        if !spec.hosts.is_empty() {
            spec.network_model().map_err(|e| e.to_string())?;
        }
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_out_of_range_are_refused() {
        assert_eq!(check_shards(4, "--shards"), Ok(4));
        assert!(check_shards(0, "run.shards").unwrap_err().starts_with("run.shards = 0"));
        assert!(check_shards(u32::MAX, "--shards").unwrap_err().contains("at most 4096"));
    }

    #[test]
    fn a_huge_gossip_network_is_refused_before_it_is_built() {
        let mut spec = Spec::default_experiment();
        spec.hosts[0].count = 2_000_000_000;
        let err = check_run(&spec, 2, false).unwrap_err();
        assert!(err.contains("needs about"), "{err}");
        assert!(check_run(&Spec::default_experiment(), 2, false).is_ok());
    }
}
