//! `ue8 requantize`: DeepSeek-V3 F32-scale FP8 -> UE8M0 (power-of-two) scales, per tensor added error;
//! tensors whose scales are already powers of two come out byte-identical.

use super::convert_progress::{command_line, parse_size, with_threads, CliProgress};
use std::path::PathBuf;

/// Arguments of `ue8 requantize`.
#[derive(clap::Args)]
pub struct Args {
    /// A DeepSeek FP8 checkpoint (.safetensors file or model directory)
    pub input: PathBuf,
    /// Output directory (must not exist unless --force)
    pub output: PathBuf,
    /// Target format; only fp8-ue8m0
    #[arg(long = "to", value_parser = ["fp8-ue8m0"])]
    pub to: String,
    /// How the new scales are stored: f32 (default) or e8m0 (F8_E8M0 bytes)
    #[arg(long, value_parser = ["f32", "e8m0"], default_value = "f32")]
    pub scale_dtype: String,
    /// Worker threads (default: one per core)
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Largest shard, e.g. 5GB (default)
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
    /// DeepSeek-V4 only: re-encode FP4 experts to FP8 even where it is not exact (a 32-group more than
    /// 2^14 below its tile's largest), rounding to nearest even and reporting the error per tensor
    #[arg(long)]
    pub allow_lossy: bool, // v4
    /// Replace OUTPUT if it exists
    #[arg(long)]
    pub force: bool,
    /// No progress output
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the manifest (per-tensor added error) as one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
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
        return super::v4::requantize(&ck, args.allow_lossy, r);
    }
    let plan = ue8_convert::plan_requantize(&ck, args.scale_dtype == "e8m0")?;
    let opts = ue8_convert::RunOptions {
        max_shard_size,
        force: args.force,
        command_line: command_line(),
    };
    let progress = CliProgress::new(args.quiet || args.json, "requantize");
    let summary = with_threads(args.threads, || {
        ue8_convert::execute(&ck, &plan, &args.output, &opts, &progress)
    })??;
    super::convert_report::print_summary(&summary, args.json, args.quiet)
}
