//! The Llama family forward pass (Llama 2/3, SmolLM2, Qwen2, Qwen3, Mistral), f32 activations, f32
//! KV cache. Reads top to bottom like the paper; shapes in comments: m = tokens in the batch,
//! d = hidden, hq = heads * head_dim, hkv = kv heads * head_dim, f = intermediate, V = vocab.

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::layers::{self, AttentionShape, RopeTable};
use crate::matmul::Matmul;
use crate::profile::{Op, Profile};
use crate::weights::Linear;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Weights of one decoder layer.
pub struct Layer<'a> {
    pub input_norm: Vec<f32>,          // [d]
    pub q_proj: Linear<'a>,            // [hq, d]
    pub k_proj: Linear<'a>,            // [hkv, d]
    pub v_proj: Linear<'a>,            // [hkv, d]
    pub o_proj: Linear<'a>,            // [d, hq]
    pub q_norm: Option<Vec<f32>>,      // [head_dim] (Qwen3)
    pub k_norm: Option<Vec<f32>>,      // [head_dim] (Qwen3)
    pub post_attention_norm: Vec<f32>, // [d]
    pub gate_proj: Linear<'a>,         // [f, d]
    pub up_proj: Linear<'a>,           // [f, d]
    pub down_proj: Linear<'a>,         // [d, f]
}

/// A loaded model: configuration plus weights borrowed from the checkpoint's mmap.
pub struct LlamaModel<'a> {
    pub config: ModelConfig,
    pub embed_tokens: Linear<'a>, // [V, d], read one row per token
    pub layers: Vec<Layer<'a>>,
    pub norm: Vec<f32>, // [d]
    /// `None` when the embeddings are tied (the output projection is `embed_tokens`).
    pub lm_head: Option<Linear<'a>>,
}

fn norm_vec(ck: &Checkpoint, name: &str, len: usize) -> Result<Vec<f32>> {
    let t = ck.tensor(name, "norm weight")?;
    t.expect_shape(&[len])?;
    t.to_f32_vec()
}

