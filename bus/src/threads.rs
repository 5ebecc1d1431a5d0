//! The threads backend: every shard is a thread of one process, exchanging batches through
//! shared slots and one barrier per window.
//!
//! Slots are double-buffered by window parity, so a single barrier per window suffices: a shard
//! writes window `w`'s batches into parity `w % 2` only after everyone has passed barrier `w - 1`,
//! i.e. after everyone finished reading parity `w % 2` from window `w - 2`. The barrier spins
//! briefly, then sleeps, and can be broken: a failing shard aborts it and every waiter returns
//! the failure instead of hanging.

use crate::engine::Engine;
use crate::error::{BusError, EngineError, panic_message};
use crate::exchange::{Exchange, Round};
use crate::ids::ShardId;
use crate::report::ShardReport;
use crate::time::SimTime;
use crate::window::{ProgressSink, WindowConfig, run_shard};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// Spin iterations before a waiting shard goes to sleep.
const SPIN_LIMIT: u32 = 20_000;

/// A reusable barrier that spins then sleeps, and that a failing party can break.
pub struct AbortableBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicU64,
    aborted: AtomicBool,
    failure: Mutex<Option<BusError>>,
    /// Waiters asleep on `wake`; the releaser only takes the lock and notifies when non-zero.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl AbortableBarrier {
    /// A barrier for `parties` threads.
    pub fn new(parties: usize) -> Self {
        AbortableBarrier {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            failure: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    fn failure(&self) -> BusError {
        match &*self.failure.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => e.as_failure(),
            None => BusError::ShardFailed { shard: ShardId(u32::MAX), cause: "aborted".into() },
        }
    }

    /// Wait until all parties arrive, or fail with the first recorded failure.
    pub fn wait(&self) -> Result<(), BusError> {
        let generation = self.generation.load(Ordering::Acquire);
        if self.aborted.load(Ordering::Acquire) {
            return Err(self.failure());
        }
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            // SeqCst store then load, against the sleeper's SeqCst increment then load: either
            // we see the sleeper and notify under the lock, or it sees the new generation.
            self.generation.store(generation + 1, Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
                self.wake.notify_all();
            }
            return Ok(());
        }
        for i in 0..SPIN_LIMIT {
            if self.generation.load(Ordering::Acquire) != generation {
                return Ok(());
            }
            if self.aborted.load(Ordering::Acquire) {
                return Err(self.failure());
            }
            if i % 64 == 63 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            if self.generation.load(Ordering::SeqCst) != generation {
                break Ok(());
            }
            if self.aborted.load(Ordering::SeqCst) {
                break Err(self.failure());
            }
            guard = self.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        result
    }

    /// Break the barrier: record `error` if it is the first failure, and wake every waiter.
    pub fn abort(&self, error: &BusError) {
        {
            let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = Some(error.as_failure());
            }
        }
        self.aborted.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.wake.notify_all();
    }

    /// The first failure recorded, if any.
    pub fn first_failure(&self) -> Option<BusError> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(BusError::as_failure)
    }
}

/// State shared by the shard threads of one run.
struct Shared {
    shards: usize,
    barrier: AbortableBarrier,
    /// `slots[parity][src * shards + dst]`.
    slots: [Vec<Mutex<Vec<u8>>>; 2],
    /// `next[parity][shard]`.
    next: [Vec<AtomicU64>; 2],
    reports: Vec<Mutex<Vec<u8>>>,
}

/// One shard's handle on the shared state.
struct ThreadExchange<'a> {
    shared: &'a Shared,
    me: ShardId,
    parity: usize,
}

