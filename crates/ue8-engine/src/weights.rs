//! Linear weights as stored: every format is kept in the mmap as it is on disk (no dequantized
//! copy); only the small DeepSeek 128x128 scale grids are copied, to aligned f32.
//!
//! Formats (names and shapes from `docs/layouts.md`):
//! - plain `F32`, `BF16`, `F16` `<m>.weight` [N, K];
//! - DeepSeek blockwise FP8: `<m>.weight` F8_E4M3 [N, K] + `<m>.weight_scale_inv` (F32, F8_E8M0, U8 or
//!   BF16) [ceil(N/128), ceil(K/128)];
//! - MXFP8/MXFP6: `<m>.weight` F8_E4M3 / F8_E5M2 / F6_E3M2 / F6_E2M3 + `<m>.weight_scale` U8/F8_E8M0
//!   [N, ceil(K/32)];
//! - MXFP4 (gpt-oss naming): `<m>.weight_blocks` U8 [N, Kp/32, 16] + `<m>.weight_scales` [N, Kp/32].
//!
//! Load-time screens (formats.md section 5): E4M3 NaN codes 0x7F/0xFF, E5M2 inf/NaN codes, E8M0 0xFF
//! scales and non-finite or non-positive F32 scales are errors naming the tensor and the position.

use crate::checkpoint::{Checkpoint, TensorRef};
use crate::error::{EngineError, Result};
use crate::kernels::{MxElement as KernelMx, WeightData, WeightMatrix};
use safetensors::tensor::Dtype;
use std::sync::OnceLock;
use ue8_formats::{Element, E2M1, E2M3, E3M2, E4M3, E5M2, E8M0};

/// Rows and columns of one DeepSeek scale tile.
pub const FP8_TILE: usize = 128;
/// Elements per OCP MX block along K.
pub const MX_BLOCK: usize = 32;

/// Element type of an MX block format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MxElement {
    E4m3,
    E5m2,
    E3m2,
    E2m3,
    E2m1,
}

impl MxElement {
    /// Bytes one row of `k` logical elements occupies (packed types are padded to whole blocks).
    pub fn row_bytes(self, k: usize) -> usize {
        let kp = k.div_ceil(MX_BLOCK) * MX_BLOCK;
        match self {
            MxElement::E4m3 | MxElement::E5m2 => k,
            MxElement::E3m2 | MxElement::E2m3 => kp / 4 * 3,
            MxElement::E2m1 => kp / 2,
        }
    }

    /// f32 value of every code (256 entries; codes past the type's width are unused).
    pub fn table(self) -> &'static [f32; 256] {
        static TABLES: [OnceLock<[f32; 256]>; 5] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let (slot, decode): (usize, fn(u8) -> f32) = match self {
            MxElement::E4m3 => (0, |b| E4M3::from_bits(b).to_f32()),
            MxElement::E5m2 => (1, |b| E5M2::from_bits(b).to_f32()),
            MxElement::E3m2 => (2, |b| E3M2::from_bits(b & 0x3F).to_f32()),
            MxElement::E2m3 => (3, |b| E2M3::from_bits(b & 0x3F).to_f32()),
            MxElement::E2m1 => (4, |b| E2M1::from_bits(b & 0x0F).to_f32()),
        };
        TABLES[slot].get_or_init(|| std::array::from_fn(|i| decode(i as u8)))
    }
}

/// How a linear weight's bytes are laid out.
#[derive(Debug)]
pub enum LinearData<'a> {
    F32(&'a [u8]),
    Bf16(&'a [u8]),
    F16(&'a [u8]),
    /// DeepSeek blockwise FP8: E4M3 codes [N, K], f32 scales [ceil(N/128), ceil(K/128)].
    E4m3Tiles {
        q: &'a [u8],
        scales: &'a [f32],
    },
    /// OCP MX: packed elements (`row_bytes` per row), E8M0 scale bytes [N, ceil(K/32)].
    Mx {
        elem: MxElement,
        data: &'a [u8],
        scales: &'a [u8],
        row_bytes: usize,
    },
}

/// One linear layer y = x W^T (+ b), W of logical shape [n, k] = [out, in].
#[derive(Debug)]
pub struct Linear<'a> {
    pub name: String,
    pub n: usize,
    pub k: usize,
    pub data: LinearData<'a>,
    pub bias: Option<Vec<f32>>,
    /// The same bytes, validated once for the matmul kernels.
    pub matrix: WeightMatrix<'a>,
}

/// The kernels' view of the stored bytes.
fn kernel_data<'a>(d: &LinearData<'a>) -> WeightData<'a> {
    match *d {
        LinearData::F32(b) => WeightData::F32(b),
        LinearData::Bf16(b) => WeightData::Bf16(b),
        LinearData::F16(b) => WeightData::F16(b),
        LinearData::E4m3Tiles { q, scales } => WeightData::E4m3Tiles { q, scales },
        LinearData::Mx {
            elem, data, scales, ..
        } => WeightData::Mx {
            elem: match elem {
                MxElement::E4m3 => KernelMx::E4M3,
                MxElement::E5m2 => KernelMx::E5M2,
                MxElement::E3m2 => KernelMx::E3M2,
                MxElement::E2m3 => KernelMx::E2M3,
                MxElement::E2m1 => KernelMx::E2M1,
            },
            data,
            scales,
        },
    }
}

fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| EngineError::SizeOverflow(what.to_string()))
}

fn expect_len(t: &TensorRef, bytes: usize) -> Result<()> {
    if t.data.len() == bytes {
        Ok(())
    } else {
        Err(EngineError::Safetensors {
            path: t.file.to_path_buf(),
            message: format!(
                "tensor '{}' holds {} bytes, its shape needs {bytes}",
                t.name,
                t.data.len()
            ),
        })
    }
}

/// E4M3 (`nan_mask` 0x7F) or E5M2 inf/NaN codes are never written by a quantizer: refuse them.
fn screen_codes(t: &TensorRef, elem: MxElement) -> Result<()> {
    let bad = |b: u8| match elem {
        MxElement::E4m3 => b & 0x7F == 0x7F,
        MxElement::E5m2 => b & 0x7F >= 0x7C,
        _ => false,
    };
    if let Some(index) = t.data.iter().position(|&b| bad(b)) {
        return Err(EngineError::NanCode {
            file: t.file.to_path_buf(),
            tensor: t.name.to_string(),
            index,
            code: t.data[index],
        });
    }
    Ok(())
}

fn bad_scale(t: &TensorRef, index: usize, problem: impl Into<String>) -> EngineError {
    EngineError::BadScale {
        file: t.file.to_path_buf(),
        tensor: t.name.to_string(),
        index,
        problem: problem.into(),
    }
}

/// A DeepSeek scale grid (F32, F8_E8M0/U8 bytes, BF16, F16) as the f32 copy the checkpoint made at
/// open, rejecting the E8M0 NaN byte, NaN, inf and values <= 0.
fn read_tile_scales<'a>(
    ck: &'a Checkpoint,
    t: &TensorRef,
    rows: usize,
    cols: usize,
) -> Result<&'a [f32]> {
    t.expect_shape(&[rows, cols])?;
    match t.dtype {
        Dtype::F8_E8M0 | Dtype::U8 => {
            if let Some(i) = t.data.iter().position(|&b| b == 0xFF) {
                return Err(bad_scale(t, i, "the E8M0 NaN code 0xFF"));
            }
        }
        Dtype::F32 | Dtype::BF16 | Dtype::F16 => {}
        _ => return Err(t.dtype_error("scales in F32, F8_E8M0, U8, BF16 or F16")),
    }
    let scales = ck
        .tile_scales(t.name)
        .ok_or_else(|| bad_scale(t, 0, "not decodable"))?;
    if scales.len() != mul(rows, cols, "scale grid")? {
        return Err(bad_scale(t, scales.len(), "missing: the grid is short"));
    }
    if let Some(i) = scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(bad_scale(
            t,
            i,
            format!("{} (must be finite and positive)", scales[i]),
        ));
    }
    Ok(scales)
}

fn read_mx_scales<'a>(t: &TensorRef<'a>, n: usize, blocks: usize) -> Result<&'a [u8]> {
    if !matches!(t.dtype, Dtype::U8 | Dtype::F8_E8M0) {
        return Err(t.dtype_error("MX scales in U8 or F8_E8M0"));
    }
    t.expect_shape(&[n, blocks])?;
    expect_len(t, mul(n, blocks, "MX scale grid")?)?;
    if let Some(i) = t.data.iter().position(|&b| b == 0xFF) {
        return Err(bad_scale(t, i, "the E8M0 NaN code 0xFF"));
    }
    Ok(t.data)
}

