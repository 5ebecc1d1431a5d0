//! PHOLD, the standard parallel discrete-event benchmark, as a bus engine.
//!
//! `lps` logical processes are split into `groups` contiguous groups, the unit of partitioning:
//! a shard owns whole groups. Each LP starts with `population` events. Executing an event at an
//! LP schedules one new event: with probability `remote_share` at a uniformly chosen LP of
//! another group, otherwise at one of its own group, after a delay of `lookahead` plus a uniform
//! integer in `[0, 2·mean_delay]` nanoseconds. The model is defined over groups, not shards, so
//! the same spec gives the same events — and the same digest — on any number of shards; with as
//! many shards as groups, `remote_share` is exactly the share of events that cross shards.
//! Randomness is integer-only (ChaCha8 streams per LP), so results are bit-identical across
//! platforms.

use crate::metrics::table;
use crate::rng::{CompactRng, StreamFamily, below, probability_threshold};
use arrow_array::{UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field};
use bytes::Bytes;
use rand_core::Rng;
use std::sync::Arc;
use thermocline_bus::queue::{CalendarQueue, Timed};
use thermocline_bus::{
    Digest, Engine, EngineError, EngineOutput, Event, HostId, Outbox, ShardId, SimDuration, SimTime,
};

/// Event kind of PHOLD events on the bus.
pub const PHOLD_EVENT_KIND: u16 = thermocline_bus::kinds::PHOLD;

/// PHOLD parameters (the `[phold]` section of an experiment spec). Every field has a default.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PholdConfig {
    /// Number of logical processes.
    pub lps: u32,
    /// Number of LP groups; shards own whole groups, so a run can use at most this many shards.
    pub groups: u32,
    /// Minimum delay of every event; the runahead of a sharded run.
    pub lookahead: SimDuration,
    /// Mean of the uniform extra delay added to the lookahead.
    pub mean_delay: SimDuration,
    /// Probability that an event goes to another group.
    pub remote_share: f64,
    /// Events each LP starts with.
    pub population: u32,
    /// Payload bytes carried by events that cross shards (exercises batch sizes).
    pub payload_bytes: u32,
    /// Optional injected failure, for testing how runs end when a shard fails.
    pub fault: Option<Fault>,
}

impl Default for PholdConfig {
    fn default() -> Self {
        PholdConfig {
            lps: 10_000,
            groups: 4,
            lookahead: SimDuration::from_millis(1),
            mean_delay: SimDuration::from_millis(1),
            remote_share: 0.1,
            population: 1,
            payload_bytes: 0,
            fault: None,
        }
    }
}

/// How an injected fault fails.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    /// The engine returns an error.
    Error,
    /// The engine panics.
    Panic,
    /// The process exits at once with status 3 (a crash without a message).
    Exit,
    /// The process aborts (SIGABRT).
    Abort,
}

/// A failure injected when LP `lp` executes its first event at or after `at`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The LP whose owner fails.
    pub lp: u32,
    /// Simulated time from which the fault fires.
    pub at: SimDuration,
    /// How it fails.
    pub mode: FaultMode,
}

/// Why a PHOLD configuration cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PholdError {
    /// Parameters out of range.
    #[error("invalid phold configuration: {0}")]
    Config(String),
    /// An event arrived for an LP this shard does not own.
    #[error("event for LP {lp} delivered to {shard}, which owns LPs {lo}..{hi}")]
    Misrouted {
        /// The LP.
        lp: u32,
        /// This shard.
        shard: ShardId,
        /// First owned LP.
        lo: u32,
        /// One past the last owned LP.
        hi: u32,
    },
    /// The injected fault fired.
    #[error("injected fault at LP {lp}, simulated time {at}")]
    Injected {
        /// The LP.
        lp: u32,
        /// When.
        at: SimTime,
    },
}

/// The static layout of a PHOLD run: which LP is in which group and on which shard.
#[derive(Copy, Clone, Debug)]
pub struct PholdLayout {
    lps: u32,
    groups: u32,
    shards: u32,
}

