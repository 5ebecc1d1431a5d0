//! Any bytes as a libp2p `PublicKey` protobuf, as peer id bytes and as a peer id string: an
//! error or a value that re-encodes consistently, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::identity::{PeerId, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_protobuf(data) {
        assert_eq!(PublicKey::from_protobuf(&key.to_protobuf()).as_ref(), Ok(&key));
        let _ = key.verify(b"message", data);
        assert_eq!(key.peer_id().public_key().as_ref(), Some(&key));
    }
    if let Ok(id) = PeerId::from_bytes(data) {
        assert_eq!(id.as_bytes(), data);
        assert_eq!(id.to_string().parse::<PeerId>(), Ok(id));
        let _ = id.public_key();
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(id) = s.parse::<PeerId>()
    {
        assert_eq!(id.to_string(), s);
    }
});