impl<'a> Linear<'a> {
    /// Load module `m` (e.g. `model.layers.0.self_attn.q_proj`) of logical shape [n, k] in whichever
    /// stored format its tensors show; `bias` loads `<m>.bias` [n] too.
    pub fn load(ck: &'a Checkpoint, m: &str, n: usize, k: usize, bias: bool) -> Result<Self> {
        let data = Self::load_data(ck, m, n, k)?;
        let bias = if bias {
            let b = ck.tensor(&format!("{m}.bias"), "bias of a linear layer")?;
            b.expect_shape(&[n])?;
            Some(b.to_f32_vec()?)
        } else {
            None
        };
        let matrix =
            WeightMatrix::new(n, k, kernel_data(&data)).map_err(|source| EngineError::Kernel {
                tensor: m.to_string(),
                source,
            })?;
        Ok(Linear {
            name: m.to_string(),
            n,
            k,
            data,
            bias,
            matrix,
        })
    }

    /// Load `name` (a plain tensor such as `model.embed_tokens.weight`) or its quantized companions.
    fn load_data(ck: &'a Checkpoint, m: &str, n: usize, k: usize) -> Result<LinearData<'a>> {
        let blocks_name = format!("{m}.weight_blocks");
        if let Some(blocks) = ck.get(&blocks_name) {
            // MXFP4, gpt-oss naming: [N, Kp/32, 16] nibbles.
            let nb = k.div_ceil(MX_BLOCK);
            if blocks.dtype != Dtype::U8 {
                return Err(blocks.dtype_error("U8 MXFP4 blocks"));
            }
            blocks.expect_shape(&[n, nb, 16])?;
            let row_bytes = MxElement::E2m1.row_bytes(k);
            expect_len(&blocks, mul(n, row_bytes, "MXFP4 blocks")?)?;
            let scales = ck.tensor(&format!("{m}.weight_scales"), "MXFP4 scales")?;
            return Ok(LinearData::Mx {
                elem: MxElement::E2m1,
                data: blocks.data,
                scales: read_mx_scales(&scales, n, nb)?,
                row_bytes,
            });
        }
        let w = ck.tensor(&format!("{m}.weight"), "linear weight")?;
        let nk = mul(n, k, "weight size")?;
        match w.dtype {
            Dtype::F32 | Dtype::BF16 | Dtype::F16 => {
                w.expect_shape(&[n, k])?;
                let width = if w.dtype == Dtype::F32 { 4 } else { 2 };
                expect_len(&w, mul(nk, width, "weight bytes")?)?;
                Ok(match w.dtype {
                    Dtype::F32 => LinearData::F32(w.data),
                    Dtype::BF16 => LinearData::Bf16(w.data),
                    _ => LinearData::F16(w.data),
                })
            }
            Dtype::F8_E4M3 | Dtype::F8_E5M2 | Dtype::F6_E3M2 | Dtype::F6_E2M3 => {
                let elem = match w.dtype {
                    Dtype::F8_E4M3 => MxElement::E4m3,
                    Dtype::F8_E5M2 => MxElement::E5m2,
                    Dtype::F6_E3M2 => MxElement::E3m2,
                    _ => MxElement::E2m3,
                };
                let tile_name = format!("{m}.weight_scale_inv");
                if elem == MxElement::E4m3 {
                    if let Some(s) = ck.get(&tile_name) {
                        w.expect_shape(&[n, k])?;
                        expect_len(&w, nk)?;
                        screen_codes(&w, elem)?;
                        let scales =
                            read_tile_scales(ck, &s, n.div_ceil(FP8_TILE), k.div_ceil(FP8_TILE))?;
                        return Ok(LinearData::E4m3Tiles { q: w.data, scales });
                    }
                }
                let s = ck.tensor(
                    &format!("{m}.weight_scale"),
                    "scales of an FP8/FP6 weight (weight_scale_inv or weight_scale)",
                )?;
                let nb = k.div_ceil(MX_BLOCK);
                // compressed-tensors FP8_BLOCK: `weight_scale` on the 128x128 grid.
                if elem == MxElement::E4m3
                    && s.shape == [n.div_ceil(FP8_TILE), k.div_ceil(FP8_TILE)]
                    && s.shape != [n, nb]
                {
                    w.expect_shape(&[n, k])?;
                    expect_len(&w, nk)?;
                    screen_codes(&w, elem)?;
                    let scales =
                        read_tile_scales(ck, &s, n.div_ceil(FP8_TILE), k.div_ceil(FP8_TILE))?;
                    return Ok(LinearData::E4m3Tiles { q: w.data, scales });
                }
                let stored_k = match elem {
                    MxElement::E4m3 | MxElement::E5m2 => k,
                    _ => nb * MX_BLOCK,
                };
                w.expect_shape(&[n, stored_k])?;
                let row_bytes = elem.row_bytes(k);
                expect_len(&w, mul(n, row_bytes, "MX weight bytes")?)?;
                screen_codes(&w, elem)?;
                Ok(LinearData::Mx {
                    elem,
                    data: w.data,
                    scales: read_mx_scales(&s, n, nb)?,
                    row_bytes,
                })
            }
            _ => Err(w.dtype_error(
                "F32, BF16, F16, F8_E4M3 (+ scales), F8_E5M2, F6_E3M2, F6_E2M3 or MXFP4 blocks",
            )),
        }
    }

    /// Bytes of weight (and scale) data one full pass over this matrix reads.
    pub fn bytes(&self) -> usize {
        match &self.data {
            LinearData::F32(d) | LinearData::Bf16(d) | LinearData::F16(d) => d.len(),
            LinearData::E4m3Tiles { q, scales } => q.len() + scales.len() * 4,
            LinearData::Mx { data, scales, .. } => data.len() + scales.len(),
        }
    }

    /// Short name of the stored format, for reports.
    pub fn format_name(&self) -> &'static str {
        match &self.data {
            LinearData::F32(_) => "f32",
            LinearData::Bf16(_) => "bf16",
            LinearData::F16(_) => "f16",
            LinearData::E4m3Tiles { .. } => "fp8-e4m3-128x128",
            LinearData::Mx { elem, .. } => match elem {
                MxElement::E4m3 => "mxfp8-e4m3",
                MxElement::E5m2 => "mxfp8-e5m2",
                MxElement::E3m2 => "mxfp6-e3m2",
                MxElement::E2m3 => "mxfp6-e2m3",
                MxElement::E2m1 => "mxfp4",
            },
        }
    }

