//! ue8-convert: streaming checkpoint conversion. Plans what happens to each tensor (quantize, keep,
//! requantize, dequantize), runs it with rayon inside tensors under a memory bound, writes through
//! `ue8_io`'s streaming writer into an atomically committed directory with a sha256 manifest, and
//! reports per-tensor error. Also `inspect`, `verify` and `diff` as library functions that return data
//! (only the CLI prints).

pub mod encode;
pub mod error;
pub mod format;
pub mod select;
pub mod source;

pub use error::ConvertError;
pub use format::{RuleChoice, ScaleDtype, Scheme, TargetFormat};
pub mod exec;
pub mod plan;

pub use exec::{execute, NoProgress, Progress, RunOptions, Summary};
pub use plan::{
    plan_dequantize, plan_quantize, plan_requantize, OutDtype, Plan, QuantizePlanOptions,
};
pub mod diff;
pub mod inspect;
pub mod v4; // v4: DeepSeek-V4 checkpoints (issue 11)
pub mod verify;
