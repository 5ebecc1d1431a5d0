//! Decoding arbitrary bytes as an event batch returns a value or an error, never panics; a batch
//! that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_bus::codec::{decode_batch, encode_batch};

fuzz_target!(|data: &[u8]| {
    let mut events = Vec::new();
    if let Ok(header) = decode_batch(&bytes::Bytes::copy_from_slice(data), &mut events) {
        let mut again = Vec::new();
        encode_batch(&mut again, header.src_shard, header.dst_shard, &events);
        assert_eq!(again, data);
    } else {
        assert!(events.is_empty());
    }
});
