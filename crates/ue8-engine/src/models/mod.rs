//! One file per model family, built from the shared layers. `llama` covers Llama, Qwen2, Qwen3 and
//! Mistral; a DeepSeek MLA/MoE family would live beside it as `deepseek.rs` and share `layers`,
//! `weights`, `matmul`, the sampler and the KV-cache habits.

pub mod any; // deepseek: model family picked by architecture
pub mod deepseek;
pub mod llama;

use crate::error::Result;
use llama::Logits;

/// What the generation loop, `perplexity` and `bench` need from a session of any model family
/// (Llama's [`llama::Session`], DeepSeek's [`deepseek::DeepseekSession`]), so the commands pick a
/// family by architecture at load time and share everything after it.
pub trait CausalSession {
    /// Run `tokens` at the next positions; logits as [`Logits`] asks ([V], [m, V] or empty).
    fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<&[f32]>;
    /// Tokens currently in the cache.
    fn position(&self) -> usize;
    /// Capacity of the cache.
    fn context(&self) -> usize;
    /// Largest batch one `forward` call takes.
    fn max_batch(&self) -> usize;
    /// Forget every cached token.
    fn reset(&mut self);
    /// Width of a logits row.
    fn vocab_size(&self) -> usize;
    /// Bytes held by the KV cache.
    fn kv_cache_bytes(&self) -> usize;
}

impl CausalSession for llama::Session<'_, '_> {
    fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<&[f32]> {
        llama::Session::forward(self, tokens, want)
    }
    fn position(&self) -> usize {
        llama::Session::position(self)
    }
    fn context(&self) -> usize {
        llama::Session::context(self)
    }
    fn max_batch(&self) -> usize {
        llama::Session::max_batch(self)
    }
    fn reset(&mut self) {
        llama::Session::reset(self)
    }
    fn vocab_size(&self) -> usize {
        llama::Session::vocab_size(self)
    }
    fn kv_cache_bytes(&self) -> usize {
        llama::Session::kv_cache_bytes(self)
    }
}
