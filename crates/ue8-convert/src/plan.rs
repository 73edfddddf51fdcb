//! Conversion plans: for every tensor of the input, what is written (names, dtypes, shapes) and how.
//! A plan is computed before any byte is written, so shards and headers are known in advance and the
//! writer can stream.

use crate::encode::output_specs;
use crate::format::{quantization_config, Scheme, TargetFormat};
use crate::select::{is_embedding, is_lm_head, Selector};
use crate::ConvertError;
use std::collections::BTreeMap;
use ue8_io::layout::{self, GroupKind, LayoutEntry, QuantGroup};
use ue8_io::{Checkpoint, Dtype, TensorSpec};

/// Output dtype of `dequantize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutDtype {
    Bf16,
    F16,
    F32,
}

impl OutDtype {
    pub fn parse(s: &str) -> Result<Self, ConvertError> {
        match s {
            "bf16" => Ok(OutDtype::Bf16),
            "f16" => Ok(OutDtype::F16),
            "f32" => Ok(OutDtype::F32),
            _ => Err(ConvertError::Usage(format!(
                "unknown dtype '{s}' (expected bf16, f16 or f32)"
            ))),
        }
    }
    pub fn dtype(self) -> Dtype {
        match self {
            OutDtype::Bf16 => Dtype::BF16,
            OutDtype::F16 => Dtype::F16,
            OutDtype::F32 => Dtype::F32,
        }
    }
    /// The `torch_dtype` string of config.json.
    pub fn torch_name(self) -> &'static str {
        match self {
            OutDtype::Bf16 => "bfloat16",
            OutDtype::F16 => "float16",
            OutDtype::F32 => "float32",
        }
    }
}

/// What happens to one input entry.
#[derive(Clone, Debug)]
pub enum Action {
    /// Plain tensor copied byte for byte.
    Copy { name: String, reason: String },
    /// Quantized group copied byte for byte (data + scales).
    CopyGroup { group: QuantGroup, reason: String },
    /// Quantize `src` (plain or decoded) into `out_name` + companions.
    Quantize {
        src: LayoutEntry,
        out_name: String,
        scheme: Scheme,
    },
    /// DeepSeek F32-scale FP8 -> UE8M0 scales (pass-through when already powers of two).
    Requantize {
        group: QuantGroup,
        e8m0_scales: bool,
    },
    /// Decode a group to a plain tensor.
    Dequantize { group: QuantGroup, dtype: OutDtype },
}

/// One step of the plan with its output tensors.
#[derive(Clone, Debug)]
pub struct Step {
    pub action: Action,
    pub outputs: Vec<TensorSpec>,
    /// `__metadata__` entries the outputs need (logical shapes of padded tensors).
    pub metadata: BTreeMap<String, String>,
}

/// A whole plan, plus the config.json it leads to.
#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub config: Option<serde_json::Value>,
    /// "quantize" / "requantize" / "dequantize".
    pub operation: &'static str,
    pub target: String,
}

fn copy_step(ck: &Checkpoint, entry: &LayoutEntry, reason: &str) -> Result<Step, ConvertError> {
    let names: Vec<&str> = match entry {
        LayoutEntry::Plain(n) => vec![n.as_str()],
        LayoutEntry::Quant(g) => vec![g.data.as_str(), g.scales.as_str()],
    };
    let mut outputs = Vec::new();
    let mut metadata = BTreeMap::new();
    for n in names {
        let t = ck.tensor(n)?;
        outputs.push(TensorSpec::new(n, t.dtype, t.shape.to_vec()));
        let key = layout::logical_shape_key(n);
        if let Some(v) = ck.file_metadata(n, &key) {
            metadata.insert(key, v.to_string());
        }
    }
    let action = match entry {
        LayoutEntry::Plain(n) => Action::Copy {
            name: n.clone(),
            reason: reason.into(),
        },
        LayoutEntry::Quant(g) => Action::CopyGroup {
            group: g.clone(),
            reason: reason.into(),
        },
    };
    Ok(Step {
        action,
        outputs,
        metadata,
    })
}

fn entry_name(e: &LayoutEntry) -> &str {
    match e {
        LayoutEntry::Plain(n) => n,
        LayoutEntry::Quant(g) => &g.name,
    }
}

/// Options of `quantize`.
#[derive(Clone, Debug)]
pub struct QuantizePlanOptions {
    pub format: TargetFormat,
    pub scheme: Scheme,
    pub keep: Vec<String>,
    pub quantize_lm_head: bool,
}

