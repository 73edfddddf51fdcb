//! Perplexity exactly as llama.cpp's `llama-perplexity` defines it (interop.md section 5), so the
//! two tools' numbers are comparable:
//! - the text loses one trailing newline and is tokenized once (BOS only if the tokenizer adds it);
//! - it is cut into non-overlapping chunks of `ctx` tokens, as many as fit (at most `max_chunks`);
//! - in each chunk the first token is replaced by BOS when the tokenizer adds BOS;
//! - each chunk is evaluated from an empty cache, and positions ctx/2 .. ctx-2 are scored, each
//!   predicting the next token (ctx/2 - 1 tokens per chunk);
//! - perplexity = exp(mean negative log-likelihood).

use crate::error::{EngineError, Result};
use crate::models::llama::Logits;
use crate::models::CausalSession;
use crate::sampler::argmax;

/// What one perplexity run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct PerplexityResult {
    pub perplexity: f64,
    pub tokens_scored: usize,
    pub chunks: usize,
    /// Sum of negative log-likelihoods (nats).
    pub nll_sum: f64,
    /// Argmax prediction at every scored position, in order (for top-1 agreement between models).
    pub predictions: Vec<u32>,
}

/// The text llama-perplexity evaluates: the file minus one trailing newline.
pub fn prepare_text(text: &str) -> &str {
    text.strip_suffix('\n').unwrap_or(text)
}

/// -log softmax(logits)[target], accumulated in f64.
pub fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let t = logits.get(target).copied().unwrap_or(f32::NEG_INFINITY) as f64;
    max + sum.ln() - t
}

/// Run the evaluation. `progress(chunk_done, chunks, running_ppl)` is called after each chunk.
pub fn perplexity(
    session: &mut (impl CausalSession + ?Sized),
    tokens: &[u32],
    ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<PerplexityResult> {
    if ctx < 4 {
        return Err(EngineError::InvalidArgument(format!(
            "--ctx {ctx}: needs at least 4 tokens"
        )));
    }
    if session.context() < ctx {
        return Err(EngineError::InvalidArgument(format!(
            "session holds {} tokens, perplexity needs {ctx}",
            session.context()
        )));
    }
    let available = tokens.len() / ctx;
    let chunks = max_chunks.map_or(available, |k| k.min(available));
    if chunks == 0 {
        return Err(EngineError::InvalidArgument(format!(
            "the text has {} tokens, fewer than one chunk of --ctx {ctx}",
            tokens.len()
        )));
    }
    let vocab = session.vocab_size();
    let first = ctx / 2;
    let batch = session.max_batch();
    let mut chunk = vec![0u32; ctx];
    let mut nll_sum = 0.0f64;
    let mut scored = 0usize;
    let mut predictions = Vec::with_capacity(chunks * (ctx - 1 - first));
    for c in 0..chunks {
        chunk.copy_from_slice(&tokens[c * ctx..(c + 1) * ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        let mut start = 0;
        while start < ctx {
            let end = (start + batch).min(ctx);
            // logits are needed only for positions first ..= ctx-2
            let want = if end > first {
                Logits::All
            } else {
                Logits::None
            };
            let logits = session.forward(&chunk[start..end], want)?;
            if want == Logits::All {
                for j in start.max(first)..end.min(ctx - 1) {
                    let row = &logits[(j - start) * vocab..(j - start + 1) * vocab];
                    nll_sum += nll(row, chunk[j + 1] as usize);
                    predictions.push(argmax(row));
                    scored += 1;
                }
            }
            start = end;
        }
        progress(c + 1, chunks, (nll_sum / scored.max(1) as f64).exp());
    }
    Ok(PerplexityResult {
        perplexity: (nll_sum / scored as f64).exp(),
        tokens_scored: scored,
        chunks,
        nll_sum,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_is_ln_vocab() {
        let l = [0.5f32; 10];
        assert!((nll(&l, 3) - (10f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn prepare_text_drops_exactly_one_newline() {
        assert_eq!(prepare_text("a\n\n"), "a\n");
        assert_eq!(prepare_text("a"), "a");
    }
}
