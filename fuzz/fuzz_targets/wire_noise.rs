//! Any bytes, in any split, as the wire input of a libp2p Noise responder or initiator: an error
//! (after which the session refuses everything) or progress, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::identity::Keypair;
use thermocline_wire::noise::{Noise, NoiseError};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let identity = Keypair::ed25519_from_secret([1; 32]);
    let noise = if mode & 1 == 0 {
        Noise::responder(&identity, [2; 32])
    } else {
        Noise::initiator(&identity, [2; 32], Some(identity.peer_id()))
    };
    let mut noise = noise.expect("the built-in suite sets up");
    let step = usize::from(mode >> 1) + 1;
    for chunk in rest.chunks(step) {
        if noise.handle_bytes(chunk).is_err() {
            assert_eq!(noise.handle_bytes(chunk), Err(NoiseError::Failed));
            assert!(!noise.is_established());
            break;
        }
    }
    while noise.poll_transmit().is_some() {}
    while noise.poll_event().is_some() {}
});
