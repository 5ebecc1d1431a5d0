//! The MPI backend: one rank per shard (rank = shard id, world size = shard count), on the
//! standard transport of HPC clusters.
//!
//! Per window, one `MPI_Alltoall` carries, from every rank to every rank, four u64s: the byte
//! length of the batch for that destination, the sender's next time, the sender's total outbound
//! bytes and the events it executed. Every rank then knows the global minimum (the next window)
//! and whether anyone sends anything; only then, and on every rank alike, an `MPI_Alltoallv`
//! moves the batches — encoded with the same codec as every other backend. Inbound events are
//! decoded and sorted canonically by the window loop, never used in receive order.
//!
//! Reports reach rank 0 by `MPI_Gather` (lengths) and `MPI_Gatherv` (bytes). A rank that fails —
//! engine error, panic, bad batch — prints its error and calls `MPI_Abort`, which ends every rank
//! of the job: nobody waits at the next collective.

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

/// Fields per destination in the per-window header exchange.
const HEADER_WORDS: usize = 4;

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

    /// End the whole MPI job after printing `message` (used for failures outside a run).
    pub fn abort(&self, message: &str) -> ! {
        eprintln!("thermocline: rank {}: {message}; aborting the MPI job", self.world.rank());
        self.world.abort(1)
    }
}

/// One rank's view of the MPI job as an [`Exchange`].
struct MpiExchange<'a> {
    world: &'a SimpleCommunicator,
    me: ShardId,
    shards: u32,
    progress: &'a dyn ProgressSink,
    header: Vec<u64>,
    header_in: Vec<u64>,
    send: Vec<u8>,
    recv: Vec<u8>,
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
        let n = self.shards as usize;
        let total: usize = round.outgoing.iter().map(Vec::len).sum();
        for (d, out) in round.outgoing.iter().enumerate() {
            let h = &mut self.header[d * HEADER_WORDS..(d + 1) * HEADER_WORDS];
            h.copy_from_slice(&[out.len() as u64, round.local_next.as_nanos(), total as u64, round.events]);
        }
        self.world.all_to_all_into(&self.header[..], &mut self.header_in[..]);
        let from = |s: usize, k: usize| self.header_in[s * HEADER_WORDS + k];
        let global = (0..n).map(|s| from(s, 1)).min().unwrap_or(u64::MAX);
        let anyone_sends = (0..n).any(|s| from(s, 2) > 0);
        if self.me.0 == 0 {
            let events: u64 = (0..n).map(|s| from(s, 3)).sum();
            self.progress.window_done(self.me, SimTime::from_nanos(global), events);
        }
        for b in round.incoming.iter_mut() {
            b.clear();
        }
        if anyone_sends {
            let mut send_counts = Vec::with_capacity(n);
            let mut send_displs = Vec::with_capacity(n);
            self.send.clear();
            for out in round.outgoing.iter() {
                send_displs.push(count(self.send.len(), self.me, "outbound data")?);
                send_counts.push(count(out.len(), self.me, "a batch")?);
                self.send.extend_from_slice(out);
            }
            let mut recv_counts = Vec::with_capacity(n);
            let mut recv_displs = Vec::with_capacity(n);
            let mut at = 0usize;
            for s in 0..n {
                let len = from(s, 0) as usize;
                recv_displs.push(count(at, self.me, "inbound data")?);
                recv_counts.push(count(len, self.me, "a batch")?);
                at += len;
            }
            self.recv.clear();
            self.recv.resize(at, 0);
            {
                let send = Partition::new(&self.send[..], &send_counts[..], &send_displs[..]);
                let mut recv = PartitionMut::new(&mut self.recv[..], &recv_counts[..], &recv_displs[..]);
                self.world.all_to_all_varcount_into(&send, &mut recv);
            }
            for s in 0..n {
                let (d, c) = (recv_displs[s] as usize, recv_counts[s] as usize);
                if s != self.me.index() {
                    round.incoming[s].extend_from_slice(&self.recv[d..d + c]);
                }
            }
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
        eprintln!("thermocline: rank {} failed: {}; aborting the MPI job", self.me.0, error.cause_text());
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
    let n = shards as usize;
    let mut exchange = MpiExchange {
        world: &session.world,
        me,
        shards,
        progress,
        header: vec![0; n * HEADER_WORDS],
        header_in: vec![0; n * HEADER_WORDS],
        send: Vec::new(),
        recv: Vec::new(),
    };
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

/// The raw-collectives baseline for the window protocol: `iterations` rounds of
/// `MPI_Allreduce(MIN)` over one u64 followed by `MPI_Alltoallv` of `bytes_per_peer` bytes to
/// every other rank — what a window needs at minimum, without the protocol around it. Returns
/// the slowest rank's wall microseconds per round (on every rank).
pub fn raw_collectives_us(session: &MpiSession, iterations: u64, bytes_per_peer: usize) -> f64 {
    use ::mpi::collective::SystemOperation;
    let world = &session.world;
    let n = session.size() as usize;
    let me = session.rank().index();
    let counts: Vec<Count> = (0..n).map(|r| if r == me { 0 } else { bytes_per_peer as Count }).collect();
    let displs: Vec<Count> = (0..n).map(|r| (r * bytes_per_peer) as Count).collect();
    let send = vec![0u8; n * bytes_per_peer];
    let mut recv = vec![0u8; n * bytes_per_peer];
    world.barrier();
    let started = std::time::Instant::now();
    for i in 0..iterations {
        let local = i + me as u64;
        let mut global = 0u64;
        world.all_reduce_into(&local, &mut global, SystemOperation::min());
        let s = Partition::new(&send[..], &counts[..], &displs[..]);
        let mut r = PartitionMut::new(&mut recv[..], &counts[..], &displs[..]);
        world.all_to_all_varcount_into(&s, &mut r);
    }
    let mine = started.elapsed().as_secs_f64() * 1e6 / iterations.max(1) as f64;
    let mut slowest = 0f64;
    world.all_reduce_into(&mine, &mut slowest, SystemOperation::max());
    slowest
}
