//! `ue8 bench`: prefill and decode speed measured the way `llama-bench` measures.

use anyhow::Context;
use std::path::PathBuf;
use ue8_engine::generate::{bench, mean_std};
use ue8_engine::models::any::AnyModel; // deepseek: any model family
use ue8_engine::Checkpoint;

/// Arguments of `ue8 bench`.
#[derive(clap::Args)]
#[command(
    after_help = "As llama-bench: one warm-up run, then -r repetitions; the prefill test \
(ppP) processes P random tokens in one batch from an empty cache; the decode test (tgN) generates N \
tokens one at a time from an empty cache; figures are means and sample standard deviations of the \
per-repetition tokens/s.\n\n--json prints one JSON document: {\"pp_tokens_per_s\", \"pp_stddev\", \
\"tg_tokens_per_s\", \"tg_stddev\", \"weight_bytes_per_token\", \"threads\", \"p\", \"n\", \"reps\"}."
)]
pub struct Args {
    /// Model directory (config.json, *.safetensors)
    pub model: PathBuf,
    /// Prompt tokens for the prefill test (0 skips it)
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    pub p: usize,
    /// Generated tokens for the decode test (0 skips it)
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub n: usize,
    /// Worker threads (0 = one per core)
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub acts: super::ActivationsArg,
    /// Repetitions after the warm-up
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub reps: usize,
    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.reps == 0 {
        anyhow::bail!("-r must be at least 1");
    }
    let ck = Checkpoint::open(&args.model)?;
    let model = AnyModel::load(&ck, &args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let mm = args.acts.matmul(args.threads)?;
    let ctx = args.p.max(args.n).max(1);
    let mut session = model.session(&mm, ctx, args.p.max(1))?;
    let r = bench(&mut *session, args.p, args.n, args.reps, 1234)?;
    let (pp, pp_sd) = mean_std(&r.pp_tokens_per_s);
    let (tg, tg_sd) = mean_std(&r.tg_tokens_per_s);
    let bytes = model.weight_bytes_per_token();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "pp_tokens_per_s": pp, "pp_stddev": pp_sd,
                "tg_tokens_per_s": tg, "tg_stddev": tg_sd,
                "weight_bytes_per_token": bytes, "threads": mm.threads(),
                "p": args.p, "n": args.n, "reps": args.reps,
            })
        );
    } else {
        println!("| model | threads | test | t/s |");
        println!("|---|---:|---:|---:|");
        let name = args.model.display();
        if args.p > 0 {
            println!(
                "| {name} | {} | pp{} | {pp:.2} ± {pp_sd:.2} |",
                mm.threads(),
                args.p
            );
        }
        if args.n > 0 {
            println!(
                "| {name} | {} | tg{} | {tg:.2} ± {tg_sd:.2} |",
                mm.threads(),
                args.n
            );
        }
        println!(
            "weights read per generated token: {:.1} MB",
            bytes as f64 / 1e6
        );
    }
    Ok(())
}
