//! Ethereum req/resp framing from a real client: a request stream's bytes and a response
//! chunk, read for the method the first byte picks. Reading returns a value or an error, never
//! panics; a request that reads re-encodes to bytes that read the same, and a chunk never claims
//! more bytes than it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::eth2::reqresp::{METHODS, decode_chunk, decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let method = METHODS[pick as usize % METHODS.len()];
    if let Ok(ssz) = decode_request(method, rest) {
        assert_eq!(decode_request(method, &encode_request(method, &ssz)).as_deref(), Ok(&ssz[..]));
    }
    if let Ok(Some((_, used))) = decode_chunk(method, rest, 1 << 20) {
        assert!(used <= rest.len());
    }
});
