//! `ue8 diff`: compare two checkpoints tensor by tensor (any layouts ue8 reads; A is the reference).

use super::convert_report::{out, outln};
use std::path::PathBuf;

/// Arguments of `ue8 diff`.
#[derive(clap::Args)]
pub struct Args {
    /// Reference checkpoint (.safetensors file or directory)
    pub a: PathBuf,
    /// Checkpoint compared with A
    pub b: PathBuf,
    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut buf = String::new();
    let a = ue8_io::Checkpoint::open(&args.a)?;
    let b = ue8_io::Checkpoint::open(&args.b)?;
    let r = ue8_convert::diff::diff(&a, &b)?;
    if args.json {
        outln!(buf, "{}", serde_json::to_string_pretty(&r)?);
        return out(&buf);
    }
    outln!(
        buf,
        "{:<60} {:>10} {:>10} {:>9} {:>10} {:>8}",
        "tensor",
        "max_abs",
        "rms",
        "snr_db",
        "cosine",
        "clipped"
    );
    for t in &r.tensors {
        let snr = t
            .snr_db
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "inf".into());
        outln!(
            buf,
            "{:<60} {:>10.3e} {:>10.3e} {:>9} {:>10.6} {:>8.5}",
            t.name,
            t.max_abs,
            t.rms,
            snr,
            t.cosine,
            t.clipped_share
        );
    }
    for n in &r.only_in_a {
        outln!(buf, "only in A: {n}");
    }
    for n in &r.only_in_b {
        outln!(buf, "only in B: {n}");
    }
    for n in &r.shape_mismatch {
        outln!(buf, "shape mismatch: {n}");
    }
    out(&buf)
}
