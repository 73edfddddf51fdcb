//! `ue8 plan`: which chip holds a model, in which format, how fast it can at best decode and prefill,
//! and each chip's ECCN 3A090 classification.

use anyhow::Context;
use std::time::Duration;
use ue8_plan::bandwidth::measure_read_bandwidth;
use ue8_plan::catalog::{this_cpu_row, Catalog, Chip};
use ue8_plan::plan::{Plan, PlanOptions, DEFAULT_HEADROOM};
use ue8_plan::{builtin, formats_for, WeightFormat};

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

/// Arguments of `ue8 plan`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  ue8 plan deepseek-v3.1 --chip all
  ue8 plan ./my-model --chip h200,ascend-910c --format fp8-ue8m0 --context 32768 --batch 8
  ue8 plan llama-3.1-8b --json | jq '.rows[] | {chip, format, decode_tokens_per_s}'

Figures marked † are reported/estimates, ‡ single third-party compilations, * ue8 assumptions,
(m) measured on this machine; unmarked figures come from vendor datasheets. Bounds are rooflines:
real systems reach a fraction of them.")]
pub struct Args {
    /// Model: a directory with config.json, a config.json, or a built-in name (see --list-models)
    #[arg(required_unless_present = "list_models")]
    pub model: Option<String>,
    /// Chip id or part of its name (comma-separated for several), `all`, or `this-cpu`
    #[arg(long, default_value = "all")]
    pub chip: String,
    /// Weight format: bf16, fp8-ue8m0, mxfp4, fp8-mxfp4-experts (DeepSeek-V4 as released) or all
    #[arg(long, default_value = "all")]
    pub format: String,
    /// Tokens per sequence held in the KV cache
    #[arg(long, default_value_t = 4096)]
    pub context: u64,
    /// Sequences decoded together
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Share of each chip's memory kept free for activations and the runtime
    #[arg(long, default_value_t = DEFAULT_HEADROOM)]
    pub headroom: f64,
    /// Plan with the output projection quantized too (as `ue8 quantize --quantize-lm-head`)
    #[arg(long)]
    pub quantize_lm_head: bool,
    /// Leave out this machine's CPU row (whose bandwidth ue8 measures, about 0.3 s)
    #[arg(long)]
    pub no_cpu: bool,
    /// Print exactly one JSON document on stdout instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also write a roofline chart to this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Print the parameter count of every tensor group
    #[arg(long)]
    pub verbose: bool,
    /// List the built-in models and exit
    #[arg(long)]
    pub list_models: bool,
}

