//! Arrivals of gossip messages at real clients, timed exactly from what the simulation sees.
//!
//! A boundary identity (a surrogate a client connected to) tells the client's host, for every
//! gossipsub message it writes to the client, where the message ends on that TCP stream (a
//! [`StreamMark`]: the offset just past the Noise message holding the message's last byte, from
//! which the client can read it whole). The mark arrives no later than the stream's bytes can.
//! The host keeps it until its TCP stack has delivered the stream, in order, up to that offset
//! into the client's socket: that instant is the message's arrival at the client. The first copy
//! to complete counts; later ones count as duplicates. A mark whose connection is gone, or will
//! deliver no more (closed by the program, or ended by the peer), is dropped.
//!
//! What is not seen here: copies that reach a client from another client over a direct
//! connection between the two (the client's own log is the way to those), and any time the
//! program then takes to read, decrypt and validate the message.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use thermocline_net::{MarkNote, StreamMark};

/// A message's first arrival at a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When its stream was delivered up to its end (ns since the start of the run).
    pub time: u64,
    /// What the mark said of it (its first complete copy).
    pub note: MarkNote,
    /// Copies that completed after the first.
    pub duplicates: u32,
}

/// What the host's stack says of the connection a mark names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamState {
    /// Bytes delivered in order so far.
    pub delivered: u64,
    /// Whether more can still be delivered to the program.
    pub open: bool,
}

/// One host's marks and the arrivals they gave.
#[derive(Debug, Default)]
pub struct Marks {
    pending: Vec<StreamMark>,
    /// First arrivals, by message key.
    pub arrivals: BTreeMap<u64, Arrival>,
    /// Marks received.
    pub received: u64,
    /// Marks dropped: their connection was gone or finished before reaching them.
    pub dropped: u64,
}

impl Marks {
    /// Whether marks wait for their streams.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Marks still waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A mark reached the host.
    pub fn add(&mut self, mark: StreamMark) {
        self.received += 1;
        self.pending.push(mark);
    }

    /// At `now`, after the host's stack has run: every waiting mark whose stream is delivered up
    /// to its end becomes an arrival (or a duplicate); marks of connections that are gone or can
    /// deliver no more are dropped. `stream(local, remote)` says what the stack holds for the
    /// connection from `local` (the host's end) to `remote`, if anything.
    pub fn settle(&mut self, now: u64, mut stream: impl FnMut(SocketAddrV4, SocketAddrV4) -> Option<StreamState>) {
        let pending = std::mem::take(&mut self.pending);
        for mark in pending {
            match stream(mark.dst, mark.src) {
                Some(s) if s.delivered >= mark.end => self.arrived(now, mark.note),
                Some(s) if s.open => self.pending.push(mark),
                _ => self.dropped += 1,
            }
        }
    }

    fn arrived(&mut self, now: u64, note: MarkNote) {
        self.arrivals.entry(note.message).and_modify(|a| a.duplicates += 1).or_insert(Arrival {
            time: now,
            note,
            duplicates: 0,
        });
    }
}

/// Adds what a host's marks gave to its digest record, if it received any: counts, then every
/// arrival in message order.
pub(crate) fn digest_record(marks: &Marks, record: &mut Vec<u8>) {
    if marks.received == 0 {
        return;
    }
    record.extend_from_slice(b"hot-arrivals\0");
    for count in [marks.received, marks.dropped, marks.pending() as u64] {
        record.extend_from_slice(&count.to_be_bytes());
    }
    for (key, a) in &marks.arrivals {
        record.extend_from_slice(&key.to_be_bytes());
        record.extend_from_slice(&a.time.to_be_bytes());
        record.extend_from_slice(&a.duplicates.to_be_bytes());
        record.extend_from_slice(&a.note.sender.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn mark(message: u64, end: u64, sender: u32) -> StreamMark {
        StreamMark {
            src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9000),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50_000),
            end,
            note: MarkNote {
                message,
                published_ns: 0,
                slot: 0,
                slot_start_ns: 0,
                sender,
                hops: 1,
                topic: "beacon_block".into(),
            },
        }
    }

    fn open(delivered: u64) -> impl FnMut(SocketAddrV4, SocketAddrV4) -> Option<StreamState> {
        move |local, remote| {
            assert_eq!((local.port(), remote.port()), (50_000, 9000), "the host's end first");
            Some(StreamState { delivered, open: true })
        }
    }

    #[test]
    fn a_mark_beyond_the_delivered_stream_waits_and_records_once_when_covered() {
        let mut m = Marks::default();
        m.add(mark(7, 1000, 1));
        m.settle(10, open(999));
        assert!(m.arrivals.is_empty() && m.waiting(), "one byte short");
        m.settle(20, open(1000));
        assert_eq!(m.arrivals[&7].time, 20);
        assert!(!m.waiting());
        m.settle(30, open(5000));
        assert_eq!((m.arrivals[&7].time, m.arrivals[&7].duplicates), (20, 0), "recorded once");
    }

    #[test]
    fn the_first_complete_copy_counts_and_later_ones_are_duplicates() {
        let mut m = Marks::default();
        m.add(mark(7, 3000, 1));
        m.add(mark(7, 500, 2));
        m.settle(10, open(600));
        assert_eq!((m.arrivals[&7].time, m.arrivals[&7].note.sender), (10, 2));
        m.settle(40, open(3000));
        assert_eq!((m.arrivals[&7].time, m.arrivals[&7].duplicates), (10, 1));
        assert_eq!(m.received, 2);
    }

    #[test]
    fn marks_of_gone_or_finished_connections_are_dropped() {
        let mut m = Marks::default();
        m.add(mark(1, 100, 1));
        m.add(mark(2, 100, 1));
        m.settle(10, |_, _| None);
        m.add(mark(3, 100, 1));
        m.add(mark(4, 50, 1));
        m.settle(20, |_, _| Some(StreamState { delivered: 60, open: false }));
        assert_eq!((m.dropped, m.pending()), (3, 0));
        assert_eq!(m.arrivals.keys().copied().collect::<Vec<_>>(), [4], "covered before it finished");
    }
}
