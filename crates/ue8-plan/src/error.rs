//! Typed errors of the planner. Each names the file (or built-in model) and the problem.

use std::path::PathBuf;

/// Everything that can go wrong while reading a model config or the chip catalog.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not valid JSON: {source}")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}: config.json has no field `{field}`, which a {family} model needs")]
    MissingField {
        origin: String,
        field: String,
        family: String,
    },
    #[error("{origin}: field `{field}`: {problem}")]
    BadField {
        origin: String,
        field: String,
        problem: String,
    },
    #[error("{origin}: unsupported architecture (model_type `{model_type}`); ue8 plan knows llama, mistral, qwen2, qwen3, qwen3_moe, gpt_oss, deepseek_v3 and deepseek_v4")]
    UnsupportedArchitecture { origin: String, model_type: String },
    #[error(
        "`{name}` is not a model directory, a config.json or a built-in model (built-in: {known})"
    )]
    UnknownModel { name: String, known: String },
    #[error("{origin}: a parameter count overflows 64 bits (field `{field}`)")]
    Overflow { origin: String, field: String },
    #[error("chip catalog {origin}: {problem}")]
    Catalog { origin: String, problem: String },
    #[error("no chip in the catalog matches `{name}` (try `ue8 chips`)")]
    UnknownChip { name: String },
    #[error("unknown format `{name}`: expected bf16, fp8-ue8m0, mxfp4, fp8-mxfp4-experts or all")]
    UnknownFormat { name: String },
    #[error("{what} must be {expected}, got {got}")]
    BadArgument {
        what: String,
        expected: String,
        got: String,
    },
}

pub type Result<T> = std::result::Result<T, PlanError>;
