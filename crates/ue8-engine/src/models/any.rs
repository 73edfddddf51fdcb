//! A model of any supported family, picked from config.json's architecture, so that `run`,
//! `perplexity` and `bench` load once and then drive a [`CausalSession`] without caring which.

use super::deepseek::{DeepseekModel, DeepseekSession};
use super::llama::{LlamaModel, Session};
use super::CausalSession;
use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::config_deepseek::{is_deepseek_dir, DeepseekConfig};
use crate::error::Result;
use crate::matmul::Matmul;
use std::path::Path;

/// A loaded model of one family.
pub enum AnyModel<'a> {
    Llama(Box<LlamaModel<'a>>),
    Deepseek(Box<DeepseekModel<'a>>),
}

impl<'a> AnyModel<'a> {
    /// Read `dir`'s config.json and map the weights of whichever family it names from `ck`.
    pub fn load(ck: &'a Checkpoint, dir: &Path) -> Result<Self> {
        if is_deepseek_dir(dir)? {
            let cfg = DeepseekConfig::from_path(dir)?;
            Ok(AnyModel::Deepseek(Box::new(DeepseekModel::load(ck, cfg)?)))
        } else {
            let cfg = ModelConfig::from_path(dir)?;
            Ok(AnyModel::Llama(Box::new(LlamaModel::load(ck, cfg)?)))
        }
    }

    /// A session holding `ctx` tokens, taking batches of at most `max_batch`.
    pub fn session<'m>(
        &'m self,
        mm: &'m Matmul,
        ctx: usize,
        max_batch: usize,
    ) -> Result<Box<dyn CausalSession + 'm>> {
        Ok(match self {
            AnyModel::Llama(m) => Box::new(Session::new(m, mm, ctx, max_batch)?),
            AnyModel::Deepseek(m) => Box::new(DeepseekSession::new(m, mm, ctx, max_batch)?),
        })
    }

    /// Bytes of weights one generated token reads (active experts only for MoE).
    pub fn weight_bytes_per_token(&self) -> usize {
        match self {
            AnyModel::Llama(m) => m.weight_bytes_per_token(),
            AnyModel::Deepseek(m) => m.weight_bytes_per_token(),
        }
    }

    /// `bos_token_id` of config.json.
    pub fn bos_token_id(&self) -> Option<u32> {
        match self {
            AnyModel::Llama(m) => m.config.bos_token_id,
            AnyModel::Deepseek(m) => m.config.bos_token_id,
        }
    }

    /// `eos_token_id` of config.json (one or several).
    pub fn eos_token_ids(&self) -> &[u32] {
        match self {
            AnyModel::Llama(m) => &m.config.eos_token_ids,
            AnyModel::Deepseek(m) => &m.config.eos_token_ids,
        }
    }

    /// The longest context the model was configured for.
    pub fn max_position_embeddings(&self) -> usize {
        match self {
            AnyModel::Llama(m) => m.config.max_position_embeddings,
            AnyModel::Deepseek(m) => m.config.max_position_embeddings,
        }
    }
}
