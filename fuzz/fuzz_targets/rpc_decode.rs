//! Any bytes as a surrogate gossip RPC from another shard: an error or an RPC that re-encodes to
//! the same bytes, never a panic; its wire size never overflows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_surrogate::rpc::Rpc;

fuzz_target!(|data: &[u8]| {
    if let Ok(rpc) = Rpc::decode(data) {
        assert_eq!(rpc.encode(), data);
        let _ = rpc.wire_bytes();
    }
});
