//! Any bytes, in any split, as the peer's side of an mplex session that has a few streams of
//! its own open: an error or events, never a panic, and never more open streams than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::mplex::{Mplex, MplexConfig};
use thermocline_wire::mux::{MuxEvent, Muxer};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the split size; the rest is the peer's bytes.
    let Some((&split, bytes)) = data.split_first() else { return };
    let config = MplexConfig { max_frame_size: 4096, max_streams: 8, max_buffered_per_stream: 2048 };
    let mut mux = Mplex::new(config);
    for _ in 0..2 {
        let id = mux.open(0).unwrap();
        mux.send(0, id, b"hello").unwrap();
    }
    for piece in bytes.chunks(usize::from(split).max(1)) {
        if mux.handle_bytes(0, piece).is_err() {
            break;
        }
        while let Some(event) = mux.poll_event() {
            // Answer as an application might, to exercise the sending side too.
            match event {
                MuxEvent::Opened(id) => {
                    let _ = mux.send(0, id, b"hi");
                }
                MuxEvent::Closed(id) => {
                    let _ = mux.close(0, id);
                }
                _ => {}
            }
        }
        while mux.poll_transmit().is_some() {}
        assert!(mux.open_streams() <= 8);
    }
});
