//! `thermocline`: run experiments and benchmarks of the Thermocline network simulator.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use thermocline::bench::{self, PholdBench, WindowBench};
use thermocline::check::{check_run, check_shards};
use thermocline::outdir::{Abandoned, OutputDir, staging_path};
use thermocline::output::{human_summary, write_outputs};
use thermocline::progress::{ProgressDisplay, ProgressMode};
use thermocline::run::{RunPlan, execute, shard_process_main};
use thermocline::spec::{Backend, Spec};
use thermocline::{model_cmd, mpi_support, shadow};

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
    /// Without a command, `thermocline` runs the built-in default experiment (as `thermocline run`).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment spec (TOML) or a Shadow 3.x configuration (`.yaml`/`.yml`); without
    /// SPEC, the built-in default experiment.
    Run(RunArgs),
    /// Write `report.html` into a run's output folder: its summary and plots in one
    /// self-contained page (docs/report.md).
    Report(ReportArgs),
    /// Print the Thermocline spec (TOML) equivalent to a Shadow 3.x configuration (YAML); notes
    /// on keys ignored go to stderr and, as comments, into the spec.
    Import {
        /// The Shadow configuration.
        config: PathBuf,
    },
    /// Benchmarks that print their figures.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Partition a spec's hosts into shards: write the partition file and report the expected cut
    /// and runahead.
    Partition(model_cmd::PartitionArgs),
    /// Run a gossip spec's scenario at the resolutions its `[calibration]` names (all-direct,
    /// all-surrogate) over its seeds, with matched peer graphs and proposers, and write the error
    /// table (docs/calibration.md).
    Calibrate(thermocline::calibrate_cmd::CalibrateArgs),
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
    /// Real gossip-nodes among surrogates: the boundary's cost.
    Hybrid(thermocline::bench_hybrid::HybridBench),
    /// Real Lodestar nodes among surrogates: wall time per simulated minute by tail size.
    Lodestar(thermocline::bench_lodestar::LodestarBench),
    /// Surrogate discv5 at scale: memory per identity, real-time factor, lookup figures.
    Discv5(thermocline::bench_discv5::Discv5Bench),
}

fn main() {
    let cli = Cli::parse();
    thermocline::signals::exit_on_termination(thermocline_direct::kill_managed_processes);
    let command = cli.command.unwrap_or_else(|| Command::Run(RunArgs::default()));
    if let Err(failure) = dispatch(command) {
        eprintln!("error: {}", describe(&failure.error));
        std::process::exit(failure.code.code());
    }
}

fn dispatch(command: Command) -> Result<(), Failure> {
    let exe = std::env::current_exe().context("locating the thermocline executable").map_err(Failure::run)?;
    match command {
        Command::Run(args) => run(args, exe),
        Command::Report(args) => report(&args),
        Command::Bench { which: BenchCommand::Phold(args) } => {
            let session = if args.backend.contains(&Backend::Mpi) { Some(mpi_support::init()?) } else { None };
            Ok(bench::phold(&args, &exe, session.as_ref())?)
        }
        Command::Bench { which: BenchCommand::Model(args) } => Ok(model_cmd::bench_model(&args)?),
        Command::Bench { which: BenchCommand::Gossip(args) } => Ok(bench::gossip(&args, &exe)?),
        Command::Bench { which: BenchCommand::Syscall(args) } => Ok(thermocline::bench_syscall::syscall(&args, &exe)?),
        Command::Bench { which: BenchCommand::Direct(args) } => Ok(thermocline::bench_direct::direct(&args, &exe)?),
        Command::Bench { which: BenchCommand::Hybrid(args) } => Ok(thermocline::bench_hybrid::hybrid(&args, &exe)?),
        Command::Bench { which: BenchCommand::Lodestar(args) } => {
            Ok(thermocline::bench_lodestar::lodestar(&args, &exe)?)
        }
        Command::Bench { which: BenchCommand::Discv5(args) } => Ok(thermocline::bench_discv5::discv5(&args, &exe)?),
        Command::Partition(args) => Ok(model_cmd::partition(&args)?),
        Command::Calibrate(args) => {
            let (spec, cal) = thermocline::calibrate_cmd::load(&args).map_err(Failure::spec)?;
            Ok(thermocline::calibrate_cmd::calibrate(&args, &exe, spec, cal)?)
        }
        Command::Import { config } => import(&config),
        Command::Bench { which: BenchCommand::Window(args) } => {
            let session = if args.backend.contains(&Backend::Mpi) { Some(mpi_support::init()?) } else { None };
            Ok(bench::window(&args, &exe, session.as_ref())?)
        }
        // A shard process's errors are already reported (to the hub, or on stderr).
        Command::Shard => match shard_process_main() {
            Ok(()) => Ok(()),
            Err(_) => std::process::exit(ExitCode::RunFailed.code()),
        },
    }
}

