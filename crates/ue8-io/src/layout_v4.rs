//! DeepSeek-V4 checkpoint layout (issue 11): DeepSeek's own tensor names (`layers.N.attn.wq_a.weight`,
//! `layers.N.ffn.experts.E.w1.weight`, ...) with a `.scale` companion beside each quantized `.weight`:
//! - FP8 block weights: F8_E4M3 `[out, in]` + `.scale` `[ceil(out/128), ceil(in/128)]`, F8_E8M0 in the
//!   released models, F32 in the Base models;
//! - FP4 experts: I8 `[out, in/2]` (two E2M1 codes a byte, low nibble = even input index) + `.scale`
//!   F8_E8M0 `[out, in/32]`;
//! - everything else (BF16, F32 `hc_*`, I64 `tid2eid`, ...) plain.
//!
//! V3 names its scales `weight_scale_inv` and MX checkpoints `weight_scale`: a `.scale` beside a
//! `.weight` is what marks V4. Detection is lenient: every malformed pair is recorded as an anomaly
//! (missing `.scale`, mismatched grid, wrong dtype, 0xFF scale bytes) and the tensor listed as plain, so
//! `inspect` can show them all; converters call [`V4Layout::first_problem`] and refuse.

use crate::layout::{GroupKind, LayoutEntry, MxElementKind, QuantGroup};
use crate::{Checkpoint, Dtype, IoError, TensorView};
use std::path::PathBuf;

/// Edge of a DeepSeek FP8 scale tile.
pub const V4_TILE: usize = 128;
/// Inputs per FP4 expert scale (OCP MX block).
pub const V4_FP4_GROUP: usize = 32;

/// How a V4 `.scale` is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum V4ScaleDtype {
    /// F8_E8M0 bytes (released models).
    E8m0,
    /// F32 values (Base models), not necessarily powers of two.
    F32,
}

/// What one entry of a V4 checkpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4Kind {
    /// F8_E4M3 weight with 128x128 tile scales.
    Fp8Block { scale: V4ScaleDtype },
    /// Packed E2M1 (I8 storage) with one E8M0 scale per 32 inputs.
    Fp4Expert,
    /// Any other tensor (kept as it is by every conversion).
    Plain,
}

/// One entry: a quantized weight with its `.scale`, or a plain tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4Tensor {
    /// The weight's name (`x.weight`) or the plain tensor's name.
    pub name: String,
    /// The `.scale` companion of a quantized weight.
    pub scale: Option<String>,
    pub kind: V4Kind,
    /// Stored dtype of the weight / plain tensor.
    pub dtype: Dtype,
    /// Logical shape: `[out, in]` for quantized weights (FP4: twice the stored columns).
    pub shape: Vec<usize>,
    /// Routed expert (`.ffn.experts.E.`), the tensors `expert_dtype` describes.
    pub routed_expert: bool,
}

/// A problem found while reading the layout; names the file and tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4Anomaly {
    pub file: PathBuf,
    pub tensor: String,
    pub problem: String,
}

impl std::fmt::Display for V4Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: tensor '{}': {}",
            self.file.display(),
            self.tensor,
            self.problem
        )
    }
}

/// Storage of the routed experts (config.json's top-level `expert_dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ExpertDtype {
    Fp4,
    Fp8,
}

impl ExpertDtype {
    /// The config.json string.
    pub fn name(self) -> &'static str {
        match self {
            ExpertDtype::Fp4 => "fp4",
            ExpertDtype::Fp8 => "fp8",
        }
    }
}

/// What config.json says about the experts and what the tensors show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpertDtypeInfo {
    /// config.json's `expert_dtype`, when present and known.
    pub declared: Option<ExpertDtype>,
    /// What the routed expert tensors are (`None` without routed experts, or when they mix).
    pub found: Option<ExpertDtype>,
}

impl ExpertDtypeInfo {
    /// The dtype to act on: the tensors win; the declared value only when there are no experts.
    pub fn effective(&self) -> Option<ExpertDtype> {
        self.found.or(self.declared)
    }

    /// True when config.json lacks `expert_dtype` and it was inferred from the tensors.
    pub fn inferred(&self) -> bool {
        self.declared.is_none() && self.found.is_some()
    }

