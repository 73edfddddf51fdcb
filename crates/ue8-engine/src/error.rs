//! Typed errors of the engine. Each names the file and/or tensor it is about and the problem.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: config field '{field}': {problem}")]
    Config {
        path: PathBuf,
        field: String,
        problem: String,
    },
    #[error("{path}: unsupported architecture '{architecture}' (supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM)")]
    UnsupportedArchitecture { path: PathBuf, architecture: String },
    #[error("tensor '{tensor}' not found in the checkpoint ({what})")]
    MissingTensor { tensor: String, what: String },
    #[error("{file}: tensor '{tensor}': shape {found:?}, expected {expected:?}")]
    TensorShape {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{file}: tensor '{tensor}': dtype {dtype} is not supported here ({expected})")]
    TensorDtype {
        file: PathBuf,
        tensor: String,
        dtype: String,
        expected: String,
    },
    #[error("{file}: tensor '{tensor}': element {index} holds an E4M3 NaN code (0x{code:02X}); a quantizer never writes one")]
    NanCode {
        file: PathBuf,
        tensor: String,
        index: usize,
        code: u8,
    },
    #[error("{file}: tensor '{tensor}': scale {index} is {problem}")]
    BadScale {
        file: PathBuf,
        tensor: String,
        index: usize,
        problem: String,
    },
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("position {pos} is past the context of {ctx} tokens")]
    ContextFull { pos: usize, ctx: usize },
    #[error("token id {token} is outside the vocabulary of {vocab}")]
    TokenOutOfRange { token: u32, vocab: usize },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("tensor '{tensor}': {source}")]
    Kernel {
        tensor: String,
        #[source]
        source: crate::kernels::KernelError,
    },
    #[error("could not start the thread pool: {0}")]
    ThreadPool(#[source] std::io::Error),
    #[error("size overflow computing {0}")]
    SizeOverflow(String),
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, EngineError>;
