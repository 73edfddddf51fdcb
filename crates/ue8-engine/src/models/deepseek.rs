//! `DeepseekV3ForCausalLM` (DeepSeek-V3, V3.1, R1): multi-head latent attention ([`mla`]) and a
//! group-routed mixture of experts ([`moe`]) on the engine's shared pieces (checkpoint mmap,
//! [`Linear`] in every stored format, RMS norm, SwiGLU, softmax, matmul, sampler). f32 activations
//! and an f32 latent KV cache. MTP layers (`model.layers.{num_hidden_layers}..`) are not loaded.

pub mod mla;
pub mod moe;

use crate::checkpoint::Checkpoint;
use crate::config_deepseek::DeepseekConfig;
use crate::error::{EngineError, Result};
use crate::layers;
use crate::matmul::Matmul;
use crate::models::llama::Logits;
use crate::weights::Linear;
use crate::yarn::MlaRope;
use mla::{MlaMode, MlaScratch, MlaShape, MlaWeights, QueryProj};
use moe::{Mlp, Moe, MoeScratch, RouterShape};

/// The feed-forward block of one layer.
pub enum FeedForward<'a> {
    /// The first `first_k_dense_replace` layers.
    Dense(Box<Mlp<'a>>),
    Moe(Box<Moe<'a>>),
}

/// Weights of one decoder layer.
pub struct DeepseekLayer<'a> {
    pub input_norm: Vec<f32>, // [d]
    pub attn: MlaWeights<'a>,
    pub post_attention_norm: Vec<f32>, // [d]
    pub ffn: FeedForward<'a>,
}

/// A loaded DeepSeek-V3 model: configuration plus weights borrowed from the checkpoint's mmap.
pub struct DeepseekModel<'a> {
    pub config: DeepseekConfig,
    pub embed_tokens: Linear<'a>, // [V, d]
    pub layers: Vec<DeepseekLayer<'a>>,
    pub norm: Vec<f32>,
    /// `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear<'a>>,
    /// MTP layers found in the checkpoint and skipped (0 when it carries none).
    pub mtp_layers_skipped: usize,
}

pub(crate) fn alloc(a: usize, b: usize, what: &str) -> Result<Vec<f32>> {
    let n = a
        .checked_mul(b)
        .ok_or_else(|| EngineError::SizeOverflow(what.to_string()))?;
    Ok(vec![0.0; n])
}

fn norm_vec(ck: &Checkpoint, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = ck.tensor(name, "norm weight")?;
    t.expect_shape(&[len])?;
    t.to_f32_vec()
}

fn load_mlp<'a>(ck: &'a Checkpoint, p: &str, d: usize, f: usize) -> Result<Mlp<'a>> {
    Ok(Mlp {
        gate_proj: Linear::load(ck, &format!("{p}.gate_proj"), f, d, false)?,
        up_proj: Linear::load(ck, &format!("{p}.up_proj"), f, d, false)?,
        down_proj: Linear::load(ck, &format!("{p}.down_proj"), d, f, false)?,
    })
}

