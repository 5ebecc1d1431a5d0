//! A host's network interface as FIFO queues: a message leaves only after the host's earlier
//! uploads have been serialised (delay = size / bandwidth), and is received only after earlier
//! downloads have. Without this, block propagation is wrong by seconds: a 100 KiB block sent to
//! eight peers from a 25 Mbit/s host takes 33 ms per copy, 262 ms for the last.
//!
//! Each transmission names its [`Lane`]: whether it waits behind the queue or is serialised on
//! its own at once. Which traffic takes which lane is the engine's explicit rule (the surrogate's
//! control RPCs go express, as rust-libp2p sends them first; direct hosts' packets all queue, as
//! a NIC sends them).

use thermocline_models::units::Bandwidth;

/// How a transmission uses one direction of a link.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Serialised after everything queued before it: the FIFO.
    Queued,
    /// Serialised on its own starting at once, neither waiting for the queue nor delaying it:
    /// small priority traffic whose serialisation the queue does not feel.
    Express,
}

/// When `bytes` sent on the express lane at `now_ns` have left: serialised on their own, with no
/// queue to keep (a zero bandwidth is unlimited). Engines whose queue is their own (the surrogate
/// keeps its message copies in order so that IDONTWANT can still cancel them) send each copy
/// this way when its turn comes.
pub fn express(now_ns: u64, bytes: u64, bandwidth: Bandwidth) -> u64 {
    now_ns.saturating_add(bandwidth.transmit_ns(bytes).unwrap_or(0))
}

/// One direction of a host's interface: when its queue is next free.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FifoLink {
    free_at_ns: u64,
}

impl FifoLink {
    /// Queue `bytes` at time `now_ns` on a link of `bandwidth`: returns when the last bit has
    /// been serialised (the message's departure, or its arrival for a download queue). A zero
    /// bandwidth is treated as unlimited.
    pub fn transmit(&mut self, now_ns: u64, bytes: u64, bandwidth: Bandwidth) -> u64 {
        self.send(Lane::Queued, now_ns, bytes, bandwidth)
    }

    /// [`FifoLink::transmit`] on `lane`: an express transmission starts at `now_ns` and leaves
    /// the queue as it was.
    pub fn send(&mut self, lane: Lane, now_ns: u64, bytes: u64, bandwidth: Bandwidth) -> u64 {
        match lane {
            Lane::Express => express(now_ns, bytes, bandwidth),
            Lane::Queued => {
                let done = express(self.free_at_ns.max(now_ns), bytes, bandwidth);
                self.free_at_ns = done;
                done
            }
        }
    }

    /// Receive a transmission whose last byte reaches the link at `last_ns` and whose bytes
    /// reached it spread over the `spread_ns` before (its sender's serialisation: TCP pipelines
    /// segments through every hop, so a download starts with the first byte, not the last).
    /// The link works its bytes off in order from the later of their first arrival and the
    /// link's previous work, at `bandwidth`; the transmission is complete when that work is done,
    /// and never before its last byte plus one segment's serialisation. Returns that time. The
    /// queue then holds the work, not the completion: a slow sender's copy leaves the link free
    /// for others while its bytes trickle in. A `spread_ns` of 0 is [`FifoLink::transmit`].
    pub fn stream(&mut self, last_ns: u64, spread_ns: u64, bytes: u64, bandwidth: Bandwidth) -> u64 {
        const SEGMENT: u64 = 1460;
        let first = last_ns.saturating_sub(spread_ns);
        let worked = express(self.free_at_ns.max(first), bytes, bandwidth);
        self.free_at_ns = worked;
        worked.max(express(last_ns, bytes.min(SEGMENT), bandwidth))
    }

    /// When the queue is next idle.
    pub fn free_at_ns(&self) -> u64 {
        self.free_at_ns
    }
}

