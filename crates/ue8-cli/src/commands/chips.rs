//! `ue8 chips`: the accelerator catalog, each figure with its confidence (and, in `--json`, its source),
//! plus this machine's CPU with the memory bandwidth ue8 measures.

use std::time::Duration;
use ue8_plan::bandwidth::measure_read_bandwidth;
use ue8_plan::catalog::{this_cpu_row, Catalog};
use ue8_plan::export_control::classify;

/// Append a line to an output buffer (the whole output is written at once, see `emit`).
macro_rules! outln {
    ($o:expr) => {
        $o.push('\n')
    };
    ($o:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($arg)*);
    }};
}

/// Write the output to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Arguments of `ue8 chips`.
#[derive(clap::Args)]
pub struct Args {
    /// Print exactly one JSON document on stdout (every figure with its source and confidence)
    #[arg(long)]
    pub json: bool,
    /// Leave out this machine's CPU row (whose bandwidth ue8 measures, about 0.3 s)
    #[arg(long)]
    pub no_cpu: bool,
}

/// Seconds of the CPU bandwidth measurement.
const CPU_BANDWIDTH_SECONDS: f64 = 0.3;

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut o = String::new();
    let mut catalog = Catalog::builtin()?;
    if !args.no_cpu {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let m = measure_read_bandwidth(threads, Duration::from_secs_f64(CPU_BANDWIDTH_SECONDS));
        catalog
            .chips
            .push(this_cpu_row(m.bytes_per_s / 1e9, m.threads, m.seconds));
    }
    if args.json {
        let chips: Vec<serde_json::Value> = catalog
            .chips
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or(serde_json::Value::Null);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert(
                        "export_control".to_string(),
                        serde_json::to_value(classify(c, &catalog.export_rule))
                            .unwrap_or(serde_json::Value::Null),
                    );
                }
                v
            })
            .collect();
        let doc = serde_json::json!({
            "export_rule": catalog.export_rule,
            "chips": chips,
        });
        outln!(o, "{}", serde_json::to_string_pretty(&doc)?);
        return emit(&o);
    }
    outln!(
        o,
        "{:<16} {:<32} {:>10} {:>12} {:>11} {:>11} {:>11} {:<6} {:<20}",
        "id",
        "name",
        "memory GB",
        "bw GB/s",
        "BF16 TF",
        "FP8 TF",
        "FP4 TF",
        "year",
        "ECCN 3A090"
    );
    for c in &catalog.chips {
        let f = |x: &Option<ue8_plan::Figure>| match x {
            Some(v) => format!("{}{}", v.value.round(), v.confidence.mark()),
            None => "?".to_string(),
        };
        let fp8 = if c.fp8_native {
            f(&c.fp8_tflops)
        } else {
            "no FP8".to_string()
        };
        let fp4 = if c.fp4_native {
            f(&c.fp4_tflops)
        } else {
            "-".to_string()
        };
        outln!(
            o,
            "{:<16} {:<32} {:>10} {:>12} {:>11} {:>11} {:>11} {:<6} {:<20}",
            c.id,
            c.name,
            f(&c.memory_gb),
            f(&c.mem_bw_gbs),
            f(&c.bf16_tflops),
            fp8,
            fp4,
            if c.year == 0 {
                "-".to_string()
            } else {
                c.year.to_string()
            },
            classify(c, &catalog.export_rule).class
        );
    }
    outln!(
        o,
        "\nMarks: † reported/estimate, ‡ single third-party compilation (low), * ue8 assumption, (m) measured here; unmarked = vendor datasheet. Dense figures (no sparsity)."
    );
    outln!(
        o,
        "Every figure's source: `ue8 chips --json`. Export classification (informational): {} ({}).",
        catalog.export_rule.name, catalog.export_rule.date
    );
    emit(&o)
}
