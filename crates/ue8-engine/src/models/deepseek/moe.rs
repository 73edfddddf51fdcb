//! DeepSeek-V3's mixture of experts: the sigmoid router with group-limited top-k selection
//! (`noaux_tc`), routed experts run only for the tokens that chose them, and the shared experts.
//! Follows transformers' `DeepseekV3MoE.route_tokens_to_experts` step for step.

use crate::error::{EngineError, Result};
use crate::layers;
use crate::matmul::Matmul;
use crate::weights::Linear;

/// The routing hyper-parameters of one MoE block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouterShape {
    pub n_experts: usize,
    pub n_group: usize,
    pub topk_group: usize,
    pub top_k: usize,
    pub norm_topk_prob: bool,
    pub routed_scaling_factor: f32,
}

/// Added to the sum of the selected weights before normalising (transformers' constant), so an
/// all-zero selection divides by a tiny number instead of zero.
const NORM_DENOMINATOR_EPS: f32 = 1e-20;

/// Reusable buffers for [`route`] (no allocation per token once sized).
#[derive(Default)]
pub struct RouterScratch {
    scores: Vec<f32>,
    choice: Vec<f32>,
    group_scores: Vec<f32>,
    group_taken: Vec<bool>,
}

/// Index of the largest value not yet taken; the lowest index wins ties.
fn take_max(values: &[f32], taken: &mut [bool]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &v) in values.iter().enumerate() {
        if taken.get(i).copied().unwrap_or(true) {
            continue;
        }
        match best {
            Some(b) if values[b] >= v => {}
            _ => best = Some(i),
        }
    }
    if let Some(b) = best {
        taken[b] = true;
    }
    best
}

/// Choose the experts of one token from its router logits [n_experts]:
/// scores = sigmoid(logits); the correction bias is added for selection only; groups are ranked by
/// the sum of their two best biased scores, `topk_group` groups kept (the others' experts are
/// masked to -inf, as transformers' `masked_fill`), then the `top_k` best biased scores. Weights are the unbiased
/// scores of the chosen experts, normalised when `norm_topk_prob`, times `routed_scaling_factor`.
/// Writes `top_k` expert ids and weights.
pub fn route(
    shape: &RouterShape,
    logits: &[f32],
    bias: &[f32],
    scratch: &mut RouterScratch,
    experts: &mut [usize],
    weights: &mut [f32],
) {
    let e = shape.n_experts;
    let per_group = e / shape.n_group.max(1);
    let s = scratch;
    s.scores.clear();
    s.scores
        .extend(logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())));
    s.choice.clear();
    s.choice
        .extend(s.scores.iter().zip(bias).map(|(&x, &b)| x + b));

    // rank groups by the sum of their top-2 biased scores
    s.group_scores.clear();
    for g in s.choice.chunks_exact(per_group.max(1)).take(shape.n_group) {
        let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for &v in g {
            if v > a {
                b = a;
                a = v;
            } else if v > b {
                b = v;
            }
        }
        s.group_scores.push(a + b);
    }
    s.group_taken.clear();
    s.group_taken.resize(shape.n_group, false);
    for _ in 0..shape.topk_group {
        take_max(&s.group_scores, &mut s.group_taken);
    }
    // experts of dropped groups cannot be chosen
    for (i, c) in s.choice.iter_mut().enumerate() {
        let g = i / per_group.max(1);
        if !s.group_taken.get(g).copied().unwrap_or(false) {
            *c = f32::NEG_INFINITY;
        }
    }
    // reuse group_taken as the per-expert "taken" mask
    s.group_taken.clear();
    s.group_taken.resize(e, false);
    let mut sum = 0.0f32;
    for (id, w) in experts.iter_mut().zip(weights.iter_mut()) {
        let pick = take_max(&s.choice, &mut s.group_taken).unwrap_or(0);
        *id = pick;
        *w = s.scores.get(pick).copied().unwrap_or(0.0);
        sum += *w;
    }
    let denom = if shape.norm_topk_prob {
        sum + NORM_DENOMINATOR_EPS
    } else {
        1.0
    };
    for w in weights.iter_mut() {
        *w = *w / denom * shape.routed_scaling_factor;
    }
}

/// A SwiGLU MLP: down(silu(gate(x)) * up(x)). Dense layers, each expert and the shared experts.
pub struct Mlp<'a> {
    pub gate_proj: Linear<'a>, // [f, d]
    pub up_proj: Linear<'a>,   // [f, d]
    pub down_proj: Linear<'a>, // [d, f]
}

