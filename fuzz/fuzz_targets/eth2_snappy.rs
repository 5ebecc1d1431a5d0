//! Snappy from a real client: gossip payloads (the block format) and req/resp payloads (the
//! framing format, with the length the varint announced). Reading returns bytes or an error,
//! never panics or allocates past its bound; what reads re-encodes to bytes that read the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::eth2::snappy::{compress_block, decode_framed, decompress_block, encode_framed, framed_extent};

fuzz_target!(|data: &[u8]| {
    if let Ok(plain) = decompress_block(data, 1 << 16) {
        assert!(plain.len() <= 1 << 16);
        assert_eq!(decompress_block(&compress_block(&plain), 1 << 16), Ok(plain));
    }
    let want = data.first().map_or(0, |&b| usize::from(b) * 97);
    if let Ok(plain) = decode_framed(data, want) {
        assert_eq!(plain.len(), want);
        assert_eq!(decode_framed(&encode_framed(&plain), want), Ok(plain));
    }
    if let Ok(Some(end)) = framed_extent(data, want) {
        assert!(end <= data.len());
    }
});
