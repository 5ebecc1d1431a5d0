//! Running an experiment: build each shard's engine from the spec, run the window protocol on the
//! chosen backend, and fold the shard reports into the run's results.

use crate::mpi_support::MpiSession;
use crate::net_plan::{NetPlan, hybrid_step, net_plan};
use crate::spec::{Backend, Spec, Workload};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thermocline_bus::process::{ShardStart, run_processes, serve_shard};
use thermocline_bus::threads::run_threads;
use thermocline_bus::{
    BusError, Composite, Digest, Engine, EngineError, HostId, Owner, ProgressSink, RunTotals, ShardId, ShardReport,
    SimDuration, SimTime, WindowConfig,
};
use thermocline_models::directory::HostKind;
use thermocline_models::idle::IdleEngine;
use thermocline_models::phold::{PholdEngine, PholdLayout};
use thermocline_surrogate::config::{GossipParams, GossipSpec, PeerDiscovery};
use thermocline_surrogate::discv5::boundary::{Eth2Records, keyed_node_ids};
use thermocline_surrogate::discv5::protocol::node_ids;
use thermocline_surrogate::discv5::table::NodeId;
use thermocline_surrogate::discv5::{DiscoveryEngine, DiscoverySetup, Discv5Spec};
use thermocline_surrogate::peers::PeerGraph;
use thermocline_surrogate::traffic::{Publication, Subscriptions, publications};
use thermocline_surrogate::{GossipEngine, GossipSetup};

/// How to run a spec: the parts that the command line may override.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The experiment.
    pub spec: Spec,
    /// Number of shards.
    pub shards: u32,
    /// Backend.
    pub backend: Backend,
    /// The `thermocline` executable that shard processes run (processes backend).
    pub exe: PathBuf,
}

/// What a finished run produced.
pub struct RunOutcome {
    /// Every shard's report, by shard.
    pub reports: Vec<ShardReport>,
    /// Totals over shards and windows.
    pub totals: RunTotals,
    /// The run digest: sum of every shard's engine digest.
    pub digest: Digest,
    /// Wall time of the run (launch to last report).
    pub wall: Duration,
    /// The window schedule used.
    pub window: WindowConfig,
    /// Where shards spilled the tables their engines handed out during the run (see
    /// [`crate::spill`]); read them with [`RunOutcome::tables`].
    pub spill: PathBuf,
}

impl RunOutcome {
    /// Every result table of the run, spilled or reported.
    pub fn tables(&self) -> crate::spill::Tables<'_> {
        crate::spill::Tables::new(&self.reports, Some(self.spill.clone()))
    }
}

/// The gossip workload's own checks: surrogates to run it, and traffic it can carry.
fn check_gossip(spec: &Spec) -> Result<(), String> {
    if !spec.hosts.iter().any(|g| g.kind == HostKind::Surrogate) {
        return Err("the gossip workload needs [[hosts]] groups of surrogates".into());
    }
    if let Some(e) = spec.gossip.as_ref().and_then(|g| g.eth2.as_ref()) {
        e.domain(spec.run.start_date.0)?;
    }
    let t = &spec.traffic;
    if t.slot == SimDuration::ZERO || t.beacon_block.proposer_delay >= t.slot {
        return Err(format!(
            "traffic: need a positive slot and a proposer delay shorter than it, got slot {} and delay {}",
            t.slot, t.beacon_block.proposer_delay
        ));
    }
    if t.beacon_block.size.bytes() >= u32::MAX as u64 {
        return Err(format!("traffic.beacon_block.size {} is too large", t.beacon_block.size));
    }
    t.validate()?;
    if let Some(g) = &spec.gossip
        && t.churn.is_some()
        && gossip_profiles(spec, g)?.iter().any(|(_, p)| p.slow_start && !p.slow_start_windows)
    {
        return Err("gossip.params.slow_start does not combine with traffic.churn yet, unless as \
                    slow_start_windows: a copy held by slow start's floor would outlive its identity going offline"
            .into());
    }
    if spec.run.duration > SimDuration::from_secs(40 * 24 * 3600) {
        return Err("the gossip workload keeps millisecond clocks in 32 bits: runs up to 40 days".into());
    }
    let identities = spec.hosts.iter().filter(|h| h.kind == HostKind::Surrogate).map(|h| h.count).sum();
    t.beacon_block.check_proposers(identities)?;
    if let Some(g) = &spec.gossip {
        g.check_dials(identities)?;
        if g.discovery == PeerDiscovery::Discv5 {
            spec.discv5.clone().unwrap_or_default().check(identities)?;
        }
    }
    Ok(())
}

