//! Token sampling: greedy at temperature 0, else temperature, top-k and top-p (nucleus) over a
//! softmax, drawn from a seeded SplitMix64 stream so a seed reproduces a run exactly.

/// Sampling settings; `temperature <= 0` means greedy (argmax).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0 = all).
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// A sampler with its own buffers (no allocation per token once warmed up).
pub struct Sampler {
    cfg: SamplerConfig,
    state: u64,
    candidates: Vec<(f32, u32)>,
}

/// Index of the largest logit (the first one on ties, as llama.cpp's greedy sampler).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        Sampler {
            cfg,
            state: cfg.seed,
            candidates: Vec::new(),
        }
    }

    /// SplitMix64 step, mapped to [0, 1).
    fn next_f32(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Pick the next token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let t = self.cfg.temperature;
        if t <= 0.0 || logits.is_empty() {
            return argmax(logits);
        }
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| (l / t, i as u32)));
        let c = &mut self.candidates;
        let k = if self.cfg.top_k == 0 {
            c.len()
        } else {
            self.cfg.top_k.min(c.len())
        };
        let by_logit_desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0);
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, by_logit_desc);
            c.truncate(k);
        }
        c.sort_unstable_by(by_logit_desc);
        // softmax over the candidates
        let max = c[0].0;
        let mut sum = 0.0f32;
        for e in c.iter_mut() {
            e.0 = (e.0 - max).exp();
            sum += e.0;
        }
        for e in c.iter_mut() {
            e.0 /= sum;
        }
        // nucleus: smallest prefix reaching top_p
        if self.cfg.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = c.len();
            for (i, e) in c.iter().enumerate() {
                acc += e.0;
                if acc >= self.cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep);
            let s: f32 = c.iter().map(|e| e.0).sum();
            for e in c.iter_mut() {
                e.0 /= s;
            }
        }
        let r = self.next_f32();
        let c = &self.candidates;
        let mut acc = 0.0;
        for e in c.iter() {
            acc += e.0;
            if r < acc {
                return e.1;
            }
        }
        c.last().map_or(0, |e| e.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax_first_on_ties() {
        let mut s = Sampler::new(SamplerConfig::default());
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_temperature() {
        let mut s = Sampler::new(SamplerConfig {
            temperature: 5.0,
            top_k: 1,
            top_p: 1.0,
            seed: 7,
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&[0.0, 1.0, 0.5, 0.9]), 1);
        }
    }

    #[test]
    fn top_p_excludes_the_tail() {
        // p(token 0) ~ 0.88 at T=1: top_p 0.5 keeps only it
        let mut s = Sampler::new(SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            seed: 3,
        });
        for _ in 0..50 {
            assert_eq!(s.sample(&[4.0, 2.0, 1.0]), 0);
        }
    }

    #[test]
    fn same_seed_same_tokens_and_sampling_follows_probabilities() {
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
        };
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let mut a = Sampler::new(cfg);
        let mut b = Sampler::new(cfg);
        let draws: Vec<u32> = (0..4000).map(|_| a.sample(&logits)).collect();
        let again: Vec<u32> = (0..4000).map(|_| b.sample(&logits)).collect();
        assert_eq!(draws, again);
        let ones = draws.iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        // binomial std of the share at n=4000, p=0.75 is 0.0068; 5 sigma = 0.034
        const SHARE_TOLERANCE_5_SIGMA: f64 = 0.034;
        assert!((ones - 0.75).abs() < SHARE_TOLERANCE_5_SIGMA, "{ones}");
    }
}
