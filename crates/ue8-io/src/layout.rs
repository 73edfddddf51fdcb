//! Recognises the quantized tensor groups of `docs/layouts.md` in a checkpoint: DeepSeek blockwise
//! FP8 (`.weight` + `.weight_scale_inv`), MX with `.weight` + `.weight_scale`, and gpt-oss MXFP4
//! (`_blocks` + `_scales`). Every other tensor is plain. Shapes of companions are checked here, so a
//! reader gets "misshaped weight_scale_inv" instead of garbage.

use crate::{Checkpoint, Dtype, IoError};

/// Element type of an MX block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxElementKind {
    E4M3,
    E5M2,
    E3M2,
    E2M3,
    E2M1,
}

/// How a group is quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// DeepSeek 128x128 tiles; scales F32 (`scale_is_e8m0 == false`) or F8_E8M0 bytes.
    BlockFp8 { scale_is_e8m0: bool },
    /// OCP MX, 32-element blocks along the last axis; scales E8M0 bytes (U8 or F8_E8M0).
    Mx { elem: MxElementKind },
}

/// One quantized tensor and its companions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantGroup {
    /// The plain tensor this group stands for (`x.weight`, or `T` for `T_blocks`).
    pub name: String,
    /// The element tensor (`x.weight` or `T_blocks`).
    pub data: String,
    /// The scale tensor.
    pub scales: String,
    pub kind: GroupKind,
    /// Logical shape of the dequantized tensor.
    pub shape: Vec<usize>,
}

/// One entry of a checkpoint's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutEntry {
    Plain(String),
    Quant(QuantGroup),
}

/// Metadata key of a stored tensor's logical shape when padded (docs/layouts.md).
pub fn logical_shape_key(stored: &str) -> String {
    format!("ue8.logical_shape.{stored}")
}

