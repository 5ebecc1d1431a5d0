//! Any bytes as a transaction datagram from a traffic source: an error or a transaction whose
//! parts add up to the bytes, and whose verification answers, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::tx;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = tx::decode(data) {
        assert_eq!(t.body.len() + tx::OVERHEAD, data.len());
        let _ = t.verify();
    }
});
