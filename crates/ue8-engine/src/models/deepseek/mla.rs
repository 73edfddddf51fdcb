//! Multi-head latent attention (MLA). The KV cache keeps, per token and layer, only the normalised
//! compressed latent c (kv_lora_rank values) and the rotated rope key (qk_rope_head_dim values).
//!
//! Two equivalent ways to attend over it:
//! - absorbed (decode): kv_b_proj's key rows are folded into the query (q_lat = W_UK^T q_nope, one
//!   kv_lora_rank vector per head) and its value rows into the output (o = W_UV (sum_t p_t c_t)),
//!   so keys and values are never expanded; each kv_b_proj row is read once per call;
//! - expanded (prefill from an empty cache): k_nope and v for every cached token come from one
//!   kv_b_proj matmul, then ordinary attention.

use crate::error::{EngineError, Result};
use crate::layers::{self, dot};
use crate::matmul::Matmul;
use crate::weights::Linear;
use crate::yarn::MlaRope;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// eps of `q_a_layernorm` and `kv_a_layernorm`: transformers and DeepSeek's reference code build
/// them with the RMSNorm default 1e-6, not the config's `rms_norm_eps`.
pub const LATENT_NORM_EPS: f32 = 1e-6;

/// How queries are produced.
pub enum QueryProj<'a> {
    /// `q_proj` [H * qk_head_dim, d] (q_lora_rank null).
    Direct(Linear<'a>),
    /// `q_a_proj` [q_lora, d] -> RMS norm `q_a_layernorm` -> `q_b_proj` [H * qk_head_dim, q_lora].
    LowRank {
        a: Linear<'a>,
        norm: Vec<f32>,
        b: Linear<'a>,
    },
}

/// One layer's attention weights.
pub struct MlaWeights<'a> {
    pub q: QueryProj<'a>,
    /// `kv_a_proj_with_mqa` [kv_lora + rope, d].
    pub kv_a_proj: Linear<'a>,
    /// `kv_a_layernorm` [kv_lora].
    pub kv_a_norm: Vec<f32>,
    /// `kv_b_proj` [H * (nope + v), kv_lora]: per head, `nope` key rows then `v` value rows.
    pub kv_b_proj: Linear<'a>,
    /// `o_proj` [d, H * v].
    pub o_proj: Linear<'a>,
}

impl MlaWeights<'_> {
    /// Bytes one token reads through this block.
    pub fn bytes(&self) -> usize {
        let q = match &self.q {
            QueryProj::Direct(l) => l.bytes(),
            QueryProj::LowRank { a, b, .. } => a.bytes() + b.bytes(),
        };
        q + self.kv_a_proj.bytes() + self.kv_b_proj.bytes() + self.o_proj.bytes()
    }
}

/// Head geometry of MLA.
#[derive(Clone, Copy, Debug)]
pub struct MlaShape {
    pub heads: usize,
    pub nope: usize,
    pub rope: usize,
    pub v: usize,
    pub kv_lora: usize,
    pub softmax_scale: f32,
}

impl MlaShape {
    fn qhd(&self) -> usize {
        self.nope + self.rope
    }
    /// Values per token in the cache.
    pub fn cache_width(&self) -> usize {
        self.kv_lora + self.rope
    }
    fn kvb_width(&self) -> usize {
        self.nope + self.v
    }
}

/// Which form attends over the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MlaMode {
    /// Expanded for a batch that starts at position 0 (prefill), absorbed otherwise.
    Auto,
    /// Always the weight-absorbed form.
    Absorbed,
    /// Expanded whenever the batch starts at position 0, else absorbed (the cache holds no K/V).
    Expanded,
}

/// Buffers of one attention call, sized for a batch of `b` tokens and a context of `ctx`.
pub struct MlaScratch {
    q: Vec<f32>,      // [b, H * qhd]
    qa: Vec<f32>,     // [b, q_lora]
    kva: Vec<f32>,    // [b, kv_lora + rope]
    o_lat: Vec<f32>,  // [b, H, kv_lora] (expanded form: the batch's latents)
    scores: Vec<f32>, // [ctx]
    kvb: Vec<f32>,    // [b, H * (nope + v)] expanded keys/values
    /// Per pool thread: [b, kv_lora] q_lat + [b, kv_lora] o_lat + [kv_lora] row + [ctx] scores.
    thread_scratch: Vec<Mutex<Vec<f32>>>,
    /// Absorbed output written by the pool's threads (f32 bits; each element by one thread).
    att_shared: Vec<AtomicU32>, // [b, H * v]
}

