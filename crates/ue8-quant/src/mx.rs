//! OCP MX block formats: 32 consecutive elements along K share one E8M0 scale (formats.md
//! section 3), for E4M3, E5M2, E3M2, E2M3 and E2M1 elements, scale rules `Floor` and `Rceil`.
//!
//! K not a multiple of 32: the last block of each row is partial, its scale comes from its real
//! elements only, and the scale grid is `[n, ceil(k/32)]`. The unpacked codes here have exactly
//! `n * k` entries; packed layouts (see [`crate::mxfp4`] and [`crate::pack`]) zero-pad each row to
//! whole blocks. A block holding NaN or inf gets scale byte 0xFF (NaN) and all-zero codes.

use std::sync::OnceLock;

use half::bf16;

use crate::kernels::{self, Isa};
use crate::rules::{e8m0_to_f32, MxElement, MxScaleRule};
use crate::shape::{blocks, check_len, elements};
use crate::source::SourceElement;
use crate::{QuantError, QuantReport};

/// Elements per MX block.
pub const MX_BLOCK: usize = 32;

/// An OCP MX scheme: element type and scale rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MxScheme {
    pub elem: MxElement,
    pub rule: MxScaleRule,
}

impl MxScheme {
    /// OCP MXFP4 (E2M1) with the OCP `Floor` rule.
    pub const MXFP4: MxScheme = MxScheme {
        elem: MxElement::E2M1,
        rule: MxScaleRule::Floor,
    };
    /// OCP MXFP8 (E4M3) with the OCP `Floor` rule.
    pub const MXFP8_E4M3: MxScheme = MxScheme {
        elem: MxElement::E4M3,
        rule: MxScaleRule::Floor,
    };

    /// Number of scales per row: `ceil(k / 32)`.
    pub fn blocks_per_row(k: usize) -> usize {
        blocks(k, MX_BLOCK)
    }

    fn check(
        n: usize,
        k: usize,
        src_len: usize,
        codes_len: usize,
        scales_len: usize,
    ) -> Result<usize, QuantError> {
        let len = elements(n, k)?;
        check_len("source", len, src_len)?;
        check_len("codes", len, codes_len)?;
        let nb = Self::blocks_per_row(k);
        let ns = n
            .checked_mul(nb)
            .ok_or(QuantError::ShapeOverflow { n, k })?;
        check_len("scales", ns, scales_len)?;
        Ok(nb)
    }

    /// Quantizes a row-major f32 `[n, k]` into one code per element and `[n, ceil(k/32)]` scales
    /// (fast kernels; identical to [`MxScheme::quantize`]).
    pub fn quantize_f32(
        &self,
        src: &[f32],
        n: usize,
        k: usize,
        codes_out: &mut [u8],
        scales_out: &mut [u8],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_f32_with(Isa::detect(), src, n, k, codes_out, scales_out)
    }

    /// As [`MxScheme::quantize_f32`], from bf16.
    pub fn quantize_bf16(
        &self,
        src: &[bf16],
        n: usize,
        k: usize,
        codes_out: &mut [u8],
        scales_out: &mut [u8],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_bf16_with(Isa::detect(), src, n, k, codes_out, scales_out)
    }

    /// Kernel-variant entry point (tests, benchmarks).
    #[doc(hidden)]
    pub fn quantize_f32_with(
        &self,
        isa: Isa,
        src: &[f32],
        n: usize,
        k: usize,
        codes_out: &mut [u8],
        scales_out: &mut [u8],
    ) -> Result<QuantReport, QuantError> {
        let nb = Self::check(n, k, src.len(), codes_out.len(), scales_out.len())?;
        let mut report = QuantReport::default();
        for ((s, c), sc) in src
            .chunks(k)
            .zip(codes_out.chunks_mut(k))
            .zip(scales_out.chunks_mut(nb))
        {
            let (clipped, nonfinite) =
                kernels::mx_quantize_row_f32(isa, self.elem, self.rule, s, c, sc);
            report = report.merge(QuantReport { clipped, nonfinite });
        }
        Ok(report)
    }

    /// Kernel-variant entry point (tests, benchmarks).
    #[doc(hidden)]
    pub fn quantize_bf16_with(
        &self,
        isa: Isa,
        src: &[bf16],
        n: usize,
        k: usize,
        codes_out: &mut [u8],
        scales_out: &mut [u8],
    ) -> Result<QuantReport, QuantError> {
        let nb = Self::check(n, k, src.len(), codes_out.len(), scales_out.len())?;
        let mut report = QuantReport::default();
        for ((s, c), sc) in src
            .chunks(k)
            .zip(codes_out.chunks_mut(k))
            .zip(scales_out.chunks_mut(nb))
        {
            let (clipped, nonfinite) =
                kernels::mx_quantize_row_bf16(isa, self.elem, self.rule, s, c, sc);
            report = report.merge(QuantReport { clipped, nonfinite });
        }
        Ok(report)
    }

