//! `ue8 dequantize`: any layout ue8 reads (its own, DeepSeek V3/V3.1, gpt-oss MXFP4) -> plain
//! BF16/F16/F32 with `quantization_config` removed: the CPU answer to DeepSeek's `fp8_cast_bf16.py`.

use super::convert_progress::{command_line, parse_size, with_threads, CliProgress};
use std::path::PathBuf;

/// Arguments of `ue8 dequantize`.
#[derive(clap::Args)]
pub struct Args {
    /// A quantized checkpoint (.safetensors file or model directory)
    pub input: PathBuf,
    /// Output directory (must not exist unless --force)
    pub output: PathBuf,
    /// Output dtype of dequantized weights (other tensors are copied as they are)
    #[arg(long, value_parser = ["bf16", "f16", "f32"], default_value = "bf16")]
    pub dtype: String,
    /// Worker threads (default: one per core)
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Largest shard, e.g. 5GB (default)
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub force: bool,
    /// No progress output
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the manifest as one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dtype = ue8_convert::OutDtype::parse(&args.dtype)?;
    let max_shard_size = parse_size(&args.max_shard_size).map_err(anyhow::Error::msg)?;
    let ck = ue8_io::Checkpoint::open(&args.input)?;
    if ue8_io::layout_v4::is_v4(&ck) {
        // v4: DeepSeek-V4 layout (issue 11)
        let r = super::v4::V4Run {
            output: &args.output,
            max_shard_size: &args.max_shard_size,
            force: args.force,
            threads: args.threads,
            quiet: args.quiet,
            json: args.json,
        };
        return super::v4::dequantize(&ck, &args.dtype, r);
    }
    let plan = ue8_convert::plan_dequantize(&ck, dtype)?;
    let opts = ue8_convert::RunOptions {
        max_shard_size,
        force: args.force,
        command_line: command_line(),
    };
    let progress = CliProgress::new(args.quiet || args.json, "dequantize");
    let summary = with_threads(args.threads, || {
        ue8_convert::execute(&ck, &plan, &args.output, &opts, &progress)
    })??;
    super::convert_report::print_summary(&summary, args.json, args.quiet)
}
