//! Checks against a real client: Lodestar 1.5.1's `dev` network with 8 interop validators
//! reports (REST `/eth/v1/beacon/genesis`) the genesis validators root below and fork version
//! `0x00000001`, and its ENR's `eth2` field starts with fork digest `0x31681ad1`.

use super::types::{Fork, MetaData, Preset, Status, beacon_block, enr_fork_id, fork_digest, read_signed_block};
use super::*;

const LODESTAR_DEV_GVR: &str = "270d43e74ce340de4bca2b1936beca0f4f5408d9e78aec4850920baf659d5b69";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

#[test]
fn the_fork_digest_matches_lodestars() {
    let gvr: [u8; 32] = hex(LODESTAR_DEV_GVR).try_into().unwrap();
    let digest = fork_digest([0, 0, 0, 1], gvr);
    assert_eq!(digest, [0x31, 0x68, 0x1a, 0xd1]);
    assert_eq!(topic(digest, "beacon_block"), "/eth2/31681ad1/beacon_block/ssz_snappy");
    assert_eq!(enr_fork_id(digest, [0, 0, 0, 1]).len(), 16);
}

#[test]
fn topics_parse_back() {
    assert_eq!(
        parse_topic("/eth2/31681ad1/beacon_attestation_7/ssz_snappy"),
        Some(([0x31, 0x68, 0x1a, 0xd1], "beacon_attestation_7"))
    );
    for bad in [
        "/eth2/31681ad/beacon_block/ssz_snappy",
        "/eth2/31681ad1/beacon_block",
        "/meshsub/x",
        "/eth2/zz681ad1/a/ssz_snappy",
    ] {
        assert_eq!(parse_topic(bad), None, "{bad}");
    }
}

#[test]
fn message_ids_hash_the_decompressed_payload_and_from_altair_the_topic() {
    let payload = snappy::compress_block(b"a block");
    let t = "/eth2/31681ad1/beacon_block/ssz_snappy";
    let phase0 = message_id(t, &payload, false);
    let want: Vec<u8> = Sha256::new().chain_update([1, 0, 0, 0]).chain_update(b"a block").finalize()[..20].to_vec();
    assert_eq!(phase0, want);
    let altair = message_id(t, &payload, true);
    let mut h = Sha256::new();
    h.update([1, 0, 0, 0]);
    h.update((t.len() as u64).to_le_bytes());
    h.update(t);
    h.update(b"a block");
    assert_eq!(altair, h.finalize()[..20].to_vec());
    // Not snappy: the invalid domain over the raw bytes.
    let raw: Vec<u8> = Sha256::new().chain_update([0, 0, 0, 0]).chain_update([0xff, 0xff]).finalize()[..20].to_vec();
    assert_eq!(message_id(t, &[0xff, 0xff], false), raw);
}

#[test]
fn status_and_metadata_round_trip() {
    let s = Status {
        fork_digest: [1, 2, 3, 4],
        finalized_root: [5; 32],
        finalized_epoch: 6,
        head_root: [7; 32],
        head_slot: 8,
    };
    assert_eq!(Status::decode(&s.encode()), Ok(s));
    assert!(Status::decode(&[0; 83]).is_err());
    let m = MetaData { seq_number: 3, attnets: 1 << 63 | 5, syncnets: 0b1010 };
    assert_eq!(MetaData::decode(&m.encode(true)), Ok(m));
    assert_eq!(MetaData::decode(&m.encode(false)), Ok(MetaData { syncnets: 0, ..m }));
    assert!(MetaData::decode(&[0; 17].iter().chain(&[0x10]).copied().collect::<Vec<_>>()).is_err());
}