/// The options of `thermocline run`; their defaults run the default experiment.
#[derive(clap::Args, Default)]
struct RunArgs {
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
    /// Instead of a progress bar, print a progress line (with the expected time left) to stderr
    /// every so much wall time, e.g. "30 s": for batch jobs, whose stderr is a file.
    #[arg(long, value_name = "DURATION")]
    log_every: Option<thermocline_bus::SimDuration>,
    /// Count every syscall of every direct-host binary (table `direct_syscalls`).
    #[arg(long)]
    syscall_stats: bool,
    /// Write each direct host's packets to `hosts/<host>/packets.pcap` (simulated timestamps).
    #[arg(long)]
    pcap: bool,
    /// Also print notes about this machine that do not change results (e.g. that direct hosts'
    /// programs can see RDRAND and RDSEED where CPUID faulting is not available).
    #[arg(long, short)]
    verbose: bool,
    /// Replace the output folder even if it holds files that are not a Thermocline run.
    #[arg(long)]
    force: bool,
    /// Run even if the estimated memory exceeds this machine's.
    #[arg(long)]
    ignore_memory_check: bool,
    /// Also write `report.html` (as `thermocline report` does) into the output folder.
    #[arg(long)]
    report: bool,
}

/// The options of `thermocline report`.
#[derive(clap::Args)]
struct ReportArgs {
    /// The output folder of a finished run.
    dir: PathBuf,
}

/// `thermocline report`: write the page and say where it is.
fn report(args: &ReportArgs) -> Result<(), Failure> {
    let path = thermocline::report::write_report(&args.dir).context("writing the report").map_err(Failure::output)?;
    println!("{}", path.display());
    Ok(())
}

/// `thermocline run`: check everything that can be checked, take the output folder, simulate,
/// and put the results in place only if all of it succeeded.
fn run(args: RunArgs, exe: PathBuf) -> Result<(), Failure> {
    let mut spec = match &args.spec {
        Some(path) if shadow::is_shadow_config(path) => {
            let imported = shadow::load(path).map_err(Failure::spec)?;
            for note in &imported.notes {
                eprintln!("note: {note}");
            }
            imported.spec
        }
        Some(path) => Spec::load(path).map_err(Failure::spec)?,
        None => Spec::default_experiment(),
    };
    let origin = args.spec.as_ref().map_or("<default spec>".to_string(), |p| p.display().to_string());
    if let Some(seed) = args.seed {
        spec.run.seed = seed;
    }
    spec.output.syscall_stats |= args.syscall_stats;
    spec.output.pcap |= args.pcap;
    spec.output.verbose |= args.verbose;
    let backend = args.backend.unwrap_or(spec.run.backend);
    let session = if backend == Backend::Mpi { Some(mpi_support::init().map_err(Failure::run)?) } else { None };
    let shards = match &session {
        Some(s) => {
            let ranks = s.size();
            if let Some(n) = args.shards
                && n != ranks
            {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--shards {n}, but mpirun started {ranks} ranks: under MPI the shard count is the number of ranks"
                )));
            }
            ranks
        }
        None => match args.shards {
            Some(n) => check_shards(n, "--shards").map_err(|e| Failure::usage(anyhow::anyhow!(e)))?,
            None => check_shards(spec.run.shards, "run.shards")
                .map_err(|e| Failure::spec(place_at_key(args.spec.as_deref(), &origin, &e)))?,
        },
    };
    let root = session.as_ref().is_none_or(|s| s.rank().0 == 0);
    let target = thermocline::outdir::resolve(args.out.as_ref().unwrap_or(&spec.output.dir))
        .map_err(|e| Failure::output(e.into()))?;
    let window = check_run(&spec, shards, args.ignore_memory_check)
        .map_err(|e| Failure::spec(place_at_key(args.spec.as_deref(), &origin, &e)))?;
    // Take the output folder before simulating; engines that write files (direct hosts' working
    // directories) write into its staging folder, named by the target alone.
    let outdir = match root.then(|| OutputDir::prepare(&target, args.spec.as_deref(), args.force)) {
        Some(Ok(dir)) => Some(dir),
        Some(Err(e)) => match &session {
            Some(s) => s.abort(&e.to_string()),
            None => return Err(Failure::output(e.into())),
        },
        None => None,
    };
    if let Some(s) = &session {
        // No rank writes into the staging folder before rank 0 has emptied it.
        s.barrier();
    }
    spec.output.dir = staging_path(&target);
    let plan = RunPlan { shards, backend, exe, spec };
    let mode = match (root, args.log_every, args.quiet) {
        (false, ..) => ProgressMode::Off,
        (true, Some(every), _) => ProgressMode::Lines(Duration::from_nanos(every.as_nanos().max(1_000_000))),
        (true, None, false) => ProgressMode::Bar,
        (true, None, true) => ProgressMode::Off,
    };
    let display = ProgressDisplay::start(window.end, mode);
    let result = execute(&plan, window, display.sink(), session.as_ref());
    display.finish();
    let outcome = match result {
        Ok(Some(outcome)) => outcome,
        // Ranks other than 0 hand their results to rank 0, which writes them.
        Ok(None) => return Ok(()),
        Err(e) => return Err(abandon(outdir, Failure::run(anyhow::Error::new(e).context("the run failed")))),
    };
    let outdir = outdir.expect("rank 0 holds the output folder");
    let summary = match write_outputs(outdir.staging(), &target, &plan, &outcome) {
        Ok(summary) => summary,
        Err(e) => return Err(abandon(Some(outdir), Failure::output(e.context("writing the results")))),
    };
    // The report goes in before the folder is published, so the folder is whole with it or absent.
    if args.report
        && let Err(e) = thermocline::report::write_report(outdir.staging())
    {
        return Err(abandon(Some(outdir), Failure::output(anyhow::Error::new(e).context("writing the report"))));
    }
    outdir.commit().map_err(|e| Failure::output(e.into()))?;
    if !args.quiet {
        print!("{}", human_summary(&summary, &target));
    }
    Ok(())
}

