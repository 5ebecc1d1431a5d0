//! Any bytes as a node record (EIP-778) and as its `enr:` text: a record that decodes verified
//! re-encodes to the same bytes and text; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::discv5::enr::Enr;

fuzz_target!(|data: &[u8]| {
    if let Ok(enr) = Enr::decode(data) {
        assert_eq!(enr.encoded(), data);
        assert_eq!(Enr::from_text(&enr.to_text()).as_ref(), Ok(&enr));
        let _ = (enr.ip4(), enr.udp(), enr.tcp(), enr.node_id());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Enr::from_text(text);
    }
});
