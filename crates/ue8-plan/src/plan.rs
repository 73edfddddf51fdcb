//! The plan: for each chip x format, the memory a model needs, how many chips hold it with its KV cache,
//! and the roofline bounds on decode (memory bandwidth) and prefill (compute).
//!
//! Assumptions, all stated in the output:
//! - Decode reads, per step, the weights of everything a token is multiplied by (the experts a batch of
//!   `batch` tokens selects, with uniform independent routing) plus the whole KV cache of each sequence
//!   at `context` tokens (the worst step), at the chip group's total memory bandwidth.
//! - Prefill does 2 FLOPs per active parameter per token plus attention at the prompt's mean position,
//!   at the dense peak of the format the chip computes in.
//! - A chip that cannot compute in the stored format either dequantizes on the fly (weights stay narrow
//!   in memory, compute in BF16) where the catalog says a public serving stack does that, or widens the
//!   weights in memory (more bytes held and read).

use crate::catalog::Chip;
use crate::catalog::ExportRule;
use crate::export_control::{classify, Classification};
use crate::format::{group_element, FormatOptions, WeightFormat};
use crate::kv::{attention_flops_at, kv_bytes, kv_bytes_per_token};
use crate::params::{Module, ParamBreakdown, ParamTotals, TensorGroup, TensorKind};
use crate::spec::ModelSpec;
use serde::Serialize;

/// Share of each chip's memory kept free for activations, the runtime and fragmentation.
pub const DEFAULT_HEADROOM: f64 = 0.10;

/// User choices of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanOptions {
    /// Tokens per sequence held in the KV cache.
    pub context: u64,
    /// Sequences decoded together.
    pub batch: u64,
    /// Share of memory kept free (0..1).
    pub headroom: f64,
    pub quantize_lm_head: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            context: 4096,
            batch: 1,
            headroom: DEFAULT_HEADROOM,
            quantize_lm_head: false,
        }
    }
}

/// How a chip runs a stored format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecMode {
    /// The matrix units take the format.
    Native,
    /// Weights stay in the stored format in memory; kernels widen them to BF16 in registers.
    DequantOnTheFly,
    /// Weights are widened in memory (to `memory_format`) before serving.
    WidenedInMemory,
}

/// The format weights have in memory, the one the matrix units compute in, and how that was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub mode: ExecMode,
    pub memory_format: WeightFormat,
    /// "bf16", "fp8" or "fp4".
    pub compute: &'static str,
}

/// Decide how `chip` runs weights stored in `format`.
pub fn execution(chip: &Chip, format: WeightFormat) -> Execution {
    let native = |compute| Execution {
        mode: ExecMode::Native,
        memory_format: format,
        compute,
    };
    let widened = |to: WeightFormat| Execution {
        mode: ExecMode::WidenedInMemory,
        memory_format: to,
        compute: if to == WeightFormat::Bf16 {
            "bf16"
        } else {
            "fp8"
        },
    };
    let on_the_fly = Execution {
        mode: ExecMode::DequantOnTheFly,
        memory_format: format,
        compute: "bf16",
    };
    let fp8_or_bf16 = if chip.fp8_native {
        WeightFormat::Fp8Ue8m0
    } else {
        WeightFormat::Bf16
    };
    match format {
        WeightFormat::Bf16 => native("bf16"),
        WeightFormat::Fp8Ue8m0 if chip.fp8_native => native("fp8"),
        WeightFormat::Mxfp4 if chip.fp4_native => native("fp4"),
        WeightFormat::Fp8Mxfp4Experts if chip.fp4_native && chip.fp8_native => native("fp8"),
        // MXFP4 MoE kernels are Blackwell-class only (issue 11): an FP8 chip needs the experts in FP8.
        WeightFormat::Fp8Mxfp4Experts => widened(fp8_or_bf16),
        WeightFormat::Fp8Ue8m0 | WeightFormat::Mxfp4 if chip.dequantizes_on_the_fly() => on_the_fly,
        WeightFormat::Fp8Ue8m0 => widened(WeightFormat::Bf16),
        WeightFormat::Mxfp4 => widened(fp8_or_bf16),
    }
}

impl Execution {
    /// Words for tables.
    pub fn describe(&self, stored: WeightFormat) -> String {
        match self.mode {
            ExecMode::Native => "native".to_string(),
            ExecMode::DequantOnTheFly => format!(
                "{} kept in memory, dequantized on the fly, computes {}",
                stored.name(),
                self.compute
            ),
            ExecMode::WidenedInMemory => format!(
                "widened to {} in memory, computes {}",
                self.memory_format.name(),
                self.compute
            ),
        }
    }
}