impl PholdLayout {
    /// Validate `config` for a run on `shards` shards.
    pub fn new(config: &PholdConfig, shards: u32) -> Result<Self, PholdError> {
        let bad = |m: String| Err(PholdError::Config(m));
        if config.lps == 0 {
            return bad("phold.lps must be at least 1".into());
        }
        if config.groups == 0 || config.groups > config.lps {
            return bad(format!(
                "phold.groups must be between 1 and phold.lps ({}), got {}",
                config.lps, config.groups
            ));
        }
        if shards == 0 || shards > config.groups {
            return bad(format!(
                "a run of {shards} shards needs phold.groups >= {shards} (shards own whole groups), got {}",
                config.groups
            ));
        }
        if config.lookahead == SimDuration::ZERO {
            return bad("phold.lookahead must be positive".into());
        }
        if !(0.0..=1.0).contains(&config.remote_share) {
            return bad(format!("phold.remote_share must be within [0, 1], got {}", config.remote_share));
        }
        // Event times are `now + lookahead + [0, 2·mean_delay]`; keep every sum far from overflow.
        let span = config.mean_delay.as_nanos().checked_mul(2).and_then(|d| d.checked_add(config.lookahead.as_nanos()));
        if span.is_none_or(|d| d > u64::MAX / 4) {
            return bad("phold.lookahead + 2 × phold.mean_delay is too large".into());
        }
        Ok(PholdLayout { lps: config.lps, groups: config.groups, shards })
    }

    /// The group of `lp`.
    pub fn group_of(&self, lp: u32) -> u32 {
        (lp as u64 * self.groups as u64 / self.lps as u64) as u32
    }

    /// First LP of group `g` (`g == groups` gives `lps`).
    pub fn group_start(&self, g: u32) -> u32 {
        (g as u64 * self.lps as u64).div_ceil(self.groups as u64) as u32
    }

    /// The shard that owns group `g`.
    pub fn shard_of_group(&self, g: u32) -> ShardId {
        ShardId((g as u64 * self.shards as u64 / self.groups as u64) as u32)
    }

    /// The shard that owns `lp`.
    pub fn shard_of(&self, lp: u32) -> ShardId {
        self.shard_of_group(self.group_of(lp))
    }

    /// The LPs `shard` owns, as a half-open range.
    pub fn owned(&self, shard: ShardId) -> (u32, u32) {
        let first_group = (0..self.groups).find(|&g| self.shard_of_group(g) == shard).unwrap_or(self.groups);
        let end_group = (first_group..self.groups).find(|&g| self.shard_of_group(g) != shard).unwrap_or(self.groups);
        (self.group_start(first_group), self.group_start(end_group))
    }
}

/// A pending event: ordered by the bus's canonical key (time, source, sequence, destination).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    time: u64,
    src: u32,
    seq: u64,
    dst: u32,
}

impl Timed for Pending {
    fn time_ns(&self) -> u64 {
        self.time
    }
}

