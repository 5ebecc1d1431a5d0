//! Several engines on one shard: direct hosts and surrogate identities side by side, each engine
//! owning its own hosts. To the window loop the composite is one engine; inside, it runs the
//! bus's own contract in miniature: its parts run in inner windows no longer than `step`, the
//! smallest delay of any event one part sends another, and what a part sends a host of another
//! part on this shard is delivered, in canonical order, at the end of the inner window. Events
//! for other shards go to the real outbox. Since every event arrives before its time whatever
//! the windows, the results do not depend on where the inner or outer windows fall: the digest
//! stays the same on any shard count.

use crate::digest::Digest;
use crate::engine::{Engine, EngineOutput, Outbox, Table};
use crate::error::EngineError;
use crate::event::{Event, sort_canonical};
use crate::ids::{HostId, ShardId};
use crate::time::{SimDuration, SimTime};

/// Which part owns a host (an index into the composite's parts).
pub type Owner = Box<dyn Fn(HostId) -> usize + Send>;

/// Engines sharing one shard; see the module documentation.
pub struct Composite {
    parts: Vec<Box<dyn Engine>>,
    owner: Owner,
    step: SimDuration,
    me: ShardId,
    shards: u32,
    /// Events between parts, waiting for the end of the inner window, per receiving part.
    pending: Vec<Vec<Event>>,
    /// What a part sends during an inner window, sorted out after it ran (kept for its buffers).
    sent: Outbox,
}

impl Composite {
    /// `parts` on shard `me` of `shards`; `owner` says which part holds a host; `step` (positive)
    /// is at most the smallest delay of an event between two parts.
    pub fn new(parts: Vec<Box<dyn Engine>>, owner: Owner, step: SimDuration, me: ShardId, shards: u32) -> Self {
        assert!(step > SimDuration::ZERO, "the inner window of a composite engine must be positive");
        let pending = parts.iter().map(|_| Vec::new()).collect();
        Composite { parts, owner, step, me, shards, pending, sent: Outbox::new(shards) }
    }

    /// Run every part to `end`, passing events for other shards to `outbox` and keeping those for
    /// this shard's other parts until `hand_over`.
    fn run_parts(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let mut ran = 0;
        for part in self.parts.iter_mut() {
            ran += part.run_until(end, &mut self.sent)?;
            for to in 0..self.shards {
                let to = ShardId(to);
                for event in self.sent.shard_mut(to).drain(..) {
                    if to != self.me {
                        outbox.push(to, event);
                        continue;
                    }
                    if event.deliver_time < end {
                        return Err(format!(
                            "an event between engines of {} is due at {}, inside the inner window ending at {end}",
                            self.me, event.deliver_time
                        )
                        .into());
                    }
                    self.pending[(self.owner)(event.dst_host)].push(event);
                }
            }
        }
        Ok(ran)
    }

    /// Deliver what the parts sent each other, in canonical order.
    fn hand_over(&mut self) -> Result<(), EngineError> {
        for (part, events) in self.parts.iter_mut().zip(self.pending.iter_mut()) {
            if !events.is_empty() {
                sort_canonical(events);
                part.deliver(events)?;
                events.clear();
            }
        }
        Ok(())
    }
}

impl Engine for Composite {
    fn next_event_time(&self) -> SimTime {
        self.parts.iter().map(|p| p.next_event_time()).min().unwrap_or(SimTime::NEVER)
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let mut ran = 0;
        loop {
            let next = self.next_event_time();
            if next >= end {
                return Ok(ran);
            }
            let inner_end = next.saturating_add(self.step).min(end);
            ran += self.run_parts(inner_end, outbox)?;
            self.hand_over()?;
        }
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        for event in events.drain(..) {
            let part = (self.owner)(event.dst_host);
            self.pending[part].push(event);
        }
        self.hand_over()
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        let mut digest = Digest::EMPTY;
        let mut tables = Vec::new();
        for part in self.parts.iter_mut() {
            let out = part.finish()?;
            digest.add(&out.digest);
            tables.extend(out.tables);
        }
        Ok(EngineOutput { digest, tables })
    }