/// The model's figures that do not depend on the chip.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub origin: String,
    pub model_type: String,
    pub layers: u64,
    pub params: ParamTotals,
    /// Bytes each further token adds to one sequence's KV cache (BF16), once windows are full.
    pub kv_bytes_per_token: f64,
    /// KV bytes of one sequence at `context` tokens.
    pub kv_bytes_per_sequence: u64,
    pub experts_released_fp4: bool,
    pub notes: Vec<String>,
}

/// Bytes of a whole format, chip-independent.
#[derive(Debug, Clone, Serialize)]
pub struct FormatFootprint {
    pub format: WeightFormat,
    /// Weights of the main model as stored, scales included.
    pub weight_bytes: u64,
    /// Weight bytes a decode step reads at `batch` (active experts only).
    pub decode_weight_bytes_per_step: f64,
    /// Mean bits per stored parameter.
    pub bits_per_param: f64,
}

/// One chip x format line.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    pub chip: String,
    pub chip_name: String,
    pub format: WeightFormat,
    pub execution: Execution,
    pub execution_note: String,
    /// Weights as held in memory (after any widening).
    pub weight_bytes_in_memory: u64,
    /// KV cache of `batch` sequences at `context`.
    pub kv_bytes: u64,
    pub chip_memory_bytes: Option<f64>,
    /// Memory bandwidth of one chip, bytes/s.
    pub chip_bandwidth_bytes_per_s: Option<f64>,
    /// Dense peak of the format the chip computes in, TFLOPS (one chip).
    pub compute_peak_tflops: Option<f64>,
    pub chips_needed: Option<u64>,
    /// Bytes read per decode step (weights + KV of the whole batch).
    pub bytes_read_per_step: f64,
    /// Upper bound on decode tokens/s of the whole batch on `chips_needed` chips.
    pub decode_tokens_per_s: Option<f64>,
    /// The same bound per sequence.
    pub decode_tokens_per_s_per_sequence: Option<f64>,
    /// The same bound divided by the chips it uses: compares formats that need different chip counts.
    pub decode_tokens_per_s_per_chip: Option<f64>,
    /// Upper bound on prefill tokens/s on `chips_needed` chips.
    pub prefill_tokens_per_s: Option<f64>,
    pub export_control: Classification,
    /// Why a figure is missing, or other caveats.
    pub notes: Vec<String>,
}

/// A whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub model: ModelSummary,
    pub options: PlanOptions,
    pub formats: Vec<FormatFootprint>,
    pub rows: Vec<PlanRow>,
}

/// Expected number of distinct experts `batch` tokens select when each picks `k` of `e` uniformly.
pub fn expected_distinct_experts(e: u64, k: u64, batch: u64) -> f64 {
    if e == 0 {
        return 0.0;
    }
    let miss = 1.0 - (k.min(e) as f64 / e as f64);
    e as f64 * (1.0 - miss.powf(batch as f64))
}

/// Stored tensors of a group: a tied head becomes its own tensor when it is quantized (issue 9).
fn stored_count(g: &TensorGroup, opts: FormatOptions, format: WeightFormat) -> u64 {
    if g.kind == TensorKind::LmHead
        && g.count == 0
        && opts.quantize_lm_head
        && format != WeightFormat::Bf16
    {
        1
    } else {
        g.count
    }
}

/// Weight bytes of the main model in `format`.
pub fn weight_bytes(b: &ParamBreakdown, format: WeightFormat, opts: FormatOptions) -> u64 {
    b.main_groups()
        .map(|g| {
            group_element(format, g, opts)
                .matrix_bytes(g.rows, g.cols)
                .saturating_mul(stored_count(g, opts, format))
        })
        .fold(0u64, u64::saturating_add)
}

/// Weight bytes one decode step of `batch` tokens reads in `format`.
pub fn decode_weight_bytes(
    b: &ParamBreakdown,
    spec: &ModelSpec,
    format: WeightFormat,
    opts: FormatOptions,
    batch: u64,
) -> f64 {
    b.main_groups()
        .map(|g| {
            let per = group_element(format, g, opts).matrix_bytes(g.rows, g.cols) as f64;
            let tensors = match (g.kind, g.routed) {
                // One embedding row per token.
                (TensorKind::Embedding, _) => {
                    return batch as f64 * (spec.hidden_size * crate::format::BF16_BYTES) as f64;
                }
                (_, Some((e, k))) => {
                    let per_expert = g.count as f64 / e as f64;
                    per_expert * expected_distinct_experts(e, k, batch)
                }
                _ => g.active as f64,
            };
            per * tensors
        })
        .sum()
}