impl<'a> LlamaModel<'a> {
    /// Map every weight of `config`'s model from `ck` (no weight is copied).
    pub fn load(ck: &'a Checkpoint, config: ModelConfig) -> Result<Self> {
        let c = &config;
        let (d, f, hq, hkv) = (c.hidden_size, c.intermediate_size, c.q_dim(), c.kv_dim());
        let embed_tokens = Linear::load(ck, "model.embed_tokens", c.vocab_size, d, false)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let lin = |m: &str, n, k, bias| Linear::load(ck, &format!("{p}.{m}"), n, k, bias);
            let qk_norm = |m: &str| -> Result<Option<Vec<f32>>> {
                if c.qk_norm {
                    Ok(Some(norm_vec(
                        ck,
                        &format!("{p}.self_attn.{m}.weight"),
                        c.head_dim,
                    )?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                input_norm: norm_vec(ck, &format!("{p}.input_layernorm.weight"), d)?,
                q_proj: lin("self_attn.q_proj", hq, d, c.qkv_bias)?,
                k_proj: lin("self_attn.k_proj", hkv, d, c.qkv_bias)?,
                v_proj: lin("self_attn.v_proj", hkv, d, c.qkv_bias)?,
                o_proj: lin("self_attn.o_proj", d, hq, c.o_bias)?,
                q_norm: qk_norm("q_norm")?,
                k_norm: qk_norm("k_norm")?,
                post_attention_norm: norm_vec(
                    ck,
                    &format!("{p}.post_attention_layernorm.weight"),
                    d,
                )?,
                gate_proj: lin("mlp.gate_proj", f, d, false)?,
                up_proj: lin("mlp.up_proj", f, d, false)?,
                down_proj: lin("mlp.down_proj", d, f, false)?,
            });
        }
        let norm = norm_vec(ck, "model.norm.weight", d)?;
        // A checkpoint may carry lm_head even when the config says tied (ue8 --quantize-lm-head
        // rewrites the flag, others may not): a stored lm_head always wins.
        let has_head = ck.contains("lm_head.weight") || ck.contains("lm_head.weight_blocks");
        let lm_head = if has_head || !c.tie_word_embeddings {
            Some(Linear::load(ck, "lm_head", c.vocab_size, d, false)?)
        } else {
            None
        };
        Ok(LlamaModel {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// The output projection (the embeddings when tied).
    pub fn output(&self) -> &Linear<'a> {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Bytes of weights one decoded token reads: every layer, the final norm and the output
    /// projection, plus one embedding row.
    pub fn weight_bytes_per_token(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [
                    &l.q_proj,
                    &l.k_proj,
                    &l.v_proj,
                    &l.o_proj,
                    &l.gate_proj,
                    &l.up_proj,
                    &l.down_proj,
                ]
                .iter()
                .map(|x| x.bytes())
                .sum::<usize>()
            })
            .sum();
        let embed_row = self.embed_tokens.bytes() / self.embed_tokens.n.max(1);
        layers + self.output().bytes() + embed_row
    }
}

/// Which logits a forward call should produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (prefill whose output nobody reads).
    None,
    /// Only for the last token of the batch.
    Last,
    /// For every token of the batch ([m, V]), as perplexity needs.
    All,
}

/// Per-run state: the f32 KV cache and every activation buffer, allocated once.
pub struct Session<'m, 'a> {
    model: &'m LlamaModel<'a>,
    mm: &'m Matmul,
    rope: RopeTable,
    ctx: usize,
    max_batch: usize,
    /// Tokens already in the cache.
    pos: usize,
    k_cache: Vec<f32>, // [layers, ctx, hkv]
    v_cache: Vec<f32>, // [layers, ctx, hkv]
    x: Vec<f32>,       // [B, d] residual stream
    xb: Vec<f32>,      // [B, d]
    xb2: Vec<f32>,     // [B, d]
    q: Vec<f32>,       // [B, hq]
    k: Vec<f32>,       // [B, hkv]
    v: Vec<f32>,       // [B, hkv]
    att: Vec<f32>,     // [B, hq]
    gate: Vec<f32>,    // [B, f]
    up: Vec<f32>,      // [B, f]
    /// Per-thread attention scratch: scores [ctx] then one head's output [head_dim].
    thread_scratch: Vec<Mutex<Vec<f32>>>,
    /// Attention output written by the pool's threads (f32 bits; each element by one thread).
    att_shared: Vec<AtomicU32>, // [B, hq]
    logits: Vec<f32>, // [B, V]
    /// Per-op timing, recording only under `UE8_PROFILE=1`.
    profile: Profile,
}

fn alloc(a: usize, b: usize, what: &str) -> Result<Vec<f32>> {
    let n = a
        .checked_mul(b)
        .ok_or_else(|| EngineError::SizeOverflow(what.to_string()))?;
    Ok(vec![0.0; n])
}

impl<'m, 'a> Session<'m, 'a> {
    /// A session able to hold `ctx` tokens, processing at most `max_batch` tokens per call.
    pub fn new(
        model: &'m LlamaModel<'a>,
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
        let cache = c
            .num_hidden_layers
            .checked_mul(ctx)
            .ok_or_else(|| EngineError::SizeOverflow("KV cache".into()))?;
        let b = max_batch;
        Ok(Session {
            model,
            mm,
            rope: RopeTable::new(ctx, c.head_dim, c.rope_theta, c.rope_scaling),
            ctx,
            max_batch,
            pos: 0,
            k_cache: alloc(cache, c.kv_dim(), "KV cache")?,
            v_cache: alloc(cache, c.kv_dim(), "KV cache")?,
            x: alloc(b, c.hidden_size, "activations")?,
            xb: alloc(b, c.hidden_size, "activations")?,
            xb2: alloc(b, c.hidden_size, "activations")?,
            q: alloc(b, c.q_dim(), "activations")?,
            k: alloc(b, c.kv_dim(), "activations")?,
            v: alloc(b, c.kv_dim(), "activations")?,
            att: alloc(b, c.q_dim(), "activations")?,
            gate: alloc(b, c.intermediate_size, "activations")?,
            up: alloc(b, c.intermediate_size, "activations")?,
            thread_scratch: (0..mm.threads())
                .map(|_| alloc(1, ctx + c.head_dim, "attention scores").map(Mutex::new))
                .collect::<Result<_>>()?,
            att_shared: (0..b * c.q_dim()).map(|_| AtomicU32::new(0)).collect(),
            logits: alloc(b, c.vocab_size, "logits")?,
            profile: Profile::default(),
        })
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
    /// Vocabulary size (width of a logits row).
    pub fn vocab_size(&self) -> usize {
        self.model.config.vocab_size
    }
    /// The model this session runs.
    pub fn model(&self) -> &'m LlamaModel<'a> {
        self.model
    }
    /// Bytes held by the KV cache.
    pub fn kv_cache_bytes(&self) -> usize {
        (self.k_cache.len() + self.v_cache.len()) * 4
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
        let (d, hq, hkv, f) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let hd = c.head_dim;
        let eps = c.rms_norm_eps;
        let mm = self.mm;
        self.profile.count_call(m);
        let t = self.profile.start();

        // x[m, d] = embed_tokens[tokens]
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

        self.profile.stop(Op::Embed, m, t);
        let shape = AttentionShape {
            n_heads: c.num_attention_heads,
            n_kv_heads: c.num_key_value_heads,
            head_dim: hd,
            window: c.sliding_window,
        };
        let layer_cache = self.ctx * hkv;
        for (l, layer) in model.layers.iter().enumerate() {
            // ---- attention block ----
            // xb[m, d] = rms_norm(x) * input_norm
            let t = self.profile.start();
            for i in 0..m {
                layers::rms_norm(
                    &mut self.xb[i * d..(i + 1) * d],
                    &self.x[i * d..(i + 1) * d],
                    &layer.input_norm,
                    eps,
                );
            }
            self.profile.stop(Op::Norm, m, t);
            let t = self.profile.start();
            let xb = &self.xb[..m * d];
            // One pool dispatch for the three (bit-identical to three matmuls).
            mm.matmul_group([
                (&layer.q_proj, xb, m, &mut self.q[..m * hq]), // [m, hq]
                (&layer.k_proj, xb, m, &mut self.k[..m * hkv]), // [m, hkv]
                (&layer.v_proj, xb, m, &mut self.v[..m * hkv]), // [m, hkv]
            ])?;
            self.profile.stop(Op::QkvProj, m, t);
            let t = self.profile.start();
            for i in 0..m {
                let q = &mut self.q[i * hq..(i + 1) * hq]; // [heads, hd]
                let k = &mut self.k[i * hkv..(i + 1) * hkv]; // [kv heads, hd]
                if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                    q.chunks_exact_mut(hd)
                        .for_each(|h| layers::rms_norm_in_place(h, qn, eps));
                    k.chunks_exact_mut(hd)
                        .for_each(|h| layers::rms_norm_in_place(h, kn, eps));
                }
                self.rope.apply(q, pos0 + i);
                self.rope.apply(k, pos0 + i);
                // cache[l, pos0 + i] = k, v
                let off = l * layer_cache + (pos0 + i) * hkv;
                self.k_cache[off..off + hkv].copy_from_slice(k);
                self.v_cache[off..off + hkv].copy_from_slice(&self.v[i * hkv..(i + 1) * hkv]);
            }
            self.profile.stop(Op::RopeCache, m, t);
            let t = self.profile.start();
            // att[m, hq]: each (token, head) attends to the cache up to the token's own position;
            // the pairs are shared out over the pool's threads.
            let kc = &self.k_cache[l * layer_cache..(l + 1) * layer_cache];
            let vc = &self.v_cache[l * layer_cache..(l + 1) * layer_cache];
            let nh = c.num_attention_heads;
            let ctx = self.ctx;
            let (q, shared, scratch) = (&self.q, &self.att_shared, &self.thread_scratch);
            let next = AtomicUsize::new(0);
            mm.pool().run(&|t| {
                let Some(slot) = scratch.get(t) else { return };
                let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
                let (scores, out) = guard.split_at_mut(ctx);
                loop {
                    let item = next.fetch_add(1, Ordering::Relaxed);
                    if item >= m * nh {
                        break;
                    }
                    let (i, h) = (item / nh, item % nh);
                    let off = i * hq + h * hd;
                    layers::attend_one_head(
                        shape,
                        h,
                        pos0 + i,
                        &q[off..off + hd],
                        kc,
                        vc,
                        scores,
                        out,
                    );
                    for (dst, v) in shared[off..off + hd].iter().zip(out.iter()) {
                        dst.store(v.to_bits(), Ordering::Relaxed);
                    }
                }
            });
            // pool.run returns after every thread finished: all stores are visible here
            for (a, s) in self.att[..m * hq].iter_mut().zip(&self.att_shared) {
                *a = f32::from_bits(s.load(Ordering::Relaxed));
            }
            self.profile.stop(Op::Attention, m, t);
            let t = self.profile.start();
            // x += att Wo^T
            mm.matmul(
                &layer.o_proj,
                &self.att[..m * hq],
                m,
                &mut self.xb2[..m * d],
            )?;
            self.profile.stop(Op::OProj, m, t);
            let t = self.profile.start();
            add_into(&mut self.x[..m * d], &self.xb2[..m * d]);

            // ---- MLP block ----
            for i in 0..m {
                layers::rms_norm(
                    &mut self.xb[i * d..(i + 1) * d],
                    &self.x[i * d..(i + 1) * d],
                    &layer.post_attention_norm,
                    eps,
                );
            }
            self.profile.stop(Op::Norm, m, t);
            let t = self.profile.start();
            let xb = &self.xb[..m * d];
            mm.matmul_group([
                (&layer.gate_proj, xb, m, &mut self.gate[..m * f]), // [m, f]
                (&layer.up_proj, xb, m, &mut self.up[..m * f]),     // [m, f]
            ])?;
            self.profile.stop(Op::GateUpProj, m, t);
            let t = self.profile.start();
            layers::swiglu(&mut self.gate[..m * f], &self.up[..m * f]);
            self.profile.stop(Op::Swiglu, m, t);
            let t = self.profile.start();
            mm.matmul(
                &layer.down_proj,
                &self.gate[..m * f],
                m,
                &mut self.xb2[..m * d],
            )?; // [m, d]
            self.profile.stop(Op::DownProj, m, t);
            let t = self.profile.start();
            add_into(&mut self.x[..m * d], &self.xb2[..m * d]);
            self.profile.stop(Op::Residual, m, t);
        }
        self.pos = pos0 + m;

        // logits = rms_norm(x) * norm, then the output projection, for the rows asked for
        let rows = match want {
            Logits::None => return Ok(&[]),
            Logits::Last => m - 1..m,
            Logits::All => 0..m,
        };
        let t = self.profile.start();
        let r = rows.len();
        for (j, i) in rows.clone().enumerate() {
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
        self.profile.stop(Op::LmHead, m, t);
        Ok(&self.logits[..r * v])
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