impl MlaScratch {
    pub fn new(b: usize, ctx: usize, s: &MlaShape, q_lora: usize, threads: usize) -> Result<Self> {
        let z = |n: usize, w: usize| super::alloc(n, w, "attention buffers");
        let hl = s
            .heads
            .checked_mul(s.kv_lora)
            .ok_or_else(|| EngineError::SizeOverflow("attention buffers".into()))?;
        Ok(MlaScratch {
            q: z(b, s.heads * s.qhd())?,
            qa: z(b, q_lora)?,
            kva: z(b, s.cache_width())?,
            o_lat: z(b, hl)?,
            scores: z(1, ctx)?,
            kvb: z(b, s.heads * s.kvb_width())?,
            thread_scratch: (0..threads.max(1))
                .map(|_| {
                    let per = b
                        .checked_mul(2 * s.kv_lora)
                        .and_then(|x| x.checked_add(s.kv_lora + ctx))
                        .ok_or_else(|| EngineError::SizeOverflow("attention buffers".into()))?;
                    Ok(Mutex::new(vec![0.0; per]))
                })
                .collect::<Result<Vec<_>>>()?,
            att_shared: (0..b.saturating_mul(s.heads * s.v))
                .map(|_| AtomicU32::new(0))
                .collect(),
        })
    }
}

/// Attention for `m` tokens at positions pos0.. : reads `xb` [m, d] (normed input), appends the
/// tokens' latents to `cache` [ctx, cache_width] (this layer's slice) and writes `att` [m, H * v].
#[allow(clippy::too_many_arguments)]
pub fn attention(
    w: &MlaWeights,
    sh: &MlaShape,
    rope: &MlaRope,
    mm: &Matmul,
    mode: MlaMode,
    xb: &[f32],
    m: usize,
    pos0: usize,
    cache: &mut [f32],
    s: &mut MlaScratch,
    att: &mut [f32],
) -> Result<()> {
    let (h, qhd, cw, kl) = (sh.heads, sh.qhd(), sh.cache_width(), sh.kv_lora);
    let hq = h * qhd;
    // q[m, H * qhd]
    match &w.q {
        QueryProj::Direct(l) => mm.matmul(l, xb, m, &mut s.q[..m * hq])?,
        QueryProj::LowRank { a, norm, b } => {
            let r = a.n;
            mm.matmul(a, xb, m, &mut s.qa[..m * r])?;
            for row in s.qa[..m * r].chunks_exact_mut(r) {
                layers::rms_norm_in_place(row, norm, LATENT_NORM_EPS);
            }
            mm.matmul(b, &s.qa[..m * r], m, &mut s.q[..m * hq])?;
        }
    }
    // [c | k_rot] per token: normalise c, rotate k_rot, append to the cache
    mm.matmul(&w.kv_a_proj, xb, m, &mut s.kva[..m * cw])?;
    for i in 0..m {
        let t = &mut s.kva[i * cw..(i + 1) * cw];
        let (c, k_rot) = t.split_at_mut(kl);
        layers::rms_norm_in_place(c, &w.kv_a_norm, LATENT_NORM_EPS);
        rope.apply(k_rot, pos0 + i);
        let off = (pos0 + i) * cw;
        cache[off..off + cw].copy_from_slice(t);
        let q = &mut s.q[i * hq..(i + 1) * hq];
        for head in q.chunks_exact_mut(qhd) {
            rope.apply(&mut head[sh.nope..], pos0 + i);
        }
    }
    let expanded = match mode {
        MlaMode::Absorbed => false,
        MlaMode::Auto | MlaMode::Expanded => pos0 == 0,
    };
    if expanded {
        attend_expanded(w, sh, mm, m, cache, s, att)
    } else {
        attend_absorbed(w, sh, mm, m, pos0, cache, s, att)
    }
}

/// Expanded form (the batch holds every cached token, positions 0..m).
fn attend_expanded(
    w: &MlaWeights,
    sh: &MlaShape,
    mm: &Matmul,
    m: usize,
    cache: &[f32],
    s: &mut MlaScratch,
    att: &mut [f32],
) -> Result<()> {
    let (h, qhd, cw, kl, bw) = (
        sh.heads,
        sh.qhd(),
        sh.cache_width(),
        sh.kv_lora,
        sh.kvb_width(),
    );
    // latents of positions 0..m, contiguous in s.o_lat as [m, kv_lora]
    let lat = &mut s.o_lat[..m * kl];
    for t in 0..m {
        lat[t * kl..(t + 1) * kl].copy_from_slice(&cache[t * cw..t * cw + kl]);
    }
    mm.matmul(
        &w.kv_b_proj,
        &s.o_lat[..m * kl],
        m,
        &mut s.kvb[..m * h * bw],
    )?;
    for i in 0..m {
        for hd in 0..h {
            let q = &s.q[i * h * qhd + hd * qhd..i * h * qhd + (hd + 1) * qhd];
            let (q_nope, q_rot) = q.split_at(sh.nope);
            let scores = &mut s.scores[..=i];
            for (t, sc) in scores.iter_mut().enumerate() {
                let kv = &s.kvb[t * h * bw + hd * bw..t * h * bw + (hd + 1) * bw];
                let k_rot = &cache[t * cw + kl..(t + 1) * cw];
                *sc = (dot(q_nope, &kv[..sh.nope]) + dot(q_rot, k_rot)) * sh.softmax_scale;
            }
            layers::softmax(scores);
            let out = &mut att[i * h * sh.v + hd * sh.v..i * h * sh.v + (hd + 1) * sh.v];
            out.fill(0.0);
            for (t, &p) in scores.iter().enumerate() {
                let v = &s.kvb[t * h * bw + hd * bw + sh.nope..t * h * bw + (hd + 1) * bw];
                crate::kernels::axpy_f32(out, p, v);
            }
        }
    }
    Ok(())
}

