//! The event envelope that crosses shard boundaries, and its canonical total order.

use crate::ids::HostId;
use crate::time::SimTime;
use bytes::Bytes;
use std::cmp::Ordering;

/// The ordering key of an event: `(deliver_time, src_host, src_seq, dst_host)` (invariant 6).
///
/// Every field is metadata decided by the sender, so two runs order simultaneous events the same
/// way whatever the receive order, the shard count or the backend.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    /// When the event takes effect at the destination.
    pub deliver_time: SimTime,
    /// The host whose action produced the event.
    pub src_host: HostId,
    /// Per-source-host sequence number: the n-th event `src_host` produced.
    pub src_seq: u64,
    /// The host the event is for.
    pub dst_host: HostId,
}

/// A timestamped future event for a host on another shard (invariant 3): the only thing shards
/// exchange.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// When the event takes effect at the destination.
    pub deliver_time: SimTime,
    /// The host whose action produced the event.
    pub src_host: HostId,
    /// Per-source-host sequence number.
    pub src_seq: u64,
    /// The host the event is for.
    pub dst_host: HostId,
    /// What the payload is; interpreted by the engine that owns `dst_host`.
    pub kind: u16,
    /// Engine-defined bytes (a packet, a gossip RPC, …). Explicitly encoded by the sender.
    /// Reference-counted: one message sent to many peers shares one buffer, and decoded events
    /// share the received batch's buffer (copy a payload kept for long, so as not to pin it).
    pub payload: Bytes,
}

impl Event {
    /// The canonical ordering key.
    pub fn key(&self) -> EventKey {
        EventKey {
            deliver_time: self.deliver_time,
            src_host: self.src_host,
            src_seq: self.src_seq,
            dst_host: self.dst_host,
        }
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Canonical order by [`EventKey`]; kind and payload only break ties between events that
    /// (wrongly) share a key, so that `Ord` stays consistent with `Eq`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.kind.cmp(&other.kind))
            .then_with(|| self.payload.cmp(&other.payload))
    }
}

/// Sort events into the canonical delivery order.
pub fn sort_canonical(events: &mut [Event]) {
    events.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, src: u32, seq: u64, dst: u32) -> Event {
        Event {
            deliver_time: SimTime::from_nanos(t),
            src_host: HostId(src),
            src_seq: seq,
            dst_host: HostId(dst),
            kind: 0,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn order_is_time_then_source_then_seq_then_destination() {
        let mut v = vec![ev(5, 2, 0, 1), ev(5, 1, 9, 3), ev(4, 9, 9, 9), ev(5, 1, 9, 2), ev(5, 1, 3, 7)];
        sort_canonical(&mut v);
        let keys: Vec<_> =
            v.iter().map(|e| (e.deliver_time.as_nanos(), e.src_host.0, e.src_seq, e.dst_host.0)).collect();
        assert_eq!(keys, vec![(4, 9, 9, 9), (5, 1, 3, 7), (5, 1, 9, 2), (5, 1, 9, 3), (5, 2, 0, 1)]);
    }
}
