//! Rotary embeddings for DeepSeek's MLA: YaRN frequency interpolation (with its attention-scale
//! correction) as transformers' `_compute_yarn_parameters` computes it, and both stored layouts of
//! the rope dimensions (rotate-half, or interleaved pairs when `rope_interleave` is set).

use crate::config_deepseek::YarnScaling;

/// YaRN's magnitude correction `0.1 * mscale * ln(scale) + 1` (1 when scale <= 1).
pub fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

/// Dimension index at which a frequency completes `num_rotations` turns over `max_pos` positions.
fn correction_dim(num_rotations: f64, dim: usize, base: f64, max_pos: f64) -> f64 {
    (dim as f64 * (max_pos / (num_rotations * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * base.ln())
}

/// Inverse frequencies [dim/2] and the factor cos/sin are multiplied by (transformers'
/// `attention_factor`, 1 without YaRN).
pub fn rope_parameters(dim: usize, base: f64, yarn: Option<&YarnScaling>) -> (Vec<f64>, f64) {
    let half = dim / 2;
    let pos_freqs: Vec<f64> = (0..half)
        .map(|j| base.powf((2 * j) as f64 / dim as f64))
        .collect();
    let Some(y) = yarn else {
        return (pos_freqs.iter().map(|p| 1.0 / p).collect(), 1.0);
    };
    let attention_factor = match (y.attention_factor, y.mscale, y.mscale_all_dim) {
        (Some(a), _, _) => a,
        (None, Some(m), Some(all)) => yarn_mscale(y.factor, m) / yarn_mscale(y.factor, all),
        _ => yarn_mscale(y.factor, 1.0),
    };
    let orig = y.original_max_position_embeddings;
    let mut low = correction_dim(y.beta_fast, dim, base, orig);
    let mut high = correction_dim(y.beta_slow, dim, base, orig);
    if y.truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min((dim - 1) as f64);
    if low == high {
        high += 0.001; // avoid a zero-width ramp (transformers does the same)
    }
    let inv = pos_freqs
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let ramp = ((j as f64 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation = 1.0 - ramp; // share of the original frequency
            let (inv_extra, inv_inter) = (1.0 / p, 1.0 / (y.factor * p));
            inv_inter * (1.0 - extrapolation) + inv_extra * extrapolation
        })
        .collect();
    (inv, attention_factor)
}

/// Precomputed cos/sin (already multiplied by the YaRN attention factor) for every position.
pub struct MlaRope {
    half: usize,
    interleaved: bool,
    cos: Vec<f32>, // [positions, dim/2]
    sin: Vec<f32>, // [positions, dim/2]
}

impl MlaRope {
    /// Table for `positions` positions of a `dim`-wide rope part.
    pub fn new(
        positions: usize,
        dim: usize,
        base: f64,
        yarn: Option<&YarnScaling>,
        interleaved: bool,
    ) -> Self {
        let half = dim / 2;
        let (inv, factor) = rope_parameters(dim, base, yarn);
        let mut cos = Vec::with_capacity(positions.saturating_mul(half));
        let mut sin = Vec::with_capacity(positions.saturating_mul(half));
        for p in 0..positions {
            for &f in &inv {
                let a = p as f64 * f;
                cos.push((a.cos() * factor) as f32);
                sin.push((a.sin() * factor) as f32);
            }
        }
        MlaRope {
            half,
            interleaved,
            cos,
            sin,
        }
    }

    /// Rotate one head's rope part `x` [dim] for position `pos` (no-op past the table; callers check
    /// positions against the context first).
    ///
    /// Interleaved checkpoints pair dimensions (2j, 2j+1); transformers de-interleaves them and then
    /// rotates halves. Rotating the pairs in place gives the same vector up to one fixed permutation,
    /// applied to queries and keys alike, so every q.k product is the same.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let h = self.half;
        let (Some(cos), Some(sin)) = (
            self.cos.get(pos * h..(pos + 1) * h),
            self.sin.get(pos * h..(pos + 1) * h),
        ) else {
            return;
        };
        if self.interleaved {
            for (j, pair) in x.chunks_exact_mut(2).take(h).enumerate() {
                let (x1, x2) = (pair[0], pair[1]);
                pair[0] = x1 * cos[j] - x2 * sin[j];
                pair[1] = x2 * cos[j] + x1 * sin[j];
            }
        } else if x.len() >= 2 * h {
            let (a, b) = x[..2 * h].split_at_mut(h);
            for j in 0..h {
                let (x1, x2) = (a[j], b[j]);
                a[j] = x1 * cos[j] - x2 * sin[j];
                b[j] = x2 * cos[j] + x1 * sin[j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yarn(factor: f64) -> YarnScaling {
        YarnScaling {
            factor,
            original_max_position_embeddings: 4096.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: Some(1.0),
            mscale_all_dim: Some(1.0),
            attention_factor: None,
            truncate: true,
        }
    }

    #[test]
    fn without_yarn_frequencies_are_plain_rope() {
        let (inv, f) = rope_parameters(8, 10000.0, None);
        assert_eq!(f, 1.0);
        assert_eq!(inv[0], 1.0);
        assert!((inv[1] - 0.1).abs() < 1e-15);
    }

    #[test]
    fn yarn_keeps_high_frequencies_and_divides_low_ones_by_the_factor() {
        // DeepSeek-V3's rope: dim 64, theta 10000, factor 40, original context 4096.
        let (plain, _) = rope_parameters(64, 10000.0, None);
        let (inv, f) = rope_parameters(64, 10000.0, Some(&yarn(40.0)));
        // mscale == mscale_all_dim: cos/sin are not rescaled (the correction goes to the softmax).
        assert_eq!(f, 1.0);
        // correction range for these numbers is [10, 23] after floor/ceil
        for j in 0..=10 {
            assert_eq!(inv[j], plain[j], "dim {j} is extrapolated (kept)");
        }
        for j in 23..32 {
            assert!(
                (inv[j] - plain[j] / 40.0).abs() <= plain[j] * 1e-15,
                "dim {j}"
            );
        }
        for j in 11..23 {
            assert!(
                inv[j] < plain[j] && inv[j] > plain[j] / 40.0,
                "dim {j} is blended"
            );
        }
    }

    #[test]
    fn unequal_mscales_scale_cos_and_sin() {
        let mut y = yarn(4.0);
        y.mscale = Some(0.707);
        let (_, f) = rope_parameters(16, 10000.0, Some(&y));
        let want = (0.1 * 0.707 * 4f64.ln() + 1.0) / (0.1 * 4f64.ln() + 1.0);
        assert_eq!(f, want);
    }

    #[test]
    fn interleaved_and_half_layouts_agree_up_to_the_pair_permutation() {
        let dim = 8;
        let half_rope = MlaRope::new(5, dim, 10000.0, None, false);
        let pair_rope = MlaRope::new(5, dim, 10000.0, None, true);
        let x: Vec<f32> = (0..dim).map(|i| i as f32 * 0.3 - 1.0).collect();
        // interleaved layout of x: pairs (x[j], x[half + j])
        let mut inter = vec![0.0; dim];
        for j in 0..dim / 2 {
            inter[2 * j] = x[j];
            inter[2 * j + 1] = x[dim / 2 + j];
        }
        let mut a = x.clone();
        half_rope.apply(&mut a, 3);
        pair_rope.apply(&mut inter, 3);
        for j in 0..dim / 2 {
            assert_eq!(inter[2 * j], a[j]);
            assert_eq!(inter[2 * j + 1], a[dim / 2 + j]);
        }
        assert_ne!(a, x);
    }
}
