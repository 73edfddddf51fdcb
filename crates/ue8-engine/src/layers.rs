//! Shared transformer layers, in f32: RMS norm, rotary embeddings (incl. Llama-3 scaling), softmax,
//! SwiGLU and causal grouped-query attention over an f32 KV cache. Model files compose these.

use crate::config::Llama3RopeScaling;

/// out = x / sqrt(mean(x^2) + eps) * w, over one row. The mean is accumulated in f64 so that long
/// rows do not lose precision (cost is negligible next to the matmuls).
pub fn rms_norm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let inv = 1.0 / ((ss / x.len().max(1) as f64) as f32 + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

/// In-place variant of [`rms_norm`] (Qwen3's per-head q/k norms).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let inv = 1.0 / ((ss / x.len().max(1) as f64) as f32 + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = *v * inv * g;
    }
}

/// Precomputed cos/sin of every position for the rotate-half (Hugging Face) rope convention.
pub struct RopeTable {
    half: usize,
    cos: Vec<f32>, // [positions, head_dim/2]
    sin: Vec<f32>, // [positions, head_dim/2]
}

/// Rope inverse frequencies, with Llama-3.1's rescaling when configured (as transformers computes).
pub fn rope_inv_freq(head_dim: usize, theta: f32, scaling: Option<Llama3RopeScaling>) -> Vec<f64> {
    let half = head_dim / 2;
    let mut inv: Vec<f64> = (0..half)
        .map(|j| 1.0 / (theta as f64).powf((2 * j) as f64 / head_dim as f64))
        .collect();
    if let Some(s) = scaling {
        let old = s.original_max_position_embeddings as f64;
        let (lf, hf, factor) = (
            s.low_freq_factor as f64,
            s.high_freq_factor as f64,
            s.factor as f64,
        );
        let low_wavelen = old / lf;
        let high_wavelen = old / hf;
        for f in inv.iter_mut() {
            let wavelen = 2.0 * std::f64::consts::PI / *f;
            if wavelen > low_wavelen {
                *f /= factor;
            } else if wavelen >= high_wavelen {
                let smooth = (old / wavelen - lf) / (hf - lf);
                *f = (1.0 - smooth) * *f / factor + smooth * *f;
            }
        }
    }
    inv
}

impl RopeTable {
    pub fn new(
        positions: usize,
        head_dim: usize,
        theta: f32,
        scaling: Option<Llama3RopeScaling>,
    ) -> Self {
        let half = head_dim / 2;
        let inv = rope_inv_freq(head_dim, theta, scaling);
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        RopeTable { half, cos, sin }
    }

    /// Rotate every head of `x` ([heads, head_dim], one token) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let h = self.half;
        let (Some(cos), Some(sin)) = (
            self.cos.get(pos * h..(pos + 1) * h),
            self.sin.get(pos * h..(pos + 1) * h),
        ) else {
            return; // callers check positions against the context first
        };
        for head in x.chunks_exact_mut(2 * h) {
            let (a, b) = head.split_at_mut(h);
            for j in 0..h {
                let (x1, x2) = (a[j], b[j]);
                a[j] = x1 * cos[j] - x2 * sin[j];
                b[j] = x2 * cos[j] + x1 * sin[j];
            }
        }
    }
}

/// Numerically stable in-place softmax (runtime-dispatched, [`crate::kernels::softmax_f32`]).
pub fn softmax(x: &mut [f32]) {
    crate::kernels::softmax_f32(x)
}

/// gate = silu(gate) * up, elementwise (the SwiGLU of Llama's MLP).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Geometry of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Attend to at most this many most recent positions (the query's own included).
    pub window: Option<usize>,
}

/// Causal attention of one query head at position `pos` over the cache of one layer.
/// `q`: [head_dim]; `k_cache`, `v_cache`: [positions, n_kv_heads * head_dim]; `scores`: >= pos+1
/// scratch; `out`: [head_dim].
#[allow(clippy::too_many_arguments)]
pub fn attend_one_head(
    shape: AttentionShape,
    head: usize,
    pos: usize,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = shape.head_dim;
    let kv_dim = shape.n_kv_heads * hd;
    let group = shape.n_heads / shape.n_kv_heads;
    let kvh = head / group;
    let start = match shape.window {
        Some(w) => (pos + 1).saturating_sub(w),
        None => 0,
    };
    let n = pos + 1 - start;
    let scale = 1.0 / (hd as f32).sqrt();
    let scores = &mut scores[..n];
    for (t, s) in scores.iter_mut().enumerate() {
        let off = (start + t) * kv_dim + kvh * hd;
        let k = &k_cache[off..off + hd];
        *s = dot(q, k) * scale;
    }
    softmax(scores);
    out.fill(0.0);
    for (t, &p) in scores.iter().enumerate() {
        let off = (start + t) * kv_dim + kvh * hd;
        crate::kernels::axpy_f32(out, p, &v_cache[off..off + hd]);
    }
}

/// f32 dot product (runtime-dispatched, [`crate::kernels::dot_f32`]).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::kernels::dot_f32(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_constant_row_is_weight() {
        let x = [3.0f32; 5];
        let w = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut out = [0.0; 5];
        rms_norm(&mut out, &x, &w, 0.0);
        assert_eq!(out, w);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm() {
        let t = RopeTable::new(4, 8, 10000.0, None);
        let orig: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let mut x = orig.clone();
        t.apply(&mut x, 0);
        assert_eq!(x, orig);
        t.apply(&mut x, 3);
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        // rotation preserves the norm up to f32 rounding of cos/sin (a few ulps of the sum)
        assert!((n0 - n1).abs() <= n0 * 1e-6, "{n0} vs {n1}");
        assert_ne!(x, orig);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x = [1.0f32, 2.0, 3.0, -1000.0];
        softmax(&mut x);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert_eq!(x[3], 0.0);
    }

    #[test]
    fn window_limits_attention_to_recent_positions() {
        // two positions, value 1 at t=0 and 5 at t=1; window 1 -> only the last is seen
        let shape = AttentionShape {
            n_heads: 1,
            n_kv_heads: 1,
            head_dim: 2,
            window: Some(1),
        };
        let k = [1.0, 0.0, 1.0, 0.0];
        let v = [1.0, 1.0, 5.0, 5.0];
        let mut scores = [0.0; 2];
        let mut out = [0.0; 2];
        attend_one_head(shape, 0, 1, &[1.0, 0.0], &k, &v, &mut scores, &mut out);
        assert_eq!(out, [5.0, 5.0]);
        let full = AttentionShape {
            window: None,
            ..shape
        };
        attend_one_head(full, 0, 1, &[1.0, 0.0], &k, &v, &mut scores, &mut out);
        assert_eq!(out, [3.0, 3.0]);
    }
}
