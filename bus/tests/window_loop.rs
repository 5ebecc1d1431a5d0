//! The window loop on the threads backend with small test engines: delivery order, runahead
//! safety checks, and prompt, named failures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use thermocline_bus::threads::run_threads;
use thermocline_bus::{
    BusError, Digest, Engine, EngineError, EngineOutput, Event, HostId, NoProgress, Outbox, ShardId, SimDuration,
    SimTime, WindowConfig,
};

/// A ring of hosts, one per shard, passing a token: each token hop takes `delay`; every host
/// records the (time, source) of what it received, in order.
struct Ring {
    me: ShardId,
    shards: u32,
    delay: u64,
    pending: BTreeMap<(u64, u32, u64), u32>,
    seq: u64,
    log: Vec<(u64, u32)>,
    fail_at: Option<(u64, &'static str)>,
}

impl Ring {
    fn new(me: ShardId, shards: u32, delay: u64) -> Self {
        let mut pending = BTreeMap::new();
        // Every host starts one token at a time that depends on its id.
        pending.insert((me.0 as u64 * 7, me.0, 0), me.0);
        Ring { me, shards, delay, pending, seq: 1, log: vec![], fail_at: None }
    }
}

impl Engine for Ring {
    fn next_event_time(&self) -> SimTime {
        self.pending.keys().next().map_or(SimTime::NEVER, |k| SimTime::from_nanos(k.0))
    }

    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let mut n = 0;
        while let Some((&(t, src, _), _)) = self.pending.iter().next() {
            if t >= end.as_nanos() {
                break;
            }
            if let Some((at, how)) = self.fail_at
                && t >= at
            {
                match how {
                    "panic" => panic!("ring host {} panics on purpose", self.me.0),
                    _ => return Err(format!("ring host {} fails on purpose", self.me.0).into()),
                }
            }
            self.pending.pop_first();
            self.log.push((t, src));
            n += 1;
            let next = (self.me.0 + 1) % self.shards;
            let e = Event {
                deliver_time: SimTime::from_nanos(t + self.delay),
                src_host: HostId(self.me.0),
                src_seq: self.seq,
                dst_host: HostId(next),
                kind: 0,
                payload: bytes::Bytes::from_static(&[1, 2, 3]),
            };
            self.seq += 1;
            if next == self.me.0 {
                self.pending.insert((e.deliver_time.as_nanos(), e.src_host.0, e.src_seq), next);
            } else {
                outbox.push(ShardId(next), e);
            }
        }
        Ok(n)
    }

    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        for e in events.drain(..) {
            assert_eq!(e.dst_host.0, self.me.0);
            assert_eq!(e.payload.as_ref(), [1, 2, 3]);
            self.pending.insert((e.deliver_time.as_nanos(), e.src_host.0, e.src_seq), e.dst_host.0);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        let mut digest = Digest::EMPTY;
        let mut rec = self.me.0.to_be_bytes().to_vec();
        for (t, s) in &self.log {
            rec.extend_from_slice(&t.to_be_bytes());
            rec.extend_from_slice(&s.to_be_bytes());
        }
        digest.add_record(&rec);
        Ok(EngineOutput { digest, tables: vec![] })
    }
}

fn config(end: u64, runahead: u64) -> WindowConfig {
    WindowConfig { end: SimTime::from_nanos(end), runahead: SimDuration::from_nanos(runahead) }
}

#[test]
fn tokens_cross_shards_at_their_delivery_times() {
    let reports =
        run_threads(3, &config(1_000, 10), |s| Ok(Box::new(Ring::new(s, 3, 10)) as Box<dyn Engine>), &NoProgress)
            .unwrap();
    assert_eq!(reports.len(), 3);
    // Tokens start at 0, 7 and 14 ns and hop every 10 ns: before 1000 ns they make 100, 100
    // and 99 hops.
    let events: u64 = reports.iter().map(|r| r.events()).sum();
    assert_eq!(events, 299);
    let sent: u64 = reports.iter().flat_map(|r| &r.windows).map(|w| w.sent_events).sum();
    let recv: u64 = reports.iter().flat_map(|r| &r.windows).map(|w| w.recv_events).sum();
    assert_eq!(sent, recv);
    // Every shard ran the same windows.
    let windows: Vec<usize> = reports.iter().map(|r| r.windows.len()).collect();
    assert!(windows.iter().all(|&w| w == windows[0]), "{windows:?}");
}

#[test]
fn runs_are_repeatable() {
    let run = || {
        let reports =
            run_threads(3, &config(5_000, 10), |s| Ok(Box::new(Ring::new(s, 3, 10)) as Box<dyn Engine>), &NoProgress)
                .unwrap();
        let mut d = Digest::EMPTY;
        reports.iter().for_each(|r| d.add(&r.output.digest));
        d
    };
    assert_eq!(run(), run());
}

#[test]
fn an_event_inside_its_window_is_a_named_causality_error() {
    // Runahead 20 but hops of 10: the first cross-shard hop lands inside its window.
    let err = run_threads(2, &config(1_000, 20), |s| Ok(Box::new(Ring::new(s, 2, 10)) as Box<dyn Engine>), &NoProgress)
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BusError::ShardFailed { .. }), "{text}");
    assert!(text.contains("causality violation"), "{text}");
}

