//! Any byte string given to the GGUF parser yields a header or a typed error, never a panic; for a
//! header that parses, every non-empty tensor's byte range is inside the input and every supported tensor
//! dequantizes without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ue8_io::gguf::{dequantize_to_f32, GgufHeader};

/// Keeps one run's dequantization work small (the fuzzer wants many runs per second).
const MAX_ELEMS_TO_DEQUANTIZE: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = GgufHeader::parse(data, Path::new("fuzz.gguf")) else {
        return;
    };
    for t in h.tensors.iter().filter(|t| t.n_bytes > 0) {
        let start = h.data_offset + t.offset;
        let end = start + t.n_bytes;
        assert!(
            end <= data.len() as u64,
            "tensor {} outside the input",
            t.name
        );
        if t.ggml_type.can_dequantize() && t.n_elems <= MAX_ELEMS_TO_DEQUANTIZE {
            let mut out = vec![0f32; t.n_elems as usize];
            let bytes = &data[start as usize..end as usize];
            assert!(dequantize_to_f32(t.ggml_type, bytes, &mut out).is_ok());
        }
    }
});