/// Seconds of the CPU bandwidth measurement.
const CPU_BANDWIDTH_SECONDS: f64 = 0.3;

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut o = String::new();
    if args.list_models {
        for (name, _) in builtin::BUILTIN_MODELS {
            outln!(o, "{name}");
        }
        return emit(&o);
    }
    let model_arg = args.model.as_deref().unwrap_or_default();
    if !(0.0..1.0).contains(&args.headroom) {
        anyhow::bail!("--headroom must be in [0, 1), got {}", args.headroom);
    }
    if args.context == 0 || args.batch == 0 {
        anyhow::bail!("--context and --batch must be at least 1");
    }
    let spec = builtin::load_model(model_arg)?;
    let catalog = Catalog::builtin()?;
    let formats = select_formats(&args.format, &spec)?;

    let wants_cpu = !args.no_cpu
        && (args.chip.eq_ignore_ascii_case("all")
            || args
                .chip
                .split(',')
                .any(|c| matches!(c.trim(), "this-cpu" | "cpu")));
    let cpu = wants_cpu.then(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let m = measure_read_bandwidth(threads, Duration::from_secs_f64(CPU_BANDWIDTH_SECONDS));
        this_cpu_row(m.bytes_per_s / 1e9, m.threads, m.seconds)
    });
    let mut chips: Vec<&Chip> = Vec::new();
    for part in args
        .chip
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if matches!(part, "this-cpu" | "cpu") {
            continue;
        }
        for c in catalog.select(part)? {
            if !chips.iter().any(|x| x.id == c.id) {
                chips.push(c);
            }
        }
    }
    if let Some(c) = &cpu {
        chips.push(c);
    }
    if chips.is_empty() {
        anyhow::bail!("no chip selected (--chip {})", args.chip);
    }
    let opts = PlanOptions {
        context: args.context,
        batch: args.batch,
        headroom: args.headroom,
        quantize_lm_head: args.quantize_lm_head,
    };
    let plan = ue8_plan::plan(&spec, &chips, &formats, &catalog.export_rule, opts);

    if let Some(path) = &args.plot {
        let title = format!(
            "Roofline: {} ({} formats, batch {}, context {})",
            model_arg,
            formats.len(),
            args.batch,
            args.context
        );
        std::fs::write(path, ue8_plan::svg::roofline_svg(&plan, &title))
            .with_context(|| format!("{}: cannot write the SVG", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.json {
        let doc = serde_json::json!({
            "model": model_arg,
            "total_params": plan.model.params.total,
            "active_params": plan.model.params.active,
            "mtp_params": plan.model.params.mtp_total,
            "kv_bytes_per_token": plan.model.kv_bytes_per_token,
            "summary": plan.model,
            "options": plan.options,
            "formats": plan.formats,
            "rows": plan.rows,
            "export_rule": catalog.export_rule,
        });
        outln!(o, "{}", serde_json::to_string_pretty(&doc)?);
        return emit(&o);
    }
    print_table(&mut o, model_arg, &plan, &chips, &catalog);
    if args.verbose {
        outln!(
            o,
            "\nTensor groups (main model): name, parameters, active per token"
        );
        let b = ue8_plan::ParamBreakdown::of(&spec);
        for (name, p, a) in ue8_plan::plan::group_listing(&b) {
            outln!(o, "  {name:60} {p:>16} {a:>16}");
        }
    }
    emit(&o)
}

fn select_formats(arg: &str, spec: &ue8_plan::ModelSpec) -> anyhow::Result<Vec<WeightFormat>> {
    if arg.eq_ignore_ascii_case("all") {
        return Ok(formats_for(spec));
    }
    arg.split(',')
        .map(|f| WeightFormat::parse(f.trim()).map_err(anyhow::Error::from))
        .collect()
}

fn billions(n: u64) -> String {
    format!("{:.2}B", n as f64 / 1e9)
}

/// Bytes in GB (1e9), the unit memory is sold in.
fn gb(bytes: f64) -> String {
    if bytes >= 10e9 {
        format!("{:.0} GB", bytes / 1e9)
    } else if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else {
        format!("{:.0} MB", bytes / 1e6)
    }
}

fn rate(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn print_table(o: &mut String, model_arg: &str, plan: &Plan, chips: &[&Chip], catalog: &Catalog) {
    let m = &plan.model;
    let p = &m.params;
    outln!(
        o,
        "ue8 plan: {model_arg} ({}, {} layers, from {})",
        m.model_type,
        m.layers,
        m.origin
    );
    outln!(
        o,
        "  parameters: {} total, {} active per token (lm_head counts; the {} input embedding is a lookup)",
        billions(p.total),
        billions(p.active),
        billions(p.embedding)
    );
    if p.mtp_total > 0 {
        outln!(
            o,
            "  MTP module, apart: {} ({} active)",
            billions(p.mtp_total),
            billions(p.mtp_active)
        );
    }
    outln!(
        o,
        "  KV cache (BF16): {:.0} bytes per token; {} tokens x {} sequence(s) = {}",
        m.kv_bytes_per_token,
        plan.options.context,
        plan.options.batch,
        gb((m.kv_bytes_per_sequence * plan.options.batch) as f64)
    );
    let fmts: Vec<String> = plan
        .formats
        .iter()
        .map(|f| {
            format!(
                "{} {} ({:.2} bits/param)",
                f.format.name(),
                gb(f.weight_bytes as f64),
                f.bits_per_param
            )
        })
        .collect();
    outln!(o, "  weights as stored: {}", fmts.join(" | "));
    outln!(
        o,
        "  chips needed hold weights + KV with {:.0}% of each chip's memory kept free; decode bound = batch x chips x bandwidth / bytes read per step (weights of the selected experts + KV at full context); prefill bound = chips x dense peak / (2 x active params + attention FLOPs) per token",
        plan.options.headroom * 100.0
    );
    for n in &m.notes {
        outln!(o, "  note: {n}");
    }
    outln!(o);
    outln!(
        o,
        "{:<30} {:<18} {:<44} {:>9} {:>6} {:>12} {:>10} {:>13}  ECCN 3A090 (TPP, PD)",
        "chip",
        "format",
        "runs as",
        "weights",
        "chips",
        "decode tok/s",
        "per chip",
        "prefill tok/s"
    );
    for row in &plan.rows {
        let e = &row.export_control;
        let tpp = e.tpp.map_or("TPP ?".to_string(), |t| format!("TPP {t:.0}"));
        let pd = e
            .performance_density
            .map_or("PD unknown".to_string(), |d| format!("PD {d:.2}"));
        outln!(
            o,
            "{:<30} {:<18} {:<44} {:>9} {:>6} {:>12} {:>10} {:>13}  {} ({tpp}, {pd})",
            truncate(&row.chip_name, 30),
            row.format.name(),
            truncate(&row.execution_note, 44),
            gb(row.weight_bytes_in_memory as f64),
            row.chips_needed.map_or("-".to_string(), |n| n.to_string()),
            rate(row.decode_tokens_per_s),
            rate(row.decode_tokens_per_s_per_chip),
            rate(row.prefill_tokens_per_s),
            e.class
        );
    }
    outln!(o);
    outln!(o, "Chip figures used (mark: † reported, ‡ low confidence, * assumption, (m) measured; none = datasheet):");
    for c in chips {
        let f = |x: &Option<ue8_plan::Figure>, unit: &str| match x {
            Some(v) => format!("{}{}{}", significant(v.value), unit, v.confidence.mark()),
            None => "?".to_string(),
        };
        outln!(
            o,
            "  {:<30} mem {:<10} bw {:<12} bf16 {:<12} fp8 {:<12} fp4 {:<10} die {}",
            truncate(&c.name, 30),
            f(&c.memory_gb, " GB"),
            f(&c.mem_bw_gbs, " GB/s"),
            f(&c.bf16_tflops, " TF"),
            f(&c.fp8_tflops, " TF"),
            f(&c.fp4_tflops, " TF"),
            f(&c.die_area_mm2, " mm2"),
        );
    }
    outln!(
        o,
        "Sources: `ue8 chips --json` lists each figure's source. Export classification is informational: {} ({}).",
        catalog.export_rule.name, catalog.export_rule.date
    );
}

/// A catalog or measured figure with at most 4 significant digits (measured values have many).
fn significant(v: f64) -> String {
    if v >= 1000.0 || v == v.round() {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