impl Exchange for ThreadExchange<'_> {
    fn shard(&self) -> ShardId {
        self.me
    }

    fn shard_count(&self) -> u32 {
        self.shared.shards as u32
    }

    fn exchange(&mut self, round: &mut Round) -> Result<SimTime, BusError> {
        let (n, me, p) = (self.shared.shards, self.me.index(), self.parity);
        for dst in 0..n {
            if dst != me {
                let mut slot = self.shared.slots[p][me * n + dst].lock().unwrap_or_else(|e| e.into_inner());
                std::mem::swap(&mut *slot, &mut round.outgoing[dst]);
                round.outgoing[dst].clear();
            }
        }
        self.shared.next[p][me].store(round.local_next.as_nanos(), Ordering::Release);
        self.shared.barrier.wait()?;
        let mut global = u64::MAX;
        for src in 0..n {
            global = global.min(self.shared.next[p][src].load(Ordering::Acquire));
            round.incoming[src].clear();
            if src != me {
                let mut slot = self.shared.slots[p][src * n + me].lock().unwrap_or_else(|e| e.into_inner());
                std::mem::swap(&mut *slot, &mut round.incoming[src]);
            }
        }
        self.parity ^= 1;
        Ok(SimTime::from_nanos(global))
    }

    fn gather(&mut self, report: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>, BusError> {
        *self.shared.reports[self.me.index()].lock().unwrap_or_else(|e| e.into_inner()) = report;
        self.shared.barrier.wait()?;
        if self.me.0 != 0 {
            return Ok(None);
        }
        let all = self
            .shared
            .reports
            .iter()
            .map(|r| std::mem::take(&mut *r.lock().unwrap_or_else(|e| e.into_inner())))
            .collect();
        Ok(Some(all))
    }

    fn fail(&mut self, error: &BusError) {
        self.shared.barrier.abort(error);
    }
}

/// Run `shards` shards as threads of this process. `build` constructs each shard's engine on its
/// own thread. Returns every shard's report, or the first shard failure (by whom and why).
pub fn run_threads<B>(
    shards: u32,
    config: &WindowConfig,
    build: B,
    progress: &dyn ProgressSink,
) -> Result<Vec<ShardReport>, BusError>
where
    B: Fn(ShardId) -> Result<Box<dyn Engine>, EngineError> + Sync,
{
    assert!(shards > 0, "a run needs at least one shard");
    let n = shards as usize;
    let shared = Shared {
        shards: n,
        barrier: AbortableBarrier::new(n),
        slots: [
            (0..n * n).map(|_| Mutex::new(Vec::new())).collect(),
            (0..n * n).map(|_| Mutex::new(Vec::new())).collect(),
        ],
        next: [(0..n).map(|_| AtomicU64::new(u64::MAX)).collect(), (0..n).map(|_| AtomicU64::new(u64::MAX)).collect()],
        reports: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
    };
    let shard_main = |me: ShardId| -> Result<Option<Vec<ShardReport>>, BusError> {
        let mut exchange = ThreadExchange { shared: &shared, me, parity: 0 };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut engine = build(me).map_err(|source| BusError::Engine { shard: me, source })?;
            run_shard(engine.as_mut(), &mut exchange, config, progress)
        }));
        match outcome {
            Ok(Err(e)) => {
                exchange.fail(&e);
                Err(e)
            }
            Ok(ok) => ok,
            Err(payload) => {
                let e = BusError::Panicked { shard: me, message: panic_message(payload.as_ref()) };
                exchange.fail(&e);
                Err(e)
            }
        }
    };
    let shard0 = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n - 1);
        for s in 1..shards {
            let shard_main = &shard_main;
            let spawned = std::thread::Builder::new()
                .name(format!("shard-{s}"))
                .spawn_scoped(scope, move || shard_main(ShardId(s)));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Without this thread the barrier can never fill: break it for the others.
                    let detail = format!("could not start the shard's thread: {e}");
                    shared.barrier.abort(&BusError::Transport { shard: ShardId(s), detail });
                    break;
                }
            }
        }
        let shard0 = shard_main(ShardId(0));
        for h in handles {
            // Shard threads catch their panics; a join error would be a bug in this module.
            let _ = h.join();
        }
        shard0
    });
    if let Some(failure) = shared.barrier.first_failure() {
        return Err(failure);
    }
    match shard0 {
        Ok(Some(reports)) => Ok(reports),
        Ok(None) => unreachable!("shard 0 gathers the reports"),
        Err(e) => Err(e),
    }
}