/// The gossip profiles of `spec`: `[gossip].profile` first (the default), then every other
/// profile a host group names, each with `[gossip.params]`'s overrides.
pub fn gossip_profiles(spec: &Spec, g: &GossipSpec) -> Result<Vec<(String, GossipParams)>, String> {
    let mut names = vec![g.profile.clone()];
    for group in &spec.hosts {
        if let Some(p) = &group.profile
            && !names.contains(p)
        {
            names.push(p.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let params = g.params_for(&name).map_err(|e| format!("profile {name:?}: {e}"))?;
            Ok((name, params))
        })
        .collect()
}

/// The window schedule of `spec` on `shards` shards, checked against the workload.
pub fn window_config(spec: &Spec, shards: u32) -> Result<WindowConfig, String> {
    let runahead = match spec.workload()? {
        Workload::Gossip(g) => {
            gossip_profiles(spec, g)?;
            g.message_id_fns()?;
            check_gossip(spec)?;
            if g.dial_clients.is_some() {
                return Err("gossip.dial_clients: the run has no direct hosts to dial".into());
            }
            let plan = net_plan(spec, shards)?;
            crate::attackers::resolve(g, &plan.net.directory, spec.traffic.beacon_block.size.bytes() as u32)?;
            plan.runahead
        }
        Workload::Discv5(d) => {
            let plan = net_plan(spec, shards)?;
            check_discv5(&plan, d)?;
            plan.runahead
        }
        Workload::Discv5Hybrid { discv5, .. } => {
            crate::direct_cmd::check_processes(spec)?;
            let plan = net_plan(spec, shards)?;
            discv5.check(plan.net.directory.surrogates())?;
            hybrid_step(&plan)?;
            plan.runahead
        }
        Workload::Phold(p) => {
            PholdLayout::new(p, shards).map_err(|e| e.to_string())?;
            PholdEngine::runahead(p)
        }
        Workload::Idle(i) if i.period == SimDuration::ZERO => return Err("idle.period must be positive".into()),
        Workload::Idle(i) => i.period,
        Workload::Direct(_) => {
            crate::direct_cmd::check_processes(spec)?;
            net_plan(spec, shards)?.runahead
        }
        Workload::Hybrid { gossip, .. } => {
            gossip_profiles(spec, gossip)?;
            gossip.message_id_fns()?;
            check_gossip(spec)?;
            crate::direct_cmd::check_processes(spec)?;
            let plan = net_plan(spec, shards)?;
            hybrid_step(&plan)?;
            crate::peer_book::client_dials(gossip, &plan.net.directory, spec.run.seed)?;
            crate::attackers::resolve(gossip, &plan.net.directory, spec.traffic.beacon_block.size.bytes() as u32)?;
            plan.runahead
        }
    };
    Ok(WindowConfig { end: SimTime::ZERO.saturating_add(spec.run.duration), runahead })
}

/// What the shards of one process build from the spec only once and share: the gossip plan and
/// connection graph are the same for every shard (each keeps its own identities), so shard
/// threads take them from here instead of each building a copy. The last shard to take them
/// releases them, so they do not outlive engine construction.
pub struct SharedBuild {
    /// The build (once made) and how many shards have yet to take it.
    gossip: Mutex<(Option<GossipBuild>, u32)>,
    /// The discv5 identities' node ids, and how many shards have yet to take them.
    discv5_ids: Mutex<(Option<Arc<[NodeId]>>, u32)>,
}

/// The shared gossip build, or why it failed.
type GossipBuild = Result<Arc<(NetPlan, PeerGraph, Subscriptions)>, String>;

impl SharedBuild {
    /// For a process that runs `shards` shards.
    pub fn new(shards: u32) -> Self {
        SharedBuild { gossip: Mutex::new((None, shards)), discv5_ids: Mutex::new((None, shards)) }
    }

    /// Every discv5 identity's node id: from its key when real clients check them (`keyed`),
    /// hashed otherwise; made once per process.
    fn discv5_ids(&self, seed: u64, identities: u32, keyed: bool) -> Arc<[NodeId]> {
        let mut slot = self.discv5_ids.lock().unwrap_or_else(|e| e.into_inner());
        let ids = slot
            .0
            .get_or_insert_with(|| {
                if keyed { keyed_node_ids(seed, identities) } else { node_ids(seed, identities) }.into()
            })
            .clone();
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            slot.0 = None;
        }
        ids
    }

    fn gossip(&self, spec: &Spec, g: &GossipSpec, shards: u32) -> GossipBuild {
        let mut slot = self.gossip.lock().unwrap_or_else(|e| e.into_inner());
        let built = slot
            .0
            .get_or_insert_with(|| {
                let plan = net_plan(spec, shards)?;
                let (graph, subscriptions, _) = gossip_graph(spec, g, &plan)?;
                Ok(Arc::new((plan, graph, subscriptions)))
            })
            .clone();
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            slot.0 = None;
        }
        built
    }
}