impl<'a> DeepseekModel<'a> {
    /// Map every weight of `config`'s model from `ck` (no weight is copied; MTP layers skipped).
    pub fn load(ck: &'a Checkpoint, config: DeepseekConfig) -> Result<Self> {
        let c = &config;
        let d = c.hidden_size;
        let h = c.num_attention_heads;
        let bias = c.attention_bias;
        let embed_tokens = Linear::load(ck, "model.embed_tokens", c.vocab_size, d, false)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let lin = |m: &str, n, k, b| Linear::load(ck, &format!("{p}.{m}"), n, k, b);
            let q = match c.q_lora_rank {
                None => QueryProj::Direct(lin("self_attn.q_proj", h * c.q_head_dim(), d, false)?),
                Some(r) => QueryProj::LowRank {
                    a: lin("self_attn.q_a_proj", r, d, bias)?,
                    norm: norm_vec(ck, &format!("{p}.self_attn.q_a_layernorm.weight"), r)?,
                    b: lin("self_attn.q_b_proj", h * c.q_head_dim(), r, false)?,
                },
            };
            let attn = MlaWeights {
                q,
                kv_a_proj: lin("self_attn.kv_a_proj_with_mqa", c.cache_width(), d, bias)?,
                kv_a_norm: norm_vec(
                    ck,
                    &format!("{p}.self_attn.kv_a_layernorm.weight"),
                    c.kv_lora_rank,
                )?,
                kv_b_proj: lin(
                    "self_attn.kv_b_proj",
                    h * (c.qk_nope_head_dim + c.v_head_dim),
                    c.kv_lora_rank,
                    false,
                )?,
                o_proj: lin("self_attn.o_proj", d, h * c.v_head_dim, bias)?,
            };
            let ffn = if c.is_moe_layer(l) {
                let e = c.n_routed_experts;
                let bias_name = format!("{p}.mlp.gate.e_score_correction_bias");
                let score_bias = match ck.get(&bias_name) {
                    Some(t) => {
                        t.expect_shape(&[e])?;
                        t.to_f32_vec()?
                    }
                    None => vec![0.0; e],
                };
                let experts = (0..e)
                    .map(|x| {
                        load_mlp(
                            ck,
                            &format!("{p}.mlp.experts.{x}"),
                            d,
                            c.moe_intermediate_size,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                let shared = if c.n_shared_experts > 0 {
                    let f = c
                        .moe_intermediate_size
                        .checked_mul(c.n_shared_experts)
                        .ok_or_else(|| EngineError::SizeOverflow("shared experts".into()))?;
                    Some(load_mlp(ck, &format!("{p}.mlp.shared_experts"), d, f)?)
                } else {
                    None
                };
                FeedForward::Moe(Box::new(Moe {
                    shape: router_shape(c),
                    router: lin("mlp.gate", e, d, false)?,
                    score_bias,
                    experts,
                    shared,
                }))
            } else {
                FeedForward::Dense(Box::new(load_mlp(
                    ck,
                    &format!("{p}.mlp"),
                    d,
                    c.intermediate_size,
                )?))
            };
            layers.push(DeepseekLayer {
                input_norm: norm_vec(ck, &format!("{p}.input_layernorm.weight"), d)?,
                attn,
                post_attention_norm: norm_vec(
                    ck,
                    &format!("{p}.post_attention_layernorm.weight"),
                    d,
                )?,
                ffn,
            });
        }
        let norm = norm_vec(ck, "model.norm.weight", d)?;
        let has_head = ck.contains("lm_head.weight") || ck.contains("lm_head.weight_blocks");
        let lm_head = if has_head || !c.tie_word_embeddings {
            Some(Linear::load(ck, "lm_head", c.vocab_size, d, false)?)
        } else {
            None
        };
        // MTP layers sit after the main ones; a checkpoint may carry them or have them stripped.
        let mtp_layers_skipped = (0..c.num_nextn_predict_layers)
            .filter(|i| {
                let p = format!("model.layers.{}", c.num_hidden_layers + i);
                ck.contains(&format!("{p}.eh_proj.weight"))
                    || ck.contains(&format!("{p}.input_layernorm.weight"))
            })
            .count();
        Ok(DeepseekModel {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            mtp_layers_skipped,
        })
    }

    /// The output projection (the embeddings when tied).
    pub fn output(&self) -> &Linear<'a> {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Bytes of weights one decoded token reads: attention, dense MLPs, the router, `top_k`
    /// experts of average size and the shared experts per MoE layer, the output projection and
    /// one embedding row.
    pub fn weight_bytes_per_token(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.attn.bytes()
                    + match &l.ffn {
                        FeedForward::Dense(m) => m.bytes(),
                        FeedForward::Moe(m) => m.bytes_per_token(),
                    }
            })
            .sum();
        let embed_row = self.embed_tokens.bytes() / self.embed_tokens.n.max(1);
        layers + self.output().bytes() + embed_row
    }

    fn mla_shape(&self) -> MlaShape {
        let c = &self.config;
        MlaShape {
            heads: c.num_attention_heads,
            nope: c.qk_nope_head_dim,
            rope: c.qk_rope_head_dim,
            v: c.v_head_dim,
            kv_lora: c.kv_lora_rank,
            softmax_scale: c.softmax_scale(),
        }
    }
}

