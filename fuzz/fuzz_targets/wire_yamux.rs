//! Any bytes as what a yamux peer sends, cut at positions the input chooses, with the
//! application opening, sending, closing and resetting streams in between: an error or
//! events, never a panic, and nothing queued beyond what the application sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::mux::{MuxEvent, Muxer, StreamId};
use thermocline_wire::yamux::{Role, Yamux, YamuxConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else { return };
    let role = if control & 1 == 0 { Role::Client } else { Role::Server };
    let config = YamuxConfig {
        max_streams: 8,
        max_frame_payload: 1 + u32::from(control >> 4) * 64,
        keep_alive: Some(5),
        ..YamuxConfig::default()
    };
    let mut y = Yamux::new(role, config);
    let mut now = 0;
    while let Some((&cut, tail)) = rest.split_first() {
        let n = (usize::from(cut) % 64 + 1).min(tail.len());
        now += 1;
        if y.handle_bytes(now, &tail[..n]).is_err() {
            assert!(y.handle_bytes(now, &tail[..n]).is_err(), "errors are final");
            break;
        }
        rest = &tail[n..];
        match cut >> 6 {
            0 => {
                if let Ok(s) = y.open(now) {
                    let _ = y.send(now, s, &[cut; 40]);
                }
            }
            1 => y.handle_timeout(now),
            _ => {}
        }
        while y.poll_transmit().is_some() {}
        while let Some(e) = y.poll_event() {
            match e {
                MuxEvent::Opened(s) if cut & 4 == 0 => {
                    let _ = y.send(now, s, b"answer");
                    let _ = y.close(now, s);
                }
                MuxEvent::Data(s, _) if cut & 8 == 0 => {
                    let _ = y.reset(now, s);
                }
                _ => {}
            }
        }
        assert!(y.queued(StreamId(1)) <= 40);
    }
});