/// The surrogates' initial connections, subscriptions and publications in a run of `spec` on
/// the network `plan`: what every shard computes alike, and what calibration gives real clients
/// so that they meet the same peers and proposers.
pub fn gossip_graph(
    spec: &Spec,
    g: &GossipSpec,
    plan: &NetPlan,
) -> Result<(PeerGraph, Subscriptions, Vec<Publication>), String> {
    let n = plan.net.directory.surrogates();
    let locations: Vec<u32> = (0..n).map(|h| plan.net.directory.node_of(h)).collect();
    let subscriptions = Subscriptions::compute(n, &spec.traffic, spec.run.seed, g.eth2.is_some());
    let end = SimTime::ZERO.saturating_add(spec.run.duration).as_nanos();
    let duties = publications(n, &spec.traffic, spec.run.seed, end);
    let peer_exchange = gossip_profiles(spec, g)?.iter().any(|(_, p)| p.peer_exchange);
    let clients = client_slots(plan, g);
    let graph = PeerGraph::for_run(g, peer_exchange, clients, &locations, &subscriptions, &duties, spec.run.seed);
    Ok((graph, subscriptions, duties))
}

/// Build the engine of `shard`, taking what every shard shares from `shared`. Gossip engines
/// hand out the rows of retired messages during the run; they go to the spill folder of the
/// spec's output folder (see [`crate::spill`]).
pub fn build_engine(
    spec: &Spec,
    shard: ShardId,
    shards: u32,
    shared: &SharedBuild,
) -> Result<Box<dyn Engine>, EngineError> {
    let engine = build_inner_engine(spec, shard, shards, shared)?;
    Ok(match spec.workload()? {
        Workload::Gossip(_) | Workload::Hybrid { .. } | Workload::Discv5(_) | Workload::Discv5Hybrid { .. } => {
            Box::new(crate::spill::Spilling::new(engine, crate::spill::spill_dir(&spec.output.dir), shard))
        }
        _ => engine,
    })
}

fn build_inner_engine(
    spec: &Spec,
    shard: ShardId,
    shards: u32,
    shared: &SharedBuild,
) -> Result<Box<dyn Engine>, EngineError> {
    Ok(match spec.workload()? {
        Workload::Phold(p) => Box::new(PholdEngine::new(p, spec.run.seed, shard, shards)?),
        Workload::Idle(i) => Box::new(IdleEngine::new(i, shard, shards)),
        Workload::Direct(_) => crate::direct_cmd::build_direct_engine(spec, &net_plan(spec, shards)?, shard, None)?,
        Workload::Gossip(g) => {
            let built = shared.gossip(spec, g, shards)?;
            Box::new(build_gossip_engine(spec, g, &built, shard, shared)?)
        }
        Workload::Discv5(d) => {
            let plan = net_plan(spec, shards)?;
            let ids = shared.discv5_ids(spec.run.seed, plan.net.directory.surrogates(), false);
            Box::new(build_discovery_engine(spec, d, &plan, ids, shard, None)?)
        }
        Workload::Discv5Hybrid { discv5, .. } => {
            let plan = net_plan(spec, shards)?;
            let surrogates = plan.net.directory.surrogates();
            // Real clients check that a record's node id is its key's: the tail uses those ids.
            let ids = shared.discv5_ids(spec.run.seed, surrogates, true);
            let cold = build_discovery_engine(spec, discv5, &plan, ids, shard, None)?;
            let hot = crate::direct_cmd::build_direct_engine(spec, &plan, shard, None)?;
            let owner: Owner = Box::new(move |h: HostId| usize::from(h.0 >= surrogates));
            let step = hybrid_step(&plan)?;
            Box::new(Composite::new(vec![Box::new(cold), hot], owner, step, shard, shards))
        }
        Workload::Hybrid { gossip, .. } => {
            let built = shared.gossip(spec, gossip, shards)?;
            let plan = &built.0;
            let cold = build_gossip_engine(spec, gossip, &built, shard, shared)?;
            let hot = crate::direct_cmd::build_direct_engine(spec, plan, shard, Some(&built.2))?;
            let surrogates = plan.net.directory.surrogates();
            let owner: Owner = Box::new(move |h: HostId| usize::from(h.0 >= surrogates));
            let step = hybrid_step(plan)?;
            Box::new(Composite::new(vec![Box::new(cold), hot], owner, step, shard, shards))
        }
    })
}

