//! `inspect` as data: tensors grouped by dtype, the detected layout and its quantization_config,
//! the lm_head choice (issue 9), and anomalies (non-power-of-two scales in a ue8m0 checkpoint, 0xFF
//! scales, E4M3 NaN codes, NaN/inf in float tensors, weights whose scales are missing or misshaped).

use crate::select::{is_embedding, is_lm_head};
use crate::source::PlainData;
use serde::Serialize;
use std::collections::BTreeMap;
use ue8_io::layout::{detect_lenient, GroupKind, LayoutEntry, MxElementKind, QuantGroup};
use ue8_io::{Checkpoint, Dtype};

/// Tensors of one dtype.
#[derive(Clone, Debug, Serialize)]
pub struct DtypeGroup {
    pub dtype: String,
    pub tensors: usize,
    pub bytes: u64,
}

/// Everything `ue8 inspect` shows about a safetensors checkpoint.
#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    pub path: String,
    pub files: Vec<String>,
    pub tensors: usize,
    pub bytes: u64,
    pub by_dtype: Vec<DtypeGroup>,
    /// e.g. "fp8-ue8m0", "fp8", "mxfp4", "plain", "mixed: fp8 + mxfp4".
    pub layout: String,
    /// Quantized groups per kind (e.g. {"fp8 (F32 scales)": 61}).
    pub quantized_groups: BTreeMap<String, usize>,
    pub quantization_config: Option<serde_json::Value>,
    /// "quantized (...)", "kept (BF16)", "tied to the embeddings", or "none".
    pub lm_head: String,
    pub anomalies: Vec<String>,
}

fn kind_name(g: &QuantGroup, ck: &Checkpoint) -> String {
    match g.kind {
        GroupKind::BlockFp8 {
            scale_is_e8m0: true,
        } => "fp8 128x128 (E8M0 scales)".into(),
        GroupKind::BlockFp8 {
            scale_is_e8m0: false,
        } => {
            let pow2 = crate::source::block_scales_f32(ck, g)
                .map(|s| ue8_quant::all_pow2(&s))
                .unwrap_or(false);
            if pow2 {
                "fp8 128x128 (F32 power-of-two scales)".into()
            } else {
                "fp8 128x128 (F32 scales)".into()
            }
        }
        GroupKind::Mx { elem } => match elem {
            MxElementKind::E4M3 => "mxfp8 (E4M3)".into(),
            MxElementKind::E5M2 => "mxfp8 (E5M2)".into(),
            MxElementKind::E3M2 => "mxfp6 (E3M2)".into(),
            MxElementKind::E2M3 => "mxfp6 (E2M3)".into(),
            MxElementKind::E2M1 => "mxfp4 (gpt-oss blocks)".into(),
        },
    }
}

fn layout_name(kinds: &BTreeMap<String, usize>) -> String {
    let short: Vec<&str> = kinds
        .keys()
        .map(|k| {
            if k.starts_with("fp8 128x128 (F32 scales)") {
                "fp8"
            } else if k.starts_with("fp8") {
                "fp8-ue8m0"
            } else if k.contains("E5M2") {
                "mxfp8-e5m2"
            } else if k.starts_with("mxfp8") {
                "mxfp8"
            } else if k.contains("E3M2") {
                "mxfp6-e3m2"
            } else if k.contains("E2M3") {
                "mxfp6-e2m3"
            } else {
                "mxfp4"
            }
        })
        .collect();
    let mut s = short.clone();
    s.dedup();
    match s.len() {
        0 => "plain (not quantized)".into(),
        1 => s[0].to_string(),
        _ => format!("mixed: {}", s.join(" + ")),
    }
}

