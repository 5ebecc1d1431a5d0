//! Any bytes, in any split, as the peer's side of a multistream-select negotiation, to a
//! dialer, a lazy dialer and a listener: an error or progress, never a panic, and what is kept
//! waiting for a message's end stays within one message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::multistream::Multistream;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the split size; the rest is the peer's bytes.
    let Some((&split, bytes)) = data.split_first() else { return };
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for mut ms in [
        Multistream::dialer(names(&["/a", "/b/1.0.0"])).unwrap(),
        Multistream::dialer_lazy("/a".into()).unwrap(),
        Multistream::listener(names(&["/a", "/b/1.0.0"])).unwrap(),
    ] {
        for piece in bytes.chunks(usize::from(split).max(1)) {
            if !ms.wants_bytes() || ms.handle_bytes(piece).is_err() {
                break;
            }
            while ms.poll_transmit().is_some() {}
        }
        while ms.poll_event().is_some() {}
    }
});
