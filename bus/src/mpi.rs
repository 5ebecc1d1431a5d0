//! The MPI backend: one rank per shard (rank = shard id, world size = shard count), on the
//! standard transport of HPC clusters.
//!
//! Per window every rank sends every other rank exactly one message: its encoded batch for that
//! rank (the same codec as every other backend, possibly empty) followed by a 16-byte trailer with
//! its next time and the events it executed. Sends are `MPI_Isend`; each rank then receives one
//! message from every other rank in rank order with a matched probe (`MPI_Mprobe`/`MPI_Mrecv`,
//! which tells the size) and waits for its sends. That single personalised all-to-all round both
//! moves the batches and lets every rank compute the global minimum locally, in place: batches are
//! sent from and received into the window loop's own buffers, with no packing copy. MPI's
//! non-overtaking rule (messages between two ranks on one communicator and tag arrive in order)
//! keeps windows apart. Inbound events are decoded and sorted canonically by the window loop,
//! never used in receive order.
//!
//! Reports reach rank 0 by `MPI_Gather` (lengths) and `MPI_Gatherv` (bytes). A rank that fails —
//! engine error, panic, bad batch — prints its error and calls `MPI_Abort`, which ends every rank
//! of the job: nobody waits at the next receive. A rank that stalls without failing (stopped, or
//! hung) is not detected: the others wait in `MPI_Mprobe`, which MPI cannot time out portably, and
//! a heartbeat to tell a stall from a long window would need `MPI_THREAD_MULTIPLE`; the job's
//! wall-time limit (`mpirun --timeout`, the scheduler's) is the remedy (docs/cluster.md).

use crate::engine::Engine;
use crate::error::{BusError, EngineError, panic_message};
use crate::exchange::{Exchange, Round};
use crate::ids::ShardId;
use crate::report::ShardReport;
use crate::time::SimTime;
use crate::window::{NoProgress, ProgressSink, WindowConfig, run_shard};
use ::mpi::Count;
use ::mpi::datatype::{Partition, PartitionMut};
use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::traits::{Root, *};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Bytes of the trailer after each window message: next time and events, big-endian u64s.
const TRAILER_BYTES: usize = 16;

/// Tag of window messages (reports use collectives, which never match point-to-point receives).
const WINDOW_TAG: i32 = 7;

/// An initialised MPI environment; MPI is finalised when it is dropped.
pub struct MpiSession {
    _universe: Universe,
    world: SimpleCommunicator,
}

impl MpiSession {
    /// Initialise MPI (once per process). Fails if MPI was already initialised.
    pub fn init() -> Result<Self, BusError> {
        let (universe, _threading) =
            ::mpi::initialize_with_threading(::mpi::Threading::Funneled).ok_or_else(|| BusError::Transport {
                shard: ShardId(u32::MAX),
                detail: "MPI is already initialised in this process".into(),
            })?;
        let world = universe.world();
        Ok(MpiSession { _universe: universe, world })
    }

    /// This process's rank, which is its shard.
    pub fn rank(&self) -> ShardId {
        ShardId(self.world.rank() as u32)
    }

    /// The number of ranks, which is the shard count.
    pub fn size(&self) -> u32 {
        self.world.size() as u32
    }

    /// The world communicator, for benchmarks that compare against raw collectives.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Wait until every rank got here (e.g. until rank 0 has prepared the output folder).
    pub fn barrier(&self) {
        use mpi::collective::CommunicatorCollectives;
        self.world.barrier();
    }

    /// End the whole MPI job after printing `message` (used for failures outside a run).
    pub fn abort(&self, message: &str) -> ! {
        say(&format!("thermocline: rank {}: {message}; aborting the MPI job\n", self.world.rank()));
        self.world.abort(1)
    }
}

