//! `thermocline`: run experiments and benchmarks of the Thermocline network simulator.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use thermocline::bench::{self, PholdBench, WindowBench};
use thermocline::output::{human_summary, write_outputs};
use thermocline::progress::ProgressDisplay;
use thermocline::run::{RunPlan, execute, shard_process_main, window_config};
use thermocline::spec::{Backend, Spec};
use thermocline::{model_cmd, mpi_support};

/// Large blocks (the surrogate state) on transparent huge pages: see `huge_pages`.
#[global_allocator]
static ALLOC: thermocline::huge_pages::HugePageAlloc = thermocline::huge_pages::HugePageAlloc;

#[derive(Parser)]
#[command(
    name = "thermocline",
    version,
    about = "Deterministic hybrid network simulator: real binaries and lightweight surrogates on one conservative window protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment spec (TOML); without SPEC, the built-in default experiment.
    Run {
        /// The experiment spec.
        spec: Option<PathBuf>,
        /// Number of shards (default: the spec's `run.shards`).
        #[arg(long)]
        shards: Option<u32>,
        /// Backend (default: the spec's `run.backend`); `mpi` runs under mpirun, one rank per shard.
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        /// Output directory (default: the spec's `output.dir`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed (default: the spec's `run.seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar and no summary table.
        #[arg(long, short)]
        quiet: bool,
        /// Count every syscall of every direct-host binary (table `direct_syscalls`).
        #[arg(long)]
        syscall_stats: bool,
        /// Write each direct host's packets to `hosts/<host>/packets.pcap` (simulated timestamps).
        #[arg(long)]
        pcap: bool,
    },
    /// Benchmarks that print their figures.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Partition a spec's hosts into shards: write the partition file and report the expected cut
    /// and runahead.
    Partition(model_cmd::PartitionArgs),
    /// One shard of a processes-backend run (started by `run`, not by hand).
    #[command(hide = true)]
    Shard,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// PHOLD throughput, windows/s and barrier idle fraction per shard count and backend.
    Phold(PholdBench),
    /// Cost of one window with empty batches, per backend.
    Window(WindowBench),
    /// Build the network model (directory, routing, partition) at scale: time and peak memory.
    Model(model_cmd::ModelBench),
    /// Surrogate gossip at scale: memory per identity, events/s, wall time per simulated slot.
    Gossip(bench::GossipBench),
    /// Direct hosts: ns per time read, forwarded syscall and UDP send+receive, native vs shim.
    Syscall(thermocline::bench_syscall::SyscallBench),
    /// Direct hosts: N rust-libp2p gossip-nodes, wall s per simulated minute and RSS per node.
    Direct(thermocline::bench_direct::DirectBench),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let exe = std::env::current_exe().context("locating the thermocline executable")?;
    match cli.command {
        Command::Run { spec, shards, backend, out, seed, quiet, syscall_stats, pcap } => {
            let mut spec = match &spec {
                Some(path) => Spec::load(path)?,
                None => Spec::default_experiment(),
            };
            if let Some(seed) = seed {
                spec.run.seed = seed;
            }
            spec.output.syscall_stats |= syscall_stats;
            spec.output.pcap |= pcap;
            if let Some(dir) = &out {
                // Engines that write files (direct hosts' working directories) read it from the spec.
                spec.output.dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            }
            let backend = backend.unwrap_or(spec.run.backend);
            let session = if backend == Backend::Mpi { Some(mpi_support::init()?) } else { None };
            let shards = match &session {
                Some(s) => {
                    let ranks = s.size();
                    if let Some(n) = shards {
                        anyhow::ensure!(
                            n == ranks,
                            "--shards {n}, but mpirun started {ranks} ranks: under MPI the shard count is the number of ranks"
                        );
                    }
                    ranks
                }
                None => shards.unwrap_or(spec.run.shards),
            };
            let root = session.as_ref().is_none_or(|s| s.rank().0 == 0);
            let plan = RunPlan { shards, backend, exe, spec };
            anyhow::ensure!(plan.shards > 0, "--shards must be at least 1");
            let window =
                window_config(&plan.spec, plan.shards).map_err(anyhow::Error::msg).context("invalid experiment")?;
            if !plan.spec.hosts.is_empty() {
                // Refuse a bad [network] or [[hosts]] before starting anything.
                plan.spec.network_model()?;
            }
            let dir = out.unwrap_or_else(|| plan.spec.output.dir.clone());
            let display = ProgressDisplay::start(window.end, !quiet && root);
            let result = execute(&plan, window, display.sink(), session.as_ref());
            display.finish();
            // Ranks other than 0 hand their results to rank 0, which writes them.
            let Some(outcome) = result.context("the run failed")? else { return Ok(()) };
            let summary = write_outputs(&dir, &plan, &outcome)?;
            if !quiet {
                print!("{}", human_summary(&summary, &dir));
            }
            Ok(())
        }
        Command::Bench { which: BenchCommand::Phold(args) } => {
            let session = if args.backend.contains(&Backend::Mpi) { Some(mpi_support::init()?) } else { None };
            bench::phold(&args, &exe, session.as_ref())
        }
        Command::Bench { which: BenchCommand::Model(args) } => model_cmd::bench_model(&args),
        Command::Bench { which: BenchCommand::Gossip(args) } => bench::gossip(&args, &exe),
        Command::Bench { which: BenchCommand::Syscall(args) } => thermocline::bench_syscall::syscall(&args, &exe),
        Command::Bench { which: BenchCommand::Direct(args) } => thermocline::bench_direct::direct(&args, &exe),
        Command::Partition(args) => model_cmd::partition(&args),
        Command::Bench { which: BenchCommand::Window(args) } => {
            let session = if args.backend.contains(&Backend::Mpi) { Some(mpi_support::init()?) } else { None };
            bench::window(&args, &exe, session.as_ref())
        }
        // A shard process's errors are already reported (to the hub, or on stderr).
        Command::Shard => match shard_process_main() {
            Ok(()) => Ok(()),
            Err(_) => std::process::exit(1),
        },
    }
}
