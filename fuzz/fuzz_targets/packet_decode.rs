//! Any bytes as an IPv4 + UDP packet reaching a direct host from the bus: an error or a datagram,
//! never a panic; a datagram that decodes re-encodes to a packet that decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_net::udp::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode(data) {
        let again = decode(&encode(d.src, d.dst, &d.payload)).expect("a re-encoded datagram decodes");
        assert_eq!((again.src, again.dst, again.payload), (d.src, d.dst, d.payload));
    }
});
