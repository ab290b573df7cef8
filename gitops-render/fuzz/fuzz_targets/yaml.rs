//! Fuzzes the YAML loader and printer: any UTF-8 text must read or fail with an error, never
//! panic, and whatever reads must print and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = gitops_render::fuzzing::yaml_round_trip(text)
        && e.starts_with("printed YAML")
    {
        panic!("{e}");
    }
});
