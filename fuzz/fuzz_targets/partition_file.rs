//! Any text as a partition file: an error with a line number or a partition that covers every
//! host once and writes back to a file that reads to the same partition.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_models::partition::Partition;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = Partition::from_csv(text, "fuzz.csv", 1000, 4) {
        let again = Partition::from_csv(&p.to_csv(), "again.csv", 1000, 4).expect("a written partition reads back");
        assert_eq!(again, p);
        for host in [0, 499, 999] {
            assert!(p.shard_of(host).0 < 4);
        }
    }
});