/// What a discovery engine takes from the gossip engine beside it (`discovery = "discv5"`):
/// every identity's topics and the peers wanted per subnet, and, in an Ethereum network, what
/// the records handed to real clients carry.
struct ForGossip {
    subnets: (Arc<Subscriptions>, u32),
    eth2_records: Option<Eth2Records>,
}

/// The discv5 engine of `shard`, its identities' node ids `ids`; with `gossip`, it reports
/// what queries for peers found.
fn build_discovery_engine(
    spec: &Spec,
    d: &Discv5Spec,
    plan: &NetPlan,
    ids: Arc<[NodeId]>,
    shard: ShardId,
    gossip: Option<ForGossip>,
) -> Result<DiscoveryEngine, EngineError> {
    let report_found = gossip.is_some();
    let (subnets, eth2_records) = gossip.map_or((None, None), |g| (Some(g.subnets), g.eth2_records));
    let setup = DiscoverySetup {
        spec: d,
        net: &plan.net,
        partition: &plan.partition,
        rules: plan.rules.clone(),
        ids,
        seed: spec.run.seed,
        end: SimTime::ZERO.saturating_add(spec.run.duration),
        report_found,
        subnets,
        eth2_records,
    };
    Ok(DiscoveryEngine::new(setup, shard)?)
}

/// A discv5 run's hosts must all be surrogate identities, and its section must hold.
fn check_discv5(plan: &NetPlan, d: &Discv5Spec) -> Result<(), String> {
    let dir = &plan.net.directory;
    if dir.surrogates() < dir.len() {
        return Err("discv5: a discv5 run without [[processes]] has no use for `kind = \"direct\"` host groups".into());
    }
    d.check(dir.surrogates())
}

/// Free connection slots each surrogate keeps for real clients: some in a run with direct hosts,
/// none otherwise.
fn client_slots(plan: &NetPlan, g: &GossipSpec) -> u32 {
    let d = &plan.net.directory;
    if d.surrogates() < d.len() { g.client_slots.unwrap_or(thermocline_surrogate::boundary::CLIENT_SLOTS) } else { 0 }
}

/// The gossip engine of `shard` from the shared build; with `discovery = "discv5"`, with its
/// discv5 engine on the same identities (node ids from keys when real clients are in the run).
fn build_gossip_engine(
    spec: &Spec,
    g: &GossipSpec,
    built: &(NetPlan, PeerGraph, Subscriptions),
    shard: ShardId,
    shared: &SharedBuild,
) -> Result<GossipEngine, EngineError> {
    let (plan, graph, subscriptions) = built;
    let discovery = match g.discovery {
        PeerDiscovery::Assigned => None,
        PeerDiscovery::Discv5 => {
            let d = spec.discv5.clone().unwrap_or_default();
            let dir = &plan.net.directory;
            let ids = shared.discv5_ids(spec.run.seed, dir.surrogates(), dir.surrogates() < dir.len());
            let subscriptions = Arc::new(subscriptions.clone());
            let eth2_records = crate::peer_book::enr_fork_id(spec)?
                .map(|fork_id| Eth2Records { fork_id, subscriptions: Arc::clone(&subscriptions) });
            let gossip = ForGossip { subnets: (subscriptions, g.subnet_peers), eth2_records };
            Some(Box::new(build_discovery_engine(spec, &d, plan, ids, shard, Some(gossip))?))
        }
    };
    let dials = crate::peer_book::client_dials(g, &plan.net.directory, spec.run.seed)?;
    let setup = GossipSetup {
        profiles: gossip_profiles(spec, g)?,
        traffic: spec.traffic.clone(),
        net: plan.net.clone(),
        partition: plan.partition.clone(),
        graph,
        subscriptions,
        seed: spec.run.seed,
        end: SimTime::ZERO.saturating_add(spec.run.duration),
        max_peers: g.max_peers,
        px_slots: g.px_slots,
        client_slots: client_slots(plan, g),
        start_unix_ns: spec.run.start_date.0,
        runahead_ns: plan.runahead.as_nanos(),
        message_ids: g.message_id_fns()?,
        client_dials: &dials,
        lifetime: g.message_lifetime,
        keep_messages: g.keep_messages,
        eth2: g.eth2.as_ref().map(|e| e.domain(spec.run.start_date.0)).transpose()?,
        rules: plan.rules.clone(),
        discovery,
        outbound_peers: g.outbound_peers,
        subnet_peers: g.subnet_peers,
        attackers: crate::attackers::resolve(g, &plan.net.directory, spec.traffic.beacon_block.size.bytes() as u32)?,
    };
    Ok(GossipEngine::new(setup, shard)?)
}

