//! The conservative window loop that every shard runs, whatever the backend.
//!
//! For each window `[start, end)`: run the engine to `end` (events for other shards go to the
//! outbox), encode the outbox per destination, exchange batches and next-event times with all
//! shards, decode and check what arrived, sort it canonically and deliver it. The next window
//! starts at the global minimum of next local events and delivery times and lasts `runahead`,
//! the smallest latency that can cross a shard boundary, so nothing another shard sends during a
//! window can be due inside it.

use crate::codec::{decode_batch, encode_batch};
use crate::engine::{Engine, Outbox};
use crate::error::BusError;
use crate::event::{Event, sort_canonical};
use crate::exchange::{Exchange, Round};
use crate::ids::ShardId;
use crate::report::{ShardReport, decode_gathered};
use crate::stats::{PairStats, WindowLog, WindowStats};
use crate::time::{SimDuration, SimTime};
use bytes::Bytes;
use std::time::Instant;

/// The schedule every shard agrees on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// The simulation ends here: events at or after `end` are not executed.
    pub end: SimTime,
    /// Window length: the smallest latency that can cross a shard boundary
    /// ([`SimDuration::INFINITE`] for a single shard).
    pub runahead: SimDuration,
}

/// Receives progress from the window loop; called once per window by every shard.
pub trait ProgressSink: Sync {
    /// `shard` finished a window ending at `reached`, having executed `events` events in it.
    fn window_done(&self, shard: ShardId, reached: SimTime, events: u64);
}

/// A sink that ignores progress.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn window_done(&self, _: ShardId, _: SimTime, _: u64) {}
}

/// Every table `engine` hands out now, into `into`.
fn take_all(engine: &mut dyn Engine, into: &mut Vec<crate::engine::Table>) {
    loop {
        let tables = engine.take_tables();
        if tables.is_empty() {
            return;
        }
        into.extend(tables);
    }
}

/// Wall nanoseconds from `from` to `to`.
fn nanos_between(from: Instant, to: Instant) -> u64 {
    to.duration_since(from).as_nanos() as u64
}

/// Run one shard to the end of the simulation. On the coordinator (shard 0) returns every shard's
/// report; elsewhere `None`. On error, tells the other shards through `exchange` before returning.
pub fn run_shard(
    engine: &mut dyn Engine,
    exchange: &mut dyn Exchange,
    config: &WindowConfig,
    progress: &dyn ProgressSink,
) -> Result<Option<Vec<ShardReport>>, BusError> {
    let result = run_windows(engine, exchange, config, progress);
    if let Err(e) = &result {
        exchange.fail(e);
    }
    result
}

