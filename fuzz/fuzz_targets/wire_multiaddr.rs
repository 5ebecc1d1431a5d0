//! Any bytes as a binary multiaddr (an error, or one that re-encodes to the same bytes and whose
//! text reads back), and as text (an error, or one whose bytes read back); never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_wire::multiaddr::Multiaddr;

fuzz_target!(|data: &[u8]| {
    if let Ok(addr) = Multiaddr::from_bytes(data) {
        assert_eq!(addr.to_bytes(), data);
        assert_eq!(addr.to_string().parse::<Multiaddr>().as_ref(), Ok(&addr));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(addr) = text.parse::<Multiaddr>()
    {
        assert_eq!(Multiaddr::from_bytes(&addr.to_bytes()).as_ref(), Ok(&addr));
    }
});
