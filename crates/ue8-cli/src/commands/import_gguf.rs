//! `ue8 import-gguf`: a Llama-family GGUF to a Hugging Face model directory.

use std::path::PathBuf;

use anyhow::Context;
use ue8_io::gguf::import::{import_gguf, ImportDtype, ImportOptions};

/// Element type of the written weights.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DtypeArg {
    Bf16,
    F32,
}

/// Arguments of `ue8 import-gguf`.
#[derive(clap::Args)]
#[command(
    long_about = "Import a GGUF model (llama architecture; GGUF v2/v3; tensors in F32, F16, BF16, Q8_0, Q4_0, \
Q4_1, Q4_K, Q6_K or MXFP4) as a Hugging Face directory: model.safetensors with HF tensor names and Q/K \
rows in HF's rotate-half order, config.json (LlamaForCausalLM), tokenizer.json (byte-level BPE; \
pre-tokenizers smollm, gpt-2, llama-bpe, qwen2), tokenizer_config.json (chat template, add_bos_token) \
and generation_config.json. The directory is built under a hidden temporary name and renamed when \
complete."
)]
pub struct Args {
    /// The GGUF file to import
    pub model: PathBuf,
    /// The directory to create (must not exist unless --force)
    pub output_dir: PathBuf,
    /// Element type of the written weights: bf16 (rounded to nearest even) or f32 (exact)
    #[arg(long, value_enum, default_value = "bf16")]
    pub dtype: DtypeArg,
    /// Replace OUTPUT_DIR if it exists
    #[arg(long)]
    pub force: bool,
    /// Print nothing on success
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = ImportOptions {
        dtype: match args.dtype {
            DtypeArg::Bf16 => ImportDtype::Bf16,
            DtypeArg::F32 => ImportDtype::F32,
        },
        force: args.force,
    };
    let report = import_gguf(&args.model, &args.output_dir, &opts)
        .with_context(|| format!("importing {}", args.model.display()))?;
    if !args.quiet {
        let types: Vec<String> = report
            .source_types
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        println!(
            "imported {} ({}, pre-tokenizer {}): {} tensors ({}), {} parameters -> {}",
            args.model.display(),
            report.architecture,
            report.pre_tokenizer,
            report.tensors,
            types.join(", "),
            report.parameters,
            report.output_dir.display()
        );
        println!("files: {}", report.files.join(", "));
    }
    Ok(())
}