/// Weight-absorbed form over the cache positions 0..pos0+i for token i; heads are shared out over
/// the pool's threads (each head reads its own kv_b_proj rows once for the whole batch).
#[allow(clippy::too_many_arguments)]
fn attend_absorbed(
    w: &MlaWeights,
    sh: &MlaShape,
    mm: &Matmul,
    m: usize,
    pos0: usize,
    cache: &[f32],
    s: &mut MlaScratch,
    att: &mut [f32],
) -> Result<()> {
    let hv = sh.heads * sh.v;
    let (q, scratch, shared) = (&s.q, &s.thread_scratch, &s.att_shared);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    mm.pool().run(&|t| {
        let Some(slot) = scratch.get(t) else { return };
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let hd = next.fetch_add(1, Ordering::Relaxed);
            if hd >= sh.heads {
                break;
            }
            if let Err(e) = absorbed_head(w, sh, hd, m, pos0, q, cache, &mut guard, shared) {
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    // pool.run returns after every thread finished: all stores are visible here
    for (a, x) in att[..m * hv].iter_mut().zip(shared) {
        *a = f32::from_bits(x.load(Ordering::Relaxed));
    }
    Ok(())
}

/// One head of the absorbed form for the whole batch; `buf` is this thread's scratch.
#[allow(clippy::too_many_arguments)]
fn absorbed_head(
    w: &MlaWeights,
    sh: &MlaShape,
    hd: usize,
    m: usize,
    pos0: usize,
    q: &[f32],
    cache: &[f32],
    buf: &mut [f32],
    out: &[AtomicU32],
) -> Result<()> {
    let (h, qhd, cw, kl, bw) = (
        sh.heads,
        sh.qhd(),
        sh.cache_width(),
        sh.kv_lora,
        sh.kvb_width(),
    );
    let kvb = &w.kv_b_proj;
    let short = || EngineError::InvalidArgument("MLA thread scratch too small".into());
    let (q_lat, rest) = buf.split_at_mut(m * kl);
    let (o_lat, rest) = rest.split_at_mut(m * kl);
    let (row, rest) = rest.split_at_mut(kl);
    let scores_all = rest;
    if scores_all.len() < pos0 + m {
        return Err(short());
    }
    // q_lat[i] = sum_j q_nope[i, j] * W[hd * bw + j, :]: each key row read once
    q_lat.fill(0.0);
    for j in 0..sh.nope {
        kvb.dequant_row(hd * bw + j, row)?;
        for i in 0..m {
            let qn = q[i * h * qhd + hd * qhd + j];
            crate::kernels::axpy_f32(&mut q_lat[i * kl..(i + 1) * kl], qn, row);
        }
    }
    // scores over latents + rope keys, then the probability-weighted latent
    for i in 0..m {
        let n = pos0 + i + 1;
        let ql = &q_lat[i * kl..(i + 1) * kl];
        let q_rot = &q[i * h * qhd + hd * qhd + sh.nope..i * h * qhd + (hd + 1) * qhd];
        let scores = &mut scores_all[..n];
        for (t, sc) in scores.iter_mut().enumerate() {
            let c = &cache[t * cw..t * cw + kl];
            let k_rot = &cache[t * cw + kl..(t + 1) * cw];
            *sc = (dot(ql, c) + dot(q_rot, k_rot)) * sh.softmax_scale;
        }
        layers::softmax(scores);
        let o = &mut o_lat[i * kl..(i + 1) * kl];
        o.fill(0.0);
        for (t, &p) in scores.iter().enumerate() {
            crate::kernels::axpy_f32(o, p, &cache[t * cw..t * cw + kl]);
        }
    }
    // att[i, hd * v + r] = W[hd * bw + nope + r, :] . o_lat[i]: each value row read once
    for r in 0..sh.v {
        kvb.dequant_row(hd * bw + sh.nope + r, row)?;
        for i in 0..m {
            let v = dot(row, &o_lat[i * kl..(i + 1) * kl]);
            out[i * h * sh.v + hd * sh.v + r].store(v.to_bits(), Ordering::Relaxed);
        }
    }
    Ok(())
}
