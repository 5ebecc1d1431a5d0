//! Any bytes as a stream mark (`HOT_MARK`) from another shard: an error or a mark that re-encodes
//! to bytes that decode to the same mark, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_net::StreamMark;

fuzz_target!(|data: &[u8]| {
    if let Ok(mark) = StreamMark::decode(data) {
        assert_eq!(StreamMark::decode(&mark.encode()).ok(), Some(mark));
    }
});
