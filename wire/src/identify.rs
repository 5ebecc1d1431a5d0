//! Identify (`/ipfs/id/1.0.0`) and identify-push (`/ipfs/id/push/1.0.0`): one protobuf
//! `Identify` message, varint-length-prefixed (see [`crate::frame`]).
//!
//! The exchange (libp2p specs, identify/README.md): in `identify`, the peer that wants to learn
//! about the other opens a stream; the *listener* of that stream (the peer being identified)
//! writes one `Identify` message and closes its side; the dialer reads it and sends nothing. In
//! `identify/push`, the peer whose information changed opens the stream, writes one message
//! and closes; the listener reads it and treats absent fields as unchanged (here: empty strings
//! and lists, `None`). go-libp2p splits a message too large for one frame into several on the
//! same stream, so a reader should [`Identify::merge`] every frame until the stream ends.
//!
//! rust-libp2p refuses identify frames over 4096 bytes ([`MAX_MESSAGE_SIZE`]): a sender must
//! stay under it to be heard.

use crate::frame::{FrameDecoder, encode_frame};
pub use crate::protobuf::ProtoError;
use crate::protobuf::{ItemBudget, Reader, bytes, put_bytes, string};

/// The identify protocol id.
pub const PROTOCOL: &str = "/ipfs/id/1.0.0";
/// The identify-push protocol id.
pub const PUSH_PROTOCOL: &str = "/ipfs/id/push/1.0.0";
/// The largest identify frame rust-libp2p reads (its `MAX_MESSAGE_SIZE_BYTES`).
pub const MAX_MESSAGE_SIZE: usize = 4096;

/// What a peer says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identify {
    /// Protocol family, e.g. `ipfs/0.1.0` (field 5).
    pub protocol_version: String,
    /// Implementation and version, e.g. `rust-libp2p/0.47.0` (field 6).
    pub agent_version: String,
    /// The peer's public key, protobuf-encoded as in the peer-ids spec (field 1).
    pub public_key: Vec<u8>,
    /// Binary multiaddrs the peer listens on (field 2).
    pub listen_addrs: Vec<Vec<u8>>,
    /// The binary multiaddr the peer sees the stream's other end at (field 4).
    pub observed_addr: Option<Vec<u8>>,
    /// Protocol ids the peer accepts inbound streams for (field 3).
    pub protocols: Vec<String>,
    /// A signed envelope holding the peer's record (field 8).
    pub signed_peer_record: Option<Vec<u8>>,
}

