//! Hot loops with run-time CPU dispatch.
//!
//! Each primitive has a portable scalar version (`scalar.rs`, also the tail handler of every SIMD
//! loop) and, on x86-64, an AVX2+FMA+F16C version (`avx2.rs`); the E4M3 encode/decode also have
//! an AVX-512 version (`avx512.rs`). [`Isa::detect`] picks once per
//! process; every variant the machine supports is listed by [`Isa::available`] so one test can run
//! them all against the `*_ref` functions of the schemes. AVX-512 and NEON slot in as new variants.

use std::ops::Range;
use std::sync::OnceLock;

use half::bf16;

use crate::rules::{MxElement, MxScaleRule};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod scalar;

/// An instruction-set variant of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, every target.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F and BW on top of AVX2/FMA/F16C (E4M3 encode/decode in 16 lanes;
    /// the other kernels use their AVX2 versions).
    Avx512,
}

impl Isa {
    /// The best variant this CPU runs, detected on first use and cached for the process.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| Isa::available().last().copied().unwrap_or(Isa::Scalar))
    }

    /// Every variant this CPU runs, slowest first.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        v.extend(simd_variants());
        v
    }

    /// Short name for reports and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// SIMD variants of this x86-64 CPU, slowest first.
#[cfg(target_arch = "x86_64")]
fn simd_variants() -> Vec<Isa> {
    let mut v = Vec::new();
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        v.push(Isa::Avx2);
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
            v.push(Isa::Avx512);
        }
    }
    v
}

/// No SIMD variants yet off x86-64 (a NEON variant would be listed here).
#[cfg(not(target_arch = "x86_64"))]
fn simd_variants() -> Vec<Isa> {
    Vec::new()
}

/// How a source value is brought into the E4M3 range: `v * inv` for a power-of-two scale (exact,
/// identical to `v / s` because `1/s` is exact), `v / s` for an arbitrary f32 scale.
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub enum ScaleOp {
    MulInv(f32),
    Div(f32),
}

impl ScaleOp {
    /// The op for scale `s`: multiply by the reciprocal when `s` is a power of two whose reciprocal
    /// is a normal-or-exact f32.
    pub(crate) fn for_scale(s: f32) -> ScaleOp {
        let b = s.to_bits();
        let e = (b >> 23) & 0xFF;
        if b & 0x807F_FFFF == 0 && (1..=253).contains(&e) {
            ScaleOp::MulInv(1.0 / s)
        } else {
            ScaleOp::Div(s)
        }
    }
    #[inline]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            ScaleOp::MulInv(i) => v * i,
            ScaleOp::Div(s) => v / s,
        }
    }
}

/// Max |x| bits over columns `cols` of every row of a row-major band (row length `k`).
pub(crate) fn tile_max_abs_bits_f32(isa: Isa, src: &[f32], k: usize, cols: Range<usize>) -> u32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::tile_max_abs_bits_f32(src, k, cols) },
        _ => scalar::tile_max_abs_bits(src, k, cols),
    }
}

/// As [`tile_max_abs_bits_f32`], for bf16.
pub(crate) fn tile_max_abs_bits_bf16(isa: Isa, src: &[bf16], k: usize, cols: Range<usize>) -> u32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::tile_max_abs_bits_bf16(src, k, cols) },
        _ => scalar::tile_max_abs_bits(src, k, cols),
    }
}

/// E4M3-encodes columns `cols` of every row of a band into `q` (same layout); returns clipped.
/// `may_clip = false` promises no scaled magnitude exceeds 448 (lets SIMD skip the clamp).
pub(crate) fn encode_tile_e4m3_f32(
    isa: Isa,
    src: &[f32],
    k: usize,
    cols: Range<usize>,
    op: ScaleOp,
    may_clip: bool,
    q: &mut [u8],
) -> u64 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 => unsafe { avx2::encode_tile_e4m3_f32(src, k, cols, op, may_clip, q) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` only comes from `Isa::available`, after detecting its features.
        Isa::Avx512 => unsafe { avx512::encode_tile_e4m3_f32(src, k, cols, op, may_clip, q) },
        _ => scalar::encode_tile_e4m3(src, k, cols, op, may_clip, q),
    }
}

/// As [`encode_tile_e4m3_f32`], for bf16.
pub(crate) fn encode_tile_e4m3_bf16(
    isa: Isa,
    src: &[bf16],
    k: usize,
    cols: Range<usize>,
    op: ScaleOp,
    may_clip: bool,
    q: &mut [u8],
) -> u64 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 => unsafe { avx2::encode_tile_e4m3_bf16(src, k, cols, op, may_clip, q) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` only comes from `Isa::available`, after detecting its features.
        Isa::Avx512 => unsafe { avx512::encode_tile_e4m3_bf16(src, k, cols, op, may_clip, q) },
        _ => scalar::encode_tile_e4m3(src, k, cols, op, may_clip, q),
    }
}

