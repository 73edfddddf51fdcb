//! `diff` as data: two checkpoints compared tensor by tensor after decoding both to f32 (any layout
//! ue8 reads), with A as the reference: max-abs, RMS, SNR dB, cosine and clipped share.
//!
//! Clipped share here: the share of elements where B sits at B's largest magnitude for that tensor
//! while |A| is larger, i.e. values that were cut down to the extreme (saturation), which is what a
//! quantizer's clipping looks like from outside.

use crate::source::decode_entry_f32;
use crate::ConvertError;
use serde::Serialize;
use ue8_io::layout::{detect, LayoutEntry};
use ue8_io::Checkpoint;
use ue8_quant::ErrorStats;

/// One compared tensor.
#[derive(Clone, Debug, Serialize)]
pub struct TensorDiff {
    pub name: String,
    pub shape: Vec<usize>,
    pub max_abs: f64,
    pub rms: f64,
    /// `null` when B equals A exactly (infinite SNR).
    pub snr_db: Option<f64>,
    pub cosine: f64,
    pub clipped_share: f64,
}

/// Result of `ue8 diff`.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub a: String,
    pub b: String,
    pub tensors: Vec<TensorDiff>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    /// Tensors present in both with different shapes.
    pub shape_mismatch: Vec<String>,
}

fn name(e: &LayoutEntry) -> &str {
    match e {
        LayoutEntry::Plain(n) => n,
        LayoutEntry::Quant(g) => &g.name,
    }
}

/// Compares `a` (reference) with `b`.
pub fn diff(a: &Checkpoint, b: &Checkpoint) -> Result<DiffReport, ConvertError> {
    let ea = crate::v4::layout_entries(a).unwrap_or_else(|| Ok(detect(a)?))?; // v4: V4 pairs as groups
    let eb = crate::v4::layout_entries(b).unwrap_or_else(|| Ok(detect(b)?))?; // v4
    let mut report = DiffReport {
        a: a.root().display().to_string(),
        b: b.root().display().to_string(),
        tensors: Vec::new(),
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
        shape_mismatch: Vec::new(),
    };
    for x in &ea {
        let n = name(x);
        let Some(y) = eb.iter().find(|y| name(y) == n) else {
            report.only_in_a.push(n.to_string());
            continue;
        };
        // v4: integer tables (V4's I64 tid2eid) have no error to measure: identical ones are skipped
        if let (Some(ta), Some(tb)) = (a.get(n).filter(|t| !t.dtype.is_plain_float()), b.get(n)) {
            let plain = matches!((x, y), (LayoutEntry::Plain(_), LayoutEntry::Plain(_)));
            if plain && ta.dtype == tb.dtype && ta.shape == tb.shape && ta.bytes == tb.bytes {
                continue;
            }
        }
        let (sa, va) = decode_entry_f32(a, x)?;
        let (sb, vb) = decode_entry_f32(b, y)?;
        if sa != sb {
            report.shape_mismatch.push(format!("{n}: {sa:?} vs {sb:?}"));
            continue;
        }
        let mut st = ErrorStats::new();
        st.add_slices(&va, &vb);
        let bmax = vb
            .iter()
            .fold(0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
        let clipped = va
            .iter()
            .zip(&vb)
            .filter(|(x, y)| bmax > 0.0 && y.abs() == bmax && x.abs() > bmax)
            .count();
        let snr = st.snr_db();
        report.tensors.push(TensorDiff {
            name: n.to_string(),
            shape: sa,
            max_abs: st.max_abs(),
            rms: st.rms(),
            snr_db: snr.is_finite().then_some(snr),
            cosine: st.cosine(),
            clipped_share: if va.is_empty() {
                0.0
            } else {
                clipped as f64 / va.len() as f64
            },
        });
    }
    for y in &eb {
        if !ea.iter().any(|x| name(x) == name(y)) {
            report.only_in_b.push(name(y).to_string());
        }
    }
    Ok(report)
}
