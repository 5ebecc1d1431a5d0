//! The idle workload: each shard has one tick per period and nothing crosses shards. It measures
//! the window protocol's own cost — a window with empty batches — on every backend.

use thermocline_bus::{
    Digest, Engine, EngineError, EngineOutput, Event, Outbox, SimDuration, SimTime,
};

/// Parameters of the idle workload (the `[idle]` section of a spec).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// Tick period; also the runahead, so each window holds exactly one tick per shard.
    pub period: SimDuration,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            period: SimDuration::from_millis(1),
        }
    }
}

/// An engine that only ticks.
pub struct IdleEngine {
    period: u64,
    next: u64,
}

impl IdleEngine {
    /// A ticking engine; its first tick is at time zero.
    pub fn new(config: &IdleConfig) -> Self {
        IdleEngine {
            period: config.period.as_nanos().max(1),
            next: 0,
        }
    }
}

impl Engine for IdleEngine {
    fn next_event_time(&self) -> SimTime {
        SimTime::from_nanos(self.next)
    }

    fn run_until(&mut self, end: SimTime, _: &mut Outbox) -> Result<u64, EngineError> {
        let mut ticks = 0;
        while self.next < end.as_nanos() {
            self.next += self.period;
            ticks += 1;
        }
        Ok(ticks)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        match events.first() {
            Some(e) => Err(format!(
                "the idle workload sends no events, yet one arrived for {}",
                e.dst_host
            )
            .into()),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        Ok(EngineOutput {
            digest: Digest::EMPTY,
            tables: vec![],
        })
    }
}
