//! Any bytes a program writes to a NETLINK_ROUTE socket: answered or ignored, never a panic;
//! every answer is a whole number of well-formed messages (lengths at least a header, within the
//! datagram, 4-byte aligned).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use thermocline_direct::netlink::answer;

fuzz_target!(|data: &[u8]| {
    for d in answer(data, 7, Ipv4Addr::new(10, 0, 0, 1), &[]) {
        let mut off = 0;
        while off < d.len() {
            let len = u32::from_ne_bytes(d[off..off + 4].try_into().unwrap()) as usize;
            assert!(len >= 16 && off + len <= d.len());
            off += (len + 3) & !3;
        }
        assert_eq!(off, d.len());
    }
});