/// Write `line` to stderr in one `write`: `eprintln!` writes its pieces one by one (stderr is
/// unbuffered), and the launcher's abort banner, printed meanwhile, could land between them.
fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One rank's view of the MPI job as an [`Exchange`].
struct MpiExchange<'a> {
    world: &'a SimpleCommunicator,
    me: ShardId,
    shards: u32,
    progress: &'a dyn ProgressSink,
}

fn count(n: usize, shard: ShardId, what: &str) -> Result<Count, BusError> {
    Count::try_from(n).map_err(|_| BusError::Transport {
        shard,
        detail: format!("{what} of {n} bytes exceeds MPI's 2 GiB count limit"),
    })
}

impl Exchange for MpiExchange<'_> {
    fn shard(&self) -> ShardId {
        self.me
    }

    fn shard_count(&self) -> u32 {
        self.shards
    }

    fn exchange(&mut self, round: &mut Round) -> Result<SimTime, BusError> {
        let me = self.me.index();
        let mut trailer = [0u8; TRAILER_BYTES];
        trailer[..8].copy_from_slice(&round.local_next.as_nanos().to_be_bytes());
        trailer[8..].copy_from_slice(&round.events.to_be_bytes());
        for (d, out) in round.outgoing.iter_mut().enumerate() {
            if d != me {
                out.extend_from_slice(&trailer);
                count(out.len(), self.me, "a batch")?;
            }
        }
        let mut global = round.local_next.as_nanos();
        let mut events = round.events;
        let mut bad: Option<BusError> = None;
        ::mpi::request::scope(|scope| {
            let sends: Vec<_> = round
                .outgoing
                .iter()
                .enumerate()
                .filter(|&(d, _)| d != me)
                .map(|(d, out)| {
                    self.world.process_at_rank(d as i32).immediate_send_with_tag(scope, &out[..], WINDOW_TAG)
                })
                .collect();
            for (s, inbox) in round.incoming.iter_mut().enumerate() {
                inbox.clear();
                if s == me {
                    continue;
                }
                let (msg, status) = self.world.process_at_rank(s as i32).matched_probe_with_tag(WINDOW_TAG);
                let len = status.count(u8::equivalent_datatype()) as usize;
                inbox.resize(len, 0);
                msg.matched_receive_into(&mut inbox[..]);
                if len < TRAILER_BYTES {
                    bad.get_or_insert(BusError::Transport {
                        shard: self.me,
                        detail: format!("a {len}-byte window message from rank {s}"),
                    });
                    continue;
                }
                let t = &inbox[len - TRAILER_BYTES..];
                global = global.min(u64::from_be_bytes(t[..8].try_into().expect("8 bytes")));
                events += u64::from_be_bytes(t[8..].try_into().expect("8 bytes"));
                inbox.truncate(len - TRAILER_BYTES);
            }
            for r in sends {
                r.wait();
            }
        });
        if let Some(e) = bad {
            return Err(e);
        }
        if self.me.0 == 0 {
            self.progress.window_done(self.me, SimTime::from_nanos(global), events);
        }
        for b in round.outgoing.iter_mut() {
            b.clear();
        }
        Ok(SimTime::from_nanos(global))
    }

    fn gather(&mut self, report: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, BusError> {
        let root = self.world.process_at_rank(0);
        let len = count(report.len(), self.me, "the shard report")?;
        if self.me.0 != 0 {
            root.gather_into(&len);
            root.gather_varcount_into(&report[..]);
            return Ok(None);
        }
        let mut lens: Vec<Count> = vec![0; self.shards as usize];
        root.gather_into_root(&len, &mut lens[..]);
        let mut displs = Vec::with_capacity(lens.len());
        let mut at: Count = 0;
        for &l in &lens {
            displs.push(at);
            at = at.checked_add(l).ok_or_else(|| BusError::Transport {
                shard: self.me,
                detail: "reports exceed MPI's 2 GiB count limit".into(),
            })?;
        }
        let mut all = vec![0u8; at as usize];
        {
            let mut part = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            root.gather_varcount_into_root(&report[..], &mut part);
        }
        Ok(Some(lens.iter().zip(&displs).map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec()).collect()))
    }

    fn fail(&mut self, error: &BusError) {
        say(&format!("thermocline: rank {} failed: {}; aborting the MPI job\n", self.me.0, error.cause_text()));
        self.world.abort(1)
    }
}