fn err(ck: &Checkpoint, tensor: &str, problem: String) -> IoError {
    let path = ck
        .get(tensor)
        .map(|t| t.file.to_path_buf())
        .unwrap_or_else(|| ck.root().to_path_buf());
    IoError::BadTensor {
        path,
        tensor: tensor.to_string(),
        problem,
    }
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// Logical shape from the file's metadata if present, else `default`; checked against the stored one.
fn logical_shape(
    ck: &Checkpoint,
    stored: &str,
    default: Vec<usize>,
    max_last: usize,
) -> Result<Vec<usize>, IoError> {
    let Some(s) = ck.file_metadata(stored, &logical_shape_key(stored)) else {
        return Ok(default);
    };
    let shape: Vec<usize> = serde_json::from_str(s)
        .map_err(|e| err(ck, stored, format!("bad logical shape metadata '{s}': {e}")))?;
    let ok = shape.len() == default.len()
        && shape[..shape.len().saturating_sub(1)] == default[..default.len().saturating_sub(1)]
        && shape
            .last()
            .is_some_and(|&k| k <= max_last && k + 32 > max_last);
    if !ok {
        return Err(err(
            ck,
            stored,
            format!("logical shape {shape:?} does not fit stored shape {default:?}"),
        ));
    }
    Ok(shape)
}

fn is_e8m0_scale_dtype(d: Dtype) -> bool {
    matches!(d, Dtype::U8 | Dtype::F8E8M0)
}

/// Classifies every tensor of `ck`, in checkpoint order (a group appears where its data tensor is).
/// Fails on the first malformed group (missing or misshaped scales).
pub fn detect(ck: &Checkpoint) -> Result<Vec<LayoutEntry>, IoError> {
    let (entries, mut problems) = detect_lenient(ck);
    match problems.is_empty() {
        true => Ok(entries),
        false => Err(problems.swap_remove(0)),
    }
}

/// As [`detect`], but records every problem and goes on (malformed tensors are listed as plain), for
/// `inspect`, which reports anomalies instead of stopping at the first.
pub fn detect_lenient(ck: &Checkpoint) -> (Vec<LayoutEntry>, Vec<IoError>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for t in ck.tensors() {
        if let Err(e) = classify(ck, &t, &mut out) {
            problems.push(e);
            out.push(LayoutEntry::Plain(t.name.to_string()));
        }
    }
    (out, problems)
}

fn classify(
    ck: &Checkpoint,
    t: &crate::TensorView<'_>,
    out: &mut Vec<LayoutEntry>,
) -> Result<(), IoError> {
    {
        let name = t.name;
        // Companions are consumed by their data tensor.
        if let Some(base) = name.strip_suffix("_scale_inv") {
            if ck.get(base).is_some_and(|w| w.dtype == Dtype::F8E4M3) {
                return Ok(());
            }
            return Err(err(
                ck,
                name,
                format!("block scales without an F8_E4M3 weight '{base}'"),
            ));
        }
        if let Some(base) = name.strip_suffix("_scales") {
            if ck.contains(&format!("{base}_blocks")) {
                return Ok(());
            }
        }
        if let Some(base) = name.strip_suffix("_scale") {
            if ck.get(base).is_some_and(|w| is_mx_dtype(w.dtype)) {
                return Ok(());
            }
        }
        if let Some(base) = name.strip_suffix("_blocks") {
            let scales_name = format!("{base}_scales");
            if let Some(s) = ck.get(&scales_name) {
                out.push(LayoutEntry::Quant(mxfp4_group(
                    ck,
                    name,
                    base,
                    &scales_name,
                    t.shape,
                    s.dtype,
                    s.shape,
                )?));
                return Ok(());
            }
            return Err(err(
                ck,
                name,
                format!("MXFP4 blocks without '{scales_name}'"),
            ));
        }
        match t.dtype {
            Dtype::F8E4M3 | Dtype::F8E5M2 | Dtype::F6E3M2 | Dtype::F6E2M3 => {
                out.push(LayoutEntry::Quant(fp8_or_mx_group(
                    ck, name, t.dtype, t.shape,
                )?));
            }
            _ => out.push(LayoutEntry::Plain(name.to_string())),
        }
    }
    Ok(())
}

fn is_mx_dtype(d: Dtype) -> bool {
    matches!(
        d,
        Dtype::F8E4M3 | Dtype::F8E5M2 | Dtype::F6E3M2 | Dtype::F6E2M3
    )
}

fn fp8_or_mx_group(
    ck: &Checkpoint,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<QuantGroup, IoError> {
    let inv = format!("{name}_scale_inv");
    let sc = format!("{name}_scale");
    if shape.len() != 2 {
        return Err(err(
            ck,
            name,
            format!("quantized weight must be 2-D, has shape {shape:?}"),
        ));
    }
    let (n, k) = (shape[0], shape[1]);
    if let Some(s) = ck.get(&inv) {
        if dtype != Dtype::F8E4M3 {
            return Err(err(
                ck,
                &inv,
                format!("block scales for a {dtype} weight (expected F8_E4M3)"),
            ));
        }
        let want = [ceil_div(n, 128), ceil_div(k, 128)];
        if s.shape != want {
            return Err(err(
                ck,
                &inv,
                format!("misshaped weight_scale_inv: shape {:?}, expected {want:?} for weight [{n}, {k}]", s.shape),
            ));
        }
        let scale_is_e8m0 = match s.dtype {
            Dtype::F32 => false,
            Dtype::F8E8M0 | Dtype::U8 => true,
            d => {
                return Err(err(
                    ck,
                    &inv,
                    format!("scale dtype {d} (expected F32 or F8_E8M0)"),
                ))
            }
        };
        return Ok(QuantGroup {
            name: name.to_string(),
            data: name.to_string(),
            scales: inv,
            kind: GroupKind::BlockFp8 { scale_is_e8m0 },
            shape: shape.to_vec(),
        });
    }
    if let Some(s) = ck.get(&sc) {
        let elem = match dtype {
            Dtype::F8E4M3 => MxElementKind::E4M3,
            Dtype::F8E5M2 => MxElementKind::E5M2,
            Dtype::F6E3M2 => MxElementKind::E3M2,
            _ => MxElementKind::E2M3,
        };
        let logical = if matches!(elem, MxElementKind::E3M2 | MxElementKind::E2M3) {
            if k % 32 != 0 {
                return Err(err(
                    ck,
                    name,
                    format!("FP6 weight row length {k} is not padded to 32"),
                ));
            }
            logical_shape(ck, name, shape.to_vec(), k)?
        } else {
            shape.to_vec()
        };
        let want = [n, ceil_div(logical[1], 32)];
        if s.shape != want || !is_e8m0_scale_dtype(s.dtype) {
            return Err(err(
                ck,
                &sc,
                format!(
                    "MX scales are {} {:?}, expected U8 or F8_E8M0 {want:?}",
                    s.dtype, s.shape
                ),
            ));
        }
        return Ok(QuantGroup {
            name: name.to_string(),
            data: name.to_string(),
            scales: sc,
            kind: GroupKind::Mx { elem },
            shape: logical,
        });
    }
    Err(err(
        ck,
        name,
        format!("{dtype} weight has no scales: missing '{inv}' (DeepSeek FP8) or '{sc}' (MX)"),
    ))
}

fn mxfp4_group(
    ck: &Checkpoint,
    blocks: &str,
    base: &str,
    scales: &str,
    bshape: &[usize],
    sdtype: Dtype,
    sshape: &[usize],
) -> Result<QuantGroup, IoError> {
    let ok_blocks = bshape.len() >= 2 && bshape.last() == Some(&16);
    if !ok_blocks {
        return Err(err(
            ck,
            blocks,
            format!("MXFP4 blocks must be [..., K/32, 16], got {bshape:?}"),
        ));
    }
    let lead = &bshape[..bshape.len() - 1];
    if sshape != lead || !is_e8m0_scale_dtype(sdtype) {
        return Err(err(
            ck,
            scales,
            format!("MXFP4 scales are {sdtype} {sshape:?}, expected U8 or F8_E8M0 {lead:?}"),
        ));
    }
    let kb = lead[lead.len() - 1];
    let kp = kb
        .checked_mul(32)
        .ok_or_else(|| err(ck, blocks, "block count overflows".into()))?;
    let mut default: Vec<usize> = lead[..lead.len() - 1].to_vec();
    default.push(kp);
    let shape = logical_shape(ck, blocks, default, kp)?;
    Ok(QuantGroup {
        name: base.to_string(),
        data: blocks.to_string(),
        scales: scales.to_string(),
        kind: GroupKind::Mx {
            elem: MxElementKind::E2M1,
        },
        shape,
    })
}
