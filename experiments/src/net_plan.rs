//! The network plan every shard computes identically from the spec, whatever its engines: the
//! network model, the partition, the window length, the scenario's rules, and the inner window
//! of a shard that holds both direct hosts and surrogates. The first step of every run; the engines are built from it.

use crate::spec::Spec;
use thermocline_bus::SimDuration;
use thermocline_models::network::NetworkModel;
use thermocline_models::partition::Partition;
use thermocline_net::Rules;

/// Everything a shard needs that every shard computes identically, whatever its engines: the
/// network model, the partition and the window length it allows.
pub struct NetPlan {
    /// The network model.
    pub net: NetworkModel,
    /// Who owns which host.
    pub partition: Partition,
    /// The window length: the smallest latency between hosts on different shards.
    pub runahead: SimDuration,
    /// The spec's `[[scenario]]` timeline as rules every engine applies at the sender.
    pub rules: Rules,
    /// The timeline's steps on direct hosts, which their engines carry out.
    pub ops: Vec<thermocline_direct::ops::HostOp>,
    /// The traffic sources, which the direct engines of their hosts run.
    pub sources: Vec<thermocline_direct::sources::SourcePlan>,
    /// The port mirrors of direct hosts.
    pub mirrors: Vec<thermocline_direct::packet::MirrorPlan>,
}

/// Build the network plan of `spec` for `shards` shards: one for every workload with hosts.
pub fn net_plan(spec: &Spec, shards: u32) -> Result<NetPlan, String> {
    if spec.hosts.is_empty() {
        return Err("the workload needs [[hosts]] groups".into());
    }
    let net = spec.network_model().map_err(|e| e.to_string())?;
    let partition = Partition::compute(&net.directory, &net.routes, shards).map_err(|e| e.to_string())?;
    let report = partition.report(&net.directory, &net.routes);
    // One shard has no boundary: any window works; 10 ms keeps progress reports frequent.
    let runahead = SimDuration::from_nanos(report.runahead_ns.unwrap_or(10_000_000));
    if runahead == SimDuration::ZERO {
        return Err("two hosts on different shards are 0 ns apart: the runahead would be zero".into());
    }
    let timeline = crate::scenario::compile(&spec.scenario, &net, &spec.processes)?;
    let programs: Vec<&str> = spec.processes.iter().map(|p| p.host.as_str()).collect();
    let sources = crate::traffic_sources::compile(&spec.traffic_sources, &net.directory, &programs)?;
    let mirrors = crate::mirrors::compile(&spec.mirrors, &net.directory)?;
    Ok(NetPlan { net, partition, runahead, rules: timeline.rules, ops: timeline.ops, sources, mirrors })
}

/// The inner window of a shard that holds direct hosts and surrogate identities: the smallest
/// delay of a packet between a direct host and a surrogate (in either direction).
pub fn hybrid_step(plan: &NetPlan) -> Result<SimDuration, String> {
    let dir = &plan.net.directory;
    let surrogates = dir.surrogates();
    let nodes =
        |hosts: std::ops::Range<u32>| -> std::collections::BTreeSet<u32> { hosts.map(|h| dir.node_of(h)).collect() };
    let (cold, hot) = (nodes(0..surrogates), nodes(surrogates..dir.len()));
    let step = hot
        .iter()
        .flat_map(|&a| cold.iter().flat_map(move |&b| [(a, b), (b, a)]))
        .map(|(a, b)| plan.net.routes.path(a, b).min_latency_ns())
        .min()
        .unwrap_or(u64::MAX);
    if step == 0 {
        return Err("a direct host and a surrogate are 0 ns apart: give their locations a latency".into());
    }
    Ok(SimDuration::from_nanos(step))
}
