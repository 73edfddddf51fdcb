//! One file per model family, built from the shared layers. `llama` covers Llama, Qwen2, Qwen3 and
//! Mistral; a DeepSeek MLA/MoE family would live beside it as `deepseek.rs` and share `layers`,
//! `weights`, `matmul`, the sampler and the KV-cache habits.

pub mod deepseek;
pub mod llama;
