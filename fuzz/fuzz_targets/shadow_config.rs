//! Any text as a Shadow configuration (`thermocline run shadow.yaml`): the YAML reader and every
//! check of the import return a spec or an error, never panic; a configuration that imports
//! prints a TOML spec that parses back to the same spec (`thermocline import`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline::shadow::import;
use thermocline::spec::Spec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(imported) = import(text, "fuzz.yaml", std::path::Path::new("/nonexistent")) else { return };
    let toml = imported.to_toml("fuzz.yaml");
    let again = Spec::parse(&toml, "fuzz.toml").expect("an imported configuration prints a spec");
    assert_eq!(again, imported.spec, "the printed spec is the imported one");
});