/// Plans `quantize`.
pub fn plan_quantize(ck: &Checkpoint, opts: &QuantizePlanOptions) -> Result<Plan, ConvertError> {
    let entries = layout::detect(ck)?;
    let selector = Selector::new(&opts.keep, ck.config(), opts.quantize_lm_head)?;
    let mut steps = Vec::new();
    let mut kept_modules = Vec::new();
    let has_lm_head = entries.iter().any(|e| is_lm_head(entry_name(e)));
    let tied_in_config = ck
        .config()
        .and_then(|c| c.get("tie_word_embeddings"))
        .and_then(|v| v.as_bool());
    let tied = !has_lm_head && tied_in_config != Some(false);
    let mut untied = false;
    for e in &entries {
        let name = entry_name(e).to_string();
        let shape = match e {
            LayoutEntry::Plain(n) => ck.tensor(n)?.shape.to_vec(),
            LayoutEntry::Quant(g) => g.shape.clone(),
        };
        let plain_float = match e {
            LayoutEntry::Plain(n) => ck.tensor(n)?.dtype.is_plain_float(),
            LayoutEntry::Quant(_) => true,
        };
        let reason = if plain_float {
            selector.keep_reason(&name, &shape)
        } else {
            Some("not a float tensor")
        };
        match reason {
            None => {
                let (outputs, metadata) = output_specs(opts.scheme, &name, shape[0], shape[1]);
                steps.push(Step {
                    action: Action::Quantize {
                        src: e.clone(),
                        out_name: name.clone(),
                        scheme: opts.scheme,
                    },
                    outputs,
                    metadata,
                });
            }
            Some(r) => {
                if shape.len() == 2
                    && name.ends_with(".weight")
                    && r != "norm"
                    && r != "not a float tensor"
                {
                    kept_modules.push(name.trim_end_matches(".weight").to_string());
                }
                steps.push(copy_step(ck, e, r)?);
            }
        }
        // Issue 9: a tied model gets its own quantized lm_head, written right after the embedding.
        if opts.quantize_lm_head
            && tied
            && !untied
            && is_embedding(&name)
            && name.ends_with("embed_tokens.weight")
            && shape.len() == 2
        {
            let (outputs, metadata) =
                output_specs(opts.scheme, "lm_head.weight", shape[0], shape[1]);
            steps.push(Step {
                action: Action::Quantize {
                    src: e.clone(),
                    out_name: "lm_head.weight".into(),
                    scheme: opts.scheme,
                },
                outputs,
                metadata,
            });
            untied = true;
        }
    }
    if opts.quantize_lm_head && !has_lm_head && !untied {
        return Err(ConvertError::Usage(
            "--quantize-lm-head: no lm_head.weight and no '*embed_tokens.weight' to untie from"
                .into(),
        ));
    }
    let config = ck.config().cloned().map(|mut c| {
        if let Some(obj) = c.as_object_mut() {
            obj.insert(
                "quantization_config".into(),
                quantization_config(opts.format, &kept_modules),
            );
            if untied {
                obj.insert("tie_word_embeddings".into(), serde_json::Value::Bool(false));
            }
        }
        c
    });
    Ok(Plan {
        steps,
        config,
        operation: "quantize",
        target: opts.format.name().to_string(),
    })
}

/// Plans `requantize --to fp8-ue8m0`.
pub fn plan_requantize(ck: &Checkpoint, e8m0_scales: bool) -> Result<Plan, ConvertError> {
    let entries = layout::detect(ck)?;
    let mut steps = Vec::new();
    let mut any = false;
    for e in &entries {
        match e {
            LayoutEntry::Quant(g) if matches!(g.kind, GroupKind::BlockFp8 { .. }) => {
                any = true;
                let (outputs, metadata) = output_specs(
                    Scheme::BlockFp8 {
                        rule: ue8_quant::ScaleRule::Ue8m0Ceil,
                        e8m0_scales,
                    },
                    &g.name,
                    g.shape[0],
                    g.shape[1],
                );
                steps.push(Step {
                    action: Action::Requantize {
                        group: g.clone(),
                        e8m0_scales,
                    },
                    outputs,
                    metadata,
                });
            }
            LayoutEntry::Quant(_) => steps.push(copy_step(ck, e, "not DeepSeek FP8")?),
            LayoutEntry::Plain(_) => steps.push(copy_step(ck, e, "not quantized")?),
        }
    }
    if !any {
        return Err(ConvertError::Usage(format!(
            "{}: no DeepSeek FP8 weights (`*.weight` F8_E4M3 + `*.weight_scale_inv`) to requantize",
            ck.root().display()
        )));
    }
    let config = ck.config().cloned().map(|mut c| {
        if let Some(q) = c
            .get_mut("quantization_config")
            .and_then(|q| q.as_object_mut())
        {
            q.insert("scale_fmt".into(), "ue8m0".into());
        } else if let Some(obj) = c.as_object_mut() {
            obj.insert(
                "quantization_config".into(),
                quantization_config(TargetFormat::Fp8Ue8m0, &[]),
            );
        }
        c
    });
    Ok(Plan {
        steps,
        config,
        operation: "requantize",
        target: TargetFormat::Fp8Ue8m0.name().into(),
    })
}

/// Plans `dequantize`: every group becomes its plain tensor; the rest is copied.
pub fn plan_dequantize(ck: &Checkpoint, dtype: OutDtype) -> Result<Plan, ConvertError> {
    let entries = layout::detect(ck)?;
    let mut steps = Vec::new();
    for e in &entries {
        match e {
            LayoutEntry::Quant(g) => steps.push(Step {
                action: Action::Dequantize {
                    group: g.clone(),
                    dtype,
                },
                outputs: vec![TensorSpec::new(
                    g.name.clone(),
                    dtype.dtype(),
                    g.shape.clone(),
                )],
                metadata: BTreeMap::new(),
            }),
            LayoutEntry::Plain(_) => steps.push(copy_step(ck, e, "not quantized")?),
        }
    }
    let config = ck.config().cloned().map(|mut c| {
        if let Some(obj) = c.as_object_mut() {
            obj.remove("quantization_config");
            obj.insert("torch_dtype".into(), dtype.torch_name().into());
        }
        c
    });
    Ok(Plan {
        steps,
        config,
        operation: "dequantize",
        target: dtype.torch_name().into(),
    })
}
