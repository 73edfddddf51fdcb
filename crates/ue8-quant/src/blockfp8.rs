//! DeepSeek blockwise FP8: E4M3 elements with one scale per `tile_rows x tile_cols` tile
//! (formats.md section 2). Weights use 128x128 tiles, activations 1x128 groups. Tiles at the right
//! and bottom edges are partial: their amax covers only their real elements.

use std::ops::Range;

use half::{bf16, f16};
use rayon::prelude::*;

use crate::kernels::{self, Isa, ScaleOp};
use crate::metrics::ErrorStats;
use crate::rules::{NonFinite, ScaleRule, E4M3_MAX};
use crate::shape::{blocks, check_len, elements};
use crate::source::SourceElement;
use crate::QuantError;

/// What a quantize call saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuantReport {
    /// Elements whose scaled magnitude exceeded the element's max and were saturated
    /// (infinities included when non-finite values are allowed).
    pub clipped: u64,
    /// NaN and infinite source elements (non-zero only with [`NonFinite::Allow`]).
    pub nonfinite: u64,
}

impl QuantReport {
    /// Sum of two reports (e.g. from two threads).
    pub fn merge(self, other: QuantReport) -> QuantReport {
        QuantReport {
            clipped: self.clipped + other.clipped,
            nonfinite: self.nonfinite + other.nonfinite,
        }
    }
}

/// A DeepSeek blockwise FP8 scheme: scale rule and tile shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockFp8 {
    pub rule: ScaleRule,
    pub tile_rows: usize,
    pub tile_cols: usize,
}

/// Source element types with fast E4M3 kernels attached: f32, bf16, and f16 (scalar kernels).
#[doc(hidden)]
pub trait Fp8Source: SourceElement {
    fn tile_max_abs_bits(isa: Isa, src: &[Self], k: usize, cols: Range<usize>) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn encode_tile(
        isa: Isa,
        src: &[Self],
        k: usize,
        cols: Range<usize>,
        op: ScaleOp,
        may_clip: bool,
        q: &mut [u8],
    ) -> u64;
}
impl Fp8Source for f32 {
    fn tile_max_abs_bits(isa: Isa, src: &[Self], k: usize, cols: Range<usize>) -> u32 {
        kernels::tile_max_abs_bits_f32(isa, src, k, cols)
    }
    #[allow(clippy::too_many_arguments)]
    fn encode_tile(
        isa: Isa,
        src: &[Self],
        k: usize,
        cols: Range<usize>,
        op: ScaleOp,
        may_clip: bool,
        q: &mut [u8],
    ) -> u64 {
        kernels::encode_tile_e4m3_f32(isa, src, k, cols, op, may_clip, q)
    }
}
impl Fp8Source for bf16 {
    fn tile_max_abs_bits(isa: Isa, src: &[Self], k: usize, cols: Range<usize>) -> u32 {
        kernels::tile_max_abs_bits_bf16(isa, src, k, cols)
    }
    #[allow(clippy::too_many_arguments)]
    fn encode_tile(
        isa: Isa,
        src: &[Self],
        k: usize,
        cols: Range<usize>,
        op: ScaleOp,
        may_clip: bool,
        q: &mut [u8],
    ) -> u64 {
        kernels::encode_tile_e4m3_bf16(isa, src, k, cols, op, may_clip, q)
    }
}
impl Fp8Source for f16 {
    fn tile_max_abs_bits(_: Isa, src: &[Self], k: usize, cols: Range<usize>) -> u32 {
        kernels::scalar::tile_max_abs_bits(src, k, cols)
    }
    #[allow(clippy::too_many_arguments)]
    fn encode_tile(
        _: Isa,
        src: &[Self],
        k: usize,
        cols: Range<usize>,
        op: ScaleOp,
        _: bool,
        q: &mut [u8],
    ) -> u64 {
        kernels::scalar::encode_tile_e4m3(src, k, cols, op, true, q)
    }
}

/// First NaN/inf in row-major order of a row-major `[rows, k]` slice, as (row, col, value).
fn first_nonfinite<T: SourceElement>(src: &[T], k: usize) -> Option<(usize, usize, f32)> {
    src.iter()
        .position(|v| !v.to_f32().is_finite())
        .and_then(|i| src.get(i).map(|v| (i / k, i % k, v.to_f32())))
}

