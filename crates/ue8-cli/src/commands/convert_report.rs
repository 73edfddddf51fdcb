//! Printing a conversion summary: a short per-tensor table on stderr-free stdout, or the manifest as
//! one JSON document with `--json`.

use std::io::Write;
use ue8_convert::Summary;

/// Writes to stdout; a closed pipe (`ue8 ... | head`) ends output quietly instead of panicking.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut so = std::io::stdout().lock();
    match so.write_all(text.as_bytes()).and_then(|_| so.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

macro_rules! outln {
    ($buf:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($buf, $($arg)*);
    }};
}
pub(crate) use outln;

pub fn print_summary(s: &Summary, json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&s.manifest)?));
    }
    if quiet {
        return Ok(());
    }
    let m = &s.manifest;
    let mut buf = String::new();
    let counts = |a: &str| m.tensors.iter().filter(|t| t.action == a).count();
    outln!(buf,
        "{} -> {} ({}): {} quantized, {} requantized, {} passed through, {} dequantized, {} kept; {} files, {} bytes of weights",
        m.operation,
        s.output.display(),
        m.target,
        counts("quantized"),
        counts("requantized"),
        counts("passed-through"),
        counts("dequantized"),
        counts("kept"),
        m.files.len(),
        s.bytes_written
    );
    let with_metrics: Vec<_> = m.tensors.iter().filter(|t| t.metrics.is_some()).collect();
    if !with_metrics.is_empty() {
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
        for t in with_metrics {
            if let Some(x) = &t.metrics {
                let snr = x
                    .snr_db
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "inf".into());
                outln!(
                    buf,
                    "{:<60} {:>10.3e} {:>10.3e} {:>9} {:>10.6} {:>8.5}",
                    t.name,
                    x.max_abs,
                    x.rms,
                    snr,
                    x.cosine,
                    x.clipped_share
                );
            }
        }
    }
    out(&buf)
}