/// `thermocline import`: the Shadow configuration as a spec on stdout, its notes on stderr.
fn import(config: &std::path::Path) -> Result<(), Failure> {
    let text =
        std::fs::read_to_string(config).map_err(|e| Failure::usage(anyhow::anyhow!("{}: {e}", config.display())))?;
    let folder = config.parent().unwrap_or(std::path::Path::new("."));
    let imported = shadow::import(&text, &config.display().to_string(), folder).map_err(Failure::spec)?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    let name = config.file_name().map_or(config.display().to_string(), |n| n.to_string_lossy().into_owned());
    print!("{}", imported.to_toml(&name));
    Ok(())
}

/// A spec error placed at the key it names, in the spec file when there is one.
fn place_at_key(path: Option<&std::path::Path>, origin: &str, message: &str) -> anyhow::Error {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
        None => thermocline::spec::DEFAULT_SPEC.to_string(),
    };
    thermocline::spec::locate_message(&text, origin, message).into()
}

/// Keep a failed run's files apart from the target, and say where they went.
fn abandon(outdir: Option<OutputDir>, failure: Failure) -> Failure {
    let Some(outdir) = outdir else { return failure };
    match outdir.abandon() {
        Ok(Abandoned::Kept(dir)) => {
            eprintln!("note: the failed run's files are in {} (the output folder is unchanged)", dir.display())
        }
        Ok(Abandoned::Removed) => {}
        Err(e) => eprintln!("note: {e}"),
    }
    failure
}

/// The process exit codes (documented in the README).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ExitCode {
    /// The run failed: a shard, a process, an expected exit not met.
    RunFailed,
    /// Bad usage or an invalid spec.
    Usage,
    /// The outputs could not be written, or the output folder is refused or in use.
    Output,
}

impl ExitCode {
    fn code(self) -> i32 {
        match self {
            ExitCode::RunFailed => 1,
            ExitCode::Usage => 2,
            ExitCode::Output => 3,
        }
    }
}

/// An error and the exit code it ends the process with.
struct Failure {
    code: ExitCode,
    error: anyhow::Error,
}

impl Failure {
    fn run(error: anyhow::Error) -> Self {
        Failure { code: ExitCode::RunFailed, error }
    }
    fn usage(error: anyhow::Error) -> Self {
        Failure { code: ExitCode::Usage, error }
    }
    fn spec(error: impl Into<anyhow::Error>) -> Self {
        Failure { code: ExitCode::Usage, error: error.into() }
    }
    fn output(error: anyhow::Error) -> Self {
        Failure { code: ExitCode::Output, error }
    }
}

/// Any other error of a command (a benchmark, `partition`) is a failed run.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::run(error)
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the message already
/// holds is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(part.trim()) {
            continue;
        }
        if !text.is_empty() {
            text += ": ";
        }
        text += &part;
    }
    text
}
