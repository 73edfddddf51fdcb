//! Text generation loop and llama-bench-style speed measurement over any [`CausalSession`]
//! (Llama or DeepSeek).

use crate::error::{EngineError, Result};
use crate::models::llama::Logits;
use crate::models::CausalSession;
use crate::sampler::{argmax, Sampler};
use std::time::Instant;

/// Timings of one generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// Stopped at an end-of-sequence token (rather than the token limit or the context).
    pub stopped_at_eos: bool,
}

/// Prefill `prompt` (in batches of the session's size), then sample up to `max_tokens` tokens,
/// calling `on_token` with each; stops at a token for which `is_eos` is true (not passed on) or
/// when the context is full.
pub fn generate(
    session: &mut (impl CausalSession + ?Sized),
    sampler: &mut Sampler,
    prompt: &[u32],
    max_tokens: usize,
    is_eos: &dyn Fn(u32) -> bool,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<GenerationStats> {
    if prompt.is_empty() {
        return Err(EngineError::InvalidArgument(
            "the prompt has no tokens".into(),
        ));
    }
    if prompt.len() >= session.context() {
        return Err(EngineError::ContextFull {
            pos: prompt.len(),
            ctx: session.context(),
        });
    }
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let batch = session.max_batch();
    let mut next = 0u32;
    for (i, part) in prompt.chunks(batch).enumerate() {
        let last = (i + 1) * batch >= prompt.len();
        let logits = session.forward(part, if last { Logits::Last } else { Logits::None })?;
        if last {
            next = sampler.sample(logits);
        }
    }
    stats.prefill_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for produced in 0..max_tokens {
        if is_eos(next) {
            stats.stopped_at_eos = true;
            break;
        }
        on_token(next)?;
        stats.generated_tokens = produced + 1;
        if produced + 1 == max_tokens || session.position() >= session.context() {
            break;
        }
        let logits = session.forward(&[next], Logits::Last)?;
        next = sampler.sample(logits);
    }
    stats.decode_seconds = t1.elapsed().as_secs_f64();
    Ok(stats)
}

/// Greedy continuation of `prompt` for `n` tokens (no EOS stop): for comparisons with peers.
pub fn greedy_tokens(
    session: &mut (impl CausalSession + ?Sized),
    prompt: &[u32],
    n: usize,
) -> Result<Vec<u32>> {
    let mut sampler = Sampler::new(Default::default());
    let mut out = Vec::with_capacity(n);
    generate(session, &mut sampler, prompt, n, &|_| false, &mut |t| {
        out.push(t);
        Ok(())
    })?;
    Ok(out)
}

/// Mean and sample standard deviation (n - 1), as llama-bench reports `avg_ts` / `stddev_ts`.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// llama-bench's measurements: tokens/s of each repetition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchResult {
    pub pp_tokens_per_s: Vec<f64>,
    pub tg_tokens_per_s: Vec<f64>,
}

/// One warm-up run then `reps` repetitions of: prefill `p` pseudo-random tokens in one batch from an
/// empty cache; decode `n` tokens one at a time from an empty cache (no sampling). The session
/// must take batches of `p` tokens and hold max(p, n) tokens. `p` or `n` may be 0 to skip a test.
pub fn bench(
    session: &mut (impl CausalSession + ?Sized),
    p: usize,
    n: usize,
    reps: usize,
    seed: u64,
) -> Result<BenchResult> {
    let vocab = session.vocab_size() as u64;
    let mut state = seed;
    let mut rand_token = || {
        // SplitMix64; the token values do not matter for speed, only that they vary
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % vocab) as u32
    };
    let prompt: Vec<u32> = (0..p).map(|_| rand_token()).collect();
    let first = rand_token();
    let mut result = BenchResult::default();
    for rep in 0..=reps {
        if p > 0 {
            session.reset();
            let t = Instant::now();
            session.forward(&prompt, Logits::Last)?;
            let s = t.elapsed().as_secs_f64();
            if rep > 0 {
                result.pp_tokens_per_s.push(p as f64 / s);
            }
        }
        if n > 0 {
            session.reset();
            let t = Instant::now();
            let mut tok = first;
            for _ in 0..n {
                tok = argmax(session.forward(&[tok], Logits::Last)?);
            }
            let s = t.elapsed().as_secs_f64();
            if rep > 0 {
                result.tg_tokens_per_s.push(n as f64 / s);
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_matches_sample_definition() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((s - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
    }
}
