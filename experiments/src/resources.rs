//! What a run will need of the machine, estimated from the spec before anything is allocated, so
//! that a run too large for the machine is refused in a second instead of dying of memory
//! exhaustion minutes later.

use crate::spec::{Spec, Workload};
use thermocline_bus::WINDOW_LOG_ROWS;

/// The most shards a run may have: far above what one machine or a cluster job uses, and low
/// enough that per-shard tables (the shard-pair matrices) stay small.
pub const MAX_SHARDS: u32 = 4096;

/// Bytes per PHOLD logical process besides its events (group, random stream, counters).
const PHOLD_LP_BYTES: u64 = 64;
/// Bytes per pending PHOLD event (queue entry and key).
const PHOLD_EVENT_BYTES: u64 = 64;
/// Bytes per surrogate gossip identity at its peak (docs/benchmarks.md measures 2.6–4.1 KB).
const GOSSIP_IDENTITY_BYTES: u64 = 6 * 1024;
/// Bytes per host in the network model (directory, routes).
const HOST_BYTES: u64 = 64;
/// Resident bytes of one real program on a direct host (gossip-node measured 11–16 MB).
const DIRECT_PROCESS_BYTES: u64 = 16 << 20;
/// Bytes of one discv5 identity: its node id on every shard, a table of a few hundred entries,
/// sessions and counters.
const DISCV5_IDENTITY_BYTES: u64 = 4 << 10;
/// Fixed bytes per shard: its thread or process, queues and buffers.
const SHARD_BYTES: u64 = 8 << 20;
/// Bytes of one row of per-window statistics (`WindowStats`) and of one shard-pair row.
const WINDOW_ROW_BYTES: u64 = 96 + 48;

/// An estimate of the peak memory of a run of `spec` on `shards` shards, in bytes (over all
/// shards), from the spec alone: it is made before the network model or anything else is built.
/// Deliberately rough (window statistics are counted at their bound): it exists to refuse runs
/// that are off by orders of magnitude, not to predict RSS.
pub fn estimate_memory(spec: &Spec, shards: u32) -> u64 {
    let shards = shards as u64;
    let hosts: u64 = spec.hosts.iter().map(|g| g.count as u64).sum();
    let workload = match spec.workload() {
        Ok(Workload::Phold(p)) => {
            (p.lps as u64).saturating_mul(PHOLD_LP_BYTES + PHOLD_EVENT_BYTES.saturating_mul(p.population as u64))
        }
        Ok(Workload::Gossip(g)) => hosts.saturating_mul(GOSSIP_IDENTITY_BYTES + discovery_bytes(g)),
        Ok(Workload::Discv5(_)) => hosts.saturating_mul(DISCV5_IDENTITY_BYTES),
        Ok(Workload::Discv5Hybrid { .. }) => hosts
            .saturating_mul(DISCV5_IDENTITY_BYTES)
            .saturating_add(programs(spec).saturating_mul(DIRECT_PROCESS_BYTES)),
        Ok(Workload::Direct(_)) => programs(spec).saturating_mul(DIRECT_PROCESS_BYTES),
        Ok(Workload::Hybrid { gossip, .. }) => hosts
            .saturating_mul(GOSSIP_IDENTITY_BYTES + discovery_bytes(gossip))
            .saturating_add(programs(spec).saturating_mul(DIRECT_PROCESS_BYTES)),
        Ok(Workload::Idle(_)) | Err(_) => 0,
    };
    let window_rows = (WINDOW_LOG_ROWS as u64).saturating_mul(WINDOW_ROW_BYTES);
    let per_shard = SHARD_BYTES.saturating_add(window_rows).saturating_add(shards.saturating_mul(64));
    workload.saturating_add(hosts.saturating_mul(HOST_BYTES)).saturating_add(per_shard.saturating_mul(shards))
}

/// Bytes per gossip identity for its discv5 state, when it finds its peers by discv5.
fn discovery_bytes(g: &thermocline_surrogate::config::GossipSpec) -> u64 {
    match g.discovery {
        thermocline_surrogate::config::PeerDiscovery::Discv5 => DISCV5_IDENTITY_BYTES,
        thermocline_surrogate::config::PeerDiscovery::Assigned => 0,
    }
}

/// Programs a spec starts: each `[[processes]]` entry runs on every host of its group.
fn programs(spec: &Spec) -> u64 {
    let group_size = |name: &str| spec.hosts.iter().find(|g| g.name == name).map_or(0, |g| g.count as u64);
    spec.processes.iter().map(|p| group_size(&p.host)).fold(0, u64::saturating_add)
}

/// The machine's physical memory in bytes (`MemTotal`), where `/proc/meminfo` tells.
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes in binary units with one decimal, for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_workloads_estimate_beyond_any_machine() {
        let mut spec = Spec::parse("[phold]\nlps = 4000000000\n", "t").unwrap();
        assert!(estimate_memory(&spec, 1) > 200 << 30);
        spec.phold.as_mut().unwrap().lps = 10_000;
        assert!(estimate_memory(&spec, 1) < 64 << 20);
        let gossip = Spec::default_experiment();
        let small = estimate_memory(&gossip, 2);
        assert!(small > 20_000 * 2048 && small < 1 << 30, "{small}");
        let mut huge = gossip.clone();
        huge.hosts[0].count = u32::MAX;
        assert!(estimate_memory(&huge, 2) > 1 << 40);
    }

    #[test]
    fn shards_cost_memory_of_their_own() {
        let spec = Spec::parse("[idle]\n", "t").unwrap();
        let one = estimate_memory(&spec, 1);
        assert!(one < 64 << 20, "{one}");
        assert!(estimate_memory(&spec, MAX_SHARDS) > 64 * one);
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