    /// A sentence for `inspect`.
    pub fn describe(&self) -> String {
        match (self.declared, self.found) {
            (Some(d), Some(f)) if d == f => {
                format!("{} (config.json, matches the tensors)", d.name())
            }
            (Some(d), Some(f)) => format!(
                "{} in the tensors, but config.json says {}",
                f.name(),
                d.name()
            ),
            (None, Some(f)) => format!(
                "{} (config.json has no expert_dtype: inferred from the expert tensors)",
                f.name()
            ),
            (Some(d), None) => format!("{} (config.json; no routed expert tensors)", d.name()),
            (None, None) => "unknown (no expert_dtype in config.json, no routed experts)".into(),
        }
    }
}

/// The whole layout of a V4 checkpoint, in checkpoint order.
#[derive(Clone, Debug)]
pub struct V4Layout {
    pub tensors: Vec<V4Tensor>,
    pub anomalies: Vec<V4Anomaly>,
    pub expert_dtype: ExpertDtypeInfo,
}

impl V4Layout {
    /// The first anomaly as a typed error (converters refuse malformed input).
    pub fn first_problem(&self) -> Option<IoError> {
        self.anomalies.first().map(|a| IoError::BadTensor {
            path: a.file.clone(),
            tensor: a.tensor.clone(),
            problem: a.problem.clone(),
        })
    }

    /// The same entries in the converter's generic form: FP8 weights as [`GroupKind::BlockFp8`] with
    /// `.scale` as the scale tensor, FP4 experts as MX E2M1 groups whose data is the I8 weight (its bytes
    /// are the Hugging Face packed layout row by row). The group's `name` is the weight's name, so
    /// `dequantize` and `diff` work on V4 unchanged.
    pub fn to_layout_entries(&self) -> Vec<LayoutEntry> {
        self.tensors
            .iter()
            .map(|t| match (t.kind, &t.scale) {
                (V4Kind::Fp8Block { scale }, Some(s)) => LayoutEntry::Quant(QuantGroup {
                    name: t.name.clone(),
                    data: t.name.clone(),
                    scales: s.clone(),
                    kind: GroupKind::BlockFp8 {
                        scale_is_e8m0: scale == V4ScaleDtype::E8m0,
                    },
                    shape: t.shape.clone(),
                }),
                (V4Kind::Fp4Expert, Some(s)) => LayoutEntry::Quant(QuantGroup {
                    name: t.name.clone(),
                    data: t.name.clone(),
                    scales: s.clone(),
                    kind: GroupKind::Mx {
                        elem: MxElementKind::E2M1,
                    },
                    shape: t.shape.clone(),
                }),
                _ => LayoutEntry::Plain(t.name.clone()),
            })
            .collect()
    }
}

/// True when `name` is a routed expert's tensor (`...ffn.experts.E....`).
pub fn is_routed_expert(name: &str) -> bool {
    name.contains(".ffn.experts.")
}

/// True when the checkpoint is a DeepSeek-V4 one: config.json's `model_type` is `deepseek_v4`, or some
/// `x.weight` has an `x.scale` companion (V4's naming, unlike V3's `weight_scale_inv`).
pub fn is_v4(ck: &Checkpoint) -> bool {
    let by_config = ck
        .config()
        .and_then(|c| c.get("model_type"))
        .and_then(|v| v.as_str())
        == Some("deepseek_v4");
    by_config
        || ck.tensors().any(|t| {
            t.name
                .strip_suffix(".scale")
                .is_some_and(|base| ck.contains(&format!("{base}.weight")))
        })
}

fn anomaly(t: &TensorView<'_>, name: &str, problem: String) -> V4Anomaly {
    V4Anomaly {
        file: t.file.to_path_buf(),
        tensor: name.to_string(),
        problem,
    }
}

fn plain(t: &TensorView<'_>) -> V4Tensor {
    V4Tensor {
        name: t.name.to_string(),
        scale: None,
        kind: V4Kind::Plain,
        dtype: t.dtype,
        shape: t.shape.to_vec(),
        routed_expert: is_routed_expert(t.name),
    }
}

/// Scale bytes that are 0xFF (E8M0 NaN): (count, first index).
fn nan_scales(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = bytes.iter().position(|&b| b == 0xFF)?;
    Some((bytes.iter().filter(|&&b| b == 0xFF).count(), first))
}