/// A sender's shaping queues: one per path limit of the rule table it sends under
/// ([`crate::rules::PathLimit`]), by (sender, limit). Owned by the sender's engine and used in
/// its departure order, so what it decides depends on that sender's transmissions alone.
#[derive(Clone, Debug, Default)]
pub struct Shaping {
    queues: std::collections::HashMap<(u32, u32), FifoLink>,
}

impl Shaping {
    /// When a transmission of `bytes` that leaves `from`'s upload link at `at` for `to` has
    /// passed the path limit in force on it, if any (else `at`).
    pub fn depart(&mut self, rules: &crate::Rules, (from, to): (u32, u32), at: u64, bytes: u64) -> u64 {
        if !rules.has_path_limits() {
            return at;
        }
        match rules.path_limit(from, to, at) {
            Some((k, bps)) => self.queues.entry((from, k)).or_default().transmit(at, bytes, Bandwidth(bps)),
            None => at,
        }
    }
}

/// Finish tags within this many units (10⁻³ bit) of the service received count as done: the
/// service is summed in whole units, each step rounded down.
const FAIR_TOLERANCE: u128 = 1_000_000;

/// One direction of a link shared fairly among the transmissions in progress, as TCP connections
/// share a host's uplink: while `k` transmissions are under way each is served at `1/k` of the
/// bandwidth (a fluid processor-sharing queue, kept with virtual time as in fair queueing). A
/// burst of `k` equal copies therefore all leave at about `k` serialisation times, where a
/// [`FifoLink`] lets the first leave after one. Items are what the caller sends (a copy and its
/// connection). After each push or completion the caller asks [`FairLink::wake`] whether to
/// schedule a wake-up, and when one comes, asks [`FairLink::is_wake`] whether it is the one the
/// link is waiting for and then takes what has left with [`FairLink::complete`]. A push that
/// delays the next completion (the usual case) schedules nothing: the wake-up already pending
/// finds nothing done and schedules the later one, so a burst of `k` copies costs about `k`
/// wake-ups, not `k²`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FairLink<T> {
    /// Service each transmission in progress has received since the link was created, in
    /// units of 10⁻⁹ bit (bits × 10⁹, so that ns × bit/s needs no division by 10⁹).
    served: u128,
    /// When `served` was last brought up to date.
    last_ns: u64,
    /// Transmissions in progress: the service at which each is done, and its item, in the order
    /// they started.
    flows: Vec<(u128, T)>,
    /// The wake-up the caller has scheduled and not yet had (`u64::MAX`: none).
    wake_ns: u64,
}

impl<T> Default for FairLink<T> {
    fn default() -> Self {
        FairLink { served: 0, last_ns: 0, flows: Vec::new(), wake_ns: u64::MAX }
    }
}

impl<T> FairLink<T> {
    /// Bring the service up to `now_ns` at the current share.
    fn advance(&mut self, now_ns: u64, bandwidth: Bandwidth) {
        let k = self.flows.len() as u128;
        if k > 0 && now_ns > self.last_ns {
            self.served += (now_ns - self.last_ns) as u128 * bandwidth.0 as u128 / k;
        }
        self.last_ns = self.last_ns.max(now_ns);
    }

    /// Start sending `bytes` (carrying `item`) at `now_ns` on a link of `bandwidth` (zero:
    /// unlimited, it is done at once).
    pub fn push(&mut self, now_ns: u64, bytes: u64, bandwidth: Bandwidth, item: T) {
        self.advance(now_ns, bandwidth);
        let size = if bandwidth.0 == 0 { 0 } else { bytes as u128 * 8 * 1_000_000_000 };
        self.flows.push((self.served + size, item));
    }

    /// When the next transmission in progress will be done if nothing else starts meanwhile.
    pub fn next_done(&self, bandwidth: Bandwidth) -> Option<u64> {
        let first = self.flows.iter().map(|f| f.0).min()?;
        let left = first.saturating_sub(self.served);
        if left == 0 || bandwidth.0 == 0 {
            return Some(self.last_ns);
        }
        let k = self.flows.len() as u128;
        let ns = (left * k).div_ceil(bandwidth.0 as u128);
        Some(self.last_ns.saturating_add(ns.min(u64::MAX as u128) as u64))
    }

