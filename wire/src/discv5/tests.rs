//! devp2p's discv5 wire test vectors (`discv5-wire-test-vectors.md`): the four packets decoded
//! with node B's key and opened with the read keys given, the handshake's keys and signature
//! rebuilt from their inputs, and the cryptographic primitives' own vectors.

use super::enr::{Enr, NodeId, log_distance, node_id};
use super::message::Message;
use super::packet::{self, AuthData, Header};
use super::session::{self, SessionKeys};
use k256::ecdsa::{SigningKey, VerifyingKey};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect::<String>().trim_start_matches("0x").to_string();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

fn key(s: &str) -> SigningKey {
    SigningKey::from_slice(&hex(s)).unwrap()
}

const NODE_A_KEY: &str = "eef77acb6c6a6eebc5b363a475ac583ec7eccdb42b6481424c60f59aa326547f";
const NODE_B_KEY: &str = "66fb62bfbd66b9177a138c1e5cddbe4f7c30c343e94e68df8769459cb1cde628";
const NODE_A_ID: &str = "aaaa8419e9f49d0083561b48287df592939a8d19947d8c0ef88f2a4856a69fbb";
const NODE_B_ID: &str = "bbbb9d047f0488c0b5a93c1c3f2d8bafc7c8ff337024a55434a0d0555de64db9";
const EPH_PUBKEY: &str = "039a003ba6517b473fa0cd74aefe99dadfdb34627f90fec6362df85803908f53a5";

fn ping(enr_seq: u64) -> Message {
    Message::Ping { req_id: vec![0, 0, 0, 1], enr_seq }
}

#[test]
fn the_keys_give_the_node_ids() {
    assert_eq!(node_id(key(NODE_A_KEY).verifying_key()), arr(NODE_A_ID));
    assert_eq!(node_id(key(NODE_B_KEY).verifying_key()), arr(NODE_B_ID));
}

