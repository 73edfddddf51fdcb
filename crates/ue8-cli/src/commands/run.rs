//! `ue8 run`: generate text from a model directory on the CPU, streaming tokens to stdout.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use ue8_engine::generate::generate;
use ue8_engine::models::any::AnyModel; // deepseek: any model family
use ue8_engine::sampler::{Sampler, SamplerConfig};
use ue8_engine::tokenizer::{StreamDecoder, TextTokenizer};
use ue8_engine::Checkpoint;

/// Arguments of `ue8 run`.
#[derive(clap::Args)]
#[command(
    after_help = "Tokens stream to stdout; timings go to stderr. BOS is added only when the \
tokenizer asks for it (add_bos_token in tokenizer_config.json or a BOS post-processor). \
Activations and the KV cache are f32. --temperature 0 is greedy decoding."
)]
pub struct Args {
    /// Model directory (config.json, *.safetensors, tokenizer.json)
    pub model: PathBuf,
    /// Text to continue (or the user message with --chat)
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 = greedy
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Sample among the K most likely tokens (0 = all)
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling: smallest set of tokens reaching this probability
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Random seed (same seed, same text)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Wrap the prompt in the model's chat template (as one user message)
    #[arg(long)]
    pub chat: bool,
    /// Worker threads (0 = one per core)
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub acts: super::ActivationsArg,
    /// Context size in tokens (default: prompt + --max-tokens, at most the model's)
    #[arg(long)]
    pub ctx: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ck = Checkpoint::open(&args.model)?;
    let model = AnyModel::load(&ck, &args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let tok = TextTokenizer::from_dir(&args.model, model.bos_token_id(), model.eos_token_ids())?;
    let max_ctx = model.max_position_embeddings();
    let text = if args.chat {
        tok.apply_chat_template(&args.prompt)?
    } else {
        args.prompt.clone()
    };
    let prompt = tok.encode(&text)?;
    // The KV cache is preallocated: size it for this prompt and answer unless told otherwise.
    let ctx = args
        .ctx
        .unwrap_or_else(|| (prompt.len() + args.max_tokens + 1).clamp(1, max_ctx.max(1)));
    let mm = args.acts.matmul(args.threads)?;
    let mut session = model.session(&mm, ctx, 64.min(ctx))?;
    let mut sampler = Sampler::new(SamplerConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    });
    let mut stream = StreamDecoder::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.chat {
        write!(out, "{}", args.prompt)?;
    }
    let stats = generate(
        &mut *session,
        &mut sampler,
        &prompt,
        args.max_tokens,
        &|t| tok.is_eos(t),
        &mut |t| {
            let piece = stream.push(&tok, t)?;
            write!(out, "{piece}")
                .and_then(|_| out.flush())
                .map_err(|e| ue8_engine::EngineError::Io {
                    path: "<stdout>".into(),
                    source: e,
                })
        },
    )?;
    writeln!(out)?;
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    eprintln!(
        "prompt: {} tokens, {:.1} tok/s | generated: {} tokens, {:.1} tok/s{} | threads {}",
        stats.prompt_tokens,
        rate(stats.prompt_tokens, stats.prefill_seconds),
        stats.generated_tokens,
        rate(stats.generated_tokens, stats.decode_seconds),
        if stats.stopped_at_eos { " (EOS)" } else { "" },
        mm.threads()
    );
    Ok(())
}
