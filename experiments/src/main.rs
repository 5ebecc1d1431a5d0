//! `thermocline`: run experiments and benchmarks of the Thermocline network simulator.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use thermocline::bench::{self, PholdBench, WindowBench};
use thermocline::output::{human_summary, write_outputs};
use thermocline::progress::ProgressDisplay;
use thermocline::run::{RunPlan, execute, shard_process_main, window_config};
use thermocline::spec::{Backend, Spec};
use thermocline_bus::process::reported_to_hub;

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
        /// Backend (default: the spec's `run.backend`).
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
    },
    /// Benchmarks that print their figures.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
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
        Command::Run {
            spec,
            shards,
            backend,
            out,
            seed,
            quiet,
        } => {
            let mut spec = match &spec {
                Some(path) => Spec::load(path)?,
                None => Spec::default_experiment(),
            };
            if let Some(seed) = seed {
                spec.run.seed = seed;
            }
            let plan = RunPlan {
                shards: shards.unwrap_or(spec.run.shards),
                backend: backend.unwrap_or(spec.run.backend),
                exe,
                spec,
            };
            anyhow::ensure!(plan.shards > 0, "--shards must be at least 1");
            let window = window_config(&plan.spec, plan.shards)
                .map_err(anyhow::Error::msg)
                .context("invalid experiment")?;
            let dir = out.unwrap_or_else(|| plan.spec.output.dir.clone());
            let display = ProgressDisplay::start(window.end, !quiet);
            let result = execute(&plan, display.sink());
            display.finish();
            let outcome = result.context("the run failed")?;
            let summary = write_outputs(&dir, &plan, &outcome)?;
            if !quiet {
                print!("{}", human_summary(&summary, &dir));
            }
            Ok(())
        }
        Command::Bench {
            which: BenchCommand::Phold(args),
        } => bench::phold(&args, &exe),
        Command::Bench {
            which: BenchCommand::Window(args),
        } => bench::window(&args, &exe),
        Command::Shard => match shard_process_main() {
            Ok(()) => Ok(()),
            // The hub reports the failure for the whole run; say nothing twice.
            Err(e) if reported_to_hub(&e) => std::process::exit(1),
            Err(e) => Err(e.into()),
        },
    }
}
