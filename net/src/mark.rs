//! Stream marks: how the sender of a TCP byte stream tells the receiver's host which byte ends
//! a message, so the receiver's side can time the message's arrival exactly. A boundary identity
//! (a surrogate that a real client connected to) sends one for every gossipsub message it writes
//! to a client: the connection, the stream offset just past the last byte a client must have to
//! read the message, and what the message is. The client's host records the instant its TCP
//! stack has delivered every byte up to that offset, in order, to the client's socket.
//!
//! The encoding is explicit and big-endian (version 1): `version u8, src ip [4], src port u16,
//! dst ip [4], dst port u16, end u64, message u64, published u64, slot u64, slot start u64,
//! sender u32, hops u8, topic length u16, topic bytes`.

use std::net::{Ipv4Addr, SocketAddrV4};

/// The encoding's version byte.
const VERSION: u8 = 1;
/// Bytes before the topic.
const FIXED: usize = 1 + 6 + 6 + 8 * 5 + 4 + 1 + 2;

/// What a marked message is, as the sender knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkNote {
    /// The message's key (the surrogate router's 64-bit message key).
    pub message: u64,
    /// When it was published, ns since the start of the run.
    pub published_ns: u64,
    /// The slot it belongs to.
    pub slot: u64,
    /// When that slot started, ns since the start of the run.
    pub slot_start_ns: u64,
    /// The host that sent this copy.
    pub sender: u32,
    /// Hops the copy has taken when it arrives (the sender's own count plus one).
    pub hops: u8,
    /// Its gossipsub topic.
    pub topic: String,
}

/// One message's end on one TCP stream (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMark {
    /// The stream's sender (its address and port).
    pub src: SocketAddrV4,
    /// The stream's receiver.
    pub dst: SocketAddrV4,
    /// Stream offset (bytes from the stream's first data byte) just past the message's end.
    pub end: u64,
    /// The message.
    pub note: MarkNote,
}

/// Why bytes are not a stream mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MarkError {
    /// Too short, or the topic runs past the end.
    #[error("truncated stream mark")]
    Truncated,
    /// A version this build does not read.
    #[error("stream mark version {0} is not 1")]
    Version(u8),
    /// The topic is not UTF-8.
    #[error("stream mark topic is not UTF-8")]
    Topic,
}

impl StreamMark {
    /// The mark's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let n = &self.note;
        let mut b = Vec::with_capacity(FIXED + n.topic.len());
        b.push(VERSION);
        for a in [self.src, self.dst] {
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&a.port().to_be_bytes());
        }
        for v in [self.end, n.message, n.published_ns, n.slot, n.slot_start_ns] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&n.sender.to_be_bytes());
        b.push(n.hops);
        let topic = &n.topic.as_bytes()[..n.topic.len().min(u16::MAX as usize)];
        b.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        b.extend_from_slice(topic);
        b
    }

    /// Reads a mark. Never panics on any input.
    pub fn decode(b: &[u8]) -> Result<StreamMark, MarkError> {
        if b.len() < FIXED {
            return Err(MarkError::Truncated);
        }
        if b[0] != VERSION {
            return Err(MarkError::Version(b[0]));
        }
        let addr = |at: usize| {
            SocketAddrV4::new(
                Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]),
                u16::from_be_bytes([b[at + 4], b[at + 5]]),
            )
        };
        let word = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let len = u16::from_be_bytes([b[FIXED - 2], b[FIXED - 1]]) as usize;
        let topic = b.get(FIXED..FIXED + len).ok_or(MarkError::Truncated)?;
        let topic = std::str::from_utf8(topic).map_err(|_| MarkError::Topic)?.to_string();
        Ok(StreamMark {
            src: addr(1),
            dst: addr(7),
            end: word(13),
            note: MarkNote {
                message: word(21),
                published_ns: word(29),
                slot: word(37),
                slot_start_ns: word(45),
                sender: u32::from_be_bytes(b[53..57].try_into().expect("4 bytes")),
                hops: b[57],
                topic,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn marks_round_trip(ips: ([u8; 4], [u8; 4]), ports: (u16, u16), words: (u64, u64, u64, u64, u64), sender: u32, hops: u8, topic in "[a-z_0-9]{0,40}") {
            let m = StreamMark {
                src: SocketAddrV4::new(ips.0.into(), ports.0),
                dst: SocketAddrV4::new(ips.1.into(), ports.1),
                end: words.0,
                note: MarkNote { message: words.1, published_ns: words.2, slot: words.3, slot_start_ns: words.4, sender, hops, topic },
            };
            prop_assert_eq!(StreamMark::decode(&m.encode()), Ok(m));
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = StreamMark::decode(&bytes);
        }
    }

    #[test]
    fn short_and_foreign_bytes_are_refused() {
        let m = StreamMark {
            src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9000),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50000),
            end: 7,
            note: MarkNote {
                message: 1,
                published_ns: 2,
                slot: 3,
                slot_start_ns: 4,
                sender: 5,
                hops: 6,
                topic: "beacon_block".into(),
            },
        };
        let b = m.encode();
        assert_eq!(StreamMark::decode(&b[..b.len() - 1]), Err(MarkError::Truncated));
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(StreamMark::decode(&v2), Err(MarkError::Version(2)));
    }
}
