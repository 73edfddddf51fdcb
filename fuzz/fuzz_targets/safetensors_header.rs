//! Any byte string given to ue8-io's safetensors header parser yields a header or a typed error,
//! never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ue8_io::header::parse_header(Path::new("fuzz.safetensors"), data);
});
