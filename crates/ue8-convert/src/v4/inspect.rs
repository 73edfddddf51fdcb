//! `inspect` of a DeepSeek-V4 checkpoint as data: tensors by kind (FP8 block with E8M0 or F32 scales,
//! FP4 expert, and the plain dtypes), `expert_dtype` as declared and as found, the anomalies of
//! `ue8_io::layout_v4` (missing `.scale`, mismatched grids, 0xFF scales, ...) plus E4M3 NaN codes, and
//! for every FP4 expert whether its FP8 re-encode is exact.

use super::reencode::{max_tile_gap, reencode_tensor};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use ue8_io::layout_v4::{detect_v4, V4Kind, V4ScaleDtype};
use ue8_io::Checkpoint;
use ue8_quant::REENCODE_MAX_GAP;

/// Tensors of one kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KindCount {
    pub tensors: usize,
    pub bytes: u64,
}

/// Whether one FP4 expert re-encodes to FP8 exactly.
#[derive(Clone, Debug, Serialize)]
pub struct V4ExpertReencode {
    pub name: String,
    /// Largest gap (binades) between a 32-group scale and its tile's largest.
    pub max_gap: u32,
    pub exact: bool,
    /// Where it fails, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Everything `ue8 inspect` shows about a V4 checkpoint.
#[derive(Clone, Debug, Serialize)]
pub struct V4InspectReport {
    pub path: String,
    pub layout: String,
    pub files: Vec<String>,
    pub tensors: usize,
    pub bytes: u64,
    /// Weight/scale pairs and plain tensors by kind ("fp8 block (E8M0 scales)", "fp4 expert", "BF16", ...);
    /// bytes include the `.scale` companions.
    pub by_kind: BTreeMap<String, KindCount>,
    /// e.g. "fp4 (config.json has no expert_dtype: inferred from the expert tensors)".
    pub expert_dtype: String,
    pub expert_dtype_inferred: bool,
    pub quantization_config: Option<serde_json::Value>,
    /// FP4 experts: how many re-encode to FP8 exactly, and the ones that do not.
    pub fp4_experts: usize,
    pub fp4_reencode_exact: usize,
    pub fp4_reencode_not_exact: Vec<V4ExpertReencode>,
    /// Largest group gap over all FP4 experts (exact for every code up to 14).
    pub fp4_max_gap: u32,
    pub anomalies: Vec<String>,
}

/// Inspects a V4 checkpoint (call when `ue8_io::layout_v4::is_v4` holds).
pub fn inspect_v4(ck: &Checkpoint) -> V4InspectReport {
    let layout = detect_v4(ck);
    let mut anomalies: Vec<String> = layout.anomalies.iter().map(|a| a.to_string()).collect();
    let mut by_kind: BTreeMap<String, KindCount> = BTreeMap::new();
    let mut bytes = 0u64;
    for t in &layout.tensors {
        let Ok(w) = ck.tensor(&t.name) else { continue };
        let s_bytes = t
            .scale
            .as_deref()
            .and_then(|s| ck.get(s))
            .map_or(0, |s| s.bytes.len() as u64);
        let kind = match t.kind {
            V4Kind::Fp8Block {
                scale: V4ScaleDtype::E8m0,
            } => "fp8 block 128x128 (E8M0 scales)".to_string(),
            V4Kind::Fp8Block {
                scale: V4ScaleDtype::F32,
            } => "fp8 block 128x128 (F32 scales)".to_string(),
            V4Kind::Fp4Expert => "fp4 expert (I8-packed E2M1, E8M0 per 32)".to_string(),
            V4Kind::Plain => w.dtype.name().to_string(),
        };
        let e = by_kind.entry(kind).or_default();
        e.tensors += 1;
        e.bytes += w.bytes.len() as u64 + s_bytes;
        bytes += w.bytes.len() as u64 + s_bytes;
        if matches!(t.kind, V4Kind::Fp8Block { .. }) {
            let nan = w.bytes.iter().filter(|&&b| b & 0x7F == 0x7F).count();
            if nan > 0 {
                anomalies.push(format!(
                    "{}: tensor '{}': {nan} E4M3 NaN codes (0x7F/0xFF)",
                    w.file.display(),
                    t.name
                ));
            }
        }
    }
    let experts: Vec<V4ExpertReencode> = layout
        .tensors
        .par_iter()
        .filter(|t| t.kind == V4Kind::Fp4Expert)
        .filter_map(|t| {
            let w = ck.tensor(&t.name).ok()?;
            let s = ck.get(t.scale.as_deref()?)?;
            let (n, k) = (t.shape[0], t.shape[1]);
            let max_gap = max_tile_gap(s.bytes, n, k);
            let problem = if max_gap <= REENCODE_MAX_GAP {
                None
            } else {
                reencode_tensor(w.bytes, s.bytes, n, k, false)
                    .err()
                    .map(|e| e.to_string())
            };
            Some(V4ExpertReencode {
                name: t.name.clone(),
                max_gap,
                exact: problem.is_none(),
                problem,
            })
        })
        .collect();
    let info = &layout.expert_dtype;
    V4InspectReport {
        path: ck.root().display().to_string(),
        layout: "deepseek-v4".into(),
        files: ck
            .files()
            .iter()
            .map(|f| f.path().display().to_string())
            .collect(),
        tensors: ck.len(),
        bytes,
        by_kind,
        expert_dtype: info.describe(),
        expert_dtype_inferred: info.inferred(),
        quantization_config: ck
            .config()
            .and_then(|c| c.get("quantization_config"))
            .cloned(),
        fp4_experts: experts.len(),
        fp4_reencode_exact: experts.iter().filter(|e| e.exact).count(),
        fp4_max_gap: experts.iter().map(|e| e.max_gap).max().unwrap_or(0),
        fp4_reencode_not_exact: experts.into_iter().filter(|e| !e.exact).collect(),
        anomalies,
    }
}
