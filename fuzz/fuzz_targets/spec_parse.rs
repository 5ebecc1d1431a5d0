//! Any text as an experiment spec: parsing and every check made before a run (shard count,
//! memory estimate, workload values, network model) return a spec or an error, never panic; an
//! error about a value is placed at a key without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline::check::{check_run, check_shards};
use thermocline::resources::estimate_memory;
use thermocline::spec::{Spec, locate_message};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let spec = match Spec::parse(text, "fuzz.toml") {
        Ok(spec) => spec,
        Err(e) => {
            let _ = locate_message(text, "fuzz.toml", &e.to_string());
            return;
        }
    };
    let Ok(shards) = check_shards(spec.run.shards, "run.shards") else { return };
    // Keep the fuzzer's own memory small: what the real check would refuse on a small machine.
    if estimate_memory(&spec, shards) > 256 << 20 {
        return;
    }
    if let Err(message) = check_run(&spec, shards, true) {
        let _ = locate_message(text, "fuzz.toml", &message);
    }
    let _ = Spec::parse(&spec.to_toml(), "round trip").expect("a parsed spec serialises to a spec");
});
