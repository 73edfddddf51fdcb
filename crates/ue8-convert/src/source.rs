//! Reading tensors as numbers: plain F32/F16/BF16 bytes as typed slices (borrowed from the mmap when
//! aligned, copied otherwise), and any layout of docs/layouts.md decoded to f32.

use crate::ConvertError;
use half::{bf16, f16};
use rayon::prelude::*;
use std::borrow::Cow;
use ue8_io::layout::{GroupKind, LayoutEntry, QuantGroup};
use ue8_io::{Checkpoint, Dtype, TensorView};
use ue8_quant::{BlockFp8, MxElement, MxScaleRule, MxScheme};

/// A plain float tensor's values, borrowed when the mmap is aligned for the type.
pub enum PlainData<'a> {
    F32(Cow<'a, [f32]>),
    Bf16(Cow<'a, [bf16]>),
    F16(Cow<'a, [f16]>),
}

fn cast<'a, T: bytemuck::Pod>(bytes: &'a [u8]) -> Cow<'a, [T]> {
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(
            bytes
                .chunks_exact(std::mem::size_of::<T>())
                .map(bytemuck::pod_read_unaligned)
                .collect(),
        ),
    }
}

impl<'a> PlainData<'a> {
    /// `None` when the tensor is not F32/F16/BF16.
    pub fn of(t: &TensorView<'a>) -> Option<PlainData<'a>> {
        // safetensors stores little-endian; bytemuck reads native order, so big-endian hosts are refused
        // at compile time below.
        Some(match t.dtype {
            Dtype::F32 => PlainData::F32(cast(t.bytes)),
            Dtype::BF16 => PlainData::Bf16(cast(t.bytes)),
            Dtype::F16 => PlainData::F16(cast(t.bytes)),
            _ => return None,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            PlainData::F32(v) => v.len(),
            PlainData::Bf16(v) => v.len(),
            PlainData::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index and value of the first NaN or infinity in row-major order.
    pub fn first_nonfinite(&self) -> Option<(usize, f32)> {
        fn find<T: Copy>(v: &[T], f32_of: impl Fn(T) -> f32) -> Option<(usize, f32)> {
            v.iter()
                .map(|x| f32_of(*x))
                .enumerate()
                .find(|(_, x)| !x.is_finite())
        }
        match self {
            PlainData::F32(v) => find(v, |x| x),
            PlainData::Bf16(v) => find(v, bf16::to_f32),
            PlainData::F16(v) => find(v, f16::to_f32),
        }
    }

    /// Writes elements `start..start + out.len()` as f32 into `out`.
    pub fn to_f32_range(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            PlainData::F32(v) => out.copy_from_slice(&v[start..end]),
            PlainData::Bf16(v) => out
                .iter_mut()
                .zip(&v[start..end])
                .for_each(|(o, x)| *o = x.to_f32()),
            PlainData::F16(v) => out
                .iter_mut()
                .zip(&v[start..end])
                .for_each(|(o, x)| *o = x.to_f32()),
        }
    }
}

#[cfg(target_endian = "big")]
compile_error!(
    "ue8-convert reads little-endian safetensors data in place; big-endian hosts are not supported"
);

/// Decodes any layout entry to f32 values, with its logical shape.
pub fn decode_entry_f32(
    ck: &Checkpoint,
    entry: &LayoutEntry,
) -> Result<(Vec<usize>, Vec<f32>), ConvertError> {
    match entry {
        LayoutEntry::Plain(name) => {
            let t = ck.tensor(name)?;
            let data = PlainData::of(&t).ok_or_else(|| {
                ConvertError::tensor(
                    t.file,
                    name,
                    format!("{} is not a float dtype ue8 can read as numbers", t.dtype),
                )
            })?;
            let mut out = vec![0f32; data.len()];
            out.par_chunks_mut(1 << 16)
                .enumerate()
                .for_each(|(i, o)| data.to_f32_range(i << 16, o));
            Ok((t.shape.to_vec(), out))
        }
        LayoutEntry::Quant(g) => Ok((g.shape.clone(), decode_group_f32(ck, g)?)),
    }
}

/// Scales of a DeepSeek group as f32, from F32 or E8M0 storage.
pub fn block_scales_f32(ck: &Checkpoint, g: &QuantGroup) -> Result<Vec<f32>, ConvertError> {
    let s = ck.tensor(&g.scales)?;
    match s.dtype {
        Dtype::F32 => Ok(s
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        _ => {
            let mut out = vec![0f32; s.bytes.len()];
            ue8_quant::e8m0_to_scales(s.bytes, &mut out)
                .map_err(|e| ConvertError::quant(s.file, &g.scales, e))?;
            Ok(out)
        }
    }
}

/// (rows, k) of a group: every leading dimension folded into rows.
pub fn rows_cols(shape: &[usize]) -> (usize, usize) {
    match shape.split_last() {
        Some((&k, lead)) => (lead.iter().product(), k),
        None => (1, 1),
    }
}

/// Unpacks a group's MX element codes to one byte per logical element, `[rows, k]`.
pub fn mx_codes(ck: &Checkpoint, g: &QuantGroup, elem: MxElement) -> Result<Vec<u8>, ConvertError> {
    let t = ck.tensor(&g.data)?;
    let (rows, k) = rows_cols(&g.shape);
    if rows == 0 || k == 0 {
        return Ok(Vec::new());
    }
    let kp = k.div_ceil(32) * 32;
    let fail = |e| ConvertError::quant(t.file, &g.data, e);
    match elem {
        MxElement::E4M3 | MxElement::E5M2 => Ok(t.bytes.to_vec()),
        MxElement::E3M2 | MxElement::E2M3 | MxElement::E2M1 => {
            let row_bytes = if elem == MxElement::E2M1 {
                kp / 2
            } else {
                kp * 3 / 4
            };
            if t.bytes.len() != rows * row_bytes {
                return Err(ConvertError::tensor(
                    t.file,
                    &g.data,
                    format!(
                        "{} bytes, expected {rows} rows of {row_bytes}",
                        t.bytes.len()
                    ),
                ));
            }
            let mut out = vec![0u8; rows * k];
            let mut row = vec![0u8; kp];
            for (src, dst) in t
                .bytes
                .chunks(row_bytes.max(1))
                .zip(out.chunks_mut(k.max(1)))
            {
                if elem == MxElement::E2M1 {
                    ue8_quant::unpack_e2m1(src, &mut row).map_err(fail)?;
                } else {
                    ue8_quant::unpack_fp6(src, &mut row).map_err(fail)?;
                }
                dst.copy_from_slice(&row[..k]);
            }
            Ok(out)
        }
    }
}

/// Decodes a quantized group to f32 (formats.md: one f32 multiply of element value by scale).
pub fn decode_group_f32(ck: &Checkpoint, g: &QuantGroup) -> Result<Vec<f32>, ConvertError> {
    let (rows, k) = rows_cols(&g.shape);
    if rows == 0 || k == 0 {
        return Ok(Vec::new());
    }
    let file = ck.tensor(&g.data)?.file.to_path_buf();
    let fail = |e| ConvertError::quant(&file, &g.name, e);
    let mut out = vec![0f32; rows * k];
    match g.kind {
        GroupKind::BlockFp8 { .. } => {
            let q = ck.tensor(&g.data)?;
            let scales = block_scales_f32(ck, g)?;
            BlockFp8::WEIGHT
                .dequantize_to_f32_par(q.bytes, &scales, rows, k, &mut out)
                .map_err(fail)?;
        }
        GroupKind::Mx { elem } => {
            let elem = crate::format::mx_element_of(elem);
            let codes = mx_codes(ck, g, elem)?;
            let scales = ck.tensor(&g.scales)?;
            if let Some(i) = scales.bytes.iter().position(|&b| b == 0xFF) {
                return Err(ConvertError::tensor(
                    scales.file,
                    &g.scales,
                    format!("E8M0 scale 0xFF (NaN) at index {i}"),
                ));
            }
            let scheme = MxScheme {
                elem,
                rule: MxScaleRule::Floor,
            };
            let nb = k.div_ceil(32);
            let band = 64usize;
            out.par_chunks_mut(band * k)
                .zip(codes.par_chunks(band * k))
                .zip(scales.bytes.par_chunks(band * nb))
                .try_for_each(|((o, c), s)| scheme.dequantize_to_f32(c, s, o.len() / k, k, o))
                .map_err(fail)?;
        }
    }
    Ok(out)
}