/// `f32(q) * s` for each code.
pub(crate) fn decode_e4m3_f32(isa: Isa, q: &[u8], s: f32, out: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 => unsafe { avx2::decode_e4m3_f32(q, s, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` only comes from `Isa::available`, after detecting its features.
        Isa::Avx512 => unsafe { avx512::decode_e4m3_f32(q, s, out) },
        _ => scalar::decode_e4m3_f32(q, s, out),
    }
}

/// `bf16_rne(f32(q) * s)` for each code.
pub(crate) fn decode_e4m3_bf16(isa: Isa, q: &[u8], s: f32, out: &mut [bf16]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 => unsafe { avx2::decode_e4m3_bf16(q, s, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` only comes from `Isa::available`, after detecting its features.
        Isa::Avx512 => unsafe { avx512::decode_e4m3_bf16(q, s, out) },
        _ => scalar::decode_e4m3_bf16(q, s, out),
    }
}

/// One MXFP4 row: `src` (k values) into `ceil(k/32)` packed 16-byte blocks and scale bytes.
pub(crate) fn mxfp4_quantize_row_f32(
    isa: Isa,
    rule: MxScaleRule,
    src: &[f32],
    blocks: &mut [u8],
    scales: &mut [u8],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 | Isa::Avx512 => unsafe {
            avx2::mxfp4_quantize_row_f32(rule, src, blocks, scales)
        },
        _ => scalar::mxfp4_quantize_row(rule, src, blocks, scales),
    }
}

/// As [`mxfp4_quantize_row_f32`], for bf16 input.
pub(crate) fn mxfp4_quantize_row_bf16(
    isa: Isa,
    rule: MxScaleRule,
    src: &[bf16],
    blocks: &mut [u8],
    scales: &mut [u8],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 | Isa::Avx512 => unsafe {
            avx2::mxfp4_quantize_row_bf16(rule, src, blocks, scales)
        },
        _ => scalar::mxfp4_quantize_row(rule, src, blocks, scales),
    }
}

/// One MXFP4 row back to f32 (`out.len()` = k real elements).
pub(crate) fn mxfp4_dequantize_row_f32(isa: Isa, blocks: &[u8], scales: &[u8], out: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::mxfp4_dequantize_row_f32(blocks, scales, out) },
        _ => scalar::mxfp4_dequantize_row(blocks, scales, out, |v| v),
    }
}

/// One MXFP4 row back to bf16 (values are exact in bf16 except in its subnormal range; RNE).
pub(crate) fn mxfp4_dequantize_row_bf16(isa: Isa, blocks: &[u8], scales: &[u8], out: &mut [bf16]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        Isa::Avx2 | Isa::Avx512 => unsafe { avx2::mxfp4_dequantize_row_bf16(blocks, scales, out) },
        _ => scalar::mxfp4_dequantize_row(blocks, scales, out, bf16::from_f32),
    }
}

/// One row of an MX scheme into unpacked codes and scale bytes; returns (clipped, non-finite).
/// SIMD for E4M3 and E2M1 elements, scalar for the others.
pub(crate) fn mx_quantize_row_f32(
    isa: Isa,
    elem: MxElement,
    rule: MxScaleRule,
    src: &[f32],
    codes: &mut [u8],
    scales: &mut [u8],
) -> (u64, u64) {
    match (isa, elem) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        (Isa::Avx2 | Isa::Avx512, MxElement::E4M3 | MxElement::E2M1) => unsafe {
            avx2::mx_quantize_row_f32(elem, rule, src, codes, scales)
        },
        _ => scalar::mx_quantize_row(elem, rule, src, codes, scales),
    }
}

/// As [`mx_quantize_row_f32`], for bf16.
pub(crate) fn mx_quantize_row_bf16(
    isa: Isa,
    elem: MxElement,
    rule: MxScaleRule,
    src: &[bf16],
    codes: &mut [u8],
    scales: &mut [u8],
) -> (u64, u64) {
    match (isa, elem) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` only comes from `Isa::available`, after detecting its features.
        (Isa::Avx2 | Isa::Avx512, MxElement::E4M3 | MxElement::E2M1) => unsafe {
            avx2::mx_quantize_row_bf16(elem, rule, src, codes, scales)
        },
        _ => scalar::mx_quantize_row(elem, rule, src, codes, scales),
    }
}
