//! `ue8`: convert, run, verify and plan LLM checkpoints in FP8/UE8M0 and OCP MX formats on any machine.
//!
//! This binary is thin: each subcommand lives in `commands/<name>.rs`, parses its own arguments and
//! calls the library crates. Only this crate prints or exits.
//!
//! Exit codes: 0 success, 1 error (the cause chain is printed on stderr), 2 bad command line.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod commands;

#[derive(Parser)]
#[command(
    name = "ue8",
    version,
    about = "Vendor-neutral toolkit for FP8 (UE8M0) and OCP MX LLM checkpoints: convert, run, verify, plan",
    long_about = "ue8 quantizes, requantizes and dequantizes safetensors checkpoints between BF16/F16/F32, \
DeepSeek blockwise FP8 (F32 or UE8M0 scales) and OCP MX formats, bit-exact to its spec; runs LLMs on the \
CPU straight from those weights; verifies checkpoints against manifests; and plans which accelerator can \
hold a model.\n\nue8 never touches the network, except `ue8 demo`, whose job includes fetching its demo model \
(and which says so).\n\nExit codes: 0 success, 1 error, 2 bad command line.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a checkpoint's tensors, layout, quantization config and anomalies (safetensors or GGUF)
    Inspect(commands::inspect::Args),
    /// Quantize a BF16/F16/F32 checkpoint to FP8 (DeepSeek blockwise) or an OCP MX format
    Quantize(commands::quantize::Args),
    /// Turn an F32-scale FP8 checkpoint into UE8M0 (power-of-two) scales
    Requantize(commands::requantize::Args),
    /// Dequantize any layout ue8 reads to plain BF16/F16/F32 weights
    Dequantize(commands::dequantize::Args),
    /// Re-hash a converted directory against its ue8-manifest.json and check its structure
    Verify(commands::verify::Args),
    /// Compare two checkpoints tensor by tensor (max-abs, RMS, SNR, cosine, clipped share)
    Diff(commands::diff::Args),
    /// Import a GGUF model as Hugging Face-layout safetensors + config.json + tokenizer.json
    ImportGguf(commands::import_gguf::Args),
    /// Generate text from a model directory on the CPU
    Run(commands::run::Args),
    /// Perplexity of a model on a text file (llama.cpp's llama-perplexity definition)
    Perplexity(commands::perplexity::Args),
    /// Prefill and decode speed, measured as llama-bench does
    Bench(commands::bench::Args),
    /// The end-to-end demo: fetch SmolLM2-135M (network), import, quantize, verify, run, perplexity
    Demo(commands::demo::Args),
    /// Which accelerator can hold a model, in which format, how fast (roofline)
    Plan(commands::plan::Args),
    /// List the accelerator catalog
    Chips(commands::chips::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Requantize(a) => commands::requantize::run(a),
        Command::Dequantize(a) => commands::dequantize::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Diff(a) => commands::diff::run(a),
        Command::ImportGguf(a) => commands::import_gguf::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Perplexity(a) => commands::perplexity::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Chips(a) => commands::chips::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
