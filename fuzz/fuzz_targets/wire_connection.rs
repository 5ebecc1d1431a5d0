//! The whole libp2p stack as a listener, fed arbitrary bytes in arbitrary pieces: it must fail
//! cleanly (and stay failed), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use thermocline_wire::connection::{Addresses, ConnConfig, Connection};
use thermocline_wire::identity::Keypair;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, rest)) = data.split_first() else { return };
    let mut c = Connection::accept(Keypair::ed25519_from_secret([2; 32]), [2; 32], Arc::new(ConnConfig::default()), Addresses::default());
    for chunk in rest.chunks(usize::from(piece).max(1)) {
        let failed = c.handle_bytes(0, chunk).is_err();
        while c.poll_event().is_some() {}
        let _ = c.poll_transmit();
        assert!(!failed || c.is_failed());
    }
});