impl BlockFp8 {
    /// DeepSeek-V3.1 weights: 128x128 tiles, UE8M0 (power-of-two) scales.
    pub const WEIGHT: BlockFp8 = BlockFp8 {
        rule: ScaleRule::Ue8m0Ceil,
        tile_rows: 128,
        tile_cols: 128,
    };
    /// DeepSeek activations: 1x128 groups per token, UE8M0 scales.
    pub const ACTIVATION: BlockFp8 = BlockFp8 {
        rule: ScaleRule::Ue8m0Ceil,
        tile_rows: 1,
        tile_cols: 128,
    };

    /// The same tiles with another scale rule.
    pub const fn with_rule(self, rule: ScaleRule) -> BlockFp8 {
        BlockFp8 { rule, ..self }
    }

    /// Shape of the scale grid for an `[n, k]` matrix: `[ceil(n/tile_rows), ceil(k/tile_cols)]`.
    pub fn scale_grid(&self, n: usize, k: usize) -> Result<(usize, usize), QuantError> {
        self.check_tile()?;
        elements(n, k)?;
        Ok((blocks(n, self.tile_rows), blocks(k, self.tile_cols)))
    }

    fn check_tile(&self) -> Result<(), QuantError> {
        if self.tile_rows == 0 || self.tile_cols == 0 {
            return Err(QuantError::InvalidTile {
                rows: self.tile_rows,
                cols: self.tile_cols,
            });
        }
        Ok(())
    }

    /// Validates slice lengths; returns (elements, grid rows, grid cols).
    fn check(
        &self,
        n: usize,
        k: usize,
        src_len: usize,
        q_len: usize,
        scales_len: usize,
    ) -> Result<(usize, usize, usize), QuantError> {
        let (gr, gc) = self.scale_grid(n, k)?;
        let len = elements(n, k)?;
        check_len("source", len, src_len)?;
        check_len("codes", len, q_len)?;
        check_len("scales", gr * gc, scales_len)?;
        Ok((len, gr, gc))
    }

    /// Quantizes a row-major f32 `[n, k]` matrix into E4M3 codes and an f32 scale grid.
    pub fn quantize_f32(
        &self,
        src: &[f32],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_with(Isa::detect(), src, n, k, nonfinite, q_out, scales_out)
    }

    /// As [`BlockFp8::quantize_f32`], from bf16.
    pub fn quantize_bf16(
        &self,
        src: &[bf16],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_with(Isa::detect(), src, n, k, nonfinite, q_out, scales_out)
    }

    /// As [`BlockFp8::quantize_f32`], from f16 (scalar kernels).
    pub fn quantize_f16(
        &self,
        src: &[f16],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_with(Isa::detect(), src, n, k, nonfinite, q_out, scales_out)
    }

    /// As [`BlockFp8::quantize_bf16`], with bands of `tile_rows` rows spread over the rayon pool.
    /// Results are identical to the sequential call; the error reported is the first in row order.
    pub fn quantize_bf16_par(
        &self,
        src: &[bf16],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_par_with(Isa::detect(), src, n, k, nonfinite, q_out, scales_out)
    }

    /// As [`BlockFp8::quantize_f32`], in parallel (see [`BlockFp8::quantize_bf16_par`]).
    pub fn quantize_f32_par(
        &self,
        src: &[f32],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        self.quantize_par_with(Isa::detect(), src, n, k, nonfinite, q_out, scales_out)
    }

