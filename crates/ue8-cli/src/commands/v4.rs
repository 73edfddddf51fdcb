//! DeepSeek-V4 checkpoints in `inspect`, `dequantize` and `requantize` (issue 11): those commands call
//! here when `ue8_io::layout_v4::is_v4` holds; same progress, summary and `--json` rules as the rest.

use super::convert_progress::{command_line, parse_size, with_threads, CliProgress};
use super::convert_report::{out, outln, print_summary};
use std::path::Path;
use ue8_io::Checkpoint;

/// What the converter commands pass on.
pub struct V4Run<'a> {
    pub output: &'a Path,
    pub max_shard_size: &'a str,
    pub force: bool,
    pub threads: usize,
    pub quiet: bool,
    pub json: bool,
}

fn options(r: &V4Run<'_>) -> anyhow::Result<ue8_convert::RunOptions> {
    Ok(ue8_convert::RunOptions {
        max_shard_size: parse_size(r.max_shard_size).map_err(anyhow::Error::msg)?,
        force: r.force,
        command_line: command_line(),
    })
}

/// `ue8 dequantize` of a V4 checkpoint.
pub fn dequantize(ck: &Checkpoint, dtype: &str, r: V4Run<'_>) -> anyhow::Result<()> {
    let dtype = ue8_convert::OutDtype::parse(dtype)?;
    let opts = options(&r)?;
    let progress = CliProgress::new(r.quiet || r.json, "dequantize");
    let s = with_threads(r.threads, || {
        ue8_convert::v4::dequantize_v4(ck, dtype, r.output, &opts, &progress)
    })??;
    print_summary(&s, r.json, r.quiet)
}

/// `ue8 requantize --to fp8-ue8m0` of a V4 checkpoint.
pub fn requantize(ck: &Checkpoint, allow_lossy: bool, r: V4Run<'_>) -> anyhow::Result<()> {
    let opts = options(&r)?;
    let progress = CliProgress::new(r.quiet || r.json, "requantize");
    let v4 = ue8_convert::v4::V4RequantizeOptions { allow_lossy };
    let s = with_threads(r.threads, || {
        ue8_convert::v4::requantize_v4(ck, v4, r.output, &opts, &progress)
    })??;
    let lossy: Vec<_> = s
        .manifest
        .tensors
        .iter()
        .filter(|t| t.reason.as_deref().is_some_and(|x| x.starts_with("LOSSY")))
        .collect();
    if !lossy.is_empty() {
        eprintln!(
            "warning: {} FP4 expert(s) re-encoded with rounding (--allow-lossy); see their metrics",
            lossy.len()
        );
    }
    print_summary(&s, r.json, r.quiet)
}

/// `ue8 inspect` of a V4 checkpoint.
pub fn inspect(ck: &Checkpoint, json: bool) -> anyhow::Result<()> {
    let r = ue8_convert::v4::inspect_v4(ck);
    let mut buf = String::new();
    if json {
        let mut v = serde_json::to_value(&r)?;
        v["format"] = serde_json::json!("safetensors");
        outln!(buf, "{}", serde_json::to_string_pretty(&v)?);
        return out(&buf);
    }
    outln!(
        buf,
        "{}: DeepSeek-V4 layout, {} tensors in {} file(s), {} bytes",
        r.path,
        r.tensors,
        r.files.len(),
        r.bytes
    );
    outln!(buf, "{:<44} {:>8} {:>14}", "kind", "tensors", "bytes");
    for (k, c) in &r.by_kind {
        outln!(buf, "{k:<44} {:>8} {:>14}", c.tensors, c.bytes);
    }
    outln!(buf, "expert_dtype: {}", r.expert_dtype);
    match &r.quantization_config {
        Some(q) => outln!(buf, "quantization_config: {}", serde_json::to_string(q)?),
        None => outln!(buf, "quantization_config: none"),
    }
    outln!(
        buf,
        "FP4 experts: {} of {} re-encode to FP8 (128x128 E8M0 tiles) exactly; largest group gap 2^{}",
        r.fp4_reencode_exact,
        r.fp4_experts,
        r.fp4_max_gap
    );
    for e in &r.fp4_reencode_not_exact {
        outln!(
            buf,
            "  not exact: {}: {}",
            e.name,
            e.problem.as_deref().unwrap_or("")
        );
    }
    if r.anomalies.is_empty() {
        outln!(buf, "anomalies: none");
    } else {
        outln!(buf, "anomalies ({}):", r.anomalies.len());
        for a in &r.anomalies {
            outln!(buf, "  {a}");
        }
    }
    out(&buf)
}