    /// When the caller must schedule a wake-up, if it must: the next completion, when it comes
    /// before the wake-up already scheduled (none is, after [`FairLink::complete`]).
    pub fn wake(&mut self, bandwidth: Bandwidth) -> Option<u64> {
        let at = self.next_done(bandwidth)?;
        (at < self.wake_ns).then(|| {
            self.wake_ns = at;
            at
        })
    }

    /// Whether a wake-up at `now_ns` is the one the link waits for (others were superseded by
    /// an earlier one and are ignored).
    pub fn is_wake(&self, now_ns: u64) -> bool {
        self.wake_ns == now_ns
    }

    /// Move the transmissions done by `now_ns` to `out`, in the order they finished (ties in the
    /// order they started); the pending wake-up is taken.
    pub fn complete(&mut self, now_ns: u64, bandwidth: Bandwidth, out: &mut Vec<T>) {
        self.wake_ns = u64::MAX;
        self.advance(now_ns, bandwidth);
        loop {
            let first = self.flows.iter().enumerate().min_by_key(|(k, f)| (f.0, *k)).map(|(k, f)| (k, f.0));
            match first {
                Some((k, tag)) if tag <= self.served + FAIR_TOLERANCE => out.push(self.flows.remove(k).1),
                _ => break,
            }
        }
        if self.flows.is_empty() {
            // An idle link keeps no buffer: a million identities' links are idle most of the time.
            self.flows = Vec::new();
        }
    }

    /// Transmissions in progress.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether nothing is being sent.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Drop every transmission in progress (the host went away); a pending wake-up is ignored.
    pub fn clear(&mut self) {
        self.flows.clear();
        self.wake_ns = u64::MAX;
    }

