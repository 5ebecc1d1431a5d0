//! Varint-length-prefixed messages on a stream, as gossipsub and identify frame their protobufs
//! (rust-libp2p's `unsigned-varint` codec): each message is its length as an unsigned LEB128
//! varint followed by that many bytes.
//!
//! [`FrameDecoder`] takes the stream's bytes in whatever pieces they arrive and hands out whole
//! messages. It checks each length against its maximum as soon as the prefix is complete, so a
//! peer announcing a huge message is refused before anything is allocated for it; it never
//! allocates from a length the peer sent, only stores bytes the peer actually delivered.

use crate::varint::{self, VarintError};

/// Why a stream's framing is broken. Both are fatal to the stream: the decoder keeps returning
/// the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message announced a length above the decoder's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The decoder's maximum.
        max: usize,
    },
    /// The length prefix is not a valid varint (longer than 9 bytes).
    #[error("bad frame length prefix: {0}")]
    Length(VarintError),
}

/// The most room an idle decoder keeps for the next message (bytes).
const IDLE_ROOM: usize = 4096;

/// Splits a byte stream into varint-length-prefixed messages of at most `max_len` bytes each.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_len: usize,
    buf: Vec<u8>,
    /// How much of `buf` has been handed out already.
    start: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder refusing messages longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameDecoder { max_len, buf: Vec::new(), start: 0, failed: None }
    }

    /// The largest message this decoder accepts.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Appends bytes from the stream (any split). Call [`FrameDecoder::next`] until it returns
    /// `Ok(None)` after each push: the decoder holds at most one incomplete message plus what
    /// was pushed since the last drain.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or the framing error.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.parse() {
            Ok(Some((header, len))) => {
                let begin = self.start + header;
                let msg = self.buf[begin..begin + len].to_vec();
                self.start = begin + len;
                self.compact();
                Ok(Some(msg))
            }
            Ok(None) => {
                self.compact();
                Ok(None)
            }
            Err(e) => {
                self.failed = Some(e);
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }

    /// Bytes received but not yet handed out (an incomplete message).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The header length and message length of the next complete message, if there is one.
    fn parse(&self) -> Result<Option<(usize, usize)>, FrameError> {
        let pending = &self.buf[self.start..];
        let (len, header) = match varint::get(pending) {
            Ok(v) => v,
            Err(VarintError::Truncated) => return Ok(None),
            Err(e) => return Err(FrameError::Length(e)),
        };
        let len = match usize::try_from(len) {
            Ok(l) if l <= self.max_len => l,
            _ => return Err(FrameError::TooLong { len, max: self.max_len }),
        };
        Ok((pending.len() - header >= len).then_some((header, len)))
    }

    /// Drops the handed-out prefix of the buffer once it is at least half of it, keeping the
    /// copying amortised.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            // An idle decoder keeps little room: a large message would otherwise pin its size.
            if self.buf.capacity() > IDLE_ROOM {
                self.buf = Vec::new();
            }
            self.buf.clear();
            self.start = 0;
        } else if self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// `msg` with its varint length prefix, ready to write on the stream.
pub fn encode_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(varint::len(msg.len() as u64) + msg.len());
    varint::put(&mut out, msg.len() as u64);
    out.extend_from_slice(msg);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_idle_decoder_keeps_little_room_after_a_large_message() {
        let mut d = FrameDecoder::new(1 << 20);
        d.push(&encode_frame(&vec![1u8; 100 * 1024]));
        assert_eq!(d.next().unwrap().map(|m| m.len()), Some(100 * 1024));
        assert_eq!(d.next().unwrap(), None);
        assert!(d.buf.capacity() <= IDLE_ROOM, "{}", d.buf.capacity());
    }

    fn drain(d: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some(m) = d.next()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn prefix_is_a_varint() {
        assert_eq!(encode_frame(b"abc"), b"\x03abc");
        assert_eq!(encode_frame(&[]), [0]);
        let long = vec![7u8; 300];
        assert_eq!(encode_frame(&long)[..2], [0xac, 0x02]);
    }

    #[test]
    fn byte_at_a_time_and_empty_messages() {
        let mut wire = encode_frame(b"hello");
        wire.extend(encode_frame(b""));
        wire.extend(encode_frame(b"x"));
        let mut d = FrameDecoder::new(16);
        let mut got = Vec::new();
        for b in &wire {
            d.push(&[*b]);
            got.extend(drain(&mut d).unwrap());
        }
        assert_eq!(got, vec![b"hello".to_vec(), vec![], b"x".to_vec()]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn too_long_is_refused_from_the_prefix_alone() {
        let mut d = FrameDecoder::new(100);
        d.push(&[0x80, 0x80, 0x80, 0x80, 0x08]); // 2^31, and no payload at all
        assert_eq!(d.next(), Err(FrameError::TooLong { len: 1 << 31, max: 100 }));
        d.push(b"more");
        assert_eq!(d.next(), Err(FrameError::TooLong { len: 1 << 31, max: 100 }));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut d = FrameDecoder::new(3);
        d.push(&encode_frame(b"abc"));
        assert_eq!(d.next(), Ok(Some(b"abc".to_vec())));
        d.push(&encode_frame(b"abcd"));
        assert_eq!(d.next(), Err(FrameError::TooLong { len: 4, max: 3 }));
    }

    #[test]
    fn overlong_prefix_is_refused() {
        let mut d = FrameDecoder::new(100);
        d.push(&[0x80; 9]);
        assert_eq!(d.next(), Err(FrameError::Length(VarintError::Overflow)));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_messages_back(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let wire: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m)).collect();
            let mut d = FrameDecoder::new(300);
            let mut got = Vec::new();
            let mut at = 0;
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            for c in cuts {
                d.push(&wire[at..c]);
                at = c;
                got.extend(drain(&mut d).unwrap());
            }
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            max in 0usize..128,
        ) {
            let mut d = FrameDecoder::new(max);
            for c in &chunks {
                d.push(c);
                if let Ok(msgs) = drain(&mut d) {
                    prop_assert!(msgs.iter().all(|m| m.len() <= max));
                }
            }
        }
    }
}
