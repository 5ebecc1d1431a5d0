//! Any bytes as a vDSO image (an ELF the supervisor reads from a task's memory): the function
//! table or `None`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermocline_direct::vdso::functions;

fuzz_target!(|data: &[u8]| {
    let _ = functions(data);
});
