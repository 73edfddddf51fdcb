//! Portable versions of the kernel primitives; also the tail loops of every SIMD variant, so a
//! SIMD kernel and its scalar twin can only differ in the vector body.

use std::ops::Range;
use std::sync::OnceLock;

use half::bf16;
use ue8_formats::{Element, Overflow, E2M1, E4M3};

use super::ScaleOp;
use crate::rules::{e8m0_to_f32, pow2, MxElement, MxScaleRule, E4M3_MAX};
use crate::source::SourceElement;

/// Bits of the largest |x|; any NaN or inf makes the result >= 0x7F80_0000 (integer order of
/// non-negative f32 bit patterns is their value order, with inf and NaN above every finite).
#[inline]
pub(crate) fn max_abs_bits<T: SourceElement>(src: &[T]) -> u32 {
    src.iter()
        .fold(0u32, |m, v| m.max(v.to_f32().to_bits() & 0x7FFF_FFFF))
}

/// Max |x| bits over columns `cols` of every row of a band with row length `k`.
pub(crate) fn tile_max_abs_bits<T: SourceElement>(src: &[T], k: usize, cols: Range<usize>) -> u32 {
    src.chunks(k)
        .filter_map(|row| row.get(cols.clone()))
        .fold(0, |m, seg| m.max(max_abs_bits(seg)))
}

/// E4M3-encodes columns `cols` of every row of a band into `q`; returns clipped. The scalar
/// encoder always clamps, so the `may_clip` hint of the SIMD kernels is not needed here.
pub(crate) fn encode_tile_e4m3<T: SourceElement>(
    src: &[T],
    k: usize,
    cols: Range<usize>,
    op: ScaleOp,
    _may_clip: bool,
    q: &mut [u8],
) -> u64 {
    let mut clipped = 0;
    for (row, qrow) in src.chunks(k).zip(q.chunks_mut(k)) {
        if let (Some(s), Some(d)) = (row.get(cols.clone()), qrow.get_mut(cols.clone())) {
            clipped += encode_e4m3(s, op, d);
        }
    }
    clipped
}

/// E4M3 code of one already-scaled value, and whether it exceeded 448 before the clamp.
#[inline]
pub(crate) fn e4m3_code_clamped(x: f32) -> (u8, bool) {
    let clipped = x.abs() > E4M3_MAX;
    let c = E4M3::from_f32(x.clamp(-E4M3_MAX, E4M3_MAX), Overflow::Saturate).to_bits();
    (c, clipped)
}

/// E4M3 code of one already-scaled value clamped to +-448, on the f32 bits without branches
/// (so the loops below auto-vectorize on any target): RNE at mantissa bit 20 and a rebias for
/// normal results, the FPU's own RNE after adding 2^14 (ulp 2^-9, E4M3's quantum) for subnormal
/// ones, NaN kept as 0x7F with its sign. Equal to [`e4m3_code_clamped`] for every input (the
/// kernel tests check the two against each other).
#[inline]
pub(crate) fn e4m3_code_bits(x: f32) -> (u8, bool) {
    let b = x.to_bits();
    let sign = (b >> 24) & 0x80;
    let a = f32::from_bits(b & 0x7FFF_FFFF);
    let clipped = a > E4M3_MAX;
    let a = a.min(E4M3_MAX);
    let ab = a.to_bits();
    let round_rebias = 0x7_FFFFu32.wrapping_sub(960 << 20);
    let normal = ab.wrapping_add(round_rebias).wrapping_add((ab >> 20) & 1) >> 20;
    let subnormal = (a + 16384.0).to_bits().wrapping_sub(0x4680_0000);
    let code = if a < 0.015625 { subnormal } else { normal };
    let code = if x.is_nan() { 0x7F } else { code };
    ((code | sign) as u8, clipped)
}

pub(crate) fn encode_e4m3<T: SourceElement>(src: &[T], op: ScaleOp, out: &mut [u8]) -> u64 {
    // one loop per op, so the body has no branch and can be vectorized
    fn run<T: SourceElement>(src: &[T], out: &mut [u8], f: impl Fn(f32) -> f32) -> u64 {
        let mut clipped = 0u64;
        for (o, v) in out.iter_mut().zip(src) {
            let (c, clip) = e4m3_code_bits(f(v.to_f32()));
            *o = c;
            clipped += clip as u64;
        }
        clipped
    }
    match op {
        ScaleOp::MulInv(i) => run(src, out, |v| v * i),
        ScaleOp::Div(s) => run(src, out, |v| v / s),
    }
}

/// E4M3 code -> f32 for all 256 codes (NaN codes give NaN).
pub(crate) fn e4m3_table() -> &'static [f32; 256] {
    static TABLE: OnceLock<[f32; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0f32; 256];
        for (code, slot) in (0u8..=255).zip(t.iter_mut()) {
            *slot = E4M3::from_bits(code).to_f32();
        }
        t
    })
}

