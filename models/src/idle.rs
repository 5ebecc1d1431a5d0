//! The idle workload: each shard has one tick per period, and optionally sends one event of a
//! fixed size to every other shard per tick. It measures the window protocol's own cost — windows
//! with empty or fixed-size batches — on every backend.

use bytes::Bytes;
use thermocline_bus::{
    Digest, Engine, EngineError, EngineOutput, Event, HostId, Outbox, ShardId, SimDuration, SimTime,
};

/// Event kind of idle-workload events on the bus.
pub const IDLE_EVENT_KIND: u16 = thermocline_bus::kinds::IDLE;

/// Parameters of the idle workload (the `[idle]` section of a spec).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// Tick period; also the runahead, so each window holds exactly one tick per shard.
    pub period: SimDuration,
    /// When non-zero, every tick sends one event with this many payload bytes to every other
    /// shard (due at the next tick), so each window moves batches of a known size.
    pub payload_bytes: u32,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig { period: SimDuration::from_millis(1), payload_bytes: 0 }
    }
}

/// An engine that only ticks (one "host" per shard, numbered like the shard).
pub struct IdleEngine {
    me: ShardId,
    shards: u32,
    period: u64,
    /// The payload every event carries (shared, not copied), when events are sent.
    payload: Option<Bytes>,
    next: u64,
    seq: u64,
    received: u64,
}

impl IdleEngine {
    /// The ticking engine of `me` among `shards`; its first tick is at time zero.
    pub fn new(config: &IdleConfig, me: ShardId, shards: u32) -> Self {
        let payload = (config.payload_bytes > 0).then(|| Bytes::from(vec![0; config.payload_bytes as usize]));
        IdleEngine { me, shards, period: config.period.as_nanos().max(1), payload, next: 0, seq: 0, received: 0 }
    }

    /// Events received from other shards so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Engine for IdleEngine {
    fn next_event_time(&self) -> SimTime {
        SimTime::from_nanos(self.next)
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let mut ticks = 0;
        while self.next < end.as_nanos() {
            let due = self.next + self.period;
            if let Some(payload) = &self.payload {
                for s in (0..self.shards).filter(|&s| s != self.me.0) {
                    let event = Event {
                        deliver_time: SimTime::from_nanos(due),
                        src_host: HostId(self.me.0),
                        src_seq: self.seq,
                        dst_host: HostId(s),
                        kind: IDLE_EVENT_KIND,
                        payload: payload.clone(),
                    };
                    self.seq += 1;
                    outbox.push(ShardId(s), event);
                }
            }
            self.next = due;
            ticks += 1;
        }
        Ok(ticks)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        if let Some(e) = events.iter().find(|e| e.dst_host.0 != self.me.0 || e.kind != IDLE_EVENT_KIND) {
            return Err(format!(
                "idle workload on {} received an event for {} of kind {}",
                self.me, e.dst_host, e.kind
            )
            .into());
        }
        self.received += events.len() as u64;
        events.clear();
        Ok(())
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        Ok(EngineOutput { digest: Digest::EMPTY, tables: vec![] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_event_per_peer_per_tick_due_at_the_next_tick() {
        let cfg = IdleConfig { period: SimDuration::from_micros(10), payload_bytes: 64 };
        let mut e = IdleEngine::new(&cfg, ShardId(1), 3);
        let mut outbox = Outbox::new(3);
        assert_eq!(e.run_until(SimTime::from_nanos(10_000), &mut outbox).unwrap(), 1);
        for s in [0, 2] {
            let sent = outbox.for_shard(ShardId(s));
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].deliver_time, SimTime::from_nanos(10_000));
            assert_eq!(sent[0].payload.len(), 64);
        }
        assert!(outbox.for_shard(ShardId(1)).is_empty());
        assert_eq!(e.next_event_time(), SimTime::from_nanos(10_000));
    }
}