fn router_shape(c: &DeepseekConfig) -> RouterShape {
    RouterShape {
        n_experts: c.n_routed_experts,
        n_group: c.n_group,
        topk_group: c.topk_group,
        top_k: c.num_experts_per_tok,
        norm_topk_prob: c.norm_topk_prob,
        routed_scaling_factor: c.routed_scaling_factor,
    }
}

/// Per-run state: the latent KV cache and every activation buffer, allocated once.
pub struct DeepseekSession<'m, 'a> {
    model: &'m DeepseekModel<'a>,
    mm: &'m Matmul,
    rope: MlaRope,
    shape: MlaShape,
    mode: MlaMode,
    ctx: usize,
    max_batch: usize,
    pos: usize,
    cache: Vec<f32>, // [layers, ctx, kv_lora + rope]
    x: Vec<f32>,     // [B, d]
    xb: Vec<f32>,    // [B, d]
    xb2: Vec<f32>,   // [B, d]
    att: Vec<f32>,   // [B, H * v]
    mla: MlaScratch,
    moe: Option<MoeScratch>,
    gate: Vec<f32>,   // [B, dense f]
    up: Vec<f32>,     // [B, dense f]
    logits: Vec<f32>, // [B, V]
}

impl<'m, 'a> DeepseekSession<'m, 'a> {
    /// A session able to hold `ctx` tokens, processing at most `max_batch` tokens per call.
    pub fn new(
        model: &'m DeepseekModel<'a>,
        mm: &'m Matmul,
        ctx: usize,
        max_batch: usize,
    ) -> Result<Self> {
        let c = &model.config;
        if ctx == 0 || max_batch == 0 {
            return Err(EngineError::InvalidArgument(
                "context and batch must be positive".into(),
            ));
        }
        let shape = model.mla_shape();
        let b = max_batch;
        let d = c.hidden_size;
        let cache_rows = c
            .num_hidden_layers
            .checked_mul(ctx)
            .ok_or_else(|| EngineError::SizeOverflow("KV cache".into()))?;
        let moe = if (0..c.num_hidden_layers).any(|l| c.is_moe_layer(l)) {
            let f = c
                .moe_intermediate_size
                .saturating_mul(c.n_shared_experts.max(1));
            Some(MoeScratch::new(b, d, f, &router_shape(c))?)
        } else {
            None
        };
        Ok(DeepseekSession {
            model,
            mm,
            rope: MlaRope::new(
                ctx,
                c.qk_rope_head_dim,
                c.rope_theta,
                c.yarn.as_ref(),
                c.rope_interleave,
            ),
            shape,
            mode: MlaMode::Auto,
            ctx,
            max_batch,
            pos: 0,
            cache: alloc(cache_rows, c.cache_width(), "KV cache")?,
            x: alloc(b, d, "activations")?,
            xb: alloc(b, d, "activations")?,
            xb2: alloc(b, d, "activations")?,
            att: alloc(b, c.num_attention_heads * c.v_head_dim, "activations")?,
            mla: MlaScratch::new(b, ctx, &shape, c.q_lora_rank.unwrap_or(0), mm.threads())?,
            moe,
            gate: alloc(b, c.intermediate_size, "activations")?,
            up: alloc(b, c.intermediate_size, "activations")?,
            logits: alloc(b, c.vocab_size, "logits")?,
        })
    }

    /// Choose how attention runs (default [`MlaMode::Auto`]); for tests and benchmarks.
    pub fn set_mla_mode(&mut self, mode: MlaMode) {
        self.mode = mode;
    }
    /// Tokens currently in the cache.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Capacity of the cache.
    pub fn context(&self) -> usize {
        self.ctx
    }
    /// Largest batch one `forward` call takes.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }
    /// Forget every cached token (the buffers stay allocated).
    pub fn reset(&mut self) {
        self.pos = 0;
    }
    /// Bytes held by the latent KV cache.
    pub fn kv_cache_bytes(&self) -> usize {
        self.cache.len() * 4
    }

