//! `ue8 perplexity`: llama.cpp's `llama-perplexity` measurement on a text file.

use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;
use ue8_engine::models::any::AnyModel; // deepseek: any model family
use ue8_engine::perplexity::{perplexity, prepare_text};
use ue8_engine::tokenizer::TextTokenizer;
use ue8_engine::Checkpoint;

/// Arguments of `ue8 perplexity`.
#[derive(clap::Args)]
#[command(
    after_help = "Definition (same as llama-perplexity, so the numbers compare): the file \
minus one trailing newline is tokenized once (BOS only if the tokenizer adds it); it is cut into \
non-overlapping chunks of --ctx tokens (at most --chunks); each chunk starts from an empty cache, \
its first token becomes BOS when the tokenizer adds BOS, and positions ctx/2 .. ctx-2 are scored \
(ctx/2 - 1 tokens a chunk). Perplexity = exp(mean negative log-likelihood). Computed in f32 with \
an f32 KV cache; activations are never quantized.\n\n--json prints exactly one JSON document on \
stdout: {\"perplexity\": <float>, \"tokens_scored\": <int>}; progress goes to stderr."
)]
pub struct Args {
    /// Model directory (config.json, *.safetensors, tokenizer.json)
    pub model: PathBuf,
    /// Text file to evaluate
    #[arg(long, short = 'f')]
    pub file: PathBuf,
    /// Tokens per chunk
    #[arg(long, short = 'c', default_value_t = 512)]
    pub ctx: usize,
    /// Evaluate at most this many chunks (default: all that fit)
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Worker threads (0 = one per core)
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub acts: super::ActivationsArg,
    /// Tokens per forward batch
    #[arg(long, short = 'b', default_value_t = 512)]
    pub batch: usize,
    /// Print only {"perplexity", "tokens_scored"} as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ck = Checkpoint::open(&args.model)?;
    let model = AnyModel::load(&ck, &args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let tok = TextTokenizer::from_dir(&args.model, model.bos_token_id(), model.eos_token_ids())?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let tokens = tok.encode(prepare_text(&text))?;
    let mm = args.acts.matmul(args.threads)?;
    let mut session = model.session(&mm, args.ctx, args.batch.clamp(1, args.ctx.max(1)))?;
    eprintln!(
        "{}: {} tokens, ctx {}, {} threads",
        args.file.display(),
        tokens.len(),
        args.ctx,
        mm.threads()
    );
    let t = Instant::now();
    let r = perplexity(
        &mut *session,
        &tokens,
        args.ctx,
        args.chunks,
        tok.adds_bos(),
        &mut |done, total, ppl| eprint!("\r[{done}/{total}] perplexity {ppl:.4}   "),
    )?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"perplexity": r.perplexity, "tokens_scored": r.tokens_scored})
        );
    } else {
        println!(
            "perplexity: {:.4} ({} tokens scored in {} chunks of {}; {:.1} tokens/s evaluated)",
            r.perplexity,
            r.tokens_scored,
            r.chunks,
            args.ctx,
            (r.chunks * args.ctx) as f64 / secs
        );
    }
    Ok(())
}
