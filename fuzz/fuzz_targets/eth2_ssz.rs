//! SSZ from a real client: Status, MetaData, a blocks-by-range request, a list of roots, an
//! attestation, an aggregate and a signed block of every fork and preset. Reading returns a
//! value or an error, never panics; Status and MetaData that read re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::eth2::types::{
    BlocksByRange, Fork, MetaData, Preset, Status, aggregate_slot, attestation_slot, decode_roots, read_signed_block,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Status::decode(data) {
        assert_eq!(s.encode(), data);
    }
    if let Ok(m) = MetaData::decode(data) {
        assert_eq!(m.encode(data.len() == 17), data);
    }
    let _ = BlocksByRange::decode(data);
    let _ = decode_roots(data);
    let _ = attestation_slot(data);
    let _ = aggregate_slot(data);
    for fork in [Fork::Phase0, Fork::Altair, Fork::Bellatrix, Fork::Capella] {
        for preset in [Preset::Minimal, Preset::Mainnet] {
            let _ = read_signed_block(fork, preset, data);
        }
    }
});