pub(crate) fn decode_e4m3_f32(q: &[u8], s: f32, out: &mut [f32]) {
    let t = e4m3_table();
    for (o, &c) in out.iter_mut().zip(q) {
        *o = t[c as usize] * s;
    }
}

pub(crate) fn decode_e4m3_bf16(q: &[u8], s: f32, out: &mut [bf16]) {
    let t = e4m3_table();
    for (o, &c) in out.iter_mut().zip(q) {
        *o = bf16::from_f32(t[c as usize] * s);
    }
}

/// Quantizes one MX block (<= 32 values) into unpacked `codes`; returns the scale byte.
/// A block holding NaN or inf gets scale 0xFF and all-zero codes.
#[inline]
pub(crate) fn mx_block<T: SourceElement>(
    elem: MxElement,
    rule: MxScaleRule,
    src: &[T],
    codes: &mut [u8],
) -> u8 {
    let amax_bits = max_abs_bits(src);
    if amax_bits >= 0x7F80_0000 {
        codes.fill(0);
        return 0xFF;
    }
    let byte = rule.scale_byte(elem, f32::from_bits(amax_bits));
    // 1/X = 2^(127 - byte) is exact for every byte 0..=254, so v * inv == v / X bit for bit.
    let inv = pow2(127 - byte as i32);
    for (c, v) in codes.iter_mut().zip(src) {
        *c = elem.encode(v.to_f32() * inv);
    }
    byte
}

pub(crate) fn mxfp4_quantize_row<T: SourceElement>(
    rule: MxScaleRule,
    src: &[T],
    blocks: &mut [u8],
    scales: &mut [u8],
) {
    for ((chunk, packed), scale) in src
        .chunks(32)
        .zip(blocks.chunks_exact_mut(16))
        .zip(scales.iter_mut())
    {
        let mut codes = [0u8; 32];
        *scale = mx_block(MxElement::E2M1, rule, chunk, &mut codes[..chunk.len()]);
        for (j, p) in packed.iter_mut().enumerate() {
            *p = codes[2 * j] | (codes[2 * j + 1] << 4);
        }
    }
}

pub(crate) fn mxfp4_dequantize_row<O>(
    blocks: &[u8],
    scales: &[u8],
    out: &mut [O],
    convert: impl Fn(f32) -> O,
) {
    for ((packed, &scale), dst) in blocks.chunks_exact(16).zip(scales).zip(out.chunks_mut(32)) {
        let x = e8m0_to_f32(scale);
        for (i, o) in dst.iter_mut().enumerate() {
            let code = (packed[i / 2] >> (4 * (i % 2))) & 0xF;
            *o = convert(E2M1::from_bits(code).to_f32() * x);
        }
    }
}

/// One row of an MX scheme into unpacked codes (one per element) and its scale bytes, with the
/// fast-kernel arithmetic (`v * 2^(127 - byte)`, exact); returns (clipped, non-finite) counts.
pub(crate) fn mx_quantize_row<T: SourceElement>(
    elem: MxElement,
    rule: MxScaleRule,
    src: &[T],
    codes: &mut [u8],
    scales: &mut [u8],
) -> (u64, u64) {
    let (mut clipped, mut nonfinite) = (0u64, 0u64);
    let max = elem.max();
    for ((s, c), scale) in src
        .chunks(32)
        .zip(codes.chunks_mut(32))
        .zip(scales.iter_mut())
    {
        *scale = mx_block(elem, rule, s, c);
        if *scale == 0xFF {
            nonfinite += s.iter().filter(|v| !v.to_f32().is_finite()).count() as u64;
        } else {
            let inv = pow2(127 - *scale as i32);
            clipped += s.iter().filter(|v| (v.to_f32() * inv).abs() > max).count() as u64;
        }
    }
    (clipped, nonfinite)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free encoder against the `ue8_formats` one, over ~1 M f32 bit patterns spread
    /// over every sign, binade and payload, plus the boundaries that matter.
    #[test]
    fn e4m3_code_bits_matches_element_cast() {
        let specials = [
            0.0f32,
            -0.0,
            448.0,
            464.0,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            0.015625,
            0.015625 * (1.0 - f32::EPSILON),
            2f32.powi(-10),
            3.0 * 2f32.powi(-10),
            f32::MIN_POSITIVE,
            1e-45,
        ];
        let strided = (0..=u32::MAX).step_by(4099).map(f32::from_bits);
        for x in specials.into_iter().chain(strided) {
            assert_eq!(
                e4m3_code_bits(x),
                e4m3_code_clamped(x),
                "{x:e} ({:#010x})",
                x.to_bits()
            );
        }
    }
}
