//! ue8-engine: CPU inference for Llama-family models (Llama, SmolLM2, Qwen2, Qwen3, Mistral)
//! straight from the stored weight format: F32, BF16, F16, DeepSeek blockwise FP8 (F32 or UE8M0
//! scales) and OCP MX (MXFP8/MXFP6/MXFP4). Weights stay in the mmap; activations and the KV cache
//! are f32.
//!
//! ```no_run
//! use ue8_engine::{Checkpoint, LlamaModel, Logits, Matmul, ModelConfig, Session};
//! # fn main() -> Result<(), ue8_engine::EngineError> {
//! let dir = std::path::Path::new("model");
//! let ck = Checkpoint::open(dir)?;
//! let model = LlamaModel::load(&ck, ModelConfig::from_path(dir)?)?;
//! let mm = Matmul::new(2)?;
//! let mut session = Session::new(&model, &mm, 512, 64)?;
//! let logits = session.forward(&[1, 2, 3], Logits::Last)?;
//! println!("next token: {}", ue8_engine::sampler::argmax(logits));
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod config;
pub mod config_deepseek; // deepseek
pub mod error;
pub mod generate;
pub mod kernels;
pub mod layers;
pub mod matmul;
pub mod memory;
pub mod models;
pub mod perplexity;
pub mod profile;
pub mod sampler;
pub mod tokenizer;
pub mod weights;
pub mod yarn; // deepseek: YaRN rope for MLA

pub use checkpoint::Checkpoint;
pub use config::{Architecture, ModelConfig};
pub use error::{EngineError, Result};
pub use matmul::Matmul;
pub use models::llama::{LlamaModel, Logits, Session};
