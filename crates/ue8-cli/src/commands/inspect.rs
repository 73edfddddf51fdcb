//! `ue8 inspect`: a checkpoint's tensors grouped by dtype, its detected layout and quantization_config,
//! the lm_head choice, and anomalies. Reads safetensors (file or directory) and GGUF.

use super::convert_report::{out, outln};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `ue8 inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// A .safetensors file, a model directory, or a .gguf file
    pub path: PathBuf,
    /// Print one JSON document on stdout instead of the text report
    #[arg(long)]
    pub json: bool,
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

fn is_gguf(path: &std::path::Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map(|_| &magic == b"GGUF")
        .unwrap_or(false)
}

fn inspect_gguf(args: &Args) -> anyhow::Result<()> {
    let mut buf = String::new();
    let g = ue8_io::gguf::GgufFile::open(&args.path)?;
    let mut by: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut bytes = 0;
    for t in g.tensors() {
        let e = by.entry(t.ggml_type.name().to_string()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
        bytes += t.n_bytes;
    }
    let arch = g
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    let lm_head = match g.tensors().iter().find(|t| t.name == "output.weight") {
        Some(t) => format!("output.weight ({})", t.ggml_type.name()),
        None => "tied to token_embd".to_string(),
    };
    if args.json {
        let groups: Vec<_> = by
            .iter()
            .map(|(d, (n, b))| json!({"dtype": d, "tensors": n, "bytes": b}))
            .collect();
        let doc = json!({"path": args.path.display().to_string(), "format": "gguf", "version": g.header().version,
            "architecture": arch, "tensors": g.tensors().len(), "bytes": bytes, "by_dtype": groups,
            "metadata_keys": g.header().metadata.len(), "lm_head": lm_head, "anomalies": []});
        outln!(buf, "{}", serde_json::to_string_pretty(&doc)?);
        return out(&buf);
    }
    outln!(
        buf,
        "{}: GGUF v{}, architecture {arch}",
        args.path.display(),
        g.header().version
    );
    outln!(
        buf,
        "{} tensors, {} of data, {} metadata keys",
        g.tensors().len(),
        human(bytes),
        g.header().metadata.len()
    );
    outln!(buf, "{:<12} {:>8} {:>12}", "type", "tensors", "bytes");
    for (d, (n, b)) in &by {
        outln!(buf, "{d:<12} {n:>8} {:>12}", human(*b));
    }
    outln!(buf, "lm_head: {lm_head}");
    out(&buf)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut buf = String::new();
    if args.path.is_file() && is_gguf(&args.path) {
        return inspect_gguf(&args);
    }
    let ck = ue8_io::Checkpoint::open(&args.path)?;
    if ue8_io::layout_v4::is_v4(&ck) {
        return super::v4::inspect(&ck, args.json); // v4: DeepSeek-V4 layout
    }
    let r = ue8_convert::inspect::inspect(&ck);
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["format"] = json!("safetensors");
        outln!(buf, "{}", serde_json::to_string_pretty(&v)?);
        return out(&buf);
    }
    outln!(
        buf,
        "{}: {} tensors in {} file(s), {}",
        r.path,
        r.tensors,
        r.files.len(),
        human(r.bytes)
    );
    outln!(buf, "{:<12} {:>8} {:>12}", "dtype", "tensors", "bytes");
    for g in &r.by_dtype {
        outln!(
            buf,
            "{:<12} {:>8} {:>12}",
            g.dtype,
            g.tensors,
            human(g.bytes)
        );
    }
    outln!(buf, "layout: {}", r.layout);
    for (k, n) in &r.quantized_groups {
        outln!(buf, "  {n} x {k}");
    }
    match &r.quantization_config {
        Some(q) => outln!(buf, "quantization_config: {}", serde_json::to_string(q)?),
        None => outln!(buf, "quantization_config: none"),
    }
    outln!(buf, "lm_head: {}", r.lm_head);
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
