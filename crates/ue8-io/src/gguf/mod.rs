//! GGUF v2/v3 reader, dequantizers and the `import-gguf` converter.
//!
//! - [`GgufFile::open`] maps a file and validates its whole header (untrusted input: every count is
//!   capped, every size checked, tensor data must be aligned, inside the file and not overlapping).
//! - [`dequantize_to_f32`] decodes F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K and MXFP4 blocks, bit
//!   for bit as the PyPI `gguf` package's `gguf.quants.dequantize` does.
//! - [`import::import_gguf`] turns a Llama-family GGUF into a Hugging Face directory: safetensors with
//!   HF names (Q/K rows un-permuted), `config.json`, `tokenizer.json`, `tokenizer_config.json`.
//!
//! ```no_run
//! use ue8_io::gguf::{GgufFile, import::{import_gguf, ImportOptions}};
//! let file = GgufFile::open("model.gguf")?;
//! for t in file.tensors() {
//!     println!("{} {} {:?}", t.name, t.ggml_type, t.shape());
//! }
//! let report = import_gguf("model.gguf".as_ref(), "out".as_ref(), &ImportOptions::default())?;
//! println!("{} tensors", report.tensors);
//! # Ok::<(), ue8_io::gguf::GgufError>(())
//! ```

mod dequant;
mod error;
mod file;
mod ggml_type;
pub mod import;
pub mod names;
mod reader;
pub mod tokenizer;
mod value;

pub use dequant::{dequantize_to_f32, e8m0_to_f32_half, DequantError};
pub use error::GgufError;
pub use file::GgufFile;
pub use ggml_type::GgmlType;
pub use reader::{
    GgufHeader, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_DEPTH, MAX_ARRAY_LEN,
    MAX_DIMS, MAX_KEY_BYTES, MAX_KV, MAX_STRING_BYTES, MAX_TENSORS, MAX_TENSOR_NAME_BYTES,
};
pub use value::{MetadataArray, MetadataValue};