/// A phase0 `SignedBeaconBlock` with one attestation and graffiti, built by hand.
fn phase0_block(slot: u64, parent: [u8; 32]) -> Vec<u8> {
    let mut body = vec![0xaa; 96];
    body.extend_from_slice(&[0x11; 32]);
    body.extend_from_slice(&8u64.to_le_bytes());
    body.extend_from_slice(&[0x22; 32]);
    body.extend_from_slice(&[0x33; 32]);
    let fixed = 96 + 72 + 32 + 5 * 4;
    let attestation = {
        let mut a = 228u32.to_le_bytes().to_vec();
        a.extend_from_slice(&slot.to_le_bytes());
        a.extend_from_slice(&0u64.to_le_bytes());
        a.extend_from_slice(&parent);
        a.extend_from_slice(&[0u8; 80]);
        a.extend_from_slice(&[0xbb; 96]);
        a.push(0b1_0101);
        a
    };
    let offsets = [fixed, fixed, fixed, fixed + 4 + attestation.len(), fixed + 4 + attestation.len()];
    for o in offsets {
        body.extend_from_slice(&(o as u32).to_le_bytes());
    }
    body.extend_from_slice(&4u32.to_le_bytes());
    body.extend_from_slice(&attestation);
    let mut block = slot.to_le_bytes().to_vec();
    block.extend_from_slice(&3u64.to_le_bytes());
    block.extend_from_slice(&parent);
    block.extend_from_slice(&[0x44; 32]);
    block.extend_from_slice(&84u32.to_le_bytes());
    block.extend_from_slice(&body);
    let mut signed = 100u32.to_le_bytes().to_vec();
    signed.extend_from_slice(&[0xcc; 96]);
    signed.extend_from_slice(&block);
    signed
}

#[test]
fn a_block_reads_to_its_header_and_a_root_that_depends_on_every_byte() {
    let bytes = phase0_block(9, [0x55; 32]);
    let b = read_signed_block(Fork::Phase0, Preset::Minimal, &bytes).unwrap();
    assert_eq!((b.slot, b.proposer, b.parent), (9, 3, [0x55; 32]));
    // The block root is the root of the header with the body's root in it.
    let block_ty = beacon_block(Fork::Phase0, Preset::Minimal);
    let ssz::Ty::Container(fields) = &block_ty else { unreachable!() };
    let body_root = ssz::hash_tree_root(&fields[4], &bytes[100 + 84..]).unwrap();
    let mut header = bytes[100..100 + 80].to_vec();
    header.extend_from_slice(&body_root);
    let header_ty =
        ssz::Ty::Container(vec![ssz::Ty::Uint(8), ssz::Ty::Uint(8), ssz::Ty::root(), ssz::Ty::root(), ssz::Ty::root()]);
    assert_eq!(b.root, ssz::hash_tree_root(&header_ty, &header).unwrap());
    let mut changed = bytes.clone();
    let last = changed.len() - 2;
    changed[last] ^= 1;
    assert_ne!(read_signed_block(Fork::Phase0, Preset::Minimal, &changed).unwrap().root, b.root);
    // An Altair body has one more field: the phase0 bytes do not read as one.
    assert!(read_signed_block(Fork::Altair, Preset::Minimal, &bytes).is_err());
    assert!(read_signed_block(Fork::Phase0, Preset::Minimal, &bytes[..bytes.len() - 1]).is_err());
}

/// An `Attestation` of `slot` with one of two bits set, as SSZ.
fn attestation_bytes(slot: u64) -> Vec<u8> {
    let mut b = (4u32 + 128 + 96).to_le_bytes().to_vec();
    b.extend_from_slice(&slot.to_le_bytes());
    b.extend_from_slice(&[0; 120]);
    b.extend_from_slice(&[0; 96]);
    b.push(0b101);
    b
}

#[test]
fn attestations_and_aggregates_tell_their_slot_and_refuse_bad_bytes() {
    use super::types::{aggregate_slot, attestation_slot};
    let att = attestation_bytes(37);
    assert_eq!(attestation_slot(&att), Ok(37));
    let mut agg = 100u32.to_le_bytes().to_vec();
    agg.extend_from_slice(&[0; 96]);
    agg.extend_from_slice(&7u64.to_le_bytes());
    agg.extend_from_slice(&108u32.to_le_bytes());
    agg.extend_from_slice(&[0; 96]);
    agg.extend_from_slice(&attestation_bytes(41));
    assert_eq!(aggregate_slot(&agg), Ok(41));
    for cut in [0, 3, 50, 227] {
        assert!(attestation_slot(&att[..cut]).is_err(), "cut at {cut}");
    }
    assert!(aggregate_slot(&agg[..agg.len() - 130]).is_err());
    assert!(aggregate_slot(&att).is_err(), "an attestation is not an aggregate");
}
