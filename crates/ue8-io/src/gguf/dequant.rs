//! Scalar dequantizers from GGML block formats to f32, bit for bit equal to `gguf.quants.dequantize`
//! of the PyPI `gguf` package (the oracle; fixtures in `tests/fixtures/gguf/`). Each one does its
//! arithmetic in the same order as the oracle (`d * q + m`, `(d * sc) * q - dmin * m`, ...) because a
//! different order rounds differently. Import runs once per model, so these are plain scalar loops.

use std::path::Path;

use super::error::GgufError;
use super::ggml_type::GgmlType;

/// Why a block of bytes could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("GGML type {0} cannot be dequantized by ue8")]
    Unsupported(GgmlType),
    #[error("{ggml_type}: {elems} elements need {expected} bytes, got {got}")]
    Length {
        ggml_type: GgmlType,
        elems: usize,
        expected: u64,
        got: usize,
    },
}

impl DequantError {
    /// Attaches the file and tensor the bytes came from.
    pub fn at(self, path: &Path, tensor: &str) -> GgufError {
        match self {
            DequantError::Unsupported(t) => GgufError::UnsupportedType {
                path: path.to_path_buf(),
                tensor: tensor.to_string(),
                ggml_type: t.name(),
            },
            other => GgufError::Invalid {
                path: path.to_path_buf(),
                problem: format!("tensor '{tensor}': {other}"),
            },
        }
    }
}

/// Decodes `src` (whole blocks of `ty`) into `out`, whose length gives the element count.
pub fn dequantize_to_f32(ty: GgmlType, src: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    if !ty.can_dequantize() {
        return Err(DequantError::Unsupported(ty));
    }
    let block = ty.block_elems() as usize;
    let block_bytes = ty.block_bytes() as usize;
    let expected = (out.len() / block) as u64 * block_bytes as u64;
    if !out.len().is_multiple_of(block) || src.len() as u64 != expected {
        return Err(DequantError::Length {
            ggml_type: ty,
            elems: out.len(),
            expected,
            got: src.len(),
        });
    }
    let pairs = src
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(block));
    match ty {
        GgmlType::F32 => {
            pairs.for_each(|(b, o)| o[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        GgmlType::F16 => pairs.for_each(|(b, o)| o[0] = f16_at(b, 0)),
        GgmlType::Bf16 => pairs.for_each(|(b, o)| {
            o[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
        }),
        GgmlType::Q8_0 => pairs.for_each(|(b, o)| block_q8_0(b, o)),
        GgmlType::Q4_0 => pairs.for_each(|(b, o)| block_q4_0(b, o)),
        GgmlType::Q4_1 => pairs.for_each(|(b, o)| block_q4_1(b, o)),
        GgmlType::Q4K => pairs.for_each(|(b, o)| block_q4_k(b, o)),
        GgmlType::Q6K => pairs.for_each(|(b, o)| block_q6_k(b, o)),
        GgmlType::Mxfp4 => pairs.for_each(|(b, o)| block_mxfp4(b, o)),
        other => return Err(DequantError::Unsupported(other)),
    }
    Ok(())
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_to_f32_exact(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// f16 -> f32 by bit manipulation. Unlike a hardware conversion (F16C quiets signalling NaNs), this
/// keeps every NaN payload as numpy and ggml's scalar path do, so NaN fixtures match bit for bit.
pub fn f16_to_f32_exact(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1F);
    let man = u32::from(h & 0x03FF);
    let bits = match exp {
        0x1F => sign | 0x7F80_0000 | (man << 13),
        0 if man == 0 => sign,
        // Subnormal: man * 2^-24, exact in f32.
        0 => {
            // Subnormal: man * 2^-24, exact in f32 (man < 2^10).
            let v = man as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Q8_0: { f16 d; i8 q[32] }, x = q * d.
fn block_q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = f32::from(q as i8) * d;
    }
}

/// Q4_0: { f16 d; u8 qs[16] }, byte j holds element j (low nibble) and j+16; x = d * (q - 8).
fn block_q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = out.split_at_mut(16);
    for j in 0..16 {
        let q = b[2 + j];
        lo[j] = d * f32::from((q & 0x0F) as i8 - 8);
        hi[j] = d * f32::from((q >> 4) as i8 - 8);
    }
}

/// Q4_1: { f16 d; f16 m; u8 qs[16] }, same nibble split; x = d * q + m (no fused multiply-add).
fn block_q4_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let (lo, hi) = out.split_at_mut(16);
    for j in 0..16 {
        let q = b[4 + j];
        lo[j] = d * f32::from(q & 0x0F) + m;
        hi[j] = d * f32::from(q >> 4) + m;
    }
}

/// The eight 6-bit scales and mins of a Q4_K super-block, packed in 12 bytes.
fn q4_k_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 0x3F;
        mn[j] = s[4 + j] & 0x3F;
        sc[4 + j] = (s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
    (sc, mn)
}

/// Q4_K: { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }, 8 sub-blocks of 32:
/// x = (d * sc[j]) * q - (dmin * m[j]); sub-blocks 2i and 2i+1 share bytes 32i.. (low, high nibble).
fn block_q4_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = q4_k_scales_mins(&b[4..16]);
    let qs = &b[16..144];
    for (j, sub) in out.chunks_exact_mut(32).enumerate() {
        let scale = d * f32::from(sc[j]);
        let min = dmin * f32::from(mn[j]);
        let bytes = &qs[32 * (j / 2)..32 * (j / 2) + 32];
        let shift = 4 * (j % 2) as u32;
        for (o, &q) in sub.iter_mut().zip(bytes) {
            *o = scale * f32::from((q >> shift) & 0x0F) - min;
        }
    }
}

/// Q6_K: { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }, 6-bit q - 32, 16 sub-blocks of 16:
/// x = (d * scales[i]) * q.
fn block_q6_k(b: &[u8], out: &mut [f32]) {
    let ql = &b[0..128];
    let qh = &b[128..192];
    let scales = &b[192..208];
    let d = f16_at(b, 208);
    for half in 0..2 {
        for g in 0..4 {
            // Group g of this half: low bits from ql[half*64 + (g%2)*32 ..] shifted by 4*(g/2),
            // high bits from qh[half*32 ..] shifted by 2*g.
            let ql_base = half * 64 + (g % 2) * 32;
            let ql_shift = 4 * (g / 2) as u32;
            let qh_shift = 2 * g as u32;
            for l in 0..32 {
                let low = (ql[ql_base + l] >> ql_shift) & 0x0F;
                let high = (qh[half * 32 + l] >> qh_shift) & 0x03;
                let q = (low | (high << 4)) as i8 - 32;
                let e = half * 128 + g * 32 + l;
                let scale = d * f32::from(scales[e / 16] as i8);
                out[e] = scale * f32::from(q);
            }
        }
    }
}

/// E2M1 values doubled, as ggml stores them (`kvalues_mxfp4`).
const MXFP4_DOUBLED: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half of 2^(e-127), i.e. 2^(e-128), built from bits as ggml's `ggml_e8m0_to_fp32_half` does:
/// exact for every byte, subnormal for e < 2, and 2^127 (not NaN) for 0xFF.
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000u32 << e)
    } else {
        f32::from_bits(u32::from(e - 1) << 23)
    }
}

