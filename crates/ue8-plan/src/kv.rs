//! KV-cache size and attention work per token, in BF16 (2 bytes a value), per the attention kind:
//! GQA caches K and V for every KV head; MLA caches the compressed latent plus the rope key; DeepSeek-V4
//! caches a 128-token window of its shared K=V head plus one compressed row per `ratio` tokens (and, on
//! ratio-4 layers, the indexer's compressed keys).

use crate::spec::{AttnSpec, ModelSpec};

/// Bytes of one cached value (BF16).
pub const KV_BYTES_PER_VALUE: u64 = 2;

/// Cached values one layer holds for a sequence of `context` tokens.
fn layer_kv_values(attn: &AttnSpec, context: u64) -> u64 {
    match attn {
        AttnSpec::Gqa {
            kv_heads,
            head_dim,
            window,
            ..
        } => {
            let tokens = window.map_or(context, |w| context.min(w));
            (2 * kv_heads * head_dim).saturating_mul(tokens)
        }
        AttnSpec::Mla {
            kv_lora_rank,
            qk_rope_head_dim,
            ..
        } => (kv_lora_rank + qk_rope_head_dim).saturating_mul(context),
        AttnSpec::DeepseekV4 {
            head_dim,
            window,
            compress_ratio,
            index_head_dim,
            ..
        } => {
            let mut v = context.min(*window).saturating_mul(*head_dim);
            if *compress_ratio > 0 {
                v = v.saturating_add((context / compress_ratio).saturating_mul(*head_dim));
            }
            if *compress_ratio == 4 {
                v = v.saturating_add((context / 4).saturating_mul(*index_head_dim));
            }
            v
        }
    }
}

/// KV-cache bytes of one sequence of `context` tokens (main model layers).
pub fn kv_bytes(spec: &ModelSpec, context: u64) -> u64 {
    spec.layers
        .iter()
        .map(|l| layer_kv_values(&l.attn, context).saturating_mul(KV_BYTES_PER_VALUE))
        .fold(0u64, u64::saturating_add)
}

/// Bytes each further token adds to the cache once windows are full (the asymptotic slope). For GQA and
/// MLA models without windows this is the classic "KV bytes per token".
pub fn kv_bytes_per_token(spec: &ModelSpec) -> f64 {
    spec.layers
        .iter()
        .map(|l| match &l.attn {
            AttnSpec::Gqa {
                kv_heads,
                head_dim,
                window,
                ..
            } => match window {
                Some(_) => 0.0,
                None => (2 * kv_heads * head_dim * KV_BYTES_PER_VALUE) as f64,
            },
            AttnSpec::Mla {
                kv_lora_rank,
                qk_rope_head_dim,
                ..
            } => ((kv_lora_rank + qk_rope_head_dim) * KV_BYTES_PER_VALUE) as f64,
            AttnSpec::DeepseekV4 {
                head_dim,
                compress_ratio,
                index_head_dim,
                ..
            } => {
                let mut b = 0.0;
                if *compress_ratio > 0 {
                    b += (head_dim * KV_BYTES_PER_VALUE) as f64 / *compress_ratio as f64;
                }
                if *compress_ratio == 4 {
                    b += (index_head_dim * KV_BYTES_PER_VALUE) as f64 / 4.0;
                }
                b
            }
        })
        .sum()
}

/// Attention FLOPs (score and value products) of one token at position `pos`, over all layers. Prefill
/// uses the mean position of the prompt. MLA is counted in its expanded (prefill) form.
pub fn attention_flops_at(spec: &ModelSpec, pos: u64) -> f64 {
    let p = pos as f64;
    spec.layers
        .iter()
        .map(|l| match &l.attn {
            AttnSpec::Gqa {
                heads,
                head_dim,
                window,
                ..
            } => {
                let attended = window.map_or(p, |w| p.min(w as f64));
                4.0 * (*heads as f64) * (*head_dim as f64) * attended
            }
            AttnSpec::Mla {
                heads,
                qk_nope_head_dim,
                qk_rope_head_dim,
                v_head_dim,
                ..
            } => {
                2.0 * (*heads as f64)
                    * ((qk_nope_head_dim + qk_rope_head_dim + v_head_dim) as f64)
                    * p
            }
            AttnSpec::DeepseekV4 {
                heads,
                head_dim,
                window,
                compress_ratio,
                index_heads,
                index_head_dim,
                index_topk,
                ..
            } => {
                let mut attended = p.min(*window as f64);
                let mut indexer = 0.0;
                if *compress_ratio == 4 {
                    let rows = p / 4.0;
                    attended += rows.min(*index_topk as f64);
                    indexer = 2.0 * (*index_heads as f64) * (*index_head_dim as f64) * rows;
                } else if *compress_ratio > 0 {
                    attended += p / *compress_ratio as f64;
                }
                4.0 * (*heads as f64) * (*head_dim as f64) * attended + indexer
            }
        })
        .sum()
}