/// Mixes an executed event into an LP's running hash (SplitMix64 finaliser).
fn mix(h: u64, v: u64) -> u64 {
    let mut z = (h ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One shard's PHOLD engine.
pub struct PholdEngine {
    layout: PholdLayout,
    shard: ShardId,
    lo: u32,
    hi: u32,
    lookahead: u64,
    delay_span: u64,
    remote_threshold: u64,
    /// The payload of cross-shard events (shared, not copied).
    payload: Bytes,
    fault: Option<Fault>,
    queue: CalendarQueue<Pending>,
    /// `group_bounds[g]` = first LP of group `g`; `group_bounds[groups]` = `lps`.
    group_bounds: Vec<u32>,
    /// Group of each owned LP.
    own_group: Vec<u32>,
    rng: Vec<CompactRng>,
    executed: Vec<u64>,
    hash: Vec<u64>,
    next_seq: Vec<u64>,
}

impl PholdEngine {
    /// The engine for `shard` of a run with `seed` on `shards` shards.
    pub fn new(config: &PholdConfig, seed: u64, shard: ShardId, shards: u32) -> Result<Self, PholdError> {
        let layout = PholdLayout::new(config, shards)?;
        let (lo, hi) = layout.owned(shard);
        let family = StreamFamily::new(seed, "phold");
        let n = (hi - lo) as usize;
        let mut e = PholdEngine {
            layout,
            shard,
            lo,
            hi,
            lookahead: config.lookahead.as_nanos(),
            delay_span: 2 * config.mean_delay.as_nanos() + 1,
            remote_threshold: probability_threshold(config.remote_share),
            payload: Bytes::from(vec![0; config.payload_bytes as usize]),
            fault: config.fault.clone(),
            queue: {
                // Aim at ~128 events per bucket; cover twice the longest delay with the ring.
                let pending = config.lps as f64 * config.population as f64;
                let cycle_s = (config.lookahead.as_nanos() + config.mean_delay.as_nanos()).max(1) as f64 / 1e9;
                let shift = CalendarQueue::<Pending>::shift_for(pending / cycle_s, 128.0);
                let horizon = 2 * (config.lookahead.as_nanos() + 2 * config.mean_delay.as_nanos());
                CalendarQueue::new(shift, ((horizon >> shift) as usize + 1).min(1 << 16))
            },
            group_bounds: (0..=layout.groups).map(|g| layout.group_start(g)).collect(),
            own_group: (lo..hi).map(|lp| layout.group_of(lp)).collect(),
            rng: (lo..hi).map(|lp| family.compact(lp)).collect(),
            executed: vec![0; n],
            hash: vec![0; n],
            next_seq: vec![0; n],
        };
        let initial_span = e.lookahead + e.delay_span;
        for lp in lo..hi {
            let i = (lp - lo) as usize;
            for _ in 0..config.population {
                let time = below(&mut e.rng[i], initial_span);
                let seq = e.next_seq[i];
                e.next_seq[i] += 1;
                e.queue.push(Pending { time, src: lp, seq, dst: lp });
            }
        }
        Ok(e)
    }

    /// The runahead: the lookahead, the smallest delay of any event. A single shard uses the same
    /// windows as many (it has no boundary to protect, but windows carry progress reports and
    /// make per-window statistics comparable across shard counts; each costs about 0.5 µs).
    pub fn runahead(config: &PholdConfig) -> SimDuration {
        config.lookahead
    }

    fn check_fault(&self, lp: u32, time: u64) -> Result<(), PholdError> {
        let Some(f) = &self.fault else { return Ok(()) };
        if f.lp != lp || time < f.at.as_nanos() {
            return Ok(());
        }
        let at = SimTime::from_nanos(time);
        match f.mode {
            FaultMode::Error => Err(PholdError::Injected { lp, at }),
            FaultMode::Panic => panic!("injected panic at LP {lp}, simulated time {at}"),
            FaultMode::Exit => std::process::exit(3),
            FaultMode::Abort => std::process::abort(),
        }
    }

    fn pick_destination(&mut self, i: usize) -> u32 {
        let rng = &mut self.rng[i];
        let groups = self.layout.groups;
        let own = self.own_group[i];
        let remote = rng.next_u64() < self.remote_threshold && groups > 1;
        let group = if remote { (own + 1 + below(rng, groups as u64 - 1) as u32) % groups } else { own };
        let start = self.group_bounds[group as usize];
        let size = self.group_bounds[group as usize + 1] - start;
        start + below(rng, size as u64) as u32
    }
}

impl Engine for PholdEngine {
    fn next_event_time(&self) -> SimTime {
        self.queue.min_time().map_or(SimTime::NEVER, SimTime::from_nanos)
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let end = end.as_nanos();
        let mut executed = 0u64;
        while let Some(&ev) = self.queue.peek() {
            if ev.time >= end {
                break;
            }
            self.queue.pop();
            executed += 1;
            let lp = ev.dst;
            let i = (lp - self.lo) as usize;
            if self.fault.is_some() {
                self.check_fault(lp, ev.time)?;
            }
            self.executed[i] += 1;
            let h = mix(self.hash[i], ev.time);
            self.hash[i] = mix(h, ((ev.src as u64) << 32) ^ ev.seq);
            let dst = self.pick_destination(i);
            let delay = self.lookahead + below(&mut self.rng[i], self.delay_span);
            let seq = self.next_seq[i];
            self.next_seq[i] += 1;
            let next = Pending { time: ev.time + delay, src: lp, seq, dst };
            if (self.lo..self.hi).contains(&dst) {
                self.queue.push(next);
            } else {
                outbox.push(
                    self.layout.shard_of(dst),
                    Event {
                        deliver_time: SimTime::from_nanos(next.time),
                        src_host: HostId(lp),
                        src_seq: seq,
                        dst_host: HostId(dst),
                        kind: PHOLD_EVENT_KIND,
                        payload: self.payload.clone(),
                    },
                );
            }
        }
        Ok(executed)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        for e in events.drain(..) {
            let lp = e.dst_host.0;
            if !(self.lo..self.hi).contains(&lp) {
                return Err(Box::new(PholdError::Misrouted { lp, shard: self.shard, lo: self.lo, hi: self.hi }));
            }
            self.queue.push(Pending { time: e.deliver_time.as_nanos(), src: e.src_host.0, seq: e.src_seq, dst: lp });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        let mut digest = Digest::EMPTY;
        let mut record = Vec::with_capacity(34);
        for lp in self.lo..self.hi {
            let i = (lp - self.lo) as usize;
            record.clear();
            record.extend_from_slice(b"phold");
            record.extend_from_slice(&lp.to_be_bytes());
            record.extend_from_slice(&self.executed[i].to_be_bytes());
            record.extend_from_slice(&self.hash[i].to_be_bytes());
            record.extend_from_slice(&self.next_seq[i].to_be_bytes());
            digest.add_record(&record);
        }
        let lps = table(
            "phold_lps",
            vec![
                Field::new("lp", DataType::UInt32, false),
                Field::new("group", DataType::UInt32, false),
                Field::new("events", DataType::UInt64, false),
                Field::new("events_sent", DataType::UInt64, false),
                Field::new("history_hash", DataType::UInt64, false),
            ],
            vec![
                Arc::new(UInt32Array::from_iter_values(self.lo..self.hi)),
                Arc::new(UInt32Array::from_iter_values((self.lo..self.hi).map(|lp| self.layout.group_of(lp)))),
                Arc::new(UInt64Array::from(self.executed.clone())),
                Arc::new(UInt64Array::from(self.next_seq.clone())),
                Arc::new(UInt64Array::from(self.hash.clone())),
            ],
        )?;
        Ok(EngineOutput { digest, tables: vec![lps] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_covers_every_lp_once_and_keeps_groups_whole() {
        for (lps, groups, shards) in [(10, 4, 1), (10, 4, 2), (10, 4, 4), (7, 7, 3), (100_000, 4, 2), (5, 3, 2)] {
            let cfg = PholdConfig { lps, groups, ..Default::default() };
            let l = PholdLayout::new(&cfg, shards).unwrap();
            let mut next = 0;
            for s in 0..shards {
                let (lo, hi) = l.owned(ShardId(s));
                assert_eq!(lo, next, "{lps} {groups} {shards}");
                for lp in lo..hi {
                    assert_eq!(l.shard_of(lp), ShardId(s));
                }
                next = hi;
            }
            assert_eq!(next, lps);
            for g in 0..groups {
                for lp in l.group_start(g)..l.group_start(g + 1) {
                    assert_eq!(l.group_of(lp), g);
                }
            }
        }
    }

    #[test]
    fn rejects_more_shards_than_groups_and_bad_shares() {
        let cfg = PholdConfig { groups: 2, ..Default::default() };
        assert!(PholdLayout::new(&cfg, 3).unwrap_err().to_string().contains("phold.groups >= 3"));
        let cfg = PholdConfig { remote_share: 1.5, ..Default::default() };
        assert!(PholdLayout::new(&cfg, 1).is_err());
        let cfg = PholdConfig { lookahead: SimDuration::from_nanos(u64::MAX / 2), ..Default::default() };
        assert!(PholdLayout::new(&cfg, 1).unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn remote_share_is_the_share_of_events_leaving_the_group() {
        let cfg = PholdConfig { lps: 1000, groups: 2, remote_share: 0.25, ..Default::default() };
        let mut e = PholdEngine::new(&cfg, 1, ShardId(0), 2).unwrap();
        let mut outbox = Outbox::new(2);
        let executed = e.run_until(SimTime::from_nanos(20_000_000), &mut outbox).unwrap();
        let sent = outbox.for_shard(ShardId(1)).len() as f64;
        let share = sent / executed as f64;
        assert!((0.22..0.28).contains(&share), "share {share}");
        let min_delay = outbox.for_shard(ShardId(1)).iter().map(|ev| ev.deliver_time).min().unwrap();
        assert!(min_delay >= SimTime::from_nanos(cfg.lookahead.as_nanos()));
    }
}