    /// Reference quantizer (f32, bf16, f16) that every MX kernel is tested against, written
    /// straight from formats.md section 3: `X = 2^(byte-127)`, code = `RNE_saturate(v / X)`.
    pub fn quantize<T: SourceElement>(
        &self,
        src: &[T],
        n: usize,
        k: usize,
        codes_out: &mut [u8],
        scales_out: &mut [u8],
    ) -> Result<QuantReport, QuantError> {
        Self::check(n, k, src.len(), codes_out.len(), scales_out.len())?;
        let max = self.elem.max();
        let mut report = QuantReport::default();
        let blocks = src
            .chunks(k)
            .zip(codes_out.chunks_mut(k))
            .flat_map(|(s, c)| s.chunks(MX_BLOCK).zip(c.chunks_mut(MX_BLOCK)));
        for ((s, c), scale) in blocks.zip(scales_out.iter_mut()) {
            let mut amax = 0f32;
            let mut finite = true;
            for v in s {
                let v = v.to_f32();
                finite &= v.is_finite();
                amax = amax.max(v.abs());
            }
            if !finite {
                *scale = 0xFF;
                c.fill(0);
                report.nonfinite += s.iter().filter(|v| !v.to_f32().is_finite()).count() as u64;
                continue;
            }
            *scale = self.rule.scale_byte(self.elem, amax);
            let x = e8m0_to_f32(*scale);
            for (code, v) in c.iter_mut().zip(s) {
                let y = v.to_f32() / x;
                report.clipped += (y.abs() > max) as u64;
                *code = self.elem.encode(y);
            }
        }
        Ok(report)
    }

    /// Reference dequantizer, straight from formats.md section 3: `decode(code) * X`.
    pub fn dequantize_ref<O>(
        &self,
        codes: &[u8],
        scales: &[u8],
        n: usize,
        k: usize,
        out: &mut [O],
        convert: impl Fn(f32) -> O,
    ) -> Result<(), QuantError> {
        Self::check(n, k, out.len(), codes.len(), scales.len())?;
        let blocks = codes
            .chunks(k)
            .zip(out.chunks_mut(k))
            .flat_map(|(c, o)| c.chunks(MX_BLOCK).zip(o.chunks_mut(MX_BLOCK)));
        for ((c, o), &scale) in blocks.zip(scales) {
            let x = e8m0_to_f32(scale);
            for (dst, &code) in o.iter_mut().zip(c) {
                *dst = convert(self.elem.decode(code) * x);
            }
        }
        Ok(())
    }

    /// Fast dequantizer: E4M3 blocks through the E4M3 decode kernels, other elements through a
    /// 256-entry table of exact values (same products as [`MxScheme::dequantize_ref`]).
    #[allow(clippy::too_many_arguments)]
    fn dequantize_fast<O>(
        &self,
        isa: Isa,
        codes: &[u8],
        scales: &[u8],
        n: usize,
        k: usize,
        out: &mut [O],
        e4m3: fn(Isa, &[u8], f32, &mut [O]),
        convert: fn(f32) -> O,
    ) -> Result<(), QuantError> {
        Self::check(n, k, out.len(), codes.len(), scales.len())?;
        let table = decode_table(self.elem);
        let blocks = codes
            .chunks(k)
            .zip(out.chunks_mut(k))
            .flat_map(|(c, o)| c.chunks(MX_BLOCK).zip(o.chunks_mut(MX_BLOCK)));
        for ((c, o), &scale) in blocks.zip(scales) {
            let x = e8m0_to_f32(scale);
            if self.elem == MxElement::E4M3 {
                e4m3(isa, c, x, o);
            } else {
                for (dst, &code) in o.iter_mut().zip(c) {
                    *dst = convert(table[code as usize] * x);
                }
            }
        }
        Ok(())
    }

    /// `decode(code) * X` per element (scale 0xFF gives NaN).
    pub fn dequantize_to_f32(
        &self,
        codes: &[u8],
        scales: &[u8],
        n: usize,
        k: usize,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        self.dequantize_to_f32_with(Isa::detect(), codes, scales, n, k, out)
    }

    /// Kernel-variant entry point (tests, benchmarks).
    #[doc(hidden)]
    pub fn dequantize_to_f32_with(
        &self,
        isa: Isa,
        codes: &[u8],
        scales: &[u8],
        n: usize,
        k: usize,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        let e4m3 = kernels::decode_e4m3_f32;
        self.dequantize_fast(isa, codes, scales, n, k, out, e4m3, |v| v)
    }

    /// Kernel-variant entry point (tests, benchmarks).
    #[doc(hidden)]
    pub fn dequantize_to_bf16_with(
        &self,
        isa: Isa,
        codes: &[u8],
        scales: &[u8],
        n: usize,
        k: usize,
        out: &mut [bf16],
    ) -> Result<(), QuantError> {
        let e4m3 = kernels::decode_e4m3_bf16;
        self.dequantize_fast(isa, codes, scales, n, k, out, e4m3, bf16::from_f32)
    }

    /// `bf16_rne(decode(code) * X)` per element.
    pub fn dequantize_to_bf16(
        &self,
        codes: &[u8],
        scales: &[u8],
        n: usize,
        k: usize,
        out: &mut [bf16],
    ) -> Result<(), QuantError> {
        self.dequantize_to_bf16_with(Isa::detect(), codes, scales, n, k, out)
    }
}

/// Exact value of every code of `elem` (bits above the element width ignored), built once.
fn decode_table(elem: MxElement) -> &'static [f32; 256] {
    static TABLES: [OnceLock<[f32; 256]>; 5] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = match elem {
        MxElement::E4M3 => &TABLES[0],
        MxElement::E5M2 => &TABLES[1],
        MxElement::E3M2 => &TABLES[2],
        MxElement::E2M3 => &TABLES[3],
        MxElement::E2M1 => &TABLES[4],
    };
    slot.get_or_init(|| {
        let mut t = [0f32; 256];
        for (code, v) in (0u8..=255).zip(t.iter_mut()) {
            *v = elem.decode(code);
        }
        t
    })
}