#[test]
fn a_ping_message_packet_opens_with_its_read_key_and_re_encodes_exactly() {
    let bytes = hex("00000000000000000000000000000000088b3d4342774649325f313964a39e55
        ea96c005ad52be8c7560413a7008f16c9e6d2f43bbea8814a546b7409ce783d3
        4c4f53245d08dab84102ed931f66d1492acb308fa1c6715b9d139b81acbdcc");
    let p = packet::decode(&arr(NODE_B_ID), &bytes).unwrap();
    assert_eq!(p.header, Header { nonce: [0xff; 12], auth: AuthData::Message { src: arr(NODE_A_ID) } });
    let pt = session::decrypt(&[0; 16], &p.header.nonce, p.message, &p.authenticated).unwrap();
    assert_eq!(Message::decode(&pt).unwrap(), ping(2));
    assert_eq!(packet::encode(&arr(NODE_B_ID), p.masking_iv, &p.header, p.message), bytes);
    let sealed = session::encrypt(&[0; 16], &[0xff; 12], &ping(2).encode(), &packet::authenticated([0; 16], &p.header));
    assert_eq!(sealed, p.message, "sealing the same message gives the same bytes");
    assert!(packet::decode(&arr(NODE_A_ID), &bytes).is_err(), "masked for B, not A");
}

#[test]
fn a_whoareyou_packet_carries_its_challenge() {
    let bytes = hex("00000000000000000000000000000000088b3d434277464933a1ccc59f5967ad
        1d6035f15e528627dde75cd68292f9e6c27d6b66c8100a873fcbaed4e16b8d");
    let p = packet::decode(&arr(NODE_B_ID), &bytes).unwrap();
    assert_eq!(p.header.nonce, arr("0102030405060708090a0b0c"));
    assert_eq!(p.header.auth, AuthData::WhoAreYou { id_nonce: arr("0102030405060708090a0b0c0d0e0f10"), enr_seq: 0 });
    assert_eq!(p.authenticated, hex(CHALLENGE_SEQ0), "the challenge data is masking-iv || header");
    assert!(p.message.is_empty());
}

const CHALLENGE_SEQ0: &str = "000000000000000000000000000000006469736376350001010102030405060708090a0b0c00180102030405060708090a0b0c0d0e0f100000000000000000";
const CHALLENGE_SEQ1: &str = "000000000000000000000000000000006469736376350001010102030405060708090a0b0c00180102030405060708090a0b0c0d0e0f100000000000000001";

/// Opens handshake packet `bytes` at B as a recipient would, from B's static key and the
/// challenge B sent: the keys, A's id signature, the message.
fn open_handshake(bytes: &[u8], challenge: &str, read_key: &str) -> (Message, Option<Vec<u8>>) {
    let p = packet::decode(&arr(NODE_B_ID), bytes).unwrap();
    let AuthData::Handshake { src, signature, eph_pubkey, record } = p.header.auth.clone() else { panic!("flag 2") };
    assert_eq!((src, eph_pubkey.as_slice()), (arr(NODE_A_ID), &hex(EPH_PUBKEY)[..]));
    let eph = VerifyingKey::from_sec1_bytes(&eph_pubkey).unwrap();
    let keys = session::derive_keys(&key(NODE_B_KEY), &eph, &src, &arr(NODE_B_ID), &hex(challenge));
    assert_eq!(keys.initiator, arr(read_key), "B derives the key A sealed with");
    let a = key(NODE_A_KEY);
    assert!(session::id_verify(a.verifying_key(), &hex(challenge), &eph_pubkey, &arr(NODE_B_ID), &signature));
    assert!(!session::id_verify(
        a.verifying_key(),
        &hex(CHALLENGE_SEQ0)[1..],
        &eph_pubkey,
        &arr(NODE_B_ID),
        &signature
    ));
    let pt = session::decrypt(&keys.initiator, &p.header.nonce, p.message, &p.authenticated).unwrap();
    (Message::decode(&pt).unwrap(), record)
}

#[test]
fn a_handshake_packet_opens_with_the_keys_b_derives_and_a_verifies_id_signature() {
    let bytes = hex("00000000000000000000000000000000088b3d4342774649305f313964a39e55
        ea96c005ad521d8c7560413a7008f16c9e6d2f43bbea8814a546b7409ce783d3
        4c4f53245d08da4bb252012b2cba3f4f374a90a75cff91f142fa9be3e0a5f3ef
        268ccb9065aeecfd67a999e7fdc137e062b2ec4a0eb92947f0d9a74bfbf44dfb
        a776b21301f8b65efd5796706adff216ab862a9186875f9494150c4ae06fa4d1
        f0396c93f215fa4ef524f1eadf5f0f4126b79336671cbcf7a885b1f8bd2a5d83
        9cf8");
    let (message, record) = open_handshake(&bytes, CHALLENGE_SEQ1, "4f9fac6de7567d1e3b1241dffe90f662");
    assert_eq!((message, record), (ping(1), None), "B held A's record (seq 1): none sent");
}

#[test]
fn a_handshake_packet_with_a_record_carries_a_valid_record() {
    let bytes = hex("00000000000000000000000000000000088b3d4342774649305f313964a39e55
        ea96c005ad539c8c7560413a7008f16c9e6d2f43bbea8814a546b7409ce783d3
        4c4f53245d08da4bb23698868350aaad22e3ab8dd034f548a1c43cd246be9856
        2fafa0a1fa86d8e7a3b95ae78cc2b988ded6a5b59eb83ad58097252188b902b2
        1481e30e5e285f19735796706adff216ab862a9186875f9494150c4ae06fa4d1
        f0396c93f215fa4ef524e0ed04c3c21e39b1868e1ca8105e585ec17315e755e6
        cfc4dd6cb7fd8e1a1f55e49b4b5eb024221482105346f3c82b15fdaae36a3bb1
        2a494683b4a3c7f2ae41306252fed84785e2bbff3b022812d0882f06978df84a
        80d443972213342d04b9048fc3b1d5fcb1df0f822152eced6da4d3f6df27e70e
        4539717307a0208cd208d65093ccab5aa596a34d7511401987662d8cf62b1394
        71");
    let (message, record) = open_handshake(&bytes, CHALLENGE_SEQ0, "53b1c075f41876423154e157470c2f48");
    assert_eq!(message, ping(1));
    let enr = Enr::decode(&record.expect("B asked with enr-seq 0")).unwrap();
    assert_eq!((enr.node_id(), enr.seq()), (arr(NODE_A_ID), 1));
}

#[test]
fn the_primitives_match_their_vectors() {
    let secret = key("fb757dc581730490a1d7a00deea65e9b1936924caaea8f44d476014856b68736");
    let public =
        VerifyingKey::from_sec1_bytes(&hex("039961e4c2356d61bedb83052c115d311acb3a96f5777296dcf297351130266231"))
            .unwrap();
    assert_eq!(
        session::ecdh(&public, &secret).to_vec(),
        hex("033b11a2a1f214567e1537ce5e509ffd9b21373247f2a3ff6841f4976f53165e7e")
    );
    let dest =
        VerifyingKey::from_sec1_bytes(&hex("0317931e6e0840220642f230037d285d122bc59063221ef3226b1f403ddc69ca91"))
            .unwrap();
    let keys = session::derive_keys(&secret, &dest, &arr(NODE_A_ID), &arr(NODE_B_ID), &hex(CHALLENGE_SEQ0));
    assert_eq!(
        keys,
        SessionKeys {
            initiator: arr("dccc82d81bd610f4f76d3ebe97a40571"),
            recipient: arr("ac74bb8773749920b0d3a8881c173ec5")
        }
    );
    let eph = hex("039961e4c2356d61bedb83052c115d311acb3a96f5777296dcf297351130266231");
    let sig = session::id_sign(&secret, &hex(CHALLENGE_SEQ0), &eph, &arr(NODE_B_ID));
    assert_eq!(
        sig.to_vec(),
        hex(
            "94852a1e2318c4e5e9d422c98eaf19d1d90d876b29cd06ca7cb7546d0fff7b484fe86c09a064fe72bdbef73ba8e9c34df0cd2b53e9d65528c2c7f336d5dfc6e6"
        )
    );
    let ct = session::encrypt(
        &arr("9f2d77db7004bf8a1a85107ac686990b"),
        &arr("27b5af763c446acd2749fe8e"),
        &hex("01c20101"),
        &hex("93a7400fa0d6a694ebc24d5cf570f65d04215b6ac00757875e3f3a5f42107903"),
    );
    assert_eq!(ct, hex("a5d12a2d94b8ccb3ba55558229867dc13bfa3648"));
}

#[test]
fn messages_round_trip() {
    let all = [
        ping(7),
        Message::Pong { req_id: vec![9], enr_seq: 3, ip: "10.0.0.9".parse().unwrap(), port: 9000 },
        Message::FindNode { req_id: vec![1, 2], distances: vec![256, 255, 0] },
        Message::Nodes {
            req_id: vec![3],
            total: 2,
            records: vec![Enr::signed(&key(NODE_A_KEY), 1, &[]).unwrap().encoded().to_vec()],
        },
        Message::TalkReq { req_id: vec![4], protocol: b"eth2".to_vec(), request: vec![1, 2, 3] },
        Message::TalkResp { req_id: vec![4], response: Vec::new() },
    ];
    for m in all {
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }
    assert!(Message::decode(&[7, 0xc0]).is_err(), "unknown type");
    assert!(Message::decode(&[1, 0xca, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x01]).is_err(), "a 9-byte request id");
}

fn node(first: u8, last: u8) -> NodeId {
    let mut x = [0u8; 32];
    x[0] = first;
    x[31] = last;
    x
}

#[test]
fn log_distance_counts_from_the_first_differing_bit() {
    assert_eq!(log_distance(&node(0, 0), &node(0, 0)), 0);
    assert_eq!(log_distance(&node(0, 0), &node(0, 1)), 1);
    assert_eq!(log_distance(&node(0, 0), &node(0, 0x80)), 8);
    assert_eq!(log_distance(&node(0x80, 0), &node(0, 0)), 256);
    assert_eq!(log_distance(&node(0x01, 7), &node(0, 0)), 249);
}