    /// Run `tokens` (at most `max_batch`) at the next positions and return the requested logits:
    /// [V] for `Last`, [m, V] for `All`, empty for `None`.
    pub fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<&[f32]> {
        let model = self.model;
        let c = &model.config;
        let m = tokens.len();
        if m == 0 || m > self.max_batch {
            return Err(EngineError::InvalidArgument(format!(
                "forward takes 1..={} tokens, got {m}",
                self.max_batch
            )));
        }
        let pos0 = self.pos;
        if pos0 + m > self.ctx {
            return Err(EngineError::ContextFull {
                pos: pos0 + m,
                ctx: self.ctx,
            });
        }
        let d = c.hidden_size;
        let eps = c.rms_norm_eps;
        let hv = c.num_attention_heads * c.v_head_dim;
        let mm = self.mm;
        for (i, &t) in tokens.iter().enumerate() {
            if t as usize >= c.vocab_size {
                return Err(EngineError::TokenOutOfRange {
                    token: t,
                    vocab: c.vocab_size,
                });
            }
            model
                .embed_tokens
                .dequant_row(t as usize, &mut self.x[i * d..(i + 1) * d])?;
        }
        let layer_cache = self.ctx * c.cache_width();
        for (l, layer) in model.layers.iter().enumerate() {
            // ---- attention ----
            for i in 0..m {
                layers::rms_norm(
                    &mut self.xb[i * d..(i + 1) * d],
                    &self.x[i * d..(i + 1) * d],
                    &layer.input_norm,
                    eps,
                );
            }
            mla::attention(
                &layer.attn,
                &self.shape,
                &self.rope,
                mm,
                self.mode,
                &self.xb[..m * d],
                m,
                pos0,
                &mut self.cache[l * layer_cache..(l + 1) * layer_cache],
                &mut self.mla,
                &mut self.att[..m * hv],
            )?;
            mm.matmul(
                &layer.attn.o_proj,
                &self.att[..m * hv],
                m,
                &mut self.xb2[..m * d],
            )?;
            add_into(&mut self.x[..m * d], &self.xb2[..m * d]);

            // ---- feed-forward ----
            for i in 0..m {
                layers::rms_norm(
                    &mut self.xb[i * d..(i + 1) * d],
                    &self.x[i * d..(i + 1) * d],
                    &layer.post_attention_norm,
                    eps,
                );
            }
            match &layer.ffn {
                FeedForward::Dense(mlp) => mlp.forward(
                    mm,
                    &self.xb[..m * d],
                    m,
                    &mut self.gate,
                    &mut self.up,
                    &mut self.xb2[..m * d],
                )?,
                FeedForward::Moe(moe) => {
                    let s = self.moe.as_mut().ok_or_else(|| {
                        EngineError::InvalidArgument("MoE layer without MoE buffers".into())
                    })?;
                    moe.forward(mm, &self.xb[..m * d], m, d, s, &mut self.xb2[..m * d])?
                }
            }
            add_into(&mut self.x[..m * d], &self.xb2[..m * d]);
        }
        self.pos = pos0 + m;

        let rows = match want {
            Logits::None => return Ok(&[]),
            Logits::Last => m - 1..m,
            Logits::All => 0..m,
        };
        let r = rows.len();
        for (j, i) in rows.enumerate() {
            layers::rms_norm(
                &mut self.xb[j * d..(j + 1) * d],
                &self.x[i * d..(i + 1) * d],
                &model.norm,
                eps,
            );
        }
        let v = c.vocab_size;
        mm.matmul(
            model.output(),
            &self.xb[..r * d],
            r,
            &mut self.logits[..r * v],
        )?;
        Ok(&self.logits[..r * v])
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

impl crate::models::CausalSession for DeepseekSession<'_, '_> {
    fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<&[f32]> {
        DeepseekSession::forward(self, tokens, want)
    }
    fn position(&self) -> usize {
        self.pos
    }
    fn context(&self) -> usize {
        self.ctx
    }
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    fn reset(&mut self) {
        self.pos = 0;
    }
    fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }
    fn kv_cache_bytes(&self) -> usize {
        self.cache.len() * 4
    }
}
