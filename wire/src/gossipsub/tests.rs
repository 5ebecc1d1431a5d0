//! Gossipsub codec tests: hand-derived vectors from `rpc.proto`, interop with prost (the engine
//! rust-libp2p's gossipsub encodes and decodes with) over schema types written here from the same
//! `.proto`, protocol rules (merge, unknown fields, limits) and robustness.

use super::*;
use crate::frame::{FrameDecoder, FrameError};
use proptest::prelude::*;

/// `rpc.proto` (gossipsub.pb) as prost types, written from the proto file's field list.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Rpc {
        #[prost(message, repeated, tag = "1")]
        pub subscriptions: Vec<SubOpts>,
        #[prost(message, repeated, tag = "2")]
        pub publish: Vec<Message>,
        #[prost(message, optional, tag = "3")]
        pub control: Option<ControlMessage>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubOpts {
        #[prost(bool, optional, tag = "1")]
        pub subscribe: Option<bool>,
        #[prost(string, optional, tag = "2")]
        pub topic_id: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        #[prost(bytes = "vec", optional, tag = "1")]
        pub from: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub data: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "3")]
        pub seqno: Option<Vec<u8>>,
        #[prost(string, required, tag = "4")]
        pub topic: String,
        #[prost(bytes = "vec", optional, tag = "5")]
        pub signature: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "6")]
        pub key: Option<Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ControlMessage {
        #[prost(message, repeated, tag = "1")]
        pub ihave: Vec<ControlIHave>,
        #[prost(message, repeated, tag = "2")]
        pub iwant: Vec<ControlIWant>,
        #[prost(message, repeated, tag = "3")]
        pub graft: Vec<ControlGraft>,
        #[prost(message, repeated, tag = "4")]
        pub prune: Vec<ControlPrune>,
        #[prost(message, repeated, tag = "5")]
        pub idontwant: Vec<ControlIDontWant>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ControlIHave {
        #[prost(string, optional, tag = "1")]
        pub topic_id: Option<String>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub message_ids: Vec<Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ControlIWant {
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub message_ids: Vec<Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ControlGraft {
        #[prost(string, optional, tag = "1")]
        pub topic_id: Option<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ControlPrune {
        #[prost(string, optional, tag = "1")]
        pub topic_id: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub peers: Vec<PeerInfo>,
        #[prost(uint64, optional, tag = "3")]
        pub backoff: Option<u64>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ControlIDontWant {
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub message_ids: Vec<Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PeerInfo {
        #[prost(bytes = "vec", optional, tag = "1")]
        pub peer_id: Option<Vec<u8>>,
        #[prost(bytes = "vec", optional, tag = "2")]
        pub signed_peer_record: Option<Vec<u8>>,
    }
}

/// Our RPC as the prost types, filling every field we always encode.
fn to_pb(rpc: &Rpc) -> pb::Rpc {
    pb::Rpc {
        subscriptions: rpc
            .subscriptions
            .iter()
            .map(|s| pb::SubOpts { subscribe: Some(s.subscribe), topic_id: Some(s.topic.clone()) })
            .collect(),
        publish: rpc.publish.iter().map(msg_to_pb).collect(),
        control: rpc.control.as_ref().map(|c| pb::ControlMessage {
            ihave: c
                .ihave
                .iter()
                .map(|m| pb::ControlIHave { topic_id: Some(m.topic.clone()), message_ids: m.message_ids.clone() })
                .collect(),
            iwant: c.iwant.iter().map(|m| pb::ControlIWant { message_ids: m.message_ids.clone() }).collect(),
            graft: c.graft.iter().map(|m| pb::ControlGraft { topic_id: Some(m.topic.clone()) }).collect(),
            prune: c
                .prune
                .iter()
                .map(|m| pb::ControlPrune {
                    topic_id: Some(m.topic.clone()),
                    peers: m
                        .peers
                        .iter()
                        .map(|p| pb::PeerInfo {
                            peer_id: p.peer_id.clone(),
                            signed_peer_record: p.signed_peer_record.clone(),
                        })
                        .collect(),
                    backoff: m.backoff,
                })
                .collect(),
            idontwant: c
                .idontwant
                .iter()
                .map(|m| pb::ControlIDontWant { message_ids: m.message_ids.clone() })
                .collect(),
        }),
    }
}

fn msg_to_pb(m: &Message) -> pb::Message {
    pb::Message {
        from: m.from.clone(),
        data: Some(m.data.clone()),
        seqno: m.seqno.clone(),
        topic: m.topic.clone(),
        signature: m.signature.clone(),
        key: m.key.clone(),
    }
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(bytes_strategy())
}

fn ids() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(bytes_strategy(), 0..4)
}

fn message_strategy() -> impl Strategy<Value = Message> {
    (opt_bytes(), bytes_strategy(), opt_bytes(), ".{0,12}", opt_bytes(), opt_bytes())
        .prop_map(|(from, data, seqno, topic, signature, key)| Message { from, data, seqno, topic, signature, key })
}

fn prune_strategy() -> impl Strategy<Value = Prune> {
    let peer =
        (opt_bytes(), opt_bytes()).prop_map(|(peer_id, signed_peer_record)| PeerInfo { peer_id, signed_peer_record });
    (".{0,12}", proptest::collection::vec(peer, 0..3), proptest::option::of(any::<u64>()))
        .prop_map(|(topic, peers, backoff)| Prune { topic, peers, backoff })
}

fn control_strategy() -> impl Strategy<Value = Control> {
    (
        proptest::collection::vec(
            (".{0,12}", ids()).prop_map(|(topic, message_ids)| IHave { topic, message_ids }),
            0..3,
        ),
        proptest::collection::vec(ids().prop_map(|message_ids| IWant { message_ids }), 0..3),
        proptest::collection::vec(".{0,12}".prop_map(|topic| Graft { topic }), 0..3),
        proptest::collection::vec(prune_strategy(), 0..3),
        proptest::collection::vec(ids().prop_map(|message_ids| IDontWant { message_ids }), 0..3),
    )
        .prop_map(|(ihave, iwant, graft, prune, idontwant)| Control { ihave, iwant, graft, prune, idontwant })
}

fn rpc_strategy() -> impl Strategy<Value = Rpc> {
    (
        proptest::collection::vec(
            (any::<bool>(), ".{0,12}").prop_map(|(subscribe, topic)| SubOpts { subscribe, topic }),
            0..4,
        ),
        proptest::collection::vec(message_strategy(), 0..4),
        proptest::option::of(control_strategy()),
    )
        .prop_map(|(subscriptions, publish, control)| Rpc { subscriptions, publish, control })
}

#[test]
fn subscription_vector() {
    // RPC { subscriptions: [SubOpts { subscribe: true (1:varint), topic_id: "t" (2:len) }] }
    let rpc = Rpc { subscriptions: vec![SubOpts { subscribe: true, topic: "t".into() }], ..Rpc::default() };
    let wire = [0x0a, 0x05, 0x08, 0x01, 0x12, 0x01, b't'];
    assert_eq!(rpc.encode(), wire);
    assert_eq!(Rpc::decode(&wire), Ok(rpc));
}

#[test]
fn publish_vector_and_signing_bytes() {
    let msg = Message {
        from: Some(vec![0xaa]),
        data: b"hi".to_vec(),
        seqno: Some(vec![0, 0, 0, 0, 0, 0, 0, 7]),
        topic: "t".into(),
        signature: Some(vec![0x55]),
        key: Some(vec![0x66]),
    };
    let body = [
        0x0a, 1, 0xaa, // from
        0x12, 2, b'h', b'i', // data
        0x1a, 8, 0, 0, 0, 0, 0, 0, 0, 7, // seqno
        0x22, 1, b't', // topic
        0x2a, 1, 0x55, // signature
        0x32, 1, 0x66, // key
    ];
    let mut wire = vec![0x12, body.len() as u8];
    wire.extend(body);
    let rpc = Rpc { publish: vec![msg.clone()], ..Rpc::default() };
    assert_eq!(rpc.encode(), wire);
    assert_eq!(Rpc::decode(&wire), Ok(rpc));
    let mut signed = b"libp2p-pubsub:".to_vec();
    signed.extend(&body[..20]); // from, data, seqno, topic
    assert_eq!(signing_bytes(&msg), signed);
}

#[test]
fn empty_data_is_still_encoded_as_rust_libp2p_signs_it() {
    let msg = Message { topic: "t".into(), ..Message::default() };
    assert_eq!(msg.encode(), [0x12, 0, 0x22, 1, b't']);
    let mut expect = SIGNING_PREFIX.to_vec();
    prost::Message::encode(&msg_to_pb(&msg), &mut expect).unwrap();
    assert_eq!(signing_bytes(&msg), expect);
}

#[test]
fn prune_with_peers_and_backoff_vector() {
    let prune = Prune {
        topic: "t".into(),
        peers: vec![PeerInfo { peer_id: Some(vec![1, 2]), signed_peer_record: Some(vec![3]) }, PeerInfo::default()],
        backoff: Some(300),
    };
    let rpc = Rpc { control: Some(Control { prune: vec![prune], ..Control::default() }), ..Rpc::default() };
    let prune_body = [
        0x0a, 1, b't', // topic_id
        0x12, 7, 0x0a, 2, 1, 2, 0x12, 1, 3, // peers[0]
        0x12, 0, // peers[1], empty
        0x18, 0xac, 0x02, // backoff 300
    ];
    let mut control = vec![0x22, prune_body.len() as u8];
    control.extend(prune_body);
    let mut wire = vec![0x1a, control.len() as u8];
    wire.extend(control);
    assert_eq!(rpc.encode(), wire);
    assert_eq!(Rpc::decode(&wire), Ok(rpc));
}

#[test]
fn idontwant_vector() {
    let ctl = Control { idontwant: vec![IDontWant { message_ids: vec![vec![9, 9], vec![]] }], ..Control::default() };
    let rpc = Rpc { control: Some(ctl), ..Rpc::default() };
    // control (3) { idontwant (5) { message_ids (1): [09 09], [] } }
    let wire = [0x1a, 0x08, 0x2a, 0x06, 0x0a, 0x02, 9, 9, 0x0a, 0x00];
    assert_eq!(rpc.encode(), wire);
    assert_eq!(Rpc::decode(&wire), Ok(rpc));
}

#[test]
fn repeated_control_fields_merge() {
    let a = Rpc {
        control: Some(Control { graft: vec![Graft { topic: "a".into() }], ..Control::default() }),
        ..Rpc::default()
    };
    let b = Rpc {
        control: Some(Control { iwant: vec![IWant { message_ids: vec![vec![1]] }], ..Control::default() }),
        ..Rpc::default()
    };
    let mut wire = a.encode();
    wire.extend(b.encode());
    let merged = Rpc::decode(&wire).unwrap().control.unwrap();
    assert_eq!(merged.graft, a.control.unwrap().graft);
    assert_eq!(merged.iwant, b.control.unwrap().iwant);
}

/// Unknown fields (number 15) of every wire type, a group included.
fn unknown() -> Vec<u8> {
    vec![
        0x78, 0x05, // varint
        0x79, 1, 2, 3, 4, 5, 6, 7, 8, // fixed64
        0x7a, 0x01, 0xff, // bytes
        0x7b, 0x08, 0x01, 0x7c, // group { field 1 varint }
        0x7d, 1, 2, 3, 4, // fixed32
    ]
}

#[test]
fn unknown_fields_are_skipped_at_every_level() {
    // SubOpts with v1.3's requestsPartial (3) and supportsPartial (4), plus junk.
    let mut sub = vec![0x08, 0x01, 0x12, 0x01, b't', 0x18, 0x01, 0x20, 0x01];
    sub.extend(unknown());
    let mut msg = vec![0x22, 0x01, b't'];
    msg.extend(unknown());
    let mut prune = vec![0x0a, 0x01, b't', 0x12, 0x00];
    prune.extend(unknown());
    let mut control = vec![0x22, prune.len() as u8];
    control.extend(&prune);
    control.extend([0x32, 0x02, 0x50, 0x01]); // ControlExtensions { partialMessages: true }
    control.extend(unknown());
    let mut wire = vec![0x0a, sub.len() as u8];
    wire.extend(&sub);
    wire.extend([0x12, msg.len() as u8]);
    wire.extend(&msg);
    wire.extend([0x1a, control.len() as u8]);
    wire.extend(&control);
    wire.extend([0x52, 0x00]); // RPC field 10, PartialMessagesExtension
    wire.extend(unknown());
    let rpc = Rpc::decode(&wire).unwrap();
    let expect = Rpc {
        subscriptions: vec![SubOpts { subscribe: true, topic: "t".into() }],
        publish: vec![Message { topic: "t".into(), ..Message::default() }],
        control: Some(Control {
            prune: vec![Prune { topic: "t".into(), peers: vec![PeerInfo::default()], backoff: None }],
            ..Control::default()
        }),
    };
    assert_eq!(rpc, expect);
}

#[test]
fn malformed_known_fields_are_errors() {
    assert_eq!(Rpc::decode(&[0x08, 0x01]), Err(ProtoError::WrongWireType { field: 1, wire_type: 0 }));
    assert_eq!(Rpc::decode(&[0x0a, 0x02, 0x12, 0x01]), Err(ProtoError::Truncated));
    assert_eq!(Rpc::decode(&[0x0a, 0x03, 0x12, 0x01, 0xff]), Err(ProtoError::InvalidUtf8(2)));
}

#[test]
fn item_limit_is_enforced() {
    let rpc = Rpc {
        control: Some(Control {
            ihave: vec![IHave { topic: "t".into(), message_ids: vec![vec![1]; 10] }],
            ..Control::default()
        }),
        ..Rpc::default()
    };
    let wire = rpc.encode();
    assert_eq!(Rpc::decode_limited(&wire, 11), Ok(rpc));
    assert_eq!(Rpc::decode_limited(&wire, 10), Err(ProtoError::TooManyItems(10)));
    let many_empty_messages: Vec<u8> = [0x12, 0x00].repeat(5);
    assert_eq!(Rpc::decode_limited(&many_empty_messages, 4), Err(ProtoError::TooManyItems(4)));
}

#[test]
fn oversize_frame_is_refused_before_decoding() {
    let big = Rpc {
        publish: vec![Message { data: vec![0; DEFAULT_MAX_TRANSMIT_SIZE], ..Message::default() }],
        ..Rpc::default()
    };
    let mut d = FrameDecoder::new(DEFAULT_MAX_TRANSMIT_SIZE);
    let frame = big.encode_frame();
    d.push(&frame[..4]);
    assert!(matches!(d.next(), Err(FrameError::TooLong { max: DEFAULT_MAX_TRANSMIT_SIZE, .. })));
}

#[test]
fn default_message_id_is_base58_from_then_decimal_seqno() {
    // An Ed25519 peer id: identity multihash (00, 36 bytes) of the protobuf public key
    // (08 01 = Ed25519, 12 20 = 32-byte key). Such ids always read "12D3KooW…" in base58.
    let mut from = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    from.extend([7u8; 32]);
    let msg = Message { from: Some(from), seqno: Some(1234u64.to_be_bytes().to_vec()), ..Message::default() };
    let id = String::from_utf8(MessageIdFn::FromAndSeqno.message_id(&msg)).unwrap();
    assert!(id.starts_with("12D3KooW"), "{id}");
    assert!(id.ends_with("1234"), "{id}");
    assert_eq!(id.len(), 52 + 4);
    // No author: the placeholder peer id 00 01 00 (base58 "15R"), and seqno 0.
    assert_eq!(MessageIdFn::default().message_id(&Message::default()), b"15R0");
    let odd_seqno = Message { seqno: Some(vec![1, 2, 3]), ..Message::default() };
    assert_eq!(MessageIdFn::FromAndSeqno.message_id(&odd_seqno), b"15R0");
    let max = Message { from: Some(vec![0, 1, 0]), seqno: Some(vec![0xff; 8]), ..Message::default() };
    assert_eq!(MessageIdFn::FromAndSeqno.message_id(&max), b"15R18446744073709551615");
}

#[test]
fn content_message_id_is_a_sha256_prefix() {
    let msg = Message::default();
    // SHA-256 of the empty string starts e3b0c442 98fc1c14.
    assert_eq!(MessageIdFn::ContentSha256 { prefix_len: 4 }.message_id(&msg), [0xe3, 0xb0, 0xc4, 0x42]);
    assert_eq!(MessageIdFn::ContentSha256 { prefix_len: 99 }.message_id(&msg).len(), 32);
    let other = Message { data: b"x".to_vec(), ..Message::default() };
    assert_ne!(
        MessageIdFn::ContentSha256 { prefix_len: 20 }.message_id(&other),
        MessageIdFn::ContentSha256 { prefix_len: 20 }.message_id(&msg)
    );
}

proptest! {
    #[test]
    fn round_trip(rpc in rpc_strategy()) {
        prop_assert_eq!(Rpc::decode(&rpc.encode()), Ok(rpc));
    }

    #[test]
    fn prost_reads_ours_and_we_read_prost(rpc in rpc_strategy()) {
        let ours = rpc.encode();
        let theirs = prost::Message::encode_to_vec(&to_pb(&rpc));
        prop_assert_eq!(&ours, &theirs);
        let decoded: pb::Rpc = prost::Message::decode(ours.as_slice()).unwrap();
        prop_assert_eq!(decoded, to_pb(&rpc));
        prop_assert_eq!(Rpc::decode(&theirs), Ok(rpc));
    }

    #[test]
    fn signing_bytes_match_prost(msg in message_strategy()) {
        let mut expect = SIGNING_PREFIX.to_vec();
        let unsigned = pb::Message { signature: None, key: None, ..msg_to_pb(&msg) };
        prost::Message::encode(&unsigned, &mut expect).unwrap();
        prop_assert_eq!(signing_bytes(&msg), expect);
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_splits_never_panic(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let mut d = FrameDecoder::new(256);
        for c in &chunks {
            d.push(c);
            while let Ok(Some(frame)) = d.next() {
                let _ = Rpc::decode(&frame);
            }
        }
    }

    #[test]
    fn corrupted_encodings_never_panic(rpc in rpc_strategy(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut wire = rpc.encode();
        if !wire.is_empty() {
            for (at, b) in flips {
                let n = wire.len();
                wire[at % n] = b;
            }
        }
        if let Ok(back) = Rpc::decode(&wire) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(Rpc::decode(&back.encode()), Ok(back));
        }
    }
}
