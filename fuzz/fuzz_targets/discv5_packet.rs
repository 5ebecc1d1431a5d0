//! Any bytes as a discv5 packet reaching a node: the input after the masking IV is masked with
//! the node's id first, so the fuzzer writes header plaintext and reaches every kind of
//! `authdata`. A packet that decodes re-encodes to the same bytes; its message bytes go through
//! the message decoder and a handshake's record through the record decoder; nothing panics.
#![no_main]

use aes::cipher::{KeyIvInit as _, StreamCipher as _};
use libfuzzer_sys::fuzz_target;
use thermocline_wire::discv5::enr::Enr;
use thermocline_wire::discv5::message::Message;
use thermocline_wire::discv5::packet::{self, AuthData};
use thermocline_wire::discv5::session;

const LOCAL: [u8; 32] = [0xbb; 32];

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let mut bytes = data.to_vec();
    let iv: [u8; 16] = bytes[..16].try_into().unwrap();
    ctr::Ctr128BE::<aes::Aes128>::new((&LOCAL[..16]).into(), (&iv).into()).apply_keystream(&mut bytes[16..]);
    let Ok(p) = packet::decode(&LOCAL, &bytes) else { return };
    assert_eq!(packet::encode(&LOCAL, p.masking_iv, &p.header, p.message), bytes);
    let _ = session::decrypt(&[0; 16], &p.header.nonce, p.message, &p.authenticated);
    if let Ok(m) = Message::decode(p.message) {
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }
    if let AuthData::Handshake { record: Some(r), .. } = &p.header.auth {
        let _ = Enr::decode(r);
    }
});
