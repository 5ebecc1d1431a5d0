//! Any bytes as a gossipsub stream, split where the first byte says: the frame decoder yields
//! frames no longer than its maximum, and each frame is an error or an RPC whose re-encoding
//! decodes to the same RPC; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::frame::FrameDecoder;
use thermocline_wire::gossipsub::{MessageIdFn, Rpc, signing_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let max = 4096;
    let mut decoder = FrameDecoder::new(max);
    for chunk in stream.chunks(usize::from(split).max(1)) {
        decoder.push(chunk);
        while let Ok(Some(frame)) = decoder.next() {
            assert!(frame.len() <= max);
            if let Ok(rpc) = Rpc::decode(&frame) {
                assert_eq!(Rpc::decode(&rpc.encode()).as_ref(), Ok(&rpc));
                for msg in &rpc.publish {
                    let _ = signing_bytes(msg);
                    let _ = MessageIdFn::FromAndSeqno.message_id(msg);
                }
            }
        }
    }
});
