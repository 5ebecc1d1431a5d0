//! Any text as a Shadow GML graph: the parser and topology builder return a topology or an error
//! with a location, never panic; a topology that builds can be routed without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_models::routing::Routes;
use thermocline_models::topology::Topology;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for shortest in [true, false] {
        if let Ok(t) = Topology::from_gml(text, "fuzz.gml", shortest) {
            let used: Vec<u32> = (0..t.len().min(16) as u32).collect();
            let _ = Routes::compute(&t, &used);
        }
    }
});
