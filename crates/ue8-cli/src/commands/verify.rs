//! `ue8 verify`: re-hash a converted directory against its ue8-manifest.json and check its structure.
//! Exit status 1 when anything is wrong.

use super::convert_report::{out, outln};
use std::path::PathBuf;

/// Arguments of `ue8 verify`.
#[derive(clap::Args)]
pub struct Args {
    /// A directory written by ue8 (has ue8-manifest.json)
    pub dir: PathBuf,
    /// Print one JSON document on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut buf = String::new();
    let r = ue8_convert::verify::verify(&args.dir);
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["ok"] = serde_json::Value::Bool(r.ok());
        outln!(buf, "{}", serde_json::to_string_pretty(&v)?);
    } else if r.ok() {
        outln!(
            buf,
            "{}: OK ({} files match the manifest, {} tensors, structure valid)",
            r.path,
            r.files_checked,
            r.tensors
        );
    } else {
        outln!(buf, "{}: {} problem(s)", r.path, r.problems.len());
        for p in &r.problems {
            outln!(buf, "  {p}");
        }
    }
    out(&buf)?;
    if !r.ok() {
        anyhow::bail!(
            "verification failed: {} problem(s) in {}",
            r.problems.len(),
            r.path
        );
    }
    Ok(())
}