impl Mlp<'_> {
    /// Intermediate width.
    pub fn width(&self) -> usize {
        self.gate_proj.n
    }

    /// Bytes one token reads through this MLP.
    pub fn bytes(&self) -> usize {
        self.gate_proj.bytes() + self.up_proj.bytes() + self.down_proj.bytes()
    }

    /// out[m, d] = mlp(x[m, d]); `gate`, `up` hold at least m * width values.
    pub fn forward(
        &self,
        mm: &Matmul,
        x: &[f32],
        m: usize,
        gate: &mut [f32],
        up: &mut [f32],
        out: &mut [f32],
    ) -> Result<()> {
        let f = self.width();
        let (gate, up) = (&mut gate[..m * f], &mut up[..m * f]);
        mm.matmul(&self.gate_proj, x, m, gate)?;
        mm.matmul(&self.up_proj, x, m, up)?;
        layers::swiglu(gate, up);
        mm.matmul(&self.down_proj, gate, m, out)
    }
}

/// out[i] += w * y[i]: one routed expert's contribution (multiply, then add: both paths round alike).
fn add_weighted(out: &mut [f32], y: &[f32], w: f32) {
    for (o, &v) in out.iter_mut().zip(y) {
        *o += v * w;
    }
}

/// One MoE block's weights.
pub struct Moe<'a> {
    pub shape: RouterShape,
    /// `mlp.gate.weight` [n_experts, d], run in f32 whatever it is stored in.
    pub router: Linear<'a>,
    /// `mlp.gate.e_score_correction_bias` [n_experts] (zeros when absent).
    pub score_bias: Vec<f32>,
    pub experts: Vec<Mlp<'a>>,
    pub shared: Option<Mlp<'a>>,
}

/// Buffers of one MoE call, sized for a batch of `b` tokens.
pub struct MoeScratch {
    pub router: RouterScratch,
    logits: Vec<f32>,   // [b, E]
    chosen: Vec<usize>, // [b, top_k]
    chosen_w: Vec<f32>, // [b, top_k]
    rows: Vec<usize>,   // tokens routed to the current expert
    rows_w: Vec<f32>,   // their weights
    xe: Vec<f32>,       // [b, d] gathered inputs
    ye: Vec<f32>,       // [b, d] expert outputs
    gate: Vec<f32>,     // [b, f]
    up: Vec<f32>,       // [b, f]
    // One-token path: every active MLP's gate/up [top_k + 1, f] and output [top_k + 1, d].
    gate1: Vec<f32>,
    up1: Vec<f32>,
    ye1: Vec<f32>,
}

impl MoeScratch {
    /// Buffers for `b` tokens of width `d`, experts of width up to `f`.
    pub fn new(b: usize, d: usize, f: usize, shape: &RouterShape) -> Result<Self> {
        let z = |n: usize, w: usize| super::alloc(n, w, "MoE buffers");
        Ok(MoeScratch {
            router: RouterScratch::default(),
            logits: z(b, shape.n_experts)?,
            chosen: vec![0; b.saturating_mul(shape.top_k)],
            chosen_w: z(b, shape.top_k)?,
            rows: Vec::with_capacity(b),
            rows_w: Vec::with_capacity(b),
            xe: z(b, d)?,
            ye: z(b, d)?,
            gate: z(b, f)?,
            up: z(b, f)?,
            gate1: z(shape.top_k + 1, f)?,
            up1: z(shape.top_k + 1, f)?,
            ye1: z(shape.top_k + 1, d)?,
        })
    }

    /// Experts chosen for token `i` of the last call.
    pub fn chosen(&self, i: usize, top_k: usize) -> &[usize] {
        self.chosen.get(i * top_k..(i + 1) * top_k).unwrap_or(&[])
    }
}