    fn take_tables(&mut self) -> Vec<Table> {
        self.parts.iter_mut().flat_map(|p| p.take_tables()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Hosts `first..first + 2` of shard 0; every event received is echoed to `peer` after
    /// `delay`, up to `limit` events; the digest records (host, time) of every receipt.
    struct Echo {
        first: u32,
        peer: u32,
        delay: u64,
        limit: u64,
        queue: Vec<Event>,
        seen: Vec<(u32, u64)>,
        seq: u64,
    }

    impl Echo {
        fn new(first: u32, peer: u32, delay: u64) -> Self {
            Echo { first, peer, delay, limit: 20, queue: Vec::new(), seen: Vec::new(), seq: 0 }
        }
    }

    impl Engine for Echo {
        fn next_event_time(&self) -> SimTime {
            self.queue.iter().map(|e| e.deliver_time).min().unwrap_or(SimTime::NEVER)
        }

        fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
            sort_canonical(&mut self.queue);
            let due: Vec<Event> = self.queue.iter().filter(|e| e.deliver_time < end).cloned().collect();
            self.queue.retain(|e| e.deliver_time >= end);
            for e in &due {
                self.seen.push((e.dst_host.0, e.deliver_time.as_nanos()));
                if (self.seen.len() as u64) < self.limit {
                    self.seq += 1;
                    let at = e.deliver_time.saturating_add(SimDuration::from_nanos(self.delay));
                    let reply = Event {
                        deliver_time: at,
                        src_host: e.dst_host,
                        src_seq: self.seq,
                        dst_host: HostId(self.peer),
                        kind: 9,
                        payload: Bytes::new(),
                    };
                    outbox.push(ShardId(0), reply);
                }
            }
            Ok(due.len() as u64)
        }

        fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
            assert!(events.iter().all(|e| (self.first..self.first + 2).contains(&e.dst_host.0)));
            self.queue.append(events);
            Ok(())
        }

        fn finish(&mut self) -> Result<EngineOutput, EngineError> {
            let mut digest = Digest::EMPTY;
            for (h, t) in &self.seen {
                digest.add_record(&[h.to_be_bytes(), (*t as u32).to_be_bytes()].concat());
            }
            Ok(EngineOutput { digest, tables: Vec::new() })
        }
    }

    fn start(to: u32) -> Event {
        Event {
            deliver_time: SimTime::from_nanos(5),
            src_host: HostId(99),
            src_seq: 0,
            dst_host: HostId(to),
            kind: 9,
            payload: Bytes::new(),
        }
    }

    /// Two echo engines bouncing one event 20 times, run in windows of `window` ns.
    fn run(window: u64, step: u64) -> Digest {
        let parts: Vec<Box<dyn Engine>> = vec![Box::new(Echo::new(0, 2, 7)), Box::new(Echo::new(2, 0, 7))];
        let mut c = Composite::new(
            parts,
            Box::new(|h: HostId| (h.0 / 2) as usize),
            SimDuration::from_nanos(step),
            ShardId(0),
            1,
        );
        c.deliver(&mut vec![start(0)]).unwrap();
        let mut end = SimTime::ZERO;
        let mut outbox = Outbox::new(1);
        while end < SimTime::from_nanos(1000) {
            end = end.saturating_add(SimDuration::from_nanos(window));
            c.run_until(end, &mut outbox).unwrap();
            assert!(outbox.for_shard(ShardId(0)).is_empty(), "events between parts never reach the outbox");
        }
        c.finish().unwrap().digest
    }

    #[test]
    fn parts_exchange_events_and_the_result_ignores_window_lengths() {
        let (a, b, c) = (run(1000, 7), run(3, 7), run(50, 2));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, Digest::EMPTY);
    }

    #[test]
    fn an_event_faster_than_the_step_is_an_error() {
        let parts: Vec<Box<dyn Engine>> = vec![Box::new(Echo::new(0, 2, 3)), Box::new(Echo::new(2, 0, 3))];
        let mut c =
            Composite::new(parts, Box::new(|h: HostId| (h.0 / 2) as usize), SimDuration::from_nanos(7), ShardId(0), 1);
        c.deliver(&mut vec![start(0)]).unwrap();
        let err = c.run_until(SimTime::from_nanos(100), &mut Outbox::new(1)).unwrap_err().to_string();
        assert!(err.contains("inside the inner window"), "{err}");
    }
}
