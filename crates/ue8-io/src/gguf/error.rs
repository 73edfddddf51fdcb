//! Typed errors of the GGUF reader and importer. Every variant names the file, and the key or tensor
//! where there is one, so a user can find the problem without a debugger.

use std::path::PathBuf;

/// Anything that can go wrong while reading a GGUF file or importing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a GGUF file (magic bytes {magic:02x?}, expected \"GGUF\")")]
    NotGguf { path: PathBuf, magic: Vec<u8> },
    #[error("{path}: GGUF version {version} is not supported (ue8 reads versions 2 and 3, little-endian)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "{path}: file ends inside {what} (needs {needed} bytes at offset {offset}, file has {len})"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },
    #[error("{path}: {what} is {value}, over the limit of {limit}")]
    OverLimit {
        path: PathBuf,
        what: String,
        value: u64,
        limit: u64,
    },
    #[error("{path}: {what} is not valid UTF-8")]
    BadUtf8 { path: PathBuf, what: String },
    #[error("{path}: metadata key '{key}' has unknown value type {type_id}")]
    UnknownValueType {
        path: PathBuf,
        key: String,
        type_id: u32,
    },
    #[error("{path}: metadata key '{key}' appears twice")]
    DuplicateKey { path: PathBuf, key: String },
    #[error("{path}: general.alignment = {alignment} is not a power of two")]
    BadAlignment { path: PathBuf, alignment: u64 },
    #[error("{path}: tensor '{tensor}' appears twice")]
    DuplicateTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor '{tensor}' has {n_dims} dimensions (GGML allows 1 to 4)")]
    BadDimCount {
        path: PathBuf,
        tensor: String,
        n_dims: u32,
    },
    #[error("{path}: tensor '{tensor}' has unknown GGML type {type_id}")]
    UnknownGgmlType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
    },
    #[error("{path}: tensor '{tensor}': row length {row} is not a multiple of the {ggml_type} block size {block}")]
    RowNotBlockAligned {
        path: PathBuf,
        tensor: String,
        ggml_type: &'static str,
        row: u64,
        block: u64,
    },
    #[error("{path}: tensor '{tensor}': element count or byte size overflows")]
    SizeOverflow { path: PathBuf, tensor: String },
    #[error(
        "{path}: tensor '{tensor}': data at offset {offset} is not aligned to {alignment} bytes"
    )]
    TensorMisaligned {
        path: PathBuf,
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("{path}: tensor '{tensor}': bytes {start}..{end} of the data section lie past its end ({data_len} bytes)")]
    TensorOutOfFile {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        data_len: u64,
    },
    #[error("{path}: tensors '{first}' and '{second}' overlap in the data section")]
    TensorsOverlap {
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("{path}: tensor '{tensor}': GGML type {ggml_type} cannot be dequantized by ue8 (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, MXFP4)")]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        ggml_type: &'static str,
    },
    #[error("{path}: metadata key '{key}' is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key '{key}' should be {expected}, found {found}")]
    WrongKeyType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("{path}: architecture '{arch}' is not supported by import-gguf (supported: llama)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error("{path}: tokenizer {what} '{name}' is not supported (supported: {supported})")]
    UnsupportedTokenizer {
        path: PathBuf,
        what: &'static str,
        name: String,
        supported: &'static str,
    },
    #[error("{path}: output already exists (use --force to replace it)")]
    OutputExists { path: PathBuf },
    #[error("{path}: writing safetensors failed: {problem}")]
    Write { path: PathBuf, problem: String },
}