impl Moe<'_> {
    /// out[m, d] = routed experts (weighted) + shared experts, for x[m, d].
    pub fn forward(
        &self,
        mm: &Matmul,
        x: &[f32],
        m: usize,
        d: usize,
        s: &mut MoeScratch,
        out: &mut [f32],
    ) -> Result<()> {
        let (e, k) = (self.shape.n_experts, self.shape.top_k);
        mm.matmul(&self.router, x, m, &mut s.logits[..m * e])?;
        for i in 0..m {
            route(
                &self.shape,
                &s.logits[i * e..(i + 1) * e],
                &self.score_bias,
                &mut s.router,
                &mut s.chosen[i * k..(i + 1) * k],
                &mut s.chosen_w[i * k..(i + 1) * k],
            );
        }
        let out = &mut out[..m * d];
        if m == 1 {
            return self.forward_one_token(mm, x, d, s, out);
        }
        out.fill(0.0);
        // Each expert runs once on the tokens that chose it; unchosen experts are never read.
        for (id, expert) in self.experts.iter().enumerate() {
            s.rows.clear();
            s.rows_w.clear();
            for i in 0..m {
                for j in 0..k {
                    if s.chosen[i * k + j] == id {
                        s.rows.push(i);
                        s.rows_w.push(s.chosen_w[i * k + j]);
                    }
                }
            }
            let n = s.rows.len();
            if n == 0 {
                continue;
            }
            for (r, &i) in s.rows.iter().enumerate() {
                s.xe[r * d..(r + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
            }
            expert.forward(
                mm,
                &s.xe[..n * d],
                n,
                &mut s.gate,
                &mut s.up,
                &mut s.ye[..n * d],
            )?;
            for (r, (&i, &w)) in s.rows.iter().zip(&s.rows_w).enumerate() {
                add_weighted(&mut out[i * d..(i + 1) * d], &s.ye[r * d..(r + 1) * d], w);
            }
        }
        if let Some(shared) = &self.shared {
            shared.forward(mm, x, m, &mut s.gate, &mut s.up, &mut s.ye[..m * d])?;
            for (o, &v) in out.iter_mut().zip(&s.ye[..m * d]) {
                *o += v;
            }
        }
        Ok(())
    }

    /// Decode: the token's `top_k` experts and the shared MLP run as two grouped matmuls (all gate
    /// and up projections, then all down projections), two pool dispatches instead of three per
    /// MLP. Expert outputs are weighted and added in the batched path's order (expert id, then the
    /// shared MLP).
    fn forward_one_token(
        &self,
        mm: &Matmul,
        x: &[f32],
        d: usize,
        s: &mut MoeScratch,
        out: &mut [f32],
    ) -> Result<()> {
        let k = self.shape.top_k;
        let experts = &self.experts;
        let chosen = &s.chosen[..k];
        let mlp = |j: usize| {
            if j < k {
                experts.get(chosen[j])
            } else {
                self.shared.as_ref()
            }
        };
        let count = k + usize::from(self.shared.is_some());
        let fw = s.gate1.len() / (k + 1);
        if (0..count).any(|j| mlp(j).is_none_or(|e| e.width() > fw)) {
            return Err(EngineError::InvalidArgument(format!(
                "MoE: an expert index out of range or wider than the scratch ({fw})"
            )));
        }
        let mlps = (0..count).filter_map(mlp);
        let gates = s.gate1.chunks_exact_mut(fw);
        let ups = s.up1.chunks_exact_mut(fw);
        mm.matmul_group(mlps.clone().zip(gates.zip(ups)).flat_map(|(e, (g, u))| {
            let f = e.width();
            [
                (&e.gate_proj, x, 1, &mut g[..f]),
                (&e.up_proj, x, 1, &mut u[..f]),
            ]
        }))?;
        for (e, (g, u)) in mlps
            .clone()
            .zip(s.gate1.chunks_exact_mut(fw).zip(s.up1.chunks(fw)))
        {
            layers::swiglu(&mut g[..e.width()], &u[..e.width()]);
        }
        mm.matmul_group(
            mlps.clone()
                .zip(s.gate1.chunks_exact(fw).zip(s.ye1.chunks_exact_mut(d)))
                .map(|(e, (g, y))| (&e.down_proj, &g[..e.width()], 1, y)),
        )?;
        out.fill(0.0);
        // Routed experts in expert-id order, as the batched path adds them, then the shared MLP.
        s.rows.clear();
        s.rows.extend(0..k);
        s.rows.sort_by_key(|&j| s.chosen[j]);
        for &j in &s.rows {
            add_weighted(out, &s.ye1[j * d..(j + 1) * d], s.chosen_w[j]);
        }
        if self.shared.is_some() {
            for (o, &v) in out.iter_mut().zip(&s.ye1[k * d..(k + 1) * d]) {
                *o += v;
            }
        }
        Ok(())
    }

    /// Bytes one token reads on average: router, `top_k` experts of average size, shared experts.
    pub fn bytes_per_token(&self) -> usize {
        let n = self.experts.len().max(1);
        let all: usize = self.experts.iter().map(|x| x.bytes()).sum();
        self.router.bytes()
            + all / n * self.shape.top_k
            + self.shared.as_ref().map_or(0, |x| x.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> RouterShape {
        RouterShape {
            n_experts: 8,
            n_group: 4,
            topk_group: 2,
            top_k: 3,
            norm_topk_prob: true,
            routed_scaling_factor: 2.0,
        }
    }

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn group_limit_excludes_a_strong_expert_of_a_weak_group() {
        // groups {0,1} {2,3} {4,5} {6,7}; expert 2 is the single best but its group's top-2 sum is low
        let p = [0.6, 0.55, 0.9, 0.01, 0.5, 0.5, 0.1, 0.1];
        let logits: Vec<f32> = p.iter().map(|&x| logit(x)).collect();
        let bias = [0.0; 8];
        let (mut ids, mut w) = ([0usize; 3], [0f32; 3]);
        route(
            &shape(),
            &logits,
            &bias,
            &mut RouterScratch::default(),
            &mut ids,
            &mut w,
        );
        // group sums: 1.15, 0.91, 1.0, 0.2 -> groups 0 and 2 kept
        assert_eq!(ids, [0, 1, 4]);
        let sum: f32 = w.iter().sum();
        assert!(
            (sum - 2.0).abs() < 1e-6,
            "normalised then scaled by 2: {sum}"
        );
        assert!((w[0] - 0.6 / 1.65 * 2.0).abs() < 1e-6);
    }

    #[test]
    fn correction_bias_changes_selection_but_not_weights() {
        let p = [0.5, 0.4, 0.3, 0.2, 0.5, 0.4, 0.3, 0.2];
        let logits: Vec<f32> = p.iter().map(|&x| logit(x)).collect();
        let mut bias = [0.0f32; 8];
        bias[7] = 1.0; // lifts group 3 and expert 7
        let sh = RouterShape {
            norm_topk_prob: false,
            routed_scaling_factor: 1.0,
            ..shape()
        };
        let (mut ids, mut w) = ([0usize; 3], [0f32; 3]);
        route(
            &sh,
            &logits,
            &bias,
            &mut RouterScratch::default(),
            &mut ids,
            &mut w,
        );
        assert_eq!(ids[0], 7);
        assert!((w[0] - 0.2).abs() < 1e-6, "weight is the unbiased score");
    }

    /// Sort-based restatement of the routing rule, for the property test.
    fn route_by_sorting(sh: &RouterShape, logits: &[f32], bias: &[f32]) -> Vec<usize> {
        let scores: Vec<f32> = logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect();
        let choice: Vec<f32> = scores.iter().zip(bias).map(|(s, b)| s + b).collect();
        let per = sh.n_experts / sh.n_group;
        let mut groups: Vec<(f32, usize)> = (0..sh.n_group)
            .map(|g| {
                let mut v = choice[g * per..(g + 1) * per].to_vec();
                v.sort_by(|a, b| b.total_cmp(a));
                (v[0] + v[1], g)
            })
            .collect();
        groups.sort_by(|a, b| b.0.total_cmp(&a.0));
        let kept: Vec<usize> = groups[..sh.topk_group].iter().map(|g| g.1).collect();
        let mut cand: Vec<(f32, usize)> = (0..sh.n_experts)
            .filter(|e| kept.contains(&(e / per)))
            .map(|e| (choice[e], e))
            .collect();
        cand.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut ids: Vec<usize> = cand[..sh.top_k].iter().map(|c| c.1).collect();
        ids.sort_unstable();
        ids
    }

    proptest::proptest! {
        #[test]
        fn routing_matches_the_sorting_rule(
            logits in proptest::collection::vec(-4.0f32..4.0, 16),
            bias in proptest::collection::vec(-0.5f32..0.5, 16),
            norm in proptest::bool::ANY,
        ) {
            let sh = RouterShape {
                n_experts: 16,
                n_group: 4,
                topk_group: 2,
                top_k: 5,
                norm_topk_prob: norm,
                routed_scaling_factor: 2.5,
            };
            let (mut ids, mut w) = ([0usize; 5], [0f32; 5]);
            route(&sh, &logits, &bias, &mut RouterScratch::default(), &mut ids, &mut w);
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            proptest::prop_assert_eq!(sorted, route_by_sorting(&sh, &logits, &bias));
            for (id, wt) in ids.iter().zip(&w) {
                let score = 1.0 / (1.0 + (-logits[*id]).exp());
                if !norm {
                    proptest::prop_assert!((wt - score * 2.5).abs() <= 1e-6);
                }
            }
            if norm {
                let sum: f32 = w.iter().sum();
                proptest::prop_assert!((sum - 2.5).abs() <= 1e-5, "sum {}", sum);
            }
        }
    }
}
