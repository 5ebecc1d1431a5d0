//! Any bytes as an identify stream in arbitrary pieces: frames within identify's limit, each an
//! error or a message whose re-encoding decodes the same; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::identify::{Identify, MAX_MESSAGE_SIZE, frame_decoder};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let mut decoder = frame_decoder();
    for chunk in stream.chunks(usize::from(split).max(1)) {
        decoder.push(chunk);
        while let Ok(Some(frame)) = decoder.next() {
            assert!(frame.len() <= MAX_MESSAGE_SIZE);
            if let Ok(msg) = Identify::decode(&frame) {
                assert_eq!(Identify::decode(&msg.encode()).as_ref(), Ok(&msg));
            }
        }
    }
});
