//! `ue8-plan`: which accelerator can hold a model, in which weight format, and how fast it can at best
//! decode and prefill there (a roofline), with each chip's US ECCN 3A090 classification.
//!
//! The model side is exact: parameter counts come from config.json architecture fields (embeddings,
//! GQA or MLA attention with its low-rank projections and norms, dense and MoE FFNs with shared experts
//! and routers, MTP modules apart), and weight bytes from each format's layout, scales included. The chip
//! side is a data file (`data/chips.toml`) in which every figure carries a source and a confidence level,
//! plus this machine's CPU with a memory bandwidth ue8 measures itself.
//!
//! ```
//! use ue8_plan::{builtin, ParamBreakdown};
//! let spec = builtin::load_model("llama-3.1-8b").unwrap();
//! let totals = ParamBreakdown::of(&spec).totals();
//! assert_eq!(totals.total, 8_030_261_248);
//! ```

pub mod bandwidth;
pub mod builtin;
pub mod catalog;
pub mod error;
pub mod export_control;
pub mod format;
pub mod kv;
pub mod params;
pub mod plan;
pub mod spec;
pub mod svg;

pub use catalog::{Catalog, Chip, Confidence, Figure};
pub use error::{PlanError, Result};
pub use format::WeightFormat;
pub use params::{ParamBreakdown, ParamTotals};
pub use plan::{plan, Plan, PlanOptions, PlanRow};
pub use spec::ModelSpec;

/// The formats `--format all` means for a model: BF16, FP8-UE8M0, MXFP4, and for models released with
/// MXFP4 experts (DeepSeek-V4) that release layout too.
pub fn formats_for(spec: &ModelSpec) -> Vec<WeightFormat> {
    let mut f = WeightFormat::GENERAL.to_vec();
    if spec.experts_released_fp4 {
        f.push(WeightFormat::Fp8Mxfp4Experts);
    }
    f
}