/// Build a plan for `spec` over `chips` and `formats`.
pub fn plan(
    spec: &ModelSpec,
    chips: &[&Chip],
    formats: &[WeightFormat],
    rule: &ExportRule,
    opts: PlanOptions,
) -> Plan {
    let breakdown = ParamBreakdown::of(spec);
    let totals = breakdown.totals();
    let fopts = FormatOptions {
        quantize_lm_head: opts.quantize_lm_head,
    };
    let kv_seq = kv_bytes(spec, opts.context);
    let kv_all = kv_seq.saturating_mul(opts.batch);
    let mut notes = spec.notes.clone();
    if totals.mtp_total > 0 {
        notes.push(format!(
            "MTP module ({:.2}B parameters) reported apart and not loaded in these plans",
            totals.mtp_total as f64 / 1e9
        ));
    }
    let model = ModelSummary {
        origin: spec.origin.clone(),
        model_type: spec.model_type.clone(),
        layers: spec.num_layers(),
        params: totals,
        kv_bytes_per_token: kv_bytes_per_token(spec),
        kv_bytes_per_sequence: kv_seq,
        experts_released_fp4: spec.experts_released_fp4,
        notes,
    };
    let footprint = |f: WeightFormat| {
        let bytes = weight_bytes(&breakdown, f, fopts);
        FormatFootprint {
            format: f,
            weight_bytes: bytes,
            decode_weight_bytes_per_step: decode_weight_bytes(
                &breakdown, spec, f, fopts, opts.batch,
            ),
            bits_per_param: if totals.total > 0 {
                bytes as f64 * 8.0 / totals.total as f64
            } else {
                0.0
            },
        }
    };
    let formats_out: Vec<FormatFootprint> = formats.iter().map(|f| footprint(*f)).collect();
    let flops_per_token = 2.0 * totals.active as f64 + attention_flops_at(spec, opts.context / 2);
    let mut rows = Vec::new();
    for chip in chips {
        let export = classify(chip, rule);
        for f in formats {
            let exec = execution(chip, *f);
            let mem_weights = weight_bytes(&breakdown, exec.memory_format, fopts);
            let step_weights =
                decode_weight_bytes(&breakdown, spec, exec.memory_format, fopts, opts.batch);
            let step_bytes = step_weights + kv_all as f64;
            let mut row_notes = Vec::new();
            let chip_mem = chip.memory_gb.as_ref().map(|m| m.value * 1e9);
            let usable = chip_mem.map(|m| m * (1.0 - opts.headroom));
            let chips_needed = match usable {
                Some(u) if u > 0.0 => Some(
                    (((mem_weights.saturating_add(kv_all)) as f64) / u)
                        .ceil()
                        .max(1.0) as u64,
                ),
                _ => {
                    row_notes.push("memory size unknown: chips needed not computed".to_string());
                    None
                }
            };
            let bw = chip.mem_bw_gbs.as_ref().map(|b| b.value * 1e9);
            let decode = match (bw, chips_needed) {
                (Some(bw), Some(n)) if step_bytes > 0.0 => {
                    Some(opts.batch as f64 * n as f64 * bw / step_bytes)
                }
                (None, _) => {
                    row_notes.push("memory bandwidth unknown: no decode bound".to_string());
                    None
                }
                _ => None,
            };
            let peak = match exec.compute {
                "fp8" => chip.fp8_tflops.as_ref(),
                "fp4" => chip.fp4_tflops.as_ref(),
                _ => chip.bf16_tflops.as_ref(),
            };
            let prefill = match (peak, chips_needed) {
                (Some(p), Some(n)) if flops_per_token > 0.0 => {
                    Some(n as f64 * p.value * 1e12 / flops_per_token)
                }
                (None, _) => {
                    row_notes.push(format!("{} peak unknown: no prefill bound", exec.compute));
                    None
                }
                _ => None,
            };
            rows.push(PlanRow {
                chip: chip.id.clone(),
                chip_name: chip.name.clone(),
                format: *f,
                execution: exec,
                execution_note: exec.describe(*f),
                weight_bytes_in_memory: mem_weights,
                kv_bytes: kv_all,
                chip_memory_bytes: chip_mem,
                chip_bandwidth_bytes_per_s: bw,
                compute_peak_tflops: peak.map(|p| p.value),
                chips_needed,
                bytes_read_per_step: step_bytes,
                decode_tokens_per_s: decode,
                decode_tokens_per_s_per_sequence: decode.map(|d| d / opts.batch.max(1) as f64),
                decode_tokens_per_s_per_chip: match (decode, chips_needed) {
                    (Some(d), Some(n)) if n > 0 => Some(d / n as f64),
                    _ => None,
                },
                prefill_tokens_per_s: prefill,
                export_control: export.clone(),
                notes: row_notes,
            });
        }
    }
    Plan {
        model,
        options: opts,
        formats: formats_out,
        rows,
    }
}

/// Main-model groups of a breakdown as (name, params, active), for `--verbose` listings.
pub fn group_listing(b: &ParamBreakdown) -> Vec<(String, u64, u64)> {
    b.groups
        .iter()
        .filter(|g| g.module == Module::Main)
        .map(|g| (g.name.clone(), g.params(), g.active_params()))
        .collect()
}
