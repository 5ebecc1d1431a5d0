//! Any bytes as a surrogate discv5 packet from another shard: an error or a packet that re-encodes
//! to the same bytes, never a panic; its wire size never overflows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_surrogate::discv5::packet::{Packet, Sizes};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        let mut again = Vec::new();
        p.encode(&mut again);
        assert_eq!(again, data);
        let _ = SIZES.with(|s| s.bytes(&p));
    }
});

thread_local! {
    static SIZES: Sizes = Sizes::measure();
}