impl Identify {
    /// The protobuf encoding, fields in number order (strings and the key always written, as
    /// rust-libp2p writes them).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, 1, &self.public_key);
        for a in &self.listen_addrs {
            put_bytes(&mut out, 2, a);
        }
        for p in &self.protocols {
            put_bytes(&mut out, 3, p.as_bytes());
        }
        if let Some(a) = &self.observed_addr {
            put_bytes(&mut out, 4, a);
        }
        put_bytes(&mut out, 5, self.protocol_version.as_bytes());
        put_bytes(&mut out, 6, self.agent_version.as_bytes());
        if let Some(r) = &self.signed_peer_record {
            put_bytes(&mut out, 8, r);
        }
        out
    }

    /// The encoding framed for the stream (varint length prefix).
    pub fn encode_frame(&self) -> Vec<u8> {
        encode_frame(&self.encode())
    }

    /// Decodes one message (a frame's payload); absent fields read as empty.
    pub fn decode(buf: &[u8]) -> Result<Identify, ProtoError> {
        let mut m = Identify::default();
        m.merge(buf)?;
        Ok(m)
    }

    /// Merges one more encoded message into this one, as protobuf merges: scalars it carries
    /// replace ours, lists are appended. For a message split over several frames.
    pub fn merge(&mut self, buf: &[u8]) -> Result<(), ProtoError> {
        // Each item takes at least two bytes of the frame; the budget only guards `merge`
        // calls on unframed input.
        let mut budget = ItemBudget::new(buf.len() / 2 + 1);
        let mut r = Reader::new(buf);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => self.public_key = bytes(field, v)?.to_vec(),
                2 => {
                    budget.take()?;
                    self.listen_addrs.push(bytes(field, v)?.to_vec());
                }
                3 => {
                    budget.take()?;
                    self.protocols.push(string(field, v)?);
                }
                4 => self.observed_addr = Some(bytes(field, v)?.to_vec()),
                5 => self.protocol_version = string(field, v)?,
                6 => self.agent_version = string(field, v)?,
                8 => self.signed_peer_record = Some(bytes(field, v)?.to_vec()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A frame decoder sized for identify: frames above [`MAX_MESSAGE_SIZE`] are refused.
pub fn frame_decoder() -> FrameDecoder {
    FrameDecoder::new(MAX_MESSAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameError;
    use proptest::prelude::*;

    /// identify/README.md's `Identify` message (plus field 8) as prost types, written from the
    /// spec's field list.
    #[derive(Clone, PartialEq, prost::Message)]
    struct PbIdentify {
        #[prost(string, optional, tag = "5")]
        protocol_version: Option<String>,
        #[prost(string, optional, tag = "6")]
        agent_version: Option<String>,
        #[prost(bytes = "vec", optional, tag = "1")]
        public_key: Option<Vec<u8>>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        listen_addrs: Vec<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "4")]
        observed_addr: Option<Vec<u8>>,
        #[prost(string, repeated, tag = "3")]
        protocols: Vec<String>,
        #[prost(bytes = "vec", optional, tag = "8")]
        signed_peer_record: Option<Vec<u8>>,
    }

    fn to_pb(m: &Identify) -> PbIdentify {
        PbIdentify {
            protocol_version: Some(m.protocol_version.clone()),
            agent_version: Some(m.agent_version.clone()),
            public_key: Some(m.public_key.clone()),
            listen_addrs: m.listen_addrs.clone(),
            observed_addr: m.observed_addr.clone(),
            protocols: m.protocols.clone(),
            signed_peer_record: m.signed_peer_record.clone(),
        }
    }

    fn identify_strategy() -> impl Strategy<Value = Identify> {
        let b = || proptest::collection::vec(any::<u8>(), 0..40);
        (
            ".{0,16}",
            ".{0,16}",
            b(),
            proptest::collection::vec(b(), 0..4),
            proptest::option::of(b()),
            proptest::collection::vec(".{0,16}", 0..4),
            proptest::option::of(b()),
        )
            .prop_map(
                |(protocol_version, agent_version, public_key, listen_addrs, observed_addr, protocols, spr)| Identify {
                    protocol_version,
                    agent_version,
                    public_key,
                    listen_addrs,
                    observed_addr,
                    protocols,
                    signed_peer_record: spr,
                },
            )
    }

    #[test]
    fn vector_from_the_spec_field_numbers() {
        let m = Identify {
            protocol_version: "p".into(),
            agent_version: "a".into(),
            public_key: vec![0x08, 0x01],
            listen_addrs: vec![vec![0x04, 127, 0, 0, 1]],
            observed_addr: Some(vec![0x04]),
            protocols: vec!["/x".into()],
            signed_peer_record: Some(vec![0xee]),
        };
        let wire = [
            0x0a, 2, 0x08, 0x01, // publicKey = 1
            0x12, 5, 0x04, 127, 0, 0, 1, // listenAddrs = 2
            0x1a, 2, b'/', b'x', // protocols = 3
            0x22, 1, 0x04, // observedAddr = 4
            0x2a, 1, b'p', // protocolVersion = 5
            0x32, 1, b'a', // agentVersion = 6
            0x42, 1, 0xee, // signedPeerRecord = 8
        ];
        assert_eq!(m.encode(), wire);
        assert_eq!(Identify::decode(&wire), Ok(m));
    }

    #[test]
    fn push_frames_merge_and_unknown_fields_are_skipped() {
        let first = Identify { agent_version: "a".into(), protocols: vec!["/x".into()], ..Identify::default() };
        let mut m = Identify::decode(&first.encode()).unwrap();
        let mut second = vec![0x1a, 2, b'/', b'y', 0x3a, 1, 0, 0x48, 0x01]; // protocols, unknown 7, 9
        second.extend([0x32, 1, b'b']);
        m.merge(&second).unwrap();
        assert_eq!(m.protocols, ["/x", "/y"]);
        assert_eq!(m.agent_version, "b");
    }

    #[test]
    fn oversize_frame_is_refused() {
        let big = Identify { public_key: vec![0; MAX_MESSAGE_SIZE], ..Identify::default() };
        let mut d = frame_decoder();
        d.push(&big.encode_frame());
        assert!(matches!(d.next(), Err(FrameError::TooLong { max: MAX_MESSAGE_SIZE, .. })));
    }

    #[test]
    fn wrong_wire_type_is_an_error() {
        assert_eq!(Identify::decode(&[0x28, 0x01]), Err(ProtoError::WrongWireType { field: 5, wire_type: 0 }));
    }

    proptest! {
        #[test]
        fn round_trip_through_a_frame(m in identify_strategy()) {
            let mut d = frame_decoder();
            d.push(&m.encode_frame());
            let frame = d.next().unwrap().unwrap();
            prop_assert_eq!(Identify::decode(&frame), Ok(m));
        }

        #[test]
        fn prost_reads_ours_and_we_read_prost(m in identify_strategy()) {
            let ours = m.encode();
            let theirs = prost::Message::encode_to_vec(&to_pb(&m));
            prop_assert_eq!(&ours, &theirs);
            let decoded: PbIdentify = prost::Message::decode(ours.as_slice()).unwrap();
            prop_assert_eq!(decoded, to_pb(&m));
            prop_assert_eq!(Identify::decode(&theirs), Ok(m));
        }

        #[test]
        fn arbitrary_bytes_in_arbitrary_splits_never_panic(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            let mut d = frame_decoder();
            for c in &chunks {
                d.push(c);
                while let Ok(Some(frame)) = d.next() {
                    let _ = Identify::decode(&frame);
                }
            }
        }
    }
}
