//! Two hosts wired back to back for unit tests, in quinn's `Pair` style: packets move between
//! them after a fixed one-way delay, time jumps to the next packet or timer, nothing else runs.
//! The same harness drives a host's socket table ([`HostNet`]) and the event-level
//! [`Endpoint`] built on it.

use crate::endpoint::{Endpoint, NetEvent};
use crate::host::HostNet;

/// One side of a [`Pair`].
pub(crate) trait Side {
    /// What the side reports besides packets.
    type Event;
    /// Lets time pass to `now`; the packets the side sends.
    fn step(&mut self, now: u64) -> Vec<Vec<u8>>;
    /// A packet reached the side at `now`; packets it answers at once (a refusal's RST).
    fn receive(&mut self, now: u64, packet: Vec<u8>) -> Vec<Vec<u8>>;
    /// When the side must next be stepped, if ever.
    fn next_timeout(&mut self, now: u64) -> Option<u64>;
    /// The events since the last call.
    fn events(&mut self) -> Vec<Self::Event>;
}

impl Side for HostNet {
    type Event = ();

    fn step(&mut self, now: u64) -> Vec<Vec<u8>> {
        while self.poll(now).again {}
        self.take_transmit()
    }

    fn receive(&mut self, now: u64, packet: Vec<u8>) -> Vec<Vec<u8>> {
        if crate::udp::decode(&packet).is_ok() {
            self.deliver_datagram(&packet, false);
            return Vec::new();
        }
        self.take_segment(packet, false, now).err().into_iter().collect()
    }

    fn next_timeout(&mut self, now: u64) -> Option<u64> {
        self.poll_timeout(now)
    }

    fn events(&mut self) -> Vec<()> {
        Vec::new()
    }
}

impl Side for Endpoint {
    type Event = NetEvent;

    fn step(&mut self, now: u64) -> Vec<Vec<u8>> {
        self.handle_timeout(now);
        std::iter::from_fn(|| self.poll_transmit()).collect()
    }

    fn receive(&mut self, now: u64, packet: Vec<u8>) -> Vec<Vec<u8>> {
        self.handle_packet(now, packet);
        Vec::new()
    }

    fn next_timeout(&mut self, now: u64) -> Option<u64> {
        self.poll_timeout(now)
    }

    fn events(&mut self) -> Vec<NetEvent> {
        std::iter::from_fn(|| self.poll_event()).collect()
    }
}

/// Two sides, `a` and `b`, and the packets between them.
pub(crate) struct Pair<S: Side> {
    pub a: S,
    pub b: S,
    pub now: u64,
    /// One-way delay, ns.
    pub delay: u64,
    /// Packets in flight: (arrival, to b?, bytes).
    wire: Vec<(u64, bool, Vec<u8>)>,
    /// Events in order, with whether `b` reported them.
    pub events: Vec<(bool, S::Event)>,
    /// Every this many packets towards `b` is lost (0: none).
    pub lose_every: usize,
    towards_b: usize,
}

impl<S: Side> Pair<S> {
    /// `a` and `b`, `delay` ns apart.
    pub fn new(a: S, b: S, delay: u64) -> Self {
        Pair { a, b, now: 0, delay, wire: Vec::new(), events: Vec::new(), lose_every: 0, towards_b: 0 }
    }

    /// Steps both sides at the current time and puts what they send on the wire.
    fn collect(&mut self) {
        let now = self.now;
        for p in self.a.step(now) {
            self.towards_b += 1;
            if self.lose_every == 0 || !self.towards_b.is_multiple_of(self.lose_every) {
                self.wire.push((now + self.delay, true, p));
            }
        }
        for p in self.b.step(now) {
            self.wire.push((now + self.delay, false, p));
        }
        self.events.extend(self.a.events().into_iter().map(|e| (false, e)));
        self.events.extend(self.b.events().into_iter().map(|e| (true, e)));
    }

    /// Runs until nothing is in flight and no timer is due before `until`; the clock then
    /// reads `until` (or later, if it was there already).
    pub fn run(&mut self, until: u64) {
        loop {
            self.collect();
            let timers = [self.a.next_timeout(self.now), self.b.next_timeout(self.now)];
            let packets = self.wire.iter().map(|w| w.0);
            let next = packets.chain(timers.into_iter().flatten()).filter(|&t| t > self.now).min();
            match next {
                Some(t) if t <= until => self.now = t,
                _ => break,
            }
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire).into_iter().partition(|w| w.0 <= now);
            self.wire = rest;
            for (_, to_b, p) in due {
                let side = if to_b { &mut self.b } else { &mut self.a };
                for reply in side.receive(now, p) {
                    self.wire.push((now + self.delay, !to_b, reply));
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Takes the first event of side `b` (or `a`) that `f` accepts; whether there was one.
    pub fn took(&mut self, on_b: bool, f: impl Fn(&S::Event) -> bool) -> bool {
        let at = self.events.iter().position(|(side, e)| *side == on_b && f(e));
        at.map(|i| self.events.remove(i)).is_some()
    }
}