/// Run this rank's shard to the end of the simulation. Rank 0 gets every shard's report and
/// reports progress; other ranks get `None`. Any failure aborts the whole MPI job.
pub fn run_mpi<B>(
    session: &MpiSession,
    config: &WindowConfig,
    build: B,
    progress: &dyn ProgressSink,
) -> Result<Option<Vec<ShardReport>>, BusError>
where
    B: FnOnce(ShardId, u32) -> Result<Box<dyn Engine>, EngineError>,
{
    let (me, shards) = (session.rank(), session.size());
    let mut exchange = MpiExchange { world: &session.world, me, shards, progress };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut engine = build(me, shards).map_err(|source| BusError::Engine { shard: me, source })?;
        run_shard(engine.as_mut(), &mut exchange, config, &NoProgress)
    }));
    match outcome {
        Ok(Ok(reports)) => Ok(reports),
        Ok(Err(e)) => {
            exchange.fail(&e);
            Err(e)
        }
        Err(payload) => {
            let e = BusError::Panicked { shard: me, message: panic_message(payload.as_ref()) };
            exchange.fail(&e);
            Err(e)
        }
    }
}

/// Wall microseconds per round of raw collectives, the baseline for the window protocol.
#[derive(Copy, Clone, Debug)]
pub struct RawCollectives {
    /// `MPI_Allreduce(MIN)` over one u64 plus `MPI_Alltoallv` of the batch bytes to every other
    /// rank (zero counts included): the two collectives a window needs.
    pub allreduce_alltoallv_us: f64,
    /// `MPI_Allreduce(MIN)` alone: the floor of any window, even an empty one.
    pub allreduce_only_us: f64,
}

/// Measure [`RawCollectives`] over `iterations` rounds with `bytes_per_peer` bytes to every other
/// rank; each figure is the slowest rank's (the same on every rank).
pub fn raw_collectives_us(session: &MpiSession, iterations: u64, bytes_per_peer: usize) -> RawCollectives {
    use ::mpi::collective::SystemOperation;
    let world = &session.world;
    let n = session.size() as usize;
    let me = session.rank().index();
    let counts: Vec<Count> = (0..n).map(|r| if r == me { 0 } else { bytes_per_peer as Count }).collect();
    let displs: Vec<Count> = (0..n).map(|r| (r * bytes_per_peer) as Count).collect();
    // At least one byte each: two empty vectors share a dangling pointer, and MPI rejects an
    // all-to-all whose send and receive buffers coincide.
    let send = vec![0u8; (n * bytes_per_peer).max(1)];
    let mut recv = vec![0u8; (n * bytes_per_peer).max(1)];
    let mut time_rounds = |with_alltoallv: bool| {
        world.barrier();
        let started = std::time::Instant::now();
        for i in 0..iterations {
            let local = i + me as u64;
            let mut global = 0u64;
            world.all_reduce_into(&local, &mut global, SystemOperation::min());
            if with_alltoallv {
                let s = Partition::new(&send[..], &counts[..], &displs[..]);
                let mut r = PartitionMut::new(&mut recv[..], &counts[..], &displs[..]);
                world.all_to_all_varcount_into(&s, &mut r);
            }
        }
        let mine = started.elapsed().as_secs_f64() * 1e6 / iterations.max(1) as f64;
        let mut slowest = 0f64;
        world.all_reduce_into(&mine, &mut slowest, SystemOperation::max());
        slowest
    };
    let allreduce_alltoallv_us = time_rounds(true);
    let allreduce_only_us = time_rounds(false);
    RawCollectives { allreduce_alltoallv_us, allreduce_only_us }
}