fn failing(shards: u32, victim: u32, how: &'static str) -> BusError {
    let started = Instant::now();
    let err = run_threads(
        shards,
        &config(1_000_000, 10),
        |s| {
            let mut r = Ring::new(s, shards, 10);
            if s.0 == victim {
                r.fail_at = Some((500, how));
            }
            Ok(Box::new(r) as Box<dyn Engine>)
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "failure took {:?}", started.elapsed());
    err
}

#[test]
fn an_engine_error_ends_the_run_naming_the_shard() {
    let err = failing(4, 2, "error");
    assert_eq!(err.shard(), ShardId(2));
    assert!(err.to_string().contains("shard 2 failed: engine error: ring host 2 fails on purpose"), "{err}");
}

#[test]
fn a_panic_ends_the_run_naming_the_shard() {
    let err = failing(3, 0, "panic");
    assert_eq!(err.shard(), ShardId(0));
    assert!(err.to_string().contains("panicked: ring host 0 panics on purpose"), "{err}");
}

#[test]
fn a_failing_build_ends_the_run() {
    let err = run_threads(
        2,
        &config(1_000, 10),
        |s| {
            if s.0 == 1 {
                Err("no engine for you".into())
            } else {
                Ok(Box::new(Ring::new(s, 2, 10)) as Box<dyn Engine>)
            }
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("shard 1 failed: engine error: no engine for you"), "{err}");
}

/// An engine that breaks the contract in a chosen way.
struct Rogue {
    me: ShardId,
    mode: &'static str,
    done: bool,
}

impl Engine for Rogue {
    fn next_event_time(&self) -> SimTime {
        if self.done && self.mode != "linger" { SimTime::NEVER } else { SimTime::ZERO }
    }
    fn run_until(&mut self, _end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        self.done = true;
        if self.mode == "self" {
            let e = Event {
                deliver_time: SimTime::from_nanos(100),
                src_host: HostId(0),
                src_seq: 0,
                dst_host: HostId(0),
                kind: 0,
                payload: bytes::Bytes::new(),
            };
            outbox.push(self.me, e);
        }
        Ok(1)
    }
    fn deliver(&mut self, _: &mut Vec<Event>) -> Result<(), EngineError> {
        Ok(())
    }
    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        Ok(EngineOutput::default())
    }
}

#[test]
fn engines_that_break_the_contract_are_stopped_with_a_reason() {
    let run = |mode: &'static str, runahead: u64| {
        run_threads(
            2,
            &config(1_000, runahead),
            |s| Ok(Box::new(Rogue { me: s, mode, done: false }) as Box<dyn Engine>),
            &NoProgress,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(run("self", 10).contains("events for its own shard"), "{}", run("self", 10));
    assert!(run("linger", 10).contains("still has an event at"), "{}", run("linger", 10));
    assert!(run("none", 0).contains("runahead is zero"), "{}", run("none", 0));
}

/// A ring host that hands out one table for every window it ran events in, and one at the end.
struct EarlyTables {
    ring: Ring,
    ran: Vec<u64>,
}

impl Engine for EarlyTables {
    fn next_event_time(&self) -> SimTime {
        self.ring.next_event_time()
    }
    fn run_until(&mut self, end: SimTime, outbox: &mut Outbox) -> Result<u64, EngineError> {
        let n = self.ring.run_until(end, outbox)?;
        if n > 0 {
            self.ran.push(end.as_nanos());
        }
        Ok(n)
    }
    fn deliver(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        self.ring.deliver(events)
    }
    fn take_tables(&mut self) -> Vec<thermocline_bus::Table> {
        self.ran
            .drain(..)
            .map(|t| thermocline_bus::Table { name: "early".into(), arrow_ipc: t.to_be_bytes().to_vec() })
            .collect()
    }
    fn finish(&mut self) -> Result<EngineOutput, EngineError> {
        let mut out = self.ring.finish()?;
        out.tables.push(thermocline_bus::Table { name: "last".into(), arrow_ipc: vec![] });
        Ok(out)
    }
}

#[test]
fn tables_handed_out_during_the_run_come_first_in_the_report_in_window_order() {
    let reports = run_threads(
        2,
        &config(100, 10),
        |s| Ok(Box::new(EarlyTables { ring: Ring::new(s, 2, 10), ran: vec![] }) as Box<dyn Engine>),
        &NoProgress,
    )
    .unwrap();
    for r in &reports {
        let names: Vec<&str> = r.output.tables.iter().map(|t| t.name.as_str()).collect();
        let early = names.iter().take_while(|n| **n == "early").count();
        assert!(early >= 4, "shard {}: {names:?}", r.shard.0);
        assert_eq!(&names[early..], ["last"], "shard {}", r.shard.0);
        let ends: Vec<u64> =
            r.output.tables[..early].iter().map(|t| u64::from_be_bytes(t.arrow_ipc[..].try_into().unwrap())).collect();
        assert!(ends.windows(2).all(|w| w[0] < w[1]), "window order: {ends:?}");
    }
}