/// F32 scales that are not positive finite numbers: (count, first index).
fn bad_f32_scales(bytes: &[u8]) -> Option<(usize, usize)> {
    let bad = |c: &[u8]| {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        !(v.is_finite() && v > 0.0)
    };
    let first = bytes.chunks_exact(4).position(bad)?;
    Some((bytes.chunks_exact(4).filter(|c| bad(c)).count(), first))
}

fn classify_fp8(
    w: &TensorView<'_>,
    s: &TensorView<'_>,
    anomalies: &mut Vec<V4Anomaly>,
) -> Option<V4Tensor> {
    let [out, inp] = w.shape else {
        anomalies.push(anomaly(
            w,
            w.name,
            format!("FP8 weight must be 2-D [out, in], has shape {:?}", w.shape),
        ));
        return None;
    };
    let want = [out.div_ceil(V4_TILE), inp.div_ceil(V4_TILE)];
    let scale = match s.dtype {
        Dtype::F8E8M0 | Dtype::U8 => V4ScaleDtype::E8m0,
        Dtype::F32 => V4ScaleDtype::F32,
        d => {
            anomalies.push(anomaly(
                s,
                s.name,
                format!("scale dtype {d} (expected F8_E8M0 or F32)"),
            ));
            return None;
        }
    };
    if s.shape != want {
        anomalies.push(anomaly(
            s,
            s.name,
            format!(
                "mismatched grid: scale shape {:?}, expected {want:?} (128x128 tiles of weight [{out}, {inp}])",
                s.shape
            ),
        ));
        return None;
    }
    let bad = match scale {
        V4ScaleDtype::E8m0 => nan_scales(s.bytes)
            .map(|(n, i)| format!("{n} scale bytes are 0xFF (E8M0 NaN), first at index {i}")),
        V4ScaleDtype::F32 => bad_f32_scales(s.bytes).map(|(n, i)| {
            format!("{n} scales are not positive finite numbers, first at index {i}")
        }),
    };
    if let Some(problem) = bad {
        anomalies.push(anomaly(s, s.name, problem));
        return None;
    }
    Some(V4Tensor {
        name: w.name.to_string(),
        scale: Some(s.name.to_string()),
        kind: V4Kind::Fp8Block { scale },
        dtype: w.dtype,
        shape: vec![*out, *inp],
        routed_expert: is_routed_expert(w.name),
    })
}

fn classify_fp4(
    w: &TensorView<'_>,
    s: &TensorView<'_>,
    anomalies: &mut Vec<V4Anomaly>,
) -> Option<V4Tensor> {
    let [out, half_in] = w.shape else {
        anomalies.push(anomaly(
            w,
            w.name,
            format!(
                "FP4 expert weight must be 2-D I8 [out, in/2], has shape {:?}",
                w.shape
            ),
        ));
        return None;
    };
    let Some(inp) = half_in.checked_mul(2) else {
        anomalies.push(anomaly(w, w.name, "input size overflows".into()));
        return None;
    };
    if !matches!(s.dtype, Dtype::F8E8M0 | Dtype::U8) {
        anomalies.push(anomaly(
            s,
            s.name,
            format!("FP4 expert scale dtype {} (expected F8_E8M0)", s.dtype),
        ));
        return None;
    }
    let want = [*out, inp.div_ceil(V4_FP4_GROUP)];
    if !inp.is_multiple_of(V4_FP4_GROUP) || s.shape != want {
        anomalies.push(anomaly(
            s,
            s.name,
            format!(
                "mismatched grid: scale shape {:?}, expected {want:?} (one scale per 32 inputs of weight [{out}, {inp}] stored as I8 [{out}, {half_in}]{})",
                s.shape,
                if !inp.is_multiple_of(V4_FP4_GROUP) { "; in is not a multiple of 32" } else { "" }
            ),
        ));
        return None;
    }
    if let Some((n, i)) = nan_scales(s.bytes) {
        anomalies.push(anomaly(
            s,
            s.name,
            format!("{n} scale bytes are 0xFF (E8M0 NaN), first at index {i}"),
        ));
        return None;
    }
    Some(V4Tensor {
        name: w.name.to_string(),
        scale: Some(s.name.to_string()),
        kind: V4Kind::Fp4Expert,
        dtype: w.dtype,
        shape: vec![*out, inp],
        routed_expert: is_routed_expert(w.name),
    })
}

