//! `thermocline calibrate SPEC`: run a spec's gossip scenario at every resolution its
//! `[calibration]` names, over its seeds, with one matched peer graph and proposer sequence per
//! seed, and write how far each resolution's block arrivals are from the reference's.
//!
//! The output folder holds `calibration.md` (the runs and the error table), `calibration.json`
//! (the same as data), `calibration_arrivals.arrow` (every arrival of every run: resolution,
//! seed, slot, node, delay), `graphs/seed<N>.txt` (the dial lists clients were given) and each
//! run's own output folder under `runs/<resolution>-seed<N>/`.

use crate::calibrate_fit::{Tried, candidate_specs, profile_text, report_section};
use crate::check::check_run;
use crate::net_plan::{NetPlan, net_plan};
use crate::outdir::{OutputDir, write_synced};
use crate::output::write_outputs;
use crate::report::calibration::{Line, calibration_charts};
use crate::run::{RunOutcome, RunPlan, execute, gossip_graph};
use crate::spec::{Backend, Spec, locate_message};
use anyhow::{Context, Result, bail};
use arrow_array::{Array, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thermocline_bus::{NoProgress, SimDuration};
use thermocline_calibration::compare::{Arrival, ErrorRow, Nodes, RunArrivals, TableOptions, error_table, markdown};
use thermocline_calibration::config::{CalibrationSpec, Resolution};
use thermocline_calibration::fit::{best, describe, loss};
use thermocline_calibration::matched::MatchedScenario;
use thermocline_models::directory::{HostDirectory, HostGroupSpec, HostKind};
use thermocline_models::metrics::{TableFormat, read_table, str_col, u32_col, u64_col, write_table};
use thermocline_surrogate::boundary::{CLIENT_SLOTS, GOSSIP_PORT};
use thermocline_surrogate::config::PeerDiscovery;
use thermocline_surrogate::config::SlotProposer;

/// Options of `thermocline calibrate`.
#[derive(Clone, Debug, clap::Args)]
pub struct CalibrateArgs {
    /// A gossip spec with a `[calibration]` section.
    pub spec: PathBuf,
    /// Output folder (default: the spec's `output.dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Shards of every run (results are the same for any count).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Print the error table as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    /// Replace the output folder even if it holds files that are not Thermocline's.
    #[arg(long)]
    pub force: bool,
}

/// One finished run, as the report lists it.
#[derive(Clone, Debug, serde::Serialize)]
struct RunRecord {
    resolution: Resolution,
    seed: u64,
    digest: String,
    wall_s: f64,
    arrivals: usize,
    expected: u64,
    /// The nodes that were real clients (a hybrid run's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    real_clients: Vec<u32>,
    /// Each node's host id in the run, where it is not the node's number (a hybrid run's:
    /// surrogates first, then the real clients), to join the run's own tables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    host_ids: Vec<u32>,
}

/// Read `args.spec` and check that it is a scenario the calibration can run: the scenario (its
/// `[calibration]` taken out) and the calibration, or what is wrong, at its key.
pub fn load(args: &CalibrateArgs) -> Result<(Spec, CalibrationSpec)> {
    let origin = args.spec.display().to_string();
    let text = std::fs::read_to_string(&args.spec).with_context(|| format!("reading {origin}"))?;
    let mut spec = Spec::load(&args.spec)?;
    let cal = spec.calibration.take().with_context(|| format!("{origin} has no [calibration] section"))?;
    check_scenario(&spec, &cal).map_err(|m| locate_message(&text, &origin, &m))?;
    Ok((spec, cal))
}

/// Run the calibration of `spec` (as [`load`] returned it).
pub fn calibrate(args: &CalibrateArgs, exe: &Path, mut spec: Spec, cal: CalibrationSpec) -> Result<()> {
    let origin = args.spec.display().to_string();
    let traffic = &spec.traffic;
    spec.run.duration = SimDuration::from_nanos(
        traffic.start.as_nanos() + (cal.slots as u64 + 1) * traffic.slot.as_nanos() + 5_000_000_000,
    );
    let client = cal.client.clone().unwrap_or_else(|| exe.with_file_name("gossip-node"));
    // A bare name is looked up on PATH when the run starts, as a process's path is.
    let bare = client.components().count() == 1;
    let clients = cal.resolutions.iter().any(|r| !matches!(r, Resolution::AllSurrogate));
    if clients && !bare && !client.exists() {
        bail!(
            "the calibration client {} does not exist: build it with `cargo build --release -p gossip-node` or set calibration.client",
            client.display()
        );
    }
    let target = crate::outdir::resolve(args.out.as_ref().unwrap_or(&spec.output.dir))?;
    let outdir = OutputDir::prepare(&target, Some(&args.spec), args.force)?;
    let root = outdir.staging().to_path_buf();
    std::fs::create_dir_all(root.join("graphs"))?;
    let mut runs: Vec<(Resolution, RunArrivals)> = Vec::new();
    let mut records = Vec::new();
    let fitting = match &cal.fit {
        Some(fit) => candidate_specs(&spec, fit).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let mut fit_runs: Vec<Vec<RunArrivals>> = vec![Vec::new(); fitting.len()];
    let mut hot_sets: Vec<HotSet> = Vec::new();
    for seed in cal.seed_list(spec.run.seed) {
        let mut scenario = spec.clone();
        scenario.run.seed = seed;
        let plan = net_plan(&scenario, 1).map_err(anyhow::Error::msg)?;
        let g = scenario.gossip.as_ref().context("a gossip scenario")?;
        let (graph, _, publications) = gossip_graph(&scenario, g, &plan).map_err(anyhow::Error::msg)?;
        let matched = MatchedScenario::new(&graph, &publications, cal.slots as usize)?;
        let graph_file = root.join("graphs").join(format!("seed{seed}.txt"));
        write_synced(&graph_file, matched.graph_text().as_bytes())?;
        for &resolution in &cal.resolutions {
            let hot = match resolution {
                Resolution::Hybrid(percent) => matched.hot_nodes(percent, seed),
                _ => Vec::new(),
            };
            let (run_spec, id) = match resolution {
                Resolution::AllSurrogate => (scenario.clone(), Vec::new()),
                Resolution::AllDirect => (direct_spec(&scenario, &plan, &matched, &client, cal.port)?, Vec::new()),
                Resolution::Hybrid(_) => hybrid_spec(&scenario, &plan, &matched, &hot, &client, cal.port)?,
            };
            let dir = root.join("runs").join(format!("{}-seed{seed}", resolution.name()));
            let what = format!("{} seed {seed}", resolution.name());
            let outcome = run_one(run_spec, &dir, args.shards, exe, &what)?;
            let measured = match resolution {
                Resolution::AllDirect => direct_arrivals(&dir, &plan, &matched, &client, seed),
                Resolution::AllSurrogate => surrogate_arrivals(&dir, &matched, seed),
                Resolution::Hybrid(_) => hybrid_arrivals(&dir, &matched, &hot, &id, &client, &scenario.traffic, seed),
            }
            .with_context(|| format!("reading the {what} run"))?;
            let record = RunRecord {
                resolution,
                seed,
                digest: outcome.digest.to_string(),
                wall_s: outcome.wall.as_secs_f64(),
                arrivals: measured.arrivals.len(),
                expected: measured.expected,
                real_clients: (0..hot.len() as u32).filter(|&h| hot[h as usize]).collect(),
                host_ids: id,
            };
            if !hot.is_empty() {
                hot_sets.push((resolution, seed, hot, matched.proposers.clone()));
            }
            eprintln!(
                "{what}: {} of {} arrivals, {:.1} s wall, digest {}",
                record.arrivals, record.expected, record.wall_s, record.digest
            );
            records.push(record);
            runs.push((resolution, measured));
        }
        for (k, (candidate, candidate_spec)) in fitting.iter().enumerate() {
            let mut run_spec = candidate_spec.clone();
            run_spec.run.seed = seed;
            let dir = root.join("runs").join(format!("fit{k}-seed{seed}"));
            let what = format!("fit candidate {k} ({}) seed {seed}", describe(candidate));
            let outcome = run_one(run_spec, &dir, args.shards, exe, &what)?;
            let measured =
                surrogate_arrivals(&dir, &matched, seed).with_context(|| format!("reading the {what} run"))?;
            eprintln!(
                "{what}: {} of {} arrivals, digest {}",
                measured.arrivals.len(),
                measured.expected,
                outcome.digest
            );
            fit_runs[k].push(measured);
        }
    }
    let reference = cal.resolutions[0];
    let of = |r: Resolution| runs.iter().filter(|(x, _)| *x == r).map(|(_, a)| a.clone()).collect::<Vec<_>>();
    let candidates: Vec<_> = cal.resolutions[1..].iter().map(|&r| (r, of(r))).collect();
    let options = TableOptions {
        slots: cal.slots,
        cold_slots: cal.cold_slots,
        rounds: cal.bootstrap_rounds,
        seed: spec.run.seed,
    };
    let mut rows = error_table(&of(reference), &candidates, options);
    rows.extend(hybrid_rows(&runs, reference, &hot_sets, options));
    let mut report = report_text(&origin, &spec, &cal, &records, &rows);
    let mut json = serde_json::json!({ "spec": origin, "reference": reference, "runs": records, "errors": rows });
    let mut winner: Option<(String, Vec<RunArrivals>)> = None;
    if let Some(fit) = &cal.fit {
        let tried: Vec<Tried> = fitting
            .iter()
            .zip(&fit_runs)
            .map(|((params, _), runs)| {
                let rows = error_table(&of(reference), &[(Resolution::AllSurrogate, runs.clone())], options);
                Tried { params: params.clone(), loss: loss(&rows), rows }
            })
            .collect();
        let chosen = best(&tried.iter().map(|t| t.loss).collect::<Vec<_>>());
        report += &report_section(fit, &tried, chosen, reference);
        if let Some(b) = chosen {
            let text = profile_text(&origin, &spec, fit, &tried[b], cal.seeds).map_err(anyhow::Error::msg)?;
            write_synced(&root.join("profile.toml"), text.as_bytes())?;
        }
        json["fit"] = serde_json::json!({ "profile": fit.profile, "candidates": tried, "best": chosen });
        winner = chosen.map(|b| (format!("fit winner (#{b})"), fit_runs[b].clone()));
    }
    let by_resolution: Vec<(Resolution, Vec<RunArrivals>)> = cal.resolutions.iter().map(|&r| (r, of(r))).collect();
    let (section, files) = write_charts(&root, &by_resolution, winner.as_ref(), &cal)?;
    report += &section;
    json["charts"] = files.into();
    write_synced(&root.join("calibration.md"), report.as_bytes())?;
    write_synced(&root.join("calibration.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    write_arrivals(&root, &runs)?;
    outdir.commit()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", markdown(&rows, reference));
        println!("\n{}", target.join("calibration.md").display());
    }
    Ok(())
}

/// A hybrid run's real clients: (resolution, seed, a flag per node, the proposers).
type HotSet = (Resolution, u64, Vec<bool>, Vec<u32>);

/// The rows of each hybrid resolution for its real-client nodes and for its surrogate nodes
/// apart, each against the reference's arrivals at the same nodes of the same seed.
fn hybrid_rows(
    runs: &[(Resolution, RunArrivals)],
    reference: Resolution,
    hot_sets: &[HotSet],
    options: TableOptions,
) -> Vec<ErrorRow> {
    let mut rows = Vec::new();
    let mut resolutions: Vec<Resolution> = hot_sets.iter().map(|h| h.0).collect();
    resolutions.sort();
    resolutions.dedup();
    for resolution in resolutions {
        for (nodes, want_hot) in [(Nodes::Hot, true), (Nodes::Cold, false)] {
            let (mut base, mut it) = (Vec::new(), Vec::new());
            for (_, seed, hot, proposers) in hot_sets.iter().filter(|h| h.0 == resolution) {
                let keep = |n: u32| hot[n as usize] == want_hot;
                let chosen = hot.iter().filter(|&&h| h == want_hot).count() as u64;
                let expected = proposers.iter().map(|&p| chosen - u64::from(keep(p))).sum();
                let run_of = |r: Resolution| runs.iter().find(|(x, a)| *x == r && a.seed == *seed).map(|(_, a)| a);
                let (Some(b), Some(i)) = (run_of(reference), run_of(resolution)) else { continue };
                base.push(b.at_nodes(keep, expected));
                it.push(i.at_nodes(keep, expected));
            }
            for mut row in error_table(&base, &[(resolution, it)], options) {
                row.nodes = nodes;
                rows.push(row);
            }
        }
    }
    rows
}

/// Draw the charts of every resolution's runs (and the fit's winner, named) into `root`: the
/// report's `## Charts` section linking them, and their file names.
fn write_charts(
    root: &Path,
    by_resolution: &[(Resolution, Vec<RunArrivals>)],
    winner: Option<&(String, Vec<RunArrivals>)>,
    cal: &CalibrationSpec,
) -> Result<(String, Vec<String>)> {
    let names: Vec<String> = by_resolution.iter().map(|(r, _)| r.name()).collect();
    let mut lines: Vec<Line> = by_resolution.iter().zip(&names).map(|((_, runs), name)| Line { name, runs }).collect();
    if let Some((name, runs)) = winner {
        lines.push(Line { name, runs });
    }
    let charts = calibration_charts(&lines, cal.slots, cal.cold_slots)?;
    let mut section = "\n## Charts\n\n".to_string();
    for c in &charts {
        write_synced(&root.join(&c.file), c.svg.as_bytes())?;
        section += &format!("{}\n\n![{}]({})\n\n", c.caption, c.file, c.file);
    }
    Ok((section, charts.into_iter().map(|c| c.file).collect()))
}

/// Run `run_spec` with its output in `dir` (created), threads backend on `shards`: its outcome,
/// its outputs written.
fn run_one(mut run_spec: Spec, dir: &Path, shards: u32, exe: &Path, what: &str) -> Result<RunOutcome> {
    std::fs::create_dir_all(dir)?;
    run_spec.output.dir = dir.to_path_buf();
    let window = check_run(&run_spec, shards, false).map_err(anyhow::Error::msg)?;
    let run_plan = RunPlan { spec: run_spec, shards, backend: Backend::Threads, exe: exe.into() };
    let outcome = execute(&run_plan, window, &NoProgress, None)
        .with_context(|| format!("the {what} run failed"))?
        .context("no outcome")?;
    write_outputs(dir, dir, &run_plan, &outcome).with_context(|| format!("writing the {what} run"))?;
    Ok(outcome)
}

/// What a scenario must be for the calibration client to play it: gossip surrogates publishing
/// one block per slot at the slot's start, over whole seconds, peers assigned.
fn check_scenario(spec: &Spec, cal: &CalibrationSpec) -> Result<(), String> {
    let g = spec.gossip.as_ref().ok_or("calibration needs a [gossip] scenario")?;
    if !spec.processes.is_empty() || spec.hosts.iter().any(|h| h.kind != HostKind::Surrogate) {
        return Err("calibration.resolutions decides which nodes are real: write the scenario with surrogate \
                    [[hosts]] groups only and no [[processes]]"
            .into());
    }
    let t = &spec.traffic;
    if t.attestations.is_some() || t.data_columns.is_some() {
        return Err(
            "traffic.attestations and traffic.data_columns: the calibration client publishes blocks only".into()
        );
    }
    if t.churn.is_some() {
        return Err("traffic.churn: real clients do not go offline, so churn would make the resolutions differ".into());
    }
    if g.eth2.is_some() || g.discovery != PeerDiscovery::Assigned || g.dial_clients.is_some() {
        return Err("calibration needs gossip.discovery = \"assigned\", without gossip.eth2 or gossip.dial_clients \
                    (the client is given the surrogates' graph)"
            .into());
    }
    let whole = |d: SimDuration| d.as_nanos().is_multiple_of(1_000_000_000);
    if !whole(t.start) || !whole(t.slot) || t.beacon_block.proposer_delay != SimDuration::ZERO {
        return Err(format!(
            "traffic.start ({}) and traffic.slot ({}) must be whole seconds and traffic.beacon_block.proposer_delay 0 s: \
             the client publishes at the slot's start, in seconds",
            t.start, t.slot
        ));
    }
    if cal.port == 0 {
        return Err("calibration.port must not be 0".into());
    }
    if let Some(fit) = &cal.fit {
        candidate_specs(spec, fit)?;
    }
    Ok(())
}

/// The all-direct spec of a seed's scenario: the same host groups (so the same names, places
/// and links) as direct hosts, each running the client with the matched dials and proposers.
fn direct_spec(scenario: &Spec, plan: &NetPlan, matched: &MatchedScenario, client: &Path, port: u16) -> Result<Spec> {
    let dir = &plan.net.directory;
    let n = dir.len();
    let book: Vec<String> = (0..n).map(|h| format!("{}:{port}", dir.name_of(h))).collect();
    let mut spec = scenario.clone();
    spec.gossip = None;
    spec.traffic = Default::default();
    for h in &mut spec.hosts {
        h.kind = HostKind::Direct;
    }
    let (dials, proposers) = (matched.graph_text(), matched.proposers_text());
    for (group, members) in group_ranges(scenario) {
        let base = members.start;
        let first = dir.name_of(base);
        if group.count > 0 && !first.starts_with(&group.name) {
            bail!("host {base} is {first}, expected the first of group {}", group.name);
        }
        let mut p = thermocline_direct::ProcessSpec::new(group.name.clone(), client);
        p.args = ["--index", "{index}", "--index-base", &base.to_string()].map(String::from).to_vec();
        p.args.extend(client_args(scenario, group, &book, &dials, &proposers, matched.proposers.len(), port)?);
        spec.processes.push(p);
    }
    let direct_plan = net_plan(&spec, 1).map_err(anyhow::Error::msg)?;
    if (0..n).any(|h| direct_plan.net.directory.node_of(h) != dir.node_of(h)) {
        bail!("the all-direct run would place hosts elsewhere than the all-surrogate run");
    }
    Ok(spec)
}

/// Each host group of a scenario with the ids of its hosts: the directory numbers hosts group
/// by group in name order (a calibration scenario has surrogate groups only).
fn group_ranges(scenario: &Spec) -> Vec<(&HostGroupSpec, std::ops::Range<u32>)> {
    let base = |g: &HostGroupSpec| scenario.hosts.iter().filter(|o| o.name < g.name).map(|o| o.count).sum::<u32>();
    scenario.hosts.iter().map(|g| (g, base(g)..base(g) + g.count)).collect()
}

/// What a client is told besides its index: where it listens, every node's address (`book`,
/// by index), who dials whom (`dials`, as [`MatchedScenario::graph_text`] writes it), the
/// proposers, the slots and block size, and its group's validation delay.
fn client_args(
    scenario: &Spec,
    group: &HostGroupSpec,
    book: &[String],
    dials: &str,
    proposers: &str,
    slots: usize,
    port: u16,
) -> Result<Vec<String>> {
    let g = scenario.gossip.as_ref().context("a gossip scenario")?;
    let t = &scenario.traffic;
    let mut args = [
        "--nodes",
        &book.len().to_string(),
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--peer",
        &book.join(","),
        // The dial lists inline: a path to the graph file would make the client's memory,
        // and so its run, depend on where the output folder is.
        "--graph-text",
        &dials.lines().collect::<Vec<_>>().join(";"),
        "--proposers",
        proposers,
        "--genesis",
        &(t.start.as_nanos() / 1_000_000_000).to_string(),
        "--slot",
        &(t.slot.as_nanos() / 1_000_000_000).to_string(),
        "--slots",
        &slots.to_string(),
        "--size",
        &t.beacon_block.size.bytes().to_string(),
    ]
    .map(String::from)
    .to_vec();
    // The scenario's validation delay is the client's too (left out when 0, so that
    // scenarios without one give the clients the arguments they always had).
    let profile = group.profile.as_ref().unwrap_or(&g.profile);
    let delay = g.params_for(profile).map_err(anyhow::Error::msg)?.validation_delay.as_nanos();
    if !delay.is_multiple_of(1_000_000) {
        bail!("gossip.params.validation_delay must be whole milliseconds for the calibration client");
    }
    if delay > 0 {
        args.extend(["--validation-delay".into(), (delay / 1_000_000).to_string()]);
    }
    Ok(args)
}

/// A hybrid run of a seed's scenario: the `hot` nodes real clients on direct hosts, the rest
/// surrogates, on the scenario's connections ([`MatchedScenario::hybrid_dials`]) and with its
/// proposers. Each node keeps its location and bandwidth; surrogates keep their group (and
/// profile), and real client `i` is the one-host direct group `real<i>`. Returns the spec and
/// each node's host id in it; clients are told every node by that id.
fn hybrid_spec(
    scenario: &Spec,
    plan: &NetPlan,
    matched: &MatchedScenario,
    hot: &[bool],
    client: &Path,
    port: u16,
) -> Result<(Spec, Vec<u32>)> {
    let dir = &plan.net.directory;
    let mut spec = scenario.clone();
    spec.hosts = hybrid_hosts(scenario, plan, hot);
    let hybrid = net_plan(&spec, 1).map_err(anyhow::Error::msg)?;
    let hdir = &hybrid.net.directory;
    let id = hybrid_ids(scenario, plan, hdir, hot)?;
    let dials = matched.hybrid_dials(hot);
    let mut cold_dials = vec![Vec::new(); hdir.surrogates() as usize];
    let mut client_dials = vec![Vec::new(); dir.len() as usize];
    for (h, row) in dials.iter().enumerate() {
        let mut row: Vec<u32> = row.iter().map(|&j| id[j as usize]).collect();
        row.sort_unstable();
        let x = id[h] as usize;
        if hot[h] { client_dials[x] = row } else { cold_dials[x] = row }
    }
    // Each surrogate takes every client that dials it.
    let mut clients = vec![0u32; dir.len() as usize];
    for (_, row) in dials.iter().enumerate().filter(|&(h, _)| hot[h]) {
        for &j in row.iter().filter(|&&j| !hot[j as usize]) {
            clients[j as usize] += 1;
        }
    }
    let g = spec.gossip.as_mut().context("a gossip scenario")?;
    g.dials = Some(cold_dials);
    g.client_slots = Some(clients.into_iter().max().unwrap_or(0).max(CLIENT_SLOTS));
    spec.traffic.beacon_block.proposers = Some(
        matched
            .proposers
            .iter()
            .map(|&p| {
                if hot[p as usize] { SlotProposer::Word("none".into()) } else { SlotProposer::Identity(id[p as usize]) }
            })
            .collect(),
    );
    let book: Vec<String> = (0..hdir.len())
        .map(|x| format!("{}:{}", hdir.name_of(x), if x < hdir.surrogates() { GOSSIP_PORT } else { port }))
        .collect();
    let hybrid_matched =
        MatchedScenario { dials: client_dials, proposers: matched.proposers.iter().map(|&p| id[p as usize]).collect() };
    let (dials, proposers) = (hybrid_matched.graph_text(), hybrid_matched.proposers_text());
    for (group, members) in group_ranges(scenario) {
        for h in members.filter(|&h| hot[h as usize]) {
            let mut p = thermocline_direct::ProcessSpec::new(real_host(h), client);
            p.args = vec!["--index".into(), id[h as usize].to_string()];
            p.args.extend(client_args(scenario, group, &book, &dials, &proposers, matched.proposers.len(), port)?);
            spec.processes.push(p);
        }
    }
    Ok((spec, id))
}

/// The host group of real client `h` in a hybrid run.
fn real_host(h: u32) -> String {
    format!("real{h}")
}

/// The host groups of a hybrid run whose real clients are the `hot` nodes: each surrogate group
/// less its real nodes (its location weights the counts left per location), and a one-host
/// direct group per real node at its location, with its group's bandwidth and profile.
fn hybrid_hosts(scenario: &Spec, plan: &NetPlan, hot: &[bool]) -> Vec<HostGroupSpec> {
    let (dir, topology) = (&plan.net.directory, &plan.net.topology);
    let name = |node: u32| topology.nodes[node as usize].name.clone();
    let mut hosts = Vec::new();
    for (group, members) in group_ranges(scenario) {
        let mut cold_at: BTreeMap<u32, u32> = BTreeMap::new();
        for h in members.clone().filter(|&h| !hot[h as usize]) {
            *cold_at.entry(dir.node_of(h)).or_default() += 1;
        }
        let cold: u32 = cold_at.values().sum();
        if cold > 0 {
            let mut g = group.clone();
            g.count = cold;
            if g.locations.is_some() {
                g.locations = Some(cold_at.iter().map(|(&node, &c)| (name(node), c as f64)).collect());
            }
            hosts.push(g);
        }
        for h in members.filter(|&h| hot[h as usize]) {
            hosts.push(HostGroupSpec {
                name: real_host(h),
                kind: HostKind::Direct,
                count: 1,
                location: Some(name(dir.node_of(h))),
                locations: None,
                bandwidth: Some(dir.block_of(h).bandwidth),
                profile: group.profile.clone(),
                load: None,
            });
        }
    }
    hosts
}

/// Each node's host id in the hybrid run whose directory is `hdir` (see [`hybrid_hosts`]): a
/// surrogate group's hosts at one location keep their order, real client `h` is `real<h>`.
/// Refuses a run in which a node would sit elsewhere or be linked otherwise, or names collide.
fn hybrid_ids(scenario: &Spec, plan: &NetPlan, hdir: &HostDirectory, hot: &[bool]) -> Result<Vec<u32>> {
    let dir = &plan.net.directory;
    let mut queues: BTreeMap<(String, u32), std::collections::VecDeque<u32>> = BTreeMap::new();
    for (group, members) in group_ranges(scenario) {
        for h in members.filter(|&h| !hot[h as usize]) {
            queues.entry((group.name.clone(), dir.node_of(h))).or_default().push_back(h);
        }
    }
    let mut id = vec![u32::MAX; dir.len() as usize];
    for x in 0..hdir.len() {
        let group = &hdir.groups[hdir.block_of(x).group as usize].spec;
        let node = match group.name.strip_prefix("real").and_then(|i| i.parse::<u32>().ok()) {
            Some(h) if group.kind == HostKind::Direct => Some(h),
            _ => queues.get_mut(&(group.name.clone(), hdir.node_of(x))).and_then(|q| q.pop_front()),
        };
        let Some(h) = node.filter(|&h| id.get(h as usize) == Some(&u32::MAX)) else {
            bail!("the hybrid run's host {} matches no node of the scenario", hdir.name_of(x));
        };
        id[h as usize] = x;
    }
    let names: std::collections::BTreeSet<String> = (0..hdir.len()).map(|x| hdir.name_of(x)).collect();
    if names.len() != hdir.len() as usize {
        bail!("the hybrid run's host names collide: name no surrogate group `real`");
    }
    for h in 0..dir.len() {
        let x = id[h as usize];
        if hdir.node_of(x) != dir.node_of(h) || hdir.block_of(x).bandwidth != dir.block_of(h).bandwidth {
            bail!("the hybrid run would place node {h} elsewhere, or link it otherwise, than the all-surrogate run");
        }
    }
    Ok(id)
}

/// What one client logged: each block it received (`recv slot=S publisher=P via=V
/// delay_us=D`, as (slot, publisher, delay µs)) and its duplicates (`copies node=N first=F
/// all=A`: what gossipsub received beyond the first), from `hosts/<name>/<binary>.0.stdout`.
struct ClientLog {
    blocks: Vec<(u64, u64, u64)>,
    duplicates: Option<u64>,
}

fn client_log(dir: &Path, name: &str, client: &Path) -> Result<ClientLog> {
    let binary = client.file_name().map_or("client".into(), |n| n.to_string_lossy().into_owned());
    let path = dir.join("hosts").join(name).join(format!("{binary}.0.stdout"));
    let log = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if !log.lines().any(|l| l.starts_with("done ")) {
        bail!("{name}'s client did not finish (no `done` line in {})", path.display());
    }
    let count = |line: &str, k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)?.parse::<u64>().ok());
    let duplicates = log
        .lines()
        .find(|l| l.starts_with("copies "))
        .and_then(|l| Some(count(l, "all=")?.saturating_sub(count(l, "first=")?)));
    let mut blocks = Vec::new();
    for line in log.lines().filter(|l| l.starts_with("recv ")) {
        match (count(line, "slot="), count(line, "publisher="), count(line, "delay_us=")) {
            (Some(slot), Some(publisher), Some(delay_us)) => blocks.push((slot, publisher, delay_us)),
            // `recv malformed block of N bytes`: nothing of the schedule; reported.
            _ => eprintln!("note: {name}: {line}"),
        }
    }
    Ok(ClientLog { blocks, duplicates })
}

/// The block arrivals real clients logged.
fn direct_arrivals(
    dir: &Path,
    plan: &NetPlan,
    matched: &MatchedScenario,
    client: &Path,
    seed: u64,
) -> Result<RunArrivals> {
    let n = plan.net.directory.len();
    let mut arrivals = Vec::new();
    let mut copies = Some(0u64);
    for node in 0..n {
        let log = client_log(dir, &plan.net.directory.name_of(node), client)?;
        copies = copies.zip(log.duplicates).map(|(a, b)| a + b);
        for (slot, publisher, delay_us) in log.blocks {
            if matched.proposers.get(slot as usize).is_some_and(|&p| p as u64 == publisher && p != node) {
                arrivals.push(Arrival {
                    slot: slot as u32,
                    node,
                    delay_ms: delay_us as f64 / 1000.0,
                    duplicates: None,
                });
            }
        }
    }
    Ok(RunArrivals { seed, arrivals, expected: expected(matched), copies })
}

/// The block arrivals of a hybrid run (see [`hybrid_spec`]; `id` is each node's host id in
/// it), by the scenario's node numbers: real clients' from their logs, as in an all-direct run;
/// the surrogates' of surrogate blocks from `gossip_arrivals`, as in an all-surrogate run; and
/// the surrogates' of the clients' blocks from `client_message_arrivals`, timed from the slot's
/// start, when the client publishes (the tail does not see a client's publication time; the
/// client's own clock reads it within microseconds of the slot's start).
fn hybrid_arrivals(
    dir: &Path,
    matched: &MatchedScenario,
    hot: &[bool],
    id: &[u32],
    client: &Path,
    traffic: &thermocline_surrogate::config::TrafficSpec,
    seed: u64,
) -> Result<RunArrivals> {
    let mut node_of = BTreeMap::new();
    for (h, &x) in id.iter().enumerate() {
        node_of.insert(x, h as u32);
    }
    let mut arrivals = Vec::new();
    for h in (0..id.len() as u32).filter(|&h| hot[h as usize]) {
        for (slot, publisher, delay_us) in client_log(dir, &format!("real{h}"), client)?.blocks {
            if matched.proposers.get(slot as usize).is_some_and(|&p| id[p as usize] as u64 == publisher && p != h) {
                let delay_ms = delay_us as f64 / 1000.0;
                arrivals.push(Arrival { slot: slot as u32, node: h, delay_ms, duplicates: None });
            }
        }
    }
    for a in surrogate_rows(dir)? {
        let (Some(&node), Some(&p)) = (node_of.get(&a.node), matched.proposers.get(a.slot as usize)) else { continue };
        if !hot[p as usize] && !hot[node as usize] && id[p as usize] != a.node {
            arrivals.push(Arrival { node, ..a });
        }
    }
    arrivals.extend(client_block_arrivals(dir, matched, hot, &node_of, traffic)?);
    arrivals.sort_by_key(|a| (a.slot, a.node));
    Ok(RunArrivals { seed, arrivals, expected: expected(matched), copies: None })
}

/// The surrogates' arrivals of the real clients' blocks in a hybrid run, from
/// `client_message_arrivals` (`node_of`: a surrogate's node by host id), timed from the slot's
/// start.
fn client_block_arrivals(
    dir: &Path,
    matched: &MatchedScenario,
    hot: &[bool],
    node_of: &BTreeMap<u32, u32>,
    traffic: &thermocline_surrogate::config::TrafficSpec,
) -> Result<Vec<Arrival>> {
    let mut arrivals = Vec::new();
    if !matched.proposers.iter().any(|&p| hot[p as usize]) {
        // No client proposed: the run has no client message to table.
        return Ok(arrivals);
    }
    let t = read_table(dir, "client_message_arrivals")?;
    let col =
        |name: &str| t.column_by_name(name).with_context(|| format!("client_message_arrivals has no column {name}"));
    let message = col("message_id")?.as_any().downcast_ref::<UInt64Array>().context("message_id")?;
    let node = col("node")?.as_any().downcast_ref::<UInt32Array>().context("node")?;
    let at = col("arrival_ns")?.as_any().downcast_ref::<UInt64Array>().context("arrival_ns")?;
    let topic = col("topic")?.as_any().downcast_ref::<StringArray>().context("topic")?;
    let rows: Vec<usize> = (0..t.num_rows()).filter(|&i| topic.value(i) == "beacon_block").collect();
    // A client's block is in the slot its first arrival falls in.
    let mut first: BTreeMap<u64, u64> = BTreeMap::new();
    for &i in &rows {
        let f = first.entry(message.value(i)).or_insert(u64::MAX);
        *f = (*f).min(at.value(i));
    }
    let (start, slot_ns) = (traffic.start.as_nanos(), traffic.slot.as_nanos());
    for &i in &rows {
        let slot = first[&message.value(i)].saturating_sub(start) / slot_ns;
        let Some(&p) = matched.proposers.get(slot as usize) else { continue };
        let Some(&h) = node_of.get(&node.value(i)) else { continue };
        if hot[p as usize] && !hot[h as usize] {
            let delay_ms = at.value(i).saturating_sub(start + slot * slot_ns) as f64 / 1e6;
            arrivals.push(Arrival { slot: slot as u32, node: h, delay_ms, duplicates: None });
        }
    }
    Ok(arrivals)
}

/// Arrivals a run delivering every block would have.
fn expected(matched: &MatchedScenario) -> u64 {
    matched.proposers.len() as u64 * (matched.nodes() as u64).saturating_sub(1)
}

/// The block arrivals of a surrogate run, from its `gossip_arrivals` table.
fn surrogate_arrivals(dir: &Path, matched: &MatchedScenario, seed: u64) -> Result<RunArrivals> {
    // The publisher's own row (its publication) is not an arrival.
    let arrivals = surrogate_rows(dir)?
        .into_iter()
        .filter(|a| matched.proposers.get(a.slot as usize).is_some_and(|&p| p != a.node))
        .collect();
    Ok(RunArrivals { seed, arrivals, expected: expected(matched), copies: None })
}

/// Every surrogate's `beacon_block` row of a run's `gossip_arrivals` table (its publishers'
/// own rows included), by host id.
fn surrogate_rows(dir: &Path) -> Result<Vec<Arrival>> {
    let t = read_table(dir, "gossip_arrivals")?;
    let col = |name: &str| t.column_by_name(name).with_context(|| format!("gossip_arrivals has no column {name}"));
    let slot = col("slot")?.as_any().downcast_ref::<UInt64Array>().context("slot")?;
    let node = col("node")?.as_any().downcast_ref::<UInt32Array>().context("node")?;
    let delay = col("arrival_since_publish_ns")?.as_any().downcast_ref::<UInt64Array>().context("delay")?;
    let dups = col("duplicates")?.as_any().downcast_ref::<UInt32Array>().context("duplicates")?;
    let topic = col("topic")?.as_any().downcast_ref::<StringArray>().context("topic")?;
    let hot = col("hot")?.as_any().downcast_ref::<BooleanArray>().context("hot")?;
    Ok((0..t.num_rows())
        .filter(|&i| topic.value(i) == "beacon_block" && !hot.value(i))
        .map(|i| Arrival {
            slot: slot.value(i) as u32,
            node: node.value(i),
            delay_ms: delay.value(i) as f64 / 1e6,
            duplicates: Some(dups.value(i)),
        })
        .collect())
}

/// `calibration_arrivals.arrow`: every arrival of every run.
fn write_arrivals(root: &Path, runs: &[(Resolution, RunArrivals)]) -> Result<()> {
    let rows = || runs.iter().flat_map(|(r, a)| a.arrivals.iter().map(move |x| (*r, a.seed, x)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("resolution", DataType::Utf8, false),
        Field::new("seed", DataType::UInt64, false),
        Field::new("slot", DataType::UInt32, false),
        Field::new("node", DataType::UInt32, false),
        Field::new("delay_us", DataType::UInt64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            str_col(rows().map(|(r, ..)| r.name())),
            u64_col(rows().map(|(_, s, _)| s)),
            u32_col(rows().map(|(.., x)| x.slot)),
            u32_col(rows().map(|(.., x)| x.node)),
            u64_col(rows().map(|(.., x)| (x.delay_ms * 1000.0).round() as u64)),
        ],
    )?;
    write_table(root, "calibration_arrivals", schema, &[batch], TableFormat::Arrow)?;
    Ok(())
}

/// `calibration.md`: the scenario, every run, and the error table.
fn report_text(origin: &str, spec: &Spec, cal: &CalibrationSpec, runs: &[RunRecord], rows: &[ErrorRow]) -> String {
    let nodes: u32 = spec.hosts.iter().map(|h| h.count).sum();
    let mut t = format!(
        "# Calibration of {origin}\n\n{nodes} nodes, {} slots of {} from {} (the first {} cold), blocks of {}, \
         seeds {}..{}; reference: {}.\n\n## Runs\n\n| resolution | seed | arrivals / expected | wall s | digest |\n|---|---|---|---|---|\n",
        cal.slots,
        spec.traffic.slot,
        spec.traffic.start,
        cal.cold_slots,
        spec.traffic.beacon_block.size,
        spec.run.seed,
        spec.run.seed.wrapping_add(cal.seeds as u64 - 1),
        cal.resolutions[0].name(),
    );
    for r in runs {
        t += &format!(
            "| {} | {} | {} / {} | {:.1} | {} |\n",
            r.resolution.name(),
            r.seed,
            r.arrivals,
            r.expected,
            r.wall_s,
            r.digest
        );
    }
    t += "\n## Errors against the reference\n\nDelays from publication to first arrival; errors are (resolution − \
          reference) / reference with 95 % bootstrap intervals over seeds. Goals: KS ≤ 0.05, p50 and p95 within ±5 %.\n\n";
    t += &markdown(rows, cal.resolutions[0]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The all-direct spec of a 4-node scenario whose surrogates validate for `delay`.
    fn direct_with(delay: &str) -> Result<Spec> {
        let text = format!(
            "[run]\nseed = 1\nduration = \"30 s\"\n[network]\ntopology = \"single-switch\"\n\
             [[hosts]]\nname = \"node\"\ncount = 4\n[gossip]\nprofile = \"ethereum\"\n\
             [gossip.params]\nvalidation_delay = \"{delay}\"\n\
             [traffic]\nstart = \"6 s\"\nslot = \"6 s\"\n"
        );
        let spec = Spec::parse(&text, "test.toml").unwrap();
        let plan = net_plan(&spec, 1).unwrap();
        let matched = MatchedScenario { dials: vec![vec![1], vec![2], vec![3], vec![]], proposers: vec![0, 2] };
        direct_spec(&spec, &plan, &matched, Path::new("gossip-node"), 9000)
    }

    #[test]
    fn each_hybrid_resolution_has_one_row_per_node_set_and_phase_whatever_the_seed_order() {
        let arrivals = |seed: u64, delay: f64| RunArrivals {
            seed,
            arrivals: (0..4u32)
                .flat_map(|node| {
                    (0..2).map(move |slot| Arrival { slot, node, delay_ms: delay + node as f64, duplicates: None })
                })
                .collect(),
            expected: 8,
            copies: None,
        };
        let (h10, h50) = (Resolution::Hybrid(10), Resolution::Hybrid(50));
        let mut runs = Vec::new();
        let mut hot_sets = Vec::new();
        for seed in [1, 2] {
            runs.push((Resolution::AllDirect, arrivals(seed, 100.0)));
            for r in [h10, h50] {
                runs.push((r, arrivals(seed, 90.0)));
                hot_sets.push((r, seed, vec![true, false, false, false], vec![1, 2]));
            }
        }
        let options = TableOptions { slots: 2, cold_slots: 1, rounds: 100, seed: 1 };
        let rows = hybrid_rows(&runs, Resolution::AllDirect, &hot_sets, options);
        let keys: Vec<(Resolution, Nodes, &str)> =
            rows.iter().map(|r| (r.resolution, r.nodes, r.phase.name())).collect();
        assert_eq!(keys.len(), 12, "{keys:?}");
        let mut unique = keys.clone();
        unique.dedup();
        assert_eq!(unique, keys, "no row twice");
        // Node 0 is the one real client: 2 slots, both proposed by surrogates.
        let hot =
            rows.iter().find(|r| r.resolution == h10 && r.nodes == Nodes::Hot && r.phase.name() == "all").unwrap();
        assert_eq!(hot.arrivals, (4, 4));
    }

    #[test]
    fn a_hybrid_keeps_every_nodes_place_connections_and_proposer() {
        let text = "[run]\nseed = 1\nduration = \"30 s\"\n[network]\ntopology = \"single-switch\"\n\
                    [[hosts]]\nname = \"b\"\ncount = 3\nbandwidth = { up = \"1 Gbit\", down = \"1 Gbit\" }\n\
                    [[hosts]]\nname = \"a\"\ncount = 3\n[gossip]\n[traffic]\nstart = \"6 s\"\nslot = \"6 s\"\n";
        let scenario = Spec::parse(text, "test.toml").unwrap();
        let plan = net_plan(&scenario, 1).unwrap();
        // Nodes 0–2 are a0–a2, 3–5 are b0–b2; 1 and 4 become real clients.
        let matched = MatchedScenario {
            dials: vec![vec![1, 2], vec![4], vec![3], vec![0, 5], vec![5], vec![]],
            proposers: vec![1, 0, 4],
        };
        let hot = [false, true, false, false, true, false];
        let (spec, id) = hybrid_spec(&scenario, &plan, &matched, &hot, Path::new("gossip-node"), 9100).unwrap();
        assert_eq!(id, [0, 4, 1, 2, 5, 3], "surrogates a0 a2 b0 b2, then real1 and real4");
        let groups: Vec<(&str, u32, HostKind)> =
            spec.hosts.iter().map(|g| (g.name.as_str(), g.count, g.kind)).collect();
        assert_eq!(
            groups,
            [
                ("b", 2, HostKind::Surrogate),
                ("real4", 1, HostKind::Direct),
                ("a", 2, HostKind::Surrogate),
                ("real1", 1, HostKind::Direct)
            ]
        );
        assert_eq!(spec.hosts[1].bandwidth, scenario.hosts[0].bandwidth, "a client keeps its group's links");
        // Surrogates dial among themselves as before; clients dial all their connections.
        let g = spec.gossip.as_ref().unwrap();
        assert_eq!(g.dials, Some(vec![vec![1], vec![2], vec![0, 3], vec![]]));
        assert_eq!(g.client_slots, Some(CLIENT_SLOTS), "no surrogate has more than one client");
        let none = SlotProposer::Word("none".into());
        assert_eq!(spec.traffic.beacon_block.proposers, Some(vec![none.clone(), SlotProposer::Identity(0), none]));
        let mut args: Vec<String> = spec.processes.iter().map(|p| format!("{} {}", p.host, p.args.join(" "))).collect();
        args.sort();
        assert_eq!(args.len(), 2);
        assert!(args[0].starts_with("real1 --index 4 --nodes 6 --listen 0.0.0.0:9100 --peer "), "{}", args[0]);
        assert!(args[0].contains(" a0:9000,a1:9000,b0:9000,b1:9000,real1:9100,real4:9100 "), "{}", args[0]);
        // Dials by host id: real1 (4) dials a0 (0), which dialled it, and real4 (5); real4
        // dials b2 (3).
        assert!(args[0].contains(" --graph-text ;;;;0 5;3 --proposers 4,0,5 "), "{}", args[0]);
        assert!(args[1].starts_with("real4 --index 5 "), "{}", args[1]);
    }

    #[test]
    fn the_client_validates_as_long_as_the_surrogates_and_is_not_told_a_zero() {
        let args = |delay: &str| direct_with(delay).unwrap().processes[0].args.join(" ");
        assert!(args("5 ms").ends_with(" --validation-delay 5"), "{}", args("5 ms"));
        assert!(!args("0 ms").contains("--validation-delay"), "{}", args("0 ms"));
        let err = direct_with("2500 us").unwrap_err().to_string();
        assert!(err.contains("whole milliseconds"), "{err}");
    }
}
