//! Where marked RPCs end on the wire. A connection can be asked to note when a gossipsub RPC it
//! sends has left whole: the RPC's frame goes down the outbound gossipsub stream (after that
//! stream's protocol negotiation), the muxer emits it (flow control may hold it back), and Noise
//! encrypts it in messages of at most 65,519 plaintext bytes. The peer can read the RPC once it
//! holds the whole Noise message carrying the frame's last byte, so the mark is the wire offset
//! just past that message: bytes from the start of what this side writes to the connection.

use crate::noise::{MAX_PLAINTEXT_LEN, TAG_LEN};
use std::collections::VecDeque;

/// Bytes of one Noise transport message besides its plaintext: length prefix and tag.
const NOISE_OVERHEAD: usize = 2 + TAG_LEN;

/// A connection's marked RPCs.
#[derive(Debug, Default)]
pub(super) struct Marks {
    /// Bytes of gossipsub frames queued for the outbound stream, ever.
    framed: u64,
    /// Data bytes of the outbound gossipsub stream the muxer has emitted.
    emitted: u64,
    /// Marked frames not yet emitted whole: (end in frame bytes, tag).
    pending: VecDeque<(u64, u64)>,
    /// Marked frames that left: (tag, wire offset just past the Noise message holding their end).
    done: VecDeque<(u64, u64)>,
}

impl Marks {
    /// A frame of `len` bytes is queued for the outbound stream, marked with `tag` if given.
    pub(super) fn frame(&mut self, len: usize, tag: Option<u64>) {
        self.framed += len as u64;
        if let Some(tag) = tag {
            self.pending.push_back((self.framed, tag));
        }
    }

    /// Whether marks wait for their frames to leave.
    pub(super) fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The muxer emitted `batch_len` bytes that Noise encrypts next, the first of them to go at
    /// wire offset `wire`; `spans` says where the outbound stream's data lies in them (see
    /// `Muxer::data_in`), and `negotiation` is how many bytes of that stream preceded its frames.
    pub(super) fn batch(&mut self, spans: &[(usize, usize)], batch_len: usize, wire: u64, negotiation: u64) {
        for &(span_end, len) in spans {
            self.emitted += len as u64;
            while let Some(&(end, tag)) = self.pending.front() {
                let end = negotiation + end;
                if end > self.emitted {
                    break;
                }
                self.pending.pop_front();
                let last = span_end - (self.emitted - end) as usize - 1;
                let messages = last / MAX_PLAINTEXT_LEN + 1;
                let through = (messages * MAX_PLAINTEXT_LEN).min(batch_len) + messages * NOISE_OVERHEAD;
                self.done.push_back((tag, wire + through as u64));
            }
        }
    }

    /// The outbound stream is gone: what it had not sent never will be.
    pub(super) fn abandon(&mut self) {
        self.pending.clear();
    }

    /// The next mark whose frame has left: (tag, wire offset).
    pub(super) fn poll(&mut self) -> Option<(u64, u64)> {
        self.done.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_ends_past_the_noise_message_that_holds_its_last_byte() {
        let mut m = Marks::default();
        m.frame(100, Some(7));
        // 10 bytes of negotiation, then the frame: the stream's data is at 20..130 of the batch.
        m.batch(&[(20, 10)], 20, 1000, 10);
        assert_eq!(m.poll(), None, "only the negotiation left");
        m.batch(&[(112, 100)], 112, 2000, 10);
        assert_eq!(m.poll(), Some((7, 2000 + 112 + NOISE_OVERHEAD as u64)));
    }

    #[test]
    fn a_frame_ending_in_the_first_of_two_noise_messages_is_marked_at_its_end() {
        let mut m = Marks::default();
        m.frame(60_000, Some(1));
        m.frame(20_000, Some(2));
        let batch = 80_100;
        m.batch(&[(60_050, 60_000), (80_100, 20_000)], batch, 0, 0);
        let first = (MAX_PLAINTEXT_LEN + NOISE_OVERHEAD) as u64;
        assert_eq!(m.poll(), Some((1, first)));
        assert_eq!(m.poll(), Some((2, first + (batch - MAX_PLAINTEXT_LEN + NOISE_OVERHEAD) as u64)));
        assert!(!m.waiting());
    }

    #[test]
    fn a_frame_held_back_by_flow_control_is_marked_when_its_last_byte_leaves() {
        let mut m = Marks::default();
        m.frame(50, None);
        m.frame(50, Some(3));
        m.batch(&[(80, 80)], 80, 0, 0);
        assert_eq!(m.poll(), None, "20 bytes still held back");
        assert!(m.waiting());
        m.batch(&[(32, 20)], 40, 500, 0);
        assert_eq!(m.poll(), Some((3, 500 + 40 + NOISE_OVERHEAD as u64)));
        m.frame(10, Some(4));
        m.abandon();
        assert!(!m.waiting());
    }
}