fn declared_expert_dtype(ck: &Checkpoint, anomalies: &mut Vec<V4Anomaly>) -> Option<ExpertDtype> {
    let v = ck.config()?.get("expert_dtype")?;
    match v.as_str() {
        Some("fp4") => Some(ExpertDtype::Fp4),
        Some("fp8") => Some(ExpertDtype::Fp8),
        _ => {
            anomalies.push(V4Anomaly {
                file: ck.root().join("config.json"),
                tensor: "expert_dtype".into(),
                problem: format!("unknown expert_dtype {v} (expected \"fp4\" or \"fp8\")"),
            });
            None
        }
    }
}

/// Reads the V4 layout of `ck`, recording every problem (see the module docs).
pub fn detect_v4(ck: &Checkpoint) -> V4Layout {
    let mut tensors = Vec::new();
    let mut anomalies = Vec::new();
    for t in ck.tensors() {
        if let Some(base) = t.name.strip_suffix(".scale") {
            // A companion: consumed by its weight, or an orphan.
            if !ck.contains(&format!("{base}.weight")) {
                anomalies.push(anomaly(
                    &t,
                    t.name,
                    format!("scale without a weight '{base}.weight'"),
                ));
                tensors.push(plain(&t));
            }
            continue;
        }
        let scale_name = t
            .name
            .strip_suffix(".weight")
            .map(|base| format!("{base}.scale"));
        let scale = scale_name.as_deref().and_then(|n| ck.get(n));
        let entry = match (t.dtype, scale) {
            (Dtype::F8E4M3, Some(s)) => classify_fp8(&t, &s, &mut anomalies),
            (Dtype::I8, Some(s)) => classify_fp4(&t, &s, &mut anomalies),
            (Dtype::F8E4M3, None) => {
                anomalies.push(anomaly(
                    &t,
                    t.name,
                    format!(
                        "F8_E4M3 weight without its scale: missing '{}'",
                        scale_name.as_deref().unwrap_or("<name>.scale")
                    ),
                ));
                None
            }
            (Dtype::I8, None) if is_routed_expert(t.name) => {
                anomalies.push(anomaly(
                    &t,
                    t.name,
                    format!(
                        "FP4 expert weight without its scale: missing '{}'",
                        scale_name.as_deref().unwrap_or("<name>.scale")
                    ),
                ));
                None
            }
            (_, Some(s)) => {
                anomalies.push(anomaly(
                    &t,
                    t.name,
                    format!(
                        "has a '{}' companion but is {} (expected F8_E4M3 or I8-packed FP4)",
                        s.name, t.dtype
                    ),
                ));
                None
            }
            _ => Some(plain(&t)),
        };
        tensors.push(entry.unwrap_or_else(|| plain(&t)));
    }
    let declared = declared_expert_dtype(ck, &mut anomalies);
    let mut fp4 = false;
    let mut fp8 = false;
    for t in tensors.iter().filter(|t| t.routed_expert) {
        match t.kind {
            V4Kind::Fp4Expert => fp4 = true,
            V4Kind::Fp8Block { .. } => fp8 = true,
            V4Kind::Plain => {}
        }
    }
    let found = match (fp4, fp8) {
        (true, false) => Some(ExpertDtype::Fp4),
        (false, true) => Some(ExpertDtype::Fp8),
        (true, true) => {
            anomalies.push(V4Anomaly {
                file: ck.root().to_path_buf(),
                tensor: "layers.*.ffn.experts.*".into(),
                problem: "routed experts mix FP4 and FP8 storage".into(),
            });
            None
        }
        (false, false) => None,
    };
    if let (Some(d), Some(f)) = (declared, found) {
        if d != f {
            anomalies.push(V4Anomaly {
                file: ck.root().join("config.json"),
                tensor: "expert_dtype".into(),
                problem: format!(
                    "config.json says \"{}\" but the routed experts are {}",
                    d.name(),
                    f.name()
                ),
            });
        }
    }
    V4Layout {
        tensors,
        anomalies,
        expert_dtype: ExpertDtypeInfo { declared, found },
    }
}