    /// Drop every transmission in progress as [`FairLink::clear`] does, handing their items to
    /// `out` in the order they started (a caller that must release what they hold).
    pub fn drain_into(&mut self, out: &mut Vec<T>) {
        out.extend(self.flows.drain(..).map(|(_, item)| item));
        self.wake_ns = u64::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MBIT50: Bandwidth = Bandwidth(50_000_000);

    #[test]
    fn a_pipelined_download_of_a_slow_senders_copy_ends_one_segment_after_its_last_byte() {
        // 100 KB sent over 115 ms by a sender sharing its uplink with six others: the 50-Mbit
        // downlink (16.4 ms of work) has long taken the bytes when the last one comes.
        let mut link = FifoLink::default();
        let last = 1_000_000_000;
        let done = link.stream(last, 115_000_000, 102_400, MBIT50);
        assert_eq!(done, last + MBIT50.transmit_ns(1460).unwrap());
        assert_eq!(link.free_at_ns(), last - 115_000_000 + MBIT50.transmit_ns(102_400).unwrap());
    }

    #[test]
    fn pipelined_copies_faster_together_than_the_link_queue_their_work() {
        // Five senders at the downlink's own rate, all at once: 5 × 16.4 ms of work, as a FIFO.
        let one = MBIT50.transmit_ns(102_400).unwrap();
        let (mut piped, mut fifo) = (FifoLink::default(), FifoLink::default());
        let last = 1_000_000_000;
        for k in 1..=5 {
            let done = piped.stream(last, one, 102_400, MBIT50);
            let segment = last + MBIT50.transmit_ns(1460).unwrap();
            assert_eq!(done, (last - one + k * one).max(segment), "copy {k}");
            assert_eq!(fifo.transmit(last, 102_400, MBIT50), last + k * one);
        }
        // Slow senders together (each 7 Mbit/s, 35 in all): no queue, each at its last byte.
        let mut slow = FifoLink::default();
        for _ in 0..5 {
            assert_eq!(slow.stream(last, 115_000_000, 102_400, MBIT50), last + MBIT50.transmit_ns(1460).unwrap());
        }
    }

    #[test]
    fn an_idle_fair_link_keeps_no_buffer() {
        let mut link = FairLink::default();
        for k in 0..8 {
            link.push(0, 1000, MBIT50, k);
        }
        let mut out = Vec::new();
        link.complete(u64::MAX / 2, MBIT50, &mut out);
        assert_eq!((out, link.len(), link.flows.capacity()), ((0..8).collect::<Vec<_>>(), 0, 0));
    }

    #[test]
    fn a_drained_fair_link_hands_back_its_items_in_order_and_wakes_no_more() {
        let mut link = FairLink::default();
        for k in 0..3 {
            link.push(0, 1000 * (3 - k), MBIT50, k);
        }
        assert!(link.wake(MBIT50).is_some());
        let mut out = vec![9];
        link.drain_into(&mut out);
        assert_eq!((out, link.len()), (vec![9, 0, 1, 2], 0));
        assert_eq!(link.wake(MBIT50), None);
    }

    #[test]
    fn a_stream_without_spread_is_a_fifo_transmission() {
        let (mut a, mut b) = (FifoLink::default(), FifoLink::default());
        for (t, n) in [(0, 5000), (10, 200), (1_000_000, 70_000)] {
            assert_eq!(a.stream(t, 0, n, MBIT50), b.transmit(t, n, MBIT50));
        }
    }

    #[test]
    fn shaping_queues_a_senders_transmissions_on_a_limited_path_only() {
        use crate::rules::{PathLimit, Rules};
        let rules = Rules::default().with_path_limits(vec![PathLimit {
            from: 0..2,
            to: 5..6,
            during: 0..1_000_000_000,
            bps: 8_000_000,
        }]);
        let mut sh = Shaping::default();
        // 1,000 bytes at 8 Mbit/s: 1 ms each, back to back per sender.
        assert_eq!(sh.depart(&rules, (0, 5), 0, 1_000), 1_000_000);
        assert_eq!(sh.depart(&rules, (0, 5), 0, 1_000), 2_000_000);
        assert_eq!(sh.depart(&rules, (1, 5), 0, 1_000), 1_000_000, "another sender has its own queue");
        assert_eq!(sh.depart(&rules, (0, 4), 7, 1_000), 7, "another destination is not limited");
        assert_eq!(sh.depart(&rules, (0, 5), 2_000_000_000, 1_000), 2_000_000_000, "ended");
        assert_eq!(Shaping::default().depart(&Rules::default(), (0, 5), 3, 1_000), 3);
    }

    /// Run `link` to empty, waking at each `next_done`: (time, item) of every completion.
    fn drain(link: &mut FairLink<u32>, bw: Bandwidth) -> Vec<(u64, u32)> {
        let mut done = Vec::new();
        while let Some(t) = link.next_done(bw) {
            let mut out = Vec::new();
            link.complete(t, bw, &mut out);
            assert!(!out.is_empty(), "a wake-up at next_done completes something");
            assert_eq!(link.wake(bw), link.next_done(bw), "after a completion the next wake-up is scheduled");
            done.extend(out.into_iter().map(|x| (t, x)));
        }
        done
    }

    #[test]
    fn a_fair_burst_leaves_together_after_all_serialisations() {
        // Eight 100 KiB copies at 25 Mbit/s: each served at 1/8, all done at 8 × 32.768 ms.
        let bw = Bandwidth(25_000_000);
        let mut up = FairLink::default();
        for k in 0..8 {
            up.push(0, 100 * 1024, bw, k);
        }
        assert_eq!(up.len(), 8);
        let done = drain(&mut up, bw);
        assert_eq!(done, (0..8).map(|k| (8 * 32_768_000, k)).collect::<Vec<_>>());
        assert!(up.is_empty() && up.next_done(bw).is_none());
    }

    #[test]
    fn a_late_small_transmission_shares_the_link_and_slows_the_big_one() {
        // One byte per µs. 1000 B from 0; 100 B from 500 µs: from then on each gets half, so the
        // small one needs 200 µs (done at 700 µs) and the big one, with 500 B left, gets 100 B
        // in those 200 µs and the last 400 B alone: done at 1100 µs.
        let bw = Bandwidth(8_000_000);
        let mut up = FairLink::default();
        up.push(0, 1000, bw, 1);
        assert_eq!(up.wake(bw), Some(1_000_000));
        up.push(500_000, 100, bw, 2);
        // The small one is done first, at 700 µs: a wake-up earlier than the pending one.
        assert_eq!(up.wake(bw), Some(700_000));
        assert!(up.is_wake(700_000) && !up.is_wake(1_000_000), "the 1-ms wake-up is superseded");
        assert_eq!(drain(&mut up, bw), [(700_000, 2), (1_100_000, 1)]);
        // A push that only delays the next completion needs no new wake-up: the pending one
        // comes first, finds nothing done and schedules the later.
        let mut big = FairLink::default();
        big.push(0, 1000, bw, 1);
        assert_eq!(big.wake(bw), Some(1_000_000));
        big.push(0, 1000, bw, 2);
        assert_eq!(big.wake(bw), None);
        let mut out = Vec::new();
        big.complete(1_000_000, bw, &mut out);
        assert!(out.is_empty());
        assert_eq!(big.wake(bw), Some(2_000_000));
    }

    #[test]
    fn an_idle_fair_link_is_a_fifo_of_one_and_unlimited_is_instant() {
        let bw = Bandwidth(25_000_000);
        let mut up = FairLink::default();
        up.push(1_000_000_000, 1250, bw, 7);
        assert_eq!(drain(&mut up, bw), [(1_000_400_000, 7)]);
        let mut fifo = FifoLink::default();
        assert_eq!(fifo.transmit(1_000_000_000, 1250, bw), 1_000_400_000);
        let mut free = FairLink::default();
        free.push(5, 1 << 30, Bandwidth(0), 1);
        assert_eq!(drain(&mut free, Bandwidth(0)), [(5, 1)]);
        free.push(9, 10, bw, 2);
        free.clear();
        assert!(free.is_empty() && free.next_done(bw).is_none());
    }

    #[test]
    fn a_burst_leaves_exactly_one_serialisation_time_apart() {
        // Eight copies of a 100 KiB block from a 25 Mbit/s host at t = 0: 32.768 ms each.
        let mut up = FifoLink::default();
        let bw = Bandwidth(25_000_000);
        let departures: Vec<u64> = (0..8).map(|_| up.transmit(0, 100 * 1024, bw)).collect();
        let expected: Vec<u64> = (1..=8).map(|k| k * 32_768_000).collect();
        assert_eq!(departures, expected);
        // An idle link starts at `now`; a busy one queues.
        assert_eq!(up.transmit(1_000_000_000, 1250, bw), 1_000_400_000);
        assert_eq!(up.transmit(1_000_000_000, 1250, bw), 1_000_800_000);
    }

    #[test]
    fn express_traffic_neither_waits_nor_delays_the_queue() {
        let mut up = FifoLink::default();
        let bw = Bandwidth(8_000_000); // one byte per microsecond
        assert_eq!(up.send(Lane::Queued, 0, 1000, bw), 1_000_000);
        assert_eq!(up.send(Lane::Express, 10, 100, bw), 100_010);
        assert_eq!(up.free_at_ns(), 1_000_000);
        assert_eq!(up.send(Lane::Queued, 20, 1000, bw), 2_000_000);
        // Unlimited bandwidth: nothing waits.
        assert_eq!(FifoLink::default().send(Lane::Queued, 5, 1 << 30, Bandwidth(0)), 5);
    }
}
