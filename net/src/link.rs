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

    /// When the queue is next idle.
    pub fn free_at_ns(&self) -> u64 {
        self.free_at_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
