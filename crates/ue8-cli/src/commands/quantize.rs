//! `ue8 quantize`: BF16/F16/F32 (or any layout ue8 reads) -> FP8 (DeepSeek blockwise) or an OCP MX
//! format, streaming, into a new directory. Layouts: docs/layouts.md.

use super::convert_progress::{command_line, parse_size, with_threads, CliProgress};
use std::path::PathBuf;
use ue8_convert::{RuleChoice, ScaleDtype, Scheme, TargetFormat};

/// Arguments of `ue8 quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// A .safetensors file or a model directory (single file or shards + index, config.json, ...)
    pub input: PathBuf,
    /// Output directory (must not exist unless --force); built under a temporary name, renamed when complete
    pub output: PathBuf,
    /// fp8-ue8m0 | fp8 | mxfp8 | mxfp8-e5m2 | mxfp6-e3m2 | mxfp6-e2m3 | mxfp4
    #[arg(long = "to")]
    pub to: String,
    /// ue8m0-ceil (default for fp8-ue8m0) | floor (OCP, default for MX) | rceil
    #[arg(long)]
    pub scale_rule: Option<String>,
    /// How scales are stored: f32 (default for fp8-ue8m0: what transformers, vLLM, SGLang read) or
    /// e8m0 (F8_E8M0 bytes). MX scales are E8M0 bytes, stored as U8 unless e8m0 is given.
    #[arg(long, value_parser = ["f32", "e8m0"])]
    pub scale_dtype: Option<String>,
    /// Keep tensors whose name matches this regex unquantized (repeatable)
    #[arg(long)]
    pub keep: Vec<String>,
    /// Quantize the output projection too (a tied model gets its own lm_head.weight; issue 9)
    #[arg(long)]
    pub quantize_lm_head: bool,
    /// Worker threads (default: one per core)
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Largest shard, e.g. 5GB (default), 500MB, 2GiB
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub force: bool,
    /// No progress output
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the manifest's per-tensor report as one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format = TargetFormat::parse(&args.to)?;
    let rule = args
        .scale_rule
        .as_deref()
        .map(RuleChoice::parse)
        .transpose()?;
    let scale_dtype = match args.scale_dtype.as_deref() {
        Some("e8m0") => Some(ScaleDtype::E8m0),
        Some(_) => Some(ScaleDtype::F32),
        None => None,
    };
    let scheme = Scheme::resolve(format, rule, scale_dtype)?;
    let max_shard_size = parse_size(&args.max_shard_size).map_err(anyhow::Error::msg)?;
    let ck = ue8_io::Checkpoint::open(&args.input)?;
    let plan = ue8_convert::plan_quantize(
        &ck,
        &ue8_convert::QuantizePlanOptions {
            format,
            scheme,
            keep: args.keep.clone(),
            quantize_lm_head: args.quantize_lm_head,
        },
    )?;
    let opts = ue8_convert::RunOptions {
        max_shard_size,
        force: args.force,
        command_line: command_line(),
    };
    let progress = CliProgress::new(args.quiet || args.json, "quantize");
    let summary = with_threads(args.threads, || {
        ue8_convert::execute(&ck, &plan, &args.output, &opts, &progress)
    })??;
    super::convert_report::print_summary(&summary, args.json, args.quiet)
}
