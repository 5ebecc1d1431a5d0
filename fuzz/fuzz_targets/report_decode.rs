//! Decoding arbitrary bytes as a shard report returns a value or an error, never panics; a report
//! that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_bus::ShardReport;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = ShardReport::decode(data) {
        assert_eq!(report.encode(), data);
    }
});