/// Counts anomalies in a group's scales and codes.
fn group_anomalies(ck: &Checkpoint, g: &QuantGroup, ue8m0_config: bool, out: &mut Vec<String>) {
    let Ok(s) = ck.tensor(&g.scales) else { return };
    match (g.kind, s.dtype) {
        (GroupKind::BlockFp8 { .. }, Dtype::F32) => {
            let vals: Vec<f32> = s
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let bad = vals
                .iter()
                .filter(|v| !(v.is_finite() && **v > 0.0))
                .count();
            if bad > 0 {
                out.push(format!(
                    "{}: {bad} scales are not positive finite numbers",
                    g.scales
                ));
            }
            if ue8m0_config {
                let non_pow2 = vals
                    .iter()
                    .filter(|v| ue8_formats::E8M0::from_exact_pow2(**v).is_none())
                    .count();
                if non_pow2 > 0 {
                    out.push(format!("{}: {non_pow2} of {} scales are not powers of two in a scale_fmt=ue8m0 checkpoint", g.scales, vals.len()));
                }
            }
        }
        _ => {
            let ff = s.bytes.iter().filter(|&&b| b == 0xFF).count();
            if ff > 0 {
                out.push(format!("{}: {ff} E8M0 scales are 0xFF (NaN)", g.scales));
            }
        }
    }
    let is_e4m3 = matches!(
        g.kind,
        GroupKind::BlockFp8 { .. }
            | GroupKind::Mx {
                elem: MxElementKind::E4M3
            }
    );
    if is_e4m3 {
        if let Ok(d) = ck.tensor(&g.data) {
            let nan = d.bytes.iter().filter(|&&b| b & 0x7F == 0x7F).count();
            if nan > 0 {
                out.push(format!("{}: {nan} E4M3 NaN codes (0x7F/0xFF)", g.data));
            }
        }
    }
}

/// Inspects a safetensors checkpoint (file or directory).
pub fn inspect(ck: &Checkpoint) -> InspectReport {
    let mut by: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut bytes = 0u64;
    for t in ck.tensors() {
        let e = by.entry(t.dtype.to_string()).or_default();
        e.0 += 1;
        e.1 += t.bytes.len() as u64;
        bytes += t.bytes.len() as u64;
    }
    let (entries, problems) = detect_lenient(ck);
    let mut anomalies: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let qc = ck
        .config()
        .and_then(|c| c.get("quantization_config"))
        .cloned();
    let ue8m0_config = qc
        .as_ref()
        .and_then(|q| q.get("scale_fmt"))
        .and_then(|v| v.as_str())
        == Some("ue8m0");
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut lm_head = None;
    let mut has_embed = false;
    for e in &entries {
        match e {
            LayoutEntry::Quant(g) => {
                let k = kind_name(g, ck);
                if is_lm_head(&g.name) {
                    lm_head = Some(format!("quantized ({k})"));
                }
                *kinds.entry(k).or_default() += 1;
                group_anomalies(ck, g, ue8m0_config, &mut anomalies);
            }
            LayoutEntry::Plain(n) => {
                let Ok(t) = ck.tensor(n) else { continue };
                if is_lm_head(n) {
                    lm_head = Some(format!("kept ({})", t.dtype));
                }
                has_embed |= is_embedding(n);
                if let Some(d) = PlainData::of(&t) {
                    let mut buf = vec![0f32; 1 << 16];
                    let mut bad = 0usize;
                    let mut i = 0;
                    while i < d.len() {
                        let m = (d.len() - i).min(buf.len());
                        d.to_f32_range(i, &mut buf[..m]);
                        bad += buf[..m].iter().filter(|v| !v.is_finite()).count();
                        i += m;
                    }
                    if bad > 0 {
                        anomalies.push(format!("{n}: {bad} NaN/inf values"));
                    }
                }
            }
        }
    }
    // No lm_head tensor: tied only if the config says so (or a causal LM leaves it implicit);
    // encoders such as BERT simply have none.
    let cfg = ck.config();
    let tied_flag = cfg
        .and_then(|c| c.get("tie_word_embeddings"))
        .and_then(|v| v.as_bool());
    let causal = cfg
        .and_then(|c| c.get("architectures"))
        .and_then(|a| a.as_array())
        .is_some_and(|a| {
            a.iter()
                .any(|x| x.as_str().is_some_and(|s| s.ends_with("ForCausalLM")))
        });
    let lm_head = lm_head.unwrap_or_else(|| {
        if has_embed && (tied_flag == Some(true) || (tied_flag.is_none() && causal)) {
            "tied to the embeddings".into()
        } else {
            "none".into()
        }
    });
    InspectReport {
        path: ck.root().display().to_string(),
        files: ck
            .files()
            .iter()
            .map(|f| f.path().display().to_string())
            .collect(),
        tensors: ck.len(),
        bytes,
        by_dtype: by
            .into_iter()
            .map(|(dtype, (tensors, bytes))| DtypeGroup {
                dtype,
                tensors,
                bytes,
            })
            .collect(),
        layout: layout_name(&kinds),
        quantized_groups: kinds,
        quantization_config: qc,
        lm_head,
        anomalies,
    }
}