/// MXFP4 (GGUF type 39): { u8 e; u8 qs[16] }, byte j holds element j (low) and j+16 (high);
/// x = 2^(e-128) * doubled_e2m1(q).
fn block_mxfp4(b: &[u8], out: &mut [f32]) {
    let d = e8m0_to_f32_half(b[0]);
    let (lo, hi) = out.split_at_mut(16);
    for j in 0..16 {
        let q = b[1 + j];
        lo[j] = d * f32::from(MXFP4_DOUBLED[usize::from(q & 0x0F)]);
        hi[j] = d * f32::from(MXFP4_DOUBLED[usize::from(q >> 4)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_type_are_checked() {
        let mut out = [0f32; 32];
        assert!(matches!(
            dequantize_to_f32(GgmlType::Q8_0, &[0u8; 33], &mut out),
            Err(DequantError::Length { .. })
        ));
        assert!(matches!(
            dequantize_to_f32(GgmlType::Q8_0, &[0u8; 34], &mut out[..31]),
            Err(DequantError::Length { .. })
        ));
        assert_eq!(
            dequantize_to_f32(GgmlType::Q5_0, &[0u8; 22], &mut out),
            Err(DequantError::Unsupported(GgmlType::Q5_0))
        );
        assert_eq!(dequantize_to_f32(GgmlType::Q8_0, &[], &mut []), Ok(()));
    }

    #[test]
    fn f16_conversion_is_exact_for_every_non_nan_code() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = f16_to_f32_exact(h);
            if want.is_nan() {
                assert!(got.is_nan());
                assert_eq!(
                    got.to_bits() & 0x803F_FFFF,
                    want.to_bits() & 0x803F_FFFF,
                    "{h:#06x}"
                );
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn e8m0_half_matches_powers_of_two() {
        for e in 2u8..=254 {
            assert_eq!(e8m0_to_f32_half(e), 2f32.powi(i32::from(e) - 128));
        }
        assert_eq!(e8m0_to_f32_half(0), 2f64.powi(-128) as f32);
        assert_eq!(e8m0_to_f32_half(1), 2f64.powi(-127) as f32);
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127));
    }
}