fn run_windows(
    engine: &mut dyn Engine,
    exchange: &mut dyn Exchange,
    config: &WindowConfig,
    progress: &dyn ProgressSink,
) -> Result<Option<Vec<ShardReport>>, BusError> {
    let me = exchange.shard();
    let shards = exchange.shard_count();
    let engine_err = |source| BusError::Engine { shard: me, source };
    let contract = |detail: String| BusError::Contract { shard: me, detail };
    if config.runahead == SimDuration::ZERO {
        return Err(contract("the runahead is zero: windows could never advance".into()));
    }
    let started = Instant::now();
    let mut outbox = Outbox::new(shards);
    let mut round = Round::new(shards);
    let mut inbound: Vec<Event> = Vec::new();
    let mut log = WindowLog::default();
    let mut pair_scratch = vec![PairStats::default(); shards as usize];
    // Tables the engine handed out during the run: they come first in the report.
    let mut early = Vec::new();

    // Round 0 carries no events: it agrees on where the first window starts.
    round.local_next = engine.next_event_time();
    let mut start = exchange.exchange(&mut round)?;
    let mut window = 0u64;
    // One clock read per phase boundary: it ends one phase and starts the next.
    let mut t_exec = Instant::now();
    while start < config.end {
        let end = start.saturating_add(config.runahead).min(config.end);
        let mut stats = WindowStats { window, windows: 1, start, end, ..Default::default() };

        stats.events = engine.run_until(end, &mut outbox).map_err(engine_err)?;
        take_all(engine, &mut early);
        let t_encode = Instant::now();
        stats.exec_ns = nanos_between(t_exec, t_encode);

        let mut local_next = engine.next_event_time();
        if local_next < end {
            return Err(contract(format!("the engine still has an event at {local_next} after running to {end}")));
        }
        if !outbox.for_shard(me).is_empty() {
            return Err(contract(format!(
                "the engine put {} events for its own shard in the outbox",
                outbox.for_shard(me).len()
            )));
        }
        for dst in 0..shards {
            let to = ShardId(dst);
            let events = outbox.shard_mut(to);
            let buf = &mut round.outgoing[dst as usize];
            buf.clear();
            if events.is_empty() {
                continue;
            }
            for e in events.iter() {
                if e.deliver_time < end {
                    return Err(BusError::Causality { shard: me, to, key: e.key(), window_end: end });
                }
                local_next = local_next.min(e.deliver_time);
            }
            encode_batch(buf, me, to, events);
            let p = &mut pair_scratch[dst as usize];
            p.sent_events = events.len() as u64;
            p.sent_bytes = buf.len() as u64;
            stats.sent_events += p.sent_events;
            stats.sent_bytes += p.sent_bytes;
            events.clear();
        }
        round.local_next = local_next;
        round.events = stats.events;
        let t_wait = Instant::now();
        stats.encode_ns = nanos_between(t_encode, t_wait);

        let next = exchange.exchange(&mut round)?;
        let t_decode = Instant::now();
        stats.wait_ns = nanos_between(t_wait, t_decode);

        for src in 0..shards {
            if round.incoming[src as usize].is_empty() {
                continue;
            }
            // The batch buffer becomes shared: decoded payloads are slices of it.
            let bytes = Bytes::from(std::mem::take(&mut round.incoming[src as usize]));
            let from = ShardId(src);
            let before = inbound.len();
            let header =
                decode_batch(&bytes, &mut inbound).map_err(|source| BusError::Decode { shard: me, from, source })?;
            if header.src_shard != from || header.dst_shard != me {
                return Err(BusError::Misaddressed {
                    shard: me,
                    from,
                    claimed_src: header.src_shard,
                    claimed_dst: header.dst_shard,
                });
            }
            if let Some(e) = inbound[before..].iter().find(|e| e.deliver_time < end) {
                return Err(BusError::Causality { shard: from, to: me, key: e.key(), window_end: end });
            }
            let p = &mut pair_scratch[src as usize];
            p.recv_events = (inbound.len() - before) as u64;
            p.recv_bytes = bytes.len() as u64;
            stats.recv_events += p.recv_events;
            stats.recv_bytes += p.recv_bytes;
        }
        if !inbound.is_empty() {
            sort_canonical(&mut inbound);
            engine.deliver(&mut inbound).map_err(engine_err)?;
            inbound.clear();
        }
        t_exec = Instant::now();
        stats.decode_ns = nanos_between(t_decode, t_exec);

        progress.window_done(me, end, stats.events);
        let pairs = pair_scratch.iter_mut().enumerate().filter(|(_, p)| p.sent_events + p.recv_events > 0);
        log.push(stats, pairs.map(|(peer, p)| PairStats { window, peer: ShardId(peer as u32), ..std::mem::take(p) }));
        window += 1;
        start = next;
    }

    take_all(engine, &mut early);
    let mut output = engine.finish().map_err(engine_err)?;
    take_all(engine, &mut early);
    early.append(&mut output.tables);
    output.tables = early;
    let (windows, pairs) = log.into_parts();
    let report = ShardReport { shard: me, output, windows, pairs, wall_ns: nanos_between(started, Instant::now()) };
    let gathered = exchange.gather(report.encode())?;
    let Some(all) = gathered else { return Ok(None) };
    let reports = decode_gathered(&all)?;
    Ok(Some(reports))
}