    /// Dequantize row `r` into `out` (length k), exactly as formats.md defines the value (f32, no
    /// bf16 rounding). Used for embedding lookups and as the reference the kernels are checked with.
    pub fn dequant_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        let k = self.k;
        if r >= self.n || out.len() != k {
            return Err(EngineError::InvalidArgument(format!(
                "{}: row {r} of {} into a buffer of {} (k = {k})",
                self.name,
                self.n,
                out.len()
            )));
        }
        let range = |width: usize| r * k * width..(r + 1) * k * width;
        let short =
            || EngineError::InvalidArgument(format!("{}: data shorter than its shape", self.name));
        match &self.data {
            LinearData::F32(d) => {
                let row = d.get(range(4)).ok_or_else(short)?;
                for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            LinearData::Bf16(d) => {
                let row = d.get(range(2)).ok_or_else(short)?;
                for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
            LinearData::F16(d) => {
                let row = d.get(range(2)).ok_or_else(short)?;
                for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
                }
            }
            LinearData::E4m3Tiles { q, scales } => {
                let row = q.get(range(1)).ok_or_else(short)?;
                let table = MxElement::E4m3.table();
                let tiles_k = k.div_ceil(FP8_TILE);
                let srow = scales
                    .get((r / FP8_TILE) * tiles_k..(r / FP8_TILE + 1) * tiles_k)
                    .ok_or_else(short)?;
                for (c, (o, &b)) in out.iter_mut().zip(row).enumerate() {
                    *o = table[b as usize] * srow[c / FP8_TILE];
                }
            }
            LinearData::Mx {
                elem,
                data,
                scales,
                row_bytes,
            } => {
                let nb = k.div_ceil(MX_BLOCK);
                let row = data
                    .get(r * row_bytes..(r + 1) * row_bytes)
                    .ok_or_else(short)?;
                let srow = scales.get(r * nb..(r + 1) * nb).ok_or_else(short)?;
                let table = elem.table();
                for (c, o) in out.iter_mut().enumerate() {
                    let code = mx_code(*elem, row, c);
                    *o = table[code as usize] * E8M0::from_bits(srow[c / MX_BLOCK]).to_f32();
                }
            }
        }
        Ok(())
    }
}

/// Code of element `c` in a packed MX row (layouts.md: FP4 low nibble first, FP6 LSB-first stream).
#[inline]
pub fn mx_code(elem: MxElement, row: &[u8], c: usize) -> u8 {
    match elem {
        MxElement::E4m3 | MxElement::E5m2 => row.get(c).copied().unwrap_or(0),
        MxElement::E2m1 => {
            let b = row.get(c / 2).copied().unwrap_or(0);
            if c.is_multiple_of(2) {
                b & 0x0F
            } else {
                b >> 4
            }
        }
        MxElement::E3m2 | MxElement::E2m3 => {
            let bit = c * 6;
            let lo = row.get(bit / 8).copied().unwrap_or(0) as u16;
            let hi = row.get(bit / 8 + 1).copied().unwrap_or(0) as u16;
            (((lo | (hi << 8)) >> (bit % 8)) & 0x3F) as u8
        }
    }
}
