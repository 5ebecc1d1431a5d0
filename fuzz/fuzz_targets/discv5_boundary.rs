//! Any datagrams from a client at a boundary identity: the input is cut into datagrams (a
//! two-byte length before each), and each is masked for the identity after its 16-byte IV, so
//! the fuzzer writes header plaintext and reaches WHOAREYOU, handshake and message packets. The
//! identity answers FINDNODE from a small table; nothing panics, and every answer fits a packet.
#![no_main]

use aes::cipher::{KeyIvInit as _, StreamCipher as _};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddrV4};
use thermocline_surrogate::discv5::boundary::{Boundary, record};

const SEED: u64 = 1;
const IDENTITY: u32 = 0;

fuzz_target!(|data: &[u8]| {
    let id = record(SEED, IDENTITY).node_id();
    let mut b = Boundary::new(SEED, None);
    let from = SocketAddrV4::new(Ipv4Addr::new(10, 0, 9, 9), 30303);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let mut datagram = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];
        if datagram.len() > 16 {
            let iv: [u8; 16] = datagram[..16].try_into().unwrap();
            ctr::Ctr128BE::<aes::Aes128>::new((&id[..16]).into(), (&iv).into()).apply_keystream(&mut datagram[16..]);
        }
        for (to, answer) in b.handle_datagram(IDENTITY, from, &datagram, |_, limit| (1..=limit as u32).collect()) {
            assert_eq!(to, from);
            assert!(answer.len() <= 1280, "an answer of {} bytes", answer.len());
        }
    }
});
