//! Typed errors of checkpoint reading and writing. Every variant names the file, and where one is
//! involved the tensor, so a user can find the problem without a debugger.

use std::path::PathBuf;

/// Anything that can go wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file is {len} bytes, too short for the 8-byte safetensors header length")]
    TooShort { path: PathBuf, len: u64 },
    #[error("{path}: header length {header_len} runs past the end of the file ({file_len} bytes)")]
    HeaderPastEnd {
        path: PathBuf,
        header_len: u64,
        file_len: u64,
    },
    #[error("{path}: header length {header_len} exceeds the {max}-byte limit")]
    HeaderTooLarge {
        path: PathBuf,
        header_len: u64,
        max: u64,
    },
    #[error("{path}: header is not valid JSON: {problem}")]
    HeaderNotJson { path: PathBuf, problem: String },
    #[error("{path}: header: {problem}")]
    BadHeader { path: PathBuf, problem: String },
    #[error("{path}: tensor '{tensor}': {problem}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        problem: String,
    },
    #[error("{path}: tensor '{tensor}': unknown dtype '{dtype}'")]
    UnknownDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error(
        "{path}: tensor '{tensor}': dtype {dtype} x shape {shape:?} needs {expected} bytes but its offsets span {got}"
    )]
    SizeMismatch {
        path: PathBuf,
        tensor: String,
        dtype: String,
        shape: Vec<usize>,
        expected: u64,
        got: u64,
    },
    #[error("{path}: tensor '{tensor}': data offsets [{start}, {end}) {problem}")]
    BadOffsets {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        problem: String,
    },
    #[error("{path}: {problem}")]
    BadIndex { path: PathBuf, problem: String },
    #[error("{index}: shard '{shard}' named in the index is missing ({source})")]
    MissingShard {
        index: PathBuf,
        shard: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tensor '{tensor}' appears in both {first} and {second}")]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path}: no tensor named '{tensor}'")]
    NoSuchTensor { path: PathBuf, tensor: String },
    #[error("{path}: no .safetensors file found (expected model.safetensors or an index)")]
    NoWeights { path: PathBuf },
    #[error("{path}: {problem}")]
    BadConfig { path: PathBuf, problem: String },
    #[error("{path}: output already exists (pass --force to replace it)")]
    OutputExists { path: PathBuf },
    #[error("{path}: writer: {problem}")]
    Writer { path: PathBuf, problem: String },
    #[error("{path}: manifest: {problem}")]
    Manifest { path: PathBuf, problem: String },
}

impl IoError {
    /// Wraps an OS error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::Io {
            path: path.into(),
            source,
        }
    }
}