    /// Quantizes (bands of rows over the rayon pool, like [`BlockFp8::quantize_bf16_par`]) and
    /// measures the error of the result against the source in the same pass over memory: each
    /// band is dequantized and compared while it is still in cache. Equal to quantize, then
    /// [`BlockFp8::dequantize_to_f32`], then [`ErrorStats::add_slices`] (sums up to f64
    /// reassociation), with the clipped count already added. The converter's hot path.
    pub fn quantize_with_stats_par<T: Fp8Source>(
        &self,
        src: &[T],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<(QuantReport, ErrorStats), QuantError> {
        let isa = Isa::detect();
        let (_, _, gc) = self.check(n, k, src.len(), q_out.len(), scales_out.len())?;
        let band = self.tile_rows.min(n) * k;
        let results: Vec<Result<(QuantReport, ErrorStats), QuantError>> = src
            .par_chunks(band)
            .zip(q_out.par_chunks_mut(band))
            .zip(scales_out.par_chunks_mut(gc))
            .enumerate()
            .map(|(b, ((s, q), sc))| {
                let report = self
                    .quantize_band(isa, s, k, nonfinite, q, sc)
                    .map_err(|e| shift_rows(e, b * self.tile_rows))?;
                let mut stats = self.band_stats(isa, s, q, sc, k);
                stats.add_clipped(report.clipped);
                Ok((report, stats))
            })
            .collect();
        let mut total = (QuantReport::default(), ErrorStats::new());
        for r in results {
            let (report, stats) = r?;
            total.0 = total.0.merge(report);
            total.1.merge(&stats);
        }
        Ok(total)
    }

    /// Error statistics of one quantized band against its source, tile segment by segment.
    fn band_stats<T: Fp8Source>(
        &self,
        isa: Isa,
        src: &[T],
        q: &[u8],
        scales: &[f32],
        k: usize,
    ) -> ErrorStats {
        let tc = self.tile_cols.min(k);
        let (mut reference, mut decoded) = (vec![0f32; tc], vec![0f32; tc]);
        let mut stats = ErrorStats::new();
        for (row, qrow) in src.chunks(k).zip(q.chunks(k)) {
            for ((seg, qseg), &s) in row.chunks(tc).zip(qrow.chunks(tc)).zip(scales) {
                let (r, d) = (&mut reference[..seg.len()], &mut decoded[..seg.len()]);
                for (o, v) in r.iter_mut().zip(seg) {
                    *o = v.to_f32();
                }
                kernels::decode_e4m3_f32(isa, qseg, s, d);
                stats.add_slices(r, d);
            }
        }
        stats
    }

    /// Quantize with a chosen kernel variant (tests and benchmarks run every variant).
    #[allow(clippy::too_many_arguments)]
    #[doc(hidden)]
    pub fn quantize_with<T: Fp8Source>(
        &self,
        isa: Isa,
        src: &[T],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        let (_, _, gc) = self.check(n, k, src.len(), q_out.len(), scales_out.len())?;
        let band = self.tile_rows.min(n) * k;
        let mut report = QuantReport::default();
        for ((s, q), sc) in src
            .chunks(band)
            .zip(q_out.chunks_mut(band))
            .zip(scales_out.chunks_mut(gc))
        {
            report = report.merge(self.quantize_band(isa, s, k, nonfinite, q, sc)?);
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn quantize_par_with<T: Fp8Source>(
        &self,
        isa: Isa,
        src: &[T],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        let (_, _, gc) = self.check(n, k, src.len(), q_out.len(), scales_out.len())?;
        let band = self.tile_rows.min(n) * k;
        let results: Vec<Result<QuantReport, QuantError>> = src
            .par_chunks(band)
            .zip(q_out.par_chunks_mut(band))
            .zip(scales_out.par_chunks_mut(gc))
            .enumerate()
            .map(|(b, ((s, q), sc))| {
                self.quantize_band(isa, s, k, nonfinite, q, sc)
                    .map_err(|e| shift_rows(e, b * self.tile_rows))
            })
            .collect();
        results
            .into_iter()
            .try_fold(QuantReport::default(), |acc, r| Ok(acc.merge(r?)))
    }

    /// One band of up to `tile_rows` rows, tile by tile: amax, scale, encode, so the second
    /// read of a tile (at most 128 x 128 x 4 bytes) comes from cache. Errors carry rows relative
    /// to the band (callers shift them).
    fn quantize_band<T: Fp8Source>(
        &self,
        isa: Isa,
        src: &[T],
        k: usize,
        nonfinite: NonFinite,
        q: &mut [u8],
        scales: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        let tc = self.tile_cols;
        let mut clipped = 0u64;
        for (tj, s) in scales.iter_mut().enumerate() {
            let cols = tj * tc..((tj + 1) * tc).min(k);
            let amax_bits = T::tile_max_abs_bits(isa, src, k, cols.clone());
            if amax_bits >= 0x7F80_0000 {
                return self.quantize_band_nonfinite(src, k, nonfinite, q, scales);
            }
            let amax = f32::from_bits(amax_bits);
            *s = self.rule.scale_from_amax(amax);
            let op = ScaleOp::for_scale(*s);
            // rounding is monotonic: no |x| <= amax scales past op(amax)
            let may_clip = op.apply(amax) > E4M3_MAX;
            clipped += T::encode_tile(isa, src, k, cols, op, may_clip, q);
        }
        Ok(QuantReport {
            clipped,
            nonfinite: 0,
        })
    }

    /// The rare band holding NaN or inf: `Reject` names the first in row-major order; `Allow`
    /// takes each tile's amax over its finite values and encodes with the scalar kernel.
    fn quantize_band_nonfinite<T: SourceElement>(
        &self,
        src: &[T],
        k: usize,
        nonfinite: NonFinite,
        q: &mut [u8],
        scales: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        if nonfinite == NonFinite::Reject {
            if let Some((row, col, value)) = first_nonfinite(src, k) {
                return Err(QuantError::NonFinite { row, col, value });
            }
        }
        let tc = self.tile_cols;
        let mut report = QuantReport {
            clipped: 0,
            nonfinite: src.iter().filter(|v| !v.to_f32().is_finite()).count() as u64,
        };
        for (tj, s) in scales.iter_mut().enumerate() {
            let cols = tj * tc..((tj + 1) * tc).min(k);
            let finite_max = src
                .chunks(k)
                .filter_map(|row| row.get(cols.clone()))
                .flatten()
                .map(|v| v.to_f32())
                .filter(|v| v.is_finite())
                .fold(0u32, |m, v| m.max(v.to_bits() & 0x7FFF_FFFF));
            *s = self.rule.scale_from_amax(f32::from_bits(finite_max));
            let op = ScaleOp::for_scale(*s);
            report.clipped += kernels::scalar::encode_tile_e4m3(src, k, cols, op, true, q);
        }
        Ok(report)
    }

    /// Scalar reference of [`BlockFp8::quantize_f32`] written straight from formats.md section 2
    /// (`w / S` division, `ue8_formats` element cast); the fast kernels are tested against it.
    pub fn quantize_ref<T: SourceElement>(
        &self,
        src: &[T],
        n: usize,
        k: usize,
        nonfinite: NonFinite,
        q_out: &mut [u8],
        scales_out: &mut [f32],
    ) -> Result<QuantReport, QuantError> {
        let (_, gr, gc) = self.check(n, k, src.len(), q_out.len(), scales_out.len())?;
        let mut report = QuantReport::default();
        if let Some((row, col, value)) = first_nonfinite(src, k) {
            if nonfinite == NonFinite::Reject {
                return Err(QuantError::NonFinite { row, col, value });
            }
        }
        for ti in 0..gr {
            let rows = ti * self.tile_rows..((ti + 1) * self.tile_rows).min(n);
            for tj in 0..gc {
                let cols = tj * self.tile_cols..((tj + 1) * self.tile_cols).min(k);
                let mut amax = 0f32;
                for r in rows.clone() {
                    for v in &src[r * k + cols.start..r * k + cols.end] {
                        let v = v.to_f32();
                        if v.is_finite() {
                            amax = amax.max(v.abs());
                        }
                    }
                }
                let s = self.rule.scale_from_amax(amax);
                scales_out[ti * gc + tj] = s;
                for r in rows.clone() {
                    for c in cols.clone() {
                        let v = src[r * k + c].to_f32();
                        report.nonfinite += !v.is_finite() as u64;
                        let (code, clip) = kernels::scalar::e4m3_code_clamped(v / s);
                        q_out[r * k + c] = code;
                        report.clipped += clip as u64;
                    }
                }
            }
        }
        Ok(report)
    }

    fn check_dequant(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out_len: usize,
    ) -> Result<usize, QuantError> {
        let (gr, gc) = self.scale_grid(n, k)?;
        let len = elements(n, k)?;
        check_len("codes", len, q.len())?;
        check_len("scales", gr * gc, scales.len())?;
        check_len("output", len, out_len)?;
        Ok(gc)
    }

    /// `f32(q) * S` for every element.
    pub fn dequantize_to_f32(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        self.dequantize_with(
            Isa::detect(),
            q,
            scales,
            n,
            k,
            out,
            kernels::decode_e4m3_f32,
        )
    }

    /// `bf16_rne(f32(q) * S)` for every element.
    pub fn dequantize_to_bf16(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [bf16],
    ) -> Result<(), QuantError> {
        self.dequantize_with(
            Isa::detect(),
            q,
            scales,
            n,
            k,
            out,
            kernels::decode_e4m3_bf16,
        )
    }

    /// As [`BlockFp8::dequantize_to_bf16`], bands of rows spread over the rayon pool.
    pub fn dequantize_to_bf16_par(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [bf16],
    ) -> Result<(), QuantError> {
        self.dequantize_par_with(
            Isa::detect(),
            q,
            scales,
            n,
            k,
            out,
            kernels::decode_e4m3_bf16,
        )
    }

    /// As [`BlockFp8::dequantize_to_f32`], bands of rows spread over the rayon pool.
    pub fn dequantize_to_f32_par(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        self.dequantize_par_with(
            Isa::detect(),
            q,
            scales,
            n,
            k,
            out,
            kernels::decode_e4m3_f32,
        )
    }

    /// Dequantize with a chosen kernel variant into f32 (tests and benchmarks).
    #[doc(hidden)]
    pub fn dequantize_to_f32_with(
        &self,
        isa: Isa,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        self.dequantize_with(isa, q, scales, n, k, out, kernels::decode_e4m3_f32)
    }

    /// Dequantize with a chosen kernel variant into bf16 (tests and benchmarks).
    #[doc(hidden)]
    pub fn dequantize_to_bf16_with(
        &self,
        isa: Isa,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [bf16],
    ) -> Result<(), QuantError> {
        self.dequantize_with(isa, q, scales, n, k, out, kernels::decode_e4m3_bf16)
    }

    #[allow(clippy::too_many_arguments)]
    fn dequantize_with<O>(
        &self,
        isa: Isa,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [O],
        decode: fn(Isa, &[u8], f32, &mut [O]),
    ) -> Result<(), QuantError> {
        let gc = self.check_dequant(q, scales, n, k, out.len())?;
        let band = self.tile_rows.min(n) * k;
        for ((qb, ob), sb) in q
            .chunks(band)
            .zip(out.chunks_mut(band))
            .zip(scales.chunks(gc))
        {
            self.dequantize_band(isa, qb, sb, k, ob, decode);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dequantize_par_with<O: Send>(
        &self,
        isa: Isa,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [O],
        decode: fn(Isa, &[u8], f32, &mut [O]),
    ) -> Result<(), QuantError> {
        let gc = self.check_dequant(q, scales, n, k, out.len())?;
        let band = self.tile_rows.min(n) * k;
        q.par_chunks(band)
            .zip(out.par_chunks_mut(band))
            .zip(scales.par_chunks(gc))
            .for_each(|((qb, ob), sb)| self.dequantize_band(isa, qb, sb, k, ob, decode));
        Ok(())
    }

    fn dequantize_band<O>(
        &self,
        isa: Isa,
        q: &[u8],
        scales: &[f32],
        k: usize,
        out: &mut [O],
        decode: fn(Isa, &[u8], f32, &mut [O]),
    ) {
        for (qrow, orow) in q.chunks(k).zip(out.chunks_mut(k)) {
            for ((qs, os), &s) in qrow
                .chunks(self.tile_cols)
                .zip(orow.chunks_mut(self.tile_cols))
                .zip(scales)
            {
                decode(isa, qs, s, os);
            }
        }
    }

    /// Scalar reference of the dequantizers, straight from formats.md section 2.
    pub fn dequantize_ref<O>(
        &self,
        q: &[u8],
        scales: &[f32],
        n: usize,
        k: usize,
        out: &mut [O],
        convert: impl Fn(f32) -> O,
    ) -> Result<(), QuantError> {
        let gc = self.check_dequant(q, scales, n, k, out.len())?;
        for r in 0..n {
            for c in 0..k {
                let s = scales[(r / self.tile_rows) * gc + c / self.tile_cols];
                let v = ue8_formats::Element::to_f32(ue8_formats::E4M3(q[r * k + c])) * s;
                out[r * k + c] = convert(v);
            }
        }
        Ok(())
    }
}

fn shift_rows(e: QuantError, by: usize) -> QuantError {
    match e {
        QuantError::NonFinite { row, col, value } => QuantError::NonFinite {
            row: row + by,
            col,
            value,
        },
        other => other,
    }
}