/// Run a plan to the end on the schedule `window` (from [`window_config`], which the caller has
/// already computed to check the spec). Returns `None` on MPI ranks other than 0, which hand their
/// results to rank 0. The MPI backend needs the process's MPI session.
pub fn execute(
    plan: &RunPlan,
    window: WindowConfig,
    progress: &dyn ProgressSink,
    mpi: Option<&MpiSession>,
) -> Result<Option<RunOutcome>, BusError> {
    let started = Instant::now();
    if plan.backend != Backend::Mpi {
        // What an earlier run spilled here is not this run's (under MPI, rank 0 has emptied the
        // whole staging folder before any rank starts).
        let _ = std::fs::remove_dir_all(crate::spill::spill_dir(&plan.spec.output.dir));
    }
    let reports = match plan.backend {
        Backend::Threads => {
            let shared = SharedBuild::new(plan.shards);
            run_threads(plan.shards, &window, |shard| build_engine(&plan.spec, shard, plan.shards, &shared), progress)?
        }
        Backend::Processes => {
            let config = plan.spec.to_toml();
            run_processes(
                plan.shards,
                config.as_bytes(),
                |_| {
                    let mut c = Command::new(&plan.exe);
                    c.arg("shard");
                    c
                },
                Duration::from_nanos(plan.spec.run.stall_timeout.as_nanos()),
                progress,
            )?
        }
        Backend::Mpi => {
            let Some(session) = mpi else {
                return Err(BusError::ShardFailed {
                    shard: ShardId(0),
                    cause: "the MPI backend needs an MPI session: run under mpirun with --backend mpi".into(),
                });
            };
            match run_on_mpi(session, plan, &window, progress)? {
                Some(reports) => reports,
                None => return Ok(None),
            }
        }
    };
    let wall = started.elapsed();
    let mut digest = Digest::EMPTY;
    for r in &reports {
        digest.add(&r.output.digest);
    }
    let totals = RunTotals::from_shards(reports.iter().map(|r| (r.shard, r.windows.as_slice(), r.pairs.as_slice())));
    let spill = crate::spill::spill_dir(&plan.spec.output.dir);
    Ok(Some(RunOutcome { reports, totals, digest, wall, window, spill }))
}

#[cfg(feature = "mpi")]
fn run_on_mpi(
    session: &MpiSession,
    plan: &RunPlan,
    window: &WindowConfig,
    progress: &dyn ProgressSink,
) -> Result<Option<Vec<ShardReport>>, BusError> {
    thermocline_bus::mpi::run_mpi(
        session,
        window,
        |shard, shards| build_engine(&plan.spec, shard, shards, &SharedBuild::new(1)),
        progress,
    )
}

#[cfg(not(feature = "mpi"))]
fn run_on_mpi(
    session: &MpiSession,
    _: &RunPlan,
    _: &WindowConfig,
    _: &dyn ProgressSink,
) -> Result<Option<Vec<ShardReport>>, BusError> {
    match *session {}
}

/// The body of `thermocline shard`: one shard process of the processes backend.
pub fn shard_process_main() -> Result<(), BusError> {
    serve_shard(|start: &ShardStart| {
        let text = std::str::from_utf8(start.config)?;
        let spec = Spec::parse(text, "<spec from the hub>")?;
        let window = window_config(&spec, start.shards)?;
        Ok((build_engine(&spec, start.shard, start.shards, &SharedBuild::new(1))?, window))
    })
}
