//! Any bytes reaching a direct host as a packet: taking the IPv6 mark off, and reading a
//! connection request, never panic; a marked packet unmarks to the packet it was made from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_direct::inet6::{mark, syn, unmark};

fuzz_target!(|data: &[u8]| {
    let _ = syn(data);
    if let Some(plain) = unmark(data) {
        let _ = syn(&plain);
    }
    if data.len() >= 20 && data[0] == 0x45 && u16::from_be_bytes([data[2], data[3]]) as usize == data.len() {
        let mut marked = data.to_vec();
        mark(&mut marked);
        let mut plain = unmark(&marked).expect("a marked packet unmarks");
        // The checksum is recomputed on the way back; compare everything else.
        plain[10..12].copy_from_slice(&data[10..12]);
        assert_eq!(plain, data);
    }
});
